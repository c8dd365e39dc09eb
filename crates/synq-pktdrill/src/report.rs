//! `ss`, `nstat`, FreeBSD `sockstat` and `netstat -s` over the stack under test, printed
//! as the real tools print them so scripts can grep their output.

use crate::run::{fail, Step};
use crate::sim::SimHost;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

struct Row {
    state: &'static str,
    recv_q: u64,
    send_q: u64,
    local: SocketAddr,
    /// `None` for a listener (`*`).
    peer: Option<SocketAddr>,
}

fn rows(run: &SimHost) -> Vec<Row> {
    let s = &run.stack;
    let mut v: Vec<Row> = s
        .listeners()
        .map(|l| Row {
            state: "LISTEN",
            recv_q: u64::from(l.recv_q),
            send_q: u64::from(l.send_q),
            local: l.local,
            peer: None,
        })
        .collect();
    v.extend(s.syn_recv().map(|r| Row {
        state: "SYN-RECV",
        recv_q: 0,
        send_q: 0,
        local: r.local,
        peer: Some(r.remote),
    }));
    v.extend(s.connections().map(|c| Row {
        state: c.state.ss_name(),
        recv_q: c.recv_queue as u64,
        send_q: c.send_queue as u64,
        local: c.tuple.local,
        peer: Some(c.tuple.remote),
    }));
    v
}

/// ss's state names as `state X` takes them.
fn state_filter(w: &str) -> Option<Vec<&'static str>> {
    Some(match w.to_ascii_lowercase().as_str() {
        "established" => vec!["ESTAB"],
        "syn-sent" => vec!["SYN-SENT"],
        "syn-recv" => vec!["SYN-RECV"],
        "fin-wait-1" => vec!["FIN-WAIT-1"],
        "fin-wait-2" => vec!["FIN-WAIT-2"],
        "time-wait" => vec!["TIME-WAIT"],
        "close-wait" => vec!["CLOSE-WAIT"],
        "last-ack" => vec!["LAST-ACK"],
        "closing" => vec!["CLOSING"],
        "listening" | "listen" => vec!["LISTEN"],
        "closed" => vec!["UNCONN"],
        "all" => vec![
            "ESTAB",
            "SYN-SENT",
            "SYN-RECV",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "TIME-WAIT",
            "CLOSE-WAIT",
            "LAST-ACK",
            "CLOSING",
            "LISTEN",
        ],
        "connected" => vec![
            "ESTAB",
            "SYN-SENT",
            "SYN-RECV",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "CLOSE-WAIT",
            "LAST-ACK",
            "CLOSING",
        ],
        "synchronized" => vec![
            "ESTAB",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "CLOSE-WAIT",
            "LAST-ACK",
            "CLOSING",
        ],
        _ => return None,
    })
}

/// One address condition of a filter.
enum Cond {
    Port { local: bool, port: u16 },
    Addr { local: bool, net: IpAddr, len: u8 },
}

