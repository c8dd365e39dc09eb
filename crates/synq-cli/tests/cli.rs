//! The command-line contract: JSON keys, exit codes, one-line errors.

use std::process::Command;
use synq_sim::scenario::LISTEN_COUNTERS;

fn synq(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synq"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn transfer_json_contract() {
    let (code, out, err) = synq(&[
        "sim", "transfer", "--bytes", "300000", "--loss", "0.02", "--seed", "3", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for k in [
        "bytes_sent",
        "bytes_received",
        "intact",
        "retransmits",
        "virtual_secs",
        "wall_secs",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {out}");
    }
    assert_eq!(v["bytes_sent"], 300_000);
    assert_eq!(v["bytes_received"], 300_000);
    assert_eq!(v["intact"], true);
    assert!(v["retransmits"].as_u64().unwrap() > 0);
}

#[test]
fn transfer_same_seed_same_output() {
    let args = [
        "sim",
        "transfer",
        "--bytes",
        "200000",
        "--loss",
        "0.05",
        "--reorder",
        "0.05",
        "--seed",
        "9",
        "--json",
    ];
    let strip = |s: String| {
        let mut v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
        v.as_object_mut().unwrap().remove("wall_secs");
        v
    };
    assert_eq!(strip(synq(&args).1), strip(synq(&args).1));
}

#[test]
fn transfer_over_ipv6() {
    let (code, out, err) = synq(&[
        "sim", "transfer", "--ipv6", "--bytes", "100000", "--loss", "0.05", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["intact"], true);
}

#[test]
fn human_table() {
    let (code, out, _) = synq(&["sim", "transfer", "--bytes", "10000"]);
    assert_eq!(code, 0);
    assert!(out.contains("intact               yes"), "{out}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["sim", "transfer", "--loss", "1.5"][..],
        &["sim", "transfer", "--sysctl", "net.ipv4.nope=1"],
        // Linux takes any u8 here (9 acts as 1): 256 is the first value it refuses.
        &["sim", "transfer", "--sysctl", "net.ipv4.tcp_syncookies=256"],
        &["sim", "transfer", "--sysctl", "garbage"],
        &["sim", "transfer", "--sysctl-file", "/nonexistent/file.conf"],
        &["sim", "transfer", "--bandwidth", "0"],
        &["sysctl", "net.core.nope"],
    ] {
        let (code, out, err) = synq(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("synq: error: "), "{err}");
    }
    // clap's own usage errors also exit 2.
    assert_eq!(synq(&["sim", "transfer", "--bytes", "lots"]).0, 2);
    assert_eq!(synq(&["sim", "nope"]).0, 2);
}

#[test]
fn sysctl_listing_and_file() {
    let (code, out, _) = synq(&["sysctl", "net.core.somaxconn", "net.ipv4.tcp_syn_retries"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "net.core.somaxconn = 4096\nnet.ipv4.tcp_syn_retries = 6\n"
    );
    let dir = std::env::temp_dir().join(format!("synq-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("s.conf");
    std::fs::write(&f, "# test\nnet.core.somaxconn = 64\n").unwrap();
    let (code, out, _) = synq(&[
        "sysctl",
        "--sysctl-file",
        f.to_str().unwrap(),
        "--sysctl",
        "net.ipv4.tcp_syncookies=2",
        "net.core.somaxconn",
        "net.ipv4.tcp_syncookies",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "net.core.somaxconn = 64\nnet.ipv4.tcp_syncookies = 2\n"
    );
    let (_, all, _) = synq(&["sysctl"]);
    assert!(all.lines().count() >= 20);
}

#[test]
fn help_works() {
    for args in [
        &["--help"][..],
        &["sim", "--help"],
        &["sim", "transfer", "--help"],
        &["sysctl", "--help"],
    ] {
        assert_eq!(synq(args).0, 0, "{args:?}");
    }
}

fn json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = synq(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn overflow_json_contract_every_model() {
    for (model, est) in [
        ("linux", 3),
        ("linux-4.10", 3),
        ("bsd", 4),
        ("bsd-exact", 2),
    ] {
        let v = json(&[
            "sim",
            "overflow",
            "--backlog",
            "2",
            "--clients",
            "8",
            "--model",
            model,
            "--json",
        ]);
        assert_eq!(v["scenario"], "overflow");
        assert_eq!(v["model"], model);
        assert_eq!(v["listener"]["send_q"], 2);
        assert_eq!(v["clients"]["established"], est, "{model}: {v}");
        assert_eq!(v["clients"]["syn_sent"], 8 - est);
        assert_eq!(v["clients"]["failed"], 0);
        assert_eq!(v["accepted_after"], 0);
        for c in LISTEN_COUNTERS {
            assert!(v["counters"][c].is_u64(), "{model}: missing {c}");
        }
    }
    // The spec's example, figure for figure.
    let v = json(&[
        "sim",
        "overflow",
        "--backlog",
        "2",
        "--clients",
        "8",
        "--json",
    ]);
    assert_eq!(v["listener"]["recv_q"], 3);
    assert_eq!(v["synacks_sent"], 3);
    assert_eq!(v["counters"]["TcpExtListenOverflows"], 10);
    assert_eq!(v["counters"]["TcpExtListenDrops"], 10);
    assert_eq!(v["counters"]["TcpPassiveOpens"], 3);
    let v = json(&[
        "sim",
        "overflow",
        "--backlog",
        "2",
        "--clients",
        "8",
        "--accept-after",
        "--json",
    ]);
    assert_eq!(v["accepted_after"], 3);
}

#[test]
fn synflood_json_contract_and_cookie_modes() {
    for (mode, rows, synacks) in [("0", 5, 5), ("1", 5, 20), ("2", 0, 20)] {
        let v = json(&[
            "sim",
            "synflood",
            "--backlog",
            "4",
            "--syns",
            "20",
            "--duration",
            "0.5",
            "--sysctl",
            &format!("net.ipv4.tcp_syncookies={mode}"),
            "--json",
        ]);
        assert_eq!(v["scenario"], "synflood");
        assert_eq!(v["listener"]["syn_recv"], rows, "mode {mode}");
        assert_eq!(v["synacks_sent"], synacks, "mode {mode}");
        assert!(v.get("clients").is_none());
    }
    for model in ["linux-4.10", "bsd", "bsd-exact"] {
        let v = json(&[
            "sim",
            "synflood",
            "--backlog",
            "4",
            "--syns",
            "20",
            "--model",
            model,
            "--json",
        ]);
        assert_eq!(v["model"], model);
    }
}

#[test]
fn backlog_scenarios_are_deterministic_and_reject_bad_input() {
    let a = [
        "sim",
        "synflood",
        "--backlog",
        "3",
        "--syns",
        "50",
        "--rate",
        "20",
        "--duration",
        "4",
        "--seed",
        "7",
        "--json",
    ];
    assert_eq!(json(&a), json(&a));
    for bad in [
        &[
            "sim",
            "overflow",
            "--backlog",
            "2",
            "--clients",
            "3",
            "--model",
            "freebsd",
        ][..],
        &[
            "sim",
            "overflow",
            "--backlog",
            "2",
            "--clients",
            "3",
            "--gap-ms",
            "-1",
        ],
        &[
            "sim",
            "synflood",
            "--backlog",
            "2",
            "--syns",
            "3",
            "--rate",
            "0",
        ],
        &[
            "sim",
            "synflood",
            "--backlog",
            "2",
            "--syns",
            "3",
            "--duration",
            "nan",
        ],
        &[
            "sim",
            "synflood",
            "--backlog",
            "2",
            "--syns",
            "3",
            "--sysctl",
            "net.ipv4.tcp_syncookies=256",
        ],
    ] {
        let (code, out, err) = synq(bad);
        assert_eq!(code, 2, "{bad:?}");
        assert!(out.is_empty());
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
    }
    // Negative backlogs are values, not flags.
    let v = json(&[
        "sim",
        "overflow",
        "--backlog",
        "-1",
        "--clients",
        "3",
        "--sysctl",
        "net.core.somaxconn=1",
        "--json",
    ]);
    assert_eq!(v["listener"]["send_q"], 1);
}

#[test]
fn sysctl_from_host_and_model_knob() {
    let (code, out, err) = synq(&["sysctl", "--model", "bsd", "synq.listen_model"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "synq.listen_model = bsd");
    if std::path::Path::new("/proc/sys/net/core/somaxconn").exists() {
        let host = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
        let (code, out, err) = synq(&["sysctl", "--sysctl-from-host", "net.core.somaxconn"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), format!("net.core.somaxconn = {}", host.trim()));
    } else {
        // The stderr handle, not eprintln!: a plain `cargo test` shows it.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP sysctl --sysctl-from-host: no /proc/sys here"
        );
    }
}

#[test]
fn compare_runs_every_model() {
    let v = json(&["sim", "compare", "--json"]);
    let runs = v["runs"].as_array().unwrap();
    let models: Vec<&str> = runs.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["linux", "linux-4.10", "bsd", "bsd-exact"]);
    // Backlog 5: Linux queues 6, 4.4BSD floor(3*5/2)+1 = 8, the textbook 5.
    let est: Vec<u64> = runs
        .iter()
        .map(|r| r["overflow"]["clients"]["established"].as_u64().unwrap())
        .collect();
    assert_eq!(est, [6, 6, 8, 5]);
    let (code, out, _) = synq(&["sim", "compare"]);
    assert_eq!(code, 0);
    assert!(out.contains("bsd-exact"));
    let (code, _, err) = synq(&["sim", "compare", "--model", "bsd"]);
    assert_eq!((code, err.trim().lines().count()), (2, 1));
}
