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
