//! Growing the request index a few batches of records per insert instead of all at once.
//! A full index is kept beside its successor, and each insert after moves a few batches of
//! records over, walking the records in slot order; a flag in each record names the index
//! that holds it, and a lookup tries the new index, then the old. Rehashing 2^20 records in
//! one call took 44-83 ms. (The connection index uses linear hashing instead:
//! `stack::index`.)

use super::{Rec, RequestTable, CHUNK, EPOCH, LIVE, V6};
use crate::request::index::SlotIndex;
use core::net::IpAddr;

/// An index being emptied into its successor. Its words of records already moved or
/// removed may stay until it is dropped: each lookup checks the record it finds.
#[derive(Debug)]
pub(super) struct Moving {
    pub(super) old: SlotIndex,
    /// The next slot to look at.
    pub(super) cursor: u32,
    /// Live records still filed in `old` alone.
    pub(super) pending: usize,
}

/// Batches one insert moves while the index is replaced: at most 64 records rehashed and
/// 1 024 slots looked at per insert (a few microseconds), and every slot walked long
/// before the new index fills (it has room for at least 3/4 of the live records more).
/// Lookups search both indexes meanwhile, so the move is kept short.
pub(super) const MOVE_BATCHES: usize = 4;

/// Records in a batch, their index loads overlapped.
const MOVE_BATCH: usize = 16;

/// Most slots one batch looks at.
const MOVE_SLOTS: usize = 256;

impl RequestTable {
    /// Start replacing the index with one for one more request (`slot` its slot number),
    /// doubled or with its removed words dropped. The records move over `MOVE_BATCHES`
    /// batches per insert (`move_some`), in slot order; an index being replaced that fills
    /// first is finished at once. Out of line: rare.
    #[cold]
    #[inline(never)]
    pub(super) fn grow_index(&mut self, addrs: &[IpAddr], slot: u32) {
        if self.moving.is_some() {
            self.move_some(addrs, usize::MAX);
        }
        let fresh = SlotIndex::with_bits(self.index.bits_for(self.len, slot));
        let old = core::mem::replace(&mut self.index, fresh);
        if self.len > 0 {
            self.epoch ^= EPOCH;
            self.moving = Some(Moving {
                old,
                cursor: 0,
                pending: self.len,
            });
            self.move_some(addrs, MOVE_BATCHES);
        }
    }

    /// Move records still filed in the old index into the new one, in up to `batches`
    /// batches whose cache misses in the new index overlap; drop the old index once
    /// nothing is left in it.
    #[inline(never)]
    pub(super) fn move_some(&mut self, addrs: &[IpAddr], batches: usize) {
        let Some(mut m) = self.moving.take() else {
            return;
        };
        let used = self.recs.slots.used;
        let waiting = LIVE | (self.epoch ^ EPOCH);
        let mut left = batches;
        while m.pending > 0 && (m.cursor as usize) < used && left > 0 {
            left -= 1;
            // Up to a batch of waiting records from the cursor's chunk, within
            // `MOVE_SLOTS`, flagged as moved where they lie.
            let at = m.cursor as usize;
            let (c, from) = (at / CHUNK, at % CHUNK);
            let Some(chunk) = self.recs.slots.chunks.get_mut(c) else {
                break;
            };
            let end = CHUNK.min(from + MOVE_SLOTS.min(used - at));
            let want = MOVE_BATCH.min(m.pending);
            let mut picked = [0u16; MOVE_BATCH];
            let (mut n, mut k) = (0, from);
            while k < end {
                let r = &mut chunk[k];
                k += 1;
                if r.flags & (LIVE | EPOCH) == waiting {
                    r.flags ^= EPOCH;
                    picked[n] = (k - 1) as u16;
                    n += 1;
                    if n == want {
                        break;
                    }
                }
            }
            m.cursor = (c * CHUNK + k) as u32;
            m.pending -= n;
            let chunk = &self.recs.slots.chunks[c];
            let mut batch = [(0u64, 0u32); MOVE_BATCH];
            for (b, &k) in batch.iter_mut().zip(&picked[..n]) {
                let id = (c * CHUNK) as u32 + u32::from(k);
                *b = (self.rec_hash(id, &chunk[usize::from(k)], addrs), id);
            }
            self.index.insert_batch(&batch[..n]);
        }
        // Nothing pending: the old index goes. Pending records past the last slot would be
        // a miscount; the old index is kept then, so they are still found.
        if m.pending > 0 {
            self.moving = Some(m);
        }
    }

