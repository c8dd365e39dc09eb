//! The command-line contract: JSON keys, exit codes, one-line errors.

mod common;

use common::{json, read_pcap, synq};
use std::process::Command;
use synq_sim::scenario::LISTEN_COUNTERS;

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
    // Goodput is what arrived per virtual second; the sender's counters agree with the
    // report's own figures.
    let goodput = v["goodput_bps"].as_f64().unwrap();
    let expect = 300_000.0 * 8.0 / v["virtual_secs"].as_f64().unwrap();
    assert!(
        (goodput - expect).abs() < 1e-6 * expect,
        "{goodput} vs {expect}"
    );
    assert_eq!(v["failure"], serde_json::Value::Null);
    let c = &v["sender_counters"];
    assert_eq!(c["TcpRetransSegs"], v["retransmits"]);
    assert_eq!(c["TcpActiveOpens"], 1);
    assert!(c["TcpOutSegs"].as_u64().unwrap() > 200);
}

#[test]
fn a_failed_transfer_says_why() {
    // Every packet lost: connect() gives up (ETIMEDOUT) after one SYN retry, at 3 s.
    let (code, out, err) = synq(&[
        "sim",
        "transfer",
        "--bytes",
        "1000",
        "--loss",
        "1",
        "--sysctl",
        "net.ipv4.tcp_syn_retries=1",
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["failure"], "ETIMEDOUT");
    assert_eq!(v["virtual_secs"], 3.0);
    assert!(err.contains("(ETIMEDOUT)"), "{err}");
    // Half the packets lost and 5 s allowed: the clock runs out first.
    let (code, out, err) = synq(&[
        "sim",
        "transfer",
        "--bytes",
        "1000000",
        "--loss",
        "0.5",
        "--time-limit",
        "5",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("intact               NO (time limit)"),
        "{out}"
    );
    assert!(out.contains("#sender counters"), "{out}");
    assert!(err.contains("(time limit)"), "{err}");
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
        &["sim", "transfer", "--strict"],
        &["sysctl", "net.core.nope"],
        // Linux reads `+16` as nothing, and 08 as a bad octal number.
        &["sysctl", "--sysctl", "net.core.somaxconn=+16"],
        &["sysctl", "--sysctl", "net.core.somaxconn=08"],
        // Inputs read whole stop at 16 MiB.
        &["sysctl", "--sysctl-file", "/dev/zero"],
        &["sim", "run", "/dev/zero"],
        &["pktdrill", "/dev/zero"],
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
    // Base 0, as the kernel reads a write: hex, octal.
    let (code, out, _) = synq(&[
        "sysctl",
        "--sysctl",
        "net.core.somaxconn=0x40",
        "--sysctl",
        "net.ipv4.tcp_syn_retries=010",
        "net.core.somaxconn",
        "net.ipv4.tcp_syn_retries",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "net.core.somaxconn = 64\nnet.ipv4.tcp_syn_retries = 8\n"
    );
}

#[test]
fn a_built_in_name_is_the_built_in_and_dot_slash_the_file() {
    let dir = std::env::temp_dir().join(format!("synq-cli-builtin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("burst"), "not toml [").unwrap();
    let run = |what: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_synq"))
            .args(["sim", "run", what, "--json"])
            .current_dir(&dir)
            .output()
            .expect("runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (builtin, file) = (run("burst"), run("./burst"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(builtin.0, Some(0));
    assert!(
        builtin.1.contains("\"scenario\":\"burst\""),
        "{}",
        builtin.1
    );
    assert_eq!(file.0, Some(2), "the file, which does not parse");
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
            "freebsd-4",
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
    assert_eq!(
        models,
        ["linux", "linux-4.10", "bsd", "bsd-exact", "freebsd"]
    );
    // Backlog 5: Linux queues 6, 4.4BSD floor(3*5/2)+1 = 8, the textbook 5, FreeBSD 8
    // completed connections (the rest are reset at their final ACK).
    let est: Vec<u64> = runs
        .iter()
        .map(|r| r["overflow"]["clients"]["established"].as_u64().unwrap())
        .collect();
    assert_eq!(est, [6, 6, 8, 5, 8]);
    // `models`, as spec/cli.md has it: per model, the objects `sim run` prints for the
    // pair, and the same figures as `runs`.
    let by_model = v["models"].as_object().unwrap();
    assert_eq!(by_model.len(), 5, "{v}");
    for r in runs {
        let m = &by_model[r["model"].as_str().unwrap()];
        assert_eq!(m["overflow"]["clients"], r["overflow"]["clients"], "{r}");
        assert_eq!(m["synflood"]["listener"], r["synflood"]["listener"], "{r}");
    }
    for (m, scenario) in [("bsd", "overflow"), ("linux", "synflood")] {
        let one = json(&["sim", "run", scenario, "--model", m, "--json"]);
        assert_eq!(by_model[m][scenario], one, "{m} {scenario}");
    }
    // One model is still a map of models.
    let one = json(&["sim", "compare", "--models", "bsd", "--json"]);
    assert_eq!(one["models"].as_object().unwrap().len(), 1, "{one}");
    let one = json(&["sim", "compare", "burst", "--models", "bsd", "--json"]);
    let run = json(&["sim", "run", "burst", "--model", "bsd", "--json"]);
    assert_eq!(one["models"]["bsd"], run, "{one}");
    let (code, out, _) = synq(&["sim", "compare"]);
    assert_eq!(code, 0);
    assert!(out.contains("bsd-exact"));
    let (code, _, err) = synq(&["sim", "compare", "--model", "bsd"]);
    assert_eq!((code, err.trim().lines().count()), (2, 1));
}

// ---------------------------------------------------------------- a CLI that never crashes

/// Run synq with a stdout nobody reads: its writes meet EPIPE. With `read_first_line`, a
/// pipe of which one line is read before its read end is dropped (the rest may or may not
/// fit in the pipe first); without, a socket whose other end is closed before synq starts,
/// so that its very first write fails, whatever the timing.
fn synq_into_closed_pipe(args: &[&str], read_first_line: bool) -> (i32, String) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synq"));
    cmd.args(args).stderr(Stdio::piped());
    if read_first_line {
        cmd.stdout(Stdio::piped());
    } else {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        drop(ours);
        cmd.stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    }
    let mut child = cmd.spawn().expect("runs");
    if let Some(stdout) = child.stdout.take() {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads");
        assert!(!line.is_empty(), "{args:?} printed nothing");
    }
    let out = child.wait_with_output().expect("waits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn closed_stdout_is_a_quiet_success() {
    for args in [
        &["sim", "overflow", "--backlog", "2", "--clients", "8"][..],
        &[
            "sim",
            "overflow",
            "--backlog",
            "2",
            "--clients",
            "8",
            "--json",
        ],
        &["sim", "synflood", "--backlog", "2", "--syns", "20"],
        &["sim", "transfer", "--bytes", "10000"],
        &["sim", "transfer", "--bytes", "10000", "--json"],
        &["sim", "compare"],
        &["sim", "compare", "--json"],
        &["sim", "compare", "burst"],
        &["sim", "run", "slow-accept", "--csv"],
        &["sim", "run", "burst", "--json"],
        &["sysctl"],
        &["sysctl", "--json"],
        &["--help"],
        &["sim", "overflow", "--help"],
    ] {
        for read_first_line in [false, true] {
            let (code, err) = synq_into_closed_pipe(args, read_first_line);
            assert_eq!(code, 0, "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(err.is_empty(), "{args:?}: {err}");
        }
    }
}

#[test]
fn ten_million_syns_at_once() {
    // More than a drain of the simulator may hold (it used to panic at one million).
    let v = json(&[
        "sim",
        "synflood",
        "--backlog",
        "5",
        "--syns",
        "10000000",
        "--json",
    ]);
    // Six requests (backlog + 1) and their retransmissions; cookies for every other SYN.
    assert_eq!(v["counters"]["TcpExtSyncookiesSent"], 10_000_000 - 6);
    assert_eq!(v["listener"]["syn_recv"], 6);
    let (code, _, err) = synq(&["sim", "synflood", "--backlog", "5", "--syns", "10000001"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--syns 10000001: at most 10000000"), "{err}");
}

/// Exit status 2 with one line on stderr that names `flag`.
fn refused(args: &[&str], flag: &str) {
    let (code, out, err) = synq(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?}: {out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("synq: error: "), "{args:?}: {err}");
    assert!(err.contains(flag), "{args:?} should name {flag}: {err}");
}

#[test]
fn huge_numbers_are_refused_with_their_bound() {
    let max = "18446744073709551615";
    let tx = ["sim", "transfer"];
    let with = |base: &[&'static str], extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    refused(&with(&tx, &["--bytes", max]), "--bytes");
    refused(
        &with(&tx, &["--bytes", "1099511627777"]),
        "at most 1099511627776",
    );
    refused(&with(&tx, &["--rtt-us", max]), "--rtt-us");
    refused(&with(&tx, &["--rtt-us", "60000001"]), "at most 60000000");
    refused(&with(&tx, &["--time-limit", max]), "--time-limit");
    refused(&with(&tx, &["--loss", "nan"]), "--loss");
    let ov = ["sim", "overflow", "--backlog", "5", "--clients", "3"];
    refused(&with(&ov, &["--rtt-us", max]), "--rtt-us");
    refused(&with(&ov, &["--duration", "1e300"]), "--duration");
    refused(&with(&ov, &["--duration", "inf"]), "--duration");
    refused(&with(&ov, &["--gap-ms", "1e300"]), "--gap-ms");
    refused(
        &[
            "sim",
            "overflow",
            "--backlog",
            "5",
            "--clients",
            "4000000000",
        ],
        "--clients",
    );
    let sf = ["sim", "synflood", "--backlog", "5", "--syns", "3"];
    refused(&with(&sf, &["--rtt-us", max]), "--rtt-us");
    refused(&with(&sf, &["--rate", "1e300"]), "--rate");
    refused(&with(&sf, &["--duration", "1e7"]), "--duration");
    refused(
        &["sim", "synflood", "--backlog", "5", "--syns", "4000000000"],
        "--syns",
    );
    // Past their type, clap's own one line.
    refused(&with(&ov, &["--defer-accept", max]), "--defer-accept");
    refused(&with(&tx, &["--bytes", "18446744073709551616"]), "--bytes");
    let cmp = ["sim", "compare"];
    refused(&with(&cmp, &["--clients", "4000000000"]), "--clients");
    refused(&with(&cmp, &["--syns", "4000000000"]), "--syns");
    refused(&with(&cmp, &["--duration", "1e300"]), "--duration");
    // Huge but harmless: accepted, and the run ends.
    let v = json(&with(
        &tx,
        &[
            "--bytes",
            "100000",
            "--bandwidth",
            max,
            "--queue",
            max,
            "--seed",
            max,
            "--json",
        ],
    ));
    assert_eq!(v["intact"], true);
    let v = json(&with(&ov, &["--defer-accept", "4294967295", "--json"]));
    assert_eq!(v["clients"]["established"], 3);
}

#[test]
fn a_failed_transfer_exits_1_after_its_report() {
    // One bit per second: not even the handshake completes before connect() gives up.
    let (code, out, err) = synq(&["sim", "transfer", "--bytes", "100000", "--bandwidth", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("intact               NO"), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("synq: error: transfer not intact"), "{err}");
    let (code, out, _) = synq(&[
        "sim",
        "transfer",
        "--bytes",
        "100000",
        "--bandwidth",
        "1",
        "--json",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["intact"], false);
}

#[test]
fn no_command_prints_the_usage() {
    for (args, usage) in [
        (&[][..], "Usage: synq <COMMAND>"),
        (&["sim"], "Usage: synq sim <COMMAND>"),
    ] {
        let (code, out, err) = synq(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(usage), "{args:?}: {err}");
        assert!(err.contains("overflow") || err.contains("sim "), "{err}");
    }
}

#[test]
fn typos_get_a_suggestion_on_the_one_line() {
    for (args, tip) in [
        (&["sim", "overflw"][..], "'overflow'"),
        (&["sysctll"], "'sysctl'"),
        (
            &["sim", "overflow", "--backlogg", "3", "--clients", "3"],
            "'--backlog'",
        ),
        (&["sysctl", "--jsn"], "'--json'"),
    ] {
        let (code, _, err) = synq(args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("synq: error: "), "{err}");
        assert!(
            err.contains("tip: ") && err.contains(tip),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn readme_shows_what_compare_prints() {
    let readme = include_str!("../../../README.md");
    let start = "-- sim compare --plot synq-compare.png\n```\n";
    let block = &readme[readme.find(start).expect("README shows sim compare") + start.len()..];
    let block = &block[block.find("```\n").expect("the table follows") + 4..];
    let table = &block[..block.find("```").expect("closed")];
    let plot = std::env::temp_dir().join(format!("synq-readme-{}.png", std::process::id()));
    let (code, out, err) = synq(&["sim", "compare", "--plot", plot.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, table);
    assert!(std::fs::metadata(&plot).unwrap().len() > 10_000);
    std::fs::remove_file(&plot).unwrap();
}

#[test]
fn compare_has_no_model_flag() {
    let (code, help, _) = synq(&["sim", "compare", "--help"]);
    assert_eq!(code, 0);
    assert!(!help.contains("--model <"), "{help}");
    assert!(help.contains("--models <"), "{help}");
    assert!(help.contains("--sysctl "), "{help}");
    let (_, help, _) = synq(&["sim", "overflow", "--help"]);
    assert!(help.contains("--model"), "{help}");
}

#[test]
fn sysctl_json_is_one_object() {
    let v = json(&["sysctl", "--json"]);
    let m = v.as_object().unwrap();
    let (_, lines, _) = synq(&["sysctl"]);
    assert_eq!(m.len(), lines.lines().count());
    assert_eq!(v["net.core.somaxconn"], 4096);
    assert_eq!(v["net.ipv4.tcp_rmem"], "4096\t131072\t33554432");
    assert_eq!(v["synq.listen_model"], "linux");
    let v = json(&[
        "sysctl",
        "--json",
        "--sysctl",
        "net.ipv4.tcp_synack_retries=255",
        "net.ipv4.tcp_synack_retries",
    ]);
    assert_eq!(v, serde_json::json!({"net.ipv4.tcp_synack_retries": 255}));
}

#[test]
fn sysctl_conf_with_unknown_names_warns_or_with_strict_refuses() {
    let dir = std::env::temp_dir().join(format!("synq-cli-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("sysctl.conf");
    std::fs::write(
        &f,
        "# a real one\nkernel.printk = 3 4 1 3\nvm.swappiness=10\n; more\n\
         -net.ipv4.conf.all.rp_filter = 1\nnet.core.somaxconn = 1024\nkernel/sysrq = 0\n\
         -vm.nonexistent = 4\n",
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let (code, out, err) = synq(&["sysctl", "--sysctl-file", path, "net.core.somaxconn"]);
    let (strict, sout, serr) = synq(&[
        "sysctl",
        "--strict",
        "--sysctl-file",
        path,
        "net.core.somaxconn",
    ]);
    let (run, _, rerr) = synq(&[
        "sim",
        "overflow",
        "--backlog",
        "2",
        "--clients",
        "3",
        "--sysctl-file",
        path,
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "net.core.somaxconn = 1024\n");
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(
        warnings.len(),
        3,
        "one per unknown name, none for `-` lines: {err}"
    );
    for (w, (line, name)) in warnings.iter().zip([
        (2, "kernel.printk"),
        (3, "vm.swappiness"),
        (7, "kernel.sysrq"),
    ]) {
        assert!(w.starts_with("synq: warning: "), "{w}");
        assert!(w.contains(&format!("line {line}: {name} ")), "{w}");
    }
    assert_eq!(strict, 2, "{serr}");
    assert!(sout.is_empty());
    assert_eq!(serr.trim_end().lines().count(), 1, "{serr}");
    assert!(
        serr.contains("kernel.printk") && serr.contains("--strict"),
        "{serr}"
    );
    assert_eq!(run, 0, "{rerr}");
}

#[test]
fn every_value_linux_takes_is_taken() {
    for (name, v) in [
        ("net.ipv4.tcp_synack_retries", "255"),
        ("net.ipv4.tcp_syncookies", "3"),
        ("net.ipv4.tcp_retries2", "255"),
        ("net.ipv4.tcp_max_syn_backlog", "-1"),
        ("net.ipv4.tcp_fin_timeout", "0"),
        ("net.ipv4.tcp_rmem", "1\t1\t1"),
    ] {
        let (code, out, err) = synq(&["sysctl", "--sysctl", &format!("{name}={v}"), name]);
        assert_eq!(code, 0, "{name}={v}: {err}");
        assert_eq!(out, format!("{name} = {v}\n"));
    }
}

/// `--sysctl-from-host` in a fresh network namespace whose knobs are set to values Linux
/// accepts and synq once refused (root and unshare(1) needed; SKIP otherwise).
#[test]
fn sysctl_from_host_takes_legal_host_values() {
    let set = [
        ("net.ipv4.tcp_synack_retries", "255"),
        ("net.ipv4.tcp_syncookies", "9"),
        ("net.ipv4.tcp_retries2", "0"),
        ("net.ipv4.tcp_abort_on_overflow", "2"),
        ("net.ipv4.tcp_max_syn_backlog", "-5"),
        ("net.ipv4.tcp_fin_timeout", "-1"),
        // Out of order, and at least 4096 each: 6.18.44 refuses less for tcp_rmem (earlier
        // 6.18 builds took 1), and a refusal here would only skip the test.
        ("net.ipv4.tcp_rmem", "8192 4096 4096"),
        // A pair that bounds each other: legal together, the second refused against our
        // default range, so the import must not take them one by one in a single pass.
        ("net.ipv4.ip_local_port_range", "50000 60000"),
        ("net.ipv4.ip_unprivileged_port_start", "40000"),
        // Always built into Linux (a host default such as bbr gets a warning instead).
        ("net.ipv4.tcp_congestion_control", "reno"),
    ];
    // The marker says the namespace and its knobs are there; synq's own verdict follows.
    let script: String = set
        .iter()
        .map(|(n, v)| format!("sysctl -q -w '{n}={v}' && "))
        .collect::<String>()
        + "echo knobs-set >&2 && exec \"$0\" sysctl --sysctl-from-host --json";
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script, env!("CARGO_BIN_EXE_synq")])
        .output();
    let out = match out {
        Ok(o) if String::from_utf8_lossy(&o.stderr).starts_with("knobs-set\n") => o,
        other => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP sysctl_from_host_takes_legal_host_values: no namespace to set knobs in \
                 ({other:?})"
            );
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err, "knobs-set\n");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["net.ipv4.tcp_synack_retries"], 255);
    assert_eq!(v["net.ipv4.tcp_congestion_control"], "reno");
    assert_eq!(v["net.ipv4.tcp_syncookies"], 9);
    assert_eq!(v["net.ipv4.tcp_retries2"], 0);
    assert_eq!(
        v["net.ipv4.tcp_abort_on_overflow"], 1,
        "on, as any non-zero"
    );
    assert_eq!(v["net.ipv4.tcp_max_syn_backlog"], -5);
    assert_eq!(v["net.ipv4.tcp_fin_timeout"], -1);
    assert_eq!(v["net.ipv4.tcp_rmem"], "8192\t4096\t4096");
    assert_eq!(v["net.ipv4.ip_local_port_range"], "50000\t60000");
    assert_eq!(v["net.ipv4.ip_unprivileged_port_start"], 40000);
}

#[test]
fn sim_pcap_holds_the_servers_packets_in_virtual_time() {
    let dir = std::env::temp_dir().join(format!("synq-sim-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("overflow.pcap");
    let (code, out, err) = synq(&[
        "sim",
        "overflow",
        "--backlog",
        "2",
        "--clients",
        "5",
        "--json",
        "--pcap",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let c = &v["counters"];
    let pkts = read_pcap(&path);
    // Every packet the server received and every one it sent, nothing else.
    let expect = c["IpInReceives"].as_u64().unwrap() + c["IpOutRequests"].as_u64().unwrap();
    assert_eq!(pkts.len() as u64, expect);
    // The first client's SYN arrives half a round trip (50 µs) in; times never go back.
    let (t0, syn) = &pkts[0];
    assert_eq!(*t0, 50);
    assert_eq!((syn[9], syn[20 + 13]), (6, 0x02), "an IPv4 TCP SYN");
    assert_eq!(&syn[16..20], &[192, 0, 2, 2], "to the server");
    assert!(pkts.windows(2).all(|w| w[0].0 <= w[1].0));
    // Transfer over IPv6: the receiver's side, data in and ACKs out.
    let path6 = dir.join("transfer6.pcap");
    let (code, _, err) = synq(&[
        "sim",
        "transfer",
        "--ipv6",
        "--bytes",
        "50000",
        "--pcap",
        path6.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pkts = read_pcap(&path6);
    assert!(pkts.iter().all(|(_, p)| p[0] >> 4 == 6));
    let payload: usize = pkts
        .iter()
        .filter(|(_, p)| p[24..40] == [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])
        .map(|(_, p)| {
            let tcp = &p[40..];
            p.len() - 40 - usize::from(tcp[12] >> 4) * 4
        })
        .sum();
    assert_eq!(
        payload, 50_000,
        "every byte delivered to the server is in the capture"
    );
    // A path that cannot be written is bad input.
    let (code, _, err) = synq(&[
        "sim",
        "synflood",
        "--backlog",
        "1",
        "--syns",
        "5",
        "--pcap",
        "/nonexistent/x.pcap",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ss_rows_list_the_servers_sockets() {
    // Backlog 2 holds 3 established connections, all unaccepted.
    let (code, out, err) = synq(&[
        "sim",
        "overflow",
        "--backlog",
        "2",
        "--clients",
        "6",
        "--ss",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let rows = v["sockets"].as_array().unwrap();
    assert_eq!(rows.len() as u64, v["listener"]["recv_q"].as_u64().unwrap());
    assert!(rows.iter().all(|r| r["state"] == "ESTABLISHED"), "{rows:?}");
    // Half-open requests are rows too, with their SYN-ACK retransmission count (one, at 1 s).
    let (code, out, err) = synq(&[
        "sim",
        "synflood",
        "--backlog",
        "2",
        "--syns",
        "5",
        "--sysctl",
        "net.ipv4.tcp_syncookies=0",
        "--ss",
    ]);
    assert_eq!(code, 0, "{err}");
    let syn_recv: Vec<&str> = out.lines().filter(|l| l.starts_with("SYN-RECV ")).collect();
    assert_eq!(syn_recv.len(), 3, "{out}");
    // Without --ss, no rows and no key.
    let (_, out, _) = synq(&[
        "sim",
        "overflow",
        "--backlog",
        "2",
        "--clients",
        "6",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v.get("sockets").is_none());
}

/// `synq stat` against a socket that answers what it likes: each bad reply is one line and
/// exit 1, never a panic or an empty table.
#[test]
fn stat_refuses_replies_that_are_not_a_servers() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("synq-stat-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (reply, says) in [
        (&b"{\"listeners\":5}\n"[..], "not a synq serve reply"),
        (b"\xff\xfe\n", "bad reply"),
        (b"[1,2]\n", "not a synq serve reply"),
        (b"", "bad reply"),
    ] {
        let path = dir.join("fake.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut line = String::new();
            let mut r = BufReader::new(conn);
            let _ = r.read_line(&mut line);
            let _ = r.get_mut().write_all(reply);
        });
        let (code, out, err) = synq(&["stat", "--control", path.to_str().unwrap()]);
        server.join().unwrap();
        assert_eq!(code, 1, "{reply:?}: {err}");
        assert!(out.is_empty(), "{reply:?}: {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "{reply:?}: {err}");
        assert!(err.contains(says), "{reply:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
