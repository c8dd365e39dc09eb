//! `%{ ... }%` blocks: `assert` lines over the current socket's TCP_INFO, evaluated as a
//! small subset of Python (integers, comparisons, arithmetic, bit operations, and/or/not).

use crate::run::{fail, Run, Step};
use crate::sim::SimHost;
use synq_core::State;

/// The constants blocks compare TCP_INFO fields with (Linux's values).
pub(crate) const CONSTANTS: &[(&str, i64)] = &[
    ("TCP_ESTABLISHED", 1),
    ("TCP_SYN_SENT", 2),
    ("TCP_SYN_RECV", 3),
    ("TCP_FIN_WAIT1", 4),
    ("TCP_FIN_WAIT2", 5),
    ("TCP_TIME_WAIT", 6),
    ("TCP_CLOSE", 7),
    ("TCP_CLOSE_WAIT", 8),
    ("TCP_LAST_ACK", 9),
    ("TCP_LISTEN", 10),
    ("TCP_CLOSING", 11),
    ("TCPI_OPT_TIMESTAMPS", 1),
    ("TCPI_OPT_SACK", 2),
    ("TCPI_OPT_WSCALE", 4),
    ("TCPI_OPT_ECN", 8),
    ("TCPI_OPT_ECN_SEEN", 16),
    ("TCPI_OPT_SYN_DATA", 32),
    ("TCP_CA_Open", 0),
    ("TCP_CA_Disorder", 1),
    ("TCP_CA_CWR", 2),
    ("TCP_CA_Recovery", 3),
    ("TCP_CA_Loss", 4),
    ("True", 1),
    ("False", 0),
];

