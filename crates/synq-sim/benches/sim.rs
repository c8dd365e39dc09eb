//! Benchmarks of synq: simulated bulk transfers, handshake rates (through the simulator and
//! engine-only), SYN-flood handling per cookie mode and packet parse/emit.
//!
//! Figures are reported by divan, never asserted. Throughput counters are per iteration, so
//! divan's bytes/s and items/s are per second of *wall* time, not of virtual time.
//!
//! Run with `cargo bench -p synq-sim --bench sim`.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use synq_core::{Config, ConnHandle, Duration, Instant, ListenerHandle, Stack, State};

fn main() {
    divan::main();
}

/// Client host address (TEST-NET-1).
const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// Server host address.
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

/// `scenario::transfer` of 1 MB and 10 MB over a 100 µs RTT link.
mod bulk_transfer {
    use super::{Bencher, BytesCount, Duration};
    use synq_sim::scenario::{transfer, TransferParams};

    const MB: u64 = 1 << 20;

    fn run(bencher: Bencher<'_, '_>, bytes: u64, loss: f64) {
        let params = TransferParams {
            bytes,
            loss,
            rtt: Duration::from_micros(100),
            // Bounds every run (the simulator's step limit bounds it too).
            time_limit: Duration::from_secs(600),
            ..TransferParams::default()
        };
        bencher.counter(BytesCount::new(bytes)).bench(|| {
            let report = transfer(&params).expect("valid link parameters");
            assert!(report.intact, "transfer incomplete: {report:?}");
            // The lossy variant must really lose packets (a sanity check, not a timing one).
            assert_eq!(report.packets_lost > 0, loss > 0.0, "{report:?}");
            report
        });
    }

    /// No loss.
    #[divan::bench(args = [MB, 10 * MB], sample_count = 20, sample_size = 1)]
    fn lossless(bencher: Bencher<'_, '_>, bytes: u64) {
        run(bencher, bytes, 0.0);
    }

    /// 1% loss in both directions.
    #[divan::bench(args = [MB, 10 * MB], sample_count = 20, sample_size = 1)]
    fn loss_1pct(bencher: Bencher<'_, '_>, bytes: u64) {
        run(bencher, bytes, 0.01);
    }
}

/// N client connects to one listener, until all are ESTABLISHED and accepted.
mod handshakes {
    use super::{
        Bencher, Config, ConnHandle, Duration, Instant, ItemsCount, ListenerHandle, SocketAddr,
        Stack, State, A, B,
    };
    use synq_sim::{LinkConfig, Network};

    /// Connections per iteration (below the default port range and somaxconn).
    const N: usize = 1000;
    /// Listen backlog: at least N, so neither the SYN nor the accept queue overflows.
    const BACKLOG: i32 = 1024;
    const PORT: u16 = 80;

    /// Receive-buffer settings the handshake benches run with. Each connection allocates
    /// (and zeroes) its receive buffer at creation: ~128 KiB with the default `tcp_rmem`,
    /// which dominates the cost of a handshake; `rmem_4k` shows the rest of the engine.
    const RMEM: [&str; 2] = ["default_rmem", "rmem_4k"];

    fn config(rmem: &str) -> Config {
        let mut cfg = Config::default();
        match rmem {
            "default_rmem" => {}
            "rmem_4k" => cfg
                .set("net.ipv4.tcp_rmem", "4096 4096 4096")
                .expect("valid sysctl"),
            other => panic!("unknown rmem setting {other}"),
        }
        cfg
    }

    fn stacks(rmem: &str) -> (Stack, Stack, ListenerHandle) {
        let cfg = config(rmem);
        let mut client = Stack::new(cfg.clone(), 1);
        client.add_address(A);
        let mut server = Stack::new(cfg, 2);
        server.add_address(B);
        let l = server
            .listen(Instant::ZERO, SocketAddr::new(B, PORT), BACKLOG)
            .expect("fresh stack can listen");
        (client, server, l)
    }

    fn check_established(client: &Stack, conns: &[ConnHandle]) {
        assert!(conns
            .iter()
            .all(|&c| client.state(c) == Some(State::Established)));
    }

