//! `synq sim overflow` and `synq sim synflood`: what a listener's queues look like after a
//! burst of clients or a flood of spoofed SYNs, in the figures `ss` and `nstat` show.

use super::{subseed, SERVER_ADDR};
use crate::{Duration, HostId, Instant, LinkConfig, Network, SimError, Tap};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use synq_core::wire::{
    emit_packet, packet_len, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr, Timestamps,
};
use synq_core::{Config, ConnHandle, Driver, Event, ListenerHandle, Stack, State};

/// The listen-path counters spec/cli.md names (every report carries all counters; these
/// are the ones a backlog experiment is about).
pub const LISTEN_COUNTERS: [&str; 14] = [
    "TcpPassiveOpens",
    "TcpAttemptFails",
    "TcpRetransSegs",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPReqQFullDrop",
    "TcpExtTCPReqQFullDoCookies",
    "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv",
    "TcpExtSyncookiesFailed",
    "TcpExtTCPSynRetrans",
    "TcpExtTCPTimeouts",
    "TcpExtEmbryonicRsts",
    "TcpExtTCPDeferAcceptDrop",
];

/// The port the server listens on.
pub const PORT: u16 = 8080;

/// Inputs shared by both scenarios.
#[derive(Clone, Debug)]
pub struct BacklogParams {
    /// listen() backlog (any int: the model clamps it).
    pub backlog: i32,
    /// When the state is reported.
    pub duration: Duration,
    /// Round-trip propagation delay of every link.
    pub rtt: Duration,
    /// Stack configuration of every host (the server's model included).
    pub config: Config,
    /// Seed of every random choice.
    pub seed: u64,
    /// `TCP_DEFER_ACCEPT` seconds on the listener (0: off).
    pub defer_accept: u32,
}

impl Default for BacklogParams {
    fn default() -> Self {
        Self {
            backlog: 128,
            duration: Duration::from_millis(1500),
            rtt: Duration::from_micros(100),
            config: Config::default(),
            seed: 1,
            defer_accept: 0,
        }
    }
}

/// `ss -lnt` for the listener, plus the SYN-RECV count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ListenerReport {
    /// Accept queue length.
    pub recv_q: u32,
    /// Backlog after the clamp.
    pub send_q: u32,
    /// Half-open requests held.
    pub syn_recv: u32,
}

/// Client sockets by state (overflow only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientsReport {
    /// ESTABLISHED (or later: the handshake completed on the client's side).
    pub established: u32,
    /// Still in SYN_SENT.
    pub syn_sent: u32,
    /// connect() failed (timeout or RST).
    pub failed: u32,
}

/// The figures both scenarios report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacklogReport {
    /// Listener queues at `duration`.
    pub listener: ListenerReport,
    /// Client states at `duration` (zero for a flood).
    pub clients: ClientsReport,
    /// Connections accept() returned after the report (with `accept_after`).
    pub accepted_after: u32,
    /// SYN-ACKs the server sent, retransmissions and cookies included.
    pub synacks_sent: u64,
    /// Every server counter, by nstat name, zeros included.
    pub counters: Vec<(&'static str, u64)>,
    /// The freebsd model's syncache counters, by `struct tcpstat` name (zeros for the
    /// other models).
    pub freebsd_counters: Vec<(&'static str, u64)>,
    /// The server's sockets at `duration` as `ss -tan` lists them: connections (queued
    /// for accept() or not) and half-open requests (`SYN_RECEIVED`), local address order.
    pub sockets: Vec<SocketRow>,
}

/// One row of `ss -tan` on the server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SocketRow {
    /// RFC 9293 state name (`ESTABLISHED`, `SYN_RECEIVED`, ...).
    pub state: &'static str,
    /// Local address and port.
    pub local: SocketAddr,
    /// Peer address and port.
    pub remote: SocketAddr,
    /// Bytes readable.
    pub recv_q: usize,
    /// Bytes not yet acknowledged or not yet sent.
    pub send_q: usize,
    /// SYN-ACK retransmissions (half-open requests; 0 for connections).
    pub retransmits: u8,
}

impl BacklogReport {
    /// A server counter by nstat name (0 for a name the stack does not keep).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(0, |&(_, v)| v)
    }
}

/// A host of these scenarios. The stacks' applications act on their stacks' events,
/// which the network hands to [`Host::on_event`].
#[allow(clippy::large_enum_variant)]
pub enum Host {
    /// The listening server.
    Server(ServerHost),
    /// A client connecting once.
    Client(ClientHost),
    /// Spoofed SYNs, answered by nobody.
    Flood(Flooder),
}

