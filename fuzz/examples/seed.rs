//! Writes the seed corpora into `fuzz/corpus/<target>/seed-*`:
//!
//! - `wire_packet`: packets from simulator captures (what `synq sim ... --pcap` records on
//!   the server: the built-in scenarios, a lossy IPv4 and an IPv6 transfer), one per file,
//!   a few of each kind (flags, options, payload or not, family).
//! - `stack_packet`: the same captures as packet sequences aimed at the fixture's listener
//!   (the simulator's server address and port), and the fixture client's own next packets
//!   (data, FIN, RST, a new SYN) carrying the live connections' sequence numbers.
//! - `stack_batch`: the same runs with control bit 5 set, so each run is one batch.
//! - `sysctl_conf`: the full `sysctl -a` style listing of the defaults and a few files in
//!   sysctl.conf syntax.
//! - `scenario_file`: the built-in scenario files.
//! - `stack_ops`: a few pseudo-random byte strings (the input is structured; libFuzzer finds
//!   its way from there).
//!
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --example seed` (from the repository
//! root; it replaces existing `seed-*` files, but for the `seed-regress-*` inputs kept from
//! findings).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use synq_core::{Config, Duration, Model};
use synq_fuzz::{encode_frames, Fixture, CLIENT, PORT4, SERVER};
use synq_sim::scenario::{self, RunParams, TransferParams, BUILTINS, SERVER_ADDR};
use synq_sim::Capture;
use synq_wire::{parse_packet, ChecksumMode};

fn main() {
    for model in Model::ALL {
        let f = Fixture::new(model);
        let states: Vec<_> = f.server.connections().map(|c| c.state).collect();
        let listeners: Vec<_> = f
            .server
            .listeners()
            .map(|l| (l.local, l.recv_q, l.syn_recv))
            .collect();
        println!(
            "fixture {model}: connections {states:?}, listeners (Recv-Q, SYN-RECV) {listeners:?}"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let captures = captures();
    wire_packet(&root.join("wire_packet"), &captures);
    stack_packet(&root.join("stack_packet"), &captures);
    stack_batch(&root.join("stack_batch"), &captures);
    sysctl_conf(&root.join("sysctl_conf"));
    scenario_file(&root.join("scenario_file"));
    stack_ops(&root.join("stack_ops"));
}

/// Replace `dir`'s seed files with `files`. Inputs kept from findings (`seed-regress-*`)
/// are not generated here and stay.
fn write(dir: &Path, files: &[(String, Vec<u8>)]) {
    fs::create_dir_all(dir).expect("create corpus dir");
    for e in fs::read_dir(dir).expect("read corpus dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("seed-") && !name.starts_with("seed-regress-") {
            fs::remove_file(e.path()).expect("remove old seed");
        }
    }
    let mut bytes = 0;
    for (name, data) in files {
        let path: PathBuf = dir.join(format!("seed-{name}"));
        fs::write(&path, data).expect("write seed");
        bytes += data.len();
    }
    println!("{}: {} files, {bytes} bytes", dir.display(), files.len());
}

/// Server-side captures of simulated runs, by name.
fn captures() -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for (name, _) in BUILTINS {
        let cap = Capture::new(SERVER_ADDR, 5_000);
        let sc = scenario::builtin(name).expect("built-in");
        let p = RunParams {
            scenario: sc,
            model: None,
            sysctls: Vec::new(),
            seed: 1,
            timeline: false,
        };
        scenario::run_tapped(&p, Some(cap.tap())).expect("built-in scenario runs");
        out.push((name.to_string(), packets(&cap)));
    }
    for (name, ipv6, loss) in [("transfer-lossy", false, 0.05), ("transfer-v6", true, 0.0)] {
        let cap = Capture::new(
            if ipv6 {
                scenario::SERVER_ADDR6
            } else {
                SERVER_ADDR
            },
            5_000,
        );
        let p = TransferParams {
            bytes: 200_000,
            loss,
            reorder: 0.02,
            ipv6,
            time_limit: Duration::from_secs(60),
            ..TransferParams::default()
        };
        scenario::transfer_tapped(&p, Some(cap.tap())).expect("transfer runs");
        out.push((name.to_string(), packets(&cap)));
    }
    out
}

fn packets(cap: &Capture) -> Vec<Vec<u8>> {
    cap.take().into_iter().map(|(_, p)| p).collect()
}

/// A packet's kind: family, flags, whether it has options and payload.
fn kind(p: &[u8]) -> Option<(bool, u8, usize, bool)> {
    let p = parse_packet(p, ChecksumMode::Verify).ok()?;
    Some((
        p.ip.src.is_ipv6(),
        p.tcp.flags.0,
        p.tcp.options.len(),
        !p.tcp.payload.is_empty(),
    ))
}

fn wire_packet(dir: &Path, captures: &[(String, Vec<Vec<u8>>)]) {
    let mut seen = BTreeMap::new();
    let mut files = Vec::new();
    for (name, pkts) in captures {
        for (i, p) in pkts.iter().enumerate() {
            let Some(k) = kind(p) else { continue };
            let n = seen.entry(k).or_insert(0);
            if *n < 2 {
                *n += 1;
                // Payloads cut to 64 bytes keep the files small (lengths fixed up below).
                files.push((format!("{name}-{i}"), shorten(p, 64)));
            }
        }
    }
    write(dir, &files);
}

/// `p` with its TCP payload cut to `max` bytes, lengths and checksums fixed.
fn shorten(p: &[u8], max: usize) -> Vec<u8> {
    let Ok(pp) = parse_packet(p, ChecksumMode::Verify) else {
        return p.to_vec();
    };
    let mut tcp = pp.tcp;
    tcp.payload = &tcp.payload[..tcp.payload.len().min(max)];
    let mut buf = vec![0u8; synq_wire::packet_len(&pp.ip, &tcp)];
    let n = synq_wire::emit_packet(&pp.ip, &tcp, &mut buf).expect("re-emit");
    buf.truncate(n);
    buf
}

/// What the simulated clients sent the server, in order, data cut to 200 bytes: the
/// first three runs of 24 of each capture, named `capture-i`.
fn server_runs(captures: &[(String, Vec<Vec<u8>>)]) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut runs = Vec::new();
    for (name, pkts) in captures {
        let to_server: Vec<Vec<u8>> = pkts
            .iter()
            .filter(|p| {
                parse_packet(p, ChecksumMode::Verify).is_ok_and(|q| SERVER.contains(&q.ip.dst))
            })
            .map(|p| shorten(p, 200))
            .collect();
        for (i, run) in to_server.chunks(24).take(3).enumerate() {
            runs.push((format!("{name}-{i}"), run.to_vec()));
        }
    }
    runs
}

fn stack_packet(dir: &Path, captures: &[(String, Vec<Vec<u8>>)]) {
    let mut files = Vec::new();
    for (name, run) in server_runs(captures) {
        let data = encode_frames(run.iter().map(|p| (0u8, p.as_slice())));
        files.push((name, data));
    }
    // The fixture client's next packets, on its live connections.
    let mut f = Fixture::new(Model::Linux);
    let mut fixture_pkts = Vec::new();
    let mut grab = |f: &mut Fixture, what: &str, files: &mut Vec<(String, Vec<u8>)>| {
        let mut out = Vec::new();
        synq_fuzz::drain(&mut f.client, f.now, &CLIENT, &mut out);
        for (i, p) in out.iter().enumerate() {
            files.push((
                format!("fixture-{what}-{i}"),
                encode_frames([(0u8, p.as_slice())]),
            ));
        }
        fixture_pkts.extend(out);
    };
    let clients = f.clients.clone();
    grab(&mut f, "start", &mut files);
    let _ = f.client.send(f.now, clients[0], b"GET / HTTP/1.1\r\n\r\n");
    grab(&mut f, "data", &mut files);
    let _ = f.client.shutdown(f.now, clients[1]);
    grab(&mut f, "fin", &mut files);
    let _ = f.client.abort(f.now, clients[2]);
    grab(&mut f, "rst", &mut files);
    let _ = f
        .client
        .connect(f.now, core::net::SocketAddr::new(SERVER_ADDR, PORT4));
    grab(&mut f, "syn", &mut files);
    f.now += Duration::from_secs(1);
    f.client.handle_timeout(f.now);
    grab(&mut f, "retransmit", &mut files);
    let all = encode_frames(fixture_pkts.iter().map(|p| (0x04u8, p.as_slice())));
    files.push(("fixture-all".into(), all));
    write(dir, &files);
}

/// The captures' runs to the server as batches: control bit 5 on every frame but the
/// last of each run of 24, so `handle_packets` gets them together.
fn stack_batch(dir: &Path, captures: &[(String, Vec<Vec<u8>>)]) {
    let mut files = Vec::new();
    for (name, run) in server_runs(captures) {
        let last = run.len() - 1;
        let data = encode_frames(
            run.iter()
                .enumerate()
                .map(|(k, p)| (if k < last { 0x20u8 } else { 0x04 }, p.as_slice())),
        );
        files.push((name, data));
    }
    write(dir, &files);
}

fn sysctl_conf(dir: &Path) {
    let files = vec![
        ("defaults".to_string(), Config::default().to_string().into_bytes()),
        (
            "small".to_string(),
            b"# a listener under attack\nnet.core.somaxconn = 16\nnet.ipv4.tcp_syncookies=2\n; comment\n\nnet/ipv4/tcp_synack_retries = 1\n-vm.swappiness = 10\nnet.ipv4.tcp_rmem = 4096 8192 16384\nnet.ipv4.ip_local_port_range = 40000 40010\n".to_vec(),
        ),
        (
            "models".to_string(),
            b"synq.listen_model = bsd\nsynq.bsd_drop_incomplete = 1\nsynq.max_connections = 3\nnet.ipv4.tcp_max_tw_buckets = -1\nnet.ipv4.tcp_timestamps = 2\n".to_vec(),
        ),
        (
            "edges".to_string(),
            b"net.ipv4.tcp_fin_timeout = -5\nnet.ipv4.tcp_keepalive_time = 1\nnet.ipv4.tcp_keepalive_intvl = 1\nsynq.mtu = 576\nnet.ipv4.tcp_wmem = 4096 4096 4096\nnet.ipv4.tcp_congestion_control = cubic\nnet.ipv4.tcp_recovery = 0\n".to_vec(),
        ),
    ];
    write(dir, &files);
}

fn scenario_file(dir: &Path) {
    let files: Vec<_> = BUILTINS
        .iter()
        .map(|(name, text)| (format!("{name}.toml"), text.as_bytes().to_vec()))
        .collect();
    write(dir, &files);
}

fn stack_ops(dir: &Path) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let files = (0..8)
        .map(|i| {
            let n = 128 << (i % 4);
            let data = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (format!("random-{i}"), data)
        })
        .collect::<Vec<_>>();
    write(dir, &files);
}
