//! The FreeBSD syncache model, one test per conformance check of spec §4 (checks 32-36),
//! plus its answers to RSTs and stray segments.

use super::listen::{cfg, isn, peer, synack, Raw};
use crate::{Config, Duration, Instant, Model, Stack};
use core::net::SocketAddr;
use synq_wire::{SeqNumber, TcpFlags, TcpOptions, Timestamps};

fn freebsd(kv: &[(&str, &str)]) -> Config {
    let mut c = cfg(kv);
    c.model = Model::FreeBsd;
    c
}

/// `peer(i)`'s final ACK, its RSTs and challenge ACKs from the server.
fn rsts_to(r: &Raw, i: u32) -> usize {
    r.out
        .iter()
        .filter(|o| o.to == peer(i) && o.flags.rst())
        .count()
}

fn bsd(r: &Raw, name: &str) -> u64 {
    r.s.freebsd_counters().get(name).unwrap()
}

#[test]
fn check_32_every_syn_answered_completed_limited_to_three_halves() {
    for (q, limit) in [(0, 1), (1, 2), (2, 4), (5, 8)] {
        let mut r = Raw::new(freebsd(&[]), q);
        let acks: Vec<_> = (1..=20).map(|i| synack(&r.syn(i))).collect();
        assert_eq!(r.rows(), 20, "the backlog is not consulted at SYN time");
        for (i, sa) in (1..=20).zip(&acks) {
            r.ack(i, sa, &[]);
        }
        assert_eq!(r.recv_q(), limit, "q={q}");
        assert_eq!(r.rows(), 0);
        let refused = 20 - u64::from(limit);
        assert_eq!(bsd(&r, "tcps_listendrop"), refused);
        assert_eq!(bsd(&r, "tcps_sc_completed"), u64::from(limit));
        assert_eq!(
            (1..=20).map(|i| rsts_to(&r, i)).sum::<usize>() as u64,
            refused
        );
    }
    // listen(-1) and beyond kern.ipc.somaxconn: somaxconn, 128 by default.
    let mut s = Stack::new(freebsd(&[]), 1);
    s.add_address(super::util::B4);
    for (i, (b, want)) in [(-1, 128), (1000, 128), (0, 0), (7, 7)]
        .into_iter()
        .enumerate()
    {
        let l = s
            .listen(
                Instant::ZERO,
                SocketAddr::new(super::util::B4, 90 + i as u16),
                b,
            )
            .unwrap();
        assert_eq!(s.listener_info(l).unwrap().send_q, want, "listen({b})");
    }
}

#[test]
fn check_33_rst_on_sock_fail_off_drops_in_silence() {
    let mut r = Raw::new(
        freebsd(&[("net.inet.tcp.syncache.rst_on_sock_fail", "0")]),
        0,
    );
    let a1 = synack(&r.syn(1));
    let a2 = synack(&r.syn(2));
    r.ack(1, &a1, &[]);
    assert!(r.ack(2, &a2, &[]).is_empty(), "no RST");
    assert_eq!(bsd(&r, "tcps_listendrop"), 1);
    assert_eq!((r.recv_q(), r.rows()), (1, 0), "the entry is gone");
    // The retransmitted ACK finds no entry and no recent overflow: RST.
    r.s.accept(r.now, r.l).unwrap();
    let again = r.ack(2, &a2, &[]);
    assert!(again.iter().any(|o| o.flags.rst()));
}

