//! Off-path (blind) attacks on an established connection, RFC 5961: an attacker who knows
//! the four-tuple but not the sequence numbers sends RSTs, SYNs and data. Each test prints
//! its figures (guesses, guesses in the window, resets, challenge ACKs); docs/SECURITY.md
//! quotes them.

use super::util::*;
use crate::{Config, ConnHandle, Duration, State};
use synq_wire::{SeqNumber, TcpFlags};

/// The attacker's guesses: a seeded xorshift64's high halves.
struct Guess(XorShift64);

impl Guess {
    fn next(&mut self) -> u32 {
        (self.0.next_u64() >> 32) as u32
    }
}

/// `n` forged segments 100 µs apart, each built by `make` from B's connection as it is then;
/// returns how many started inside B's receive window and how many at RCV.NXT exactly.
fn attack(
    p: &mut Pair,
    c: ConnHandle,
    s: ConnHandle,
    n: u32,
    mut make: impl FnMut(&crate::ConnInfo) -> (TcpFlags, SeqNumber, SeqNumber),
) -> (u32, u32) {
    let (mut in_window, mut exact) = (0, 0);
    for _ in 0..n {
        let Some(b) = p.b.info(s).filter(|b| b.state == State::Established) else {
            break;
        };
        let (flags, seq, ack) = make(&b);
        in_window += u32::from(seq.distance_from(b.rcv_nxt) < b.rcv_wnd);
        exact += u32::from(seq == b.rcv_nxt);
        inject(p, c, flags, seq, ack, &[]);
        p.run_for(Duration::from_micros(100));
    }
    (in_window, exact)
}

#[test]
fn blind_rsts_reset_nothing_and_challenges_are_rate_limited() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let mut g = Guess(XorShift64(0x5eed_0001));
    // 50 000 guesses in 5 s. The attacker is told RCV.NXT within 1 MB (a sweep's best
    // case); a fully blind one lands in a 64 KB window once in 65 536 guesses.
    let n = 50_000;
    let (in_window, exact) = attack(&mut p, c, s, n, |b| {
        let off = g.next() % (2 << 20);
        (TcpFlags::RST, b.rcv_nxt - (1 << 20) + off, SeqNumber(0))
    });
    let k = p.b.counters();
    eprintln!(
        "blind RST: {n} guesses, {in_window} in the window, {exact} at RCV.NXT; \
         challenge ACKs {} sent, {} rate-limited; connection {:?}",
        k.challenge_ack,
        k.ack_skipped_challenge,
        p.b.state(s)
    );
    assert!(
        in_window > 1000,
        "the test must exercise the window: {in_window}"
    );
    // Only an RST exactly at RCV.NXT resets (RFC 5961 §3.2); this draw has none.
    assert_eq!(exact, 0);
    assert_eq!(p.b.state(s), Some(State::Established));
    // Every in-window guess was answered by a challenge ACK or counted as rate-limited.
    assert_eq!(
        k.challenge_ack + k.ack_skipped_challenge,
        u64::from(in_window)
    );
    // At most one challenge ACK per 500 ms (tcp_invalid_ratelimit) per connection.
    assert!(k.challenge_ack <= 11, "{}", k.challenge_ack);
    // The real peer ignores them (they carry nothing new) and the connection still works.
    let data = pattern(20_000, 21);
    assert_eq!(p.transfer(true, c, s, &data, Duration::from_secs(5)), data);
}

#[test]
fn a_blind_rst_at_rcv_nxt_does_reset() {
    // The one guess in 2^32 that RFC 5961 cannot turn away.
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let (_, exact) = attack(&mut p, c, s, 1, |b| {
        (TcpFlags::RST, b.rcv_nxt, SeqNumber(0))
    });
    assert_eq!(exact, 1);
    assert_eq!(p.b.state(s), Some(State::Closed));
}

