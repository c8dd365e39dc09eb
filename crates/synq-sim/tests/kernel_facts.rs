//! Side by side with the real kernel: sysctl defaults, the exact SYN and SYN-ACK a Linux
//! host sends (window, option layout), and how its timestamp offsets are keyed, against
//! synq's.
//!
//! Needs root, `unshare`, `ip` and python3; without them the test prints why and skips.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use synq_core::wire::{parse_packet, ChecksumMode, TcpPacket};
use synq_core::{Config, Instant, Stack};

#[path = "kernel/util.rs"]
mod util;
use util::{skip, skip_reason};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel/facts.py");

fn facts(args: &[&str]) -> serde_json::Value {
    let out = Command::new("unshare")
        .arg("-n")
        .arg("python3")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "facts.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Knobs whose Linux default does not depend on the machine's memory.
const FIXED: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_syn_linear_timeouts",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_invalid_ratelimit",
    "net.ipv4.tcp_migrate_req",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_default_ttl",
];

/// Sized from memory by Linux: reported, not required to match.
const SIZED: &[&str] = &[
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_max_tw_buckets",
    "net.core.rmem_max",
];

#[test]
fn sysctl_defaults_match_a_fresh_namespace() {
    if let Some(why) = skip_reason() {
        skip("sysctl_defaults_match_a_fresh_namespace", &why);
        return;
    }
    let mut args = vec!["sysctls"];
    args.extend(FIXED);
    args.extend(SIZED);
    let k = facts(&args);
    // Our default, spaced as the kernel's (tabs folded).
    let ours = |name: &str| {
        Config::default()
            .get(name)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    for name in FIXED {
        let Some(kv) = k[*name].as_str() else {
            println!("note: {name} does not exist on this kernel");
            continue;
        };
        let mine = ours(name);
        assert_eq!(mine, kv, "{name}: synq default {mine}, kernel {kv}");
    }
    for name in SIZED {
        let mine = ours(name);
        println!(
            "{name}: synq {mine}, this kernel {} (sized from memory)",
            k[*name]
        );
    }
}

/// Writes in a fresh namespace, one sequence per namespace: the kernel takes or refuses each
/// as synq's `Config::set` does from its defaults. Where kernel builds differ (a tcp_rmem
/// below 4096, a tcp_invalid_ratelimit above i32::MAX: `config.rs`'s ranges test) nothing
/// is asked.
#[test]
fn sysctl_writes_are_taken_or_refused_as_the_kernel_does() {
    if let Some(why) = skip_reason() {
        skip(
            "sysctl_writes_are_taken_or_refused_as_the_kernel_does",
            &why,
        );
        return;
    }
    let range = "net.ipv4.ip_local_port_range";
    let start = "net.ipv4.ip_unprivileged_port_start";
    let cases: &[&[(&str, &str)]] = &[
        &[(range, "1 1")],
        &[(range, "1023 1024")],
        &[(range, "1024 1024")],
        &[(range, "1024 65535")],
        &[(range, "1024 65536")],
        &[(range, "5000 4000")],
        &[(start, "32768")],
        &[(start, "32769")],
        &[(start, "-1")],
        // Each bounds the other, so the order of writes decides.
        &[
            (range, "100 200"),
            (start, "0"),
            (range, "100 200"),
            (start, "101"),
        ],
        &[(start, "40000"), (range, "50000 60000"), (start, "40000")],
        &[("net.ipv4.tcp_synack_retries", "255")],
        &[("net.ipv4.tcp_synack_retries", "256")],
        &[("net.ipv4.tcp_syn_retries", "0")],
        &[("net.ipv4.tcp_syn_retries", "127")],
        &[("net.ipv4.tcp_syn_retries", "128")],
        &[("net.ipv4.tcp_syncookies", "255")],
        &[("net.ipv4.tcp_syncookies", "256")],
        &[("net.ipv4.tcp_wmem", "10 5 1")],
        &[("net.ipv4.tcp_wmem", "0 0 0")],
        &[("net.ipv4.tcp_rmem", "8192 4096 4096")],
        &[("net.ipv4.tcp_rmem", "4096 4096 2147483648")],
        &[("net.ipv4.tcp_max_syn_backlog", "-2147483648")],
        &[("net.ipv4.tcp_fin_timeout", "-1")],
        &[("net.ipv4.tcp_invalid_ratelimit", "-1")],
        &[("net.core.somaxconn", "-1")],
        &[("net.ipv4.ip_default_ttl", "0")],
        &[("net.ipv4.ip_default_ttl", "255")],
        &[("net.ipv4.ip_default_ttl", "256")],
    ];
    for case in cases {
        let writes: Vec<String> = case.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut args = vec!["writes"];
        args.extend(writes.iter().map(String::as_str));
        let kernel: Vec<bool> = serde_json::from_value(facts(&args)).expect("a list of verdicts");
        let mut c = Config::default();
        let ours: Vec<bool> = case.iter().map(|(n, v)| c.set(n, v).is_ok()).collect();
        assert_eq!(ours, kernel, "taken (true) or refused, in order: {case:?}");
    }
}

/// Integers in hex, octal and decimal, with blanks and signs: taken or refused, and the
/// value read back, as the kernel's `proc_get_long` reads them.
#[test]
fn sysctl_integers_read_back_as_the_kernel_reads_them() {
    if let Some(why) = skip_reason() {
        skip("sysctl_integers_read_back_as_the_kernel_reads_them", &why);
        return;
    }
    let cases: &[(&str, &str)] = &[
        ("net.core.somaxconn", "0x10"),
        ("net.core.somaxconn", "0X1f"),
        ("net.core.somaxconn", "010"),
        ("net.core.somaxconn", " 16\n"),
        ("net.core.somaxconn", "-0"),
        ("net.core.somaxconn", "+16"),
        ("net.core.somaxconn", "08"),
        ("net.core.somaxconn", "0x"),
        ("net.core.somaxconn", "1_0"),
        ("net.core.somaxconn", "16k"),
        ("net.core.somaxconn", "99999999999999999999"),
        ("net.ipv4.tcp_syncookies", "0x2"),
        ("net.ipv4.tcp_syncookies", "-0"),
        ("net.ipv4.tcp_syncookies", "0377"),
        ("net.ipv4.tcp_fin_timeout", "-0x10"),
        ("net.ipv4.tcp_max_syn_backlog", "-010"),
        ("net.ipv4.tcp_wmem", "0x1000 010 4096"),
        ("net.ipv4.ip_local_port_range", "0x8000 0177777"),
        ("net.ipv4.ip_default_ttl", "0x40"),
        ("net.ipv4.tcp_migrate_req", "0x1"),
    ];
    let mut args = vec!["readback".to_string()];
    args.extend(cases.iter().map(|(n, v)| format!("{n}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The writes add up alike on both sides: one namespace, one `Config`, in order.
    let kernel: Vec<Option<String>> =
        serde_json::from_value(facts(&args)).expect("a list of values");
    let mut c = Config::default();
    let ours: Vec<Option<String>> = cases
        .iter()
        .map(|(n, v)| {
            c.set(n, v).ok().map(|()| {
                let got = c.get(n).unwrap();
                got.split_whitespace().collect::<Vec<_>>().join(" ")
            })
        })
        .collect();
    for ((case, k), o) in cases.iter().zip(&kernel).zip(&ours) {
        assert_eq!(o, k, "{case:?}: synq (left) against the kernel (right)");
    }
}

/// TS option values differ by clock and offset: zero them, keep the layout.
fn mask_ts(opts: &[u8]) -> Vec<u8> {
    let mut v = opts.to_vec();
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*v.get(i + 1).unwrap_or(&2)).max(2);
                if kind == 8 && i + 10 <= v.len() {
                    v[i + 2..i + 10].fill(0);
                }
                i += len;
            }
        }
    }
    v
}

