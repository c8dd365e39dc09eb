//! The request table's hash index: open addressing over 4-byte words, each holding a
//! request's slot number plus one in its low bits and, above them, bits of the request's
//! hash. A lookup reads one word run, mostly within one cache line (hashbrown keeps control
//! bytes and values apart: two lines per new SYN of a flood), and a word whose hash bits
//! differ is passed over without reading its record.

/// A word nothing was ever stored in: a probe stops here.
const EMPTY: u32 = 0;

/// Fewest words a non-empty index has.
const MIN_BITS: u32 = 4;

/// Slot numbers (plus one) by hash: linear probing, at most 7/8 full counting removed words.
#[derive(Debug, Default)]
pub(super) struct SlotIndex {
    /// Empty, or 2^`bits` words.
    words: Box<[u32]>,
    bits: u32,
    live: usize,
    /// Words of removed entries a probe must step over (`tomb()`).
    tombs: usize,
}

impl SlotIndex {
    /// The slot field's mask: the low `bits` bits.
    fn low(&self) -> u32 {
        ((1u64 << self.bits) - 1) as u32
    }

    /// A removed entry: the slot field all ones, which no slot number plus one reaches.
    fn tomb(&self) -> u32 {
        self.low()
    }

    /// The hash bits kept in a word: the high half's, above the slot field.
    fn tag(&self, h: u64) -> u32 {
        (h >> 32) as u32 & !self.low()
    }

    fn mask(&self) -> usize {
        self.words.len().wrapping_sub(1)
    }

    /// The word a probe for `h` starts at.
    fn start(&self, h: u64) -> usize {
        h as usize & self.mask()
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Heap bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.words.len() * size_of::<u32>()
    }

    /// Whether `slot` can go in without a rebuild: the load stays at most 7/8 and the slot
    /// number fits beside the tag.
    pub(super) fn has_room(&self, slot: u32) -> bool {
        (self.live + self.tombs + 1) * 8 <= self.words.len() * 7
            && u64::from(slot) + 1 < u64::from(self.tomb())
    }

    /// The size a rebuild holding `live` entries and one more (`slot` the largest slot
    /// number) takes: double when more than half is live, else the same size with removed
    /// words dropped.
    pub(super) fn bits_for(&self, live: usize, slot: u32) -> u32 {
        let mut bits = self.bits.max(MIN_BITS);
        while bits < 32 && ((live + 1) * 2 > 1 << bits || u64::from(slot) + 2 >= 1u64 << bits) {
            bits += 1;
        }
        bits
    }

    /// An empty index of 2^`bits` words.
    pub(super) fn with_bits(bits: u32) -> Self {
        let bits = bits.clamp(MIN_BITS, 32);
        Self {
            words: vec![EMPTY; 1 << bits].into_boxed_slice(),
            bits,
            live: 0,
            tombs: 0,
        }
    }

