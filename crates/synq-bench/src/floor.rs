//! `--only handshake-floor`: the packet work and keyed hashing of one synq handshake, with
//! no state at all. The five packets synq's handshake puts on the wire (SYN, SYN-ACK, ACK
//! and both RSTs, captured from one real handshake) are each parsed with both checksums
//! verified and emitted again with both computed, and the keyed hashes synq computes per
//! handshake are computed: three SipHash-2-4 of the 4-tuple (the ISN and timestamp offset
//! on each side, and the offset again when the connection is made) and four SipHash-1-3
//! (the connection and request indexes). No table, queue, timer or connection is touched.
//! Set beside smoltcp's handshakes, this bounds how far synq's ratio can go while it keeps
//! the checksums and keyed hashes (docs/PERFORMANCE.md, "The handshake floor").

use crate::{Rounds, A, B, PORT};
use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};
use siphasher::sip::{SipHasher13, SipHasher24};
use std::hint::black_box;
use synq_core::wire::{emit_packet, parse_packet, ChecksumMode};
use synq_core::{Config, Instant, Stack};

/// SipHash-2-4 evaluations per handshake: each side's ISN and timestamp offset (one
/// hash), and the server's offset again when the ACK makes the connection.
const SIPHASH24: usize = 3;
/// SipHash-1-3 evaluations per handshake: the client's connect, then the SYN, SYN-ACK and
/// ACK each looked up on arrival (the RSTs find both stacks' tables empty and hash nothing;
/// callgrind counts 3.94 per handshake in the benchmark, the first round's SYNs finding
/// empty tables too).
const SIPHASH13: usize = 4;

/// The five packets of one synq handshake between two stacks, in the order sent.
pub(crate) fn handshake_packets() -> Vec<Vec<u8>> {
    let t = Instant::from_secs(1);
    let (mut client, mut server) = crate::stacks(&Config::default());
    let l = server
        .listen(Instant::ZERO, SocketAddr::new(B, PORT), 128)
        .expect("listen");
    let c = client
        .connect(t, SocketAddr::new(B, PORT))
        .expect("connect");
    let out = |from: &mut Stack| {
        let mut buf = Vec::new();
        let n = from.poll_transmit(t, &mut buf).expect("a packet to send");
        buf.truncate(n);
        buf
    };
    let syn = out(&mut client);
    server.handle_packet(t, &syn);
    let synack = out(&mut server);
    client.handle_packet(t, &synack);
    let ack = out(&mut client);
    server.handle_packet(t, &ack);
    let (s, _) = server.accept(t, l).expect("the handshake completed");
    client.abort(t, c).expect("abort");
    server.abort(t, s).expect("abort");
    // Both RSTs leave before either arrives, as in the benchmark's rounds.
    let (rst_c, rst_s) = (out(&mut client), out(&mut server));
    server.handle_packet(t, &rst_c);
    client.handle_packet(t, &rst_s);
    vec![syn, synack, ack, rst_c, rst_s]
}

/// Rounds of `n` handshakes' floor work.
pub(crate) fn rounds(n: usize) -> Rounds {
    let packets = handshake_packets();
    let mut out = vec![0u8; 2048];
    let (k0, k1) = (0x0123_4567_89ab_cdefu64, 0xfedc_ba98_7654_3210u64);
    let pair = u64::from(v4(A)) << 32 | u64::from(v4(B));
    let mut port = 0u16;
    Box::new(move || {
        let mut acc = 0u64;
        for _ in 0..n {
            for p in &packets {
                let parsed = parse_packet(black_box(p), ChecksumMode::Verify).expect("parse");
                let len = emit_packet(&parsed.ip, &parsed.tcp, &mut out).expect("emit");
                acc = acc.wrapping_add(len as u64);
            }
            // A new client port each handshake, as the real ones have.
            port = port.wrapping_add(1);
            let ports = u32::from(port) << 16 | u32::from(PORT);
            for i in 0..SIPHASH24 {
                let mut h = SipHasher24::new_with_keys(black_box(k0), k1 ^ i as u64);
                h.write_u64(pair);
                h.write_u32(ports);
                acc = acc.wrapping_add(h.finish());
            }
            for i in 0..SIPHASH13 {
                let mut h = SipHasher13::new_with_keys(black_box(k1), k0 ^ i as u64);
                h.write_u64(pair);
                h.write_u64(u64::from(ports));
                acc = acc.wrapping_add(h.finish());
            }
            black_box(&mut out);
        }
        black_box(acc);
        n as u64
    })
}

fn v4(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => a.to_bits(),
        IpAddr::V6(_) => unreachable!("the benchmark's addresses are IPv4"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synq_core::wire::TcpFlags;

    #[test]
    fn the_floor_replays_the_five_packets_of_a_real_handshake() {
        let packets = handshake_packets();
        let flags: Vec<TcpFlags> = packets
            .iter()
            .map(|p| {
                parse_packet(p, ChecksumMode::Verify)
                    .expect("valid")
                    .tcp
                    .flags
            })
            .collect();
        assert_eq!(
            flags,
            [
                TcpFlags::SYN,
                TcpFlags::SYN | TcpFlags::ACK,
                TcpFlags::ACK,
                TcpFlags::RST | TcpFlags::ACK,
                TcpFlags::RST | TcpFlags::ACK,
            ]
        );
        // Each packet emitted again from its parse is the packet itself.
        let mut out = vec![0u8; 2048];
        for p in &packets {
            let parsed = parse_packet(p, ChecksumMode::Verify).expect("valid");
            let n = emit_packet(&parsed.ip, &parsed.tcp, &mut out).expect("emit");
            assert_eq!(&out[..n], &p[..], "re-emitted");
        }
        assert_eq!(rounds(3)(), 3);
    }
}
