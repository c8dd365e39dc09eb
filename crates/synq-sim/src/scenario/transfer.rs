//! `synq sim transfer`: one connection moves N pseudo-random bytes across a lossy link.

use super::{subseed, CLIENT_ADDR, CLIENT_ADDR6, SERVER_ADDR, SERVER_ADDR6};
use crate::{Duration, Instant, LinkConfig, Network, SimError, Tap, DEFAULT_STEP_LIMIT};
use core::net::SocketAddr;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use synq_core::{Config, ConnHandle, Driver, Errno, Event, RecvError, Stack};

/// Inputs of a transfer run.
#[derive(Clone, Debug)]
pub struct TransferParams {
    /// Bytes the client sends.
    pub bytes: u64,
    /// Per-packet loss probability, both directions.
    pub loss: f64,
    /// Per-packet probability of being held back one RTT (reordering).
    pub reorder: f64,
    /// Per-packet duplication probability.
    pub duplicate: f64,
    /// Round-trip propagation delay.
    pub rtt: Duration,
    /// Link rate in bits/s (None: unlimited).
    pub bandwidth_bps: Option<u64>,
    /// Drop-tail queue (packets) in front of a rate-limited link.
    pub queue_limit: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Stack configuration of both hosts.
    pub config: Config,
    /// Give up after this much virtual time.
    pub time_limit: Duration,
    /// Run over IPv6 instead of IPv4.
    pub ipv6: bool,
}

impl Default for TransferParams {
    fn default() -> Self {
        Self {
            bytes: 1 << 20,
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            rtt: Duration::from_micros(100),
            bandwidth_bps: None,
            queue_limit: 1000,
            seed: 1,
            config: Config::default(),
            time_limit: Duration::from_secs(3600),
            ipv6: false,
        }
    }
}

/// Outcome of a transfer run (the JSON of `synq sim transfer`, less wall time).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TransferReport {
    /// Bytes the client's send() accepted.
    pub bytes_sent: u64,
    /// Bytes the server read before end of stream.
    pub bytes_received: u64,
    /// The SHA-256 of both streams matched and the server saw end of stream.
    pub intact: bool,
    /// Segments the client retransmitted (`TcpRetransSegs`).
    pub retransmits: u64,
    /// Client RTO expirations (`TcpExtTCPTimeouts`).
    pub timeouts: u64,
    /// Client fast retransmits (`TcpExtTCPFastRetrans`).
    pub fast_retransmits: u64,
    /// Packets the links carried, lost and duplicated.
    pub packets_sent: u64,
    /// Packets lost on the links.
    pub packets_lost: u64,
    /// Packets duplicated by the links.
    pub packets_duplicated: u64,
    /// Virtual time from connect() to end of stream (or the limit).
    pub virtual_secs: f64,
    /// Simulator steps taken.
    pub steps: u64,
    /// Application bytes delivered per virtual second, in bits per second (0 for no time).
    pub goodput_bps: f64,
    /// Why the transfer did not complete: the connection's errno name (`ETIMEDOUT`,
    /// `ECONNRESET`, ...), or `time limit`; `None` when it arrived intact.
    pub failure: Option<String>,
    /// The sender's counters under their nstat names, zeros included.
    pub sender_counters: std::collections::BTreeMap<&'static str, u64>,
}

/// A transfer endpoint: a stack and the application on it, which acts on the stack's
/// events (the network hands them to [`Peer::on_event`]).
struct Peer {
    stack: Stack,
    app: App,
}

// Two hosts in all: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum App {
    Sender(Sender),
    Receiver(Receiver),
}

/// Writes `total` pseudo-random bytes, then half-closes (`shutdown(SHUT_WR)`): it keeps
/// its socket, as an application that wants to know its data arrived does, so a long
/// stall runs into `tcp_retries2` (about 15 minutes) and not into an orphan's
/// `tcp_orphan_retries` (about 100 s).
struct Sender {
    conn: ConnHandle,
    total: u64,
    rng: ChaCha8Rng,
    hash: Sha256,
    chunk: Vec<u8>,
    pos: usize,
    sent: u64,
    closed: bool,
}

