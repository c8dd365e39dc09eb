//! `synq sim transfer`: one connection moves N pseudo-random bytes across a lossy link.

use super::{subseed, CLIENT_ADDR, CLIENT_ADDR6, SERVER_ADDR, SERVER_ADDR6};
use crate::{Duration, Instant, LinkConfig, Network, SimError};
use core::net::SocketAddr;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use synq_core::{Config, ConnHandle, RecvError, SendError, Stack, State};

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
}

struct Sender {
    conn: ConnHandle,
    rng: ChaCha8Rng,
    hash: Sha256,
    chunk: Vec<u8>,
    pos: usize,
    sent: u64,
    closed: bool,
}

struct Receiver {
    conn: Option<ConnHandle>,
    hash: Sha256,
    got: u64,
    eof: bool,
    failed: bool,
}

/// Run one transfer.
pub fn transfer(p: &TransferParams) -> Result<TransferReport, SimError> {
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
    let mut net: Network<Stack> = Network::new(subseed(p.seed, 0));
    net.try_set_default_link(link)?;
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
    let listener = server
        .listen(Instant::ZERO, server_addr, 128)
        .expect("fresh stack can listen");
    let conn = client
        .connect(Instant::ZERO, server_addr)
        .expect("fresh stack can connect");
    let c = net.add_host(caddr, client);
    let s = net.add_host(saddr, server);

    let mut tx = Sender {
        conn,
        rng: ChaCha8Rng::seed_from_u64(subseed(p.seed, 3)),
        hash: Sha256::new(),
        chunk: vec![0; 64 * 1024],
        pos: 64 * 1024,
        sent: 0,
        closed: false,
    };
    let mut rx = Receiver {
        conn: None,
        hash: Sha256::new(),
        got: 0,
        eof: false,
        failed: false,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let limit = Instant::ZERO + p.time_limit;
    let mut end = None;
    net.run_until_with(limit, |net| {
        let now = net.now();
        pump_sender(net.host_mut(c), now, &mut tx, p.bytes);
        let server = net.host_mut(s);
        pump_receiver(server, now, listener, &mut rx, &mut buf);
        if rx.eof || rx.failed || server_failed(net.host(c), tx.conn) {
            end = Some(now);
            return false;
        }
        true
    });
    let k = net.host(c).counters().clone();
    let links = net.total_stats();
    let intact = rx.eof
        && rx.got == tx.sent
        && tx.sent == p.bytes
        && rx.hash.finalize() == tx.hash.finalize();
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
        virtual_secs: end.unwrap_or(net.now()).as_secs_f64(),
        steps: net.steps(),
    })
}

fn server_failed(client: &Stack, conn: ConnHandle) -> bool {
    client.info(conn).is_some_and(|i| i.error.is_some())
}

fn pump_sender(stack: &mut Stack, now: Instant, tx: &mut Sender, total: u64) {
    if stack.state(tx.conn) == Some(State::SynSent) {
        return;
    }
    while tx.sent < total {
        if tx.pos == tx.chunk.len() {
            let left = (total - tx.sent).min(tx.chunk.len() as u64) as usize;
            tx.chunk.truncate(left);
            tx.rng.fill_bytes(&mut tx.chunk);
            tx.hash.update(&tx.chunk);
            tx.pos = 0;
        }
        match stack.send(now, tx.conn, &tx.chunk[tx.pos..]) {
            Ok(n) => {
                tx.pos += n;
                tx.sent += n as u64;
            }
            Err(SendError::WouldBlock) => return,
            Err(_) => return,
        }
    }
    if !tx.closed {
        tx.closed = true;
        let _ = stack.close(now, tx.conn);
    }
}

fn pump_receiver(
    stack: &mut Stack,
    now: Instant,
    l: synq_core::ListenerHandle,
    rx: &mut Receiver,
    buf: &mut [u8],
) {
    if rx.conn.is_none() {
        rx.conn = stack.accept(now, l).ok().map(|(h, _)| h);
    }
    let Some(h) = rx.conn else { return };
    loop {
        match stack.recv(now, h, buf) {
            Ok(0) => {
                if !rx.eof {
                    rx.eof = true;
                    let _ = stack.close(now, h);
                }
                return;
            }
            Ok(n) => {
                rx.hash.update(&buf[..n]);
                rx.got += n as u64;
            }
            Err(RecvError::WouldBlock) => return,
            Err(_) => {
                rx.failed = true;
                return;
            }
        }
    }
}