#[test]
fn check_34_bucket_overflow_evicts_oldest_and_pauses() {
    // One bucket: every entry hashes to it.
    let mut r = Raw::new(freebsd(&[("net.inet.tcp.syncache.hashsize", "1")]), 100);
    let first = synack(&r.syn(1));
    for i in 2..=30 {
        r.syn(i);
    }
    assert_eq!(r.rows(), 30);
    // The 31st: the oldest (peer 1) goes, the cache pauses for 15 s.
    assert!(!r.syn(31).is_empty());
    assert_eq!(r.rows(), 30);
    assert!(!r.s.syn_recv().any(|x| x.remote == peer(1)));
    assert_eq!(bsd(&r, "tcps_sc_bucketoverflow"), 1);
    // Paused: SYNs are answered with cookies and stored nowhere.
    let cookie = synack(&r.syn(40));
    assert_eq!(r.rows(), 30);
    assert_eq!(r.c("TcpExtSyncookiesSent"), 1);
    // The evicted peer's ACK still completes: its ISS was a cookie.
    r.ack(1, &first, &[]);
    r.ack(40, &cookie, &[]);
    assert_eq!(r.recv_q(), 2);
    assert_eq!(bsd(&r, "tcps_sc_recvcookie"), 2);
    // The bucket timer at 1 s discards every entry while paused.
    r.advance(Duration::from_millis(1100));
    assert_eq!(r.rows(), 0);
    // Still cookies only at 14.9 s; entries again from 15 s.
    r.advance(Duration::from_millis(13_800));
    r.syn(50);
    assert_eq!(r.rows(), 0);
    r.advance(Duration::from_millis(200));
    r.syn(51);
    assert_eq!(r.rows(), 1);
    // An overflow within the previous period doubles the pause: 30 s from 20 s.
    r.advance(Duration::from_secs(5));
    for i in 100..=130 {
        r.syn(i);
    }
    assert_eq!(bsd(&r, "tcps_sc_bucketoverflow"), 2);
    r.advance(Duration::from_secs(29));
    let before = r.rows();
    r.syn(200);
    assert_eq!(r.rows(), before, "paused at 49 s");
    r.advance(Duration::from_millis(1100));
    r.syn(201);
    assert_eq!(
        r.rows(),
        1,
        "resumed at 50 s (the timers emptied the bucket)"
    );
}

#[test]
fn check_35_synack_schedule_and_duplicate_syn() {
    let mut r = Raw::new(freebsd(&[]), 5);
    r.syn(1);
    r.advance(Duration::from_millis(14_900));
    assert_eq!(r.rows(), 1);
    r.advance(Duration::from_millis(200));
    assert_eq!(r.rows(), 0, "gone at 15 s");
    let secs = |r: &Raw, i| -> Vec<u64> {
        r.synacks_to(i)
            .iter()
            .map(|o| o.at.total_millis() / 1000)
            .collect()
    };
    assert_eq!(secs(&r, 1), [0, 1, 3, 7]);
    assert_eq!(bsd(&r, "tcps_sc_stale"), 1);
    assert_eq!(bsd(&r, "tcps_sc_retransmitted"), 3);
    // A duplicate SYN at 2 s: answered at once, and the schedule starts again from it.
    let mut r = Raw::new(freebsd(&[]), 5);
    r.syn(1);
    r.advance(Duration::from_secs(2));
    r.syn(1);
    r.advance(Duration::from_millis(14_900));
    assert_eq!(r.rows(), 1);
    r.advance(Duration::from_millis(200));
    assert_eq!(r.rows(), 0, "gone at 17 s");
    assert_eq!(secs(&r, 1), [0, 1, 2, 3, 5, 9]);
    assert_eq!(bsd(&r, "tcps_sc_dupsyn"), 1);
}

#[test]
fn check_36_cookie_lifetime_and_when_cookies_are_checked() {
    // Cookies only: a cookie made in one 15 s epoch is good to the end of the next.
    for (made_ms, ack_ms, ok) in [
        (0, 14_000, true),
        (14_900, 29_900, true),
        (14_900, 30_100, false),
        (0, 31_000, false),
    ] {
        let mut r = Raw::new(freebsd(&[("net.inet.tcp.syncookies_only", "1")]), 5);
        r.advance(Duration::from_millis(made_ms));
        let sa = synack(&r.syn(1));
        assert_eq!(r.rows(), 0);
        r.advance(Duration::from_millis(ack_ms - made_ms));
        let reply = r.ack(1, &sa, &[]);
        assert_eq!(r.recv_q() == 1, ok, "made {made_ms} ms, ACK {ack_ms} ms");
        assert_eq!(reply.iter().any(|o| o.flags.rst()), !ok);
    }
    // Not paused and no overflow: the ACK of an entry that went stale is not tried as a
    // cookie (its ISS was one) and meets an RST.
    let mut r = Raw::new(freebsd(&[]), 5);
    let sa = synack(&r.syn(1));
    r.advance(Duration::from_secs(16));
    assert_eq!(r.rows(), 0);
    assert!(r.ack(1, &sa, &[]).iter().any(|o| o.flags.rst()));
    assert_eq!((r.recv_q(), bsd(&r, "tcps_sc_recvcookie")), (0, 0));
    // With net.inet.tcp.syncookies=0 the ISS is not a cookie and nothing is tried.
    let mut r = Raw::new(freebsd(&[("net.inet.tcp.syncookies", "0")]), 5);
    let sa = synack(&r.syn(1));
    assert_eq!(bsd(&r, "tcps_sc_sendcookie"), 0);
    r.ack(1, &sa, &[]);
    assert_eq!(r.recv_q(), 1);
}

