//! `synq`: the command line of the synq TCP stack (see spec/cli.md for the contract).

mod serve;
mod stat;

use clap::{Args, Parser, Subcommand};
use serve::Fail;
use std::process::ExitCode;
use synq_core::{Config, Duration, Model};
use synq_sim::scenario::{
    overflow, synflood, transfer, BacklogParams, BacklogReport, OverflowParams, SynfloodParams,
    TransferParams, PORT, SERVER_ADDR,
};

#[derive(Parser)]
#[command(
    name = "synq",
    version,
    about = "A userspace TCP/IP stack built around the listen() backlog"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an experiment in the deterministic simulator.
    #[command(subcommand)]
    Sim(SimCmd),
    /// Print sysctls (Linux names) with their values after --sysctl / --sysctl-file.
    Sysctl {
        #[command(flatten)]
        common: StackArgs,
        /// Only these names (default: all).
        names: Vec<String>,
    },
    /// Serve real traffic: a synq listener on a new TUN device (needs root).
    Serve(serve::ServeArgs),
    /// Show a running `synq serve`'s listeners, connections and counters.
    Stat(stat::StatArgs),
}

#[derive(Subcommand)]
enum SimCmd {
    /// One connection sends N pseudo-random bytes and closes; the peer reads to the end.
    Transfer(TransferArgs),
    /// C clients connect G ms apart to a listener that never accepts; report its queues.
    Overflow(OverflowArgs),
    /// N SYNs from spoofed sources hit a listener; nobody answers the SYN-ACKs.
    Synflood(SynfloodArgs),
    /// Every backlog model side by side: a burst of clients and a SYN flood.
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// listen() backlog of every server.
    #[arg(long, default_value_t = 5, allow_hyphen_values = true)]
    backlog: i32,
    /// Clients of the overflow run (1 ms apart).
    #[arg(long, default_value_t = 20)]
    clients: u32,
    /// SYNs of the flood run (all at time zero).
    #[arg(long, default_value_t = 100)]
    syns: u32,
    /// Report at this many virtual seconds.
    #[arg(long, default_value_t = 1.5, allow_negative_numbers = true)]
    duration: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: StackArgs,
}

/// Flags every stack-running command takes.
#[derive(Args, Clone, Debug)]
pub(crate) struct StackArgs {
    /// Set a sysctl, Linux name: --sysctl net.ipv4.tcp_syncookies=2 (repeatable).
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    sysctl: Vec<String>,
    /// Apply a file in sysctl.conf syntax before the --sysctl flags.
    #[arg(long = "sysctl-file", value_name = "PATH")]
    sysctl_file: Option<std::path::PathBuf>,
    /// Start from this host's own values in /proc/sys (names it lacks keep our defaults).
    #[arg(long = "sysctl-from-host")]
    from_host: bool,
    /// Backlog model: linux, linux-4.10, bsd or bsd-exact.
    #[arg(long, value_name = "M")]
    model: Option<String>,
}

/// Flags of both backlog scenarios.
#[derive(Args, Debug)]
struct BacklogArgs {
    /// listen() backlog (negative and huge values are clamped as the model does).
    #[arg(long, allow_hyphen_values = true)]
    backlog: i32,
    /// Report the state at this many virtual seconds.
    #[arg(long, default_value_t = 1.5, allow_negative_numbers = true)]
    duration: f64,
    /// Round-trip propagation delay in microseconds.
    #[arg(long = "rtt-us", default_value_t = 100)]
    rtt_us: u64,
    /// TCP_DEFER_ACCEPT seconds on the listener (0: off).
    #[arg(long = "defer-accept", default_value_t = 0)]
    defer_accept: u32,
    /// Seed of every random choice: same seed, same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: StackArgs,
}

