//! Scenario files: a workload over time against one server host, described in TOML, and the
//! engine that runs it once per backlog model and reports what it did to the queues.
//!
//! A scenario names the links, the server (model, sysctls), its listeners (backlog, accept
//! pattern), client populations (arrival process, request and response sizes) and attackers
//! (spoofed SYNs, forged ACKs aimed at the cookie check). The format is documented in
//! `docs/scenarios.md`; the built-ins ([`builtin`]) are written in it.

mod file;
mod hosts;
mod report;

pub use file::*;
pub use report::*;

use super::backlog::{client_addr, Flooder};
use super::{subseed, SERVER_ADDR};
use crate::{Duration, HostId, Instant, LinkConfig, Network, SimError, Tap};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use file::{accept_pattern, ms_dur, Accept};
use hosts::{Client, Node, Phase, Server};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use synq_core::{Config, Model, Stack};

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The TOML does not parse or names an unknown key.
    #[error("{0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// The simulator refused the run.
    #[error(transparent)]
    Sim(#[from] SimError),
}

fn invalid(msg: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid(msg.into())
}

/// Totals the hosts' applications report through the event hook.
#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    gave_up: u64,
    latencies_us: Vec<u64>,
    completions_us: Vec<u64>,
}

/// What to run: a scenario, a model, sysctls on top, a seed.
#[derive(Clone, Debug)]
pub struct RunParams {
    /// The scenario.
    pub scenario: Scenario,
    /// Backlog model (None: the scenario's).
    pub model: Option<Model>,
    /// Sysctls applied to every host after the scenario's (`--sysctl`).
    pub sysctls: Vec<(String, String)>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Sample the queues over time.
    pub timeline: bool,
}

fn apply(config: &mut Config, sysctls: &Sysctls, at: &str) -> Result<(), ScenarioError> {
    for (k, v) in sysctls {
        config
            .set(k, &v.to_string())
            .map_err(|e| invalid(format!("{at}: {k} = {v}: {e}")))?;
    }
    Ok(())
}

/// Arrival times of a population, ms from zero, seeded.
fn arrivals(c: &ClientSpec, seed: u64) -> Vec<f64> {
    let n = c.count as usize;
    match c.arrival {
        Arrival::Burst => vec![c.start_ms; n],
        Arrival::Fixed => {
            let gap = c
                .gap_ms
                .unwrap_or_else(|| 1000.0 / c.rate_per_s.unwrap_or(1000.0));
            (0..n).map(|i| c.start_ms + gap * i as f64).collect()
        }
        Arrival::Poisson => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mean_ms = 1000.0 / c.rate_per_s.unwrap_or(1000.0);
            let mut t = c.start_ms;
            (0..n)
                .map(|_| {
                    let u: f64 = rng.gen::<f64>();
                    t += -mean_ms * (1.0 - u).ln();
                    t
                })
                .collect()
        }
    }
}

/// Run a scenario once.
pub fn run(p: &RunParams) -> Result<RunReport, ScenarioError> {
    run_tapped(p, None)
}

/// [`run`] with `tap` watching every packet (a [`crate::Capture`], say).
pub fn run_tapped(p: &RunParams, tap: Option<Tap>) -> Result<RunReport, ScenarioError> {
    run_with(p, tap, &mut |_| {})
}

