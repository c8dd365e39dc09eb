//! Loss recovery in virtual time: a 4 MB transfer over 100 µs of RTT at each loss level of
//! issue 9, across seeds, per congestion control. Prints how many arrived within 3600
//! virtual seconds and the median, mean and worst virtual time. Figures are reported, never
//! asserted (the tests check that every transfer arrives).
//!
//! `cargo bench -p synq-sim --bench recovery` (`SYNQ_SEEDS=N`, default 100;
//! `SYNQ_CC=cubic,reno`).

use synq_core::{Config, Duration};
use synq_sim::scenario::{transfer, TransferParams};

fn main() {
    let seeds: u64 = std::env::var("SYNQ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let ccs = std::env::var("SYNQ_CC").unwrap_or_else(|_| "cubic".into());
    let grid = [
        (0.01, 0.02, 0.01),
        (0.05, 0.02, 0.01),
        (0.12, 0.05, 0.03),
        (0.20, 0.10, 0.05),
        (0.25, 0.10, 0.05),
    ];
    println!("| cc | loss / reorder / dup | arrived | median s | mean s | worst s | RTOs (mean) |");
    println!("|---|---|---|---|---|---|---|");
    for cc in ccs.split(',') {
        let mut config = Config::default();
        if config.set("net.ipv4.tcp_congestion_control", cc).is_err() {
            eprintln!("no congestion control {cc:?}");
            std::process::exit(2);
        }
        for (loss, reorder, duplicate) in grid {
            let mut secs = Vec::new();
            let mut arrived = 0;
            let mut rtos = 0u64;
            for seed in 1..=seeds {
                let r = transfer(&TransferParams {
                    bytes: 4_000_000,
                    loss,
                    reorder,
                    duplicate,
                    rtt: Duration::from_micros(100),
                    seed,
                    config: config.clone(),
                    time_limit: Duration::from_secs(3600),
                    ..TransferParams::default()
                })
                .expect("valid link");
                arrived += u32::from(r.intact);
                secs.push(r.virtual_secs);
                rtos += r
                    .sender_counters
                    .get("TcpExtTCPTimeouts")
                    .copied()
                    .unwrap_or(0);
            }
            secs.sort_by(f64::total_cmp);
            let n = secs.len();
            let median = (secs[(n - 1) / 2] + secs[n / 2]) / 2.0;
            let mean = secs.iter().sum::<f64>() / n as f64;
            println!(
                "| {cc} | {:.0} % / {:.0} % / {:.0} % | {arrived} / {n} | {median:.3} | {mean:.3} | {:.3} | {:.1} |",
                loss * 100.0,
                reorder * 100.0,
                duplicate * 100.0,
                secs[n - 1],
                rtos as f64 / n as f64
            );
        }
    }
}
