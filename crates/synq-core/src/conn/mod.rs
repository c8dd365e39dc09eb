//! One TCP connection (a full TCB), from SYN-SENT or an accepted request to CLOSED.
//!
//! Input is `Connection::on_segment` and `Connection::on_timer`; output is
//! `Connection::poll_transmit`, which decides lazily what to send, as smoltcp's
//! `dispatch` does. The stack owns demux, timers and events around it.

use crate::buffer::{RecvBuffer, SendBuffer, Written};
use crate::config::Config;
use crate::congestion::{AckSample, Congestion, Controller, Window};
use crate::counters::Counters;
use crate::error::ConnError;
use crate::hash::FourTuple;
use crate::rtt::RttEstimator;
pub(crate) use crate::rtt::RTO_MAX;
use crate::{Duration, Instant};
use synq_wire::{IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr, Timestamps};

mod ack;
mod autotune;
mod sack;
mod timers;
use ack::DelayedAck;
use autotune::Autotune;
use sack::SackPath;
pub(crate) use timers::{Timer, Timers};

/// Linux's `TCP_TIMEWAIT_LEN`: 2MSL = 60 s.
pub const TIME_WAIT_LEN: Duration = Duration::from_secs(60);
/// Linux's minimum delayed-ACK timeout (`TCP_DELACK_MIN`).
pub const DELACK: Duration = Duration::from_millis(40);
/// RFC 9293 default MSS when the peer sends none (IPv4 / IPv6).
pub(crate) const DEFAULT_MSS_V4: u16 = 536;
pub(crate) const DEFAULT_MSS_V6: u16 = 1220;
/// Linux's `TCP_INIT_CWND` in segments (RFC 6928).
const INIT_CWND_SEGS: u32 = 10;
/// Timestamps older than this are no longer trusted for PAWS (RFC 7323 §5.5: 24 days).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// Connection states, named as in RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection (or one that has ended and awaits `close()`).
    Closed,
    /// Waiting for a connection request (listeners only).
    Listen,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent (simultaneous open; passive opens use requests).
    SynReceived,
    /// Open; data flows both ways.
    Established,
    /// We sent FIN; waiting for its ACK or the peer's FIN.
    FinWait1,
    /// Our FIN is acked; waiting for the peer's FIN.
    FinWait2,
    /// The peer sent FIN; waiting for the application to close.
    CloseWait,
    /// Both sent FIN at once; waiting for the ACK of ours.
    Closing,
    /// We sent FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Waiting 2MSL so late segments die out.
    TimeWait,
}

impl State {
    /// The RFC name in upper case with underscores, e.g. `ESTABLISHED`, `SYN_SENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Listen => "LISTEN",
            Self::SynSent => "SYN_SENT",
            Self::SynReceived => "SYN_RECEIVED",
            Self::Established => "ESTABLISHED",
            Self::FinWait1 => "FIN_WAIT_1",
            Self::FinWait2 => "FIN_WAIT_2",
            Self::CloseWait => "CLOSE_WAIT",
            Self::Closing => "CLOSING",
            Self::LastAck => "LAST_ACK",
            Self::TimeWait => "TIME_WAIT",
        }
    }

    /// True once the handshake completed (RFC 9293 "synchronized" states).
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            Self::Closed | Self::Listen | Self::SynSent | Self::SynReceived
        )
    }

    /// May we still send data?
    fn can_send(self) -> bool {
        matches!(self, Self::Established | Self::CloseWait)
    }

    /// May the peer still send us data?
    fn can_recv(self) -> bool {
        matches!(self, Self::Established | Self::FinWait1 | Self::FinWait2)
    }
}

impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Events for the application, as bit flags accumulated until the stack drains them.
pub(crate) mod ev {
    pub(crate) const CONNECTED: u8 = 1;
    pub(crate) const READABLE: u8 = 2;
    pub(crate) const WRITABLE: u8 = 4;
    pub(crate) const CLOSED: u8 = 8;
}

/// Shared context for one call into a connection.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) config: &'a Config,
    pub(crate) counters: &'a mut Counters,
}

/// What the stack must do after a segment was processed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Nothing beyond what the connection did to itself.
    Done,
    /// Reply with this stateless RST (the connection itself is unchanged or gone).
    Rst(TcpRepr<'static>),
    /// A SYN hit TIME_WAIT with a higher sequence: if a listener takes it, end TIME_WAIT
    /// ([`Connection::end_time_wait`]) and hand it over, else re-ACK ([`Connection::ack_now`]).
    Reopen,
}

/// Negotiated at handshake.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Negotiated {
    pub(crate) peer_mss: Option<u16>,
    /// Peer's window shift (None: scaling off in both directions).
    pub(crate) peer_wscale: Option<u8>,
    pub(crate) sack: bool,
    /// Peer's TSval from its SYN, when both sides use timestamps.
    pub(crate) ts_recent: Option<u32>,
    /// Handshake RTT, when it could be measured (SYN-ACK not retransmitted).
    pub(crate) rtt: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckState {
    None,
    Delayed,
    Now,
}

/// The transmission control block.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) tuple: FourTuple,
    pub(crate) state: State,
    // Send sequence space (RFC 9293 §3.3.1).
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// Highest sequence ever sent (SND.NXT can fall back after a timeout).
    snd_max: SeqNumber,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    snd_wscale: u8,
    send_buf: SendBuffer,
    /// The application shut down writing: FIN follows the data.
    fin_queued: bool,
    /// The peer acknowledged our FIN.
    fin_acked: bool,
    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised.
    rcv_adv: SeqNumber,
    rcv_wscale: u8,
    recv_buf: RecvBuffer,
    /// Receive buffer size we advertise from; the buffer holds one window-scale unit more
    /// so a window rounded up to the scale never makes us drop data.
    rcv_space: usize,
    fin_received: bool,
    // Options.
    mss: u16,
    sack_ok: bool,
    ts_enabled: bool,
    ts_offset: u32,
    ts_recent: u32,
    ts_recent_stamp: Instant,
    last_ack_sent: SeqNumber,
    // Timing.
    rtt: RttEstimator,
    backoff: u32,
    /// Consecutive RTO expirations without progress.
    retries: u32,
    /// First transmission time of what is being retransmitted (Linux `retrans_stamp`):
    /// the give-up rule measures from here.
    retrans_stamp: Option<Instant>,
    /// When the running RTO timer was armed (the head segment's last send time).
    rto_armed_at: Instant,
    /// Karn timing: one segment's end sequence and send time.
    rtt_probe: Option<(SeqNumber, Instant)>,
    timers: Timers,
    // Congestion control (RFC 5681 + NewReno RFC 6582).
    cwnd: u32,
    ssthresh: u32,
    dupacks: u32,
    recover: Option<SeqNumber>,
    // ACK generation.
    ack: AckState,
    /// When to ACK (`ack.rs`).
    delack: DelayedAck,
    /// Receive-buffer autotuning (`autotune.rs`).
    tune: Autotune,
    last_oow_ack: Option<Instant>,
    /// SYN transmissions so far (for the SYN-SENT schedule).
    syn_tx: u32,
    /// Abort: send RST on the next poll, then CLOSED.
    rst_pending: bool,
    /// A zero-window probe is due.
    probe_pending: bool,
    /// Fast retransmit: resend the segment at SND.UNA.
    retx_head: bool,
    /// Loss recovery with SACK (`sack.rs`).
    rec: SackPath,
    /// `SO_KEEPALIVE`, keepalive probes unanswered, and when the peer last sent anything.
    keepalive: bool,
    ka_probes: u8,
    last_rcv: Instant,
    /// Congestion control (`TCP_CONGESTION`).
    pub(crate) cc: Controller,
    /// Application-visible state.
    pub(crate) error: Option<ConnError>,
    pub(crate) orphan: bool,
    pub(crate) nodelay: bool,
    pub(crate) events: u8,
    /// Was it counted in TcpCurrEstab?
    pub(crate) counted_estab: bool,
}