/// The server's stack and its application: a listener that leaves connections queued
/// until told to accept (after the report), then accepts on every AcceptReady.
#[derive(Debug)]
pub struct ServerHost {
    stack: Stack,
    listener: ListenerHandle,
    accepting: bool,
    accepted: u32,
}

impl ServerHost {
    /// Start accepting at `now`: take every queued connection (the listener said so with
    /// its AcceptReady), and later ones as their events come.
    fn start_accepting(&mut self, now: Instant) {
        self.accepting = true;
        self.accept_all(now);
    }

    fn accept_all(&mut self, now: Instant) {
        while self.stack.accept(now, self.listener).is_ok() {
            self.accepted += 1;
        }
    }
}

/// A client's stack, its connection and what the connection's events said so far.
#[derive(Debug)]
pub struct ClientHost {
    stack: Stack,
    conn: ConnHandle,
    outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// No event yet: still in SYN_SENT.
    SynSent,
    /// Connected (a later TIME_WAIT still counts: the handshake completed).
    Established,
    /// Closed: connect() timed out or met an RST, or the connection was reset later.
    Failed,
}

impl Host {
    fn stack(&self) -> Option<&Stack> {
        match self {
            Self::Server(s) => Some(&s.stack),
            Self::Client(c) => Some(&c.stack),
            Self::Flood(_) => None,
        }
    }

    fn stack_mut(&mut self) -> Option<&mut Stack> {
        match self {
            Self::Server(s) => Some(&mut s.stack),
            Self::Client(c) => Some(&mut c.stack),
            Self::Flood(_) => None,
        }
    }

    fn server(&mut self) -> &mut ServerHost {
        match self {
            Self::Server(s) => s,
            _ => unreachable!("scenario hosts are fixed"),
        }
    }

    fn client(&self) -> &ClientHost {
        match self {
            Self::Client(c) => c,
            _ => unreachable!("scenario hosts are fixed"),
        }
    }

    /// The application's answer to an event of its stack at `now`.
    pub fn on_event(&mut self, now: Instant, event: Event) {
        match (self, event) {
            (Self::Server(s), Event::AcceptReady(_)) if s.accepting => s.accept_all(now),
            (Self::Client(c), Event::Connected(h)) if h == c.conn => {
                c.outcome = Outcome::Established;
            }
            (Self::Client(c), Event::Closed(h)) if h == c.conn => {
                // Closed also fires on entering TIME_WAIT, which is not a failure.
                if matches!(c.stack.state(h), Some(State::Closed) | None) {
                    c.outcome = Outcome::Failed;
                }
            }
            _ => {}
        }
    }
}

impl Driver for Host {
    type Event = Event;

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if let Some(s) = self.stack_mut() {
            s.handle_packet(now, packet);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = self.stack_mut() {
            s.handle_timeout(now);
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        match self {
            Self::Flood(f) => f.poll_transmit(now, buf),
            _ => self.stack_mut()?.poll_transmit(now, buf),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::Flood(f) => f.poll_timeout(),
            _ => self.stack()?.poll_timeout(),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.stack_mut()?.poll_event()
    }
}

/// Emits SYNs from distinct spoofed sources on a schedule; never answers.
///
/// SYN `i` leaves at `start + i * gap`. Due SYNs go out [`Flooder::BATCH`] per drain: the
/// flooder then asks to be woken at once, so that on a link without delay the listener takes
/// each batch before the next is made, and a flood of millions in one instant holds one batch
/// in flight, not millions.
#[derive(Debug)]
pub struct Flooder {
    dst: SocketAddr,
    total: u32,
    sent: u32,
    /// When SYN 0 leaves.
    start: Instant,
    /// Gap between SYNs (zero: all at once).
    gap: Duration,
    seed: u64,
    /// SYNs emitted in the current drain.
    burst: u32,
    /// Packet `i` comes from spoofed source `first_source + i`.
    first_source: u32,
    /// Bare ACKs with guessed acknowledgment numbers instead of SYNs.
    ack: bool,
}

/// Spoofed source `i`: address 198.18.0.1 + `i`, port 1024 + `i` mod 60 000. The addresses
/// stay in 198.18.0.0/15 (the benchmarking range) while `i` < 131 071; past that they run
/// on, wrapping at 2^32 (floods of 2^20 sources, and the latency benchmark's clients far from
/// them, live in memory only).
pub fn flood_source(i: u32) -> SocketAddr {
    let n = 0xC612_0001u32.wrapping_add(i);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), 1024 + (i % 60_000) as u16)
}

