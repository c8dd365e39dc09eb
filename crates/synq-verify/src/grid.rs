//! The experiments: [`Point`]s, the fixed [`quick`] grid, the seeded [`random`] one, and the
//! timing rule that keeps every report time clear of the instants real time could blur.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// Which backlog experiment, with its own inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Scenario {
    /// `synq sim overflow`: `clients` connect 1 ms apart to a listener that does not accept.
    Overflow {
        /// listen() backlog (any int: the kernel clamps it).
        backlog: i32,
        /// Kernel clients, each connecting once.
        clients: u32,
        /// Drain the accept queue after the report and count what accept() returned.
        accept_after: bool,
    },
    /// `synq sim synflood`: `syns` spoofed SYNs that nobody completes.
    Synflood {
        /// listen() backlog.
        backlog: i32,
        /// SYNs, each from its own address and port.
        syns: u32,
        /// SYNs per second (None: all at once).
        rate: Option<f64>,
    },
}

/// One experiment: a scenario, the sysctls of every namespace (Linux names), and when the
/// state is reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The scenario and its inputs.
    pub scenario: Scenario,
    /// Sysctls set in every namespace (server and clients) before the run.
    pub sysctls: Vec<(String, i64)>,
    /// Report time, milliseconds after the first client or SYN.
    pub duration_ms: u32,
}

/// Gap between successive clients' connect() in `overflow` (the CLI's default).
pub const CLIENT_GAP_MS: u32 = 1;
/// Most SYNs of a flood (the kernel side's limit: distinct 10.99.x.y sources).
pub const MAX_SYNS: u32 = 55_000;
/// Most clients of an overflow run (each is a socket of one process).
pub const MAX_CLIENTS: u32 = 500;
/// Longest report time.
pub const MAX_DURATION_MS: u32 = 60_000;
/// Highest paced flood rate (SYNs per second).
pub const MAX_RATE: f64 = 100_000.0;
/// Points [`full`] adds to [`quick`].
pub const RANDOM_POINTS: usize = 40;

const SOMAXCONN: &str = "net.core.somaxconn";
const MAX_SYN_BACKLOG: &str = "net.ipv4.tcp_max_syn_backlog";
const SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";
const ABORT_ON_OVERFLOW: &str = "net.ipv4.tcp_abort_on_overflow";
const SYNACK_RETRIES: &str = "net.ipv4.tcp_synack_retries";

impl Point {
    /// The listen() backlog.
    pub fn backlog(&self) -> i32 {
        match self.scenario {
            Scenario::Overflow { backlog, .. } | Scenario::Synflood { backlog, .. } => backlog,
        }
    }

    /// `overflow` or `synflood`.
    pub fn scenario_name(&self) -> &'static str {
        match self.scenario {
            Scenario::Overflow { .. } => "overflow",
            Scenario::Synflood { .. } => "synflood",
        }
    }

    /// The report time in seconds.
    pub fn duration_secs(&self) -> f64 {
        f64::from(self.duration_ms) / 1000.0
    }

    /// Why this point cannot be run, if so: counts and times beyond the bounds above (they
    /// keep a kernel run short and within what the kernel side can send).
    pub fn check(&self) -> Result<(), String> {
        match self.scenario {
            Scenario::Overflow { clients, .. } if clients > MAX_CLIENTS => {
                return Err(format!("{clients} clients: at most {MAX_CLIENTS}"))
            }
            Scenario::Synflood { syns, .. } if syns > MAX_SYNS => {
                return Err(format!("{syns} SYNs: at most {MAX_SYNS}"))
            }
            Scenario::Synflood {
                rate: Some(rate), ..
            } if !(rate > 0.0 && rate <= MAX_RATE) => {
                return Err(format!(
                    "rate {rate}: expected more than 0, at most {MAX_RATE}"
                ))
            }
            _ => {}
        }
        if self.duration_ms > MAX_DURATION_MS {
            return Err(format!(
                "report at {} ms: at most {MAX_DURATION_MS}",
                self.duration_ms
            ));
        }
        let mut config = synq_core::Config::default();
        for (k, v) in &self.sysctls {
            config
                .set(k, &v.to_string())
                .map_err(|e| format!("{k}={v}: {e}"))?;
        }
        Ok(())
    }

    /// The point as JSON: `scenario`, `backlog`, `clients` and `accept_after` or `syns` and
    /// `rate`, `sysctls` (name to value) and `duration` in seconds. `backlog.py` reads the
    /// same object.
    pub fn to_json(&self) -> serde_json::Value {
        let sysctls: serde_json::Map<String, serde_json::Value> = self
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        let mut v = serde_json::json!({
            "scenario": self.scenario_name(),
            "backlog": self.backlog(),
        });
        match self.scenario {
            Scenario::Overflow {
                clients,
                accept_after,
                ..
            } => {
                v["clients"] = clients.into();
                v["gap_ms"] = CLIENT_GAP_MS.into();
                v["accept_after"] = accept_after.into();
            }
            Scenario::Synflood { syns, rate, .. } => {
                v["syns"] = syns.into();
                v["rate"] = rate.map_or(serde_json::Value::Null, Into::into);
            }
        }
        v["sysctls"] = sysctls.into();
        v["duration"] = self.duration_secs().into();
        v
    }
}

