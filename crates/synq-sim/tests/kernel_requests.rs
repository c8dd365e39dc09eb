//! Half-open requests, SYN cookies, TCP_DEFER_ACCEPT and listener close, packet by packet,
//! against the real kernel: the same script of spoofed segments (`kernel/requests.py` writes
//! them into a TUN device in a private namespace) is played to a synq listener, and every
//! reply, the accepted children's options, the queues and the counters must agree.
//! Spec §4 checks 10-22 as the kernel shows them. Skips, saying why, without root, the tools
//! or /dev/net/tun.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use serde_json::{json, Value};
use synq_core::wire::{
    emit_packet, packet_len, parse_packet, ChecksumMode, IpRepr, SeqNumber, TcpFlags, TcpOptions,
    TcpRepr, Timestamps,
};
use synq_core::{Config, Duration, Instant, ListenerHandle, Stack};
use synq_sim::scenario::LISTEN_COUNTERS;

#[path = "kernel/util.rs"]
mod util;
use util::{run_python, skip, tun_skip_reason};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel/requests.py");
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 98, 0, 1));
const PORT: u16 = 8080;

fn peer(k: u64) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, k as u8)),
        40_000 + k as u16,
    )
}

fn isn(k: u64) -> u32 {
    1_000_000 * k as u32 + 7
}

fn flags_str(f: TcpFlags) -> String {
    [
        (f.syn(), 'S'),
        (f.ack(), 'A'),
        (f.rst(), 'R'),
        (f.fin(), 'F'),
        (f.psh(), 'P'),
    ]
    .iter()
    .filter(|x| x.0)
    .map(|x| x.1)
    .collect()
}

/// The synq side of a script: the same JSON shape `requests.py` prints.
struct Replay {
    s: Stack,
    l: Option<ListenerHandle>,
    now: Instant,
    replies: Vec<Value>,
    /// Per peer: (first SYN-ACK ISS, last SYN-ACK ISS, last SYN-ACK TSval if it had one).
    synack: std::collections::BTreeMap<u64, (u32, u32, Option<u32>)>,
    accepted: Vec<Value>,
    children: Vec<synq_core::ConnHandle>,
}

impl Replay {
    fn drain(&mut self) {
        let mut buf = Vec::new();
        while let Some(n) = self.s.poll_transmit(self.now, &mut buf) {
            let p = parse_packet(&buf[..n], ChecksumMode::Verify).unwrap();
            let IpAddr::V4(v4) = p.ip.dst else { continue };
            let o = v4.octets();
            if o[..3] != [10, 99, 0] {
                continue;
            }
            let k = u64::from(o[3]);
            let t = &p.tcp;
            if t.flags.syn() && t.flags.ack() {
                let first = self.synack.get(&k).map_or(t.seq.0, |e| e.0);
                let tsval = t.options.timestamps.map(|x| x.tsval);
                self.synack.insert(k, (first, t.seq.0, tsval));
            }
            let base = self.synack.get(&k).map_or(0, |e| e.0);
            self.replies.push(json!({
                "t": self.now.as_secs_f64(),
                "peer": k,
                "flags": flags_str(t.flags),
                "seq": t.seq.0.wrapping_sub(base),
                "ack": t.ack.0.wrapping_sub(isn(k)),
                "mss": t.options.mss,
                "wscale": t.options.window_scale,
                "sack": t.options.sack_permitted,
                "ts": t.options.timestamps.is_some(),
                "len": t.payload.len(),
            }));
        }
        while self.s.poll_event().is_some() {}
    }

