//! Configuration by Linux sysctl name, with Linux defaults.
//!
//! Names, meanings and defaults follow Linux 6.x (`Documentation/networking/ip-sysctl.rst`);
//! `net.ipv4.*` TCP knobs apply to IPv6 too, as on Linux.

use crate::listener::Model;
use core::fmt;

/// `net.ipv4.tcp_syncookies`. Linux keeps a `u8`: 2 is "always", any other non-zero value
/// "when the SYN queue is full", and it reads back as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Syncookies {
    /// 0: never; a full SYN queue drops SYNs.
    Off,
    /// 1: a SYN that finds the SYN queue full is answered with a cookie.
    #[default]
    WhenFull,
    /// 2: every SYN is answered with a cookie; no request is stored.
    Always,
    /// 3 to 255: as `WhenFull`, kept to read back as written.
    Other(u8),
}

impl Syncookies {
    /// The meaning Linux gives a raw sysctl value.
    pub const fn from_raw(v: u8) -> Self {
        match v {
            0 => Self::Off,
            1 => Self::WhenFull,
            2 => Self::Always,
            v => Self::Other(v),
        }
    }
    /// The value as written.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Off => 0,
            Self::WhenFull => 1,
            Self::Always => 2,
            Self::Other(v) => v,
        }
    }
    /// Cookies may be sent at all.
    pub const fn on(self) -> bool {
        !matches!(self, Self::Off)
    }
}

impl fmt::Display for Syncookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw())
    }
}

/// `net.ipv4.tcp_timestamps`. Linux keeps a `u8`: 1 is "on with a per-peer offset", any
/// other non-zero value "on without", and it reads back as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TsMode {
    /// 0: no timestamps offered or accepted.
    Off,
    /// 1: timestamps, each connection with its own random offset (Linux
    /// `secure_tcp_seq_and_ts_off`).
    #[default]
    On,
    /// 2: timestamps straight from the clock.
    NoOffset,
    /// 3 to 255: as `NoOffset`, kept to read back as written.
    Other(u8),
}

impl TsMode {
    /// The meaning Linux gives a raw sysctl value.
    pub const fn from_raw(v: u8) -> Self {
        match v {
            0 => Self::Off,
            1 => Self::On,
            2 => Self::NoOffset,
            v => Self::Other(v),
        }
    }
    /// The value as written.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Off => 0,
            Self::On => 1,
            Self::NoOffset => 2,
            Self::Other(v) => v,
        }
    }
    /// Timestamps are offered and accepted.
    pub const fn on(self) -> bool {
        !matches!(self, Self::Off)
    }
}

impl fmt::Display for TsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw())
    }
}

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
    /// A `sysctl -w` argument is not `name=value`.
    #[error("expected NAME=VALUE, got {0:?}")]
    BadAssignment(String),
    /// A sysctl.conf line whose value was refused.
    #[error("line {line}: {error}")]
    OnLine {
        /// 1-based line number.
        line: usize,
        /// Why it was refused.
        error: Box<Self>,
    },
}

/// A sysctl.conf line naming a sysctl this stack does not model (`vm.swappiness`, say):
/// [`Config::apply_conf`] skips it, as `sysctl -p` goes on past a name the kernel lacks, and
/// returns it so the caller can warn or refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownSysctl {
    /// 1-based line number.
    pub line: usize,
    /// The name, `/` separators turned into dots.
    pub name: String,
}

