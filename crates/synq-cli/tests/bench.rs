//! `synq bench` runs the synq-bench binary (built beside `synq`) with its arguments and
//! exits as it does; without it, one line says how to build it (exit 2).

mod common;

use common::text;
use std::path::PathBuf;
use std::process::Command;

fn bench_beside() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_synq")).with_file_name("synq-bench")
}

#[test]
fn runs_synq_bench_or_says_how_to_build_it() {
    if bench_beside().is_file() {
        let (code, out, err) = text(
            Command::new(env!("CARGO_BIN_EXE_synq"))
                .args(["bench", "--only", "syn-cookies2", "--secs", "0.05"])
                .output()
                .expect("runs"),
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with("syn-cookies2: ") && out.contains(" per second"),
            "{out}"
        );
        // Its bad input is still one line and exit 2.
        let (code, _, err) = text(
            Command::new(env!("CARGO_BIN_EXE_synq"))
                .args(["bench", "--secs", "x"])
                .output()
                .expect("runs"),
        );
        assert_eq!(code, 2);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // SYNQ_BENCH naming a binary that is not there: the run fails, one line, exit 1.
    let (code, _, err) = text(
        Command::new(env!("CARGO_BIN_EXE_synq"))
            .arg("bench")
            .env("SYNQ_BENCH", "/nonexistent/synq-bench")
            .output()
            .expect("runs"),
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/synq-bench"), "{err}");
}