fn seg_len(seg: &TcpRepr<'_>) -> u32 {
    seg.payload.len() as u32 + u32::from(seg.flags.syn()) + u32::from(seg.flags.fin())
}

impl Connection {
    fn blank(tuple: FourTuple, config: &Config, iss: SeqNumber, ts_offset: u32) -> Self {
        let rcv_space = config.tcp_rmem[1] as usize;
        let rcv_wscale = if config.tcp_window_scaling {
            wscale_for(config)
        } else {
            0
        };
        let mss = mss_for(&tuple, config);
        Self {
            tuple,
            state: State::Closed,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wscale: 0,
            send_buf: SendBuffer::new(config.tcp_wmem[1] as usize),
            fin_queued: false,
            fin_acked: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            rcv_wscale,
            recv_buf: RecvBuffer::new(rcv_space + (1 << rcv_wscale)),
            rcv_space,
            fin_received: false,
            mss,
            sack_ok: false,
            ts_enabled: false,
            ts_offset,
            ts_recent: 0,
            ts_recent_stamp: Instant::ZERO,
            last_ack_sent: SeqNumber(0),
            rtt: RttEstimator::default(),
            backoff: 0,
            retries: 0,
            retrans_stamp: None,
            rto_armed_at: Instant::ZERO,
            rtt_probe: None,
            timers: Timers::default(),
            cwnd: INIT_CWND_SEGS * u32::from(mss),
            ssthresh: u32::MAX,
            dupacks: 0,
            recover: None,
            ack: AckState::None,
            delack: DelayedAck::default(),
            tune: Autotune::default(),
            last_oow_ack: None,
            syn_tx: 0,
            rst_pending: false,
            probe_pending: false,
            retx_head: false,
            rec: SackPath::default(),
            keepalive: false,
            ka_probes: 0,
            last_rcv: Instant::ZERO,
            cc: Controller::new(config.tcp_congestion_control),
            error: None,
            orphan: false,
            nodelay: false,
            events: 0,
            counted_estab: false,
        }
    }

    /// Active open: SYN-SENT; the SYN goes out on the next poll.
    pub(crate) fn connect(
        tuple: FourTuple,
        config: &Config,
        iss: SeqNumber,
        ts_offset: u32,
    ) -> Self {
        let mut c = Self::blank(tuple, config, iss, ts_offset);
        c.state = State::SynSent;
        c
    }

    /// Passive open completed: a request's final ACK arrived (the stack validated it).
    pub(crate) fn accept(
        tuple: FourTuple,
        config: &Config,
        now: Instant,
        iss: SeqNumber,
        irs: SeqNumber,
        neg: Negotiated,
        ts_offset: u32,
    ) -> Self {
        let mut c = Self::blank(tuple, config, iss, ts_offset);
        if let Some(rtt) = neg.rtt {
            c.rtt.sample(rtt);
        }
        c.irs = irs;
        c.rcv_nxt = irs + 1;
        c.apply_negotiated(config, neg, now);
        // What our SYN-ACK offered (see `initial_window`).
        let syn_ack_mss = mss_for(&tuple, config) - if c.ts_enabled { 12 } else { 0 };
        c.snd_una = iss + 1;
        c.snd_nxt = iss + 1;
        c.snd_max = iss + 1;
        c.last_ack_sent = c.rcv_nxt;
        c.rcv_adv = c.rcv_nxt + initial_window(c.rcv_space, syn_ack_mss);
        c.state = State::Established;
        c
    }

    fn apply_negotiated(&mut self, config: &Config, neg: Negotiated, now: Instant) {
        let default_mss = if self.tuple.remote.is_ipv4() {
            DEFAULT_MSS_V4
        } else {
            DEFAULT_MSS_V6
        };
        self.mss = self.mss.min(neg.peer_mss.unwrap_or(default_mss)).max(64);
        match neg.peer_wscale {
            Some(s) if config.tcp_window_scaling => self.snd_wscale = s.min(14),
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = neg.sack && config.tcp_sack;
        if let (Some(ts), true) = (neg.ts_recent, config.tcp_timestamps != 0) {
            self.ts_enabled = true;
            self.ts_recent = ts;
            self.ts_recent_stamp = now;
        }
        self.cwnd = INIT_CWND_SEGS * u32::from(self.eff_mss());
    }

    /// Payload bytes per full segment (MSS less the timestamp option).
    fn eff_mss(&self) -> u16 {
        if self.ts_enabled {
            self.mss - 12
        } else {
            self.mss
        }
    }

    /// The initial send window from the peer's final ACK (passive side), unscaled per RFC 7323
    /// only in SYNs: the ACK's window is scaled.
    pub(crate) fn set_initial_window(&mut self, seg: &TcpRepr<'_>) {
        self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
    }

    // ---- application side ----

    pub(crate) fn send(&mut self, data: &[u8]) -> usize {
        let n = self.send_buf.write(data);
        if n < data.len() {
            // Writable fires again once space frees up.
            self.events &= !ev::WRITABLE;
        }
        n
    }

    pub(crate) fn send_space(&self) -> usize {
        self.send_buf.free()
    }

    pub(crate) fn can_send_data(&self) -> bool {
        self.state.can_send() && !self.fin_queued
    }

    pub(crate) fn recv(&mut self, now: Instant, out: &mut [u8], config: &Config) -> usize {
        let n = self.recv_buf.read(out);
        self.rcv_space_adjust(now, n, config);
        // Linux tcp_cleanup_rbuf: send a window update only when what the peer may still
        // send has fallen to half the buffer and the new window at least doubles it.
        let now_wnd = self.rcv_adv.distance_from(self.rcv_nxt) as usize;
        let new_wnd = self.adv_space() >> self.rcv_wscale << self.rcv_wscale;
        if n > 0
            && self.state.can_recv()
            && 2 * now_wnd <= self.rcv_space
            && new_wnd >= 2 * now_wnd.max(1)
        {
            self.ack = AckState::Now;
        }
        n
    }

    pub(crate) fn readable(&self) -> usize {
        self.recv_buf.len()
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.fin_received && self.recv_buf.len() == 0
    }

    /// `shutdown(SHUT_WR)`: queue FIN after the data.
    pub(crate) fn shutdown_write(&mut self) {
        match self.state {
            State::SynSent => self.enter_closed(),
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// `close()`: the application lets go. Unread data means RST (Linux: TCPAbortOnClose).
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        self.orphan = true;
        if self.recv_buf.len() > 0 && self.state.is_synchronized() && self.state != State::TimeWait
        {
            ctx.counters.abort_on_close += 1;
            self.abort();
            return;
        }
        self.shutdown_write();
        if self.state == State::FinWait2 {
            self.timers[Timer::Close] = Some(ctx.now + self.fin_time(ctx.config));
        }
    }

    /// Reset the connection: RST on next poll (if synchronized), then CLOSED.
    pub(crate) fn abort(&mut self) {
        if matches!(self.state, State::Closed | State::TimeWait | State::SynSent) {
            self.enter_closed();
        } else {
            self.rst_pending = true;
        }
    }

    fn enter_closed(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events |= ev::CLOSED | ev::READABLE | ev::WRITABLE;
        }
        self.timers.clear();
        self.ack = AckState::None;
    }

    fn fail(&mut self, err: ConnError) {
        if self.error.is_none() {
            self.error = Some(err);
        }
        self.enter_closed();
    }

    // ---- timers ----

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.timers.take_due(Timer::Close, now) {
            if self.state == State::TimeWait {
                ctx.counters.tw += 1;
            }
            self.enter_closed();
            return;
        }
        if self.timers.take_due(Timer::DelAck, now) && self.ack == AckState::Delayed {
            ctx.counters.delayed_acks += 1;
            self.on_delack_timer();
            self.ack = AckState::Now;
        }
        if self.timers.take_due(Timer::Persist, now) {
            self.on_persist(ctx);
        }
        if self.timers.take_due(Timer::Rack, now) {
            self.on_rack_timer(ctx);
        }
        if self.timers.take_due(Timer::Tlp, now) {
            self.rec.tlp_pending = self.snd_max > self.snd_una;
        }
        if self.timers.take_due(Timer::Rto, now) {
            self.on_rto(ctx);
        }
        if self.timers.take_due(Timer::Keepalive, now) {
            self.on_keepalive(ctx);
        }
    }

