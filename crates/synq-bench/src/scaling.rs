//! `synq-bench --scaling`: how the listener scales with shards, a thread and a stack each
//! (`synq_core::Stack::new_shard`, one seed), from 1 to N threads.
//!
//! In memory, every thread runs the one-core measurement on its own shard at the same time,
//! and the figure is their sum: handshakes (each thread with a client stack of its own, as
//! in the suite) and a SYN flood under `tcp_syncookies=2` (the 2^20 spoofed SYNs steered to
//! the shards by `synq_core::Steering` beforehand, as a NIC's RSS would). Over TUN (root,
//! and the `synq` binary built): `synq serve --threads N --app echo` in a namespace, with
//! this program's threads in it as the load: kernel clients opening connections (connect,
//! one byte echoed, close by RST), then raw sockets writing spoofed SYNs (the server under
//! `tcp_syncookies=2`); the kernel steers flows to the queues. The load shares the cores
//! with the server, so the TUN figures are those of a whole machine.

use crate::{flood, handshakes_between, spoofed_syns, A, B};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant as WallInstant};
use synq_core::{Config, Instant, Stack};

/// The shards' seed (their shared secrets and steering key).
const SEED: u64 = 2;

/// Run `f(shard)` on `n` threads started together; the sum of their results.
fn parallel(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    let start = Barrier::new(n);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (f, start) = (&f, &start);
                s.spawn(move || {
                    start.wait();
                    f(i)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a measurement thread panicked"))
            .sum()
    })
}

/// Iterations per second of a loop that touches no memory: run on `n` threads at once, it
/// says how many cores this machine gives the measurement right now (other work, a
/// hypervisor), which bounds every speed-up below.
fn spin(secs: f64, n: usize) -> f64 {
    parallel(n, |_| {
        let limit = Duration::from_secs_f64(secs);
        let start = WallInstant::now();
        let (mut x, mut rounds) = (1u64, 0u64);
        while start.elapsed() < limit {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
            rounds += 1;
        }
        rounds as f64 / start.elapsed().as_secs_f64()
    })
}

fn shard(config: &Config, i: usize) -> Stack {
    let mut s = Stack::new_shard(config.clone(), SEED, i as u32);
    s.add_address(B);
    s
}

/// Handshakes per second, `n` shards each with its own client.
fn handshakes(secs: f64, n: usize) -> f64 {
    parallel(n, |i| {
        let mut client = Stack::new(Config::default(), 100 + i as u64);
        client.add_address(A);
        handshakes_between(secs, client, shard(&Config::default(), i))
    })
}

/// SYNs per second under `tcp_syncookies=2`, `syns` steered over `n` shards.
fn syn_flood(secs: f64, n: usize, syns: &[Vec<u8>]) -> f64 {
    let steering = synq_core::Steering::new(SEED);
    let mut per: Vec<Vec<&[u8]>> = vec![Vec::new(); n];
    for p in syns {
        per[steering.shard(p, n)].push(p);
    }
    let mut c = Config::default();
    c.set("net.ipv4.tcp_syncookies", "2").expect("valid");
    parallel(n, |i| {
        let mut server = shard(&c, i);
        server
            .listen(
                Instant::ZERO,
                std::net::SocketAddr::new(B, crate::PORT),
                i32::MAX,
            )
            .expect("listen");
        let mine: Vec<Vec<u8>> = per[i].iter().map(|p| p.to_vec()).collect();
        flood(secs, &mut server, &mine, u64::MAX, 1)
    })
}

