//! `synq serve` and `synq stat` with real traffic: the kernel's own clients (curl, python3)
//! in a network namespace of the test's own talk to a synq listener on a TUN device. Every
//! test skips (and says why) without root, /dev/net/tun, `ip` or the tools it runs.

mod real;

use real::{run_bounded, Server, HOST, STACK};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// What `GET /` answers (a copy of `PAGE` in src/serve.rs).
const PAGE: &str = "<!doctype html><title>synq</title>\
<h1>synq</h1><p>This page crossed a userspace TCP stack.</p>\n";

/// Byte `i` of every `/bytes/N` body.
fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/real")
        .join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `curl http://STACK:port{path} -o out` inside the server's namespace; the HTTP status.
fn curl(server: &Server, port: u16, path: &str, out: &Path, max_secs: u64) -> String {
    let url = format!("http://{STACK}:{port}{path}");
    let o = run_bounded(
        server
            .ns
            .command("curl")
            .args([
                "-sS",
                "--max-time",
                &max_secs.to_string(),
                "-w",
                "%{http_code}",
            ])
            .arg("-o")
            .arg(out)
            .arg(&url),
        Duration::from_secs(max_secs + 15),
    );
    assert!(
        o.status.success(),
        "curl {url}: {}{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    text(&o.stdout)
}

/// `GET /` answers the page.
fn assert_page(server: &Server, port: u16) {
    let out = server.dir.join("page.html");
    assert_eq!(curl(server, port, "/", &out, 20), "200");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), PAGE);
}

/// `synq ARGS` with a time bound.
fn synq(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_synq")).args(args),
        Duration::from_secs(20),
    )
}

/// A usage error: exit status 2, one line on stderr saying so, nothing on stdout, no panic.
fn assert_usage_error(o: &Output, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: {:?}, stderr {err}",
        o.status
    );
    assert_eq!(err.lines().count(), 1, "{what}: stderr {err:?}");
    assert!(err.starts_with("synq: "), "{what}: stderr {err:?}");
    assert!(!err.contains("panicked"), "{what}: stderr {err:?}");
    assert!(o.stdout.is_empty(), "{what}: stdout {:?}", text(&o.stdout));
}

/// Whether `ip -n NS link show IF` finds the interface.
fn link_in(ns: &real::Netns, ifname: &str) -> bool {
    let o = run_bounded(
        Command::new("ip").args(["-n", ns.name(), "link", "show", ifname]),
        Duration::from_secs(10),
    );
    o.status.success()
}

/// Every counter of `synq stat --json`.
fn counters(server: &Server) -> BTreeMap<String, u64> {
    let v = server.stat();
    v["counters"]
        .as_object()
        .expect("counters")
        .iter()
        .map(|(k, x)| (k.clone(), x.as_u64().expect("counter value")))
        .collect()
}

/// Poll `synq stat` every 50 ms for up to `limit` until `done` holds; the last reading.
fn stat_until(
    server: &Server,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    for _ in 0..10_000 {
        let v = server.stat();
        if done(&v) || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stat()
}

/// A file removed on drop (also when the test fails).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process killed on drop (also when the test fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn http_page_and_50_mb_body_byte_exact() {
    if let Some(why) = real::unsupported(&["curl"]) {
        real::skip("http_page_and_50_mb_body_byte_exact", &why);
        return;
    }
    let server = Server::start("http", 8080, 128, &["--app", "http"]);
    fetch_50_mb(&server);
}

#[test]
fn offload_serves_50_mb_in_super_segments() {
    if let Some(why) = real::unsupported(&["curl"]) {
        real::skip("offload_serves_50_mb_in_super_segments", &why);
        return;
    }
    let server = Server::start("offl", 8080, 128, &["--app", "http", "--offload"]);
    fetch_50_mb(&server);
    let v = server.stat();
    let supers = v["driver"]["tx_super_segments"].as_u64().unwrap();
    assert!(supers > 0, "no super-segment written: {}", v["driver"]);
    assert_eq!(v["counters"]["TcpInCsumErrors"], 0);
}

