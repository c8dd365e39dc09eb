//! The scenario file: its TOML shape, the built-ins written in it, and the checks that keep
//! a run finite.

use super::{invalid, ScenarioError};
use crate::{Duration, LinkConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use synq_core::Model;

/// Most client hosts of one scenario (each is a whole stack).
pub const MAX_CLIENTS: u64 = 200_000;
/// Most attack packets of one scenario.
pub const MAX_ATTACK: u64 = 10_000_000;
/// Longest virtual time a scenario may cover, in seconds.
pub const MAX_SECS: f64 = 1e6;
/// Most timeline samples of one run.
pub const MAX_SAMPLES: u64 = 100_000;
/// Largest request or response of one client, in bytes.
pub const MAX_MESSAGE: u64 = 1 << 30;

/// The built-in scenarios, by name, as TOML text.
pub const BUILTINS: [(&str, &str); 5] = [
    ("overflow", include_str!("../../../scenarios/overflow.toml")),
    ("synflood", include_str!("../../../scenarios/synflood.toml")),
    ("burst", include_str!("../../../scenarios/burst.toml")),
    (
        "slow-accept",
        include_str!("../../../scenarios/slow-accept.toml"),
    ),
    (
        "flood-with-legit",
        include_str!("../../../scenarios/flood-with-legit.toml"),
    ),
];

/// A built-in scenario by name.
pub fn builtin(name: &str) -> Option<Scenario> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| Scenario::from_toml(text).expect("built-in scenarios parse"))
}

/// A sysctl value as TOML writes it: a number or a string (`"4096 131072 6291456"`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged, expecting = "an integer or a string")]
pub enum SysctlValue {
    /// `name = 2`
    Int(i64),
    /// `name = "2"`
    Text(String),
}

impl core::fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Text(v) => f.write_str(v),
        }
    }
}

/// Sysctls by Linux name.
pub type Sysctls = BTreeMap<String, SysctlValue>;

/// A scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in reports.
    pub name: String,
    /// One sentence saying what happens.
    #[serde(default)]
    pub description: String,
    /// Virtual seconds the run covers; the final state is reported then.
    pub duration_s: f64,
    /// Timeline sampling interval in milliseconds (default: duration / 500).
    #[serde(default)]
    pub sample_ms: Option<f64>,
    /// Sysctls of every host (as the kernel comparison sets them in both namespaces).
    #[serde(default)]
    pub sysctls: Sysctls,
    /// Every link, unless a population names its own.
    #[serde(default)]
    pub link: LinkSpec,
    /// The server host.
    #[serde(default)]
    pub server: ServerSpec,
    /// Its listeners (at least one).
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerSpec>,
    /// Client populations.
    #[serde(default, rename = "clients")]
    pub clients: Vec<ClientSpec>,
    /// Attackers.
    #[serde(default, rename = "attacker")]
    pub attackers: Vec<AttackerSpec>,
}

/// One direction's link behaviour (both directions get the same).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One-way propagation delay, microseconds.
    #[serde(default = "default_delay")]
    pub delay_us: f64,
    /// Extra uniform delay per packet, microseconds.
    #[serde(default)]
    pub jitter_us: f64,
    /// Loss probability per packet.
    #[serde(default)]
    pub loss: f64,
    /// Serialization rate, bits per second (absent: infinite).
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
}

fn default_delay() -> f64 {
    50.0
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            delay_us: default_delay(),
            jitter_us: 0.0,
            loss: 0.0,
            bandwidth_bps: None,
        }
    }
}

/// The server host.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Backlog model (`--model` overrides it).
    #[serde(default)]
    pub model: Option<String>,
    /// The server's own sysctls, after the scenario's.
    #[serde(default)]
    pub sysctls: Sysctls,
}

/// When the application calls accept().
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum AcceptSpec {
    /// `"never"` or `"immediate"` (whenever the listener is readable).
    Named(String),
    /// `{ every_ms = X, batch = N }`: up to N connections every X ms (all when N is absent).
    Periodic {
        /// Interval between accept rounds.
        every_ms: f64,
        /// Connections taken per round at most.
        #[serde(default)]
        batch: Option<u32>,
    },
}

impl Default for AcceptSpec {
    fn default() -> Self {
        Self::Named("immediate".into())
    }
}

/// One listening socket.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    /// Port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// listen() backlog (the model clamps it).
    pub backlog: i32,
    /// The application's accept pattern.
    #[serde(default)]
    pub accept: AcceptSpec,
    /// `TCP_DEFER_ACCEPT` seconds.
    #[serde(default)]
    pub defer_accept: u32,
}

fn default_port() -> u16 {
    crate::scenario::PORT
}

/// How a population's connect() calls are spread in time.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// One every `gap_ms` (or `1000 / rate_per_s` ms).
    Fixed,
    /// A Poisson process of `rate_per_s`.
    Poisson,
    /// All at `start_ms`.
    Burst,
}

