//! Loss recovery on the SACK path (RACK-TLP, PRR, RTO recovery from the scoreboard, DSACK)
//! between two stacks 10 ms apart each way: the segments sent, in order and time.

use super::util::{drop_data, pattern, Pair, Seg, XorShift32};
use crate::{Config, Duration, Instant, TsMode};
use synq_wire::SeqNumber;

/// A's data segments after `from`: (ms since `t0`, offset from `base`, length).
fn data_after(p: &Pair, t0: Instant, base: SeqNumber) -> Vec<(u64, u32, usize)> {
    p.segs(true, |x| x.len > 0 && x.at >= t0)
        .iter()
        .map(|x| ((x.at - t0).total_millis(), x.seq.distance_from(base), x.len))
        .collect()
}

/// Transmissions of A that repeat a sequence number already sent.
fn retransmissions(p: &Pair) -> Vec<Seg> {
    let mut seen = std::collections::HashSet::new();
    p.segs(true, |x| x.len > 0)
        .into_iter()
        .filter(|x| !seen.insert(x.seq))
        .collect()
}

#[test]
fn a_tail_loss_is_probed_not_timed_out() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // Ten segments in one write; the last two are lost once.
    p.filter = Some(drop_data(|n| n == 9 || n == 10));
    let data = pattern(10 * 1448, 7);
    let t0 = p.now;
    let base = p.a.info(c).unwrap().snd_nxt;
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(5)), data);
    let k = p.a.counters();
    assert_eq!(k.timeouts, 0);
    assert_eq!(k.tlp, 1);
    assert_eq!(k.sack_recovery, 1);
    let sent = data_after(&p, t0, base);
    // At 0 ms the ten segments leave. B is in quick-ACK mode and ACKs 1..8 one by one;
    // they reach A at 20 ms (SRTT 20 ms). The probe timeout, 2 SRTT + 2 ms later (two
    // segments out), fires at 62 ms: the last segment goes again (the probe). Its SACK
    // reaches A at 82 ms; segment 9 was sent long before the probe (more than RACK.rtt =
    // 20 ms plus min RTT / 4 ago): lost, resent at once.
    assert_eq!(
        &sent[10..],
        [(62, 9 * 1448, 1448), (82, 8 * 1448, 1448)],
        "{sent:?}"
    );
}

#[test]
fn losses_in_the_middle_are_resent_once_by_rack() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.filter = Some(drop_data(|n| n == 3 || n == 5 || n == 40));
    let data = pattern(200_000, 8);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    let k = p.a.counters();
    assert_eq!(k.timeouts, 0);
    assert_eq!(k.lost_retransmit, 0);
    // Exactly the three lost segments go again, each once.
    assert_eq!(retransmissions(&p).len(), 3);
    assert_eq!(k.retrans_segs, 3);
}

#[test]
fn an_rto_resends_only_what_was_not_sacked() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // The first data segment is lost every time for 1.5 s: fast recovery and the probe
    // fail, the RTO fires; everything after it was SACKed long before.
    let until = p.now + Duration::from_millis(1500);
    let mut first = None;
    p.filter = Some(Box::new(move |x: &Seg| {
        if !x.a_to_b || x.len == 0 {
            return true;
        }
        let f = *first.get_or_insert(x.seq);
        !(x.seq == f && x.at < until)
    }));
    let data = pattern(20 * 1448, 9);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    let k = p.a.counters();
    assert!(k.timeouts >= 1, "{k:?}");
    let rtx = retransmissions(&p);
    let head = p.segs(true, |x| x.len > 0)[0].seq;
    assert!(
        rtx.iter().all(|x| x.seq == head),
        "only the head goes again: {:?}",
        rtx.iter().map(|x| (x.at, x.seq)).collect::<Vec<_>>()
    );
    // The resends after the RTO count as slow-start retransmissions, as Linux counts them.
    assert!(k.slow_start_retrans >= 1, "{k:?}");
}

#[test]
fn sacked_data_is_never_resent_with_random_losses() {
    // Several patterns of first-transmission and retransmission losses: no segment goes
    // again once a SACK block (arrived at A before the resend) covered it.
    for seed in 1..=12u32 {
        let mut p = Pair::new();
        let (c, s, _) = p.connected(false);
        let mut rng = XorShift32(seed.wrapping_mul(2_654_435_761) | 1);
        let mut roll = move || rng.below(100);
        p.filter = Some(Box::new(move |seg: &Seg| {
            !(seg.a_to_b && seg.len > 0 && roll() < 8)
        }));
        let data = pattern(300_000, seed);
        assert_eq!(
            p.transfer(true, c, s, &data, Duration::from_secs(60)),
            data,
            "seed {seed}"
        );
        let latency = p.latency;
        let sacks: Vec<(Instant, SeqNumber, SeqNumber)> = p
            .segs(false, |x| !x.sacks.is_empty())
            .iter()
            .flat_map(|x| x.sacks.iter().map(move |&(l, r)| (x.at + latency, l, r)))
            .collect();
        for r in retransmissions(&p) {
            let end = r.seq + r.len as u32;
            let covered = sacks
                .iter()
                .any(|&(at, l, rr)| at <= r.at && l <= r.seq && end <= rr && rr > l);
            // A DSACK block reports data below the cumulative ACK; it is not a SACK.
            let below_ack = p
                .segs(false, |y| y.at + latency <= r.at)
                .iter()
                .any(|y| y.ack >= end);
            assert!(
                !covered || below_ack,
                "seed {seed}: resent SACKed {:?}",
                (r.at, r.seq)
            );
        }
    }
}