/// Names bound in a block: TCP_INFO fields synq keeps and the constants scripts compare them
/// with.
pub(crate) fn snapshot(run: &SimHost) -> Vec<(&'static str, i64)> {
    let mut v: Vec<(&'static str, i64)> = CONSTANTS.to_vec();
    let Some(sock) = run.current.and_then(|fd| run.fds.get(&fd)) else {
        return v;
    };
    if sock.listener().is_some() {
        v.push(("tcpi_state", 10));
        return v;
    }
    let Some(i) = sock.conn().and_then(|h| run.stack.info(h)) else {
        v.push(("tcpi_state", 7));
        return v;
    };
    let state = match i.state {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    };
    let mss = i64::from(i.mss.max(1));
    let options = i64::from(i.timestamps)
        | (i64::from(i.sack) << 1)
        | if i.snd_wscale > 0 || i.rcv_wscale > 0 {
            4
        } else {
            0
        };
    let c = run.stack.config();
    let hdr = if i.tuple.local.is_ipv4() { 40 } else { 60 };
    let ssthresh = i64::from(i.ssthresh) / mss;
    v.extend([
        ("tcpi_state", state),
        (
            "tcpi_ca_state",
            match i.ca_state {
                "recovery" => 3,
                "loss" => 4,
                _ => 0,
            },
        ),
        ("tcpi_options", options),
        ("tcpi_snd_wscale", i64::from(i.snd_wscale)),
        ("tcpi_rcv_wscale", i64::from(i.rcv_wscale)),
        ("tcpi_rto", i.rto.total_micros() as i64),
        ("tcpi_rtt", i.srtt.map_or(0, |d| d.total_micros() as i64)),
        ("tcpi_snd_mss", mss),
        ("tcpi_advmss", i64::from(c.mtu) - hdr),
        ("tcpi_snd_cwnd", i64::from(i.cwnd) / mss),
        ("tcpi_snd_ssthresh", ssthresh.min(i64::from(i32::MAX))),
        (
            "tcpi_unacked",
            (i64::from(i.snd_nxt.0.wrapping_sub(i.snd_una.0)) + mss - 1) / mss,
        ),
        ("tcpi_snd_wnd", i64::from(i.snd_wnd)),
        ("tcpi_rcv_wnd", i64::from(i.rcv_wnd)),
        ("tcpi_notsent_bytes", 0),
    ]);
    v
}

/// Evaluate a block's statements now.
pub(crate) fn run(run: &mut Run<'_>, line: usize, code: &str) -> Step {
    let mut names = run.host.tcp_info();
    let mut vars: Vec<(String, i64)> = Vec::new();
    let stmts = code
        .lines()
        .enumerate()
        .flat_map(|(k, l)| l.split(';').map(move |s| (line + k, s)));
    for (at, stmt) in stmts {
        let stmt = stmt.split('#').next().unwrap_or("").trim();
        if stmt.is_empty() {
            continue;
        }
        let toks = tokens(stmt).or_else(|e| fail(at, e))?;
        let mut p = Eval {
            toks: &toks,
            pos: 0,
            names: &names,
            vars: &vars,
            depth: 0,
        };
        if let Some(Tk::Name(w)) = toks.first() {
            if w == "assert" {
                p.pos = 1;
                let v = p.or().or_else(|e| fail(at, e))?;
                let msg = if p.eat(",") {
                    let m = p.or().or_else(|e| fail(at, e))?;
                    format!(" (value {m})")
                } else {
                    String::new()
                };
                if p.pos != toks.len() {
                    return fail(at, format!("cannot read {stmt:?}"));
                }
                if v == 0 {
                    return fail(at, format!("assertion failed: {stmt}{msg}"));
                }
                continue;
            }
            if toks.get(1) == Some(&Tk::Op("=".into())) {
                let name = w.clone();
                p.pos = 2;
                let v = p.or().or_else(|e| fail(at, e))?;
                vars.push((name, v));
                continue;
            }
        }
        return fail(
            at,
            format!("only `assert` and assignments are supported in %{{ }}%: {stmt:?}"),
        );
    }
    names.clear();
    Ok(())
}

#[derive(Clone, Debug, PartialEq)]
enum Tk {
    Num(i64),
    Name(String),
    Op(String),
}

fn tokens(s: &str) -> Result<Vec<Tk>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric()) {
                j += 1;
            }
            let t = &s[i..j];
            let n = if let Some(h) = t.strip_prefix("0x") {
                i64::from_str_radix(h, 16)
            } else {
                t.parse()
            }
            .map_err(|_| format!("bad number {t:?}"))?;
            v.push(Tk::Num(n));
            i = j;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            v.push(Tk::Name(s[i..j].to_string()));
            i = j;
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            let op = if ["==", "!=", "<=", ">=", "//", "<<", ">>"].contains(&two) {
                two
            } else if "<>+-*/%&|^(),=~".contains(c as char) {
                &s[i..i + 1]
            } else {
                return Err(format!("unexpected {:?} in {s:?}", c as char));
            };
            v.push(Tk::Op(op.to_string()));
            i += op.len();
        }
    }
    Ok(v)
}

struct Eval<'t> {
    toks: &'t [Tk],
    pos: usize,
    names: &'t [(&'static str, i64)],
    vars: &'t [(String, i64)],
    depth: usize,
}

type E = Result<i64, String>;

