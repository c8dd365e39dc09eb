use super::util::*;
use crate::{Config, ConnError, Duration, Event, Instant, RecvError, State};
use core::net::SocketAddr;

#[test]
fn handshake_v4_negotiates_options() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    assert_eq!(p.a.state(c), Some(State::Established));
    assert_eq!(p.b.state(s), Some(State::Established));
    let (ci, si) = (p.a.info(c).unwrap(), p.b.info(s).unwrap());
    assert!(ci.timestamps && si.timestamps && ci.sack && si.sack);
    // Linux 6.18: ilog2(max(tcp_rmem[2] = 32 MiB, rmem_max)) - 15.
    assert_eq!((ci.snd_wscale, ci.rcv_wscale), (10, 10));
    assert_eq!(ci.mss, 1460 - 12);
    assert!(p.events_a.contains(&Event::Connected(c)));
    assert_eq!(p.a.counters().active_opens, 1);
    assert_eq!(p.b.counters().passive_opens, 1);
    assert_eq!(p.a.counters().curr_estab, 1);
    // SYN, SYN-ACK, ACK and nothing else.
    let flags: Vec<String> = p.log.iter().map(|s| format!("{:?}", s.flags)).collect();
    assert_eq!(flags, ["[S]", "[S.]", "[.]"]);
    assert_eq!(p.log[1].ack, p.log[0].seq + 1);
    assert_eq!(p.log[2].ack, p.log[1].seq + 1);
    assert_eq!(p.log[2].seq, p.log[0].seq + 1);
    // The RTT of the handshake was measured: 2 x 10 ms.
    assert_eq!(ci.srtt, Some(Duration::from_millis(20)));
}

#[test]
fn handshake_v6() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(true);
    assert_eq!(p.a.state(c), Some(State::Established));
    assert_eq!(p.b.info(s).unwrap().mss, 1440 - 12);
}

#[test]
fn options_off_by_sysctl() {
    let mut ca = Config::default();
    ca.set("net.ipv4.tcp_timestamps", "0").unwrap();
    ca.set("net.ipv4.tcp_window_scaling", "0").unwrap();
    ca.set("net.ipv4.tcp_sack", "0").unwrap();
    let mut p = Pair::with(ca, Config::default());
    let (c, s, _) = p.connected(false);
    for i in [p.a.info(c).unwrap(), p.b.info(s).unwrap()] {
        assert!(!i.timestamps && !i.sack);
        assert_eq!((i.snd_wscale, i.rcv_wscale), (0, 0));
        assert_eq!(i.mss, 1460);
    }
}

#[test]
fn refused_by_closed_port() {
    let mut p = Pair::new();
    let c = p.a.connect(p.now, SocketAddr::new(B4, 81)).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.state(c), Some(State::Closed));
    assert_eq!(p.a.info(c).unwrap().error, Some(ConnError::Refused));
    assert_eq!(p.a.recv(p.now, c, &mut [0; 4]), Err(RecvError::Refused));
    assert_eq!(p.b.counters().out_rsts, 1);
    assert_eq!(p.a.counters().attempt_fails, 1);
}

/// SYN times (s) for a client whose SYNs all vanish, and when connect() fails.
fn syn_schedule(linear: &str) -> (Vec<u64>, u64) {
    let mut ca = Config::default();
    ca.set("net.ipv4.tcp_syn_linear_timeouts", linear).unwrap();
    let mut p = Pair::with(ca, Config::default());
    p.filter = Some(Box::new(|s| !s.a_to_b));
    let c = p.a.connect(p.now, SocketAddr::new(B4, 80)).unwrap();
    let mut failed_at = None;
    for _ in 0..400 {
        p.run_for(Duration::from_millis(500));
        if failed_at.is_none() && p.a.state(c) == Some(State::Closed) {
            failed_at = Some(p.now.total_millis() / 1000);
        }
    }
    assert_eq!(p.a.info(c).unwrap().error, Some(ConnError::TimedOut));
    let times = p
        .segs(true, |s| s.flags.syn())
        .iter()
        .map(|s| s.at.total_micros())
        .collect::<Vec<_>>();
    assert!(
        times.iter().all(|t| t % 1_000_000 == 0),
        "SYNs on whole seconds: {times:?}"
    );
    (
        times.into_iter().map(|t| t / 1_000_000).collect(),
        failed_at.unwrap(),
    )
}

