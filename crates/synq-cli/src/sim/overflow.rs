//! `synq sim overflow`: C clients connect G ms apart to a listener that never accepts.

use super::{at_most, backlog_params, print_backlog, within, BacklogArgs, MAX_CLIENTS};
use crate::error::Result;
use clap::Args;
use synq_core::Duration;
use synq_sim::scenario::{overflow_tapped, OverflowParams, SERVER_ADDR};

#[derive(Args, Debug)]
pub(crate) struct OverflowArgs {
    /// Client hosts, each connecting once (at most 200000).
    #[arg(long, allow_negative_numbers = true)]
    clients: u32,
    /// Milliseconds between successive connects (at most 1000000).
    #[arg(long = "gap-ms", default_value_t = 1.0, allow_hyphen_values = true)]
    gap_ms: f64,
    /// After the report, drain the accept queue and report how many accept() returned.
    #[arg(long = "accept-after")]
    accept_after: bool,
    #[command(flatten)]
    b: BacklogArgs,
}

pub(crate) fn run(a: &OverflowArgs) -> Result {
    within("gap-ms", a.gap_ms, 0.0, 1e6, "milliseconds")?;
    at_most("clients", a.clients, MAX_CLIENTS, "")?;
    let common = backlog_params(&a.b)?;
    let model = common.config.model;
    let p = OverflowParams {
        common,
        clients: a.clients,
        gap: Duration::from_micros((a.gap_ms * 1000.0).round() as u64),
        accept_after: a.accept_after,
    };
    let r = crate::capture::run_captured(a.b.pcap.as_deref(), SERVER_ADDR, |tap| {
        overflow_tapped(&p, tap)
    })?;
    print_backlog("overflow", &a.b, model, &r)
}
