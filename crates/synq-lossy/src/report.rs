//! The benchmark's rows and its markdown tables: medians over seeds, ratios, counters side by
//! side.

use crate::forward::DirStats;
use crate::impair::Impairment;
use crate::kernel::{KernelRun, Rtt, COUNTERS};
use crate::synq::SynqRun;
use std::io::{self, Write};
use std::time::Duration;

/// The rows of issue 9's table, as `loss/reorder/duplicate` in percent.
pub const DEFAULT_ROWS: &str = "1/2/1,5/2/1,12/5/3,20/10/5,25/10/5";

/// One row: the impairment's probabilities (fractions, not percent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Loss probability per packet.
    pub loss: f64,
    /// Reorder probability per packet.
    pub reorder: f64,
    /// Duplicate probability per packet.
    pub duplicate: f64,
}

impl Row {
    /// `"loss/reorder/dup"` in percent, e.g. `"12/5/3"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let p: Vec<f64> = s
            .split('/')
            .map(|x| x.trim().parse::<f64>().map(|v| v / 100.0))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("row {s:?}: {e}"))?;
        let [loss, reorder, duplicate] = p[..] else {
            return Err(format!("row {s:?}: expected loss/reorder/dup in percent"));
        };
        let row = Self {
            loss,
            reorder,
            duplicate,
        };
        row.impairment(Duration::ZERO, 0)
            .validate()
            .map_err(|e| format!("row {s:?}: {e}"))?;
        Ok(row)
    }

    /// Comma-separated rows ([`DEFAULT_ROWS`]'s form).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        s.split(',')
            .filter(|r| !r.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    /// `1 % / 2 % / 1 %`.
    pub fn label(&self) -> String {
        let pct = |p: f64| format!("{} %", (p * 1e4).round() / 100.0);
        format!(
            "{} / {} / {}",
            pct(self.loss),
            pct(self.reorder),
            pct(self.duplicate)
        )
    }

    /// The forwarder's impairment for this row.
    pub fn impairment(&self, reorder_delay: Duration, seed: u64) -> Impairment {
        Impairment {
            loss: self.loss,
            reorder: self.reorder,
            duplicate: self.duplicate,
            reorder_delay,
            seed,
        }
    }
}

/// The median (mean of the middle two for an even count); infinities sort last, NaN is
/// left out. `None` for no values.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else if v[m - 1] == v[m] {
        // Two infinities: their mean would be fine, but say it without arithmetic.
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Seconds with three significant digits or more.
pub fn secs(x: f64) -> String {
    match x {
        x if x < 10.0 => format!("{x:.3}"),
        x if x < 100.0 => format!("{x:.2}"),
        x => format!("{x:.1}"),
    }
}

fn megabytes(b: f64) -> String {
    format!("{:.2} MB", b / 1e6)
}

/// Everything one row measured: per seed, the kernel's run and synq's (or why it failed).
#[derive(Debug)]
pub struct RowResult {
    /// The row.
    pub row: Row,
    /// Per seed, the kernel transfer.
    pub kernel: Vec<(u64, Result<KernelRun, String>)>,
    /// Per seed, synq's.
    pub synq: Vec<(u64, Result<SynqRun, String>)>,
    /// Per seed, the bytes synq's receiver read by the kernel's limit in virtual time
    /// (a second run with that limit), to set beside a kernel run that did not finish.
    pub synq_bytes_by_limit: Vec<Option<u64>>,
}

/// The conditions common to every row.
#[derive(Debug)]
pub struct Setup {
    /// Bytes per transfer.
    pub bytes: u64,
    /// The kernel's limit, real seconds.
    pub limit_secs: u64,
    /// synq's limit, virtual seconds.
    pub synq_limit_secs: u64,
    /// The clean path's connect times.
    pub rtt: Rtt,
    /// The RTT given to synq and used as the reorder delay.
    pub rtt_us: u64,
    /// The clean path's own transfer, the forwarder's floor.
    pub clean: Option<KernelRun>,
    /// The kernel's TCP settings in the sender's namespace.
    pub tcp: String,
    /// The synq tree measured (commit).
    pub commit: String,
    /// Seeds per row.
    pub seeds: Vec<u64>,
    /// The host's load averages (`/proc/loadavg`) at the start and at the end: kernel times
    /// are real time on a shared machine.
    pub load: [String; 2],
}

/// A kernel run's time for medians: not done is infinite.
fn kernel_time(r: &Result<KernelRun, String>) -> f64 {
    match r {
        Ok(k) => k.secs.unwrap_or(f64::INFINITY),
        Err(_) => f64::NAN,
    }
}

