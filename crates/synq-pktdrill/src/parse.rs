//! The parser: tokens into a [`Script`].

use crate::ast::{
    flag, Dir, Event, EventKind, Expr, IpInfo, Packet, Script, Syscall, TcpOpt, Time,
};
use crate::lex::{lex, Tok, Token};
use crate::ParseError;

/// Seconds a time may name at most (a script of months is a typo).
const MAX_SECS: f64 = 1e7;

/// Parse a script, replacing each bare word defined in `defines` (`-D NAME=VALUE`) first: an
/// integer becomes a number, `"..."` a string, a backticked value a command, anything else a
/// word.
pub fn parse(src: &str, defines: &[(String, String)]) -> Result<Script, ParseError> {
    let mut toks = lex(src)?;
    for t in &mut toks {
        if let Tok::Word(w) = &t.tok {
            if let Some((_, v)) = defines.iter().rev().find(|(k, _)| k == w) {
                t.tok = define(v);
            }
        }
    }
    Parser {
        toks,
        pos: 0,
        depth: 0,
        src,
    }
    .script()
}

fn define(v: &str) -> Tok {
    let v = v.trim();
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Tok::Str(s.to_string());
    }
    if let Some(s) = v.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
        return Tok::Cmd(s.to_string());
    }
    if let Some(h) = v.strip_prefix("0x") {
        if let Ok(n) = i64::from_str_radix(h, 16) {
            return Tok::Int(n);
        }
    }
    v.parse()
        .map_or_else(|_| Tok::Word(v.to_string()), Tok::Int)
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    /// Nesting of `[`, `{` and calls in arguments (bounded: the input is untrusted).
    depth: usize,
}

/// Deepest argument nesting accepted.
const MAX_DEPTH: usize = 32;