#[derive(Args, Debug)]
struct OverflowArgs {
    /// Client hosts, each connecting once.
    #[arg(long)]
    clients: u32,
    /// Milliseconds between successive connects.
    #[arg(long = "gap-ms", default_value_t = 1.0, allow_negative_numbers = true)]
    gap_ms: f64,
    /// After the report, drain the accept queue and report how many accept() returned.
    #[arg(long = "accept-after")]
    accept_after: bool,
    #[command(flatten)]
    b: BacklogArgs,
}

#[derive(Args, Debug)]
struct SynfloodArgs {
    /// SYNs to send, each from its own spoofed address and port.
    #[arg(long)]
    syns: u32,
    /// SYNs per second (default: all at time zero).
    #[arg(long, allow_negative_numbers = true)]
    rate: Option<f64>,
    #[command(flatten)]
    b: BacklogArgs,
}

#[derive(Args, Debug)]
struct TransferArgs {
    /// Bytes to send.
    #[arg(long, default_value_t = 1_000_000)]
    bytes: u64,
    /// Packet loss probability per packet, each direction (0..=1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probability a packet is held back one RTT so later ones overtake it (0..=1).
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Probability a packet is delivered twice (0..=1).
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Round-trip propagation delay in microseconds.
    #[arg(long = "rtt-us", default_value_t = 100)]
    rtt_us: u64,
    /// Link rate in bits per second (default: unlimited).
    #[arg(long)]
    bandwidth: Option<u64>,
    /// Drop-tail queue in packets in front of a rate-limited link.
    #[arg(long, default_value_t = 1000)]
    queue: usize,
    /// Give up after this many virtual seconds.
    #[arg(long = "time-limit", default_value_t = 3600)]
    time_limit: u64,
    /// Seed of every random choice: same seed, same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run over IPv6 (2001:db8::1 to 2001:db8::2) instead of IPv4.
    #[arg(long)]
    ipv6: bool,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: StackArgs,
}

/// Bad input: one line, exit status 2.
pub(crate) struct Usage(pub(crate) String);

pub(crate) fn config(args: &StackArgs) -> Result<Config, Usage> {
    let mut c = Config::default();
    if args.from_host {
        host_sysctls(&mut c)?;
    }
    if let Some(path) = &args.sysctl_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
        c.apply_conf(&text)
            .map_err(|e| Usage(format!("{}: {e}", path.display())))?;
    }
    for a in &args.sysctl {
        c.set_assignment(a)
            .map_err(|e| Usage(format!("--sysctl {a}: {e}")))?;
    }
    if let Some(m) = &args.model {
        c.model = m
            .parse()
            .map_err(|why| Usage(format!("--model {m:?}: {why}")))?;
    }
    Ok(c)
}

/// Import every sysctl we know from /proc/sys (Linux writes tabs between fields).
fn host_sysctls(c: &mut Config) -> Result<(), Usage> {
    for name in Config::names() {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        c.set(name, text.trim())
            .map_err(|e| Usage(format!("{path}: {e}")))?;
    }
    Ok(())
}

/// `v` must be a number in `lo..=hi`.
fn within(flag: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<f64, Usage> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Usage(format!(
            "--{flag} {v}: expected {unit} between {lo} and {hi}"
        )))
    }
}

fn backlog_params(a: &BacklogArgs) -> Result<BacklogParams, Usage> {
    within("duration", a.duration, 0.0, 1e6, "seconds")?;
    Ok(BacklogParams {
        backlog: a.backlog,
        duration: Duration::from_micros((a.duration * 1e6).round() as u64),
        rtt: Duration::from_micros(a.rtt_us),
        config: config(&a.common)?,
        seed: a.seed,
        defer_accept: a.defer_accept,
    })
}

