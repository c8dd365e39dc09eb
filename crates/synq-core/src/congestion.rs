//! Congestion control behind one small interface, chosen per stack by
//! `net.ipv4.tcp_congestion_control` and per socket (`TCP_CONGESTION`): `reno` (RFC 5681)
//! and `cubic` (RFC 9438 as Linux's `tcp_cubic.c` runs it, HyStart included).
//!
//! The connection owns loss detection and recovery (`recovery.rs`, PRR); a controller only
//! answers how the window grows on an ACK, what ssthresh becomes on a loss, and what to
//! forget on an RTO. Every ACK comes with a rate sample (delivered, RTT, in flight), so a
//! model-based controller (BBR) can steer the same window without a new interface.

use crate::{Duration, Instant};

/// What one ACK tells a controller.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AckSample {
    pub(crate) now: Instant,
    /// Bytes newly acknowledged (cumulatively) by this ACK.
    pub(crate) acked: u32,
    /// RTT sample of this ACK, if it gave one.
    pub(crate) rtt: Option<Duration>,
    /// Smallest RTT seen.
    pub(crate) min_rtt: Option<Duration>,
    /// Bytes in flight after the ACK (what a model-based controller paces against; the
    /// loss-based ones here do not look at it).
    #[allow(dead_code)]
    pub(crate) in_flight: u32,
    pub(crate) mss: u32,
}

/// The window a controller steers, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
}

/// A congestion controller (Linux `tcp_congestion_ops`).
pub(crate) trait Congestion {
    /// Grow (or not) the window on an ACK in the open state (`cong_avoid`).
    fn on_ack(&mut self, w: &mut Window, s: &AckSample);
    /// The slow-start threshold after a loss (`ssthresh`); may remember the window.
    fn ssthresh(&mut self, w: &Window, mss: u32) -> u32;
    /// The retransmission timer fired: start over (`CA_EVENT_LOSS`).
    fn on_rto(&mut self) {}
}

/// A congestion control algorithm, by the name Linux gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RFC 9438 CUBIC with HyStart, Linux's default.
    #[default]
    Cubic,
    /// RFC 5681 Reno.
    Reno,
}

impl Algorithm {
    /// Every algorithm (`net.ipv4.tcp_available_congestion_control`).
    pub const ALL: [Self; 2] = [Self::Cubic, Self::Reno];

    /// Its name: `cubic`, `reno`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cubic => "cubic",
            Self::Reno => "reno",
        }
    }
}

impl core::str::FromStr for Algorithm {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s.trim())
            .ok_or("no such congestion control (available: cubic reno)")
    }
}

/// The controllers, dispatched without allocation.
#[derive(Clone, Debug)]
pub(crate) enum Controller {
    Reno(Reno),
    Cubic(Cubic),
}

impl Controller {
    pub(crate) fn new(a: Algorithm) -> Self {
        match a {
            Algorithm::Reno => Self::Reno(Reno),
            Algorithm::Cubic => Self::Cubic(Cubic::default()),
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Reno(_) => Algorithm::Reno,
            Self::Cubic(_) => Algorithm::Cubic,
        }
    }

    fn inner(&mut self) -> &mut dyn Congestion {
        match self {
            Self::Reno(r) => r,
            Self::Cubic(c) => c,
        }
    }
}

impl Congestion for Controller {
    fn on_ack(&mut self, w: &mut Window, s: &AckSample) {
        self.inner().on_ack(w, s);
    }
    fn ssthresh(&mut self, w: &Window, mss: u32) -> u32 {
        self.inner().ssthresh(w, mss)
    }
    fn on_rto(&mut self) {
        self.inner().on_rto();
    }
}

/// RFC 5681 slow start (with RFC 3465's L = 2 SMSS); returns the bytes left over once
/// cwnd reaches ssthresh (Linux `tcp_slow_start`).
fn slow_start(w: &mut Window, acked: u32, mss: u32) -> u32 {
    let room = w.ssthresh.saturating_sub(w.cwnd);
    let grow = acked.min(2 * mss).min(room);
    w.cwnd += grow;
    acked.saturating_sub(grow)
}

