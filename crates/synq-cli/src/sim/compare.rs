//! `synq sim compare`: every backlog model side by side. Without a scenario, the classic
//! pair: a burst of clients (`overflow`) and a SYN flood (`synflood`); with one, that
//! scenario once per model (see `scenario.rs`).

use super::scenario::{execute, load, parse_models, simulate, write_csv, ScenarioOut};
use super::{at_most, seconds, MAX_CLIENTS, MAX_SYNS};
use crate::error::Result;
use crate::output;
use crate::sysctl::sysctl_config;
use clap::Args;
use synq_core::Duration;
use synq_sim::scenario::workload::AttackerSpec;
use synq_sim::scenario::{
    builtin, overflow, synflood, BacklogParams, BacklogReport, OverflowParams, Scenario,
    SynfloodParams,
};

/// Its own flags: no --model, since it runs every model (or those --models names).
#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// A built-in scenario (overflow, synflood, burst, slow-accept, flood-with-legit) or a
    /// scenario file (TOML); without one, the classic overflow and synflood pair.
    #[arg(value_name = "SCENARIO|FILE")]
    scenario: Option<String>,
    /// Models to run, comma-separated (default: all).
    #[arg(long, value_name = "M,M,...")]
    models: Option<String>,
    /// listen() backlog of every server (classic pair only).
    #[arg(
        long,
        default_value_t = 5,
        allow_hyphen_values = true,
        conflicts_with = "scenario"
    )]
    backlog: i32,
    /// Clients of the overflow run, 1 ms apart (at most 200000; classic pair only).
    #[arg(
        long,
        default_value_t = 20,
        conflicts_with = "scenario",
        allow_negative_numbers = true
    )]
    clients: u32,
    /// SYNs of the flood run, all at time zero (at most 10000000; classic pair only).
    #[arg(
        long,
        default_value_t = 100,
        conflicts_with = "scenario",
        allow_negative_numbers = true
    )]
    syns: u32,
    /// Report at this many virtual seconds (at most 1000000; classic pair only).
    #[arg(
        long,
        default_value_t = 1.5,
        allow_negative_numbers = true,
        conflicts_with = "scenario"
    )]
    duration: f64,
    #[command(flatten)]
    out: ScenarioOut,
}

/// The classic pair as scenarios, with the flags' values.
fn classic_scenarios(a: &CompareArgs) -> Vec<Scenario> {
    let mut o = builtin("overflow").expect("built-in");
    o.listeners[0].backlog = a.backlog;
    o.clients[0].count = a.clients;
    o.duration_s = a.duration;
    o.description = format!(
        "{} clients connect 1 ms apart to a listener (backlog {}) that never accepts",
        a.clients, a.backlog
    );
    let mut f = builtin("synflood").expect("built-in");
    f.listeners[0].backlog = a.backlog;
    f.attackers[0] = AttackerSpec {
        count: a.syns,
        ..f.attackers[0].clone()
    };
    f.duration_s = a.duration;
    f.description = format!(
        "{} spoofed SYNs arrive at once at a listener with backlog {}",
        a.syns, a.backlog
    );
    for s in [&mut o, &mut f] {
        // A sample per millisecond up to 1 s, then 1000 samples.
        s.sample_ms = Some(a.duration.max(1.0).min(a.duration * 1000.0));
    }
    vec![o, f]
}

pub(crate) fn run(a: &CompareArgs) -> Result {
    let models = parse_models(a.models.as_deref())?;
    if let Some(what) = &a.scenario {
        return execute(&load(what)?, &models, &a.out, true);
    }
    at_most("clients", a.clients, MAX_CLIENTS, "")?;
    at_most("syns", a.syns, MAX_SYNS, "")?;
    let base = BacklogParams {
        backlog: a.backlog,
        duration: seconds("duration", a.duration)?,
        rtt: Duration::from_micros(100),
        config: sysctl_config(&a.out.sysctls)?,
        seed: a.out.seed,
        defer_accept: 0,
    };
    let o = &a.out;
    let mut full = None;
    if o.plot.is_some() || o.timeline.is_some() || o.pcap.is_some() || o.csv || o.json {
        // The same runs through the scenario engine (tests hold it equal to the classic
        // functions), for what only it gives: timelines, plots, captures, CSV rows, and
        // the JSON objects `sim run` prints.
        let reports = simulate(&classic_scenarios(a), &models, o)?;
        if o.csv {
            let all: Vec<_> = reports.into_iter().flatten().collect();
            return output::print(|w| write_csv(w, &all));
        }
        full = Some(reports);
    }
    if let (true, Some([over, flood])) = (o.json, full.as_deref()) {
        // The same runs give both: `runs`, the older summary, kept, and `models` as
        // spec/cli.md has it for `sim compare` (per model, what `sim run overflow` and
        // `sim run synflood` print).
        let mut runs = Vec::new();
        let mut by_model = serde_json::Map::new();
        for (m, (o, f)) in models.iter().zip(over.iter().zip(flood)) {
            runs.push(serde_json::json!({
                "model": m.name(),
                "overflow": {"listener": o.listener, "clients": o.clients,
                    "synacks_sent": o.synacks_sent,
                    "listen_drops": o.counter("TcpExtListenDrops")},
                "synflood": {"listener": f.listener, "synacks_sent": f.synacks_sent,
                    "syncookies_sent": f.counter("TcpExtSyncookiesSent"),
                    "listen_drops": f.counter("TcpExtListenDrops")},
            }));
            let pair = serde_json::json!({"overflow": o, "synflood": f});
            by_model.insert(m.name().to_string(), pair);
        }
        return output::json(&serde_json::json!({
            "scenario": "compare",
            "seed": a.out.seed,
            "runs": runs,
            "models": by_model,
        }));
    }
    let mut runs = Vec::new();
    for &model in &models {
        let mut common = base.clone();
        common.config.model = model;
        let o = overflow(&OverflowParams {
            common: common.clone(),
            clients: a.clients,
            gap: Duration::from_millis(1),
            accept_after: false,
        })?;
        let f = synflood(&SynfloodParams {
            common,
            syns: a.syns,
            rate: None,
        })?;
        runs.push((model, o, f));
    }
    let c = |r: &BacklogReport, n: &str| r.counter(n);
    output::print(|w| {
        writeln!(
            w,
            "backlog {} at {} s: {} clients 1 ms apart (overflow), {} spoofed SYNs at t=0 (synflood)",
            a.backlog, a.duration, a.clients, a.syns
        )?;
        writeln!(
            w,
            "{:<11} | {:<38} | synflood: listener / server",
            "", "overflow: clients / listener"
        )?;
        writeln!(
            w,
            "{:<11} | {:>6} {:>6} {:>6} {:>6} {:>8} | {:>8} {:>8} {:>8} {:>6}",
            "model",
            "estab",
            "synsnt",
            "Recv-Q",
            "Send-Q",
            "drops",
            "SYN-RECV",
            "SYN-ACKs",
            "cookies",
            "drops"
        )?;
        for (m, o, f) in &runs {
            writeln!(
                w,
                "{:<11} | {:>6} {:>6} {:>6} {:>6} {:>8} | {:>8} {:>8} {:>8} {:>6}",
                m.name(),
                o.clients.established,
                o.clients.syn_sent,
                o.listener.recv_q,
                o.listener.send_q,
                c(o, "TcpExtListenDrops"),
                f.listener.syn_recv,
                f.synacks_sent,
                c(f, "TcpExtSyncookiesSent"),
                c(f, "TcpExtListenDrops"),
            )?;
        }
        Ok(())
    })
}
