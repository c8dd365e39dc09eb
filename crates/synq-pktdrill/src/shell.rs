//! Backtick commands, run by a small shell of our own against the stack under test (not
//! `/bin/sh`: the run is in virtual time and must not touch the host): `sysctl`,
//! `defaults.sh`, `set_sysctls.py`, `echo V > /proc/sys/...`, `ss`, `nstat`, FreeBSD
//! `sockstat`, piped through `grep` and `wc -l`, joined by `;` and `&&`. docs/conformance.md
//! lists what each accepts.

use crate::run::{fail, Step};
use crate::sim::SimHost;
use std::fmt::Write as _;
use synq_core::{Config, SysctlError};

/// Linux sysctls scripts set that change nothing synq models (no fast open, ECN, pacing,
/// TSO autosizing or route metrics): accepted and ignored, so `defaults.sh` and scripts that
/// set them run.
const LINUX_NO_OPS: &[&str] = &[
    "tcp_fastopen",
    "tcp_fastopen_key",
    "tcp_fack",
    "tcp_ecn",
    "tcp_ecn_fallback",
    "tcp_ecn_option",
    "tcp_early_retrans",
    "tcp_tso_win_divisor",
    "tcp_pacing_ss_ratio",
    "tcp_pacing_ca_ratio",
    "tcp_notsent_lowat",
    "tcp_slow_start_after_idle",
    "tcp_min_tso_segs",
    "tcp_autocorking",
    "tcp_no_metrics_save",
    "tcp_thin_linear_timeouts",
    "tcp_min_rtt_wlen",
    "tcp_tw_reuse",
    "tcp_mtu_probing",
    "tcp_comp_sack_nr",
    "tcp_comp_sack_delay_ns",
    "tcp_shrink_window",
    "tcp_l3mdev_accept",
    "tcp_rfc1337",
    "tcp_workaround_signed_windows",
    "tcp_limit_output_bytes",
    "tcp_adv_win_scale",
    "tcp_app_win",
    "tcp_base_mss",
    "tcp_mtu_probe_floor",
    "ip_no_pmtu_disc",
];

/// FreeBSD names for the bsd models: the Linux knob each one sets (with a value mapping),
/// or `None` for a documented no-op. The freebsd model sets its own knobs first.
fn freebsd(name: &str, value: &str) -> Option<Option<(&'static str, String)>> {
    let v = value.to_string();
    Some(match name {
        "kern.ipc.somaxconn" | "kern.ipc.soacceptqueue" => Some(("net.core.somaxconn", v)),
        "net.inet.tcp.syncookies" => Some(("net.ipv4.tcp_syncookies", v)),
        "net.inet.tcp.syncookies_only" => Some((
            "net.ipv4.tcp_syncookies",
            if value.trim() == "0" {
                "1".into()
            } else {
                "2".into()
            },
        )),
        "net.inet.tcp.syncache.rexmtlimit" => Some(("net.ipv4.tcp_synack_retries", v)),
        "net.inet.tcp.sack.enable" => Some(("net.ipv4.tcp_sack", v)),
        "net.inet.tcp.rfc1323" => Some(("net.ipv4.tcp_timestamps", v)),
        "net.inet.tcp.drop_synfin" => Some(("synq.bsd_drop_synfin", v)),
        "net.inet.tcp.insecure_rst" => Some(("synq.bsd_insecure_rst", v)),
        "net.inet.tcp.msl"
        | "net.inet.tcp.syncache.rst_on_sock_fail"
        | "net.inet.tcp.blackhole"
        | "net.inet.tcp.ecn.enable"
        | "net.inet.tcp.mssdflt"
        | "net.inet.tcp.tolerate_missing_ts"
        | "net.inet.tcp.functions_default"
        | "net.inet.tcp.delayed_ack"
        | "net.inet.tcp.tso"
        | "net.inet.tcp.nolocaltimewait"
        | "net.inet.tcp.hostcache.purgenow"
        | "net.inet.tcp.fastopen.server_enable"
        | "net.inet.tcp.fastopen.client_enable"
        | "net.inet.tcp.udp_tunneling_port"
        | "net.inet.tcp.rfc3042"
        | "net.inet.tcp.rfc3390" => None,
        _ => return None,
    })
}

