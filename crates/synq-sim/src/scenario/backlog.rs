//! `synq sim overflow` and `synq sim synflood`: what a listener's queues look like after a
//! burst of clients or a flood of spoofed SYNs, in the figures `ss` and `nstat` show.

use super::{subseed, SERVER_ADDR};
use crate::{Duration, Instant, LinkConfig, Network, Node, SimError};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use synq_core::wire::{
    emit_packet, packet_len, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr, Timestamps,
};
use synq_core::{Config, ConnHandle, ListenerHandle, Stack, State};

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

/// A host of these scenarios: a real stack, or a source of spoofed SYNs.
#[allow(clippy::large_enum_variant)]
pub enum Host {
    /// A synq stack.
    Stack(Stack),
    /// Spoofed SYNs, answered by nobody.
    Flood(Flooder),
}

impl Node for Host {
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        match self {
            Self::Stack(s) => s.handle_packet(now, packet),
            Self::Flood(_) => {}
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if let Self::Stack(s) = self {
            s.handle_timeout(now);
        }
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        match self {
            Self::Stack(s) => s.poll_transmit(now, buf).is_some(),
            Self::Flood(f) => f.poll_transmit(now, buf),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::Stack(s) => s.poll_timeout(),
            Self::Flood(f) => f.poll_timeout(),
        }
    }
}

impl Host {
    fn stack(&mut self) -> &mut Stack {
        match self {
            Self::Stack(s) => s,
            Self::Flood(_) => unreachable!("scenario hosts are fixed"),
        }
    }
}

/// Emits SYNs from distinct spoofed sources on a schedule; never answers.
#[derive(Debug)]
pub struct Flooder {
    dst: SocketAddr,
    total: u32,
    sent: u32,
    /// Gap between SYNs (zero: all at once).
    gap: Duration,
    seed: u64,
}

/// Spoofed source `i`: 198.18.0.0/15 (benchmarking range), one address and port each.
pub fn flood_source(i: u32) -> SocketAddr {
    let n = 0xC612_0000u32 + 1 + i;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), 1024 + (i % 60_000) as u16)
}

impl Flooder {
    fn due(&self) -> Instant {
        Instant::ZERO + self.gap.saturating_mul(u64::from(self.sent))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (self.sent < self.total).then(|| self.due())
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if self.sent >= self.total || now < self.due() {
            return false;
        }
        let isn = subseed(self.seed, u64::from(self.sent)) as u32;
        spoofed_syn(self.sent, isn, self.dst, buf);
        self.sent += 1;
        true
    }
}

/// Write into `buf` the SYN of spoofed source `i` ([`flood_source`]) to `dst`: a Linux
/// client's SYN (window 64240; MSS 1460, SACK-permitted, timestamps, window scale 7).
pub fn spoofed_syn(i: u32, isn: u32, dst: SocketAddr, buf: &mut Vec<u8>) {
    let src = flood_source(i);
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
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq: SeqNumber(isn),
        ack: SeqNumber(0),
        flags: TcpFlags::SYN,
        window: 64240,
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
    // Both addresses are IPv4 and the segment is small: emitting cannot fail.
    let _ = emit_packet(&ip, &tcp, buf);
}

fn network(p: &BacklogParams) -> Result<Network<Host>, SimError> {
    let mut net = Network::new(p.seed);
    net.try_set_default_link(LinkConfig {
        delay: Duration::from_micros(p.rtt.total_micros() / 2),
        ..LinkConfig::default()
    })?;
    Ok(net)
}

fn server(net: &mut Network<Host>, p: &BacklogParams) -> (usize, ListenerHandle) {
    let mut s = Stack::new(p.config.clone(), subseed(p.seed, 0));
    s.add_address(SERVER_ADDR);
    let l = s
        .listen(Instant::ZERO, SocketAddr::new(SERVER_ADDR, PORT), p.backlog)
        .expect("the scenario's listen address is free");
    if p.defer_accept > 0 {
        let _ = s.set_defer_accept(l, p.defer_accept);
    }
    (net.add_host(SERVER_ADDR, Host::Stack(s)), l)
}

fn report(net: &mut Network<Host>, srv: usize, l: ListenerHandle) -> BacklogReport {
    let s = net.host_mut(srv).stack();
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
    }
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
    let c = &p.common;
    let mut net = network(c)?;
    let (srv, l) = server(&mut net, c);
    let mut clients: Vec<(usize, ConnHandle)> = Vec::with_capacity(p.clients as usize);
    let dst = SocketAddr::new(SERVER_ADDR, PORT);
    for i in 0..p.clients {
        let at = Instant::ZERO + p.gap.saturating_mul(u64::from(i));
        if at > Instant::ZERO + c.duration {
            break;
        }
        net.run_until(at);
        let mut s = Stack::new(c.config.clone(), subseed(c.seed, 1 + u64::from(i)));
        s.add_address(client_addr(i));
        let id = net.add_host(client_addr(i), Host::Stack(s));
        let h = net
            .host_mut(id)
            .stack()
            .connect(at, dst)
            .map_err(|e| SimError::InvalidLink(format!("client {i}: {e}")))?;
        clients.push((id, h));
    }
    net.run_until(Instant::ZERO + c.duration);
    let mut r = report(&mut net, srv, l);
    for &(id, h) in &clients {
        let s = net.host_mut(id).stack();
        match s.state(h) {
            Some(State::SynSent) => r.clients.syn_sent += 1,
            Some(State::Closed) | None => r.clients.failed += 1,
            Some(_) => r.clients.established += 1,
        }
    }
    // Clients not yet started (duration shorter than the schedule) count nowhere.
    if p.accept_after {
        let now = net.now();
        let s = net.host_mut(srv).stack();
        while s.accept(now, l).is_ok() {
            r.accepted_after += 1;
        }
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
    let c = &p.common;
    let mut net = network(c)?;
    let (srv, l) = server(&mut net, c);
    let gap = match p.rate {
        Some(r) if r > 0.0 => Duration::from_micros((1e6 / r).round() as u64),
        _ => Duration::ZERO,
    };
    let flooder = Flooder {
        dst: SocketAddr::new(SERVER_ADDR, PORT),
        total: p.syns,
        sent: 0,
        gap,
        seed: c.seed,
    };
    // The flooder's own address; replies to the spoofed sources are unroutable, as on a
    // real network where nobody owns them.
    net.add_host(
        IpAddr::V4(Ipv4Addr::new(198, 19, 255, 254)),
        Host::Flood(flooder),
    );
    net.run_until(Instant::ZERO + c.duration);
    Ok(report(&mut net, srv, l))
}
