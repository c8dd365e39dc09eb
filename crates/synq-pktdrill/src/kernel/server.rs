//! The python3 syscall server inside the namespace, the shims its shell runs, the
//! namespace's sysctls, and errno names as the kernel spells them.

use serde_json::Value;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration as StdDuration;
use synq_tun::Netns;

use super::{SERVER_PY, SERVER_WAIT};

/// The python3 syscall server inside the namespace, one JSON line each way.
pub(super) struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Server {
    pub(super) fn spawn(ns: &Netns, dir: &Path) -> io::Result<Self> {
        let mut child = ns
            .command("python3")
            .args(["-c", SERVER_PY])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io::Error::other("python3's pipes are missing"));
                }
            };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Keep python's complaints for the error message, without blocking it.
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).take(1 << 20).read_to_string(&mut s);
            if !s.trim().is_empty() {
                let _ = writeln!(io::stderr(), "synq pktdrill --kernel: server: {}", s.trim());
            }
        });
        let s = Self {
            child,
            stdin: Some(stdin),
            lines,
        };
        let first = s.line(SERVER_WAIT)?;
        if !first.contains("ready") {
            return Err(io::Error::other(format!(
                "the syscall server said {first:?} instead of ready"
            )));
        }
        Ok(s)
    }

    pub(super) fn line(&self, wait: StdDuration) -> io::Result<String> {
        self.lines.recv_timeout(wait).map_err(|e| match e {
            RecvTimeoutError::Timeout => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the syscall server did not answer within {wait:?}"),
            ),
            RecvTimeoutError::Disconnected => io::Error::other("the syscall server exited"),
        })
    }

    pub(super) fn ask(&mut self, req: &Value) -> io::Result<Value> {
        self.ask_within(req, SERVER_WAIT)
    }

    pub(super) fn ask_within(&mut self, req: &Value, wait: StdDuration) -> io::Result<Value> {
        self.send(req)?;
        let l = self.line(wait)?;
        Self::answer(req, &l)
    }

    pub(super) fn send(&mut self, req: &Value) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("the syscall server is closed"))?;
        writeln!(stdin, "{req}")?;
        stdin.flush()
    }

    /// The answer line, if it came within `wait`.
    pub(super) fn try_line(&self, wait: StdDuration) -> io::Result<Option<String>> {
        match self.lines.recv_timeout(wait) {
            Ok(l) => Ok(Some(l)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the syscall server exited"))
            }
        }
    }

    pub(super) fn answer(req: &Value, l: &str) -> io::Result<Value> {
        let v: Value = serde_json::from_str(l)
            .map_err(|e| io::Error::other(format!("the syscall server said {l:?}: {e}")))?;
        if let Some(f) = v.get("fatal") {
            return Err(io::Error::other(format!(
                "the syscall server rejected {req}: {f}"
            )));
        }
        Ok(v)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its stdin ends its loop; kill it if it does not go at once.
        drop(self.stdin.take());
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(StdDuration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of our own under the system's temporary directory, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn create() -> io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("synq-pkd-kernel-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("bin"))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Set a sysctl in the namespace. A congestion control the host does not allow namespaces
/// to default to (only `tcp_allowed_congestion_control`) is noted for the server instead,
/// which sets it on each socket (root may).
pub(super) fn sysctl(ns: &Netns, dir: &Path, name: &str, value: &str) -> io::Result<()> {
    let name = name
        .trim()
        .trim_start_matches("/proc/sys/")
        .replace('/', ".");
    match ns.sysctl(&name, value.trim()) {
        Err(_) if name == "net.ipv4.tcp_congestion_control" => {
            let path = "/proc/sys/net/ipv4/tcp_congestion_control";
            let cur = std::fs::read_to_string(path).unwrap_or_default();
            // The root namespace's default is what a new namespace starts with.
            std::fs::write(
                dir.join("congestion"),
                format!("{} {}", cur.trim(), value.trim()),
            )
        }
        r => r,
    }
}

/// The sysctls of packetdrill's `defaults.sh` beyond what synq models (spec/packetdrill.md
/// §3.8); the rest come from the sim shell's list. tcp_fastopen and no tcp_ecn_option are
/// the kernel selftests' copy, as `conformance/common/defaults.sh` has them.
const KERNEL_DEFAULTS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fack", "0"),
    ("net.ipv4.tcp_slow_start_after_idle", "0"),
    ("net.ipv4.tcp_early_retrans", "4"),
    ("net.ipv4.tcp_tso_win_divisor", "3"),
    ("net.ipv4.tcp_ecn", "0"),
    ("net.ipv4.tcp_pacing_ss_ratio", "200"),
    ("net.ipv4.tcp_pacing_ca_ratio", "120"),
    ("net.ipv4.tcp_notsent_lowat", "4294967295"),
    ("net.ipv4.tcp_fastopen", "0x3"),
    (
        "net.ipv4.tcp_fastopen_key",
        "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4",
    ),
];

/// `defaults.sh` and `set_sysctls.py` in `dir/bin`.
pub(super) fn write_shims(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut sh = String::from(
        "#!/bin/sh\n# packetdrill's defaults.sh (spec/packetdrill.md 3.8); knobs this kernel \
         lacks are skipped.\n# set_one NAME FILE VALUE\nset_one() {\n  f=$2\n  \
         [ -e \"$f\" ] || return 0\n  echo \"$3\" 2>/dev/null > \"$f\" && return 0\n  \
         # A congestion control the host does not allow namespaces: sockets get it instead.\n  \
         if [ \"$1\" = net.ipv4.tcp_congestion_control ]; then\n    \
         echo \"$(cat \"$f\") $3\" > \"$SYNQ_PKD_DIR/congestion\"; return 0\n  fi\n  \
         echo \"defaults.sh: cannot set $1 to $3\" >&2; exit 1\n}\n\
         ip tcp_metrics flush all >/dev/null 2>&1\n",
    );
    for (n, v) in crate::shell::DEFAULTS_SH.iter().chain(KERNEL_DEFAULTS) {
        // The file name spelled out: no `tr` per knob.
        let file = format!("/proc/sys/{}", n.replace('.', "/"));
        sh.push_str(&format!("set_one {n} {file} '{v}'\n"));
    }
    sh.push_str("tc qdisc replace dev tun0 root pfifo limit 1000 >/dev/null 2>&1\nexit 0\n");
    let py = "#!/usr/bin/env python3\n\
              # packetdrill's set_sysctls.py: PATH=VALUE arguments (the namespace is thrown \
              away after the script, so nothing to restore).\n\
              import sys\n\
              for a in sys.argv[1:]:\n    \
                  path, value = a.split('=', 1)\n    \
                  with open(path, 'w') as f:\n        \
                      f.write(value)\n";
    for (name, text) in [("defaults.sh", sh.as_str()), ("set_sysctls.py", py)] {
        let p = dir.join("bin").join(name);
        std::fs::write(&p, text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// A script names `defaults.sh` and `set_sysctls.py` by a path next to it
/// (`../common/defaults.sh`); the shims stand in for them wherever they are.
pub(super) fn use_shims(cmd: &str, bin: &Path) -> String {
    let mut out = String::with_capacity(cmd.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let base = word.rsplit('/').next().unwrap_or(word);
        if base == "defaults.sh" || base == "set_sysctls.py" {
            out.push_str(&bin.join(base).to_string_lossy());
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in cmd.chars() {
        if c.is_whitespace() || ";|&()<>`'\"".contains(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Errno names as the kernel's headers spell them (python's `errno` says ENOTSUP and
/// EDEADLOCK for two of them).
const ERRNO_NAMES: &str = "\
     E2BIG EACCES EADDRINUSE EADDRNOTAVAIL EAFNOSUPPORT EAGAIN EALREADY EBADF EBADFD EBADMSG \
     EBUSY ECANCELED ECHILD ECONNABORTED ECONNREFUSED ECONNRESET EDEADLK \
     EDESTADDRREQ EDOM EDQUOT EEXIST EFAULT EFBIG EHOSTDOWN EHOSTUNREACH EIDRM EILSEQ \
     EINPROGRESS EINTR EINVAL EIO EISCONN EISDIR ELOOP EMFILE EMLINK EMSGSIZE ENAMETOOLONG \
     ENETDOWN ENETRESET ENETUNREACH ENFILE ENOBUFS ENODATA ENODEV ENOENT ENOEXEC ENOKEY \
     ENOLCK ENOLINK ENOMEM ENOMSG ENONET ENOPROTOOPT ENOSPC ENOSR ENOSYS ENOTBLK ENOTCONN \
     ENOTDIR ENOTEMPTY ENOTSOCK EOPNOTSUPP ENOTTY ENXIO EOVERFLOW EPERM EPFNOSUPPORT EPIPE \
     EPROTO EPROTONOSUPPORT EPROTOTYPE ERANGE EREMOTEIO EROFS ESHUTDOWN ESOCKTNOSUPPORT \
     ESPIPE ESRCH ESTALE ETIME ETIMEDOUT ETOOMANYREFS ETXTBSY EUSERS EXDEV";

pub(super) fn errno_name(name: &str) -> &'static str {
    let name = match name {
        "ENOTSUP" => "EOPNOTSUPP",
        "EDEADLOCK" => "EDEADLK",
        n => n,
    };
    ERRNO_NAMES
        .split_whitespace()
        .find(|&n| n == name)
        .unwrap_or("EIO")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shims_replace_script_paths() {
        let bin = Path::new("/t/bin");
        assert_eq!(
            use_shims("../common/defaults.sh; sysctl -q x=1", bin),
            "/t/bin/defaults.sh; sysctl -q x=1"
        );
        assert_eq!(
            use_shims("python3 ../../common/set_sysctls.py /proc/sys/a=1", bin),
            "python3 /t/bin/set_sysctls.py /proc/sys/a=1"
        );
        assert_eq!(
            use_shims("ss -tan | grep -c SYN", bin),
            "ss -tan | grep -c SYN"
        );
    }

    #[test]
    fn errno_names_are_the_kernel_headers() {
        assert_eq!(errno_name("ENOTSUP"), "EOPNOTSUPP");
        assert_eq!(errno_name("EAGAIN"), "EAGAIN");
        assert_eq!(errno_name("EWHAT"), "EIO");
    }
}