#[test]
fn a_spurious_retransmission_comes_back_as_dsack_and_widens_rack() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // Data segment 3 is held back 15 ms: the SACKs of 4.. make RACK resend it, and the
    // original then arrives too.
    let mut n = 0;
    p.delay = Some(Box::new(move |x: &Seg| {
        if x.a_to_b && x.len > 0 {
            n += 1;
            if n == 3 {
                return Duration::from_millis(15);
            }
        }
        Duration::ZERO
    }));
    let data = pattern(100_000, 10);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    assert_eq!(p.b.counters().dsack_old_sent, 1);
    let k = p.a.counters();
    assert_eq!(k.dsack_recv, 1);
    assert_eq!(k.retrans_segs, 1);
    assert_eq!(k.timeouts, 0);
    // The recovery had ended when the DSACK came back (the original's ACK covered the
    // recovery point): as in Linux, only a recovery still running is undone by DSACKs.
    assert_eq!((k.sack_recovery, k.dsack_undo), (1, 0));
    assert_eq!(p.a.info(c).unwrap().ca_state, "open");
}

#[test]
fn recovery_ends_at_half_the_window() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // Grow the window first, then lose one segment.
    let data = pattern(400_000, 11);
    p.filter = Some(drop_data(|n| n == 120));
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    let k = p.a.counters();
    assert_eq!(k.sack_recovery, 1);
    let info = p.a.info(c).unwrap();
    // Reno halves: after recovery cwnd was set to ssthresh, then grew by congestion
    // avoidance only.
    assert!(info.ssthresh < u32::MAX);
    assert!(
        info.cwnd >= info.ssthresh,
        "{} {}",
        info.cwnd,
        info.ssthresh
    );
    assert!(
        info.cwnd < info.ssthresh + 20 * 1448,
        "{} {}",
        info.cwnd,
        info.ssthresh
    );
}

#[test]
fn without_sack_the_peer_gets_newreno() {
    let cb = Config {
        tcp_sack: false,
        ..Config::default()
    };
    let mut p = Pair::with(Config::default(), cb);
    let (c, s, _) = p.connected(false);
    p.filter = Some(drop_data(|n| n == 3));
    let data = pattern(100_000, 12);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    let k = p.a.counters();
    assert_eq!(k.fast_retrans, 1);
    assert_eq!((k.sack_recovery, k.tlp), (0, 0));
}

#[test]
fn a_delay_spike_longer_than_the_rto_is_undone_by_timestamps() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let data = pattern(200_000, 13);
    // Warm up, so the window is worth restoring.
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(5)), data);
    let before = p.a.info(c).unwrap();
    // For 300 ms everything A sends takes 400 ms more: the probe and the RTO's
    // retransmission too. Then the originals arrive first, and their ACKs echo
    // timestamps older than the retransmission: the RTO was spurious (Eifel, RFC 3522).
    let (from, to) = (p.now, p.now + Duration::from_millis(300));
    p.delay = Some(Box::new(move |x: &Seg| {
        if x.a_to_b && x.at >= from && x.at < to {
            Duration::from_millis(400)
        } else {
            Duration::ZERO
        }
    }));
    let more = pattern(50_000, 14);
    assert_eq!(p.transfer(true, c, s, &more, Duration::from_secs(5)), more);
    p.run_for(Duration::from_secs(1));
    let k = p.a.counters();
    assert_eq!(k.timeouts, 1, "{k:?}");
    assert_eq!((k.spurious_rtos, k.loss_undo), (1, 1), "{k:?}");
    let after = p.a.info(c).unwrap();
    assert_eq!(after.ca_state, "open");
    // The window and threshold came back instead of restarting from one segment.
    assert!(after.ssthresh >= before.ssthresh, "{after:?} {before:?}");
    assert!(after.cwnd >= before.cwnd, "{after:?} {before:?}");
}

#[test]
fn a_fin_beyond_a_hole_counts_once_the_hole_fills() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    // Five segments and the FIN on the last; the second is lost once.
    p.filter = Some(drop_data(|n| n == 2));
    let data = pattern(5 * 1448 - 100, 15);
    assert_eq!(p.a.send(p.now, c, &data), Ok(data.len()));
    p.a.shutdown(p.now, c).unwrap();
    p.run_for(Duration::from_secs(2));
    let mut buf = vec![0u8; data.len() + 10];
    assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(data.len()));
    assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(0), "end of stream");
    // The FIN was held with the out-of-order data, not sent again after an RTO.
    let k = p.a.counters();
    assert_eq!((k.timeouts, k.retrans_segs), (0, 1), "{k:?}");
}

