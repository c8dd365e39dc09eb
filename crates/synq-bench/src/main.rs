//! `synq-bench`: the same work through synq, smoltcp and (as root) the Linux kernel, in one
//! process and one run, on one core each. Prints a table, or with `--json` one object.
//!
//! A handshake is the same work on each side: SYN, SYN-ACK, ACK, accept, then abort (an
//! RST), creating and tearing down the connection included. synq runs as two stacks in
//! memory handing packets to each other; smoltcp as one interface on its loopback device
//! with 16 listening sockets on one port (it has no backlog); the kernel over loopback in a
//! network namespace this program creates, from a Rust client on std::net.

use clap::Parser;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use serde_json::json;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::time::{Duration as Wall, Instant as WallInstant};
use synq_core::{Config, ConnHandle, Instant, Stack, State};

/// `println!` that never panics: a closed stdout (`synq-bench | head`) ends the program
/// quietly, as the CLI contract asks.
/// `println!` that ends the program quietly (status 0) when stdout is a closed pipe, as
/// `head` expects, and with one line and status 1 on any other write error (a full disk).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            $crate::stdout_failed(e);
        }
    }};
}

/// What [`say!`] does when stdout fails.
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("synq-bench: stdout: {e}");
    std::process::exit(1);
}

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

mod floor;
mod latency;
mod machine;
mod report;
mod scaling;

pub(crate) const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
pub(crate) const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
pub(crate) const PORT: u16 = 80;
/// Handshakes per round on every side by default (smoltcp's 16 listening sockets, the
/// comparison issue 11 sets); `--sockets` changes it.
const BATCH: usize = 16;

/// One run, side by side.
#[derive(Parser, Debug)]
#[command(name = "synq-bench", version)]
struct Args {
    /// Seconds each timed measurement runs.
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Run only these measurements and print their figures (for profilers and quick
    /// comparisons): handshakes, smoltcp-handshakes, handshake-floor (a handshake's five
    /// packets parsed and emitted with checksums and its keyed hashes, no state: the bound
    /// on synq's handshakes while it keeps them), syn-cookies0, syn-cookies0-batched,
    /// syn-cookies2, cookie-check (forged ACKs checked), rebuild-pause (the longest call of
    /// the cookies-off flood), conn-pause (the longest calls while 2^20 connections open;
    /// about 2 GB), bulk, smoltcp-bulk, machine (copy bandwidth, load latency, SipHash
    /// costs). Handshake and bulk measurements named together run interleaved.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    only: Vec<String>,
    /// Handshakes in flight at once in the handshake comparison: smoltcp's listening
    /// sockets on the port (it has no backlog) and as many clients; synq and the kernel
    /// connect as many before accepting. smoltcp scans its sockets for each packet, so its
    /// cost per handshake grows with this number; synq's tables do not scan.
    #[arg(long, value_name = "N", default_value_t = BATCH as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    sockets: u16,
    /// Run the whole suite N times, one after another, and report each figure's median
    /// (with `--json`, the medians under the usual keys and every run under `each_run`):
    /// this VM's speed can halve for a run, and a figure met in most runs but not all
    /// shows as such.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=100),
          conflicts_with_all = ["only", "latency_plot", "scaling"])]
    runs: u16,
    /// Instead of the suite: legitimate connect latency against the offered SYN-flood rate,
    /// on one core, for tcp_syncookies 0, 1 and 2; prints a table and draws this SVG.
    #[arg(long, value_name = "FILE.svg")]
    latency_plot: Option<String>,
    /// Instead of the suite: handshakes/s and SYN-flood rate (tcp_syncookies=2) with 1 to N
    /// threads, a shard each, in memory, and (root, `synq` built) connections/s over a
    /// multi-queue TUN device to `synq serve --threads N`; prints the speed-up.
    #[arg(long)]
    scaling: bool,
    /// Thread counts for `--scaling` (default: 1 up to the cores of this machine).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', requires = "scaling",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Vec<u16>,
    /// Internal: open connections to ADDR from client threads here (inside the namespace)
    /// and print the rate.
    #[arg(long, hide = true, value_name = "ADDR")]
    tun_client: Option<SocketAddr>,
    /// Internal: write spoofed SYNs to ADDR through raw sockets here (inside the namespace)
    /// and print the seconds it took.
    #[arg(long, hide = true, value_name = "ADDR")]
    tun_flood: Option<SocketAddr>,
    /// Internal: run the kernel's handshakes here (inside the namespace) and print the rate.
    #[arg(long, hide = true)]
    kernel_child: bool,
}

/// Run `round` until `secs` have passed; returns items per second (each round does `per`).
fn rate(secs: f64, per: u64, round: impl FnMut()) -> f64 {
    rate_max(secs, per, u64::MAX, round)
}

/// One measurement cut into rounds: each call runs one and returns the items it did.
type Rounds = Box<dyn FnMut() -> u64>;

/// How long one measurement runs before the next takes its turn in [`interleaved`].
const SLICE: Wall = Wall::from_millis(20);