    /// The index hash of a stored record: an IPv4 pair straight from its fields (one
    /// SipHash and nothing built), anything else through its 4-tuple.
    fn rec_hash(&self, id: u32, r: &Rec, addrs: &[IpAddr]) -> u64 {
        if r.flags & V6 == 0 {
            if let Some(IpAddr::V4(local)) = addrs.get(usize::from(r.local_ip)) {
                return self.hasher.hash_v4(
                    local.octets(),
                    r.local_port,
                    r.remote.to_be_bytes(),
                    r.remote_port,
                );
            }
        }
        self.hash(&self.resolve(id, *r).tuple(addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SeededState;
    use crate::request::NewRequest;
    use crate::tests::util::XorShift32;
    use crate::{Duration, Instant};
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    const V4: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];

    /// Request number `k`: a peer address and port of its own, IPv6 for every fifth
    /// (hashed through its 4-tuple when moved).
    fn req(k: u32) -> NewRequest {
        let ip: IpAddr = if k % 5 == 0 {
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (k >> 16) as u16, k as u16).into()
        } else {
            Ipv4Addr::from(0x0b00_0000 + (k >> 8)).into()
        };
        crate::request::tests::new_from(SocketAddr::new(ip, k as u16))
    }

    /// What an insert left: records waiting in the old index, and its cursor.
    fn progress(t: &RequestTable) -> Option<(usize, u32)> {
        t.moving.as_ref().map(|m| (m.pending, m.cursor))
    }

    /// A flood's growth: no insert moves more than `MOVE_BATCHES` batches or walks more
    /// slots than they may, each index is replaced before the next is needed, and every
    /// request is found throughout.
    #[test]
    fn a_growing_table_moves_a_few_batches_per_insert() {
        let mut t = RequestTable::new(SeededState::new(3, 4));
        let now = Instant::from_secs(1);
        let (mut started, mut before) = (0, None);
        for k in 0..60_000u32 {
            t.insert(req(k), now, Duration::from_secs(1), &V4, None);
            let after = progress(&t);
            match (before, after) {
                (Some((p0, c0)), Some((p1, c1))) if c1 >= c0 => {
                    assert!(
                        p0 - p1 <= MOVE_BATCHES * MOVE_BATCH,
                        "insert {k} moved {}",
                        p0 - p1
                    );
                    assert!(
                        (c1 - c0) as usize <= MOVE_BATCHES * MOVE_SLOTS,
                        "insert {k}"
                    );
                }
                (Some(_), Some(_)) => panic!("insert {k} finished one index and began another"),
                (None, Some((p1, c1))) => {
                    started += 1;
                    let moved = k as usize - p1;
                    assert!(
                        moved <= MOVE_BATCHES * MOVE_BATCH
                            && c1 as usize <= MOVE_BATCHES * MOVE_SLOTS
                    );
                }
                _ => {}
            }
            before = after;
            if k % 4_099 == 0 || after.is_some_and(|(p, _)| p < MOVE_BATCHES * MOVE_BATCH) {
                t.check_index(&V4).unwrap();
            }
        }
        // A replacement per doubling from 2^7 words to 2^17 (smaller ones move at once).
        assert!(started >= 10, "{started} replacements");
        for k in (0..60_000).step_by(7) {
            assert!(t.find(0, &req(k).tuple, None).is_some(), "request {k}");
        }
        assert_eq!(t.find(0, &req(60_000).tuple, None), None);
    }

    /// Removals, reused slots and reused tuples while an index is being replaced, and a
    /// table mostly removed (far more slots than requests) whose replacement fills the new
    /// index first: the audit holds after every step.
    #[test]
    fn removals_and_reuse_while_the_index_is_replaced() {
        let mut t = RequestTable::new(SeededState::new(5, 6));
        let now = Instant::from_secs(1);
        let mut live: Vec<(u32, u32)> = Vec::new(); // (request number, slot)
        let mut rng = XorShift32(7);
        let mut next = 0u32;
        let mut moving_steps = 0;
        for step in 0..50_000u32 {
            // Grow to 12 000, shrink to 40 (the slots stay), then churn around 40-400.
            let target = match step {
                0..20_000 => 12_000,
                20_000..36_000 => 40,
                _ => 40 + (step / 1_000 % 4) as usize * 120,
            };
            let x = rng.next_u32();
            if live.len() < target && (x % 4 != 0 || live.is_empty()) {
                // Now and then a removed request's tuple comes back.
                let k = if x % 7 == 0 && next > 0 {
                    let k = x % next;
                    if live.iter().any(|&(l, _)| l == k) {
                        continue;
                    }
                    k
                } else {
                    next += 1;
                    next - 1
                };
                let id = t.insert(req(k), now, Duration::from_secs(1), &V4, None);
                live.push((k, id));
            } else if !live.is_empty() {
                let (k, id) = live.swap_remove(x as usize % live.len());
                assert!(t.remove(id, &req(k).tuple, None).is_some());
            }
            if t.moving.is_some() {
                moving_steps += 1;
            }
            if t.moving.is_some() || step % 101 == 0 {
                t.check_index(&V4)
                    .unwrap_or_else(|e| panic!("step {step}: {e}"));
            }
            assert_eq!(t.len(), live.len());
        }
        assert!(moving_steps > 100, "{moving_steps}");
        for &(k, id) in &live {
            assert_eq!(t.find(0, &req(k).tuple, None), Some(id));
        }
    }

    /// An index replaced again before its records all moved (which the room left for the
    /// move makes rare): the first move finishes at once, then the next begins.
    #[test]
    fn a_second_growth_finishes_the_first_move() {
        let mut t = RequestTable::new(SeededState::new(8, 9));
        let now = Instant::from_secs(1);
        for k in 0..1_000 {
            t.insert(req(k), now, Duration::from_secs(1), &V4, None);
        }
        let slot = t.recs.next_id();
        t.grow_index(&V4, slot);
        let (pending, _) = progress(&t).unwrap();
        assert_eq!(pending, 1_000 - MOVE_BATCHES * MOVE_BATCH);
        t.check_index(&V4).unwrap();
        t.grow_index(&V4, slot);
        assert_eq!(progress(&t).unwrap().0, 1_000 - MOVE_BATCHES * MOVE_BATCH);
        t.check_index(&V4).unwrap();
        for k in 1_000..1_200 {
            t.insert(req(k), now, Duration::from_secs(1), &V4, None);
        }
        assert!(t.moving.is_none());
        t.check_index(&V4).unwrap();
        for k in 0..1_200 {
            assert!(t.find(0, &req(k).tuple, None).is_some(), "request {k}");
        }
    }
}
