//! The synq host: a fresh [`Stack`] on a virtual clock, with script fds over its handles
//! (a script fd is a name, the number the script expects `socket()` or `accept()` to
//! return, not a kernel descriptor).

use crate::ast::{Expr, Syscall};
use crate::host::{Host, Res};
use crate::run::{fail, Step};
use crate::settings::Settings;
use crate::sock::{eval, int_arg, poll_items, poll_verdict};
use crate::Failure;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use synq_core::error::Errno;
use synq_core::wire::checksum;
use synq_core::{Config, ConnHandle, Duration, Instant, ListenerHandle, Stack, State};

/// Where the virtual clock starts (a script's time 0).
pub(crate) const EPOCH: Instant = Instant::from_secs(1);

/// A synq stack under test.
pub(crate) struct SimHost {
    pub(crate) stack: Stack,
    pub(crate) now: Instant,
    pub(crate) set: Settings,
    pub(crate) fds: BTreeMap<i64, Sock>,
    /// The socket `%{ }%` blocks look at: the last one socket() or accept() returned.
    pub(crate) current: Option<i64>,
    /// nstat's history (what the last plain `nstat` printed), per counter.
    pub(crate) nstat_seen: BTreeMap<&'static str, u64>,
    tx_buf: Vec<u8>,
}

impl SimHost {
    /// Segments per super-segment for the connection `pkt` belongs to: Linux's TSO
    /// autosizing (`tcp_tso_autosize`), about 1 ms of the pacing rate (cwnd x MSS / SRTT
    /// times 200 % in slow start, 120 % after), plus 64 KB >> (RTT / 512 us) on short
    /// paths, at least `tcp_min_tso_segs` (2). `None` for a packet of no connection.
    fn tso_segs(&self, pkt: &[u8]) -> Option<usize> {
        let d = crate::pkt::decode(pkt)?;
        let i = self.stack.connections().find(|c| {
            c.tuple.local.port() == d.sport
                && c.tuple.remote.port() == d.dport
                && c.tuple.remote.ip() == d.dst
        })?;
        let mss = u64::from(i.mss.max(1));
        let Some(srtt) = i.srtt.map(|s| s.total_micros()).filter(|&us| us > 0) else {
            // No RTT sample yet: no pacing rate, no limit but the device's.
            return Some(usize::MAX);
        };
        let cwnd = (u64::from(i.cwnd) / mss).max(1);
        let ratio = if u64::from(i.cwnd) < u64::from(i.ssthresh) / 2 {
            200
        } else {
            120
        };
        let rate = mss * cwnd * ratio * 10_000 / srtt;
        let mut bytes = rate >> 10;
        let r = srtt >> 9;
        if r < 32 {
            bytes += 65_536 >> r;
        }
        Some((bytes.min(65_536) / mss).max(2) as usize)
    }

    pub(crate) fn new(set: Settings, config: Config) -> Self {
        let mut stack = Stack::new(config, 1);
        stack.add_address(set.local());
        Self {
            stack,
            now: EPOCH,
            set,
            fds: BTreeMap::new(),
            current: None,
            nstat_seen: BTreeMap::new(),
            tx_buf: Vec::new(),
        }
    }
}

/// A `*` line's longest wait in virtual time: a day, past any keepalive or retransmission
/// a script waits for (the clock jumps from timer to timer, so waiting costs nothing).
const ANY_WAIT: Duration = Duration::from_secs(86_400);