    /// Linux `tcp_keepalive_timer`: after `tcp_keepalive_time` without a segment from the
    /// peer, a probe every `tcp_keepalive_intvl`; `tcp_keepalive_probes` unanswered ones
    /// end the connection with ETIMEDOUT. Nothing is probed while data is in flight (the
    /// RTO watches it) or in states without a peer to ask.
    fn on_keepalive(&mut self, ctx: &mut Ctx<'_>) {
        if !self.keepalive || !self.state.is_synchronized() || self.state == State::TimeWait {
            return;
        }
        let c = ctx.config;
        let now = ctx.now;
        let idle = secs(c.tcp_keepalive_time);
        let intvl = secs(c.tcp_keepalive_intvl);
        if self.snd_max != self.snd_una || self.unsent() > 0 {
            self.timers[Timer::Keepalive] = Some(now + idle);
            return;
        }
        let quiet = now.saturating_since(self.last_rcv);
        if quiet < idle {
            self.timers[Timer::Keepalive] = Some(self.last_rcv + idle);
            return;
        }
        if self.ka_probes >= c.tcp_keepalive_probes {
            ctx.counters.keepalive_timeouts += 1;
            self.fail(ConnError::TimedOut);
            return;
        }
        self.ka_probes += 1;
        ctx.counters.keepalive += 1;
        self.probe_pending = true;
        self.timers[Timer::Keepalive] = Some(now + intvl);
    }

    /// Turn keepalives on or off (`SO_KEEPALIVE`), counting idleness from `now`.
    pub(crate) fn set_keepalive(&mut self, now: Instant, on: bool, config: &Config) {
        self.keepalive = on;
        self.ka_probes = 0;
        self.timers[Timer::Keepalive] =
            on.then(|| self.last_rcv.max(now) + secs(config.tcp_keepalive_time));
    }

    fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::SynSent | State::SynReceived => {
                // Linux counts the expiry that gives up too.
                ctx.counters.timeouts += 1;
                let boundary = u32::from(ctx.config.tcp_syn_retries);
                if self.syn_tx > 1 && self.timed_out(ctx.now, boundary, crate::rtt::RTO_INIT) {
                    ctx.counters.attempt_fails += 1;
                    self.fail(ConnError::TimedOut);
                    return;
                }
                // Resend the SYN (or SYN-ACK) from scratch on the next poll.
                self.snd_nxt = self.iss;
                self.rtt_probe = None;
            }
            State::Closed | State::Listen | State::TimeWait => {}
            _ => {
                if self.snd_max == self.snd_una {
                    return;
                }
                ctx.counters.timeouts += 1;
                self.retrans_stamp.get_or_insert(self.rto_armed_at);
                // An orphan (closed by the application) gives up sooner: Linux
                // tcp_orphan_retries, where 0 means 8.
                let boundary = if self.orphan {
                    match ctx.config.tcp_orphan_retries {
                        0 => 8,
                        n => u32::from(n),
                    }
                } else {
                    u32::from(ctx.config.tcp_retries2)
                };
                if self.retries > 0 && self.timed_out(ctx.now, boundary, crate::rtt::RTO_MIN) {
                    ctx.counters.abort_on_timeout += 1;
                    self.fail(ConnError::TimedOut);
                    return;
                }
                self.retries += 1;
                self.backoff += 1;
                self.rtt_probe = None;
                if self.sack_ok && self.sack_on_rto() {
                    // Resend what was not SACKed, from the scoreboard.
                    self.cc.on_rto();
                    return;
                }
                // RFC 5681 §3.1: collapse to one segment, go back to SND.UNA.
                self.ssthresh = self.cc_ssthresh();
                self.cc.on_rto();
                self.cwnd = u32::from(self.eff_mss());
                self.snd_nxt = self.snd_una;
                self.recover = Some(self.snd_max);
                self.dupacks = 0;
            }
        }
    }

    /// Linux `retransmits_timed_out`: give up once the time since the first transmission
    /// reaches what `boundary` exponential retransmissions from `base` would take,
    /// whatever the real spacing was (so linear SYN timeouts add SYNs, not time).
    /// How long an orphan lingers in FIN_WAIT_2: Linux `tcp_fin_time`, `tcp_fin_timeout` but
    /// at least 3.5 RTO (which is what zero and negative values come to).
    fn fin_time(&self, config: &Config) -> Duration {
        let rto = self.rtt.backed_off(self.backoff);
        let floor = rto.saturating_mul(4) - Duration::from_micros(rto.total_micros() / 2);
        let secs = u64::try_from(config.tcp_fin_timeout).unwrap_or(0);
        Duration::from_secs(secs).max(floor)
    }

    fn timed_out(&self, now: Instant, boundary: u32, base: Duration) -> bool {
        self.retrans_stamp
            .is_some_and(|t| now.saturating_since(t) >= model_timeout(boundary, base))
    }

    fn arm_rto(&mut self, now: Instant, after: Duration) {
        self.timers[Timer::Rto] = Some(now + after);
        self.rto_armed_at = now;
    }

    fn on_persist(&mut self, ctx: &mut Ctx<'_>) {
        if !self.state.is_synchronized() || self.snd_wnd > 0 || self.unsent() == 0 {
            return;
        }
        ctx.counters.loss_probes += 1;
        self.backoff += 1;
        // A probe is an ACK with an old sequence number: the peer answers with its window.
        self.ack = AckState::Now;
        self.probe_pending = true;
    }
}

/// Linux `tcp_model_timeout`: the time `boundary` retransmissions take when the RTO starts
/// at `base` and doubles up to `TCP_RTO_MAX`.
pub(crate) fn model_timeout(boundary: u32, base: Duration) -> Duration {
    let thresh = (RTO_MAX.total_micros() / base.total_micros().max(1))
        .max(1)
        .ilog2();
    let (b, t) = (u64::from(boundary), u64::from(thresh));
    if b <= t {
        base.saturating_mul((2u64 << b) - 1)
    } else {
        base.saturating_mul((2u64 << t) - 1) + RTO_MAX.saturating_mul(b - t)
    }
}