/// `/` and `/bytes/50000000` through curl, every byte checked.
fn fetch_50_mb(server: &Server) {
    const N: usize = 50_000_000;
    assert_page(server, 8080);

    let out = server.dir.join("bytes.bin");
    assert_eq!(curl(server, 8080, &format!("/bytes/{N}"), &out, 300), "200");
    let body = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(body.len(), N, "length of /bytes/{N}");
    if let Some(i) = body
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern_byte(i))
    {
        panic!(
            "/bytes/{N}: byte {i} is {}, expected {}",
            body[i],
            pattern_byte(i)
        );
    }
}

#[test]
fn echo_200_clients_1_mb_each() {
    if let Some(why) = real::unsupported(&["python3"]) {
        real::skip("echo_200_clients_1_mb_each", &why);
        return;
    }
    const CLIENTS: u64 = 200;
    const BYTES: u64 = 1_000_000;
    const LIMIT_S: u64 = 600;
    let server = Server::start("echo", 7, 256, &["--app", "echo"]);
    let o = run_bounded(
        server
            .ns
            .command("python3")
            .arg(script("echo_clients.py"))
            .args([STACK, "7", &CLIENTS.to_string(), &BYTES.to_string()])
            .arg(LIMIT_S.to_string()),
        Duration::from_secs(LIMIT_S + 60),
    );
    let stdout = text(&o.stdout);
    assert!(
        o.status.success(),
        "echo_clients.py: {:?}\n{stdout}{}",
        o.status,
        text(&o.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("echo_clients.py summary ({e}): {stdout}"));
    let c = counters(&server);
    let _ = writeln!(
        std::io::stderr(),
        "echo_200_clients_1_mb_each: {} clients x {BYTES} bytes echoed in {} s \
         (the stack's RTO timeouts {}, retransmitted segments {})",
        summary["clients"],
        summary["seconds"],
        c["TcpExtTCPTimeouts"],
        c["TcpRetransSegs"]
    );
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["intact"], CLIENTS, "{summary}");
    assert_eq!(summary["sent"], CLIENTS * BYTES, "{summary}");
    assert_eq!(summary["received"], CLIENTS * BYTES, "{summary}");
    assert!(c["TcpPassiveOpens"] >= CLIENTS, "{c:?}");
}

#[test]
fn bad_segments_are_counted_and_dropped() {
    if let Some(why) = real::unsupported(&["curl", "python3"]) {
        real::skip("bad_segments_are_counted_and_dropped", &why);
        return;
    }
    // IPv6 off: no router solicitation may cross the link and move a counter meanwhile.
    let server = Server::start_in(real::quiet_netns("bad"), 80, 16, &["--app", "http"]);
    // As Linux's tcp_v4_rcv counts them (checked against the kernel with the same packets).
    let seg = [("IpInReceives", 1), ("TcpInSegs", 1)];
    let cases: [(&str, &[(&str, u64)]); 4] = [
        // A good header whose checksum is off by one bit.
        ("csum", &[("TcpInErrs", 1), ("TcpInCsumErrors", 1)]),
        // 8 bytes of TCP header: the IP layer is fine, TCP finds it too short and drops it
        // as Linux does, without TcpInErrs (no IpInTruncatedPkts either: that one is for IP
        // packets shorter than their header says); synq's own counter shows it.
        ("trunc", &[("SynqInTruncatedSegs", 1)]),
        // Data offset 2 (8 bytes) is below the 20-byte minimum.
        ("offset", &[("TcpInErrs", 1), ("SynqInBadDataOffset", 1)]),
        // 48 bytes of noise: data offset 9 fits, so the checksum is what fails.
        ("garbage", &[("TcpInErrs", 1), ("TcpInCsumErrors", 1)]),
    ];
    for (case, extra) in cases {
        let before = counters(&server);
        let o = run_bounded(
            server
                .ns
                .command("python3")
                .arg(script("raw_segments.py"))
                .args([HOST, STACK, "80", case]),
            Duration::from_secs(20),
        );
        assert!(
            o.status.success(),
            "raw_segments.py {case}: {}",
            text(&o.stderr)
        );
        let segs = before["TcpInSegs"];
        stat_until(&server, Duration::from_secs(5), |v| {
            v["counters"]["TcpInSegs"].as_u64() > Some(segs)
        });
        // Let anything else the packet might (wrongly) cause show up too.
        std::thread::sleep(Duration::from_millis(200));
        let after = counters(&server);
        let changed: BTreeMap<&str, u64> = after
            .iter()
            .filter(|&(k, v)| before.get(k) != Some(v))
            .map(|(k, v)| (k.as_str(), v - before.get(k).copied().unwrap_or(0)))
            .collect();
        let expected: BTreeMap<&str, u64> = seg.iter().chain(extra).copied().collect();
        assert_eq!(
            changed, expected,
            "counters that moved for the {case} segment"
        );
    }
    assert_page(&server, 80);
    let c = counters(&server);
    assert_eq!(c["TcpInCsumErrors"], 2);
    assert_eq!(c["SynqInBadDataOffset"], 1);
    assert_eq!(c["SynqInTruncatedSegs"], 1);
    assert_eq!(c["IpInTruncatedPkts"], 0);
    assert_eq!(c["TcpPassiveOpens"], 1);
}