/// Set a sysctl by Linux or FreeBSD name (`/` separators allowed, as sysctl(8) takes them).
pub(crate) fn set_sysctl(config: &mut Config, name: &str, value: &str) -> Result<(), String> {
    let name = name
        .trim()
        .trim_start_matches("/proc/sys/")
        .replace('/', ".");
    // The freebsd model reads FreeBSD's own knobs; the bsd models take them mapped.
    if config.model.family() == synq_core::Family::FreeBsd {
        match config.set(&name, value.trim()) {
            Err(SysctlError::UnknownName(_)) => {}
            r => return r.map_err(|e| e.to_string()),
        }
    }
    if let Some(m) = freebsd(&name, value) {
        return match m {
            Some((n, v)) => config.set(n, &v).map_err(|e| e.to_string()),
            None => Ok(()),
        };
    }
    match config.set(&name, value.trim()) {
        Err(SysctlError::UnknownName(_))
            if name
                .rsplit('.')
                .next()
                .is_some_and(|last| LINUX_NO_OPS.contains(&last)) =>
        {
            Ok(())
        }
        r => r.map_err(|e| e.to_string()),
    }
}

/// google/packetdrill's `gtests/net/common/defaults.sh`, as far as synq models it.
pub(crate) const DEFAULTS_SH: &[(&str, &str)] = &[
    ("net.ipv4.tcp_rmem", "4096 540000 15728640"),
    ("net.ipv4.tcp_wmem", "4096 262144 4194304"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_syn_retries", "5"),
    ("net.ipv4.tcp_synack_retries", "5"),
    ("net.ipv4.tcp_frto", "2"),
    ("net.ipv4.tcp_sack", "1"),
    ("net.ipv4.tcp_dsack", "1"),
    ("net.ipv4.tcp_reordering", "3"),
    ("net.ipv4.tcp_congestion_control", "cubic"),
    ("net.ipv4.tcp_recovery", "1"),
    ("net.ipv4.tcp_syncookies", "1"),
];

/// Run one command line: (what it printed, its exit status).
pub(crate) fn run(run: &mut SimHost, line: usize, cmd: &str) -> Step<(String, i32)> {
    let mut status = 0;
    let mut out = String::new();
    for (sep, part) in split_seq(cmd) {
        if sep == "&&" && status != 0 {
            continue;
        }
        status = pipeline(run, line, part, &mut out)?;
    }
    Ok((out, status))
}

/// Split at `;` and `&&` outside quotes: (separator before, part).
fn split_seq(cmd: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let (mut start, mut sep, mut quote) = (0, ";", None);
    let b = cmd.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b';' || c == b'\n' => {
                out.push((sep, &cmd[start..i]));
                sep = ";";
                start = i + 1;
            }
            None if c == b'&' && b.get(i + 1) == Some(&b'&') => {
                out.push((sep, &cmd[start..i]));
                sep = "&&";
                start = i + 2;
                i += 1;
            }
            None => {}
        }
        i += 1;
    }
    out.push((sep, &cmd[start..]));
    out.retain(|(_, p)| !p.trim().is_empty());
    out
}

/// Shell words: whitespace-separated, with '...' and "..." quoting; `|` and `>` stand alone.
fn words(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut has = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has = true;
            }
            None if c.is_whitespace() || c == '|' || c == '>' => {
                if has || !cur.is_empty() {
                    v.push(std::mem::take(&mut cur));
                    has = false;
                }
                if c == '|' || c == '>' {
                    v.push(c.to_string());
                }
            }
            None => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        v.push(cur);
    }
    v
}

