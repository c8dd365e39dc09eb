//! `synq sim overflow` and `synq sim synflood` (model `linux`) against the real kernel on
//! the quick grid (backlog, somaxconn, tcp_max_syn_backlog, tcp_syncookies,
//! tcp_abort_on_overflow, tcp_synack_retries, report times), through the library as
//! `synq verify kernel` runs it. Any difference in the listener's Recv-Q/Send-Q/SYN-RECV,
//! client states, SYN-ACKs sent or the listen counters fails the test. Without root, the
//! tools or /dev/net/tun the test prints why and skips.

use std::io::Write;
use synq_verify::{kernel, verify, Grid};

#[test]
fn backlog_grid_matches_the_kernel() {
    if let Some(why) = kernel::unavailable() {
        // libtest captures `println!` and `eprintln!`, not writes to the stderr handle.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP backlog_grid_matches_the_kernel: {why}"
        );
        return;
    }
    let verdicts = verify(&Grid::Quick.points(1), 1, &mut |_, _| {}).expect("kernel side runs");
    assert_eq!(verdicts.len(), 21);
    let mut bad = Vec::new();
    for v in &verdicts {
        let summary: Vec<String> = match &v.synq {
            Ok(f) => f
                .iter()
                .filter(|r| r.1 != 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect(),
            Err(e) => vec![e.clone()],
        };
        println!(
            "{}: {}\n    {}",
            v.point,
            if v.same() { "same" } else { "DIFFERENT" },
            summary.join(" ")
        );
        if let Some(why) = v.failure() {
            bad.push(format!("{}: {why}", v.point));
        }
        for d in v.differences() {
            bad.push(format!(
                "{}: {} kernel {} synq {}",
                v.point, d.name, d.kernel, d.synq
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "synq differs from the kernel:\n{}",
        bad.join("\n")
    );
}
