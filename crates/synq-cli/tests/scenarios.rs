//! `synq sim run` and `synq sim compare SCENARIO`: the JSON keys spec/cli.md fixes, the
//! table, CSV, the timeline, plots that decode, captures that parse back, scenario files
//! and their errors.

mod common;

use common::{json, synq};
use std::path::{Path, PathBuf};
use std::process::Command;
use synq_sim::scenario::LISTEN_COUNTERS;

/// A fresh directory for one test's files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synq-scenarios-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn run_json_has_the_spec_keys() {
    let v = json(&["sim", "run", "flood-with-legit", "--json"]);
    assert_eq!(v["scenario"], "flood-with-legit");
    assert_eq!(v["model"], "linux");
    for k in ["attempted", "completed", "gave_up"] {
        assert!(v["legit"][k].is_u64(), "legit.{k} in {v}");
    }
    for k in ["p50", "p99", "max"] {
        assert!(
            v["legit"]["connect_ms"][k].is_number(),
            "connect_ms.{k} in {v}"
        );
    }
    for k in ["syn_recv", "recv_q"] {
        assert!(v["peak"][k].is_u64(), "peak.{k} in {v}");
    }
    // The keys of the `sim` scenarios, too.
    for k in ["recv_q", "send_q", "syn_recv"] {
        assert!(v["listener"][k].is_u64(), "listener.{k}");
    }
    for k in ["established", "syn_sent", "failed"] {
        assert!(v["clients"][k].is_u64(), "clients.{k}");
    }
    assert!(v["accepted_after"].is_u64());
    assert!(v["synacks_sent"].is_u64());
    for c in LISTEN_COUNTERS {
        assert!(v["counters"][c].is_u64(), "counter {c}");
    }
    assert_eq!(v["legit"]["attempted"], 1000);
    let l = &v["legit"];
    let sum = l["completed"].as_u64().unwrap()
        + l["gave_up"].as_u64().unwrap()
        + l["in_progress"].as_u64().unwrap();
    assert_eq!(sum, 1000);
    // The drop reasons add up to ListenDrops; cookies are the nstat counters.
    let d = &v["drops"];
    let parts: u64 = [
        "accept_queue_full",
        "syn_queue_full",
        "unproven_peer",
        "conn_table_full",
    ]
    .iter()
    .map(|k| d[k].as_u64().unwrap())
    .sum();
    assert_eq!(parts, d["total"].as_u64().unwrap());
    assert_eq!(d["total"], v["counters"]["TcpExtListenDrops"]);
    assert_eq!(v["cookies"]["sent"], v["counters"]["TcpExtSyncookiesSent"]);
    // Scenarios without clients have no `legit`.
    let f = json(&["sim", "run", "synflood", "--json"]);
    assert!(f.get("legit").is_none(), "absent without clients: {f}");
}

