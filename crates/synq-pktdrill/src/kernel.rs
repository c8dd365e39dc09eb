//! The host's Linux kernel as the stack under test, in real time: a fresh network namespace
//! per script with a TUN device (`tun0`, the script's local address, a route to its remote
//! one), whose packets are the script's wire; system calls made by a small python3 server
//! inside the namespace (`kernel/server.py`: the workspace forbids `unsafe`, and socket2 and
//! nix lack TCP_INFO and TCP_DEFER_ACCEPT); backtick commands run by `/bin/sh` there, so
//! `sysctl`, `ss` and `nstat` are the real tools, with shims for `defaults.sh` and
//! `set_sysctls.py` first on `PATH`.
//!
//! Script time 0 is the first timed event (the init command's run time does not count, as
//! in packetdrill); each outbound packet carries the time it was read from the device.
//! Real sockets are always non-blocking: a blocking call that would block is retried by the
//! interpreter, every millisecond at most, until it completes or is late.

use crate::ast::{Expr, Syscall};
use crate::host::{Host, Res};
use crate::run::{fail, Step};
use crate::settings::{IpVersion, Settings};
use crate::sim::EPOCH;
use crate::sock::{eval, int_arg};
use crate::{Failure, SetupError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration as StdDuration;
use synq_core::wire::checksum;
use synq_core::{Duration, Instant};
use synq_tun::Netns;

/// The syscall server, run with `python3 -c`.
const SERVER_PY: &str = include_str!("../kernel/server.py");
/// Longest wait for one packet slice: the interpreter looks at blocked calls this often.
const SLICE: StdDuration = StdDuration::from_millis(1);
/// How long the server may take to start, or to answer one request.
const SERVER_WAIT: StdDuration = StdDuration::from_secs(20);
/// How long one backtick command may run before it is killed.
const COMMAND_WAIT: StdDuration = StdDuration::from_secs(120);
/// Packets read from the TUN device per step at most (the rest wait for the next one).
const MAX_READS: usize = 4096;
/// Largest read or write a script may ask for (zero-filled memory), as in the sim.
const MAX_IO: i64 = 64 << 20;
/// `virtio_net_hdr` in front of every packet of an offload device.
const VNET_HDR: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the kernel left the transport checksum unfilled.
const F_NEEDS_CSUM: u8 = 1;
const O_NONBLOCK: i64 = 0x800;
const MSG_DONTWAIT: i64 = 0x40;

/// Why scripts cannot run against the kernel here (not root, no `/dev/net/tun`, no `ip`,
/// no python3), or `None` when they can.
pub fn unavailable() -> Option<String> {
    // Asked once per process: it runs programs, and the answer does not change.
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if let Some(why) = synq_tun::unsupported() {
            return Some(why);
        }
        let python = Command::new("python3")
            .arg("-V")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !python.is_ok_and(|s| s.success()) {
            return Some(
                "python3 not found (the kernel host's system calls are a python3 script)".into(),
            );
        }
        if !Path::new("/bin/sh").exists() {
            return Some("/bin/sh not found (backtick commands run through it)".into());
        }
        None
    })
    .clone()
}

/// A TUN device with segmentation offload where the kernel allows it (a large write then
/// leaves as one super-segment, as packetdrill scripts expect).
struct Tunnel {
    dev: tun_rs::SyncDevice,
    offload: bool,
}

impl Tunnel {
    fn create(name: &str, mtu: u16) -> io::Result<Self> {
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(name)
                .mtu(mtu)
                .packet_information(false)
                .tx_queue_len(synq_tun::TX_QUEUE_LEN)
                .offload(offload)
                .enable(false)
                .build_sync()
        };
        let (dev, offload) = match build(true) {
            Ok(d) => (d, true),
            Err(_) => (build(false)?, false),
        };
        dev.set_nonblocking(true)?;
        Ok(Self { dev, offload })
    }

    /// Wait until a packet is readable or `d` has passed (to the microsecond).
    fn wait(&self, d: StdDuration) {
        use nix::poll::{ppoll, PollFd, PollFlags};
        let mut fds = [PollFd::new(self.dev.as_fd(), PollFlags::POLLIN)];
        // EINTR or an error: the caller's loop looks at the clock and tries again.
        let _ = ppoll(&mut fds, Some(d.into()), None);
    }

    /// One packet, with its TCP checksum filled in when the kernel left it to offload.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = if self.offload {
            let mut hdr = [0u8; VNET_HDR];
            self.dev
                .recv_vectored(&mut [IoSliceMut::new(&mut hdr), IoSliceMut::new(buf)])
                .map(|n| {
                    let n = n.saturating_sub(VNET_HDR);
                    if hdr[0] & F_NEEDS_CSUM != 0 {
                        fill_tcp_checksum(&mut buf[..n]);
                    }
                    n
                })
        } else {
            self.dev.recv(buf)
        };
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        if self.offload {
            let hdr = [0u8; VNET_HDR];
            let n = self
                .dev
                .send_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])?;
            Ok(n.saturating_sub(VNET_HDR))
        } else {
            self.dev.send(packet)
        }
    }
}