type R<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k).map(|t| &t.tok)
    }
    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(1, |t| t.line)
    }
    fn spaced(&self) -> bool {
        self.toks.get(self.pos).is_none_or(|t| t.spaced)
    }
    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(ParseError {
            line: self.line(),
            msg: msg.into(),
        })
    }
    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }
    fn is_p(&self, c: char) -> bool {
        self.peek() == Some(&Tok::P(c))
    }
    fn eat_p(&mut self, c: char) -> bool {
        let yes = self.is_p(c);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn expect_p(&mut self, c: char, what: &str) -> R<()> {
        if self.eat_p(c) {
            Ok(())
        } else {
            self.err(format!("expected '{c}' {what}, found {}", self.found()))
        }
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn found(&self) -> String {
        match self.peek() {
            None => "end of script".into(),
            Some(Tok::Int(n)) => n.to_string(),
            Some(Tok::Float(f)) => f.to_string(),
            Some(Tok::Word(w)) => format!("'{w}'"),
            Some(Tok::P(c)) => format!("'{c}'"),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Ellipsis) => "'...'".into(),
            Some(Tok::Cmd(_)) => "a `command`".into(),
            Some(Tok::Code(_)) => "a %{ code }% block".into(),
            Some(Tok::Opt(o)) => format!("--{o}"),
        }
    }
    fn int(&mut self, what: &str) -> R<i64> {
        match self.peek() {
            Some(Tok::Int(n)) => {
                let n = *n;
                self.pos += 1;
                Ok(n)
            }
            _ => self.err(format!("expected {what}, found {}", self.found())),
        }
    }
    fn uint<T: TryFrom<i64>>(&mut self, what: &str) -> R<T> {
        let n = self.int(what)?;
        T::try_from(n).or_else(|_| self.err(format!("{what} {n} out of range")))
    }

    fn script(mut self) -> R<Script> {
        let mut s = Script::default();
        while let Some(Tok::Opt(o)) = self.peek() {
            let (k, v) = match o.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (o.clone(), None),
            };
            s.options.push((self.line(), k, v));
            self.pos += 1;
        }
        if let Some(Tok::Cmd(c)) = self.peek() {
            s.init = Some((self.line(), c.clone()));
            self.pos += 1;
        }
        while self.peek().is_some() {
            if let Some(Tok::Cmd(c)) = self.peek() {
                if self.pos + 1 == self.toks.len() {
                    s.cleanup = Some((self.line(), c.clone()));
                    break;
                }
                return self.err("a command needs a time unless it opens or ends the script");
            }
            if let Some(Tok::Opt(o)) = self.peek() {
                return self.err(format!("option --{o} after the first event"));
            }
            s.events.push(self.event()?);
        }
        if s.events.is_empty() {
            // As packetdrill's grammar: a truncated or empty file must not pass.
            return self.err("no timed events: a script needs at least one");
        }
        Ok(s)
    }

    fn event(&mut self) -> R<Event> {
        let line = self.line();
        let time = self.time()?;
        let kind = match self.peek() {
            Some(Tok::P('<')) => EventKind::Packet(self.packet(Dir::In)?),
            Some(Tok::P('>')) => EventKind::Packet(self.packet(Dir::Out)?),
            Some(Tok::Code(c)) => {
                let c = c.clone();
                self.pos += 1;
                EventKind::Code(c)
            }
            Some(Tok::Cmd(c)) => {
                let c = c.clone();
                self.pos += 1;
                EventKind::Command(c)
            }
            Some(Tok::Word(w)) if self.peek_at(1) == Some(&Tok::P('(')) => {
                if matches!(w.as_str(), "udp" | "icmp" | "gre" | "mpls") {
                    return self.err(format!("{w} packets are not supported (TCP only)"));
                }
                EventKind::Syscall(self.syscall()?)
            }
            Some(Tok::Word(w)) if matches!(w.as_str(), "udp" | "icmp" | "gre" | "mpls") => {
                return self.err(format!("{w} packets are not supported (TCP only)"))
            }
            _ => {
                return self.err(format!(
                    "expected an event after the time, found {}",
                    self.found()
                ))
            }
        };
        let ok = match (&kind, time) {
            (EventKind::Packet(p), Time::Any | Time::Range { .. }) => p.dir == Dir::Out,
            (_, Time::Any | Time::Range { .. }) => false,
            (EventKind::Syscall(_), Time::Blocking { .. }) => true,
            (_, Time::Blocking { .. }) => false,
            _ => true,
        };
        if !ok {
            return Err(ParseError {
                line,
                msg: "this time form is allowed only on outbound packets ('*', '~') or system calls ('...')".into(),
            });
        }
        Ok(Event { line, time, kind })
    }

    /// A number of seconds as microseconds.
    fn secs(&mut self) -> R<i64> {
        let v = match self.peek() {
            Some(Tok::Int(n)) => *n as f64,
            Some(Tok::Float(f)) => *f,
            _ => return self.err(format!("expected a time, found {}", self.found())),
        };
        if !(0.0..=MAX_SECS).contains(&v) {
            return self.err(format!("time {v} s out of range"));
        }
        self.pos += 1;
        Ok((v * 1e6).round() as i64)
    }

    fn time(&mut self) -> R<Time> {
        if self.eat_p('*') {
            return Ok(Time::Any);
        }
        let rel = self.eat_p('+');
        let start = self.secs()?;
        if self.eat_p('~') {
            let rel2 = self.eat_p('+');
            if rel2 != rel {
                return self.err("both ends of a time range must be absolute, or both relative");
            }
            let to = self.secs()?;
            if to < start {
                return self.err("a time range must not end before it starts");
            }
            return Ok(Time::Range {
                rel,
                from: start,
                to,
            });
        }
        if matches!(self.peek(), Some(Tok::Ellipsis)) {
            self.pos += 1;
            self.eat_p('+');
            let end = self.secs()?;
            if end < start {
                return self.err("a blocking call must not return before it starts");
            }
            return Ok(Time::Blocking { rel, start, end });
        }
        Ok(Time::At { rel, us: start })
    }

    fn packet(&mut self, dir: Dir) -> R<Packet> {
        self.pos += 1;
        let ip = self.ip_info()?;
        let ports =
            if matches!(self.peek(), Some(Tok::Int(_))) && self.peek_at(1) == Some(&Tok::P('>')) {
                let a = self.uint("a port")?;
                self.pos += 1;
                Some((a, self.uint("a port")?))
            } else {
                None
            };
        let flags = self.flags()?;
        let seq: u32 = self.uint("a sequence number (start:end(len))")?;
        self.expect_p(':', "in start:end(len)")?;
        let end: u32 = self.uint("the end sequence number")?;
        self.expect_p('(', "in start:end(len)")?;
        // A TCP segment's payload fits an IP packet (upstream: "TCP payload size out of
        // range"); more would also be bytes to allocate for an inbound packet.
        let len: u16 = self.uint("a payload length")?;
        let len = u32::from(len);
        self.expect_p(')', "in start:end(len)")?;
        if end != seq.wrapping_add(len) {
            return self.err(format!("{seq}:{end}({len}): end must equal start + length"));
        }
        let mut p = Packet {
            dir,
            ports,
            ip,
            flags,
            seq,
            len,
            ack: None,
            win: None,
            urg: None,
            options: Some(Vec::new()),
        };
        loop {
            if self.is_word("ack") {
                self.pos += 1;
                p.ack = Some(self.uint("an acknowledgement number")?);
            } else if self.is_word("win") {
                self.pos += 1;
                p.win = Some(u32::from(self.uint::<u16>("a window")?));
            } else if self.is_word("urg") {
                self.pos += 1;
                p.urg = Some(u32::from(self.uint::<u16>("an urgent pointer")?));
            } else {
                break;
            }
        }
        if self.eat_p('<') {
            if matches!(self.peek(), Some(Tok::Ellipsis)) {
                self.pos += 1;
                if dir == Dir::In {
                    return self.err("'<...>' (options unchecked) is for outbound packets only");
                }
                p.options = None;
            } else {
                p.options = Some(self.options()?);
            }
            self.expect_p('>', "closing the option list")?;
        }
        if dir == Dir::In && p.win.is_none() {
            return self.err("an inbound packet needs 'win N'");
        }
        Ok(p)
    }

    fn ip_info(&mut self) -> R<IpInfo> {
        let mut ip = IpInfo::default();
        loop {
            if self.is_p('[') {
                self.pos += 1;
                match self.bump() {
                    Some(Tok::Word(w)) => match w.as_str() {
                        "noecn" => ip.ecn = Some(0),
                        "ect1" => ip.ecn = Some(1),
                        "ect0" => ip.ecn = Some(2),
                        "ce" => ip.ecn = Some(3),
                        "flowlabel" => ip.flowlabel = Some(self.uint("a flow label")?),
                        _ => return self.err(format!("unknown IP detail [{w}]")),
                    },
                    _ => {
                        return self.err("expected [ect0], [ect1], [ce], [noecn] or [flowlabel N]")
                    }
                }
                self.expect_p(']', "closing the IP detail")?;
            } else if self.is_p('(')
                && matches!(self.peek_at(1), Some(Tok::Word(w)) if matches!(w.as_str(), "tos" | "ttl" | "hlim"))
            {
                self.pos += 1;
                let Some(Tok::Word(w)) = self.bump() else {
                    unreachable!("checked above")
                };
                let v: u8 = self.uint(&w)?;
                if w == "tos" {
                    ip.tos = Some(v);
                } else {
                    ip.ttl = Some(v);
                }
                self.expect_p(')', "closing the IP detail")?;
            } else {
                return Ok(ip);
            }
        }
    }

    /// `S.`, `.`, `P.`, `-`, `SR`, ...: letters and dots with no space between them.
    fn flags(&mut self) -> R<u16> {
        if self.eat_p('-') {
            return Ok(0);
        }
        let mut bits = 0u16;
        let mut first = true;
        while first || !self.spaced() {
            match self.peek() {
                Some(Tok::P('.')) => bits |= flag::ACK,
                Some(Tok::Word(w)) => {
                    for c in w.chars() {
                        bits |= match c {
                            'F' => flag::FIN,
                            'S' => flag::SYN,
                            'R' => flag::RST,
                            'P' => flag::PSH,
                            'E' => flag::ECE,
                            'W' => flag::CWR,
                            'A' => flag::AE,
                            'U' => flag::URG,
                            _ => return self.err(format!("unknown TCP flag '{c}' in '{w}'")),
                        };
                    }
                }
                Some(Tok::Int(_)) if !first => {
                    return self.err("AccECN ACE values in flags are not supported")
                }
                _ if first => {
                    return self.err(format!("expected TCP flags, found {}", self.found()))
                }
                _ => break,
            }
            self.pos += 1;
            first = false;
        }
        Ok(bits)
    }

    fn options(&mut self) -> R<Vec<TcpOpt>> {
        let mut v = Vec::new();
        loop {
            let Some(Tok::Word(w)) = self.bump() else {
                self.pos -= 1;
                return self.err(format!("expected a TCP option, found {}", self.found()));
            };
            v.push(match w.as_str() {
                "nop" => TcpOpt::Nop,
                "eol" => TcpOpt::Eol,
                "mss" => TcpOpt::Mss(self.uint("an MSS")?),
                "wscale" => TcpOpt::Wscale(self.uint("a window scale")?),
                "sackOK" => TcpOpt::SackOk,
                "sack" => {
                    let mut blocks = Vec::new();
                    while matches!(self.peek(), Some(Tok::Int(_))) {
                        let a = self.uint("a SACK edge")?;
                        self.expect_p(':', "in a SACK block a:b")?;
                        blocks.push((a, self.uint("a SACK edge")?));
                    }
                    if blocks.len() > 4 {
                        return self.err("at most 4 SACK blocks fit");
                    }
                    TcpOpt::Sack(blocks)
                }
                "TS" => {
                    if !self.is_word("val") {
                        return self.err("expected 'TS val V ecr E'");
                    }
                    self.pos += 1;
                    let val = self.uint("a TS value")?;
                    if !self.is_word("ecr") {
                        return self.err("expected 'ecr E' after 'TS val V'");
                    }
                    self.pos += 1;
                    TcpOpt::Ts(val, self.uint("a TS echo reply")?)
                }
                "FO" => TcpOpt::FastOpen(self.hex()?),
                "FOEXP" => TcpOpt::FastOpenExp(self.hex()?),
                other => return self.err(format!("TCP option '{other}' is not supported")),
            });
            if !self.eat_p(',') {
                return Ok(v);
            }
        }
    }

    /// An optional run of hex digits written without spaces (a fast-open cookie).
    fn hex(&mut self) -> R<Vec<u8>> {
        let mut s = String::new();
        if !self.spaced() || !matches!(self.peek(), Some(Tok::Int(_) | Tok::Word(_))) {
            return Ok(Vec::new());
        }
        let mut first = true;
        while first || !self.spaced() {
            match self.toks.get(self.pos) {
                Some(t) if matches!(t.tok, Tok::Int(_) | Tok::Word(_)) => {
                    // The source text keeps a literal cookie's leading zeros; a token a
                    // define replaced has the define's name there, and its value here.
                    let src = self.src.get(t.span.0..t.span.1).unwrap_or("");
                    match &t.tok {
                        Tok::Word(w) => s.push_str(w),
                        Tok::Int(n) if !src.bytes().all(|b| b.is_ascii_hexdigit()) => {
                            s.push_str(&n.to_string());
                        }
                        _ => s.push_str(src),
                    }
                }
                _ => break,
            }
            self.pos += 1;
            first = false;
        }
        if s.len() % 2 != 0 || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err(format!("bad fast-open cookie {s:?}"));
        }
        Ok((0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect())
    }

    fn syscall(&mut self) -> R<Syscall> {
        let Some(Tok::Word(name)) = self.bump() else {
            unreachable!("checked by the caller")
        };
        self.expect_p('(', "opening the arguments")?;
        let args = self.args(')')?;
        self.expect_p('=', "before the result")?;
        let neg = self.eat_p('-');
        let mut result = self.int("a result")?;
        if neg {
            result = -result;
        }
        let mut errno = None;
        if let Some(Tok::Word(w)) = self.peek() {
            if w.starts_with('E')
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                errno = Some(w.clone());
                self.pos += 1;
                if self.is_p('(') {
                    self.skip_group()?;
                }
            }
        }
        Ok(Syscall {
            name,
            args,
            result,
            errno,
        })
    }

    /// The free text after an errno: `(Resource temporarily unavailable)`.
    fn skip_group(&mut self) -> R<()> {
        let mut depth = 0usize;
        loop {
            match self.bump() {
                Some(Tok::P('(')) => depth += 1,
                Some(Tok::P(')')) => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => {
                    self.pos -= 1;
                    return self.err("unclosed '(' after the errno");
                }
            }
        }
    }

    fn args(&mut self, close: char) -> R<Vec<Expr>> {
        let mut v = Vec::new();
        if self.eat_p(close) {
            return Ok(v);
        }
        loop {
            v.push(self.expr()?);
            if self.eat_p(close) {
                return Ok(v);
            }
            self.expect_p(',', "between arguments")?;
        }
    }

    fn expr(&mut self) -> R<Expr> {
        let first = self.primary()?;
        if !self.is_p('|') {
            return Ok(first);
        }
        let mut v = vec![first];
        while self.eat_p('|') {
            v.push(self.primary()?);
        }
        Ok(Expr::Or(v))
    }

    fn primary(&mut self) -> R<Expr> {
        if self.depth >= MAX_DEPTH {
            return self.err("arguments nested too deeply");
        }
        self.depth += 1;
        let r = self.primary_inner();
        self.depth -= 1;
        r
    }

    fn primary_inner(&mut self) -> R<Expr> {
        let depth_guard = self.pos;
        match self.bump() {
            Some(Tok::Ellipsis) => Ok(Expr::Ellipsis),
            Some(Tok::Int(n)) => Ok(Expr::Int(n)),
            Some(Tok::P('-')) => Ok(Expr::Int(-self.int("a number")?)),
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::P('[')) => Ok(Expr::List(self.args(']')?)),
            Some(Tok::P('{')) => {
                let mut fields = Vec::new();
                if self.eat_p('}') {
                    return Ok(Expr::Struct(fields));
                }
                loop {
                    let Some(Tok::Word(k)) = self.bump() else {
                        self.pos -= 1;
                        return self.err(format!("expected a field name, found {}", self.found()));
                    };
                    self.expect_p('=', "after a field name")?;
                    fields.push((k, self.expr()?));
                    if self.eat_p('}') {
                        return Ok(Expr::Struct(fields));
                    }
                    self.expect_p(',', "between fields")?;
                }
            }
            Some(Tok::Word(w)) => {
                if self.eat_p('(') {
                    Ok(Expr::Call(w, self.args(')')?))
                } else {
                    Ok(Expr::Word(w))
                }
            }
            _ => {
                self.pos = depth_guard;
                self.err(format!("expected an argument, found {}", self.found()))
            }
        }
    }
}