/// A population of clients, each its own host with a Linux client's stack: it connects
/// once (SYN retries per `net.ipv4.tcp_syn_retries`), sends its request, half-closes and
/// reads the response to the end. With no request and no response it connects and holds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Name in reports.
    #[serde(default = "default_population")]
    pub name: String,
    /// Clients.
    pub count: u32,
    /// Arrival process.
    #[serde(default = "default_arrival")]
    pub arrival: Arrival,
    /// First arrival, ms.
    #[serde(default)]
    pub start_ms: f64,
    /// Gap between arrivals (fixed), ms.
    #[serde(default)]
    pub gap_ms: Option<f64>,
    /// Arrivals per second (fixed or Poisson).
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Listener port they connect to (default: the first listener's).
    #[serde(default)]
    pub port: Option<u16>,
    /// Request bytes (at least 8 when there is an exchange: they carry the response size).
    #[serde(default)]
    pub request_bytes: u64,
    /// Response bytes the server sends back.
    #[serde(default)]
    pub response_bytes: u64,
    /// The clients' own sysctls, after the scenario's.
    #[serde(default)]
    pub sysctls: Sysctls,
    /// Their link to the server (default: the scenario's).
    #[serde(default)]
    pub link: Option<LinkSpec>,
}

fn default_population() -> String {
    "clients".into()
}
fn default_arrival() -> Arrival {
    Arrival::Fixed
}

/// What an attacker sends.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// SYNs from spoofed sources, one address and port each; nobody answers the SYN-ACKs.
    SynFlood,
    /// Bare ACKs from spoofed sources with guessed acknowledgment numbers: each one is a
    /// guess at a SYN cookie.
    ForgedAck,
}

/// An attacker: `count` packets, `rate_per_s` per second from `start_ms` (all at once
/// without a rate).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttackerSpec {
    /// What it sends.
    pub kind: AttackKind,
    /// Packets in all.
    pub count: u32,
    /// Packets per second (absent: all at `start_ms`).
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// When the first packet arrives at the server, ms.
    #[serde(default)]
    pub start_ms: f64,
    /// Target port (default: the first listener's).
    #[serde(default)]
    pub port: Option<u16>,
}

impl Scenario {
    /// Parse and check a scenario file.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let s: Self = toml::from_str(text).map_err(|e| ScenarioError::Parse(one_line(&e)))?;
        s.validate()?;
        Ok(s)
    }

    /// Check every value: bounds that keep a run finite, and consistency.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        secs("duration_s", self.duration_s)?;
        if let Some(ms) = self.sample_ms {
            if !(ms.is_finite() && ms > 0.0) {
                return Err(invalid(format!(
                    "sample_ms {ms}: expected a positive number"
                )));
            }
            if self.duration_s * 1000.0 / ms > MAX_SAMPLES as f64 {
                return Err(invalid(format!(
                    "sample_ms {ms}: more than {MAX_SAMPLES} samples over {} s",
                    self.duration_s
                )));
            }
        }
        if self.listeners.is_empty() {
            return Err(invalid("a scenario needs at least one [[listener]]"));
        }
        let mut ports = Vec::new();
        for l in &self.listeners {
            if ports.contains(&l.port) {
                return Err(invalid(format!("two listeners on port {}", l.port)));
            }
            ports.push(l.port);
            accept_pattern(&l.accept)?;
        }
        if let Some(m) = &self.server.model {
            m.parse::<Model>()
                .map_err(|why| invalid(format!("server.model {m:?}: {why}")))?;
        }
        self.link.check("link")?;
        let mut clients = 0u64;
        for (i, c) in self.clients.iter().enumerate() {
            let at = format!("clients[{i}] ({})", c.name);
            clients += u64::from(c.count);
            ms(&at, "start_ms", c.start_ms)?;
            match c.arrival {
                Arrival::Burst => {}
                Arrival::Fixed => {
                    if c.gap_ms.is_none() && c.rate_per_s.is_none() {
                        return Err(invalid(format!(
                            "{at}: fixed arrivals need gap_ms or rate_per_s"
                        )));
                    }
                }
                Arrival::Poisson => {
                    if c.rate_per_s.is_none() {
                        return Err(invalid(format!("{at}: poisson arrivals need rate_per_s")));
                    }
                }
            }
            if let Some(g) = c.gap_ms {
                ms(&at, "gap_ms", g)?;
            }
            if let Some(r) = c.rate_per_s {
                rate(&at, r)?;
            }
            if let Some(p) = c.port {
                if !ports.contains(&p) {
                    return Err(invalid(format!("{at}: no listener on port {p}")));
                }
            }
            if c.request_bytes > MAX_MESSAGE || c.response_bytes > MAX_MESSAGE {
                return Err(invalid(format!(
                    "{at}: messages of at most {MAX_MESSAGE} bytes"
                )));
            }
            if (c.request_bytes > 0 || c.response_bytes > 0) && c.request_bytes < 8 {
                return Err(invalid(format!(
                    "{at}: request_bytes must be at least 8 when there is an exchange (the request carries the response size)"
                )));
            }
            if let Some(l) = &c.link {
                l.check(&at)?;
            }
        }
        if clients > MAX_CLIENTS {
            return Err(invalid(format!("{clients} clients: at most {MAX_CLIENTS}")));
        }
        let mut attack = 0u64;
        for (i, a) in self.attackers.iter().enumerate() {
            let at = format!("attacker[{i}]");
            attack += u64::from(a.count);
            ms(&at, "start_ms", a.start_ms)?;
            if let Some(r) = a.rate_per_s {
                rate(&at, r)?;
            }
            if let Some(p) = a.port {
                if !ports.contains(&p) {
                    return Err(invalid(format!("{at}: no listener on port {p}")));
                }
            }
        }
        if attack > MAX_ATTACK {
            return Err(invalid(format!(
                "{attack} attack packets: at most {MAX_ATTACK}"
            )));
        }
        Ok(())
    }

    /// The model the run uses: `over`, else the file's, else linux.
    pub fn model(&self, over: Option<Model>) -> Model {
        over.or_else(|| self.server.model.as_deref().and_then(|m| m.parse().ok()))
            .unwrap_or_default()
    }

    /// Legitimate clients in all.
    pub fn client_count(&self) -> u64 {
        self.clients.iter().map(|c| u64::from(c.count)).sum()
    }
}