/// Every measurement for every thread count; prints a table (or returns JSON).
pub(crate) fn run(secs: f64, threads: &[usize], json: bool) {
    let syns = spoofed_syns();
    let mut rows = Vec::new();
    for &n in threads {
        let h = handshakes(secs, n);
        let f = syn_flood(secs, n, &syns);
        let tun = tun::connections(secs, n);
        let tun_flood = tun::syn_flood(secs, n);
        rows.push((n, h, f, tun, tun_flood));
    }
    let one_core = spin(0.5, 1);
    let cpu: Vec<(usize, f64)> = threads
        .iter()
        .map(|&n| (n, spin(0.5, n) / one_core))
        .collect();
    let cores = |x: f64| (x * 100.0).round() / 100.0;
    if json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(n, h, f, t, tf)| {
                json!({"threads": n, "handshakes_per_sec": h.round(),
                       "syn_per_sec_cookies2": f.round(),
                       "tun_connections_per_sec": t.as_ref().map(|t| t.rate.round()),
                       "tun_passive_opens_per_shard": t.as_ref().map(|t| t.per_shard.clone()),
                       "tun_syn_per_sec_cookies2": tf.as_ref().map(|t| t.rate.round()),
                       "tun_syncookies_per_shard": tf.as_ref().map(|t| t.per_shard.clone()),
                       "tun_connections_server_cores": t.as_ref().map(|t| cores(t.server_cores)),
                       "tun_syn_server_cores": tf.as_ref().map(|t| cores(t.server_cores))})
            })
            .collect();
        let cpu: Vec<Value> = cpu
            .iter()
            .map(|(n, x)| json!({"threads": n, "speedup": (x * 100.0).round() / 100.0}))
            .collect();
        say!("{}", json!({"secs": secs, "scaling": v, "cpu_check": cpu}));
        return;
    }
    let Some(first) = rows.first() else {
        return;
    };
    let (h0, f0) = (first.1, first.2);
    let (t0, tf0) = (
        first.3.as_ref().map(|t| t.rate),
        first.4.as_ref().map(|t| t.rate),
    );
    // A TUN figure, its speed-up and its per-shard counts, or why there is none.
    let cell = |t: &Option<tun::Figure>, base: Option<f64>| match (t, base) {
        (Some(t), Some(b)) => format!(
            "{:>10.0} {:>5.2}x  server {:.2} cores  {:?}",
            t.rate,
            t.rate / b,
            t.server_cores,
            t.per_shard
        ),
        _ => format!("n/a: {}", tun::why_not()),
    };
    say!(
        "synq-bench --scaling, {secs} s per figure; speed-up (x) against {} thread(s)",
        first.0
    );
    let check: Vec<String> = cpu.iter().map(|(n, x)| format!("{n}: {x:.2}x")).collect();
    say!(
        "CPU check (a loop touching no memory on N threads, against one): {}",
        check.join(", ")
    );
    say!("in memory, a shard per thread:");
    say!(
        "{:<8} {:>14} {:>6} {:>16} {:>6}",
        "threads",
        "handshakes/s",
        "x",
        "SYNs/s cookies2",
        "x"
    );
    for (n, h, f, _, _) in &rows {
        say!(
            "{n:<8} {h:>14.0} {:>5.2}x {f:>16.0} {:>5.2}x",
            h / h0,
            f / f0
        );
    }
    say!("over TUN, synq serve --threads N (rate, speed-up, the server's CPU, per shard):");
    for (n, _, _, t, tf) in &rows {
        say!("{n:<8} connections/s   {}", cell(t, t0));
        say!("{:<8} SYNs/s cookies2 {}", "", cell(tf, tf0));
    }
}

/// Connections per second over a multi-queue TUN device.
pub(crate) mod tun {
    use super::*;
    use socket2::{Domain, Protocol, Socket, Type};

    const HOST: &str = "10.76.0.1";
    const STACK: &str = "10.76.0.2";
    const PORT: u16 = 7;
    /// Client threads: enough connections in flight to keep every shard busy.
    const CLIENTS: usize = 16;

    /// What one TUN run measured.
    pub(crate) struct Figure {
        pub(crate) rate: f64,
        /// The per-shard counter (`TcpPassiveOpens`, `TcpExtSyncookiesSent`), as `synq
        /// stat` lists them.
        pub(crate) per_shard: Vec<u64>,
        /// CPU the server used while the load ran, in cores (1.0: one core busy): below
        /// its thread count, the server was not what bounded the rate.
        pub(crate) server_cores: f64,
    }