/// Run the measurements in turn, a [`SLICE`] each, until each has run `secs`: items per
/// second for each. Measurements compared as a ratio run this way, so both see the same
/// machine: this VM's speed drifts by a fifth and more from one second to the next, which
/// back-to-back runs turn into a skewed ratio.
fn interleaved(secs: f64, ms: &mut [Rounds]) -> Vec<f64> {
    let limit = Wall::from_secs_f64(secs);
    let mut spent = vec![Wall::ZERO; ms.len()];
    let mut done = vec![0u64; ms.len()];
    while spent.iter().any(|&t| t < limit) {
        for (i, m) in ms.iter_mut().enumerate() {
            if spent[i] >= limit {
                continue;
            }
            let start = WallInstant::now();
            while start.elapsed() < SLICE {
                done[i] += m();
            }
            spent[i] += start.elapsed();
        }
    }
    done.iter()
        .zip(&spent)
        .map(|(&n, t)| n as f64 / t.as_secs_f64())
        .collect()
}

/// One measurement alone, as [`interleaved`] runs it.
fn alone(secs: f64, m: Rounds) -> f64 {
    interleaved(secs, &mut [m])[0]
}

/// [`rate`], stopping after `max_rounds` rounds if that comes first.
fn rate_max(secs: f64, per: u64, max_rounds: u64, mut round: impl FnMut()) -> f64 {
    let limit = Wall::from_secs_f64(secs);
    let start = WallInstant::now();
    let mut n = 0u64;
    while start.elapsed() < limit && n / per.max(1) < max_rounds {
        round();
        n += per;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn stacks(config: &Config) -> (Stack, Stack) {
    let mut client = Stack::new(config.clone(), 1);
    client.add_address(A);
    let mut server = Stack::new(config.clone(), 2);
    server.add_address(B);
    (client, server)
}

/// synq: `n` connects, the handshakes, accept, abort on both sides; repeat.
fn synq_handshakes(n: usize) -> Rounds {
    let (client, server) = stacks(&Config::default());
    handshake_rounds(client, server, n)
}

/// [`synq_handshakes`] between two given stacks (the server owning `B`): handshakes per
/// second.
pub(crate) fn handshakes_between(secs: f64, client: Stack, server: Stack) -> f64 {
    alone(secs, handshake_rounds(client, server, BATCH))
}

/// [`handshakes_between`] as rounds of `n` handshakes.
fn handshake_rounds(mut client: Stack, mut server: Stack, n: usize) -> Rounds {
    // A backlog that holds the round (at most `--sockets`' 1024): no SYN is answered with
    // a cookie or dropped.
    let l = server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), n.max(128) as i32)
        .expect("listen");
    let mut t = Instant::from_secs(1);
    let mut conns: Vec<ConnHandle> = Vec::with_capacity(n);
    let mut accepted: Vec<ConnHandle> = Vec::with_capacity(n);
    let mut wire = Wire::default();
    Box::new(move || {
        t += synq_core::Duration::from_micros(10);
        conns.clear();
        accepted.clear();
        for _ in 0..n {
            conns.push(
                client
                    .connect(t, SocketAddr::new(B, PORT))
                    .expect("connect"),
            );
        }
        pump(t, &mut client, &mut server, &mut wire);
        while let Ok((s, _)) = server.accept(t, l) {
            accepted.push(s);
        }
        assert_eq!(accepted.len(), n, "every handshake completes");
        for &c in &conns {
            client.abort(t, c).expect("abort");
        }
        for &s in &accepted {
            server.abort(t, s).expect("abort");
        }
        // Both RSTs leave before either arrives, as a kernel's close() with SO_LINGER 0
        // sends at once and smoltcp's poll sends both: five packets a handshake on each.
        cross(t, &mut client, &mut server, &mut wire);
        pump(t, &mut client, &mut server, &mut wire);
        n as u64
    })
}

/// The in-memory link between two stacks: every packet is written into a buffer of its
/// own, kept for the next round, so nothing is allocated or copied per packet (smoltcp's
/// wire below works the same way).
#[derive(Default)]
struct Wire {
    bufs: Vec<Vec<u8>>,
    /// The length of each packet on the wire, in the order sent.
    lens: Vec<usize>,
}

impl Wire {
    /// Everything `s` has to send, put on the wire after what is there: where it starts.
    fn take(&mut self, now: Instant, s: &mut Stack) -> usize {
        let start = self.lens.len();
        loop {
            let i = self.lens.len();
            if i == self.bufs.len() {
                self.bufs.push(Vec::with_capacity(2048));
            }
            match s.poll_transmit(now, &mut self.bufs[i]) {
                Some(n) => self.lens.push(n),
                None => return start,
            }
        }
    }

    /// The packets on the wire from `from` on.
    fn packets(&self, from: usize) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(&self.lens)
            .skip(from)
            .map(|(b, &n)| &b[..n])
    }
}

/// Each stack in turn sends everything it has, then the other receives it all, as two
/// drivers take turns (synq-tokio's reads a batch, handles it, then sends what that made),
/// until both are quiet (bounded).
fn pump(now: Instant, a: &mut Stack, b: &mut Stack, w: &mut Wire) {
    for _ in 0..1000 {
        let moved = carry(now, a, b, w) + carry(now, b, a, w);
        if moved == 0 {
            return;
        }
    }
    panic!("the stacks kept talking");
}