#[test]
fn blind_syns_reset_nothing() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let mut g = Guess(XorShift64(0x5eed_0002));
    let n = 5_000;
    attack(&mut p, c, s, n, |_| {
        (TcpFlags::SYN, SeqNumber(g.next()), SeqNumber(0))
    });
    let k = p.b.counters();
    eprintln!(
        "blind SYN: {n} guesses; TCPSYNChallenge {}, challenge ACKs {} sent, {} rate-limited; \
         connection {:?}",
        k.syn_challenge,
        k.challenge_ack,
        k.ack_skipped_challenge,
        p.b.state(s)
    );
    // RFC 5961 §4.2: every SYN on a synchronized connection, in the window or not, gets a
    // (rate-limited) challenge ACK and changes nothing.
    assert_eq!(p.b.state(s), Some(State::Established));
    assert_eq!(k.syn_challenge, u64::from(n));
    assert_eq!(k.challenge_ack + k.ack_skipped_challenge, u64::from(n));
    assert!(k.challenge_ack <= 2, "{}", k.challenge_ack);
}

#[test]
fn blind_data_needs_an_acceptable_ack() {
    let mut p = Pair::new();
    let (c, s, _) = p.connected(false);
    let mut g = Guess(XorShift64(0x5eed_0003));
    // The worst case: the attacker knows RCV.NXT exactly and guesses only the ACK field.
    // RFC 5961 §5.2 takes data only with SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
    let n = 200_000u32;
    let (mut acceptable, mut sent, mut expected) = (0u32, 0u32, 0f64);
    for _ in 0..n {
        let b = p.b.info(s).unwrap();
        // The odds of this guess: the acceptable range over the whole space (the range
        // follows the peer's window, which grows as it autotunes).
        expected += f64::from(b.max_snd_wnd + 1) / 2f64.powi(32);
        let ack = SeqNumber(g.next());
        let lo = b.snd_una - b.max_snd_wnd;
        if ack.distance_from(lo) <= b.snd_nxt.distance_from(lo) {
            acceptable += 1;
        }
        inject(&mut p, c, TcpFlags::ACK, b.rcv_nxt, ack, b"INJECTED!!");
        sent += 1;
        if sent % 1000 == 0 {
            p.run_for(Duration::from_millis(1));
        }
    }
    p.run_for(Duration::from_millis(100));
    let mut buf = vec![0u8; 1 << 20];
    let got = p.b.recv(p.now, s, &mut buf).unwrap_or(0);
    eprintln!(
        "blind data: {n} guesses at RCV.NXT, {acceptable} with an acceptable ACK \
         ({expected:.1} expected from the window sizes); {got} bytes reached the application"
    );
    // Exactly the guesses RFC 5961 allows got through, ten bytes each, and no other.
    assert_eq!(got, 10 * acceptable as usize);
    assert_eq!(p.b.state(s), Some(State::Established));
}

#[test]
fn challenge_acks_are_limited_host_wide() {
    // No per-connection limit, and a host budget of 100 a second (Linux draws 50..=149).
    let cb = Config {
        tcp_invalid_ratelimit_ms: 0,
        tcp_challenge_ack_limit: 100,
        ..Config::default()
    };
    let mut p = Pair::with(Config::default(), cb);
    let (c, s, _) = p.connected(false);
    let mut sent_per_second = Vec::new();
    for _ in 0..3 {
        let before = p.b.counters().challenge_ack;
        // 1000 in-window RSTs within 0.1 s, then wait out the second.
        let start = p.now;
        for i in 0..1000u32 {
            let b = p.b.info(s).unwrap();
            inject(
                &mut p,
                c,
                TcpFlags::RST,
                b.rcv_nxt + 1 + i,
                SeqNumber(0),
                &[],
            );
            if i % 100 == 99 {
                p.run_for(Duration::from_millis(10));
            }
        }
        let second = Duration::from_secs(1) - (p.now - start);
        p.run_for(second);
        sent_per_second.push(p.b.counters().challenge_ack - before);
    }
    let k = p.b.counters();
    eprintln!(
        "host-wide challenge ACK limit 100/s: sent {sent_per_second:?} in three seconds of \
         1000 in-window RSTs each; SynqChallengeACKLimited {}",
        k.challenge_ack_limited
    );
    assert!(
        sent_per_second.iter().all(|&n| (50..=149).contains(&n)),
        "{sent_per_second:?}"
    );
    assert_eq!(k.challenge_ack + k.challenge_ack_limited, 3000);
    assert_eq!(p.b.state(s), Some(State::Established));
}
