//! System calls, host-independent: blocking calls, results and errno names, and the
//! symbolic constants scripts use (Linux values).

use crate::ast::{Expr, Syscall};
use crate::host::Res;
use crate::run::{fail, Run, Step};
use crate::Failure;
use synq_core::{Duration, Instant};

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
    let res = run.host.call(line, call, &mut progress, wake)?;
    if call.name == "connect" {
        run.connected(int_arg(line, call, 0)?);
    }
    match res {
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
                end: end.unwrap_or(run.host.now()),
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
    if run.host.now() + tol < end || run.host.now() > end + tol {
        let s = |i: Instant| i.saturating_since(Instant::from_secs(1)).as_secs_f64();
        return fail(
            line,
            format!(
                "the call returned at {:.6} s, expected at {:.6} s (tolerance {:.6} s)",
                s(run.host.now()),
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
    match run
        .host
        .call(b.line, &b.call.clone(), &mut b.progress, b.wake)?
    {
        Some(res) => {
            on_time(run, b.line, b.end, b.tol)?;
            check(run, b.line, &b.call, res)
        }
        None if run.host.now() > b.end + b.tol => {
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
    Ok((ms > 0).then(|| run.host.now() + Duration::from_millis(ms as u64)))
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

pub(crate) fn int_arg(line: usize, call: &Syscall, i: usize) -> Step<i64> {
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

/// One `{fd=..., events=..., revents=...}` of a poll() line: the expected revents is `None`
/// when the line leaves it out.
pub(crate) struct PollItem {
    pub(crate) fd: i64,
    pub(crate) events: i64,
    pub(crate) want: Option<i64>,
}

/// The items of `poll([...], nfds, timeout)`.
pub(crate) fn poll_items(line: usize, call: &Syscall) -> Step<Vec<PollItem>> {
    let bad = "poll() takes a list of {fd=..., events=..., revents=...}";
    let Some(Expr::List(items)) = call.args.first() else {
        return fail(line, bad);
    };
    let mut v = Vec::with_capacity(items.len());
    for it in items {
        let Expr::Struct(f) = it else {
            return fail(line, bad);
        };
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| eval(line, v));
        v.push(PollItem {
            fd: get("fd").transpose()?.unwrap_or(-1),
            events: get("events").transpose()?.unwrap_or(0),
            want: get("revents").transpose()?,
        });
    }
    Ok(v)
}

/// poll()'s outcome once each item's revents is known (`got`, in order): it blocks while
/// nothing is ready and its timeout (or `wake`) has not come, else returns the ready count
/// after comparing every revents the line gives.
pub(crate) fn poll_verdict(
    line: usize,
    call: &Syscall,
    items: &[PollItem],
    got: &[i64],
    now: Instant,
    wake: Option<Instant>,
) -> Step<Res> {
    let ready = got.iter().filter(|&&r| r != 0).count() as i64;
    let timeout = match call.args.get(2) {
        Some(e) => eval(line, e)?,
        None => 0,
    };
    if ready == 0 && timeout != 0 && wake.is_none_or(|w| now < w) {
        return Ok(None);
    }
    for (it, &got) in items.iter().zip(got) {
        if let Some(want) = it.want {
            if want != got {
                return Err(Failure {
                    line,
                    msg: format!("poll() revents for fd {}", it.fd),
                    expected: Some(format!("{want:#x}")),
                    actual: Some(format!("{got:#x}")),
                });
            }
        }
    }
    Ok(Some(Ok(ready)))
}
