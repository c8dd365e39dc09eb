//! The interpreter: one script against one fresh synq stack on a virtual clock.

use crate::ast::{flag, Dir, Event, EventKind, Packet, Script, TcpOpt, Time};
use crate::host::Host;
use crate::pkt::{self, Seen};
use crate::settings::Settings;
use crate::sim::EPOCH;
use crate::sock::Blocked;
use crate::Failure;
use std::collections::{BTreeMap, VecDeque};
use synq_core::{Duration, Instant};

/// Outbound expectations give up this long after their latest time.
const GIVE_UP: Duration = Duration::from_secs(2);
/// Timer firings between two events at most (a stack that keeps itself busy is a bug the
/// runner reports rather than spins on).
const MAX_STEPS: usize = 1_000_000;
/// Outbound packets kept unconsumed at most.
const MAX_QUEUED: usize = 100_000;
/// First ephemeral port the script's side uses for passive flows.
const REMOTE_PORT_BASE: u16 = 48_000;

/// One TCP flow the script talks on (a 4-tuple), and how its numbers map.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flow {
    /// live ISN − script ISN on the stack's side, once its SYN or SYN-ACK was seen.
    pub(crate) local_off: Option<u32>,
    /// The live ISN that bound it (a retransmitted SYN-ACK must carry it again).
    pub(crate) local_isn: Option<u32>,
    /// live TS value − script TS value, from the last outbound timestamp.
    pub(crate) ts_off: u32,
}

/// A run in progress.
pub(crate) struct Run<'a> {
    pub(crate) script: &'a Script,
    pub(crate) set: Settings,
    pub(crate) host: Box<dyn Host + 'a>,
    /// Base for relative times.
    base: Instant,
    /// The previous event's scheduled time (tolerance percent is of the gap since it).
    prev_sched: Instant,
    prev_inbound: bool,
    /// Outbound packets not yet matched: (time sent, bytes).
    out: VecDeque<(Instant, Vec<u8>)>,
    /// Flows by (local port, remote port); `default` is the one lines without ports use.
    pub(crate) flows: BTreeMap<(u16, u16), Flow>,
    pub(crate) default_flow: Option<(u16, u16)>,
    next_remote_port: u16,
    pub(crate) blocked: Option<Blocked>,
    pub(crate) warnings: Vec<String>,
    /// What the script's commands printed.
    pub(crate) output: String,
    /// Packets in and out with their times, for `--verbose`.
    trace: Vec<String>,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// `None` when every event passed.
    pub failure: Option<Failure>,
    /// Mismatches let through by `--non_fatal`, and notes.
    pub warnings: Vec<String>,
    /// What the script's backtick commands printed (their standard output).
    pub output: String,
    /// Every packet injected and matched, with its time (`synq pktdrill --verbose`).
    pub trace: Vec<String>,
    /// Events run.
    pub events: usize,
    /// Virtual seconds the script took.
    pub virtual_secs: f64,
}

pub(crate) type Step<T = ()> = Result<T, Failure>;

pub(crate) fn fail<T>(line: usize, msg: impl Into<String>) -> Step<T> {
    Err(Failure {
        line,
        msg: msg.into(),
        expected: None,
        actual: None,
    })
}

impl<'a> Run<'a> {
    pub(crate) fn new(script: &'a Script, set: Settings, host: Box<dyn Host + 'a>) -> Self {
        let mut warnings = Vec::new();
        if set.tcp_ts_tick_usecs != 0 {
            // Upstream scripts set it; synq reads it but compares no TS values (yet).
            warnings.push(format!(
                "--tcp_ts_tick_usecs={}: outbound TS values are not compared (unsupported)",
                set.tcp_ts_tick_usecs
            ));
        }
        Self {
            script,
            set,
            host,
            base: EPOCH,
            prev_sched: EPOCH,
            prev_inbound: false,
            out: VecDeque::new(),
            flows: BTreeMap::new(),
            default_flow: None,
            next_remote_port: REMOTE_PORT_BASE,
            blocked: None,
            warnings,
            output: String::new(),
            trace: Vec::new(),
        }
    }