    fn advance_to(&mut self, t: Instant) {
        for _ in 0..1_000_000 {
            match self.s.poll_timeout() {
                Some(d) if d <= t => {
                    self.now = self.now.max(d);
                    self.s.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }

    /// Peer `k` sends a segment; `(seq, ack, window)` are its header numbers.
    fn send(
        &mut self,
        k: u64,
        flags: TcpFlags,
        (seq, ack, window): (u32, u32, u16),
        options: TcpOptions,
        data: &[u8],
    ) {
        let from = peer(k);
        let tcp = TcpRepr {
            src_port: from.port(),
            dst_port: PORT,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window,
            urgent: 0,
            options,
            payload: data,
        };
        let ip = IpRepr {
            src: from.ip(),
            dst: SERVER,
            hop_limit: 64,
        };
        let mut buf = vec![0; packet_len(&ip, &tcp)];
        emit_packet(&ip, &tcp, &mut buf).unwrap();
        self.s.handle_packet(self.now, &buf);
        self.drain();
    }

    fn step(&mut self, st: &Value) {
        let k = st["peer"].as_u64().unwrap_or(0);
        match st["op"].as_str().unwrap() {
            "syn" => {
                let o = TcpOptions {
                    mss: st["mss"].as_u64().map(|m| m as u16).or(Some(1460)),
                    sack_permitted: st["sack"].as_bool().unwrap_or(true),
                    window_scale: match &st["wscale"] {
                        Value::Null if st.get("wscale").is_some() => None,
                        v => Some(v.as_u64().unwrap_or(7) as u8),
                    },
                    timestamps: st["ts"].as_bool().unwrap_or(true).then_some(Timestamps {
                        tsval: 5000 + k as u32,
                        tsecr: 0,
                    }),
                    ..TcpOptions::default()
                };
                self.send(k, TcpFlags::SYN, (isn(k), 0, 64240), o, &[]);
            }
            "ack" => {
                let kind = st["ack"].as_str().unwrap();
                let last = self.synack.get(&k).copied();
                let (seq, ack, tsecr) = match (kind, last) {
                    ("stray", _) => (123_456, 654_321, None),
                    ("good", Some(e)) => (isn(k) + 1, e.1.wrapping_add(1), e.2),
                    ("bad", Some(e)) => (isn(k) + 1, e.1.wrapping_add(5), e.2),
                    _ => panic!("ack before any SYN-ACK: {st}"),
                };
                // Timestamps when the step says so, else when the SYN-ACK had them.
                let ts = st["ts"].as_bool().unwrap_or(tsecr.is_some());
                let o = TcpOptions {
                    timestamps: ts.then_some(Timestamps {
                        tsval: 6000 + k as u32,
                        tsecr: tsecr.unwrap_or(0),
                    }),
                    ..TcpOptions::default()
                };
                let data = vec![b'x'; st["data"].as_u64().unwrap_or(0) as usize];
                let f = if data.is_empty() {
                    TcpFlags::ACK
                } else {
                    TcpFlags::ACK | TcpFlags::PSH
                };
                let win = st["win"].as_u64().unwrap_or(502) as u16;
                self.send(k, f, (seq, ack, win), o, &data);
            }
            "rst" => self.send(
                k,
                TcpFlags::RST,
                (isn(k) + 1, 0, 0),
                TcpOptions::default(),
                &[],
            ),
            "accept" => {
                while let Some(Ok((c, remote))) = self.l.map(|l| self.s.accept(self.now, l)) {
                    let i = self.s.info(c).unwrap();
                    let IpAddr::V4(v4) = remote.ip() else {
                        unreachable!()
                    };
                    self.accepted.push(json!({
                        "peer": v4.octets()[3],
                        "snd_mss": i.mss,
                        "ts": i.timestamps,
                        "sack": i.sack,
                        "wscale": i.snd_wscale != 0 || i.rcv_wscale != 0,
                        "snd_wscale": i.snd_wscale,
                    }));
                    self.children.push(c);
                }
                self.drain();
            }
            "close_listener" => {
                if let Some(l) = self.l.take() {
                    self.s.close_listener(self.now, l);
                }
                self.drain();
            }
            op => panic!("unknown op {op}"),
        }
    }
}

fn synq(script: &Value) -> Value {
    let mut config = Config::default();
    for (k, v) in script["sysctls"].as_object().unwrap() {
        config.set(k, &v.to_string()).unwrap();
    }
    let mut s = Stack::new(config, 5);
    s.add_address(SERVER);
    let l = s
        .listen(
            Instant::ZERO,
            SocketAddr::new(SERVER, PORT),
            script["backlog"].as_i64().unwrap() as i32,
        )
        .unwrap();
    let defer = script["defer_accept"].as_u64().unwrap_or(0) as u32;
    let defer_read = (defer > 0).then(|| s.set_defer_accept(l, defer).unwrap());
    let mut r = Replay {
        s,
        l: Some(l),
        now: Instant::ZERO,
        replies: Vec::new(),
        synack: Default::default(),
        accepted: Vec::new(),
        children: Vec::new(),
    };
    let at = |v: &Value| Instant::ZERO + Duration::from_micros((v.as_f64().unwrap() * 1e6) as u64);
    for st in script["steps"].as_array().unwrap() {
        r.advance_to(at(&st["t"]));
        r.step(st);
    }
    r.advance_to(at(&script["end"]));
    let info = r.l.and_then(|l| r.s.listener_info(l));
    let counters: serde_json::Map<String, Value> =
        r.s.counters()
            .iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
    json!({
        "replies": r.replies,
        "accepted": r.accepted,
        "syn_recv": r.s.syn_recv().count(),
        "recv_q": info.map(|i| i.recv_q),
        "send_q": info.map(|i| i.send_q),
        "defer_accept_read": defer_read,
        "counters": counters,
    })
}

fn scripts() -> Vec<(&'static str, Value)> {
    let syn = |t: f64, k: u64| json!({"t": t, "op": "syn", "peer": k});
    let ack = |t: f64, k: u64, kind: &str| json!({"t": t, "op": "ack", "peer": k, "ack": kind});
    let accept = |t: f64| json!({"t": t, "op": "accept"});
    vec![
        (
            "12 duplicate SYN",
            json!({"sysctls": {}, "backlog": 10, "end": 0.5,
            "steps": [syn(0.0, 1), syn(0.1, 1), syn(0.2, 1)]}),
        ),
        (
            "13 RST to a request",
            json!({"sysctls": {}, "backlog": 10, "end": 0.3,
            "steps": [syn(0.0, 1), {"t": 0.1, "op": "rst", "peer": 1}]}),
        ),
        (
            "14 wrong ACK",
            json!({"sysctls": {}, "backlog": 10, "end": 0.3,
            "steps": [syn(0.0, 1), ack(0.1, 1, "bad")]}),
        ),
        (
            "15 final ACK, full accept queue",
            json!({"sysctls": {}, "backlog": 0, "end": 2.0,
            "steps": [syn(0.0, 1), syn(0.01, 2), ack(0.02, 2, "good"), ack(0.03, 1, "good"),
                      accept(1.5), ack(1.6, 1, "good"), accept(1.7)]}),
        ),
        (
            "16 abort_on_overflow",
            json!({"sysctls": {"net.ipv4.tcp_abort_on_overflow": 1},
            "backlog": 0, "end": 2.0,
            "steps": [syn(0.0, 1), syn(0.01, 2), ack(0.02, 2, "good"), ack(0.03, 1, "good"),
                      accept(1.5), ack(1.6, 1, "good"), accept(1.7)]}),
        ),
        (
            "10 SYN-ACK schedule, synack_retries=2",
            json!({"sysctls": {"net.ipv4.tcp_synack_retries": 2},
            "backlog": 10, "end": 7.5, "steps": [syn(0.0, 1)]}),
        ),
        (
            "17 cookie options",
            json!({"sysctls": {"net.ipv4.tcp_syncookies": 2}, "backlog": 10,
            "end": 0.2, "steps": [syn(0.0, 1), ack(0.01, 1, "good"),
                {"t": 0.02, "op": "syn", "peer": 2, "ts": false, "mss": 1400},
                {"t": 0.03, "op": "ack", "peer": 2, "ack": "good", "ts": false, "win": 64240}, accept(0.1)]}),
        ),
        (
            "18 stray ACK after cookies",
            json!({"sysctls": {"net.ipv4.tcp_syncookies": 2},
            "backlog": 10, "end": 0.2, "steps": [syn(0.0, 1), ack(0.1, 9, "stray")]}),
        ),
        (
            "18 stray ACK, no cookies sent",
            json!({"sysctls": {}, "backlog": 10, "end": 0.2,
            "steps": [ack(0.1, 9, "stray")]}),
        ),
        (
            "19 cookie ACK, full queue, abort=1",
            json!({"sysctls": {"net.ipv4.tcp_syncookies": 2,
            "net.ipv4.tcp_abort_on_overflow": 1}, "backlog": 0, "end": 0.5,
            "steps": [syn(0.0, 1), syn(0.01, 2), ack(0.02, 1, "good"), ack(0.03, 2, "good"),
                      accept(0.1), ack(0.2, 2, "good"), accept(0.3)]}),
        ),
        (
            "20 data after expiry",
            json!({"sysctls": {"net.ipv4.tcp_synack_retries": 1},
            "backlog": 10, "end": 4.5,
            "steps": [syn(0.0, 1), {"t": 4.0, "op": "ack", "peer": 1, "ack": "good", "data": 5}]}),
        ),
        (
            "21 TCP_DEFER_ACCEPT",
            json!({"sysctls": {}, "backlog": 10, "defer_accept": 2, "end": 3.5,
            "steps": [syn(0.0, 1), ack(0.01, 1, "good"), accept(2.5), ack(3.2, 1, "good"),
                      accept(3.3)]}),
        ),
        (
            "22 close listener",
            json!({"sysctls": {}, "backlog": 10, "end": 1.5,
            "steps": [syn(0.0, 1), ack(0.01, 1, "good"), syn(0.02, 2),
                      {"t": 0.1, "op": "close_listener"}]}),
        ),
    ]
}

/// Differences between the kernel's and synq's outcome of one script.
fn compare(k: &Value, s: &Value) -> Vec<String> {
    let mut d = Vec::new();
    let kr = k["replies"].as_array().unwrap();
    let sr = s["replies"].as_array().unwrap();
    let row = |v: &Value| {
        let u = |x: &Value| x.as_i64().map(|n| n.rem_euclid(1 << 32));
        let acked = v["flags"].as_str().unwrap().contains('A');
        (
            v["peer"].as_u64(),
            v["flags"].as_str().unwrap().to_string(),
            u(&v["seq"]),
            if acked { u(&v["ack"]) } else { None },
            v["mss"].as_u64(),
            v["wscale"].as_u64(),
            v["sack"].as_bool(),
            v["ts"].as_bool(),
            v["len"].as_u64(),
        )
    };
    if kr.len() != sr.len() {
        d.push(format!(
            "{} replies from the kernel, {} from synq",
            kr.len(),
            sr.len()
        ));
    }
    for (a, b) in kr.iter().zip(sr) {
        if row(a) != row(b) {
            d.push(format!("reply kernel {:?} synq {:?}", row(a), row(b)));
        }
        let (ta, tb) = (a["t"].as_f64().unwrap(), b["t"].as_f64().unwrap());
        if (ta - tb).abs() > 0.06 + tb / 8.0 {
            d.push(format!(
                "reply at {ta:.3} s in the kernel, {tb:.3} s in synq"
            ));
        }
    }
    for key in ["syn_recv", "recv_q", "send_q", "defer_accept_read"] {
        if k[key] != s[key] {
            d.push(format!("{key}: kernel {} synq {}", k[key], s[key]));
        }
    }
    let child = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["peer"].as_u64(),
                    c["snd_mss"].as_u64(),
                    c["ts"].as_bool(),
                    c["sack"].as_bool(),
                    c["wscale"].as_bool(),
                    c["snd_wscale"].as_u64(),
                )
            })
            .collect::<Vec<_>>()
    };
    if child(&k["accepted"]) != child(&s["accepted"]) {
        d.push(format!(
            "accepted: kernel {:?} synq {:?}",
            child(&k["accepted"]),
            child(&s["accepted"])
        ));
    }
    // The listen-path counters, and the replies this path makes.
    let extra = ["TcpOutRsts", "TcpExtTCPACKSkippedSynRecv"];
    for c in LISTEN_COUNTERS.iter().chain(&extra) {
        let (a, b) = (
            k["counters"][c].as_u64().unwrap_or(0),
            s["counters"][c].as_u64().unwrap_or(0),
        );
        if a != b {
            d.push(format!("{c}: kernel {a} synq {b}"));
        }
    }
    d
}

#[test]
fn request_scripts_match_the_kernel() {
    if let Some(why) = tun_skip_reason() {
        skip("request_scripts_match_the_kernel", &why);
        return;
    }
    let all = scripts();
    let inputs: Vec<String> = all.iter().map(|(_, s)| s.to_string()).collect();
    let outcomes: Vec<Value> = run_python(SCRIPT, &inputs)
        .into_iter()
        .map(|o| {
            serde_json::from_slice(&o.unwrap_or_else(|e| panic!("{e}"))).expect("requests.py JSON")
        })
        .collect();
    let mut failed = Vec::new();
    for ((name, script), k) in all.iter().zip(&outcomes) {
        let s = synq(script);
        let d = compare(k, &s);
        let shown: Vec<String> = s["replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}@{:.2}->p{}",
                    r["flags"].as_str().unwrap(),
                    r["t"].as_f64().unwrap(),
                    r["peer"]
                )
            })
            .collect();
        println!(
            "check {name}: {} [{}]",
            if d.is_empty() { "same" } else { "DIFFERENT" },
            shown.join(" ")
        );
        for x in &d {
            println!("    {x}");
        }
        if !d.is_empty() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "synq differs from the kernel in: {failed:?}"
    );
}
