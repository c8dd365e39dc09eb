//! A generational slab: handles stay small and a stale handle is detected, never aliased.

/// Index plus generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

#[derive(Debug)]
enum Slot<T> {
    Full { generation: u32, value: T },
    Free { generation: u32, next_free: u32 },
}

/// Slots reused through a free list; a bumped generation invalidates old keys.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
    len: usize,
}

const NONE: u32 = u32::MAX;

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free_head: NONE,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if self.free_head != NONE {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            let (generation, next) = match *slot {
                Slot::Free {
                    generation,
                    next_free,
                } => (generation, next_free),
                Slot::Full { .. } => unreachable!("free list points at a full slot"),
            };
            self.free_head = next;
            *slot = Slot::Full { generation, value };
            Key { index, generation }
        } else {
            let index = u32::try_from(self.slots.len()).expect("slab index overflow");
            self.slots.push(Slot::Full {
                generation: 0,
                value,
            });
            Key {
                index,
                generation: 0,
            }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize)? {
            Slot::Full { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize)? {
            Slot::Full { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        match slot {
            Slot::Full { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        let next = Slot::Free {
            generation: key.generation.wrapping_add(1),
            next_free: self.free_head,
        };
        let old = core::mem::replace(slot, next);
        self.free_head = key.index;
        self.len -= 1;
        match old {
            Slot::Full { value, .. } => Some(value),
            Slot::Free { .. } => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Full { generation, value } => Some((
                Key {
                    index: i as u32,
                    generation: *generation,
                },
                value,
            )),
            Slot::Free { .. } => None,
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
}
