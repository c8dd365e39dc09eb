//! Request timers with no entry per arm: each slot's deadline is 4 bytes in a flat array
//! beside the records, and a tree of minimums over it (16 children to a node, about a
//! quarter byte per slot) finds the earliest. Re-arming or dropping a timer rewrites the
//! slot in place, so nothing stale is left behind to sweep.
//!
//! Deadlines are microseconds after an epoch, which moves forward (`rebase`) before an
//! offset would outgrow 32 bits. Ties fire in slot order.

use super::CHUNK;
use crate::{Duration, Instant};

/// Children per node.
const FAN: usize = 16;

/// A slot with no timer.
const NONE: u32 = u32::MAX;

/// The furthest a deadline may lie after the epoch (71 minutes).
const SPAN: u64 = NONE as u64 - 1;

/// A node's children.
type Group = [u32; FAN];

/// The smallest of a node's children (a fixed 16, so the compiler unrolls it).
fn group_min(kids: &Group) -> u32 {
    kids.iter().copied().fold(NONE, u32::min)
}

/// Group `q` of a level.
fn group(level: &[u32], q: usize) -> Option<&Group> {
    level.get(q * FAN..(q + 1) * FAN)?.try_into().ok()
}

/// A node whose child went from `old` to `new`: its new value, if it changes.
#[inline(always)]
fn step(cur: u32, old: u32, new: u32, kids: &Group) -> Option<u32> {
    if new < cur {
        return Some(new);
    }
    // A child that held the minimum went up: unchanged while another holds it too (a
    // batch of requests armed at one instant), which a compare of all 16 at once tells.
    if old != cur || kids.iter().fold(false, |any, &k| any | (k == cur)) {
        return None;
    }
    let next = group_min(kids);
    (next != cur).then_some(next)
}

/// The first of `kids` holding `v` (in an exact tree, one does).
fn find(kids: &[u32], v: u32) -> Option<usize> {
    kids.iter().position(|&k| k == v)
}

#[derive(Debug)]
pub(super) struct Deadlines {
    epoch: Instant,
    /// Per slot, in chunks as the records are: µs after `epoch`, or `NONE`.
    leaves: Vec<Box<[u32; CHUNK]>>,
    /// `levels[0]` holds the minimum of each 16 leaves, `levels[k]` of each 16 entries of
    /// `levels[k - 1]`; each padded with `NONE` to a multiple of 16, the last 16 long.
    levels: Vec<Vec<u32>>,
    /// The minimum of the last level.
    root: u32,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            epoch: Instant::ZERO,
            leaves: Vec::new(),
            levels: Vec::new(),
            root: NONE,
        }
    }
}

impl Deadlines {
    fn slots(&self) -> usize {
        self.leaves.len() * CHUNK
    }

    /// Timers armed: a walk over every slot, for audits and tests.
    pub(super) fn armed(&self) -> usize {
        self.leaves
            .iter()
            .flat_map(|c| c.iter())
            .filter(|&&v| v != NONE)
            .count()
    }

    /// Whether slot `i` has a timer.
    pub(super) fn is_armed(&self, i: u32) -> bool {
        self.leaf(i) != NONE
    }

    fn leaf(&self, i: u32) -> u32 {
        let i = i as usize;
        self.leaves.get(i / CHUNK).map_or(NONE, |c| c[i % CHUNK])
    }

    /// Make room for slot `i` (one chunk of leaves at a time, as the records grow).
    fn reserve(&mut self, i: u32) {
        if (i as usize) < self.slots() {
            return;
        }
        self.grow(i);
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: u32) {
        while i as usize >= self.slots() {
            self.leaves.push(Box::new([NONE; CHUNK]));
        }
        // New leaves hold NONE, so existing nodes keep their values; levels lengthen, and
        // a level is added on top while the last one outgrows 16.
        let mut below = self.slots();
        for k in 0.. {
            let need = below.div_ceil(FAN).next_multiple_of(FAN);
            if k == self.levels.len() {
                let level = (0..need).map(|p| self.node_min(k, p)).collect();
                self.levels.push(level);
            } else if self.levels[k].len() < need {
                self.levels[k].resize(need, NONE);
            }
            if need == FAN {
                break;
            }
            below = need;
        }
        self.root = self.top_min();
    }

    fn top_min(&self) -> u32 {
        self.levels
            .last()
            .and_then(|l| group(l, 0))
            .map_or(NONE, group_min)
    }

    /// The minimum of node `p` of level `k`'s children (leaves for level 0), recomputed.
    fn node_min(&self, k: usize, p: usize) -> u32 {
        let kids = match k.checked_sub(1) {
            None => self.leaf_group(p),
            Some(below) => group(&self.levels[below], p),
        };
        kids.map_or(NONE, group_min)
    }

    /// Leaf group `q`: slots 16q to 16q + 15.
    fn leaf_group(&self, q: usize) -> Option<&Group> {
        group(&self.leaves.get(q * FAN / CHUNK)?[..], q % (CHUNK / FAN))
    }

