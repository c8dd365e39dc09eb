//! When to acknowledge, as Linux decides (`tcp_event_data_recv`, `__tcp_ack_snd_check`,
//! `tcp_send_delayed_ack`, `tcp_delack_timer_handler`): quick-ACK mode acknowledges every
//! segment at the start of a connection and after a long gap; otherwise every second full
//! segment, or after the delayed-ACK timeout `ato`, which adapts to how data arrives;
//! interactive (ping-pong) connections hold their ACK for the reply to carry.

use super::{AckState, Connection, Timer};
use crate::{Duration, Instant};

/// `TCP_ATO_MIN` (and `TCP_DELACK_MIN`): 40 ms.
const ATO_MIN: Duration = Duration::from_millis(40);
/// `TCP_DELACK_MAX`: 200 ms.
const DELACK_MAX: Duration = Duration::from_millis(200);
/// `TCP_MAX_QUICKACKS`.
const MAX_QUICKACKS: u32 = 16;

/// The delayed-ACK engine's state (Linux `icsk_ack`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DelayedAck {
    /// The delayed-ACK timeout; zero until the first data arrives.
    ato: Duration,
    /// Segments still to be acknowledged at once (quick-ACK mode).
    quick: u32,
    /// The connection answers what it receives (interactive): hold ACKs for the reply.
    pingpong: bool,
    /// When data last arrived.
    lrcvtime: Option<Instant>,
    /// Largest segment received (Linux `rcv_mss`, an estimate of the peer's MSS).
    rcv_mss: u32,
}

impl Connection {
    /// Linux `tcp_incr_quickack`: enough quick ACKs to open half the window, at most 16.
    fn incr_quickack(&mut self) {
        let mss = self.delack.rcv_mss.max(1);
        let wnd = self.adv_space() as u32;
        let n = (wnd / (2 * mss)).clamp(2, MAX_QUICKACKS);
        self.delack.quick = self.delack.quick.max(n);
    }

    /// Linux `inet_csk_enter_pingpong_mode` (the peer's FIN): ACKs wait for the timer.
    pub(super) fn enter_pingpong(&mut self) {
        self.delack.pingpong = true;
    }

    /// Linux `tcp_enter_quickack_mode`: ACK at once for a while (duplicates, a hole).
    pub(super) fn enter_quickack(&mut self) {
        self.incr_quickack();
        self.delack.pingpong = false;
        self.delack.ato = ATO_MIN;
    }

    /// In-order data of `len` bytes arrived at `now` (Linux `tcp_event_data_recv` and
    /// `tcp_measure_rcv_mss`).
    pub(super) fn on_data_received(&mut self, now: Instant, len: usize) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        if self.delack.rcv_mss == 0 {
            self.delack.rcv_mss = u32::from(self.mss).clamp(1, 536);
        }
        self.delack.rcv_mss = self.delack.rcv_mss.max(len.min(u32::from(u16::MAX)));
        let rto = self.rtt.rto();
        match self.delack.lrcvtime {
            None => {
                self.incr_quickack();
                self.delack.ato = ATO_MIN;
            }
            Some(last) => {
                let m = now.saturating_since(last);
                let half = Duration::from_micros(ATO_MIN.total_micros() / 2);
                let ato_half = Duration::from_micros(self.delack.ato.total_micros() / 2);
                if m <= half {
                    self.delack.ato = ato_half + half;
                } else if m < self.delack.ato {
                    self.delack.ato = (ato_half + m).min(rto);
                } else if m > rto {
                    // The sender went quiet: help it restart its window.
                    self.incr_quickack();
                }
            }
        }
        self.delack.lrcvtime = Some(now);
    }

    /// Linux `__tcp_ack_snd_check` for in-order data: ACK now or arm the delayed ACK.
    pub(super) fn schedule_ack(&mut self, now: Instant, psh: bool) {
        let unacked = self.rcv_nxt.distance_from(self.last_ack_sent);
        let full = unacked > self.delack.rcv_mss.max(1);
        let quick = self.delack.quick > 0 && !self.delack.pingpong;
        // No data received yet: Linux's `ato` is still 0, so its delayed ACK leaves at
        // once (a bare FIN straight after the handshake is ACKed without delay).
        let no_ato = self.delack.ato == Duration::ZERO;
        if full || quick || no_ato || self.recv_buf.has_ooo() {
            self.ack = AckState::Now;
            return;
        }
        if self.ack == AckState::None {
            self.ack = AckState::Delayed;
            self.timers[Timer::DelAck] = Some(now + self.delack_timeout(psh));
        }
    }

    /// Linux `tcp_send_delayed_ack`: `ato`, at most 200 ms (500 ms for bulk data), and at
    /// most the SRTT once there is one (never under 40 ms).
    fn delack_timeout(&self, psh: bool) -> Duration {
        let ato = self.delack.ato.max(ATO_MIN);
        if ato <= ATO_MIN {
            return ato;
        }
        let mut max = if self.delack.pingpong || psh {
            DELACK_MAX
        } else {
            Duration::from_millis(500)
        };
        if let Some(srtt) = self.rtt.srtt() {
            max = max.min(srtt.max(ATO_MIN));
        }
        ato.min(max)
    }

    /// The delayed-ACK timer fired with an ACK owed (Linux `tcp_delack_timer_handler`):
    /// an interactive connection gives up holding; a bulk one holds longer next time.
    pub(super) fn on_delack_timer(&mut self) {
        if self.delack.pingpong {
            self.delack.pingpong = false;
            self.delack.ato = ATO_MIN;
        } else {
            self.delack.ato = (self.delack.ato + self.delack.ato).min(self.rtt.rto());
        }
    }

    /// An ACK left: quick ACKs used up (Linux `tcp_dec_quickack_mode`).
    pub(super) fn on_ack_sent(&mut self, segments: u32) {
        self.delack.quick = self.delack.quick.saturating_sub(segments.max(1));
    }

    /// Data left at `now`: answering soon after receiving makes the connection
    /// interactive (Linux `tcp_event_data_sent`, `tcp_pingpong_thresh` = 1).
    pub(super) fn on_data_sent(&mut self, now: Instant) {
        if let Some(last) = self.delack.lrcvtime {
            if now < last + self.delack.ato {
                self.delack.pingpong = true;
            }
        }
    }

    /// Segments the next ACK acknowledges (for the quick-ACK count).
    pub(super) fn segments_owed(&self) -> u32 {
        let unacked = self.rcv_nxt.distance_from(self.last_ack_sent);
        unacked.div_ceil(self.delack.rcv_mss.max(1))
    }
}
