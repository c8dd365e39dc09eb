//! `synq sim overflow` and `synq sim synflood` (model `linux`) against the real kernel,
//! across a grid of backlog, somaxconn, tcp_max_syn_backlog, tcp_syncookies,
//! tcp_abort_on_overflow, tcp_synack_retries and durations.
//!
//! The kernel side (`kernel/backlog.py`) runs in network namespaces it creates: kernel
//! clients in their own namespace across a veth pair for `overflow`, spoofed SYNs written to
//! a TUN device for `synflood`. Any difference in the listener's Recv-Q/Send-Q/SYN-RECV,
//! client states, SYN-ACKs sent or the listen counters fails the test. Without root, the
//! tools or /dev/net/tun the test prints why and skips.

use synq_core::{Config, Duration};
use synq_sim::scenario::{
    overflow, synflood, BacklogParams, BacklogReport, OverflowParams, SynfloodParams,
    LISTEN_COUNTERS,
};

#[path = "kernel/util.rs"]
mod util;
use util::{run_python, skip, tun_skip_reason};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel/backlog.py");

#[derive(Clone, Debug)]
enum Case {
    Overflow {
        backlog: i32,
        clients: u32,
        accept_after: bool,
    },
    Flood {
        backlog: i32,
        syns: u32,
        rate: Option<f64>,
    },
}

#[derive(Clone, Debug)]
struct Point {
    case: Case,
    sysctls: Vec<(&'static str, &'static str)>,
    duration: f64,
}

fn grid() -> Vec<Point> {
    let o = |backlog, clients, accept_after| Case::Overflow {
        backlog,
        clients,
        accept_after,
    };
    let f = |backlog, syns, rate| Case::Flood {
        backlog,
        syns,
        rate,
    };
    let p = |case, sysctls: &[(&'static str, &'static str)], duration| Point {
        case,
        sysctls: sysctls.to_vec(),
        duration,
    };
    let (ck, mx, so, ab, sr) = (
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_max_syn_backlog",
        "net.core.somaxconn",
        "net.ipv4.tcp_abort_on_overflow",
        "net.ipv4.tcp_synack_retries",
    );
    vec![
        p(o(2, 8, false), &[], 1.5),
        p(o(0, 4, true), &[(ck, "1")], 1.5),
        p(o(0, 3, false), &[(ck, "0")], 0.5),
        p(o(5, 10, false), &[(ck, "0")], 0.5),
        p(o(-1, 8, false), &[(so, "4")], 1.5),
        p(o(-100, 5, false), &[(so, "2")], 2.5),
        p(o(i32::MAX, 6, true), &[(so, "3")], 2.5),
        p(o(3, 6, true), &[(ab, "1")], 1.5),
        p(o(1, 4, false), &[(ck, "2")], 1.5),
        p(o(4, 8, false), &[(ck, "0"), (mx, "4")], 1.5),
        p(f(4, 20, None), &[(ck, "1")], 0.5),
        p(f(4, 20, None), &[(ck, "0")], 0.5),
        p(f(4, 20, None), &[(ck, "2")], 0.5),
        p(f(0, 5, None), &[(ck, "1")], 0.5),
        p(f(100, 20, None), &[(ck, "0"), (mx, "16")], 0.5),
        p(f(100, 20, None), &[(ck, "1"), (mx, "16")], 0.5),
        p(f(4, 5, None), &[], 1.5),
        p(f(4, 20, None), &[(ck, "0"), (sr, "1"), (ab, "1")], 3.5),
        p(f(16, 17, None), &[(ck, "0")], 7.5),
        p(f(8, 30, Some(10.0)), &[(ck, "0")], 2.45),
        p(f(-1, 12, None), &[(so, "8"), (ck, "1")], 1.5),
    ]
}

/// The figures compared, as (name, value) rows.
fn rows(
    listener: [u64; 3],
    clients: [u64; 3],
    accepted: u64,
    synacks: u64,
    counter: impl Fn(&str) -> u64,
) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = [
        ("recv_q", listener[0]),
        ("send_q", listener[1]),
        ("syn_recv", listener[2]),
        ("established", clients[0]),
        ("syn_sent", clients[1]),
        ("failed", clients[2]),
        ("accepted_after", accepted),
        ("synacks_sent", synacks),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    v.extend(LISTEN_COUNTERS.iter().map(|&c| (c.to_string(), counter(c))));
    v
}