/// Every packet `from` has to send, handed to `to` once all are out: how many.
fn carry(now: Instant, from: &mut Stack, to: &mut Stack, w: &mut Wire) -> usize {
    w.lens.clear();
    w.take(now, from);
    for p in w.packets(0) {
        to.handle_packet(now, p);
    }
    w.lens.len()
}

/// Everything `a` and `b` have to send, taken from both first, then handed across.
fn cross(now: Instant, a: &mut Stack, b: &mut Stack, w: &mut Wire) {
    w.lens.clear();
    w.take(now, a);
    let from_b = w.take(now, b);
    for (i, p) in w.packets(0).enumerate() {
        if i < from_b {
            b.handle_packet(now, p);
        } else {
            a.handle_packet(now, p);
        }
    }
}

mod smol {
    use super::Rounds;
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::{Duration, Instant};
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    const PORT: u16 = 1234;

    /// smoltcp's own `Loopback` skips checksums and has an MTU of 65535; synq computes and
    /// verifies both checksums on 1500-byte packets. The same work: an in-memory wire
    /// with smoltcp's default checksum handling (compute and verify) and `mtu`. Packet
    /// buffers are reused, as synq's wire reuses its own: no allocation per packet.
    struct Wire {
        queue: VecDeque<Vec<u8>>,
        spare: RefCell<Vec<Vec<u8>>>,
        mtu: usize,
    }

    struct Rx<'a>(Vec<u8>, &'a RefCell<Vec<Vec<u8>>>);

    impl phy::RxToken for Rx<'_> {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            let r = f(&self.0);
            self.1.borrow_mut().push(self.0);
            r
        }
    }

    struct Tx<'a>(&'a mut VecDeque<Vec<u8>>, &'a RefCell<Vec<Vec<u8>>>);

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut b = self.1.borrow_mut().pop().unwrap_or_default();
            b.clear();
            b.resize(len, 0);
            let r = f(&mut b);
            self.0.push_back(b);
            r
        }
    }

    impl Device for Wire {
        type RxToken<'a> = Rx<'a>;
        type TxToken<'a> = Tx<'a>;

        fn receive(&mut self, _: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
            let b = self.queue.pop_front()?;
            Some((Rx(b, &self.spare), Tx(&mut self.queue, &self.spare)))
        }

        fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.queue, &self.spare))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut c = DeviceCapabilities::default();
            c.medium = Medium::Ip;
            c.max_transmission_unit = self.mtu;
            c
        }
    }

    struct Rig {
        device: Wire,
        iface: Interface,
        sockets: SocketSet<'static>,
        now: Instant,
    }

    impl Rig {
        fn new(mtu: usize) -> Self {
            let mut device = Wire {
                queue: VecDeque::new(),
                spare: RefCell::new(Vec::new()),
                mtu,
            };
            let now = Instant::from_millis(0);
            let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
                    .expect("one address");
            });
            Self {
                device,
                iface,
                sockets: SocketSet::new(Vec::new()),
                now,
            }
        }

        fn socket(&mut self, buffer: usize) -> SocketHandle {
            let rx = tcp::SocketBuffer::new(vec![0; buffer]);
            let tx = tcp::SocketBuffer::new(vec![0; buffer]);
            self.sockets.add(tcp::Socket::new(rx, tx))
        }

        fn poll(&mut self) {
            self.now += Duration::from_micros(10);
            self.iface
                .poll(self.now, &mut self.device, &mut self.sockets);
        }
    }

    /// `n` listening sockets on one port and `n` clients: connect, establish, abort.
    pub(super) fn handshakes(n: usize) -> Rounds {
        let mut rig = Rig::new(1500);
        let servers: Vec<_> = (0..n).map(|_| rig.socket(1500)).collect();
        let clients: Vec<_> = (0..n).map(|_| rig.socket(1500)).collect();
        let mut port = 49152u16;
        Box::new(move || {
            for &s in &servers {
                rig.sockets
                    .get_mut::<tcp::Socket>(s)
                    .listen(PORT)
                    .expect("listen");
            }
            for &c in &clients {
                port = if port == u16::MAX { 49152 } else { port + 1 };
                let cx = rig.iface.context();
                rig.sockets
                    .get_mut::<tcp::Socket>(c)
                    .connect(cx, (IpAddress::v4(127, 0, 0, 1), PORT), port)
                    .expect("connect");
            }
            for _ in 0..100 {
                rig.poll();
                let done = servers
                    .iter()
                    .chain(&clients)
                    .all(|&h| rig.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established);
                if done {
                    break;
                }
            }
            assert!(
                servers
                    .iter()
                    .all(|&h| rig.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established),
                "every handshake completes"
            );
            for &h in servers.iter().chain(&clients) {
                rig.sockets.get_mut::<tcp::Socket>(h).abort();
            }
            rig.poll();
            n as u64
        })
    }

    /// One stream through the loopback, in rounds of one send and one receive: bytes.
    pub(super) fn bulk() -> Rounds {
        let mut rig = Rig::new(1500);
        let server = rig.socket(65536);
        let client = rig.socket(65536);
        rig.sockets
            .get_mut::<tcp::Socket>(server)
            .listen(PORT)
            .expect("listen");
        let cx = rig.iface.context();
        rig.sockets
            .get_mut::<tcp::Socket>(client)
            .connect(cx, (IpAddress::v4(127, 0, 0, 1), PORT), 50000)
            .expect("connect");
        for _ in 0..100 {
            rig.poll();
        }
        let chunk = vec![0x5au8; 65536];
        let mut sink = vec![0u8; 65536];
        Box::new(move || {
            let mut moved = 0u64;
            let c = rig.sockets.get_mut::<tcp::Socket>(client);
            let _ = c.send_slice(&chunk);
            rig.poll();
            let s = rig.sockets.get_mut::<tcp::Socket>(server);
            while let Ok(n) = s.recv_slice(&mut sink) {
                if n == 0 {
                    break;
                }
                moved += n as u64;
            }
            rig.poll();
            moved
        })
    }
}

