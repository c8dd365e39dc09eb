//! Side by side with the real kernel: a Linux client's SYN retransmission schedule and
//! connect() failure time, against synq's client with the same sysctls.
//!
//! Needs root, `unshare` and python3 (the kernel side runs in a private network namespace
//! that disappears with the process). Without them the test prints why and skips.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use synq_core::{Config, ConnError, Instant, Stack, State};
use synq_sim::{LinkConfig, Network, TapKind};

#[path = "kernel/util.rs"]
mod util;
use util::{skip, skip_reason};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel/syn_client.py");

struct Outcome {
    syns: Vec<f64>,
    fail: f64,
    errno: String,
}

fn kernel(sysctls: &[(&str, &str)]) -> std::process::Child {
    Command::new("unshare")
        .arg("-n")
        .arg("python3")
        .arg(SCRIPT)
        .args(sysctls.iter().map(|(k, v)| format!("{k}={v}")))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kernel client")
}

fn parse(out: &[u8]) -> Outcome {
    let v: serde_json::Value = serde_json::from_slice(out).expect("kernel client JSON");
    Outcome {
        syns: v["syns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
        fail: v["fail"]
            .as_f64()
            .expect("connect() failed within the limit"),
        errno: v["errno"].as_str().unwrap().to_string(),
    }
}

fn synq(sysctls: &[(&str, &str)]) -> Outcome {
    let mut cfg = Config::default();
    for (k, v) in sysctls {
        cfg.set(k, v).unwrap();
    }
    let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let mut net: Network<Stack> = Network::new(1);
    let mut a = Stack::new(cfg.clone(), 1);
    a.add_address(a_ip);
    let mut b = Stack::new(cfg, 2);
    b.add_address(b_ip);
    let c = a.connect(Instant::ZERO, SocketAddr::new(b_ip, 80)).unwrap();
    let ha = net.add_host(a_ip, a);
    let hb = net.add_host(b_ip, b);
    net.set_link(
        ha,
        hb,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
    );
    let syns = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = syns.clone();
    net.set_tap(Box::new(move |e| {
        if e.kind == TapKind::Sent && e.from == 0 {
            s2.borrow_mut().push(e.time.as_secs_f64());
        }
    }));
    let mut fail = None;
    net.run_until_with(Instant::from_secs(300), |n| {
        if n.host(ha).state(c) == Some(State::Closed) {
            fail = Some(n.now().as_secs_f64());
            return false;
        }
        true
    });
    let err = net.host(ha).info(c).unwrap().error;
    assert_eq!(err, Some(ConnError::TimedOut));
    let syns = syns.borrow().clone();
    Outcome {
        syns,
        fail: fail.expect("synq connect() failed"),
        errno: "ETIMEDOUT".into(),
    }
}

#[test]
fn syn_retransmission_matches_the_kernel() {
    if let Some(why) = skip_reason() {
        skip("syn_retransmission_matches_the_kernel", &why);
        return;
    }
    let has_linear = std::path::Path::new("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").exists();
    let lin = |r: &'static str, l: &'static str| {
        if has_linear {
            vec![
                ("net.ipv4.tcp_syn_retries", r),
                ("net.ipv4.tcp_syn_linear_timeouts", l),
            ]
        } else {
            vec![
                ("net.ipv4.tcp_syn_retries", r),
                ("net.ipv4.tcp_syn_linear_timeouts", "0"),
            ]
        }
    };
    if !has_linear {
        println!("note: this kernel has no tcp_syn_linear_timeouts; comparing with it at 0");
    }
    // The defaults (6, 4) take 131 s of real time; every case runs at once.
    let cases = [
        lin("6", "4"),
        lin("1", "4"),
        lin("2", "4"),
        lin("2", "0"),
        lin("3", "0"),
        lin("3", "4"),
        lin("4", "2"),
    ];
    let children: Vec<_> = cases.iter().map(|c| kernel(c)).collect();
    for (case, child) in cases.iter().zip(children) {
        let out = child.wait_with_output().expect("kernel client ran");
        assert!(out.status.success(), "kernel client failed for {case:?}");
        let k = parse(&out.stdout);
        let s = synq(case);
        println!(
            "{case:?}\n  kernel SYNs {:?} fail {:.3} {}\n  synq   SYNs {:?} fail {:.3} {}",
            k.syns, k.fail, k.errno, s.syns, s.fail, s.errno
        );
        assert_eq!(k.errno, "ETIMEDOUT", "{case:?}");
        assert_eq!(
            k.syns.len(),
            s.syns.len(),
            "{case:?}: SYN count kernel {:?} synq {:?}",
            k.syns,
            s.syns
        );
        // Compare gap by gap: the kernel's timer wheel rounds long timeouts up by up to
        // 1/8 (plus a few jiffies), and that slack accumulates along the schedule.
        let gaps = |v: &[f64], end: f64| {
            let mut t: Vec<f64> = v.to_vec();
            t.push(end);
            t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        };
        for (i, (kg, sg)) in gaps(&k.syns, k.fail)
            .iter()
            .zip(gaps(&s.syns, s.fail))
            .enumerate()
        {
            assert!(
                (kg - sg).abs() <= 0.06 + sg / 8.0,
                "{case:?}: gap {i} is {kg:.3} s on the kernel, {sg:.3} s in synq"
            );
        }
    }
}