impl Eval<'_> {
    fn eat(&mut self, op: &str) -> bool {
        let yes = matches!(self.toks.get(self.pos), Some(Tk::Op(o)) if o == op);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = matches!(self.toks.get(self.pos), Some(Tk::Name(o)) if o == kw);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn or(&mut self) -> E {
        let mut v = self.and()?;
        while self.eat_kw("or") {
            let r = self.and()?;
            v = i64::from(v != 0 || r != 0);
        }
        Ok(v)
    }
    fn and(&mut self) -> E {
        let mut v = self.not()?;
        while self.eat_kw("and") {
            let r = self.not()?;
            v = i64::from(v != 0 && r != 0);
        }
        Ok(v)
    }
    fn not(&mut self) -> E {
        if self.eat_kw("not") {
            return Ok(i64::from(self.not()? == 0));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> E {
        let mut left = self.bits()?;
        let mut result = 1;
        let mut any = false;
        loop {
            let op = match self.toks.get(self.pos) {
                Some(Tk::Op(o)) if ["==", "!=", "<", "<=", ">", ">="].contains(&o.as_str()) => {
                    o.clone()
                }
                _ => break,
            };
            self.pos += 1;
            let right = self.bits()?;
            let ok = match op.as_str() {
                "==" => left == right,
                "!=" => left != right,
                "<" => left < right,
                "<=" => left <= right,
                ">" => left > right,
                _ => left >= right,
            };
            result &= i64::from(ok);
            any = true;
            left = right;
        }
        Ok(if any { result } else { left })
    }
    fn bits(&mut self) -> E {
        let mut v = self.sum()?;
        loop {
            if self.eat("&") {
                v &= self.sum()?;
            } else if self.eat("|") {
                v |= self.sum()?;
            } else if self.eat("^") {
                v ^= self.sum()?;
            } else if self.eat("<<") {
                v = v.checked_shl(self.sum()? as u32).unwrap_or(0);
            } else if self.eat(">>") {
                v = v.checked_shr(self.sum()? as u32).unwrap_or(0);
            } else {
                return Ok(v);
            }
        }
    }
    fn sum(&mut self) -> E {
        let mut v = self.product()?;
        loop {
            if self.eat("+") {
                v = v.wrapping_add(self.product()?);
            } else if self.eat("-") {
                v = v.wrapping_sub(self.product()?);
            } else {
                return Ok(v);
            }
        }
    }
    fn product(&mut self) -> E {
        let mut v = self.unary()?;
        loop {
            let op = if self.eat("*") {
                '*'
            } else if self.eat("//") || self.eat("/") {
                '/'
            } else if self.eat("%") {
                '%'
            } else {
                return Ok(v);
            };
            let r = self.unary()?;
            v = match op {
                '*' => v.wrapping_mul(r),
                _ if r == 0 => return Err("division by zero".into()),
                '/' => floor_div(v, r).ok_or("integer overflow in //")?,
                _ => floor_rem(v, r).ok_or("integer overflow in %")?,
            };
        }
    }
    fn unary(&mut self) -> E {
        self.depth += 1;
        if self.depth > 64 {
            return Err("expression nested too deeply".into());
        }
        let r = if self.eat("-") {
            self.unary().map(i64::wrapping_neg)
        } else if self.eat("~") {
            self.unary().map(|v| !v)
        } else {
            self.atom()
        };
        self.depth -= 1;
        r
    }
    fn atom(&mut self) -> E {
        match self.toks.get(self.pos).cloned() {
            Some(Tk::Num(n)) => {
                self.pos += 1;
                Ok(n)
            }
            Some(Tk::Name(w)) => {
                self.pos += 1;
                if let Some((_, v)) = self.vars.iter().rev().find(|(k, _)| *k == w) {
                    return Ok(*v);
                }
                self.names
                    .iter()
                    .find(|(k, _)| *k == w)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        format!("{w} is not a TCP_INFO field synq keeps (see docs/conformance.md)")
                    })
            }
            Some(Tk::Op(o)) if o == "(" => {
                self.pos += 1;
                let v = self.or()?;
                if !self.eat(")") {
                    return Err("missing ')'".into());
                }
                Ok(v)
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

/// Python's `//`: the quotient rounded toward minus infinity; `None` on overflow
/// (`i64::MIN // -1`).
fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    Some(if a % b != 0 && (a < 0) != (b < 0) {
        q - 1
    } else {
        q
    })
}

/// Python's `%`: the remainder with the divisor's sign; `None` on overflow.
fn floor_rem(a: i64, b: i64) -> Option<i64> {
    let r = a.checked_rem(b)?;
    Some(if r != 0 && (r < 0) != (b < 0) {
        r + b
    } else {
        r
    })
}
