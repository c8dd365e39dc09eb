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
mod input;
mod output;
mod sack;
mod timeouts;
mod timers;
use ack::DelayedAck;
use autotune::Autotune;
pub(crate) use input::rst_reply;
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

    /// The name `ss` prints (`ESTAB`, `SYN-RECV`, `UNCONN` for CLOSED, ...).
    pub fn ss_name(self) -> &'static str {
        match self {
            Self::Closed => "UNCONN",
            Self::Listen => "LISTEN",
            Self::SynSent => "SYN-SENT",
            Self::SynReceived => "SYN-RECV",
            Self::Established => "ESTAB",
            Self::FinWait1 => "FIN-WAIT-1",
            Self::FinWait2 => "FIN-WAIT-2",
            Self::CloseWait => "CLOSE-WAIT",
            Self::Closing => "CLOSING",
            Self::LastAck => "LAST-ACK",
            Self::TimeWait => "TIME-WAIT",
        }
    }

    /// The state [`as_str`](Self::as_str) names, if it names one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Closed,
            Self::Listen,
            Self::SynSent,
            Self::SynReceived,
            Self::Established,
            Self::FinWait1,
            Self::FinWait2,
            Self::CloseWait,
            Self::Closing,
            Self::LastAck,
            Self::TimeWait,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
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
    /// The stack's RFC 5961 challenge-ACK budget.
    pub(crate) challenge: &'a mut crate::challenge::ChallengeBudget,
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
    /// The listener's `SO_RCVBUF` (Linux `sk_rcvbuf`) and the window scale its SYN-ACK
    /// offered from it; `None`: the sysctls' defaults.
    pub(crate) rcvbuf: Option<(u32, u8)>,
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
    /// A FIN that arrived beyond a hole: its sequence number.
    ooo_fin: Option<SeqNumber>,
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
    /// Nagle as Linux has it (Minshall's variant: hold a short segment only while another
    /// short one is unacknowledged); 4.4BSD holds it while anything is.
    minshall: bool,
    /// End of the last short segment sent (Linux `snd_sml`).
    snd_sml: SeqNumber,
    /// The receive buffer was sized by `SO_RCVBUF`: no autotuning.
    rcvbuf_locked: bool,
    pub(crate) events: u8,
    /// Was it counted in TcpCurrEstab?
    pub(crate) counted_estab: bool,
}

fn seg_len(seg: &TcpRepr<'_>) -> u32 {
    seg.payload.len() as u32 + u32::from(seg.flags.syn()) + u32::from(seg.flags.fin())
}

impl Connection {
    // Inlined (with `connect` and `accept`) into the slab's `insert_with`, so a new
    // connection is written straight into its slot, not built and copied there.
    #[inline(always)]
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
            ooo_fin: None,
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
            minshall: !config.model.bsd_wire(),
            snd_sml: iss,
            rcvbuf_locked: false,
            events: 0,
            counted_estab: false,
        }
    }

    /// Active open: SYN-SENT; the SYN goes out on the next poll.
    #[inline(always)]
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
    #[inline(always)]
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
        if let Some((buf, wscale)) = neg.rcvbuf {
            // Inherited from the listener and locked (Linux SOCK_RCVBUF_LOCK): no
            // autotuning, the scale its SYN-ACK offered.
            c.rcv_space = buf as usize;
            if config.tcp_window_scaling {
                c.rcv_wscale = wscale;
            }
            c.recv_buf = RecvBuffer::new(c.rcv_space + (1 << c.rcv_wscale));
            c.rcvbuf_locked = true;
        }
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
        if let (Some(ts), true) = (neg.ts_recent, config.tcp_timestamps.on()) {
            self.ts_enabled = true;
            self.ts_recent = ts;
            self.ts_recent_stamp = now;
        }
        self.cwnd = INIT_CWND_SEGS * u32::from(self.eff_mss());
    }

    /// Payload bytes per full segment (MSS less the timestamp option).
    fn eff_mss(&self) -> u16 {
        let (mss, header) = if self.ts_enabled {
            (self.mss - 12, 32)
        } else {
            (self.mss, 20)
        };
        // Linux `tcp_bound_to_half_wnd`: no segment larger than half the largest window the
        // peer offered (the whole of it when that is at most 536 bytes), floored at 68 bytes
        // of header and data.
        let w = self.max_snd_wnd;
        let cutoff = if w > 536 { w / 2 } else { w };
        if cutoff > 0 && u32::from(mss) > cutoff {
            cutoff.max(68 - header) as u16
        } else {
            mss
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
        // Both sides of the test are capped by what the window field can say
        // (Linux `window_clamp`: 65535 << wscale).
        let clamp = (65_535usize << self.rcv_wscale).min(self.rcv_space);
        let now_wnd = self.rcv_adv.distance_from(self.rcv_nxt) as usize;
        let new_wnd = (self.adv_space() >> self.rcv_wscale << self.rcv_wscale).min(clamp);
        if n > 0 && self.state.can_recv() && 2 * now_wnd <= clamp && new_wnd >= 2 * now_wnd.max(1) {
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
    wscale_within(config, u32::MAX)
}

/// Linux `tcp_select_initial_window`'s scale: for the largest buffer the sysctls allow,
/// at most `clamp` (a locked `SO_RCVBUF`'s window).
pub(crate) fn wscale_within(config: &Config, clamp: u32) -> u8 {
    let space = config.tcp_rmem[2].max(config.rmem_max).min(clamp).max(1);
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
    /// Largest window the peer has offered (RFC 5961 §5.2's MAX.SND.WND).
    pub max_snd_wnd: u32,
    /// Our window as last advertised, counted from RCV.NXT: the sequence numbers a
    /// segment may start at (RFC 9293 §3.10.7.4).
    pub rcv_wnd: u32,
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
    let p = synq_wire::Prepared::new(ip, tcp);
    // `emit` writes every byte it sizes: a buffer already that long (the last packet's)
    // is cut to length, not zeroed first.
    let n = p.len();
    if buf.len() >= n {
        buf.truncate(n);
    } else {
        buf.resize(n, 0);
    }
    // Our own reprs always fit and share a family: a failure is a bug, not input.
    p.emit(buf).expect("emit of a well-formed repr")
}

/// Seconds of a sysctl as a duration (negative ones as zero).
fn secs(v: i32) -> Duration {
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}
