//! Shared by the kernel side-by-side tests.

use std::process::Command;

/// Why the kernel cannot be used here (not root, a tool missing, no namespaces), if so.
pub(crate) fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["unshare", "python3", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output();
        if found.map_or(true, |o| !o.status.success()) {
            return Some(format!("{tool} not found"));
        }
    }
    if !Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some("cannot create a network namespace (unshare -n failed)".into());
    }
    None
}

/// As [`skip_reason`], and the kernel must offer TUN devices.
#[allow(dead_code)]
pub(crate) fn tun_skip_reason() -> Option<String> {
    skip_reason().or_else(|| {
        (!std::path::Path::new("/dev/net/tun").exists()).then(|| "/dev/net/tun missing".into())
    })
}

/// Where `netns.py`, shared with synq-verify's kernel side, lives.
const NETNS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../synq-verify/kernel");

/// `python3 SCRIPT INPUT` for every input, four at a time (each run makes its own
/// namespaces); stdout of each, or why it failed.
#[allow(dead_code)]
pub(crate) fn run_python(script: &str, inputs: &[String]) -> Vec<Result<Vec<u8>, String>> {
    let mut out = Vec::new();
    for chunk in inputs.chunks(4) {
        let children: Vec<_> = chunk
            .iter()
            .map(|input| {
                Command::new("python3")
                    .env("PYTHONPATH", NETNS_DIR)
                    .arg(script)
                    .arg(input)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
            })
            .collect();
        for c in children {
            out.push(match c.and_then(|c| c.wait_with_output()) {
                Ok(o) if o.status.success() => Ok(o.stdout),
                Ok(o) => Err(format!("{script}: {}", String::from_utf8_lossy(&o.stderr))),
                Err(e) => Err(format!("python3: {e}")),
            });
        }
    }
    out
}

/// Print `SKIP test: why` where a plain `cargo test` shows it: libtest captures `println!`
/// and `eprintln!`, not writes to the stderr handle itself.
#[allow(dead_code)]
pub(crate) fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}