#[test]
fn control_socket_answers_bad_requests_with_errors() {
    if let Some(why) = real::unsupported(&["curl"]) {
        real::skip("control_socket_answers_bad_requests_with_errors", &why);
        return;
    }
    let server = Server::start("ctl", 80, 16, &["--app", "http"]);
    let connect = || {
        let c = UnixStream::connect(&server.control).expect("connect control socket");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    };
    let reply = |r: &mut BufReader<UnixStream>, what: &str| -> serde_json::Value {
        let mut line = String::new();
        r.read_line(&mut line)
            .unwrap_or_else(|e| panic!("{what}: no reply ({e})"));
        assert!(
            line.ends_with('\n'),
            "{what}: reply {line:?} is not one line"
        );
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: reply {line:?}: {e}"))
    };
    let is_error =
        |v: &serde_json::Value| v["error"].is_string() && v.as_object().unwrap().len() == 1;

    // Several bad requests on one connection: each gets its error, the connection stays.
    let mut w = connect();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let bad: [(&str, &[u8]); 4] = [
        ("unknown command", b"status please\n"),
        ("invalid UTF-8", b"st\xffat\xfe\n"),
        ("empty line", b"\n"),
        ("stat with junk after it", b"stat now\n"),
    ];
    for (what, req) in bad {
        w.write_all(req).unwrap();
        let v = reply(&mut r, what);
        assert!(is_error(&v), "{what}: {v}");
    }
    w.write_all(b"stat\n").unwrap();
    let v = reply(&mut r, "stat after errors");
    assert!(v["counters"].is_object(), "stat after errors: {v}");
    drop((w, r));

    // 10 000 bytes and no newline: an error reply; the server may then hang up.
    let mut w = connect();
    w.write_all(&[b'x'; 10_000]).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let v = reply(&mut r, "10 000-byte line");
    assert!(is_error(&v), "10 000-byte line: {v}");
    drop((w, r));

    // Hang-ups before or within a request.
    drop(connect());
    let mut w = connect();
    w.write_all(b"sta").unwrap();
    drop(w);

    // The server still serves, and `synq stat` (both forms) still works.
    let o = synq(&["stat", "--control", server.control.to_str().unwrap()]);
    assert!(o.status.success(), "synq stat: {}", text(&o.stderr));
    let human = text(&o.stdout);
    for section in ["# ss -lnt", "# ss -tan", "# nstat -az"] {
        assert!(
            human.contains(section),
            "synq stat lacks {section}: {human}"
        );
    }
    assert_page(&server, 80);
    assert_eq!(server.counter("TcpPassiveOpens"), 1);

    let o = synq(&["stat", "--control", "/nonexistent"]);
    assert_usage_error(&o, "synq stat --control /nonexistent");
}

#[test]
fn sigterm_exits_0_and_removes_device_and_socket() {
    sigterm_case(
        "sigterm_exits_0_and_removes_device_and_socket",
        "term",
        &["--app", "http"],
    );
}

/// Four shards with offload on every queue: each shard's thread stops, every queue closes.
#[test]
fn sigterm_with_threads_removes_every_queue() {
    sigterm_case(
        "sigterm_with_threads_removes_every_queue",
        "termq",
        &["--app", "http", "--threads", "4", "--offload"],
    );
}