/// synq: one stream between two stacks in memory, bytes per second (MTU 1500, as the
/// smoltcp side's wire).
fn synq_bulk() -> Rounds {
    let (mut client, mut server) = stacks(&Config::default());
    let l = server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), 128)
        .expect("listen");
    let mut t = Instant::from_secs(1);
    let mut wire = Wire::default();
    let c = client
        .connect(t, SocketAddr::new(B, PORT))
        .expect("connect");
    pump(t, &mut client, &mut server, &mut wire);
    let (s, _) = server.accept(t, l).expect("accepted");
    let chunk = vec![0x5au8; 65536];
    let mut sink = vec![0u8; 65536];
    Box::new(move || {
        let mut moved = 0u64;
        t += synq_core::Duration::from_micros(10);
        let _ = client.send(t, c, &chunk);
        pump(t, &mut client, &mut server, &mut wire);
        while let Ok(n) = server.recv(t, s, &mut sink) {
            if n == 0 {
                break;
            }
            moved += n as u64;
        }
        pump(t, &mut client, &mut server, &mut wire);
        moved
    })
}

/// `--only`: the named measurements, those in rounds interleaved, the SYN floods alone (the
/// cookies-off one ends when its 2^20 SYNs are spent). Every name is checked first. With
/// `json`, one object: each name's rate per second, or its object (`machine`, the pauses).
fn only(secs: f64, sockets: usize, names: &[String], json: bool) {
    let rounds = |name: &str| -> Option<fn(usize) -> Rounds> {
        match name {
            "handshakes" => Some(synq_handshakes),
            "smoltcp-handshakes" => Some(smol::handshakes),
            "handshake-floor" => Some(floor::rounds),
            "bulk" => Some(|_| synq_bulk()),
            "smoltcp-bulk" => Some(|_| smol::bulk()),
            _ => None,
        }
    };
    let flood = |name: &str| match name {
        "syn-cookies0" => Some(("0", 1)),
        "syn-cookies0-batched" => Some(("0", RX_BATCH)),
        "syn-cookies2" => Some(("2", 1)),
        _ => None,
    };
    let other = ["cookie-check", "rebuild-pause", "conn-pause", "machine"];
    let known = |n: &str| rounds(n).is_some() || flood(n).is_some() || other.contains(&n);
    if let Some(bad) = names.iter().find(|n| !known(n)) {
        eprintln!("synq-bench: unknown measurement {bad:?}");
        std::process::exit(2);
    }
    let mut ms: Vec<Rounds> = names
        .iter()
        .filter_map(|n| rounds(n))
        .map(|f| f(sockets))
        .collect();
    let mut figures = interleaved(secs, &mut ms).into_iter();
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, v: serde_json::Value, line: String| {
        if json {
            out.insert(name.to_string(), v);
        } else {
            say!("{line}");
        }
    };
    for name in names {
        if name == "machine" {
            let m = machine::measure(secs);
            put(name, m.json(), m.line());
            continue;
        }
        if name == "conn-pause" {
            let ((s, at_s), (c, at_c)) = longest_conn_pauses();
            let v = json!({"server_ms": s, "server_at": at_s, "client_ms": c, "client_at": at_c});
            let line = format!(
                "{name}: {s:.1} ms, the longest server handle_packet, at connection {at_s}; \
                 {c:.1} ms, the longest client connect, at connection {at_c}; of 2^20"
            );
            put(name, v, line);
            continue;
        }
        if name == "rebuild-pause" {
            let (ms, at) = longest_pause();
            let line =
                format!("{name}: {ms:.1} ms, the longest handle_packet, at SYN {at} of 2^20");
            put(name, json!({"ms": ms, "at_syn": at}), line);
            continue;
        }
        let v = match flood(name) {
            Some((cookies, batch)) => syn_rate(secs, cookies, false, batch),
            None if name == "cookie-check" => forged_ack_rate(secs),
            None => figures.next().unwrap_or(f64::NAN),
        };
        put(name, json!(v.round()), format!("{name}: {v:.0} per second"));
    }
    if json {
        say!("{}", serde_json::Value::Object(out));
    }
}

/// SYNs per `Stack::handle_packets` call in the batched flood: what the tokio driver
/// hands over per wakeup at most (synq-tokio's `RX_BATCH`).
const RX_BATCH: usize = 64;

