//! Resource exhaustion by peers that follow the protocol but never let go: connections that
//! never read (zero window), idle connections by the hundred, orphans stuck behind a closed
//! window, a flood of TIME_WAIT. Every one meets a bound, a knob and a counter. The tests
//! print their figures (docs/SECURITY.md quotes them).

use super::util::*;
use crate::{Config, ConnHandle, Duration, ListenerHandle, State};
use core::net::SocketAddr;

/// `n` connections from A to B's port 80, accepted. (clients, servers, listener)
fn many(p: &mut Pair, n: usize) -> (Vec<ConnHandle>, Vec<ConnHandle>, ListenerHandle) {
    let l = p.b.listen(p.now, SocketAddr::new(B4, 80), 4096).unwrap();
    let clients: Vec<_> = (0..n)
        .filter_map(|_| p.a.connect(p.now, SocketAddr::new(B4, 80)).ok())
        .collect();
    p.run_for(Duration::from_millis(100));
    let mut servers = Vec::new();
    while let Ok((s, _)) = p.b.accept(p.now, l) {
        servers.push(s);
    }
    (clients, servers, l)
}

/// Keep every `from` connection's send buffer full for `secs` seconds.
fn push(p: &mut Pair, a_side: bool, from: &[ConnHandle], secs: u64) {
    let data = pattern(65_536, 30);
    for _ in 0..secs * 100 {
        for &h in from {
            let st = if a_side { &mut p.a } else { &mut p.b };
            let _ = st.send(p.now, h, &data);
        }
        p.run_for(Duration::from_millis(10));
    }
}

#[test]
fn peers_that_never_read_hold_one_receive_buffer_each() {
    let mut p = Pair::new();
    let n = 50;
    let (clients, servers, _) = many(&mut p, n);
    assert_eq!(servers.len(), n);
    // A's applications write without pause; B's never read.
    push(&mut p, true, &clients, 3);
    // The buffer, plus the window's rounding up to its scale (as Linux rounds).
    let rmem = p.b.config().tcp_rmem[1] as usize;
    let slack = 1usize << p.b.info(servers[0]).unwrap().rcv_wscale;
    let held: Vec<usize> = servers
        .iter()
        .map(|&s| p.b.info(s).unwrap().recv_queue)
        .collect();
    let total: usize = held.iter().sum();
    // A minute more: A probes the zero window (persist timer) and nobody gives up.
    p.run_for(Duration::from_secs(60));
    let probes = p.a.counters().win_probes;
    eprintln!(
        "{n} peers that never read: B holds {total} bytes ({} per connection at most, \
         tcp_rmem[1] = {rmem} plus {slack} of window rounding); after 60 s more, A sent {probes} zero-window probes and \
         {} connections are established",
        held.iter().max().unwrap(),
        clients
            .iter()
            .filter(|&&c| p.a.state(c) == Some(State::Established))
            .count()
    );
    assert!(held.iter().all(|&h| h > 0 && h <= rmem + slack), "{held:?}");
    assert!(probes > 0);
    assert!(clients
        .iter()
        .all(|&c| p.a.state(c) == Some(State::Established)));
}

#[test]
fn idle_connections_stop_at_the_connection_table_bound() {
    // synq.max_connections bounds connections and half-open requests together.
    let cb = Config {
        max_connections: 100,
        ..Config::default()
    };
    let mut p = Pair::with(Config::default(), cb);
    let (clients, servers, _) = many(&mut p, 150);
    // The refused keep retrying their SYNs; give them a few rounds.
    p.run_for(Duration::from_secs(8));
    let held = p.b.connections().count();
    let k = p.b.counters();
    eprintln!(
        "150 idle connections against synq.max_connections = 100: {} accepted, B holds {held} \
         connections, SynqConnTableFull {}",
        servers.len(),
        k.conn_table_full
    );
    assert_eq!(clients.len(), 150);
    assert!(held <= 100, "{held}");
    assert_eq!(servers.len(), 100);
    assert!(k.conn_table_full >= 50, "{}", k.conn_table_full);
}

