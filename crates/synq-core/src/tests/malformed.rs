use super::util::*;
use crate::{Config, Instant, Stack};
use proptest::prelude::*;
use synq_wire::{emit_packet, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr};

fn valid_syn() -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 1234,
        dst_port: 80,
        seq: SeqNumber(1),
        ack: SeqNumber(0),
        flags: TcpFlags::SYN,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let ip = IpRepr {
        src: A4,
        dst: B4,
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 100];
    let n = emit_packet(&ip, &tcp, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn stack() -> Stack {
    let mut s = Stack::new(Config::default(), 7);
    s.add_address(B4);
    s.listen(Instant::ZERO, core::net::SocketAddr::new(B4, 80), 10)
        .unwrap();
    s
}

#[test]
fn each_error_is_counted() {
    let mut s = stack();
    let good = valid_syn();
    // Bad TCP checksum.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    s.handle_packet(Instant::ZERO, &bad);
    assert_eq!((s.counters().in_errs, s.counters().in_csum_errors), (1, 1));
    // Truncated IP.
    s.handle_packet(Instant::ZERO, &good[..10]);
    assert_eq!(s.counters().ip_in_truncated, 1);
    // Bad IP header checksum.
    let mut bad = good.clone();
    bad[10] ^= 1;
    s.handle_packet(Instant::ZERO, &bad);
    assert_eq!(s.counters().ip_in_hdr_errors, 1);
    // Not TCP.
    let mut udp = good.clone();
    udp[9] = 17;
    let mut p = synq_wire::Ipv4Packet::new_unchecked(&mut udp[..]);
    p.fill_checksum();
    s.handle_packet(Instant::ZERO, &udp);
    assert_eq!(s.counters().ip_in_unknown_protos, 1);
    // Garbage version.
    s.handle_packet(Instant::ZERO, &[0x12; 40]);
    assert_eq!(s.counters().ip_in_hdr_errors, 2);
    // Nothing was created by any of it; the good one still works.
    assert_eq!(s.listeners().next().unwrap().syn_recv, 0);
    s.handle_packet(Instant::ZERO, &good);
    assert_eq!(s.listeners().next().unwrap().syn_recv, 1);
    assert_eq!(s.counters().ip_in_receives, 6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut s = stack();
        s.handle_packet(Instant::ZERO, &bytes);
        let mut buf = Vec::new();
        while s.poll_transmit(Instant::ZERO, &mut buf).is_some() {}
    }

    #[test]
    fn mutated_packets_never_panic(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..6), cut in 0usize..80) {
        let mut s = stack();
        let mut pkt = valid_syn();
        for (i, b) in flips {
            let n = pkt.len();
            pkt[i % n] ^= b;
        }
        pkt.truncate(cut.max(1).min(pkt.len()));
        s.handle_packet(Instant::ZERO, &pkt);
        s.handle_timeout(Instant::from_secs(100));
        let mut buf = Vec::new();
        while s.poll_transmit(Instant::from_secs(100), &mut buf).is_some() {}
    }
}

#[test]
fn a_checksum_the_device_vouched_for_is_not_checked_again() {
    // Checksum offload: the field holds only a partial sum, and the segment still counts.
    let mut s = stack();
    let mut syn = valid_syn();
    let last = syn.len() - 1;
    syn[last] ^= 0xff;
    s.handle_packet_verified(Instant::ZERO, &syn);
    assert_eq!(s.counters().in_csum_errors, 0);
    assert_eq!(s.counters().in_errs, 0);
    let mut out = Vec::new();
    assert!(
        s.poll_transmit(Instant::ZERO, &mut out).is_some(),
        "SYN-ACK"
    );
    // Every other check stays: a bad IP header checksum is still an error.
    let mut bad = valid_syn();
    bad[10] ^= 1;
    s.handle_packet_verified(Instant::ZERO, &bad);
    assert_eq!(s.counters().ip_in_hdr_errors, 1);
}

#[test]
fn short_tcp_headers_are_dropped_as_linux_drops_them() {
    // tcp_v4_rcv: fewer than 20 bytes, or fewer than the data offset says, is `discard_it`
    // (TcpInSegs only); a data offset below 5 is `bad_packet` (TcpInErrs). Checked against
    // the kernel by synq-cli's tests/serve.rs over a TUN device.
    let mut s = stack();
    let good = valid_syn();
    let ihl = 20;
    let short_ip = |tcp_len: usize| {
        let mut p = good[..ihl + tcp_len].to_vec();
        p[2..4].copy_from_slice(&((ihl + tcp_len) as u16).to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = synq_wire::checksum::fold(synq_wire::checksum::sum(&p[..ihl], 0));
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    };
    s.handle_packet(Instant::ZERO, &short_ip(8));
    let c = s.counters();
    assert_eq!((c.in_segs, c.in_errs, c.in_truncated_segs), (1, 0, 1));
    // A 24-byte SYN (MSS option) cut to 20 bytes: the header outruns the packet.
    s.handle_packet(Instant::ZERO, &short_ip(20));
    let c = s.counters();
    assert_eq!((c.in_segs, c.in_errs, c.in_truncated_segs), (2, 0, 2));
    let mut bad = good.clone();
    bad[ihl + 12] = 0x20;
    s.handle_packet(Instant::ZERO, &bad);
    let c = s.counters();
    assert_eq!((c.in_errs, c.in_bad_data_offset), (1, 1));
}