/// A listener fed spoofed SYNs from distinct sources, `batch` at a time (1: one
/// `handle_packet` each): SYNs handled per second.
fn syn_rate(secs: f64, cookies: &str, accept_queue_full: bool, batch: usize) -> f64 {
    let (mut client, mut server) = stacks(&flood_config(cookies));
    let backlog = if accept_queue_full { 0 } else { i32::MAX };
    let l = server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), backlog)
        .expect("listen");
    let t = Instant::from_secs(1);
    let mut wire = Wire::default();
    if accept_queue_full {
        // One connection nobody accepts fills a backlog-0 queue (Linux holds backlog + 1).
        client
            .connect(t, SocketAddr::new(B, PORT))
            .expect("connect");
        pump(t, &mut client, &mut server, &mut wire);
        assert_eq!(server.listener_info(l).map(|i| i.recv_q), Some(1));
    }
    let syns = spoofed_syns();
    // Stateful (cookies off): each SYN once, so every one makes a request; a SYN seen
    // again would be a retransmission, cheaper work. Stateless modes may repeat.
    let rounds = if cookies == "0" {
        (syns.len() / 1024) as u64
    } else {
        u64::MAX
    };
    let rate = flood(secs, &mut server, &syns, rounds, batch);
    if cookies == "0" {
        // Each SYN handled became a request: no limit refused one on a cheaper path.
        let held: u32 = server.listeners().map(|l| l.syn_recv).sum();
        assert_eq!(u64::from(held), server.counters().in_segs, "SYNs refused");
    }
    rate
}

/// A flood's configuration: `tcp_syncookies` as given, every limit raised.
fn flood_config(cookies: &str) -> Config {
    let mut c = Config::default();
    c.set("net.ipv4.tcp_syncookies", cookies).expect("valid");
    c.set("net.core.somaxconn", "2147483647").expect("valid");
    c.set("net.ipv4.tcp_max_syn_backlog", "2147483647")
        .expect("valid");
    // The connection table counts requests too (its default, 10^6, is under 2^20).
    c.set("synq.max_connections", "2147483647").expect("valid");
    c
}

/// The cookies-off flood, one SYN per call, timing each call: the longest (the request
/// index's last rebuild, stop-the-world) in milliseconds, and the SYN it came at.
fn longest_pause() -> (f64, usize) {
    let (_, mut server) = stacks(&flood_config("0"));
    server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), i32::MAX)
        .expect("listen");
    let t = Instant::from_secs(1);
    let mut buf = Vec::with_capacity(2048);
    let mut worst = (0.0, 0);
    for (i, p) in spoofed_syns().iter().enumerate() {
        let start = WallInstant::now();
        server.handle_packet(t, p);
        keep_longest(&mut worst, start, i);
        while server.poll_transmit(t, &mut buf).is_some() {}
    }
    worst
}

/// The call that began at `start` (the `at`th), in ms, kept in `worst` if the longest.
fn keep_longest(worst: &mut (f64, usize), start: WallInstant, at: usize) {
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if ms > worst.0 {
        *worst = (ms, at);
    }
}

/// 2^20 connections opened and accepted, none closed, one handshake at a time: the
/// longest server `handle_packet` and client `connect_from` (milliseconds), each with the
/// connection it came at. Growing the connection tables happens inside those calls.
fn longest_conn_pauses() -> ((f64, usize), (f64, usize)) {
    let (mut client, mut server) = stacks(&flood_config("0"));
    let t = Instant::from_secs(1);
    let l = server
        .listen(t, SocketAddr::new(B, PORT), i32::MAX)
        .expect("listen");
    let mut w = Wire {
        bufs: Vec::new(),
        lens: Vec::new(),
    };
    let (mut server_worst, mut client_worst) = ((0.0, 0), (0.0, 0));
    for i in 0..1usize << 20 {
        // 60 000 ports from each client address: 10.1.0.0, 10.1.0.1, ...
        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 0, (i / 60_000) as u8));
        if i % 60_000 == 0 {
            client.add_address(ip);
        }
        let local = SocketAddr::new(ip, 1024 + (i % 60_000) as u16);
        let start = WallInstant::now();
        client
            .connect_from(t, local, SocketAddr::new(B, PORT))
            .expect("connect");
        keep_longest(&mut client_worst, start, i);
        // The SYN and the ACK, each timed as the server handles it; the SYN-ACK between.
        for to_server in [true, false, true] {
            let (from, to) = if to_server {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            w.lens.clear();
            w.take(t, from);
            for p in w.packets(0) {
                let start = WallInstant::now();
                to.handle_packet(t, p);
                if to_server {
                    keep_longest(&mut server_worst, start, i);
                }
            }
        }
        server.accept(t, l).expect("accepted");
    }
    (server_worst, client_worst)
}

/// 2^20 distinct spoofed SYNs to `B:PORT`, prepared outside the timing.
pub(crate) fn spoofed_syns() -> Vec<Vec<u8>> {
    (0..1u32 << 20)
        .map(|i| {
            let mut p = Vec::new();
            synq_sim::scenario::spoofed_syn(
                i,
                i.wrapping_mul(2_654_435_761),
                SocketAddr::new(B, PORT),
                &mut p,
            );
            p
        })
        .collect()
}

