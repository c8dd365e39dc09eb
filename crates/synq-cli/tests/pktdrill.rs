//! `synq pktdrill`: PASS/FAIL lines, exit statuses (0 all pass, 1 a failure, 2 bad input),
//! `--json`, and the conformance suite through the command line.

mod common;

use common::synq;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script(dir: &str, name: &str, text: &str) -> String {
    let d = std::env::temp_dir().join(format!("synq-pktdrill-{}-{dir}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    let p = d.join(name);
    std::fs::write(&p, text).expect("write script");
    p.to_string_lossy().into_owned()
}

const GOOD: &str = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n\
                    +0 listen(3, 1) = 0\n+0 < S 0:0(0) win 1000 <mss 1460>\n\
                    +0 > S. 0:0(0) ack 1 <mss 1460>\n";

#[test]
fn passing_and_failing_scripts() {
    let good = script("a", "good.pkt", GOOD);
    let bad = script(
        "a",
        "bad.pkt",
        &GOOD.replace("S. 0:0(0) ack 1", "S. 0:0(0) ack 2"),
    );
    let (code, out, err) = synq(&["pktdrill", &good]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("PASS "), "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");

    let (code, out, err) = synq(&["pktdrill", &good, &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL ") && out.contains("bad.pkt:line 5: ack 1 instead of 2"),
        "{out}"
    );
    assert!(
        out.contains("expected: > S. 0:0(0) ack 2 <mss 1460>"),
        "{out}"
    );
    assert!(out.contains("actual:   > S. 0:0(0) ack 1 win "), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, out, _) = synq(&["pktdrill", "--json", &good, &bad]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["passed"], 1);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["scripts"][1]["line"], 5);
    assert_eq!(v["scripts"][1]["pass"], false);

    // A script that does not parse fails with its line; the others still run.
    let broken = script("a", "broken.pkt", "0 `true`\n+0 < S 0:0(0)\n");
    let (code, out, _) = synq(&["pktdrill", &broken, &good]);
    assert_eq!(code, 1);
    assert!(
        out.contains("broken.pkt: line 2: an inbound packet needs 'win N'"),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    // ... and in JSON, the same line.
    let (code, out, _) = synq(&["pktdrill", "--json", &broken]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["scripts"][0]["line"], 2, "{v}");
}

#[test]
fn options_override_the_script() {
    let v6 = script("b", "v6.pkt", &format!("--ip_version=ipv6\n{GOOD}"));
    // Over IPv6 with MTU 1500 the SYN-ACK says 1440: the script (1460) fails ...
    let (code, out, _) = synq(&["pktdrill", &v6]);
    assert_eq!(code, 1, "{out}");
    // ... and passes with packetdrill's runner MTU from the command line.
    let (code, out, _) = synq(&["pktdrill", "--mtu=1520", &v6]);
    assert_eq!(code, 0, "{out}");
    // --sysctl and --model reach the stack.
    let (code, out, _) = synq(&[
        "pktdrill",
        "--model",
        "bsd",
        "--sysctl",
        "net.core.somaxconn=8",
        &v6,
        "--mtu=1520",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = synq(&["pktdrill", "-v", &v6, "--mtu", "1520"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("line 5") && out.contains("> S. 0:0(0) ack 1 win"),
        "{out}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let good = script("c", "good.pkt", GOOD);
    for args in [
        vec!["pktdrill"],
        vec!["pktdrill", "--model", "solaris", &good],
        vec!["pktdrill", "--tolerance_usecs=abc", &good],
        vec!["pktdrill", "--no_such_option=1", &good],
        vec!["pktdrill", "--sysctl", "nonsense", &good],
        vec!["pktdrill", "/nonexistent/script.pkt"],
        vec!["pktdrill", "-x", &good],
        vec!["pktdrill", "--model", "linux", "--model", "bsd", &good],
    ] {
        let (code, out, err) = synq(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("synq: error: "), "{args:?}: {err}");
    }
    // `--help` anywhere is the help, as for every command (after a script too).
    for args in [
        vec!["pktdrill", "--help"],
        vec!["pktdrill", &good, "--help"],
    ] {
        let (code, out, err) = synq(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Usage: synq pktdrill"), "{args:?}: {out}");
    }
    // A sysctl synq does not know is a usage error too, named in one line.
    let (code, _, err) = synq(&["pktdrill", "--sysctl", "net.ipv4.no_such=1", &good]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("net.ipv4.no_such"), "{err}");
}

#[test]
fn the_conformance_suite_passes_through_the_command_line() {
    for (dir, model) in [
        ("linux", "linux"),
        ("bsd", "bsd"),
        ("linux-4.10", "linux-4.10"),
    ] {
        let mut args = vec!["pktdrill".to_string(), "--model".into(), model.into()];
        let mut files: Vec<String> = std::fs::read_dir(repo().join("conformance").join(dir))
            .expect("suite")
            .map(|e| e.expect("entry").path().to_string_lossy().into_owned())
            .filter(|p| p.ends_with(".pkt"))
            .collect();
        files.sort();
        let n = files.len();
        args.extend(files);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = synq(&args);
        assert_eq!(code, 0, "{dir}: {out}{err}");
        assert!(out.contains(&format!("{n} passed, 0 failed")), "{out}");
    }
}