    /// CPU seconds (user and system) process `pid` has used, from /proc (its clock ticks
    /// are USER_HZ, 100 on Linux whatever the kernel's tick).
    fn cpu_secs(pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command name (which may hold spaces): state is field 3, utime 14.
        let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    /// The `synq` binary: `SYNQ`, or beside this one.
    fn synq() -> Option<std::path::PathBuf> {
        if let Some(p) = std::env::var_os("SYNQ") {
            return Some(p.into());
        }
        let p = std::env::current_exe().ok()?.with_file_name("synq");
        p.exists().then_some(p)
    }

    /// Why the TUN figures are missing.
    pub(crate) fn why_not() -> String {
        synq_tun::unsupported()
            .or_else(|| {
                synq().is_none().then(|| {
                    "synq binary not found (cargo build --release -p synq-cli, or SYNQ=path)".into()
                })
            })
            .unwrap_or_else(|| "the run failed".into())
    }

    /// Connections per second: `synq serve --threads n --app echo`, this program's client
    /// threads in its namespace; per shard, `TcpPassiveOpens`.
    pub(crate) fn connections(secs: f64, n: usize) -> Option<Figure> {
        serve_and_load(secs, n, &[], "--tun-client", |out, v| {
            Some(Figure {
                rate: out.trim().parse().ok()?,
                per_shard: per_shard(v, "TcpPassiveOpens")?,
                server_cores: 0.0,
            })
        })
    }

    /// SYNs answered per second under `tcp_syncookies=2`: spoofed SYNs written by this
    /// program's raw-socket threads in the namespace; per shard, `TcpExtSyncookiesSent`.
    pub(crate) fn syn_flood(secs: f64, n: usize) -> Option<Figure> {
        let cookies = ["--sysctl", "net.ipv4.tcp_syncookies=2"];
        serve_and_load(secs, n, &cookies, "--tun-flood", |out, v| {
            let elapsed: f64 = out.trim().parse().ok()?;
            let answered = v["counters"]["TcpExtSyncookiesSent"].as_u64()?;
            Some(Figure {
                rate: answered as f64 / elapsed,
                per_shard: per_shard(v, "TcpExtSyncookiesSent")?,
                server_cores: 0.0,
            })
        })
    }

    fn per_shard(stat: &Value, counter: &str) -> Option<Vec<u64>> {
        stat["shards"]
            .as_array()?
            .iter()
            .map(|s| s["counters"][counter].as_u64())
            .collect()
    }

    /// `synq serve --threads n ARGS` in a namespace of its own, then this program as
    /// `LOAD STACK:PORT --secs secs` inside it; `figure` reads the load's output and the
    /// server's `synq stat --json` after it.
    fn serve_and_load(
        secs: f64,
        n: usize,
        args: &[&str],
        load: &str,
        figure: impl FnOnce(&str, &Value) -> Option<Figure>,
    ) -> Option<Figure> {
        if synq_tun::unsupported().is_some() {
            return None;
        }
        let synq = synq()?;
        let ns = synq_tun::Netns::create("sqscale").ok()?;
        let control = std::env::temp_dir().join(format!("{}.sock", ns.name()));
        let mut server = ns
            .command(synq.to_str()?)
            .args(["serve", "--tun", "sqs0", "--addr", STACK, "--peer"])
            .arg(format!("{HOST}/24"))
            .args([
                "--port",
                &PORT.to_string(),
                "--backlog",
                "4096",
                "--app",
                "echo",
            ])
            .args(["--threads", &n.to_string(), "--control"])
            .arg(&control)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut line = String::new();
        let ready = server
            .stdout
            .take()
            .map(|o| BufReader::new(o).read_line(&mut line));
        let measured = (matches!(ready, Some(Ok(_))) && line.trim() == "ready")
            .then(|| {
                let exe = std::env::current_exe().ok()?;
                let (cpu0, t0) = (cpu_secs(server.id())?, WallInstant::now());
                let out = ns
                    .command(exe.to_str()?)
                    .args([
                        load,
                        &format!("{STACK}:{PORT}"),
                        "--secs",
                        &secs.to_string(),
                    ])
                    .output()
                    .ok()?;
                let server_cores = (cpu_secs(server.id())? - cpu0) / t0.elapsed().as_secs_f64();
                let stat = Command::new(&synq)
                    .args(["stat", "--json", "--control"])
                    .arg(&control)
                    .output()
                    .ok()?;
                let v: Value = serde_json::from_slice(&stat.stdout).ok()?;
                let f = figure(&String::from_utf8_lossy(&out.stdout), &v)?;
                Some(Figure { server_cores, ..f })
            })
            .flatten();
        let _ = Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status();
        // Bounded: SIGKILL if it has not gone after 10 s (the namespace goes on drop).
        let deadline = WallInstant::now() + Duration::from_secs(10);
        while WallInstant::now() < deadline && matches!(server.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_file(&control);
        measured
    }

    /// Inside the namespace: spoofed SYNs (sources in 198.18.0.0/15, as the simulator's
    /// floods) written through raw sockets by a thread per core until `secs` are up; the
    /// seconds that took.
    pub(crate) fn flood(dst: std::net::SocketAddr, secs: f64) -> f64 {
        let limit = Duration::from_secs_f64(secs);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let start = WallInstant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    let Ok(sock) = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)) else {
                        return;
                    };
                    if sock.set_header_included_v4(true).is_err() {
                        return;
                    }
                    let to = dst.into();
                    let syns: Vec<Vec<u8>> = (0..1u32 << 14)
                        .map(|i| {
                            let mut p = Vec::new();
                            let src = (t << 14) | i;
                            synq_sim::scenario::spoofed_syn(src, src.rotate_left(9), dst, &mut p);
                            p
                        })
                        .collect();
                    while start.elapsed() < limit {
                        for p in &syns {
                            // A full device queue (ENOBUFS) loses the SYN, as a link would.
                            let _ = sock.send_to(p, &to);
                        }
                    }
                });
            }
        });
        start.elapsed().as_secs_f64()
    }

    /// Inside the namespace: CLIENTS threads each connect, send a byte, read it back and
    /// close with RST (SO_LINGER 0: no TIME_WAIT to run out of ports); connections per
    /// second.
    pub(crate) fn client(addr: std::net::SocketAddr, secs: f64) -> f64 {
        let limit = Duration::from_secs_f64(secs);
        let start = WallInstant::now();
        let done: u64 = std::thread::scope(|s| {
            let threads: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    s.spawn(move || {
                        let mut n = 0u64;
                        while start.elapsed() < limit {
                            if one(addr).is_ok() {
                                n += 1;
                            }
                        }
                        n
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
        });
        done as f64 / start.elapsed().as_secs_f64()
    }

    fn one(addr: std::net::SocketAddr) -> std::io::Result<()> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_linger(Some(Duration::ZERO))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.connect_timeout(&addr.into(), Duration::from_secs(2))?;
        let mut s: std::net::TcpStream = s.into();
        s.write_all(b"x")?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        Ok(())
    }
}
