//! The scenario-file parser and validator (`Scenario::from_toml`) on arbitrary text: it
//! returns errors, never panics. A scenario it accepts is cut down to a few seconds, a
//! handful of clients and attack packets and small messages (every cut keeps the values in
//! range) and run: the run may refuse it with an error, but must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synq_sim::scenario::{run, RunParams, Scenario};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(mut sc) = Scenario::from_toml(text) else {
        return;
    };
    shrink(&mut sc);
    sc.validate()
        .expect("a cut-down valid scenario stays valid");
    let _ = run(&RunParams {
        scenario: sc,
        model: None,
        sysctls: Vec::new(),
        seed: 1,
        timeline: true,
    });
});

/// Bound the run's cost: at most 2 virtual seconds, 4 populations of at most 4 clients,
/// 2 attackers of at most 64 packets, messages of at most 16 kB.
fn shrink(sc: &mut Scenario) {
    sc.duration_s = sc.duration_s.min(2.0);
    sc.clients.truncate(4);
    for c in &mut sc.clients {
        c.count = c.count.min(4);
        c.request_bytes = c.request_bytes.min(16 << 10);
        c.response_bytes = c.response_bytes.min(16 << 10);
    }
    sc.attackers.truncate(2);
    for a in &mut sc.attackers {
        a.count = a.count.min(64);
    }
}