    pub(crate) fn execute(mut self) -> Outcome {
        let mut failure = None;
        let mut events = 0;
        if let Some((line, cmd)) = &self.script.init {
            if let Err(f) = self.command(*line, cmd) {
                failure = Some(f);
            }
        }
        if failure.is_none() {
            for ev in &self.script.events {
                events += 1;
                if let Err(f) = self.event(ev) {
                    failure = Some(f);
                    break;
                }
            }
        }
        if failure.is_none() {
            failure = self.finish().err();
        }
        if let Some((line, cmd)) = &self.script.cleanup {
            if let Err(f) = self.command(*line, cmd) {
                failure.get_or_insert(f);
            }
        }
        Outcome {
            failure,
            warnings: self.warnings,
            output: self.output,
            trace: self.trace,
            events,
            virtual_secs: self.host.now().saturating_since(EPOCH).as_secs_f64(),
        }
    }

    fn finish(&mut self) -> Step {
        if let Some(b) = &self.blocked {
            return fail(
                b.line,
                "the blocking call had not returned when the script ended",
            );
        }
        self.drain();
        if self.set.strict {
            if let Some((t, bytes)) = self.out.front() {
                let actual = self.render_seen(bytes);
                return Err(Failure {
                    line: self.script.events.last().map_or(0, |e| e.line),
                    msg: format!(
                        "--strict: an outbound segment no line expects, sent at {:.6}",
                        t.saturating_since(EPOCH).as_secs_f64()
                    ),
                    expected: None,
                    actual: Some(actual),
                });
            }
        }
        Ok(())
    }

    /// Script time → virtual instant.
    fn at(&self, rel: bool, us: i64) -> Instant {
        let base = if rel { self.base } else { EPOCH };
        base + Duration::from_micros(us.max(0) as u64)
    }

    fn tolerance(&self, sched: Instant) -> Duration {
        let gap = sched.saturating_since(self.prev_sched).total_micros() as f64;
        let pct = (gap * self.set.tolerance_percent / 100.0) as u64;
        Duration::from_micros(self.set.tolerance_usecs.max(pct))
    }

    fn event(&mut self, ev: &Event) -> Step {
        let inbound = matches!(&ev.kind, EventKind::Packet(p) if p.dir == Dir::In);
        if inbound && self.prev_inbound {
            // An inbound packet right after another is timed from its scheduled time.
            self.base = self.prev_sched;
        }
        let (lo, hi) = match ev.time {
            Time::Any => (self.host.now(), self.host.now() + self.host.any_wait()),
            Time::At { rel, us } => (self.at(rel, us), self.at(rel, us)),
            Time::Range { rel, from, to } => (self.at(rel, from), self.at(rel, to)),
            Time::Blocking { rel, start, .. } => (self.at(rel, start), self.at(rel, start)),
        };
        if let Time::At { rel: false, .. } | Time::Blocking { rel: false, .. } = ev.time {
            if lo < self.prev_sched {
                return fail(ev.line, "absolute times must not decrease");
            }
        }
        let tol = self.tolerance(lo);
        let line = ev.line;
        match &ev.kind {
            EventKind::Packet(p) if p.dir == Dir::In => {
                self.advance_to(line, lo)?;
                self.inject(line, p)?;
                self.base = self.host.now();
            }
            EventKind::Packet(p) => {
                let any = ev.time == Time::Any;
                let t = self.expect(line, p, lo, hi, tol, any)?;
                self.base = t;
            }
            EventKind::Syscall(call) => {
                self.advance_to(line, lo)?;
                let end = match ev.time {
                    Time::Blocking { rel, end, .. } => Some(self.at(rel, end)),
                    _ => None,
                };
                crate::sock::syscall(self, line, call, end, tol)?;
                self.base = self.host.now();
            }
            EventKind::Code(code) => {
                self.advance_to(line, lo)?;
                crate::assert::run(self, line, code)?;
                self.base = self.host.now();
            }
            EventKind::Command(cmd) => {
                self.advance_to(line, lo)?;
                self.command(line, cmd)?;
                self.base = self.host.now();
            }
        }
        self.prev_inbound = inbound;
        self.prev_sched = if ev.time == Time::Any {
            self.host.now()
        } else {
            lo
        };
        Ok(())
    }

