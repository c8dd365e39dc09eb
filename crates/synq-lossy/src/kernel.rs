//! The kernel's side: a sink in namespace B and a sender in namespace A (`kernel/peer.py`,
//! run by python3 with `ip netns exec`), timed from the sender's connect() to the sink's
//! end of stream, and the sender namespace's counters before and after.

use crate::forward::{LossyLink, Stats, B_ADDR};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The peers (see the script's docstring), fed to `python3 -` on its standard input so
/// nothing is written to disk.
pub const PEER_PY: &str = include_str!("../kernel/peer.py");
/// The sink's port.
pub const PORT: u16 = 5001;
/// The RTT probe's port.
pub const PROBE_PORT: u16 = 5002;
/// Counters compared with synq's, under their nstat names.
pub const COUNTERS: [&str; 7] = [
    "TcpExtTCPSackRecovery",
    "TcpExtTCPLossProbes",
    "TcpExtTCPLostRetransmit",
    "TcpExtTCPTimeouts",
    "TcpExtTCPDSACKRecv",
    "TcpExtTCPFastRetrans",
    "TcpRetransSegs",
];
/// How long a peer may take to start (python3 and `ip netns exec`) and to exit after its
/// deadline before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// Why the kernel side cannot run here: what [`synq_tun::unsupported`] says, or no python3.
pub fn unavailable() -> Option<String> {
    if let Some(why) = synq_tun::unsupported() {
        return Some(why);
    }
    let py = Command::new("python3")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !py.is_ok_and(|s| s.success()) {
        return Some("python3 not found (the kernel's peers are a python3 script)".into());
    }
    None
}

/// CLOCK_MONOTONIC in seconds: the peers' clock, the same in every namespace.
pub fn mono_now() -> io::Result<f64> {
    let t =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(io::Error::from)?;
    Ok(t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

/// The sender's congestion control, set on its socket: Linux's default. A namespace's own
/// default is inherited from the root namespace (BBR on some hosts) and may only be changed
/// to algorithms the root namespace allows, so the socket option it is.
pub const CC: &str = "cubic";

/// The sender namespace's loss-recovery settings (stock for a new namespace: SACK, RACK,
/// tail loss probes, DSACK, F-RTO), for the report.
pub fn tcp_settings(link: &LossyLink) -> io::Result<String> {
    let mut out = vec![format!("congestion control {CC} (TCP_CONGESTION)")];
    for k in [
        "tcp_sack",
        "tcp_recovery",
        "tcp_early_retrans",
        "tcp_dsack",
        "tcp_frto",
    ] {
        let o = link
            .a()
            .command("cat")
            .arg(format!("/proc/sys/net/ipv4/{k}"))
            .output()?;
        out.push(format!("{k}={}", String::from_utf8_lossy(&o.stdout).trim()));
    }
    Ok(out.join(", "))
}

/// Connect times across the link, in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Rtt {
    /// Every connect that succeeded, sorted.
    pub samples_us: Vec<f64>,
}

impl Rtt {
    /// The median sample (NaN with none).
    pub fn median_us(&self) -> f64 {
        crate::report::median(&self.samples_us).unwrap_or(f64::NAN)
    }

    /// The smallest sample (NaN with none).
    pub fn min_us(&self) -> f64 {
        self.samples_us.first().copied().unwrap_or(f64::NAN)
    }
}

/// The RTT the path shows: `count` TCP connects from A to B, each timed from connect() to
/// its return (SYN out, SYN-ACK back, through the forwarder both ways), which is what a
/// kernel sender's first RTT sample sees. Use a link without impairment.
pub fn measure_rtt(link: &LossyLink, count: usize, limit: Duration) -> io::Result<Rtt> {
    let deadline = format!("{:.6}", mono_now()? + limit.as_secs_f64());
    let ip = B_ADDR.to_string();
    let port = PROBE_PORT.to_string();
    let mut server = Peer::spawn(link.b(), &["listen", &ip, &port, &deadline])?;
    server.ready()?;
    let mut probe = Peer::spawn(
        link.a(),
        &["probe", &ip, &port, &count.to_string(), &deadline],
    )?;
    let v = probe.result(limit + GRACE)?;
    drop(server);
    if let Some(e) = v["error"].as_str() {
        return Err(io::Error::other(format!("rtt probe: {e}")));
    }
    let mut samples_us: Vec<f64> = v["connect_us"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    samples_us.sort_by(f64::total_cmp);
    Ok(Rtt { samples_us })
}

/// One kernel transfer.
#[derive(Clone, Debug)]
pub struct KernelRun {
    /// Seconds from the sender's connect() to the sink's end of stream, if every byte
    /// arrived intact within the limit.
    pub secs: Option<f64>,
    /// Bytes the sink read (by the limit, when not done).
    pub bytes_received: u64,
    /// The sink's bytes hash as the sender's.
    pub intact: bool,
    /// What went wrong on either peer, if anything.
    pub error: Option<String>,
    /// Sender namespace counters: the run's deltas, every Tcp and TcpExt counter by nstat
    /// name.
    pub counters: BTreeMap<String, u64>,
    /// The sender's smoothed RTT (`tcpi_rtt`) sampled after each 64 KB write, sorted.
    pub srtt_us: Vec<u64>,
    /// The forwarder's counts for this run.
    pub link: Stats,
    /// Packets the kernel dropped at the devices before the forwarder read them (A, B).
    pub queue_drops: [u64; 2],
}

/// Send `bytes` seeded bytes from A to B through `link` and time it; the transfer gets
/// `limit` from just before the peers start. The counters are the sender namespace's, so
/// nothing else may run there meanwhile.
pub fn transfer(link: &LossyLink, bytes: u64, seed: u64, limit: Duration) -> io::Result<KernelRun> {
    let deadline = format!("{:.6}", mono_now()? + limit.as_secs_f64());
    let ip = B_ADDR.to_string();
    let port = PORT.to_string();
    let mut sink = Peer::spawn(link.b(), &["sink", &ip, &port, &deadline])?;
    sink.ready()?;
    let before = counters(link)?;
    let mut sender = Peer::spawn(
        link.a(),
        &[
            "send",
            &ip,
            &port,
            &bytes.to_string(),
            &seed.to_string(),
            CC,
            &deadline,
        ],
    )?;
    // A peer that failed or hung is a failed run, reported, not a failed benchmark.
    let failed = |e: io::Error| serde_json::json!({ "error": e.to_string() });
    let s = sender.result(limit + GRACE).unwrap_or_else(failed);
    let k = sink.result(GRACE).unwrap_or_else(failed);
    let after = counters(link)?;
    let delta = after
        .iter()
        .map(|(n, v)| (n.clone(), v.saturating_sub(*before.get(n).unwrap_or(&0))))
        .collect();
    let bytes_received = k["bytes"].as_u64().unwrap_or(0);
    let intact = bytes_received == bytes && k["sha256"] == s["sha256"];
    let error = [("sender", &s), ("sink", &k)]
        .iter()
        .filter_map(|(who, v)| v["error"].as_str().map(|e| format!("{who}: {e}")))
        .reduce(|a, b| format!("{a}; {b}"));
    let secs = match (k["eof_at"].as_f64(), s["t0"].as_f64()) {
        (Some(end), Some(t0)) if intact && k["eof"] == true => Some(end - t0),
        _ => None,
    };
    let mut srtt_us: Vec<u64> = s["srtt_us"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    srtt_us.sort_unstable();
    Ok(KernelRun {
        secs,
        bytes_received,
        intact,
        error,
        counters: delta,
        srtt_us,
        link: link.stats(),
        queue_drops: link.queue_drops()?,
    })
}

/// Namespace A's Tcp and TcpExt counters by nstat name.
pub fn counters(link: &LossyLink) -> io::Result<BTreeMap<String, u64>> {
    let out = link
        .a()
        .command("cat")
        .args(["/proc/net/snmp", "/proc/net/netstat"])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "reading /proc/net counters in {}: {}",
            link.a().name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_mibs(&String::from_utf8_lossy(&out.stdout)))
}

/// `/proc/net/snmp` and `/proc/net/netstat` text (header line, value line, per group) to
/// `Tcp*` and `TcpExt*` counters named as nstat names them (`TcpRetransSegs`,
/// `TcpExtTCPTimeouts`).
pub fn parse_mibs(text: &str) -> BTreeMap<String, u64> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for pair in lines.windows(2) {
        let (Some((kind, names)), Some((kind2, values))) =
            (pair[0].split_once(':'), pair[1].split_once(':'))
        else {
            continue;
        };
        if kind != kind2 || !matches!(kind, "Tcp" | "TcpExt") {
            continue;
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        // Header lines are names; value lines parse as numbers (Tcp's MaxConn is -1).
        if values.iter().any(|v| v.parse::<i64>().is_err()) || names.len() != values.len() {
            continue;
        }
        for (n, v) in names.iter().zip(values) {
            let v = v.parse::<i64>().unwrap_or(0).max(0) as u64;
            out.insert(format!("{kind}{n}"), v);
        }
    }
    out
}

/// A python3 peer inside a namespace; killed on drop if still running.
struct Peer {
    child: Child,
    lines: Receiver<String>,
    what: String,
}

impl Peer {
    fn spawn(ns: &synq_tun::Netns, args: &[&str]) -> io::Result<Self> {
        let mut child = ns
            .command("python3")
            .arg("-")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        // python3 reads the whole script to end of file before it runs it.
        let mut script = child.stdin.take().expect("stdin is piped");
        script.write_all(PEER_PY.as_bytes())?;
        drop(script);
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            what: format!("{} in {}", args[0], ns.name()),
        })
    }

    fn line(&self, within: Duration) -> io::Result<String> {
        self.lines.recv_timeout(within).map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}: no output within {within:?}", self.what),
            )
        })
    }

    fn ready(&mut self) -> io::Result<()> {
        let l = self.line(GRACE)?;
        if l == "ready" {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{}: said {l:?}, not ready",
                self.what
            )))
        }
    }

    /// Its JSON line, then its exit (killed if it does not follow within [`GRACE`]).
    fn result(&mut self, within: Duration) -> io::Result<serde_json::Value> {
        let l = self.line(within)?;
        let end = Instant::now() + GRACE;
        while self.child.try_wait()?.is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        serde_json::from_str(&l)
            .map_err(|e| io::Error::other(format!("{}: {e} in {l:?}", self.what)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mibs_are_named_as_nstat_names_them() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm MaxConn RetransSegs\nTcp: 1 -1 17\n\
                    TcpExt: SyncookiesSent TCPTimeouts TCPSackRecovery\nTcpExt: 0 3 5\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        let m = parse_mibs(text);
        assert_eq!(m["TcpRetransSegs"], 17);
        assert_eq!(m["TcpMaxConn"], 0);
        assert_eq!(m["TcpExtTCPTimeouts"], 3);
        assert_eq!(m["TcpExtTCPSackRecovery"], 5);
        assert!(!m.contains_key("IpForwarding") && !m.contains_key("IpExtInNoRoutes"));
        assert_eq!(m.len(), 6);
    }
}
