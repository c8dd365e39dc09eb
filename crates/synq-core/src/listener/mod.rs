//! The passive side: listening sockets, half-open requests, SYN cookies and accept queues.
//!
//! [`ListenTable`] owns all of it: the listeners, the stack-wide request table, the cookie
//! keys, the peers with a known RTT and FreeBSD's syncache state. It decides what a segment
//! or a timer means for a listener and returns that as plain data ([`Passive`]): a reply
//! to send, or a completed handshake for the stack to turn into a connection. The stack
//! applies it; the table never touches connections.
//!
//! The mechanism (requests, SYN-ACKs, the request-segment checks of `tcp_check_req`) is
//! shared, in `handshake.rs`. Where the stacks differ, one policy per model family answers:
//! `linux.rs` (two queues, Linux cookies), `bsd.rs` (4.4BSD's single queue) and
//! `freebsd.rs` (FreeBSD's syncache and its cookies).

mod bsd;
mod freebsd;
mod handshake;
mod linux;

pub(crate) use handshake::PassiveCtx;
pub use handshake::SynRecvInfo;

use crate::conn::Negotiated;
use crate::cookie::CookieKeys;
use crate::hash::{FourTuple, LocalMap, Secret, SeededState};
use crate::request::RequestTable;
use crate::slab::{Key, Slab};
use crate::{Duration, Instant};
use core::net::{IpAddr, SocketAddr};
use std::collections::{HashSet, VecDeque};
use synq_wire::SeqNumber;

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
    /// Modern FreeBSD: one syncache for every listener (buckets with a per-bucket and a
    /// total limit, oldest evicted), every SYN answered, FreeBSD's SYN cookies, and the
    /// floor(3q/2)+1 limit applied to completed connections when the final ACK comes.
    FreeBsd,
}

/// The model families: each has its own policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `linux`, `linux-4.10`.
    Linux,
    /// `bsd`, `bsd-exact`: one queue for half-open and established connections.
    Bsd,
    /// `freebsd`: the syncache.
    FreeBsd,
}

impl Model {
    /// Every model, in CLI order.
    pub const ALL: [Self; 5] = [
        Self::Linux,
        Self::Linux410,
        Self::Bsd,
        Self::BsdExact,
        Self::FreeBsd,
    ];

    /// The CLI name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Linux410 => "linux-4.10",
            Self::Bsd => "bsd",
            Self::BsdExact => "bsd-exact",
            Self::FreeBsd => "freebsd",
        }
    }

    /// The family whose policy the model follows.
    pub const fn family(self) -> Family {
        match self {
            Self::Linux | Self::Linux410 => Family::Linux,
            Self::Bsd | Self::BsdExact => Family::Bsd,
            Self::FreeBsd => Family::FreeBsd,
        }
    }

    /// One queue bounds half-open and established connections together.
    pub const fn single_queue(self) -> bool {
        matches!(self.family(), Family::Bsd)
    }

    /// A BSD stack on the wire: FreeBSD's option layout, RFC 5961 RST checks with
    /// `insecure_rst`, SYN+FIN taken as a SYN, no Minshall Nagle and no TSO.
    pub const fn bsd_wire(self) -> bool {
        !matches!(self.family(), Family::Linux)
    }

    /// The backlog listen() stores. Linux: `(unsigned)backlog > somaxconn` means somaxconn,
    /// so negative values become somaxconn. 4.4BSD: negative means 0, then
    /// `min(somaxconn)`. FreeBSD: negative or above somaxconn means somaxconn.
    pub fn clamp_backlog(self, backlog: i32, somaxconn: u32) -> u32 {
        match self.family() {
            Family::Linux => linux::clamp_backlog(backlog, somaxconn),
            Family::Bsd => bsd::clamp_backlog(backlog, somaxconn),
            Family::FreeBsd => freebsd::clamp_backlog(backlog, somaxconn),
        }
    }

    /// The somaxconn knob this model's listen() reads: `net.core.somaxconn`, or FreeBSD's
    /// `kern.ipc.somaxconn` (default 128).
    pub fn somaxconn(self, config: &crate::Config) -> u32 {
        match self.family() {
            Family::FreeBsd => config.kern_ipc_somaxconn,
            _ => config.somaxconn,
        }
    }

    /// Single-queue models: connections (half-open plus established) the listener holds at
    /// most. 4.4BSD `sonewconn` refuses when `qlen + q0len > 3q/2`.
    pub fn single_limit(self, backlog: u32) -> u64 {
        bsd::limit(self, backlog)
    }

    /// Two-queue models: is the SYN queue full (Linux `inet_csk_reqsk_queue_is_full`)?
    pub fn syn_queue_full(self, qlen: u32, backlog: u32) -> bool {
        linux::syn_queue_full(self, qlen, backlog)
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
            .ok_or("expected linux, linux-4.10, bsd, bsd-exact or freebsd")
    }
}