    /// Set slot `i`'s leaf and carry the change up as far as it reaches.
    fn set(&mut self, i: u32, v: u32) {
        let i = i as usize;
        let Some(chunk) = self.leaves.get_mut(i / CHUNK) else {
            return;
        };
        let old = std::mem::replace(&mut chunk[i % CHUNK], v);
        let p = i / FAN;
        let (Some(kids), Some(cur)) = (
            group(&chunk[..], i % CHUNK / FAN),
            self.levels.first().and_then(|l| l.get(p)).copied(),
        ) else {
            return;
        };
        if let Some(new) = step(cur, old, v, kids) {
            self.lift(p, cur, new);
        }
    }

    /// Node `p` of the first level goes from `old` to `new`: set it and carry the change
    /// up. Out of line: most arms and drops stop below it.
    #[inline(never)]
    fn lift(&mut self, mut p: usize, mut old: u32, mut new: u32) {
        if let Some(n) = self.levels.first_mut().and_then(|l| l.get_mut(p)) {
            *n = new;
        }
        for k in 1..self.levels.len() {
            let (lower, upper) = self.levels.split_at_mut(k);
            let q = p / FAN;
            let (Some(kids), Some(cur)) = (group(&lower[k - 1], q), upper[0].get_mut(q)) else {
                return;
            };
            let Some(next) = step(*cur, old, new, kids) else {
                return;
            };
            old = std::mem::replace(cur, next);
            new = next;
            p = q;
        }
        if let Some(top) = self.levels.last().and_then(|l| group(l, 0)) {
            if let Some(r) = step(self.root, old, new, top) {
                self.root = r;
            }
        }
    }

    /// Arm slot `i` to fire at `at`, `now` the stack's clock (never decreasing
    /// from call to call, and `at` at most `SPAN` after it).
    pub(super) fn arm(&mut self, i: u32, now: Instant, at: Instant) {
        self.reserve(i);
        if self.root == NONE {
            // Nothing armed: the epoch moves up for free.
            self.epoch = now;
        }
        let mut off = at.total_micros().saturating_sub(self.epoch.total_micros());
        if off > SPAN {
            self.rebase(now);
            off = at.total_micros().saturating_sub(self.epoch.total_micros());
        }
        self.set(i, off.min(SPAN) as u32);
    }

    /// Drop slot `i`'s timer, if any.
    pub(super) fn disarm(&mut self, i: u32) {
        self.set(i, NONE);
    }

    /// Move the epoch up to the earliest deadline or `now`, whichever is earlier (a timer
    /// armed later is due at `now` or after), but no further back than half a span before
    /// `now`: deadlines overdue by more than that become the epoch and fire first,
    /// together, in slot order. Every deadline then lies within half a span plus one
    /// interval of the epoch. Rare: at most once per half span of the clock.
    #[cold]
    #[inline(never)]
    fn rebase(&mut self, now: Instant) {
        let earliest = self.epoch.total_micros() + u64::from(self.root);
        let now = now.total_micros();
        let epoch = earliest
            .min(now)
            .max(now.saturating_sub(SPAN / 2))
            // Never back (a clock that went back breaks the contract, not the table).
            .max(self.epoch.total_micros());
        let shift = epoch - self.epoch.total_micros();
        for chunk in &mut self.leaves {
            for v in chunk.iter_mut().filter(|v| **v != NONE) {
                *v = u64::from(*v).saturating_sub(shift) as u32;
            }
        }
        self.epoch = Instant::from_micros(epoch);
        self.levels.clear();
        if let Some(last) = self.slots().checked_sub(1) {
            self.grow(last as u32);
        }
    }

    /// The earliest deadline.
    pub(super) fn first_at(&self) -> Option<Instant> {
        (self.root != NONE).then(|| self.epoch + Duration::from_micros(u64::from(self.root)))
    }

    /// The slot with the earliest deadline (the lowest slot of those tied), and when.
    pub(super) fn first(&self) -> Option<(u32, Instant)> {
        let at = self.first_at()?;
        let v = self.root;
        let top = self.levels.last()?;
        let mut p = find(top, v)?;
        for level in self.levels.iter().rev().skip(1) {
            p = p * FAN + find(group(level, p)?, v)?;
        }
        let leaf = p * FAN + find(self.leaf_group(p)?, v)?;
        Some((leaf as u32, at))
    }