/// Warm a connection up, then for 150 ms drop every ACK B sends: the tail probe's answer
/// is lost too and the RTO fires although every segment arrived. B sends no DSACK and no
/// timestamps (Eifel cannot tell), so only F-RTO can.
fn rto_after_lost_acks(frto: u8) -> (crate::Counters, crate::ConnInfo, crate::ConnInfo, usize) {
    let ca = Config {
        tcp_frto: frto,
        ..Config::default()
    };
    let cb = Config {
        tcp_dsack: false,
        tcp_timestamps: TsMode::Off,
        ..Config::default()
    };
    let mut p = Pair::with(ca, cb);
    let (c, s, _) = p.connected(false);
    // Whole segments (B sends no timestamps: MSS 1460), so no short segment is in flight
    // when the RTO fires: its retransmission is one full segment, as Linux's would be
    // after collapsing (synq does not collapse retransmissions; see docs/loss-recovery.md).
    let data = pattern(205 * 1460, 16);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(5)), data);
    let before = p.a.info(c).unwrap();
    let (from, to) = (p.now, p.now + Duration::from_millis(150));
    p.filter = Some(Box::new(move |x: &Seg| {
        x.a_to_b || x.at < from || x.at >= to
    }));
    let more = pattern(20 * 1460, 17);
    let rtx_before = retransmissions(&p).len();
    assert_eq!(p.transfer(true, c, s, &more, Duration::from_secs(5)), more);
    p.run_for(Duration::from_secs(1));
    let rtx = retransmissions(&p).len() - rtx_before;
    (p.a.counters().clone(), before, p.a.info(c).unwrap(), rtx)
}

#[test]
fn frto_undoes_an_rto_whose_data_had_arrived() {
    let (k, before, after, rtx) = rto_after_lost_acks(2);
    assert_eq!(k.timeouts, 1, "{k:?}");
    // RFC 5682 §3.1 step 3.b: the ACK of the head's retransmission also covers segments
    // never retransmitted and sent before the RTO. The timeout was spurious.
    assert_eq!((k.spurious_rtos, k.loss_undo), (1, 1), "{k:?}");
    assert_eq!(after.ca_state, "open");
    assert!(after.ssthresh >= before.ssthresh, "{after:?} {before:?}");
    assert!(after.cwnd >= before.cwnd, "{after:?} {before:?}");
    // The probe and the head: nothing else went twice.
    assert_eq!(rtx, 2, "{k:?}");

    // With tcp_frto = 0 the same timeout costs the window: ssthresh falls and stays.
    let (k, before, after, _) = rto_after_lost_acks(0);
    assert_eq!(
        (k.timeouts, k.spurious_rtos, k.loss_undo),
        (1, 0, 0),
        "{k:?}"
    );
    assert!(after.ssthresh < before.cwnd, "{after:?} {before:?}");
}

#[test]
fn frto_sends_new_data_then_finds_the_loss_real() {
    // A send buffer that holds more than the first flight, so new data is waiting.
    let ca = Config {
        tcp_frto: 2,
        tcp_wmem: [4096, 262_144, 4_194_304],
        ..Config::default()
    };
    let mut p = Pair::with(ca, Config::default());
    let (c, s, _) = p.connected(false);
    // The first flight and the probe are lost (everything A sends for 100 ms), so the RTO
    // fires with ten segments outstanding and more data waiting.
    let until = p.now + Duration::from_millis(100);
    p.filter = Some(Box::new(move |x: &Seg| {
        !(x.a_to_b && x.len > 0 && x.at < until)
    }));
    let t0 = p.now;
    let base = p.a.info(c).unwrap().snd_nxt;
    let data = pattern(60 * 1448, 18);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    let k = p.a.counters();
    assert_eq!(
        (k.timeouts, k.spurious_rtos, k.loss_undo),
        (1, 0, 0),
        "{k:?}"
    );
    let sent = data_after(&p, t0, base);
    let rto = sent
        .iter()
        .position(|&(ms, ..)| ms >= 100)
        .expect("a segment after the blackout");
    // At the RTO the head goes again; its ACK (SND.UNA moves one segment) lets two new
    // segments out (step 2.b), beyond all that was sent before; their SACKs show the rest
    // of the flight lost (step 3.a), and it is resent in order.
    let flight = sent[..rto]
        .iter()
        .map(|&(_, off, len)| off + len as u32)
        .max()
        .unwrap();
    assert_eq!(sent[rto].1, 0, "{sent:?}");
    assert_eq!(
        &sent[rto + 1..rto + 3]
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        &[flight, flight + 1448],
        "{sent:?}"
    );
    assert_eq!(sent[rto + 3].1, 1448, "{sent:?}");
}
