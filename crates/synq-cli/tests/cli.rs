//! The command-line contract: JSON keys, exit codes, one-line errors.

use std::process::Command;

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
        &["sim", "transfer", "--sysctl", "net.ipv4.tcp_syncookies=9"],
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
