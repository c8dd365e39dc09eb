//! What the suite reports: one run as measured, or several as each figure's median with
//! each run's ratios and SYN rates ranged (`--runs`).

use crate::{machine, RX_BATCH};
use serde_json::json;

/// What `runs` report together: one run as it is; several as each numeric key's median
/// (`kernel_handshakes_per_sec` null if any run had no kernel; a value every run shares,
/// such as `handshake_sockets`, as it is), with `runs` and every run under `each_run`.
pub(crate) fn summary(runs: &[serde_json::Value]) -> serde_json::Value {
    let mut out = runs.first().cloned().unwrap_or_else(|| json!({}));
    let Some(o) = out.as_object_mut() else {
        return out;
    };
    if runs.len() > 1 {
        for (key, v) in o.iter_mut() {
            if runs.iter().all(|r| r[key.as_str()] == *v) {
                continue;
            }
            let all: Option<Vec<f64>> = runs.iter().map(|r| r[key.as_str()].as_f64()).collect();
            *v = match all {
                Some(mut all) => json!(median(&mut all)),
                None => serde_json::Value::Null,
            };
        }
        o.insert("each_run".into(), json!(runs));
    }
    o.insert("runs".into(), json!(runs.len()));
    out
}

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The table for `out` (one run, or the medians of `each`), and with several runs each
/// ratio's and SYN rate's range over them.
pub(crate) fn table(out: &serde_json::Value, each: &[serde_json::Value]) {
    let f = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let s = f(out, "secs");
    let sockets = f(out, "handshake_sockets");
    let (handshakes, smol_handshakes) = (
        f(out, "handshakes_per_sec"),
        f(out, "smoltcp_handshakes_per_sec"),
    );
    let kernel = out["kernel_handshakes_per_sec"].as_f64();
    let floor = f(out, "handshake_floor_per_sec");
    let (syn0, syn0_batched) = (
        f(out, "syn_per_sec_cookies0"),
        f(out, "syn_per_sec_cookies0_batched"),
    );
    let (syn2, syn_full) = (
        f(out, "syn_per_sec_cookies2"),
        f(out, "syn_per_sec_accept_queue_full"),
    );
    let (half_open, half_open_v6) = (f(out, "half_open_bytes"), f(out, "half_open_bytes_ipv6"));
    let established = f(out, "established_idle_bytes");
    let cookie_ns = f(out, "cookie_check_ns");
    let (bulk, smol_bulk) = (
        f(out, "bulk_bytes_per_sec"),
        f(out, "smoltcp_bulk_bytes_per_sec"),
    );
    if each.len() > 1 {
        say!(
            "synq-bench, {s} s per figure, one core each; medians of {} runs",
            each.len()
        );
    } else {
        say!("synq-bench, {s} s per figure, one core each");
    }
    say!(
        "handshakes/s, {sockets} at a time: synq {handshakes:.0}, smoltcp {smol_handshakes:.0} ({:.2}x), kernel {}",
        ratio(handshakes, smol_handshakes),
        kernel.map_or("n/a (needs root)".into(), |k| format!(
            "{k:.0} ({:.2}x)",
            ratio(handshakes, k)
        ))
    );
    say!(
        "handshake floor (its five packets parsed and emitted, its keyed hashes, no state): {floor:.0}/s ({:.2}x smoltcp)",
        ratio(floor, smol_handshakes)
    );
    say!("SYNs/s: cookies 0 {syn0:.0} ({syn0_batched:.0} handed over {RX_BATCH} at a time), cookies 2 {syn2:.0}, accept queue full {syn_full:.0}");
    say!("half-open request: {half_open:.1} bytes all-in ({half_open_v6:.1} from IPv6 peers); idle established connection: {established:.0} bytes all-in");
    say!("cookie check (a forged ACK handled, parse included): {cookie_ns:.1} ns");
    say!(
        "bulk in memory: synq {:.0} MB/s, smoltcp {:.0} MB/s ({:.2}x)",
        bulk / 1e6,
        smol_bulk / 1e6,
        ratio(bulk, smol_bulk)
    );
    say!("{}", machine::line_of(out));
    if each.len() < 2 {
        return;
    }
    // Ratios are taken within each run (the pairs ran interleaved), then ranged.
    let range = |key: &str, digits: usize, of: &dyn Fn(&serde_json::Value) -> f64| {
        let xs: Vec<f64> = each.iter().map(of).collect();
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{key} {lo:.digits$}-{hi:.digits$}")
    };
    let per_run =
        |a: &'static str, b: &'static str| move |r: &serde_json::Value| ratio(f(r, a), f(r, b));
    let mut line = vec![
        range(
            "handshakes/smoltcp",
            3,
            &per_run("handshakes_per_sec", "smoltcp_handshakes_per_sec"),
        ),
        range(
            "floor/smoltcp",
            3,
            &per_run("handshake_floor_per_sec", "smoltcp_handshakes_per_sec"),
        ),
        range(
            "bulk/smoltcp",
            3,
            &per_run("bulk_bytes_per_sec", "smoltcp_bulk_bytes_per_sec"),
        ),
    ];
    if kernel.is_some() {
        line.push(range(
            "handshakes/kernel",
            3,
            &per_run("handshakes_per_sec", "kernel_handshakes_per_sec"),
        ));
    }
    say!("each run's ratio, lowest-highest: {}", line.join(", "));
    let mut line = Vec::new();
    for (name, key) in [
        ("cookies 0", "syn_per_sec_cookies0"),
        ("batched", "syn_per_sec_cookies0_batched"),
        ("cookies 2", "syn_per_sec_cookies2"),
        ("accept queue full", "syn_per_sec_accept_queue_full"),
    ] {
        line.push(range(name, 2, &|r: &serde_json::Value| f(r, key) / 1e6));
    }
    say!(
        "SYNs/s over the runs, millions, lowest-highest: {}",
        line.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::{median, summary};
    use serde_json::json;

    #[test]
    fn median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn summary_gives_medians_and_keeps_every_run() {
        let runs = [
            json!({"a": 1.0, "k": 10.0, "n": 16}),
            json!({"a": 9.0, "k": null, "n": 16}),
            json!({"a": 4.0, "k": 30.0, "n": 16}),
        ];
        let out = summary(&runs);
        assert_eq!(out["a"], 4.0);
        // A figure missing from any run (no kernel there) is missing from the summary.
        assert!(out["k"].is_null(), "{out}");
        // A setting every run shares keeps its form (an integer stays one).
        assert_eq!(out["n"], json!(16));
        assert!(out["n"].is_u64(), "{out}");
        assert_eq!(out["runs"], 3);
        assert_eq!(out["each_run"].as_array().map(Vec::len), Some(3));
        assert_eq!(out["each_run"][1]["a"], 9.0);
        // One run is reported as it is, with only its count added.
        let one = summary(&runs[..1]);
        assert_eq!(one["a"], 1.0);
        assert_eq!(one["runs"], 1);
        assert!(one.get("each_run").is_none(), "{one}");
    }
}
