//! `synq sim run SCENARIO|FILE` and `synq sim compare SCENARIO|FILE`: a scenario (built-in
//! or TOML file) once, or once per model with the same seed, as a table people read, JSON
//! or CSV for scripts, a timeline CSV, a plot and packet captures.

use crate::error::{Error, Result};
use crate::output;
use crate::sysctl::{assignments, SysctlArgs};
use clap::Args;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use synq_core::Model;
use synq_sim::scenario::workload::{LatencyMs, Sample};
use synq_sim::scenario::{run_with, RunParams, RunReport, Scenario, BUILTINS, SERVER_ADDR};

/// Output flags shared by `sim run` and `sim compare`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ScenarioOut {
    /// Seed of every random choice: same seed, same output.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub(crate) seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    /// CSV on stdout, one row per model, instead of the table.
    #[arg(long)]
    pub(crate) csv: bool,
    /// Write the queues over time to this CSV file (one row per model and sample).
    #[arg(long, value_name = "FILE.csv")]
    pub(crate) timeline: Option<PathBuf>,
    /// Draw the queues over time, one panel per model: FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    pub(crate) plot: Option<PathBuf>,
    /// Write the server's packets as a pcap file (compare: one file per model, the model's
    /// name added before the extension).
    #[arg(long, value_name = "PATH")]
    pub(crate) pcap: Option<PathBuf>,
    /// Print the simulator's speed on stderr: packets sent by the hosts per second of wall
    /// time, per run.
    #[arg(long)]
    pub(crate) speed: bool,
    #[command(flatten)]
    pub(crate) sysctls: SysctlArgs,
}

/// `synq sim run`'s flags.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// A built-in scenario (overflow, synflood, burst, slow-accept, flood-with-legit) or a
    /// scenario file (TOML).
    #[arg(value_name = "SCENARIO|FILE")]
    scenario: String,
    /// Backlog model (default: the scenario's, else linux).
    #[arg(long, value_name = "M")]
    model: Option<String>,
    #[command(flatten)]
    out: ScenarioOut,
}

/// A built-in name or a file.
pub(crate) fn load(what: &str) -> Result<Scenario> {
    let path = Path::new(what);
    // A built-in name is the built-in, even with a file of that name here (`./burst` is
    // the file).
    if let Some(s) = synq_sim::scenario::builtin(what) {
        return Ok(s);
    }
    if path.exists() || what.ends_with(".toml") {
        let text = crate::error::read_input(path)?;
        return Scenario::from_toml(&text).map_err(|e| Error::usage(format!("{what}: {e}")));
    }
    let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
    let close = names.iter().find(|n| strsim(n, what) <= 2);
    let hint = close.map_or(String::new(), |n| format!("; did you mean {n:?}?"));
    Err(Error::usage(format!(
        "{what:?} is neither a built-in scenario ({}) nor a file{hint}",
        names.join(", ")
    )))
}

/// Edit distance, for "did you mean".
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn parse_model(m: &str) -> Result<Model> {
    m.parse()
        .map_err(|why| Error::usage(format!("--model {m:?}: {why}")))
}

/// `--models linux,bsd`: each name once, in the order given.
pub(crate) fn parse_models(list: Option<&str>) -> Result<Vec<Model>> {
    let Some(list) = list else {
        return Ok(Model::ALL.to_vec());
    };
    let mut out = Vec::new();
    for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let model: Model = m
            .parse()
            .map_err(|why| Error::usage(format!("--models {m:?}: {why}")))?;
        if !out.contains(&model) {
            out.push(model);
        }
    }
    if out.is_empty() {
        return Err(Error::usage("--models: name at least one model"));
    }
    Ok(out)
}

/// Check that output files can be created before a long run.
fn check_outputs(o: &ScenarioOut) -> Result {
    if let Some(p) = &o.plot {
        crate::sim::plot::format_of(p)?;
    }
    for (flag, p) in [("timeline", &o.timeline), ("plot", &o.plot)] {
        if let Some(p) = p {
            std::fs::File::create(p)
                .map_err(|e| Error::usage(format!("--{flag} {}: {e}", p.display())))?;
        }
    }
    Ok(())
}

pub(crate) fn run(a: &RunArgs) -> Result {
    let scenario = load(&a.scenario)?;
    let model = a.model.as_deref().map(parse_model).transpose()?;
    let model = scenario.model(model);
    execute(&scenario, &[model], &a.out, false)
}