    /// Heap bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.leaves.capacity() * size_of::<Box<[u32; CHUNK]>>()
            + self.leaves.len() * size_of::<[u32; CHUNK]>()
            + self.levels.capacity() * size_of::<Vec<u32>>()
            + self
                .levels
                .iter()
                .map(|l| l.capacity() * size_of::<u32>())
                .sum::<usize>()
    }

    /// For the audit: every node is the minimum of its children.
    pub(super) fn check(&self) -> Result<(), String> {
        for (k, level) in self.levels.iter().enumerate() {
            for (p, &v) in level.iter().enumerate() {
                let min = self.node_min(k, p);
                if v != min {
                    return Err(format!(
                        "request timer node {p} of level {k} holds {v}, its children's minimum is {min}"
                    ));
                }
            }
        }
        let min = self.top_min();
        if self.root != min {
            return Err(format!(
                "request timer root holds {}, the top level's minimum is {min}",
                self.root
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::util::XorShift64;
    use std::collections::BTreeSet;

    /// Random arms, re-arms, drops and firings over slots spanning several chunks, and
    /// clock jumps of hours (each a rebase), against a sorted set of (deadline, slot): the
    /// same earliest and the same firing order, the tree exact at every step.
    #[test]
    fn matches_a_sorted_set() {
        let mut d = Deadlines::default();
        let mut model: BTreeSet<(Instant, u32)> = BTreeSet::new();
        let mut at_of = std::collections::BTreeMap::new();
        let mut now = Instant::from_secs(1);
        let mut rng = XorShift64(0x9e37_79b9);
        let mut rand = move |n: u64| rng.below(n);
        let (mut fired, mut rebases) = (0, 0);
        for step in 0..60_000u32 {
            let slot = rand(3 * CHUNK as u64) as u32;
            match rand(10) {
                0..=4 => {
                    // Short and long intervals mixed, as SYN-ACK backoff has them.
                    let span = if rand(2) == 0 { 2_000_000 } else { 130_000_000 };
                    let at = now + Duration::from_micros(rand(span));
                    let epoch = d.epoch;
                    d.arm(slot, now, at);
                    rebases += u32::from(d.epoch != epoch && model.len() > 1);
                    if let Some(old) = at_of.insert(slot, at) {
                        model.remove(&(old, slot));
                    }
                    model.insert((at, slot));
                }
                5 | 6 => {
                    d.disarm(slot);
                    if let Some(old) = at_of.remove(&slot) {
                        model.remove(&(old, slot));
                    }
                }
                // About a second a step: some 30 timers held, the table rarely empty,
                // so the epoch must move up (once per half span). Now and then hours
                // on: the table drains and the epoch restarts. Each step's due ones
                // fire before the next arm, as a stack's would.
                7 | 8 => now += Duration::from_micros(rand(4_000_000)),
                _ => {
                    now += Duration::from_micros(if rand(3_000) == 0 {
                        3 * 3600 * 1_000_000
                    } else {
                        rand(12_000_000)
                    })
                }
            }
            while let Some((slot, at)) = d.first().filter(|&(_, at)| at <= now) {
                assert_eq!(model.pop_first(), Some((at, slot)), "step {step}");
                at_of.remove(&slot);
                d.disarm(slot);
                fired += 1;
            }
            assert_eq!(
                d.first(),
                model.first().map(|&(at, s)| (s, at)),
                "step {step}"
            );
            assert_eq!(d.armed(), model.len(), "step {step}");
            if step % 97 == 0 {
                d.check().unwrap();
            }
        }
        d.check().unwrap();
        assert!(fired > 10_000, "{fired} fired");
        assert!(rebases >= 5, "{rebases} rebases with timers held");
    }

    /// The epoch moves while every deadline is still ahead of the clock; a timer armed
    /// just after, due before all of them, keeps its own deadline.
    #[test]
    fn a_timer_armed_after_the_epoch_moves_keeps_its_deadline() {
        let mut d = Deadlines::default();
        let mut now = Instant::from_secs(1);
        let start = now;
        d.arm(0, now, now + Duration::from_secs(60));
        // Slot 0 re-armed every 50 s, never due, until offsets outgrow the span.
        while d.epoch == start {
            now += Duration::from_secs(50);
            d.arm(0, now, now + Duration::from_secs(60));
        }
        let soon = now + Duration::from_secs(1);
        d.arm(1, now, soon);
        assert_eq!(d.first(), Some((1, soon)));
        d.disarm(1);
        assert_eq!(d.first(), Some((0, now + Duration::from_secs(60))));
        d.check().unwrap();
    }

    /// A deadline overdue by more than the span when a far one is armed becomes the
    /// epoch: it still fires first.
    #[test]
    fn long_overdue_deadlines_still_fire_first() {
        let mut d = Deadlines::default();
        let now = Instant::from_secs(1);
        d.reserve(1);
        d.arm(1, now, now + Duration::from_secs(1));
        let late = now + Duration::from_secs(3 * 3600);
        d.arm(0, late, late + Duration::from_secs(2));
        let (slot, at) = d.first().unwrap();
        assert_eq!(slot, 1);
        assert!(at < late, "{at:?}");
        d.disarm(1);
        assert_eq!(d.first(), Some((0, late + Duration::from_secs(2))));
        d.check().unwrap();
    }
}
