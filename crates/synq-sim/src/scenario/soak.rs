//! A soak: thousands of connections over hours of virtual time through a link that loses,
//! reorders, duplicates, corrupts and flaps. Each client sends a stream whose every byte the
//! server can predict (its first eight bytes name the stream); the server checks each byte
//! in order as it reads. The report says how many streams arrived whole, how many ended in
//! a clear error, whether any wrong byte was ever delivered, and what is left alive at the
//! end (nothing should be).

use super::subseed;
use crate::{LinkConfig, LinkStats, Network, SimError, DEFAULT_STEP_LIMIT};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::BTreeMap;
use synq_core::{
    Config, ConnHandle, Driver, Duration, Errno, Event, Instant, ListenerHandle, Stack,
};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2));
const PORT: u16 = 7000;

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakParams {
    /// Connections opened, one every `span / connections`.
    pub connections: u32,
    /// Bytes each client sends (after its 8-byte stream id).
    pub bytes: u64,
    /// Time over which the connections open.
    pub span: Duration,
    /// Time after the last opening for the last ones to finish and TIME_WAIT to end.
    pub settle: Duration,
    /// Both directions' link.
    pub link: LinkConfig,
    /// Seed of every random choice.
    pub seed: u64,
    /// Both stacks' configuration. The default's one change from Linux's is
    /// `tcp_keepalive_time` at 300 s (Linux: 7200), which the server's connections use
    /// (SO_KEEPALIVE). When the SYN queue overflows (thousands of connections opened at
    /// once), the server answers with SYN cookies, and a client's data segment that
    /// arrives ahead of its handshake's ACK fails the cookie check (taken against its
    /// sequence number minus one) and is answered with a reset, as on Linux. The late ACK
    /// then passes it and makes a connection whose client is gone: established, with
    /// nothing to send, it would outlive any settling time without keepalive, on Linux
    /// as here.
    pub config: Config,
}