/// Reno: one segment per window in congestion avoidance, half the window on loss.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reno;

impl Congestion for Reno {
    fn on_ack(&mut self, w: &mut Window, s: &AckSample) {
        if w.cwnd < w.ssthresh {
            slow_start(w, s.acked, s.mss);
        } else {
            w.cwnd += (s.mss * s.mss / w.cwnd.max(1)).max(1);
        }
        w.cwnd = w.cwnd.min(1 << 30);
    }
    fn ssthresh(&mut self, w: &Window, mss: u32) -> u32 {
        (w.cwnd / 2).max(2 * mss)
    }
}

/// `tcp_cubic.c`'s constants: beta 717/1024 (RFC 9438's 0.7), C = 0.4.
const BETA: f64 = 717.0 / 1024.0;
const C: f64 = 0.4;
/// HyStart (Linux `hystart_low_window`, `HYSTART_MIN_SAMPLES`, delay bounds).
const HYSTART_LOW_WINDOW: u32 = 16;
const HYSTART_MIN_SAMPLES: u32 = 8;
const HYSTART_DELAY_MIN: Duration = Duration::from_millis(4);
const HYSTART_DELAY_MAX: Duration = Duration::from_millis(16);
/// An ACK within this of the previous one continues the train (Linux 2 ms; the sim's
/// clock is exact, so the train rule uses the same bound).
const HYSTART_ACK_DELTA: Duration = Duration::from_millis(2);

/// CUBIC (RFC 9438; Linux `bictcp`), windows in segments as Linux keeps them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cubic {
    /// W_max: the window before the last reduction (segments).
    last_max: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch: Option<Instant>,
    /// Window the cubic curve is centred on, and K (seconds to reach it).
    origin: f64,
    k: f64,
    /// Reno-friendly estimate (segments) and its ACK count.
    reno_cwnd: f64,
    /// Fraction of a segment accumulated toward the next increase.
    credit: f64,
    /// HyStart state for the current slow-start round.
    round_end: Option<Instant>,
    round_start: Option<Instant>,
    last_ack: Option<Instant>,
    curr_rtt: Option<Duration>,
    samples: u32,
    found: bool,
}

impl Cubic {
    /// HyStart (Linux `hystart_update`): leave slow start early when the ACK train of a
    /// round lasts half the minimum RTT, or the round's RTT rose by a clamped eighth.
    fn hystart(&mut self, w: &mut Window, s: &AckSample) {
        let segs = w.cwnd / s.mss.max(1);
        if self.found || segs < HYSTART_LOW_WINDOW {
            return;
        }
        let Some(min_rtt) = s.min_rtt else {
            return;
        };
        let now = s.now;
        // A round is one window's worth of time: restart every min RTT.
        if self.round_end.is_none_or(|e| now >= e) {
            self.round_start = Some(now);
            self.round_end = Some(now + min_rtt);
            self.last_ack = Some(now);
            self.curr_rtt = None;
            self.samples = 0;
        }
        if let (Some(start), Some(last)) = (self.round_start, self.last_ack) {
            if now - last <= HYSTART_ACK_DELTA {
                self.last_ack = Some(now);
                if (now - start).total_micros() * 2 > min_rtt.total_micros()
                    && min_rtt > HYSTART_ACK_DELTA
                {
                    self.found = true;
                }
            }
        }
        if let Some(rtt) = s.rtt {
            if self.samples < HYSTART_MIN_SAMPLES {
                self.curr_rtt = Some(self.curr_rtt.map_or(rtt, |c| c.min(rtt)));
                self.samples += 1;
            } else if let Some(curr) = self.curr_rtt {
                let eighth = Duration::from_micros(min_rtt.total_micros() / 8);
                let thresh = eighth.max(HYSTART_DELAY_MIN).min(HYSTART_DELAY_MAX);
                if curr >= min_rtt + thresh {
                    self.found = true;
                }
            }
        }
        if self.found {
            w.ssthresh = w.cwnd;
        }
    }
}

