//! Interleavings of inbound segments (crafted near the live connections' sequence numbers),
//! network faults, timer firings and socket calls on a server in any backlog model and a
//! client, from structured input (`arbitrary`). After every step: both stacks' bookkeeping
//! holds (`Stack::audit`), the listeners' queues are within their model's bounds, counters
//! only grow, `accept()` returns only connections whose handshake completed, and what each
//! side reads is a prefix of what the other wrote, in order (unless a forged segment with
//! data was aimed at that connection).
#![no_main]

use arbitrary::Arbitrary;
use core::net::{IpAddr, SocketAddr};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};
use synq_core::{Config, ConnHandle, Duration, Instant, ListenerHandle, Model, Stack};
use synq_fuzz::{
    check_accepted, check_monotonic, drain, fire, segment_with, Bounds, CLIENT, PORT4, PORT6,
    SERVER,
};
use synq_sim::scenario::{SERVER_ADDR, SERVER_ADDR6};
use synq_wire::{SackBlocks, SeqNumber, TcpFlags, TcpOptions, Timestamps};

#[derive(Arbitrary, Debug)]
struct Input {
    model: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Deliver up to `n` packets of the wire, oldest first.
    Deliver {
        n: u8,
    },
    /// Lose the oldest packet on the wire.
    Drop,
    /// Deliver the oldest packet twice.
    Duplicate,
    /// Swap the two oldest packets.
    Reorder,
    /// Time passes, the wire delivering as it goes (1 ms per hop).
    Run {
        ms: u16,
    },
    /// Time passes with the wire cut: only timers fire, packets wait.
    Advance {
        ms: u16,
    },
    /// A crafted segment, relative to a live connection or request.
    Inject(Inject),
    Listen {
        port: u8,
        backlog: i8,
    },
    CloseListener {
        port: u8,
    },
    Accept {
        port: u8,
    },
    Connect {
        port: u8,
    },
    Send {
        conn: u8,
        server: bool,
        len: u16,
    },
    Recv {
        conn: u8,
        server: bool,
        len: u16,
    },
    Shutdown {
        conn: u8,
        server: bool,
    },
    Close {
        conn: u8,
        server: bool,
    },
    Abort {
        conn: u8,
        server: bool,
    },
    Sysctl {
        knob: u8,
        value: u8,
        server: bool,
    },
    DeferAccept {
        port: u8,
        secs: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Inject {
    /// Which connection (server's listing, then its half-open requests).
    target: u8,
    /// Aim it at the server (else at the client, as if from the server).
    to_server: bool,
    flags: u8,
    seq_off: i16,
    ack_off: i16,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_permitted: bool,
    ts: Option<(u32, u32)>,
    sack: Vec<(i16, i16)>,
    payload: u8,
}

/// Ports the ops name: the fixture's two and three more.
const PORTS: [u16; 5] = [PORT4, PORT6, 8082, 8083, 9000];
/// Sysctls worth changing mid-run, with the values tried (index by `value`).
const KNOBS: [(&str, &[&str]); 14] = [
    ("net.ipv4.tcp_syncookies", &["0", "1", "2"]),
    ("net.core.somaxconn", &["0", "1", "2", "4096"]),
    ("net.ipv4.tcp_abort_on_overflow", &["0", "1"]),
    ("net.ipv4.tcp_timestamps", &["0", "1", "2"]),
    ("net.ipv4.tcp_sack", &["0", "1"]),
    ("net.ipv4.tcp_window_scaling", &["0", "1"]),
    ("net.ipv4.tcp_synack_retries", &["0", "1", "5"]),
    ("net.ipv4.tcp_syn_retries", &["1", "2", "6"]),
    ("net.ipv4.tcp_max_tw_buckets", &["0", "1", "-1", "100"]),
    ("net.ipv4.tcp_max_orphans", &["0", "1", "100"]),
    ("synq.max_connections", &["1", "2", "5", "100"]),
    ("synq.tx_queue_len", &["1", "2", "1000"]),
    ("net.ipv4.tcp_max_syn_backlog", &["0", "1", "-1", "128"]),
    (
        "net.ipv4.tcp_rmem",
        &["4096 4096 4096", "4096 131072 33554432"],
    ),
];

/// Largest wire backlog kept (older packets beyond it are lost).
const WIRE_MAX: usize = 512;
/// Virtual time one input may cover.
const TIME_MAX: Duration = Duration::from_secs(3600);

/// One direction of a connection's byte stream: bytes written and read so far, from a
/// pattern unique to the connection.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    seed: u32,
    written: u64,
    read: u64,
}

fn pattern(seed: u32, i: u64) -> u8 {
    let x = (i as u32 ^ seed.rotate_left(16)).wrapping_mul(0x9E37_79B1) ^ (i >> 32) as u32;
    (x >> 24) as u8
}

struct World {
    server: Stack,
    client: Stack,
    now: Instant,
    wire: std::collections::VecDeque<Vec<u8>>,
    listeners: BTreeMap<u16, ListenerHandle>,
    server_conns: Vec<ConnHandle>,
    client_conns: Vec<ConnHandle>,
    /// Client → server streams by the client's handle; server → client by the server's.
    up: BTreeMap<ConnHandle, Stream>,
    down: BTreeMap<ConnHandle, Stream>,
    /// Server handle → client handle of the same connection.
    peer: BTreeMap<ConnHandle, ConnHandle>,
    /// Client local address → client handle of the latest connect() from it.
    by_local: BTreeMap<SocketAddr, ConnHandle>,
    /// Connections (by client local address) a forged data segment was aimed at.
    tainted: BTreeSet<SocketAddr>,
    bounds_s: Bounds,
    bounds_c: Bounds,
    next_seed: u32,
}

fuzz_target!(|input: Input| {
    let model = Model::ALL[usize::from(input.model) % Model::ALL.len()];
    let config = Config {
        model,
        ..Config::default()
    };
    let mut server = Stack::new(config, 0x5eed);
    server.add_address(SERVER_ADDR);
    server.add_address(SERVER_ADDR6);
    let mut client = Stack::new(Config::default(), 0xc11e);
    for a in CLIENT {
        client.add_address(a);
    }
    let mut w = World {
        server,
        client,
        now: Instant::ZERO,
        wire: Default::default(),
        listeners: BTreeMap::new(),
        server_conns: Vec::new(),
        client_conns: Vec::new(),
        up: BTreeMap::new(),
        down: BTreeMap::new(),
        peer: BTreeMap::new(),
        by_local: BTreeMap::new(),
        tainted: BTreeSet::new(),
        bounds_s: Bounds::default(),
        bounds_c: Bounds::default(),
        next_seed: 1,
    };
    w.listen(0, 4);
    w.listen(1, 2);
    w.bounds_s.check(&w.server);
    for op in input.ops.iter().take(400) {
        let before = (w.server.counters().clone(), w.client.counters().clone());
        w.apply(op);
        w.pump_out();
        check_monotonic(&before.0, w.server.counters());
        check_monotonic(&before.1, w.client.counters());
        w.bounds_s.check(&w.server);
        w.bounds_c.check(&w.client);
        if w.now > Instant::ZERO + TIME_MAX {
            break;
        }
    }
});

impl World {
    fn pump_out(&mut self) {
        let mut out = Vec::new();
        drain(&mut self.server, self.now, &SERVER, &mut out);
        drain(&mut self.client, self.now, &CLIENT, &mut out);
        for p in out {
            if self.wire.len() < WIRE_MAX {
                self.wire.push_back(p);
            }
        }
    }

