//! The impaired link end to end in a few seconds: the kernel sends 200 kB across it in
//! namespaces this test creates. Needs root, /dev/net/tun, `ip` and python3, and prints SKIP
//! otherwise. The benchmark (`benches/kernel_lossy.rs`) is the long version.

use std::io::Write;
use std::time::Duration;
use synq_lossy::{kernel, Fate, Impairment, LossyLink, Roller};
use synq_tun::{link_exists, netns_exists};

/// Shown by a plain `cargo test` (libtest captures `println!`, not the stderr handle).
fn skip(test: &str) -> bool {
    match kernel::unavailable() {
        Some(why) => {
            let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
            true
        }
        None => false,
    }
}

fn impairment() -> Impairment {
    Impairment {
        loss: 0.02,
        reorder: 0.03,
        duplicate: 0.03,
        reorder_delay: Duration::from_micros(200),
        seed: 2,
    }
}

/// 200 kB is at least 137 full segments from A to B; seed 2's first 100 draws that way
/// hold every kind of event, so the transfer below meets all three whatever the
/// kernel's packet order.
#[test]
fn seed_two_draws_every_kind_early() {
    let mut r = Roller::new(impairment(), 0);
    let fates: Vec<Fate> = (0..100).map(|_| r.roll()).collect();
    assert!(fates.contains(&Fate::Lost));
    assert!(fates
        .iter()
        .any(|f| matches!(f, Fate::Pass { held: true, .. })));
    assert!(fates
        .iter()
        .any(|f| matches!(f, Fate::Pass { copies: 2, .. })));
}

#[test]
fn kernel_transfer_crosses_the_impaired_link() {
    let test = "kernel_transfer_crosses_the_impaired_link";
    if skip(test) {
        return;
    }
    let link = LossyLink::create("sqls", impairment(), Duration::from_secs(30)).unwrap();
    let names = [link.a().name().to_string(), link.b().name().to_string()];
    let tuns = link.tun_names().map(str::to_string);
    let run = kernel::transfer(&link, 200_000, 2, Duration::from_secs(8)).unwrap();
    let stats = link.stop().unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {:?} s, forwarder {stats:?}",
        run.secs
    );
    assert!(run.intact && run.error.is_none(), "{run:?}");
    assert!(run.secs.is_some(), "not done in 8 s: {run:?}");
    let t = stats.a_to_b;
    assert!(
        t.lost > 0 && t.reordered > 0 && t.duplicated > 0,
        "{stats:?}"
    );
    assert!(!stats.expired);
    // The sender counted its recovery.
    assert!(run.counters["TcpRetransSegs"] > 0, "{:?}", run.counters);
    for ns in &names {
        assert!(!netns_exists(ns), "namespace {ns} left behind");
    }
    for dev in &tuns {
        assert!(!link_exists(dev), "device {dev} left behind");
    }
}

#[test]
fn a_panic_still_removes_namespaces_and_devices() {
    let test = "a_panic_still_removes_namespaces_and_devices";
    if skip(test) {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::panic::catch_unwind(move || {
        let link = LossyLink::create("sqlp", Impairment::none(), Duration::from_secs(30)).unwrap();
        let tuns = link.tun_names().map(str::to_string);
        tx.send((
            [link.a().name().to_string(), link.b().name().to_string()],
            tuns,
        ))
        .unwrap();
        panic!("on purpose, with the link up");
    });
    assert!(r.is_err());
    let (names, tuns) = rx.recv().unwrap();
    for ns in &names {
        assert!(!netns_exists(ns), "namespace {ns} left behind");
    }
    for dev in &tuns {
        assert!(!link_exists(dev), "device {dev} left behind");
    }
}
