//! Connections by 4-tuple: a hash index of slab keys. The tuple itself lives in the
//! connection, so an entry is 8 bytes and a control byte, not a copy of the 64-byte tuple
//! beside the key (a map of tuples cost an idle connection about 120 bytes).

use super::Slot;
use crate::hash::{FourTuple, SeededState};
use crate::slab::{Key, Slab};
use core::hash::BuildHasher;
use hashbrown::HashTable;

/// The index. Every key in it names a live slot whose tuple hashes to where it is filed.
#[derive(Debug)]
pub(super) struct ConnIndex {
    table: HashTable<Key>,
    hasher: SeededState,
}

impl ConnIndex {
    pub(super) fn new(hasher: SeededState) -> Self {
        Self {
            table: HashTable::new(),
            hasher,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    fn tuple_of(conns: &Slab<Slot>, k: Key) -> Option<&FourTuple> {
        conns.get(k).map(|s| &s.conn.tuple)
    }

    /// The keyed hash of `t`, the same for the request table (one per packet serves both).
    pub(super) fn hash(&self, t: &FourTuple) -> u64 {
        self.hasher.hash_one(t)
    }

    /// The connection holding `t`.
    pub(super) fn get(&self, conns: &Slab<Slot>, t: &FourTuple) -> Option<Key> {
        if self.table.is_empty() {
            return None;
        }
        self.get_hashed(conns, t, self.hash(t))
    }

    /// As `get`, with `t`'s hash known.
    pub(super) fn get_hashed(&self, conns: &Slab<Slot>, t: &FourTuple, h: u64) -> Option<Key> {
        self.table
            .find(h, |&k| Self::tuple_of(conns, k) == Some(t))
            .copied()
    }

    /// The hash to file `t` under: `known`'s if it is `t`'s, else computed.
    pub(super) fn hash_known(&self, t: &FourTuple, known: &Option<(FourTuple, u64)>) -> u64 {
        crate::hash::cached_hash(known, t).unwrap_or_else(|| self.hash(t))
    }

    /// File `key`, already in `conns` with `h` (its tuple's hash) in its slot. Growing
    /// the table reads each slot's hash back instead of hashing its tuple again.
    pub(super) fn insert(&mut self, conns: &Slab<Slot>, key: Key, h: u64) {
        self.table
            .insert_unique(h, key, |&k| conns.get(k).map_or(0, |s| s.tuple_hash));
    }

    /// Take `key`, filed under hash `h`, out of the index.
    pub(super) fn remove(&mut self, h: u64, key: Key) {
        if let Ok(e) = self.table.find_entry(h, |&k| k == key) {
            e.remove();
        }
    }
}