/// Run `scenario` once per model and write every output asked for. `by_model`: the JSON
/// is `{"models": {name: report}}` (`sim compare`) even for one model.
pub(crate) fn execute(
    scenario: &Scenario,
    models: &[Model],
    o: &ScenarioOut,
    by_model: bool,
) -> Result {
    let mut runs = simulate(std::slice::from_ref(scenario), models, o)?;
    let reports = runs.pop().unwrap_or_default();
    if o.json {
        let v = if !by_model && models.len() == 1 {
            serde_json::to_value(&reports[0])
        } else {
            reports
                .iter()
                .map(|r| Ok((r.model.to_string(), serde_json::to_value(r)?)))
                .collect::<serde_json::Result<serde_json::Map<_, _>>>()
                .map(|m| {
                    serde_json::json!({
                        "scenario": scenario.name,
                        "seed": o.seed,
                        "models": m,
                    })
                })
        }
        .map_err(|e| Error::run(e.to_string()))?;
        return output::json(&v);
    }
    if o.csv {
        return output::print(|w| write_csv(w, &reports));
    }
    output::print(|w| write_table(w, scenario, o.seed, &reports))
}

/// Run every scenario once per model (same seed) and write the files asked for: timeline,
/// plot, captures. Reports by scenario, then model.
pub(crate) fn simulate(
    scenarios: &[Scenario],
    models: &[Model],
    o: &ScenarioOut,
) -> Result<Vec<Vec<RunReport>>> {
    check_outputs(o)?;
    let sysctls = assignments(&o.sysctls)?;
    let want_timeline = o.timeline.is_some() || o.plot.is_some();
    let mut progress = Progress::new(scenarios.len() * models.len());
    let mut all = Vec::new();
    for (si, scenario) in scenarios.iter().enumerate() {
        let mut reports = Vec::new();
        for (mi, &model) in models.iter().enumerate() {
            let p = RunParams {
                scenario: scenario.clone(),
                model: Some(model),
                sysctls: sysctls.clone(),
                seed: o.seed,
                timeline: want_timeline,
            };
            let mut tags = Vec::new();
            if scenarios.len() > 1 {
                tags.push(scenario.name.as_str());
            }
            if models.len() > 1 {
                tags.push(model.name());
            }
            let pcap = o.pcap.as_ref().map(|p| tagged(p, &tags));
            let run = si * models.len() + mi;
            let wall = std::time::Instant::now();
            let r = crate::capture::run_captured(pcap.as_deref(), SERVER_ADDR, |tap| {
                run_with(&p, tap, &mut |f| progress.update(run, model, f))
            })?;
            if o.speed {
                let secs = wall.elapsed().as_secs_f64();
                output::stderr(&format!(
                    "{} {}: {} packets in {secs:.3} s of wall time: {:.0} packets/s\n",
                    scenario.name,
                    model.name(),
                    r.packets,
                    r.packets as f64 / secs.max(1e-9)
                ));
            }
            reports.push(r);
        }
        all.push(reports);
    }
    progress.finish();
    if let Some(path) = &o.timeline {
        write_timeline(path, all.iter().flatten())?;
    }
    if let Some(path) = &o.plot {
        let panels: Vec<(&Scenario, &[RunReport])> = scenarios
            .iter()
            .zip(&all)
            .map(|(s, r)| (s, r.as_slice()))
            .collect();
        crate::sim::plot::draw(path, &panels)?;
    }
    Ok(all)
}

/// `a.pcap` with tags `[linux]` → `a.linux.pcap`.
fn tagged(p: &Path, tags: &[&str]) -> PathBuf {
    if tags.is_empty() {
        return p.to_path_buf();
    }
    let stem = p
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let tags = tags.join(".");
    let name = match p.extension() {
        Some(ext) => format!("{stem}.{tags}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tags}"),
    };
    p.with_file_name(name)
}