/// Spoofed IPv6 source `i`: in 2001:2::/48 (benchmarking range), one address and port each.
pub fn flood_source_v6(i: u32) -> SocketAddr {
    let n = 0x2001_0002_0000_0000_0000_0000_0000_0001u128 + u128::from(i);
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(n)), 1024 + (i % 60_000) as u16)
}

impl Flooder {
    /// SYNs emitted per drain at most (the network's buffer pool recycles this many).
    pub const BATCH: u32 = 4096;

    /// `total` packets to `dst`, packet `i` at `start + i * gap` from spoofed source
    /// `first_source + i`: SYNs, or with `ack` bare ACKs guessing a cookie.
    pub fn new(
        dst: SocketAddr,
        total: u32,
        start: Instant,
        gap: Duration,
        seed: u64,
        first_source: u32,
        ack: bool,
    ) -> Self {
        Self {
            dst,
            total,
            sent: 0,
            start,
            gap,
            seed,
            burst: 0,
            first_source,
            ack,
        }
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    fn due(&self) -> Instant {
        self.start + self.gap.saturating_mul(u64::from(self.sent))
    }
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (self.sent < self.total).then(|| self.due())
    }
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        if self.sent >= self.total || now < self.due() {
            self.burst = 0;
            return None;
        }
        if self.burst == Self::BATCH {
            // End this drain; `poll_timeout` (due now) brings the next.
            self.burst = 0;
            return None;
        }
        self.burst += 1;
        let r = subseed(self.seed, u64::from(self.sent));
        let src = self.first_source.wrapping_add(self.sent);
        if self.ack {
            forged_ack(src, r as u32, (r >> 32) as u32, self.dst, buf);
        } else {
            spoofed_syn(src, r as u32, self.dst, buf);
        }
        self.sent += 1;
        Some(buf.len())
    }
}

/// Write into `buf` a bare ACK from spoofed source `i` ([`flood_source`]) to `dst` with
/// sequence number `seq` and acknowledgment number `ack`: a blind guess at a SYN cookie
/// (a Linux client's window, timestamps on).
pub fn forged_ack(i: u32, seq: u32, ack: u32, dst: SocketAddr, buf: &mut Vec<u8>) {
    let options = TcpOptions {
        timestamps: Some(Timestamps {
            tsval: seq.rotate_left(7),
            tsecr: ack.rotate_left(11),
        }),
        ..TcpOptions::default()
    };
    spoofed(i, dst, (seq, ack), TcpFlags::ACK, 502, options, buf);
}

/// Write into `buf` the SYN of spoofed source `i` ([`flood_source`], or
/// [`flood_source_v6`] to an IPv6 `dst`) to `dst`: a Linux client's SYN (window 64240; MSS 1460, SACK-permitted, timestamps, window scale 7).
pub fn spoofed_syn(i: u32, isn: u32, dst: SocketAddr, buf: &mut Vec<u8>) {
    let options = TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        timestamps: Some(Timestamps {
            tsval: isn.rotate_left(7),
            tsecr: 0,
        }),
        window_scale: Some(7),
        ..TcpOptions::default()
    };
    spoofed(i, dst, (isn, 0), TcpFlags::SYN, 64240, options, buf);
}

/// A segment without payload from spoofed source `i` to `dst`.
fn spoofed(
    i: u32,
    dst: SocketAddr,
    (seq, ack): (u32, u32),
    flags: TcpFlags,
    window: u16,
    options: TcpOptions,
    buf: &mut Vec<u8>,
) {
    let src = match dst {
        SocketAddr::V4(_) => flood_source(i),
        SocketAddr::V6(_) => flood_source_v6(i),
    };
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window,
        urgent: 0,
        options,
        payload: &[],
    };
    let ip = IpRepr {
        src: src.ip(),
        dst: dst.ip(),
        hop_limit: 64,
    };
    buf.clear();
    buf.resize(packet_len(&ip, &tcp), 0);
    // Both addresses are of one family and the segment is small: emitting cannot fail.
    let _ = emit_packet(&ip, &tcp, buf);
}