/// One line: `overflow backlog=2 clients=8 somaxconn=4 duration=1.5s`.
impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} backlog={}", self.scenario_name(), self.backlog())?;
        match self.scenario {
            Scenario::Overflow {
                clients,
                accept_after,
                ..
            } => {
                write!(f, " clients={clients}")?;
                if accept_after {
                    write!(f, " accept-after")?;
                }
            }
            Scenario::Synflood { syns, rate, .. } => {
                write!(f, " syns={syns}")?;
                if let Some(r) = rate {
                    write!(f, " rate={r}")?;
                }
            }
        }
        for (k, v) in &self.sysctls {
            let short = k
                .strip_prefix("net.ipv4.")
                .or_else(|| k.strip_prefix("net.core."))
                .unwrap_or(k);
            write!(f, " {short}={v}")?;
        }
        write!(f, " duration={}s", self.duration_secs())
    }
}

/// Which points to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// [`quick`]: 21 fixed points, about 10 s of real time.
    Quick,
    /// [`full`]: those and [`RANDOM_POINTS`] seeded random ones.
    Full,
}

impl Grid {
    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Full => "full",
        }
    }

    /// The grid's points (`seed` chooses the random ones).
    pub fn points(self, seed: u64) -> Vec<Point> {
        match self {
            Self::Quick => quick(),
            Self::Full => full(seed),
        }
    }
}

/// 21 fixed points: backlog 0 to INT_MAX and negative, somaxconn, tcp_max_syn_backlog,
/// tcp_syncookies 0/1/2, tcp_abort_on_overflow, tcp_synack_retries, report times 0.5 to
/// 7.5 s, SYNs at once or paced.
pub fn quick() -> Vec<Point> {
    let o = |backlog, clients, accept_after| Scenario::Overflow {
        backlog,
        clients,
        accept_after,
    };
    let f = |backlog, syns, rate| Scenario::Synflood {
        backlog,
        syns,
        rate,
    };
    let p = |scenario, sysctls: &[(&str, i64)], duration_ms| Point {
        scenario,
        sysctls: sysctls.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
        duration_ms,
    };
    let (ck, mx, so, ab, sr) = (
        SYNCOOKIES,
        MAX_SYN_BACKLOG,
        SOMAXCONN,
        ABORT_ON_OVERFLOW,
        SYNACK_RETRIES,
    );
    vec![
        p(o(2, 8, false), &[], 1500),
        p(o(0, 4, true), &[(ck, 1)], 1500),
        p(o(0, 3, false), &[(ck, 0)], 500),
        p(o(5, 10, false), &[(ck, 0)], 500),
        p(o(-1, 8, false), &[(so, 4)], 1500),
        p(o(-100, 5, false), &[(so, 2)], 2500),
        p(o(i32::MAX, 6, true), &[(so, 3)], 2500),
        p(o(3, 6, true), &[(ab, 1)], 1500),
        p(o(1, 4, false), &[(ck, 2)], 1500),
        p(o(4, 8, false), &[(ck, 0), (mx, 4)], 1500),
        p(f(4, 20, None), &[(ck, 1)], 500),
        p(f(4, 20, None), &[(ck, 0)], 500),
        p(f(4, 20, None), &[(ck, 2)], 500),
        p(f(0, 5, None), &[(ck, 1)], 500),
        p(f(100, 20, None), &[(ck, 0), (mx, 16)], 500),
        p(f(100, 20, None), &[(ck, 1), (mx, 16)], 500),
        p(f(4, 5, None), &[], 1500),
        p(f(4, 20, None), &[(ck, 0), (sr, 1), (ab, 1)], 3500),
        p(f(16, 17, None), &[(ck, 0)], 7500),
        p(f(8, 30, Some(10.0)), &[(ck, 0)], 2450),
        p(f(-1, 12, None), &[(so, 8), (ck, 1)], 1500),
    ]
}

