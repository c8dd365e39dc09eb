//! Hostile input against a listener: random SYNs, ACKs (near and far from any ISS), RSTs
//! and data from a small set of peers, with time jumps and accept() calls, under every
//! model, cookie mode and backlog. The stack must not panic, every packet it emits must
//! parse, and the queues must keep the bounds their model promises.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use proptest::prelude::*;
use synq_core::wire::{
    emit_packet, packet_len, parse_packet, ChecksumMode, IpRepr, SeqNumber, TcpFlags, TcpOptions,
    TcpRepr, Timestamps,
};
use synq_core::{Config, Duration, Instant, Model, Stack, Syncookies};

const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

#[derive(Debug, Clone)]
enum Op {
    /// A segment from peer `peer` with these flags; `near` picks ack = last ISS + 1 + off.
    Seg {
        peer: u8,
        flags: u8,
        seq_off: i32,
        near: bool,
        ack_off: i32,
        data: u16,
        ts: Option<u32>,
    },
    Wait(u32),
    Accept,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, flags(), -3i32..3, any::<bool>(), -2i32..2, 0u16..200,
              proptest::option::of(any::<u32>()))
            .prop_map(|(peer, flags, seq_off, near, ack_off, data, ts)| Op::Seg {
                peer, flags, seq_off, near, ack_off, data, ts,
            }),
        1 => (1u32..20_000).prop_map(Op::Wait),
        1 => Just(Op::Accept),
    ]
}

/// Mostly the flags a handshake uses, sometimes anything.
fn flags() -> impl Strategy<Value = u8> {
    let f = |x: TcpFlags| x.0;
    prop_oneof![
        4 => Just(f(TcpFlags::SYN)),
        3 => Just(f(TcpFlags::ACK)),
        1 => Just(f(TcpFlags::ACK | TcpFlags::PSH)),
        1 => Just(f(TcpFlags::RST)),
        1 => Just(f(TcpFlags::ACK | TcpFlags::FIN)),
        1 => any::<u8>(),
    ]
}

fn peer(k: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1 + k)),
        40_000 + u16::from(k),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn listener_survives_and_keeps_its_bounds(
        model in prop_oneof![Just(Model::Linux), Just(Model::Linux410), Just(Model::Bsd),
                             Just(Model::BsdExact), Just(Model::FreeBsd)],
        cookies in 0u8..3,
        abort in any::<bool>(),
        backlog in -2i32..6,
        defer in 0u32..4,
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let c = Config {
            model,
            tcp_syncookies: Syncookies::from_raw(cookies),
            freebsd_syncookies: cookies != 0,
            syncache_bucketlimit: 3,
            syncache_cachelimit: 8,
            tcp_abort_on_overflow: abort,
            tcp_synack_retries: 2,
            ..Config::default()
        };
        let mut s = Stack::new(c, 3);
        s.add_address(SERVER);
        let l = s.listen(Instant::ZERO, SocketAddr::new(SERVER, 80), backlog).unwrap();
        s.set_defer_accept(l, defer).unwrap();
        let send_q = s.listener_info(l).unwrap().send_q;
        let mut now = Instant::ZERO;
        let mut last_iss = [0u32; 12];
        let mut buf = Vec::new();
        for op in ops {
            match op {
                Op::Seg { peer: k, flags, seq_off, near, ack_off, data, ts } => {
                    let payload = vec![7u8; usize::from(data)];
                    let base = 1_000 * u32::from(k) + 1;
                    let ack = if near {
                        last_iss[usize::from(k)].wrapping_add(1).wrapping_add(ack_off as u32)
                    } else {
                        base.wrapping_mul(2_654_435_761)
                    };
                    let tcp = TcpRepr {
                        src_port: peer(k).port(),
                        dst_port: 80,
                        seq: SeqNumber(base.wrapping_add(seq_off as u32)),
                        ack: SeqNumber(ack),
                        flags: TcpFlags(flags),
                        window: 29_200,
                        urgent: 0,
                        options: TcpOptions {
                            mss: Some(1460),
                            timestamps: ts.map(|v| Timestamps { tsval: v, tsecr: v.rotate_left(3) }),
                            ..TcpOptions::default()
                        },
                        payload: &payload,
                    };
                    let ip = IpRepr { src: peer(k).ip(), dst: SERVER, hop_limit: 64 };
                    let mut pkt = vec![0; packet_len(&ip, &tcp)];
                    emit_packet(&ip, &tcp, &mut pkt).unwrap();
                    s.handle_packet(now, &pkt);
                }
                Op::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    for _ in 0..10_000 {
                        match s.poll_timeout() {
                            Some(t) if t <= now => s.handle_timeout(t.max(now)),
                            _ => break,
                        }
                    }
                }
                Op::Accept => {
                    let _ = s.accept(now, l);
                }
            }
            while let Some(n) = s.poll_transmit(now, &mut buf) {
                let p = parse_packet(&buf[..n], ChecksumMode::Verify);
                prop_assert!(p.is_ok(), "emitted an unparsable packet");
                let p = p.unwrap();
                if p.tcp.flags.syn() && p.tcp.flags.ack() {
                    if let IpAddr::V4(v) = p.ip.dst {
                        let k = v.octets()[3].wrapping_sub(1);
                        if let Some(slot) = last_iss.get_mut(usize::from(k)) {
                            *slot = p.tcp.seq.0;
                        }
                    }
                }
            }
            while s.poll_event().is_some() {}
            let info = s.listener_info(l).unwrap();
            prop_assert_eq!(info.send_q, send_q);
            prop_assert_eq!(info.syn_recv as usize, s.syn_recv().count());
            let (q, r) = (u64::from(info.syn_recv), u64::from(info.recv_q));
            let b = u64::from(send_q);
            match model {
                Model::Linux => prop_assert!(q <= b + 1 && r <= b + 1, "{q} {r} over {b}"),
                Model::Linux410 => prop_assert!(q <= b.max(1) && r <= b + 1, "{q} {r} over {b}"),
                Model::Bsd => prop_assert!(q + r <= 3 * b / 2 + 1, "{q}+{r} over {b}"),
                Model::BsdExact => prop_assert!(q + r <= b, "{q}+{r} over {b}"),
                // The syncache is shared and bounded by its own limits; the listen queue
                // holds at most floor(3q/2)+1 completed connections.
                Model::FreeBsd => prop_assert!(q <= 8 && r <= 3 * b / 2 + 1, "{q} {r} over {b}"),
            }
        }
    }
}