fn hex(b: &[u8]) -> Vec<u8> {
    (0..b.len() / 2)
        .map(|i| {
            u8::from_str_radix(std::str::from_utf8(&b[2 * i..2 * i + 2]).unwrap(), 16).unwrap()
        })
        .collect()
}

/// synq's SYN and SYN-ACK between two stacks with the kernel's buffer sizes.
fn synq_shape(ts: &str, rmem: &str, rmem_max: &str) -> [(u16, Vec<u8>); 2] {
    let mut cfg = Config::default();
    cfg.set("net.ipv4.tcp_timestamps", ts).unwrap();
    cfg.set("net.ipv4.tcp_rmem", rmem).unwrap();
    cfg.set("net.core.rmem_max", rmem_max).unwrap();
    let (a_ip, b_ip) = (
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    );
    let mut a = Stack::new(cfg.clone(), 1);
    a.add_address(a_ip);
    let mut b = Stack::new(cfg, 2);
    b.add_address(b_ip);
    b.listen(Instant::ZERO, SocketAddr::new(b_ip, 80), 8)
        .unwrap();
    a.connect(Instant::ZERO, SocketAddr::new(b_ip, 80)).unwrap();
    let mut buf = Vec::new();
    let n = a.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let syn = buf[..n].to_vec();
    b.handle_packet(Instant::ZERO, &syn);
    let n = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let synack = buf[..n].to_vec();
    [syn, synack].map(|p| {
        let parsed = parse_packet(&p, ChecksumMode::Verify).unwrap();
        let tcp = TcpPacket::new_checked(&p[20..]).unwrap();
        (parsed.tcp.window, mask_ts(tcp.options()))
    })
}