    fn deliver(&mut self, p: &[u8]) {
        match synq_wire::peek_dst(p) {
            Some(d) if SERVER.contains(&d) => self.server.handle_packet(self.now, p),
            Some(d) if CLIENT.contains(&d) => self.client.handle_packet(self.now, p),
            _ => {}
        }
    }

    fn tick(&mut self) {
        fire(&mut self.server, self.now);
        fire(&mut self.client, self.now);
    }

    fn listen(&mut self, port: u8, backlog: i32) {
        let port = PORTS[usize::from(port) % PORTS.len()];
        let ip: IpAddr = if port == PORT6 {
            "::".parse().unwrap()
        } else if port == 8083 {
            SERVER_ADDR6
        } else {
            SERVER_ADDR
        };
        if let Ok(l) = self
            .server
            .listen(self.now, SocketAddr::new(ip, port), backlog)
        {
            self.listeners.insert(port, l);
        }
    }

    fn listener(&self, port: u8) -> Option<(u16, ListenerHandle)> {
        let port = PORTS[usize::from(port) % PORTS.len()];
        self.listeners.get(&port).map(|&l| (port, l))
    }

    fn conn(&self, i: u8, server: bool) -> Option<ConnHandle> {
        let list = if server {
            &self.server_conns
        } else {
            &self.client_conns
        };
        (!list.is_empty()).then(|| list[usize::from(i) % list.len()])
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Deliver { n } => {
                for _ in 0..n.min(64) {
                    let Some(p) = self.wire.pop_front() else {
                        break;
                    };
                    self.deliver(&p);
                    self.pump_out();
                }
            }
            Op::Drop => {
                self.wire.pop_front();
            }
            Op::Duplicate => {
                if let Some(p) = self.wire.front().cloned() {
                    self.deliver(&p);
                }
            }
            Op::Reorder => {
                if self.wire.len() >= 2 {
                    self.wire.swap(0, 1);
                }
            }
            Op::Run { ms } => {
                let end = self.now + Duration::from_millis(u64::from(ms));
                for _ in 0..2000 {
                    let batch: Vec<_> = self.wire.drain(..).collect();
                    for p in &batch {
                        self.deliver(p);
                    }
                    self.tick();
                    self.pump_out();
                    let next = [self.server.poll_timeout(), self.client.poll_timeout()]
                        .into_iter()
                        .flatten()
                        .min();
                    let hop = self.now + Duration::from_millis(1);
                    let t = match (self.wire.is_empty(), next) {
                        (false, n) => n.map_or(hop, |n| n.min(hop)),
                        (true, Some(n)) => n,
                        (true, None) => break,
                    };
                    if t > end {
                        break;
                    }
                    self.now = self.now.max(t);
                }
                self.now = self.now.max(end);
                self.tick();
            }
            Op::Advance { ms } => {
                let end = self.now + Duration::from_millis(u64::from(ms));
                for _ in 0..2000 {
                    let next = [self.server.poll_timeout(), self.client.poll_timeout()]
                        .into_iter()
                        .flatten()
                        .min();
                    match next {
                        Some(t) if t <= end => {
                            self.now = self.now.max(t);
                            self.tick();
                            self.pump_out();
                        }
                        _ => break,
                    }
                }
                self.now = self.now.max(end);
                self.tick();
            }
            Op::Inject(ref i) => self.inject(i),
            Op::Listen { port, backlog } => self.listen(port, i32::from(backlog)),
            Op::CloseListener { port } => {
                if let Some((p, l)) = self.listener(port) {
                    if let Some(info) = self.server.listener_info(l) {
                        self.bounds_s.forget(info.local);
                    }
                    self.server.close_listener(self.now, l);
                    self.listeners.remove(&p);
                }
            }
            Op::Accept { port } => {
                let Some((_, l)) = self.listener(port) else {
                    return;
                };
                if let Ok((h, remote)) = self.server.accept(self.now, l) {
                    check_accepted(&self.server, h);
                    self.server_conns.push(h);
                    let seed = self.next_seed;
                    self.next_seed += 1;
                    self.down.insert(
                        h,
                        Stream {
                            seed,
                            ..Stream::default()
                        },
                    );
                    if let Some(&c) = self.by_local.get(&remote) {
                        self.peer.insert(h, c);
                    }
                }
            }
            Op::Connect { port } => {
                let port = PORTS[usize::from(port) % PORTS.len()];
                let dst = if port == PORT6 || port == 8083 {
                    SERVER_ADDR6
                } else {
                    SERVER_ADDR
                };
                if let Ok(c) = self.client.connect(self.now, SocketAddr::new(dst, port)) {
                    self.client_conns.push(c);
                    let seed = self.next_seed;
                    self.next_seed += 1;
                    self.up.insert(
                        c,
                        Stream {
                            seed,
                            ..Stream::default()
                        },
                    );
                    if let Some(info) = self.client.info(c) {
                        self.by_local.insert(info.tuple.local, c);
                        self.tainted.remove(&info.tuple.local);
                    }
                }
            }
            Op::Send { conn, server, len } => {
                let Some(h) = self.conn(conn, server) else {
                    return;
                };
                let streams = if server { &mut self.down } else { &mut self.up };
                let Some(s) = streams.get_mut(&h) else {
                    return;
                };
                let data: Vec<u8> = (0..u64::from(len))
                    .map(|i| pattern(s.seed, s.written + i))
                    .collect();
                let stack = if server {
                    &mut self.server
                } else {
                    &mut self.client
                };
                if let Ok(n) = stack.send(self.now, h, &data) {
                    assert!(n <= data.len());
                    s.written += n as u64;
                }
            }
            Op::Recv { conn, server, len } => self.recv(conn, server, len),
            Op::Shutdown { conn, server } => {
                if let Some(h) = self.conn(conn, server) {
                    let now = self.now;
                    let _ = self.stack(server).shutdown(now, h);
                }
            }
            Op::Close { conn, server } => {
                if let Some(h) = self.conn(conn, server) {
                    let now = self.now;
                    let _ = self.stack(server).close(now, h);
                }
            }
            Op::Abort { conn, server } => {
                if let Some(h) = self.conn(conn, server) {
                    let now = self.now;
                    let _ = self.stack(server).abort(now, h);
                }
            }
            Op::Sysctl {
                knob,
                value,
                server,
            } => {
                let (name, values) = KNOBS[usize::from(knob) % KNOBS.len()];
                let v = values[usize::from(value) % values.len()];
                self.stack(server)
                    .config_mut()
                    .set(name, v)
                    .expect("listed sysctl values are valid");
            }
            Op::DeferAccept { port, secs } => {
                if let Some((_, l)) = self.listener(port) {
                    let _ = self.server.set_defer_accept(l, u32::from(secs % 8));
                }
            }
        }
    }

