//! System calls on the kernel host: script fds over the server's real sockets.

use crate::ast::{Expr, Syscall};
use crate::host::{Host, Res};
use crate::run::{fail, Step};
use crate::settings::IpVersion;
use crate::sock::{eval, int_arg};
use crate::Failure;
use serde_json::{json, Value};
use std::net::IpAddr;
use synq_core::Instant;

use super::*;

impl KernelHost {
    /// Try the call now: `Ok(None)` if it would block (the real socket never blocks).
    pub(super) fn attempt(
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