    /// The slot whose word matches `h` and which `eq` confirms.
    pub(super) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let (low, tag, tomb, mask) = (self.low(), self.tag(h), self.tomb(), self.mask());
        let mut i = self.start(h);
        // At most every word once: a full index (never reached at 7/8) ends the loop too.
        for _ in 0..self.words.len() {
            let w = self.words[i];
            if w == EMPTY {
                return None;
            }
            if w & !low == tag && w != tomb && eq((w & low) - 1) {
                return Some((w & low) - 1);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Add `slot` under `h`; the caller made room (`has_room`) and knows it is absent.
    pub(super) fn insert(&mut self, h: u64, slot: u32) {
        let (tag, tomb, mask) = (self.tag(h), self.tomb(), self.mask());
        let mut i = self.start(h);
        for _ in 0..self.words.len() {
            let w = self.words[i];
            if w == EMPTY || w == tomb {
                if w == tomb {
                    self.tombs -= 1;
                }
                self.words[i] = tag | (slot + 1);
                self.live += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Load the words probes for `hashes` start at (their misses overlap).
    pub(super) fn warm(&self, hashes: impl Iterator<Item = u64>) {
        let x = hashes.fold(0, |x, h| {
            x ^ self.words.get(self.start(h)).copied().unwrap_or(0)
        });
        core::hint::black_box(x);
    }

    /// Add each (hash, slot): their first words loaded together first, so the cache misses
    /// of a large index overlap instead of coming one insert at a time.
    pub(super) fn insert_batch(&mut self, batch: &[(u64, u32)]) {
        self.warm(batch.iter().map(|&(h, _)| h));
        for &(h, slot) in batch {
            self.insert(h, slot);
        }
    }

    /// Remove `slot`, filed under `h`.
    pub(super) fn remove(&mut self, h: u64, slot: u32) {
        let (low, tag, tomb, mask) = (self.low(), self.tag(h), self.tomb(), self.mask());
        let mut i = self.start(h);
        for _ in 0..self.words.len() {
            let w = self.words[i];
            if w == EMPTY {
                return;
            }
            if w & !low == tag && w & low == slot + 1 {
                self.live -= 1;
                if self.words[(i + 1) & mask] != EMPTY {
                    // A probe may pass through this word to a later one.
                    self.words[i] = tomb;
                    self.tombs += 1;
                    return;
                }
                // No probe passes an empty word: this one and the removed words just
                // before it end every run through them.
                self.words[i] = EMPTY;
                let mut j = i.wrapping_sub(1) & mask;
                while self.words[j] == tomb && j != i {
                    self.words[j] = EMPTY;
                    self.tombs -= 1;
                    j = j.wrapping_sub(1) & mask;
                }
                return;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::util::XorShift32;
    use std::collections::BTreeMap;

    /// A weak hash on purpose: long runs and shared tags exercise probing and removal.
    fn h(k: u32) -> u64 {
        u64::from(k % 97) | u64::from(k % 5) << 32
    }

    #[test]
    fn matches_a_map_through_inserts_removals_and_rebuilds() {
        let mut idx = SlotIndex::default();
        let mut model: BTreeMap<u32, u32> = BTreeMap::new(); // slot -> key
        let mut next = 0u32;
        let mut free = Vec::new();
        let mut rng = XorShift32(1);
        for step in 0..20_000u32 {
            let x = rng.next_u32();
            let grow = model.len() < 300 && (x % 3 != 0 || model.is_empty());
            if grow {
                let slot = free.pop().unwrap_or_else(|| {
                    next += 1;
                    next - 1
                });
                let key = step;
                if !idx.has_room(slot) {
                    let mut fresh = SlotIndex::with_bits(idx.bits_for(idx.len(), slot));
                    for (&s, &k) in &model {
                        fresh.insert(h(k), s);
                    }
                    idx = fresh;
                }
                assert!(idx.has_room(slot));
                idx.insert(h(key), slot);
                model.insert(slot, key);
            } else {
                let (&slot, &key) = model.iter().nth(x as usize % model.len()).unwrap();
                idx.remove(h(key), slot);
                model.remove(&slot);
                free.push(slot);
            }
            assert_eq!(idx.len(), model.len());
            if step % 97 == 0 {
                for (&s, &k) in &model {
                    assert_eq!(idx.find(h(k), |c| model.get(&c) == Some(&k)), Some(s));
                }
                assert_eq!(
                    idx.find(h(step + 1), |c| model.get(&c) == Some(&(step + 1))),
                    None
                );
            }
            let tombs = idx.words.iter().filter(|&&w| w == idx.tomb()).count();
            assert_eq!(tombs, idx.tombs, "step {step}");
            assert!((idx.live + idx.tombs) * 8 <= idx.words.len() * 7);
        }
    }

    #[test]
    fn removing_before_an_empty_word_clears_the_tombs_behind_it() {
        let mut idx = SlotIndex::with_bits(4);
        // Three entries in one run at words 3, 4, 5.
        for s in 0..3 {
            idx.insert(3, s);
        }
        idx.remove(3, 0);
        idx.remove(3, 1);
        assert_eq!(idx.tombs, 2);
        idx.remove(3, 2);
        assert_eq!((idx.tombs, idx.len()), (0, 0));
        assert!(idx.words.iter().all(|&w| w == EMPTY));
    }

    #[test]
    fn an_empty_index_finds_nothing_and_asks_for_room() {
        let idx = SlotIndex::default();
        assert_eq!(idx.find(7, |_| true), None);
        assert!(!idx.has_room(0));
        assert_eq!(idx.bits_for(0, 0), MIN_BITS);
        assert_eq!(idx.bytes(), 0);
    }
}
