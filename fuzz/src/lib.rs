//! Shared pieces of synq's fuzz targets: the framing of packet sequences, checksum repair,
//! the prepared server the packet targets attack, and the invariants every target checks.
//!
//! The same fixture is built by the corpus seeder (`examples/seed.rs`), so seeded packets
//! carry the sequence numbers of the fixture's live connections.

use core::net::{IpAddr, SocketAddr};
use std::collections::BTreeMap;
use synq_core::{Config, ConnHandle, Counters, Instant, ListenerHandle, Model, Stack, State};
use synq_sim::scenario::{CLIENT_ADDR, CLIENT_ADDR6, SERVER_ADDR, SERVER_ADDR6};
use synq_wire::{
    emit_packet, packet_len, parse_packet, ChecksumMode, IpRepr, Ipv4Packet, Ipv6Packet, SeqNumber,
    TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};

pub use synq_core;
pub use synq_sim;
pub use synq_wire;

/// The fixture's IPv4 listener port (the simulator's, so captured SYNs reach it).
pub const PORT4: u16 = synq_sim::scenario::PORT;
/// The fixture's wildcard IPv6 listener port.
pub const PORT6: u16 = 8081;
/// Upper bound on steps of any settling loop (a runaway is a finding, not a hang).
const SETTLE_STEPS: usize = 20_000;

// ------------------------------------------------------------------ framing

/// One frame of a `stack_packet` input: a control byte, then the packet.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Bit 0: repair the IPv4 header and TCP checksums first. Bit 1: hand the packet in with
    /// [`Stack::handle_packet_verified`]. Bits 2-4: advance virtual time by `4^k - 1` ms
    /// after it (timers fire).
    pub ctl: u8,
    /// The IP packet.
    pub packet: &'a [u8],
}

/// Split `data` into frames: `[ctl, len_hi, len_lo, packet...]` repeated; a short tail is
/// the last packet.
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    core::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            _ => (rest.len(), &[][..]),
        };
        let n = len.min(rest.len());
        let (packet, tail) = rest.split_at(n);
        data = tail;
        Some(Frame { ctl, packet })
    })
}

/// Run a packet-sequence target on `data` once per backlog model; inputs over 64 KB are
/// skipped (each model replays the whole input against a fresh fixture).
pub fn each_model(data: &[u8], run: impl Fn(Model, &[u8])) {
    if data.len() > 64 << 10 {
        return;
    }
    for model in Model::ALL {
        run(model, data);
    }
}

/// Encode frames as [`frames`] reads them.
pub fn encode_frames<'a>(frames: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (ctl, p) in frames {
        let n = p.len().min(usize::from(u16::MAX));
        out.push(ctl);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&p[..n]);
    }
    out
}

/// Rewrite the IPv4 header checksum and the TCP checksum of `packet` in place, where the
/// headers are long enough to have them; anything else is left as it is.
pub fn fix_checksums(packet: &mut [u8]) {
    let Some(&first) = packet.first() else {
        return;
    };
    match first >> 4 {
        4 => {
            let Ok(mut p) = Ipv4Packet::new_checked(&mut *packet) else {
                return;
            };
            p.fill_checksum();
            let (src, dst) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()));
            let (hl, total) = (p.header_len(), usize::from(p.total_len()));
            if let Some(seg) = packet.get_mut(hl..total) {
                fix_tcp(seg, &src, &dst);
            }
        }
        6 => {
            let Ok(p) = Ipv6Packet::new_checked(&*packet) else {
                return;
            };
            let (src, dst) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
            let end = 40 + usize::from(p.payload_len());
            if let Some(seg) = packet.get_mut(40..end) {
                fix_tcp(seg, &src, &dst);
            }
        }
        _ => {}
    }
}

fn fix_tcp(seg: &mut [u8], src: &IpAddr, dst: &IpAddr) {
    if let Ok(mut t) = TcpPacket::new_checked(seg) {
        t.fill_checksum(src, dst);
    }
}

// ------------------------------------------------------------------ stacks

/// Packets one stack sent, as the driver drained them.
pub type Out = Vec<Vec<u8>>;

