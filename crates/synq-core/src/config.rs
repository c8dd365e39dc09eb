//! Configuration by Linux sysctl name, with Linux defaults.
//!
//! Names, meanings and defaults follow Linux 6.x (`Documentation/networking/ip-sysctl.rst`);
//! `net.ipv4.*` TCP knobs apply to IPv6 too, as on Linux.

use crate::listener::Model;
use core::fmt;

/// A sysctl could not be set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    /// No such name (EINVAL on a bad path would be ENOENT in /proc; we name it plainly).
    #[error("unknown sysctl {0:?}")]
    UnknownName(String),
    /// The value does not parse or is out of range (EINVAL).
    #[error("invalid value {value:?} for {name}: {why}")]
    InvalidValue {
        /// The sysctl name.
        name: String,
        /// The rejected text.
        value: String,
        /// What was expected.
        why: &'static str,
    },
    /// A line of a sysctl.conf file is not `name = value`.
    #[error("line {line}: expected `name = value`, got {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
}

/// Every tunable of a stack. Field docs give the sysctl name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `net.core.somaxconn`: listen() backlog clamp (4096 since Linux 5.4).
    pub somaxconn: u32,
    /// `net.ipv4.tcp_max_syn_backlog`: SYN-queue heuristic knob. Linux sizes it from memory
    /// (max(128, ehash_entries/128)); 2048 is what the reference test VM shows.
    pub tcp_max_syn_backlog: u32,
    /// `net.ipv4.tcp_syncookies`: 0 never, 1 when the SYN queue overflows, 2 always.
    pub tcp_syncookies: u8,
    /// `net.ipv4.tcp_synack_retries`: SYN-ACK retransmissions for a half-open request.
    pub tcp_synack_retries: u8,
    /// `net.ipv4.tcp_syn_retries`: SYN retransmissions before connect() fails.
    pub tcp_syn_retries: u8,
    /// `net.ipv4.tcp_syn_linear_timeouts`: SYN retransmissions that keep the initial 1 s RTO.
    pub tcp_syn_linear_timeouts: u8,
    /// `net.ipv4.tcp_abort_on_overflow`: RST instead of dropping a final ACK on overflow.
    pub tcp_abort_on_overflow: bool,
    /// `net.ipv4.tcp_timestamps`: RFC 7323 timestamps (0 off, 1 on with per-peer offsets,
    /// 2 on without offsets).
    pub tcp_timestamps: u8,
    /// `net.ipv4.tcp_window_scaling`: RFC 7323 window scaling.
    pub tcp_window_scaling: bool,
    /// `net.ipv4.tcp_sack`: advertise SACK-permitted and send SACK blocks.
    pub tcp_sack: bool,
    /// `net.ipv4.tcp_rmem`: min, default, max receive buffer bytes. The max is
    /// memory-dependent on Linux (32 MiB on a 24 GiB 6.18 machine); with `net.core.rmem_max`
    /// it sets the window scale we offer.
    pub tcp_rmem: [u32; 3],
    /// `net.core.rmem_max`: largest receive buffer an application may set (4 MiB on 6.18).
    pub rmem_max: u32,
    /// `net.ipv4.tcp_wmem`: min, default, max send buffer bytes.
    pub tcp_wmem: [u32; 3],
    /// `net.ipv4.tcp_fin_timeout`: seconds an orphaned FIN_WAIT_2 connection lingers.
    pub tcp_fin_timeout: u32,
    /// `net.ipv4.tcp_retries2`: data retransmissions before a connection times out.
    pub tcp_retries2: u8,
    /// `net.ipv4.tcp_invalid_ratelimit`: ms between replies to invalid segments
    /// (challenge ACKs, duplicate SYNs, out-of-window ACKs).
    pub tcp_invalid_ratelimit_ms: u32,
    /// `net.ipv4.tcp_max_tw_buckets`: TIME_WAIT sockets held at most; beyond, none is kept
    /// (memory-dependent on Linux: 131072 on a 24 GiB machine).
    pub tcp_max_tw_buckets: u32,
    /// `net.ipv4.tcp_max_orphans`: connections closed by the application but still open
    /// (memory-dependent on Linux: 131072 on a 24 GiB machine).
    pub tcp_max_orphans: u32,
    /// `net.ipv4.tcp_migrate_req`: reuseport request migration (kept for name fidelity).
    pub tcp_migrate_req: bool,
    /// `net.ipv4.ip_local_port_range`: ephemeral ports for connect().
    pub ip_local_port_range: [u16; 2],
    /// `net.ipv4.ip_default_ttl`: TTL / hop limit of emitted packets.
    pub ip_default_ttl: u8,
    /// `synq.mtu`: link MTU, from which the advertised MSS is derived (no Linux sysctl).
    pub mtu: u16,
    /// `synq.max_connections`: bound on the connection table (Linux bounds it by memory).
    pub max_connections: u32,
    /// `synq.tx_queue_len`: stateless replies (RST, SYN-ACK) waiting for `poll_transmit`.
    pub tx_queue_len: u32,
    /// `synq.listen_model`: the backlog semantics (`linux`, `linux-4.10`, `bsd`,
    /// `bsd-exact`).
    pub model: Model,
    /// `synq.bsd_drop_incomplete`: single-queue models drop a random half-open connection to
    /// admit a SYN when full (FreeBSD 2.2-4.x and XNU `sodropablereq`).
    pub bsd_drop_incomplete: bool,
    /// `synq.tcp_metrics_entries`: peers whose RTT is remembered (Linux's tcp_metrics
    /// table, consulted by the `tcp_max_syn_backlog` quarter rule).
    pub tcp_metrics_entries: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            somaxconn: 4096,
            tcp_max_syn_backlog: 2048,
            tcp_syncookies: 1,
            tcp_synack_retries: 5,
            tcp_syn_retries: 6,
            tcp_syn_linear_timeouts: 4,
            tcp_abort_on_overflow: false,
            tcp_timestamps: 1,
            tcp_window_scaling: true,
            tcp_sack: true,
            tcp_rmem: [4096, 131_072, 33_554_432],
            rmem_max: 4_194_304,
            tcp_wmem: [4096, 16_384, 4_194_304],
            tcp_fin_timeout: 60,
            tcp_retries2: 15,
            tcp_invalid_ratelimit_ms: 500,
            tcp_max_tw_buckets: 131_072,
            tcp_max_orphans: 131_072,
            tcp_migrate_req: false,
            ip_local_port_range: [32768, 60999],
            ip_default_ttl: 64,
            mtu: 1500,
            max_connections: 1_000_000,
            tx_queue_len: 65_536,
            model: Model::Linux,
            bsd_drop_incomplete: false,
            tcp_metrics_entries: 16_384,
        }
    }
}

