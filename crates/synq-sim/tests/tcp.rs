//! TCP lifecycle through the simulator: handshakes, closes, resets, SYN timing.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use synq_core::{Config, ConnError, Duration, Instant, Stack, State};
use synq_sim::{LinkConfig, Network, TapKind};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn net(cfg: Config) -> (Network<Stack>, usize, usize) {
    let mut n = Network::new(5);
    n.set_default_link(LinkConfig {
        delay: Duration::from_micros(50),
        ..LinkConfig::default()
    });
    let mut a = Stack::new(cfg.clone(), 1);
    a.add_address(A);
    let mut b = Stack::new(cfg, 2);
    b.add_address(B);
    let a = n.add_host(A, a);
    let b = n.add_host(B, b);
    (n, a, b)
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn handshake_many_clients() {
    let (mut n, a, b) = net(Config::default());
    let l = n
        .host_mut(b)
        .listen(Instant::ZERO, SocketAddr::new(B, 80), 128)
        .unwrap();
    let conns: Vec<_> = (0..50)
        .map(|_| {
            n.host_mut(a)
                .connect(Instant::ZERO, SocketAddr::new(B, 80))
                .unwrap()
        })
        .collect();
    n.run_until(at(10));
    assert!(conns
        .iter()
        .all(|&c| n.host(a).state(c) == Some(State::Established)));
    let mut accepted = 0;
    let now = n.now();
    while n.host_mut(b).accept(now, l).is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 50);
    assert_eq!(n.host(b).counters().passive_opens, 50);
    assert_eq!(n.host(a).counters().active_opens, 50);
}

#[test]
fn both_close_orders() {
    for client_first in [true, false] {
        let (mut n, a, b) = net(Config::default());
        let now = n.now();
        let l = n
            .host_mut(b)
            .listen(now, SocketAddr::new(B, 80), 8)
            .unwrap();
        let c = n
            .host_mut(a)
            .connect(Instant::ZERO, SocketAddr::new(B, 80))
            .unwrap();
        n.run_until(at(5));
        let now = n.now();
        let (s, _) = n.host_mut(b).accept(now, l).unwrap();
        let (first, h1, second, h2) = if client_first {
            (a, c, b, s)
        } else {
            (b, s, a, c)
        };
        n.host_mut(first).shutdown(now, h1).unwrap();
        n.run_until(at(10));
        assert_eq!(n.host(first).state(h1), Some(State::FinWait2));
        assert_eq!(n.host(second).state(h2), Some(State::CloseWait));
        let now = n.now();
        n.host_mut(second).shutdown(now, h2).unwrap();
        n.run_until(at(15));
        assert_eq!(n.host(first).state(h1), Some(State::TimeWait));
        assert_eq!(n.host(second).state(h2), Some(State::Closed));
        n.run_until(at(61_000));
        assert_eq!(n.host(first).state(h1), Some(State::Closed));
    }
}

#[test]
fn reset_cases() {
    let (mut n, a, b) = net(Config::default());
    // Closed port: ECONNREFUSED.
    let c = n
        .host_mut(a)
        .connect(Instant::ZERO, SocketAddr::new(B, 81))
        .unwrap();
    n.run_until(at(5));
    assert_eq!(n.host(a).info(c).unwrap().error, Some(ConnError::Refused));
    // Abort of an established connection: the peer sees ECONNRESET.
    let now = n.now();
    let l = n
        .host_mut(b)
        .listen(now, SocketAddr::new(B, 80), 8)
        .unwrap();
    let c = n.host_mut(a).connect(now, SocketAddr::new(B, 80)).unwrap();
    n.run_until(at(10));
    let now = n.now();
    let (s, _) = n.host_mut(b).accept(now, l).unwrap();
    n.host_mut(a).abort(now, c).unwrap();
    n.run_until(at(15));
    assert_eq!(n.host(b).info(s).unwrap().error, Some(ConnError::Reset));
    assert_eq!(n.host(b).counters().estab_resets, 1);
    // Closing a listener resets its unaccepted children.
    let now = n.now();
    let c2 = n.host_mut(a).connect(now, SocketAddr::new(B, 80)).unwrap();
    n.run_until(at(20));
    assert_eq!(n.host(a).state(c2), Some(State::Established));
    let now = n.now();
    n.host_mut(b).close_listener(now, l);
    n.run_until(at(25));
    assert_eq!(n.host(a).info(c2).unwrap().error, Some(ConnError::Reset));
}

/// SYN times when the server is silent (its address exists but drops everything).
fn syn_times(linear: &str) -> Vec<f64> {
    let mut cfg = Config::default();
    cfg.set("net.ipv4.tcp_syn_linear_timeouts", linear).unwrap();
    let (mut n, a, b) = net(cfg);
    n.set_link(
        a,
        b,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
    );
    let times = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let t2 = times.clone();
    n.set_tap(Box::new(move |e| {
        if e.kind == TapKind::Sent && e.from == 0 {
            t2.borrow_mut().push(e.time.as_secs_f64());
        }
    }));
    let c = n
        .host_mut(a)
        .connect(Instant::ZERO, SocketAddr::new(B, 80))
        .unwrap();
    n.run_until(Instant::from_secs(200));
    assert_eq!(n.host(a).info(c).unwrap().error, Some(ConnError::TimedOut));
    let v = times.borrow().clone();
    v
}

#[test]
fn syn_retransmission_schedule_in_sim() {
    // Linux 6.18 (measured): linear timeouts add SYNs; the give-up time stays 127 s of
    // modelled backoff, reached at the 131 s (linear) or 127 s (exponential) timer.
    assert_eq!(
        syn_times("4"),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0]
    );
    assert_eq!(syn_times("0"), [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0]);
}
