//! `synq sim synflood`: N SYNs from spoofed sources; nobody answers the SYN-ACKs.

use super::{at_most, backlog_params, print_backlog, within, BacklogArgs, MAX_SYNS};
use crate::error::{Error, Result};
use clap::Args;
use synq_sim::scenario::{synflood_tapped, SynfloodParams, SERVER_ADDR};

#[derive(Args, Debug)]
pub(crate) struct SynfloodArgs {
    /// SYNs to send, each from its own spoofed address and port (at most 10000000).
    #[arg(long, allow_negative_numbers = true)]
    syns: u32,
    /// SYNs per second (default: all at time zero; at most 1e9).
    #[arg(long, allow_hyphen_values = true)]
    rate: Option<f64>,
    #[command(flatten)]
    b: BacklogArgs,
}

pub(crate) fn run(a: &SynfloodArgs) -> Result {
    if let Some(r) = a.rate {
        if within("rate", r, 0.0, 1e9, "SYNs per second")? == 0.0 {
            return Err(Error::usage(
                "--rate 0: expected more than 0 SYNs per second",
            ));
        }
    }
    at_most("syns", a.syns, MAX_SYNS, "")?;
    let common = backlog_params(&a.b)?;
    let model = common.config.model;
    let p = SynfloodParams {
        common,
        syns: a.syns,
        rate: a.rate,
    };
    let r = crate::capture::run_captured(a.b.pcap.as_deref(), SERVER_ADDR, |tap| {
        synflood_tapped(&p, tap)
    })?;
    print_backlog("synflood", &a.b, model, &r)
}