    /// Through the simulator: two hosts, 50 µs links each way.
    #[divan::bench(args = RMEM, sample_count = 10, sample_size = 1)]
    fn simulated(bencher: Bencher<'_, '_>, rmem: &str) {
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| {
                let (client, server, l) = stacks(rmem);
                let mut net: Network<Stack> = Network::new(5);
                net.set_default_link(LinkConfig {
                    delay: Duration::from_micros(50),
                    ..LinkConfig::default()
                });
                // A handshake is a handful of steps; far more means something broke.
                net.set_step_limit(100 * N as u64);
                let c = net.add_host(A, client);
                let s = net.add_host(B, server);
                (net, c, s, l)
            })
            .bench_local_values(|(mut net, c, s, l)| {
                let now = net.now();
                let conns: Vec<ConnHandle> = (0..N)
                    .map(|_| {
                        net.host_mut(c)
                            .connect(now, SocketAddr::new(B, PORT))
                            .expect("ports available")
                    })
                    .collect();
                let mut accepted = 0;
                // Bounded by the deadline and by the network's step limit.
                net.run_until_with(Instant::from_secs(1), |net| {
                    if net.host(s).listener_info(l).is_some_and(|i| i.recv_q > 0) {
                        let now = net.now();
                        let server = net.host_mut(s);
                        while server.accept(now, l).is_ok() {
                            accepted += 1;
                        }
                    }
                    accepted < N
                });
                assert_eq!(accepted, N);
                check_established(net.host(c), &conns);
                net
            });
    }

    /// Engine only: two stacks hand packets to each other directly at a fixed instant.
    #[divan::bench(args = RMEM, sample_count = 10, sample_size = 1)]
    fn engine_only(bencher: Bencher<'_, '_>, rmem: &str) {
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| stacks(rmem))
            .bench_local_values(|(mut client, mut server, l)| {
                let now = Instant::from_secs(1);
                let conns: Vec<ConnHandle> = (0..N)
                    .map(|_| {
                        client
                            .connect(now, SocketAddr::new(B, PORT))
                            .expect("ports available")
                    })
                    .collect();
                let mut buf = Vec::with_capacity(2048);
                let mut accepted = 0;
                let mut rounds = 0;
                loop {
                    // SYN, SYN-ACK, ACK: a few rounds suffice.
                    rounds += 1;
                    assert!(rounds < 100, "handshakes did not settle");
                    let mut moved = 0;
                    while let Some(n) = client.poll_transmit(now, &mut buf) {
                        server.handle_packet(now, &buf[..n]);
                        moved += 1;
                        assert!(moved <= 10 * N, "client kept transmitting");
                    }
                    while let Some(n) = server.poll_transmit(now, &mut buf) {
                        client.handle_packet(now, &buf[..n]);
                        moved += 1;
                        assert!(moved <= 20 * N, "server kept transmitting");
                    }
                    while server.accept(now, l).is_ok() {
                        accepted += 1;
                    }
                    if moved == 0 {
                        break;
                    }
                }
                assert_eq!(accepted, N);
                check_established(&client, &conns);
                (client, server)
            });
    }
}

/// A SYN flood into one listener, engine only: SYNs from distinct spoofed sources handled
/// and answered, with `tcp_syncookies` 0 (every SYN becomes a request), 1 (cookies once the
/// SYN queue of backlog+1 is full) and 2 (cookies only, nothing stored).
mod synflood {
    use super::{Bencher, ItemsCount, B};
    use synq_core::{Config, Instant, Stack};
    use synq_sim::scenario::spoofed_syn;

    const N: u32 = 100_000;

    fn syns() -> Vec<Vec<u8>> {
        let dst = core::net::SocketAddr::new(B, 80);
        (0..N)
            .map(|i| {
                let mut buf = Vec::new();
                spoofed_syn(i, i.wrapping_mul(2_654_435_761), dst, &mut buf);
                buf
            })
            .collect()
    }

    #[divan::bench(args = ["0", "1", "2"], sample_count = 10, sample_size = 1)]
    fn syncookies(bencher: Bencher<'_, '_>, mode: &str) {
        let packets = syns();
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| {
                let mut c = Config::default();
                c.set("net.ipv4.tcp_syncookies", mode).expect("valid");
                c.set("net.core.somaxconn", "2147483647").expect("valid");
                c.set("net.ipv4.tcp_max_syn_backlog", "2147483647")
                    .expect("valid");
                let mut s = Stack::new(c, 1);
                s.add_address(B);
                let backlog = if mode == "0" { -1 } else { 128 };
                s.listen(Instant::ZERO, core::net::SocketAddr::new(B, 80), backlog)
                    .expect("listen");
                s
            })
            .bench_local_values(|mut s| {
                let now = Instant::from_secs(1);
                let mut buf = Vec::with_capacity(2048);
                for p in &packets {
                    s.handle_packet(now, p);
                    while s.poll_transmit(now, &mut buf).is_some() {}
                }
                assert_eq!(s.counters().synacks_sent, u64::from(N));
                s
            });
    }
}

/// The simulator's own speed: packets the hosts send per second of wall time, running the
/// built-in scenarios (`synq sim run NAME --speed` prints the same figure for any scenario).
mod simulator_speed {
    use super::{Bencher, ItemsCount};
    use synq_core::Model;
    use synq_sim::scenario::{builtin, run, RunParams};

    fn params(name: &str) -> RunParams {
        RunParams {
            scenario: builtin(name).expect("built-in"),
            model: Some(Model::Linux),
            sysctls: Vec::new(),
            seed: 1,
            timeline: false,
        }
    }