/// Every tunable of a stack. Field docs give the sysctl name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `net.core.somaxconn`: listen() backlog clamp (4096 since Linux 5.4).
    pub somaxconn: u32,
    /// `net.ipv4.tcp_max_syn_backlog`: SYN-queue heuristic knob. Linux sizes it from memory
    /// (max(128, ehash_entries/128)); 2048 is what the reference test VM shows. An `int` in
    /// Linux, negative values included.
    pub tcp_max_syn_backlog: i32,
    /// `net.ipv4.tcp_syncookies`: 0 never, 1 when the SYN queue overflows, 2 always.
    pub tcp_syncookies: Syncookies,
    /// `net.ipv4.tcp_synack_retries`: SYN-ACK retransmissions for a half-open request.
    pub tcp_synack_retries: u8,
    /// `net.ipv4.tcp_syn_retries`: SYN retransmissions before connect() fails.
    pub tcp_syn_retries: u8,
    /// `net.ipv4.tcp_syn_linear_timeouts`: SYN retransmissions that keep the initial 1 s RTO.
    pub tcp_syn_linear_timeouts: u8,
    /// `net.ipv4.tcp_abort_on_overflow`: RST instead of dropping a final ACK on overflow.
    /// Linux keeps a `u8` and tests it for non-zero: 0 to 255 are accepted, shown as 0 or 1.
    pub tcp_abort_on_overflow: bool,
    /// `net.ipv4.tcp_timestamps`: RFC 7323 timestamps (0 off, 1 on with per-peer offsets,
    /// 2 on without offsets).
    pub tcp_timestamps: TsMode,
    /// `net.ipv4.tcp_window_scaling`: RFC 7323 window scaling (any non-zero `u8` is on).
    pub tcp_window_scaling: bool,
    /// `net.ipv4.tcp_sack`: advertise SACK-permitted and send SACK blocks (any non-zero `u8`
    /// is on).
    pub tcp_sack: bool,
    /// `net.ipv4.tcp_recovery`: bit 1 RACK loss detection (else RFC 6675 DupThresh), bit 2
    /// a static RACK reordering window, bit 4 no DupThresh shortcut for RACK.
    pub tcp_recovery: i32,
    /// `net.ipv4.tcp_reordering`: segments of reordering assumed at first.
    pub tcp_reordering: i32,
    /// `net.ipv4.tcp_max_reordering`: the most segments of reordering adapted to.
    pub tcp_max_reordering: i32,
    /// `net.ipv4.tcp_moderate_rcvbuf`: grow receive buffers up to `tcp_rmem[2]` as the
    /// application reads (autotuning).
    pub tcp_moderate_rcvbuf: bool,
    /// `net.ipv4.tcp_congestion_control`: the algorithm new connections start with.
    pub tcp_congestion_control: crate::congestion::Algorithm,
    /// `net.ipv4.tcp_dsack`: report duplicate segments in a DSACK block (RFC 2883).
    pub tcp_dsack: bool,
    /// `net.ipv4.tcp_frto`: F-RTO (RFC 5682, SACK-enhanced) after an RTO; non-zero is on
    /// (Linux keeps a `u8` and reads it as a switch).
    pub tcp_frto: u8,
    /// `net.ipv4.tcp_rmem`: min, default, max receive buffer bytes. The max is
    /// memory-dependent on Linux (32 MiB on a 24 GiB 6.18 machine); with `net.core.rmem_max`
    /// it sets the window scale we offer.
    pub tcp_rmem: [u32; 3],
    /// `net.core.rmem_max`: largest receive buffer an application may set (4 MiB on 6.18).
    pub rmem_max: u32,
    /// `net.ipv4.tcp_wmem`: min, default, max send buffer bytes.
    pub tcp_wmem: [u32; 3],
    /// `net.ipv4.tcp_fin_timeout`: seconds an orphaned FIN_WAIT_2 connection lingers, at
    /// least 3.5 RTO (Linux `tcp_fin_time`; so zero and negative values, which Linux accepts,
    /// mean 3.5 RTO).
    pub tcp_fin_timeout: i32,
    /// `net.ipv4.tcp_retries2`: data retransmissions before a connection times out.
    pub tcp_retries2: u8,
    /// `net.ipv4.tcp_orphan_retries`: RTOs before an orphaned connection gives up (0: 8).
    pub tcp_orphan_retries: u8,
    /// `net.ipv4.tcp_keepalive_time`: idle seconds before the first keepalive probe.
    pub tcp_keepalive_time: i32,
    /// `net.ipv4.tcp_keepalive_intvl`: seconds between keepalive probes.
    pub tcp_keepalive_intvl: i32,
    /// `net.ipv4.tcp_keepalive_probes`: unanswered probes before ETIMEDOUT.
    pub tcp_keepalive_probes: u8,
    /// `net.ipv4.tcp_invalid_ratelimit`: ms between replies to invalid segments
    /// (challenge ACKs, duplicate SYNs, out-of-window ACKs).
    pub tcp_invalid_ratelimit_ms: u32,
    /// `net.ipv4.tcp_challenge_ack_limit`: RFC 5961 challenge ACKs a second, host-wide;
    /// `i32::MAX` (Linux 6.x's default) is no limit beyond the per-connection one.
    pub tcp_challenge_ack_limit: i32,
    /// `net.ipv4.tcp_max_tw_buckets`: TIME_WAIT sockets held at most; beyond, none is kept
    /// (memory-dependent on Linux: 131072 on a 24 GiB machine; an `int`, and a negative value
    /// keeps none, as zero does).
    pub tcp_max_tw_buckets: i32,
    /// `net.ipv4.tcp_max_orphans`: connections closed by the application but still open
    /// (memory-dependent on Linux: 131072 on a 24 GiB machine).
    pub tcp_max_orphans: u32,
    /// `net.ipv4.tcp_migrate_req`: reuseport request migration (kept for name fidelity).
    pub tcp_migrate_req: bool,
    /// `net.ipv4.ip_local_port_range`: ephemeral ports for connect(). Linux refuses a range
    /// that starts below `ip_unprivileged_port_start`.
    pub ip_local_port_range: [u16; 2],
    /// `net.ipv4.ip_unprivileged_port_start`: the first port outside the privileged range.
    /// synq binds no privileges to it; it bounds `ip_local_port_range` as in Linux, which
    /// refuses either knob where the ephemeral range would start below it.
    pub ip_unprivileged_port_start: u16,
    /// `net.ipv4.ip_default_ttl`: TTL / hop limit of emitted packets.
    pub ip_default_ttl: u8,
    /// `synq.mtu`: link MTU, from which the advertised MSS is derived (no Linux sysctl).
    pub mtu: u16,
    /// `synq.max_connections`: bound on the connection table (Linux bounds it by memory).
    pub max_connections: u32,
    /// `synq.tx_queue_len`: stateless replies (RST, SYN-ACK) waiting for `poll_transmit`.
    pub tx_queue_len: u32,
    /// `synq.listen_model`: the backlog semantics (`linux`, `linux-4.10`, `bsd`,
    /// `bsd-exact`, `freebsd`).
    pub model: Model,
    /// `synq.bsd_drop_incomplete`: single-queue models drop a random half-open connection to
    /// admit a SYN when full (FreeBSD 2.2-4.x and XNU `sodropablereq`).
    pub bsd_drop_incomplete: bool,
    /// `synq.bsd_insecure_rst` (FreeBSD `net.inet.tcp.insecure_rst`): single-queue models
    /// accept an RST anywhere in the window, to a connection or a half-open one, instead of
    /// RFC 5961's exact match and challenge ACK.
    pub bsd_insecure_rst: bool,
    /// `synq.bsd_drop_synfin` (FreeBSD `net.inet.tcp.drop_synfin`): single-queue models drop
    /// a SYN with FIN set; without it they take it as a SYN, as BSD does (Linux always drops
    /// it).
    pub bsd_drop_synfin: bool,
    /// `kern.ipc.somaxconn` (alias `kern.ipc.soacceptqueue`): the FreeBSD model's listen()
    /// clamp (FreeBSD's SOMAXCONN, 128).
    pub kern_ipc_somaxconn: u32,
    /// `net.inet.tcp.syncookies`: the FreeBSD model makes every ISS a cookie, and answers
    /// with cookies alone when the syncache overflows.
    pub freebsd_syncookies: bool,
    /// `net.inet.tcp.syncookies_only`: the FreeBSD model keeps no syncache entries at all.
    pub freebsd_syncookies_only: bool,
    /// `net.inet.tcp.syncache.hashsize`: syncache buckets (a power of two; a boot tunable
    /// in FreeBSD, read here when the first entry is stored).
    pub syncache_hashsize: u32,
    /// `net.inet.tcp.syncache.bucketlimit`: entries per bucket before the oldest is evicted.
    pub syncache_bucketlimit: u32,
    /// `net.inet.tcp.syncache.cachelimit`: entries in the whole syncache.
    pub syncache_cachelimit: u32,
    /// `net.inet.tcp.syncache.rexmtlimit`: SYN-ACK retransmissions before an entry goes.
    pub syncache_rexmtlimit: u8,
    /// `net.inet.tcp.syncache.rst_on_sock_fail`: a final ACK the listen queue cannot take
    /// is answered with RST (else dropped).
    pub syncache_rst_on_sock_fail: bool,
    /// `synq.tcp_metrics_entries`: peers whose RTT is remembered (Linux's tcp_metrics
    /// table, consulted by the `tcp_max_syn_backlog` quarter rule).
    pub tcp_metrics_entries: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            somaxconn: 4096,
            tcp_max_syn_backlog: 2048,
            tcp_syncookies: Syncookies::WhenFull,
            tcp_synack_retries: 5,
            tcp_syn_retries: 6,
            tcp_syn_linear_timeouts: 4,
            tcp_abort_on_overflow: false,
            tcp_timestamps: TsMode::On,
            tcp_window_scaling: true,
            tcp_sack: true,
            tcp_dsack: true,
            tcp_frto: 2,
            tcp_moderate_rcvbuf: true,
            tcp_recovery: 1,
            tcp_reordering: 3,
            tcp_max_reordering: 300,
            tcp_congestion_control: crate::congestion::Algorithm::Cubic,
            tcp_rmem: [4096, 131_072, 33_554_432],
            rmem_max: 4_194_304,
            tcp_wmem: [4096, 16_384, 4_194_304],
            tcp_fin_timeout: 60,
            tcp_retries2: 15,
            tcp_orphan_retries: 0,
            tcp_keepalive_time: 7200,
            tcp_keepalive_intvl: 75,
            tcp_keepalive_probes: 9,
            tcp_invalid_ratelimit_ms: 500,
            tcp_challenge_ack_limit: i32::MAX,
            tcp_max_tw_buckets: 131_072,
            tcp_max_orphans: 131_072,
            tcp_migrate_req: false,
            ip_local_port_range: [32768, 60999],
            ip_unprivileged_port_start: 1024,
            ip_default_ttl: 64,
            mtu: 1500,
            max_connections: 1_000_000,
            tx_queue_len: 65_536,
            model: Model::Linux,
            bsd_drop_incomplete: false,
            bsd_insecure_rst: false,
            bsd_drop_synfin: false,
            kern_ipc_somaxconn: 128,
            freebsd_syncookies: true,
            freebsd_syncookies_only: false,
            syncache_hashsize: 512,
            syncache_bucketlimit: 30,
            syncache_cachelimit: 15_360,
            syncache_rexmtlimit: 3,
            syncache_rst_on_sock_fail: true,
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