impl Congestion for Cubic {
    fn on_ack(&mut self, w: &mut Window, s: &AckSample) {
        let mss = s.mss.max(1);
        let mut acked = s.acked;
        if w.cwnd < w.ssthresh {
            self.hystart(w, s);
            acked = slow_start(w, acked, mss);
            if acked == 0 {
                return;
            }
        }
        let cwnd = f64::from(w.cwnd) / f64::from(mss);
        let acked_segs = f64::from(acked) / f64::from(mss);
        let now = s.now;
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.reno_cwnd = cwnd;
            if self.last_max <= cwnd {
                self.k = 0.0;
                self.origin = cwnd;
            } else {
                self.k = ((self.last_max - cwnd) / C).cbrt();
                self.origin = self.last_max;
            }
            now
        });
        let delay = s.min_rtt.unwrap_or(Duration::ZERO);
        let t = (now - epoch).as_secs_f64() + delay.as_secs_f64();
        let target = self.origin + C * (t - self.k).powi(3);
        // Segments of ACK per one-segment increase (RFC 9438 §4.4 and §4.3).
        let mut cnt = if target > cwnd {
            cwnd / (target - cwnd)
        } else {
            100.0 * cwnd
        };
        if self.last_max == 0.0 && cnt > 20.0 {
            cnt = 20.0;
        }
        // The Reno-friendly region (RFC 9438 §4.3, Linux's beta-scaled estimate).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.reno_cwnd += alpha * acked_segs / self.reno_cwnd.max(1.0);
        if self.reno_cwnd > cwnd {
            cnt = cnt.min(cwnd / (self.reno_cwnd - cwnd));
        }
        cnt = cnt.max(2.0);
        self.credit += acked_segs / cnt;
        if self.credit >= 1.0 {
            let whole = self.credit.floor();
            self.credit -= whole;
            w.cwnd = (f64::from(w.cwnd) + whole * f64::from(mss)).min(f64::from(1u32 << 30)) as u32;
        }
    }

    fn ssthresh(&mut self, w: &Window, mss: u32) -> u32 {
        let cwnd = f64::from(w.cwnd) / f64::from(mss.max(1));
        self.epoch = None;
        // Fast convergence (RFC 9438 §4.7).
        self.last_max = if cwnd < self.last_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        ((f64::from(w.cwnd) * BETA) as u32).max(2 * mss)
    }

    fn on_rto(&mut self) {
        // Linux bictcp_state(TCP_CA_Loss): forget the curve and HyStart's round.
        let last_max = self.last_max;
        *self = Self {
            last_max,
            found: true,
            ..Self::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn ack(now_ms: u64, acked: u32) -> AckSample {
        AckSample {
            now: Instant::ZERO + Duration::from_millis(now_ms),
            acked,
            rtt: Some(Duration::from_millis(10)),
            min_rtt: Some(Duration::from_millis(10)),
            in_flight: 0,
            mss: MSS,
        }
    }

    #[test]
    fn reno_halves_and_adds_one_segment_per_window() {
        let mut r = Reno;
        let mut w = Window {
            cwnd: 20 * MSS,
            ssthresh: 10 * MSS,
        };
        for _ in 0..20 {
            r.on_ack(&mut w, &ack(0, MSS));
        }
        assert_eq!(w.cwnd / MSS, 20);
        assert!(w.cwnd >= 20 * MSS + 900);
        assert_eq!(r.ssthresh(&w, MSS), w.cwnd / 2);
    }

    #[test]
    fn cubic_backs_off_to_0_7_and_returns_to_w_max_at_k() {
        let mut c = Cubic::default();
        let mut w = Window {
            cwnd: 100 * MSS,
            ssthresh: u32::MAX,
        };
        w.ssthresh = c.ssthresh(&w, MSS);
        assert_eq!(w.ssthresh, 100 * MSS * 717 / 1024);
        w.cwnd = w.ssthresh;
        // K = cbrt(30 / 0.4) = 4.22 s. A window of ACKs per 100 ms RTT: Reno's estimate
        // (0.53 segment per RTT) stays below the curve, so CUBIC's curve sets the window.
        let at = |ms: u64, segs: u32| AckSample {
            now: Instant::ZERO + Duration::from_millis(ms),
            acked: segs * MSS,
            rtt: Some(Duration::from_millis(100)),
            min_rtt: Some(Duration::from_millis(100)),
            in_flight: 0,
            mss: MSS,
        };
        let mut t = 0;
        let mut trace = Vec::new();
        while t <= 4200 {
            let segs = w.cwnd / MSS;
            c.on_ack(&mut w, &at(t, segs));
            trace.push(w.cwnd / MSS);
            t += 100;
        }
        let at_k = w.cwnd / MSS;
        assert!((97..=101).contains(&at_k), "cwnd at K: {at_k}: {trace:?}");
        // Concave: most of the way back within the first half of K.
        assert!(trace[21] >= 90, "{trace:?}");
        // Then convex above W_max: faster and faster.
        for _ in 0..20 {
            let segs = w.cwnd / MSS;
            c.on_ack(&mut w, &at(t, segs));
            t += 100;
        }
        assert!(w.cwnd / MSS > 103, "{}", w.cwnd / MSS);
    }

    #[test]
    fn cubic_is_reno_friendly_on_short_paths() {
        let mut c = Cubic::default();
        let mut w = Window {
            cwnd: 100 * MSS,
            ssthresh: u32::MAX,
        };
        w.ssthresh = c.ssthresh(&w, MSS);
        w.cwnd = w.ssthresh;
        // 10 ms RTT for 4.2 s: Reno's estimate (70 + 0.53 per RTT) outgrows the curve.
        for i in 0..420 {
            let segs = w.cwnd / MSS;
            c.on_ack(&mut w, &ack(i * 10, segs * MSS));
        }
        assert!(w.cwnd / MSS > 250, "{}", w.cwnd / MSS);
    }

    #[test]
    fn fast_convergence_lowers_w_max_after_a_smaller_peak() {
        let mut c = Cubic::default();
        let w = Window {
            cwnd: 100 * MSS,
            ssthresh: 0,
        };
        c.ssthresh(&w, MSS);
        let w = Window {
            cwnd: 80 * MSS,
            ssthresh: 0,
        };
        c.ssthresh(&w, MSS);
        assert!((c.last_max - 80.0 * (1.0 + BETA) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn hystart_leaves_slow_start_when_the_rtt_rises() {
        let mut c = Cubic::default();
        let mut w = Window {
            cwnd: 32 * MSS,
            ssthresh: u32::MAX,
        };
        let mut s = ack(0, MSS);
        // A round of eight samples at 15 ms against a 10 ms minimum (threshold 4 ms).
        for i in 0..9 {
            s.now = Instant::ZERO + Duration::from_millis(100 + i);
            s.rtt = Some(Duration::from_millis(15));
            c.on_ack(&mut w, &s);
        }
        assert_eq!(w.ssthresh, w.cwnd, "slow start ended");
        let mut r = Cubic::default();
        let mut w2 = Window {
            cwnd: 32 * MSS,
            ssthresh: u32::MAX,
        };
        for i in 0..9 {
            s.now = Instant::ZERO + Duration::from_millis(100 + 3 * i);
            s.rtt = Some(Duration::from_millis(10));
            r.on_ack(&mut w2, &s);
        }
        assert_eq!(
            w2.ssthresh,
            u32::MAX,
            "no delay increase, no train: keep going"
        );
    }

    #[test]
    fn names() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(Controller::new(a).algorithm(), a);
        }
        assert!("bbr".parse::<Algorithm>().is_err());
    }
}