fn print_backlog(scenario: &str, a: &BacklogArgs, model: Model, r: &BacklogReport, overflow: bool) {
    if a.json {
        let counters: serde_json::Map<String, serde_json::Value> = r
            .counters
            .iter()
            .map(|&(k, v)| (k.to_string(), v.into()))
            .collect();
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
        println!("{v}");
        return;
    }
    println!(
        "{scenario}: model {model}, backlog {}, {} s, seed {}",
        a.backlog, a.duration, a.seed
    );
    println!("State   Recv-Q  Send-Q  SYN-RECV  Local Address:Port");
    println!(
        "LISTEN  {:<6}  {:<6}  {:<8}  {}:{}",
        r.listener.recv_q, r.listener.send_q, r.listener.syn_recv, SERVER_ADDR, PORT
    );
    if overflow {
        println!(
            "clients: {} established, {} syn-sent, {} failed; accepted after: {}",
            r.clients.established, r.clients.syn_sent, r.clients.failed, r.accepted_after
        );
    }
    println!("SYN-ACKs sent: {}", r.synacks_sent);
    println!("#kernel-style counters (nstat -az, non-zero)");
    for &(k, v) in &r.counters {
        if v != 0 {
            println!("{k:<32} {v}");
        }
    }
}

fn run_overflow(a: &OverflowArgs) -> Result<(), Usage> {
    within("gap-ms", a.gap_ms, 0.0, 1e6, "milliseconds")?;
    if a.clients > 200_000 {
        return Err(Usage(format!("--clients {}: at most 200000", a.clients)));
    }
    let common = backlog_params(&a.b)?;
    let model = common.config.model;
    let p = OverflowParams {
        common,
        clients: a.clients,
        gap: Duration::from_micros((a.gap_ms * 1000.0).round() as u64),
        accept_after: a.accept_after,
    };
    let r = overflow(&p).map_err(|e| Usage(e.to_string()))?;
    print_backlog("overflow", &a.b, model, &r, true);
    Ok(())
}

fn run_compare(a: &CompareArgs) -> Result<(), Usage> {
    let b = BacklogArgs {
        backlog: a.backlog,
        duration: a.duration,
        rtt_us: 100,
        defer_accept: 0,
        seed: a.seed,
        json: a.json,
        common: a.common.clone(),
    };
    let base = backlog_params(&b)?;
    if a.common.model.is_some() {
        return Err(Usage("--model: compare runs every model".into()));
    }
    let mut runs = Vec::new();
    for model in Model::ALL {
        let mut common = base.clone();
        common.config.model = model;
        let o = overflow(&OverflowParams {
            common: common.clone(),
            clients: a.clients,
            gap: Duration::from_millis(1),
            accept_after: false,
        })
        .map_err(|e| Usage(e.to_string()))?;
        let f = synflood(&SynfloodParams {
            common,
            syns: a.syns,
            rate: None,
        })
        .map_err(|e| Usage(e.to_string()))?;
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
        println!("{}", serde_json::json!({"scenario": "compare", "runs": v}));
        return Ok(());
    }
    println!(
        "backlog {} at {} s: {} clients 1 ms apart (overflow), {} spoofed SYNs at t=0 (synflood)",
        a.backlog, a.duration, a.clients, a.syns
    );
    println!(
        "{:<11} | {:<38} | {:<35}",
        "", "overflow: clients / listener", "synflood: listener / server"
    );
    println!(
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
    );
    for (m, o, f) in &runs {
        println!(
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
        );
    }
    Ok(())
}

fn run_synflood(a: &SynfloodArgs) -> Result<(), Usage> {
    if let Some(r) = a.rate {
        if within("rate", r, 0.0, 1e9, "SYNs per second")? == 0.0 {
            return Err(Usage(
                "--rate 0: expected more than 0 SYNs per second".into(),
            ));
        }
    }
    if a.syns > 10_000_000 {
        return Err(Usage(format!("--syns {}: at most 10000000", a.syns)));
    }
    let common = backlog_params(&a.b)?;
    let model = common.config.model;
    let p = SynfloodParams {
        common,
        syns: a.syns,
        rate: a.rate,
    };
    let r = synflood(&p).map_err(|e| Usage(e.to_string()))?;
    print_backlog("synflood", &a.b, model, &r, false);
    Ok(())
}