/// An integer as the kernel's `proc_get_long` reads one: blanks around it, an optional
/// `-`, then hex after `0x`, octal after a leading `0`, else decimal (`strtoul`, base 0);
/// no `+`, nothing after it. The sign and the magnitude.
fn kernel_long(v: &str) -> Option<(bool, u64)> {
    let s = v.trim_matches([' ', '\t', '\n']);
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (radix, digits) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (16, hex),
        None if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        None => (10, s),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(|m| (neg, m))
}

fn int<T: TryFrom<i128> + PartialOrd + Copy>(v: &str, lo: T, hi: T) -> Result<T, &'static str> {
    let (neg, m) = kernel_long(v).ok_or("not an integer")?;
    // The u8 knobs are `proc_dou8vec_minmax`, which refuses any sign, "-0" too.
    if neg && size_of::<T>() == 1 {
        return Err("out of range");
    }
    let x = if neg { -i128::from(m) } else { i128::from(m) };
    let x = T::try_from(x).map_err(|_| "out of range")?;
    if x < lo || x > hi {
        return Err("out of range");
    }
    Ok(x)
}

fn boolean(v: &str) -> Result<bool, &'static str> {
    int(v, 0u8, 1)
        .map(|x| x == 1)
        .map_err(|_| "expected 0 or 1")
}