/// [`run_tapped`], telling `progress` the fraction of virtual time done as it goes (at
/// most about 500 times a run).
pub fn run_with(
    p: &RunParams,
    tap: Option<Tap>,
    progress: &mut dyn FnMut(f64),
) -> Result<RunReport, ScenarioError> {
    let sc = &p.scenario;
    sc.validate()?;
    let model = sc.model(p.model);
    let mut base = Config::default();
    apply(&mut base, &sc.sysctls, "sysctls")?;
    let over = |c: &mut Config| -> Result<(), ScenarioError> {
        for (k, v) in &p.sysctls {
            c.set(k, v)
                .map_err(|e| invalid(format!("--sysctl {k}={v}: {e}")))?;
        }
        Ok(())
    };
    let mut server_config = base.clone();
    apply(&mut server_config, &sc.server.sysctls, "server.sysctls")?;
    over(&mut server_config)?;
    server_config.model = model;
    let end = Instant::ZERO + secs_dur(sc.duration_s);

    let mut net: Network<Node> = Network::new(p.seed);
    if let Some(tap) = tap {
        net.set_tap(tap);
    }
    net.try_set_default_link(sc.link.config())?;
    let tally = Rc::new(RefCell::new(Tally::default()));
    let t = Rc::clone(&tally);
    net.set_event_hook(Box::new(move |now, _, node: &mut Node, ev| match node {
        Node::Server(s) => s.on_event(now, ev),
        Node::Client(c) => c.on_event(now, ev, &mut t.borrow_mut()),
        Node::Attacker(_) => {}
    }));

    // The server: seed stream 0, as in `overflow`.
    let mut stack = Stack::new(server_config.clone(), subseed(p.seed, 0));
    stack.add_address(SERVER_ADDR);
    let mut listeners = Vec::new();
    for l in &sc.listeners {
        let h = stack
            .listen(
                Instant::ZERO,
                SocketAddr::new(SERVER_ADDR, l.port),
                l.backlog,
            )
            .map_err(|e| invalid(format!("listen on port {}: {e}", l.port)))?;
        if l.defer_accept > 0 {
            let _ = stack.set_defer_accept(h, l.defer_accept);
        }
        let accept = accept_pattern(&l.accept)?;
        let tick = match accept {
            Accept::Every { every, .. } => Some(Instant::ZERO + every),
            _ => None,
        };
        listeners.push((h, accept, tick));
    }
    let first = listeners[0].0;
    let srv = net.add_host(
        SERVER_ADDR,
        Node::Server(Box::new(Server {
            stack,
            listeners,
            conns: BTreeMap::new(),
        })),
    );
    let default_port = sc.listeners[0].port;

    // Clients: host i gets address client_addr(i) and seed stream 1 + i, as in `overflow`.
    let mut clients: Vec<HostId> = Vec::new();
    let mut attempted = 0u64;
    let mut index = 0u32;
    for (pi, c) in sc.clients.iter().enumerate() {
        let mut config = base.clone();
        apply(&mut config, &c.sysctls, &format!("clients[{pi}].sysctls"))?;
        over(&mut config)?;
        let config = Rc::new(config);
        let dst = SocketAddr::new(SERVER_ADDR, c.port.unwrap_or(default_port));
        for at_ms in arrivals(c, subseed(p.seed, 1 << 40 | pi as u64)) {
            let start = Instant::ZERO + ms_dur(at_ms);
            let i = index;
            index += 1;
            if start > end {
                continue;
            }
            attempted += 1;
            let addr = client_addr(i);
            let id = net.add_host(
                addr,
                Node::Client(Client {
                    config: Rc::clone(&config),
                    seed: subseed(p.seed, 1 + u64::from(i)),
                    addr,
                    dst,
                    start,
                    stack: None,
                    conn: None,
                    request: c.request_bytes,
                    response: c.response_bytes,
                    sent: 0,
                    received: 0,
                    phase: Phase::Waiting,
                }),
            );
            if let Some(l) = &c.link {
                net.try_set_link(id, srv, l.config())?;
                net.try_set_link(srv, id, l.config())?;
            }
            clients.push(id);
        }
    }

    // Attackers send over a link without delay, each packet at its arrival instant, so
    // that only one batch is ever in flight (see `Flooder`).
    let direct = LinkConfig {
        delay: Duration::ZERO,
        ..LinkConfig::default()
    };
    let mut first_source = 0u32;
    let mut attackers = Vec::new();
    for (ai, a) in sc.attackers.iter().enumerate() {
        let gap = match a.rate_per_s {
            Some(r) => Duration::from_micros((1e6 / r).round() as u64),
            None => Duration::ZERO,
        };
        let dst = SocketAddr::new(SERVER_ADDR, a.port.unwrap_or(default_port));
        let flooder = Flooder::new(
            dst,
            a.count,
            Instant::ZERO + ms_dur(a.start_ms),
            gap,
            subseed(p.seed, 2 << 40 | ai as u64),
            first_source,
            a.kind == AttackKind::ForgedAck,
        );
        first_source = first_source.wrapping_add(a.count);
        let addr = IpAddr::V4(Ipv4Addr::from(0xC613_FF00u32 + 1 + ai as u32));
        let id = net.add_host(addr, Node::Attacker(flooder));
        net.try_set_link(id, srv, direct.clone())?;
        attackers.push(id);
    }

    // Run, sampling the server as we go.
    let mut timeline = Vec::new();
    let interval = sample_interval(sc);
    let mut at = Instant::ZERO;
    loop {
        net.try_run_until(at)?;
        if p.timeline {
            timeline.push(sample(&net, srv, &tally.borrow()));
        }
        progress(at.total_micros() as f64 / end.total_micros().max(1) as f64);
        if at >= end {
            break;
        }
        at = (at + interval).min(end);
    }

    // Report.
    let mut report_clients = super::ClientsReport::default();
    for &id in &clients {
        if let Node::Client(c) = net.host(id) {
            match c.phase {
                Phase::Waiting => {}
                Phase::Connecting => report_clients.syn_sent += 1,
                Phase::Failed => report_clients.failed += 1,
                Phase::Exchanging | Phase::Done => report_clients.established += 1,
            }
        }
    }
    let attack_packets = attackers
        .iter()
        .map(|&id| match net.host(id) {
            Node::Attacker(f) => u64::from(f.sent()),
            _ => 0,
        })
        .sum();
    let packets = net.total_stats().sent + net.unroutable();
    let Node::Server(server) = net.host(srv) else {
        unreachable!("host 0 is the server");
    };
    let s = &server.stack;
    let info = s.listener_info(first).expect("the listener is open");
    let mut peak = PeakReport::default();
    for (h, _, _) in &server.listeners {
        if let Some(i) = s.listener_info(*h) {
            peak.syn_recv += i.peak_syn_recv;
            peak.recv_q += i.peak_recv_q;
        }
    }
    let ctr = s.counters();
    let tally = tally.borrow();
    let legit = (!sc.clients.is_empty()).then(|| LegitReport {
        attempted,
        completed: tally.completed,
        gave_up: tally.gave_up,
        in_progress: attempted - tally.completed - tally.gave_up,
        connected: tally.latencies_us.len() as u64,
        connect_ms: latency(&tally.latencies_us),
        complete_ms: latency(&tally.completions_us),
    });
    let drops = DropReport {
        accept_queue_full: ctr.listen_overflows,
        syn_queue_full: ctr.req_q_full_drop,
        conn_table_full: ctr.conn_table_full,
        unproven_peer: ctr
            .listen_drops
            .saturating_sub(ctr.listen_overflows + ctr.req_q_full_drop + ctr.conn_table_full),
        total: ctr.listen_drops,
    };
    let limits = Limits {
        accept: info.send_q,
        syn: if model.single_queue() {
            model.single_limit(info.send_q)
        } else {
            // The longest SYN queue the model lets grow before cookies or drops.
            let mut q = info.send_q.saturating_sub(1);
            while q < info.send_q.saturating_add(2) && !model.syn_queue_full(q, info.send_q) {
                q += 1;
            }
            u64::from(q)
        },
    };
    Ok(RunReport {
        scenario: sc.name.clone(),
        model: model.name(),
        seed: p.seed,
        listener: super::ListenerReport {
            recv_q: info.recv_q,
            send_q: info.send_q,
            syn_recv: info.syn_recv,
        },
        clients: report_clients,
        accepted_after: 0,
        synacks_sent: ctr.synacks_sent,
        legit,
        peak,
        drops,
        cookies: CookieReport {
            sent: ctr.syncookies_sent,
            accepted: ctr.syncookies_recv,
            failed: ctr.syncookies_failed,
        },
        attack_packets,
        counters: ctr.iter().collect(),
        timeline,
        limits,
        packets,
    })
}