fn synq_time(r: &Result<SynqRun, String>) -> f64 {
    match r {
        Ok(s) if s.intact => s.virtual_secs,
        Ok(_) => f64::INFINITY,
        Err(_) => f64::NAN,
    }
}

/// The median time, or "not done in N s (bytes)" with the median bytes of the runs that
/// were not done.
fn time_cell(times: &[f64], bytes_not_done: &[f64], limit: &str) -> (String, Option<f64>) {
    match median(times) {
        None => ("failed".into(), None),
        Some(m) if m.is_finite() => (secs(m), Some(m)),
        Some(_) => (
            format!(
                "not done in {limit} ({})",
                megabytes(median(bytes_not_done).unwrap_or(0.0))
            ),
            None,
        ),
    }
}

fn ratio_cell(synq: Option<f64>, linux: Option<f64>, linux_limit: f64, synq_limit: f64) -> String {
    match (synq, linux) {
        (Some(s), Some(l)) if l > 0.0 => format!("{:.2}", s / l),
        (Some(s), None) => format!("< {:.2}", s / linux_limit),
        (None, Some(l)) if l > 0.0 => format!("> {:.0}", synq_limit / l),
        _ => "–".into(),
    }
}

fn counter_median(values: impl Iterator<Item = Option<u64>>) -> String {
    let v: Vec<Option<u64>> = values.collect();
    if v.is_empty() || v.iter().any(Option::is_none) {
        return "–".into();
    }
    let xs: Vec<f64> = v.into_iter().flatten().map(|x| x as f64).collect();
    median(&xs).map_or("–".into(), |m| format!("{m:.0}"))
}