fn pipeline(run: &mut SimHost, line: usize, part: &str, output: &mut String) -> Step<i32> {
    let w = words(part);
    let mut stages: Vec<Vec<String>> = vec![Vec::new()];
    let mut redirect = None;
    let mut it = w.into_iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "|" => stages.push(Vec::new()),
            ">" => redirect = it.next(),
            _ => stages.last_mut().expect("never empty").push(x),
        }
    }
    let mut text = String::new();
    let mut status = 0;
    for (k, st) in stages.iter().enumerate() {
        let Some(prog) = st.first() else {
            return fail(line, format!("empty command in `{part}`"));
        };
        let args = &st[1..];
        let base = prog.rsplit('/').next().unwrap_or(prog);
        let (out, s) = match base {
            "grep" if k > 0 => grep(line, args, &text)?,
            "wc" if k > 0 => (format!("{}\n", text.lines().count()), 0),
            "cat" if k > 0 && args.is_empty() => (text.clone(), 0),
            "tr" if k > 0 && args.len() == 2 && args[0] == "-s" && args[1].chars().count() == 1 => {
                let c = args[1].chars().next().unwrap_or(' ');
                let mut out = String::with_capacity(text.len());
                for ch in text.chars() {
                    if !(ch == c && out.ends_with(c)) {
                        out.push(ch);
                    }
                }
                (out, 0)
            }
            _ if k > 0 => {
                return fail(
                    line,
                    format!("`{base}` is not supported after a pipe (grep, wc -l, tr -s C, cat)"),
                )
            }
            "sysctl" => sysctl(run, line, args)?,
            "defaults.sh" => {
                for (n, v) in DEFAULTS_SH {
                    set_sysctl(run.stack.config_mut(), n, v).or_else(|e| fail(line, e))?;
                }
                (String::new(), 0)
            }
            "set_sysctls.py" => {
                for a in args {
                    let Some((n, v)) = a.split_once('=') else {
                        return fail(
                            line,
                            format!("set_sysctls.py: expected PATH=VALUE, got {a:?}"),
                        );
                    };
                    set_sysctl(run.stack.config_mut(), n, v).or_else(|e| fail(line, e))?;
                }
                (String::new(), 0)
            }
            "echo" => {
                let v = args.join(" ");
                match redirect.take() {
                    Some(path) if path.starts_with("/proc/sys/") => {
                        set_sysctl(run.stack.config_mut(), &path, &v).or_else(|e| fail(line, e))?;
                        (String::new(), 0)
                    }
                    Some(path) => {
                        return fail(line, format!("echo: writing to {path} is not supported"))
                    }
                    None => (format!("{v}\n"), 0),
                }
            }
            "cat" => {
                let mut out = String::new();
                for a in args {
                    let Some(n) = a.strip_prefix("/proc/sys/") else {
                        return fail(
                            line,
                            format!("cat: only /proc/sys files are supported, not {a}"),
                        );
                    };
                    let v = run
                        .stack
                        .config()
                        .get(&n.replace('/', "."))
                        .or_else(|e| fail(line, e.to_string()))?;
                    let _ = writeln!(out, "{v}");
                }
                (out, 0)
            }
            "ss" => (crate::report::ss(run, line, args)?, 0),
            "nstat" => (crate::report::nstat(run, line, args)?, 0),
            "sockstat" => (crate::report::sockstat(run, line, args)?, 0),
            "netstat" => (crate::report::netstat(run, line, args)?, 0),
            "true" | ":" | "sleep" | "tc" => (String::new(), 0),
            "false" => (String::new(), 1),
            "ip" if matches!(
                args.first().map(String::as_str),
                Some("tcp_metrics" | "tcpm")
            ) =>
            {
                (String::new(), 0)
            }
            other => {
                return fail(
                    line,
                    format!(
                    "command `{other}` is not supported by synq's shell (see docs/conformance.md)"
                ),
                )
            }
        };
        text = out;
        status = s;
    }
    output.push_str(&text);
    Ok(status)
}

