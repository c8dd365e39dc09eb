use super::util::*;
use crate::{Config, Duration, State, TsMode};

#[test]
fn transfer_both_ways() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let up = pattern(300_000, 1);
    assert_eq!(p.transfer(true, c, s, &up, Duration::from_secs(30)), up);
    let down = pattern(200_000, 2);
    assert_eq!(
        p.transfer(false, s, c, &down, Duration::from_secs(30)),
        down
    );
    assert_eq!(p.a.counters().retrans_segs, 0);
    assert_eq!(p.b.state(s), Some(State::Established));
}

#[test]
fn quick_acks_first_then_every_second_segment() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let acks_for = |p: &mut Pair, seed| {
        let before = p.log.len();
        let data = pattern(1448 * 10, seed);
        assert_eq!(p.a.send(p.now, c, &data), Ok(data.len()));
        p.run_for(Duration::from_millis(100));
        let mut buf = vec![0u8; data.len() + 1];
        assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(data.len()));
        assert_eq!(&buf[..data.len()], &data[..]);
        p.log[before..]
            .iter()
            .filter(|s| !s.a_to_b && s.len == 0)
            .count()
    };
    // Linux's quick-ACK mode: the first 16 segments of a connection get an ACK each
    // (TCP_MAX_QUICKACKS; half the window would allow more).
    assert_eq!(acks_for(&mut p, 3), 10);
    // Six quick ACKs are left, then one ACK per two full segments: 6 + 2.
    assert_eq!(acks_for(&mut p, 4), 8);
    // From then on, every second segment.
    assert_eq!(acks_for(&mut p, 5), 5);
}

#[test]
fn lone_segment_acked_at_once_then_after_delay() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let mut buf = [0u8; 64];
    // The first data is acknowledged at once (quick-ACK mode)...
    p.a.send(p.now, c, b"hello").unwrap();
    let t0 = p.now;
    p.run_for(Duration::from_millis(200));
    let acks = p.segs(false, |x| x.at > t0 && x.len == 0);
    assert_eq!(acks[0].at - t0, Duration::from_millis(10));
    assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(5));
    // ...and so is each small segment until the quick ACKs are used up.
    for _ in 0..20 {
        p.a.send(p.now, c, b"hello").unwrap();
        p.run_for(Duration::from_millis(200));
        assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(5));
    }
    let t1 = p.now;
    p.a.send(p.now, c, b"hello").unwrap();
    p.run_for(Duration::from_millis(200));
    let acks = p.segs(false, |x| x.at > t1 && x.len == 0);
    assert_eq!(acks.len(), 1);
    // Then: arrives at +10 ms, acknowledged after the delayed-ACK timeout. Segments came
    // 200 ms apart, more than the 40 ms ato: it stays at 40 ms.
    assert_eq!(acks[0].at - t1, Duration::from_millis(50));
    assert!(p.b.counters().delayed_acks >= 1);
    assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(5));
}

#[test]
fn fast_retransmit_on_three_dupacks() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // Drop the third data segment, once.
    p.filter = Some(drop_data(|n| n == 3));
    let data = pattern(100_000, 4);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    let k = p.a.counters();
    assert_eq!(k.fast_retrans, 1);
    assert_eq!(k.timeouts, 0, "recovered without an RTO");
    assert!(
        p.segs(false, |x| x.sack_blocks > 0).len() >= 3,
        "dupacks carry SACK blocks"
    );
}

#[test]
fn rto_recovers_blackout() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let blackout_end = p.now + Duration::from_secs(3);
    p.filter = Some(Box::new(move |seg| seg.at >= blackout_end));
    let data = pattern(50_000, 5);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(30)), data);
    let k = p.a.counters();
    assert!(k.timeouts >= 2, "timeouts {}", k.timeouts);
    // Backoff: retransmissions of the first segment are spaced 1, 2 ... (x RTO).
    let first = p.segs(true, |x| x.len > 0);
    let seq0 = first[0].seq;
    let rtx: Vec<_> = first
        .iter()
        .filter(|x| x.seq == seq0)
        .map(|x| x.at)
        .collect();
    let gaps: Vec<u64> = rtx
        .windows(2)
        .map(|w| (w[1] - w[0]).total_millis())
        .collect();
    assert!(
        gaps.windows(2).all(|g| g[1] == 2 * g[0] || g[1] == 120_000),
        "exponential backoff: {gaps:?}"
    );
}

