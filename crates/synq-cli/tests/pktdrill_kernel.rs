//! `synq pktdrill --kernel`: the host kernel as the stack under test (root only), and its
//! usage errors.

use std::io::Write as _;
use std::process::Command;

fn synq(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synq"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn script(name: &str) -> String {
    format!(
        "{}/../synq-pktdrill/tests/kernel/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn kernel_and_model_do_not_mix() {
    let (code, _, err) = synq(&[
        "pktdrill",
        "--kernel",
        "--model",
        "linux",
        &script("accept-eagain.pkt"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--kernel"), "{err}");
}

#[test]
fn a_script_replays_against_the_kernel() {
    if let Some(why) = synq_pktdrill::kernel::unavailable() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP a_script_replays_against_the_kernel: {why}"
        );
        let (code, _, err) = synq(&["pktdrill", "--kernel", &script("accept-eagain.pkt")]);
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        return;
    }
    let (code, out, err) = synq(&[
        "pktdrill",
        "--kernel",
        "--tolerance_usecs=20000",
        &script("accept-eagain.pkt"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS") && out.contains("s real"), "{out}");
}
