//! `synq`: the command line of the synq TCP stack (see spec/cli.md for the contract).

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use synq_core::{Config, Duration};
use synq_sim::scenario::{transfer, TransferParams};

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
}

#[derive(Subcommand)]
enum SimCmd {
    /// One connection sends N pseudo-random bytes and closes; the peer reads to the end.
    Transfer(TransferArgs),
}

/// Flags every stack-running command takes.
#[derive(Args, Clone, Debug)]
struct StackArgs {
    /// Set a sysctl, Linux name: --sysctl net.ipv4.tcp_syncookies=2 (repeatable).
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    sysctl: Vec<String>,
    /// Apply a file in sysctl.conf syntax before the --sysctl flags.
    #[arg(long = "sysctl-file", value_name = "PATH")]
    sysctl_file: Option<std::path::PathBuf>,
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
struct Usage(String);

fn config(args: &StackArgs) -> Result<Config, Usage> {
    let mut c = Config::default();
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
    Ok(c)
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
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Sim(SimCmd::Transfer(a)) => run_transfer(a),
        Cmd::Sysctl { common, names } => run_sysctl(common, names),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Usage(msg)) => {
            eprintln!("synq: error: {msg}");
            ExitCode::from(2)
        }
    }
}