#[test]
fn ack_after_rto_restores_rto_and_samples_rtt() {
    // RTT 20 ms; the handshake gives SRTT 20 ms, RTTVAR 10 ms, RTO 20 + 200 = 220 ms.
    for timestamps in [1, 0] {
        let cfg = Config {
            tcp_timestamps: TsMode::from_raw(timestamps),
            ..Config::default()
        };
        let mut p = Pair::with(cfg.clone(), cfg);
        let (c, _, _) = p.connected(false);
        assert_eq!(p.a.info(c).unwrap().rto, Duration::from_millis(220));
        // B's ACKs take 40 ms more from here (as a delayed ACK would).
        p.delay = Some(Box::new(|x: &Seg| {
            if x.a_to_b {
                Duration::ZERO
            } else {
                Duration::from_millis(40)
            }
        }));
        p.filter = Some(drop_data(|n| n == 1));
        p.a.send(p.now, c, b"hello").unwrap();
        p.run_for(Duration::from_millis(250));
        // The RTO fired at +220 ms and the segment went out again: backed off once.
        assert_eq!(p.a.counters().timeouts, 1);
        assert_eq!(p.a.info(c).unwrap().rto, Duration::from_millis(440));
        // B's ACK reaches A 60 ms after the retransmission.
        p.run_for(Duration::from_millis(100));
        let i = p.a.info(c).unwrap();
        assert_eq!(i.snd_una, i.snd_nxt, "acknowledged");
        if timestamps == 1 {
            // The TSecr of the retransmission gives a 60 ms sample (Linux
            // tcp_ack_update_rtt): SRTT 25 ms, RTTVAR 17.5 ms, RTO 25 + 200 ms.
            assert_eq!(i.srtt, Some(Duration::from_millis(25)));
            assert_eq!(i.rto, Duration::from_millis(225));
        } else {
            // Karn: no sample from retransmitted data, but the backoff is gone.
            assert_eq!(i.srtt, Some(Duration::from_millis(20)));
            assert_eq!(i.rto, Duration::from_millis(220));
        }
    }
}

#[test]
fn retransmission_after_lost_ack_echoes_its_timestamp() {
    let mut p = Pair::new();
    let (c, _, _) = p.connected(false);
    let t0 = p.now;
    // B's delayed ACK of the one segment is lost: A's RTO resends a segment B has.
    let mut dropped = false;
    p.filter = Some(Box::new(move |seg| {
        let first_ack = !seg.a_to_b && seg.len == 0 && seg.at > t0 && !dropped;
        dropped |= first_ack;
        !first_ack
    }));
    p.a.send(p.now, c, b"hello").unwrap();
    p.run_for(Duration::from_millis(400));
    assert_eq!(p.a.counters().timeouts, 1);
    let data = p.segs(true, |x| x.len > 0);
    assert_eq!(data.len(), 2);
    let rtx = &data[1];
    assert_eq!(rtx.at - t0, Duration::from_millis(220));
    // The duplicate ends at B's Last.ACK.sent: B records its TSval (Linux tcp_sequence,
    // tcp_replace_ts_recent) and the duplicate ACK echoes the retransmission, not the
    // original sent 220 ms earlier.
    let acks = p.segs(false, |x| x.at > rtx.at && x.len == 0);
    assert_eq!(acks[0].tsecr, rtx.tsval);
    // So A's sample is the 20 ms path, not 240 ms, and the RTO is back at 220 ms.
    let i = p.a.info(c).unwrap();
    assert_eq!(i.snd_una, i.snd_nxt);
    assert_eq!(i.srtt, Some(Duration::from_millis(20)));
    assert_eq!(i.rto, Duration::from_millis(220));
}

#[test]
fn zero_window_then_reopen() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // B never reads: A fills B's 128 KiB buffer then stalls.
    let data = pattern(400_000, 6);
    let mut sent = 0;
    for _ in 0..200 {
        if let Ok(n) = p.a.send(p.now, c, &data[sent..]) {
            sent += n;
        }
        p.run_for(Duration::from_millis(50));
    }
    let bi = p.b.info(s).unwrap();
    assert!(
        (131_072..131_072 + (1 << bi.rcv_wscale)).contains(&bi.recv_queue),
        "{}",
        bi.recv_queue
    );
    assert!(
        p.a.counters().win_probes > 0,
        "zero-window probes were sent"
    );
    assert!(!p.segs(false, |x| x.window == 0).is_empty());
    // Now read everything: the window reopens and the rest flows.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..2000 {
        while let Ok(n) = p.b.recv(p.now, s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if sent < data.len() {
            if let Ok(n) = p.a.send(p.now, c, &data[sent..]) {
                sent += n;
            }
        }
        if got.len() == data.len() {
            break;
        }
        p.run_for(Duration::from_millis(20));
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}

#[test]
fn reordering_is_reassembled() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // Every seventh data segment is lost: the ones after it arrive out of order.
    p.filter = Some(drop_data(|n| n % 7 == 3));
    let data = pattern(200_000, 7);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(60)), data);
    assert!(p.b.counters().ofo_queue > 0);
}

#[test]
fn nodelay_releases_what_nagle_holds() {
    let mut p = Pair::new();
    let (c, _, _) = p.connected(false);
    let data_segs = |p: &Pair| p.segs(true, |x| x.len > 0).len();
    p.a.send(p.now, c, b"a").unwrap();
    p.run_for(Duration::from_millis(1));
    assert_eq!(data_segs(&p), 1, "nothing in flight: sent at once");
    // "a" is unacknowledged (B delays its ACK): Nagle holds the small "b".
    p.a.send(p.now, c, b"b").unwrap();
    p.run_for(Duration::from_millis(1));
    assert_eq!(data_segs(&p), 1, "held by Nagle");
    // TCP_NODELAY pushes it at once, as Linux's setsockopt does.
    p.a.set_nodelay(p.now, c, true);
    let t = p.now;
    p.run_for(Duration::from_millis(1));
    let segs = p.segs(true, |x| x.len > 0);
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[1].at, t);
}