/// Serve with `args`, fetch a page, SIGTERM: exit 0, the device, control socket and
/// namespace gone.
fn sigterm_case(test: &str, tag: &str, args: &[&str]) {
    if let Some(why) = real::unsupported(&["curl"]) {
        real::skip(test, &why);
        return;
    }
    let mut server = Server::start(tag, 80, 16, args);
    assert!(link_in(&server.ns, "sq0"), "sq0 while serving");
    assert!(server.control.exists(), "control socket while serving");
    assert_page(&server, 80);

    let (status, stderr) = server.signal_and_wait("TERM", Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status:?}, stderr {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!link_in(&server.ns, "sq0"), "sq0 still there after SIGTERM");
    assert!(
        !server.control.exists(),
        "control socket still there after SIGTERM"
    );

    let ns = server.ns.name().to_string();
    drop(server);
    assert!(
        !synq_tun::netns_exists(&ns),
        "namespace {ns} outlived the test"
    );
}

#[test]
fn sigkill_takes_the_device_with_the_process() {
    use std::os::unix::process::ExitStatusExt;
    if let Some(why) = real::unsupported(&[]) {
        real::skip("sigkill_takes_the_device_with_the_process", &why);
        return;
    }
    let mut server = Server::start("kill", 80, 16, &["--app", "echo"]);
    assert!(link_in(&server.ns, "sq0"), "sq0 while serving");

    let (status, _) = server.signal_and_wait("KILL", Duration::from_secs(10));
    assert_eq!(status.signal(), Some(9), "{status:?}");
    // The kernel removes a TUN device when its last descriptor closes; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut gone = false;
    for _ in 0..100 {
        gone = !link_in(&server.ns, "sq0");
        if gone || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "sq0 outlived its process");
    // A crash leaves the socket file behind; nobody answers there.
    let o = synq(&["stat", "--control", server.control.to_str().unwrap()]);
    assert_usage_error(&o, "synq stat on a dead server's socket");

    let ns = server.ns.name().to_string();
    drop(server);
    assert!(
        !synq_tun::netns_exists(&ns),
        "namespace {ns} outlived the test"
    );
}

/// Addresses, ports and flags of an IPv4 TCP packet.
#[derive(Debug)]
struct Tcp4 {
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
}

/// `None` for anything but IPv4 TCP.
fn tcp4(p: &[u8]) -> Option<Tcp4> {
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 6 {
        return None;
    }
    let t = p.get(usize::from(p[0] & 0xf) * 4..)?;
    if t.len() < 20 {
        return None;
    }
    let port = |i: usize| u16::from_be_bytes([t[i], t[i + 1]]);
    Some(Tcp4 {
        src: p[12..16].try_into().ok()?,
        sport: port(0),
        dst: p[16..20].try_into().ok()?,
        dport: port(2),
        flags: t[13],
    })
}

#[test]
fn pcap_holds_the_handshake() {
    use pcap_file::pcap::PcapReader;
    if let Some(why) = real::unsupported(&["curl"]) {
        real::skip("pcap_holds_the_handshake", &why);
        return;
    }
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const RST: u8 = 0x04;
    const FIN: u8 = 0x01;
    let ns = real::quiet_netns("pcap");
    let pcap = TempFile(std::env::temp_dir().join(format!("{}.pcap", ns.name())));
    let path = pcap.0.to_str().unwrap().to_string();
    let mut server = Server::start_in(ns, 8080, 16, &["--app", "http", "--pcap", &path]);
    assert_page(&server, 8080);
    let (status, stderr) = server.signal_and_wait("TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");

    let mut r = PcapReader::new(std::fs::File::open(&pcap.0).unwrap()).expect("pcap header");
    assert_eq!(r.header().datalink, pcap_file::DataLink::RAW);
    let mut packets = Vec::new();
    for _ in 0..100_000 {
        match r.next_packet() {
            Some(p) => packets.push(p.expect("pcap packet").data.into_owned()),
            None => break,
        }
    }
    assert!(packets.len() > 5, "{} packets", packets.len());
    let (host, stack) = ([10, 71, 0, 1], [10, 71, 0, 2]);
    let syn = tcp4(&packets[0]).expect("first packet is IPv4 TCP");
    assert_eq!(
        (syn.src, syn.dst, syn.dport),
        (host, stack, 8080),
        "first packet {syn:?}"
    );
    assert_eq!(
        syn.flags & (SYN | ACK | RST | FIN),
        SYN,
        "first packet {syn:?}"
    );
    let synack = tcp4(&packets[1]).expect("second packet is IPv4 TCP");
    assert_eq!(
        (synack.src, synack.sport, synack.dst, synack.dport),
        (stack, 8080, host, syn.sport),
        "second packet {synack:?}"
    );
    assert_eq!(
        synack.flags & (SYN | ACK | RST | FIN),
        SYN | ACK,
        "second packet {synack:?}"
    );
}