/// [`quick`], then [`RANDOM_POINTS`] points of [`random`].
pub fn full(seed: u64) -> Vec<Point> {
    let mut v = quick();
    v.extend(random(seed, RANDOM_POINTS));
    v
}

/// `n` random points, the same for the same seed: backlog (0, negative, huge, small),
/// somaxconn, tcp_max_syn_backlog, tcp_syncookies 0/1/2, tcp_abort_on_overflow,
/// tcp_synack_retries, accept-after, bursts and paced floods, and report times drawn
/// uniformly among those for which [`fits_real_time`] holds.
pub fn random(seed: u64, n: usize) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    // Most draws succeed; the bound only guarantees an end.
    for _ in 0..n.saturating_mul(1000) {
        if out.len() == n {
            break;
        }
        let mut p = random_point(&mut rng);
        for _ in 0..100 {
            p.duration_ms = rng.gen_range(MIN_RANDOM_MS..=MAX_RANDOM_MS);
            if fits_real_time(&p) {
                out.push(p);
                break;
            }
        }
    }
    out
}

/// Random report times lie within these (ms): long enough to set up, short enough that
/// default clients never give up (11 s) and 40 points run in about a minute.
const MIN_RANDOM_MS: u32 = 200;
const MAX_RANDOM_MS: u32 = 10_000;

fn random_point(rng: &mut ChaCha8Rng) -> Point {
    let backlog = match rng.gen_range(0..10) {
        0 => 0,
        1 => [-1, -rng.gen_range(2..=1000), i32::MIN][rng.gen_range(0..3)],
        2 => [i32::MAX, 65_536, rng.gen_range(4097..=1_000_000)][rng.gen_range(0..3)],
        3..=7 => rng.gen_range(1..=16),
        _ => rng.gen_range(17..=200),
    };
    let mut sysctls = Vec::new();
    let mut maybe =
        |rng: &mut ChaCha8Rng, p: f64, name: &str, v: &dyn Fn(&mut ChaCha8Rng) -> i64| {
            if rng.gen_bool(p) {
                let value = v(rng);
                sysctls.push((name.to_string(), value));
            }
        };
    maybe(rng, 0.4, SOMAXCONN, &|r| {
        if r.gen_bool(0.5) {
            r.gen_range(0..=32)
        } else {
            r.gen_range(33..=1024)
        }
    });
    maybe(rng, 0.3, MAX_SYN_BACKLOG, &|r| r.gen_range(1..=256));
    maybe(rng, 0.8, SYNCOOKIES, &|r| r.gen_range(0..=2));
    maybe(rng, 0.3, ABORT_ON_OVERFLOW, &|r| r.gen_range(0..=1));
    maybe(rng, 0.4, SYNACK_RETRIES, &|r| r.gen_range(0..=5));
    let scenario = if rng.gen_bool(0.5) {
        Scenario::Overflow {
            backlog,
            clients: if rng.gen_bool(0.8) {
                rng.gen_range(1..=40)
            } else {
                rng.gen_range(41..=200)
            },
            accept_after: rng.gen_bool(0.4),
        }
    } else {
        let (syns, rate) = match rng.gen_range(0..10) {
            // All at once.
            0..=3 => (
                if rng.gen_bool(0.8) {
                    rng.gen_range(1..=300)
                } else {
                    rng.gen_range(301..=2500)
                },
                None,
            ),
            // Fast and short: over within half a second.
            4..=6 => {
                let rate = rng.gen_range(20..=1000);
                (rng.gen_range(2..=rate / 2 + 1), Some(f64::from(rate)))
            }
            // Slow: SYNs far enough apart to report between them. Rates of whole SYNs
            // per second would put SYNs on other SYNs' timer instants (see
            // `fits_real_time`); tenths rarely do.
            _ => {
                let rate = f64::from(rng.gen_range(3..=33)) / 10.0;
                (rng.gen_range(2..=30), Some(rate))
            }
        };
        Scenario::Synflood {
            backlog,
            syns,
            rate,
        }
    };
    Point {
        scenario,
        sysctls,
        duration_ms: 0,
    }
}