/// Feed `syns` to `server` in rounds of 1024, or the most whole calls of `batch` that fit
/// (at most `rounds` rounds), `batch` per call
/// (1: `handle_packet`, else `handle_packets`, as a driver reading a batch per wakeup),
/// draining every reply after each call: SYNs handled per second.
pub(crate) fn flood(
    secs: f64,
    server: &mut Stack,
    syns: &[Vec<u8>],
    rounds: u64,
    batch: usize,
) -> f64 {
    let t = Instant::from_secs(1);
    let mut buf = Vec::with_capacity(2048);
    let mut i = 0usize;
    let batch = batch.clamp(1, 1024);
    // Whole calls per round: what a round hands over is what it counts.
    let calls = 1024 / batch;
    rate_max(secs, (calls * batch) as u64, rounds, || {
        for _ in 0..calls {
            if batch == 1 {
                server.handle_packet(t, &syns[i % syns.len()]);
            } else {
                let n = syns.len();
                server.handle_packets(t, (i..i + batch).map(|k| (syns[k % n].as_slice(), false)));
            }
            while server.poll_transmit(t, &mut buf).is_some() {}
            i += batch;
        }
    })
}

/// A cookies-only listener fed ACKs with guessed cookies: each one is parsed, looked up
/// and checked (and fails). ACKs handled per second.
fn forged_ack_rate(secs: f64) -> f64 {
    let mut c = Config::default();
    c.set("net.ipv4.tcp_syncookies", "2").expect("valid");
    let (_, mut server) = stacks(&c);
    server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), 128)
        .expect("listen");
    let t = Instant::from_secs(1);
    let mut buf = Vec::with_capacity(2048);
    // One cookie sent makes the listener check cookie ACKs (Linux: within two minutes).
    let mut p = Vec::new();
    synq_sim::scenario::spoofed_syn(0, 0, SocketAddr::new(B, PORT), &mut p);
    server.handle_packet(t, &p);
    while server.poll_transmit(t, &mut buf).is_some() {}
    let acks: Vec<Vec<u8>> = (0..4096u32)
        .map(|i| {
            let mut out = Vec::new();
            let (seq, ack) = (i.wrapping_mul(7), i.wrapping_mul(2_654_435_761));
            synq_sim::scenario::forged_ack(i + 1, seq, ack, SocketAddr::new(B, PORT), &mut out);
            out
        })
        .collect();
    let mut i = 0;
    let r = rate(secs, 1024, || {
        for _ in 0..1024 {
            server.handle_packet(t, &acks[i % acks.len()]);
            while server.poll_transmit(t, &mut buf).is_some() {}
            i += 1;
        }
    });
    assert!(server.counters().syncookies_failed > 0);
    r
}

/// Live heap bytes `make` adds (measured while what it returns is alive), per item.
fn bytes_per<T>(n: usize, make: impl FnOnce(usize) -> T) -> f64 {
    let region = Region::new(HEAP);
    let kept = make(n);
    let s = region.change();
    drop(kept);
    // stats_alloc already adds a realloc's growth to `bytes_allocated` (and a shrink to
    // `bytes_deallocated`); `bytes_reallocated` repeats it and is not added again.
    let live = s.bytes_allocated as i128 - s.bytes_deallocated as i128;
    live as f64 / n as f64
}

/// A listener stack without cookies and without limits that matter here.
fn big_listener() -> Stack {
    big_listener_on(B)
}

/// As [`big_listener`], listening on `addr` (an IPv6 one for the IPv6 figure).
fn big_listener_on(addr: IpAddr) -> Stack {
    let mut c = Config::default();
    c.set("net.ipv4.tcp_syncookies", "0").expect("valid");
    c.set("net.core.somaxconn", "2147483647").expect("valid");
    c.set("net.ipv4.tcp_max_syn_backlog", "2147483647")
        .expect("valid");
    let mut server = Stack::new(c, 2);
    server.add_address(addr);
    server
        .listen(Instant::ZERO, SocketAddr::new(addr, PORT), i32::MAX)
        .expect("listen");
    server
}