/// `n` non-blocking connects to port 80 from the server's namespace, held open for at most
/// 60 s (killed when the returned guard drops).
fn held_connects(server: &Server, n: usize) -> KillOnDrop {
    let clients = format!(
        "import socket, time\n\
socks = [socket.socket() for _ in range({n})]\n\
for s in socks:\n    s.setblocking(False)\n    s.connect_ex(('10.71.0.2', 80))\n\
time.sleep(60)\n"
    );
    KillOnDrop(
        server
            .ns
            .command("python3")
            .args(["-c", &clients])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("python3"),
    )
}

#[test]
fn stat_shows_the_full_accept_queue() {
    if let Some(why) = real::unsupported(&["python3"]) {
        real::skip("stat_shows_the_full_accept_queue", &why);
        return;
    }
    let server = Server::start("hold", 80, 2, &["--app", "hold", "--model", "linux"]);
    let _clients = held_connects(&server, 5);
    let v = stat_until(&server, Duration::from_secs(15), |v| {
        v["listeners"][0]["recv_q"] == 3
            && v["counters"]["TcpExtListenOverflows"].as_u64() > Some(0)
    });
    assert_eq!(v["listeners"][0]["recv_q"], 3, "{v}");
    assert_eq!(v["listeners"][0]["send_q"], 2, "{v}");

    let o = synq(&["stat", "--control", server.control.to_str().unwrap()]);
    assert!(o.status.success(), "synq stat: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let section = |name: &str| -> Vec<Vec<String>> {
        out.lines()
            .skip_while(|l| *l != name)
            .skip(1)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    let listen: Vec<_> = section("# ss -lnt")
        .into_iter()
        .filter(|f| f[0] == "LISTEN")
        .collect();
    assert_eq!(listen.len(), 1, "{out}");
    assert_eq!(listen[0][1..3], ["3", "2"], "Recv-Q and Send-Q: {out}");
    assert_eq!(listen[0][4], format!("{STACK}:80"), "{out}");
    let overflows = section("# nstat -az")
        .into_iter()
        .find(|f| f[0] == "TcpExtListenOverflows")
        .unwrap_or_else(|| panic!("no TcpExtListenOverflows: {out}"));
    assert!(overflows[1].parse::<u64>().unwrap() > 0, "{out}");
    // One shard: the figures above are its own, listed once more under `shards` (JSON only).
    assert_eq!(v["shards"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["shards"][0]["listeners"], v["listeners"], "{v}");
    assert!(!out.contains("# shards"), "{out}");
}

#[test]
fn freebsd_model_over_tun_answers_every_syn_and_resets_beyond_the_limit() {
    const TEST: &str = "freebsd_model_over_tun_answers_every_syn_and_resets_beyond_the_limit";
    if let Some(why) = real::unsupported(&["python3"]) {
        real::skip(TEST, &why);
        return;
    }
    // listen(0): FreeBSD's listen queue takes floor(3*0/2)+1 = 1 completed connection.
    let server = Server::start("fbsd", 80, 0, &["--app", "hold", "--model", "freebsd"]);
    let _clients = held_connects(&server, 3);
    let v = stat_until(&server, Duration::from_secs(15), |v| {
        v["freebsd_counters"]["tcps_listendrop"].as_u64() == Some(2)
    });
    // Every SYN answered; the first completed connection queued, the other two reset at
    // their final ACK (rst_on_sock_fail=1).
    assert_eq!(v["freebsd_counters"]["tcps_listendrop"], 2, "{v}");
    assert_eq!(v["freebsd_counters"]["tcps_sc_added"], 3, "{v}");
    assert_eq!(v["listeners"][0]["recv_q"], 1, "{v}");
    assert_eq!(v["counters"]["TcpOutRsts"], 2, "{v}");
    let o = synq(&["stat", "--control", server.control.to_str().unwrap()]);
    assert!(o.status.success(), "synq stat: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("# netstat -s -p tcp"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["tcps_listendrop", "2"]),
        "{out}"
    );
}

#[test]
fn threads_2_spread_connections_over_two_shards() {
    const TEST: &str = "threads_2_spread_connections_over_two_shards";
    if let Some(why) = real::unsupported(&["curl"]) {
        real::skip(TEST, &why);
        return;
    }
    let server = Server::start("thr", 80, 64, &["--app", "http", "--threads", "2"]);
    // 40 connections one after another, each from the ephemeral port curl's socket gets.
    const N: u64 = 40;
    for _ in 0..N {
        assert_page(&server, 80);
    }
    let v = stat_until(&server, Duration::from_secs(10), |v| {
        v["counters"]["TcpPassiveOpens"].as_u64() >= Some(N)
    });
    let shards = v["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2, "{v}");
    let per: Vec<u64> = shards
        .iter()
        .map(|s| s["counters"]["TcpPassiveOpens"].as_u64().unwrap())
        .collect();
    assert_eq!(v["counters"]["TcpPassiveOpens"], N, "{v}");
    assert_eq!(per.iter().sum::<u64>(), N, "per shard {per:?}");
    // The kernel picks a queue by the flow's hash: 40 flows all on one of two queues has
    // odds of 2^-39.
    assert!(
        per.iter().all(|&n| n > 0),
        "every flow on one shard: {per:?}"
    );
    // Every counter and driver figure at the top is the shards' sum.
    for (name, total) in v["counters"].as_object().unwrap() {
        let sum: u64 = shards
            .iter()
            .map(|s| s["counters"][name].as_u64().unwrap())
            .sum();
        assert_eq!(total.as_u64(), Some(sum), "{name}");
    }
    let rx: u64 = shards
        .iter()
        .map(|s| s["driver"]["rx_packets"].as_u64().unwrap())
        .sum();
    assert_eq!(v["driver"]["rx_packets"].as_u64(), Some(rx));
    // One listener row: two backlogs of 64 side by side.
    assert_eq!(v["listeners"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["listeners"][0]["send_q"], 128, "{v}");
    let _ = writeln!(std::io::stderr(), "{TEST}: passive opens per shard {per:?}");

    let o = synq(&["stat", "--control", server.control.to_str().unwrap()]);
    assert!(o.status.success(), "synq stat: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|l| *l != "# shards")
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], i.to_string(), "{out}");
        assert_eq!(row[4], per[i].to_string(), "TcpPassiveOpens column: {out}");
    }
}

#[test]
fn serve_usage_errors_exit_2() {
    if let Some(why) = real::unsupported(&[]) {
        real::skip("serve_usage_errors_exit_2", &why);
        return;
    }
    // In a namespace of its own, so a check that wrongly passed could not touch the host.
    let ns = real::Netns::create("squsage").expect("netns");
    let control = std::env::temp_dir().join(format!("{}.sock", ns.name()));
    let _control = TempFile(control.clone());
    let base = |addr: &str, peer: &str, port: &str, app: &str| -> Vec<String> {
        let c = control.to_str().unwrap();
        [
            "serve",
            "--tun",
            "sq0",
            "--addr",
            addr,
            "--peer",
            peer,
            "--port",
            port,
            "--backlog",
            "16",
            "--app",
            app,
            "--control",
            c,
        ]
        .map(str::to_string)
        .to_vec()
    };
    const HOST_PREFIX: &str = "10.71.0.1/24";
    let addr = |a: &str| base(a, HOST_PREFIX, "80", "echo");
    let tun = |name: &str| with(base(STACK, HOST_PREFIX, "80", "echo"), "--tun", name);
    let threads = |n: &str| {
        let mut a = base(STACK, HOST_PREFIX, "80", "echo");
        a.extend(["--threads".to_string(), n.to_string()]);
        a
    };
    let cases = [
        ("--peer without a prefix", base(STACK, HOST, "80", "echo")),
        (
            "--peer prefix 33",
            base(STACK, "10.71.0.1/33", "80", "echo"),
        ),
        (
            "--peer not an address",
            base(STACK, "host/24", "80", "echo"),
        ),
        ("--port 0", base(STACK, "10.71.0.1/24", "0", "echo")),
        ("--port 65536", base(STACK, "10.71.0.1/24", "65536", "echo")),
        (
            "IPv6 --addr, IPv4 --peer",
            base("fd00::2", "10.71.0.1/24", "80", "echo"),
        ),
        (
            "IPv4 --addr, IPv6 --peer",
            base(STACK, "fd00::1/64", "80", "echo"),
        ),
        ("unknown --app", base(STACK, "10.71.0.1/24", "80", "gopher")),
        ("--threads 0", threads("0")),
        ("--threads 257", threads("257")),
        ("--threads two", threads("two")),
        ("--addr 0.0.0.0", addr("0.0.0.0")),
        ("--addr multicast", addr("224.0.0.1")),
        ("--addr broadcast", addr("255.255.255.255")),
        ("--addr loopback", addr("127.0.0.1")),
        ("--addr :: ", base("::", "fd00::1/64", "80", "echo")),
        ("--addr outside the prefix", addr("10.9.9.9")),
        ("--addr the subnet's broadcast", addr("10.71.0.255")),
        ("--addr the subnet's network", addr("10.71.0.0")),
        ("--tun ''", tun("")),
        ("--tun of 16 bytes", tun("sq0123456789abcd")),
        ("--tun a/b", tun("a/b")),
        ("--tun 'a b'", tun("a b")),
        ("--tun sq%d", tun("sq%d")),
        ("--tun lo (not a TUN device)", tun("lo")),
    ];
    for (what, args) in cases {
        let o = run_bounded(
            ns.command(env!("CARGO_BIN_EXE_synq")).args(&args),
            Duration::from_secs(20),
        );
        assert_usage_error(&o, what);
        assert!(!link_in(&ns, "sq0"), "{what}: sq0 was created");
        assert!(!control.exists(), "{what}: a control socket was created");
    }
    // `--control` may only name nothing or a stale socket: serve replaces what is there.
    let dir = std::env::temp_dir().join(format!("{}-dir", ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let file = dir.join("precious.txt");
    std::fs::write(&file, "keep me").unwrap();
    let live = dir.join("live.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
    let paths = [
        ("--control on a regular file", file.clone()),
        ("--control on a directory", dir.clone()),
        ("--control in no directory", dir.join("none").join("x.sock")),
        ("--control on a live server's socket", live.clone()),
    ];
    for (what, path) in paths {
        let args = with(addr(STACK), "--control", path.to_str().unwrap());
        let o = run_bounded(
            ns.command(env!("CARGO_BIN_EXE_synq")).args(&args),
            Duration::from_secs(20),
        );
        assert_usage_error(&o, what);
        assert!(!link_in(&ns, "sq0"), "{what}: sq0 was created");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    assert!(live.exists(), "the live server's socket was removed");
}

/// `args` with `flag`'s value replaced.
fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).expect("the flag") + 1;
    args[i] = value.to_string();
    args
}

/// A directory removed with what it holds when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_spoofed_syn_flood_does_not_stop_curl() {
    if let Some(why) = real::unsupported(&["curl", "python3"]) {
        real::skip("a_spoofed_syn_flood_does_not_stop_curl", &why);
        return;
    }
    // Backlog 16: the flood fills the SYN queue at once and SYN cookies answer the rest.
    let server = Server::start("flood", 80, 16, &["--app", "http"]);
    let prefix = HOST.rsplit_once('.').unwrap().0.to_string();
    let flood = server
        .ns
        .command("python3")
        .arg(script("syn_flood.py"))
        .args([&prefix, STACK, "80", "2000000", "8"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Meanwhile curl fetches the page again and again.
    let out = server.dir.join("page");
    let mut fetched = 0;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(6) && fetched < 50 {
        let t = Instant::now();
        assert_eq!(curl(&server, 80, "/", &out, 20), "200", "fetch {fetched}");
        slowest = slowest.max(t.elapsed());
        fetched += 1;
    }
    let flood_out = flood.wait_with_output().unwrap();
    let c = counters(&server);
    eprintln!(
        "SYN flood over TUN: {} while curl fetched / {fetched} times (slowest {:.0} ms); \
         SyncookiesSent {}, SyncookiesRecv {}, ListenDrops {}, PassiveOpens {}",
        text(&flood_out.stdout).trim(),
        slowest.as_secs_f64() * 1e3,
        c["TcpExtSyncookiesSent"],
        c["TcpExtSyncookiesRecv"],
        c["TcpExtListenDrops"],
        c["TcpPassiveOpens"]
    );
    assert!(fetched >= 5, "{fetched}");
    // The flood did reach the listener and overflow its SYN queue.
    assert!(c["TcpExtSyncookiesSent"] > 1000, "{c:?}");
    assert_page(&server, 80);
}