#[test]
fn syn_and_synack_match_the_kernel() {
    if let Some(why) = skip_reason() {
        skip("syn_and_synack_match_the_kernel", &why);
        return;
    }
    for ts in ["1", "0"] {
        let k = facts(&["shape", ts]);
        let rmem = k["net.ipv4.tcp_rmem"].as_str().unwrap();
        let rmem_max = k["net.core.rmem_max"].as_str().unwrap();
        let [syn, synack] = synq_shape(ts, rmem, rmem_max);
        for (name, mine) in [("syn", syn), ("synack", synack)] {
            let kw = k[name]["window"].as_u64().unwrap();
            let ko = mask_ts(&hex(k[name]["options"].as_str().unwrap().as_bytes()));
            println!(
                "timestamps={ts} {name}: kernel win {kw} opts {ko:02x?}; synq win {} opts {:02x?}",
                mine.0, mine.1
            );
            assert_eq!(u64::from(mine.0), kw, "timestamps={ts} {name} window");
            assert_eq!(
                mine.1, ko,
                "timestamps={ts} {name} options (TS values masked)"
            );
        }
    }
}

/// Distance between two TSvals on the wrapping 32-bit clock.
fn ts_gap(a: u64, b: u64) -> u64 {
    let d = (a as u32).wrapping_sub(b as u32);
    u64::from(d.min(d.wrapping_neg()))
}

/// SYNs' TSvals from (local address, port) to one server at one instant: the first tuple
/// twice (aborted in between), then the others.
fn synq_tsvals(from: &[(Ipv4Addr, u16)]) -> Vec<u64> {
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
    let mut s = Stack::new(Config::default(), 7);
    for (ip, _) in from {
        s.add_address(IpAddr::V4(*ip));
    }
    let mut buf = Vec::new();
    let mut syn = |s: &mut Stack, (ip, port): (Ipv4Addr, u16)| {
        let c = s
            .connect_from(Instant::ZERO, SocketAddr::new(IpAddr::V4(ip), port), server)
            .unwrap();
        let n = s.poll_transmit(Instant::ZERO, &mut buf).unwrap();
        let p = parse_packet(&buf[..n], ChecksumMode::Verify).unwrap();
        (c, u64::from(p.tcp.options.timestamps.unwrap().tsval))
    };
    let (c, first) = syn(&mut s, from[0]);
    s.abort(Instant::ZERO, c).unwrap();
    let mut out = vec![first, syn(&mut s, from[0]).1];
    out.extend(from[1..].iter().map(|&f| syn(&mut s, f).1));
    out
}

/// Linux 6.x keys the timestamp offset by the whole 4-tuple (`secure_tcp_seq_and_ts_off`:
/// the high half of the ISN's hash): the same tuple used again carries the same offset
/// (TSvals milliseconds apart), another port or another host an unrelated one. synq does
/// the same.
#[test]
fn timestamp_offsets_are_per_connection_like_linux() {
    if let Some(why) = skip_reason() {
        skip("timestamp_offsets_are_per_connection_like_linux", &why);
        return;
    }
    let k = facts(&["tsoff"]);
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let (t0, t1) = (n(&k["tuple"][0]), n(&k["tuple"][1]));
    println!("kernel TSvals: {k}");
    // One offset: the clock moved a few milliseconds at most. Unrelated offsets are a
    // random 32-bit distance apart (within 1 000 with probability below 1 in 2 million).
    assert!(ts_gap(t0, t1) < 1_000, "kernel: {k}");
    assert!(ts_gap(t0, n(&k["other_port"])) >= 1_000, "kernel: {k}");
    assert!(ts_gap(t0, n(&k["other_host"])) >= 1_000, "kernel: {k}");
    let lo = Ipv4Addr::LOCALHOST;
    let ours = synq_tsvals(&[
        (lo, 40001),
        (lo, 40002),
        (Ipv4Addr::new(127, 0, 0, 2), 40003),
    ]);
    println!("synq TSvals: {ours:?}");
    assert_eq!(ours[0], ours[1], "synq: the same tuple, the same offset");
    assert!(ts_gap(ours[0], ours[2]) >= 1_000, "synq: {ours:?}");
    assert!(ts_gap(ours[0], ours[3]) >= 1_000, "synq: {ours:?}");
}
