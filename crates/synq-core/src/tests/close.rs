use super::util::*;
use crate::{Duration, Event, State};

fn read_all(p: &mut Pair, on_a: bool, h: crate::ConnHandle) -> Option<usize> {
    let mut buf = [0u8; 1024];
    let st = if on_a { &mut p.a } else { &mut p.b };
    st.recv(p.now, h, &mut buf).ok()
}

#[test]
fn client_closes_first() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.a.close(p.now, c).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.b.state(s), Some(State::CloseWait));
    assert_eq!(read_all(&mut p, false, s), Some(0), "EOF");
    assert!(p.events_b.contains(&Event::Readable(s)));
    p.b.close(p.now, s).unwrap();
    p.run_for(Duration::from_millis(100));
    // Server side is gone (LAST_ACK -> CLOSED, released); client in TIME_WAIT for 60 s.
    assert_eq!(p.b.state(s), None);
    assert_eq!(
        p.a.connections().map(|i| i.state).collect::<Vec<_>>(),
        [State::TimeWait]
    );
    p.run_for(Duration::from_secs(59));
    assert_eq!(p.a.connections().count(), 1);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.a.connections().count(), 0);
    assert_eq!(p.a.counters().tw, 1);
    assert_eq!(p.a.counters().curr_estab, 0);
    assert_eq!(p.b.counters().curr_estab, 0);
}

#[test]
fn server_closes_first() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.b.send(p.now, s, b"bye").unwrap();
    p.b.shutdown(p.now, s).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.b.state(s), Some(State::FinWait2));
    assert_eq!(p.a.state(c), Some(State::CloseWait));
    let mut buf = [0u8; 8];
    assert_eq!(p.a.recv(p.now, c, &mut buf), Ok(3));
    assert_eq!(p.a.recv(p.now, c, &mut buf), Ok(0));
    p.a.shutdown(p.now, c).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.state(c), Some(State::Closed));
    assert_eq!(p.b.state(s), Some(State::TimeWait));
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.b.state(s), Some(State::Closed));
    assert!(p.events_b.contains(&Event::Closed(s)));
}

#[test]
fn simultaneous_close() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.a.shutdown(p.now, c).unwrap();
    p.b.shutdown(p.now, s).unwrap();
    p.run_for(Duration::from_millis(5));
    assert_eq!(p.a.state(c), Some(State::FinWait1));
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.a.state(c), Some(State::Closing));
    assert_eq!(p.b.state(s), Some(State::Closing));
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.state(c), Some(State::TimeWait));
    assert_eq!(p.b.state(s), Some(State::TimeWait));
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.a.state(c), Some(State::Closed));
    assert_eq!(p.b.state(s), Some(State::Closed));
}

#[test]
fn lost_fin_is_retransmitted_and_time_wait_reacks() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let mut fins = 0;
    p.filter = Some(Box::new(move |seg| {
        if seg.a_to_b && seg.flags.fin() {
            fins += 1;
            return fins > 1;
        }
        true
    }));
    p.a.close(p.now, c).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.b.state(s), Some(State::CloseWait));
    assert_eq!(p.segs(true, |x| x.flags.fin()).len(), 2);
    assert_eq!(p.a.counters().retrans_segs, 1);
}

#[test]
fn close_with_unread_data_resets() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    p.a.send(p.now, c, b"unread").unwrap();
    p.run_for(Duration::from_millis(100));
    p.b.close(p.now, s).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.b.counters().abort_on_close, 1);
    assert_eq!(p.a.info(c).unwrap().error, Some(crate::ConnError::Reset));
    assert_eq!(p.a.counters().estab_resets, 1);
}

#[test]
fn fin_wait_2_orphan_times_out() {
    let mut p = Pair::new();
    let (c, _s, _) = p.connected(false);
    p.a.close(p.now, c).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(
        p.a.connections().map(|i| i.state).collect::<Vec<_>>(),
        [State::FinWait2]
    );
    p.run_for(Duration::from_secs(61));
    assert_eq!(
        p.a.connections().count(),
        0,
        "tcp_fin_timeout released the orphan"
    );
}

/// Regression (found by the `calls_segments_and_time_keep_the_invariants` state machine):
/// close_listener orphaned its unaccepted children without counting them, and `free` then
/// took them off the orphan gauge anyway, so it drifted below the orphans alive and
/// `tcp_max_orphans` let more in than it allows.
#[test]
fn closing_a_listener_counts_its_children_as_orphans() {
    let cb = crate::Config {
        tcp_max_orphans: 1,
        ..crate::Config::default()
    };
    let mut p = Pair::with(crate::Config::default(), cb);
    // The server's FINs never arrive: a closed connection stays an orphan in FIN_WAIT_1.
    p.filter = Some(Box::new(|seg| seg.a_to_b || !seg.flags.fin()));
    let (_, s1, l) = p.connected(false);
    p.a.connect(p.now, core::net::SocketAddr::new(B4, 80))
        .unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.b.listener_info(l).unwrap().recv_q, 1);
    p.b.close(p.now, s1).unwrap();
    p.b.close_listener(p.now, l);
    p.b.audit().unwrap();
    p.run_for(Duration::from_millis(100));
    p.b.audit().unwrap();
    assert_eq!(p.b.state(s1), Some(State::FinWait1));
    // One orphan is alive and the limit is one: the next close() overflows.
    let l2 =
        p.b.listen(p.now, core::net::SocketAddr::new(B4, 81), 8)
            .unwrap();
    p.a.connect(p.now, core::net::SocketAddr::new(B4, 81))
        .unwrap();
    p.run_for(Duration::from_millis(100));
    let (s3, _) = p.b.accept(p.now, l2).unwrap();
    p.b.close(p.now, s3).unwrap();
    assert_eq!(p.b.counters().orphan_overflow, 1);
    p.run_for(Duration::from_millis(100));
    p.b.audit().unwrap();
}
