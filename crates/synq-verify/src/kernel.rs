//! The kernel's side: `kernel/backlog.py` run by python3 as root, in network namespaces it
//! creates and that die with it.

use crate::figures::Figures;
use crate::grid::Point;
use crate::Error;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The experiment script (see its docstring for what it builds and prints).
pub const BACKLOG_PY: &str = include_str!("../kernel/backlog.py");
/// Its helpers: namespaces, sysctls, counters, TUN.
pub const NETNS_PY: &str = include_str!("../kernel/netns.py");

/// Kernel runs at once. Each has its own namespaces; they mostly sleep.
pub const JOBS: usize = 4;
/// A run that has not ended this long after its report time is killed (its namespaces go
/// with it) and counts as failed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Runs per point while the kernel side falls behind its schedule.
pub const ATTEMPTS: u32 = 3;

/// Why the kernel side cannot run on this machine, if it cannot: not root, no
/// /dev/net/tun, python3, `ip` or `unshare` missing, or no network namespaces.
pub fn unavailable() -> Option<String> {
    match effective_uid() {
        Ok(0) => {}
        Ok(_) => return Some("not root: the kernel side creates network namespaces".into()),
        Err(e) => return Some(e),
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    for (tool, package) in [
        ("python3", "python3"),
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
    ] {
        if !on_path(tool) {
            return Some(format!("{tool} not found (install {package})"));
        }
    }
    let netns = Command::new("unshare")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !netns.is_ok_and(|s| s.success()) {
        return Some("cannot create a network namespace (`unshare -n true` failed)".into());
    }
    None
}

/// The effective uid, from /proc (no libc here).
fn effective_uid() -> Result<u32, String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| "no effective uid in /proc/self/status".into())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The scripts, written to a fresh private directory that is removed on drop.
pub struct Kernel {
    dir: PathBuf,
}

impl Kernel {
    /// Checks [`unavailable`] and writes the scripts.
    pub fn new() -> Result<Self, Error> {
        if let Some(why) = unavailable() {
            return Err(Error::Unavailable(why));
        }
        let dir = private_dir().map_err(|e| Error::Setup(format!("temporary directory: {e}")))?;
        let k = Self { dir };
        for (name, text) in [("backlog.py", BACKLOG_PY), ("netns.py", NETNS_PY)] {
            fs::write(k.dir.join(name), text)
                .map_err(|e| Error::Setup(format!("{}: {e}", k.dir.join(name).display())))?;
        }
        Ok(k)
    }

    /// Run every point, [`JOBS`] at a time: figures, or why the run failed. A run that
    /// fell behind its schedule by more than [`Point::lag_allowance`] (a busy machine) is
    /// repeated, up to [`ATTEMPTS`] runs. `done` hears of every finished point.
    pub fn run(
        &self,
        points: &[Point],
        done: &mut dyn FnMut(usize),
    ) -> Vec<Result<Figures, String>> {
        let mut results: Vec<Option<Result<Figures, String>>> = vec![None; points.len()];
        let mut queue: VecDeque<(usize, u32)> = VecDeque::new();
        for (i, p) in points.iter().enumerate() {
            match p.check() {
                Ok(()) => queue.push_back((i, 1)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let mut running: Vec<Run> = Vec::new();
        let mut finished = results.iter().filter(|r| r.is_some()).count();
        while !queue.is_empty() || !running.is_empty() {
            while running.len() < JOBS {
                let Some((i, attempt)) = queue.pop_front() else {
                    break;
                };
                match self.spawn(&points[i], i, attempt) {
                    Ok(run) => running.push(run),
                    Err(e) => {
                        results[i] = Some(Err(e));
                        finished += 1;
                        done(finished);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
            let mut k = 0;
            while k < running.len() {
                let Some(outcome) = running[k].poll() else {
                    k += 1;
                    continue;
                };
                let run = running.swap_remove(k);
                let p = &points[run.index];
                let result = outcome.and_then(|v| {
                    let Some(lag) = v["lag"].as_f64() else {
                        return Err(Failed(format!("backlog.py output lacks lag: {v}")));
                    };
                    if lag > p.lag_allowance() {
                        return Err(Lagged(lag));
                    }
                    Figures::from_kernel_json(&v).map_err(Failed)
                });
                match result {
                    Err(Lagged(_)) if run.attempt < ATTEMPTS => {
                        queue.push_back((run.index, run.attempt + 1));
                        continue;
                    }
                    Err(Lagged(lag)) => {
                        results[run.index] = Some(Err(format!(
                            "the kernel side fell {:.0} ms behind its schedule in each of \
                             {ATTEMPTS} runs (at most {:.0} ms allowed): machine too busy",
                            lag * 1000.0,
                            p.lag_allowance() * 1000.0
                        )));
                    }
                    Err(Failed(e)) => results[run.index] = Some(Err(e)),
                    Ok(f) => results[run.index] = Some(Ok(f)),
                }
                finished += 1;
                done(finished);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not run".into())))
            .collect()
    }

    fn spawn(&self, p: &Point, index: usize, attempt: u32) -> Result<Run, String> {
        let out = self.dir.join(format!("out-{index}-{attempt}.json"));
        let err = self.dir.join(format!("err-{index}-{attempt}.txt"));
        let file = |path: &Path| File::create(path).map_err(|e| format!("{}: {e}", path.display()));
        // -E -s: no PYTHON* variables or user site; the script's directory stays on the
        // path, for netns.py. -B: no bytecode files.
        let child = Command::new("python3")
            .args(["-B", "-E", "-s"])
            .arg(self.dir.join("backlog.py"))
            .arg(p.to_json().to_string())
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        Ok(Run {
            index,
            attempt,
            child,
            deadline: Instant::now() + Duration::from_millis(p.duration_ms.into()) + RUN_TIMEOUT,
            out,
            err,
        })
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory only we can use (created, never reused, so nothing can be planted in
/// it beforehand).
fn private_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for n in 0..100u32 {
        let dir = base.join(format!("synq-verify-{}-{nanos}-{n}", std::process::id()));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

/// Why a finished run is not used.
enum Rejected {
    /// Behind schedule by this many seconds: try again.
    Lagged(f64),
    /// Failed: the reason.
    Failed(String),
}
use Rejected::{Failed, Lagged};

/// One python3 process.
struct Run {
    index: usize,
    attempt: u32,
    child: Child,
    deadline: Instant,
    out: PathBuf,
    err: PathBuf,
}

impl Run {
    /// None while it runs; then its JSON output, or why there is none. Past the deadline
    /// it is killed.
    fn poll(&mut self) -> Option<Result<serde_json::Value, Rejected>> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) if Instant::now() < self.deadline => return None,
            Ok(None) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Some(Err(Failed(format!(
                    "backlog.py still ran {} s after its report time: killed",
                    RUN_TIMEOUT.as_secs()
                ))));
            }
            Err(e) => return Some(Err(Failed(format!("backlog.py: wait: {e}")))),
        };
        let stderr = fs::read_to_string(&self.err).unwrap_or_default();
        if !status.success() {
            // A traceback's last line says what went wrong.
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            return Some(Err(Failed(format!(
                "backlog.py failed ({status}): {}",
                last.unwrap_or("no message").trim()
            ))));
        }
        let out = fs::read_to_string(&self.out).unwrap_or_default();
        Some(
            serde_json::from_str(out.trim())
                .map_err(|e| Failed(format!("backlog.py output: {e}: {}", out.trim()))),
        )
    }
}