/// Kernel events of different kinds (a SYN and a request's timer, or timers of requests of
/// different ages) must be this far apart (s) beyond the timer's slack, so that they happen
/// in the simulator's order: room for [`LAG_LIMIT_S`], a jiffy, and noise.
pub const ORDER_MARGIN_S: f64 = 0.1;

/// How far a report time must stay from any instant at which the kernel might act (s):
/// room for the kernel side's own lateness ([`LAG_LIMIT_S`], checked on every run), a
/// jiffy, and scheduling noise.
pub const MARGIN_S: f64 = 0.15;

/// A kernel run whose connect()s, SYN writes or snapshot fell further behind schedule than
/// this (s) is not trusted (it is rerun); see [`Point::lag_allowance`].
pub const LAG_LIMIT_S: f64 = 0.05;

/// Writing one SYN of a burst into the TUN device takes about 5 us; twice that is allowed.
const BURST_SYN_S: f64 = 10e-6;

/// Gaps between a client's SYNs (Linux 6.18 defaults: tcp_syn_retries 6,
/// tcp_syn_linear_timeouts 4): retransmissions at 1, 2, 3, 4, 5 and 7 s, connect() fails at
/// 11 s.
const CLIENT_SYN_GAPS: [u64; 7] = [1, 1, 1, 1, 1, 2, 4];
/// Gaps between a request's SYN-ACK timer firings: resends (or expiry) at 1, 3, 7, 15, 31 s.
const SYNACK_GAPS: [u64; 5] = [1, 2, 4, 8, 16];

/// The most a kernel timer of `secs` seconds can fire late (s): the timer wheel rounds its
/// expiry up to the granularity of the level the timeout falls in (kernel/time/timer.c,
/// calc_wheel_index: level n holds timeouts from 63 << 3(n-1) jiffies, granularity 8^n
/// jiffies). Which level depends on HZ, so the worst case over CONFIG_HZ 100, 250, 300 and
/// 1000: 80 ms for 1 s, 213 ms for 2 s, 256 ms for 4 s, 640 ms for 8 s.
pub fn timer_slack(secs: u64) -> f64 {
    [100u64, 250, 300, 1000]
        .iter()
        .map(|&hz| {
            let jiffies = secs * hz;
            let level = (0..8u32).find(|&n| jiffies < 63u64 << (3 * n)).unwrap_or(8);
            (1u64 << (3 * level)) as f64 / hz as f64
        })
        .fold(0.0, f64::max)
}

/// Instants (s) after one arrival at which the kernel may act, each with how late it may
/// be: a timer re-armed when the previous one fires inherits that one's lateness.
fn chain(gaps: &[u64]) -> Vec<(f64, f64)> {
    let mut v = vec![(0.0, 0.0)];
    let (mut at, mut late) = (0u64, 0.0);
    for &g in gaps {
        at += g;
        late += timer_slack(g);
        v.push((at as f64, late));
    }
    v
}

