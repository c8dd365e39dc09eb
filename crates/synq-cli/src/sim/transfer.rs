//! `synq sim transfer`: one connection sends N pseudo-random bytes and closes; the peer
//! reads to the end. A transfer that does not arrive intact is a failed run (exit status 1).

use super::{at_most, prob, rtt, MAX_SECS};
use crate::error::{Error, Result};
use crate::output;
use crate::sysctl::{config, StackArgs};
use clap::Args;
use std::io::Write;
use synq_core::Duration;
use synq_sim::scenario::{
    transfer_tapped, TransferParams, TransferReport, SERVER_ADDR, SERVER_ADDR6,
};

/// Most bytes a transfer sends: 1 TiB (about an hour of wall time), as `synq serve`'s
/// `/bytes/N`.
const MAX_BYTES: u64 = 1 << 40;

#[derive(Args, Debug)]
pub(crate) struct TransferArgs {
    /// Bytes to send (at most 2^40).
    #[arg(long, default_value_t = 1_000_000, allow_negative_numbers = true)]
    bytes: u64,
    /// Packet loss probability per packet, each direction (0..=1).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    loss: f64,
    /// Probability a packet is held back one RTT so later ones overtake it (0..=1).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    reorder: f64,
    /// Probability a packet is delivered twice (0..=1).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    duplicate: f64,
    /// Round-trip propagation delay in microseconds (at most 60000000).
    #[arg(long = "rtt-us", default_value_t = 100, allow_negative_numbers = true)]
    rtt_us: u64,
    /// Link rate in bits per second (default: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    bandwidth: Option<u64>,
    /// Drop-tail queue in packets in front of a rate-limited link.
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    queue: usize,
    /// Give up after this many virtual seconds (at most 1000000).
    #[arg(
        long = "time-limit",
        default_value_t = 3600,
        allow_negative_numbers = true
    )]
    time_limit: u64,
    /// Seed of every random choice: same seed, same output.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    seed: u64,
    /// Run over IPv6 (2001:db8::1 to 2001:db8::2) instead of IPv4.
    #[arg(long)]
    ipv6: bool,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the receiving server's packets to PATH (pcap, raw IP, virtual timestamps).
    #[arg(long, value_name = "PATH")]
    pcap: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: StackArgs,
}

pub(crate) fn run(a: &TransferArgs) -> Result {
    at_most("bytes", a.bytes, MAX_BYTES, " (2^40)")?;
    if a.bandwidth == Some(0) {
        return Err(Error::usage(
            "--bandwidth 0: expected a positive rate in bits/s",
        ));
    }
    if a.queue == 0 {
        return Err(Error::usage("--queue 0: expected at least 1"));
    }
    let p = TransferParams {
        bytes: a.bytes,
        loss: prob("loss", a.loss)?,
        reorder: prob("reorder", a.reorder)?,
        duplicate: prob("duplicate", a.duplicate)?,
        rtt: rtt(a.rtt_us)?,
        bandwidth_bps: a.bandwidth,
        queue_limit: a.queue,
        seed: a.seed,
        config: config(&a.common)?,
        time_limit: Duration::from_secs(at_most(
            "time-limit",
            a.time_limit,
            MAX_SECS as u64,
            " seconds",
        )?),
        ipv6: a.ipv6,
    };
    let server = if a.ipv6 { SERVER_ADDR6 } else { SERVER_ADDR };
    let start = std::time::Instant::now();
    let r =
        crate::capture::run_captured(a.pcap.as_deref(), server, |tap| transfer_tapped(&p, tap))?;
    let wall = start.elapsed().as_secs_f64();
    if a.json {
        let mut v =
            serde_json::to_value(&r).map_err(|e| Error::run(format!("transfer report: {e}")))?;
        v["wall_secs"] = serde_json::json!(wall);
        output::json(&v)?;
    } else {
        output::print(|w| render(w, a, &r, wall))?;
    }
    if r.intact {
        Ok(())
    } else {
        Err(Error::run(format!(
            "transfer not intact ({}): {} of {} bytes sent, {} received in {:.6} virtual s",
            r.failure.as_deref().unwrap_or("stream differs"),
            r.bytes_sent,
            a.bytes,
            r.bytes_received,
            r.virtual_secs
        )))
    }
}

fn render(
    w: &mut dyn Write,
    a: &TransferArgs,
    r: &TransferReport,
    wall: f64,
) -> std::io::Result<()> {
    writeln!(
        w,
        "transfer: {} bytes over {}, loss {}%, reorder {}%, duplicate {}%, rtt {} us, seed {}",
        a.bytes,
        if a.ipv6 { "IPv6" } else { "IPv4" },
        a.loss * 100.0,
        a.reorder * 100.0,
        a.duplicate * 100.0,
        a.rtt_us,
        a.seed
    )?;
    let rows: [(&str, String); 10] = [
        ("bytes sent", r.bytes_sent.to_string()),
        ("bytes received", r.bytes_received.to_string()),
        (
            "intact",
            match &r.failure {
                None => "yes".into(),
                Some(why) => format!("NO ({why})"),
            },
        ),
        ("goodput", format!("{:.3} Mbit/s", r.goodput_bps / 1e6)),
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
        writeln!(w, "  {k:<20} {v}")?;
    }
    let counters = r.sender_counters.iter().map(|(&k, &v)| (k, v));
    output::nonzero_counters(w, "sender counters (nstat -az, non-zero)", counters)
}