/// One entry of the sysctl table.
struct Knob {
    name: &'static str,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), &'static str>,
}

fn int<T: core::str::FromStr + PartialOrd + Copy>(
    v: &str,
    lo: T,
    hi: T,
) -> Result<T, &'static str> {
    let x: T = v.trim().parse().map_err(|_| "not an integer in range")?;
    if x < lo || x > hi {
        return Err("out of range");
    }
    Ok(x)
}

fn boolean(v: &str) -> Result<bool, &'static str> {
    match v.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err("expected 0 or 1"),
    }
}

fn triple(v: &str) -> Result<[u32; 3], &'static str> {
    let mut it = v.split_whitespace().map(|x| x.parse::<u32>());
    let r = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => [a, b, c],
        _ => return Err("expected three integers: min default max"),
    };
    if !(r[0] <= r[1] && r[1] <= r[2]) || r[0] < 256 {
        return Err("expected min <= default <= max, min >= 256");
    }
    Ok(r)
}

fn port_range(v: &str) -> Result<[u16; 2], &'static str> {
    let mut it = v.split_whitespace().map(|x| x.parse::<u16>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), None) if 1 <= a && a <= b => Ok([a, b]),
        _ => Err("expected two ports: low high, 1 <= low <= high"),
    }
}

macro_rules! knob {
    ($name:literal, $field:ident, $parse:expr) => {
        Knob {
            name: $name,
            get: |c| c.$field.to_string(),
            set: |c, v| {
                c.$field = $parse(v)?;
                Ok(())
            },
        }
    };
    ($name:literal, bool $field:ident) => {
        Knob {
            name: $name,
            get: |c| u8::from(c.$field).to_string(),
            set: |c, v| {
                c.$field = boolean(v)?;
                Ok(())
            },
        }
    };
}

