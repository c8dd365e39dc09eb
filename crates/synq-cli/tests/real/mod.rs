//! Shared by the real-traffic tests: a `synq serve` inside a namespace of the test's own,
//! reached by the kernel's clients in that namespace, stopped and cleaned up on drop (also
//! when the test fails).

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
pub use synq_tun::Netns;

/// Print SKIP so a plain `cargo test` shows it: libtest captures `println!`, not writes to
/// the stderr handle itself.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// Why real-traffic tests cannot run here, if they cannot (not root, no /dev/net/tun, no
/// `ip`, or `extra` programs missing).
pub fn unsupported(extra: &[&str]) -> Option<String> {
    if let Some(why) = synq_tun::unsupported() {
        return Some(why);
    }
    for tool in extra {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            return Some(format!("{tool} not found"));
        }
    }
    None
}

/// The kernel side of the TUN link, and the stack's address.
pub const HOST: &str = "10.71.0.1";
/// The stack's address.
pub const STACK: &str = "10.71.0.2";

/// A running `synq serve` in its own namespace. Dropping it sends SIGTERM, waits, then
/// kills; the namespace goes after the server.
pub struct Server {
    pub child: Option<Child>,
    pub control: PathBuf,
    pub dir: PathBuf,
    pub ns: Netns,
}

impl Server {
    /// `synq serve --tun sq0 --addr STACK --peer HOST/24 --port PORT --backlog B ARGS...` in a
    /// fresh namespace; returns once it printed `ready` (panics after 20 s).
    pub fn start(tag: &str, port: u16, backlog: i32, args: &[&str]) -> Self {
        let ns = Netns::create(&format!("sq{tag}")).expect("netns");
        Self::start_in(ns, port, backlog, args)
    }

    /// As [`Server::start`], in a namespace the caller prepared (see [`quiet_netns`]).
    pub fn start_in(ns: Netns, port: u16, backlog: i32, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-{}", ns.name(), std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let control = dir.join("ctl.sock");
        let mut child = ns
            .command(env!("CARGO_BIN_EXE_synq"))
            .args(["serve", "--tun", "sq0", "--addr", STACK])
            .args(["--peer", &format!("{HOST}/24"), "--port", &port.to_string()])
            .args(["--backlog", &backlog.to_string(), "--control"])
            .arg(&control)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn synq serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Self {
            child: Some(child),
            control,
            dir,
            ns,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.trim() == "ready" => server,
            other => {
                let err = server.stop_output();
                panic!("synq serve did not get ready ({other:?}): {err}");
            }
        }
    }

    /// `synq stat --json` of this server.
    pub fn stat(&self) -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_synq"))
            .args(["stat", "--json", "--control"])
            .arg(&self.control)
            .output()
            .expect("synq stat");
        assert!(
            out.status.success(),
            "synq stat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("synq stat --json")
    }

    /// A counter from `synq stat`.
    pub fn counter(&self, name: &str) -> u64 {
        self.stat()["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    /// The server's process id (`ip netns exec` execs it: no process in between).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server still running").id()
    }

    /// Send `signal` (`TERM`, `KILL`, ...) and wait up to `limit` for the exit; its status and
    /// stderr. Panics (after SIGKILL) if the server outlives `limit`.
    pub fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("server still running");
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break false,
            }
        };
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("wait for synq serve");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            exited,
            "synq serve still ran {limit:?} after SIG{signal}: {stderr}"
        );
        (out.status, stderr)
    }

    /// SIGTERM, then wait up to 10 s (then SIGKILL); stderr of the server.
    pub fn stop_output(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A namespace whose links carry only what a test sends: IPv6 is off, so the kernel sends no
/// router solicitations or MLD reports over the TUN device (best effort: a kernel without
/// IPv6 has no such knobs and sends none anyway).
pub fn quiet_netns(tag: &str) -> Netns {
    let ns = Netns::create(&format!("sq{tag}")).expect("netns");
    for knob in ["all", "default"] {
        let _ = ns.sysctl(&format!("net.ipv6.conf.{knob}.disable_ipv6"), "1");
    }
    ns
}

/// Run `cmd` with stdin empty and stdout and stderr captured; kill it and panic if it runs
/// longer than `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "{cmd:?} still ran after {limit:?}, killed; stderr: {}",
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}
