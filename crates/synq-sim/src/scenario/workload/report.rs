//! What a run reports: per-model figures, the timeline and the limits a plot draws.

use serde::Serialize;

/// Connect latencies of legitimate clients, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// What the legitimate clients saw. In JSON a latency with no samples (no client got that
/// far) is `null`, not zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LegitReport {
    /// Clients whose connect() was due before the end.
    pub attempted: u64,
    /// Clients that finished their exchange (or, without one, connected).
    pub completed: u64,
    /// Clients whose connection failed: connect() timed out or was refused, or a reset.
    pub gave_up: u64,
    /// Clients still busy at the end.
    pub in_progress: u64,
    /// Clients whose handshake completed (on their side): the samples of `connect_ms`.
    pub connected: u64,
    /// connect() to established as the client sees it, for clients that connected (a
    /// Linux listener whose accept queue is full drops the final ACK: the client is
    /// established and the server is not).
    pub connect_ms: LatencyMs,
    /// connect() to the end of the response, for clients that completed.
    pub complete_ms: LatencyMs,
}

impl Serialize for LegitReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let sampled = |l: &LatencyMs, n: u64| (n > 0).then_some(*l);
        let mut st = s.serialize_struct("LegitReport", 7)?;
        st.serialize_field("attempted", &self.attempted)?;
        st.serialize_field("completed", &self.completed)?;
        st.serialize_field("gave_up", &self.gave_up)?;
        st.serialize_field("in_progress", &self.in_progress)?;
        st.serialize_field("connected", &self.connected)?;
        st.serialize_field("connect_ms", &sampled(&self.connect_ms, self.connected))?;
        st.serialize_field("complete_ms", &sampled(&self.complete_ms, self.completed))?;
        st.end()
    }
}

/// Peak queue lengths over the run (exact: the stack keeps high-water marks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeakReport {
    /// Most half-open requests held at once.
    pub syn_recv: u32,
    /// Longest accept queue.
    pub recv_q: u32,
}

/// SYNs the listener dropped, by reason (nstat counter in the docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropReport {
    /// Accept queue full (or, single-queue models, the whole backlog):
    /// `TcpExtListenOverflows`.
    pub accept_queue_full: u64,
    /// SYN queue full with cookies off: `TcpExtTCPReqQFullDrop`.
    pub syn_queue_full: u64,
    /// The last quarter of `tcp_max_syn_backlog`, kept for proven peers.
    pub unproven_peer: u64,
    /// Out of connection slots: `SynqConnTableFull`.
    pub conn_table_full: u64,
    /// All of them: `TcpExtListenDrops`.
    pub total: u64,
}

/// SYN cookies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CookieReport {
    /// `TcpExtSyncookiesSent`.
    pub sent: u64,
    /// Valid cookies that made a connection: `TcpExtSyncookiesRecv`.
    pub accepted: u64,
    /// ACKs whose cookie did not check: `TcpExtSyncookiesFailed`.
    pub failed: u64,
}

/// One sample of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Virtual seconds.
    pub t: f64,
    /// Half-open requests held, all listeners.
    pub syn_recv: u32,
    /// Accept queue lengths, all listeners.
    pub recv_q: u32,
    /// SYNs dropped so far (`TcpExtListenDrops`).
    pub drops: u64,
    /// Cookies sent so far.
    pub cookies: u64,
    /// Legitimate clients completed so far.
    pub completed: u64,
    /// Legitimate clients that gave up so far.
    pub gave_up: u64,
}

/// Everything a run reports. The first fields are those of `synq sim overflow --json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Backlog model.
    pub model: &'static str,
    /// Seed.
    pub seed: u64,
    /// The first listener's queues at the end.
    pub listener: crate::scenario::ListenerReport,
    /// Client sockets by state at the end.
    pub clients: crate::scenario::ClientsReport,
    /// Always 0 here (kept for the shape of the `sim` JSON).
    pub accepted_after: u32,
    /// SYN-ACKs sent, retransmissions and cookies included.
    pub synacks_sent: u64,
    /// Legitimate clients (None without client populations; then absent from the JSON,
    /// as spec/cli.md has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legit: Option<LegitReport>,
    /// Peak queue lengths.
    pub peak: PeakReport,
    /// SYNs dropped by reason.
    pub drops: DropReport,
    /// SYN cookies.
    pub cookies: CookieReport,
    /// Attack packets sent.
    pub attack_packets: u64,
    /// Every server counter by nstat name, zeros included.
    #[serde(serialize_with = "counters_map")]
    pub counters: Vec<(&'static str, u64)>,
    /// The queues over time (empty unless asked for).
    #[serde(skip)]
    pub timeline: Vec<Sample>,
    /// Backlog limits, for plots: the first listener's clamped backlog and the SYN-queue
    /// bound the model applies.
    #[serde(skip)]
    pub limits: Limits,
    /// Packets the hosts sent, routable or not (the simulator's work, for its speed figure).
    #[serde(skip)]
    pub packets: u64,
}

/// Queue limits of the first listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Accept queue: Send-Q (backlog after the clamp); Linux holds one more.
    pub accept: u32,
    /// The SYN-queue length at which the model starts answering with cookies or dropping
    /// (single-queue models: the whole queue's limit). Without cookies, Linux also keeps
    /// the last quarter of `tcp_max_syn_backlog` for proven peers.
    pub syn: u64,
}

fn counters_map<S: serde::Serializer>(c: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(c.len()))?;
    for (k, v) in c {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

impl RunReport {
    /// A server counter by nstat name.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(0, |&(_, v)| v)
    }
}