impl Default for SoakParams {
    /// Two hours, 2000 connections of 20 kB, over 2 % loss, 2 % reordering, 1 %
    /// duplication, 0.5 % corruption and a 10 s outage every 10 minutes.
    fn default() -> Self {
        Self {
            connections: 2000,
            bytes: 20_000,
            span: Duration::from_secs(7200),
            settle: Duration::from_secs(1800),
            link: LinkConfig {
                delay: Duration::from_millis(5),
                loss: 0.02,
                reorder: 0.02,
                reorder_delay: Duration::from_millis(10),
                duplicate: 0.01,
                corrupt: 0.005,
                flap_every: Duration::from_secs(600),
                flap_down: Duration::from_secs(10),
                ..LinkConfig::default()
            },
            seed: 1,
            config: Config {
                tcp_keepalive_time: 300,
                ..Config::default()
            },
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SoakReport {
    /// Connections the clients opened.
    pub opened: u64,
    /// Streams the server read whole, every byte as predicted, to the end of stream.
    pub intact: u64,
    /// Connections that ended in an error on the client's side, by errno name.
    pub client_errors: BTreeMap<String, u64>,
    /// Connections that ended in an error on the server's side, by errno name.
    pub server_errors: BTreeMap<String, u64>,
    /// Bytes the server checked.
    pub bytes_checked: u64,
    /// Bytes that differed from the prediction (a wrong, duplicated or misordered byte
    /// handed to the application). Must be 0.
    pub bad_bytes: u64,
    /// Streams that ended (FIN) short of their length. Must be 0.
    pub short_streams: u64,
    /// Connections, half-open requests and orphans left at the end, both hosts.
    pub live_at_end: u64,
    /// Packets the link corrupted, and those the stacks dropped as malformed or with a bad
    /// checksum (every corrupted packet must be among them).
    pub corrupted: u64,
    /// Packets dropped by the receiving stacks' header and checksum checks.
    pub checksum_drops: u64,
    /// Both directions' link counters.
    pub links: LinkStats,
    /// Virtual seconds run.
    pub virtual_secs: f64,
}

/// The byte at `off` of stream `id`.
fn byte(id: u64, off: u64) -> u8 {
    (subseed(id, off) >> 56) as u8
}

/// A client's stream.
struct Tx {
    id: u64,
    /// Bytes written so far, the 8-byte id included.
    written: u64,
    shut: bool,
}

/// A stream the server reads.
#[derive(Default)]
struct Rx {
    head: Vec<u8>,
    id: Option<u64>,
    off: u64,
}

enum App {
    Client {
        opened: u32,
        next_at: Instant,
        streams: BTreeMap<ConnHandle, Tx>,
    },
    Server {
        listener: ListenerHandle,
        streams: BTreeMap<ConnHandle, Rx>,
    },
}

struct Host {
    stack: Stack,
    app: App,
    p: SoakParams,
    report: SoakReport,
    buf: Vec<u8>,
}

fn errno(stack: &Stack, h: ConnHandle) -> Option<String> {
    stack
        .info(h)
        .and_then(|i| i.error)
        .map(|e| e.errno_name().to_string())
}

impl Host {
    fn gap(&self) -> Duration {
        Duration::from_micros(self.p.span.total_micros() / u64::from(self.p.connections.max(1)))
    }

    fn open_due(&mut self, now: Instant) {
        let gap = self.gap();
        let total = self.p.connections;
        let App::Client {
            opened,
            next_at,
            streams,
        } = &mut self.app
        else {
            return;
        };
        while *opened < total && *next_at <= now {
            *opened += 1;
            *next_at += gap;
            self.report.opened += 1;
            match self.stack.connect(now, SocketAddr::new(SERVER, PORT)) {
                Ok(h) => {
                    let tx = Tx {
                        id: u64::from(*opened),
                        written: 0,
                        shut: false,
                    };
                    streams.insert(h, tx);
                }
                Err(e) => {
                    let name = e.errno_name().to_string();
                    *self.report.client_errors.entry(name).or_default() += 1;
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: Event) {
        let total = self.p.bytes + 8;
        match (&mut self.app, ev) {
            (App::Client { streams, .. }, Event::Connected(h) | Event::Writable(h)) => {
                let Some(tx) = streams.get_mut(&h) else {
                    return;
                };
                while tx.written < total {
                    let n = (total - tx.written).min(self.buf.len() as u64) as usize;
                    for (i, b) in self.buf[..n].iter_mut().enumerate() {
                        let at = tx.written + i as u64;
                        *b = if at < 8 {
                            tx.id.to_le_bytes()[at as usize]
                        } else {
                            byte(tx.id, at - 8)
                        };
                    }
                    match self.stack.send(now, h, &self.buf[..n]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => tx.written += k as u64,
                    }
                }
                if tx.written == total && !tx.shut {
                    tx.shut = true;
                    let _ = self.stack.shutdown(now, h);
                }
            }
            (App::Client { streams, .. }, Event::Readable(h)) => {
                // The server's FIN after it read everything: done.
                if let Ok(0) = self.stack.recv(now, h, &mut self.buf) {
                    streams.remove(&h);
                    let _ = self.stack.close(now, h);
                }
            }
            (App::Client { streams, .. }, Event::Closed(h)) => {
                if let Some(e) = errno(&self.stack, h) {
                    *self.report.client_errors.entry(e).or_default() += 1;
                }
                if streams.remove(&h).is_some() {
                    let _ = self.stack.close(now, h);
                }
            }
            (App::Server { listener, streams }, Event::AcceptReady(_)) => {
                while let Ok((h, _)) = self.stack.accept(now, *listener) {
                    // A connection whose client is gone before it sent a byte would wait
                    // for it forever (see `SoakParams::config`): keepalive finds it.
                    let _ = self.stack.set_keepalive(now, h, true);
                    streams.insert(h, Rx::default());
                }
            }
            (App::Server { streams, .. }, Event::Readable(h)) => {
                let Some(rx) = streams.get_mut(&h) else {
                    return;
                };
                loop {
                    match self.stack.recv(now, h, &mut self.buf) {
                        Ok(0) => {
                            if rx.off == self.p.bytes {
                                self.report.intact += 1;
                            } else {
                                self.report.short_streams += 1;
                            }
                            streams.remove(&h);
                            let _ = self.stack.close(now, h);
                            return;
                        }
                        Ok(n) => {
                            for &b in &self.buf[..n] {
                                match rx.id {
                                    None => {
                                        rx.head.push(b);
                                        if rx.head.len() == 8 {
                                            let id = rx
                                                .head
                                                .as_slice()
                                                .try_into()
                                                .map_or(0, u64::from_le_bytes);
                                            rx.id = Some(id);
                                        }
                                    }
                                    Some(id) => {
                                        self.report.bytes_checked += 1;
                                        if b != byte(id, rx.off) {
                                            self.report.bad_bytes += 1;
                                        }
                                        rx.off += 1;
                                    }
                                }
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
            (App::Server { streams, .. }, Event::Closed(h)) => {
                if let Some(e) = errno(&self.stack, h) {
                    *self.report.server_errors.entry(e).or_default() += 1;
                }
                if streams.remove(&h).is_some() {
                    let _ = self.stack.close(now, h);
                }
            }
            _ => {}
        }
    }

    fn next_open(&self) -> Option<Instant> {
        match &self.app {
            App::Client {
                opened, next_at, ..
            } if *opened < self.p.connections => Some(*next_at),
            _ => None,
        }
    }
}

impl Driver for Host {
    type Event = Event;

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.stack.handle_packet(now, packet);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.stack.handle_timeout(now);
        self.open_due(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        self.stack.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.stack.poll_timeout(), self.next_open()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.stack.poll_event()
    }
}

/// Run the soak.
pub fn soak(p: &SoakParams) -> Result<SoakReport, SimError> {
    p.link.validate()?;
    let mut net: Network<Host> = Network::new(subseed(p.seed, 0));
    net.try_set_default_link(p.link.clone())?;
    // Each byte costs at most a few packets, each connection a few dozen more.
    let work = u64::from(p.connections).saturating_mul(p.bytes.saturating_mul(4) + 1000);
    net.set_step_limit(DEFAULT_STEP_LIMIT.saturating_add(work));
    net.set_event_hook(Box::new(|now, _, host: &mut Host, ev| {
        host.on_event(now, ev)
    }));
    let mut cs = Stack::new(p.config.clone(), subseed(p.seed, 1));
    cs.add_address(CLIENT);
    let mut ss = Stack::new(p.config.clone(), subseed(p.seed, 2));
    ss.add_address(SERVER);
    let listener = ss
        .listen(Instant::ZERO, SocketAddr::new(SERVER, PORT), 4096)
        .expect("a fresh stack listens");
    let host = |stack, app| Host {
        stack,
        app,
        p: p.clone(),
        report: SoakReport::default(),
        buf: vec![0; 16 * 1024],
    };
    let c = net.add_host(
        CLIENT,
        host(
            cs,
            App::Client {
                opened: 0,
                next_at: Instant::ZERO,
                streams: BTreeMap::new(),
            },
        ),
    );
    let s = net.add_host(
        SERVER,
        host(
            ss,
            App::Server {
                listener,
                streams: BTreeMap::new(),
            },
        ),
    );
    net.host_mut(c).open_due(Instant::ZERO);
    net.try_run_until(Instant::ZERO + p.span + p.settle)?;
    let (ch, sh) = (net.host(c), net.host(s));
    let mut r = ch.report.clone();
    r.intact = sh.report.intact;
    r.server_errors = sh.report.server_errors.clone();
    r.bytes_checked = sh.report.bytes_checked;
    r.bad_bytes = sh.report.bad_bytes;
    r.short_streams = sh.report.short_streams;
    let half_open = sh
        .stack
        .listener_info(listener)
        .map_or(0, |l| u64::from(l.syn_recv));
    r.live_at_end =
        (ch.stack.connections().count() + sh.stack.connections().count()) as u64 + half_open;
    r.links = net.total_stats();
    r.corrupted = r.links.corrupted;
    r.checksum_drops = [&ch.stack, &sh.stack]
        .iter()
        .map(|st| {
            let k = st.counters();
            k.ip_in_hdr_errors
                + k.in_csum_errors
                + k.ip_in_truncated
                + k.in_bad_data_offset
                + k.in_truncated_segs
                + k.ip_in_addr_errors
                + k.ip_in_unknown_protos
        })
        .sum();
    r.virtual_secs = net.now().total_micros() as f64 / 1e6;
    Ok(r)
}