/// Where a packet's TCP header starts, and its addresses, if it is TCP over IPv4 or IPv6.
fn tcp_part(b: &[u8]) -> Option<(usize, IpAddr, IpAddr)> {
    match b.first()? >> 4 {
        4 if b.len() >= 20 && b[9] == 6 => {
            let ihl = usize::from(b[0] & 15) * 4;
            let s: [u8; 4] = b[12..16].try_into().ok()?;
            let d: [u8; 4] = b[16..20].try_into().ok()?;
            (b.len() >= ihl + 20).then_some((ihl, s.into(), d.into()))
        }
        6 if b.len() >= 60 && b[6] == 6 => {
            let s: [u8; 16] = b[8..24].try_into().ok()?;
            let d: [u8; 16] = b[24..40].try_into().ok()?;
            Some((40, s.into(), d.into()))
        }
        _ => None,
    }
}

fn fill_tcp_checksum(b: &mut [u8]) {
    let Some((off, src, dst)) = tcp_part(b) else {
        return;
    };
    let t = &mut b[off..];
    t[16] = 0;
    t[17] = 0;
    let sum = checksum::sum(t, checksum::pseudo_header(&src, &dst, 6, t.len() as u32));
    t[16..18].copy_from_slice(&checksum::fold(sum).to_be_bytes());
}