fn in_net(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// `ss [-t] [-n] [-a] [-l] [-e] [-i] [-o] [-H] [state S]... [FILTER]`; a filter is
/// `sport = :N`, `dport = :N`, `src A[/L]`, `dst A[/L]`, joined by `and` (parentheses
/// ignored).
pub(crate) fn ss(run: &SimHost, line: usize, args: &[String]) -> Step<String> {
    let (mut listening, mut all, mut header) = (false, false, true);
    let mut states: Vec<&'static str> = Vec::new();
    let mut explicit = 0;
    let mut conds = Vec::new();
    let toks: Vec<String> = args
        .iter()
        .flat_map(|a| {
            a.replace(['(', ')'], " ")
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        if let Some(flags) = t.strip_prefix("--") {
            match flags {
                "tcp" | "numeric" | "extended" | "info" | "options" | "processes" | "memory" => {}
                "listening" => listening = true,
                "all" => all = true,
                "no-header" => header = false,
                _ => return fail(line, format!("ss: option --{flags} is not supported")),
            }
        } else if let Some(flags) = t.strip_prefix('-') {
            for f in flags.chars() {
                match f {
                    't' | 'n' | 'e' | 'i' | 'o' | 'p' | 'm' | '4' | '6' => {}
                    'l' => listening = true,
                    'a' => all = true,
                    'H' => header = false,
                    _ => return fail(line, format!("ss: option -{f} is not supported")),
                }
            }
        } else if t == "state" || t == "exclude" {
            let Some(s) = toks.get(i + 1).and_then(|w| state_filter(w)) else {
                return fail(line, format!("ss: unknown state {:?}", toks.get(i + 1)));
            };
            if t == "exclude" {
                return fail(line, "ss: exclude is not supported");
            }
            states.extend(s);
            explicit += 1;
            i += 1;
        } else if t == "and" || t == "&&" {
        } else if matches!(t, "sport" | "dport" | "src" | "dst") {
            let mut j = i + 1;
            if matches!(toks.get(j).map(String::as_str), Some("=" | "==" | "eq")) {
                j += 1;
            }
            let Some(v) = toks.get(j) else {
                return fail(line, format!("ss: {t} needs a value"));
            };
            let local = t == "sport" || t == "src";
            if t.ends_with("port") {
                let port = v
                    .trim_start_matches(':')
                    .parse()
                    .or_else(|_| fail(line, format!("ss: bad port {v}")))?;
                conds.push(Cond::Port { local, port });
            } else {
                let (a, len) = v
                    .split_once('/')
                    .map_or((v.as_str(), None), |(a, l)| (a, Some(l)));
                let a = a.trim_start_matches('[').trim_end_matches(']');
                let net: IpAddr = a
                    .parse()
                    .or_else(|_| fail(line, format!("ss: bad address {v}")))?;
                let max = if net.is_ipv4() { 32 } else { 128 };
                let len = match len {
                    Some(l) => l
                        .parse()
                        .ok()
                        .filter(|&l| l <= max)
                        .map_or_else(|| fail(line, format!("ss: bad prefix {v}")), Ok)?,
                    None => max,
                };
                conds.push(Cond::Addr { local, net, len });
            }
            i = j;
        } else {
            return fail(line, format!("ss: cannot read {t:?}"));
        }
        i += 1;
    }
    let show = |r: &Row| {
        let by_state = if explicit > 0 {
            states.contains(&r.state)
        } else if all {
            true
        } else if listening {
            r.state == "LISTEN"
        } else {
            r.state != "LISTEN" && r.state != "UNCONN"
        };
        by_state
            && conds.iter().all(|c| match *c {
                Cond::Port { local, port } => {
                    if local {
                        r.local.port() == port
                    } else {
                        r.peer.is_some_and(|p| p.port() == port)
                    }
                }
                Cond::Addr { local, net, len } => {
                    if local {
                        in_net(r.local.ip(), net, len)
                    } else {
                        r.peer.is_some_and(|p| in_net(p.ip(), net, len))
                    }
                }
            })
    };
    let with_state = !(explicit == 1 && states.len() == 1);
    let addr = |a: &SocketAddr| match a {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let mut table: Vec<[String; 5]> = Vec::new();
    if header {
        table.push([
            "State".into(),
            "Recv-Q".into(),
            "Send-Q".into(),
            "Local Address:Port".into(),
            "Peer Address:Port".into(),
        ]);
    }
    for r in rows(run).iter().filter(|r| show(r)) {
        let peer = match r.peer {
            Some(p) => addr(&p),
            None if r.local.is_ipv4() => "0.0.0.0:*".into(),
            None => "[::]:*".into(),
        };
        table.push([
            r.state.to_string(),
            r.recv_q.to_string(),
            r.send_q.to_string(),
            addr(&r.local),
            peer,
        ]);
    }
    let first = usize::from(!with_state);
    let mut widths = [0usize; 5];
    for row in &table {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for (k, row) in table.iter().enumerate() {
        let mut l = String::new();
        for c in first..5 {
            let _ = write!(l, "{:<w$} ", row[c], w = widths[c]);
        }
        if k == 0 && header {
            l.push_str("Process");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    }
    Ok(out)
}

/// `nstat [-a] [-z] [-s] [-n] [-r] [NAME...]`: counter deltas since the last `nstat`
/// (absolute with -a), as nstat prints them.
pub(crate) fn nstat(run: &mut SimHost, line: usize, args: &[String]) -> Step<String> {
    let (mut abs, mut zeros, mut keep, mut silent, mut reset) = (false, false, false, false, false);
    let mut names = Vec::new();
    for a in args {
        if let Some(flags) = a.strip_prefix('-') {
            for f in flags.chars() {
                match f {
                    'a' => abs = true,
                    'z' => zeros = true,
                    's' => keep = true,
                    'n' => silent = true,
                    'r' => reset = true,
                    'j' | 'p' | 'd' | 't' => {
                        return fail(line, format!("nstat: option -{f} is not supported"))
                    }
                    _ => return fail(line, format!("nstat: unknown option -{f}")),
                }
            }
        } else {
            names.push(a.clone());
        }
    }
    if reset {
        run.nstat_seen.clear();
    }
    let counters: Vec<(&'static str, u64)> = run.stack.counters().iter().collect();
    let mut out = String::from("#kernel\n");
    for &(name, v) in &counters {
        let shown = if abs {
            v
        } else {
            v - run.nstat_seen.get(name).copied().unwrap_or(0).min(v)
        };
        let wanted = names.is_empty() || names.iter().any(|n| n == name);
        if wanted && (shown != 0 || zeros) && !silent {
            let _ = writeln!(out, "{name:<32}{shown:<19}0.0");
        }
    }
    if !keep {
        for (name, v) in counters {
            run.nstat_seen.insert(name, v);
        }
    }
    Ok(if silent { String::new() } else { out })
}

/// FreeBSD's state names.
fn bsd_state(ss: &str) -> &'static str {
    match ss {
        "LISTEN" => "LISTEN",
        "SYN-SENT" => "SYN_SENT",
        "SYN-RECV" => "SYN_RCVD",
        "ESTAB" => "ESTABLISHED",
        "CLOSE-WAIT" => "CLOSE_WAIT",
        "FIN-WAIT-1" => "FIN_WAIT_1",
        "CLOSING" => "CLOSING",
        "LAST-ACK" => "LAST_ACK",
        "FIN-WAIT-2" => "FIN_WAIT_2",
        "TIME-WAIT" => "TIME_WAIT",
        _ => "CLOSED",
    }
}

/// FreeBSD `netstat -s -p tcp`: the syncache block and the listen-queue drops, as FreeBSD
/// prints them (the freebsd model counts them; the others leave them at zero).
pub(crate) fn netstat(run: &SimHost, line: usize, args: &[String]) -> Step<String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if !matches!(
        words.as_slice(),
        ["-s", "-p", "tcp"] | ["-sp", "tcp"] | ["-s"]
    ) {
        return fail(
            line,
            format!("netstat: only -s -p tcp is supported, not {words:?}"),
        );
    }
    let c = run.stack.freebsd_counters();
    let mut out = String::from("tcp:\n");
    for (indent, n, what) in [
        (1, c.sc_added, "syncache entries added"),
        (2, c.sc_retransmitted, "retransmitted"),
        (2, c.sc_dupsyn, "dupsyn"),
        (2, c.sc_dropped, "dropped"),
        (2, c.sc_completed, "completed"),
        (2, c.sc_bucketoverflow, "bucket overflow"),
        (2, 0, "cache overflow"),
        (2, c.sc_reset, "reset"),
        (2, c.sc_stale, "stale"),
        (2, c.sc_aborted, "aborted"),
        (2, 0, "badack"),
        (2, 0, "unreach"),
        (2, c.sc_zonefail, "zone failures"),
        (1, c.sc_sendcookie, "cookies sent"),
        (1, c.sc_recvcookie, "cookies received"),
        (1, c.listendrop, "listen queue overflows"),
        (1, c.badrst, "ignored RSTs in the windows"),
    ] {
        let _ = writeln!(out, "{}{n} {what}", "\t".repeat(indent));
    }
    Ok(out)
}

/// FreeBSD `sockstat [-4] [-6] [-l] [-c] [-s] [-n] [-q] [-P tcp] [-p PORT[,PORT]]`.
pub(crate) fn sockstat(run: &SimHost, line: usize, args: &[String]) -> Step<String> {
    let (mut v4, mut v6, mut listening, mut connected, mut header) =
        (false, false, false, false, true);
    let mut ports: Vec<u16> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flags) = a.strip_prefix('-') else {
            return fail(line, format!("sockstat: cannot read {a:?}"));
        };
        for f in flags.chars() {
            match f {
                '4' => v4 = true,
                '6' => v6 = true,
                'l' => listening = true,
                'c' => connected = true,
                'q' => header = false,
                's' | 'n' | 'w' | 'u' | 'i' | 'S' => {}
                'P' => {
                    let p = it.next().map(String::as_str);
                    if p != Some("tcp") {
                        return fail(
                            line,
                            format!("sockstat: only -P tcp is supported, not {p:?}"),
                        );
                    }
                }
                'p' => {
                    let Some(list) = it.next() else {
                        return fail(line, "sockstat: -p needs ports");
                    };
                    for p in list.split(',') {
                        ports.push(
                            p.parse()
                                .or_else(|_| fail(line, format!("sockstat: bad port {p}")))?,
                        );
                    }
                }
                _ => return fail(line, format!("sockstat: option -{f} is not supported")),
            }
        }
    }
    let mut out = String::new();
    if header {
        out.push_str("USER     COMMAND    PID   FD  PROTO  LOCAL ADDRESS         FOREIGN ADDRESS       PATH STATE   CONN STATE\n");
    }
    for r in rows(run) {
        let fam4 = r.local.is_ipv4();
        if (v4 || v6) && !((v4 && fam4) || (v6 && !fam4)) {
            continue;
        }
        if listening && r.state != "LISTEN" || connected && r.state == "LISTEN" {
            continue;
        }
        if !ports.is_empty()
            && !ports
                .iter()
                .any(|&p| r.local.port() == p || r.peer.is_some_and(|x| x.port() == p))
        {
            continue;
        }
        let peer = r.peer.map_or_else(|| "*:*".to_string(), |p| p.to_string());
        let _ = writeln!(
            out,
            "?        ?          ?     ?   tcp{}   {:<21} {:<21}      {}",
            if fam4 { '4' } else { '6' },
            r.local,
            peer,
            bsd_state(r.state)
        );
    }
    Ok(out)
}
