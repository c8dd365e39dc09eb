//! `synq bench`: the performance suite. It lives in its own binary, `synq-bench` (so the
//! command line does not carry smoltcp, the benchmark's comparison stack); this command runs
//! it with the same arguments and exits as it does.

use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Arguments for synq-bench: [--json] [--secs S] [--runs N] [--only NAME] [--sockets N]
    /// [--latency-plot FILE.svg].
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

/// `SYNQ_BENCH`, else `synq-bench` beside this binary (cargo builds every binary of the
/// workspace into one directory), else on `PATH`.
fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SYNQ_BENCH") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("synq-bench")))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("synq-bench"))
                .find(|p| p.is_file())
        })
    })
}

pub(crate) fn run(a: &BenchArgs) -> Result<ExitCode> {
    let exe = find().ok_or_else(|| {
        Error::usage(
            "synq bench runs the synq-bench binary, which is not built: \
             cargo build --release -p synq-bench (or set SYNQ_BENCH)",
        )
    })?;
    let status = Command::new(&exe)
        .args(&a.args)
        .status()
        .map_err(|e| Error::run(format!("{}: {e}", exe.display())))?;
    // synq-bench printed its own figures or its one error line; pass its status on.
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