    fn stack(&mut self, server: bool) -> &mut Stack {
        if server {
            &mut self.server
        } else {
            &mut self.client
        }
    }

    /// Read and check the bytes against the writer's pattern.
    fn recv(&mut self, conn: u8, server: bool, len: u16) {
        let Some(h) = self.conn(conn, server) else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        let now = self.now;
        let Ok(n) = self.stack(server).recv(now, h, &mut buf) else {
            return;
        };
        assert!(n <= buf.len());
        // Which stream this is: the server reads the client's `up` stream; the client
        // reads the server's `down` stream, found through the server handle paired to it.
        let (stream, local) = if server {
            let Some(&c) = self.peer.get(&h) else {
                return;
            };
            let local = self.client.info(c).map(|i| i.tuple.local);
            (self.up.get_mut(&c), local)
        } else {
            let Some((&s, _)) = self.peer.iter().find(|(_, &c)| c == h) else {
                return;
            };
            let local = self.client.info(h).map(|i| i.tuple.local);
            (self.down.get_mut(&s), local)
        };
        let Some(stream) = stream else {
            return;
        };
        if local.is_none_or(|l| self.tainted.contains(&l)) {
            stream.read += n as u64;
            return;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = stream.read + i as u64;
            assert!(
                at < stream.written,
                "read byte {at} but only {} were written",
                stream.written
            );
            assert_eq!(b, pattern(stream.seed, at), "byte {at} out of order");
        }
        stream.read += n as u64;
    }