/// Drain `stack`'s transmit queue and events, checking what it emits: every packet parses
/// with checksums verified and comes from one of `ours`; `IpOutRequests` grows by exactly
/// the packets drained.
pub fn drain(stack: &mut Stack, now: Instant, ours: &[IpAddr], out: &mut Out) {
    let before = stack.counters().ip_out_requests;
    let mut buf = Vec::new();
    let mut n_out = 0u64;
    while let Some(n) = stack.poll_transmit(now, &mut buf) {
        n_out += 1;
        assert!(n_out < 1_000_000, "poll_transmit never ends");
        let p = parse_packet(&buf[..n], ChecksumMode::Verify)
            .unwrap_or_else(|e| panic!("stack emitted a packet that does not parse: {e}"));
        assert!(ours.contains(&p.ip.src), "emitted from {}", p.ip.src);
        out.push(buf[..n].to_vec());
    }
    assert_eq!(
        stack.counters().ip_out_requests - before,
        n_out,
        "IpOutRequests disagrees with the packets drained"
    );
    let mut events = 0u32;
    while stack.poll_event().is_some() {
        events += 1;
        assert!(events < 1_000_000, "poll_event never ends");
    }
}

/// Fire every timer due by `now`; a timer that stays due after firing is fired again, a
/// bounded number of times.
pub fn fire(stack: &mut Stack, now: Instant) {
    for _ in 0..64 {
        match stack.poll_timeout() {
            Some(t) if t <= now => stack.handle_timeout(now),
            _ => return,
        }
    }
}

/// A malformed-input counter total: every counter the stack bumps when it drops a packet it
/// cannot parse or that is not for it.
pub fn malformed(c: &Counters) -> u64 {
    c.ip_in_hdr_errors
        + c.ip_in_truncated
        + c.ip_in_addr_errors
        + c.ip_in_unknown_protos
        + c.ip_reasm_fails
        + c.in_errs
        + c.in_truncated_segs
}

/// Counters that only ever grow (every one but the `TcpCurrEstab` gauge).
pub fn check_monotonic(before: &Counters, after: &Counters) {
    for ((name, a), (_, b)) in before.iter().zip(after.iter()) {
        if name != "TcpCurrEstab" {
            assert!(b >= a, "counter {name} went down: {a} -> {b}");
        }
    }
}

/// Highest backlog each listener address has had, so bounds survive a listen() that lowers
/// it (queued connections stay).
#[derive(Debug, Default)]
pub struct Bounds {
    backlog: BTreeMap<SocketAddr, u32>,
}

impl Bounds {
    /// Check `stack`'s bookkeeping ([`Stack::audit`]), its listeners' queues against their
    /// model's bounds, and `TcpCurrEstab` against the connection listing.
    pub fn check(&mut self, stack: &Stack) {
        if let Err(e) = stack.audit() {
            panic!("audit: {e}");
        }
        let model = stack.config().model;
        let reopens = stack.counters().tw_syn_reopen;
        for l in stack.listeners() {
            let b = self.backlog.entry(l.local).or_default();
            *b = (*b).max(l.send_q);
            let b = *b;
            if model.family() == synq_core::Family::FreeBsd {
                // The syncache is shared and bounded by its own limits; the listen queue
                // holds at most floor(3q/2)+1 completed connections.
                let cfg = stack.config();
                assert!(
                    u64::from(l.recv_q) <= 3 * u64::from(b) / 2 + 1,
                    "freebsd listener {}: {} completed over backlog {b}",
                    l.local,
                    l.recv_q
                );
                assert!(
                    u64::from(l.syn_recv) <= u64::from(cfg.syncache_cachelimit),
                    "freebsd listener {}: {} entries over the cache limit",
                    l.local,
                    l.syn_recv
                );
            } else if model.single_queue() {
                let held = u64::from(l.recv_q) + u64::from(l.syn_recv);
                assert!(
                    held <= model.single_limit(b) + reopens,
                    "{model} listener {}: {} queued + {} half-open over backlog {b}",
                    l.local,
                    l.recv_q,
                    l.syn_recv
                );
            } else {
                assert!(
                    u64::from(l.recv_q) <= u64::from(b) + 1,
                    "{model} listener {}: accept queue {} over backlog {b}",
                    l.local,
                    l.recv_q
                );
                assert!(
                    u64::from(l.syn_recv) <= u64::from(b) + 1 + reopens,
                    "{model} listener {}: SYN queue {} over backlog {b}",
                    l.local,
                    l.syn_recv
                );
            }
        }
        let estab = stack
            .connections()
            .filter(|c| matches!(c.state, State::Established | State::CloseWait))
            .count() as u64;
        assert_eq!(
            estab,
            stack.counters().curr_estab,
            "TcpCurrEstab disagrees with the connection listing"
        );
    }