/// When a request's timer fires next after `n` SYN-ACK retransmissions (`n` already
/// incremented), given its age.
pub(crate) fn request_rto(model: Model, n: u8, age: Duration) -> Duration {
    match model.family() {
        Family::Linux => linux::request_rto(n),
        Family::Bsd => bsd::request_rto(n, age),
        Family::FreeBsd => freebsd::request_rto(n),
    }
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

/// A listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) local: SocketAddr,
    /// When listen() opened it.
    pub(crate) since: Instant,
    /// `sk_max_ack_backlog`: the listen() backlog after the clamp.
    pub(crate) backlog: u32,
    pub(crate) accept: AcceptQueue,
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
}

/// What the stack must do after the table handled a segment or a timer.
#[derive(Debug)]
pub(crate) enum Passive {
    /// Nothing goes out.
    Drop,
    /// A reply (a SYN-ACK, an ACK or an RST) is queued.
    Sent,
    /// The handshake completed: make the connection and queue it on `listener`.
    Child(Child),
}

/// A completed handshake, as the stack needs it to build the connection.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) listener: Key,
    pub(crate) tuple: FourTuple,
    pub(crate) iss: SeqNumber,
    pub(crate) irs: SeqNumber,
    pub(crate) neg: Negotiated,
}

/// Listeners, requests, cookie keys and peer metrics: the whole passive side.
#[derive(Debug)]
pub(crate) struct ListenTable {
    pub(crate) listeners: Slab<Listener>,
    pub(crate) by_addr: LocalMap<SocketAddr, Key>,
    pub(crate) requests: RequestTable,
    cookie_keys: CookieKeys,
    /// Peers with an RTT on record (Linux tcp_metrics, for `tcp_peer_is_proven`).
    metrics: HashSet<IpAddr, SeededState>,
    /// The peer last saved, known to be in `metrics` (entries are never removed): a peer
    /// that opens many connections (a proxy, a load balancer) is not hashed at each close.
    last_saved: Option<IpAddr>,
    /// FreeBSD's syncache buckets, pause and cookie secrets (used by that model only).
    syncache: freebsd::Syncache,
}

impl ListenTable {
    pub(crate) fn new(hash: SeededState, cookie_keys: CookieKeys, syncache_key: Secret) -> Self {
        Self {
            listeners: Slab::new(),
            by_addr: LocalMap::with_hasher(hash.local()),
            requests: RequestTable::new(hash),
            cookie_keys,
            metrics: HashSet::with_hasher(hash),
            last_saved: None,
            syncache: freebsd::Syncache::new(syncache_key),
        }
    }

    pub(crate) fn get(&self, l: Key) -> Option<&Listener> {
        self.listeners.get(l)
    }

    pub(crate) fn get_mut(&mut self, l: Key) -> Option<&mut Listener> {
        self.listeners.get_mut(l)
    }

