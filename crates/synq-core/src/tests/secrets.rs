//! What an off-path attacker would like to predict: initial sequence numbers (RFC 6528),
//! timestamp offsets and SYN cookies. Each comes from the stack's own secret keys (drawn from
//! its seed; a real deployment seeds from the OS), so another host's, or another boot's,
//! values tell nothing. Linux generates its cookie keys once per boot and never rotates
//! them; a cookie's validity is bounded by the minute counter inside it (two minutes, see
//! `cookie.rs`), which is what synq does too.

use super::util::*;
use crate::{Config, Instant, Stack, Syncookies};
use core::net::SocketAddr;
use synq_wire::{parse_packet, ChecksumMode, SeqNumber, TcpFlags, TcpOptions};

fn stack(seed: u64) -> Stack {
    let mut s = Stack::new(Config::default(), seed);
    s.add_address(A4);
    s
}

/// The ISS `s` picks for a connection from `port` at `now`, and its SYN's TSval.
fn syn_of(s: &mut Stack, port: u16, now: Instant) -> (u32, u32) {
    let c = s
        .connect_from(now, SocketAddr::new(A4, port), SocketAddr::new(B4, 80))
        .unwrap();
    let mut buf = Vec::new();
    let n = s.poll_transmit(now, &mut buf).unwrap();
    let p = parse_packet(&buf[..n], ChecksumMode::Verify).unwrap();
    assert!(p.tcp.flags.syn());
    let out = (p.tcp.seq.0, p.tcp.options.timestamps.unwrap().tsval);
    s.abort(now, c).unwrap();
    while s.poll_transmit(now, &mut buf).is_some() {}
    out
}

#[test]
fn isns_are_a_keyed_hash_plus_a_4_us_clock() {
    let t0 = Instant::ZERO + crate::Duration::from_secs(100);
    let t1 = t0 + crate::Duration::from_secs(1);
    let mut a = stack(1);
    // RFC 6528: for one four-tuple the ISN advances with the clock (250 000 a second) ...
    let (i0, _) = syn_of(&mut a, 40_000, t0);
    let (i1, _) = syn_of(&mut a, 40_000, t1);
    assert_eq!(i1.wrapping_sub(i0), 250_000);
    // ... while neighbouring tuples at the same instant are unrelated: no two of 200
    // consecutive ports differ by the same amount, and the values fill the space.
    let isns: Vec<u32> = (0..200).map(|p| syn_of(&mut a, 41_000 + p, t0).0).collect();
    let mut deltas: Vec<u32> = isns.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    deltas.sort_unstable();
    deltas.dedup();
    assert_eq!(deltas.len(), 199);
    let mean = isns
        .iter()
        .map(|&i| f64::from(i) / 2f64.powi(32))
        .sum::<f64>()
        / 200.0;
    assert!((0.4..0.6).contains(&mean), "{mean}");
    // Another host (another seed) picks another ISN for the same tuple and instant.
    let mut b = stack(2);
    assert_ne!(syn_of(&mut b, 40_000, t0).0, i0);
}

/// Per connection, as Linux 6.x keys them (one hash of the 4-tuple gives the ISN's hash and
/// the offset); the kernel side by side is in synq-sim's `kernel_facts.rs`.
#[test]
fn timestamp_offsets_are_keyed_per_connection() {
    let t0 = Instant::ZERO + crate::Duration::from_secs(100);
    let mut a = stack(1);
    // The same instant, other tuples: TSvals that do not give away the host's uptime.
    let ts: Vec<u32> = (0..50).map(|p| syn_of(&mut a, 42_000 + p, t0).1).collect();
    let mut distinct = ts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 50, "{ts:?}");
    assert!(
        ts.iter().all(|&t| t != 100_000),
        "the raw clock must not show"
    );
    let mut b = stack(2);
    assert_ne!(syn_of(&mut b, 42_000, t0).1, ts[0]);
}

#[test]
fn a_cookie_made_by_one_host_fails_on_another() {
    let now = Instant::ZERO + crate::Duration::from_secs(10);
    let cfg = Config {
        tcp_syncookies: Syncookies::Always,
        ..Config::default()
    };
    let mut hosts: Vec<Stack> = (1..=2)
        .map(|seed| {
            let mut s = Stack::new(cfg.clone(), seed);
            s.add_address(B4);
            s.listen(now, SocketAddr::new(B4, 80), 128).unwrap();
            s
        })
        .collect();
    let (client, server) = (SocketAddr::new(A4, 40_000), SocketAddr::new(B4, 80));
    let syn = segment(
        client,
        server,
        TcpFlags::SYN,
        SeqNumber(1000),
        SeqNumber(0),
        TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
        &[],
    );
    hosts[0].handle_packet(now, &syn);
    // The other host has sent a cookie of its own lately (Linux checks cookie ACKs only
    // then), to another client.
    let other_syn = segment(
        SocketAddr::new(A4, 40_001),
        server,
        TcpFlags::SYN,
        SeqNumber(5000),
        SeqNumber(0),
        TcpOptions::default(),
        &[],
    );
    hosts[1].handle_packet(now, &other_syn);
    let mut buf = Vec::new();
    while hosts[1].poll_transmit(now, &mut buf).is_some() {}
    let n = hosts[0].poll_transmit(now, &mut buf).unwrap();
    let cookie = parse_packet(&buf[..n], ChecksumMode::Verify)
        .unwrap()
        .tcp
        .seq;
    let ack = segment(
        client,
        server,
        TcpFlags::ACK,
        SeqNumber(1001),
        cookie + 1,
        TcpOptions::default(),
        &[],
    );
    // The host that made it takes it; the other (other keys) refuses the same ACK.
    hosts[1].handle_packet(now, &ack);
    hosts[0].handle_packet(now, &ack);
    let (made, other) = (hosts[0].counters(), hosts[1].counters());
    assert_eq!((made.syncookies_recv, made.syncookies_failed), (1, 0));
    assert_eq!((other.syncookies_recv, other.syncookies_failed), (0, 1));
    assert_eq!(hosts[1].connections().count(), 0);
    assert_eq!(hosts[0].connections().count(), 1);
}