fn kernel_input(p: &Point) -> String {
    let mut input = serde_json::json!({
        "sysctls": p.sysctls.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v.parse::<i64>().unwrap()))).collect::<serde_json::Map<_, _>>(),
        "duration": p.duration,
    });
    match p.case {
        Case::Overflow {
            backlog,
            clients,
            accept_after,
        } => {
            input["scenario"] = "overflow".into();
            input["backlog"] = backlog.into();
            input["clients"] = clients.into();
            input["gap_ms"] = 1.0.into();
            input["accept_after"] = accept_after.into();
        }
        Case::Flood {
            backlog,
            syns,
            rate,
        } => {
            input["scenario"] = "synflood".into();
            input["backlog"] = backlog.into();
            input["syns"] = syns.into();
            input["rate"] = rate.map_or(serde_json::Value::Null, Into::into);
        }
    }
    input.to_string()
}

fn kernel_parse(out: Result<Vec<u8>, String>) -> Result<Vec<(String, u64)>, String> {
    let out = out?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| format!("backlog.py output: {e}: {}", String::from_utf8_lossy(&out)))?;
    let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
    let l = &v["listener"];
    let c = &v["clients"];
    Ok(rows(
        [n(&l["recv_q"]), n(&l["send_q"]), n(&l["syn_recv"])],
        [n(&c["established"]), n(&c["syn_sent"]), n(&c["failed"])],
        n(&v["accepted_after"]),
        n(&v["synacks_sent"]),
        |name| n(&v["counters"][name]),
    ))
}

fn synq(p: &Point) -> Vec<(String, u64)> {
    let mut config = Config::default();
    for (k, v) in &p.sysctls {
        config.set(k, v).unwrap();
    }
    let common = |backlog| BacklogParams {
        backlog,
        duration: Duration::from_micros((p.duration * 1e6) as u64),
        config: config.clone(),
        ..BacklogParams::default()
    };
    let r: BacklogReport = match p.case {
        Case::Overflow {
            backlog,
            clients,
            accept_after,
        } => overflow(&OverflowParams {
            common: common(backlog),
            clients,
            gap: Duration::from_millis(1),
            accept_after,
        }),
        Case::Flood {
            backlog,
            syns,
            rate,
        } => synflood(&SynfloodParams {
            common: common(backlog),
            syns,
            rate,
        }),
    }
    .expect("scenario runs");
    let c = |name: &str| r.counter(name);
    let l = r.listener;
    let cl = r.clients;
    rows(
        [l.recv_q.into(), l.send_q.into(), l.syn_recv.into()],
        [cl.established.into(), cl.syn_sent.into(), cl.failed.into()],
        r.accepted_after.into(),
        r.synacks_sent,
        c,
    )
}

#[test]
fn backlog_grid_matches_the_kernel() {
    if let Some(why) = tun_skip_reason() {
        skip("backlog_grid_matches_the_kernel", &why);
        return;
    }
    let points = grid();
    // Kernel runs are real time: four at a time, each in its own namespaces.
    let inputs: Vec<String> = points.iter().map(kernel_input).collect();
    let kernel_rows = run_python(SCRIPT, &inputs).into_iter().map(kernel_parse);
    let mut diffs = Vec::new();
    for (p, k) in points.iter().zip(kernel_rows) {
        let k = k.unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let s = synq(p);
        let bad: Vec<String> = k
            .iter()
            .zip(&s)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, b)| format!("{} kernel {} synq {}", a.0, a.1, b.1))
            .collect();
        let summary: Vec<String> = s
            .iter()
            .filter(|r| r.1 != 0)
            .map(|r| format!("{}={}", r.0, r.1))
            .collect();
        println!(
            "{:?} {:?} {}s: {}",
            p.case,
            p.sysctls,
            p.duration,
            if bad.is_empty() { "same" } else { "DIFFERENT" }
        );
        println!("    {}", summary.join(" "));
        if !bad.is_empty() {
            diffs.push(format!("{p:?}: {}", bad.join(", ")));
        }
    }
    assert!(
        diffs.is_empty(),
        "synq differs from the kernel:\n{}",
        diffs.join("\n")
    );
}
