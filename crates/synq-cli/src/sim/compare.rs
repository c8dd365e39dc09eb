//! `synq sim compare`: every backlog model side by side, a burst of clients and a SYN flood.

use super::{at_most, seconds, MAX_CLIENTS, MAX_SYNS};
use crate::error::Result;
use crate::output;
use crate::sysctl::{sysctl_config, SysctlArgs};
use clap::Args;
use synq_core::{Duration, Model};
use synq_sim::scenario::{
    overflow, synflood, BacklogParams, BacklogReport, OverflowParams, SynfloodParams,
};

/// Its own flags: no --model, since it runs every model.
#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// listen() backlog of every server.
    #[arg(long, default_value_t = 5, allow_hyphen_values = true)]
    backlog: i32,
    /// Clients of the overflow run, 1 ms apart (at most 200000).
    #[arg(long, default_value_t = 20)]
    clients: u32,
    /// SYNs of the flood run, all at time zero (at most 10000000).
    #[arg(long, default_value_t = 100)]
    syns: u32,
    /// Report at this many virtual seconds (at most 1000000).
    #[arg(long, default_value_t = 1.5, allow_negative_numbers = true)]
    duration: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sysctls: SysctlArgs,
}

pub(crate) fn run(a: &CompareArgs) -> Result {
    at_most("clients", a.clients, MAX_CLIENTS, "")?;
    at_most("syns", a.syns, MAX_SYNS, "")?;
    let base = BacklogParams {
        backlog: a.backlog,
        duration: seconds("duration", a.duration)?,
        rtt: Duration::from_micros(100),
        config: sysctl_config(&a.sysctls)?,
        seed: a.seed,
        defer_accept: 0,
    };
    let mut runs = Vec::new();
    for model in Model::ALL {
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
    if a.json {
        let v: Vec<serde_json::Value> = runs
            .iter()
            .map(|(m, o, f)| {
                serde_json::json!({
                    "model": m.name(),
                    "overflow": {"listener": o.listener, "clients": o.clients,
                        "synacks_sent": o.synacks_sent,
                        "listen_drops": c(o, "TcpExtListenDrops")},
                    "synflood": {"listener": f.listener, "synacks_sent": f.synacks_sent,
                        "syncookies_sent": c(f, "TcpExtSyncookiesSent"),
                        "listen_drops": c(f, "TcpExtListenDrops")},
                })
            })
            .collect();
        return output::json(&serde_json::json!({"scenario": "compare", "runs": v}));
    }
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