impl Host for SimHost {
    fn any_wait(&self) -> Duration {
        ANY_WAIT
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn step(&mut self, limit: Instant, wake: Option<Instant>) -> bool {
        match (self.stack.poll_timeout(), wake) {
            (Some(d), w) if d <= limit && w.is_none_or(|w| d <= w) => {
                self.now = self.now.max(d);
                self.stack.handle_timeout(self.now);
                true
            }
            (_, Some(w)) if w <= limit && w > self.now => {
                self.now = w;
                true
            }
            _ => false,
        }
    }

    fn settle(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }

    fn take_sent(&mut self, out: &mut VecDeque<(Instant, Vec<u8>)>, max: usize) {
        let mut burst = Vec::new();
        while let Some(n) = self.stack.poll_transmit(self.now, &mut self.tx_buf) {
            burst.push(self.tx_buf[..n].to_vec());
        }
        while self.stack.poll_event().is_some() {}
        // Linux hands its device one super-segment per run of full segments (TSO/GSO), and
        // packetdrill scripts expect a large write to leave that way; 4.4BSD has no offload.
        let gso = !self.stack.config().model.single_queue();
        let mut merged = Vec::new();
        let mut i = 0;
        while i < burst.len() {
            let (take, tso) = match gso.then(|| self.tso_segs(&burst[i])).flatten() {
                Some(segs) => synq_core::gso::coalesce_upto(&burst[i..], segs, &mut merged),
                None => (1, None),
            };
            let pkt = match tso {
                Some(t) => {
                    let l3 = usize::from(t.l3_len);
                    // Linux's write chunks (each a `size_goal` of the write) all carry PSH
                    // when the write ends in this burst, as the 6.18 kernel shows them.
                    let push = burst[i..].iter().any(|p| {
                        crate::pkt::decode(p).is_some_and(|d| {
                            d.flags & crate::ast::flag::PSH != 0
                                && Some((d.sport, d.dport))
                                    == crate::pkt::decode(&merged).map(|m| (m.sport, m.dport))
                        })
                    });
                    if push {
                        if let Some(f) = merged.get_mut(l3 + 13) {
                            *f |= crate::ast::flag::PSH as u8;
                        }
                    }
                    finish_checksum(&mut merged, l3);
                    std::mem::take(&mut merged)
                }
                None => std::mem::take(&mut burst[i]),
            };
            if out.len() < max {
                out.push_back((self.now, pkt));
            }
            i += take.max(1);
        }
    }

    fn inject(&mut self, bytes: &[u8]) {
        self.stack.handle_packet(self.now, bytes);
    }

    fn call(
        &mut self,
        line: usize,
        call: &Syscall,
        progress: &mut i64,
        wake: Option<Instant>,
    ) -> Step<Res> {
        attempt(self, line, call, progress, wake)
    }

    fn conn_ports(&self, fd: i64) -> Option<(u16, u16)> {
        let h = self.fds.get(&fd)?.conn()?;
        let t = self.stack.info(h)?.tuple;
        Some((t.local.port(), t.remote.port()))
    }

    fn listening_port(&self) -> Option<u16> {
        let cur = self.current.and_then(|fd| self.fds.get(&fd));
        cur.into_iter()
            .chain(self.fds.values())
            .find_map(Sock::listening_port)
    }

    fn tcp_info(&mut self) -> Vec<(&'static str, i64)> {
        crate::assert::snapshot(self)
    }

    fn command(&mut self, line: usize, cmd: &str) -> Step<(String, i32)> {
        crate::shell::run(self, line, cmd)
    }
}

/// Replace a super-segment's partial TCP checksum with the full one, as the device would.
fn finish_checksum(p: &mut [u8], l3: usize) {
    let Some(ip) = crate::pkt::decode(p) else {
        return;
    };
    let Some(tcp) = p.get_mut(l3..) else {
        return;
    };
    if tcp.len() < 20 {
        return;
    }
    tcp[16..18].copy_from_slice(&[0, 0]);
    let pseudo = checksum::pseudo_header(&ip.src, &ip.dst, 6, tcp.len() as u32);
    let c = checksum::fold(checksum::sum(tcp, pseudo));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Socket options a script set (and reads back).
#[derive(Clone, Debug, Default)]
pub(crate) struct Opts {
    ints: Vec<(i64, i64, i64)>,
    congestion: Option<String>,
}

impl Opts {
    fn get(&self, level: i64, name: i64) -> Option<i64> {
        self.ints
            .iter()
            .rev()
            .find(|(l, n, _)| *l == level && *n == name)
            .map(|x| x.2)
    }
    fn set(&mut self, level: i64, name: i64, v: i64) {
        self.ints.push((level, name, v));
    }
}

/// What a script fd names.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// socket(), maybe bind(), not yet listen() or connect().
    Fresh,
    /// listen().
    Listener(ListenerHandle, SocketAddr),
    /// A connection (accepted or connecting).
    Conn(ConnHandle),
}

/// A script fd.
#[derive(Clone, Debug)]
pub(crate) struct Sock {
    pub(crate) kind: Kind,
    bound: Option<SocketAddr>,
    nonblock: bool,
    opts: Opts,
}

impl Sock {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            bound: None,
            nonblock: false,
            opts: Opts::default(),
        }
    }
    pub(crate) fn listening_port(&self) -> Option<u16> {
        match self.kind {
            Kind::Listener(_, a) => Some(a.port()),
            _ => None,
        }
    }
    pub(crate) fn listener(&self) -> Option<ListenerHandle> {
        match self.kind {
            Kind::Listener(l, _) => Some(l),
            _ => None,
        }
    }
    pub(crate) fn conn(&self) -> Option<ConnHandle> {
        match self.kind {
            Kind::Conn(h) => Some(h),
            _ => None,
        }
    }
}

