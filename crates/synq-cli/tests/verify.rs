//! `synq verify kernel`: the quick grid agrees with this machine's kernel (where root and
//! TUN exist; elsewhere it must refuse with exit status 2 and one line), its JSON, and its
//! usage errors.

mod common;

use common::{synq, text};
use std::io::Write;
use std::process::Command;

/// Print SKIP so a plain `cargo test` shows it: libtest captures `println!`, not writes to
/// the stderr handle itself.
fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// Exit status 2 and one line on stderr naming `why`.
fn assert_refused(code: i32, out: &str, err: &str, why: &str) {
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("synq: error: verify kernel: "), "{err}");
    assert!(err.contains(why), "{err} lacks {why}");
}

/// The human output and the JSON of one quick grid each (one kernel run at a time: they
/// share the machine's timers).
#[test]
fn quick_grid_agrees_with_the_kernel() {
    if let Some(why) = synq_verify::kernel::unavailable() {
        let (code, out, err) = synq(&["verify", "kernel", "--grid", "quick"]);
        assert_refused(code, &out, &err, &why);
        skip("quick_grid_agrees_with_the_kernel", &why);
        return;
    }
    let (code, out, err) = synq(&["verify", "kernel", "--grid", "quick"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 22, "{out}");
    assert_eq!(lines[21], "21 points: 21 same, 0 different");
    assert_eq!(
        lines[0], "overflow backlog=2 clients=8 duration=1.5s: same",
        "{out}"
    );
    assert!(lines[..21].iter().all(|l| l.ends_with(": same")), "{out}");

    let (code, out, err) = synq(&["verify", "kernel", "--json", "--seed", "5"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["grid"], "quick");
    assert_eq!(v["seed"], 5);
    assert_eq!(
        (v["same"].as_u64(), v["different"].as_u64()),
        (Some(21), Some(0))
    );
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 21);
    for p in points {
        assert_eq!(p["same"], true, "{p}");
        assert_eq!(p["kernel"], p["synq"], "{p}");
        assert!(p["point"]["scenario"].is_string(), "{p}");
        assert!(p["point"]["duration"].is_f64(), "{p}");
        for k in ["recv_q", "synacks_sent", "TcpExtListenDrops"] {
            assert!(p["kernel"][k].is_u64(), "{k} in {p}");
        }
    }
    let first = &points[0];
    assert_eq!(first["point"]["scenario"], "overflow");
    assert_eq!(first["point"]["backlog"], 2);
    assert_eq!(first["point"]["clients"], 8);
    // backlog 2: 3 clients in the accept queue, 5 still trying.
    assert_eq!(first["kernel"]["recv_q"], 3);
    assert_eq!(first["kernel"]["syn_sent"], 5);
}

/// Without root: exit status 2 and one line, also on a machine where the test runs as root
/// (it drops to nobody with setpriv).
#[test]
fn without_root_it_says_so() {
    let as_nobody = synq_verify::kernel::unavailable().is_none()
        && Command::new("setpriv").arg("--version").output().is_ok();
    let out = if as_nobody {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_synq"))
            .args(["verify", "kernel"])
            .output()
            .expect("runs")
    } else if synq_verify::kernel::unavailable().is_some_and(|w| w.starts_with("not root")) {
        Command::new(env!("CARGO_BIN_EXE_synq"))
            .args(["verify", "kernel"])
            .output()
            .expect("runs")
    } else {
        skip(
            "without_root_it_says_so",
            "neither root with setpriv nor an ordinary user",
        );
        return;
    };
    let (code, out, err) = text(out);
    assert_refused(code, &out, &err, "not root");
}

#[test]
fn usage_errors() {
    for args in [
        &["verify", "kernel", "--grid", "bogus"][..],
        &["verify", "kernel", "--seed", "-1"],
        &["verify", "kernel", "--no-such-flag"],
        &["verify", "kernal"],
    ] {
        let (code, out, err) = synq(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("synq: error: "), "{args:?}: {err}");
    }
    let (_, _, err) = synq(&["verify", "kernel", "--grid", "bogus"]);
    assert!(err.contains("bogus"), "{err}");
    // `synq verify` alone prints the usage (exit status 2).
    let (code, _, err) = synq(&["verify"]);
    assert_eq!(code, 2);
    assert!(err.contains("kernel"), "{err}");
}
