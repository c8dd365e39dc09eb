//! Loss recovery, Linux against synq (issue 9): the same transfer through the kernel over an
//! impaired link built here and through `synq sim transfer` at the RTT that link shows.
//!
//! `cargo bench -p synq-lossy --bench kernel_lossy` as root (root, /dev/net/tun, `ip`,
//! python3; it prints SKIP otherwise). Knobs, all optional:
//! - `SYNQ_LOSSY_ROWS`: `loss/reorder/dup` in percent, comma-separated (issue 9's five rows);
//! - `SYNQ_LOSSY_SEEDS`: seeds per row, 1..=N (3); each row reports medians;
//! - `SYNQ_LOSSY_BYTES`: bytes per transfer (4000000);
//! - `SYNQ_LOSSY_LIMIT_SECS`: real seconds a kernel transfer gets (300);
//! - `SYNQ_LOSSY_RTT_US`: skip the RTT measurement and use this;
//! - `SYNQ_BIN`: the `synq` binary (default: `cargo build --release -p synq-cli`'s).
//!
//! Every kernel run gets fresh namespaces and a fresh forwarder seeded with the run's seed;
//! synq gets the same seed (its links roll their own generator, so the two see the same rates,
//! not the same packets). Figures are printed, never asserted.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use synq_lossy::report::{self, Row, RowResult, Setup};
use synq_lossy::{kernel, synq, Impairment, LossyLink};

/// Connects timed for the path RTT: enough for a stable median on a busy 2-core machine.
const RTT_PROBES: usize = 51;
/// synq's virtual time limit, as `synq sim transfer`'s default.
const SYNQ_LIMIT_SECS: u64 = 3600;
/// Real time a synq run may take before it is killed.
const SYNQ_WALL: Duration = Duration::from_secs(600);
/// The forwarder outlives its transfer's limit by this much, then stops by itself.
const LINK_SLACK: Duration = Duration::from_secs(60);

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: not a valid value")),
        Err(_) => default,
    }
}

fn commit() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", dir])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!("commit {head}{}", if dirty { " (modified)" } else { "" })
}

/// The 1, 5 and 15 minute load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    if let Some(why) = kernel::unavailable() {
        println!("SKIP kernel_lossy: {why}");
        return;
    }
    let rows = Row::parse_list(&env("SYNQ_LOSSY_ROWS", report::DEFAULT_ROWS.to_string()))
        .unwrap_or_else(|e| panic!("SYNQ_LOSSY_ROWS: {e}"));
    let seeds: Vec<u64> = (1..=env("SYNQ_LOSSY_SEEDS", 3u64)).collect();
    let bytes: u64 = env("SYNQ_LOSSY_BYTES", 4_000_000);
    let limit_secs: u64 = env("SYNQ_LOSSY_LIMIT_SECS", 300);
    let limit = Duration::from_secs(limit_secs);
    let started = Instant::now();
    let load_at_start = load();
    let say = |msg: String| {
        let _ = writeln!(
            std::io::stderr(),
            "[{:7.1} s] {msg}",
            started.elapsed().as_secs_f64()
        );
    };

    let bin = synq::binary().expect("the synq binary");
    say(format!("synq binary {}", bin.display()));

    // The clean path: its RTT (synq's --rtt-us and the reorder delay) and the kernel's time
    // without impairment, which is the forwarder's floor.
    let clean = LossyLink::create("sqlc", Impairment::none(), limit + LINK_SLACK).expect("link");
    let tcp = kernel::tcp_settings(&clean).expect("sysctls");
    let rtt = kernel::measure_rtt(&clean, RTT_PROBES, Duration::from_secs(60)).expect("rtt");
    let rtt_us: u64 = env("SYNQ_LOSSY_RTT_US", rtt.median_us().round().max(1.0) as u64);
    say(format!(
        "RTT median {:.0} µs, min {:.0} µs ({} connects); using {rtt_us} µs",
        rtt.median_us(),
        rtt.min_us(),
        rtt.samples_us.len()
    ));
    let clean_run = kernel::transfer(&clean, bytes, 0, limit).expect("clean transfer");
    drop(clean);
    say(format!("clean path: {:?} s", clean_run.secs));

    let mut results = Vec::new();
    for row in &rows {
        let mut r = RowResult {
            row: *row,
            kernel: Vec::new(),
            synq: Vec::new(),
            synq_bytes_by_limit: Vec::new(),
        };
        for &seed in &seeds {
            let t = Instant::now();
            let imp = row.impairment(Duration::from_micros(rtt_us), seed);
            let k = LossyLink::create("sqlk", imp, limit + LINK_SLACK).and_then(|link| {
                let run = kernel::transfer(&link, bytes, seed, limit)?;
                link.stop()?;
                Ok(run)
            });
            say(format!(
                "{} seed {seed}: Linux {} ({:.1} s wall)",
                row.label(),
                match &k {
                    Ok(k) => format!("{:?} s, {} bytes", k.secs, k.bytes_received),
                    Err(e) => format!("failed: {e}"),
                },
                t.elapsed().as_secs_f64()
            ));
            r.kernel.push((seed, k.map_err(|e| e.to_string())));
        }
        // After the kernel runs, so the simulation's CPU does not slow them.
        for &seed in &seeds {
            let s = synq::transfer(&bin, *row, bytes, rtt_us, seed, SYNQ_LIMIT_SECS, SYNQ_WALL);
            say(format!(
                "{} seed {seed}: synq {}",
                row.label(),
                match &s {
                    Ok(s) => format!(
                        "{:.3} virtual s, intact {}, {:.2} s wall",
                        s.virtual_secs, s.intact, s.wall_secs
                    ),
                    Err(e) => format!("failed: {e}"),
                }
            ));
            r.synq.push((seed, s.map_err(|e| e.to_string())));
            // What synq moved in the kernel's limit, for rows neither side finishes.
            let by = synq::transfer(&bin, *row, bytes, rtt_us, seed, limit_secs, SYNQ_WALL);
            r.synq_bytes_by_limit
                .push(by.ok().map(|x| x.bytes_received));
        }
        results.push(r);
    }
    let setup = Setup {
        bytes,
        limit_secs,
        synq_limit_secs: SYNQ_LIMIT_SECS,
        rtt,
        rtt_us,
        clean: Some(clean_run),
        tcp,
        commit: commit(),
        seeds,
        load: [load_at_start, load()],
    };
    let mut out = std::io::stdout().lock();
    report::render(&mut out, &setup, &results).expect("stdout");
    say("done".into());
}