/// The python3 syscall server inside the namespace, one JSON line each way.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Server {
    fn spawn(ns: &Netns, dir: &Path) -> io::Result<Self> {
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

    fn line(&self, wait: StdDuration) -> io::Result<String> {
        self.lines.recv_timeout(wait).map_err(|e| match e {
            RecvTimeoutError::Timeout => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the syscall server did not answer within {wait:?}"),
            ),
            RecvTimeoutError::Disconnected => io::Error::other("the syscall server exited"),
        })
    }

    fn ask(&mut self, req: &Value) -> io::Result<Value> {
        self.ask_within(req, SERVER_WAIT)
    }

    fn ask_within(&mut self, req: &Value, wait: StdDuration) -> io::Result<Value> {
        self.send(req)?;
        let l = self.line(wait)?;
        Self::answer(req, &l)
    }

    fn send(&mut self, req: &Value) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("the syscall server is closed"))?;
        writeln!(stdin, "{req}")?;
        stdin.flush()
    }

    /// The answer line, if it came within `wait`.
    fn try_line(&self, wait: StdDuration) -> io::Result<Option<String>> {
        match self.lines.recv_timeout(wait) {
            Ok(l) => Ok(Some(l)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the syscall server exited"))
            }
        }
    }

    fn answer(req: &Value, l: &str) -> io::Result<Value> {
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
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> io::Result<Self> {
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

/// What a script fd names in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Fresh,
    Listener(Option<u16>),
    /// Connected or connecting: (our port, peer port) where known; `connecting` while a
    /// blocking connect() waits.
    Conn {
        ports: Option<(u16, u16)>,
        connecting: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Sock {
    kind: Kind,
    nonblock: bool,
}

/// The host kernel under test.
pub(crate) struct KernelHost {
    // Dropped in this order: the server, the device, then the namespace and the files.
    server: Server,
    tun: Tunnel,
    /// Held for its drop (which deletes it).
    _ns: Netns,
    tmp: TempDir,
    set: Settings,
    cwd: PathBuf,
    /// Script time 0, set by the first timed call (so the init command's run time does not
    /// count, as in packetdrill).
    start: Option<std::time::Instant>,
    rx: VecDeque<(Instant, Vec<u8>)>,
    fds: BTreeMap<i64, Sock>,
    current: Option<i64>,
    buf: Vec<u8>,
}

impl KernelHost {
    /// A namespace with `tun0` and the server, the runner's sysctls applied; commands run in
    /// `dir` (the script's directory) when given.
    pub(crate) fn new(
        set: Settings,
        sysctls: &[(String, String)],
        dir: Option<&Path>,
    ) -> Result<Self, SetupError> {
        if let Some(why) = unavailable() {
            return Err(SetupError(format!("--kernel: {why}")));
        }
        let err = |what: &str, e: io::Error| SetupError(format!("--kernel: {what}: {e}"));
        let tmp = TempDir::create().map_err(|e| err("temporary directory", e))?;
        write_shims(&tmp.0).map_err(|e| err("shims", e))?;
        let ns = Netns::create("synq-pkd").map_err(|e| err("namespace", e))?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Unique in the host's namespace while it is there (<= 15 characters).
        let name = format!(
            "pkd{}x{}",
            std::process::id() % 10_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed) % 10_000
        );
        let tun = Tunnel::create(&name, set.mtu).map_err(|e| err("TUN device", e))?;
        setup_link(&ns, &name, &set).map_err(|e| err("tun0", e))?;
        for (k, v) in sysctls {
            sysctl(&ns, &tmp.0, k, v).map_err(|e| SetupError(format!("--sysctl {k}={v}: {e}")))?;
        }
        let server = Server::spawn(&ns, &tmp.0).map_err(|e| err("syscall server", e))?;
        // `a.pkt`'s parent is "": the current directory.
        let dir = dir.map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        });
        let cwd = dir
            .filter(|d| d.is_dir())
            .map_or_else(|| tmp.0.clone(), Path::to_path_buf);
        Ok(Self {
            server,
            tun,
            _ns: ns,
            tmp,
            set,
            cwd,
            start: None,
            rx: VecDeque::new(),
            fds: BTreeMap::new(),
            current: None,
            buf: vec![0u8; 65_536 + VNET_HDR],
        })
    }

    fn start_clock(&mut self) {
        self.start.get_or_insert_with(std::time::Instant::now);
    }

    /// Read what the kernel sent, stamped now; only TCP (IPv6 neighbour discovery and the
    /// like are not the script's business).
    fn read_packets(&mut self) {
        for _ in 0..MAX_READS {
            match self.tun.recv(&mut self.buf) {
                Ok(Some(n)) => {
                    let p = &self.buf[..n.min(self.buf.len())];
                    if tcp_part(p).is_some() {
                        let now = self.now();
                        self.rx.push_back((now, p.to_vec()));
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// A command through the server; packets the kernel sends meanwhile are read as they
    /// come, so they keep their times.
    fn run_command(&mut self, req: &Value) -> io::Result<Value> {
        self.server.send(req)?;
        let end = std::time::Instant::now() + COMMAND_WAIT + SERVER_WAIT;
        loop {
            if let Some(l) = self.server.try_line(StdDuration::from_micros(500))? {
                return Server::answer(req, &l);
            }
            if self.start.is_some() {
                self.read_packets();
            }
            if std::time::Instant::now() > end {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the syscall server did not finish it",
                ));
            }
        }
    }

    fn ask(&mut self, line: usize, req: Value) -> Step<Value> {
        self.server
            .ask(&req)
            .or_else(|e| fail(line, format!("--kernel: {e}")))
    }
}

/// Move the device into the namespace as `tun0`, with the script's local address and a
/// route to everything else (the remote address included) through it.
fn setup_link(ns: &Netns, name: &str, set: &Settings) -> io::Result<()> {
    let out = Command::new("ip")
        .args(["link", "set", "dev", name, "netns", ns.name()])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip link set {name} netns: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    ns.ip(&["link", "set", "dev", name, "name", "tun0"])?;
    let local = set.local();
    if local.is_ipv6() {
        // No duplicate address detection: the address is usable at once.
        ns.ip(&[
            "addr",
            "add",
            &format!("{local}/48"),
            "dev",
            "tun0",
            "nodad",
        ])?;
    } else {
        ns.ip(&["addr", "add", &format!("{local}/16"), "dev", "tun0"])?;
    }
    ns.ip(&["link", "set", "dev", "tun0", "up"])?;
    let remote = set.remote();
    let host = if remote.is_ipv6() { "128" } else { "32" };
    ns.ip(&[
        "route",
        "replace",
        &format!("{remote}/{host}"),
        "dev",
        "tun0",
    ])?;
    let family = if remote.is_ipv6() { "-6" } else { "-4" };
    ns.ip(&[family, "route", "replace", "default", "dev", "tun0"])?;
    Ok(())
}

/// Set a sysctl in the namespace. A congestion control the host does not allow namespaces
/// to default to (only `tcp_allowed_congestion_control`) is noted for the server instead,
/// which sets it on each socket (root may).
fn sysctl(ns: &Netns, dir: &Path, name: &str, value: &str) -> io::Result<()> {
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
fn write_shims(dir: &Path) -> io::Result<()> {
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
fn use_shims(cmd: &str, bin: &Path) -> String {
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

fn errno_name(name: &str) -> &'static str {
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

/// The server's answer as a call result.
fn result(v: &Value) -> Result<i64, &'static str> {
    match (v.get("ok").and_then(Value::as_i64), v.get("err")) {
        (Some(n), _) => Ok(n),
        (None, Some(e)) => Err(errno_name(e.as_str().unwrap_or("EIO"))),
        (None, None) => Err("EIO"),
    }
}

fn ports(v: &Value) -> Option<(u16, u16)> {
    let p = v.get("ports")?.as_array()?;
    let port = |i: usize| p.get(i)?.as_u64().and_then(|x| u16::try_from(x).ok());
    Some((port(0)?, port(1)?))
}

/// Names `%{ }%` blocks see: TCP_INFO fields and SO_MEMINFO entries as the server unpacks
/// them.
const INFO_NAMES: &str = "\
     tcpi_state tcpi_ca_state tcpi_retransmits tcpi_probes tcpi_backoff tcpi_options \
     tcpi_snd_wscale tcpi_rcv_wscale tcpi_rto tcpi_ato tcpi_snd_mss tcpi_rcv_mss \
     tcpi_unacked tcpi_sacked tcpi_lost tcpi_retrans tcpi_fackets tcpi_last_data_sent \
     tcpi_last_ack_sent tcpi_last_data_recv tcpi_last_ack_recv tcpi_pmtu tcpi_rcv_ssthresh \
     tcpi_rtt tcpi_rttvar tcpi_snd_ssthresh tcpi_snd_cwnd tcpi_advmss tcpi_reordering \
     tcpi_rcv_rtt tcpi_rcv_space tcpi_total_retrans tcpi_pacing_rate tcpi_max_pacing_rate \
     tcpi_bytes_acked tcpi_bytes_received tcpi_segs_out tcpi_segs_in tcpi_notsent_bytes \
     tcpi_min_rtt tcpi_data_segs_in tcpi_data_segs_out tcpi_delivery_rate tcpi_busy_time \
     tcpi_rwnd_limited tcpi_sndbuf_limited tcpi_delivered tcpi_delivered_ce tcpi_bytes_sent \
     tcpi_bytes_retrans tcpi_dsack_dups tcpi_reord_seen tcpi_rcv_ooopack tcpi_snd_wnd \
     tcpi_rcv_wnd tcpi_rehash tcpi_total_rto tcpi_total_rto_recoveries tcpi_total_rto_time \
     SK_MEMINFO_RMEM_ALLOC SK_MEMINFO_RCVBUF SK_MEMINFO_WMEM_ALLOC SK_MEMINFO_SNDBUF \
     SK_MEMINFO_FWD_ALLOC SK_MEMINFO_WMEM_QUEUED SK_MEMINFO_OPTMEM SK_MEMINFO_BACKLOG \
     SK_MEMINFO_DROPS";

impl Host for KernelHost {
    fn now(&self) -> Instant {
        match self.start {
            None => EPOCH,
            Some(s) => EPOCH + Duration::from_micros(s.elapsed().as_micros() as u64),
        }
    }

    fn step(&mut self, limit: Instant, wake: Option<Instant>) -> bool {
        self.start_clock();
        let now = self.now();
        if now >= limit {
            return false;
        }
        let mut until = limit.min(now + Duration::from_micros(SLICE.as_micros() as u64));
        if let Some(w) = wake.filter(|&w| w > now) {
            until = until.min(w);
        }
        let d = StdDuration::from_micros(until.saturating_since(now).total_micros());
        if self.rx.is_empty() {
            self.tun.wait(d);
        }
        self.read_packets();
        true
    }

    fn settle(&mut self, t: Instant) {
        self.start_clock();
        // Bounded: the wait is the gap to t, read in slices so packets keep their times.
        let mut rounds = 0;
        while self.now() < t && rounds < 1_000_000 {
            let d = t.saturating_since(self.now()).total_micros().min(1000);
            self.tun.wait(StdDuration::from_micros(d));
            self.read_packets();
            rounds += 1;
        }
    }

    fn take_sent(&mut self, out: &mut VecDeque<(Instant, Vec<u8>)>, max: usize) {
        self.start_clock();
        self.read_packets();
        while let Some(p) = self.rx.pop_front() {
            if out.len() < max {
                out.push_back(p);
            }
        }
    }

    fn inject(&mut self, bytes: &[u8]) {
        self.start_clock();
        // A full queue or a malformed packet: the kernel drops it, as a wire would.
        let _ = self.tun.send(bytes);
    }

    fn call(
        &mut self,
        line: usize,
        call: &Syscall,
        progress: &mut i64,
        wake: Option<Instant>,
    ) -> Step<Res> {
        self.start_clock();
        self.attempt(line, call, progress, wake)
    }

    fn conn_ports(&self, fd: i64) -> Option<(u16, u16)> {
        match self.fds.get(&fd)?.kind {
            Kind::Conn { ports, .. } => ports,
            _ => None,
        }
    }

    fn listening_port(&self) -> Option<u16> {
        let port = |s: &Sock| match s.kind {
            Kind::Listener(p) => p,
            _ => None,
        };
        let cur = self.current.and_then(|fd| self.fds.get(&fd));
        cur.into_iter().chain(self.fds.values()).find_map(port)
    }

    fn tcp_info(&mut self) -> Vec<(&'static str, i64)> {
        let mut v = crate::assert::CONSTANTS.to_vec();
        let Some(fd) = self.current.filter(|fd| self.fds.contains_key(fd)) else {
            return v;
        };
        let Ok(ans) = self.server.ask(&json!({"op": "info", "fd": fd})) else {
            return v;
        };
        if let Some(info) = ans.get("info") {
            for name in INFO_NAMES.split_whitespace() {
                if let Some(x) = info.get(name).and_then(Value::as_i64) {
                    v.push((name, x));
                }
            }
        }
        v
    }

    fn command(&mut self, line: usize, cmd: &str) -> Step<(String, i32)> {
        // Run by the server (already inside the namespace), not `ip netns exec` each time:
        // a command's run time shifts the script's relative times after it, so it should
        // take what it takes under packetdrill, a few milliseconds.
        let bin = self.tmp.0.join("bin");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let tmp = self.tmp.0.display().to_string();
        let req = json!({
            "op": "sh",
            "cmd": use_shims(cmd, &bin),
            "cwd": self.cwd.display().to_string(),
            "timeout": COMMAND_WAIT.as_secs(),
            "env": {
                "PATH": path,
                "NSTAT_HISTORY": format!("{tmp}/nstat.history"),
                "SYNQ_PKD_DIR": tmp,
                "PACKETDRILL_PID": std::process::id().to_string(),
            },
        });
        let v = self
            .run_command(&req)
            .or_else(|e| fail(line, format!("--kernel: command `{}`: {e}", cmd.trim())))?;
        match result(&v) {
            Ok(status) => {
                let out = v.get("out").and_then(Value::as_str).unwrap_or_default();
                Ok((out.to_string(), i32::try_from(status).unwrap_or(128)))
            }
            Err(e) => fail(
                line,
                format!("--kernel: command `{}` could not run: {e}", cmd.trim()),
            ),
        }
    }
}

impl KernelHost {
    /// Try the call now: `Ok(None)` if it would block (the real socket never blocks).
    fn attempt(
        &mut self,
        line: usize,
        call: &Syscall,
        progress: &mut i64,
        wake: Option<Instant>,
    ) -> Step<Res> {
        let name = call.name.as_str();
        if name == "socket" {
            return self.socket(line, call);
        }
        if name == "poll" {
            return self.poll(line, call, wake);
        }
        let fd = int_arg(line, call, 0)?;
        let Some(sock) = self.fds.get(&fd).copied() else {
            return Ok(Some(Err("EBADF")));
        };
        let res: Res = match name {
            "bind" => {
                let (ip, port, _) = self.sockaddr(line, call.args.get(1), self.set.bind_port)?;
                let v = self.ask(
                    line,
                    json!({"op": "bind", "fd": fd, "addr": ip.to_string(), "port": port}),
                )?;
                Some(result(&v))
            }
            "listen" => {
                let backlog =
                    int_arg(line, call, 1)?.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                let v = self.ask(line, json!({"op": "listen", "fd": fd, "backlog": backlog}))?;
                let r = result(&v);
                if r.is_ok() {
                    self.set_kind(fd, Kind::Listener(ports(&v).map(|p| p.0)));
                }
                Some(r)
            }
            "accept" | "accept4" => {
                let newfd = if call.result >= 0 {
                    call.result
                } else {
                    1000 + fd
                };
                let v = self.ask(line, json!({"op": "accept", "fd": fd, "newfd": newfd}))?;
                match result(&v) {
                    Ok(_) => {
                        let flags = match call.args.get(3) {
                            Some(e) if name == "accept4" => eval(line, e)?,
                            _ => 0,
                        };
                        let kind = Kind::Conn {
                            ports: ports(&v),
                            connecting: false,
                        };
                        let nonblock = flags & O_NONBLOCK != 0;
                        self.fds.insert(newfd, Sock { kind, nonblock });
                        self.current = Some(newfd);
                        Some(Ok(newfd))
                    }
                    Err("EAGAIN") if !sock.nonblock => None,
                    Err(e) => Some(Err(e)),
                }
            }
            "connect" => return self.connect(line, call, fd, sock),
            "read" | "recv" | "recvfrom" => {
                let len = int_arg(line, call, 2)?.clamp(0, MAX_IO);
                let flags = match call.args.get(3) {
                    Some(e) if name != "read" => eval(line, e)?,
                    _ => 0,
                };
                let v = self.ask(
                    line,
                    json!({"op": "recv", "fd": fd, "len": len, "flags": flags}),
                )?;
                match result(&v) {
                    Err("EAGAIN") if !sock.nonblock && flags & MSG_DONTWAIT == 0 => None,
                    r => Some(r),
                }
            }
            "write" | "send" | "sendto" => {
                let len = int_arg(line, call, 2)?.clamp(0, MAX_IO);
                let flags = match call.args.get(3) {
                    Some(e) if name != "write" => eval(line, e)?,
                    _ => 0,
                };
                let nonblock = sock.nonblock || flags & MSG_DONTWAIT != 0;
                let left = (len - *progress).max(0);
                let v = self.ask(
                    line,
                    json!({"op": "send", "fd": fd, "len": left, "flags": flags}),
                )?;
                match result(&v) {
                    Ok(n) => {
                        *progress += n;
                        if *progress >= len || nonblock {
                            Some(Ok(*progress))
                        } else {
                            None
                        }
                    }
                    Err("EAGAIN") if !nonblock => None,
                    Err(_) if *progress > 0 => Some(Ok(*progress)),
                    Err(e) => Some(Err(e)),
                }
            }
            "close" => {
                let v = self.ask(line, json!({"op": "close", "fd": fd}))?;
                self.fds.remove(&fd);
                Some(result(&v))
            }
            "shutdown" => {
                let how = int_arg(line, call, 1)?;
                let v = self.ask(line, json!({"op": "shutdown", "fd": fd, "how": how}))?;
                Some(result(&v))
            }
            "fcntl" => {
                // O_NONBLOCK is the script's view; the real socket always has it.
                let cmd = int_arg(line, call, 1)?;
                match cmd {
                    3 => Some(Ok(2 | if sock.nonblock { O_NONBLOCK } else { 0 })),
                    4 => {
                        let nb = int_arg(line, call, 2)? & O_NONBLOCK != 0;
                        if let Some(s) = self.fds.get_mut(&fd) {
                            s.nonblock = nb;
                        }
                        Some(Ok(0))
                    }
                    _ => return fail(line, format!("fcntl command {cmd} is not supported")),
                }
            }
            "setsockopt" => self.setsockopt(line, call, fd)?,
            "getsockopt" => self.getsockopt(line, call, fd)?,
            other => return fail(line, format!("system call {other}() is not supported")),
        };
        Ok(res)
    }

    fn set_kind(&mut self, fd: i64, kind: Kind) {
        if let Some(s) = self.fds.get_mut(&fd) {
            s.kind = kind;
        }
    }

    fn socket(&mut self, line: usize, call: &Syscall) -> Step<Res> {
        let domain = match call.args.first() {
            Some(Expr::Ellipsis) | None => {
                if self.set.ip_version == IpVersion::V4 {
                    2
                } else {
                    10
                }
            }
            Some(e) => eval(line, e)?,
        };
        let ty = match call.args.get(1) {
            Some(e) => eval(line, e)?,
            None => 1,
        };
        let proto = match call.args.get(2) {
            Some(e) => eval(line, e)?,
            None => 0,
        };
        let fd = call.result.max(0);
        let v = self.ask(
            line,
            json!({"op": "socket", "fd": fd, "family": domain, "proto": proto}),
        )?;
        let r = result(&v);
        if r.is_ok() {
            let sock = Sock {
                kind: Kind::Fresh,
                nonblock: ty & O_NONBLOCK != 0,
            };
            self.fds.insert(fd, sock);
            self.current = Some(fd);
        }
        Ok(Some(r))
    }

    /// `...` or `{sa_family=..., sin_port=htons(N), sin_addr=inet_addr("A")}`: the address,
    /// the port, and whether the struct named an address.
    fn sockaddr(&self, line: usize, e: Option<&Expr>, port: u16) -> Step<(IpAddr, u16, bool)> {
        let (mut ip, mut port, mut named) = (self.set.local(), port, false);
        if let Some(Expr::Struct(fields)) = e {
            for (k, v) in fields {
                match k.as_str() {
                    "sin_port" | "sin6_port" => {
                        port = u16::try_from(eval(line, v)?)
                            .or_else(|_| fail(line, "port out of range"))?;
                    }
                    "sin_addr" | "sin6_addr" => {
                        if let Expr::Call(_, a) = v {
                            if let Some(Expr::Str(s)) = a.first() {
                                ip = s
                                    .parse()
                                    .or_else(|_| fail(line, format!("{s:?} is not an address")))?;
                                named = true;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok((ip, port, named))
    }

    fn connect(&mut self, line: usize, call: &Syscall, fd: i64, sock: Sock) -> Step<Res> {
        if let Kind::Conn {
            ports,
            connecting: true,
        } = sock.kind
        {
            if !sock.nonblock {
                // The retry of a blocking connect(): done once writable.
                let v = self.ask(line, json!({"op": "connect_done", "fd": fd}))?;
                if v.get("pending").is_some() {
                    return Ok(None);
                }
                self.set_kind(
                    fd,
                    Kind::Conn {
                        ports,
                        connecting: false,
                    },
                );
                return Ok(Some(result(&v)));
            }
        }
        let (mut ip, port, named) = self.sockaddr(line, call.args.get(1), self.set.connect_port)?;
        if !named {
            ip = self.set.remote();
        }
        let v = self.ask(
            line,
            json!({"op": "connect", "fd": fd, "addr": ip.to_string(), "port": port}),
        )?;
        let r = result(&v);
        let known = match sock.kind {
            Kind::Conn { ports, .. } => ports,
            _ => None,
        };
        let ports = ports(&v).or(known);
        match r {
            Ok(_) => {
                self.set_kind(
                    fd,
                    Kind::Conn {
                        ports,
                        connecting: false,
                    },
                );
                Ok(Some(r))
            }
            Err("EINPROGRESS") => {
                self.set_kind(
                    fd,
                    Kind::Conn {
                        ports,
                        connecting: true,
                    },
                );
                Ok(if sock.nonblock { Some(r) } else { None })
            }
            Err(_) => Ok(Some(r)),
        }
    }

    fn setsockopt(&mut self, line: usize, call: &Syscall, fd: i64) -> Step<Res> {
        let level = int_arg(line, call, 1)?;
        let name = int_arg(line, call, 2)?;
        let mut req = json!({"op": "setsockopt", "fd": fd, "level": level, "name": name});
        match call.args.get(3) {
            Some(Expr::Str(s)) => req["str"] = json!(s),
            Some(Expr::Struct(f)) => {
                let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| eval(line, v));
                let on = get("onoff").transpose()?.unwrap_or(0);
                let secs = get("linger").transpose()?.unwrap_or(0);
                req["linger"] = json!([on, secs]);
            }
            Some(e) => req["int"] = json!(eval(line, e)?),
            None => return fail(line, "setsockopt() needs a value"),
        }
        let v = self.ask(line, req)?;
        Ok(Some(result(&v)))
    }

    fn getsockopt(&mut self, line: usize, call: &Syscall, fd: i64) -> Step<Res> {
        let level = int_arg(line, call, 1)?;
        let name = int_arg(line, call, 2)?;
        let want = call.args.get(3);
        let kind = match (level, name, want) {
            (_, _, Some(Expr::Struct(_))) | (1, 13, _) => "linger",
            (_, _, Some(Expr::Str(_))) | (6, 13, _) => "str",
            _ => "int",
        };
        let v = self.ask(
            line,
            json!({"op": "getsockopt", "fd": fd, "level": level, "name": name, "kind": kind}),
        )?;
        let r = result(&v);
        if r.is_err() {
            return Ok(Some(r));
        }
        let mismatch = |want: String, got: String| {
            Err(Failure {
                line,
                msg: "getsockopt() returned an unexpected value".into(),
                expected: Some(want),
                actual: Some(got),
            })
        };
        let linger = v.get("linger").and_then(Value::as_array);
        let lv = |i: usize| {
            linger
                .and_then(|l| l.get(i))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        match want {
            Some(Expr::List(items)) => {
                if let Some(w) = items.first() {
                    let w = eval(line, w)?;
                    // SO_LINGER as an int: its seconds when on, else -1 (as the sim says).
                    let got = if kind == "linger" {
                        if lv(0) != 0 {
                            lv(1)
                        } else {
                            -1
                        }
                    } else {
                        v.get("int").and_then(Value::as_i64).unwrap_or(0)
                    };
                    if w != got {
                        return mismatch(format!("[{w}]"), format!("[{got}]"));
                    }
                }
            }
            Some(Expr::Struct(f)) if kind == "linger" => {
                for (k, i) in [("onoff", 0), ("linger", 1)] {
                    if let Some((_, e)) = f.iter().find(|(n, _)| n == k) {
                        let w = eval(line, e)?;
                        if w != lv(i) {
                            return mismatch(
                                format!("{k}={w}"),
                                format!("{{onoff={}, linger={}}}", lv(0), lv(1)),
                            );
                        }
                    }
                }
            }
            Some(Expr::Str(w)) => {
                let got = v.get("str").and_then(Value::as_str).unwrap_or("");
                if got != w {
                    return mismatch(format!("{w:?}"), format!("{got:?}"));
                }
            }
            _ => {}
        }
        Ok(Some(r))
    }

    /// `poll([{fd=N, events=E, revents=R}, ...], nfds, timeout_ms)`, retried until something
    /// is ready or the timeout passes (the interpreter wakes it then).
    fn poll(&mut self, line: usize, call: &Syscall, wake: Option<Instant>) -> Step<Res> {
        let items = crate::sock::poll_items(line, call)?;
        let asked: Vec<Value> = items.iter().map(|it| json!([it.fd, it.events])).collect();
        let v = self.ask(line, json!({"op": "poll", "items": asked}))?;
        let got: Vec<i64> = v
            .get("revents")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| x.as_i64().unwrap_or(0)).collect())
            .unwrap_or_default();
        crate::sock::poll_verdict(line, call, &items, &got, self.now(), wake)
    }
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

    #[test]
    fn offload_checksum_is_filled() {
        let p = crate::ast::Packet {
            dir: crate::ast::Dir::Out,
            ports: None,
            ip: Default::default(),
            flags: crate::ast::flag::ACK,
            seq: 1,
            len: 10,
            ack: Some(1),
            win: Some(100),
            urg: None,
            options: None,
        };
        let src: IpAddr = "192.168.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let dst: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut b = crate::pkt::build(src, dst, 8080, 48000, &p, 1, 1, &[]);
        b[36] ^= 0xff;
        fill_tcp_checksum(&mut b);
        assert!(crate::pkt::decode(&b).is_some_and(|s| s.csum_ok));
    }
}
