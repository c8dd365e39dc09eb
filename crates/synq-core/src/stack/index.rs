//! Connections by 4-tuple: a hash index of slab slots. The tuple itself lives in the
//! connection, so an entry is the slot's number and 32 bits of the tuple's hash (8 bytes
//! and a control byte), not a copy of the 64-byte tuple beside the key (a map of tuples
//! cost an idle connection about 120 bytes).
//!
//! The index is hashbrown tables under linear hashing: one table until it holds
//! [`SPLIT_AT`] connections, then one more table split off an existing one each time the
//! average reaches it again. A table grows or splits in one call, but it holds a few
//! thousand entries and rehashes from its own, never reading the slab, so no call pauses
//! for long at any size. (One table growing in place paused 57-83 ms at 2^20
//! connections; moved over a few batches per insert, at stops 32 and 33, it still paused
//! 1.1-1.8 ms writing its successor's 2 MiB of control bytes and freeing the old table.)

use super::Slot;
use crate::hash::{FourTuple, SeededState};
use crate::slab::{Key, Slab};
use core::hash::BuildHasher;
use hashbrown::HashTable;

/// Connections a table holds on average before one more is split off. A fuzz build
/// splits at a handful, so that the few connections a fuzz input opens run over many
/// tables and reach `MAX_SHARDS`.
pub(super) const SPLIT_AT: usize = if cfg!(fuzzing) { 4 } else { 2048 };

/// Where the table bits start in the kept hash: below them, a table's bucket bits (its
/// tables stay below 2^14 buckets).
const SHARD_SHIFT: u32 = 14;

/// Table bits in the kept hash: bits 14 to 24, below the seven that make hashbrown's
/// control bytes (`table_hash`).
const TABLE_BITS: u32 = 11;

/// Most tables, all that `TABLE_BITS` tell apart. Past 4 M connections the tables just
/// grow, and past about 29 M their buckets outgrow bit 14, so probes lengthen. (Eight in a
/// fuzz build, as `SPLIT_AT`.)
const MAX_SHARDS: usize = if cfg!(fuzzing) { 8 } else { 1 << TABLE_BITS };

/// A filed connection: its slot, and the low 32 bits of its tuple's hash.
#[derive(Clone, Copy, Debug)]
struct Entry {
    slot: u32,
    hash: u32,
}

/// The index. Every entry names a live, hashed slot whose tuple's hash it keeps, in the
/// table that hash picks.
#[derive(Debug)]
pub(super) struct ConnIndex {
    /// Table 0, kept here: while it is the only one (up to `SPLIT_AT` connections) a
    /// lookup then loads one address fewer before the table's own.
    first: HashTable<Entry>,
    /// Tables 1 on. Tables `[0, count - low)` and `[low, count)` are split this round.
    rest: Vec<HashTable<Entry>>,
    /// The largest power of two at most the count of tables.
    low: usize,
    /// This round's table bits: `2 * low - 1`, or `low - 1` before its first split (no
    /// table then is past the end). Kept, like `split_at`, so that no lookup or insert
    /// works it out (28 instructions a handshake, callgrind).
    mask: usize,
    len: usize,
    /// `len` past which the next table is split off (never, once there are `max_tables`).
    split_at: usize,
    /// `SPLIT_AT` and `MAX_SHARDS`, or smaller in tests of many tables.
    split_every: usize,
    max_tables: usize,
    hasher: SeededState,
}

/// What a table files an entry under, made from the 32 bits the entry keeps so that it
/// grows without the slab. hashbrown takes the bucket from the low bits and the control
/// byte from the top seven: bits 25 to 31 of `h32`, apart from the bucket's and the
/// table's bits.
#[inline]
fn table_hash(h32: u32) -> u64 {
    (u64::from(h32) << 32) | u64::from(h32)
}

/// `slot`'s key if it holds `t`, filed. Out of line: inlined, the probe loads every field
/// of `t` before it starts, on each lookup.
#[inline(never)]
fn holding(conns: &Slab<Slot>, slot: u32, t: &FourTuple) -> Option<Key> {
    conns
        .at(slot)
        .filter(|(_, s)| s.hashed && s.conn.tuple == *t)
        .map(|(k, _)| k)
}

