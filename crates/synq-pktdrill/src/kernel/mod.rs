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

mod calls;
mod net;
mod server;

use crate::ast::Syscall;
use crate::host::{Host, Res};
use crate::run::{fail, Step};
use crate::settings::Settings;
use crate::sim::EPOCH;
use crate::SetupError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration as StdDuration;
use synq_core::{Duration, Instant};
use synq_tun::Netns;

use net::{setup_link, tcp_part, Tunnel};
use server::{errno_name, sysctl, use_shims, write_shims, Server, TempDir};

/// The syscall server, run with `python3 -c`.
const SERVER_PY: &str = include_str!("../../kernel/server.py");
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
    /// Real time: ten minutes.
    fn any_wait(&self) -> Duration {
        Duration::from_secs(600)
    }

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
