//! A generational slab: handles stay small and a stale handle is detected, never aliased.
//! Slots live in fixed-size chunks, so the slab grows by a chunk at a time instead of
//! doubling: a connection costs its own size, not up to twice it (a `Vec` that just
//! doubled holds half its capacity empty).

/// Index plus generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// One place in the slab: a value with the generation of its key, or a link in the free
/// list.
#[derive(Debug)]
enum Entry<T> {
    Full { generation: u32, value: T },
    Free { generation: u32, next_free: u32 },
}

/// Slots reused through a free list; a bumped generation invalidates old keys.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    /// Chunks of `1 << shift` slots, each allocated at that capacity once; only the last
    /// is partly filled.
    chunks: Vec<Vec<Entry<T>>>,
    free_head: u32,
    len: usize,
}

const NONE: u32 = u32::MAX;
/// Bytes a chunk aims at: big enough that the chunk list stays short, small enough that
/// the last, partly filled chunk wastes little. A fuzz build takes 4 KiB (four
/// connections a chunk), so that its few connections span several chunks.
const CHUNK_BYTES: usize = if cfg!(fuzzing) { 4 * 1024 } else { 32 * 1024 };

impl<T> Slab<T> {
    /// Slots per chunk, as a shift: a power of two, so finding a slot is a shift and a
    /// mask (a constant per type: every packet looks up a few slots).
    const SHIFT: u32 = {
        let per = CHUNK_BYTES
            / if size_of::<Entry<T>>() == 0 {
                1
            } else {
                size_of::<Entry<T>>()
            };
        if per == 0 {
            0
        } else {
            per.ilog2()
        }
    };
    const MASK: usize = (1 << Self::SHIFT) - 1;

    pub(crate) fn new() -> Self {
        Self {
            chunks: Vec::new(),
            free_head: NONE,
            len: 0,
        }
    }

    #[inline]
    fn slot(&self, index: u32) -> Option<&Entry<T>> {
        let i = index as usize;
        self.chunks.get(i >> Self::SHIFT)?.get(i & Self::MASK)
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> Option<&mut Entry<T>> {
        let i = index as usize;
        self.chunks
            .get_mut(i >> Self::SHIFT)?
            .get_mut(i & Self::MASK)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.insert_with(|| value)
    }

    /// As `insert`, the value made by `make` where it will lie: a large value (a
    /// connection) is written into its slot once instead of built and copied in.
    #[inline]
    pub(crate) fn insert_with(&mut self, make: impl FnOnce() -> T) -> Key {
        let key = self.claim();
        let slot = self
            .slot_mut(key.index)
            .expect("a claimed slot is in the slab");
        *slot = Entry::Full {
            generation: key.generation,
            value: make(),
        };
        key
    }

    /// A slot for a new value, from the free list or at the end (left free to fill).
    fn claim(&mut self) -> Key {
        self.len += 1;
        if self.free_head != NONE {
            let index = self.free_head;
            let slot = self
                .slot_mut(index)
                .expect("the free list points into the slab");
            let (generation, next) = match *slot {
                Entry::Free {
                    generation,
                    next_free,
                } => (generation, next_free),
                Entry::Full { .. } => unreachable!("free list points at a full slot"),
            };
            self.free_head = next;
            return Key { index, generation };
        }
        if self
            .chunks
            .last()
            .is_none_or(|c| c.len() == 1 << Self::SHIFT)
        {
            self.chunks.push(Vec::with_capacity(1 << Self::SHIFT));
        }
        let full = (self.chunks.len() - 1) << Self::SHIFT;
        let chunk = self
            .chunks
            .last_mut()
            .expect("a chunk with room was just ensured");
        let index = u32::try_from(full + chunk.len()).expect("slab index overflow");
        chunk.push(Entry::Free {
            generation: 0,
            next_free: NONE,
        });
        Key {
            index,
            generation: 0,
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slot(key.index)? {
            Entry::Full { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slot_mut(key.index)? {
            Entry::Full { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// Free `key`'s slot if it holds that key: the slot, and the free entry to put in it.
    fn vacate(&mut self, key: Key) -> Option<(&mut Entry<T>, Entry<T>)> {
        let next = Entry::Free {
            generation: key.generation.wrapping_add(1),
            next_free: self.free_head,
        };
        match self.slot_mut(key.index)? {
            Entry::Full { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        self.free_head = key.index;
        self.len -= 1;
        Some((self.slot_mut(key.index)?, next))
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let (slot, next) = self.vacate(key)?;
        match core::mem::replace(slot, next) {
            Entry::Full { value, .. } => Some(value),
            Entry::Free { .. } => None,
        }
    }

    /// As `remove`, dropping the value where it lies (a large value is not copied out).
    pub(crate) fn discard(&mut self, key: Key) {
        if let Some((slot, next)) = self.vacate(key) {
            *slot = next;
        }
    }

    /// The value at slot `index`, with its key, if the slot is full.
    #[inline]
    pub(crate) fn at(&self, index: u32) -> Option<(Key, &T)> {
        match self.slot(index)? {
            Entry::Full { generation, value } => Some((
                Key {
                    index,
                    generation: *generation,
                },
                value,
            )),
            Entry::Free { .. } => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Entry::Full { generation, value } => Some((
                    Key {
                        index: i as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Free { .. } => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss() {
        let mut s = Slab::new();
        let a = s.insert(1);
        let b = s.insert(2);
        assert_eq!(s.remove(a), Some(1));
        assert_eq!(s.get(a), None);
        let c = s.insert(3);
        assert_eq!(c.index, a.index);
        assert_ne!(c, a);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(c), Some(&3));
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.len(), 2);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.iter().count(), 2);
    }

    #[test]
    fn chunks_fill_one_at_a_time() {
        // Big values: a chunk holds a few; keys stay valid across chunks.
        let mut s: Slab<[u8; 4000]> = Slab::new();
        let per = 1usize << Slab::<[u8; 4000]>::SHIFT;
        assert!(per >= 1 && per * 4000 <= 2 * CHUNK_BYTES);
        let keys: Vec<Key> = (0..3 * per + 1)
            .map(|i| s.insert([i as u8; 4000]))
            .collect();
        assert_eq!(s.chunks.len(), 4);
        assert!(s.chunks.iter().all(|c| c.capacity() == per));
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(s.get(k).map(|v| v[0]), Some(i as u8));
        }
        assert_eq!(s.remove(keys[per]).map(|v| v[0]), Some(per as u8));
        let again = s.insert([7; 4000]);
        assert_eq!(again.index, keys[per].index);
        assert_eq!(s.chunks.len(), 4, "a freed slot is reused first");
        let order: Vec<u32> = s.iter().map(|(k, _)| k.index).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]) && order.len() == 3 * per + 1);
    }
}