/// Accepts one connection and reads it to the end.
struct Receiver {
    conn: Option<ConnHandle>,
    hash: Sha256,
    got: u64,
    eof: bool,
    failed: bool,
    buf: Vec<u8>,
}

impl Driver for Peer {
    type Event = Event;

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.stack.handle_packet(now, packet);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.stack.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        self.stack.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.stack.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.stack.poll_event()
    }
}

impl Peer {
    /// The application's answer to an event of its stack at `now`: write when
    /// connected or writable, accept when the listener is ready, read when readable.
    fn on_event(&mut self, now: Instant, event: Event) {
        let stack = &mut self.stack;
        match (&mut self.app, event) {
            (App::Sender(tx), Event::Connected(h) | Event::Writable(h)) if h == tx.conn => {
                tx.write(stack, now);
            }
            (App::Receiver(rx), Event::AcceptReady(l)) if rx.conn.is_none() => {
                // Its Readable event follows if data is already waiting.
                rx.conn = stack.accept(now, l).ok().map(|(h, _)| h);
            }
            (App::Receiver(rx), Event::Readable(h)) if rx.conn == Some(h) => rx.read(stack, now),
            _ => {}
        }
    }

    fn sender(&self) -> &Sender {
        match &self.app {
            App::Sender(tx) => tx,
            App::Receiver(_) => unreachable!("host 0 is the sender"),
        }
    }

    fn receiver(&self) -> &Receiver {
        match &self.app {
            App::Receiver(rx) => rx,
            App::Sender(_) => unreachable!("host 1 is the receiver"),
        }
    }
}

impl Sender {
    /// Write until the send buffer is full (a Writable event comes when it drains) or all
    /// is written; then half-close.
    fn write(&mut self, stack: &mut Stack, now: Instant) {
        while self.sent < self.total {
            if self.pos == self.chunk.len() {
                let left = (self.total - self.sent).min(self.chunk.len() as u64) as usize;
                self.chunk.truncate(left);
                self.rng.fill_bytes(&mut self.chunk);
                self.hash.update(&self.chunk);
                self.pos = 0;
            }
            match stack.send(now, self.conn, &self.chunk[self.pos..]) {
                Ok(n) => {
                    self.pos += n;
                    self.sent += n as u64;
                }
                Err(_) => return,
            }
        }
        if !self.closed {
            self.closed = true;
            let _ = stack.shutdown(now, self.conn);
        }
    }
}

impl Receiver {
    /// Read everything there is; at end of stream the run is over (see `transfer`).
    fn read(&mut self, stack: &mut Stack, now: Instant) {
        let Some(h) = self.conn else { return };
        loop {
            match stack.recv(now, h, &mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    self.hash.update(&self.buf[..n]);
                    self.got += n as u64;
                }
                Err(RecvError::WouldBlock) => return,
                Err(_) => {
                    self.failed = true;
                    return;
                }
            }
        }
    }
}

/// Run one transfer.
pub fn transfer(p: &TransferParams) -> Result<TransferReport, SimError> {
    transfer_tapped(p, None)
}