fn secs_dur(s: f64) -> Duration {
    Duration::from_micros((s * 1e6).round() as u64)
}

/// The sampling interval: the file's, else 1/500 of the run, at least 1 µs.
fn sample_interval(sc: &Scenario) -> Duration {
    let ms = sc.sample_ms.unwrap_or(sc.duration_s * 1000.0 / 500.0);
    ms_dur(ms).max(Duration::from_micros(1))
}

fn sample(net: &Network<Node>, srv: HostId, tally: &Tally) -> Sample {
    let Node::Server(s) = net.host(srv) else {
        unreachable!("host 0 is the server");
    };
    let mut out = Sample {
        t: net.now().total_micros() as f64 / 1e6,
        drops: s.stack.counters().listen_drops,
        cookies: s.stack.counters().syncookies_sent,
        completed: tally.completed,
        gave_up: tally.gave_up,
        ..Sample::default()
    };
    for (h, _, _) in &s.listeners {
        if let Some(i) = s.stack.listener_info(*h) {
            out.syn_recv += i.syn_recv;
            out.recv_q += i.recv_q;
        }
    }
    out
}

fn latency(us: &[u64]) -> LatencyMs {
    let mut l = us.to_vec();
    l.sort_unstable();
    LatencyMs {
        p50: percentile(&l, 50.0),
        p99: percentile(&l, 99.0),
        max: l.last().map_or(0.0, |&v| v as f64 / 1000.0),
    }
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, _) in BUILTINS {
            let s = builtin(name).expect(name);
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7000], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn poisson_arrivals_are_seeded_and_average_the_rate() {
        let c = ClientSpec {
            name: "p".into(),
            count: 20_000,
            arrival: Arrival::Poisson,
            start_ms: 0.0,
            gap_ms: None,
            rate_per_s: Some(1000.0),
            port: None,
            request_bytes: 0,
            response_bytes: 0,
            sysctls: Sysctls::new(),
            link: None,
        };
        let a = arrivals(&c, 7);
        assert_eq!(a, arrivals(&c, 7));
        assert_ne!(a, arrivals(&c, 8));
        // 20000 arrivals at 1/ms end near 20000 ms (the sd is about 141 ms).
        let last = *a.last().unwrap();
        assert!((19_000.0..21_000.0).contains(&last), "{last}");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let err = |t: &str| Scenario::from_toml(t).unwrap_err().to_string();
        assert!(
            err("name = 1").contains("invalid type"),
            "{}",
            err("name = 1")
        );
        let base = "name = \"x\"\nduration_s = 1\n";
        assert!(err(base).contains("listener"));
        let with = |extra: &str| format!("{base}[[listener]]\nbacklog = 5\n{extra}");
        assert!(err(&with("bogus = 1\n")).contains("bogus"));
        assert!(
            err(&with("[[clients]]\ncount = 1\narrival = \"poisson\"\n")).contains("rate_per_s")
        );
        assert!(
            err(&with("[[clients]]\ncount = 300000\narrival = \"burst\"\n")).contains("at most")
        );
        assert!(err(&with(
            "[[clients]]\ncount = 1\narrival = \"burst\"\nresponse_bytes = 5\n"
        ))
        .contains("at least 8"));
        assert!(
            err("name = \"x\"\nduration_s = 1e300\n[[listener]]\nbacklog = 5\n")
                .contains("duration_s")
        );
        assert!(err(&with("[link]\nloss = 2.0\n")).contains("loss"));
        assert!(err(&with("[link]\nbandwidth_bps = 0\n")).contains("leave it unset"));
        let float = err(&format!(
            "{base}[sysctls]\n\"net.core.somaxconn\" = 1.5\n[[listener]]\nbacklog = 5\n"
        ));
        assert!(float.contains("an integer or a string"), "{float}");
        assert!(Scenario::from_toml(&with("")).is_ok());
    }
}