#[test]
fn syn_retransmission_linux_6x_defaults() {
    // tcp_syn_retries 6, tcp_syn_linear_timeouts 4, as measured on Linux 6.18: the linear
    // timeouts add SYNs, not time; the give-up rule is Linux's time-based one (127 s of
    // modelled exponential backoff), checked at the next timer firing: 131 s.
    let (times, failed) = syn_schedule("4");
    assert_eq!(times, [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
    assert_eq!(failed, 131);
}

#[test]
fn syn_retransmission_exponential() {
    // Without linear timeouts: 0,1,3,7,15,31,63 s; fails at 127 s.
    let (times, failed) = syn_schedule("0");
    assert_eq!(times, [0, 1, 3, 7, 15, 31, 63]);
    assert_eq!(failed, 127);
}

#[test]
fn syn_retries_counted() {
    let mut ca = Config::default();
    ca.set("net.ipv4.tcp_syn_retries", "2").unwrap();
    let mut p = Pair::with(ca, Config::default());
    p.filter = Some(Box::new(|s| !s.a_to_b));
    let c = p.a.connect(p.now, SocketAddr::new(B4, 80)).unwrap();
    p.run_for(Duration::from_secs(10));
    // Measured on Linux 6.18 (tcp_syn_retries 2, linear timeouts 4): SYNs at 0..5 s, then
    // connect() fails at the 7 s timer (1 + 2 + 4 s of modelled backoff).
    assert_eq!(p.segs(true, |s| s.flags.syn()).len(), 6);
    assert_eq!(p.a.state(c), Some(State::Closed));
    let k = p.a.counters();
    assert_eq!(
        (k.syn_retrans, k.retrans_segs, k.timeouts, k.attempt_fails),
        (5, 5, 6, 1)
    );
}

#[test]
fn simultaneous_open() {
    let mut p = Pair::new();
    let a_addr = SocketAddr::new(A4, 5000);
    let b_addr = SocketAddr::new(B4, 6000);
    let ca = p.a.connect_from(p.now, a_addr, b_addr).unwrap();
    let cb = p.b.connect_from(p.now, b_addr, a_addr).unwrap();
    p.run_for(Duration::from_millis(200));
    assert_eq!(p.a.state(ca), Some(State::Established));
    assert_eq!(p.b.state(cb), Some(State::Established));
    let data = pattern(5000, 9);
    let got = p.transfer(true, ca, cb, &data, Duration::from_secs(5));
    assert_eq!(got, data);
}

#[test]
fn accept_queue_holds_backlog_plus_one() {
    let mut p = Pair::new();
    let l = p.b.listen(p.now, SocketAddr::new(B4, 80), 2).unwrap();
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let c = p.a.connect(p.now, SocketAddr::new(B4, 80)).unwrap();
            p.run_for(Duration::from_millis(100));
            c
        })
        .collect();
    let estab = clients
        .iter()
        .filter(|&&c| p.a.state(c) == Some(State::Established))
        .count();
    assert_eq!(estab, 3);
    let li = p.b.listener_info(l).unwrap();
    assert_eq!((li.recv_q, li.send_q, li.syn_recv), (3, 2, 0));
    assert_eq!(p.b.counters().listen_overflows, 2);
    // Accepting in FIFO order, then EAGAIN.
    let mut order = Vec::new();
    while let Ok((_, peer)) = p.b.accept(p.now, l) {
        order.push(peer);
    }
    assert_eq!(order.len(), 3);
    assert_eq!(
        p.b.accept(p.now, l).unwrap_err(),
        crate::AcceptError::WouldBlock
    );
    let _ = Instant::ZERO;
}

