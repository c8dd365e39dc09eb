//! `synq verify kernel`: the backlog experiments on the host kernel and in the simulator,
//! side by side (the work is synq-verify's; this prints it).

use crate::error::{Error, Result};
use crate::output;
use clap::{Args, Subcommand, ValueEnum};
use std::io::{self, IsTerminal, Write};
use synq_verify::{verify, Grid, Verdict};

#[derive(Subcommand, Debug)]
pub(crate) enum VerifyCmd {
    /// `sim overflow` and `sim synflood` on this machine's kernel and in the simulator.
    ///
    /// The kernel side runs in network namespaces of its own and needs root, /dev/net/tun,
    /// python3, ip and unshare; the simulator uses model linux. Exit status 0 when every
    /// point agrees, 1 on a difference or a failed kernel run, 2 when it cannot run here.
    Kernel(KernelArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GridArg {
    /// 21 fixed points (about 15 s).
    Quick,
    /// Those and 40 random points drawn from --seed (about a minute).
    Full,
}

#[derive(Args, Debug)]
pub(crate) struct KernelArgs {
    /// Which points to run.
    #[arg(long, value_enum, default_value = "quick")]
    grid: GridArg,
    /// Seed of the random points and of the simulator.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    seed: u64,
    /// One JSON object on stdout instead of one line per point.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: &VerifyCmd) -> Result {
    let VerifyCmd::Kernel(a) = cmd;
    let grid = match a.grid {
        GridArg::Quick => Grid::Quick,
        GridArg::Full => Grid::Full,
    };
    let points = grid.points(a.seed);
    let progress = io::stderr().is_terminal();
    let verdicts = verify(&points, a.seed, &mut |done, total| {
        if progress {
            output::stderr(&format!("\rkernel runs: {done}/{total}"));
        }
    })
    .map_err(|e| match e {
        synq_verify::Error::Unavailable(why) => Error::usage(format!("verify kernel: {why}")),
        synq_verify::Error::Setup(why) => Error::run(format!("verify kernel: {why}")),
    })?;
    if progress {
        output::stderr("\r\x1b[K");
    }
    let same = verdicts.iter().filter(|v| v.same()).count();
    let failed = verdicts.iter().filter(|v| v.failure().is_some()).count();
    let different = verdicts.len() - same - failed;
    if a.json {
        output::json(&serde_json::json!({
            "grid": grid.name(),
            "seed": a.seed,
            "points": verdicts.iter().map(verdict_json).collect::<Vec<_>>(),
            "same": same,
            "different": different,
            "failed": failed,
        }))?;
    } else {
        output::print(|w| {
            for v in &verdicts {
                line(w, v)?;
            }
            write!(
                w,
                "{} points: {same} same, {different} different",
                verdicts.len()
            )?;
            if failed > 0 {
                write!(w, ", {failed} failed")?;
            }
            writeln!(w)
        })?;
    }
    if different + failed == 0 {
        return Ok(());
    }
    let mut why = Vec::new();
    if different > 0 {
        why.push(format!("{different} of {} points differ", verdicts.len()));
    }
    if failed > 0 {
        why.push(format!("{failed} failed to run"));
    }
    Err(Error::run(format!("verify kernel: {}", why.join(", "))))
}

/// `POINT: same`, `POINT: DIFFERENT: name kernel K synq S, ...` or `POINT: FAILED: why`.
fn line(w: &mut dyn Write, v: &Verdict) -> io::Result<()> {
    if let Some(why) = v.failure() {
        return writeln!(w, "{}: FAILED: {why}", v.point);
    }
    let diffs = v.differences();
    if diffs.is_empty() {
        return writeln!(w, "{}: same", v.point);
    }
    let diffs: Vec<String> = diffs
        .iter()
        .map(|d| format!("{} kernel {} synq {}", d.name, d.kernel, d.synq))
        .collect();
    writeln!(w, "{}: DIFFERENT: {}", v.point, diffs.join(", "))
}

fn verdict_json(v: &Verdict) -> serde_json::Value {
    let side = |r: &std::result::Result<synq_verify::Figures, String>| {
        r.as_ref()
            .map_or(serde_json::Value::Null, synq_verify::Figures::to_json)
    };
    let mut o = serde_json::json!({
        "point": v.point.to_json(),
        "kernel": side(&v.kernel),
        "synq": side(&v.synq),
        "same": v.same(),
        "differences": v.differences().iter().map(|d| serde_json::json!({
            "name": d.name, "kernel": d.kernel, "synq": d.synq,
        })).collect::<Vec<_>>(),
    });
    if let Some(why) = v.failure() {
        o["error"] = why.into();
    }
    o
}
