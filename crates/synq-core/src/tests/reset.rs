use super::util::*;
use crate::{ConnError, Duration, RecvError, SendError, State};
use core::net::SocketAddr;
use synq_wire::{emit_packet, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr};

#[test]
fn abort_resets_peer() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.a.abort(p.now, c).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.b.state(s), Some(State::Closed));
    assert_eq!(p.b.recv(p.now, s, &mut [0; 4]), Err(RecvError::Reset));
    assert_eq!(p.b.send(p.now, s, b"x"), Err(SendError::Reset));
    assert_eq!(p.a.counters().out_rsts, 1);
}

#[test]
fn rst_exact_sequence_resets() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let seq = p.b.info(s).unwrap().rcv_nxt;
    inject(&mut p, c, TcpFlags::RST, seq, SeqNumber(0), &[]);
    assert_eq!(p.b.info(s).unwrap().error, Some(ConnError::Reset));
}

#[test]
fn rst_in_window_gets_challenge_ack() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let seq = p.b.info(s).unwrap().rcv_nxt + 100;
    inject(&mut p, c, TcpFlags::RST, seq, SeqNumber(0), &[]);
    assert_eq!(p.b.state(s), Some(State::Established));
    assert_eq!(p.b.counters().challenge_ack, 1);
    p.run_for(Duration::from_millis(5));
    assert_eq!(
        p.segs(false, |x| x.flags == TcpFlags::ACK).len(),
        1,
        "one challenge ACK sent"
    );
    // A second one within 500 ms is rate-limited.
    inject(&mut p, c, TcpFlags::RST, seq, SeqNumber(0), &[]);
    assert_eq!(p.b.counters().ack_skipped_challenge, 1);
}

#[test]
fn rst_out_of_window_ignored() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let seq = p.b.info(s).unwrap().rcv_nxt + 10_000_000;
    inject(&mut p, c, TcpFlags::RST, seq, SeqNumber(0), &[]);
    assert_eq!(p.b.state(s), Some(State::Established));
    assert_eq!(p.b.counters().challenge_ack, 0);
}

#[test]
fn syn_on_established_gets_challenge_ack() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let seq = p.b.info(s).unwrap().rcv_nxt + 5;
    inject(&mut p, c, TcpFlags::SYN, seq, SeqNumber(0), &[]);
    assert_eq!(p.b.state(s), Some(State::Established));
    assert_eq!(p.b.counters().syn_challenge, 1);
    assert_eq!(p.b.counters().challenge_ack, 1);
}

#[test]
fn ack_of_unsent_data_is_acked_and_dropped() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let i = p.b.info(s).unwrap();
    inject(
        &mut p,
        c,
        TcpFlags::ACK,
        i.rcv_nxt,
        i.snd_nxt + 1000,
        b"data",
    );
    assert_eq!(p.b.info(s).unwrap().recv_queue, 0, "segment dropped");
    assert_eq!(p.b.state(s), Some(State::Established));
}

#[test]
fn stray_segment_gets_rst() {
    let mut p = Pair::new();
    p.b.listen(p.now, SocketAddr::new(B4, 80), 10).unwrap();
    let c = p.a.connect(p.now, SocketAddr::new(B4, 80)).unwrap();
    p.run_for(Duration::from_millis(100));
    // B forgets everything (new stack, same address): A's data gets RST.
    let mut fresh = crate::Stack::new(crate::Config::default(), 99);
    fresh.add_address(B4);
    p.b = fresh;
    p.a.send(p.now, c, b"hello").unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.info(c).unwrap().error, Some(ConnError::Reset));
    assert_eq!(p.b.counters().out_rsts, 1);
}

#[test]
fn paws_drops_old_timestamp() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.a.send(p.now, c, b"one").unwrap();
    p.run_for(Duration::from_secs(1));
    // Replay a segment with a timestamp far in the past.
    let t = p.a.info(c).unwrap().tuple;
    let i = p.b.info(s).unwrap();
    let last_ts = p
        .segs(true, |x| x.tsval.is_some())
        .last()
        .unwrap()
        .tsval
        .unwrap();
    let tcp = TcpRepr {
        src_port: t.local.port(),
        dst_port: t.remote.port(),
        seq: i.rcv_nxt,
        ack: i.snd_nxt,
        flags: TcpFlags::ACK,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some(synq_wire::Timestamps {
                tsval: last_ts.wrapping_sub(1000),
                tsecr: 0,
            }),
            ..TcpOptions::default()
        },
        payload: b"old",
    };
    let ip = IpRepr {
        src: t.local.ip(),
        dst: t.remote.ip(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 200];
    let n = emit_packet(&ip, &tcp, &mut buf).unwrap();
    let before = p.b.info(s).unwrap().recv_queue;
    p.b.handle_packet(p.now, &buf[..n]);
    assert_eq!(p.b.info(s).unwrap().recv_queue, before);
    assert_eq!(p.b.counters().paws_estab, 1);
}