    /// Collect what the host has sent.
    pub(crate) fn drain(&mut self) {
        self.host.take_sent(&mut self.out, MAX_QUEUED);
    }

    /// A backtick command; a non-zero exit status fails the script.
    fn command(&mut self, line: usize, cmd: &str) -> Step {
        let (out, status) = self.host.command(line, cmd)?;
        self.output.push_str(&out);
        if status != 0 {
            return fail(
                line,
                format!("command `{}` exited with status {status}", cmd.trim()),
            );
        }
        Ok(())
    }

    /// After connect(): lines without ports talk on the new connection.
    pub(crate) fn connected(&mut self, fd: i64) {
        if let Some(key) = self.host.conn_ports(fd) {
            self.flows.entry(key).or_default();
            self.default_flow = Some(key);
        }
    }

    /// Run the stack's timers up to `t`, collecting its packets and completing a blocked
    /// call when it can complete.
    pub(crate) fn advance_to(&mut self, line: usize, t: Instant) -> Step {
        let mut steps = 0;
        loop {
            self.drain();
            crate::sock::poll_blocked(self)?;
            if !self.step_until(t) {
                break;
            }
            steps += 1;
            if steps > MAX_STEPS {
                return fail(line, "the stack's timers kept firing without time passing");
            }
        }
        self.host.settle(t);
        self.drain();
        crate::sock::poll_blocked(self)
    }

    /// One step of the clock: to the next timer if it is due by `limit`.
    /// One step of the clock toward `limit`; a blocked `poll()` timeout wakes it too.
    fn step_until(&mut self, limit: Instant) -> bool {
        let wake = self.blocked.as_ref().and_then(|b| b.wake);
        self.host.step(limit, wake)
    }

    pub(crate) fn flow_for(&mut self, ports: Option<(u16, u16)>, dir: Dir) -> (u16, u16) {
        if let Some((a, b)) = ports {
            // Inbound: script port > stack port; outbound: stack port > script port.
            let key = if dir == Dir::In { (b, a) } else { (a, b) };
            self.flows.entry(key).or_default();
            return key;
        }
        if let Some(k) = self.default_flow {
            return k;
        }
        let local_port = self.host.listening_port().unwrap_or(self.set.bind_port);
        let key = (local_port, self.next_remote_port);
        self.next_remote_port = self.next_remote_port.wrapping_add(1).max(REMOTE_PORT_BASE);
        self.flows.insert(key, Flow::default());
        self.default_flow = Some(key);
        key
    }

    fn note(&mut self, t: Instant, line: usize, what: &str) {
        if self.trace.len() < MAX_QUEUED {
            let secs = t.saturating_since(EPOCH).as_secs_f64();
            self.trace
                .push(format!("{secs:10.6} line {line:<4} {what}"));
        }
    }

    fn inject(&mut self, line: usize, p: &Packet) -> Step {
        let now = self.host.now();
        self.note(now, line, &pkt::packet_str(p));
        let key = self.flow_for(p.ports, Dir::In);
        let flow = self.flows.get(&key).cloned().unwrap_or_default();
        let ack = p.ack.unwrap_or(0).wrapping_add(flow.local_off.unwrap_or(0));
        let opts = p.options.clone().unwrap_or_default();
        let opts: Vec<TcpOpt> = opts
            .into_iter()
            .map(|o| match o {
                TcpOpt::Ts(v, e) if p.flags & flag::ACK != 0 => {
                    TcpOpt::Ts(v, e.wrapping_add(flow.ts_off))
                }
                // SACK blocks acknowledge the stack's data: its sequence space, as `ack`.
                TcpOpt::Sack(blocks) => {
                    let off = flow.local_off.unwrap_or(0);
                    TcpOpt::Sack(
                        blocks
                            .into_iter()
                            .map(|(l, r)| (l.wrapping_add(off), r.wrapping_add(off)))
                            .collect(),
                    )
                }
                o => o,
            })
            .collect();
        let ob = pkt::options_bytes(&opts);
        if ob.len() % 4 != 0 || ob.len() > 40 {
            return fail(
                line,
                format!(
                    "TCP options take {} bytes: they must fill 4-byte words, at most 40",
                    ob.len()
                ),
            );
        }
        let bytes = pkt::build(
            self.set.remote(),
            self.set.local(),
            key.1,
            key.0,
            p,
            p.seq,
            ack,
            &ob,
        );
        self.host.inject(&bytes);
        self.drain();
        crate::sock::poll_blocked(self)
    }

