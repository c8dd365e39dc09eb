//! The long soak (see `synq_sim::scenario::soak`): by default two hours of virtual time and
//! 2000 connections of 20 kB through 2 % loss, 2 % reordering, 1 % duplication, 0.5 %
//! corruption and a 10 s outage every 10 minutes. Prints the report; `SYNQ_SOAK_CONNS` and
//! `SYNQ_SOAK_HOURS` scale it. Figures are reported, the checks are the test's
//! (`tests/soak.rs`), repeated here on the long run.

use synq_core::Duration;
use synq_sim::scenario::{soak, SoakParams};

fn main() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut p = SoakParams::default();
    if let Some(n) = env("SYNQ_SOAK_CONNS") {
        p.connections = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(h) = env("SYNQ_SOAK_HOURS") {
        p.span = Duration::from_secs(h.saturating_mul(3600));
    }
    let r = soak(&p).expect("soak runs");
    println!(
        "soak: {} connections of {} bytes over {} s (+{} s to settle), seed {}",
        p.connections,
        p.bytes,
        p.span.total_micros() / 1_000_000,
        p.settle.total_micros() / 1_000_000,
        p.seed
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&r).expect("report serializes")
    );
    let errors: u64 = r.client_errors.values().sum();
    let ok = r.bad_bytes == 0
        && r.short_streams == 0
        && r.intact + errors >= r.opened
        && r.checksum_drops == r.corrupted
        && r.live_at_end == 0;
    println!("checks: {}", if ok { "all hold" } else { "FAILED" });
    if !ok {
        std::process::exit(1);
    }
}
