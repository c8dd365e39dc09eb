//! System calls: script fds over the stack's handles. A script fd is a name (the number the
//! script expects `socket()` or `accept()` to return), not a kernel descriptor.

use crate::ast::{Expr, Syscall};
use crate::run::{fail, Run, Step};
use crate::Failure;
use std::net::SocketAddr;
use synq_core::error::Errno;
use synq_core::{ConnHandle, Duration, Instant, ListenerHandle, State};

/// Linux's values for the symbolic constants scripts use.
pub(crate) fn constant(name: &str) -> Option<i64> {
    Some(match name {
        "AF_INET" | "PF_INET" => 2,
        "AF_INET6" | "PF_INET6" => 10,
        "SOCK_STREAM" => 1,
        "SOCK_NONBLOCK" | "O_NONBLOCK" | "MSG_DONTWAIT_SOCK" => 0x800,
        "IPPROTO_IP" => 0,
        "IPPROTO_TCP" | "SOL_TCP" => 6,
        "SOL_SOCKET" => 1,
        "SO_REUSEADDR" => 2,
        "SO_TYPE" => 3,
        "SO_ERROR" => 4,
        "SO_SNDBUF" => 7,
        "SO_RCVBUF" => 8,
        "SO_KEEPALIVE" => 9,
        "SO_LINGER" => 13,
        "SO_REUSEPORT" => 15,
        "SO_RCVLOWAT" => 18,
        "TCP_NODELAY" => 1,
        "TCP_MAXSEG" => 2,
        "TCP_KEEPIDLE" => 4,
        "TCP_KEEPINTVL" => 5,
        "TCP_KEEPCNT" => 6,
        "TCP_SYNCNT" => 7,
        "TCP_DEFER_ACCEPT" => 9,
        "TCP_INFO" => 11,
        "TCP_CONGESTION" => 13,
        "TCP_USER_TIMEOUT" => 18,
        "F_GETFL" => 3,
        "F_SETFL" => 4,
        "O_RDONLY" => 0,
        "O_WRONLY" => 1,
        "O_RDWR" => 2,
        "SHUT_RD" => 0,
        "SHUT_WR" => 1,
        "SHUT_RDWR" => 2,
        "POLLIN" => 0x1,
        "POLLPRI" => 0x2,
        "POLLOUT" => 0x4,
        "POLLERR" => 0x8,
        "POLLHUP" => 0x10,
        "POLLNVAL" => 0x20,
        "POLLRDNORM" => 0x40,
        "POLLRDBAND" => 0x80,
        "POLLWRNORM" => 0x100,
        "POLLRDHUP" => 0x2000,
        "MSG_PEEK" => 0x2,
        "MSG_DONTWAIT" => 0x40,
        "MSG_NOSIGNAL" => 0x4000,
        "NULL" => 0,
        _ => return None,
    })
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

/// A blocking call in flight.
#[derive(Clone, Debug)]
pub(crate) struct Blocked {
    pub(crate) line: usize,
    call: Syscall,
    end: Instant,
    tol: Duration,
    /// A `poll()` timeout.
    pub(crate) wake: Option<Instant>,
    /// Bytes a blocking write has queued so far.
    progress: i64,
}

/// A call's result: a value or an errno name; `None` would block.
type Res = Option<Result<i64, &'static str>>;

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

/// Run a syscall line at the current time. `end` is the return time of a `T...E` call.
pub(crate) fn syscall(
    run: &mut Run<'_>,
    line: usize,
    call: &Syscall,
    end: Option<Instant>,
    tol: Duration,
) -> Step {
    if end.is_some() && run.blocked.is_some() {
        return fail(line, "only one blocking call may be in flight at a time");
    }
    let wake = poll_wake(run, call)?;
    let mut progress = 0;
    match attempt(run, line, call, &mut progress, wake)? {
        Some(res) => {
            if let Some(end) = end {
                on_time(run, line, end, tol)?;
            }
            check(run, line, call, res)
        }
        None if end.is_some() => {
            run.blocked = Some(Blocked {
                line,
                call: call.clone(),
                end: end.unwrap_or(run.now),
                tol,
                wake,
                progress,
            });
            Ok(())
        }
        None => fail(
            line,
            format!(
                "{}() would block here; write a blocking call with a time T...E",
                call.name
            ),
        ),
    }
}

fn on_time(run: &Run<'_>, line: usize, end: Instant, tol: Duration) -> Step {
    if run.now + tol < end || run.now > end + tol {
        let s = |i: Instant| i.saturating_since(Instant::from_secs(1)).as_secs_f64();
        return fail(
            line,
            format!(
                "the call returned at {:.6} s, expected at {:.6} s (tolerance {:.6} s)",
                s(run.now),
                s(end),
                tol.as_secs_f64()
            ),
        );
    }
    Ok(())
}

/// Retry the blocked call, if any; fail it once it is late.
pub(crate) fn poll_blocked(run: &mut Run<'_>) -> Step {
    let Some(mut b) = run.blocked.take() else {
        return Ok(());
    };
    match attempt(run, b.line, &b.call.clone(), &mut b.progress, b.wake)? {
        Some(res) => {
            on_time(run, b.line, b.end, b.tol)?;
            check(run, b.line, &b.call, res)
        }
        None if run.now > b.end + b.tol => {
            let line = b.line;
            fail(
                line,
                format!("{}() had not returned by its time", b.call.name),
            )
        }
        None => {
            run.blocked = Some(b);
            Ok(())
        }
    }
}

fn poll_wake(run: &Run<'_>, call: &Syscall) -> Step<Option<Instant>> {
    if call.name != "poll" {
        return Ok(None);
    }
    let ms = match call.args.get(2) {
        Some(Expr::Int(ms)) => *ms,
        _ => 0,
    };
    Ok((ms > 0).then(|| run.now + Duration::from_millis(ms as u64)))
}

/// Compare a result with the line's `= R [ERRNO]`.
fn check(run: &mut Run<'_>, line: usize, call: &Syscall, got: Result<i64, &'static str>) -> Step {
    let norm = |e: &str| {
        if e == "EWOULDBLOCK" {
            "EAGAIN".to_string()
        } else {
            e.to_string()
        }
    };
    let want_errno = call.errno.as_deref().map(norm);
    let fd_call = matches!(call.name.as_str(), "socket" | "accept" | "accept4");
    let ok = match got {
        Ok(v) => want_errno.is_none() && (v == call.result || (fd_call && call.result >= 0)),
        Err(e) => call.result == -1 && want_errno.as_deref() == Some(e),
    };
    if ok {
        return Ok(());
    }
    let show = |r: i64, e: Option<&str>| match e {
        Some(e) => format!("{r} {e}"),
        None => r.to_string(),
    };
    let f = Failure {
        line,
        msg: format!("{}() returned an unexpected result", call.name),
        expected: Some(show(call.result, want_errno.as_deref())),
        actual: Some(match got {
            Ok(v) => show(v, None),
            Err(e) => show(-1, Some(e)),
        }),
    };
    if run.set.non_fatal_syscall {
        run.warnings.push(f.to_string());
        Ok(())
    } else {
        Err(f)
    }
}

fn int_arg(line: usize, call: &Syscall, i: usize) -> Step<i64> {
    match call.args.get(i) {
        Some(e) => eval(line, e),
        None => fail(line, format!("{}() needs argument {}", call.name, i + 1)),
    }
}

/// An integer argument: a number, a constant, `A|B`, `[v]` (a pointer to an int).
pub(crate) fn eval(line: usize, e: &Expr) -> Step<i64> {
    match e {
        Expr::Int(n) => Ok(*n),
        Expr::Word(w) => {
            constant(w).map_or_else(|| fail(line, format!("unknown constant {w}")), Ok)
        }
        Expr::Or(v) => v.iter().try_fold(0, |acc, e| Ok(acc | eval(line, e)?)),
        Expr::List(v) if v.len() == 1 => eval(line, &v[0]),
        Expr::Call(f, a)
            if matches!(f.as_str(), "htons" | "htonl" | "ntohs" | "ntohl") && a.len() == 1 =>
        {
            eval(line, &a[0])
        }
        Expr::Ellipsis => Ok(0),
        other => fail(line, format!("expected a number, found {other:?}")),
    }
}

/// Try the call now: `Ok(None)` if it would block.
fn attempt(
    run: &mut Run<'_>,
    line: usize,
    call: &Syscall,
    progress: &mut i64,
    wake: Option<Instant>,
) -> Step<Res> {
    let now = run.now;
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
        run.fds.insert(fd, s);
        run.current = Some(fd);
        return Ok(Some(Ok(fd)));
    }
    if name == "poll" {
        return Ok(do_poll(run, line, call, wake)?);
    }
    let fd = int_arg(line, call, 0)?;
    let Some(sock) = run.fds.get(&fd).cloned() else {
        return Ok(Some(Err("EBADF")));
    };
    let res: Res = match name {
        "bind" => {
            let addr = sockaddr(run, line, call.args.get(1), run.set.bind_port)?;
            let s = run.fds.get_mut(&fd).expect("looked up above");
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
                    .unwrap_or(SocketAddr::new(run.set.local(), run.set.bind_port)),
            };
            match run.stack.listen(now, local, backlog) {
                Ok(l) => {
                    if let Some(secs) = sock.opts.get(6, 9) {
                        run.stack
                            .set_defer_accept(l, secs.clamp(0, i64::from(i32::MAX)) as u32);
                    }
                    if let Some(n) = sock.opts.get(6, 7) {
                        run.stack.set_syncnt(l, n.clamp(1, 255) as u8);
                    }
                    run.fds.get_mut(&fd).expect("looked up above").kind = Kind::Listener(l, local);
                    Some(Ok(0))
                }
                Err(e) => Some(Err(e.errno_name())),
            }
        }
        "accept" | "accept4" => {
            let Some(l) = sock.listener() else {
                return Ok(Some(Err("EINVAL")));
            };
            match run.stack.accept(now, l) {
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
                        run.stack.set_nodelay(now, h, true);
                    }
                    run.fds.insert(newfd, s);
                    run.current = Some(newfd);
                    Some(Ok(newfd))
                }
                Err(_) if sock.nonblock => Some(Err("EAGAIN")),
                Err(_) => None,
            }
        }
        "connect" => return connect(run, line, call, fd, &sock),
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
            match run.stack.recv(now, h, &mut buf) {
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
            match run.stack.send(now, h, &zeros) {
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
            run.fds.remove(&fd);
            match sock.kind {
                Kind::Listener(l, _) => run.stack.close_listener(now, l),
                Kind::Conn(h) => {
                    let linger0 = sock.opts.get(1, 13) == Some(0);
                    let r = if linger0 {
                        run.stack.abort(now, h)
                    } else {
                        run.stack.close(now, h)
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
                Kind::Conn(h) if how == 1 || how == 2 => match run.stack.shutdown(now, h) {
                    Ok(()) => Some(Ok(0)),
                    Err(e) => Some(Err(e.errno_name())),
                },
                Kind::Conn(_) if how == 0 => Some(Ok(0)),
                Kind::Listener(l, _) if how == 0 || how == 2 => {
                    // Linux: shutdown(SHUT_RD) on a listener stops it (tcp_disconnect).
                    run.stack.close_listener(now, l);
                    run.fds.get_mut(&fd).expect("looked up above").kind = Kind::Fresh;
                    Some(Ok(0))
                }
                _ if !(0..=2).contains(&how) => Some(Err("EINVAL")),
                _ => Some(Err("ENOTCONN")),
            }
        }
        "fcntl" => {
            let cmd = int_arg(line, call, 1)?;
            let s = run.fds.get_mut(&fd).expect("looked up above");
            match cmd {
                3 => Some(Ok(2 | if s.nonblock { O_NONBLOCK } else { 0 })),
                4 => {
                    s.nonblock = int_arg(line, call, 2)? & O_NONBLOCK != 0;
                    Some(Ok(0))
                }
                _ => return fail(line, format!("fcntl command {cmd} is not supported")),
            }
        }
        "setsockopt" => setsockopt(run, line, call, fd, &sock)?,
        "getsockopt" => getsockopt(run, line, call, &sock)?,
        other => return fail(line, format!("system call {other}() is not supported")),
    };
    Ok(res)
}

/// `...` or `{sa_family=..., sin_port=htons(N), sin_addr=inet_addr("A")}`.
fn sockaddr(run: &Run<'_>, line: usize, e: Option<&Expr>, port: u16) -> Step<SocketAddr> {
    let mut addr = SocketAddr::new(run.set.local(), port);
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

fn connect(run: &mut Run<'_>, line: usize, call: &Syscall, fd: i64, sock: &Sock) -> Step<Res> {
    let now = run.now;
    match sock.kind {
        Kind::Conn(h) => {
            // The retry of a blocking connect, or connect() again on a connecting socket.
            let info = run.stack.info(h);
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
    let mut remote = sockaddr(run, line, call.args.get(1), run.set.connect_port)?;
    if !matches!(call.args.get(1), Some(Expr::Struct(f)) if f.iter().any(|(k, _)| k.ends_with("_addr")))
    {
        remote.set_ip(run.remote_ip());
    }
    let r = match sock.bound {
        Some(local) => run.stack.connect_from(now, local, remote),
        None => run.stack.connect(now, remote),
    };
    let h = match r {
        Ok(h) => h,
        Err(e) => return Ok(Some(Err(e.errno_name()))),
    };
    let local = run.stack.info(h).map_or(0, |i| i.tuple.local.port());
    let key = (local, remote.port());
    run.flows
        .entry(key)
        .or_insert_with(|| crate::run::Flow::default());
    run.default_flow = Some(key);
    run.fds.get_mut(&fd).expect("looked up by the caller").kind = Kind::Conn(h);
    run.drain();
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

fn setsockopt(run: &mut Run<'_>, line: usize, call: &Syscall, fd: i64, sock: &Sock) -> Step<Res> {
    let level = int_arg(line, call, 1)?;
    let name = int_arg(line, call, 2)?;
    let now = run.now;
    if (level, name) == (6, 13) {
        let Some(Expr::Str(algo)) = call.args.get(3) else {
            return fail(line, "TCP_CONGESTION takes a string");
        };
        let Ok(a) = algo.parse() else {
            return Ok(Some(Err("ENOENT")));
        };
        if let Some(h) = sock.conn() {
            let _ = run.stack.set_congestion(h, a);
        }
        run.fds.get_mut(&fd).expect("looked up").opts.congestion = Some(algo.clone());
        return Ok(Some(Ok(0)));
    }
    let v = opt_value(line, call.args.get(3))?;
    match (level, name) {
        (1, 2 | 15 | 7 | 8 | 13 | 18) | (6, 4..=6 | 18) => {}
        (1, 9) => {
            if let Some(h) = sock.conn() {
                let _ = run.stack.set_keepalive(now, h, v != 0);
            }
        }
        (6, 1) => {
            if let Some(h) = sock.conn() {
                run.stack.set_nodelay(now, h, v != 0);
            }
        }
        (6, 2) => {
            // Linux: 0 clears it, else 88..=32767 (TCP_MIN_MSS .. MAX_TCP_WINDOW).
            if v != 0 && !(88..=32767).contains(&v) {
                return Ok(Some(Err("EINVAL")));
            }
            if sock.listener().is_some() || sock.conn().is_some() {
                return fail(
                    line,
                    "TCP_MAXSEG on a listener or connection is not supported by synq yet",
                );
            }
        }
        (6, 7) => {
            if !(1..=127).contains(&v) {
                return Ok(Some(Err("EINVAL")));
            }
            if let Some(l) = sock.listener() {
                run.stack.set_syncnt(l, v as u8);
            }
        }
        (6, 9) => {
            if let Some(l) = sock.listener() {
                run.stack
                    .set_defer_accept(l, v.clamp(0, i64::from(i32::MAX)) as u32);
            }
        }
        _ => return Ok(Some(Err("ENOPROTOOPT"))),
    }
    run.fds
        .get_mut(&fd)
        .expect("looked up")
        .opts
        .set(level, name, v);
    Ok(Some(Ok(0)))
}

fn getsockopt(run: &mut Run<'_>, line: usize, call: &Syscall, sock: &Sock) -> Step<Res> {
    let level = int_arg(line, call, 1)?;
    let name = int_arg(line, call, 2)?;
    let info = sock.conn().and_then(|h| run.stack.info(h));
    let got: i64 = match (level, name) {
        (6, 2) => match &info {
            Some(i) if i.state != State::Closed => i64::from(i.mss),
            _ => sock.opts.get(6, 2).filter(|&v| v != 0).unwrap_or(536),
        },
        (6, 9) => match sock.listener() {
            Some(l) => i64::from(run.stack.defer_accept(l).unwrap_or(0)),
            None => sock.opts.get(6, 9).unwrap_or(0),
        },
        (1, 3) => 1,
        (1, 4) => match info.and_then(|i| i.error) {
            Some(e) => errno_number(e.errno_name()),
            None => 0,
        },
        (1, 8) => sock
            .opts
            .get(1, 8)
            .map_or(i64::from(run.stack.config().tcp_rmem[1]), |v| 2 * v),
        (1, 7) => sock
            .opts
            .get(1, 7)
            .map_or(i64::from(run.stack.config().tcp_wmem[1]), |v| 2 * v),
        (1, 13) => sock.opts.get(1, 13).unwrap_or(-1),
        (6, 7) => sock
            .opts
            .get(6, 7)
            .unwrap_or(i64::from(run.stack.config().tcp_syn_retries)),
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
fn do_poll(run: &mut Run<'_>, line: usize, call: &Syscall, wake: Option<Instant>) -> Step<Res> {
    let Some(Expr::List(items)) = call.args.first() else {
        return fail(
            line,
            "poll() takes a list of {fd=..., events=..., revents=...}",
        );
    };
    let mut ready = 0;
    let mut checks = Vec::new();
    for it in items {
        let Expr::Struct(f) = it else {
            return fail(
                line,
                "poll() takes a list of {fd=..., events=..., revents=...}",
            );
        };
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| eval(line, v));
        let fd = get("fd").transpose()?.unwrap_or(-1);
        let events = get("events").transpose()?.unwrap_or(0);
        let want = get("revents").transpose()?;
        let r = revents(run, fd, events);
        if r != 0 {
            ready += 1;
        }
        checks.push((fd, want, r));
    }
    let timeout = match call.args.get(2) {
        Some(e) => eval(line, e)?,
        None => 0,
    };
    if ready == 0 && timeout != 0 && wake.is_none_or(|w| run.now < w) {
        return Ok(None);
    }
    for (fd, want, got) in checks {
        if let Some(want) = want {
            if want != got {
                return Err(Failure {
                    line,
                    msg: format!("poll() revents for fd {fd}"),
                    expected: Some(format!("{want:#x}")),
                    actual: Some(format!("{got:#x}")),
                });
            }
        }
    }
    Ok(Some(Ok(ready)))
}

fn revents(run: &Run<'_>, fd: i64, events: i64) -> i64 {
    let Some(s) = run.fds.get(&fd) else {
        return 0x20;
    };
    let always = POLLERR | POLLHUP;
    let r = match s.kind {
        Kind::Listener(l, _) => {
            if run.stack.listener_info(l).is_some_and(|i| i.recv_q > 0) {
                POLLIN | POLLRDNORM
            } else {
                0
            }
        }
        Kind::Fresh => POLLOUT | POLLWRNORM | POLLHUP,
        Kind::Conn(h) => match run.stack.info(h) {
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
                if can_send && run.stack.send_space(h) > 0 {
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