/// The columns of `--csv` (after scenario, model, seed) and their values.
fn csv_fields(r: &RunReport) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut f = |k: &str, x: String| v.push((k.to_string(), x));
    let l = r.legit.unwrap_or_default();
    f("legit_attempted", l.attempted.to_string());
    f("legit_completed", l.completed.to_string());
    f("legit_gave_up", l.gave_up.to_string());
    f("legit_in_progress", l.in_progress.to_string());
    f("legit_connected", l.connected.to_string());
    // An empty cell where no client got that far (no samples), as JSON has null.
    let cell = |x: f64, n: u64| if n == 0 { String::new() } else { x.to_string() };
    f("connect_p50_ms", cell(l.connect_ms.p50, l.connected));
    f("connect_p99_ms", cell(l.connect_ms.p99, l.connected));
    f("connect_max_ms", cell(l.connect_ms.max, l.connected));
    f("complete_p50_ms", cell(l.complete_ms.p50, l.completed));
    f("complete_p99_ms", cell(l.complete_ms.p99, l.completed));
    f("complete_max_ms", cell(l.complete_ms.max, l.completed));
    f("peak_syn_recv", r.peak.syn_recv.to_string());
    f("peak_recv_q", r.peak.recv_q.to_string());
    f("recv_q", r.listener.recv_q.to_string());
    f("send_q", r.listener.send_q.to_string());
    f("syn_recv", r.listener.syn_recv.to_string());
    f(
        "drops_accept_queue_full",
        r.drops.accept_queue_full.to_string(),
    );
    f("drops_syn_queue_full", r.drops.syn_queue_full.to_string());
    f("drops_unproven_peer", r.drops.unproven_peer.to_string());
    f("drops_conn_table_full", r.drops.conn_table_full.to_string());
    f("drops_total", r.drops.total.to_string());
    f("cookies_sent", r.cookies.sent.to_string());
    f("cookies_accepted", r.cookies.accepted.to_string());
    f("cookies_failed", r.cookies.failed.to_string());
    f("synacks_sent", r.synacks_sent.to_string());
    f("attack_packets", r.attack_packets.to_string());
    for (k, x) in &r.counters {
        f(k, x.to_string());
    }
    v
}

pub(crate) fn write_csv(w: &mut dyn Write, reports: &[RunReport]) -> io::Result<()> {
    let Some(first) = reports.first() else {
        return Ok(());
    };
    let head: Vec<String> = csv_fields(first).into_iter().map(|(k, _)| k).collect();
    writeln!(w, "scenario,model,seed,{}", head.join(","))?;
    for r in reports {
        let vals: Vec<String> = csv_fields(r).into_iter().map(|(_, v)| v).collect();
        writeln!(
            w,
            "{},{},{},{}",
            r.scenario,
            r.model,
            r.seed,
            vals.join(",")
        )?;
    }
    Ok(())
}

