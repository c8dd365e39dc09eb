//! A listening socket: a SYN queue of half-open requests and an accept queue of
//! established connections, with the backlog policy of the chosen [`Model`].
//!
//! There is one listener mechanism. A [`Model`] only answers the questions where stacks
//! differ: how listen() clamps the backlog, when the queues count as full, and when a
//! half-open request's SYN-ACK is resent or the request dropped.

use crate::slab::Key;
use crate::{Duration, Instant};
use core::net::SocketAddr;
use std::collections::VecDeque;

/// The backlog semantics a stack follows (`--model` in the CLI, `synq.listen_model`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Model {
    /// Linux >= 6.13: SYN queue and accept queue, each full beyond `backlog` (backlog+1 fit),
    /// SYN cookies, the `tcp_max_syn_backlog` quarter rule, request pruning.
    #[default]
    Linux,
    /// Linux 4.10 to 6.12: as `Linux`, but the SYN queue is full at `qlen >= backlog`.
    Linux410,
    /// 4.4BSD: one limit, floor(3q/2)+1, over half-open and established together; SYNs
    /// beyond it are dropped; embryos die after the 75 s connection-establishment timer.
    Bsd,
    /// The textbook single queue: at most `backlog` half-open and established together.
    BsdExact,
}

impl Model {
    /// Every model, in CLI order.
    pub const ALL: [Self; 4] = [Self::Linux, Self::Linux410, Self::Bsd, Self::BsdExact];

    /// The CLI name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Linux410 => "linux-4.10",
            Self::Bsd => "bsd",
            Self::BsdExact => "bsd-exact",
        }
    }

    /// One queue bounds half-open and established connections together.
    pub const fn single_queue(self) -> bool {
        matches!(self, Self::Bsd | Self::BsdExact)
    }

    /// The backlog listen() stores. Linux: `(unsigned)backlog > somaxconn` means somaxconn,
    /// so negative values become somaxconn. BSD: negative means 0, then `min(somaxconn)`.
    pub fn clamp_backlog(self, backlog: i32, somaxconn: u32) -> u32 {
        if self.single_queue() {
            (backlog.max(0) as u32).min(somaxconn)
        } else if backlog as u32 > somaxconn {
            somaxconn
        } else {
            backlog as u32
        }
    }

    /// Single-queue models: connections (half-open plus established) the listener holds at
    /// most. 4.4BSD `sonewconn` refuses when `qlen + q0len > 3q/2`.
    pub fn single_limit(self, backlog: u32) -> u64 {
        let q = u64::from(backlog);
        match self {
            Self::Bsd => 3 * q / 2 + 1,
            _ => q,
        }
    }

    /// Two-queue models: is the SYN queue full (Linux `inet_csk_reqsk_queue_is_full`)?
    pub fn syn_queue_full(self, qlen: u32, backlog: u32) -> bool {
        match self {
            Self::Linux410 => qlen >= backlog,
            _ => qlen > backlog,
        }
    }
}

impl core::fmt::Display for Model {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Model {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or("expected linux, linux-4.10, bsd or bsd-exact")
    }
}

/// 4.4BSD `TCPTV_KEEP_INIT`: an embryo not established by then is dropped (with RST).
pub(crate) const BSD_KEEP_INIT: Duration = Duration::from_secs(75);
/// 4.4BSD's first retransmission timeout with no RTT sample (`TCPTV_SRTTDFLT` 3 s, doubled
/// by the initial `t_rttvar` formula): SYN-ACKs are resent at 6, 18 and 42 s.
const BSD_RTO_INIT: Duration = Duration::from_secs(6);

/// When a request's timer fires next after `n` SYN-ACK retransmissions (`n` already
/// incremented), and how long the request lives. Linux: min(1 s << n, 120 s). BSD: the
/// retransmit timer (6 s doubling) until the keep-init timer at 75 s after the SYN.
pub(crate) fn request_rto(model: Model, n: u8, age: Duration) -> Duration {
    if model.single_queue() {
        let rto = BSD_RTO_INIT.saturating_mul(1u64 << n.min(6));
        return rto.min(BSD_KEEP_INIT - age);
    }
    Duration::from_secs(1u64 << n.min(7)).min(crate::rtt::RTO_MAX)
}

/// Linux `secs_to_retrans` for `TCP_DEFER_ACCEPT` (timeout 1 s doubling, capped at 120 s).
pub(crate) fn defer_secs_to_retrans(secs: u32) -> u8 {
    if secs == 0 {
        return 0;
    }
    let (mut res, mut timeout, mut period) = (1u8, 1u32, 1u32);
    while secs > period && res < 255 {
        res += 1;
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    res
}

/// Linux `retrans_to_secs`: what getsockopt(TCP_DEFER_ACCEPT) reports.
pub(crate) fn defer_retrans_to_secs(retrans: u8) -> u32 {
    if retrans == 0 {
        return 0;
    }
    let (mut timeout, mut period) = (1u32, 1u32);
    for _ in 1..retrans {
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    period
}

/// Established connections waiting for `accept()`, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct AcceptQueue {
    queue: VecDeque<Key>,
    /// The longest the queue has been (a high-water mark for reports; Linux keeps none).
    peak: u32,
}

impl AcceptQueue {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
    pub(crate) fn push(&mut self, conn: Key) {
        self.queue.push_back(conn);
        self.peak = self.peak.max(self.queue.len() as u32);
    }
    pub(crate) fn peak(&self) -> u32 {
        self.peak
    }
    pub(crate) fn pop(&mut self) -> Option<Key> {
        self.queue.pop_front()
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Key> + '_ {
        self.queue.iter()
    }
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Key> + '_ {
        self.queue.drain(..)
    }
}

