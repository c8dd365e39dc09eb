use super::util::*;
use crate::{ConnError, Duration, RecvError, SendError, State};
use core::net::SocketAddr;
use synq_wire::{emit_packet, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr};

/// Inject a crafted segment into B as if from A's connection `c`.
fn inject(
    p: &mut Pair,
    c: crate::ConnHandle,
    flags: TcpFlags,
    seq: SeqNumber,
    ack: SeqNumber,
    payload: &[u8],
) {
    let t = p.a.info(c).unwrap().tuple;
    let pkt = segment(
        t.local,
        t.remote,
        flags,
        seq,
        ack,
        TcpOptions::default(),
        payload,
    );
    p.b.handle_packet(p.now, &pkt);
}

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