#[test]
fn time_wait_reopened_by_new_syn() {
    let mut p = Pair::new();
    let a_addr = SocketAddr::new(A4, 40000);
    let b_addr = SocketAddr::new(B4, 80);
    let l = p.b.listen(p.now, b_addr, 10).unwrap();
    let c = p.a.connect_from(p.now, a_addr, b_addr).unwrap();
    p.run_for(Duration::from_millis(100));
    let (s, _) = p.b.accept(p.now, l).unwrap();
    // Server closes first: it holds TIME_WAIT.
    p.b.close(p.now, s).unwrap();
    p.run_for(Duration::from_millis(100));
    p.a.close(p.now, c).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(
        p.b.connections().map(|i| i.state).collect::<Vec<_>>(),
        [State::TimeWait]
    );
    // The same 4-tuple connects again within 2MSL.
    p.run_for(Duration::from_secs(5));
    let c2 = p.a.connect_from(p.now, a_addr, b_addr).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.state(c2), Some(State::Established));
    assert_eq!(p.b.counters().tw_syn_reopen, 1);
    assert!(p.b.accept(p.now, l).is_ok());
}

/// Regression (found by the `stack_ops` fuzz target, a hang): a connection reset while
/// SACK had marked segments lost kept answering `wants_transmit` with yes in CLOSED, where
/// `poll_transmit` sends nothing, so `Stack::poll_transmit` re-queued it forever and never
/// returned.
#[test]
fn a_reset_mid_recovery_leaves_nothing_to_send() {
    // util::segment advertises 1000 bytes; this peer opens its window wide.
    let segment = |from, to, flags, seq, ack, options, payload: &[u8]| {
        segment_with_window(from, to, flags, (seq, ack), 65535, options, payload)
    };
    use crate::{Config, Instant, Stack};
    let (a, b) = (SocketAddr::new(A4, 40000), SocketAddr::new(B4, 80));
    let mut s = Stack::new(Config::default(), 3);
    s.add_address(A4);
    let now = Instant::ZERO;
    let c = s.connect_from(now, a, b).unwrap();
    let mut buf = Vec::new();
    let n = s.poll_transmit(now, &mut buf).expect("SYN");
    let syn = synq_wire::parse_packet(&buf[..n], synq_wire::ChecksumMode::Verify).unwrap();
    let iss = syn.tcp.seq;
    let irs = SeqNumber(5000);
    let opts = TcpOptions {
        mss: Some(1000),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    s.handle_packet(
        now,
        &segment(b, a, TcpFlags::SYN | TcpFlags::ACK, irs, iss + 1, opts, &[]),
    );
    while s.poll_transmit(now, &mut buf).is_some() {}
    assert_eq!(s.state(c), Some(State::Established));
    // Ten segments out, none acknowledged; the peer SACKs the last seven: the first three
    // are lost.
    s.send(now, c, &[7u8; 10_000]).unwrap();
    while s.poll_transmit(now, &mut buf).is_some() {}
    let mut sack = synq_wire::SackBlocks::new();
    sack.push(iss + 1 + 3000, iss + 1 + 10_000);
    let opts = TcpOptions {
        sack_blocks: sack,
        ..TcpOptions::default()
    };
    let ack = segment(b, a, TcpFlags::ACK, irs + 1, iss + 1, opts, &[]);
    for _ in 0..3 {
        s.handle_packet(now, &ack);
    }
    // RACK's reordering window runs out (well before the RTO): the three are marked lost.
    let now = now + Duration::from_millis(100);
    s.handle_timeout(now);
    // Before the retransmissions leave, the peer resets the connection.
    s.handle_packet(
        now,
        &segment(
            b,
            a,
            TcpFlags::RST,
            irs + 1,
            SeqNumber(0),
            TcpOptions::default(),
            &[],
        ),
    );
    assert_eq!(s.state(c), Some(State::Closed));
    // poll_transmit must end (a hang here is the bug); a watchdog thread bounds the wait
    // (the test's, not the core's: the sans-IO ban is about the engine).
    let (tx, rx) = std::sync::mpsc::channel();
    #[allow(clippy::disallowed_methods)]
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut sent = 0;
        while s.poll_transmit(now, &mut buf).is_some() {
            sent += 1;
        }
        let _ = tx.send(sent);
    });
    let sent = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("poll_transmit returned");
    assert_eq!(sent, 0, "a reset connection sends nothing");
}
