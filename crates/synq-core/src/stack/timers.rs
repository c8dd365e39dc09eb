//! The connection timer set: a binary min-heap of (deadline, key) with lazy removal.
//!
//! A connection's slot names its one armed deadline (`Slot::armed`), and an entry is live
//! while its slot still names it. Disarming leaves the entry where it is; stale entries go
//! when they reach the top, or at a sweep once they outnumber the live ones by more than
//! `SWEEP_SLACK`. A handshake arms and disarms a connection's timer once each: a push and
//! at most a pop here, where a `BTreeSet` searched, split and merged nodes both times
//! (about 3 % of a handshake's instructions).
//!
//! Invariants after every call: the top entry, if any, is live; every armed slot has an
//! entry; there are at most `2 * live + SWEEP_SLACK` entries. Order is (deadline, key), a
//! total order, so timers fire in the same order a sorted set gave.

use crate::slab::Key;
use crate::Instant;
use core::cmp::Reverse;
use std::collections::BinaryHeap;

/// An entry packed so that one integer comparison orders it as `(Instant, Key)` orders:
/// deadline, then slot index, then generation (a heap's sift compares a lot).
type Entry = u128;

fn pack(t: Instant, k: Key) -> Entry {
    (u128::from(t.total_micros()) << 64) | (u128::from(k.index) << 32) | u128::from(k.generation)
}

fn unpack(e: Entry) -> (Instant, Key) {
    let key = Key {
        index: (e >> 32) as u32,
        generation: e as u32,
    };
    (Instant::from_micros((e >> 64) as u64), key)
}

/// Stale entries tolerated beyond twice the live ones before a sweep (a sweep sorts).
const SWEEP_SLACK: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Slots armed (each has at least one entry; a slot re-armed at a deadline it had
    /// dropped may have two until one surfaces).
    live: usize,
    #[cfg(test)]
    sweeps: usize,
}

impl Timers {
    /// A slot now names `t`.
    pub(super) fn arm(&mut self, t: Instant, key: Key) {
        self.heap.push(Reverse(pack(t, key)));
        self.live += 1;
    }

    /// A slot stopped naming its deadline (already changed, or freed). `live` says whether
    /// an entry is still named.
    pub(super) fn disarm(&mut self, live: impl Fn(Instant, Key) -> bool) {
        self.live -= 1;
        while let Some((t, k)) = self.top() {
            if live(t, k) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > self.max_entries() {
            self.sweep(&live);
        }
        // The room a burst of timers took is given back once it has drained.
        if self.heap.capacity() > 4 * (self.heap.len() + SWEEP_SLACK) {
            self.shrink();
        }
    }

    /// Keeps only the live entries, once each. Out of line: rare, and large (a sort).
    #[cold]
    #[inline(never)]
    fn sweep(&mut self, live: &impl Fn(Instant, Key) -> bool) {
        let mut v = core::mem::take(&mut self.heap).into_vec();
        v.retain(|&Reverse(e)| {
            let (t, k) = unpack(e);
            live(t, k)
        });
        // A deadline dropped and armed again leaves two live-looking entries.
        v.sort_unstable();
        v.dedup();
        self.heap = BinaryHeap::from(v);
        #[cfg(test)]
        {
            self.sweeps += 1;
        }
    }

    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        self.heap.shrink_to(2 * self.heap.len() + SWEEP_SLACK);
    }

    /// The earliest entry.
    pub(super) fn top(&self) -> Option<(Instant, Key)> {
        self.heap.peek().map(|&Reverse(e)| unpack(e))
    }

    /// The earliest deadline.
    pub(super) fn first(&self) -> Option<Instant> {
        self.top().map(|(t, _)| t)
    }

    /// Takes the earliest entry if it is due at `now`. The caller clears the slot's
    /// deadline, then calls [`Self::disarm`].
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Key> {
        let (t, key) = self.top()?;
        if t > now {
            return None;
        }
        self.heap.pop();
        Some(key)
    }