    /// Wait for the next outbound packet and compare it with `p`; returns when it was sent.
    fn expect(
        &mut self,
        line: usize,
        p: &Packet,
        lo: Instant,
        hi: Instant,
        tol: Duration,
        any: bool,
    ) -> Step<Instant> {
        let deadline = if any { hi } else { hi + tol + GIVE_UP };
        let mut steps = 0;
        let (t, bytes) = loop {
            self.drain();
            crate::sock::poll_blocked(self)?;
            if let Some(x) = self.out.pop_front() {
                break x;
            }
            steps += 1;
            if steps > MAX_STEPS || !self.step_until(deadline) {
                let waited = deadline.saturating_since(EPOCH).as_secs_f64();
                self.host.settle(deadline.min(hi + tol));
                return Err(Failure {
                    line,
                    msg: format!("timed out waiting for a packet (waited until {waited:.6} s)"),
                    expected: Some(pkt::packet_str(p)),
                    actual: None,
                });
            }
        };
        let verdict = self.compare(p, &bytes);
        let shown = self.render_seen(&bytes);
        self.note(t, line, &shown);
        let early = !any && t + tol < lo;
        let late = !any && t > hi + tol;
        let when = |i: Instant| i.saturating_since(EPOCH).as_secs_f64();
        let timing = if early || late {
            Some(format!(
                "sent at {:.6} s, expected at {:.6}{} s (tolerance {:.6} s)",
                when(t),
                when(lo),
                if hi > lo {
                    format!("~{:.6}", when(hi))
                } else {
                    String::new()
                },
                tol.as_secs_f64()
            ))
        } else {
            None
        };
        match (verdict, timing) {
            (Ok(()), None) => Ok(t),
            (res, timing) => {
                let msg = match (&res, timing) {
                    (Err(m), Some(tm)) => format!("{m}; and {tm}"),
                    (Err(m), None) => m.clone(),
                    (Ok(()), Some(tm)) => format!("packet on the wrong time: {tm}"),
                    (Ok(()), None) => unreachable!("handled above"),
                };
                let f = Failure {
                    line,
                    msg,
                    expected: Some(pkt::packet_str(p)),
                    actual: Some(self.render_seen(&bytes)),
                };
                if self.set.non_fatal_packet {
                    self.warnings.push(f.to_string());
                    Ok(t)
                } else {
                    Err(f)
                }
            }
        }
    }

