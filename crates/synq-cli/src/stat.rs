//! `synq stat`: a running `synq serve`'s queues, connections and counters, as `ss` and
//! `nstat` show a kernel's.

use crate::error::{Error, Result};
use crate::output::{self, counters_json};
use clap::Args;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use synq_core::{Counters, Family, FreeBsdCounters, ListenerInfo};
use synq_tokio::{DriverStats, Stack};

#[derive(Args, Debug)]
pub(crate) struct StatArgs {
    /// The server's control socket (`synq serve --control`).
    #[arg(long, value_name = "PATH")]
    control: PathBuf,
    /// One JSON object instead of the ss/nstat-style text.
    #[arg(long)]
    json: bool,
}

/// The state `synq stat` prints: every shard read under its own lock (so a shard's
/// figures agree with each other), then summed: listeners of one address merged
/// ([`ListenerInfo::merge`]), connections listed together, counters and driver figures
/// added up. `shards` lists each shard's own listeners, connection count, counters and
/// driver figures.
pub(crate) fn snapshot(stacks: &[Stack]) -> Value {
    let mut listeners: Vec<ListenerInfo> = Vec::new();
    let mut connections = Vec::new();
    let mut counters = Counters::default();
    let mut bsd = FreeBsdCounters::default();
    let mut freebsd = false;
    let mut drivers = Vec::with_capacity(stacks.len());
    let mut shards = Vec::with_capacity(stacks.len());
    for (i, stack) in stacks.iter().enumerate() {
        let (ls, conns, c, b) = stack.with(|s| {
            freebsd |= s.config().model.family() == Family::FreeBsd;
            let mut conns: Vec<Value> = s
                .connections()
                .map(|c| {
                    json!({"local": c.tuple.local.to_string(), "remote": c.tuple.remote.to_string(),
                           "state": c.state.as_str(), "recv_q": c.recv_queue,
                           "send_q": c.send_queue})
                })
                .collect();
            conns.extend(s.syn_recv().map(|r| {
                json!({"local": r.local.to_string(), "remote": r.remote.to_string(),
                       "state": "SYN_RECEIVED", "recv_q": 0, "send_q": 0,
                       "retransmits": r.retransmits})
            }));
            (
                s.listeners().collect::<Vec<_>>(),
                conns,
                s.counters().clone(),
                s.freebsd_counters().clone(),
            )
        });
        let d = stack.driver_stats();
        for l in &ls {
            match listeners.iter_mut().find(|m| m.local == l.local) {
                Some(m) => m.merge(l),
                None => listeners.push(*l),
            }
        }
        counters += &c;
        bsd += &b;
        shards.push(json!({
            "shard": i,
            "listeners": ls.iter().map(listener_json).collect::<Vec<_>>(),
            "connections": conns.len(),
            "counters": counters_json(c.iter()),
            "driver": driver_json(&[d]),
        }));
        drivers.push(d);
        connections.extend(conns);
    }
    connections.sort_by(|a, b| a["local"].as_str().cmp(&b["local"].as_str()));
    let mut v = json!({
        "listeners": listeners.iter().map(listener_json).collect::<Vec<_>>(),
        "connections": connections,
        "counters": counters_json(counters.iter()),
        "driver": driver_json(&drivers),
        "shards": shards,
    });
    if freebsd {
        // The syncache's own counters, under FreeBSD's `struct tcpstat` names.
        v["freebsd_counters"] = counters_json(bsd.iter());
    }
    v
}

fn listener_json(l: &ListenerInfo) -> Value {
    json!({"local": l.local.to_string(), "recv_q": l.recv_q,
           "send_q": l.send_q, "syn_recv": l.syn_recv})
}

/// The driver figures of `ds` added up.
fn driver_json(ds: &[DriverStats]) -> Value {
    let sum = |f: fn(&DriverStats) -> u64| ds.iter().map(f).sum::<u64>();
    json!({"rx_packets": sum(|d| d.rx_packets), "tx_packets": sum(|d| d.tx_packets),
           "tx_errors": sum(|d| d.tx_errors), "tx_super_segments": sum(|d| d.tx_super_segments),
           "wakeups": sum(|d| d.wakeups)})
}

