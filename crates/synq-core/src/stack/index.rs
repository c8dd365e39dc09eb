//! Connections by 4-tuple: a hash index of slab keys. The tuple itself lives in the
//! connection, so an entry is 8 bytes and a control byte, not a copy of the 64-byte tuple
//! beside the key (a map of tuples cost an idle connection about 120 bytes).
//!
//! The index never grows in one call (`crate::moving`): a full table is kept beside one
//! twice its size, and each later insert moves a few batches of connections over, walking
//! the slab in order. A flag in each slot (`Slot::epoch`) says which table holds it.

use super::Slot;
use crate::hash::{FourTuple, SeededState};
use crate::moving::{Moving, MOVE_BATCH, MOVE_BATCHES, MOVE_SLOTS};
use crate::slab::{Key, Slab};
use core::hash::BuildHasher;
use hashbrown::HashTable;

/// The index. Every key in it names a live slot whose tuple hashes to where it is filed.
#[derive(Debug)]
pub(super) struct ConnIndex {
    table: HashTable<Key>,
    /// The table being replaced by `table`, while its connections move over.
    moving: Option<Moving<HashTable<Key>>>,
    /// The flag the connections filed in `table` carry in `Slot::epoch`.
    epoch: bool,
    hasher: SeededState,
}

impl ConnIndex {
    pub(super) fn new(hasher: SeededState) -> Self {
        Self {
            table: HashTable::new(),
            moving: None,
            epoch: false,
            hasher,
        }
    }

    /// Connections filed.
    pub(super) fn len(&self) -> usize {
        self.table.len() + self.moving.as_ref().map_or(0, |m| m.pending)
    }

    fn tuple_of(conns: &Slab<Slot>, k: Key) -> Option<&FourTuple> {
        conns.get(k).filter(|s| s.hashed).map(|s| &s.conn.tuple)
    }

    /// The keyed hash of `t`, the same for the request table (one per packet serves both).
    pub(super) fn hash(&self, t: &FourTuple) -> u64 {
        self.hasher.hash_one(t)
    }

    /// The connection holding `t`.
    pub(super) fn get(&self, conns: &Slab<Slot>, t: &FourTuple) -> Option<Key> {
        if self.len() == 0 {
            return None;
        }
        self.get_hashed(conns, t, self.hash(t))
    }

    /// As `get`, with `t`'s hash known.
    pub(super) fn get_hashed(&self, conns: &Slab<Slot>, t: &FourTuple, h: u64) -> Option<Key> {
        match self.table.find(h, |&k| Self::tuple_of(conns, k) == Some(t)) {
            Some(&k) => Some(k),
            None if self.moving.is_some() => self.get_old(conns, t, h),
            None => None,
        }
    }

    /// `get_hashed` in the table being emptied. Out of line: only while a move is under
    /// way, and only for what the new table lacks.
    #[inline(never)]
    fn get_old(&self, conns: &Slab<Slot>, t: &FourTuple, h: u64) -> Option<Key> {
        let m = self.moving.as_ref()?;
        m.old
            .find(h, |&k| Self::tuple_of(conns, k) == Some(t))
            .copied()
    }

    /// The hash to file `t` under: `known`'s if it is `t`'s, else computed.
    pub(super) fn hash_known(&self, t: &FourTuple, known: &Option<(FourTuple, u64)>) -> u64 {
        crate::hash::cached_hash(known, t).unwrap_or_else(|| self.hash(t))
    }

    /// The flag a new slot carries (`Slot::epoch`), so that a move under way passes it
    /// over before `insert` files it.
    pub(super) fn epoch(&self) -> bool {
        self.epoch
    }

    /// File `key`, already in `conns` with `h` (its tuple's hash) and `epoch()` in its
    /// slot.
    pub(super) fn insert(&mut self, conns: &mut Slab<Slot>, key: Key, h: u64) {
        if self.moving.is_some() || self.table.len() >= self.table.capacity() {
            self.make_room(conns, key);
        }
        // A table with room never calls the hasher; were it to, each slot's hash is read
        // back instead of hashing its tuple again.
        self.table
            .insert_unique(h, key, |&k| conns.get(k).map_or(0, |s| s.tuple_hash));
    }