    fn inject(&mut self, i: &Inject) {
        // Targets: every connection of the server, then its half-open requests.
        let conns: Vec<_> = self.server.connections().collect();
        let reqs: Vec<_> = self.server.syn_recv().collect();
        let total = conns.len() + reqs.len();
        if total == 0 {
            return;
        }
        let k = usize::from(i.target) % total;
        let (local, remote, snd_nxt, rcv_nxt) = match conns.get(k) {
            Some(c) => (c.tuple.local, c.tuple.remote, c.snd_nxt, c.rcv_nxt),
            None => {
                let r = reqs[k - conns.len()];
                (r.local, r.remote, SeqNumber(0), SeqNumber(0))
            }
        };
        let off = |s: SeqNumber, d: i16| SeqNumber(s.0.wrapping_add(d as i32 as u32));
        let mut sack = SackBlocks::new();
        for &(l, r) in i.sack.iter().take(4) {
            let base = if i.to_server { snd_nxt } else { rcv_nxt };
            sack.push(off(base, l), off(base, r));
        }
        let options = TcpOptions {
            mss: i.mss,
            window_scale: i.wscale,
            sack_permitted: i.sack_permitted,
            sack_blocks: sack,
            timestamps: i.ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
            bsd_layout: false,
        };
        let payload = vec![0xA5u8; usize::from(i.payload)];
        let flags = TcpFlags(i.flags);
        let packet = if i.to_server {
            segment_with(
                remote,
                local,
                flags,
                off(rcv_nxt, i.seq_off),
                off(snd_nxt, i.ack_off),
                i.window,
                options,
                &payload,
            )
        } else {
            segment_with(
                local,
                remote,
                flags,
                off(snd_nxt, i.seq_off),
                off(rcv_nxt, i.ack_off),
                i.window,
                options,
                &payload,
            )
        };
        if !payload.is_empty() {
            self.tainted.insert(remote);
        }
        self.deliver(&packet);
    }
}
