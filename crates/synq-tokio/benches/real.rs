//! Real traffic, synq against the Linux kernel, in one run, with one client program.
//!
//! `cargo bench -p synq-tokio --bench real` (root, /dev/net/tun, `ip`). Two pairs of
//! namespaces, each a client namespace and a server across one virtual link:
//! - synq: clients in `C` reach a synq stack (this process, one tokio thread) through a TUN
//!   device moved into `C`;
//! - kernel: clients in `KC` reach a kernel server (this program again, one tokio thread,
//!   std sockets) in `KS` across a veth pair.
//!
//! The same client (this program, run inside each client namespace) measures: connections
//! per second (connect, 100-byte request, 100-byte response, close), HTTP/1.1 requests per
//! second over keep-alive connections (hyper on both servers), and one stream's bulk
//! throughput. Prints a table of synq/kernel ratios; `--json` prints one object. Figures
//! are measured, never asserted.

use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RR_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;
const BULK_PORT: u16 = 9;
const SOURCE_PORT: u16 = 19;
const MSG: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    match args.first().map(String::as_str) {
        Some("kernel-server") => rt()
            .block_on(kernel_server(&args[1]))
            .expect("kernel server"),
        Some("client") => {
            let r = rt().block_on(client(&args[1], args[2].parse().unwrap(), &args[3]));
            println!("{}", r.expect("client"));
        }
        _ => orchestrate(args.iter().any(|a| a == "--json")),
    }
}

/// What the servers do, on both stacks: an echo of one 100-byte request, HTTP, and discard.
async fn rr<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let mut buf = [0u8; MSG];
    s.read_exact(&mut buf).await?;
    s.write_all(&buf).await?;
    s.shutdown().await?;
    // Wait for the client's FIN so the client closes first (its TIME_WAIT, not ours).
    let _ = s.read(&mut buf).await;
    Ok(())
}

async fn discard<S: tokio::io::AsyncRead + Unpin>(mut s: S) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    while s.read(&mut buf).await? > 0 {}
    Ok(())
}

/// Write until the peer goes away (chargen's port, without the characters).
async fn source<S: tokio::io::AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let chunk = vec![0x43u8; 256 * 1024];
    loop {
        s.write_all(&chunk).await?;
    }
}

async fn http<S>(s: S) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(&[b'x'; MSG]),
        )))
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
        .await
        .map_err(io::Error::other)
}

async fn kernel_server(ip: &str) -> io::Result<()> {
    let bind =
        |port| tokio::net::TcpListener::bind((ip.parse::<std::net::IpAddr>().unwrap(), port));
    let (a, b, c) = (
        bind(RR_PORT).await?,
        bind(HTTP_PORT).await?,
        bind(BULK_PORT).await?,
    );
    let d = bind(SOURCE_PORT).await?;
    println!("ready");
    loop {
        tokio::select! {
            Ok((s, _)) = a.accept() => { tokio::spawn(rr(s)); }
            Ok((s, _)) = b.accept() => { tokio::spawn(http(s)); }
            Ok((s, _)) = c.accept() => { tokio::spawn(discard(s)); }
            Ok((s, _)) = d.accept() => { tokio::spawn(source(s)); }
        }
    }
}

fn synq_server(stack: &synq_tokio::Stack, ip: std::net::IpAddr) -> io::Result<()> {
    use synq_tokio::TcpListener;
    let a = TcpListener::bind(stack, SocketAddr::new(ip, RR_PORT), 4096)?;
    let b = TcpListener::bind(stack, SocketAddr::new(ip, HTTP_PORT), 4096)?;
    let c = TcpListener::bind(stack, SocketAddr::new(ip, BULK_PORT), 4096)?;
    let d = TcpListener::bind(stack, SocketAddr::new(ip, SOURCE_PORT), 4096)?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Ok((s, _)) = a.accept() => { tokio::spawn(rr(s)); }
                Ok((s, _)) = b.accept() => { tokio::spawn(http(s)); }
                Ok((s, _)) = c.accept() => { tokio::spawn(discard(s)); }
                Ok((s, _)) = d.accept() => { tokio::spawn(source(s)); }
            }
        }
    });
    Ok(())
}

