//! A connection's timers: one slot per kind; the earliest is the connection's deadline.

use crate::Instant;
use core::ops::{Index, IndexMut};

/// The kinds of timer a connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission (and SYN retransmission).
    Rto,
    /// Delayed ACK.
    DelAck,
    /// Zero-window probe.
    Persist,
    /// TIME_WAIT expiry, or the orphaned FIN_WAIT_2 timeout.
    Close,
    /// RACK's reordering window ends (RFC 8985 §6.3).
    Rack,
    /// Tail loss probe (RFC 8985 §7).
    Tlp,
    /// Keepalive probe (RFC 9293 §3.8.4, Linux `tcp_keepalive_timer`).
    Keepalive,
}

impl Timer {
    const COUNT: usize = 7;
}

/// The table: `timers[Timer::Rto] = Some(at)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timers([Option<Instant>; Timer::COUNT]);

impl Timers {
    /// The earliest armed timer.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarm every timer.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Disarm `t` and say whether it was due at `now`.
    pub(crate) fn take_due(&mut self, t: Timer, now: Instant) -> bool {
        let due = self[t].is_some_and(|at| at <= now);
        if due {
            self[t] = None;
        }
        due
    }
}

impl Index<Timer> for Timers {
    type Output = Option<Instant>;
    fn index(&self, t: Timer) -> &Option<Instant> {
        &self.0[t as usize]
    }
}

impl IndexMut<Timer> for Timers {
    fn index_mut(&mut self, t: Timer) -> &mut Option<Instant> {
        &mut self.0[t as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Duration;

    #[test]
    fn earliest_and_take_due() {
        let t = |ms| Instant::ZERO + Duration::from_millis(ms);
        let mut x = Timers::default();
        assert_eq!(x.next(), None);
        x[Timer::Rto] = Some(t(30));
        x[Timer::Keepalive] = Some(t(10));
        assert_eq!(x.next(), Some(t(10)));
        assert!(!x.take_due(Timer::Rto, t(20)));
        assert!(x.take_due(Timer::Keepalive, t(20)));
        assert_eq!(x.next(), Some(t(30)));
        x.clear();
        assert_eq!(x.next(), None);
    }
}