/// A Linux `u8` switch (`proc_dou8vec_minmax` without bounds): 0 to 255, on when non-zero.
fn switch(v: &str) -> Result<bool, &'static str> {
    int(v, 0u8, 255)
        .map(|x| x != 0)
        .map_err(|_| "expected an integer from 0 to 255")
}

/// `tcp_rmem` / `tcp_wmem`: three `int`s of at least 1, in any order, as Linux accepts them
/// (`proc_dointvec_minmax` with a floor of one, no ordering check).
fn triple(v: &str) -> Result<[u32; 3], &'static str> {
    let mut it = v.split_whitespace().map(|x| int(x, 0u32, u32::MAX));
    let r = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => [a, b, c],
        _ => return Err("expected three integers: min default max"),
    };
    if r.iter().any(|&x| x < 1 || x > i32::MAX as u32) {
        return Err("expected each from 1 to 2147483647");
    }
    Ok(r)
}

fn port_range(v: &str) -> Result<[u16; 2], &'static str> {
    let mut it = v.split_whitespace().map(|x| int(x, 0u16, u16::MAX));
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
        knob!($name, bool $field, boolean)
    };
    ($name:literal, bool $field:ident, $parse:expr) => {
        Knob {
            name: $name,
            get: |c| u8::from(c.$field).to_string(),
            set: |c, v| {
                c.$field = $parse(v)?;
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
        |v| int(v, i32::MIN, i32::MAX)
    ),
    // Linux keeps a u8 without bounds; 2 is "always", any other non-zero "when needed".
    knob!("net.ipv4.tcp_syncookies", tcp_syncookies, |v| int(
        v, 0u8, 255
    )
    .map(Syncookies::from_raw)),
    knob!("net.ipv4.tcp_synack_retries", tcp_synack_retries, |v| int(
        v, 0u8, 255
    )),
    knob!("net.ipv4.tcp_syn_retries", tcp_syn_retries, |v| int(
        v, 1u8, 127
    )),
    knob!(
        "net.ipv4.tcp_syn_linear_timeouts",
        tcp_syn_linear_timeouts,
        |v| int(v, 0u8, 127)
    ),
    knob!("net.ipv4.tcp_abort_on_overflow", bool tcp_abort_on_overflow, switch),
    // A u8 in Linux: 1 is "on with per-peer offsets", any other non-zero "on without".
    knob!("net.ipv4.tcp_timestamps", tcp_timestamps, |v| int(
        v, 0u8, 255
    )
    .map(TsMode::from_raw)),
    knob!("net.ipv4.tcp_window_scaling", bool tcp_window_scaling, switch),
    knob!("net.ipv4.tcp_sack", bool tcp_sack, switch),
    knob!("net.ipv4.tcp_dsack", bool tcp_dsack, switch),
    knob!("net.ipv4.tcp_frto", tcp_frto, |v| int(v, 0u8, 255)),
    knob!("net.ipv4.tcp_moderate_rcvbuf", bool tcp_moderate_rcvbuf, switch),
    knob!("net.ipv4.tcp_recovery", tcp_recovery, |v| int(
        v,
        i32::MIN,
        i32::MAX
    )),
    knob!("net.ipv4.tcp_reordering", tcp_reordering, |v| int(
        v,
        i32::MIN,
        i32::MAX
    )),
    knob!("net.ipv4.tcp_max_reordering", tcp_max_reordering, |v| int(
        v,
        i32::MIN,
        i32::MAX
    )),
    Knob {
        name: "net.ipv4.tcp_congestion_control",
        get: |c| c.tcp_congestion_control.name().to_string(),
        set: |c, v| {
            c.tcp_congestion_control = v.parse()?;
            Ok(())
        },
    },
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
    // Seconds kept in jiffies (`proc_dointvec_jiffies`): within INT_MAX / HZ either way,
    // HZ = 100 being the widest a kernel accepts.
    knob!("net.ipv4.tcp_fin_timeout", tcp_fin_timeout, |v| int(
        v,
        -(i32::MAX / 100),
        i32::MAX / 100
    )),
    knob!("net.ipv4.tcp_retries2", tcp_retries2, |v| int(v, 0u8, 255)),
    knob!("net.ipv4.tcp_orphan_retries", tcp_orphan_retries, |v| int(
        v, 0u8, 255
    )),
    // Seconds kept in jiffies, as tcp_fin_timeout.
    knob!("net.ipv4.tcp_keepalive_time", tcp_keepalive_time, |v| int(
        v,
        -(i32::MAX / 100),
        i32::MAX / 100
    )),
    knob!(
        "net.ipv4.tcp_keepalive_intvl",
        tcp_keepalive_intvl,
        |v| int(v, -(i32::MAX / 100), i32::MAX / 100)
    ),
    knob!("net.ipv4.tcp_keepalive_probes", tcp_keepalive_probes, |v| {
        int(v, 0u8, 255)
    }),
    // Milliseconds kept in jiffies: a kernel reads back a little more than INT_MAX.
    knob!(
        "net.ipv4.tcp_invalid_ratelimit",
        tcp_invalid_ratelimit_ms,
        |v| int(v, 0u32, u32::MAX)
    ),
    knob!(
        "net.ipv4.tcp_challenge_ack_limit",
        tcp_challenge_ack_limit,
        |v| int(v, i32::MIN, i32::MAX)
    ),
    knob!("net.ipv4.tcp_max_tw_buckets", tcp_max_tw_buckets, |v| int(
        v,
        i32::MIN,
        i32::MAX
    )),
    knob!("net.ipv4.tcp_max_orphans", tcp_max_orphans, |v| int(
        v,
        0u32,
        i32::MAX as u32
    )),
    knob!("net.ipv4.tcp_migrate_req", bool tcp_migrate_req),
    Knob {
        name: "net.ipv4.ip_unprivileged_port_start",
        get: |c| c.ip_unprivileged_port_start.to_string(),
        set: |c, v| {
            let p = int(v, 0u16, 65_535)?;
            // Linux `ipv4_privileged_ports`.
            if p > c.ip_local_port_range[0] {
                return Err("must not exceed the start of net.ipv4.ip_local_port_range");
            }
            c.ip_unprivileged_port_start = p;
            Ok(())
        },
    },
    Knob {
        name: "net.ipv4.ip_local_port_range",
        get: |c| format!("{}\t{}", c.ip_local_port_range[0], c.ip_local_port_range[1]),
        set: |c, v| {
            let r = port_range(v)?;
            // Linux `ipv4_local_port_range`.
            if r[0] < c.ip_unprivileged_port_start {
                return Err("must start at or above net.ipv4.ip_unprivileged_port_start");
            }
            c.ip_local_port_range = r;
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
    knob!("synq.bsd_insecure_rst", bool bsd_insecure_rst),
    knob!("synq.bsd_drop_synfin", bool bsd_drop_synfin),
    // FreeBSD's names, read by the bsd and freebsd models.
    knob!("net.inet.tcp.drop_synfin", bool bsd_drop_synfin, switch),
    knob!("net.inet.tcp.insecure_rst", bool bsd_insecure_rst, switch),
    knob!("kern.ipc.somaxconn", kern_ipc_somaxconn, |v| int(
        v,
        1u32,
        u32::MAX / 3
    )),
    knob!("kern.ipc.soacceptqueue", kern_ipc_somaxconn, |v| int(
        v,
        1u32,
        u32::MAX / 3
    )),
    knob!("net.inet.tcp.syncookies", bool freebsd_syncookies, switch),
    knob!("net.inet.tcp.syncookies_only", bool freebsd_syncookies_only, switch),
    knob!("net.inet.tcp.syncache.hashsize", syncache_hashsize, |v| {
        int(v, 1u32, 1 << 20).and_then(|x| {
            if x.is_power_of_two() {
                Ok(x)
            } else {
                Err("expected a power of two")
            }
        })
    }),
    knob!(
        "net.inet.tcp.syncache.bucketlimit",
        syncache_bucketlimit,
        |v| int(v, 1u32, 1 << 20)
    ),
    knob!(
        "net.inet.tcp.syncache.cachelimit",
        syncache_cachelimit,
        |v| int(v, 1u32, 1 << 24)
    ),
    knob!(
        "net.inet.tcp.syncache.rexmtlimit",
        syncache_rexmtlimit,
        |v| int(v, 0u8, 12)
    ),
    knob!(
        "net.inet.tcp.syncache.rst_on_sock_fail",
        bool syncache_rst_on_sock_fail,
        switch
    ),
    knob!("synq.tcp_metrics_entries", tcp_metrics_entries, |v| int(
        v,
        0u32,
        1 << 24
    )),
];

impl Config {
    /// Whether `conns` connections and `requests` half-open requests fill the table that
    /// `synq.max_connections` bounds (a request holds a place as a connection does): the
    /// one test both the active and the passive side apply before adding an entry.
    pub(crate) fn table_full(&self, conns: usize, requests: usize) -> bool {
        conns + requests >= self.max_connections as usize
    }

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

    /// Parse `name=value` (the `sysctl -w` argument form; `/` may separate the name's
    /// parts, as procps takes it) and set it.
    pub fn set_assignment(&mut self, assignment: &str) -> Result<(), SysctlError> {
        let (name, value) = assignment
            .split_once('=')
            .filter(|(n, _)| !n.trim().is_empty())
            .ok_or_else(|| SysctlError::BadAssignment(assignment.to_string()))?;
        self.set(&name.trim().replace('/', "."), value.trim())
    }

    /// Apply a file in sysctl.conf syntax: `name = value` lines, `#` or `;` comments, blank
    /// lines. Names this stack does not model are skipped and returned, in file order; a
    /// line whose name starts with `-` may fail without a word, as sysctl.conf(5) says (an
    /// unknown name or a bad value on it is skipped and not returned). A malformed line or a
    /// bad value for a known name is an error.
    pub fn apply_conf(&mut self, text: &str) -> Result<Vec<UnknownSysctl>, SysctlError> {
        let mut unknown = Vec::new();
        // An editor's byte-order mark is not part of the first name.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .filter(|(n, _)| !n.trim().trim_start_matches('-').trim().is_empty())
                .ok_or_else(|| SysctlError::BadLine {
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
                Err(_) if optional => {}
                Err(SysctlError::UnknownName(_)) => {
                    unknown.push(UnknownSysctl { line: i + 1, name })
                }
                Err(e) => {
                    return Err(SysctlError::OnLine {
                        line: i + 1,
                        error: Box::new(e),
                    })
                }
                Ok(()) => {}
            }
        }
        Ok(unknown)
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
        assert_eq!(c.tcp_syncookies, Syncookies::Always);
        // Linux takes any u8 (3 acts as 1); 256 is out of range.
        assert!(matches!(
            c.set("net.ipv4.tcp_syncookies", "256"),
            Err(SysctlError::InvalidValue { .. })
        ));
        assert!(matches!(
            c.set("net.ipv4.nope", "1"),
            Err(SysctlError::UnknownName(_))
        ));
        assert!(c.set("net.ipv4.tcp_abort_on_overflow", "yes").is_err());
        c.set_assignment("net.core.somaxconn=128").unwrap();
        assert_eq!(c.somaxconn, 128);
        assert!(c.set("net.ipv4.tcp_rmem", "10 5 0").is_err());
    }

    #[test]
    fn conf_file() {
        let mut c = Config::default();
        c.apply_conf("# comment\n\nnet.ipv4.tcp_synack_retries = 2\n; x\n-net.ipv4.unknown = 1\nnet/core/somaxconn=7\n")
            .unwrap();
        assert_eq!((c.tcp_synack_retries, c.somaxconn), (2, 7));
        let e = c.apply_conf("net.core.somaxconn 5").unwrap_err();
        assert!(matches!(e, SysctlError::BadLine { line: 1, .. }));
        assert!(c.apply_conf("net.ipv4.tcp_syncookies = 256").is_err());
    }

    #[test]
    fn conf_file_errors_name_their_line() {
        let mut c = Config::default();
        let e = c
            .apply_conf("# ok\nnet.core.somaxconn = 9\nnet.core.somaxconn = -5\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("line 3: invalid value"), "{e}");
        // A name that is empty (or only the `-` prefix) makes a malformed line.
        for text in ["= 5\n", "  - = 5\n"] {
            let e = Config::default().apply_conf(text).unwrap_err();
            assert!(
                matches!(e, SysctlError::BadLine { line: 1, .. }),
                "{text:?}: {e}"
            );
        }
        // A byte-order mark at the start is not part of the first name.
        let mut c = Config::default();
        let unknown = c.apply_conf("\u{feff}net.core.somaxconn = 7\n").unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(c.somaxconn, 7);
        // `sysctl -w` takes either separator; a bare name is not an assignment.
        c.set_assignment("net/core/somaxconn=11").unwrap();
        assert_eq!(c.somaxconn, 11);
        for bad in ["net.core.somaxconn", "=5"] {
            assert!(
                matches!(c.set_assignment(bad), Err(SysctlError::BadAssignment(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn conf_file_skips_and_returns_unknown_names() {
        let mut c = Config::default();
        let text = "vm.swappiness = 10\nnet.core.somaxconn = 9\n-kernel.nope = 1\n\
                    -net.ipv4.tcp_syncookies = 300\nkernel/sysrq = 0\n";
        let unknown = c.apply_conf(text).unwrap();
        assert_eq!(c.somaxconn, 9);
        assert_eq!(
            c.tcp_syncookies,
            Syncookies::WhenFull,
            "a failing `-` line changes nothing"
        );
        let names: Vec<(usize, &str)> = unknown.iter().map(|u| (u.line, &*u.name)).collect();
        assert_eq!(names, [(1, "vm.swappiness"), (5, "kernel.sysrq")]);
    }

    #[test]
    fn integers_are_read_as_the_kernel_reads_them() {
        // `proc_get_long`: base 0 (hex, octal, decimal), blanks around, no `+`; the u8
        // knobs refuse a sign. `kernel_facts.rs` checks these against the host kernel.
        let read = |name: &str, v: &str| {
            let mut c = Config::default();
            c.set(name, v).ok().map(|()| c.get(name).unwrap())
        };
        let somaxconn = "net.core.somaxconn";
        let cookies = "net.ipv4.tcp_syncookies";
        let cases = [
            (somaxconn, "0x10", Some("16")),
            (somaxconn, "0X1f", Some("31")),
            (somaxconn, "010", Some("8")),
            (somaxconn, " 16\n", Some("16")),
            (somaxconn, "-0", Some("0")),
            (cookies, "0x2", Some("2")),
            (cookies, "-0", None),
            ("net.ipv4.tcp_fin_timeout", "-0x10", Some("-16")),
            (
                "net.ipv4.tcp_wmem",
                "0x1000 010 4096",
                Some("4096\t8\t4096"),
            ),
            ("net.ipv4.tcp_window_scaling", " 0x0 ", Some("0")),
            ("net.ipv4.tcp_migrate_req", "0x1", Some("1")),
        ];
        for (name, v, want) in cases {
            assert_eq!(read(name, v).as_deref(), want, "{name} = {v:?}");
        }
        for bad in [
            "+16",
            "08",
            "0x",
            "1_0",
            "16k",
            "- 1",
            "",
            "99999999999999999999",
        ] {
            assert_eq!(read(somaxconn, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ranges_are_linux_6_18s() {
        // Every value a 6.18 kernel takes with `sysctl -w` (checked in a fresh network
        // namespace), and the first it refuses on either side. Two builds differ: 6.18.44
        // (stop 29's machine) refuses a tcp_rmem value below 4096, where the kernel's table
        // (`extra1 = SYSCTL_ONE`) and the 6.18 build these were first checked on take 1, and
        // a tcp_invalid_ratelimit above i32::MAX, which that build took; synq keeps the
        // first build's bounds. `kernel_facts.rs` checks the rest against the host kernel.
        let ok = [
            ("net.ipv4.tcp_synack_retries", "255"),
            ("net.ipv4.tcp_syn_retries", "127"),
            ("net.ipv4.tcp_syncookies", "255"),
            ("net.ipv4.tcp_timestamps", "3"),
            ("net.ipv4.tcp_abort_on_overflow", "255"),
            ("net.ipv4.tcp_sack", "2"),
            ("net.ipv4.tcp_frto", "255"),
            ("net.ipv4.tcp_window_scaling", "2"),
            ("net.ipv4.tcp_retries2", "0"),
            ("net.ipv4.tcp_retries2", "255"),
            ("net.ipv4.tcp_max_syn_backlog", "-2147483648"),
            ("net.ipv4.tcp_max_tw_buckets", "-1"),
            ("net.ipv4.tcp_fin_timeout", "-1"),
            ("net.ipv4.tcp_fin_timeout", "0"),
            ("net.ipv4.tcp_fin_timeout", "8589934"),
            ("net.ipv4.tcp_invalid_ratelimit", "2147483648"),
            ("net.ipv4.tcp_challenge_ack_limit", "-2147483648"),
            ("net.ipv4.tcp_challenge_ack_limit", "0"),
            ("net.ipv4.tcp_rmem", "1 1 1"),
            ("net.ipv4.tcp_wmem", "10 5 1"),
            ("net.ipv4.ip_local_port_range", "1024 1024"),
            ("net.ipv4.ip_local_port_range", "1024 65535"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
            ("net.ipv4.ip_unprivileged_port_start", "32768"),
        ];
        for (name, v) in ok {
            let mut c = Config::default();
            c.set(name, v).unwrap_or_else(|e| panic!("{e}"));
        }
        let refused = [
            ("net.ipv4.tcp_synack_retries", "256"),
            ("net.ipv4.tcp_syn_retries", "0"),
            ("net.ipv4.tcp_syn_retries", "128"),
            ("net.ipv4.tcp_syncookies", "256"),
            ("net.ipv4.tcp_sack", "256"),
            ("net.ipv4.tcp_frto", "256"),
            ("net.ipv4.tcp_frto", "-1"),
            ("net.ipv4.tcp_migrate_req", "2"),
            ("net.ipv4.tcp_syn_linear_timeouts", "128"),
            ("net.ipv4.tcp_invalid_ratelimit", "-1"),
            ("net.ipv4.tcp_challenge_ack_limit", "2147483648"),
            ("net.ipv4.tcp_rmem", "0 0 0"),
            ("net.ipv4.tcp_rmem", "1 1 2147483648"),
            ("net.core.somaxconn", "-1"),
            ("net.ipv4.ip_default_ttl", "0"),
            ("net.ipv4.ip_local_port_range", "0 5"),
            ("net.ipv4.ip_local_port_range", "5000 4000"),
            // Below ip_unprivileged_port_start (1024).
            ("net.ipv4.ip_local_port_range", "1023 1024"),
            ("net.ipv4.ip_local_port_range", "1 1"),
            // Above the start of ip_local_port_range (32768).
            ("net.ipv4.ip_unprivileged_port_start", "32769"),
            ("net.ipv4.ip_unprivileged_port_start", "-1"),
            ("net.ipv4.ip_unprivileged_port_start", "65536"),
        ];
        for (name, v) in refused {
            let mut c = Config::default();
            assert!(c.set(name, v).is_err(), "{name} = {v}");
        }
        let mut c = Config::default();
        c.set("net.ipv4.tcp_abort_on_overflow", "2").unwrap();
        assert!(c.tcp_abort_on_overflow, "non-zero is on, as in Linux");
        // The two port knobs bound each other, so order matters, as with `sysctl -w`.
        let mut c = Config::default();
        assert!(c.set("net.ipv4.ip_local_port_range", "100 200").is_err());
        c.set("net.ipv4.ip_unprivileged_port_start", "0").unwrap();
        c.set("net.ipv4.ip_local_port_range", "100 200").unwrap();
        assert!(c.set("net.ipv4.ip_unprivileged_port_start", "101").is_err());
        let mut c = Config::default();
        assert!(c
            .set("net.ipv4.ip_unprivileged_port_start", "40000")
            .is_err());
        c.set("net.ipv4.ip_local_port_range", "50000 60000")
            .unwrap();
        c.set("net.ipv4.ip_unprivileged_port_start", "40000")
            .unwrap();
        assert_eq!(c.ip_unprivileged_port_start, 40000);
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