const O_NONBLOCK: i64 = 0x800;
const POLLIN: i64 = 0x1;
const POLLOUT: i64 = 0x4;
const POLLERR: i64 = 0x8;
const POLLHUP: i64 = 0x10;
const POLLRDNORM: i64 = 0x40;
const POLLWRNORM: i64 = 0x100;
const POLLRDHUP: i64 = 0x2000;
/// Largest read or write a script may ask for (it is zero-filled memory).
const MAX_IO: i64 = 64 << 20;

/// Try the call now: `Ok(None)` if it would block.
fn attempt(
    host: &mut SimHost,
    line: usize,
    call: &Syscall,
    progress: &mut i64,
    wake: Option<Instant>,
) -> Step<Res> {
    let now = host.now;
    let name = call.name.as_str();
    if name == "socket" {
        let domain = match call.args.first() {
            Some(Expr::Ellipsis) | None => 0,
            Some(e) => eval(line, e)?,
        };
        if domain != 0 && domain != 2 && domain != 10 {
            return Ok(Some(Err("EAFNOSUPPORT")));
        }
        let ty = match call.args.get(1) {
            Some(e) => eval(line, e)?,
            None => 1,
        };
        let mut s = Sock::new(Kind::Fresh);
        s.nonblock = ty & O_NONBLOCK != 0;
        let fd = call.result.max(0);
        host.fds.insert(fd, s);
        host.current = Some(fd);
        return Ok(Some(Ok(fd)));
    }
    if name == "poll" {
        return do_poll(host, line, call, wake);
    }
    let fd = int_arg(line, call, 0)?;
    let Some(sock) = host.fds.get(&fd).cloned() else {
        return Ok(Some(Err("EBADF")));
    };
    let res: Res = match name {
        "bind" => {
            let addr = sockaddr(host, line, call.args.get(1), host.set.bind_port)?;
            let s = host.fds.get_mut(&fd).expect("looked up above");
            if s.bound.is_some() || !matches!(s.kind, Kind::Fresh) {
                Some(Err("EINVAL"))
            } else {
                s.bound = Some(addr);
                Some(Ok(0))
            }
        }
        "listen" => {
            let backlog =
                int_arg(line, call, 1)?.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            let local = match sock.kind {
                Kind::Listener(_, a) => a,
                Kind::Conn(_) => return Ok(Some(Err("EINVAL"))),
                Kind::Fresh => sock
                    .bound
                    .unwrap_or(SocketAddr::new(host.set.local(), host.set.bind_port)),
            };
            match host.stack.listen(now, local, backlog) {
                Ok(l) => {
                    if let Some(secs) = sock.opts.get(6, 9) {
                        host.stack
                            .set_defer_accept(l, secs.clamp(0, i64::from(i32::MAX)) as u32);
                    }
                    if let Some(n) = sock.opts.get(6, 7) {
                        host.stack.set_syncnt(l, n.clamp(1, 255) as u8);
                    }
                    if let Some(m) = sock.opts.get(6, 2) {
                        host.stack.set_listener_mss(l, m.clamp(0, 32767) as u16);
                    }
                    if let Some(b) = sock.opts.get(1, 8) {
                        host.stack
                            .set_listener_rcvbuf(l, b.clamp(0, i64::from(u32::MAX)) as u32);
                    }
                    host.fds.get_mut(&fd).expect("looked up above").kind = Kind::Listener(l, local);
                    Some(Ok(0))
                }
                Err(e) => Some(Err(e.errno_name())),
            }
        }
        "accept" | "accept4" => {
            let Some(l) = sock.listener() else {
                return Ok(Some(Err("EINVAL")));
            };
            match host.stack.accept(now, l) {
                Ok((h, _)) => {
                    let newfd = if call.result >= 0 {
                        call.result
                    } else {
                        1000 + fd
                    };
                    let mut s = Sock::new(Kind::Conn(h));
                    s.opts = sock.opts.clone();
                    if name == "accept4"
                        && call
                            .args
                            .get(3)
                            .is_some_and(|e| eval(line, e).unwrap_or(0) & O_NONBLOCK != 0)
                    {
                        s.nonblock = true;
                    }
                    if s.opts.get(6, 1).is_some_and(|v| v != 0) {
                        host.stack.set_nodelay(now, h, true);
                    }
                    host.fds.insert(newfd, s);
                    host.current = Some(newfd);
                    Some(Ok(newfd))
                }
                Err(_) if sock.nonblock => Some(Err("EAGAIN")),
                Err(_) => None,
            }
        }
        "connect" => return connect(host, line, call, fd, &sock),
        "read" | "recv" | "recvfrom" => {
            let len = int_arg(line, call, 2)?.clamp(0, MAX_IO) as usize;
            let flags = if name == "read" {
                0
            } else {
                call.args.get(3).map_or(Ok(0), |e| eval(line, e))?
            };
            let Some(h) = sock.conn() else {
                return Ok(Some(Err("ENOTCONN")));
            };
            let mut buf = vec![0u8; len];
            match host.stack.recv(now, h, &mut buf) {
                Ok(n) => Some(Ok(n as i64)),
                Err(e) if e.errno_name() == "EAGAIN" && !sock.nonblock && flags & 0x40 == 0 => None,
                Err(e) => Some(Err(e.errno_name())),
            }
        }
        "write" | "send" | "sendto" => {
            let len = int_arg(line, call, 2)?.clamp(0, MAX_IO);
            let Some(h) = sock.conn() else {
                return Ok(Some(Err("EPIPE")));
            };
            let flags = if name == "write" {
                0
            } else {
                call.args.get(3).map_or(Ok(0), |e| eval(line, e))?
            };
            let nonblock = sock.nonblock || flags & 0x40 != 0;
            let left = (len - *progress) as usize;
            let zeros = vec![0u8; left];
            match host.stack.send(now, h, &zeros) {
                Ok(n) => {
                    *progress += n as i64;
                    if *progress == len || nonblock {
                        Some(Ok(*progress))
                    } else {
                        None
                    }
                }
                Err(e) if e.errno_name() == "EAGAIN" && !nonblock => None,
                Err(_) if *progress > 0 => Some(Ok(*progress)),
                Err(e) => Some(Err(e.errno_name())),
            }
        }
        "close" => {
            host.fds.remove(&fd);
            match sock.kind {
                Kind::Listener(l, _) => host.stack.close_listener(now, l),
                Kind::Conn(h) => {
                    let linger0 = sock.opts.get(1, 13) == Some(0);
                    let r = if linger0 {
                        host.stack.abort(now, h)
                    } else {
                        host.stack.close(now, h)
                    };
                    // A connection the stack already forgot still closes cleanly, as on Linux.
                    let _ = r;
                }
                Kind::Fresh => {}
            }
            Some(Ok(0))
        }
        "shutdown" => {
            let how = int_arg(line, call, 1)?;
            match sock.kind {
                Kind::Conn(h) if how == 1 || how == 2 => match host.stack.shutdown(now, h) {
                    Ok(()) => Some(Ok(0)),
                    Err(e) => Some(Err(e.errno_name())),
                },
                Kind::Conn(_) if how == 0 => Some(Ok(0)),
                Kind::Listener(l, _) if how == 0 || how == 2 => {
                    // Linux: shutdown(SHUT_RD) on a listener stops it (tcp_disconnect).
                    host.stack.close_listener(now, l);
                    host.fds.get_mut(&fd).expect("looked up above").kind = Kind::Fresh;
                    Some(Ok(0))
                }
                _ if !(0..=2).contains(&how) => Some(Err("EINVAL")),
                _ => Some(Err("ENOTCONN")),
            }
        }
        "fcntl" => {
            let cmd = int_arg(line, call, 1)?;
            let s = host.fds.get_mut(&fd).expect("looked up above");
            match cmd {
                3 => Some(Ok(2 | if s.nonblock { O_NONBLOCK } else { 0 })),
                4 => {
                    s.nonblock = int_arg(line, call, 2)? & O_NONBLOCK != 0;
                    Some(Ok(0))
                }
                _ => return fail(line, format!("fcntl command {cmd} is not supported")),
            }
        }
        "setsockopt" => setsockopt(host, line, call, fd, &sock)?,
        "getsockopt" => getsockopt(host, line, call, &sock)?,
        other => return fail(line, format!("system call {other}() is not supported")),
    };
    Ok(res)
}