impl ConnIndex {
    pub(super) fn new(hasher: SeededState) -> Self {
        Self::with_limits(hasher, SPLIT_AT, MAX_SHARDS)
    }

    /// An empty index that splits a table off every `split_every` connections, up to
    /// `max_tables` (a power of two the table bits can tell apart).
    fn with_limits(hasher: SeededState, split_every: usize, max_tables: usize) -> Self {
        debug_assert!(max_tables.is_power_of_two() && max_tables <= 1 << TABLE_BITS);
        Self {
            first: HashTable::new(),
            rest: Vec::new(),
            low: 1,
            mask: 0,
            len: 0,
            split_at: split_every,
            split_every,
            max_tables,
            hasher,
        }
    }

    /// Connections filed.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The table a kept hash picks: its table bits under this round's mask, or the last
    /// round's if that table is not split off yet. Without a branch: in a round's middle
    /// its outcome is a coin toss per lookup.
    #[inline]
    fn shard(&self, h32: u32) -> usize {
        let i = (h32 >> SHARD_SHIFT) as usize & self.mask;
        i - (self.low & usize::from(i > self.rest.len()).wrapping_neg())
    }

    /// Tables in the index.
    fn count(&self) -> usize {
        1 + self.rest.len()
    }

    fn table(&self, i: usize) -> &HashTable<Entry> {
        match i {
            0 => &self.first,
            _ => &self.rest[i - 1],
        }
    }

    fn tables(&self) -> impl Iterator<Item = &HashTable<Entry>> {
        core::iter::once(&self.first).chain(&self.rest)
    }

    fn table_mut(&mut self, i: usize) -> &mut HashTable<Entry> {
        match i {
            0 => &mut self.first,
            _ => &mut self.rest[i - 1],
        }
    }

    /// The keyed hash of `t`, the same for the request table (one per packet serves both).
    pub(super) fn hash(&self, t: &FourTuple) -> u64 {
        self.hasher.hash_one(t)
    }

    /// The connection holding `t`.
    pub(super) fn get(&self, conns: &Slab<Slot>, t: &FourTuple) -> Option<Key> {
        if self.len == 0 {
            return None;
        }
        self.get_hashed(conns, t, self.hash(t))
    }

    /// As `get`, with `t`'s hash known.
    pub(super) fn get_hashed(&self, conns: &Slab<Slot>, t: &FourTuple, h: u64) -> Option<Key> {
        let h32 = h as u32;
        let mut found = None;
        // The kept bits first: a control byte's match that is not this tuple's is then
        // rejected without reading its slot.
        self.table(self.shard(h32)).find(table_hash(h32), |e| {
            e.hash == h32 && {
                found = holding(conns, e.slot, t);
                found.is_some()
            }
        })?;
        found
    }

    /// The hash bits to file `t` under: of `known`'s hash if it is `t`'s, else computed.
    pub(super) fn hash_known(&self, t: &FourTuple, known: &Option<(FourTuple, u64)>) -> u32 {
        crate::hash::cached_hash(known, t).unwrap_or_else(|| self.hash(t)) as u32
    }

    /// File `key` under `hash` (`hash_known`'s); it must not be filed already. Out of line:
    /// inlined, a handshake took 36 more instructions (callgrind; `make_child` 67 more).
    #[inline(never)]
    pub(super) fn insert(&mut self, key: Key, hash: u32) {
        let i = self.shard(hash);
        self.table_mut(i).insert_unique(
            table_hash(hash),
            Entry {
                slot: key.index,
                hash,
            },
            |e| table_hash(e.hash),
        );
        self.len += 1;
        if self.len > self.split_at {
            self.split();
        }
    }

    /// Add a table: the next one of this round gives it the entries whose next table bit
    /// is set. Out of line: once per `SPLIT_AT` inserts at most.
    #[cold]
    #[inline(never)]
    fn split(&mut self) {
        let (n, low) = (self.count(), self.low);
        let from = self.table_mut(n - low);
        let mut table = HashTable::with_capacity(from.len() / 2 + from.len() / 8);
        for e in from.extract_if(|e| (e.hash >> SHARD_SHIFT) as usize & low != 0) {
            table.insert_unique(table_hash(e.hash), e, |e| table_hash(e.hash));
        }
        self.rest.push(table);
        let n = self.count();
        if n == 2 * low {
            (self.low, self.mask) = (n, n - 1);
        } else {
            self.mask = 2 * low - 1;
        }
        self.split_at = if n < self.max_tables {
            n * self.split_every
        } else {
            usize::MAX
        };
    }