/// [`transfer`] with `tap` watching every packet (a [`crate::Capture`], say).
pub fn transfer_tapped(p: &TransferParams, tap: Option<Tap>) -> Result<TransferReport, SimError> {
    let link = LinkConfig {
        delay: Duration::from_micros(p.rtt.total_micros() / 2),
        loss: p.loss,
        reorder: p.reorder,
        reorder_delay: p.rtt.max(Duration::from_micros(1)),
        duplicate: p.duplicate,
        bandwidth_bps: p.bandwidth_bps,
        queue_limit: p.queue_limit,
        ..LinkConfig::default()
    };
    link.validate()?;
    let mut net: Network<Peer> = Network::new(subseed(p.seed, 0));
    if let Some(tap) = tap {
        net.set_tap(tap);
    }
    net.try_set_default_link(link)?;
    // The default bound is for livelocks; a long stream needs more. Two steps per byte (a
    // one-byte segment and its ACK) is the most a window can make a byte cost.
    net.set_step_limit(DEFAULT_STEP_LIMIT.saturating_add(p.bytes.saturating_mul(2)));
    net.set_event_hook(Box::new(|now, _, peer: &mut Peer, event| {
        peer.on_event(now, event);
    }));
    let (caddr, saddr) = if p.ipv6 {
        (CLIENT_ADDR6, SERVER_ADDR6)
    } else {
        (CLIENT_ADDR, SERVER_ADDR)
    };
    let mut client = Stack::new(p.config.clone(), subseed(p.seed, 1));
    client.add_address(caddr);
    let mut server = Stack::new(p.config.clone(), subseed(p.seed, 2));
    server.add_address(saddr);
    let server_addr = SocketAddr::new(saddr, 5001);
    server
        .listen(Instant::ZERO, server_addr, 128)
        .expect("fresh stack can listen");
    let conn = client
        .connect(Instant::ZERO, server_addr)
        .expect("fresh stack can connect");
    let tx = Sender {
        conn,
        total: p.bytes,
        rng: ChaCha8Rng::seed_from_u64(subseed(p.seed, 3)),
        hash: Sha256::new(),
        chunk: vec![0; 64 * 1024],
        pos: 64 * 1024,
        sent: 0,
        closed: false,
    };
    let rx = Receiver {
        conn: None,
        hash: Sha256::new(),
        got: 0,
        eof: false,
        failed: false,
        buf: vec![0u8; 64 * 1024],
    };
    let c = net.add_host(
        caddr,
        Peer {
            stack: client,
            app: App::Sender(tx),
        },
    );
    let s = net.add_host(
        saddr,
        Peer {
            stack: server,
            app: App::Receiver(rx),
        },
    );

    let limit = Instant::ZERO + p.time_limit;
    let mut end = None;
    // The applications run in the event hook; this only watches for the end. The server
    // does not close at end of stream: its FIN would come after the measurement anyway.
    net.try_run_until_with(limit, |net| {
        let rx = net.host(s).receiver();
        if rx.eof || rx.failed || conn_failed(&net.host(c).stack, conn) {
            end = Some(net.now());
            return false;
        }
        true
    })?;
    let k = net.host(c).stack.counters().clone();
    let links = net.total_stats();
    let (tx, rx) = (net.host(c).sender(), net.host(s).receiver());
    let intact = rx.eof
        && rx.got == tx.sent
        && tx.sent == p.bytes
        && rx.hash.clone().finalize() == tx.hash.clone().finalize();
    let virtual_secs = end.unwrap_or(net.now()).as_secs_f64();
    let conn_error = |st: &Stack, h: Option<ConnHandle>| {
        h.and_then(|h| st.info(h))
            .and_then(|i| i.error)
            .map(|e| e.errno_name().to_string())
    };
    let failure = if intact {
        None
    } else if let Some(e) = conn_error(&net.host(c).stack, Some(conn)) {
        Some(e)
    } else if let Some(e) = conn_error(&net.host(s).stack, rx.conn) {
        Some(e)
    } else if end.is_none() {
        Some("time limit".to_string())
    } else {
        Some("stream differs".to_string())
    };
    Ok(TransferReport {
        bytes_sent: tx.sent,
        bytes_received: rx.got,
        intact,
        retransmits: k.retrans_segs,
        timeouts: k.timeouts,
        fast_retransmits: k.fast_retrans,
        packets_sent: links.sent,
        packets_lost: links.lost,
        packets_duplicated: links.duplicated,
        virtual_secs,
        steps: net.steps(),
        goodput_bps: if virtual_secs > 0.0 {
            rx.got as f64 * 8.0 / virtual_secs
        } else {
            0.0
        },
        failure,
        sender_counters: k.iter().collect(),
    })
}

/// The client's connection ended in an error (even after close, when it has no events).
fn conn_failed(client: &Stack, conn: ConnHandle) -> bool {
    client.info(conn).is_some_and(|i| i.error.is_some())
}
