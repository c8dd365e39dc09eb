//! Receive-buffer autotuning (Linux `tcp_rcv_space_adjust`, `tcp_moderate_rcvbuf`): once
//! per receiver-side RTT, if the application read more than last time, grow the buffer (and
//! so the window) to about twice what it reads per RTT, up to `tcp_rmem[2]`. The RTT comes
//! from timestamp echoes, else from how long a window's worth of data takes to arrive (Linux
//! `tcp_rcv_rtt_measure_ts`, `tcp_rcv_rtt_measure`).

use super::Connection;
use crate::config::Config;
use crate::{Duration, Instant};
use synq_wire::{SeqNumber, TcpRepr};

/// The autotuner's state (Linux `rcvq_space` and `rcv_rtt_est`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Autotune {
    /// Bytes the application has read, in all.
    copied: u64,
    /// Start of the current measurement: when, and `copied` then.
    since: Option<(Instant, u64)>,
    /// What the application read in the last measured RTT (0: not yet set).
    space: usize,
    /// Receiver-side RTT estimate.
    rtt: Option<Duration>,
    /// Window-based RTT measurement: the sequence a window ahead, and when it started.
    mark: Option<(SeqNumber, Instant)>,
}

/// `TCP_INIT_CWND` segments: the first measurement's baseline.
const INIT_SEGS: usize = 10;

impl Connection {
    fn rcv_rtt_sample(&mut self, m: Duration) {
        let m = m.max(Duration::from_micros(1));
        let a = &mut self.tune;
        a.rtt = Some(match a.rtt {
            // 7/8 of the old estimate and 1/8 of the sample, as Linux's fixed-point EWMA.
            Some(old) => Duration::from_micros((old.total_micros() * 7 + m.total_micros()) / 8),
            None => m,
        });
    }

    /// In-order data arrived: measure the receiver's RTT.
    pub(super) fn rcv_rtt_measure(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        if let Some(ts) = seg
            .options
            .timestamps
            .filter(|t| self.ts_enabled && t.tsecr != 0)
        {
            let ms = self.ts_now(now).wrapping_sub(ts.tsecr);
            if (ms as i32) >= 0 {
                self.rcv_rtt_sample(Duration::from_millis(u64::from(ms.max(1))));
                return;
            }
        }
        match self.tune.mark {
            Some((seq, at)) if self.rcv_nxt >= seq => {
                self.rcv_rtt_sample(now - at);
                self.tune.mark = None;
            }
            Some(_) => {}
            None => {
                let wnd = self.rcv_adv.distance_from(self.rcv_nxt).max(1);
                self.tune.mark = Some((self.rcv_nxt + wnd, now));
            }
        }
    }

    /// The application read `n` bytes at `now`: once an RTT has passed, grow the buffer
    /// if it read more than in the RTT before.
    pub(super) fn rcv_space_adjust(&mut self, now: Instant, n: usize, config: &Config) {
        let a = &mut self.tune;
        a.copied += n as u64;
        if a.space == 0 {
            a.space = self.rcv_space.min(INIT_SEGS * usize::from(self.mss));
        }
        let Some(rtt) = a.rtt else {
            return;
        };
        let Some((t0, c0)) = a.since else {
            a.since = Some((now, a.copied));
            return;
        };
        if now - t0 < rtt {
            return;
        }
        let copied = usize::try_from(a.copied - c0).unwrap_or(usize::MAX);
        a.since = Some((now, a.copied));
        if copied <= a.space {
            return;
        }
        if config.tcp_moderate_rcvbuf && !self.rcvbuf_locked {
            let advmss = usize::from(self.mss);
            let mut win = 2 * copied + 16 * advmss;
            let grow = win * (copied - a.space) / a.space.max(1);
            win += 2 * grow;
            let max = config.tcp_rmem[2] as usize;
            let target = win.min(max);
            if target > self.rcv_space {
                self.rcv_space = target;
                self.recv_buf.grow_cap(target + (1 << self.rcv_wscale));
            }
        }
        self.tune.space = copied;
    }
}