/// Counts of half-open requests (the requests live in the stack's request table, hashed by
/// 4-tuple, as Linux keeps them in the established hash).
#[derive(Debug, Default)]
pub(crate) struct SynQueue {
    /// Requests held (Linux `qlen`).
    pub(crate) len: u32,
    /// Requests whose SYN-ACK was never retransmitted (Linux `young`).
    pub(crate) young: u32,
    /// The most requests held at once (a high-water mark for reports).
    pub(crate) peak: u32,
}

/// A listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) local: SocketAddr,
    /// When listen() opened it.
    pub(crate) since: Instant,
    /// `sk_max_ack_backlog`: the listen() backlog after the clamp.
    pub(crate) backlog: u32,
    pub(crate) accept: AcceptQueue,
    pub(crate) syn: SynQueue,
    /// `TCP_DEFER_ACCEPT`, as a count of SYN-ACK retransmissions (Linux
    /// `rskq_defer_accept`).
    pub(crate) defer_accept: u8,
    /// `TCP_SYNCNT` on the listener: overrides `tcp_synack_retries` when non-zero.
    pub(crate) syncnt: u8,
    /// `TCP_MAXSEG` on the listener (0: none).
    pub(crate) user_mss: u16,
    /// `SO_RCVBUF` on the listener, as Linux keeps it (`sk_rcvbuf`: twice the value asked
    /// for; 0: not set). Sizes its SYN-ACK window, window scale and children's buffers.
    pub(crate) rcvbuf: u32,
    /// When this listener last sent a SYN cookie (Linux `tcp_synq_overflow` stamp).
    pub(crate) last_overflow: Option<Instant>,
    /// An AcceptReady event is queued and not yet drained.
    pub(crate) event_pending: bool,
}

impl Listener {
    pub(crate) fn new(now: Instant, local: SocketAddr, backlog: u32) -> Self {
        Self {
            local,
            since: now,
            backlog,
            accept: AcceptQueue::default(),
            syn: SynQueue::default(),
            defer_accept: 0,
            syncnt: 0,
            user_mss: 0,
            rcvbuf: 0,
            last_overflow: None,
            event_pending: false,
        }
    }

    /// Linux `sk_acceptq_is_full`: strictly more than the backlog, so backlog+1 fit.
    pub(crate) fn accept_full(&self) -> bool {
        self.accept.len() as u64 > u64::from(self.backlog)
    }

    /// Single-queue models: half-open plus established at the limit.
    pub(crate) fn single_full(&self, model: Model) -> bool {
        self.accept.len() as u64 + u64::from(self.syn.len) >= model.single_limit(self.backlog)
    }

    /// Linux `tcp_synq_overflow`: stamp a cookie sent, at most once a second.
    pub(crate) fn stamp_overflow(&mut self, now: Instant) {
        match self.last_overflow {
            Some(t) if now >= t && now < t + Duration::from_secs(1) => {}
            _ => self.last_overflow = Some(now),
        }
    }

    /// Linux `tcp_synq_no_recent_overflow`: no cookie sent in the last two minutes.
    pub(crate) fn no_recent_overflow(&self, now: Instant) -> bool {
        self.last_overflow
            .is_none_or(|t| now > t + Duration::from_secs(60 * u64::from(crate::cookie::MAX_AGE)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps() {
        let l = Model::Linux;
        assert_eq!(l.clamp_backlog(-1, 4096), 4096);
        assert_eq!(l.clamp_backlog(-100, 4096), 4096);
        assert_eq!(l.clamp_backlog(i32::MAX, 4096), 4096);
        assert_eq!(l.clamp_backlog(0, 4096), 0);
        assert_eq!(l.clamp_backlog(7, 4096), 7);
        let b = Model::Bsd;
        assert_eq!(b.clamp_backlog(-1, 5), 0);
        assert_eq!(b.clamp_backlog(100, 5), 5);
    }

    #[test]
    fn bsd_limits() {
        let got: Vec<u64> = (0..=5).map(|q| Model::Bsd.single_limit(q)).collect();
        assert_eq!(got, [1, 2, 4, 5, 7, 8]);
        assert_eq!(Model::BsdExact.single_limit(5), 5);
    }

    #[test]
    fn names_round_trip() {
        for m in Model::ALL {
            assert_eq!(m.name().parse::<Model>(), Ok(m));
        }
        assert!("freebsd".parse::<Model>().is_err());
    }

    #[test]
    fn defer_accept_rounding() {
        // Linux: TCP_DEFER_ACCEPT 2 s is stored as 2 retransmissions, read back as 3 s.
        assert_eq!(defer_secs_to_retrans(2), 2);
        assert_eq!(defer_retrans_to_secs(2), 3);
        assert_eq!(defer_secs_to_retrans(1), 1);
        assert_eq!(defer_secs_to_retrans(3), 2);
        assert_eq!(defer_secs_to_retrans(4), 3);
        assert_eq!(defer_retrans_to_secs(3), 7);
        assert_eq!(defer_secs_to_retrans(0), 0);
    }

    #[test]
    fn schedules() {
        let secs =
            |m, n, age| request_rto(m, n, Duration::from_secs(age)).total_micros() / 1_000_000;
        assert_eq!(
            [0, 1, 2, 7, 9].map(|n| secs(Model::Linux, n, 0)),
            [1, 2, 4, 120, 120]
        );
        // BSD: 6, 12, 24 s, then whatever is left of the 75 s keep-init.
        assert_eq!(secs(Model::Bsd, 0, 0), 6);
        assert_eq!(secs(Model::Bsd, 1, 6), 12);
        assert_eq!(secs(Model::Bsd, 2, 18), 24);
        assert_eq!(secs(Model::Bsd, 3, 42), 33);
    }
}