    /// The listener for a local address: an exact match, else one on the wildcard address.
    // A hint measured faster per SYN (docs/performance-history.md, stop 21).
    #[inline]
    pub(crate) fn find(&self, local: SocketAddr) -> Option<Key> {
        let any = match local {
            SocketAddr::V4(_) => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
        };
        self.by_addr
            .get(&local)
            .or_else(|| self.by_addr.get(&SocketAddr::new(any, local.port())))
            .copied()
    }

    /// Whether a new listener on `local` would clash with one already bound.
    pub(crate) fn clashes(&self, local: SocketAddr) -> bool {
        self.by_addr.keys().any(|a| {
            a.port() == local.port()
                && a.is_ipv4() == local.is_ipv4()
                && (a.ip().is_unspecified() || local.ip().is_unspecified())
        })
    }

    /// `listen()` on an address already listening: only the backlog changes.
    pub(crate) fn relisten(&mut self, local: SocketAddr, backlog: u32) -> Option<Key> {
        let key = *self.by_addr.get(&local)?;
        if let Some(l) = self.listeners.get_mut(key) {
            l.backlog = backlog;
        }
        Some(key)
    }

    pub(crate) fn open(&mut self, now: Instant, local: SocketAddr, backlog: u32) -> Key {
        let key = self.listeners.insert(Listener::new(now, local, backlog));
        self.by_addr.insert(local, key);
        self.requests.open_counts(key);
        key
    }

    /// Remove a listener; returns it (its accept queue still full) for the stack to reset
    /// the children.
    pub(crate) fn remove(&mut self, l: Key) -> Option<Listener> {
        let listener = self.listeners.remove(l)?;
        self.by_addr.remove(&listener.local);
        self.requests.close_counts(l);
        Some(listener)
    }

    /// A completed connection joins the accept queue's tail.
    pub(crate) fn enqueue(&mut self, l: Key, conn: Key) {
        if let Some(listener) = self.listeners.get_mut(l) {
            listener.accept.push(conn);
        }
    }

    /// Linux `tcp_peer_is_proven`: an RTT for this peer is on record.
    pub(crate) fn is_proven(&self, ip: IpAddr) -> bool {
        self.metrics.contains(&ip)
    }

    /// Record a peer's RTT (Linux `tcp_update_metrics` when a connection ends); false when
    /// the table is full.
    pub(crate) fn save_metrics(&mut self, ip: IpAddr, max: u32) -> bool {
        if self.last_saved == Some(ip) {
            return true;
        }
        if !self.metrics.contains(&ip) {
            if self.metrics.len() >= max as usize {
                return false;
            }
            self.metrics.insert(ip);
        }
        self.last_saved = Some(ip);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_metrics_stop_at_their_bound_and_stay_proven() {
        use crate::cookie::CookieKeys;
        use crate::hash::{Secret, SeededState};
        let mut t = ListenTable::new(
            SeededState::new(1, 2),
            CookieKeys {
                k0: Secret::new(3, 4),
                k1: Secret::new(5, 6),
            },
            Secret::new(7, 8),
        );
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert!(t.save_metrics(ip(1), 2) && t.save_metrics(ip(1), 2));
        assert!(t.save_metrics(ip(2), 2));
        // Full: a third peer is refused (and not remembered as saved), known ones still
        // save, whichever was last.
        assert!(!t.save_metrics(ip(3), 2) && !t.save_metrics(ip(3), 2));
        assert!(!t.is_proven(ip(3)));
        assert!(t.save_metrics(ip(1), 2) && t.save_metrics(ip(2), 2));
        assert!(t.is_proven(ip(1)) && t.is_proven(ip(2)));
        assert_eq!(t.metrics.len(), 2);
    }

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
        assert_eq!("freebsd".parse::<Model>(), Ok(Model::FreeBsd));
        assert!("freebsd-13".parse::<Model>().is_err());
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