const KNOBS: &[Knob] = &[
    knob!("net.core.somaxconn", somaxconn, |v| int(
        v,
        0u32,
        i32::MAX as u32
    )),
    knob!("net.core.rmem_max", rmem_max, |v| int(
        v,
        256u32,
        i32::MAX as u32
    )),
    knob!(
        "net.ipv4.tcp_max_syn_backlog",
        tcp_max_syn_backlog,
        |v| int(v, 0u32, i32::MAX as u32)
    ),
    knob!("net.ipv4.tcp_syncookies", tcp_syncookies, |v| int(
        v, 0u8, 2
    )),
    knob!("net.ipv4.tcp_synack_retries", tcp_synack_retries, |v| int(
        v, 0u8, 127
    )),
    knob!("net.ipv4.tcp_syn_retries", tcp_syn_retries, |v| int(
        v, 1u8, 127
    )),
    knob!(
        "net.ipv4.tcp_syn_linear_timeouts",
        tcp_syn_linear_timeouts,
        |v| int(v, 0u8, 127)
    ),
    knob!("net.ipv4.tcp_abort_on_overflow", bool tcp_abort_on_overflow),
    knob!("net.ipv4.tcp_timestamps", tcp_timestamps, |v| int(
        v, 0u8, 2
    )),
    knob!("net.ipv4.tcp_window_scaling", bool tcp_window_scaling),
    knob!("net.ipv4.tcp_sack", bool tcp_sack),
    Knob {
        name: "net.ipv4.tcp_rmem",
        get: |c| format!("{}\t{}\t{}", c.tcp_rmem[0], c.tcp_rmem[1], c.tcp_rmem[2]),
        set: |c, v| {
            c.tcp_rmem = triple(v)?;
            Ok(())
        },
    },
    Knob {
        name: "net.ipv4.tcp_wmem",
        get: |c| format!("{}\t{}\t{}", c.tcp_wmem[0], c.tcp_wmem[1], c.tcp_wmem[2]),
        set: |c, v| {
            c.tcp_wmem = triple(v)?;
            Ok(())
        },
    },
    knob!("net.ipv4.tcp_fin_timeout", tcp_fin_timeout, |v| int(
        v, 1u32, 86_400
    )),
    knob!("net.ipv4.tcp_retries2", tcp_retries2, |v| int(v, 1u8, 127)),
    knob!(
        "net.ipv4.tcp_invalid_ratelimit",
        tcp_invalid_ratelimit_ms,
        |v| int(v, 0u32, 3_600_000)
    ),
    knob!("net.ipv4.tcp_max_tw_buckets", tcp_max_tw_buckets, |v| int(
        v,
        0u32,
        i32::MAX as u32
    )),
    knob!("net.ipv4.tcp_max_orphans", tcp_max_orphans, |v| int(
        v,
        0u32,
        i32::MAX as u32
    )),
    knob!("net.ipv4.tcp_migrate_req", bool tcp_migrate_req),
    Knob {
        name: "net.ipv4.ip_local_port_range",
        get: |c| format!("{}\t{}", c.ip_local_port_range[0], c.ip_local_port_range[1]),
        set: |c, v| {
            c.ip_local_port_range = port_range(v)?;
            Ok(())
        },
    },
    knob!("net.ipv4.ip_default_ttl", ip_default_ttl, |v| int(
        v, 1u8, 255
    )),
    knob!("synq.mtu", mtu, |v| int(v, 576u16, 65_535)),
    knob!("synq.max_connections", max_connections, |v| int(
        v,
        1u32,
        i32::MAX as u32
    )),
    knob!("synq.tx_queue_len", tx_queue_len, |v| int(v, 1u32, 1 << 24)),
    knob!("synq.listen_model", model, |v: &str| v.parse::<Model>()),
    knob!("synq.bsd_drop_incomplete", bool bsd_drop_incomplete),
    knob!("synq.tcp_metrics_entries", tcp_metrics_entries, |v| int(
        v,
        0u32,
        1 << 24
    )),
];