    /// Take `key`, filed under `hash`, out of the index.
    pub(super) fn remove(&mut self, hash: u32, key: Key) {
        let i = self.shard(hash);
        let found = self
            .table_mut(i)
            .find_entry(table_hash(hash), |e| e.slot == key.index);
        if let Ok(e) = found {
            e.remove();
            self.len -= 1;
        }
    }

    /// For the audit: every entry names a hashed connection whose kept hash picks its
    /// table, every hashed connection is filed, and the count is right.
    pub(super) fn check(&self, conns: &Slab<Slot>) -> Result<(), String> {
        let n = self.count();
        let round = self.low.is_power_of_two() && self.low <= n && n < 2 * self.low;
        let mask = if n == self.low {
            n - 1
        } else {
            2 * self.low - 1
        };
        if !round || self.mask != mask || n > self.max_tables {
            return Err(format!(
                "{n} tables, round {}, mask {}",
                self.low, self.mask
            ));
        }
        let mut entries = 0;
        for (i, table) in self.tables().enumerate() {
            for e in table {
                entries += 1;
                let Some((key, s)) = conns.at(e.slot) else {
                    return Err(format!("slot {} is filed but empty", e.slot));
                };
                if !s.hashed || s.tuple_hash != e.hash || self.shard(e.hash) != i {
                    return Err(format!("{key:?} is filed where its hash does not lead"));
                }
            }
        }
        for (key, s) in conns.iter().filter(|(_, s)| s.hashed) {
            let h32 = s.tuple_hash;
            if self
                .table(self.shard(h32))
                .find(table_hash(h32), |e| e.slot == key.index)
                .is_none()
            {
                return Err(format!("{key:?} is hashed but not filed"));
            }
        }
        if entries != self.len {
            return Err(format!("{entries} entries, counted {}", self.len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::stack::{ConnHandle, ListenerHandle, Stack};
    use crate::tests::util::{drain, XorShift32, A4, B4};
    use crate::Instant;
    use core::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::collections::BTreeSet;

    fn carry(now: Instant, from: &mut Stack, to: &mut Stack) {
        for p in drain(from, now) {
            to.handle_packet(now, &p);
        }
    }

    /// The handshake `client` has just started, carried through to `server`'s accept.
    fn accepted(
        now: Instant,
        client: &mut Stack,
        server: &mut Stack,
        l: ListenerHandle,
    ) -> ConnHandle {
        carry(now, client, server);
        carry(now, server, client);
        carry(now, client, server);
        server.accept(now, l).unwrap().0
    }

    /// Each table's entries and buckets.
    fn tables(s: &Stack) -> Vec<(usize, usize)> {
        let t = s.by_tuple.tables();
        t.map(|t| (t.len(), t.capacity())).collect()
    }

    /// Entries an insert rehashed: those of each table that grew, and for a split, the
    /// table split and the new one.
    fn rehashed(before: &[(usize, usize)], after: &[(usize, usize)], low: usize) -> usize {
        let grown: usize = (before.iter().zip(after))
            .filter(|(b, a)| b.1 != a.1)
            .map(|(_, a)| a.0)
            .sum();
        let split: usize = after[before.len()..].iter().map(|a| a.0).sum();
        let from = (after.len() > before.len()).then(|| before[before.len() - low].0);
        grown + split + from.unwrap_or(0)
    }

    /// Connections opened one at a time and reset at random from the server's side (the
    /// client keeps its handles, so its reset connections stay in the slab unhashed):
    /// tables are split off as the index fills, no insert rehashes more than a few times
    /// `SPLIT_AT` entries whatever the index holds, no table holds three times it, and
    /// both stacks pass the audit throughout.
    #[test]
    fn an_insert_rehashes_a_few_thousand_entries_at_most() {
        let config = Config {
            somaxconn: 1 << 20,
            tcp_max_syn_backlog: 1 << 20,
            ..Config::default()
        };
        let (mut client, mut server) = (Stack::new(config.clone(), 1), Stack::new(config, 2));
        client.add_address(A4);
        server.add_address(B4);
        let now = Instant::from_secs(1);
        let l = server
            .listen(now, SocketAddr::new(B4, 80), 1 << 20)
            .unwrap();
        let mut rng = XorShift32(9);
        let mut open: Vec<ConnHandle> = Vec::new();
        let (mut most, mut opened) = (0, 0u32);
        for step in 0..60_000u32 {
            if rng.below(10) < 8 || open.is_empty() {
                let ip = IpAddr::V4(Ipv4Addr::new(10, 9, 0, (opened / 50_000) as u8));
                if opened % 50_000 == 0 {
                    client.add_address(ip);
                }
                let local = SocketAddr::new(ip, 1024 + (opened % 50_000) as u16);
                opened += 1;
                let (before, low) = (tables(&client), client.by_tuple.low);
                client
                    .connect_from(now, local, SocketAddr::new(B4, 80))
                    .unwrap();
                most = most.max(rehashed(&before, &tables(&client), low));
                open.push(accepted(now, &mut client, &mut server, l));
            } else {
                let h = open.swap_remove(rng.below(open.len() as u32) as usize);
                server.abort(now, h).unwrap();
                carry(now, &mut server, &mut client);
            }
            if step % 4_999 == 0 {
                client.audit().unwrap();
                server.audit().unwrap();
            }
        }
        client.audit().unwrap();
        server.audit().unwrap();
        for s in [&client, &server] {
            let index = &s.by_tuple;
            assert!(index.len() > 30_000, "{}", index.len());
            assert!(index.count() * SPLIT_AT >= index.len(), "too few tables");
            let lens: Vec<usize> = tables(s).iter().map(|t| t.0).collect();
            assert!(lens.iter().all(|&n| n < 3 * SPLIT_AT), "{lens:?}");
        }
        assert!(most > SPLIT_AT && most <= 6 * SPLIT_AT, "{most}");
    }

    /// Many tables, and their cap, with a few connections: both stacks' indexes split a
    /// table off every 4 connections, up to 16 tables. Connections open, close gracefully
    /// (the side that closes first holds its end in TIME_WAIT, filed, until it expires)
    /// or reset from either side while time passes, up to 70 open at once, then down to
    /// 10, and up again; both stacks pass the audit after every step, and at the end a
    /// byte sent each way on every open connection arrives, each segment having found its
    /// connection through the index.
    #[test]
    fn tables_split_up_to_their_cap_as_connections_come_and_go() {
        let (mut client, mut server) = (
            Stack::new(Config::default(), 11),
            Stack::new(Config::default(), 12),
        );
        for s in [&mut client, &mut server] {
            s.by_tuple = ConnIndex::with_limits(s.by_tuple.hasher, 4, 16);
        }
        client.add_address(A4);
        server.add_address(B4);
        let mut now = Instant::from_secs(1);
        let l = server.listen(now, SocketAddr::new(B4, 80), 128).unwrap();
        let mut rng = XorShift32(77);
        let mut open: Vec<(ConnHandle, ConnHandle)> = Vec::new();
        let (mut tables_seen, mut most, mut port) = (BTreeSet::new(), 0, 1024u16);
        for step in 0..4_000 {
            let limit = if step / 500 % 2 == 0 { 70 } else { 10 };
            let op = if open.len() > limit {
                10 + rng.below(7)
            } else {
                rng.below(20)
            };
            match op {
                0..=9 if open.len() < limit => {
                    port += 1; // a new port each time: 4 000 steps never wrap it
                    let c = client
                        .connect_from(now, SocketAddr::new(A4, port), SocketAddr::new(B4, 80))
                        .unwrap();
                    open.push((c, accepted(now, &mut client, &mut server, l)));
                }
                10..=13 if !open.is_empty() => {
                    let (c, s) = open.swap_remove(rng.below(open.len() as u32) as usize);
                    // Either side closes first; the other follows once the FIN is in.
                    let (first, second) = if rng.below(2) == 0 {
                        ((&mut client, c), (&mut server, s))
                    } else {
                        ((&mut server, s), (&mut client, c))
                    };
                    first.0.close(now, first.1).unwrap();
                    carry(now, first.0, second.0);
                    second.0.close(now, second.1).unwrap();
                    carry(now, second.0, first.0);
                    carry(now, first.0, second.0);
                }
                14..=16 if !open.is_empty() => {
                    let (c, s) = open.swap_remove(rng.below(open.len() as u32) as usize);
                    if rng.below(2) == 0 {
                        client.abort(now, c).unwrap();
                        server.close(now, s).unwrap();
                        carry(now, &mut client, &mut server);
                    } else {
                        server.abort(now, s).unwrap();
                        client.close(now, c).unwrap();
                        carry(now, &mut server, &mut client);
                    }
                }
                _ => {
                    // Time passes: TIME_WAIT ends (60 s) for the oldest closes.
                    now += crate::Duration::from_secs(u64::from(rng.below(20)));
                    client.handle_timeout(now);
                    server.handle_timeout(now);
                    carry(now, &mut client, &mut server);
                    carry(now, &mut server, &mut client);
                }
            }
            for s in [&client, &server] {
                s.audit().unwrap();
                let n = s.by_tuple.count();
                assert!(n <= 16, "{n} tables");
                tables_seen.insert(n);
                most = most.max(s.by_tuple.len());
            }
        }
        // Every count of tables from 1 to the cap, and the cap held past 16 × 4 filed.
        assert!(tables_seen.into_iter().eq(1..=16));
        assert!(most > 64, "{most} connections at most");
        assert!(open.len() >= 5, "{} connections open", open.len());
        for &(c, s) in &open {
            client.send(now, c, b"c").unwrap();
            server.send(now, s, b"s").unwrap();
        }
        for _ in 0..4 {
            carry(now, &mut client, &mut server);
            carry(now, &mut server, &mut client);
        }
        let mut buf = [0u8; 4];
        for &(c, s) in &open {
            assert_eq!(server.recv(now, s, &mut buf), Ok(1));
            assert_eq!(&buf[..1], b"c");
            assert_eq!(client.recv(now, c, &mut buf), Ok(1));
            assert_eq!(&buf[..1], b"s");
        }
    }

    /// Two connections filed under one hash, as a collision of all 64 bits would file
    /// them: each lookup finds its own by its tuple, removing one leaves the other, and a
    /// connection no longer hashed is not found.
    #[test]
    fn one_hash_two_tuples() {
        let mut s = Stack::new(Config::default(), 5);
        s.add_address(A4);
        let now = Instant::from_secs(1);
        let a = s
            .connect_from(now, SocketAddr::new(A4, 2000), SocketAddr::new(B4, 80))
            .unwrap();
        let b = s
            .connect_from(now, SocketAddr::new(A4, 2001), SocketAddr::new(B4, 80))
            .unwrap();
        let (ta, tb) = (
            s.conns.get(a.0).unwrap().conn.tuple,
            s.conns.get(b.0).unwrap().conn.tuple,
        );
        let mut index = ConnIndex::new(SeededState::new(1, 2));
        let h: u64 = 0x0123_4567_89ab_cdef;
        index.insert(a.0, h as u32);
        index.insert(b.0, h as u32);
        assert_eq!(index.get_hashed(&s.conns, &ta, h), Some(a.0));
        assert_eq!(index.get_hashed(&s.conns, &tb, h), Some(b.0));
        // Only the low 32 bits are kept: the high ones do not matter, a kept bit does.
        assert_eq!(index.get_hashed(&s.conns, &ta, h ^ (1 << 40)), Some(a.0));
        assert_eq!(index.get_hashed(&s.conns, &ta, h ^ 1), None);
        assert_eq!(
            index.get_hashed(&s.conns, &ta, h ^ (1 << SHARD_SHIFT)),
            None
        );
        index.remove(h as u32, a.0);
        assert_eq!(index.len(), 1);
        assert_eq!(index.get_hashed(&s.conns, &ta, h), None);
        assert_eq!(index.get_hashed(&s.conns, &tb, h), Some(b.0));
        s.conns.get_mut(b.0).unwrap().hashed = false;
        assert_eq!(index.get_hashed(&s.conns, &tb, h), None);
    }
}