    /// Before filing `key`: a move's next batches, and a new table if this one is full
    /// (`key`'s flag then set to its epoch). Out of line, so filing stays small.
    #[inline(never)]
    fn make_room(&mut self, conns: &mut Slab<Slot>, key: Key) {
        if self.moving.is_some() {
            self.move_some(conns, MOVE_BATCHES);
        }
        if self.table.len() >= self.table.capacity() {
            self.grow(conns);
            if let Some(s) = conns.get_mut(key) {
                s.epoch = self.epoch;
            }
            self.move_some(conns, MOVE_BATCHES);
        }
    }

    /// Take `key`, filed under hash `h`, out of the index.
    pub(super) fn remove(&mut self, h: u64, key: Key) {
        if let Ok(e) = self.table.find_entry(h, |&k| k == key) {
            e.remove();
        } else if self.moving.is_some() {
            self.remove_old(h, key);
        }
    }

    /// `remove` from the table being emptied: a connection that had not moved yet.
    #[inline(never)]
    fn remove_old(&mut self, h: u64, key: Key) {
        if let Some(m) = &mut self.moving {
            if let Ok(e) = m.old.find_entry(h, |&k| k == key) {
                e.remove();
                m.pending = m.pending.saturating_sub(1);
            }
        }
    }

    /// Start replacing the full table with one twice the live entries (never smaller);
    /// the caller moves the first batches. An earlier move still under way is finished
    /// first. Out of line: rare.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, conns: &mut Slab<Slot>) {
        if self.moving.is_some() {
            self.move_some(conns, usize::MAX);
        }
        let live = self.table.len();
        // hashbrown rounds to a power of two: twice a full table's entries is exactly
        // twice its buckets, one more would be four times.
        let room = (live * 2).max(self.table.capacity()).max(MOVE_BATCH);
        let old = core::mem::replace(&mut self.table, HashTable::with_capacity(room));
        if live > 0 {
            self.epoch = !self.epoch;
            self.moving = Some(Moving::new(old, live));
        }
    }

    /// Move up to `batches` batches of connections still filed in the old table into the
    /// new one; drop the old table once nothing is left in it.
    #[inline(never)]
    fn move_some(&mut self, conns: &mut Slab<Slot>, batches: usize) {
        let Some(mut m) = self.moving.take() else {
            return;
        };
        let slots = u32::try_from(conns.slots()).unwrap_or(u32::MAX);
        let mut left = batches;
        while m.pending > 0 && m.cursor < slots && left > 0 {
            left -= 1;
            let mut batch = [(
                0u64,
                Key {
                    index: 0,
                    generation: 0,
                },
            ); MOVE_BATCH];
            let mut n = 0;
            let end = slots.min(m.cursor.saturating_add(MOVE_SLOTS as u32));
            while m.cursor < end && n < MOVE_BATCH.min(m.pending) {
                if let Some((key, s)) = conns.at_mut(m.cursor) {
                    if s.hashed && s.epoch != self.epoch {
                        s.epoch = self.epoch;
                        batch[n] = (s.tuple_hash, key);
                        n += 1;
                    }
                }
                m.cursor += 1;
            }
            m.pending -= n;
            for &(h, key) in &batch[..n] {
                self.table
                    .insert_unique(h, key, |&k| conns.get(k).map_or(0, |s| s.tuple_hash));
            }
        }
        // Nothing pending: the old table goes. Pending entries past the last slot would be
        // a miscount; the old table is kept then, so they are still found.
        if m.pending > 0 {
            self.moving = Some(m);
        }
    }

    /// For the audit: every hashed connection is in the table its flag names (the old one
    /// only at or past the cursor), found there under its kept hash, and the count of
    /// those waiting to move is right; no unhashed one is found.
    pub(super) fn check(&self, conns: &Slab<Slot>) -> Result<(), String> {
        let mut waiting = 0;
        for (key, s) in conns.iter() {
            if !s.hashed {
                // An unhashed connection may keep a stale entry in the old table: a
                // lookup must still not find it.
                if self.get_hashed(conns, &s.conn.tuple, s.tuple_hash) == Some(key) {
                    return Err(format!("{key:?} is found though unhashed"));
                }
                continue;
            }
            let table = if s.epoch == self.epoch {
                Some(&self.table)
            } else {
                waiting += 1;
                self.moving
                    .as_ref()
                    .filter(|m| key.index >= m.cursor)
                    .map(|m| &m.old)
            };
            if table
                .and_then(|t| t.find(s.tuple_hash, |&k| k == key))
                .is_none()
            {
                return Err(format!("{key:?} is not in the table its epoch names"));
            }
        }
        let pending = self.moving.as_ref().map_or(0, |m| m.pending);
        if waiting != pending {
            return Err(format!(
                "{waiting} connections wait in the old 4-tuple table, counted {pending}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::stack::{ConnHandle, Stack};
    use crate::tests::util::{drain, XorShift32, A4, B4};
    use crate::Instant;
    use core::net::{IpAddr, Ipv4Addr, SocketAddr};

    /// Where a move stands: connections waiting in the old table, and its cursor.
    fn progress(s: &Stack) -> Option<(usize, u32)> {
        s.by_tuple.moving.as_ref().map(|m| (m.pending, m.cursor))
    }

    fn carry(now: Instant, from: &mut Stack, to: &mut Stack) {
        for p in drain(from, now) {
            to.handle_packet(now, &p);
        }
    }

    /// Connections opened one at a time and reset at random from the server's side (the
    /// client keeps its handles, so its reset connections stay in the slab unhashed, with
    /// stale entries in a table being emptied): no insert moves more than four batches,
    /// every index is checked at each step of a move, and both stacks pass the audit.
    #[test]
    fn the_connection_index_grows_a_few_batches_per_insert() {
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
        let (mut moves, mut steps_moving, mut opened) = (0, 0, 0u32);
        for step in 0..30_000u32 {
            if rng.below(10) < 7 || open.is_empty() {
                let ip = IpAddr::V4(Ipv4Addr::new(10, 9, 0, (opened / 50_000) as u8));
                if opened % 50_000 == 0 {
                    client.add_address(ip);
                }
                let local = SocketAddr::new(ip, 1024 + (opened % 50_000) as u16);
                opened += 1;
                let before = progress(&client);
                client
                    .connect_from(now, local, SocketAddr::new(B4, 80))
                    .unwrap();
                match (before, progress(&client)) {
                    (Some((p0, c0)), Some((p1, c1))) => {
                        assert!(p0 - p1 <= MOVE_BATCHES * MOVE_BATCH, "step {step}");
                        assert!(
                            (c1 - c0) as usize <= MOVE_BATCHES * MOVE_SLOTS,
                            "step {step}"
                        );
                    }
                    (None, Some(_)) => moves += 1,
                    _ => {}
                }
                carry(now, &mut client, &mut server);
                carry(now, &mut server, &mut client);
                carry(now, &mut client, &mut server);
                open.push(server.accept(now, l).unwrap().0);
            } else {
                let h = open.swap_remove(rng.below(open.len() as u32) as usize);
                server.abort(now, h).unwrap();
                carry(now, &mut server, &mut client);
            }
            for s in [&client, &server] {
                if s.by_tuple.moving.is_some() {
                    steps_moving += 1;
                    s.by_tuple.check(&s.conns).unwrap();
                }
            }
            if step % 2_999 == 0 {
                client.audit().unwrap();
                server.audit().unwrap();
            }
        }
        client.audit().unwrap();
        server.audit().unwrap();
        assert!(moves >= 6, "{moves} moves");
        assert!(steps_moving > 200, "{steps_moving}");
    }

    /// A table replaced again before its move ended (which the room left for the move
    /// makes rare): the first move finishes at once, then the next begins.
    #[test]
    fn a_second_growth_finishes_the_first_move() {
        let (mut client, mut server) = (
            Stack::new(Config::default(), 3),
            Stack::new(Config::default(), 4),
        );
        client.add_address(A4);
        server.add_address(B4);
        let now = Instant::from_secs(1);
        let l = server.listen(now, SocketAddr::new(B4, 80), 4096).unwrap();
        for i in 0..1_000u16 {
            client
                .connect_from(now, SocketAddr::new(A4, 2000 + i), SocketAddr::new(B4, 80))
                .unwrap();
        }
        let s = &mut client;
        s.by_tuple.grow(&mut s.conns);
        assert_eq!(progress(s), Some((1_000, 0)));
        s.by_tuple.move_some(&mut s.conns, 1);
        s.by_tuple.check(&s.conns).unwrap();
        s.by_tuple.grow(&mut s.conns);
        assert_eq!(progress(s), Some((1_000, 0)));
        s.by_tuple.check(&s.conns).unwrap();
        carry(now, &mut client, &mut server);
        carry(now, &mut server, &mut client);
        carry(now, &mut client, &mut server);
        for _ in 0..1_000 {
            server.accept(now, l).unwrap();
        }
        client.audit().unwrap();
        server.audit().unwrap();
    }
}