#[test]
fn synack_retransmissions_and_expiry() {
    // The client's ACKs never arrive: B resends the SYN-ACK at 1, 3, 7, 15, 31 s and drops
    // the request at 63 s (tcp_synack_retries 5), silently.
    let mut p = Pair::new();
    let l = p.b.listen(p.now, SocketAddr::new(B4, 80), 8).unwrap();
    p.filter = Some(Box::new(|s| !s.a_to_b || s.flags.syn()));
    let c = p.a.connect(p.now, SocketAddr::new(B4, 80)).unwrap();
    p.run_for(Duration::from_secs(62));
    assert_eq!(p.b.listener_info(l).unwrap().syn_recv, 1);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.b.listener_info(l).unwrap().syn_recv, 0);
    let synacks: Vec<u64> = p
        .segs(false, |s| s.flags.syn())
        .iter()
        .map(|s| s.at.total_millis())
        .collect();
    // The client is ESTABLISHED after the first SYN-ACK (its ACKs are what get lost).
    assert_eq!(p.a.state(c), Some(State::Established));
    assert_eq!(synacks, [10, 1010, 3010, 7010, 15010, 31010]);
    let k = p.b.counters();
    assert_eq!((k.syn_retrans, k.retrans_segs, k.timeouts), (5, 5, 6));
    // Every SYN-ACK, first or retransmitted, is an output segment (Linux tcp_make_synack).
    assert_eq!(k.out_segs, 6);
    assert!(
        p.segs(false, |s| s.at.total_millis() > 31_010).is_empty(),
        "expiry is silent"
    );
}

/// The SYN's retransmission timer fires, and the SYN-ACK arrives before the resent SYN
/// is polled out (a driver that sends a bounded number of packets per round leaves it
/// queued). The connection must go on from after the SYN: it used to stay ESTABLISHED
/// with `snd_nxt` one behind `snd_una`, its ACKs at the wrong sequence number, the server
/// never completing the handshake and the data never leaving, with no error ever.
#[test]
fn a_synack_after_the_syn_timer_before_the_resend_completes_the_handshake() {
    let t0 = Instant::from_millis(1);
    let (mut a, mut b) = (
        crate::Stack::new(Config::default(), 1),
        crate::Stack::new(Config::default(), 2),
    );
    a.add_address(A4);
    b.add_address(B4);
    let srv = SocketAddr::new(B4, 80);
    let l = b.listen(t0, srv, 16).unwrap();
    let c = a.connect(t0, srv).unwrap();
    let syn = drain(&mut a, t0);
    assert_eq!(syn.len(), 1);
    b.handle_packet(t0, &syn[0]);
    let synack = drain(&mut b, t0);
    assert_eq!(synack.len(), 1);
    let t1 = a.poll_timeout().expect("the SYN timer");
    a.handle_timeout(t1);
    a.handle_packet(t1, &synack[0]);
    let info = a.info(c).unwrap();
    assert_eq!(info.state, State::Established);
    assert_eq!(info.snd_nxt, info.snd_una, "{info:?}");
    // The handshake's ACK and the data both reach the server.
    let data = pattern(3000, 7);
    assert_eq!(a.send(t1, c, &data), Ok(data.len()));
    let mut t = t1;
    let step = |x: &mut crate::Stack, y: &mut crate::Stack, t: Instant| {
        if x.poll_timeout().is_some_and(|d| d <= t) {
            x.handle_timeout(t);
        }
        for p in drain(x, t) {
            y.handle_packet(t, &p);
        }
    };
    for _ in 0..200 {
        t += Duration::from_millis(10);
        step(&mut a, &mut b, t);
        step(&mut b, &mut a, t);
    }
    let (s, _) = b.accept(t, l).expect("the handshake completed");
    let mut got = vec![0; 4000];
    assert_eq!(b.recv(t, s, &mut got), Ok(data.len()));
    assert_eq!(&got[..data.len()], &data[..]);
    assert_eq!(a.info(c).unwrap().send_queue, 0);
}