/// The MSS we advertise: MTU less IP and TCP headers.
pub(crate) fn mss_for(tuple: &FourTuple, config: &Config) -> u16 {
    let ip = if tuple.local.is_ipv4() { 20 } else { 40 };
    config.mtu.saturating_sub(ip + 20).max(88)
}

/// The window shift we offer: Linux `tcp_select_initial_window`,
/// `ilog2(max(tcp_rmem[2], rmem_max)) - 15`, within 0..=14 (RFC 7323 §2.3).
pub(crate) fn wscale_for(config: &Config) -> u8 {
    let space = config.tcp_rmem[2].max(config.rmem_max).max(1);
    (space.ilog2().saturating_sub(15)).min(14) as u8
}

/// The (unscaled) window a SYN or SYN-ACK offers, as Linux `tcp_select_initial_window`
/// computes it: the buffer capped at 65535, rounded down to a multiple of `mss` (the MSS we
/// advertise; a SYN-ACK with timestamps uses 12 bytes less). 64240 and 65160 on Ethernet.
pub(crate) fn initial_window(space: usize, mss: u16) -> u32 {
    let w = space.min(65_535) as u32;
    let mss = u32::from(mss).max(1);
    if w > mss {
        w / mss * mss
    } else {
        w
    }
}

// ---- input ----
impl Connection {
    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn rate_limited(&mut self, ctx: &Ctx<'_>) -> bool {
        let gap = Duration::from_millis(u64::from(ctx.config.tcp_invalid_ratelimit_ms));
        match self.last_oow_ack {
            Some(t) if ctx.now < t + gap => true,
            _ => {
                self.last_oow_ack = Some(ctx.now);
                false
            }
        }
    }