/// `...` or `{sa_family=..., sin_port=htons(N), sin_addr=inet_addr("A")}`.
fn sockaddr(host: &SimHost, line: usize, e: Option<&Expr>, port: u16) -> Step<SocketAddr> {
    let mut addr = SocketAddr::new(host.set.local(), port);
    if let Some(Expr::Struct(fields)) = e {
        for (k, v) in fields {
            match k.as_str() {
                "sin_port" | "sin6_port" => addr.set_port(
                    u16::try_from(eval(line, v)?).or_else(|_| fail(line, "port out of range"))?,
                ),
                "sin_addr" | "sin6_addr" => {
                    if let Expr::Call(_, a) = v {
                        if let Some(Expr::Str(s)) = a.first() {
                            let ip = s
                                .parse()
                                .or_else(|_| fail(line, format!("{s:?} is not an address")))?;
                            addr.set_ip(ip);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(addr)
}

fn connect(host: &mut SimHost, line: usize, call: &Syscall, fd: i64, sock: &Sock) -> Step<Res> {
    let now = host.now;
    match sock.kind {
        Kind::Conn(h) => {
            // The retry of a blocking connect, or connect() again on a connecting socket.
            let info = host.stack.info(h);
            return Ok(match info {
                Some(i) if i.state == State::SynSent || i.state == State::SynReceived => {
                    if sock.nonblock {
                        Some(Err("EALREADY"))
                    } else {
                        None
                    }
                }
                Some(i) => match i.error {
                    Some(e) => Some(Err(e.errno_name())),
                    None if sock.nonblock => Some(Err("EISCONN")),
                    None => Some(Ok(0)),
                },
                None => Some(Err("ECONNREFUSED")),
            });
        }
        Kind::Listener(..) => return Ok(Some(Err("EISCONN"))),
        Kind::Fresh => {}
    }
    let mut remote = sockaddr(host, line, call.args.get(1), host.set.connect_port)?;
    if !matches!(call.args.get(1), Some(Expr::Struct(f)) if f.iter().any(|(k, _)| k.ends_with("_addr")))
    {
        remote.set_ip(host.set.remote());
    }
    let r = match sock.bound {
        Some(local) => host.stack.connect_from(now, local, remote),
        None => host.stack.connect(now, remote),
    };
    let h = match r {
        Ok(h) => h,
        Err(e) => return Ok(Some(Err(e.errno_name()))),
    };
    host.fds.get_mut(&fd).expect("looked up by the caller").kind = Kind::Conn(h);
    Ok(if sock.nonblock {
        Some(Err("EINPROGRESS"))
    } else {
        None
    })
}

fn opt_value(line: usize, e: Option<&Expr>) -> Step<i64> {
    match e {
        Some(Expr::Struct(f)) => {
            // struct linger: on with 0 seconds is an abortive close.
            let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| eval(line, v));
            let on = get("onoff").transpose()?.unwrap_or(0);
            let secs = get("linger").transpose()?.unwrap_or(0);
            Ok(if on != 0 { secs } else { -1 })
        }
        Some(e) => eval(line, e),
        None => fail(line, "setsockopt() needs a value"),
    }
}

fn setsockopt(host: &mut SimHost, line: usize, call: &Syscall, fd: i64, sock: &Sock) -> Step<Res> {
    let level = int_arg(line, call, 1)?;
    let name = int_arg(line, call, 2)?;
    let now = host.now;
    if (level, name) == (6, 13) {
        let Some(Expr::Str(algo)) = call.args.get(3) else {
            return fail(line, "TCP_CONGESTION takes a string");
        };
        let Ok(a) = algo.parse() else {
            return Ok(Some(Err("ENOENT")));
        };
        if let Some(h) = sock.conn() {
            let _ = host.stack.set_congestion(h, a);
        }
        host.fds.get_mut(&fd).expect("looked up").opts.congestion = Some(algo.clone());
        return Ok(Some(Ok(0)));
    }
    let v = opt_value(line, call.args.get(3))?;
    match (level, name) {
        (1, 8) => {
            if let Some(l) = sock.listener() {
                host.stack
                    .set_listener_rcvbuf(l, v.clamp(0, i64::from(u32::MAX)) as u32);
            } else if sock.conn().is_some() {
                return fail(
                    line,
                    "SO_RCVBUF on a connection is not supported by synq yet (on a listener it is)",
                );
            }
        }
        (1, 2 | 15 | 7 | 13 | 18) | (6, 4..=6 | 18) => {}
        (1, 9) => {
            if let Some(h) = sock.conn() {
                let _ = host.stack.set_keepalive(now, h, v != 0);
            }
        }
        (6, 1) => {
            if let Some(h) = sock.conn() {
                host.stack.set_nodelay(now, h, v != 0);
            }
        }
        (6, 2) => {
            // Linux: 0 clears it, else 88..=32767 (TCP_MIN_MSS .. MAX_TCP_WINDOW).
            if v != 0 && !(88..=32767).contains(&v) {
                return Ok(Some(Err("EINVAL")));
            }
            if let Some(l) = sock.listener() {
                host.stack.set_listener_mss(l, v as u16);
            } else if sock.conn().is_some() {
                return fail(
                    line,
                    "TCP_MAXSEG on a connection is not supported by synq yet (on a listener it is)",
                );
            }
        }
        (6, 7) => {
            if !(1..=127).contains(&v) {
                return Ok(Some(Err("EINVAL")));
            }
            if let Some(l) = sock.listener() {
                host.stack.set_syncnt(l, v as u8);
            }
        }
        (6, 9) => {
            if let Some(l) = sock.listener() {
                host.stack
                    .set_defer_accept(l, v.clamp(0, i64::from(i32::MAX)) as u32);
            }
        }
        _ => return Ok(Some(Err("ENOPROTOOPT"))),
    }
    host.fds
        .get_mut(&fd)
        .expect("looked up")
        .opts
        .set(level, name, v);
    Ok(Some(Ok(0)))
}

fn getsockopt(host: &mut SimHost, line: usize, call: &Syscall, sock: &Sock) -> Step<Res> {
    let level = int_arg(line, call, 1)?;
    let name = int_arg(line, call, 2)?;
    let info = sock.conn().and_then(|h| host.stack.info(h));
    let got: i64 = match (level, name) {
        (6, 2) => match &info {
            Some(i) if i.state != State::Closed => i64::from(i.mss),
            _ => sock.opts.get(6, 2).filter(|&v| v != 0).unwrap_or(536),
        },
        (6, 9) => match sock.listener() {
            Some(l) => i64::from(host.stack.defer_accept(l).unwrap_or(0)),
            None => sock.opts.get(6, 9).unwrap_or(0),
        },
        (1, 3) => 1,
        (1, 4) => match info.and_then(|i| i.error) {
            Some(e) => errno_number(e.errno_name()),
            None => 0,
        },
        // Linux keeps twice the value asked for (SO_RCVBUF capped by rmem_max first), at
        // least SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF (4608 on 64-bit).
        (1, 8) => sock
            .opts
            .get(1, 8)
            .map_or(i64::from(host.stack.config().tcp_rmem[1]), |v| {
                (v.clamp(0, i64::from(host.stack.config().rmem_max)) * 2).max(4608)
            }),
        (1, 7) => sock
            .opts
            .get(1, 7)
            .map_or(i64::from(host.stack.config().tcp_wmem[1]), |v| {
                (v.max(0) * 2).max(4608)
            }),
        (1, 13) => sock.opts.get(1, 13).unwrap_or(-1),
        (6, 7) => sock
            .opts
            .get(6, 7)
            .unwrap_or(i64::from(host.stack.config().tcp_syn_retries)),
        (1, 2 | 9 | 15) | (6, 1) => sock.opts.get(level, name).map_or(0, |v| i64::from(v != 0)),
        _ => return Ok(Some(Err("ENOPROTOOPT"))),
    };
    if let Some(Expr::List(v)) = call.args.get(3) {
        if let Some(want) = v.first() {
            let want = eval(line, want)?;
            if want != got {
                return Err(Failure {
                    line,
                    msg: "getsockopt() returned an unexpected value".into(),
                    expected: Some(format!("[{want}]")),
                    actual: Some(format!("[{got}]")),
                });
            }
        }
    }
    Ok(Some(Ok(0)))
}

fn errno_number(name: &str) -> i64 {
    match name {
        "ECONNREFUSED" => 111,
        "ECONNRESET" => 104,
        "ETIMEDOUT" => 110,
        "EPIPE" => 32,
        _ => 5,
    }
}

/// `poll([{fd=N, events=E, revents=R}, ...], nfds, timeout_ms)`.
fn do_poll(host: &mut SimHost, line: usize, call: &Syscall, wake: Option<Instant>) -> Step<Res> {
    let items = poll_items(line, call)?;
    let got: Vec<i64> = items
        .iter()
        .map(|it| revents(host, it.fd, it.events))
        .collect();
    poll_verdict(line, call, &items, &got, host.now, wake)
}

fn revents(host: &SimHost, fd: i64, events: i64) -> i64 {
    let Some(s) = host.fds.get(&fd) else {
        return 0x20;
    };
    let always = POLLERR | POLLHUP;
    let r = match s.kind {
        Kind::Listener(l, _) => {
            if host.stack.listener_info(l).is_some_and(|i| i.recv_q > 0) {
                POLLIN | POLLRDNORM
            } else {
                0
            }
        }
        Kind::Fresh => POLLOUT | POLLWRNORM | POLLHUP,
        Kind::Conn(h) => match host.stack.info(h) {
            None => POLLHUP | POLLERR,
            Some(i) => {
                let mut r = 0;
                let peer_fin = matches!(
                    i.state,
                    State::CloseWait
                        | State::LastAck
                        | State::Closing
                        | State::TimeWait
                        | State::Closed
                );
                if i.recv_queue > 0 || peer_fin || i.error.is_some() {
                    r |= POLLIN | POLLRDNORM;
                }
                if peer_fin {
                    r |= POLLRDHUP;
                }
                let can_send = matches!(i.state, State::Established | State::CloseWait);
                if can_send && host.stack.send_space(h) > 0 {
                    r |= POLLOUT | POLLWRNORM;
                }
                if i.error.is_some() {
                    r |= POLLERR;
                }
                if i.state == State::Closed
                    || matches!(i.state, State::TimeWait | State::LastAck | State::Closing)
                        && peer_fin
                {
                    r |= POLLHUP;
                }
                r
            }
        },
    };
    r & (events | always)
}
