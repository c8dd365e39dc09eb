//! `--plot FILE.svg|FILE.png`: the queues over time, one column per model. The upper chart
//! shows SYN-RECV and the accept queue (Recv-Q) against their limits; the lower one what
//! the clients and the listener did so far (completed, gave up; SYNs dropped, cookies).

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use synq_sim::scenario::{RunReport, Scenario};

/// The file formats `--plot` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Svg,
    Png,
}

/// The format a path names by its extension.
pub(crate) fn format_of(path: &Path) -> Result<Format> {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(Error::usage(format!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ))),
    }
}

/// Register the font the plot's text is measured and drawn with.
fn font() -> Result<()> {
    synq_plot::register_font().map_err(|e| Error::usage(format!("--plot: {e}")))
}

/// Draw each scenario's reports (one per model, each with a timeline) into `path`: two rows
/// of charts per scenario, one column per model.
pub(crate) fn draw(path: &Path, panels: &[(&Scenario, &[RunReport])]) -> Result {
    let format = format_of(path)?;
    font()?;
    let cols = panels.iter().map(|p| p.1.len()).max().unwrap_or(1).max(1);
    let size = (
        (460 * cols).max(700) as u32,
        760 * panels.len().max(1) as u32,
    );
    let fail = |e: &dyn std::fmt::Display| Error::run(format!("--plot {}: {e}", path.display()));
    match format {
        Format::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            paint(&root, panels).map_err(|e| fail(&e))?;
            root.present().map_err(|e| fail(&e))
        }
        Format::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            paint(&root, panels).map_err(|e| fail(&e))?;
            root.present().map_err(|e| fail(&e))
        }
    }
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const SYN: RGBColor = RGBColor(31, 119, 180);
const ACCEPT: RGBColor = RGBColor(214, 39, 40);
const DONE: RGBColor = RGBColor(44, 160, 44);
const GAVE_UP: RGBColor = RGBColor(60, 60, 60);
const DROPS: RGBColor = RGBColor(255, 127, 14);
const COOKIES: RGBColor = RGBColor(148, 103, 189);

fn paint<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[(&Scenario, &[RunReport])],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    for ((scenario, reports), area) in panels
        .iter()
        .zip(root.split_evenly((panels.len().max(1), 1)))
    {
        panel(&area, scenario, reports)?;
    }
    Ok(())
}

fn panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    scenario: &Scenario,
    reports: &[RunReport],
) -> DrawResult<DB> {
    let title = format!("{}: {}", scenario.name, scenario.description);
    let root = root.titled(&title, ("sans-serif", 18))?;
    let n = reports.len().max(1);
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 11 / 20);
    let tops = top.split_evenly((1, n));
    let bottoms = bottom.split_evenly((1, n));
    let secs = scenario.duration_s;
    for ((r, t), b) in reports.iter().zip(&tops).zip(&bottoms) {
        queues(t, r, secs)?;
        outcomes(b, r, secs)?;
    }
    Ok(())
}

/// SYN-RECV and Recv-Q over time, with the limits as dashed lines.
fn queues<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    r: &RunReport,
    secs: f64,
) -> DrawResult<DB> {
    let peak = f64::from(r.peak.syn_recv.max(r.peak.recv_q));
    let accept_limit = f64::from(r.limits.accept);
    let syn_limit = r.limits.syn as f64;
    // The SYN-queue limit is drawn when it is within reach of the data; otherwise the
    // legend says where it is.
    let syn_in_view = syn_limit <= 4.0 * peak.max(accept_limit + 1.0);
    let mut ymax = peak.max(accept_limit + 1.0);
    if syn_in_view {
        ymax = ymax.max(syn_limit);
    }
    let ymax = (ymax * 1.15).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: queues", r.model), ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(46)
        .build_cartesian_2d(0.0..secs, 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc("virtual time, s")
        .y_desc("requests / connections")
        .x_label_formatter(&|v| secs_label(*v))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let line = |f: fn(&synq_sim::scenario::workload::Sample) -> f64| {
        r.timeline
            .iter()
            .map(move |s| (s.t, f(s)))
            .collect::<Vec<_>>()
    };
    chart
        .draw_series(LineSeries::new(
            line(|s| f64::from(s.syn_recv)),
            SYN.stroke_width(2),
        ))?
        .label(format!("SYN-RECV (peak {})", r.peak.syn_recv))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], SYN.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            line(|s| f64::from(s.recv_q)),
            ACCEPT.stroke_width(2),
        ))?
        .label(format!("Recv-Q, accept queue (peak {})", r.peak.recv_q))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], ACCEPT.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, accept_limit), (secs, accept_limit)],
            6,
            4,
            ACCEPT.mix(0.7).stroke_width(1),
        ))?
        .label(format!("backlog (Send-Q) {}", r.limits.accept))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], ACCEPT.mix(0.7)));
    let syn_label = if syn_in_view {
        format!("SYN-queue limit {}", r.limits.syn)
    } else {
        format!("SYN-queue limit {} (off the scale)", r.limits.syn)
    };
    let syn_y = if syn_in_view { syn_limit } else { ymax };
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, syn_y), (secs, syn_y)],
            6,
            4,
            SYN.mix(if syn_in_view { 0.7 } else { 0.0 }).stroke_width(1),
        ))?
        .label(syn_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], SYN.mix(0.7)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
}

/// Cumulative outcomes: clients (left axis) and SYNs (right axis).
fn outcomes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    r: &RunReport,
    secs: f64,
) -> DrawResult<DB> {
    let last = r.timeline.last().copied().unwrap_or_default();
    let clients = (last.completed + last.gave_up).max(r.legit.map_or(0, |l| l.attempted));
    let ymax = (clients as f64 * 1.1).max(10.0);
    let syns = (last.drops.max(last.cookies) as f64 * 1.1).max(10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: so far", r.model), ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(46)
        .right_y_label_area_size(56)
        .build_cartesian_2d(0.0..secs, 0.0..ymax)?
        .set_secondary_coord(0.0..secs, 0.0..syns);
    chart
        .configure_mesh()
        .x_desc("virtual time, s")
        .y_desc("clients")
        .x_label_formatter(&|v| secs_label(*v))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("SYNs")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let pts = |f: fn(&synq_sim::scenario::workload::Sample) -> u64| {
        r.timeline
            .iter()
            .map(move |s| (s.t, f(s) as f64))
            .collect::<Vec<_>>()
    };
    chart
        .draw_series(LineSeries::new(pts(|s| s.completed), DONE.stroke_width(2)))?
        .label(format!("clients completed ({})", last.completed))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], DONE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(pts(|s| s.gave_up), GAVE_UP.stroke_width(2)))?
        .label(format!("clients gave up ({})", last.gave_up))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GAVE_UP.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(pts(|s| s.drops), DROPS.stroke_width(2)))?
        .label(format!("SYNs dropped, right axis ({})", last.drops))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], DROPS.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(pts(|s| s.cookies), COOKIES.stroke_width(2)))?
        .label(format!("cookies sent, right axis ({})", last.cookies))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], COOKIES.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
}

/// Seconds on an axis: at most three decimals, no trailing zeros.
fn secs_label(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
