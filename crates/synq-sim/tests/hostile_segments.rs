//! Hostile input against live connections: random segments near the window, every flag
//! combination, options and payloads. The stack must not panic, must keep emitting valid
//! packets, and its gauges must stay consistent with its connections.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use proptest::prelude::*;
use synq_core::wire::{
    emit_packet, parse_packet, ChecksumMode, IpRepr, SackBlocks, SeqNumber, TcpFlags, TcpOptions,
    TcpRepr, Timestamps,
};
use synq_core::{Config, Duration, Instant, Stack, State};
use synq_sim::{LinkConfig, Network};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

#[derive(Debug, Clone)]
struct Hostile {
    flags: u8,
    seq_off: i32,
    ack_off: i32,
    window: u16,
    payload: usize,
    ts: Option<(u32, u32)>,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: Vec<(i32, i32)>,
    wait_ms: u64,
}

fn hostile() -> impl Strategy<Value = Hostile> {
    (
        any::<u8>(),
        -70_000i32..70_000,
        -70_000i32..70_000,
        any::<u16>(),
        0usize..1600,
        proptest::option::of((any::<u32>(), any::<u32>())),
        proptest::option::of(any::<u16>()),
        proptest::option::of(0u8..20),
        proptest::collection::vec((-5000i32..5000, -5000i32..5000), 0..4),
        0u64..300,
    )
        .prop_map(
            |(flags, seq_off, ack_off, window, payload, ts, mss, wscale, sack, wait_ms)| Hostile {
                flags,
                seq_off,
                ack_off,
                window,
                payload,
                ts,
                mss,
                wscale,
                sack,
                wait_ms,
            },
        )
}

fn check_gauges(s: &Stack) {
    let estab = s
        .connections()
        .filter(|i| matches!(i.state, State::Established | State::CloseWait))
        .count();
    assert_eq!(
        s.counters().curr_estab,
        estab as u64,
        "TcpCurrEstab matches the table"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_segments_against_a_live_connection(segs in proptest::collection::vec(hostile(), 1..40), data in 0usize..20_000) {
        let mut net: Network<Stack> = Network::new(3);
        net.set_default_link(LinkConfig { delay: Duration::from_micros(500), ..LinkConfig::default() });
        let mut a = Stack::new(Config::default(), 1);
        a.add_address(A);
        let mut b = Stack::new(Config::default(), 2);
        b.add_address(B);
        let l = b.listen(Instant::ZERO, SocketAddr::new(B, 80), 16).unwrap();
        let c = a.connect(Instant::ZERO, SocketAddr::new(B, 80)).unwrap();
        let ha = net.add_host(A, a);
        let hb = net.add_host(B, b);
        net.run_until(Instant::from_millis(10));
        let now = net.now();
        let (s, _) = net.host_mut(hb).accept(now, l).unwrap();
        let payload = vec![0x5a; data];
        let _ = net.host_mut(ha).send(now, c, &payload);
        let tuple = net.host(ha).info(c).unwrap().tuple;
        let body = [0xa5u8; 1600];
        for h in segs {
            net.run_until(net.now() + Duration::from_millis(h.wait_ms));
            let info = net.host(hb).info(s).unwrap();
            let mut sack = SackBlocks::new();
            for (l, r) in &h.sack {
                sack.push(info.snd_una + *l as u32, info.snd_una + *r as u32);
            }
            let tcp = TcpRepr {
                src_port: tuple.local.port(),
                dst_port: tuple.remote.port(),
                seq: SeqNumber(info.rcv_nxt.0.wrapping_add(h.seq_off as u32)),
                ack: SeqNumber(info.snd_una.0.wrapping_add(h.ack_off as u32)),
                flags: TcpFlags(h.flags),
                window: h.window,
                urgent: 0,
                options: TcpOptions {
                    mss: h.mss,
                    window_scale: h.wscale,
                    sack_permitted: h.flags & 1 == 1,
                    sack_blocks: sack,
                    timestamps: h.ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                    bsd_layout: false,
                },
                payload: &body[..h.payload.min(1400)],
            };
            let ip = IpRepr { src: A, dst: B, hop_limit: 64 };
            let mut buf = vec![0u8; 1600];
            let n = emit_packet(&ip, &tcp, &mut buf).unwrap();
            let now = net.now();
            let b = net.host_mut(hb);
            b.handle_packet(now, &buf[..n]);
            // Everything it says in reply must be a valid packet.
            let mut out = Vec::new();
            let mut k = 0;
            while let Some(len) = b.poll_transmit(now, &mut out) {
                prop_assert!(parse_packet(&out[..len], ChecksumMode::Verify).is_ok());
                k += 1;
                prop_assert!(k < 10_000, "bounded output");
            }
            check_gauges(net.host(hb));
            let _ = net.host_mut(hb).recv(now, s, &mut [0u8; 4096]);
        }
        // Time passes: every timer fires without panicking and the tables drain.
        net.run_until(net.now() + Duration::from_secs(600));
        check_gauges(net.host(ha));
        check_gauges(net.host(hb));
    }
}
