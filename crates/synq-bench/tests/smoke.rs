//! `synq-bench --json` runs every measurement (briefly) and prints every key. Figures are
//! reported, never asserted: this only checks that each is there and measured.

use std::process::Command;

/// `synq-bench ARGS`, which must succeed: its standard output.
fn stdout_of(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_synq-bench"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `synq-bench ARGS`, which must refuse them: exit 2 and one line on stderr.
fn refused(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_synq-bench"))
        .args(args)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
}

/// Every line of `--only` output (`NAME: FIGURE ...`) has a figure above zero.
fn every_figure_above_zero(text: &str) {
    for line in text.lines() {
        let figure: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(figure > 0.0, "{line}");
    }
}

/// `synq-bench ARGS`, which must succeed and print one JSON object.
fn json_of(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&stdout_of(args)).expect("one JSON object")
}

#[test]
fn every_key_is_measured() {
    let v = json_of(&["--secs", "0.05", "--json"]);
    for key in [
        "handshakes_per_sec",
        "smoltcp_handshakes_per_sec",
        "handshake_floor_per_sec",
        "syn_per_sec_cookies0",
        "syn_per_sec_cookies0_batched",
        "syn_per_sec_cookies2",
        "syn_per_sec_accept_queue_full",
        "cookie_check_ns",
        "half_open_bytes",
        "half_open_bytes_ipv6",
        "established_idle_bytes",
        "bulk_bytes_per_sec",
        "smoltcp_bulk_bytes_per_sec",
        "machine_copy_bytes_per_sec",
        "machine_load_ns_8mib",
        "machine_load_ns_256mib",
        "siphash24_12b_ns",
        "siphash24_16b_ns",
        "siphash13_16b_ns",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    // The comparison: 16 handshakes at a time unless `--sockets` says otherwise.
    assert_eq!(v["handshake_sockets"], 16, "{v}");
    // A number with root and a network namespace, null without.
    let k = &v["kernel_handshakes_per_sec"];
    assert!(k.is_null() || k.as_f64().is_some_and(|x| x > 0.0), "{v}");
}

/// `--runs N`: the usual keys hold each figure's median over the runs, and every run is
/// kept, each measured in full.
#[test]
fn runs_report_the_median_of_each_figure() {
    let v = json_of(&["--runs", "3", "--secs", "0.02", "--json"]);
    assert_eq!(v["runs"], 3, "{v}");
    assert_eq!(v["handshake_sockets"], 16, "{v}");
    let each = v["each_run"].as_array().expect("every run");
    assert_eq!(each.len(), 3);
    for key in [
        "handshakes_per_sec",
        "syn_per_sec_cookies2",
        "bulk_bytes_per_sec",
    ] {
        let mut xs: Vec<f64> = each.iter().map(|r| r[key].as_f64().expect(key)).collect();
        assert!(xs.iter().all(|&x| x > 0.0), "{key}: {xs:?}");
        xs.sort_by(f64::total_cmp);
        assert_eq!(v[key].as_f64(), Some(xs[1]), "{key}: {xs:?}");
    }
    let text = String::from_utf8_lossy(&stdout_of(&["--runs", "2", "--secs", "0.02"])).into_owned();
    assert!(text.contains("medians of 2 runs"), "{text}");
    assert!(
        text.contains("each run's ratio, lowest-highest: handshakes/smoltcp "),
        "{text}"
    );
    assert!(text.contains(", floor/smoltcp "), "{text}");
    assert!(text.contains("handshake floor ("), "{text}");
    assert!(text.contains("SYNs/s over the runs"), "{text}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for secs in ["-1", "0", "NaN", "1e300", "x"] {
        refused(&[&format!("--secs={secs}")]);
    }
    refused(&["--only", "nothing", "--secs", "0.01"]);
    for n in ["0", "1025", "99999999999999999999", "-3", "x"] {
        refused(&[&format!("--sockets={n}"), "--only", "handshakes"]);
    }
    for n in ["0", "101", "99999999999999999999", "-1", "x"] {
        refused(&[&format!("--runs={n}"), "--secs", "0.01"]);
    }
    // The suite repeats; the single measurements and the other modes do not.
    refused(&["--runs", "2", "--only", "handshakes"]);
    refused(&["--runs", "2", "--scaling"]);
    refused(&["--runs", "2", "--latency-plot", "/nonexistent/x.svg"]);
}

/// More handshakes in flight than the default backlog of 128 holds: each side completes
/// every one of them (synq's round asserts it, smoltcp's too) and reports a rate.
#[test]
fn sockets_sets_the_handshakes_in_flight() {
    let out = stdout_of(&[
        "--only",
        "handshakes,smoltcp-handshakes",
        "--sockets",
        "300",
        "--secs",
        "0.05",
    ]);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    every_figure_above_zero(&text);
}

#[test]
fn scaling_measures_every_thread_count() {
    let v = json_of(&["--scaling", "--threads", "1,2", "--secs", "0.05", "--json"]);
    let rows = v["scaling"].as_array().expect("scaling rows");
    assert_eq!(rows.len(), 2, "{v}");
    for (row, n) in rows.iter().zip([1, 2]) {
        assert_eq!(row["threads"], n, "{v}");
        for key in ["handshakes_per_sec", "syn_per_sec_cookies2"] {
            assert!(row[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
        }
        // Over TUN: a number with root and the synq binary built, null without.
        let t = &row["tun_connections_per_sec"];
        assert!(t.is_null() || t.as_f64().is_some(), "{v}");
        for key in ["tun_passive_opens_per_shard", "tun_syncookies_per_shard"] {
            if let Some(shards) = row[key].as_array() {
                assert_eq!(shards.len(), n, "{key}: {v}");
            }
        }
    }
}

#[test]
fn scaling_thread_counts_are_checked() {
    for bad in [
        &["--scaling", "--threads", "0"][..],
        &["--scaling", "--threads", "1,x"],
        &["--threads", "2"],
    ] {
        refused(bad);
    }
}

#[test]
fn only_runs_the_named_measurements_in_the_order_given() {
    let out = stdout_of(&[
        "--only",
        "smoltcp-handshakes,syn-cookies2,handshakes,cookie-check,syn-cookies0-batched,handshake-floor",
        "--secs",
        "0.05",
    ]);
    let text = String::from_utf8_lossy(&out);
    let names: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(
        names,
        [
            "smoltcp-handshakes",
            "syn-cookies2",
            "handshakes",
            "cookie-check",
            "syn-cookies0-batched",
            "handshake-floor"
        ],
        "{text}"
    );
    every_figure_above_zero(&text);
    // The flood's longest call (where it falls is the machine's business, not a test's).
    let out = stdout_of(&["--only", "rebuild-pause"]);
    let text = String::from_utf8_lossy(&out);
    let ms: f64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(ms > 0.0 && text.contains("of 2^20"), "{text}");
    // An unknown name anywhere in the list: nothing runs, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_synq-bench"))
        .args(["--only", "handshakes,nothing", "--secs", "0.05"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn only_with_json_prints_one_object() {
    let v = json_of(&[
        "--only",
        "cookie-check,handshakes,smoltcp-handshakes,machine",
        "--secs",
        "0.05",
        "--json",
    ]);
    let o = v.as_object().expect("an object");
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "one key per measurement, no more: {keys:?}");
    for k in ["cookie-check", "handshakes", "smoltcp-handshakes"] {
        assert!(o[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
    assert!(
        o["machine"]["siphash13_16b_ns"]
            .as_f64()
            .is_some_and(|x| x > 0.0),
        "{v}"
    );
}

#[test]
fn output_errors_are_one_line() {
    // A plot path that cannot be written is bad input, found before the minute of work.
    refused(&["--latency-plot", "/nonexistent/x.svg", "--secs", "0.05"]);
    // A full disk: one line and exit 1 (a closed pipe is exit 0, `cli.rs`'s business).
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP output_errors_are_one_line: no /dev/full"
        );
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_synq-bench"))
        .args(["--only", "syn-cookies2", "--secs", "0.02"])
        .stdout(full)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("stdout"), "{err}");
}

#[test]
fn machine_limits_are_measured() {
    let out = stdout_of(&["--only", "machine", "--secs", "0.05"]);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("machine, one core: copy"), "{text}");
    // Copy bandwidth, two load latencies, three hash costs, and the sizes between them.
    let figures: Vec<f64> = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(figures.len() >= 6, "{text}");
    assert!(figures.iter().all(|&x| x > 0.0), "{text}");
}

/// The latency figure draws its SVG with its text, however the workspace was built (plotters
/// measures text with a registered font once the CLI's plots enable that, which a
/// workspace build does for synq-bench too): every rate and cookie mode in the table.
#[test]
fn latency_plot_draws_its_text() {
    let path = std::env::temp_dir().join(format!("synq-bench-latency-{}.svg", std::process::id()));
    let out = stdout_of(&["--latency-plot", path.to_str().unwrap(), "--secs", "0.08"]);
    let table = String::from_utf8(out).unwrap();
    // A header, then 9 rates for each of cookies 0, 1 and 2.
    assert_eq!(table.lines().count(), 1 + 27, "{table}");
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for text in [
        "Legitimate connect latency",
        "offered flood rate, SYN/s",
        "p99 latency",
    ] {
        assert!(svg.contains(text), "{text} missing from the SVG");
    }
}

/// 2^20 connections opened and accepted: the longest server and client calls, each with
/// the connection it came at (how long they take is the machine's business).
#[test]
fn conn_pause_reports_both_sides() {
    let out = stdout_of(&["--only", "conn-pause"]);
    let text = String::from_utf8_lossy(&out);
    let figures: Vec<f64> = text
        .split([' ', ';'])
        .filter_map(|w| w.parse().ok())
        .collect();
    // Two durations in ms, each followed by its connection.
    assert_eq!(figures.len(), 4, "{text}");
    assert!(figures[0] > 0.0 && figures[2] > 0.0, "{text}");
    assert!(
        figures[1] < 1_048_576.0 && figures[3] < 1_048_576.0,
        "{text}"
    );
    assert!(
        text.starts_with("conn-pause: ") && text.contains("server handle_packet"),
        "{text}"
    );
    assert!(
        text.contains("client connect") && text.contains("of 2^20"),
        "{text}"
    );
}
