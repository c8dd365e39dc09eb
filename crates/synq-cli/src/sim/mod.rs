//! `synq sim ...`: experiments in the deterministic simulator, and the bounds every one of
//! their numeric flags is checked against (a run that fits them ends in reasonable time and
//! memory; one that does not is refused with exit status 2).

pub(crate) mod compare;
pub(crate) mod overflow;
pub(crate) mod plot;
pub(crate) mod scenario;
pub(crate) mod synflood;
pub(crate) mod transfer;

use crate::error::{Error, Result};
use crate::output::{counters_json, nonzero_counters};
use crate::sysctl::{config, StackArgs};
use clap::Args;
use std::fmt::Display;
use std::io::{self, Write};
use synq_core::{Duration, Model};
use synq_sim::scenario::{BacklogParams, BacklogReport, PORT, SERVER_ADDR};

/// Longest virtual time a run may cover (--duration, --time-limit), in seconds.
const MAX_SECS: f64 = 1e6;
/// Longest round trip (--rtt-us): 60 s.
const MAX_RTT_US: u64 = 60_000_000;
/// Most client hosts of an overflow run (each is a whole stack).
const MAX_CLIENTS: u32 = 200_000;
/// Most SYNs of a flood (about 0.6 s of wall time per million).
const MAX_SYNS: u32 = 10_000_000;

/// Flags of both backlog scenarios.
#[derive(Args, Debug)]
pub(crate) struct BacklogArgs {
    /// listen() backlog (negative and huge values are clamped as the model does).
    #[arg(long, allow_hyphen_values = true)]
    backlog: i32,
    /// Report the state at this many virtual seconds (at most 1000000).
    #[arg(long, default_value_t = 1.5, allow_hyphen_values = true)]
    duration: f64,
    /// Round-trip propagation delay in microseconds (at most 60000000).
    #[arg(long = "rtt-us", default_value_t = 100, allow_negative_numbers = true)]
    rtt_us: u64,
    /// TCP_DEFER_ACCEPT seconds on the listener (0: off).
    #[arg(
        long = "defer-accept",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    defer_accept: u32,
    /// Seed of every random choice: same seed, same output.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the server's packets to PATH (pcap, raw IP, virtual timestamps).
    #[arg(long, value_name = "PATH")]
    pcap: Option<std::path::PathBuf>,
    /// Also list the server's sockets as `ss -tan` does (SYN-RECV rows included); with
    /// --json, as the key `sockets`.
    #[arg(long)]
    ss: bool,
    #[command(flatten)]
    common: StackArgs,
}

/// `v` must be a number in `lo..=hi`.
fn within(flag: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<f64> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Error::usage(format!(
            "--{flag} {v}: expected {unit} between {lo} and {hi}"
        )))
    }
}

/// `v` must be at most `max` (`what` says what `max` is, when the number alone does not).
fn at_most<T: PartialOrd + Display>(flag: &str, v: T, max: T, what: &str) -> Result<T> {
    if v <= max {
        Ok(v)
    } else {
        Err(Error::usage(format!("--{flag} {v}: at most {max}{what}")))
    }
}

/// A probability flag.
fn prob(flag: &str, p: f64) -> Result<f64> {
    within(flag, p, 0.0, 1.0, "a probability")
}

/// A round trip in microseconds.
fn rtt(us: u64) -> Result<Duration> {
    at_most("rtt-us", us, MAX_RTT_US, " (60 s)").map(Duration::from_micros)
}

/// Seconds of virtual time.
fn seconds(flag: &str, secs: f64) -> Result<Duration> {
    within(flag, secs, 0.0, MAX_SECS, "seconds")?;
    Ok(Duration::from_micros((secs * 1e6).round() as u64))
}

fn backlog_params(a: &BacklogArgs) -> Result<BacklogParams> {
    Ok(BacklogParams {
        backlog: a.backlog,
        duration: seconds("duration", a.duration)?,
        rtt: rtt(a.rtt_us)?,
        config: config(&a.common)?,
        seed: a.seed,
        defer_accept: a.defer_accept,
    })
}

/// Both backlog scenarios' output: the JSON object of spec/cli.md, or an `ss -lnt`-style
/// line, the clients (overflow) and the non-zero counters.
fn print_backlog(scenario: &str, a: &BacklogArgs, model: Model, r: &BacklogReport) -> Result {
    let overflow = scenario == "overflow";
    if a.json {
        let counters = counters_json(r.counters.iter().copied());
        let mut v = serde_json::json!({
            "scenario": scenario,
            "model": model.name(),
            "listener": r.listener,
            "accepted_after": r.accepted_after,
            "synacks_sent": r.synacks_sent,
            "counters": counters,
        });
        if overflow {
            v["clients"] = serde_json::json!(r.clients);
        }
        if model.family() == synq_core::Family::FreeBsd {
            v["freebsd_counters"] = counters_json(r.freebsd_counters.iter().copied());
        }
        if a.ss {
            v["sockets"] = serde_json::json!(r.sockets);
        }
        return crate::output::json(&v);
    }
    crate::output::print(|w| render_backlog(w, scenario, a, model, r, overflow))
}

fn render_backlog(
    w: &mut dyn Write,
    scenario: &str,
    a: &BacklogArgs,
    model: Model,
    r: &BacklogReport,
    overflow: bool,
) -> io::Result<()> {
    writeln!(
        w,
        "{scenario}: model {model}, backlog {}, {} s, seed {}",
        a.backlog, a.duration, a.seed
    )?;
    writeln!(w, "State   Recv-Q  Send-Q  SYN-RECV  Local Address:Port")?;
    writeln!(
        w,
        "LISTEN  {:<6}  {:<6}  {:<8}  {}:{}",
        r.listener.recv_q, r.listener.send_q, r.listener.syn_recv, SERVER_ADDR, PORT
    )?;
    if a.ss {
        writeln!(w, "# ss -tan")?;
        writeln!(
            w,
            "{:<10} {:<6} {:<6} {:<22} Peer Address:Port",
            "State", "Recv-Q", "Send-Q", "Local Address:Port"
        )?;
        for s in &r.sockets {
            writeln!(
                w,
                "{:<10} {:<6} {:<6} {:<22} {}",
                crate::stat::ss_state(s.state),
                s.recv_q,
                s.send_q,
                s.local.to_string(),
                s.remote
            )?;
        }
    }
    if overflow {
        writeln!(
            w,
            "clients: {} established, {} syn-sent, {} failed; accepted after: {}",
            r.clients.established, r.clients.syn_sent, r.clients.failed, r.accepted_after
        )?;
    }
    writeln!(w, "SYN-ACKs sent: {}", r.synacks_sent)?;
    let title = "kernel-style counters (nstat -az, non-zero)";
    nonzero_counters(w, title, r.counters.iter().copied())?;
    if model.family() == synq_core::Family::FreeBsd {
        let title = "FreeBSD syncache counters (netstat -s -p tcp, struct tcpstat names)";
        nonzero_counters(w, title, r.freebsd_counters.iter().copied())?;
    }
    Ok(())
}