    /// Compare an outbound packet with a script line, binding the flow's ISN and TS offset.
    fn compare(&mut self, e: &Packet, bytes: &[u8]) -> Result<(), String> {
        let s = pkt::decode(bytes).ok_or("the stack sent a packet that is not TCP/IP")?;
        if !s.csum_ok {
            return Err("bad TCP checksum".into());
        }
        let want_v6 = self.set.ipv6();
        if s.src.is_ipv6() != want_v6 {
            return Err(format!(
                "sent over IPv{}",
                if s.src.is_ipv6() { 6 } else { 4 }
            ));
        }
        if s.dst != self.set.remote() {
            return Err(format!("sent to {} instead of the script's address", s.dst));
        }
        let key = match e.ports {
            Some(_) => self.flow_for(e.ports, Dir::Out),
            None => self.default_flow.unwrap_or((s.sport, s.dport)),
        };
        if (s.sport, s.dport) != key {
            return Err(format!(
                "on ports {}>{}, expected {}>{}",
                s.sport, s.dport, key.0, key.1
            ));
        }
        let flow = self.flows.entry(key).or_default();
        if s.flags != e.flags {
            return Err(format!(
                "flags {} instead of {}",
                pkt::flags_str(s.flags),
                pkt::flags_str(e.flags)
            ));
        }
        if s.flags & flag::SYN != 0 {
            match flow.local_isn {
                Some(isn) if isn != s.seq => {
                    return Err(format!(
                        "the SYN carries ISN {} but an earlier one carried {isn}",
                        s.seq
                    ))
                }
                Some(_) => {}
                None => {
                    flow.local_isn = Some(s.seq);
                    flow.local_off = Some(s.seq.wrapping_sub(e.seq));
                }
            }
        }
        let seq = s.seq.wrapping_sub(flow.local_off.unwrap_or(0));
        if seq != e.seq {
            return Err(format!("sequence number {seq} instead of {}", e.seq));
        }
        if s.len != e.len {
            return Err(format!("payload of {} bytes instead of {}", s.len, e.len));
        }
        let want_ack = e.ack.unwrap_or(0);
        if s.ack != want_ack {
            return Err(format!("ack {} instead of {want_ack}", s.ack));
        }
        if let Some(w) = e.win {
            if u32::from(s.win) != w {
                return Err(format!("window {} instead of {w}", s.win));
            }
        }
        if u32::from(s.urg) != e.urg.unwrap_or(0) {
            return Err(format!(
                "urgent pointer {} instead of {}",
                s.urg,
                e.urg.unwrap_or(0)
            ));
        }
        if let Some(want) = &e.options {
            let got = pkt::parse_options(&s.options).ok_or("malformed TCP options")?;
            let same = got.len() == want.len()
                && got.iter().zip(want).all(|(g, w)| match (g, w) {
                    (TcpOpt::Ts(..), TcpOpt::Ts(..)) => true,
                    (g, w) => g == w,
                });
            if !same {
                return Err(format!(
                    "options <{}> instead of <{}>",
                    pkt::options_str(&got),
                    pkt::options_str(want)
                ));
            }
            if let Some((TcpOpt::Ts(gv, _), TcpOpt::Ts(wv, _))) = got
                .iter()
                .zip(want)
                .find(|(g, _)| matches!(g, TcpOpt::Ts(..)))
            {
                flow.ts_off = gv.wrapping_sub(*wv);
            }
        }
        let ip = &e.ip;
        if let Some(tos) = ip.tos {
            if s.ip.tos != Some(tos) {
                return Err(format!(
                    "TOS {:#x} instead of {tos:#x}",
                    s.ip.tos.unwrap_or(0)
                ));
            }
        }
        if let Some(ecn) = ip.ecn {
            if s.ip.ecn != Some(ecn) {
                return Err(format!(
                    "ECN field {} instead of {ecn}",
                    s.ip.ecn.unwrap_or(0)
                ));
            }
        }
        if let Some(ttl) = ip.ttl {
            if s.ip.ttl != Some(ttl) {
                return Err(format!("TTL {} instead of {ttl}", s.ip.ttl.unwrap_or(0)));
            }
        }
        if let (Some(fl), Some(got)) = (ip.flowlabel, s.ip.flowlabel) {
            if fl != got {
                return Err(format!("flow label {got:#x} instead of {fl:#x}"));
            }
        }
        Ok(())
    }

    /// An outbound packet written as a script line, in the script's numbers where known.
    pub(crate) fn render_seen(&self, bytes: &[u8]) -> String {
        let Some(s) = pkt::decode(bytes) else {
            return format!("(not TCP/IP: {} bytes)", bytes.len());
        };
        let flow = self.flows.get(&(s.sport, s.dport));
        let off = flow.and_then(|f| f.local_off).unwrap_or(0);
        let p = seen_packet(&s, off, self.default_flow != Some((s.sport, s.dport)));
        pkt::packet_str(&p)
    }
}

fn seen_packet(s: &Seen, off: u32, ports: bool) -> Packet {
    Packet {
        dir: Dir::Out,
        ports: ports.then_some((s.sport, s.dport)),
        ip: Default::default(),
        flags: s.flags,
        seq: s.seq.wrapping_sub(off),
        len: s.len,
        ack: (s.flags & flag::ACK != 0 || s.ack != 0).then_some(s.ack),
        win: Some(u32::from(s.win)),
        urg: (s.urg != 0).then_some(u32::from(s.urg)),
        options: Some(pkt::parse_options(&s.options).unwrap_or_default()),
    }
}