/// The load generator: `client rr|http|bulk SECS SERVER_IP`; prints one figure per second.
async fn client(kind: &str, secs: f64, ip: &str) -> io::Result<f64> {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    let dur = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let deadline = start + dur;
    match kind {
        "rr" => {
            let n = per_task(|| async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let mut s = tokio::net::TcpStream::connect((ip, RR_PORT)).await?;
                    s.write_all(&[7u8; MSG]).await?;
                    let mut buf = [0u8; MSG];
                    s.read_exact(&mut buf).await?;
                    drop(s);
                    n += 1;
                }
                io::Result::Ok(n)
            })
            .await?;
            Ok(n as f64 / start.elapsed().as_secs_f64())
        }
        "http" => {
            let n = per_task(|| async move {
                let mut s = tokio::net::TcpStream::connect((ip, HTTP_PORT)).await?;
                s.set_nodelay(true)?;
                let req = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n";
                let mut buf = vec![0u8; 4096];
                let mut n = 0u64;
                while Instant::now() < deadline {
                    s.write_all(req).await?;
                    // One response: headers then exactly MSG body bytes.
                    let mut have = 0;
                    loop {
                        let k = s.read(&mut buf[have..]).await?;
                        if k == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        have += k;
                        if let Some(h) = find(&buf[..have], b"\r\n\r\n") {
                            if have >= h + 4 + MSG {
                                break;
                            }
                        }
                    }
                    n += 1;
                }
                io::Result::Ok(n)
            })
            .await?;
            Ok(n as f64 / start.elapsed().as_secs_f64())
        }
        "download" => {
            let mut s = tokio::net::TcpStream::connect((ip, SOURCE_PORT)).await?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            while Instant::now() < deadline {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            Ok(got as f64 * 8.0 / start.elapsed().as_secs_f64())
        }
        _ => {
            let mut s = tokio::net::TcpStream::connect((ip, BULK_PORT)).await?;
            let chunk = vec![0x42u8; 256 * 1024];
            let mut sent = 0u64;
            while Instant::now() < deadline {
                s.write_all(&chunk).await?;
                sent += chunk.len() as u64;
            }
            s.shutdown().await?;
            // The server closes after reading everything: the time includes the drain.
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
            Ok(sent as f64 * 8.0 / start.elapsed().as_secs_f64())
        }
    }
}

/// Run `task` on 32 concurrent tasks; the sum of what they count.
async fn per_task<F, Fut>(task: F) -> io::Result<u64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<u64>> + Send + 'static,
{
    let tasks: Vec<_> = (0..32).map(|_| tokio::spawn(task())).collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(io::Error::other)??;
    }
    Ok(total)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .args(["-c", cmd])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "failed: {cmd}");
}

fn run_client(ns: &synq_tun::Netns, kind: &str, secs: f64, ip: &str) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let out = ns
        .command(exe.to_str().unwrap())
        .args(["client", kind, &secs.to_string(), ip])
        .stderr(Stdio::inherit())
        .output()
        .expect("client");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