impl Point {
    /// Intervals (s) within which clients or SYNs arrive: one for clients 1 ms apart or a
    /// fast flood, one per SYN of a flood slow enough to report between its SYNs.
    fn arrivals(&self) -> Vec<(f64, f64)> {
        let t = self.duration_secs();
        match self.scenario {
            Scenario::Overflow { clients, .. } => {
                let span = f64::from(clients.saturating_sub(1)) * f64::from(CLIENT_GAP_MS) / 1000.0;
                vec![(0.0, span)]
            }
            Scenario::Synflood {
                syns, rate: None, ..
            } => {
                vec![(0.0, f64::from(syns) * BURST_SYN_S)]
            }
            Scenario::Synflood {
                syns,
                rate: Some(rate),
                ..
            } => {
                let gap = 1.0 / rate;
                if gap < 2.0 * MARGIN_S {
                    vec![(0.0, f64::from(syns.saturating_sub(1)) * gap)]
                } else {
                    // Those due after t + MARGIN_S never matter.
                    (0..syns)
                        .map(|i| f64::from(i) * gap)
                        .take_while(|&a| a < t + MARGIN_S)
                        .map(|a| (a, a))
                        .collect()
                }
            }
        }
    }

    /// How far behind schedule the kernel side may fall (s): [`LAG_LIMIT_S`], plus the time
    /// a burst of SYNs takes to write.
    pub fn lag_allowance(&self) -> f64 {
        match self.scenario {
            Scenario::Synflood {
                syns, rate: None, ..
            } => LAG_LIMIT_S + f64::from(syns) * BURST_SYN_S,
            _ => LAG_LIMIT_S,
        }
    }
}

/// How far (s) the report time lies from the nearest instant at which the kernel may act
/// (negative inside such a window): client or SYN arrivals, and the timers they start,
/// client SYN retransmissions (overflow) and SYN-ACK resends and request expiry, each a
/// window from the nominal instant to the latest the timer wheel may fire it
/// ([`timer_slack`], added up along a chain of re-armed timers). A request may start with
/// any of a client's SYNs, so in overflow the two chains compose.
pub fn clear_of_timers(p: &Point) -> f64 {
    let t = p.duration_secs();
    let server = chain(&SYNACK_GAPS);
    let client = match p.scenario {
        Scenario::Overflow { .. } => chain(&CLIENT_SYN_GAPS),
        Scenario::Synflood { .. } => chain(&[]),
    };
    let mut nearest = f64::INFINITY;
    for (lo, hi) in p.arrivals() {
        for &(c_at, c_late) in &client {
            for &(s_at, s_late) in &server {
                let from = lo + c_at + s_at;
                let to = hi + c_at + s_at + c_late + s_late;
                let d = if t < from {
                    from - t
                } else if t > to {
                    t - to
                } else {
                    -(t - from).min(to - t)
                };
                nearest = nearest.min(d);
            }
        }
    }
    nearest
}

/// Whether the kernel's real time can reproduce `p`'s virtual time: the report time is
/// [`clear_of_timers`] by [`MARGIN_S`], and in a flood, events whose order matters are
/// [`in_order`] by [`ORDER_MARGIN_S`].
pub fn fits_real_time(p: &Point) -> bool {
    clear_of_timers(p) >= MARGIN_S && in_order(p) >= ORDER_MARGIN_S
}