/// The final ACK for spoofed SYN `syn` that `server` answered with `synack`.
fn final_ack(syn: &[u8], synack: &[u8], out: &mut Vec<u8>) {
    use synq_core::wire::{
        emit_packet, packet_len, parse_packet, ChecksumMode, IpRepr, TcpFlags, TcpOptions, TcpRepr,
        Timestamps,
    };
    let syn = parse_packet(syn, ChecksumMode::Verify).expect("our SYN");
    let sa = parse_packet(synack, ChecksumMode::Verify).expect("a SYN-ACK");
    let tcp = TcpRepr {
        src_port: syn.tcp.src_port,
        dst_port: syn.tcp.dst_port,
        seq: syn.tcp.seq + 1,
        ack: sa.tcp.seq + 1,
        flags: TcpFlags::ACK,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            timestamps: sa.tcp.options.timestamps.map(|t| Timestamps {
                tsval: syn.tcp.options.timestamps.map_or(1, |s| s.tsval + 1),
                tsecr: t.tsval,
            }),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let ip = IpRepr {
        src: syn.ip.src,
        dst: syn.ip.dst,
        hop_limit: 64,
    };
    out.clear();
    out.resize(packet_len(&ip, &tcp), 0);
    let n = emit_packet(&ip, &tcp, out).expect("fits");
    out.truncate(n);
}

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e)
            if e.kind() == clap::error::ErrorKind::DisplayHelp
                || e.kind() == clap::error::ErrorKind::DisplayVersion =>
        {
            let _ = e.print();
            return;
        }
        Err(e) => {
            // One line: clap's first line, less its `error: ` prefix.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!(
                "synq-bench: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            std::process::exit(2);
        }
    };
    if !(args.secs.is_finite() && args.secs > 0.0 && args.secs <= 3600.0) {
        eprintln!(
            "synq-bench: --secs {}: expected seconds in (0, 3600]",
            args.secs
        );
        std::process::exit(2);
    }
    if args.kernel_child {
        say!(
            "{}",
            kernel::handshakes_here(args.secs, usize::from(args.sockets))
        );
        return;
    }
    if let Some(addr) = args.tun_client {
        say!("{}", scaling::tun::client(addr, args.secs));
        return;
    }
    if let Some(addr) = args.tun_flood {
        say!("{}", scaling::tun::flood(addr, args.secs));
        return;
    }
    let s = args.secs;
    if args.scaling {
        let mut threads: Vec<usize> = args.threads.iter().map(|&n| usize::from(n)).collect();
        if threads.is_empty() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            threads = (1..=cores).collect();
        }
        scaling::run(s, &threads, args.json);
        return;
    }
    if let Some(path) = &args.latency_plot {
        if let Err(e) = latency::font() {
            eprintln!("synq-bench: {e}");
            std::process::exit(2);
        }
        // A path that cannot be written is bad input: say so before a minute of work.
        if let Err(e) = std::fs::File::create(path) {
            eprintln!("synq-bench: --latency-plot {path}: {e}");
            std::process::exit(2);
        }
        // Each point serves a quarter of a second of arrivals (`--secs` scales it).
        if let Err(e) = latency::figure(path, (s / 8.0).min(5.0)) {
            eprintln!("synq-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.only.is_empty() {
        return only(s, usize::from(args.sockets), &args.only, args.json);
    }
    let sockets = usize::from(args.sockets);
    let each: Vec<serde_json::Value> = (0..args.runs).map(|_| suite(s, sockets)).collect();
    let out = report::summary(&each);
    if args.json {
        say!("{out}");
        return;
    }
    report::table(&out, &each);
}

/// One run of the whole suite: every figure under its JSON key.
fn suite(s: f64, sockets: usize) -> serde_json::Value {
    // Each pair compared as a ratio runs interleaved, a slice at a time.
    // The floor runs in the same turns: its ratio to smoltcp is the bound on synq's.
    let trio = interleaved(
        s,
        &mut [
            synq_handshakes(sockets),
            smol::handshakes(sockets),
            floor::rounds(sockets),
        ],
    );
    let (handshakes, smol_handshakes, floor) = (trio[0], trio[1], trio[2]);
    let kernel = kernel::handshakes(s, sockets);
    let syn0 = syn_rate(s, "0", false, 1);
    let syn0_batched = syn_rate(s, "0", false, RX_BATCH);
    let syn2 = syn_rate(s, "2", false, 1);
    let syn_full = syn_rate(s, "1", true, 1);
    let pair = interleaved(s, &mut [synq_bulk(), smol::bulk()]);
    let (bulk, smol_bulk) = (pair[0], pair[1]);
    // The listener exists before the measurement: only what each request adds counts.
    let mut server = big_listener();
    let t = Instant::from_secs(1);
    let (mut p, mut buf) = (Vec::with_capacity(128), Vec::with_capacity(2048));
    let n = 100_000u32;
    let half_open = bytes_per(n as usize, |n| {
        for i in 0..n as u32 {
            synq_sim::scenario::spoofed_syn(i, i, SocketAddr::new(B, PORT), &mut p);
            server.handle_packet(t, &p);
            while server.poll_transmit(t, &mut buf).is_some() {}
        }
    });
    assert_eq!(server.listeners().map(|l| l.syn_recv).sum::<u32>(), n);
    drop(server);
    // The same from IPv6 peers: their addresses' last 12 bytes sit beside the records.
    let b6: IpAddr = "fd00::2".parse().expect("an address");
    let mut server = big_listener_on(b6);
    let half_open_v6 = bytes_per(n as usize, |n| {
        for i in 0..n as u32 {
            synq_sim::scenario::spoofed_syn(i, i, SocketAddr::new(b6, PORT), &mut p);
            server.handle_packet(t, &p);
            while server.poll_transmit(t, &mut buf).is_some() {}
        }
    });
    assert_eq!(server.listeners().map(|l| l.syn_recv).sum::<u32>(), n);
    drop(server);
    // Idle established connections, accepted: SYN, SYN-ACK, final ACK, accept.
    let mut server = big_listener();
    let l = server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), i32::MAX)
        .expect("the same listener again");
    let (mut synack, mut ack) = (Vec::with_capacity(128), Vec::with_capacity(128));
    let m = 10_000u32;
    let established = bytes_per(m as usize, |m| {
        let mut held = Vec::with_capacity(m);
        for i in 0..m as u32 {
            synq_sim::scenario::spoofed_syn(i, i, SocketAddr::new(B, PORT), &mut p);
            server.handle_packet(t, &p);
            let n = server.poll_transmit(t, &mut synack).expect("a SYN-ACK");
            final_ack(&p, &synack[..n], &mut ack);
            server.handle_packet(t, &ack);
            while server.poll_transmit(t, &mut buf).is_some() {}
            if let Ok((h, _)) = server.accept(t, l) {
                held.push(h);
            }
        }
        held
    });
    assert_eq!(
        server
            .connections()
            .filter(|c| c.state == State::Established)
            .count(),
        m as usize
    );
    drop(server);
    let cookie_ns = 1e9 / forged_ack_rate(s);
    let limits = machine::measure(s);
    let mut out = json!({
        "handshakes_per_sec": handshakes.round(),
        "smoltcp_handshakes_per_sec": smol_handshakes.round(),
        "handshake_floor_per_sec": floor.round(),
        "kernel_handshakes_per_sec": kernel.map(f64::round),
        "syn_per_sec_cookies0": syn0.round(),
        "syn_per_sec_cookies0_batched": syn0_batched.round(),
        "syn_per_sec_cookies2": syn2.round(),
        "syn_per_sec_accept_queue_full": syn_full.round(),
        "half_open_bytes": (half_open * 10.0).round() / 10.0,
        "half_open_bytes_ipv6": (half_open_v6 * 10.0).round() / 10.0,
        "established_idle_bytes": established.round(),
        "cookie_check_ns": (cookie_ns * 10.0).round() / 10.0,
        "bulk_bytes_per_sec": bulk.round(),
        "smoltcp_bulk_bytes_per_sec": smol_bulk.round(),
        "handshake_sockets": sockets,
        "secs": s,
    });
    if let (Some(o), serde_json::Value::Object(m)) = (out.as_object_mut(), limits.json()) {
        o.extend(m);
    }
    out
}

