//! `synq`: the command line of the synq TCP stack (see spec/cli.md for the contract).
//!
//! This file parses and dispatches; each command lives in its own module, every byte of
//! output goes through [`output`], and every failure is an [`error::Error`].

mod bench;
mod capture;
mod error;
mod output;
mod pktdrill;
mod serve;
mod sim;
mod stat;
mod sysctl;
mod verify;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "synq",
    version,
    about = "A userspace TCP/IP stack built around the listen() backlog",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an experiment in the deterministic simulator.
    #[command(subcommand, arg_required_else_help = true)]
    Sim(SimCmd),
    /// Print sysctls (Linux names) with their values after --sysctl / --sysctl-file.
    Sysctl(sysctl::SysctlCmdArgs),
    /// Serve real traffic: a synq listener on a new TUN device (needs root).
    Serve(serve::ServeArgs),
    /// Show a running `synq serve`'s listeners, connections and counters.
    Stat(stat::StatArgs),
    /// The performance suite (runs the synq-bench binary): synq, smoltcp and the kernel.
    Bench(bench::BenchArgs),
    /// Run packetdrill scripts against a synq stack in virtual time.
    Pktdrill(pktdrill::PktdrillArgs),
    /// Compare the simulator with this machine's kernel.
    #[command(subcommand, arg_required_else_help = true)]
    Verify(verify::VerifyCmd),
}

#[derive(Subcommand)]
enum SimCmd {
    /// One connection sends N pseudo-random bytes and closes; the peer reads to the end.
    Transfer(sim::transfer::TransferArgs),
    /// C clients connect G ms apart to a listener that never accepts; report its queues.
    Overflow(sim::overflow::OverflowArgs),
    /// N SYNs from spoofed sources hit a listener; nobody answers the SYN-ACKs.
    Synflood(sim::synflood::SynfloodArgs),
    /// Every backlog model side by side: a scenario, or a burst of clients and a SYN flood.
    Compare(sim::compare::CompareArgs),
    /// Run a scenario (built-in or TOML file) with one model.
    Run(sim::scenario::RunArgs),
}

/// clap's verdict on the command line: help and version on stdout (exit 0), the usage
/// when a command is missing (stderr, exit 2), and any other error as one line (exit 2).
fn parse_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // clap swallows a closed pipe here too.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            output::stderr(&e.render().to_string());
            ExitCode::from(2)
        }
        _ => {
            output::error(&one_line(&e.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// clap's error as one line: its first paragraph, less the `error: ` prefix, and its tip
/// (the "did you mean") if it has one.
fn one_line(text: &str) -> String {
    let mut paragraphs = text.split("\n\n").map(|p| {
        p.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let first = paragraphs.next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(&first).to_string();
    for tip in paragraphs.filter(|p| p.starts_with("tip: ")) {
        line.push_str("; ");
        line.push_str(&tip);
    }
    line
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(&e),
    };
    if let Cmd::Bench(a) = &cli.cmd {
        return match bench::run(a) {
            Ok(code) => code,
            Err(e) => {
                output::error(e.message());
                e.exit_code()
            }
        };
    }
    let r = match &cli.cmd {
        Cmd::Sim(SimCmd::Transfer(a)) => sim::transfer::run(a),
        Cmd::Sim(SimCmd::Overflow(a)) => sim::overflow::run(a),
        Cmd::Sim(SimCmd::Synflood(a)) => sim::synflood::run(a),
        Cmd::Sim(SimCmd::Compare(a)) => sim::compare::run(a),
        Cmd::Sim(SimCmd::Run(a)) => sim::scenario::run(a),
        Cmd::Sysctl(a) => sysctl::run(a),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Stat(a) => stat::run(a),
        Cmd::Verify(c) => verify::run(c),
        Cmd::Pktdrill(a) => pktdrill::run(a),
        Cmd::Bench(_) => unreachable!("handled above"),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(e.message());
            e.exit_code()
        }
    }
}
