//! The receive side and the socket options around it: quick ACKs and ping-pong (delayed
//! ACKs a reply carries), receive-buffer autotuning, keepalives, orphan retries and
//! TCP_CONGESTION.

use super::util::{drop_data, pattern, Pair, Seg};
use crate::congestion::Algorithm;
use crate::{Config, ConnError, Duration, State};

#[test]
fn a_reply_carries_the_ack_of_an_interactive_exchange() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let mut buf = [0u8; 64];
    // Request and reply, 30 times: B answers each request at once.
    for i in 0..30 {
        p.a.send(p.now, c, b"ping").unwrap();
        p.run_for(Duration::from_millis(11));
        assert_eq!(p.b.recv(p.now, s, &mut buf), Ok(4), "round {i}");
        p.b.send(p.now, s, b"pong").unwrap();
        p.run_for(Duration::from_millis(100));
        assert_eq!(p.a.recv(p.now, c, &mut buf), Ok(4));
    }
    // B acknowledged the first request alone (quick-ACK mode); its reply within the
    // delayed-ACK timeout made the connection interactive, and from then on each reply
    // carries the ACK: no pure ACKs from B.
    let pure = p.segs(false, |x| x.len == 0 && x.flags == synq_wire::TcpFlags::ACK);
    assert_eq!(
        pure.len(),
        1,
        "{:?}",
        pure.iter().map(|x| x.at).collect::<Vec<_>>()
    );
}

#[test]
fn the_receive_window_grows_with_what_the_application_reads() {
    let run = |moderate: bool| {
        let cb = Config {
            tcp_moderate_rcvbuf: moderate,
            ..Config::default()
        };
        let mut p = Pair::with(Config::default(), cb.clone());
        let (c, s, _) = p.connected(false);
        // A long path from here: 50 ms each way.
        p.latency = Duration::from_millis(50);
        let data = pattern(8 << 20, 21);
        assert_eq!(
            p.transfer(true, c, s, &data, Duration::from_secs(120)),
            data
        );
        let shift = p.b.info(s).unwrap().rcv_wscale;
        let max = p
            // The SYN-ACK's window is not scaled.
            .segs(false, |x| !x.flags.syn())
            .iter()
            .map(|x: &Seg| u64::from(x.window) << shift)
            .max()
            .unwrap();
        (max, cb.tcp_rmem)
    };
    let (grown, rmem) = run(true);
    let (fixed, _) = run(false);
    // Without autotuning the window stays within tcp_rmem[1] (and its scale unit).
    assert!(fixed <= u64::from(rmem[1]) + 512, "{fixed}");
    // With it, the window grows past tcp_rmem[1] and stays within tcp_rmem[2].
    assert!(grown > 4 * u64::from(rmem[1]), "{grown}");
    assert!(grown <= u64::from(rmem[2]) + 512, "{grown}");
}

#[test]
fn keepalive_probes_then_times_out() {
    let ca = Config {
        tcp_keepalive_time: 10,
        tcp_keepalive_intvl: 2,
        tcp_keepalive_probes: 3,
        ..Config::default()
    };
    let mut p = Pair::with(ca, Config::default());
    let (c, _s, _) = p.connected(false);
    p.a.set_keepalive(p.now, c, true).unwrap();
    let t0 = p.now;
    // B answers: probes at +10 s, +20 s, ... each answered, the connection lives.
    p.run_for(Duration::from_secs(35));
    let probes: Vec<u64> = p
        .segs(true, |x| x.at > t0 && x.len == 0)
        .iter()
        .map(|x| (x.at - t0).total_millis())
        .collect();
    // Each answer arrives 20 ms after its probe; the next probe is 10 s after the answer.
    assert_eq!(probes, [10_000, 20_020, 30_040], "{probes:?}");
    assert_eq!(p.a.state(c), Some(State::Established));
    // B goes silent: three more probes 2 s apart, then ETIMEDOUT.
    p.filter = Some(Box::new(|x: &Seg| x.a_to_b));
    p.run_for(Duration::from_secs(30));
    let k = p.a.counters();
    assert_eq!(k.keepalive, 3 + 3);
    assert_eq!(k.keepalive_timeouts, 1);
    assert_eq!(p.a.info(c).unwrap().error, Some(ConnError::TimedOut));
}

#[test]
fn an_orphan_gives_up_after_tcp_orphan_retries() {
    let ca = Config {
        tcp_orphan_retries: 2,
        ..Config::default()
    };
    let mut p = Pair::with(ca, Config::default());
    let (c, _s, _) = p.connected(false);
    // Everything from A is lost from now on; A sends and closes.
    p.filter = Some(Box::new(|x: &Seg| !x.a_to_b));
    p.a.send(p.now, c, b"lost").unwrap();
    p.a.close(p.now, c).unwrap();
    p.run_for(Duration::from_secs(60));
    let k = p.a.counters();
    // 2 retransmissions allowed: gone after the third expiry, not tcp_retries2's 15.
    assert_eq!(k.abort_on_timeout, 1);
    assert!(k.timeouts <= 4, "{}", k.timeouts);
}

#[test]
fn tcp_congestion_per_socket() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    assert_eq!(p.a.info(c).unwrap().congestion, Algorithm::Cubic);
    p.a.set_congestion(c, Algorithm::Reno).unwrap();
    assert_eq!(p.a.info(c).unwrap().congestion, Algorithm::Reno);
    p.filter = Some(drop_data(|n| n == 50));
    let data = pattern(300_000, 22);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(10)), data);
    // Reno halves the window on the loss.
    let i = p.a.info(c).unwrap();
    assert!(i.ssthresh < u32::MAX);
    let mut cfg = Config::default();
    cfg.set("net.ipv4.tcp_congestion_control", "reno").unwrap();
    assert_eq!(cfg.get("net.ipv4.tcp_congestion_control").unwrap(), "reno");
    assert!(cfg.set("net.ipv4.tcp_congestion_control", "bbr").is_err());
}
