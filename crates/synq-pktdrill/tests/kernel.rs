//! Scripts marked as Linux behaviour (`conformance/linux/*.pkt` at the repository root) and
//! this crate's own `tests/kernel/*.pkt`, replayed against the host's Linux kernel: each in
//! its own namespace with a TUN device, several at once. A script Linux itself fails is a
//! wrong script. Without root, `/dev/net/tun`, `ip` or python3 the tests say `SKIP` and why.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use synq_pktdrill::ast::Time;
use synq_pktdrill::{kernel, parse, Outcome, Runner};

/// packetdrill's runners pass larger tolerances than the 4 ms default; the kernel's timers
/// and a loaded 2-core machine (other builds, the other scripts) need some room.
const TOLERANCE_USECS: &str = "20000";
/// Scripts replayed at once: each mostly waits in real time, so more than the cores; the
/// longest (SYN-ACK retransmissions, ~8 s) then bounds the wall time.
const PARALLEL: usize = 4;

/// `true` (and one line on the terminal, past libtest's capture) when the kernel cannot be
/// used here.
fn skip(test: &str) -> bool {
    match kernel::unavailable() {
        Some(why) => {
            let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
            true
        }
        None => false,
    }
}

fn pkt_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn scripts() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = pkt_files(&here.join("../../conformance/linux"));
    v.extend(pkt_files(&here.join("tests/kernel")));
    v
}

fn runner() -> Runner {
    Runner {
        kernel: true,
        options: vec![("tolerance_usecs".into(), Some(TOLERANCE_USECS.into()))],
        ..Runner::default()
    }
}

/// About how long a script runs, in script microseconds (its times added up).
fn length(src: &str) -> i64 {
    let Ok(script) = parse(src, &[]) else {
        return 0;
    };
    script.events.iter().fold(0, |t, e| match e.time {
        Time::At { rel, us } => {
            if rel {
                t + us
            } else {
                us
            }
        }
        Time::Range { rel, to, .. } => {
            if rel {
                t + to
            } else {
                to
            }
        }
        Time::Blocking { rel, start, .. } => {
            if rel {
                t + start
            } else {
                start
            }
        }
        Time::Any => t,
    })
}

/// Run `jobs` (name, text, directory) on [`PARALLEL`] threads, the longest first so the
/// wall time is about the longest script's: each one's outcome (or why it could not run)
/// and wall time, in the jobs' order.
fn replay(jobs: &[(String, String, PathBuf)]) -> Vec<(Result<Outcome, String>, f64)> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(length(&jobs[i].1)));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; jobs.len()]);
    let runner = runner();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(jobs.len()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else {
                    break;
                };
                let (_, src, dir) = &jobs[i];
                let t = Instant::now();
                let r = runner.run_in(src, Some(dir)).map_err(|e| e.to_string());
                let secs = t.elapsed().as_secs_f64();
                if let Ok(mut v) = results.lock() {
                    v[i] = Some((r, secs));
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or((Err("did not run".into()), 0.0)))
        .collect()
}

/// (name from the repository root, text, directory).
fn job(path: &Path) -> (String, String, PathBuf) {
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let name = match (path.canonicalize(), root.canonicalize()) {
        (Ok(p), Ok(r)) => p.strip_prefix(&r).map_or(p.clone(), Path::to_path_buf),
        _ => path.to_path_buf(),
    };
    (name.display().to_string(), src, dir)
}

#[test]
fn linux_scripts_pass_against_the_kernel() {
    if skip("linux_scripts_pass_against_the_kernel") {
        return;
    }
    let jobs: Vec<_> = scripts().iter().map(|p| job(p)).collect();
    assert!(!jobs.is_empty(), "no scripts found");
    let t = Instant::now();
    let mut results = replay(&jobs);
    let mut log = String::new();
    // Four scripts at a time on a small machine: a timing check can miss by a scheduling
    // delay. A failed script runs once more, alone; what the kernel does wrong fails again.
    for (i, (name, src, dir)) in jobs.iter().enumerate() {
        if matches!(&results[i].0, Ok(o) if o.failure.is_none()) {
            continue;
        }
        let first = match &results[i].0 {
            Ok(o) => o
                .failure
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            Err(e) => e.clone(),
        };
        log.push_str(&format!("RETRY {name} alone (first run: {first})\n"));
        let t = Instant::now();
        let r = runner().run_in(src, Some(dir)).map_err(|e| e.to_string());
        results[i] = (r, t.elapsed().as_secs_f64());
    }
    let mut failures = Vec::new();
    for ((name, _, _), (r, secs)) in jobs.iter().zip(&results) {
        match r {
            Ok(o) if o.failure.is_none() => {
                log.push_str(&format!("PASS {name} ({secs:.2} s)\n"));
            }
            Ok(o) => {
                let f = o
                    .failure
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let out: String = o.output.lines().map(|l| format!("\n    | {l}")).collect();
                failures.push(format!("FAIL {name} ({secs:.2} s): {f}{out}"));
            }
            Err(e) => failures.push(format!("FAIL {name}: {e}")),
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "{log}{} scripts against the kernel in {:.2} s",
        jobs.len(),
        t.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The replay is not vacuous: scripts that expect what Linux does not do fail, at the line
/// that is wrong.
#[test]
fn scripts_linux_fails_fail_against_the_kernel() {
    if skip("scripts_linux_fails_fail_against_the_kernel") {
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel");
    let (_, good, dir) = job(&here.join("passive-open-layout.pkt"));
    let (_, retransmit, _) = job(&here.join("synack-retransmit.pkt"));
    assert!(retransmit.contains("+1    > S."));
    let synack = "<mss 1460,nop,nop,sackOK,nop,wscale 8>";
    assert!(good.contains(synack));
    let cases = [
        // Linux scales by 8 for tcp_rmem[2] = 15 MiB (defaults.sh), not 7.
        (
            good.replace(synack, "<mss 1460,nop,nop,sackOK,nop,wscale 7>"),
            "sackOK,nop,wscale 7>",
        ),
        // The listener is blocking here, but a completed connection is waiting: no EAGAIN.
        (
            good.replace(
                "accept(3, ..., ...) = 4",
                "accept(3, ..., ...) = -1 EAGAIN (Resource temporarily unavailable)",
            ),
            "= -1 EAGAIN",
        ),
        // The ACK of 100 bytes acknowledges 101, not 100.
        (
            good.replace("> . 1:1(0) ack 101", "> . 1:1(0) ack 100"),
            "> . 1:1(0) ack 100",
        ),
        // The kernel's own timer: the first SYN-ACK retransmission comes after 1 s, not 0.5.
        (retransmit.replace("+1    > S.", "+.5   > S."), "+.5   > S."),
    ];
    let jobs: Vec<_> = cases
        .iter()
        .map(|(src, what)| (what.to_string(), src.clone(), dir.clone()))
        .collect();
    for ((what, src, _), (r, _)) in jobs.iter().zip(replay(&jobs)) {
        let o = r.unwrap_or_else(|e| panic!("{what}: could not run: {e}"));
        let f = o
            .failure
            .unwrap_or_else(|| panic!("a script expecting {what} passed against the kernel"));
        let line = src
            .lines()
            .position(|l| l.contains(what.as_str()))
            .map(|i| i + 1);
        assert_eq!(Some(f.line), line, "{what}: failed elsewhere: {f}");
    }
}
