//! TCP sequence numbers with wrapping (RFC 1982 style) arithmetic.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// TCP sequence number with RFC 1982-style wrapping comparison.
///
/// `a < b` iff `(a.0.wrapping_sub(b.0) as i32) < 0`, so comparisons are only
/// meaningful between numbers less than 2^31 apart (always true inside a TCP
/// window). The order is not transitive over the whole space, hence no `Ord`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The later of the two numbers (by wrapping comparison).
    #[must_use]
    pub fn max(self, o: Self) -> Self {
        if self < o {
            o
        } else {
            self
        }
    }

    /// The earlier of the two numbers (by wrapping comparison).
    #[must_use]
    pub fn min(self, o: Self) -> Self {
        if self < o {
            self
        } else {
            o
        }
    }

    /// Number of sequence numbers from `earlier` up to `self` (wrapping `self - earlier`).
    #[must_use]
    pub fn distance_from(self, earlier: Self) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Add<u32> for SeqNumber {
    type Output = Self;
    fn add(self, rhs: u32) -> Self {
        Self(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u32> for SeqNumber {
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNumber {
    type Output = Self;
    fn sub(self, rhs: u32) -> Self {
        Self(self.0.wrapping_sub(rhs))
    }
}

impl Sub<Self> for SeqNumber {
    type Output = i32;
    /// Signed wrapping difference `self - rhs`.
    fn sub(self, rhs: Self) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((*self - *other).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraparound_comparisons() {
        let max = SeqNumber(u32::MAX);
        assert!(max < SeqNumber(0) + 5);
        assert!(SeqNumber(0) + 5 > max);
        assert!(SeqNumber(3) > max);
        assert!(SeqNumber(10) < SeqNumber(20));
        assert!(SeqNumber(10) <= SeqNumber(10));
        assert!(SeqNumber(10) >= SeqNumber(10));
        assert_eq!(
            SeqNumber(10).partial_cmp(&SeqNumber(10)),
            Some(Ordering::Equal)
        );
        // Half the space ahead counts as "behind" from both sides.
        assert!(SeqNumber(0) < SeqNumber(0x7fff_ffff));
        assert!(SeqNumber(0x8000_0001) < SeqNumber(0));
    }

    #[test]
    fn arithmetic_across_wrap() {
        assert_eq!(SeqNumber(u32::MAX) + 1, SeqNumber(0));
        assert_eq!(SeqNumber(2) - 5, SeqNumber(u32::MAX - 2));
        assert_eq!(SeqNumber(2) - SeqNumber(u32::MAX - 2), 5);
        assert_eq!(SeqNumber(u32::MAX - 2) - SeqNumber(2), -5);
        assert_eq!(SeqNumber(2).distance_from(SeqNumber(u32::MAX)), 3);
        let mut s = SeqNumber(u32::MAX - 1);
        s += 4;
        assert_eq!(s, SeqNumber(2));
    }

    #[test]
    fn min_max() {
        let a = SeqNumber(u32::MAX - 1);
        let b = SeqNumber(1);
        assert_eq!(a.max(b), b);
        assert_eq!(b.max(a), b);
        assert_eq!(a.min(b), a);
        assert_eq!(b.min(a), a);
        assert_eq!(a.max(a), a);
    }
}
