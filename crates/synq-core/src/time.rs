//! Virtual time: the core never reads a clock, every call is handed `now`.
//!
//! Both types keep microseconds plus one in a `NonZeroU64`, so `Option<Instant>` and
//! `Option<Duration>` are 8 bytes, not 16: a connection holds a dozen optional deadlines,
//! stamps and RTT samples. Order, equality and hashing follow the microseconds; the largest
//! value is `u64::MAX - 1` µs (half a million years).

use core::fmt;
use core::num::NonZeroU64;
use core::ops::{Add, AddAssign, Sub};

/// Microseconds, stored plus one.
const fn stored(us: u64) -> NonZeroU64 {
    match NonZeroU64::new(us.saturating_add(1)) {
        Some(n) => n,
        None => NonZeroU64::MAX,
    }
}

// Sums and differences work on the stored values directly (every packet does a few):
// (a+1) + b = (a+b)+1, and max(a-b, 0)+1 = max((a+1)-b, 1).
#[inline]
const fn add(a: NonZeroU64, b: NonZeroU64) -> NonZeroU64 {
    a.saturating_add(b.get() - 1)
}
#[inline]
const fn sub(a: NonZeroU64, b: NonZeroU64) -> NonZeroU64 {
    match NonZeroU64::new(a.get().saturating_sub(b.get() - 1)) {
        Some(n) => n,
        None => NonZeroU64::MIN,
    }
}

/// A point in time, in microseconds since an arbitrary epoch chosen by the caller.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(NonZeroU64);

/// A span of time in microseconds.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(NonZeroU64);

impl Instant {
    /// The epoch.
    pub const ZERO: Self = Self(NonZeroU64::MIN);
    /// Later than any real deadline.
    pub const MAX: Self = Self(NonZeroU64::MAX);

    /// From microseconds since the epoch (beyond `u64::MAX - 1` saturates).
    pub const fn from_micros(us: u64) -> Self {
        Self(stored(us))
    }
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self::from_micros(ms.saturating_mul(1000))
    }
    /// From seconds since the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Self::from_micros(s.saturating_mul(1_000_000))
    }
    /// Microseconds since the epoch.
    pub const fn total_micros(self) -> u64 {
        self.0.get() - 1
    }
    /// Milliseconds since the epoch (truncated).
    pub const fn total_millis(self) -> u64 {
        self.total_micros() / 1000
    }
    /// Seconds since the epoch as a float, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.total_micros() as f64 / 1e6
    }
    /// Time since `earlier`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Self) -> Duration {
        Duration(sub(self.0, earlier.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(NonZeroU64::MIN);
    /// The largest span.
    pub const MAX: Self = Self(NonZeroU64::MAX);

    /// From microseconds (beyond `u64::MAX - 1` saturates).
    pub const fn from_micros(us: u64) -> Self {
        Self(stored(us))
    }
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self::from_micros(ms.saturating_mul(1000))
    }
    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self::from_micros(s.saturating_mul(1_000_000))
    }
    /// Whole microseconds.
    pub const fn total_micros(self) -> u64 {
        self.0.get() - 1
    }
    /// Whole milliseconds (truncated).
    pub const fn total_millis(self) -> u64 {
        self.total_micros() / 1000
    }
    /// Seconds as a float, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.total_micros() as f64 / 1e6
    }
    /// Multiply, saturating.
    pub const fn saturating_mul(self, k: u64) -> Self {
        Self::from_micros(self.total_micros().saturating_mul(k))
    }
}

impl Default for Instant {
    fn default() -> Self {
        Self::ZERO
    }
}
impl Default for Duration {
    fn default() -> Self {
        Self::ZERO
    }
}

impl Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(add(self.0, d.0))
    }
}
impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}
impl Sub<Duration> for Instant {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        Self(sub(self.0, d.0))
    }
}
impl Sub for Instant {
    type Output = Duration;
    /// Saturates at zero, so a stale deadline never underflows.
    fn sub(self, earlier: Self) -> Duration {
        self.saturating_since(earlier)
    }
}
impl Add for Duration {
    type Output = Self;
    fn add(self, d: Self) -> Self {
        Self(add(self.0, d.0))
    }
}
impl Sub for Duration {
    type Output = Self;
    fn sub(self, d: Self) -> Self {
        Self(sub(self.0, d.0))
    }
}

// Debug as the plain microseconds, as before the `NonZeroU64` storage.
impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Instant")
            .field(&self.total_micros())
            .finish()
    }
}
impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Duration")
            .field(&self.total_micros())
            .finish()
    }
}

fn seconds(f: &mut fmt::Formatter<'_>, us: u64) -> fmt::Result {
    write!(f, "{}.{:06}s", us / 1_000_000, us % 1_000_000)
}
impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        seconds(f, self.total_micros())
    }
}
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        seconds(f, self.total_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1500);
        assert_eq!(t + Duration::from_millis(500), Instant::from_secs(2));
        assert_eq!(
            Instant::from_secs(1) - Instant::from_secs(2),
            Duration::ZERO
        );
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(t.to_string(), "1.500000s");
    }

    #[test]
    fn options_take_no_room_and_order_holds() {
        assert_eq!(size_of::<Option<Instant>>(), 8);
        assert_eq!(size_of::<Option<Duration>>(), 8);
        assert!(Instant::ZERO < Instant::from_micros(1) && Instant::from_micros(1) < Instant::MAX);
        assert_eq!(Instant::ZERO.total_micros(), 0);
        assert_eq!(Duration::MAX.total_micros(), u64::MAX - 1);
        assert_eq!(Instant::from_micros(u64::MAX), Instant::MAX);
        assert_eq!(
            Duration::from_secs(3).saturating_mul(u64::MAX),
            Duration::MAX
        );
        assert_eq!(format!("{:?}", Instant::from_micros(42)), "Instant(42)");
        assert_eq!(
            Duration::from_millis(2) - Duration::from_millis(3),
            Duration::ZERO
        );
    }
}
