//! SYN rate against legitimate connect latency, on one core: spoofed SYNs arrive at a given
//! rate and a legitimate client's SYN every millisecond; packets wait in a receive ring of
//! [`RING`] slots (a full ring drops, as a NIC does) and one core serves them in order, each
//! taking the time its `handle_packet` and `poll_transmit` really took here. A legitimate
//! client's latency is from its SYN's arrival to the SYN-ACK leaving; a SYN the ring or the
//! listener drops costs the client its SYN retransmission, 1 s later, counted as 1 s (a
//! lower bound).

use crate::{B, PORT};
use core::net::SocketAddr;
use std::collections::VecDeque;
use std::time::Instant as Wall;
use synq_core::wire::{peek_dst, peek_src};
use synq_core::{Config, Instant, Stack};

/// Receive-ring slots (a common NIC ring size).
pub(crate) const RING: usize = 4096;
/// Between two legitimate SYNs.
const LEGIT_GAP_NS: f64 = 1e6;
/// What a dropped legitimate SYN costs: the client's first SYN retransmission (Linux: 1 s).
const DROP_COST_US: f64 = 1e6;
/// Offered flood rates (SYN/s).
pub(crate) const RATES: [f64; 9] = [0.0, 1e4, 1e5, 3e5, 1e6, 2e6, 3e6, 5e6, 1e7];

/// One point of the figure.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Point {
    pub(crate) rate: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Legitimate SYNs not answered on their first try (ring or listener drop).
    pub(crate) legit_dropped: f64,
    /// Flood SYNs the ring dropped.
    pub(crate) ring_dropped: f64,
    /// Packets served per second of busy core time.
    pub(crate) served_per_sec: f64,
}

fn server(cookies: &str) -> Stack {
    // Linux defaults otherwise (backlog 4096 clamped by somaxconn, tcp_max_syn_backlog
    // 2048): with cookies off a flood fills the SYN queue and legitimate SYNs are refused.
    let mut c = Config::default();
    c.set("net.ipv4.tcp_syncookies", cookies).expect("valid");
    let mut s = Stack::new(c, 7);
    s.add_address(B);
    s.listen(Instant::ZERO, SocketAddr::new(B, PORT), 4096)
        .expect("listen");
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Serve `span_s` seconds of arrivals at `rate` flood SYN/s.
pub(crate) fn point(rate: f64, cookies: &str, span_s: f64) -> Point {
    let mut s = server(cookies);
    let span_ns = span_s * 1e9;
    let flood_gap = if rate > 0.0 {
        1e9 / rate
    } else {
        f64::INFINITY
    };
    let (mut next_flood, mut next_legit) = (0.0f64, 0.0f64);
    let (mut fi, mut li) = (0u32, 0u32);
    // Start times of admitted packets not yet started by the current arrival (the ring).
    let mut waiting: VecDeque<f64> = VecDeque::with_capacity(RING + 1);
    let mut free_at = 0.0f64;
    let mut busy_ns = 0.0f64;
    let mut served = 0u64;
    let (mut pkt, mut out) = (Vec::with_capacity(128), Vec::with_capacity(2048));
    let mut latencies = Vec::new();
    let (mut legit, mut legit_dropped, mut ring_dropped, mut flood) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let is_legit = next_legit <= next_flood;
        let at = if is_legit { next_legit } else { next_flood };
        if at >= span_ns {
            break;
        }
        if is_legit {
            // Legitimate clients from their own range of addresses (far from the flood's).
            synq_sim::scenario::spoofed_syn(
                0x4000_0000 + li,
                li,
                SocketAddr::new(B, PORT),
                &mut pkt,
            );
            li += 1;
            legit += 1;
            next_legit += LEGIT_GAP_NS;
        } else {
            synq_sim::scenario::spoofed_syn(
                fi,
                fi.wrapping_mul(2_654_435_761),
                SocketAddr::new(B, PORT),
                &mut pkt,
            );
            fi += 1;
            flood += 1;
            next_flood += flood_gap;
        }
        while waiting.front().is_some_and(|&st| st <= at) {
            waiting.pop_front();
        }
        if waiting.len() >= RING {
            if is_legit {
                legit_dropped += 1;
                latencies.push(DROP_COST_US);
            } else {
                ring_dropped += 1;
            }
            continue;
        }
        let start = at.max(free_at);
        waiting.push_back(start);
        let now = Instant::from_micros((start / 1e3) as u64);
        let src = peek_src(&pkt);
        let t0 = Wall::now();
        s.handle_packet(now, &pkt);
        let mut answered = false;
        while let Some(n) = s.poll_transmit(now, &mut out) {
            answered |= is_legit && peek_dst(&out[..n]) == src;
        }
        let took = t0.elapsed().as_nanos() as f64;
        free_at = start + took;
        busy_ns += took;
        served += 1;
        if is_legit {
            if answered {
                latencies.push((free_at - at) / 1e3);
            } else {
                legit_dropped += 1;
                latencies.push(DROP_COST_US);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    Point {
        rate,
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
        legit_dropped: legit_dropped as f64 / legit.max(1) as f64,
        ring_dropped: ring_dropped as f64 / flood.max(1) as f64,
        served_per_sec: served as f64 / (busy_ns / 1e9).max(1e-9),
    }
}

/// Register the font the figure's text is measured and drawn with (checked before the
/// measurements run).
pub(crate) fn font() -> Result<(), String> {
    synq_plot::register_font().map_err(|e| format!("--latency-plot: {e}"))
}

/// Every rate for cookies 0, 1 and 2: print the table, draw `path` (SVG).
pub(crate) fn figure(path: &str, span_s: f64) -> Result<(), String> {
    let mut series = Vec::new();
    say!("offered SYN/s  cookies  legit p50 us  legit p99 us  legit dropped  flood ring-dropped  served/s");
    for cookies in ["0", "1", "2"] {
        let mut pts = Vec::new();
        for &r in &RATES {
            let p = point(r, cookies, span_s);
            say!(
                "{:>13.0}  {:>7}  {:>12.1}  {:>12.1}  {:>12.1}%  {:>18.1}%  {:>8.0}",
                p.rate,
                cookies,
                p.p50_us,
                p.p99_us,
                p.legit_dropped * 100.0,
                p.ring_dropped * 100.0,
                p.served_per_sec
            );
            pts.push(p);
        }
        series.push((cookies, pts));
    }
    draw(path, &series).map_err(|e| format!("{path}: {e}"))
}

fn draw(path: &str, series: &[(&str, Vec<Point>)]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Legitimate connect latency (SYN to SYN-ACK, p99) under a spoofed SYN flood, one core",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1e3f64..2e7f64).log_scale(), (0.1f64..2e6f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("offered flood rate, SYN/s (0 plotted at 1000)")
        .y_desc("p99 latency, µs (1 s = SYN dropped, client retries)")
        .draw()?;
    for (i, (cookies, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let data: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.rate.max(1e3), p.p99_us.max(0.1)))
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
            .label(format!("tcp_syncookies={cookies}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(
            data.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
