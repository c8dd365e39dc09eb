//! State-machine property tests: random sequences of socket calls, time, loss and forged
//! segments on a client (A) and a server (B) in any backlog model. After every step both
//! stacks' bookkeeping agrees with itself ([`Stack::audit`]: no connection in two queues,
//! gauges matching the connections they count), the listeners' queues stay within their
//! model's bounds, counters only grow, `accept()` hands out only connections whose
//! handshake completed, and what each side reads is a prefix of what the other wrote, in
//! order, no byte twice.

use super::util::*;
use crate::{
    Config, ConnHandle, Counters, Duration, Family, ListenerHandle, Model, Stack, State, Syncookies,
};
use core::net::SocketAddr;
use proptest::prelude::*;
use std::collections::BTreeMap;
use synq_wire::{SeqNumber, TcpFlags, TcpOptions};

#[derive(Clone, Debug)]
enum Op {
    Connect {
        v6: bool,
    },
    Accept {
        v6: bool,
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
    Run {
        ms: u16,
    },
    /// Lose every `n`th packet from now on (0: none).
    Loss {
        n: u8,
    },
    /// A forged segment to B on one of its connections, near its sequence numbers.
    Forge {
        conn: u8,
        flags: u8,
        seq_off: i16,
        ack_off: i16,
        data: bool,
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
    Listen {
        v6: bool,
        backlog: i8,
    },
    CloseListener {
        v6: bool,
    },
    Cookies {
        mode: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(|v6| Op::Connect { v6 }),
        2 => any::<bool>().prop_map(|v6| Op::Accept { v6 }),
        3 => (any::<u8>(), any::<bool>(), 0u16..6000)
            .prop_map(|(conn, server, len)| Op::Send { conn, server, len }),
        3 => (any::<u8>(), any::<bool>(), 0u16..6000)
            .prop_map(|(conn, server, len)| Op::Recv { conn, server, len }),
        4 => (0u16..3000).prop_map(|ms| Op::Run { ms }),
        1 => (0u8..5).prop_map(|n| Op::Loss { n }),
        2 => (any::<u8>(), any::<u8>(), any::<i16>(), any::<i16>(), any::<bool>()).prop_map(
            |(conn, flags, seq_off, ack_off, data)| Op::Forge { conn, flags, seq_off, ack_off, data }
        ),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(conn, server)| Op::Shutdown { conn, server }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(conn, server)| Op::Close { conn, server }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(conn, server)| Op::Abort { conn, server }),
        1 => (any::<bool>(), -2i8..8).prop_map(|(v6, backlog)| Op::Listen { v6, backlog }),
        1 => any::<bool>().prop_map(|v6| Op::CloseListener { v6 }),
        1 => (0u8..3).prop_map(|mode| Op::Cookies { mode }),
    ]
}

/// One direction of a connection: bytes written and read, from a pattern of its own.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    seed: u32,
    written: usize,
    read: usize,
}

struct World {
    p: Pair,
    listeners: BTreeMap<bool, ListenerHandle>,
    /// Highest backlog each listener address has had.
    backlog: BTreeMap<SocketAddr, u32>,
    a_conns: Vec<ConnHandle>,
    b_conns: Vec<ConnHandle>,
    /// A → B stream by A's handle; B → A by B's handle.
    up: BTreeMap<ConnHandle, Stream>,
    down: BTreeMap<ConnHandle, Stream>,
    /// B's handle → A's handle of the same connection.
    peer: BTreeMap<ConnHandle, ConnHandle>,
    /// A's local address → A's latest handle from it.
    by_local: BTreeMap<SocketAddr, ConnHandle>,
    /// A-side local addresses a forged data segment was aimed at (their streams may hold
    /// the forger's bytes, as TCP must accept in-window data).
    tainted: Vec<SocketAddr>,
    seeds: u32,
    /// Bytes read and checked against the writer's pattern.
    checked: usize,
}

fn byte(seed: u32, i: usize) -> u8 {
    pattern(1, seed)[0] ^ (i as u32).wrapping_mul(0x9E37_79B1).to_be_bytes()[0] ^ i as u8
}

fn server_addr(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new("::".parse().unwrap(), 81)
    } else {
        SocketAddr::new(B4, 80)
    }
}

impl World {
    fn new(model: Model) -> Self {
        let cb = Config {
            model,
            ..Config::default()
        };
        let mut w = Self {
            p: Pair::with(Config::default(), cb),
            listeners: BTreeMap::new(),
            backlog: BTreeMap::new(),
            a_conns: Vec::new(),
            b_conns: Vec::new(),
            up: BTreeMap::new(),
            down: BTreeMap::new(),
            peer: BTreeMap::new(),
            by_local: BTreeMap::new(),
            tainted: Vec::new(),
            seeds: 0,
            checked: 0,
        };
        w.listen(false, 3);
        w.listen(true, 1);
        // Start with live connections: two accepted, one (IPv6) still queued.
        for v6 in [false, false, true] {
            w.apply(&Op::Connect { v6 });
        }
        w.p.run_for(Duration::from_millis(100));
        w.apply(&Op::Accept { v6: false });
        w.apply(&Op::Accept { v6: false });
        // Record the listeners' backlogs before any operation can lower them.
        let now = (w.p.a.counters().clone(), w.p.b.counters().clone());
        w.check(&now);
        w
    }

