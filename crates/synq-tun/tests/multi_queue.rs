//! A multi-queue TUN device (`IFF_MULTI_QUEUE`): N queues open on one interface, the kernel
//! spreads the flows it routes into the device over them, and the interface goes with the
//! last queue. Needs root, /dev/net/tun, `ip` and python3; says SKIP and passes without.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use synq_tun::{Netns, Tun};

/// Print SKIP so a plain `cargo test` shows it (libtest captures `println!`).
fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

const FLOWS: u16 = 64;

/// The UDP source port of an IPv4 datagram to port 9, or `None` for anything else.
fn udp_to_discard(p: &[u8]) -> Option<u16> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    if p.first()? >> 4 != 4 || *p.get(9)? != 17 {
        return None;
    }
    let udp = p.get(ihl..ihl + 4)?;
    (u16::from_be_bytes([udp[2], udp[3]]) == 9).then(|| u16::from_be_bytes([udp[0], udp[1]]))
}

#[test]
fn four_queues_open_and_the_kernel_spreads_flows_over_them() {
    spread(
        "four_queues_open_and_the_kernel_spreads_flows_over_them",
        4,
        false,
    );
}

#[test]
fn offload_queues_each_read_past_their_virtio_header() {
    spread("offload_queues_each_read_past_their_virtio_header", 2, true);
}

/// `queues` queues (with `offload` or not) read FLOWS datagrams the kernel sent, each once,
/// every queue some; the interface goes with the queues.
fn spread(test: &str, queues: usize, offload: bool) {
    if let Some(why) = synq_tun::unsupported() {
        return skip(test, &why);
    }
    if Command::new("python3").arg("-V").output().is_err() {
        return skip(test, "python3 not found");
    }
    let ns = Netns::create("sqmq").expect("netns");
    for knob in ["all", "default"] {
        let _ = ns.sysctl(&format!("net.ipv6.conf.{knob}.disable_ipv6"), "1");
    }
    let name = format!("sqmq{}{}", std::process::id() % 100_000, u8::from(offload));
    let devs = Tun::create_queues(&name, 1500, offload, queues).expect("queues");
    assert_eq!(devs.len(), queues);
    devs[0]
        .move_into(&ns, "10.73.0.1".parse().unwrap(), 24)
        .expect("move into the namespace");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = rt.block_on(async {
        let tuns: Vec<Tun> = devs
            .into_iter()
            .map(|q| q.into_tun().expect("register"))
            .collect();
        assert!(tuns.iter().all(|t| t.offload() == offload));
        // One datagram from each of FLOWS source ports: FLOWS flows.
        let script = format!(
            "import socket\n\
             for p in range({FLOWS}):\n\
             \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             \x20   s.bind(('10.73.0.1', 40000 + p))\n\
             \x20   s.sendto(b'x', ('10.73.0.2', 9))\n\
             \x20   s.close()\n"
        );
        let out = ns
            .command("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Source port to the queues it arrived on.
        let mut seen: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_secs(5);
        for _ in 0..500 {
            for (q, t) in tuns.iter().enumerate() {
                while let Ok((n, _)) = t.try_recv(&mut buf) {
                    if let Some(port) = udp_to_discard(&buf[..n]) {
                        seen.entry(port).or_default().push(q);
                    }
                }
            }
            if seen.len() == usize::from(FLOWS) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    assert_eq!(
        seen.len(),
        usize::from(FLOWS),
        "every datagram arrived: {seen:?}"
    );
    let mut per_queue = vec![0u32; queues];
    for (port, qs) in &seen {
        assert_eq!(qs.len(), 1, "port {port} read once, on one queue: {qs:?}");
        per_queue[qs[0]] += 1;
    }
    // 64 flows hashed over q queues leave one empty with odds of about q * (1 - 1/q)^64.
    assert!(per_queue.iter().all(|&n| n > 0), "spread: {per_queue:?}");
    let _ = writeln!(std::io::stderr(), "flows per queue: {per_queue:?}");
    // The runtime (and with it every queue) is gone: so is the interface. Within a few
    // seconds: the other test in this binary forks children (`ip`, python3), and a child
    // holds copies of this test's queue descriptors from its fork until its exec closes
    // them (O_CLOEXEC), which on a loaded machine is not at once.
    drop(rt);
    let deadline = Instant::now() + Duration::from_secs(5);
    let gone = loop {
        let o = Command::new("ip")
            .args(["-n", ns.name(), "link", "show", &name])
            .output()
            .expect("ip");
        if !o.status.success() {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(gone, "{name} outlived its queues by 5 s");
}

#[test]
fn queue_counts_outside_1_to_256_are_refused() {
    for n in [0, synq_tun::MAX_QUEUES + 1] {
        let e = Tun::create_queues("sqbad0", 1500, false, n).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{n}: {e}");
    }
}
