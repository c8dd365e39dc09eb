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

    /// File `key`, already in `conns`, under its tuple; `known` may hold a tuple's hash.
    pub(super) fn insert(&mut self, conns: &Slab<Slot>, key: Key, known: Option<(FourTuple, u64)>) {
        let Some(t) = Self::tuple_of(conns, key) else {
            return;
        };
        let h = match known {
            Some((kt, h)) if kt == *t => h,
            _ => self.hash(t),
        };
        let hasher = &self.hasher;
        self.table
            .insert_unique(h, key, |&k| match Self::tuple_of(conns, k) {
                Some(t) => hasher.hash_one(t),
                None => 0,
            });
    }

    /// Take `key`, filed under `t`, out of the index.
    pub(super) fn remove(&mut self, t: &FourTuple, key: Key) {
        if let Ok(e) = self.table.find_entry(self.hash(t), |&k| k == key) {
            e.remove();
        }
    }
}
