//! The conformance suite under `conformance/` on the models it is written for, and the
//! runner's own verdicts: scripts that must fail do, at the right line.

use std::path::{Path, PathBuf};
use synq_pktdrill::{Outcome, Runner};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scripts(dir: &str) -> Vec<PathBuf> {
    // `conformance/<dir>`, or this crate's `tests/kernel` (the replay's own scripts).
    let path = if dir == "tests/kernel" {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
    } else {
        repo().join("conformance").join(dir)
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(path)
        .expect("conformance directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
        .collect();
    v.sort();
    v
}

fn runner(model: &str) -> Runner {
    Runner {
        model: Some(model.parse().expect("model")),
        ..Runner::default()
    }
}

fn run(r: &Runner, path: &Path) -> Outcome {
    let src = std::fs::read_to_string(path).expect("script");
    r.run(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every script of `dir` passes on `model`; returns how many ran.
fn all_pass(dir: &str, model: &str) -> usize {
    let r = runner(model);
    let mut bad = Vec::new();
    let list = scripts(dir);
    for p in &list {
        if let Some(f) = run(&r, p).failure {
            bad.push(format!("{}: {f}", p.display()));
        }
    }
    assert!(bad.is_empty(), "failing scripts:\n{}", bad.join("\n"));
    list.len()
}

#[test]
fn linux_scripts_pass_on_the_linux_model() {
    assert!(all_pass("linux", "linux") >= 20);
}

/// The kernel replay's own scripts (active open, blocking accept, TSO chunks, ...) hold on
/// the linux model too.
#[test]
fn replay_scripts_pass_on_the_linux_model() {
    assert!(all_pass("tests/kernel", "linux") >= 8);
}

#[test]
fn bsd_scripts_pass_on_the_bsd_model() {
    assert!(all_pass("bsd", "bsd") >= 5);
}

#[test]
fn freebsd_scripts_pass_on_the_freebsd_model() {
    assert!(all_pass("freebsd", "freebsd") >= 6);
}

#[test]
fn linux_410_scripts_pass_on_the_linux_410_model() {
    assert!(all_pass("linux-4.10", "linux-4.10") >= 1);
}

/// The suite tells the models apart: a script written for one fails on another.
#[test]
fn scripts_fail_on_the_wrong_model() {
    let failing = |dir: &str, model: &str| {
        let r = runner(model);
        scripts(dir)
            .iter()
            .filter(|p| run(&r, p).failure.is_some())
            .count()
    };
    // The backlog scripts (the wire-level ones hold for every BSD model).
    assert!(failing("bsd", "bsd-exact") >= 5);
    assert!(failing("linux", "bsd") >= 10);
    assert_eq!(failing("linux-4.10", "linux"), 1);
    // The syncache tells itself apart from both other families, and they from it.
    assert_eq!(failing("freebsd", "bsd"), scripts("freebsd").len());
    assert_eq!(failing("freebsd", "linux"), scripts("freebsd").len());
    assert!(failing("bsd", "freebsd") >= 4);
}

const BASE: &str = "\
`../common/defaults.sh`
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    < S 0:0(0) win 32792 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0    > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+1    > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+.1   < . 1:1(0) ack 1 win 257
+0    accept(3, ..., ...) = 4
+0    write(4, ..., 10) = 10
+0    > P. 1:11(10) ack 1
+0    %{ assert tcpi_state == TCP_ESTABLISHED }%
+0    `nstat -az TcpExtTCPSynRetrans | grep -q \" 1 \"`
";

fn verdict(src: &str) -> Option<synq_pktdrill::Failure> {
    runner("linux").run(src).expect("parses").failure
}

#[test]
fn the_base_script_passes() {
    assert_eq!(verdict(BASE), None);
}

/// Each change to a correct script makes it fail at the changed line, for the right reason.
#[test]
fn every_kind_of_mismatch_fails_at_its_line() {
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>\n+1",
            "ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>\n+1",
            6,
            "options",
        ),
        (
            "> S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>\n+1",
            "> S 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>\n+1",
            6,
            "flags",
        ),
        ("+1    > S.", "+2    > S.", 7, "wrong time"),
        ("+1    > S.", "+.5   > S.", 7, "wrong time"),
        ("> P. 1:11(10) ack 1", "> P. 1:12(11) ack 1", 11, "payload"),
        ("> P. 1:11(10) ack 1", "> P. 2:12(10) ack 1", 11, "sequence"),
        ("> P. 1:11(10) ack 1", "> P. 1:11(10) ack 2", 11, "ack"),
        (
            "> P. 1:11(10) ack 1",
            "> P. 1:11(10) ack 1 win 7",
            11,
            "window",
        ),
        (
            "> P. 1:11(10) ack 1",
            "> P. 1:11(10) ack 1 <nop,nop>",
            11,
            "options",
        ),
        (
            "write(4, ..., 10) = 10",
            "write(4, ..., 10) = 9",
            10,
            "unexpected result",
        ),
        (
            "accept(3, ..., ...) = 4",
            "accept(3, ..., ...) = -1 EAGAIN",
            9,
            "unexpected result",
        ),
        (
            "TCP_ESTABLISHED }%",
            "TCP_SYN_RECV }%",
            12,
            "assertion failed",
        ),
        ("\" 1 \"", "\" 2 \"", 13, "exited with status 1"),
    ];
    for (from, to, line, why) in cases {
        assert!(BASE.contains(from), "{from}");
        let f =
            verdict(&BASE.replacen(from, to, 1)).unwrap_or_else(|| panic!("{to:?} should fail"));
        assert_eq!(f.line, *line, "{to:?}: {f}");
        assert!(f.to_string().contains(why), "{to:?}: {f}");
    }
}

/// An outbound segment nobody expected fails the script when a later line expects another
/// one, and at the end under `--strict`.
#[test]
fn an_unexpected_segment_fails() {
    // Dropping the line that expects the SYN-ACK resend: the resend is then compared with
    // the data segment.
    let src = BASE.replacen(
        "+1    > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>\n",
        "+1    `true`\n",
        1,
    );
    let f = verdict(&src).expect("fails");
    assert_eq!(f.line, 11);
    assert!(
        f.actual.as_deref().is_some_and(|a| a.starts_with("> S.")),
        "{f}"
    );
    // Without a later `>` line the extra segment passes, as in packetdrill; --strict fails it.
    let src = BASE.split_inclusive('\n').take(6).collect::<String>() + "+2 `true`\n";
    assert_eq!(verdict(&src), None);
    let strict = format!("--strict\n{src}");
    let f = verdict(&strict).expect("strict fails");
    assert!(f.msg.contains("--strict"), "{f}");
}

#[test]
fn a_blocking_call_returns_on_time_or_fails() {
    let script = |end: &str| {
        format!(
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n\
             +0 listen(3, 1) = 0\n+0...{end} accept(3, ..., ...) = 4\n\
             +0 < S 0:0(0) win 1000 <mss 1460>\n+0 > S. 0:0(0) ack 1 <mss 1460>\n\
             +.3 < . 1:1(0) ack 1 win 1000\n"
        )
    };
    assert_eq!(verdict(&script("0.3")), None);
    let f = verdict(&script("0.5")).expect("returns early");
    assert_eq!(f.line, 4);
    assert!(f.msg.contains("returned at 0.300000 s"), "{f}");
    let f = verdict(&script("0.1")).expect("late");
    assert_eq!(f.line, 4);
}

#[test]
fn ipv6_and_mapped_addresses_run() {
    let v6 = "--ip_version=ipv6\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
              +0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n\
              +0 < S 0:0(0) win 1000 <mss 1440>\n+0 > S. 0:0(0) ack 1 <mss 1440>\n";
    assert_eq!(verdict(v6), None);
    let mapped = v6
        .replace("ipv6", "ipv4-mapped-ipv6")
        .replace("<mss 1440>", "<mss 1460>");
    assert_eq!(verdict(&mapped), None);
    // The command line wins over the script's own option line.
    let r = Runner {
        options: vec![("mtu".into(), Some("1520".into()))],
        ..runner("linux")
    };
    let f = r.run(v6).expect("parses").failure.expect("MSS 1460 now");
    assert!(f.msg.contains("options"), "{f}");
}

#[test]
fn defines_substitute_words() {
    let src = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n\
               +0 listen(3, BACKLOG) = 0\n+0 CMD\n";
    let r = Runner {
        defines: vec![
            ("BACKLOG".into(), "7".into()),
            (
                "CMD".into(),
                "`ss -Hlnt | tr -s ' ' | grep -q 'LISTEN 0 7 '`".into(),
            ),
        ],
        ..runner("linux")
    };
    assert!(r.run(src).expect("parses").failure.is_none());
}

/// `%{ }%` arithmetic is Python's: `//` and `%` round toward minus infinity, and the one
/// quotient an `i64` cannot hold fails its line instead of panicking.
#[test]
fn code_blocks_divide_as_python_does() {
    let ok = "0 %{\nassert 7 // -2 == -4\nassert 7 % -2 == -1\nassert -7 // 2 == -4\n\
              assert -7 % 2 == 1\nassert -8 // -2 == 4\nassert 7 // 2 == 3\n}%\n";
    assert_eq!(verdict(ok), None);
    for op in ["//", "%"] {
        let src = format!("0 %{{ assert (-9223372036854775807 - 1) {op} -1 == 0 }}%\n");
        let f = verdict(&src).expect("fails");
        assert_eq!(f.line, 1, "{f:?}");
        assert!(f.msg.contains("overflow"), "{op}: {f:?}");
    }
}

/// The listener of the scripts below, and a handshake on it.
const LISTEN: &str = "\
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
";

/// Inbound SACK blocks are in the stack's sequence space, as `ack` is: blocks written
/// relative to its ISN start recovery at once, not at the retransmission timeout.
#[test]
fn inbound_sack_blocks_are_shifted_by_the_stacks_isn() {
    let src = format!(
        "{LISTEN}+0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 10>
+.1 < . 1:1(0) ack 1 win 1000
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 6000) = 6000
+0 > P. 1:2001(2000) ack 1
+0 > P. 2001:4001(2000) ack 1
+0 > P. 4001:6001(2000) ack 1
+.1 < . 1:1(0) ack 1 win 1000 <nop,nop,sack 2001:6001>
+0 > . 1:2001(2000) ack 1
+.1 < . 1:1(0) ack 6001 win 1000
"
    );
    assert_eq!(verdict(&src), None);
}

/// `-D` reaches a fast-open cookie, as runners pass `TFO_COOKIE`.
#[test]
fn a_define_fills_a_fast_open_cookie() {
    let src = format!(
        "{LISTEN}+0 < S 0:0(0) win 32792 <mss 1460,nop,nop,FO TFO_COOKIE>\n+0 > S. 0:0(0) ack 1 <...>\n"
    );
    let r = Runner {
        defines: vec![("TFO_COOKIE".into(), "3021b9d7a3e1b8e1".into())],
        ..runner("linux")
    };
    assert!(r.run(&src).expect("parses").failure.is_none());
    // Leading zeros of a cookie written out stay.
    let literal = src.replace("TFO_COOKIE", "0021b9d7a3e1b8e1");
    assert_eq!(verdict(&literal), None);
}

/// `*` waits as long as a keepalive takes (7200 s of virtual time, past the old 600 s).
#[test]
fn any_time_waits_for_a_keepalive() {
    let src = format!(
        "{LISTEN}+0 < S 0:0(0) win 32792 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 setsockopt(4, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0
* > . 0:0(0) ack 1
"
    );
    assert_eq!(verdict(&src), None);
}

/// What upstream's grammar refuses is refused at its line: no events, a payload or
/// window past 16 bits, a hex number past i64 (it was read as -1).
#[test]
fn out_of_range_scripts_are_refused() {
    let parse_error = |src: &str| runner("linux").run(src).expect_err("refused");
    for src in [
        "",
        "// only a comment\n",
        "--tolerance_usecs=10000\n",
        "`true`\n",
    ] {
        let e = parse_error(src).to_string();
        assert!(e.contains("no timed events"), "{src:?}: {e}");
    }
    let handshake = format!("{LISTEN}+0 < S 0:0(0) win 32792 <mss 1000>\n");
    for (from, to, what) in [
        (
            "0:0(0) win 32792",
            "1:4000000001(4000000000) win 32792",
            "payload length",
        ),
        ("win 32792", "win 4000000000", "window"),
        ("0:0(0) win", "0:0(0) urg 70000 win", "urgent pointer"),
    ] {
        let e = parse_error(&handshake.replace(from, to)).to_string();
        assert!(e.starts_with("line 5:") && e.contains(what), "{what}: {e}");
    }
    let e = parse_error("0 close(0xffffffffffffffff) = -1 EBADF\n").to_string();
    assert!(e.contains("bad number"), "{e}");
    // A message quoting megabytes of script is cut for the screen.
    let long = format!("0 `{}`\n", "|".repeat(1 << 20));
    let f = verdict(&long).expect("fails");
    assert!(f.to_string().len() < 1000, "{} bytes", f.to_string().len());
}