/// In a flood, how far apart (s) the earliest two events of different kinds before the
/// report lie: arrivals and SYN-ACK timer firings, a firing told apart by the request's
/// age (first, second, ... firing). The simulator fires a timer on its instant, the kernel
/// up to [`timer_slack`] later: a SYN arriving on a request's expiry finds the queue full
/// in the kernel and not in the simulator, and a timer's pruning (reqsk_timer_handler
/// counts young requests) depends on what fired before it. Events of one kind may come in
/// any order: requests of one age expire by count, not by identity. Overflow runs hold no
/// requests (clients 1 ms apart complete within a round trip), so this is about floods;
/// infinite when nothing can collide.
pub fn in_order(p: &Point) -> f64 {
    let Scenario::Synflood { .. } = p.scenario else {
        return f64::INFINITY;
    };
    let t = p.duration_secs();
    // (kind, first, last) where the kernel may act, for events before the report.
    let mut windows: Vec<(usize, f64, f64)> = Vec::new();
    for (lo, hi) in p.arrivals() {
        for (kind, &(at, late)) in chain(&SYNACK_GAPS).iter().enumerate() {
            if lo + at < t {
                windows.push((kind, lo + at, hi + at + late));
            }
        }
    }
    let mut nearest = f64::INFINITY;
    for (i, a) in windows.iter().enumerate() {
        for b in &windows[i + 1..] {
            if a.0 != b.0 {
                nearest = nearest.min((b.1 - a.2).max(a.1 - b.2));
            }
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_points() {
        assert_eq!(random(7, RANDOM_POINTS), random(7, RANDOM_POINTS));
        assert_eq!(random(7, RANDOM_POINTS).len(), RANDOM_POINTS);
    }

    #[test]
    fn other_seeds_give_other_points() {
        let a = random(1, RANDOM_POINTS);
        for seed in 2..6 {
            let b = random(seed, RANDOM_POINTS);
            assert_ne!(a, b, "seed {seed}");
            // Not merely one point apart.
            let common = a.iter().filter(|p| b.contains(p)).count();
            assert!(
                common < RANDOM_POINTS / 4,
                "seed {seed}: {common} in common"
            );
        }
    }

    #[test]
    fn random_points_are_valid_and_varied() {
        let points: Vec<Point> = (0..5).flat_map(|s| random(s, RANDOM_POINTS)).collect();
        for p in &points {
            p.check().unwrap_or_else(|e| panic!("{p}: {e}"));
            assert!(
                (MIN_RANDOM_MS..=MAX_RANDOM_MS).contains(&p.duration_ms),
                "{p}"
            );
        }
        let has = |f: &dyn Fn(&Point) -> bool| points.iter().any(f);
        let sysctl = |p: &Point, name: &str, v: i64| p.sysctls.contains(&(name.to_string(), v));
        assert!(has(&|p| p.backlog() == 0));
        assert!(has(&|p| p.backlog() < 0));
        assert!(has(&|p| p.backlog() > 4096));
        for v in 0..=2 {
            assert!(has(&|p| sysctl(p, SYNCOOKIES, v)), "tcp_syncookies={v}");
        }
        assert!(has(&|p| sysctl(p, ABORT_ON_OVERFLOW, 1)));
        assert!(has(&|p| p.sysctls.iter().any(|(k, _)| k == SOMAXCONN)));
        assert!(has(&|p| p
            .sysctls
            .iter()
            .any(|(k, _)| k == MAX_SYN_BACKLOG)));
        assert!(has(&|p| p.sysctls.iter().any(|(k, _)| k == SYNACK_RETRIES)));
        assert!(has(&|p| matches!(
            p.scenario,
            Scenario::Overflow {
                accept_after: true,
                ..
            }
        )));
        assert!(has(&|p| matches!(
            p.scenario,
            Scenario::Synflood { rate: None, .. }
        )));
        assert!(has(
            &|p| matches!(p.scenario, Scenario::Synflood { rate: Some(r), .. } if r < 3.5)
        ));
        assert!(has(
            &|p| matches!(p.scenario, Scenario::Synflood { rate: Some(r), .. } if r > 10.0)
        ));
        // Reports past the first SYN-ACK resends, and past the 7 s one.
        assert!(has(&|p| p.duration_ms > 3000));
        assert!(has(&|p| p.duration_ms > 7000));
    }

    /// Checked without the generator's own arithmetic: every arrival one by one, every
    /// nominal instant written out, and the timer slack as a table.
    #[test]
    fn random_report_times_keep_away_from_timer_instants() {
        // (instant after a SYN, latest the kernel may act): SYN-ACK resends and expiry.
        let synack = [
            (0.0, 0.0),
            (1.0, 0.08),
            (3.0, 0.293),
            (7.0, 0.549),
            (15.0, 1.189),
        ];
        // A client's SYNs and its giving up.
        let syn = [
            (0.0, 0.0),
            (1.0, 0.08),
            (2.0, 0.16),
            (3.0, 0.24),
            (4.0, 0.32),
            (5.0, 0.4),
            (7.0, 0.613),
            (11.0, 0.869),
        ];
        for seed in 0..20 {
            for p in random(seed, RANDOM_POINTS) {
                let t = p.duration_secs();
                let (arrivals, client): (Vec<f64>, &[(f64, f64)]) = match p.scenario {
                    Scenario::Overflow { clients, .. } => {
                        ((0..clients).map(|i| f64::from(i) / 1000.0).collect(), &syn)
                    }
                    Scenario::Synflood { syns, rate, .. } => (
                        (0..syns)
                            .map(|i| rate.map_or(0.0, |r| f64::from(i) / r))
                            .collect(),
                        &[(0.0, 0.0)],
                    ),
                };
                let mut flood_events = Vec::new();
                for &a in &arrivals {
                    for &(c, cl) in client {
                        for (kind, &(s, sl)) in synack.iter().enumerate() {
                            let at = a + c + s;
                            let ok = t <= at - 0.15 || t >= at + cl + sl + 0.15;
                            assert!(ok, "seed {seed}: {p}: instant {at} (+{} s)", cl + sl);
                            if at < t {
                                flood_events.push((kind, at, at + cl + sl));
                            }
                        }
                    }
                }
                if let Scenario::Overflow { .. } = p.scenario {
                    continue;
                }
                // A SYN and a timer, or timers of requests of different ages, in the
                // simulator's order whatever the kernel's slack.
                for a in &flood_events {
                    for b in &flood_events {
                        let ok = a.0 == b.0 || b.1 >= a.2 + 0.1 || a.1 >= b.2 + 0.1;
                        assert!(ok, "seed {seed}: {p}: events {a:?} and {b:?}");
                    }
                }
            }
        }
    }

    /// Two points `random` drew before `in_order` existed, which differed from the kernel:
    /// a SYN due on a request's expiry (3 s) or on its 7 s firing.
    #[test]
    fn syns_on_timer_instants_are_refused() {
        let flood = |backlog, syns, rate, sysctls: &[(&str, i64)], duration_ms| Point {
            scenario: Scenario::Synflood {
                backlog,
                syns,
                rate: Some(rate),
            },
            sysctls: sysctls.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
            duration_ms,
        };
        let expiry = flood(0, 17, 1.0, &[(SOMAXCONN, 1), (SYNACK_RETRIES, 1)], 3543);
        let pruning = flood(4, 27, 1.0, &[(SOMAXCONN, 21), (SYNCOOKIES, 0)], 7841);
        for p in [expiry, pruning] {
            assert!(clear_of_timers(&p) >= MARGIN_S, "{p}");
            assert!(in_order(&p) < 0.0, "{p}");
            assert!(!fits_real_time(&p), "{p}");
        }
        // The same SYNs, reported before the first collision (1 s).
        let early = flood(0, 17, 1.0, &[(SOMAXCONN, 1), (SYNACK_RETRIES, 1)], 850);
        assert!(fits_real_time(&early));
    }

    #[test]
    fn timer_slack_follows_the_wheel() {
        let ms = |s| (timer_slack(s) * 1000.0).round();
        assert_eq!([ms(1), ms(2), ms(4), ms(8)], [80.0, 213.0, 256.0, 640.0]);
    }

    #[test]
    fn the_quick_grid_is_the_tested_one() {
        let q = quick();
        assert_eq!(q.len(), 21);
        for p in &q {
            p.check().unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        assert_eq!(
            q[19].to_string(),
            "synflood backlog=8 syns=30 rate=10 tcp_syncookies=0 duration=2.45s"
        );
        assert_eq!(Grid::Full.points(3)[..21], q[..]);
    }

    #[test]
    fn bounds_are_checked() {
        let mut p = quick().remove(10);
        p.scenario = Scenario::Synflood {
            backlog: 4,
            syns: MAX_SYNS + 1,
            rate: None,
        };
        assert!(p.check().is_err());
        p.scenario = Scenario::Synflood {
            backlog: 4,
            syns: 4,
            rate: Some(0.0),
        };
        assert!(p.check().is_err());
        p.scenario = Scenario::Synflood {
            backlog: 4,
            syns: 4,
            rate: Some(1.0),
        };
        p.check().unwrap();
        p.sysctls.push(("net.ipv4.tcp_no_such".into(), 1));
        assert!(p.check().is_err());
    }
}
