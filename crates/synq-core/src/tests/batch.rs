//! `Stack::handle_packets` (packets handed over a batch at a time, their lookups looked up
//! ahead) must do exactly what `handle_packet` on each does.

use super::listen::{cfg, isn, linux_syn_opts};
use super::util::*;
use crate::{Instant, Stack};
use core::net::{IpAddr, SocketAddr};
use synq_wire::{parse_packet, ChecksumMode, SeqNumber, TcpFlags, TcpOptions};

#[test]
fn a_batch_is_handled_as_its_packets_one_by_one() {
    let b4: IpAddr = "10.0.0.2".parse().unwrap();
    let b6: IpAddr = "fd00::2".parse().unwrap();
    // Small queues (backlog 16): overflows, cookies and drops are part of the run.
    let c = cfg(&[
        ("net.ipv4.tcp_max_syn_backlog", "64"),
        ("net.ipv4.tcp_syncookies", "1"),
    ]);
    let new = || {
        let mut s = Stack::new(c.clone(), 9);
        s.add_address(b4);
        s.add_address(b6);
        let l4 = s
            .listen(Instant::ZERO, SocketAddr::new(b4, 80), 16)
            .unwrap();
        let l6 = s
            .listen(Instant::ZERO, SocketAddr::new(b6, 80), 16)
            .unwrap();
        (s, [l4, l6])
    };
    let (mut one, ls_one) = new();
    let (mut many, ls_many) = new();
    let peer = |i: u32| -> SocketAddr {
        if i % 3 == 0 {
            SocketAddr::new(format!("fd00::1:{:x}", i + 1).parse().unwrap(), 30_000)
        } else {
            SocketAddr::new(IpAddr::from((0x0A63_0000 + i).to_be_bytes()), 40_000)
        }
    };
    let me = |p: &SocketAddr| SocketAddr::new(if p.is_ipv4() { b4 } else { b6 }, 80);
    // SYN-ACKs seen, by peer: (peer, our ISN, the peer's ISN).
    let mut synacks: Vec<(SocketAddr, SeqNumber, SeqNumber)> = Vec::new();
    let mut now = Instant::from_secs(1);
    let mut rng = XorShift32(0x9e37_79b9);
    let mut rnd = move |n: u32| rng.below(n);
    let mut handled = 0;
    for round in 0..300 {
        let mut packets: Vec<Vec<u8>> = Vec::new();
        for _ in 0..rnd(60) {
            let kind = rnd(10);
            let i = rnd(400);
            let from = peer(i);
            let p = match kind {
                // SYNs, new peers and repeats.
                0..=4 => segment(
                    from,
                    me(&from),
                    TcpFlags::SYN,
                    isn(i),
                    SeqNumber(0),
                    linux_syn_opts(i % 2 == 0),
                    &[],
                ),
                // Final ACKs (some with data) and RSTs to SYN-ACKs seen.
                5..=7 if !synacks.is_empty() => {
                    let (to, ours, theirs) = synacks[rnd(synacks.len() as u32) as usize];
                    let (flags, data): (TcpFlags, &[u8]) = match kind {
                        5 => (TcpFlags::ACK, &[]),
                        6 => (TcpFlags::ACK | TcpFlags::PSH, b"hello"),
                        _ => (TcpFlags::RST, &[]),
                    };
                    segment(
                        to,
                        me(&to),
                        flags,
                        theirs + 1,
                        ours + 1,
                        TcpOptions::default(),
                        data,
                    )
                }
                // Garbage: a SYN cut short or with a byte flipped.
                _ => {
                    let mut p = segment(
                        from,
                        me(&from),
                        TcpFlags::SYN,
                        isn(i),
                        SeqNumber(0),
                        TcpOptions::default(),
                        &[],
                    );
                    let k = rnd(p.len() as u32) as usize;
                    if kind == 8 {
                        p.truncate(k);
                    } else {
                        p[k] ^= 0x40;
                    }
                    p
                }
            };
            packets.push(p);
        }
        // Some vouched for by the device (checksum offload): the same to both.
        let verified: Vec<bool> = packets.iter().map(|_| rnd(4) == 0).collect();
        for (p, &v) in packets.iter().zip(&verified) {
            if v {
                one.handle_packet_verified(now, p);
            } else {
                one.handle_packet(now, p);
            }
        }
        many.handle_packets(
            now,
            packets
                .iter()
                .map(|p| p.as_slice())
                .zip(verified.iter().copied()),
        );
        handled += packets.len();
        let (a, b) = (drain(&mut one, now), drain(&mut many, now));
        assert_eq!(a, b, "round {round}: what the two sent differs");
        for p in &a {
            let Ok(p) = parse_packet(p, ChecksumMode::Verify) else {
                continue;
            };
            if p.tcp.flags.syn() && p.tcp.flags.ack() {
                let to = SocketAddr::new(p.ip.dst, p.tcp.dst_port);
                synacks.push((to, p.tcp.seq, p.tcp.ack - 1));
            }
        }
        if synacks.len() > 500 {
            synacks.drain(..250);
        }
        // The application accepts now and then; timers fire as time goes on.
        if round % 7 == 0 {
            for (l1, l2) in ls_one.iter().zip(&ls_many) {
                while let Ok((c1, _)) = one.accept(now, *l1) {
                    let (c2, _) = many.accept(now, *l2).expect("the same accept");
                    assert_eq!(
                        one.info(c1).map(|i| i.tuple),
                        many.info(c2).map(|i| i.tuple)
                    );
                }
                assert!(many.accept(now, *l2).is_err());
            }
        }
        now += crate::Duration::from_millis(u64::from(rnd(400)));
        for s in [&mut one, &mut many] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        assert_eq!(drain(&mut one, now), drain(&mut many, now), "round {round}");
        assert_eq!(one.counters(), many.counters(), "round {round}");
        assert_eq!(
            one.syn_recv().map(|r| r.remote).collect::<Vec<_>>(),
            many.syn_recv().map(|r| r.remote).collect::<Vec<_>>()
        );
        many.audit().unwrap();
    }
    // The run did what it is for: requests held, completed, cookies sent.
    let c = many.counters();
    assert!(handled > 5_000, "{handled}");
    assert!(c.syncookies_sent > 0 && c.passive_opens > 0, "{c:?}");
    assert!(many.syn_recv().count() > 0);
}
