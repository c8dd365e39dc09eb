//! Round-trip time estimation and the retransmission timeout (RFC 6298), with Linux's
//! floor of 200 ms and ceiling of 120 s.

use crate::Duration;

/// Initial RTO before any sample (RFC 6298 §2.1: 1 s).
pub const RTO_INIT: Duration = Duration::from_secs(1);
/// Linux's `TCP_RTO_MIN`.
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// Linux's `TCP_RTO_MAX`.
pub const RTO_MAX: Duration = Duration::from_secs(120);

/// SRTT/RTTVAR state and the current (un-backed-off) RTO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self {
            srtt_us: None,
            rttvar_us: 0,
            rto: RTO_INIT,
        }
    }
}

impl RttEstimator {
    /// Feed one RTT measurement (RFC 6298 §2.2 and §2.3, alpha 1/8, beta 1/4).
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.total_micros().max(1);
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(r);
                self.rttvar_us = (3 * self.rttvar_us + err) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt_us.unwrap_or(r);
        // Linux: RTO = SRTT + max(4 * RTTVAR, rto_min), so rto_min acts as the variance floor.
        let rto = Duration::from_micros(srtt + (4 * self.rttvar_us).max(RTO_MIN.total_micros()));
        self.rto = rto.min(RTO_MAX);
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// RTTVAR.
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us)
    }

    /// The RTO before backoff.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The RTO after `backoff` consecutive timeouts (RFC 6298 §5.5), capped at 120 s.
    pub fn backed_off(&self, backoff: u32) -> Duration {
        let k = 1u64 << backoff.min(20);
        self.rto.saturating_mul(k).min(RTO_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample() {
        let mut r = RttEstimator::default();
        assert_eq!(r.rto(), RTO_INIT);
        r.sample(Duration::from_millis(100));
        // SRTT 100 ms, RTTVAR 50 ms: 100 + max(200, 200) = 300 ms.
        assert_eq!(r.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(r.rttvar(), Duration::from_millis(50));
        assert_eq!(r.rto(), Duration::from_millis(300));
    }

    #[test]
    fn converges_and_floors() {
        let mut r = RttEstimator::default();
        for _ in 0..100 {
            r.sample(Duration::from_micros(100));
        }
        // Tiny stable RTT: the floor dominates.
        assert_eq!(r.srtt(), Some(Duration::from_micros(100)));
        assert_eq!(r.rto(), Duration::from_micros(200_100));
    }

    #[test]
    fn second_sample_rfc6298() {
        let mut r = RttEstimator::default();
        r.sample(Duration::from_millis(800));
        r.sample(Duration::from_millis(400));
        // RTTVAR = 3/4*400 + 1/4*|800-400| = 400; SRTT = 7/8*800 + 1/8*400 = 750.
        assert_eq!(r.rttvar(), Duration::from_millis(400));
        assert_eq!(r.srtt(), Some(Duration::from_millis(750)));
        assert_eq!(r.rto(), Duration::from_millis(2350));
    }

    #[test]
    fn backoff_caps() {
        let r = RttEstimator::default();
        assert_eq!(r.backed_off(0), Duration::from_secs(1));
        assert_eq!(r.backed_off(3), Duration::from_secs(8));
        assert_eq!(r.backed_off(10), RTO_MAX);
        assert_eq!(r.backed_off(u32::MAX), RTO_MAX);
    }
}