#[test]
fn orphans_beyond_tcp_max_orphans_are_reset() {
    let cb = Config {
        tcp_max_orphans: 10,
        ..Config::default()
    };
    let mut p = Pair::with(Config::default(), cb);
    let (_, servers, _) = many(&mut p, 30);
    // B writes into A's closed window, then closes: each close leaves an orphan that
    // cannot finish (its data waits behind a zero window).
    push(&mut p, false, &servers, 2);
    for &s in &servers {
        p.b.close(p.now, s).unwrap();
    }
    p.run_for(Duration::from_millis(100));
    let orphans =
        p.b.connections()
            .filter(|c| c.state == State::FinWait1)
            .count();
    let k = p.b.counters();
    eprintln!(
        "30 closes behind a zero window, tcp_max_orphans = 10: {orphans} orphans kept, \
         {} reset (SynqOrphanOverflow), RSTs sent {}",
        k.orphan_overflow, k.out_rsts
    );
    assert_eq!(orphans, 10);
    assert_eq!(k.orphan_overflow, 20);
    assert!(k.out_rsts >= 20);
}

#[test]
fn a_time_wait_flood_is_capped_by_tcp_max_tw_buckets() {
    let cb = Config {
        tcp_max_tw_buckets: 20,
        ..Config::default()
    };
    let mut p = Pair::with(Config::default(), cb);
    let (clients, servers, _) = many(&mut p, 50);
    // B closes first (it will hold TIME_WAIT), then A.
    for &s in &servers {
        p.b.close(p.now, s).unwrap();
    }
    p.run_for(Duration::from_millis(100));
    for &c in &clients {
        p.a.close(p.now, c).unwrap();
    }
    p.run_for(Duration::from_millis(100));
    let tw =
        p.b.connections()
            .filter(|c| c.state == State::TimeWait)
            .count();
    let k = p.b.counters();
    eprintln!(
        "50 active closes, tcp_max_tw_buckets = 20: {tw} in TIME_WAIT, TcpExtTCPTimeWaitOverflow {}",
        k.tw_overflow
    );
    assert_eq!(tw, 20);
    assert_eq!(k.tw_overflow, 30);
    // TIME_WAIT ends after 60 s; nothing is left.
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.b.connections().count(), 0);
}

/// An application that never calls `poll_event`: each connection it opened and aborted
/// left an entry in the event queue (one per handshake on each side), so the queue grew
/// with every connection. Entries of freed connections are now swept out.
#[test]
fn events_nobody_polls_do_not_pile_up() {
    let mut p = Pair::new();
    p.poll_events = false;
    let l = p.b.listen(p.now, SocketAddr::new(B4, 80), 128).unwrap();
    let mut peak = 0;
    for _ in 0..200 {
        let clients: Vec<_> = (0..16)
            .map(|_| p.a.connect(p.now, SocketAddr::new(B4, 80)).unwrap())
            .collect();
        p.run_for(Duration::from_millis(100));
        let mut servers = Vec::new();
        while let Ok((s, _)) = p.b.accept(p.now, l) {
            servers.push(s);
        }
        assert_eq!(servers.len(), 16);
        peak = peak.max(p.a.queued_events()).max(p.b.queued_events());
        for c in clients {
            p.a.abort(p.now, c).unwrap();
        }
        for s in servers {
            p.b.abort(p.now, s).unwrap();
        }
        p.run_for(Duration::from_millis(100));
    }
    println!("event queue peak over 3 200 connections a side: {peak} entries");
    // At most 16 live entries a side, and stale ones swept once past half the queue.
    let bound = 2 * (crate::stack::STALE_EVENTS_MIN + 16);
    assert!(peak <= bound, "{peak} entries queued, bound {bound}");
}