fn network(p: &BacklogParams, tap: Option<Tap>) -> Result<Network<Host>, SimError> {
    let mut net = Network::new(p.seed);
    if let Some(tap) = tap {
        net.set_tap(tap);
    }
    net.try_set_default_link(LinkConfig {
        delay: Duration::from_micros(p.rtt.total_micros() / 2),
        ..LinkConfig::default()
    })?;
    net.set_event_hook(Box::new(|now, _, host: &mut Host, event| {
        host.on_event(now, event);
    }));
    Ok(net)
}

/// The listening server, at time zero.
fn server(net: &mut Network<Host>, p: &BacklogParams) -> HostId {
    let mut stack = Stack::new(p.config.clone(), subseed(p.seed, 0));
    stack.add_address(SERVER_ADDR);
    let listener = stack
        .listen(Instant::ZERO, SocketAddr::new(SERVER_ADDR, PORT), p.backlog)
        .expect("the scenario's listen address is free");
    if p.defer_accept > 0 {
        let _ = stack.set_defer_accept(listener, p.defer_accept);
    }
    let host = Host::Server(ServerHost {
        stack,
        listener,
        accepting: false,
        accepted: 0,
    });
    net.add_host(SERVER_ADDR, host)
}

fn report(net: &mut Network<Host>, srv: HostId) -> BacklogReport {
    let server = net.host_mut(srv).server();
    let (s, l) = (&server.stack, server.listener);
    let info = s.listener_info(l).expect("the listener is open");
    BacklogReport {
        listener: ListenerReport {
            recv_q: info.recv_q,
            send_q: info.send_q,
            syn_recv: info.syn_recv,
        },
        clients: ClientsReport::default(),
        accepted_after: 0,
        synacks_sent: s.counters().synacks_sent,
        counters: s.counters().iter().collect(),
        freebsd_counters: s.freebsd_counters().iter().collect(),
        sockets: sockets(s),
    }
}

fn sockets(s: &Stack) -> Vec<SocketRow> {
    let mut rows: Vec<SocketRow> = s
        .connections()
        .map(|c| SocketRow {
            state: c.state.as_str(),
            local: c.tuple.local,
            remote: c.tuple.remote,
            recv_q: c.recv_queue,
            send_q: c.send_queue,
            retransmits: 0,
        })
        .chain(s.syn_recv().map(|r| SocketRow {
            state: "SYN_RECEIVED",
            local: r.local,
            remote: r.remote,
            recv_q: 0,
            send_q: 0,
            retransmits: r.retransmits,
        }))
        .collect();
    rows.sort_by_key(|r| (r.local, r.remote));
    rows
}

/// Inputs of `synq sim overflow`.
#[derive(Clone, Debug)]
pub struct OverflowParams {
    /// Shared inputs.
    pub common: BacklogParams,
    /// Client hosts, each connecting once.
    pub clients: u32,
    /// Client `i` connects at `i * gap`.
    pub gap: Duration,
    /// Drain the accept queue after the report.
    pub accept_after: bool,
}

/// Client host `i`'s address: 10.1.0.0/16 upwards.
pub fn client_addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A01_0000u32 + 1 + i))
}

/// C clients connect `gap` apart to a listener that never accepts (before the report).
pub fn overflow(p: &OverflowParams) -> Result<BacklogReport, SimError> {
    overflow_tapped(p, None)
}

/// [`overflow`] with `tap` watching every packet (a [`crate::Capture`], say).
pub fn overflow_tapped(p: &OverflowParams, tap: Option<Tap>) -> Result<BacklogReport, SimError> {
    let c = &p.common;
    let mut net = network(c, tap)?;
    let srv = server(&mut net, c);
    let mut clients: Vec<HostId> = Vec::with_capacity(p.clients as usize);
    let dst = SocketAddr::new(SERVER_ADDR, PORT);
    for i in 0..p.clients {
        let at = Instant::ZERO + p.gap.saturating_mul(u64::from(i));
        if at > Instant::ZERO + c.duration {
            break;
        }
        net.try_run_until(at)?;
        let mut stack = Stack::new(c.config.clone(), subseed(c.seed, 1 + u64::from(i)));
        stack.add_address(client_addr(i));
        let conn = stack
            .connect(at, dst)
            .map_err(|e| SimError::InvalidLink(format!("client {i}: {e}")))?;
        let host = Host::Client(ClientHost {
            stack,
            conn,
            outcome: Outcome::SynSent,
        });
        clients.push(net.add_host(client_addr(i), host));
    }
    net.try_run_until(Instant::ZERO + c.duration)?;
    let mut r = report(&mut net, srv);
    // Clients not yet started (duration shorter than the schedule) count nowhere.
    for &id in &clients {
        match net.host(id).client().outcome {
            Outcome::SynSent => r.clients.syn_sent += 1,
            Outcome::Established => r.clients.established += 1,
            Outcome::Failed => r.clients.failed += 1,
        }
    }
    if p.accept_after {
        let now = net.now();
        let server = net.host_mut(srv).server();
        server.start_accepting(now);
        r.accepted_after = server.accepted;
    }
    Ok(r)
}