/// Write the report: setup, the time table, the counter table and per-seed details.
pub fn render(w: &mut dyn Write, s: &Setup, rows: &[RowResult]) -> io::Result<()> {
    let n = s.seeds.len();
    writeln!(
        w,
        "{} bytes A to B; synq {}; kernel {}",
        s.bytes, s.commit, s.tcp
    )?;
    writeln!(
        w,
        "path RTT (TCP connect through the forwarder, clean): median {:.0} µs, min {:.0} µs \
         over {} connects; synq runs at --rtt-us {} and the forwarder holds reordered \
         packets {} µs",
        s.rtt.median_us(),
        s.rtt.min_us(),
        s.rtt.samples_us.len(),
        s.rtt_us,
        s.rtt_us
    )?;
    if let Some(c) = &s.clean {
        writeln!(
            w,
            "clean path (no impairment): kernel {} s, {} of its srtt samples, median {} µs, \
             max {} µs; device queue drops {:?}",
            c.secs.map_or("not done".into(), secs),
            c.srtt_us.len(),
            pct_sample(&c.srtt_us, 50),
            pct_sample(&c.srtt_us, 100),
            c.queue_drops
        )?;
    }
    writeln!(
        w,
        "median of {n} seed(s) ({:?}); Linux limit {} s of real time, synq {} virtual s; \
         load average {} at the start, {} at the end\n",
        s.seeds, s.limit_secs, s.synq_limit_secs, s.load[0], s.load[1]
    )?;
    let limit = format!("{} s", s.limit_secs);
    let synq_limit = format!("{} virtual s", s.synq_limit_secs);
    writeln!(
        w,
        "| loss / reorder / dup | Linux CUBIC, s | synq, virtual s | synq / Linux |"
    )?;
    writeln!(w, "|---|---|---|---|")?;
    for r in rows {
        let kt: Vec<f64> = r.kernel.iter().map(|(_, k)| kernel_time(k)).collect();
        let kb: Vec<f64> = r
            .kernel
            .iter()
            .filter_map(|(_, k)| k.as_ref().ok())
            .filter(|k| k.secs.is_none())
            .map(|k| k.bytes_received as f64)
            .collect();
        let st: Vec<f64> = r.synq.iter().map(|(_, x)| synq_time(x)).collect();
        let sb: Vec<f64> = r
            .synq
            .iter()
            .filter_map(|(_, x)| x.as_ref().ok())
            .filter(|x| !x.intact)
            .map(|x| x.bytes_received as f64)
            .collect();
        let (kc, kv) = time_cell(&kt, &kb, &limit);
        let (sc, sv) = time_cell(&st, &sb, &synq_limit);
        let mut ratio = ratio_cell(sv, kv, s.limit_secs as f64, s.synq_limit_secs as f64);
        if kv.is_none() && sv.is_none() {
            // Neither finished: what each moved in the kernel's limit says more.
            let kernel_bytes: Vec<f64> = r
                .kernel
                .iter()
                .filter_map(|(_, k)| k.as_ref().ok())
                .map(|k| k.bytes_received as f64)
                .collect();
            let synq_bytes: Vec<f64> = r
                .synq_bytes_by_limit
                .iter()
                .flatten()
                .map(|&b| b as f64)
                .collect();
            if let (Some(k), Some(x)) = (median(&kernel_bytes), median(&synq_bytes)) {
                ratio = format!(
                    "– (by {limit}: synq {}, Linux {})",
                    megabytes(x),
                    megabytes(k)
                );
            }
        }
        writeln!(w, "| {} | {kc} | {sc} | {ratio} |", r.row.label())?;
    }
    writeln!(
        w,
        "\nSender counters, median of {n} seed(s) (– : synq does not count it)\n"
    )?;
    write!(w, "| loss / reorder / dup | side |")?;
    for c in COUNTERS {
        write!(w, " {} |", short(c))?;
    }
    writeln!(w, " packets lost / dup |")?;
    writeln!(w, "|---|---|{}---|", "---|".repeat(COUNTERS.len()))?;
    for r in rows {
        let ks: Vec<&KernelRun> = r
            .kernel
            .iter()
            .filter_map(|(_, k)| k.as_ref().ok())
            .collect();
        let ss: Vec<&SynqRun> = r.synq.iter().filter_map(|(_, x)| x.as_ref().ok()).collect();
        write!(w, "| {} | Linux |", r.row.label())?;
        for c in COUNTERS {
            let m = counter_median(ks.iter().map(|k| k.counters.get(c).copied()));
            write!(w, " {m} |")?;
        }
        let lost = counter_median(ks.iter().map(|k| Some(k.link.total().lost)));
        let dup = counter_median(ks.iter().map(|k| Some(k.link.total().duplicated)));
        writeln!(w, " {lost} / {dup} |")?;
        write!(w, "| | synq |")?;
        for c in COUNTERS {
            let m = counter_median(ss.iter().map(|x| x.counters.get(c).copied()));
            write!(w, " {m} |")?;
        }
        let lost = counter_median(ss.iter().map(|x| Some(x.packets_lost)));
        let dup = counter_median(ss.iter().map(|x| Some(x.packets_duplicated)));
        writeln!(w, " {lost} / {dup} |")?;
    }
    writeln!(w, "\nPer seed\n")?;
    writeln!(
        w,
        "| loss / reorder / dup | seed | Linux s | Linux srtt median / max, µs | forwarder \
         packets / lost / reordered / dup | device queue drops | synq virtual s | synq \
         packets / lost / dup | synq wall s |"
    )?;
    writeln!(w, "|---|---|---|---|---|---|---|---|---|")?;
    for r in rows {
        let by_limit = r.synq_bytes_by_limit.iter().chain(std::iter::repeat(&None));
        for (((seed, k), (_, x)), by) in r.kernel.iter().zip(&r.synq).zip(by_limit) {
            let (kt, srtt, fwd, qd) = match k {
                Ok(k) => (
                    match k.secs {
                        Some(t) => secs(t),
                        None => format!(
                            "not done in {limit} ({}){}",
                            megabytes(k.bytes_received as f64),
                            k.error
                                .as_deref()
                                .map_or(String::new(), |e| format!(": {e}"))
                        ),
                    },
                    format!(
                        "{} / {}",
                        pct_sample(&k.srtt_us, 50),
                        pct_sample(&k.srtt_us, 100)
                    ),
                    dir_cell(k.link.total()),
                    format!("{} / {}", k.queue_drops[0], k.queue_drops[1]),
                ),
                Err(e) => (format!("failed: {e}"), "–".into(), "–".into(), "–".into()),
            };
            let (st, sp, sw) = match x {
                Ok(x) => (
                    if x.intact {
                        secs(x.virtual_secs)
                    } else {
                        format!(
                            "not done in {synq_limit} ({}, {}{})",
                            megabytes(x.bytes_received as f64),
                            x.failure.as_deref().unwrap_or("not intact"),
                            by.map_or(String::new(), |b| format!(
                                "; {} by {limit}",
                                megabytes(b as f64)
                            ))
                        )
                    },
                    format!(
                        "{} / {} / {}",
                        x.packets_sent, x.packets_lost, x.packets_duplicated
                    ),
                    format!("{:.2}", x.wall_secs),
                ),
                Err(e) => (format!("failed: {e}"), "–".into(), "–".into()),
            };
            writeln!(
                w,
                "| {} | {seed} | {kt} | {srtt} | {fwd} | {qd} | {st} | {sp} | {sw} |",
                r.row.label()
            )?;
        }
    }
    Ok(())
}

/// The `p`th percentile of sorted samples (nearest rank), or "–".
fn pct_sample(sorted: &[u64], p: usize) -> String {
    if sorted.is_empty() {
        return "–".into();
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i].to_string()
}