    /// Entries, live and stale.
    pub(super) fn entries(&self) -> impl Iterator<Item = (Instant, Key)> + '_ {
        self.heap.iter().map(|&Reverse(e)| unpack(e))
    }

    /// Slots armed, as counted.
    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// The bound on entries for the live count.
    pub(super) fn max_entries(&self) -> usize {
        2 * self.live + SWEEP_SLACK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Duration;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;

    /// Slots armed or not, as the stack's `Slot::armed`.
    struct Owners(Vec<Option<Instant>>);

    impl Owners {
        fn live(&self) -> impl Fn(Instant, Key) -> bool + '_ {
            |t, k| self.0[k.index as usize] == Some(t)
        }
    }

    fn key(i: usize) -> Key {
        Key {
            index: i as u32,
            generation: 0,
        }
    }

    #[test]
    fn packed_entries_order_and_round_trip_as_tuples() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut pick = || {
            let t = match rng.next_u32() % 4 {
                0 => Instant::ZERO,
                1 => Instant::MAX,
                _ => Instant::from_micros(rng.next_u64() % 1000),
            };
            let k = Key {
                index: [0, 1, u32::MAX][rng.next_u32() as usize % 3],
                generation: [0, 7, u32::MAX][rng.next_u32() as usize % 3],
            };
            (t, k)
        };
        for _ in 0..10_000 {
            let (a, b) = (pick(), pick());
            assert_eq!(unpack(pack(a.0, a.1)), a);
            assert_eq!(
                pack(a.0, a.1).cmp(&pack(b.0, b.1)),
                a.cmp(&b),
                "{a:?} {b:?}"
            );
        }
    }

    /// A burst of timers armed, then dropped in an order unrelated to their deadlines:
    /// the stale entries go and so does the room they took.
    #[test]
    fn a_drained_burst_gives_its_room_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 10_000;
        let mut owners = Owners(vec![None; n]);
        let mut t = Timers::default();
        for i in 0..n {
            let at = Instant::from_micros(u64::from(rng.next_u32() % 1_000_000));
            owners.0[i] = Some(at);
            t.arm(at, key(i));
        }
        assert!(t.heap.capacity() >= n);
        for i in (0..n).rev() {
            owners.0[i] = None;
            t.disarm(owners.live());
        }
        assert_eq!((t.live(), t.first()), (0, None));
        assert!(
            t.heap.capacity() <= 4 * SWEEP_SLACK,
            "{}",
            t.heap.capacity()
        );
    }

    /// Random arms, re-arms, disarms and firings against a sorted set of what is armed:
    /// the same deadlines fire in the same order, and the bounds hold.
    #[test]
    fn fires_what_a_sorted_set_fires_in_its_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut t = Timers::default();
        let mut model: BTreeSet<(Instant, Key)> = BTreeSet::new();
        let mut owners = Owners(vec![None; 64]);
        let mut now = Instant::ZERO;
        let (mut fired, mut peak) = (0, 0);
        let mut sweeps = 0;
        for step in 0..20_000 {
            let i = rng.next_u32() as usize % owners.0.len();
            // Half from few deadlines, so re-arming at a dropped one happens often; half
            // spread, so stale entries sink below live ones and pile up.
            let spread = if rng.next_u32() % 2 == 0 { 8 } else { 1000 };
            let at = now + Duration::from_micros(u64::from(rng.next_u32() % spread) * 100);
            match rng.next_u32() % 16 {
                0..=9 => {
                    if let Some(old) = owners.0[i] {
                        model.remove(&(old, key(i)));
                        owners.0[i] = Some(at);
                        t.disarm(owners.live());
                    } else {
                        owners.0[i] = Some(at);
                    }
                    model.insert((at, key(i)));
                    t.arm(at, key(i));
                }
                10..=13 => {
                    if let Some(old) = owners.0[i].take() {
                        model.remove(&(old, key(i)));
                        t.disarm(owners.live());
                    }
                }
                _ => {
                    now += Duration::from_micros(u64::from(rng.next_u32() % 300));
                    while let Some(k) = t.pop_due(now) {
                        let first = model.pop_first().expect("model has it too");
                        assert_eq!(first.1, k, "step {step}: fired out of order");
                        assert!(first.0 <= now);
                        owners.0[k.index as usize] = None;
                        t.disarm(owners.live());
                        fired += 1;
                    }
                    assert!(model.first().is_none_or(|&(d, _)| d > now), "step {step}");
                }
            }
            assert_eq!(t.first(), model.first().map(|&(d, _)| d), "step {step}");
            assert_eq!(t.live(), model.len(), "step {step}");
            assert!(t.entries().count() <= t.max_entries(), "step {step}");
            assert!(
                t.heap.capacity() <= 4 * (t.heap.len() + SWEEP_SLACK),
                "step {step}"
            );
            let entries: BTreeSet<_> = t.entries().collect();
            assert!(model.iter().all(|e| entries.contains(e)), "step {step}");
            peak = peak.max(t.entries().count());
            if t.sweeps > sweeps {
                // A sweep keeps one entry per armed slot, duplicates included.
                sweeps = t.sweeps;
                assert_eq!(t.entries().count(), t.live(), "step {step}: after a sweep");
            }
        }
        assert!(fired > 1000, "the walk fires timers ({fired})");
        assert!(peak > 100, "stale entries pile up ({peak})");
        assert!(t.sweeps > 10, "and are swept ({})", t.sweeps);
    }
}