/// Inputs of `synq sim synflood`.
#[derive(Clone, Debug)]
pub struct SynfloodParams {
    /// Shared inputs.
    pub common: BacklogParams,
    /// SYNs sent, each from its own spoofed address and port.
    pub syns: u32,
    /// SYNs per second (None: all at time zero).
    pub rate: Option<f64>,
}

/// N spoofed SYNs arrive at a listener; nobody answers the SYN-ACKs.
pub fn synflood(p: &SynfloodParams) -> Result<BacklogReport, SimError> {
    synflood_tapped(p, None)
}

/// [`synflood`] with `tap` watching every packet (a [`crate::Capture`], say).
pub fn synflood_tapped(p: &SynfloodParams, tap: Option<Tap>) -> Result<BacklogReport, SimError> {
    let c = &p.common;
    let mut net = network(c, tap)?;
    let srv = server(&mut net, c);
    let gap = match p.rate {
        Some(r) if r > 0.0 => Duration::from_micros((1e6 / r).round() as u64),
        _ => Duration::ZERO,
    };
    // SYN i reaches the listener at i * gap + rtt / 2, as across the scenario's links; the
    // flooder sends it at that instant over a link without delay, so that SYNs in flight are
    // one batch (see `Flooder`) however many arrive at once.
    let one_way = Duration::from_micros(c.rtt.total_micros() / 2);
    let flooder = Flooder::new(
        SocketAddr::new(SERVER_ADDR, PORT),
        p.syns,
        Instant::ZERO + one_way,
        gap,
        c.seed,
        0,
        false,
    );
    // The flooder's own address; replies to the spoofed sources are unroutable, as on a
    // real network where nobody owns them.
    let f = net.add_host(
        IpAddr::V4(Ipv4Addr::new(198, 19, 255, 254)),
        Host::Flood(flooder),
    );
    let direct = LinkConfig {
        delay: Duration::ZERO,
        ..LinkConfig::default()
    };
    net.try_set_link(f, srv, direct)?;
    net.try_run_until(Instant::ZERO + c.duration)?;
    Ok(report(&mut net, srv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_DRAIN;

    #[test]
    fn flood_sources_are_defined_for_every_index() {
        let at = |i: u32| flood_source(i).to_string();
        assert_eq!(at(0), "198.18.0.1:1024");
        assert_eq!(at(131_070), "198.19.255.255:12094");
        // Past the top of the address space they wrap (a debug build once panicked here).
        assert_eq!(at(u32::MAX - 0xC612_0000), "0.0.0.0:19903");
        assert_eq!(at(u32::MAX), "198.18.0.0:48319");
    }

    #[test]
    fn a_flood_larger_than_a_drain_arrives_in_batches() {
        let config = Config {
            tcp_syncookies: synq_core::Syncookies::Always,
            ..Config::default()
        };
        let syns = MAX_DRAIN as u32 + 1;
        let p = SynfloodParams {
            common: BacklogParams {
                backlog: 5,
                duration: Duration::from_millis(1),
                config,
                ..BacklogParams::default()
            },
            syns,
            rate: None,
        };
        let r = synflood(&p).expect("runs");
        assert_eq!(r.synacks_sent, u64::from(syns));
        assert_eq!(r.listener.syn_recv, 0);
    }

    #[test]
    fn flood_syns_arrive_half_a_round_trip_in() {
        // One SYN at 2 ms (rtt 4 ms): not there at 1.999 ms, there at 2 ms.
        let at = |ms: u64, us: u64| {
            let p = SynfloodParams {
                common: BacklogParams {
                    backlog: 5,
                    rtt: Duration::from_millis(4),
                    duration: Duration::from_millis(ms) + Duration::from_micros(us),
                    ..BacklogParams::default()
                },
                syns: 1,
                rate: None,
            };
            synflood(&p).expect("runs").listener.syn_recv
        };
        assert_eq!((at(1, 999), at(2, 0)), (0, 1));
    }
}