    /// RFC 5961 challenge ACK, rate-limited per connection as Linux does.
    fn challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.rate_limited(ctx) {
            ctx.counters.ack_skipped_challenge += 1;
        } else {
            ctx.counters.challenge_ack += 1;
            self.ack = AckState::Now;
        }
    }

    /// Process one segment addressed to this connection.
    pub(crate) fn on_segment(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
        // Anything from the peer answers the keepalive question.
        self.last_rcv = ctx.now;
        self.ka_probes = 0;
        match self.state {
            State::Closed | State::Listen => {
                if seg.flags.rst() {
                    Disposition::Done
                } else {
                    Disposition::Rst(rst_reply(seg))
                }
            }
            State::SynSent => self.on_syn_sent(ctx, seg),
            State::TimeWait => self.on_time_wait(ctx, seg),
            _ => self.on_synchronized(ctx, seg),
        }
    }

    fn on_syn_sent(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
        let now = ctx.now;
        // RFC 9293 §3.10.7.3, first check the ACK bit.
        if seg.flags.ack() && (seg.ack <= self.iss || seg.ack > self.snd_max) {
            return if seg.flags.rst() {
                Disposition::Done
            } else {
                Disposition::Rst(rst_reply(seg))
            };
        }
        if seg.flags.rst() {
            if seg.flags.ack() {
                ctx.counters.attempt_fails += 1;
                self.fail(ConnError::Refused);
            }
            return Disposition::Done;
        }
        if !seg.flags.syn() {
            return Disposition::Done;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.last_ack_sent = self.rcv_nxt;
        self.rcv_adv =
            self.rcv_nxt + initial_window(self.rcv_space, mss_for(&self.tuple, ctx.config));
        let neg = Negotiated {
            peer_mss: seg.options.mss,
            peer_wscale: seg.options.window_scale,
            sack: seg.options.sack_permitted,
            ts_recent: seg.options.timestamps.map(|t| t.tsval),
            rtt: None,
        };
        self.apply_negotiated(ctx.config, neg, now);
        // The SYN's window is never scaled (RFC 7323 §2.2).
        self.snd_wnd = u32::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        self.ack = AckState::Now;
        if seg.flags.ack() {
            self.snd_una = seg.ack;
            if self.syn_tx == 1 {
                if let Some((_, sent)) = self.rtt_probe {
                    self.rtt.sample(now - sent);
                }
            }
            self.rtt_probe = None;
            self.timers[Timer::Rto] = None;
            self.state = State::Established;
            self.events |= ev::CONNECTED | ev::WRITABLE;
            self.process_payload(ctx, seg);
        } else {
            // Simultaneous open: answer with SYN-ACK (same ISS), RFC 9293 §3.5 figure 7.
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            // The SYN-ACK is a new segment, not a retransmission of our SYN.
            self.syn_tx = 0;
            self.timers[Timer::Rto] = None;
        }
        Disposition::Done
    }

    fn on_time_wait(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
        if seg.flags.rst() {
            // Linux kills TIME_WAIT on an RST at exactly RCV.NXT (RFC 1337 hazard accepted,
            // tcp_rfc1337=0); any other RST fails the sequence check and is dropped
            // (RFC 9293 §3.10.7.4, Linux tcp_timewait_state_process).
            if seg.seq == self.rcv_nxt {
                self.enter_closed();
            }
            return Disposition::Done;
        }
        if seg.flags.syn() && !seg.flags.ack() {
            let newer_ts = match (self.ts_enabled, seg.options.timestamps) {
                (true, Some(t)) => (t.tsval.wrapping_sub(self.ts_recent) as i32) > 0,
                _ => true,
            };
            if seg.seq > self.rcv_nxt && newer_ts {
                // The stack ends TIME_WAIT if a listener takes the SYN, else re-ACKs.
                return Disposition::Reopen;
            }
        }
        if seg.flags.fin() && seg.seq + seg.payload.len() as u32 + 1 == self.rcv_nxt {
            // The peer lost our last ACK: re-ACK and restart 2MSL.
            self.timers[Timer::Close] = Some(ctx.now + TIME_WAIT_LEN);
        }
        if !seg.flags.ack() || seg_len(seg) > 0 || seg.seq != self.rcv_nxt {
            self.ack = AckState::Now;
        }
        Disposition::Done
    }

    /// RFC 7323 §5.3 PAWS: true if the segment is an old duplicate to drop.
    fn paws_reject(&self, ctx: &Ctx<'_>, seg: &TcpRepr<'_>) -> bool {
        let Some(ts) = seg.options.timestamps.filter(|_| self.ts_enabled) else {
            return false;
        };
        !seg.flags.rst()
            && (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0
            && ctx.now.saturating_since(self.ts_recent_stamp) < PAWS_IDLE
    }

    /// Record the peer's timestamp before ACK processing (RFC 7323 §4.3 rule 2: the segment
    /// starts at or before Last.ACK.sent; PAWS already dropped older TSvals).
    fn record_ts_recent(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        if let Some(ts) = seg.options.timestamps.filter(|_| self.ts_enabled) {
            if seg.seq <= self.last_ack_sent {
                self.ts_recent = ts.tsval;
                self.ts_recent_stamp = now;
            }
        }
    }

    /// RFC 9293 §3.10.7.4 acceptability test against the window we advertised.
    fn acceptable(&self, seg: &TcpRepr<'_>) -> bool {
        let wnd = self.rcv_adv.distance_from(self.rcv_nxt).min(1 << 30);
        let len = seg_len(seg);
        let in_wnd = |s: SeqNumber| s >= self.rcv_nxt && s < self.rcv_nxt + wnd;
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => in_wnd(seg.seq),
            (_, 0) => false,
            (_, _) => in_wnd(seg.seq) || in_wnd(seg.seq + (len - 1)),
        }
    }

    fn on_synchronized(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
        if self.paws_reject(ctx, seg) {
            ctx.counters.paws_estab += 1;
            if !self.rate_limited(ctx) {
                self.ack = AckState::Now;
            }
            return Disposition::Done;
        }
        if !self.acceptable(seg) {
            // Zero window: a segment exactly at RCV.NXT still carries a valid ACK.
            let zero_wnd_at_edge = seg.seq == self.rcv_nxt && !seg.flags.rst() && !seg.flags.syn();
            if !zero_wnd_at_edge {
                if seg.flags.rst() {
                    return Disposition::Done;
                }
                if seg.flags.syn() {
                    ctx.counters.syn_challenge += 1;
                    self.challenge_ack(ctx);
                    return Disposition::Done;
                }
                // Linux tcp_sequence() rejects only what ends before rcv_wup (Last.ACK.sent):
                // a retransmission that ends there, sent because our ACK was lost, passes and
                // tcp_replace_ts_recent() records its TSval. The duplicate ACK then echoes it,
                // so the peer's RTT sample does not span the RTO it waited.
                if seg.flags.ack() && seg.seq + seg_len(seg) >= self.last_ack_sent {
                    self.record_ts_recent(ctx.now, seg);
                }
                // An old duplicate: Linux tcp_send_dupack reports it in a DSACK.
                if !seg.payload.is_empty() && seg.seq < self.rcv_nxt {
                    let end = seg.seq + seg.payload.len() as u32;
                    self.note_duplicate(ctx, seg.seq, end);
                }
                // Pure ACKs out of window are rate-limited (they may be part of an ACK loop).
                if !seg.payload.is_empty() || !self.rate_limited(ctx) {
                    self.ack = AckState::Now;
                }
                return Disposition::Done;
            }
            ctx.counters.zero_window_drop += u64::from(!seg.payload.is_empty());
        }
        // RFC 5961 §3.2: only an RST exactly at RCV.NXT resets; others in window get a
        // challenge ACK.
        if seg.flags.rst() {
            if seg.seq != self.rcv_nxt {
                self.challenge_ack(ctx);
                return Disposition::Done;
            }
            match self.state {
                State::SynReceived => {
                    ctx.counters.attempt_fails += 1;
                    self.fail(ConnError::Refused);
                }
                // TcpEstabResets is counted by the stack on ESTABLISHED/CLOSE_WAIT -> CLOSED.
                // Linux tcp_reset: EPIPE in CLOSE_WAIT, ECONNRESET elsewhere.
                State::CloseWait => self.fail(ConnError::BrokenPipe),
                State::Established | State::FinWait1 | State::FinWait2 => {
                    self.fail(ConnError::Reset)
                }
                _ => self.enter_closed(),
            }
            return Disposition::Done;
        }
        // RFC 5961 §4.2: any SYN in a synchronized state gets a challenge ACK.
        if seg.flags.syn() {
            ctx.counters.syn_challenge += 1;
            self.challenge_ack(ctx);
            return Disposition::Done;
        }
        if !seg.flags.ack() {
            return Disposition::Done;
        }
        self.record_ts_recent(ctx.now, seg);
        if self.state == State::SynReceived {
            if seg.ack <= self.snd_una || seg.ack > self.snd_max {
                return Disposition::Rst(rst_reply(seg));
            }
            self.state = State::Established;
            self.events |= ev::CONNECTED | ev::WRITABLE;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
        }
        if let Some(d) = self.process_ack(ctx, seg) {
            return d;
        }
        if self.state == State::Closed {
            return Disposition::Done;
        }
        self.process_payload(ctx, seg);
        Disposition::Done
    }

    /// ACK field processing; `Some` ends processing of this segment.
    fn process_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Option<Disposition> {
        let now = ctx.now;
        let ack = seg.ack;
        if ack > self.snd_max {
            // Acks something never sent: RFC 9293 says ACK and drop.
            self.ack = AckState::Now;
            return Some(Disposition::Done);
        }
        // RFC 5961 §5.2: too old to be plausible.
        if ack < self.snd_una - self.max_snd_wnd.max(1) {
            self.challenge_ack(ctx);
            return Some(Disposition::Done);
        }
        let old_wnd = self.snd_wnd;
        // Window update (RFC 9293 SND.WL1/WL2 rule).
        if self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= ack) {
            self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.timers[Timer::Persist] = None;
                self.probe_pending = false;
            }
        }
        self.arm_persist(now);
        let advanced = ack > self.snd_una;
        let board =
            (self.sack_ok && self.state.is_synchronized()).then(|| self.sack_scoreboard(ctx, seg));
        if advanced {
            self.on_new_ack(ctx, seg, board.map(|(d, _)| d.newest));
        } else if let Some((sent, false)) = board.and_then(|(d, _)| d.newest) {
            self.rtt_sample(ctx.now - sent, true);
        }
        if self.sack_ok {
            if let Some(b) = board {
                self.sack_on_ack(ctx, seg, advanced, b);
            }
        } else if !advanced
            && ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.syn()
            && !seg.flags.fin()
            && self.snd_wnd == old_wnd
            && self.snd_max > self.snd_una
        {
            self.on_dupack(ctx);
        }
        // Our FIN acknowledged?
        if self.fin_acked {
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    if self.orphan {
                        let t = self.fin_time(ctx.config);
                        self.timers[Timer::Close] = Some(now + t);
                    }
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.enter_closed();
                    return Some(Disposition::Done);
                }
                _ => {}
            }
        }
        None
    }

    /// Feed one RTT sample to the estimator, and to the minimum when it was timed to the
    /// microsecond (a timestamp echo counts in milliseconds).
    fn rtt_sample(&mut self, s: Duration, precise: bool) {
        self.rec.last_rtt = Some(s);
        self.rtt.sample(s);
        if precise {
            self.rec.min_rtt = Some(self.rec.min_rtt.map_or(s, |m| m.min(s)));
        }
    }

    /// `newest`: on the SACK path, the newest segment this ACK delivered (its send time,
    /// and whether it was a retransmission).
    fn on_new_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        newest: Option<Option<(Instant, bool)>>,
    ) {
        let now = ctx.now;
        let ack = seg.ack;
        let acked = ack.distance_from(self.snd_una);
        // Data bytes acked: exclude our SYN (if still unacked) and FIN.
        let mut data = acked;
        if self.snd_una == self.iss {
            data -= 1;
        }
        if self.fin_queued && !self.fin_acked && ack == self.fin_seq() + 1 {
            data -= 1;
            self.fin_acked = true;
        }
        self.send_buf.consume(data as usize);
        self.snd_una = ack;
        if self.snd_nxt < self.snd_una {
            self.snd_nxt = self.snd_una;
        }
        // RTT: on the SACK path the scoreboard's sample; else a timestamp echo (RFC 7323
        // RTTM), else Karn's timed segment.
        let ts_sample = seg
            .options
            .timestamps
            .filter(|t| self.ts_enabled && t.tsecr != 0)
            // Linux tcp_rtt_tsopt_us: a tick at least.
            .map(|t| {
                Duration::from_millis(u64::from(self.ts_now(now).wrapping_sub(t.tsecr).max(1)))
            });
        let echo = seg
            .options
            .timestamps
            .filter(|_| self.ts_enabled)
            .map(|t| t.tsecr);
        let sample = match (newest, ts_sample, self.rtt_probe) {
            // Never retransmitted: its send time, to the microsecond.
            (Some(Some((sent, false))), _, _) => Some((now - sent, true)),
            // A retransmission: only an echo of its own timestamp is unambiguous (RFC 7323
            // §4); an older one belongs to an earlier transmission.
            (Some(Some((sent, true))), Some(s), _) => echo
                .filter(|&e| e.wrapping_sub(self.ts_now(sent)) as i32 >= 0)
                .map(|_| (s, false)),
            (Some(_), _, _) => None,
            (None, Some(s), _) if s < RTO_MAX => Some((s, false)),
            (None, _, Some((end, sent))) if ack >= end => Some((now - sent, true)),
            _ => None,
        };
        self.rec.last_rtt = None;
        if let Some((s, precise)) = sample {
            self.rtt_sample(s, precise);
        }
        if self.rtt_probe.is_some_and(|(end, _)| ack >= end) {
            self.rtt_probe = None;
        }
        self.backoff = 0;
        self.retries = 0;
        self.retrans_stamp = None;
        let mss = u32::from(self.eff_mss());
        match self.recover {
            // The SACK path sizes the window itself (sack.rs).
            _ if self.sack_ok => {}
            Some(rec) if ack < rec && self.dupacks >= 3 => {
                // NewReno partial ACK (RFC 6582 §3.2 step 3): retransmit the next hole,
                // deflate by the amount acked, add back one MSS.
                self.cwnd = self.cwnd.saturating_sub(acked) + mss;
                self.retransmit_head();
            }
            Some(_) if self.dupacks >= 3 => {
                // Full ACK: leave recovery (RFC 6582 §3.2 step 3, option 1).
                let flight = self.snd_max.distance_from(ack);
                self.cwnd = self.ssthresh.min(flight.max(mss) + mss);
                self.recover = None;
                self.dupacks = 0;
            }
            rec => {
                if rec.is_some_and(|r| ack >= r) {
                    self.recover = None;
                }
                self.dupacks = 0;
                self.grow_cwnd(now, acked);
            }
        }
        // Linux tcp_sndbuf_expand: room for two congestion windows, within tcp_wmem.
        let [_, _, wmax] = ctx.config.tcp_wmem;
        if (self.send_buf.cap() as u64) < u64::from(wmax) {
            self.send_buf
                .grow_to((2 * self.cwnd as usize).min(wmax as usize));
        }
        if self.snd_una == self.snd_max {
            self.timers[Timer::Rto] = None;
        } else {
            self.arm_rto(now, self.rtt.backed_off(self.backoff));
        }
        if self.send_buf.free() > 0 && self.can_send_data() {
            self.events |= ev::WRITABLE;
        }
        self.arm_persist(now);
    }

    fn on_dupack(&mut self, ctx: &mut Ctx<'_>) {
        let mss = u32::from(self.eff_mss());
        self.dupacks += 1;
        if self.dupacks == 3 {
            // RFC 6582 §3.2 step 2: only if the ACK covers more than the last recovery point.
            if self.recover.is_some_and(|r| self.snd_una < r) {
                return;
            }
            ctx.counters.fast_retrans += 1;
            self.ssthresh = self.cc_ssthresh();
            self.cwnd = self.ssthresh + 3 * mss;
            self.recover = Some(self.snd_max);
            self.retransmit_head();
        } else if self.dupacks > 3 {
            // Each further duplicate means a segment left the network.
            self.cwnd += mss;
        }
    }

    /// Resend one segment at SND.UNA without disturbing SND.NXT.
    fn retransmit_head(&mut self) {
        self.retx_head = true;
        self.rtt_probe = None;
    }

    /// Payload and FIN of an acceptable segment.
    fn process_payload(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
        let mut fin = seg.flags.fin();
        let mut seq = seg.seq + u32::from(seg.flags.syn());
        let mut data = seg.payload;
        if !data.is_empty() && self.orphan && self.state.can_recv() {
            // Data for a socket the application closed: Linux resets (TCPAbortOnData).
            ctx.counters.abort_on_data += 1;
            self.abort();
            return;
        }
        // Trim what we already have (and say so in a DSACK).
        if seq < self.rcv_nxt {
            let dup = self.rcv_nxt.distance_from(seq) as usize;
            if !data.is_empty() {
                self.note_duplicate(ctx, seq, seq + data.len() as u32);
            }
            if dup >= data.len() {
                if dup > data.len() {
                    fin = false; // the FIN was seen already
                }
                data = &[];
            } else {
                data = &data[dup..];
            }
            seq = self.rcv_nxt;
        }
        let off = seq.distance_from(self.rcv_nxt) as usize;
        if !data.is_empty() && self.state.can_recv() {
            let room = self.recv_buf.window().saturating_sub(off);
            if data.len() > room {
                ctx.counters.zero_window_drop += 1;
                data = &data[..room];
                fin = false;
                self.ack = AckState::Now;
                if data.is_empty() {
                    return;
                }
            }
            match self.recv_buf.write_at(off, data) {
                Written::InOrder(n) => {
                    self.rcv_nxt += n as u32;
                    self.events |= ev::READABLE;
                    self.on_data_received(ctx.now, data.len());
                    self.rcv_rtt_measure(ctx.now, seg);
                    if n > data.len() {
                        // A hole filled: say so at once (RFC 5681 §4.2).
                        self.ack = AckState::Now;
                    } else {
                        self.schedule_ack(ctx.now, seg.flags.psh());
                    }
                }
                Written::OutOfOrder => {
                    ctx.counters.ofo_queue += 1;
                    self.rec.last_ooo = Some(seq);
                    self.ack = AckState::Now;
                    fin = false;
                }
                Written::Dropped => {
                    ctx.counters.ofo_drop += 1;
                    self.ack = AckState::Now;
                    fin = false;
                }
            }
        } else if !data.is_empty() {
            // Data after the peer's FIN or in a closing state: just ACK.
            self.ack = AckState::Now;
        }
        if fin && seq + data.len() as u32 == self.rcv_nxt && !self.fin_received {
            self.fin_received = true;
            self.rcv_nxt += 1;
            self.ack = AckState::Now;
            self.events |= ev::READABLE;
            match self.state {
                State::Established => self.state = State::CloseWait,
                State::FinWait1 => {
                    if self.fin_acked {
                        self.enter_time_wait(ctx.now);
                    } else {
                        self.state = State::Closing;
                    }
                }
                State::FinWait2 => self.enter_time_wait(ctx.now),
                _ => {}
            }
        }
    }

    /// A new SYN reuses this TIME_WAIT's 4-tuple (Linux TCP_TW_SYN with a listener).
    pub(crate) fn end_time_wait(&mut self) {
        self.enter_closed();
    }

    /// Answer with an ACK on the next poll.
    pub(crate) fn ack_now(&mut self) {
        self.ack = AckState::Now;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers.clear();
        self.timers[Timer::Close] = Some(now + TIME_WAIT_LEN);
        self.events |= ev::CLOSED;
    }

    /// Sequence number our FIN occupies (after all buffered data).
    fn fin_seq(&self) -> SeqNumber {
        self.data_seq() + self.send_buf.len() as u32
    }

    /// Sequence number of the first byte in the send buffer.
    fn data_seq(&self) -> SeqNumber {
        if self.snd_una == self.iss {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    fn unsent(&self) -> usize {
        let sent = self.snd_nxt.distance_from(self.data_seq()) as usize;
        self.send_buf.len().saturating_sub(sent)
    }
}

/// `<SEQ=SEG.ACK><CTL=RST>` for a segment with ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`
/// (RFC 9293 §3.10.7.1).
pub(crate) fn rst_reply(seg: &TcpRepr<'_>) -> TcpRepr<'static> {
    let (seq, ack, flags) = if seg.flags.ack() {
        (seg.ack, SeqNumber(0), TcpFlags::RST)
    } else {
        (
            SeqNumber(0),
            seg.seq + seg_len(seg),
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq,
        ack,
        flags,
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

// ---- output ----
impl Connection {
    /// Anything for `poll_transmit`? (Cheap; the stack keeps a ready list with it.)
    pub(crate) fn wants_transmit(&self) -> bool {
        if self.rst_pending || self.ack == AckState::Now || self.retx_head || self.probe_pending {
            return true;
        }
        if self.sack_ok && (self.rec.tlp_pending || self.lost_to_resend().is_some()) {
            return true;
        }
        match self.state {
            State::SynSent | State::SynReceived => self.snd_nxt == self.iss,
            State::Established
            | State::CloseWait
            | State::FinWait1
            | State::Closing
            | State::LastAck => self.data_to_send().is_some(),
            _ => false,
        }
    }

    /// Payload length and FIN of the next new segment, if Nagle, SWS avoidance and the
    /// windows allow one.
    fn data_to_send(&self) -> Option<(usize, bool)> {
        let fin_pending = self.fin_queued && !self.fin_acked && self.snd_nxt <= self.fin_seq();
        let unsent = self.unsent();
        if unsent == 0 && !fin_pending {
            return None;
        }
        let mss = usize::from(self.eff_mss());
        let in_flight = self.snd_nxt.distance_from(self.snd_una) as usize;
        // The peer's window counts from SND.UNA; the congestion window counts the pipe,
        // which on the SACK path leaves out what was SACKed or lost.
        let pipe = if self.sack_ok {
            self.rec.board.pipe() as usize
        } else {
            in_flight
        };
        let usable = (self.snd_wnd as usize)
            .saturating_sub(in_flight)
            .min((self.cwnd as usize).saturating_sub(pipe));
        let len = unsent.min(mss).min(usable);
        let fin = fin_pending && len == unsent;
        if len == 0 {
            return fin.then_some((0, true));
        }
        // RFC 1122 4.2.3.4 SWS avoidance and RFC 896 Nagle.
        let ok = len == mss
            || fin
            || (len == unsent && (in_flight == 0 || self.nodelay))
            || (in_flight == 0 && (len == usable || len >= (self.max_snd_wnd as usize / 2).max(1)));
        ok.then_some((len, fin))
    }

    /// Free space to advertise from.
    fn adv_space(&self) -> usize {
        self.rcv_space.saturating_sub(self.recv_buf.len())
    }

    /// Our receive window for the next segment, never shrinking the right edge
    /// (RFC 9293 §3.8.6.2.2). A window rounded up to the scale stays within the buffer's slack.
    fn advertise(&mut self) -> u16 {
        let shift = self.rcv_wscale;
        let floor = (self.adv_space() as u32) >> shift;
        let promised = if self.rcv_adv > self.rcv_nxt {
            self.rcv_adv.distance_from(self.rcv_nxt)
        } else {
            0
        };
        let wnd = if floor << shift >= promised {
            let wnd = floor.min(65_535);
            self.rcv_adv = self.rcv_nxt + (wnd << shift);
            wnd
        } else {
            (promised + (1 << shift) - 1) >> shift
        };
        wnd.min(65_535) as u16
    }

    fn options(&self, now: Instant, syn: bool, config: &Config) -> TcpOptions {
        let mut o = TcpOptions::default();
        if syn {
            o.mss = Some(mss_for(&self.tuple, config));
            let offer = self.state == State::SynSent;
            if config.tcp_window_scaling && (offer || self.snd_wscale > 0 || self.rcv_wscale > 0) {
                o.window_scale = Some(self.rcv_wscale);
            }
            o.sack_permitted = config.tcp_sack && (offer || self.sack_ok);
            if config.tcp_timestamps != 0 && (offer || self.ts_enabled) {
                let tsecr = if offer { 0 } else { self.ts_recent };
                o.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr,
                });
            }
            return o;
        }
        if self.ts_enabled {
            o.timestamps = Some(Timestamps {
                tsval: self.ts_now(now),
                tsecr: self.ts_recent,
            });
        }
        if self.sack_ok && (self.recv_buf.has_ooo() || self.rec.dsack.is_some()) {
            o.sack_blocks = self.sack_blocks(if self.ts_enabled { 3 } else { 4 });
        }
        o
    }

    fn write_segment(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut Vec<u8>,
        flags: TcpFlags,
        seq: SeqNumber,
        payload: (usize, usize),
    ) -> usize {
        let syn = flags.syn();
        let window = if syn {
            let syn_ack = self.state == State::SynReceived;
            let mss =
                mss_for(&self.tuple, ctx.config) - if syn_ack && self.ts_enabled { 12 } else { 0 };
            initial_window(self.rcv_space, mss) as u16
        } else {
            self.advertise()
        };
        let options = self.options(ctx.now, syn, ctx.config);
        let ack = if flags.ack() {
            self.rcv_nxt
        } else {
            SeqNumber(0)
        };
        let repr = TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq,
            ack,
            flags,
            window,
            urgent: 0,
            options,
            payload: self.send_buf.slice(payload.0, payload.1),
        };
        let ip = IpRepr {
            src: self.tuple.local.ip(),
            dst: self.tuple.remote.ip(),
            hop_limit: ctx.config.ip_default_ttl,
        };
        let n = emit(&ip, &repr, buf);
        if flags.ack() {
            let owed = self.segments_owed();
            self.on_ack_sent(owed);
            self.ack = AckState::None;
            self.rec.dsack = None;
            self.timers[Timer::DelAck] = None;
            self.last_ack_sent = self.rcv_nxt;
        }
        n
    }

    /// Write the next segment this connection wants to send into `buf`.
    pub(crate) fn poll_transmit(&mut self, ctx: &mut Ctx<'_>, buf: &mut Vec<u8>) -> Option<usize> {
        let now = ctx.now;
        if self.rst_pending {
            self.rst_pending = false;
            let seq = self.snd_nxt;
            let n = self.write_segment(ctx, buf, TcpFlags::RST | TcpFlags::ACK, seq, (0, 0));
            ctx.counters.out_rsts += 1;
            ctx.counters.out_segs += 1;
            self.enter_closed();
            return Some(n);
        }
        match self.state {
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                let flags = if self.state == State::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN | TcpFlags::ACK
                };
                let n = self.write_segment(ctx, buf, flags, self.iss, (0, 0));
                if self.syn_tx > 0 {
                    ctx.counters.syn_retrans += 1;
                    ctx.counters.retrans_segs += 1;
                } else {
                    ctx.counters.out_segs += 1;
                    self.rtt_probe = Some((self.iss + 1, now));
                }
                if self.syn_tx == 0 {
                    self.retrans_stamp = Some(now);
                }
                self.arm_rto(now, ctx.config.syn_rto(self.syn_tx));
                self.syn_tx += 1;
                self.snd_nxt = self.iss + 1;
                self.snd_max = self.snd_max.max(self.snd_nxt);
                return Some(n);
            }
            State::SynSent | State::SynReceived | State::Closed | State::Listen => {
                return (self.ack == AckState::Now && self.state == State::SynReceived).then(
                    || {
                        let seq = self.snd_nxt;
                        ctx.counters.out_segs += 1;
                        self.write_segment(ctx, buf, TcpFlags::ACK, seq, (0, 0))
                    },
                );
            }
            _ => {}
        }
        if self.retx_head {
            self.retx_head = false;
            let len = self.send_buf.len().min(usize::from(self.eff_mss()));
            let fin = self.fin_queued
                && !self.fin_acked
                && self.data_seq() + len as u32 == self.fin_seq();
            if len > 0 || fin {
                let mut flags = TcpFlags::ACK;
                if fin {
                    flags |= TcpFlags::FIN;
                }
                let seq = self.snd_una;
                let n = self.write_segment(ctx, buf, flags, seq, (0, len));
                ctx.counters.retrans_segs += 1;
                self.arm_rto(now, self.rtt.backed_off(self.backoff));
                return Some(n);
            }
        }
        if self.sack_ok {
            if let Some((start, end)) = self.lost_to_resend() {
                return Some(self.write_retransmission(ctx, buf, start, end, false));
            }
            if self.rec.tlp_pending {
                if let Some(n) = self.write_probe(ctx, buf) {
                    return Some(n);
                }
            }
        }
        if let Some((len, fin)) = self.data_to_send() {
            return Some(self.write_new(ctx, buf, len, fin));
        }
        if self.probe_pending {
            self.probe_pending = false;
            let seq = self.snd_una - 1;
            let n = self.write_segment(ctx, buf, TcpFlags::ACK, seq, (0, 0));
            ctx.counters.out_segs += 1;
            self.arm_persist(now);
            return Some(n);
        }
        if self.ack == AckState::Now {
            let seq = self.snd_nxt;
            let n = self.write_segment(ctx, buf, TcpFlags::ACK, seq, (0, 0));
            ctx.counters.out_segs += 1;
            self.arm_persist(now);
            return Some(n);
        }
        self.arm_persist(now);
        None
    }

    /// Write the next `len` new bytes (and the FIN) at SND.NXT.
    fn write_new(&mut self, ctx: &mut Ctx<'_>, buf: &mut Vec<u8>, len: usize, fin: bool) -> usize {
        let now = ctx.now;
        let seq = self.snd_nxt;
        let off = seq.distance_from(self.data_seq()) as usize;
        let mut flags = TcpFlags::ACK;
        if len > 0 && len == self.unsent() {
            flags |= TcpFlags::PSH;
        }
        if fin {
            flags |= TcpFlags::FIN;
        }
        let n = self.write_segment(ctx, buf, flags, seq, (off, len));
        if len > 0 {
            self.on_data_sent(now);
        }
        let end = seq + len as u32 + u32::from(fin);
        if seq < self.snd_max {
            ctx.counters.retrans_segs += 1;
        } else {
            ctx.counters.out_segs += 1;
            if self.rtt_probe.is_none() && len > 0 && self.backoff == 0 {
                self.rtt_probe = Some((end, now));
            }
            if self.sack_ok {
                self.sack_on_send(seq, end, now);
            }
        }
        self.snd_nxt = end;
        self.snd_max = self.snd_max.max(end);
        if self.timers[Timer::Rto].is_none() {
            self.arm_rto(now, self.rtt.backed_off(self.backoff));
        }
        if self.sack_ok {
            self.arm_tlp(now);
        }
        self.arm_persist(now);
        n
    }

    /// Zero window with data waiting and nothing in flight: probe later (RFC 9293 §3.8.6.1).
    fn arm_persist(&mut self, now: Instant) {
        let stalled = self.snd_wnd == 0 && self.unsent() > 0 && self.snd_nxt == self.snd_una;
        if stalled && self.timers[Timer::Rto].is_none() && self.timers[Timer::Persist].is_none() {
            self.timers[Timer::Persist] = Some(now + self.rtt.backed_off(self.backoff));
        }
    }

    // ---- introspection ----

    /// Snapshot for tests, `ss`-like views and the simulator.
    /// An RTT sample was taken (Linux saves tcp_metrics only then).
    pub(crate) fn has_rtt(&self) -> bool {
        self.rtt.srtt().is_some()
    }

    pub(crate) fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            tuple: self.tuple,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            snd_wnd: self.snd_wnd,
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            srtt: self.rtt.srtt(),
            rto: self.rtt.backed_off(self.backoff),
            mss: self.eff_mss(),
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            timestamps: self.ts_enabled,
            sack: self.sack_ok,
            send_queue: self.send_buf.len(),
            recv_queue: self.recv_buf.len(),
            error: self.error,
            congestion: self.cc.algorithm(),
            ca_state: match self.rec.ca {
                sack::CaState::Open => "open",
                sack::CaState::Recovery => "recovery",
                sack::CaState::Loss => "loss",
            },
        }
    }
}