fn dir_cell(d: DirStats) -> String {
    format!(
        "{} / {} / {} / {}",
        d.packets, d.lost, d.reordered, d.duplicated
    )
}

/// `TcpExtTCPSackRecovery` → `TCPSackRecovery`, `TcpRetransSegs` → `RetransSegs`.
fn short(name: &str) -> &str {
    name.strip_prefix("TcpExt")
        .or_else(|| name.strip_prefix("Tcp"))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_in_percent() {
        let rows = Row::parse_list(DEFAULT_ROWS).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[2],
            Row {
                loss: 0.12,
                reorder: 0.05,
                duplicate: 0.03
            }
        );
        assert_eq!(rows[0].label(), "1 % / 2 % / 1 %");
        assert!(Row::parse("1/2").is_err());
        assert!(Row::parse("150/0/0").is_err());
        assert!(Row::parse("x/0/0").is_err());
    }

    #[test]
    fn medians_treat_not_done_as_longest() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::INFINITY, 2.0]), Some(2.0));
        assert_eq!(
            median(&[1.0, f64::INFINITY, f64::INFINITY]),
            Some(f64::INFINITY)
        );
        assert_eq!(median(&[f64::INFINITY, f64::INFINITY]), Some(f64::INFINITY));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    fn kernel(secs: Option<f64>, bytes: u64) -> KernelRun {
        KernelRun {
            secs,
            bytes_received: bytes,
            intact: secs.is_some(),
            error: None,
            counters: [("TcpRetransSegs".to_string(), 7)].into_iter().collect(),
            srtt_us: vec![100, 200],
            link: Default::default(),
            queue_drops: [0, 0],
        }
    }

    fn synq(secs: f64, intact: bool, bytes: u64) -> SynqRun {
        SynqRun {
            virtual_secs: secs,
            intact,
            bytes_received: bytes,
            failure: (!intact).then(|| "time limit".into()),
            counters: [("TcpRetransSegs".to_string(), 9)].into_iter().collect(),
            packets_sent: 10,
            packets_lost: 1,
            packets_duplicated: 0,
            wall_secs: 0.01,
        }
    }

    #[test]
    fn the_report_sets_both_sides_side_by_side() {
        let setup = Setup {
            bytes: 4_000_000,
            limit_secs: 300,
            synq_limit_secs: 3600,
            rtt: Rtt {
                samples_us: vec![90.0, 100.0, 120.0],
            },
            rtt_us: 100,
            clean: None,
            tcp: "cubic".into(),
            commit: "commit abc".into(),
            seeds: vec![1],
            load: ["0".into(), "0".into()],
        };
        let row = |p: &str| Row::parse(p).unwrap();
        let rows = [
            RowResult {
                row: row("1/2/1"),
                kernel: vec![(1, Ok(kernel(Some(0.5), 4_000_000)))],
                synq: vec![(1, Ok(synq(2.0, true, 4_000_000)))],
                synq_bytes_by_limit: vec![Some(4_000_000)],
            },
            RowResult {
                row: row("25/10/5"),
                kernel: vec![(1, Ok(kernel(None, 150_000)))],
                synq: vec![(1, Ok(synq(3600.0, false, 720_000)))],
                synq_bytes_by_limit: vec![Some(300_000)],
            },
        ];
        let mut out = Vec::new();
        render(&mut out, &setup, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("| 1 % / 2 % / 1 % | 0.500 | 2.000 | 4.00 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| 25 % / 10 % / 5 % | not done in 300 s (0.15 MB) | not done in 3600 \
                 virtual s (0.72 MB) | – (by 300 s: synq 0.30 MB, Linux 0.15 MB) |"
            ),
            "{text}"
        );
        // Counters synq does not keep show as a dash, the ones it keeps as numbers.
        assert!(
            text.contains("| | synq | – | – | – | – | – | – | 9 | 1 / 0 |"),
            "{text}"
        );
    }

    #[test]
    fn ratios_bound_what_did_not_finish() {
        assert_eq!(ratio_cell(Some(2.0), Some(0.5), 300.0, 3600.0), "4.00");
        assert_eq!(ratio_cell(Some(150.0), None, 300.0, 3600.0), "< 0.50");
        assert_eq!(ratio_cell(None, Some(36.0), 300.0, 3600.0), "> 100");
        assert_eq!(ratio_cell(None, None, 300.0, 3600.0), "–");
        let (c, v) = time_cell(&[f64::INFINITY], &[1.5e6], "300 s");
        assert_eq!((c.as_str(), v), ("not done in 300 s (1.50 MB)", None));
    }
}