    /// Items are packets: divan's items/s is the simulator's packets per second.
    #[divan::bench(args = ["flood-with-legit", "slow-accept", "burst"], sample_count = 5, sample_size = 1)]
    fn scenario(bencher: Bencher<'_, '_>, name: &str) {
        let p = params(name);
        // Runs are deterministic: one run tells how many packets every run moves.
        let packets = run(&p).expect("runs").packets;
        bencher
            .counter(ItemsCount::new(packets))
            .bench(|| run(&p).expect("runs"));
    }
}

/// `parse_packet` / `emit_packet` of a 1500-byte IPv4 TCP data segment with timestamps, and
/// of a 60-byte SYN-ACK (options, no payload: the header-sized checksums a flood runs on).
mod wire {
    use super::{black_box, Bencher, BytesCount, A, B};
    use synq_core::wire::{
        emit_packet, packet_len, parse_packet, ChecksumMode, IpRepr, SeqNumber, TcpFlags,
        TcpOptions, TcpRepr, Timestamps,
    };

    /// IP packet size: 20 (IPv4) + 20 (TCP) + 12 (timestamps) + 1448 payload.
    const PACKET: usize = 1500;
    const PAYLOAD: usize = PACKET - 20 - 20 - 12;

    fn ip() -> IpRepr {
        IpRepr {
            src: A,
            dst: B,
            hop_limit: 64,
        }
    }

    fn segment(payload: &[u8]) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 40_000,
            dst_port: 5001,
            seq: SeqNumber(0x1234_5678),
            ack: SeqNumber(0x9abc_def0),
            flags: TcpFlags::ACK.union(TcpFlags::PSH),
            window: 0xffff,
            urgent: 0,
            options: TcpOptions {
                timestamps: Some(Timestamps {
                    tsval: 1_000_000,
                    tsecr: 999_000,
                }),
                ..TcpOptions::default()
            },
            payload,
        }
    }

    /// A SYN-ACK as Linux lays it out: MSS, SACK permitted, timestamps, window scale.
    fn synack() -> TcpRepr<'static> {
        TcpRepr {
            flags: TcpFlags::SYN.union(TcpFlags::ACK),
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps {
                    tsval: 1_000_000,
                    tsecr: 999_000,
                }),
                ..TcpOptions::default()
            },
            ..segment(&[])
        }
    }

    fn payload() -> Vec<u8> {
        (0..PAYLOAD).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Parse with both checksums verified.
    #[divan::bench]
    fn parse(bencher: Bencher<'_, '_>) {
        let payload = payload();
        let (ip, tcp) = (ip(), segment(&payload));
        assert_eq!(packet_len(&ip, &tcp), PACKET);
        let mut bytes = vec![0u8; PACKET];
        let n = emit_packet(&ip, &tcp, &mut bytes).expect("buffer fits");
        assert_eq!(n, PACKET);
        let parsed = parse_packet(&bytes, ChecksumMode::Verify).expect("valid packet");
        assert_eq!(parsed.tcp, tcp);
        bencher
            .counter(BytesCount::new(PACKET))
            .bench_local(|| parse_packet(black_box(&bytes), ChecksumMode::Verify));
    }

    /// Emit, filling both checksums.
    #[divan::bench]
    fn emit(bencher: Bencher<'_, '_>) {
        let payload = payload();
        let (ip, tcp) = (ip(), segment(&payload));
        let mut buf = vec![0u8; PACKET];
        bencher
            .counter(BytesCount::new(PACKET))
            .bench_local(|| emit_packet(black_box(&ip), black_box(&tcp), black_box(&mut buf[..])));
    }

    /// Parse a SYN-ACK with both checksums verified.
    #[divan::bench]
    fn parse_synack(bencher: Bencher<'_, '_>) {
        let (ip, tcp) = (ip(), synack());
        assert_eq!(packet_len(&ip, &tcp), 60);
        let mut bytes = vec![0u8; 60];
        emit_packet(&ip, &tcp, &mut bytes).expect("buffer fits");
        let parsed = parse_packet(&bytes, ChecksumMode::Verify).expect("valid packet");
        assert_eq!(parsed.tcp, tcp);
        bencher
            .counter(BytesCount::new(60usize))
            .bench_local(|| parse_packet(black_box(&bytes), ChecksumMode::Verify));
    }

    /// Emit a SYN-ACK, filling both checksums.
    #[divan::bench]
    fn emit_synack(bencher: Bencher<'_, '_>) {
        let (ip, tcp) = (ip(), synack());
        let mut buf = [0u8; 60];
        bencher
            .counter(BytesCount::new(60usize))
            .bench_local(|| emit_packet(black_box(&ip), black_box(&tcp), black_box(&mut buf[..])));
    }
}