    fn listen(&mut self, v6: bool, backlog: i32) {
        if let Ok(l) = self.p.b.listen(self.p.now, server_addr(v6), backlog) {
            self.listeners.insert(v6, l);
        }
    }

    fn seed(&mut self) -> u32 {
        self.seeds += 1;
        self.seeds
    }

    fn pick(&self, i: u8, server: bool) -> Option<ConnHandle> {
        let v = if server { &self.b_conns } else { &self.a_conns };
        (!v.is_empty()).then(|| v[usize::from(i) % v.len()])
    }

    fn stack(&mut self, server: bool) -> &mut Stack {
        if server {
            &mut self.p.b
        } else {
            &mut self.p.a
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.p.now;
        match *op {
            Op::Connect { v6 } => {
                let dst = SocketAddr::new(if v6 { B6 } else { B4 }, if v6 { 81 } else { 80 });
                if let Ok(c) = self.p.a.connect(now, dst) {
                    let seed = self.seed();
                    self.a_conns.push(c);
                    self.up.insert(
                        c,
                        Stream {
                            seed,
                            ..Stream::default()
                        },
                    );
                    let local = self.p.a.info(c).unwrap().tuple.local;
                    self.by_local.insert(local, c);
                    self.tainted.retain(|&t| t != local);
                }
            }
            Op::Accept { v6 } => {
                let Some(&l) = self.listeners.get(&v6) else {
                    return;
                };
                if let Ok((h, remote)) = self.p.b.accept(now, l) {
                    let info = self.p.b.info(h).unwrap();
                    let done = match info.state {
                        State::Established | State::CloseWait => true,
                        State::Closed => info.error.is_some(),
                        _ => false,
                    };
                    assert!(done, "accept() returned a connection in {:?}", info.state);
                    let seed = self.seed();
                    self.b_conns.push(h);
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
            Op::Send { conn, server, len } => {
                let Some(h) = self.pick(conn, server) else {
                    return;
                };
                let streams = if server { &mut self.down } else { &mut self.up };
                let s = streams.get_mut(&h).unwrap();
                let data: Vec<u8> = (s.written..s.written + usize::from(len))
                    .map(|i| byte(s.seed, i))
                    .collect();
                let stack = if server { &mut self.p.b } else { &mut self.p.a };
                if let Ok(n) = stack.send(now, h, &data) {
                    s.written += n;
                }
            }
            Op::Recv { conn, server, len } => self.recv(conn, server, len),
            Op::Run { ms } => self.p.run_for(Duration::from_millis(u64::from(ms))),
            Op::Loss { n } => {
                let mut k = 0u32;
                self.p.filter = (n > 0).then(|| -> Filter {
                    Box::new(move |_| {
                        k += 1;
                        k % u32::from(n) != 0
                    })
                });
            }
            Op::Forge {
                conn,
                flags,
                seq_off,
                ack_off,
                data,
            } => {
                let conns: Vec<_> = self.p.b.connections().collect();
                if conns.is_empty() {
                    return;
                }
                let c = conns[usize::from(conn) % conns.len()];
                let off = |s: SeqNumber, d: i16| SeqNumber(s.0.wrapping_add(d as i32 as u32));
                let payload: &[u8] = if data { &[0xEE; 100] } else { &[] };
                let pkt = segment(
                    c.tuple.remote,
                    c.tuple.local,
                    TcpFlags(flags),
                    off(c.rcv_nxt, seq_off),
                    off(c.snd_nxt, ack_off),
                    TcpOptions::default(),
                    payload,
                );
                if data {
                    self.tainted.push(c.tuple.remote);
                }
                self.p.b.handle_packet(now, &pkt);
            }
            Op::Shutdown { conn, server } => {
                if let Some(h) = self.pick(conn, server) {
                    let _ = self.stack(server).shutdown(now, h);
                }
            }
            Op::Close { conn, server } => {
                if let Some(h) = self.pick(conn, server) {
                    let _ = self.stack(server).close(now, h);
                }
            }
            Op::Abort { conn, server } => {
                if let Some(h) = self.pick(conn, server) {
                    let _ = self.stack(server).abort(now, h);
                }
            }
            Op::Listen { v6, backlog } => self.listen(v6, i32::from(backlog)),
            Op::CloseListener { v6 } => {
                if let Some(l) = self.listeners.remove(&v6) {
                    self.backlog.remove(&server_addr(v6));
                    self.p.b.close_listener(now, l);
                }
            }
            Op::Cookies { mode } => {
                self.p.b.config_mut().tcp_syncookies = Syncookies::from_raw(mode)
            }
        }
    }

    fn recv(&mut self, conn: u8, server: bool, len: u16) {
        let Some(h) = self.pick(conn, server) else {
            return;
        };
        let now = self.p.now;
        let mut buf = vec![0u8; usize::from(len)];
        let Ok(n) = self.stack(server).recv(now, h, &mut buf) else {
            return;
        };
        let (stream, local) = if server {
            let Some(&c) = self.peer.get(&h) else { return };
            (self.up.get_mut(&c), self.p.a.info(c).map(|i| i.tuple.local))
        } else {
            let Some((&s, _)) = self.peer.iter().find(|(_, &c)| c == h) else {
                return;
            };
            (
                self.down.get_mut(&s),
                self.p.a.info(h).map(|i| i.tuple.local),
            )
        };
        let Some(stream) = stream else { return };
        let clean = local.is_some_and(|l| !self.tainted.contains(&l));
        if clean {
            assert!(
                stream.read + n <= stream.written,
                "read {} bytes past the {} written",
                stream.read + n - stream.written,
                stream.written
            );
            for (i, &b) in buf[..n].iter().enumerate() {
                let at = stream.read + i;
                assert_eq!(
                    b,
                    byte(stream.seed, at),
                    "byte {at} wrong (duplicated or reordered)"
                );
            }
        }
        if clean {
            self.checked += n;
        }
        stream.read += n;
    }

    fn check(&mut self, before: &(Counters, Counters)) {
        for (s, old) in [(&self.p.a, &before.0), (&self.p.b, &before.1)] {
            if let Err(e) = s.audit() {
                panic!("audit: {e}");
            }
            for ((name, x), (_, y)) in old.iter().zip(s.counters().iter()) {
                assert!(
                    name == "TcpCurrEstab" || y >= x,
                    "{name} went down: {x} -> {y}"
                );
            }
            let estab = s
                .connections()
                .filter(|c| matches!(c.state, State::Established | State::CloseWait))
                .count() as u64;
            assert_eq!(estab, s.counters().curr_estab, "TcpCurrEstab");
        }
        let b = &self.p.b;
        let model = b.config().model;
        let reopens = b.counters().tw_syn_reopen;
        for l in b.listeners() {
            let max = self.backlog.entry(l.local).or_default();
            *max = (*max).max(l.send_q);
            let q = *max;
            if model.family() == Family::FreeBsd {
                // The syncache is not the listener's: only completed connections count.
                assert!(
                    u64::from(l.recv_q) <= 3 * u64::from(q) / 2 + 1,
                    "freebsd: {} completed, backlog {q}",
                    l.recv_q
                );
            } else if model.single_queue() {
                let held = u64::from(l.recv_q) + u64::from(l.syn_recv);
                assert!(
                    held <= model.single_limit(q),
                    "{model}: {held} held, backlog {q}"
                );
            } else {
                assert!(
                    u64::from(l.recv_q) <= u64::from(q) + 1,
                    "accept queue over {q}"
                );
                assert!(
                    u64::from(l.syn_recv) <= u64::from(q) + 1 + reopens,
                    "SYN queue over {q}"
                );
            }
        }
    }
}

/// Run `ops`, then read everything; returns the bytes checked against the writers.
fn run(model: Model, ops: &[Op]) -> usize {
    let mut w = World::new(model);
    for op in ops {
        let before = (w.p.a.counters().clone(), w.p.b.counters().clone());
        w.apply(op);
        w.check(&before);
    }
    // Everything written, no loss, long enough: every clean stream arrives in full.
    w.p.filter = None;
    let before = (w.p.a.counters().clone(), w.p.b.counters().clone());
    w.p.run_for(Duration::from_secs(5));
    w.check(&before);
    // Read what arrived on every connection, checking it against what was written.
    for server in [false, true] {
        let n = if server {
            w.b_conns.len()
        } else {
            w.a_conns.len()
        };
        for i in 0..n {
            for _ in 0..64 {
                let before = (w.p.a.counters().clone(), w.p.b.counters().clone());
                w.apply(&Op::Recv {
                    conn: i as u8,
                    server,
                    len: 65535,
                });
                w.p.run_for(Duration::from_millis(50));
                w.check(&before);
            }
        }
    }
    w.checked
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn calls_segments_and_time_keep_the_invariants(
        model in 0usize..Model::ALL.len(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(Model::ALL[model], &ops);
    }
}

#[test]
fn the_stream_check_sees_data() {
    // A fixed run that writes both ways: the final read checks every byte.
    let ops = [
        Op::Send {
            conn: 0,
            server: false,
            len: 5000,
        },
        Op::Send {
            conn: 0,
            server: true,
            len: 3000,
        },
        Op::Loss { n: 3 },
        Op::Run { ms: 500 },
        Op::Recv {
            conn: 0,
            server: true,
            len: 100,
        },
    ];
    assert_eq!(run(Model::Linux, &ops), 8000);
}