/// The timeline CSV: one row per model and sample.
fn write_timeline<'a>(path: &Path, reports: impl Iterator<Item = &'a RunReport>) -> Result {
    let fail = |e: io::Error| Error::run(format!("--timeline {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut w = io::BufWriter::new(file);
    let body = |w: &mut io::BufWriter<std::fs::File>| -> io::Result<()> {
        writeln!(
            w,
            "scenario,model,t_s,syn_recv,recv_q,drops,cookies_sent,completed,gave_up"
        )?;
        for r in reports {
            for s in &r.timeline {
                let Sample {
                    t,
                    syn_recv,
                    recv_q,
                    drops,
                    cookies,
                    completed,
                    gave_up,
                } = *s;
                writeln!(
                    w,
                    "{},{},{t:.6},{syn_recv},{recv_q},{drops},{cookies},{completed},{gave_up}",
                    r.scenario, r.model
                )?;
            }
        }
        w.flush()
    };
    body(&mut w).map_err(fail)
}

/// One row of the human table: a label and a value per model.
type Row = (String, Vec<String>);

fn rows(reports: &[RunReport]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let mut row = |label: &str, f: &dyn Fn(&RunReport) -> String| {
        out.push((label.to_string(), reports.iter().map(f).collect()));
    };
    if reports.iter().any(|r| r.legit.is_some()) {
        let l = |r: &RunReport| r.legit.unwrap_or_default();
        row("clients attempted", &|r| l(r).attempted.to_string());
        row("completed", &|r| l(r).completed.to_string());
        row("gave up", &|r| l(r).gave_up.to_string());
        row("still trying at the end", &|r| l(r).in_progress.to_string());
        // A dash where no client got that far.
        let lat = |c: LatencyMs, n: u64| {
            if n == 0 {
                "-".to_string()
            } else {
                format!("{} / {} / {}", ms(c.p50), ms(c.p99), ms(c.max))
            }
        };
        row("connect p50 / p99 / max, ms", &|r| {
            lat(l(r).connect_ms, l(r).connected)
        });
        row("complete p50 / p99 / max, ms", &|r| {
            lat(l(r).complete_ms, l(r).completed)
        });
    }
    row("peak SYN-RECV", &|r| r.peak.syn_recv.to_string());
    row("peak Recv-Q (accept queue)", &|r| r.peak.recv_q.to_string());
    row("end: Recv-Q / Send-Q / SYN-RECV", &|r| {
        format!(
            "{} / {} / {}",
            r.listener.recv_q, r.listener.send_q, r.listener.syn_recv
        )
    });
    row("SYNs dropped: accept queue full", &|r| {
        r.drops.accept_queue_full.to_string()
    });
    row("SYNs dropped: SYN queue full", &|r| {
        r.drops.syn_queue_full.to_string()
    });
    row("SYNs dropped: unproven peer", &|r| {
        r.drops.unproven_peer.to_string()
    });
    row("SYNs dropped: total (ListenDrops)", &|r| {
        r.drops.total.to_string()
    });
    row("SYN-ACKs sent", &|r| r.synacks_sent.to_string());
    row("cookies sent / accepted / failed", &|r| {
        format!(
            "{} / {} / {}",
            r.cookies.sent, r.cookies.accepted, r.cookies.failed
        )
    });
    if reports.iter().any(|r| r.attack_packets > 0) {
        row("attack packets", &|r| r.attack_packets.to_string());
    }
    out
}

/// Milliseconds, three significant decimals at most.
fn ms(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn write_table(
    w: &mut dyn Write,
    scenario: &Scenario,
    seed: u64,
    reports: &[RunReport],
) -> io::Result<()> {
    writeln!(
        w,
        "{}: {} ({} s, seed {seed})",
        scenario.name, scenario.description, scenario.duration_s
    )?;
    let mut table = rows(reports);
    // Counters under their nstat names, those non-zero in any model.
    table.push(("#nstat (non-zero in any model)".into(), vec![]));
    if let Some(first) = reports.first() {
        for (i, (name, _)) in first.counters.iter().enumerate() {
            if reports.iter().any(|r| r.counters[i].1 != 0) {
                table.push((
                    (*name).to_string(),
                    reports
                        .iter()
                        .map(|r| r.counters[i].1.to_string())
                        .collect(),
                ));
            }
        }
    }
    let label_w = table.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let col_w: Vec<usize> = (0..reports.len())
        .map(|i| {
            table
                .iter()
                .filter_map(|r| r.1.get(i).map(String::len))
                .chain([reports[i].model.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    write!(w, "{:<label_w$}", "model")?;
    for (r, cw) in reports.iter().zip(&col_w) {
        write!(w, "  {:>cw$}", r.model)?;
    }
    writeln!(w)?;
    for (label, vals) in &table {
        let mut line = format!("{label:<label_w$}");
        for (v, cw) in vals.iter().zip(&col_w) {
            line.push_str(&format!("  {v:>cw$}"));
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A progress bar on stderr, shown only on a terminal and only once a run has taken more
/// than a second (`SYNQ_PROGRESS_AFTER_MS` changes the delay): stdout never changes.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    after: std::time::Duration,
    models: usize,
}

impl Progress {
    fn new(models: usize) -> Self {
        let ms = std::env::var("SYNQ_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        Self {
            bar: None,
            started: std::time::Instant::now(),
            after: std::time::Duration::from_millis(ms),
            models,
        }
    }

    fn update(&mut self, i: usize, model: Model, fraction: f64) {
        use std::io::IsTerminal;
        let total = 1000 * self.models as u64;
        let pos = 1000 * i as u64 + (fraction.clamp(0.0, 1.0) * 1000.0) as u64;
        if self.bar.is_none() && self.started.elapsed() >= self.after && io::stderr().is_terminal()
        {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg:>12} [{bar:40}] {percent:>3}% {elapsed}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            b.set_message(model.name());
            b.set_position(pos);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_parse_in_order_once() {
        let m = parse_models(Some("bsd, linux,bsd")).unwrap();
        assert_eq!(m, vec![Model::Bsd, Model::Linux]);
        assert!(parse_models(Some("linux,solaris")).is_err());
        assert!(parse_models(Some(",")).is_err());
        assert_eq!(parse_models(None).unwrap(), Model::ALL.to_vec());
    }

    #[test]
    fn names_close_to_a_builtin_get_a_suggestion() {
        let e = load("flood-with-legi").unwrap_err();
        assert!(
            e.message().contains("did you mean \"flood-with-legit\""),
            "{}",
            e.message()
        );
        assert_eq!(strsim("burst", "burst"), 0);
        assert_eq!(strsim("brust", "burst"), 2);
    }

    #[test]
    fn pcap_names_per_model() {
        assert_eq!(
            tagged(Path::new("/tmp/x.pcap"), &["bsd"]),
            PathBuf::from("/tmp/x.bsd.pcap")
        );
        assert_eq!(
            tagged(Path::new("cap"), &["a", "linux"]),
            PathBuf::from("cap.a.linux")
        );
        assert_eq!(tagged(Path::new("c.pcap"), &[]), PathBuf::from("c.pcap"));
    }
}