fn orchestrate(json: bool) {
    if let Some(why) = synq_tun::unsupported() {
        println!("SKIP real-traffic benchmark: {why}");
        return;
    }
    let secs: f64 = std::env::var("SYNQ_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // The kernel's veth link uses segmentation offload (64 KB per packet up and down the
    // stack); a TUN device without offload gets the same effect from a large MTU.
    let mtu: u16 = std::env::var("SYNQ_BENCH_MTU")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let offload = std::env::var("SYNQ_BENCH_OFFLOAD").map_or(true, |v| v != "0");
    let c = std::sync::Arc::new(synq_tun::Netns::create("sqbc").unwrap());
    let kc = synq_tun::Netns::create("sqbkc").unwrap();
    let ks = synq_tun::Netns::create("sqbks").unwrap();
    for ns in [&*c, &kc] {
        // Many short connections: let the clients reuse TIME_WAIT ports, as a load tool does.
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1").unwrap();
        ns.sysctl("net.ipv4.ip_local_port_range", "1024 65000")
            .unwrap();
    }
    ks.sysctl("net.core.somaxconn", "4096").unwrap();
    let veth = format!("sqv{}", std::process::id() % 100_000);
    sh(&format!(
        "ip link add {veth}a type veth peer name {veth}b && \
         ip link set {veth}a netns {} && ip link set {veth}b netns {} && \
         ip -n {} addr add 10.72.0.1/24 dev {veth}a && ip -n {} link set {veth}a up && \
         ip -n {} addr add 10.72.0.2/24 dev {veth}b && ip -n {} link set {veth}b up",
        kc.name(),
        ks.name(),
        kc.name(),
        kc.name(),
        ks.name(),
        ks.name()
    ));
    let exe = std::env::current_exe().unwrap();
    let mut kernel = ks
        .command(exe.to_str().unwrap())
        .args(["kernel-server", "10.72.0.2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kernel server");
    {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = io::BufReader::new(kernel.stdout.as_mut().unwrap()).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "kernel server did not start");
    }
    // The synq server: one tokio thread drives the TUN device and serves.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let c2 = c.clone();
    let synq = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let name = format!("sqb{}", std::process::id() % 100_000);
            let tun = if offload {
                synq_tun::Tun::create_offload(&name, mtu)
            } else {
                synq_tun::Tun::create(&name, mtu)
            }
            .unwrap();
            tun.move_into(&c2, "10.73.0.1".parse().unwrap(), 24)
                .unwrap();
            let mut cfg = synq_core::Config::default();
            cfg.set("net.core.somaxconn", "4096").unwrap();
            cfg.set("synq.mtu", &mtu.to_string()).unwrap();
            let stack = synq_tokio::Stack::new(tun, cfg).unwrap();
            stack.add_address("10.73.0.2".parse().unwrap());
            synq_server(&stack, "10.73.0.2".parse().unwrap()).unwrap();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            ready_tx.send((stop_tx, stack.clone())).unwrap();
            let _ = stop_rx.await;
            stack.shutdown();
        });
    });
    let (stop, stack) = ready_rx.recv().unwrap();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (kind, name) in [
        ("rr", "connections/s (100 B each way)"),
        ("http", "HTTP/1.1 keep-alive requests/s"),
        ("bulk", "bulk to the server, Gbit/s"),
        ("download", "bulk from the server, Gbit/s"),
    ] {
        let before = stack.driver_stats();
        let s = run_client(&c, kind, secs, "10.73.0.2");
        let d = stack.driver_stats();
        let k = run_client(&kc, kind, secs, "10.72.0.2");
        let wakeups = (d.wakeups - before.wakeups).max(1) as f64;
        let (rx, tx) = (
            d.rx_packets - before.rx_packets,
            d.tx_packets - before.tx_packets,
        );
        let supers = d.tx_super_segments - before.tx_super_segments;
        notes.push(format!(
            "{kind}: synq driver moved {rx} packets in, {tx} out ({supers} writes of \
             super-segments), {:.1} per wakeup",
            (rx + tx) as f64 / wakeups
        ));
        rows.push((kind, name, s, k));
    }
    drop(stack);
    let _ = stop.send(());
    let _ = synq.join();
    let _ = kernel.kill();
    let _ = kernel.wait();
    if json {
        let mut o = serde_json::Map::new();
        for (kind, _, s, k) in &rows {
            o.insert(format!("{kind}_synq"), (*s).into());
            o.insert(format!("{kind}_kernel"), (*k).into());
            o.insert(format!("{kind}_ratio"), (s / k).into());
        }
        o.insert("secs".into(), secs.into());
        o.insert("tun_mtu".into(), mtu.into());
        o.insert("tun_offload".into(), offload.into());
        o.insert("notes".into(), notes.clone().into());
        println!("{}", serde_json::Value::Object(o));
    } else {
        println!("real traffic, {secs} s each, one server thread each side, TUN MTU {mtu}, offload {offload}");
        println!(
            "{:<34} {:>12} {:>12} {:>12}",
            "", "synq", "kernel", "synq/kernel"
        );
        for (kind, name, s, k) in &rows {
            let bits = matches!(*kind, "bulk" | "download");
            let scale = if bits { 1e9 } else { 1.0 };
            let prec = if bits { 2 } else { 0 };
            println!(
                "{name:<34} {:>12.prec$} {:>12.prec$} {:>12.3}",
                s / scale,
                k / scale,
                s / k
            );
        }
        for n in &notes {
            println!("{n}");
        }
    }
}