/// toml's error as one line.
fn one_line(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    match e.span() {
        Some(_) => {
            let first = e.to_string();
            let loc = first.lines().next().unwrap_or_default().trim().to_string();
            format!("{loc}: {msg}")
        }
        None => msg.to_string(),
    }
}

fn secs(name: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && v > 0.0 && v <= MAX_SECS {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name} {v}: expected seconds in (0, {MAX_SECS}]"
        )))
    }
}

fn ms(at: &str, name: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && (0.0..=MAX_SECS * 1000.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{at}: {name} {v}: expected milliseconds in [0, {}]",
            MAX_SECS * 1000.0
        )))
    }
}

fn rate(at: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && v > 0.0 && v <= 1e9 {
        Ok(())
    } else {
        Err(invalid(format!(
            "{at}: rate_per_s {v}: expected a rate in (0, 1e9]"
        )))
    }
}

impl LinkSpec {
    fn check(&self, at: &str) -> Result<(), ScenarioError> {
        for (n, v) in [("delay_us", self.delay_us), ("jitter_us", self.jitter_us)] {
            if !(v.is_finite() && (0.0..=60e6).contains(&v)) {
                return Err(invalid(format!(
                    "{at}: {n} {v}: expected microseconds in [0, 60000000]"
                )));
            }
        }
        self.config()
            .validate()
            .map_err(|e| invalid(format!("{at}: {e}")))?;
        Ok(())
    }

    pub(super) fn config(&self) -> LinkConfig {
        LinkConfig {
            delay: us(self.delay_us),
            jitter: us(self.jitter_us),
            loss: self.loss,
            bandwidth_bps: self.bandwidth_bps,
            ..LinkConfig::default()
        }
    }
}

fn us(v: f64) -> Duration {
    Duration::from_micros(v.round() as u64)
}

pub(super) fn ms_dur(v: f64) -> Duration {
    Duration::from_micros((v * 1000.0).round() as u64)
}

/// The accept pattern, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Accept {
    Never,
    Immediate,
    Every { every: Duration, batch: u32 },
}

pub(super) fn accept_pattern(a: &AcceptSpec) -> Result<Accept, ScenarioError> {
    match a {
        AcceptSpec::Named(n) if n == "never" => Ok(Accept::Never),
        AcceptSpec::Named(n) if n == "immediate" => Ok(Accept::Immediate),
        AcceptSpec::Named(n) => Err(invalid(format!(
            "accept {n:?}: expected \"never\", \"immediate\" or {{ every_ms = X, batch = N }}"
        ))),
        AcceptSpec::Periodic { every_ms, batch } => {
            if !(every_ms.is_finite() && *every_ms > 0.0 && *every_ms <= MAX_SECS * 1000.0) {
                return Err(invalid(format!(
                    "accept every_ms {every_ms}: expected a positive interval"
                )));
            }
            if *batch == Some(0) {
                return Err(invalid("accept batch 0: use accept = \"never\""));
            }
            Ok(Accept::Every {
                every: ms_dur(*every_ms).max(Duration::from_micros(1)),
                batch: batch.unwrap_or(u32::MAX),
            })
        }
    }
}