/// A read-only view of a connection (what `ss -tni` would print).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// RFC state.
    pub state: State,
    /// Addresses.
    pub tuple: FourTuple,
    /// Oldest unacknowledged sequence number.
    pub snd_una: SeqNumber,
    /// Next sequence number to send.
    pub snd_nxt: SeqNumber,
    /// Next sequence number expected.
    pub rcv_nxt: SeqNumber,
    /// Peer's window in bytes (scaled).
    pub snd_wnd: u32,
    /// Congestion window in bytes.
    pub cwnd: u32,
    /// Slow-start threshold in bytes.
    pub ssthresh: u32,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// Current RTO including backoff.
    pub rto: Duration,
    /// Payload bytes per full segment.
    pub mss: u16,
    /// Shift applied to the peer's window.
    pub snd_wscale: u8,
    /// Shift applied to ours.
    pub rcv_wscale: u8,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Bytes in the send buffer (unacked and unsent).
    pub send_queue: usize,
    /// Bytes readable.
    pub recv_queue: usize,
    /// Terminal error, if any.
    pub error: Option<ConnError>,
    /// Congestion control algorithm (`TCP_CONGESTION`).
    pub congestion: crate::congestion::Algorithm,
    /// Congestion state: `open`, `recovery` or `loss`.
    pub ca_state: &'static str,
}

/// Emit an IP packet into `buf` (resized to fit).
pub(crate) fn emit(ip: &IpRepr, tcp: &TcpRepr<'_>, buf: &mut Vec<u8>) -> usize {
    let len = synq_wire::packet_len(ip, tcp);
    buf.clear();
    buf.resize(len, 0);
    // Our own reprs always fit and share a family: a failure is a bug, not input.
    synq_wire::emit_packet(ip, tcp, buf).expect("emit of a well-formed repr")
}

/// Seconds of a sysctl as a duration (negative ones as zero).
fn secs(v: i32) -> Duration {
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}