    /// Forget a listener's history (it was closed; a new one starts afresh).
    pub fn forget(&mut self, local: SocketAddr) {
        self.backlog.remove(&local);
    }
}

/// `accept()` hands out only connections whose handshake completed: ESTABLISHED, or
/// CLOSE_WAIT (the peer's FIN came while it was queued) or CLOSED with the error that
/// closed it (reset or timed out while queued), as Linux's accept() returns them.
pub fn check_accepted(stack: &Stack, h: ConnHandle) {
    let info = stack.info(h).expect("accepted handle is live");
    let ok = match info.state {
        State::Established | State::CloseWait => true,
        State::Closed => info.error.is_some(),
        _ => false,
    };
    assert!(ok, "accept() returned a connection in {:?}", info.state);
}

// ------------------------------------------------------------------ the fixture

/// Two stacks joined by an instant wire: the server the packet targets attack and a client
/// that opened real connections to it.
pub struct Fixture {
    /// The server under attack.
    pub server: Stack,
    /// A well-behaved client.
    pub client: Stack,
    /// Virtual time.
    pub now: Instant,
    /// The server's listeners: IPv4 `SERVER_ADDR:8080`, wildcard IPv6 `[::]:8081`.
    pub listeners: [ListenerHandle; 2],
    /// Server-side handles accepted during setup.
    pub accepted: Vec<ConnHandle>,
    /// Client-side handles.
    pub clients: Vec<ConnHandle>,
}

/// The server's addresses.
pub const SERVER: [IpAddr; 2] = [SERVER_ADDR, SERVER_ADDR6];
/// The client's addresses.
pub const CLIENT: [IpAddr; 2] = [CLIENT_ADDR, CLIENT_ADDR6];

impl Fixture {
    /// Server in `model` with two listeners, live connections (accepted and still queued,
    /// with data both ways and in flight), and half-open requests from spoofed SYNs.
    pub fn new(model: Model) -> Self {
        let config = Config {
            model,
            ..Config::default()
        };
        Self::with_configs(config, Config::default())
    }

    /// [`Fixture::new`] with `config` on both stacks (the model is the config's).
    pub fn with_config(config: Config) -> Self {
        Self::with_configs(config.clone(), config)
    }