mod kernel {
    use super::rate;
    use socket2::{Domain, Socket, Type};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// Run the kernel's handshakes in a fresh namespace (root), `None` without one.
    pub(super) fn handshakes(secs: f64, n: usize) -> Option<f64> {
        if synq_tun::unsupported().is_some() {
            return None;
        }
        let ns = synq_tun::Netns::create("sqbench").ok()?;
        let up = ns
            .command("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .ok()?;
        if !up.success() {
            return None;
        }
        let exe = std::env::current_exe().ok()?;
        let out = ns
            .command(exe.to_str()?)
            .args(["--kernel-child", "--secs", &secs.to_string()])
            .args(["--sockets", &n.to_string()])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// Inside the namespace: connect, accept, abort (SO_LINGER 0), `n` at a time.
    pub(super) fn handshakes_here(secs: f64, n: usize) -> f64 {
        // std's `bind` listens with a backlog of 128; `n` connections wait to be accepted.
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        s.listen(n.max(128) as i32).expect("listen");
        let listener: TcpListener = s.into();
        let addr: SocketAddr = listener.local_addr().expect("address");
        rate(secs, n as u64, || {
            let clients: Vec<TcpStream> = (0..n)
                .map(|_| {
                    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
                    s.set_linger(Some(std::time::Duration::ZERO))
                        .expect("linger");
                    s.connect(&addr.into()).expect("connect");
                    s.into()
                })
                .collect();
            for _ in 0..n {
                let (s, _) = listener.accept().expect("accept");
                socket2::SockRef::from(&s)
                    .set_linger(Some(std::time::Duration::ZERO))
                    .expect("linger");
            }
            drop(clients);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{interleaved, Rounds, SLICE};
    use std::sync::{Arc, Mutex};

    #[test]
    fn interleaved_measurements_take_turns_and_each_runs_its_time() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut ms: Vec<Rounds> = (0..2u8)
            .map(|id| {
                let order = Arc::clone(&order);
                Box::new(move || {
                    order.lock().expect("not poisoned").push(id);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    // The second does twice the items per round.
                    u64::from(id) + 1
                }) as Rounds
            })
            .collect();
        let secs = 5.0 * SLICE.as_secs_f64();
        let rates = interleaved(secs, &mut ms);
        let order = order.lock().expect("not poisoned");
        let turns = order.windows(2).filter(|w| w[0] != w[1]).count();
        // Five slices each, alternating: at least nine changes of hands (two if run back
        // to back).
        assert!(turns >= 9, "{turns} turns");
        // Each round sleeps 1 ms or more, so at most 1000 rounds a second.
        assert!(rates[0] > 0.0 && rates[0] <= 1000.0, "{rates:?}");
        assert!(rates[1] > 0.0 && rates[1] <= 2000.0, "{rates:?}");
        let count = |id| order.iter().filter(|&&x| x == id).count() as f64;
        // Both ran about as long: about as many rounds each.
        let share = count(0) / count(1);
        assert!((0.5..2.0).contains(&share), "{share}");
    }
}
