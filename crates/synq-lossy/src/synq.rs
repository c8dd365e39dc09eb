//! synq's side: `synq sim transfer` with the same loss, reordering, duplication and seed, at
//! the RTT the kernel's path showed, read from its `--json` report.

use crate::report::Row;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `synq` binary: `$SYNQ_BIN` if set, else whatever `cargo build --release -p
/// synq-cli` produces for this workspace (built now if stale, so the figures are the
/// checked-out tree's).
pub fn binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SYNQ_BIN") {
        return Ok(p.into());
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "-p", "synq-cli", "--bin", "synq"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other("cargo build -p synq-cli failed"));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "synq")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| io::Error::other("cargo built no `synq` executable"))
}

/// One simulated transfer.
#[derive(Clone, Debug)]
pub struct SynqRun {
    /// Virtual seconds from connect() to end of stream (or to the time limit).
    pub virtual_secs: f64,
    /// Every byte arrived, in order.
    pub intact: bool,
    /// Bytes the receiver read.
    pub bytes_received: u64,
    /// Why it did not complete (`time limit`, an errno name), if it did not.
    pub failure: Option<String>,
    /// The sender's counters by nstat name.
    pub counters: BTreeMap<String, u64>,
    /// Packets the simulated links carried, both directions.
    pub packets_sent: u64,
    /// Of them, lost.
    pub packets_lost: u64,
    /// Of them, duplicated.
    pub packets_duplicated: u64,
    /// Wall time the simulation took.
    pub wall_secs: f64,
}

/// Run `synq sim transfer` for `row` with the given bytes, RTT, seed and virtual time limit;
/// the process is killed after `wall_limit` of real time.
pub fn transfer(
    bin: &Path,
    row: Row,
    bytes: u64,
    rtt_us: u64,
    seed: u64,
    time_limit_secs: u64,
    wall_limit: Duration,
) -> io::Result<SynqRun> {
    let mut child = Command::new(bin)
        .args(["sim", "transfer", "--json"])
        .args(["--bytes", &bytes.to_string()])
        .args(["--loss", &row.loss.to_string()])
        .args(["--reorder", &row.reorder.to_string()])
        .args(["--duplicate", &row.duplicate.to_string()])
        .args(["--rtt-us", &rtt_us.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--time-limit", &time_limit_secs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes drained while it runs, so neither can fill and stall it.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).map(|_| s)
        })
    };
    let reader = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let errors = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let end = Instant::now() + wall_limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = reader
        .join()
        .map_err(|_| io::Error::other("synq output reader panicked"))??;
    if status.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("synq sim transfer ran past {wall_limit:?} of wall time"),
        ));
    }
    // A transfer that is not intact exits 1 but still prints its report.
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        let err = errors.join().ok().and_then(Result::ok).unwrap_or_default();
        io::Error::other(format!("synq sim transfer: {e}: {}", err.trim()))
    })?;
    Ok(SynqRun {
        virtual_secs: v["virtual_secs"].as_f64().unwrap_or(f64::NAN),
        intact: v["intact"] == true,
        bytes_received: v["bytes_received"].as_u64().unwrap_or(0),
        failure: v["failure"].as_str().map(str::to_string),
        counters: v["sender_counters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default(),
        packets_sent: v["packets_sent"].as_u64().unwrap_or(0),
        packets_lost: v["packets_lost"].as_u64().unwrap_or(0),
        packets_duplicated: v["packets_duplicated"].as_u64().unwrap_or(0),
        wall_secs: v["wall_secs"].as_f64().unwrap_or(f64::NAN),
    })
}