    /// [`Fixture::new`] with a configuration per stack. Connections the configuration
    /// refuses (a full table, say) are simply missing.
    pub fn with_configs(server_config: Config, client_config: Config) -> Self {
        let mut server = Stack::new(server_config, 0x5eed);
        server.add_address(SERVER_ADDR);
        server.add_address(SERVER_ADDR6);
        let mut client = Stack::new(client_config, 0xc11e);
        client.add_address(CLIENT_ADDR);
        client.add_address(CLIENT_ADDR6);
        let now = Instant::ZERO;
        let l4 = server
            .listen(now, SocketAddr::new(SERVER_ADDR, PORT4), 4)
            .expect("fixture listen v4");
        let l6 = server
            .listen(now, SocketAddr::new("::".parse().unwrap(), PORT6), 2)
            .expect("fixture listen v6");
        let mut f = Self {
            server,
            client,
            now,
            listeners: [l4, l6],
            accepted: Vec::new(),
            clients: Vec::new(),
        };
        for dst in [
            SocketAddr::new(SERVER_ADDR, PORT4),
            SocketAddr::new(SERVER_ADDR, PORT4),
            SocketAddr::new(SERVER_ADDR6, PORT6),
        ] {
            if let Ok(c) = f.client.connect(f.now, dst) {
                f.clients.push(c);
            }
        }
        f.settle(f.now + synq_core::Duration::from_millis(50));
        for l in [l4, l6] {
            if let Ok((h, _)) = f.server.accept(f.now, l) {
                f.accepted.push(h);
            }
        }
        for &c in &f.clients {
            let _ = f.client.send(f.now, c, &[b'c'; 300]);
        }
        for &s in &f.accepted {
            let _ = f.server.send(f.now, s, &[b's'; 200]);
        }
        f.settle(f.now + synq_core::Duration::from_millis(50));
        // Data left in flight: the client's next segment is unacknowledged.
        for &c in &f.clients {
            let _ = f.client.send(f.now, c, &[b'd'; 100]);
        }
        let mut out = Vec::new();
        drain(&mut f.client, f.now, &CLIENT, &mut out);
        // Half-open requests: spoofed SYNs whose SYN-ACKs go nowhere.
        for i in 0..2u16 {
            let from = SocketAddr::new(IpAddr::from([10, 1, 0, 1 + i as u8]), 40000 + i);
            let syn = segment(
                from,
                SocketAddr::new(SERVER_ADDR, PORT4),
                TcpFlags::SYN,
                SeqNumber(1000 * u32::from(i)),
                SeqNumber(0),
                &[],
            );
            f.server.handle_packet(f.now, &syn);
        }
        let from = SocketAddr::new("2001:db8::99".parse().unwrap(), 40100);
        let syn = segment(
            from,
            SocketAddr::new(SERVER_ADDR6, PORT6),
            TcpFlags::SYN,
            SeqNumber(77),
            SeqNumber(0),
            &[],
        );
        f.server.handle_packet(f.now, &syn);
        drain(&mut f.server, f.now, &SERVER, &mut Vec::new());
        f
    }

    /// Exchange packets and fire timers until nothing is due before `until`; `now` ends at
    /// `until`. Packets for addresses neither stack owns vanish.
    pub fn settle(&mut self, until: Instant) {
        for _ in 0..SETTLE_STEPS {
            let mut moved = false;
            let mut out = Vec::new();
            drain(&mut self.server, self.now, &SERVER, &mut out);
            for p in out.drain(..) {
                if synq_wire::peek_dst(&p).is_some_and(|d| CLIENT.contains(&d)) {
                    self.client.handle_packet(self.now, &p);
                    moved = true;
                }
            }
            drain(&mut self.client, self.now, &CLIENT, &mut out);
            for p in out.drain(..) {
                if synq_wire::peek_dst(&p).is_some_and(|d| SERVER.contains(&d)) {
                    self.server.handle_packet(self.now, &p);
                    moved = true;
                }
            }
            if moved {
                continue;
            }
            let next = [self.server.poll_timeout(), self.client.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.server.handle_timeout(self.now);
                    self.client.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }
}

/// An IP packet with one TCP segment and no options, checksums filled.
pub fn segment(
    from: SocketAddr,
    to: SocketAddr,
    flags: TcpFlags,
    seq: SeqNumber,
    ack: SeqNumber,
    payload: &[u8],
) -> Vec<u8> {
    segment_with(
        from,
        to,
        flags,
        seq,
        ack,
        1000,
        TcpOptions::default(),
        payload,
    )
}

/// [`segment`] with a window and options.
#[allow(clippy::too_many_arguments)]
pub fn segment_with(
    from: SocketAddr,
    to: SocketAddr,
    flags: TcpFlags,
    seq: SeqNumber,
    ack: SeqNumber,
    window: u16,
    options: TcpOptions,
    payload: &[u8],
) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: from.port(),
        dst_port: to.port(),
        seq,
        ack,
        flags,
        window,
        urgent: 0,
        options,
        payload,
    };
    let ip = IpRepr {
        src: from.ip(),
        dst: to.ip(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; packet_len(&ip, &tcp)];
    match emit_packet(&ip, &tcp, &mut buf) {
        Ok(n) => buf.truncate(n),
        Err(_) => buf.clear(),
    }
    buf
}
