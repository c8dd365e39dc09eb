//! Attacks in the simulator, each with its figures (printed; docs/SECURITY.md quotes them):
//! a spoofed SYN flood at a million SYNs a second against a Linux listener with
//! `tcp_syncookies` 0, 1 and 2 while legitimate clients connect, and a flood of forged
//! ACKs guessing SYN cookies. A counting allocator gives the whole simulation's peak heap.

use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::sync::Mutex;
use synq_core::Model;
use synq_sim::scenario::workload::{AttackKind, AttackerSpec};
use synq_sim::scenario::{builtin, run, RunParams, RunReport, Scenario};

#[global_allocator]
static HEAP: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The tests of this file measure the heap one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Run `s` on the Linux model and give its report and the heap it added at its peak.
fn measured(s: Scenario, sysctls: &[(&str, &str)]) -> (RunReport, usize) {
    HEAP.reset_peak_memory();
    let r = run(&RunParams {
        scenario: s,
        model: Some(Model::Linux),
        sysctls: sysctls
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        seed: 1,
        timeline: false,
    })
    .unwrap();
    (r, HEAP.get_peak_memory())
}

/// 1000 clients (Poisson, 1000 a second) fetch 10 kB over a 1 ms round trip; with `flood`,
/// a million spoofed SYNs a second for 1.2 s from t = 0.
fn storm(flood: bool) -> Scenario {
    let mut s = builtin("flood-with-legit").unwrap();
    s.duration_s = 3.0;
    s.clients[0].count = 1000;
    s.clients[0].rate_per_s = Some(1000.0);
    s.attackers[0].rate_per_s = Some(1_000_000.0);
    s.attackers[0].count = 1_200_000;
    if !flood {
        s.attackers.clear();
    }
    s
}

#[test]
fn a_million_spoofed_syns_a_second_against_cookies_0_1_2() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (calm, calm_heap) = measured(storm(false), &[]);
    let c = calm.legit.unwrap();
    eprintln!(
        "no flood: {}/{} completed, connect p50/p99/max {}/{}/{} ms, peak heap {} KB",
        c.completed,
        c.attempted,
        c.connect_ms.p50,
        c.connect_ms.p99,
        c.connect_ms.max,
        calm_heap / 1024
    );
    assert_eq!(c.completed, 1000, "{c:?}");
    for cookies in ["0", "1", "2"] {
        let (r, heap) = measured(storm(true), &[("net.ipv4.tcp_syncookies", cookies)]);
        let l = r.legit.unwrap();
        let success = l.completed as f64 / l.attempted as f64;
        eprintln!(
            "tcp_syncookies={cookies}: {} spoofed SYNs; legitimate {}/{} completed ({:.1} %), \
             {} gave up; connect p50/p99/max {}/{}/{} ms; peak SYN-RECV {} (limit {}); \
             SYNs dropped {}; cookies sent {}; peak heap {} KB",
            r.attack_packets,
            l.completed,
            l.attempted,
            100.0 * success,
            l.gave_up,
            l.connect_ms.p50,
            l.connect_ms.p99,
            l.connect_ms.max,
            r.peak.syn_recv,
            r.limits.syn,
            r.drops.total,
            r.cookies.sent,
            heap / 1024
        );
        assert_eq!(r.attack_packets, 1_200_000);
        // Memory follows the configured limits, not the flood: the SYN queue never passes
        // its bound, whatever the cookie setting.
        assert!(u64::from(r.peak.syn_recv) <= r.limits.syn, "{:?}", r.peak);
        match cookies {
            "0" => {
                // Without cookies the flood owns the SYN queue: legitimate SYNs are
                // dropped and retried a second later (or never get in).
                assert!(r.drops.syn_queue_full > 100_000, "{:?}", r.drops);
                assert!(l.connect_ms.p99 >= 1000.0 || success < 0.999, "{l:?}");
            }
            _ => {
                // The targets: 99.9 % success, p99 within twice the unloaded figure.
                assert!(success >= 0.999, "{l:?}");
                assert!(l.connect_ms.p99 <= 2.0 * c.connect_ms.p99, "{l:?} vs {c:?}");
                assert!(r.cookies.sent > 1_000_000, "{:?}", r.cookies);
            }
        }
    }
}

#[test]
fn forged_acks_guess_cookies_at_the_designs_odds() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Linux's cookie: 8 of the 2^32 acknowledgment numbers are valid for a given SYN (two
    // minute counters, four MSS indices): one guess in 2^29 at best.
    let n = 2_000_000u32;
    let mut s = builtin("synflood").unwrap();
    s.attackers.push(AttackerSpec {
        kind: AttackKind::ForgedAck,
        count: n,
        rate_per_s: Some(1_000_000.0),
        start_ms: 1.0,
        port: None,
    });
    s.duration_s = 3.0;
    let (r, heap) = measured(s, &[("net.ipv4.tcp_syncookies", "2")]);
    let expected = f64::from(n) / 2f64.powi(29);
    eprintln!(
        "forged ACKs: {n} guesses, {} accepted ({expected:.4} expected at 2^-29 a guess), \
         {} counted as failed cookies; server connections opened {}; peak heap {} KB",
        r.cookies.accepted,
        r.cookies.failed,
        r.counters
            .iter()
            .find(|(k, _)| *k == "TcpPassiveOpens")
            .map_or(0, |c| c.1),
        heap / 1024
    );
    assert_eq!(r.cookies.failed, u64::from(n));
    assert_eq!(r.cookies.accepted, 0);
}