impl Config {
    /// Every sysctl name this stack knows, in table order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        KNOBS.iter().map(|k| k.name)
    }

    /// Set one sysctl by name, as `sysctl -w name=value` would.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SysctlError> {
        let knob = find(name)?;
        (knob.set)(self, value).map_err(|why| SysctlError::InvalidValue {
            name: knob.name.to_string(),
            value: value.to_string(),
            why,
        })
    }

    /// Read one sysctl by name, formatted as /proc/sys shows it.
    pub fn get(&self, name: &str) -> Result<String, SysctlError> {
        Ok((find(name)?.get)(self))
    }

    /// Parse `name=value` (the `sysctl -w` argument form) and set it.
    pub fn set_assignment(&mut self, assignment: &str) -> Result<(), SysctlError> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| SysctlError::BadLine {
                line: 1,
                text: assignment.to_string(),
            })?;
        self.set(name.trim(), value.trim())
    }

    /// Apply a file in sysctl.conf syntax: `name = value` lines, `#` or `;` comments, blank
    /// lines. A leading `-` on a name ignores an unknown name, as sysctl(8) does.
    pub fn apply_conf(&mut self, text: &str) -> Result<(), SysctlError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or_else(|| SysctlError::BadLine {
                line: i + 1,
                text: raw.to_string(),
            })?;
            let (name, optional) = match name.trim().strip_prefix('-') {
                Some(n) => (n, true),
                None => (name.trim(), false),
            };
            // sysctl accepts '/' as the separator too.
            let name = name.replace('/', ".");
            match self.set(&name, value.trim()) {
                Err(SysctlError::UnknownName(_)) if optional => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Effective SYN-sent retransmission delay after the `n`th transmission (0 = first SYN).
    pub(crate) fn syn_rto(&self, n: u32) -> crate::Duration {
        let linear = u32::from(self.tcp_syn_linear_timeouts);
        let shift = n.saturating_sub(linear).min(7);
        crate::Duration::from_secs(1u64 << shift).min(crate::conn::RTO_MAX)
    }
}

fn find(name: &str) -> Result<&'static Knob, SysctlError> {
    KNOBS
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| SysctlError::UnknownName(name.to_string()))
}

impl fmt::Display for Config {
    /// `sysctl -a` style listing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in KNOBS {
            writeln!(f, "{} = {}", k.name, (k.get)(self))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_linux() {
        let c = Config::default();
        assert_eq!(c.get("net.core.somaxconn").unwrap(), "4096");
        assert_eq!(c.get("net.ipv4.tcp_syncookies").unwrap(), "1");
        assert_eq!(c.get("net.ipv4.tcp_syn_retries").unwrap(), "6");
        assert_eq!(
            c.get("net.ipv4.tcp_rmem").unwrap(),
            "4096\t131072\t33554432"
        );
    }

    #[test]
    fn set_by_name_and_errors() {
        let mut c = Config::default();
        c.set("net.ipv4.tcp_syncookies", "2").unwrap();
        assert_eq!(c.tcp_syncookies, 2);
        assert!(matches!(
            c.set("net.ipv4.tcp_syncookies", "3"),
            Err(SysctlError::InvalidValue { .. })
        ));
        assert!(matches!(
            c.set("net.ipv4.nope", "1"),
            Err(SysctlError::UnknownName(_))
        ));
        assert!(c.set("net.ipv4.tcp_abort_on_overflow", "yes").is_err());
        c.set_assignment("net.core.somaxconn=128").unwrap();
        assert_eq!(c.somaxconn, 128);
        assert!(c.set("net.ipv4.tcp_rmem", "10 5 1").is_err());
    }

    #[test]
    fn conf_file() {
        let mut c = Config::default();
        c.apply_conf("# comment\n\nnet.ipv4.tcp_synack_retries = 2\n; x\n-net.ipv4.unknown = 1\nnet/core/somaxconn=7\n")
            .unwrap();
        assert_eq!((c.tcp_synack_retries, c.somaxconn), (2, 7));
        let e = c.apply_conf("net.core.somaxconn 5").unwrap_err();
        assert!(matches!(e, SysctlError::BadLine { line: 1, .. }));
        assert!(c.apply_conf("net.ipv4.unknown = 1").is_err());
    }

    #[test]
    fn every_knob_round_trips() {
        let c = Config::default();
        for name in Config::names() {
            let mut d = Config::default();
            let v = c.get(name).unwrap();
            d.set(name, &v).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c, d, "{name}");
        }
    }

    #[test]
    fn syn_schedule() {
        let mut c = Config::default();
        let gaps: Vec<u64> = (0..7).map(|n| c.syn_rto(n).total_millis() / 1000).collect();
        assert_eq!(gaps, [1, 1, 1, 1, 1, 2, 4]);
        c.tcp_syn_linear_timeouts = 0;
        let gaps: Vec<u64> = (0..7).map(|n| c.syn_rto(n).total_millis() / 1000).collect();
        assert_eq!(gaps, [1, 2, 4, 8, 16, 32, 64]);
    }
}