fn prob(name: &str, p: f64) -> Result<f64, Usage> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(Usage(format!(
            "--{name} {p}: expected a probability between 0 and 1"
        )))
    }
}

fn run_transfer(a: &TransferArgs) -> Result<(), Usage> {
    if a.bandwidth == Some(0) {
        return Err(Usage(
            "--bandwidth 0: expected a positive rate in bits/s".into(),
        ));
    }
    if a.queue == 0 {
        return Err(Usage("--queue 0: expected at least 1".into()));
    }
    let p = TransferParams {
        bytes: a.bytes,
        loss: prob("loss", a.loss)?,
        reorder: prob("reorder", a.reorder)?,
        duplicate: prob("duplicate", a.duplicate)?,
        rtt: Duration::from_micros(a.rtt_us),
        bandwidth_bps: a.bandwidth,
        queue_limit: a.queue,
        seed: a.seed,
        config: config(&a.common)?,
        time_limit: Duration::from_secs(a.time_limit),
        ipv6: a.ipv6,
    };
    let start = std::time::Instant::now();
    let r = transfer(&p).map_err(|e| Usage(e.to_string()))?;
    let wall = start.elapsed().as_secs_f64();
    if a.json {
        let mut v = serde_json::to_value(&r).expect("report serialises");
        v["wall_secs"] = serde_json::json!(wall);
        println!("{v}");
    } else {
        println!(
            "transfer: {} bytes over {}, loss {}%, reorder {}%, duplicate {}%, rtt {} us, seed {}",
            a.bytes,
            if a.ipv6 { "IPv6" } else { "IPv4" },
            a.loss * 100.0,
            a.reorder * 100.0,
            a.duplicate * 100.0,
            a.rtt_us,
            a.seed
        );
        let rows: [(&str, String); 9] = [
            ("bytes sent", r.bytes_sent.to_string()),
            ("bytes received", r.bytes_received.to_string()),
            ("intact", if r.intact { "yes".into() } else { "NO".into() }),
            ("retransmits", r.retransmits.to_string()),
            ("rto timeouts", r.timeouts.to_string()),
            ("fast retransmits", r.fast_retransmits.to_string()),
            (
                "packets (lost/dup)",
                format!(
                    "{} ({}/{})",
                    r.packets_sent, r.packets_lost, r.packets_duplicated
                ),
            ),
            ("virtual time", format!("{:.6} s", r.virtual_secs)),
            ("wall time", format!("{wall:.3} s")),
        ];
        for (k, v) in rows {
            println!("  {k:<20} {v}");
        }
    }
    Ok(())
}

fn run_sysctl(common: &StackArgs, names: &[String]) -> Result<(), Usage> {
    let c = config(common)?;
    if names.is_empty() {
        print!("{c}");
        return Ok(());
    }
    for n in names {
        let v = c.get(n).map_err(|e| Usage(e.to_string()))?;
        println!("{n} = {v}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One line, as for every other bad input: clap's first line, less its prefix.
            let text = e.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            eprintln!("synq: {}", msg.join(" "));
            return ExitCode::from(2);
        }
    };
    let r = match &cli.cmd {
        Cmd::Sim(SimCmd::Transfer(a)) => run_transfer(a).map_err(Fail::from),
        Cmd::Sim(SimCmd::Overflow(a)) => run_overflow(a).map_err(Fail::from),
        Cmd::Sim(SimCmd::Synflood(a)) => run_synflood(a).map_err(Fail::from),
        Cmd::Sim(SimCmd::Compare(a)) => run_compare(a).map_err(Fail::from),
        Cmd::Sysctl { common, names } => run_sysctl(common, names).map_err(Fail::from),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Stat(a) => stat::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(msg)) => {
            eprintln!("synq: error: {msg}");
            ExitCode::from(2)
        }
        Err(Fail::Run(msg)) => {
            eprintln!("synq: error: {msg}");
            ExitCode::from(1)
        }
    }
}