#[test]
fn rst_rules_and_stray_segments() {
    let mut r = Raw::new(freebsd(&[]), 5);
    let sa = synack(&r.syn(1));
    let me = |r: &mut Raw, flags, seq: SeqNumber, ack| {
        r.send(peer(1), flags, seq, ack, TcpOptions::default(), &[])
    };
    // In the window but not at IRS+1: a challenge ACK, the entry stays.
    let out = me(&mut r, TcpFlags::RST, isn(1) + 100, SeqNumber(0));
    assert!(out.iter().any(|o| o.flags == TcpFlags::ACK));
    assert_eq!(r.rows(), 1);
    // Exactly at IRS+1: the entry goes, in silence.
    assert!(me(&mut r, TcpFlags::RST, isn(1) + 1, SeqNumber(0)).is_empty());
    assert_eq!((r.rows(), bsd(&r, "tcps_sc_reset")), (0, 1));
    // A SYN-ACK to a listener: RST.
    let out = me(&mut r, TcpFlags::SYN | TcpFlags::ACK, isn(2), sa.seq + 1);
    assert!(out.iter().any(|o| o.flags.rst()));
    // Timestamps were negotiated: an ACK without them is dropped, the entry kept.
    let sa = synack(&r.syn(3));
    let ts = TcpOptions {
        timestamps: Some(Timestamps {
            tsval: 5001,
            tsecr: sa.opts.timestamps.unwrap().tsval,
        }),
        ..TcpOptions::default()
    };
    let bare = TcpOptions::default();
    let wrong = sa.seq + 9;
    assert!(r
        .send(peer(3), TcpFlags::ACK, isn(3) + 1, wrong, bare, &[])
        .is_empty());
    assert_eq!(r.rows(), 1);
    // A wrong ACK for an entry: RST, and the entry is gone (syncache_expand frees it).
    let out = r.send(peer(3), TcpFlags::ACK, isn(3) + 1, wrong, ts, &[]);
    assert!(out.iter().any(|o| o.flags.rst()));
    assert_eq!(r.rows(), 0);
    // SYN+FIN is taken as a SYN unless drop_synfin.
    let synfin = |c| {
        let mut r = Raw::new(c, 5);
        let o = r.send(
            peer(4),
            TcpFlags::SYN | TcpFlags::FIN,
            isn(4),
            SeqNumber(0),
            TcpOptions::default(),
            &[],
        );
        o.iter().any(|o| o.flags.syn())
    };
    assert!(synfin(freebsd(&[])));
    assert!(!synfin(freebsd(&[("net.inet.tcp.drop_synfin", "1")])));
}

#[test]
fn cache_limit_evicts_and_pauses() {
    let mut r = Raw::new(freebsd(&[("net.inet.tcp.syncache.cachelimit", "4")]), 100);
    for i in 1..=4 {
        r.syn(i);
    }
    assert_eq!(r.rows(), 4);
    // The fifth either displaces its bucket's oldest (and pauses) or, with an empty
    // bucket, goes out as a cookie alone; either way it is answered and 4 stay at most.
    assert!(!r.syn(5).is_empty());
    assert!(r.rows() <= 4);
    assert_eq!(bsd(&r, "tcps_sc_zonefail"), 1);
}

#[test]
fn entries_outlive_their_listener() {
    // FreeBSD's bucket timer does not look for the listener: SYN-ACKs go on to 7 s and
    // the entry expires at 15 s; its final ACK meanwhile finds no socket and gets RST.
    let mut r = Raw::new(freebsd(&[]), 5);
    let sa = synack(&r.syn(1));
    r.syn(2);
    r.s.close_listener(r.now, r.l);
    r.advance(Duration::from_secs(8));
    let times: Vec<u64> = r
        .synacks_to(1)
        .iter()
        .map(|o| o.at.total_millis() / 1000)
        .collect();
    assert_eq!(times, [0, 1, 3, 7]);
    assert!(r.ack(1, &sa, &[]).iter().any(|o| o.flags.rst()));
    assert_eq!(r.s.syn_recv().count(), 1);
    r.advance(Duration::from_secs(8));
    assert_eq!(r.s.syn_recv().count(), 0);
    assert_eq!(bsd(&r, "tcps_listendrop"), 0);
}