/// Ask the server at `path` for its state.
pub(crate) fn query(path: &std::path::Path) -> Result<Value> {
    let mut conn = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        Error::Usage(format!(
            "--control {}: no synq serve answers there ({e})",
            path.display()
        ))
    })?;
    let timeout = std::time::Duration::from_secs(5);
    let _ = conn.set_read_timeout(Some(timeout));
    let _ = conn.set_write_timeout(Some(timeout));
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Run(format!(
            "control socket: no reply within {} s",
            timeout.as_secs()
        )),
        _ => Error::Run(format!("control socket: {e}")),
    };
    conn.write_all(b"stat\n").map_err(io)?;
    // One line, bounded: whatever answers there is not trusted.
    let mut line = Vec::new();
    BufReader::new(conn)
        .take(MAX_REPLY)
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    if line.len() as u64 >= MAX_REPLY {
        return Err(Error::Run(format!(
            "control socket: a reply over {} MiB",
            MAX_REPLY >> 20
        )));
    }
    let v: Value = serde_json::from_slice(&line)
        .map_err(|e| Error::Run(format!("control socket: bad reply ({e})")))?;
    if let Some(e) = v.get("error") {
        return Err(Error::Run(format!("server: {e}")));
    }
    if !(v["listeners"].is_array() && v["connections"].is_array() && v["counters"].is_object()) {
        return Err(Error::Run(
            "control socket: not a synq serve reply (listeners, connections, counters)".into(),
        ));
    }
    Ok(v)
}

/// The longest reply `stat` reads: a server's whole state, a line of JSON.
const MAX_REPLY: u64 = 256 << 20;

/// `ss`'s short state name for an RFC state name (as the server reports it); an unknown
/// name is printed as it is.
pub(crate) fn ss_state(rfc: &str) -> &str {
    match synq_core::State::from_name(rfc) {
        Some(s) => s.ss_name(),
        None => rfc,
    }
}

/// The human form: `ss -lnt`, `ss -tn` (SYN-RECV rows included) and `nstat -az`.
pub(crate) fn render(v: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let rows = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let s = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    writeln!(out, "# ss -lnt")?;
    writeln!(
        out,
        "{:<10} {:<6} {:<6} {:<8} {:<24} Peer Address:Port",
        "State", "Recv-Q", "Send-Q", "SYN-RECV", "Local Address:Port"
    )?;
    for l in rows("listeners") {
        writeln!(
            out,
            "{:<10} {:<6} {:<6} {:<8} {:<24} *:*",
            "LISTEN",
            s(&l["recv_q"]),
            s(&l["send_q"]),
            s(&l["syn_recv"]),
            s(&l["local"])
        )?;
    }
    writeln!(out, "# ss -tan")?;
    writeln!(
        out,
        "{:<10} {:<6} {:<6} {:<24} Peer Address:Port",
        "State", "Recv-Q", "Send-Q", "Local Address:Port"
    )?;
    for c in rows("connections") {
        writeln!(
            out,
            "{:<10} {:<6} {:<6} {:<24} {}",
            ss_state(c["state"].as_str().unwrap_or("?")),
            s(&c["recv_q"]),
            s(&c["send_q"]),
            s(&c["local"]),
            s(&c["remote"])
        )?;
    }
    writeln!(out, "# nstat -az")?;
    if let Some(m) = v["counters"].as_object() {
        for (k, x) in m {
            writeln!(out, "{k:<32} {:<12} 0.0", s(x))?;
        }
    }
    if let Some(m) = v["freebsd_counters"].as_object() {
        writeln!(
            out,
            "# netstat -s -p tcp (FreeBSD syncache, struct tcpstat names)"
        )?;
        for (k, x) in m {
            writeln!(out, "{k:<32} {}", s(x))?;
        }
    }
    // One shard is the whole server: its figures are the ones above.
    let shards = rows("shards");
    if shards.len() > 1 {
        writeln!(out, "# shards")?;
        writeln!(
            out,
            "{:<6} {:<6} {:<8} {:<6} {:<15} {:<12} {:<12} TcpOutSegs",
            "Shard", "Recv-Q", "SYN-RECV", "Conns", "TcpPassiveOpens", "rx_packets", "TcpInSegs"
        )?;
        for sh in shards {
            let sum = |k: &str| {
                sh["listeners"]
                    .as_array()
                    .map_or(0, |ls| ls.iter().filter_map(|l| l[k].as_u64()).sum::<u64>())
            };
            writeln!(
                out,
                "{:<6} {:<6} {:<8} {:<6} {:<15} {:<12} {:<12} {}",
                s(&sh["shard"]),
                sum("recv_q"),
                sum("syn_recv"),
                s(&sh["connections"]),
                s(&sh["counters"]["TcpPassiveOpens"]),
                s(&sh["driver"]["rx_packets"]),
                s(&sh["counters"]["TcpInSegs"]),
                s(&sh["counters"]["TcpOutSegs"])
            )?;
        }
    }
    Ok(())
}

pub(crate) fn run(a: &StatArgs) -> Result {
    let v = query(&a.control)?;
    if a.json {
        output::json(&v)
    } else {
        output::print(|w| render(&v, w))
    }
}
