//! A two-stack harness in virtual time (quinn's `Pair`): packets between A and B take
//! `latency`; a filter can drop or observe them; every segment is logged.

use crate::{Config, ConnHandle, Duration, Event, Instant, ListenerHandle, Stack};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use synq_wire::{
    emit_packet, parse_packet, ChecksumMode, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr,
};

pub(crate) const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub(crate) const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
pub(crate) const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
pub(crate) const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

/// Marsaglia's xorshift32 (shifts 13, 17, 5): many cheap inputs, the same on every run.
/// The seed must not be 0.
pub(crate) struct XorShift32(pub(crate) u32);

impl XorShift32 {
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// A value below `n` (0 for `n` = 0).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n.max(1)
    }
}

/// xorshift64 (shifts 13, 7, 17), as [`XorShift32`].
pub(crate) struct XorShift64(pub(crate) u64);

impl XorShift64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value below `n` (0 for `n` = 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One logged segment.
#[derive(Clone, Debug)]
pub(crate) struct Seg {
    pub(crate) at: Instant,
    pub(crate) a_to_b: bool,
    pub(crate) flags: TcpFlags,
    pub(crate) seq: SeqNumber,
    pub(crate) ack: SeqNumber,
    pub(crate) len: usize,
    pub(crate) window: u16,
    pub(crate) tsval: Option<u32>,
    pub(crate) tsecr: Option<u32>,
    pub(crate) sack_blocks: usize,
    /// The SACK blocks themselves.
    pub(crate) sacks: Vec<(SeqNumber, SeqNumber)>,
}

pub(crate) type Filter = Box<dyn FnMut(&Seg) -> bool>;
/// Extra delay per packet.
pub(crate) type Delay = Box<dyn FnMut(&Seg) -> Duration>;

pub(crate) struct Pair {
    pub(crate) a: Stack,
    pub(crate) b: Stack,
    pub(crate) now: Instant,
    pub(crate) latency: Duration,
    /// (arrival, to_b, bytes), kept sorted by arrival then insertion.
    in_flight: Vec<(Instant, u64, bool, Vec<u8>)>,
    seq: u64,
    /// Return false to drop the packet.
    pub(crate) filter: Option<Filter>,
    /// Extra delay for a packet (reordering).
    pub(crate) delay: Option<Delay>,
    pub(crate) log: Vec<Seg>,
    pub(crate) events_a: Vec<Event>,
    pub(crate) events_b: Vec<Event>,
    /// Drain both stacks' events after each step (false: an application that never does).
    pub(crate) poll_events: bool,
    buf: Vec<u8>,
}

impl Pair {
    pub(crate) fn new() -> Self {
        Self::with(Config::default(), Config::default())
    }

    pub(crate) fn with(ca: Config, cb: Config) -> Self {
        let mut a = Stack::new(ca, 1);
        let mut b = Stack::new(cb, 2);
        a.add_address(A4);
        a.add_address(A6);
        b.add_address(B4);
        b.add_address(B6);
        Self {
            a,
            b,
            now: Instant::ZERO,
            latency: Duration::from_millis(10),
            in_flight: Vec::new(),
            seq: 0,
            filter: None,
            delay: None,
            log: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
            poll_events: true,
            buf: Vec::new(),
        }
    }

    fn flush(&mut self) {
        for to_b in [true, false] {
            loop {
                let now = self.now;
                let stack = if to_b { &mut self.a } else { &mut self.b };
                let Some(n) = stack.poll_transmit(now, &mut self.buf) else {
                    break;
                };
                let bytes = self.buf[..n].to_vec();
                let p = parse_packet(&bytes, ChecksumMode::Verify)
                    .expect("stack emitted a valid packet");
                let seg = Seg {
                    at: now,
                    a_to_b: to_b,
                    flags: p.tcp.flags,
                    seq: p.tcp.seq,
                    ack: p.tcp.ack,
                    len: p.tcp.payload.len(),
                    window: p.tcp.window,
                    tsval: p.tcp.options.timestamps.map(|t| t.tsval),
                    tsecr: p.tcp.options.timestamps.map(|t| t.tsecr),
                    sack_blocks: p.tcp.options.sack_blocks.len(),
                    sacks: p.tcp.options.sack_blocks.as_slice().to_vec(),
                };
                let keep = self.filter.as_mut().is_none_or(|f| f(&seg));
                let extra = self.delay.as_mut().map_or(Duration::ZERO, |f| f(&seg));
                self.log.push(seg);
                if keep {
                    self.seq += 1;
                    let at = now + self.latency + extra;
                    let i = self
                        .in_flight
                        .partition_point(|e| (e.0, e.1) <= (at, self.seq));
                    self.in_flight.insert(i, (at, self.seq, to_b, bytes));
                }
            }
        }
        if !self.poll_events {
            return;
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Advance to the next event (packet or timer) if it is no later than `limit`.
    pub(crate) fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let next_pkt = self.in_flight.first().map(|e| e.0);
        let next = [next_pkt, self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next.filter(|&t| t <= limit) else {
            return false;
        };
        self.now = self.now.max(t);
        if next_pkt == Some(t) {
            let (_, _, to_b, bytes) = self.in_flight.remove(0);
            if to_b {
                self.b.handle_packet(self.now, &bytes);
            } else {
                self.a.handle_packet(self.now, &bytes);
            }
        } else {
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
        self.flush();
        true
    }

    /// Run until nothing happens before `now + d`; then `now = now + d`.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut steps = 0u32;
        while self.step(end) {
            steps += 1;
            assert!(
                steps < 5_000_000,
                "pair exceeded its step bound at {}",
                self.now
            );
        }
        self.now = end;
        self.flush();
    }

    /// Listen on B, connect from A, complete the handshake, accept. Returns (client, server).
    pub(crate) fn connected(&mut self, v6: bool) -> (ConnHandle, ConnHandle, ListenerHandle) {
        let (bip, port) = (if v6 { B6 } else { B4 }, 80);
        let l = self
            .b
            .listen(self.now, SocketAddr::new(bip, port), 128)
            .unwrap();
        let c = self
            .a
            .connect(self.now, SocketAddr::new(bip, port))
            .unwrap();
        self.run_for(Duration::from_millis(100));
        let (s, _) = self.b.accept(self.now, l).expect("handshake completed");
        (c, s, l)
    }

    /// Move `data` from `tx` on one side to the other, reading everything; bounded by `limit`.
    pub(crate) fn transfer(
        &mut self,
        from_a: bool,
        tx: ConnHandle,
        rx: ConnHandle,
        data: &[u8],
        limit: Duration,
    ) -> Vec<u8> {
        let end = self.now + limit;
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < data.len() && self.now < end {
            let now = self.now;
            let (s, r) = if from_a {
                (&mut self.a, &mut self.b)
            } else {
                (&mut self.b, &mut self.a)
            };
            if sent < data.len() {
                if let Ok(n) = s.send(now, tx, &data[sent..]) {
                    sent += n;
                }
            }
            while let Ok(n) = r.recv(now, rx, &mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            if !self.step(end) {
                break;
            }
        }
        got
    }

    pub(crate) fn segs(&self, a_to_b: bool, f: impl Fn(&Seg) -> bool) -> Vec<Seg> {
        self.log
            .iter()
            .filter(|s| s.a_to_b == a_to_b && f(s))
            .cloned()
            .collect()
    }
}

/// Deterministic pseudo-random bytes.
pub(crate) fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut rng = XorShift32(seed.wrapping_mul(2_654_435_761).max(1));
    (0..n).map(|_| rng.next_u32() as u8).collect()
}

/// Every packet `from` (a stack, or the shards) has to send, in order.
pub(crate) fn drain<D: crate::Driver>(from: &mut D, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(n) = from.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// A crafted IP packet carrying one TCP segment from `from` to `to` (window 1000).
pub(crate) fn segment(
    from: SocketAddr,
    to: SocketAddr,
    flags: TcpFlags,
    seq: SeqNumber,
    ack: SeqNumber,
    options: TcpOptions,
    payload: &[u8],
) -> Vec<u8> {
    segment_with_window(from, to, flags, (seq, ack), 1000, options, payload)
}

/// [`segment`] advertising `window`.
pub(crate) fn segment_with_window(
    from: SocketAddr,
    to: SocketAddr,
    flags: TcpFlags,
    (seq, ack): (SeqNumber, SeqNumber),
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
    let mut buf = vec![0u8; synq_wire::packet_len(&ip, &tcp)];
    let n = emit_packet(&ip, &tcp, &mut buf).expect("well-formed test segment");
    buf.truncate(n);
    buf
}

/// Inject a crafted segment into B as if from A's connection `c` (an off-path forgery).
pub(crate) fn inject(
    p: &mut Pair,
    c: ConnHandle,
    flags: TcpFlags,
    seq: SeqNumber,
    ack: SeqNumber,
    payload: &[u8],
) {
    let t = p.a.info(c).unwrap().tuple;
    let pkt = segment(
        t.local,
        t.remote,
        flags,
        seq,
        ack,
        TcpOptions::default(),
        payload,
    );
    p.b.handle_packet(p.now, &pkt);
}

/// A filter that counts A-to-B data segments (1, 2, ...) and drops those `drop(n)` picks.
pub(crate) fn drop_data(drop: impl Fn(u32) -> bool + 'static) -> Filter {
    let mut n = 0;
    Box::new(move |seg| {
        if seg.a_to_b && seg.len > 0 {
            n += 1;
            return !drop(n);
        }
        true
    })
}