fn sysctl(run: &mut SimHost, line: usize, args: &[String]) -> Step<(String, i32)> {
    let mut out = String::new();
    let (mut quiet, mut only_value, mut ignore) = (false, false, false);
    for a in args {
        if let Some(flags) = a.strip_prefix('-') {
            for f in flags.chars() {
                match f {
                    'q' => quiet = true,
                    'n' => only_value = true,
                    'e' => ignore = true,
                    'w' => {}
                    _ => return fail(line, format!("sysctl: option -{f} is not supported")),
                }
            }
            continue;
        }
        if let Some((n, v)) = a.split_once('=') {
            match set_sysctl(run.stack.config_mut(), n, v) {
                Ok(()) if !quiet => {
                    let _ = writeln!(out, "{} = {}", n.trim(), v.trim());
                }
                Ok(()) => {}
                Err(_) if ignore => {}
                Err(e) => return fail(line, format!("sysctl: {e}")),
            }
        } else {
            let name = a.replace('/', ".");
            match run.stack.config().get(&name) {
                Ok(v) if only_value => {
                    let _ = writeln!(out, "{v}");
                }
                Ok(v) => {
                    let _ = writeln!(out, "{name} = {v}");
                }
                Err(_) if ignore => {}
                Err(e) => return fail(line, format!("sysctl: {e}")),
            }
        }
    }
    Ok((out, 0))
}

/// A basic regular expression (grep's default) in the extended syntax `regex` reads: `+ ? |
/// ( ) { }` are literal unless escaped, and escaped they are operators.
fn bre_to_ere(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('+' | '?' | '|' | '(' | ')' | '{' | '}')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str(r"\\"),
            },
            '+' | '?' | '|' | '(' | ')' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `grep [-c] [-q] [-v] [-w] [-x] [-i] [-E|-F] [-e PATTERN] PATTERN`, over a pipe.
fn grep(line: usize, args: &[String], input: &str) -> Step<(String, i32)> {
    let (mut count, mut quiet, mut invert, mut word, mut whole, mut icase) =
        (false, false, false, false, false, false);
    let mut syntax = 'G';
    let mut pat = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-e" {
            pat = it.next().cloned();
        } else if a.len() > 1 && a.starts_with('-') && pat.is_none() {
            for f in a[1..].chars() {
                match f {
                    'c' => count = true,
                    'q' => quiet = true,
                    'v' => invert = true,
                    'w' => word = true,
                    'x' => whole = true,
                    'i' => icase = true,
                    'E' | 'F' | 'G' => syntax = f,
                    's' => {}
                    _ => return fail(line, format!("grep: option -{f} is not supported")),
                }
            }
        } else if pat.is_none() {
            pat = Some(a.clone());
        } else {
            return fail(line, "grep: files are not supported, only a pipe");
        }
    }
    let Some(pat) = pat else {
        return fail(line, "grep: no pattern");
    };
    let mut re = match syntax {
        'F' => regex::escape(&pat),
        'E' => pat.clone(),
        _ => bre_to_ere(&pat),
    };
    if word {
        re = format!(r"\b(?:{re})\b");
    }
    if whole {
        re = format!("^(?:{re})$");
    }
    let re = regex::RegexBuilder::new(&re)
        .case_insensitive(icase)
        .size_limit(1 << 20)
        .build()
        .or_else(|e| fail(line, format!("grep: bad pattern {pat:?}: {e}")))?;
    let lines: Vec<&str> = input.lines().filter(|l| re.is_match(l) != invert).collect();
    let status = i32::from(lines.is_empty());
    let out = if quiet {
        String::new()
    } else if count {
        format!("{}\n", lines.len())
    } else {
        lines.iter().fold(String::new(), |mut s, l| {
            let _ = writeln!(s, "{l}");
            s
        })
    };
    Ok((out, status))
}