#[test]
fn latencies_without_samples_are_null_not_zero() {
    // Every packet of the clients' link is lost: nobody connects.
    let dir = std::env::temp_dir().join(format!("synq-null-lat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("lost.toml");
    std::fs::write(
        &f,
        "name = \"lost\"\nduration_s = 2\n[[listener]]\nbacklog = 5\n\
         [[clients]]\ncount = 3\narrival = \"burst\"\nlink = { loss = 1.0 }\n",
    )
    .unwrap();
    let v = json(&["sim", "run", f.to_str().unwrap(), "--json"]);
    let (code, csv, _) = synq(&["sim", "run", f.to_str().unwrap(), "--csv"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let l = &v["legit"];
    assert_eq!(
        (l["attempted"].as_u64(), l["connected"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );
    assert!(
        l["connect_ms"].is_null() && l["complete_ms"].is_null(),
        "{v}"
    );
    assert_eq!(code, 0);
    let mut rows = csv.lines().map(|r| r.split(',').collect::<Vec<_>>());
    let (head, row) = (rows.next().unwrap(), rows.next().unwrap());
    let at = |k: &str| row[head.iter().position(|h| *h == k).unwrap()];
    assert_eq!(
        (at("connect_p50_ms"), at("complete_max_ms")),
        ("", ""),
        "{csv}"
    );
}

#[test]
fn compare_json_is_run_json_per_model() {
    let v = json(&[
        "sim",
        "compare",
        "burst",
        "--models",
        "linux,bsd",
        "--seed",
        "3",
        "--json",
    ]);
    let models = v["models"].as_object().unwrap();
    assert_eq!(models.keys().collect::<Vec<_>>(), ["bsd", "linux"]);
    for m in ["linux", "bsd"] {
        let one = json(&["sim", "run", "burst", "--model", m, "--seed", "3", "--json"]);
        assert_eq!(models[m], one, "{m}");
    }
    // Different models, different figures (bsd drops SYNs where linux keeps them).
    assert_ne!(models["linux"]["legit"], models["bsd"]["legit"]);
}

#[test]
fn builtin_overflow_matches_sim_overflow() {
    let run = json(&["sim", "run", "overflow", "--model", "bsd", "--json"]);
    let classic = json(&[
        "sim",
        "overflow",
        "--backlog",
        "5",
        "--clients",
        "20",
        "--model",
        "bsd",
        "--json",
    ]);
    for k in ["listener", "clients", "synacks_sent", "counters"] {
        assert_eq!(run[k], classic[k], "{k}");
    }
}

#[test]
fn the_table_lists_every_model_with_the_json_figures() {
    let (code, out, err) = synq(&["sim", "compare", "slow-accept"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&["sim", "compare", "slow-accept", "--json"]);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("slow-accept: "));
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "model",
            "linux",
            "linux-4.10",
            "bsd",
            "bsd-exact",
            "freebsd"
        ]
    );
    let row = |label: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row {label:?} in\n{out}"));
        line[label.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    for (label, path) in [
        ("completed", ["legit", "completed"]),
        ("peak SYN-RECV", ["peak", "syn_recv"]),
        ("peak Recv-Q (accept queue)", ["peak", "recv_q"]),
    ] {
        let cells = row(label);
        for (i, m) in ["linux", "linux-4.10", "bsd", "bsd-exact"]
            .iter()
            .enumerate()
        {
            assert_eq!(
                cells[i],
                v["models"][m][path[0]][path[1]].to_string(),
                "{label} {m}"
            );
        }
    }
    let c = row("TcpExtListenOverflows");
    assert_eq!(
        c[2],
        v["models"]["bsd"]["counters"]["TcpExtListenOverflows"].to_string()
    );
    assert!(out.contains("connect p50 / p99 / max, ms"));
}

#[test]
fn csv_has_one_row_per_model_matching_json() {
    let (code, out, err) = synq(&["sim", "compare", "burst", "--models", "bsd,linux", "--csv"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()));
    assert_eq!(
        &rows[0][..4],
        ["scenario", "model", "seed", "legit_attempted"]
    );
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    let v = json(&["sim", "compare", "burst", "--models", "bsd,linux", "--json"]);
    for r in &rows[1..] {
        let m = r[1];
        assert_eq!(
            r[col("legit_completed")],
            v["models"][m]["legit"]["completed"].to_string()
        );
        assert_eq!(
            r[col("peak_recv_q")],
            v["models"][m]["peak"]["recv_q"].to_string()
        );
        assert_eq!(
            r[col("TcpExtListenDrops")],
            v["models"][m]["counters"]["TcpExtListenDrops"].to_string()
        );
    }
    assert_eq!(rows[1][1], "bsd");
    assert_eq!(rows[2][1], "linux");
}

#[test]
fn timeline_samples_the_queues_over_time() {
    let d = dir("timeline");
    let path = d.join("t.csv");
    let v = json(&[
        "sim",
        "compare",
        "overflow",
        "--models",
        "linux,bsd-exact",
        "--timeline",
        s(&path),
        "--json",
    ]);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "scenario,model,t_s,syn_recv,recv_q,drops,cookies_sent,completed,gave_up"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for m in ["linux", "bsd-exact"] {
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == m).collect();
        // overflow.toml samples every millisecond for 1.5 s.
        assert_eq!(mine.len(), 1501, "{m}");
        let t: Vec<f64> = mine.iter().map(|r| r[2].parse().unwrap()).collect();
        assert_eq!(t[0], 0.0);
        assert_eq!(*t.last().unwrap(), 1.5);
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        let recv_q: Vec<u64> = mine.iter().map(|r| r[4].parse().unwrap()).collect();
        assert_eq!(
            recv_q.iter().max(),
            v["models"][m]["peak"]["recv_q"].as_u64().as_ref()
        );
        let last = mine.last().unwrap();
        assert_eq!(last[4], v["models"][m]["listener"]["recv_q"].to_string());
        assert_eq!(
            last[5],
            v["models"][m]["counters"]["TcpExtListenDrops"].to_string()
        );
        // The queue fills within the first milliseconds and stays full.
        assert_eq!(recv_q[0], 0);
        assert_eq!(recv_q[100], *recv_q.last().unwrap());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn plots_decode_as_png_and_svg() {
    let d = dir("plot");
    let png_path = d.join("p.png");
    let (code, _, err) = synq(&[
        "sim",
        "compare",
        "flood-with-legit",
        "--models",
        "linux,bsd",
        "--plot",
        s(&png_path),
    ]);
    assert_eq!(code, 0, "{err}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (920, 760));
    // Not a blank image: several colours are drawn.
    let mut colours: Vec<&[u8]> = buf.chunks(3).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 10, "{} colours", colours.len());

    let svg_path = d.join("p.svg");
    let (code, _, err) = synq(&["sim", "run", "burst", "--plot", s(&svg_path)]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    for text in [
        "linux: queues",
        "virtual time, s",
        "Recv-Q, accept queue",
        "backlog (Send-Q) 128",
    ] {
        assert!(svg.contains(text), "{text} missing from the SVG");
    }

    let (code, _, err) = synq(&["sim", "run", "burst", "--plot", s(&d.join("p.gif"))]);
    assert_eq!(code, 2);
    assert!(err.contains(".svg or .png"), "{err}");
    // The default comparison writes its plot too, and prints the same table.
    let def = d.join("compare.svg");
    let (code, with_plot, err) = synq(&["sim", "compare", "--plot", s(&def)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(with_plot, synq(&["sim", "compare"]).1);
    let svg = std::fs::read_to_string(&def).unwrap();
    assert!(svg.contains("overflow: ") && svg.contains("synflood: "));
    std::fs::remove_dir_all(&d).unwrap();
}

/// The packets of a capture file, without their times.
fn capture(path: &Path) -> Vec<Vec<u8>> {
    common::read_pcap(path)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn flood_with_legit_capture_parses_back_with_every_packet() {
    let d = dir("pcap");
    let path = d.join("f.pcap");
    let v = json(&[
        "sim",
        "run",
        "flood-with-legit",
        "--pcap",
        s(&path),
        "--json",
    ]);
    let packets = capture(&path);
    let c = &v["counters"];
    // The server's every packet in and out (the links lose none in this scenario).
    let expected = c["IpInReceives"].as_u64().unwrap() + c["IpOutRequests"].as_u64().unwrap();
    assert_eq!(packets.len() as u64, expected);
    // TCP flags byte of IPv4 packets with 20-byte headers.
    let flags = |p: &Vec<u8>| p[20 + 13];
    let syns = packets.iter().filter(|p| flags(p) == 0x02).count();
    let synacks = packets.iter().filter(|p| flags(p) == 0x12).count() as u64;
    assert!(syns >= 200_000 + 1000, "{syns}");
    assert_eq!(synacks, v["synacks_sent"].as_u64().unwrap());
    // Compare writes one file per model.
    let (code, _, err) = synq(&[
        "sim",
        "compare",
        "synflood",
        "--models",
        "linux,bsd",
        "--pcap",
        s(&d.join("c.pcap")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!capture(&d.join("c.linux.pcap")).is_empty());
    assert!(!capture(&d.join("c.bsd.pcap")).is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn scenario_files_run_and_forged_acks_hit_the_cookie_check() {
    let d = dir("file");
    let path = d.join("mine.toml");
    std::fs::write(
        &path,
        r#"
name = "mine"
description = "a flood, forged ACKs and a few clients with their own slow link"
duration_s = 3
sysctls = { "net.ipv4.tcp_syncookies" = 2 }

[[listener]]
port = 80
backlog = 16
accept = { every_ms = 5 }

[[clients]]
name = "far"
count = 50
arrival = "fixed"
rate_per_s = 100
request_bytes = 8
response_bytes = 100000
link = { delay_us = 20000, bandwidth_bps = 10000000 }

[[attacker]]
kind = "syn-flood"
count = 5000
rate_per_s = 5000

[[attacker]]
kind = "forged-ack"
count = 2000
rate_per_s = 1000
start_ms = 100
"#,
    )
    .unwrap();
    let v = json(&["sim", "run", s(&path), "--json"]);
    assert_eq!(v["scenario"], "mine");
    assert_eq!(v["attack_packets"], 7000);
    // tcp_syncookies = 2: every SYN gets a cookie and no request is kept.
    assert_eq!(v["peak"]["syn_recv"], 0);
    assert_eq!(v["cookies"]["failed"], 2000);
    assert_eq!(v["counters"]["TcpExtSyncookiesFailed"], 2000);
    assert_eq!(v["legit"]["completed"], 50);
    assert_eq!(v["cookies"]["accepted"], 50);
    // 40 ms round trips: nobody connects faster.
    assert!(v["legit"]["connect_ms"]["p50"].as_f64().unwrap() >= 40.0);
    // --sysctl on the command line comes after the file's.
    let v = json(&[
        "sim",
        "run",
        s(&path),
        "--sysctl",
        "net.ipv4.tcp_syncookies=0",
        "--json",
    ]);
    assert_eq!(v["cookies"]["sent"], 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_scenarios_are_one_line_and_exit_2() {
    let d = dir("bad");
    let cases: [(&str, &str); 4] = [
        ("name = \"x\"\nduration_s = 1\n[[listener]]\nbacklog = 5\nbogus = 1\n", "bogus"),
        ("name = \"x\"\nduration_s = -1\n[[listener]]\nbacklog = 5\n", "duration_s"),
        ("name = \"x\"\nduration_s = 1\n[[listener]]\nbacklog = 5\naccept = \"sometimes\"\n", "sometimes"),
        ("name = \"x\"\nduration_s = 1\nsysctls = { \"net.ipv4.tcp_nope\" = 1 }\n[[listener]]\nbacklog = 5\n", "tcp_nope"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let p = d.join(format!("{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let (code, out, err) = synq(&["sim", "run", s(&p)]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    for (args, needle) in [
        (
            vec!["sim", "run", "flod-with-legit"],
            "did you mean \"flood-with-legit\"",
        ),
        (vec!["sim", "run", "/nonexistent/x.toml"], "cannot read"),
        (
            vec!["sim", "compare", "burst", "--models", "linux,solaris"],
            "solaris",
        ),
        (
            vec!["sim", "compare", "burst", "--backlog", "5"],
            "--backlog",
        ),
        (vec!["sim", "run", "burst", "--model", "vms"], "vms"),
        (vec!["sim", "run", "burst", "--json", "--csv"], "--csv"),
    ] {
        let (code, _, err) = synq(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn same_seed_same_output_and_no_progress_bar_off_a_terminal() {
    let a = synq(&["sim", "compare", "flood-with-legit", "--seed", "9"]);
    let b = synq(&["sim", "compare", "flood-with-legit", "--seed", "9"]);
    assert_eq!(a.0, 0);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, "", "stderr is not a terminal: no progress bar");
    let c = synq(&["sim", "compare", "flood-with-legit", "--seed", "10"]);
    assert_ne!(a.1, c.1);
}

#[test]
fn readme_shows_what_the_scenario_comparison_prints() {
    let readme = include_str!("../../../README.md");
    let cmd = "-- sim compare flood-with-legit --models linux,bsd --plot docs/flood-with-legit.png\n```\n";
    let block = &readme[readme
        .find(cmd)
        .expect("README shows the scenario comparison")
        + cmd.len()..];
    let block = &block[block.find("```\n").expect("the table follows") + 4..];
    let table = &block[..block.find("```").expect("closed")];
    let d = dir("readme");
    let plot = d.join("f.png");
    let (code, out, err) = synq(&[
        "sim",
        "compare",
        "flood-with-legit",
        "--models",
        "linux,bsd",
        "--plot",
        s(&plot),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, table);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn progress_bar_on_a_terminal_only_and_stdout_unchanged() {
    use std::io::Write;
    // `script` gives the command a terminal; without it there is nothing to test here.
    if Command::new("script").arg("--version").output().is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP progress_bar_on_a_terminal_only_and_stdout_unchanged: script(1) not found"
        );
        return;
    }
    let d = dir("progress");
    let out = d.join("out.json");
    let log = d.join("typescript");
    let bin = env!("CARGO_BIN_EXE_synq");
    let cmd = format!(
        "{bin} sim compare burst --models linux,bsd --json > {}",
        s(&out)
    );
    let status = Command::new("script")
        .args(["-qec", &cmd, s(&log)])
        .env("SYNQ_PROGRESS_AFTER_MS", "0")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let terminal = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    // The bar: the model's name, then `[===>   ]  NN%`.
    assert!(
        terminal.contains("linux [") && terminal.contains("%"),
        "no bar in {terminal:?}"
    );
    let plain = synq(&["sim", "compare", "burst", "--models", "linux,bsd", "--json"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), plain.1);
    std::fs::remove_dir_all(&d).unwrap();
}
