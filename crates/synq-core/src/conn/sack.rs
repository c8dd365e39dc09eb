//! The send side with SACK, as Linux runs it with `tcp_sack` and `tcp_recovery` = 1: the
//! scoreboard (`recovery.rs`) marks losses by RACK (RFC 8985 §6, `tcp_rack_mark_lost`), a
//! tail loss probe (RFC 8985 §7, `tcp_send_loss_probe`) finds losses at the tail without
//! waiting for an RTO, recovery sends by proportional rate reduction (RFC 6937,
//! `tcp_cwnd_reduction`), and an RTO resends only what was not SACKed (`tcp_enter_loss`).
//! Without SACK the connection keeps NewReno (RFC 6582) in `mod.rs`.
//!
//! The receive side's part: DSACK blocks for duplicates (RFC 2883, `tcp_dsack_set`) and the
//! block of the latest out-of-order segment first (RFC 2018 §4).

use super::{AckSample, AckState, Congestion, Connection, Ctx, Timer, Window};
use crate::recovery::{Delivered, Scoreboard};
use crate::{Duration, Instant};
use synq_wire::{SackBlocks, SeqNumber, TcpFlags, TcpRepr};

/// Linux's `TCP_RTO_MIN` added to the probe timeout when one segment is in flight (the
/// receiver may be holding its ACK).
const TLP_DELACK: Duration = Duration::from_millis(200);
/// Linux's `TCP_TIMEOUT_MIN` added otherwise.
const TLP_SLACK: Duration = Duration::from_millis(2);
/// Most DSACK steps of the reordering window (Linux caps the window at SRTT anyway).
const MAX_REO_STEPS: u32 = 16;
/// `tcp_recovery` bits.
const RACK_LOSS_DETECTION: i32 = 1;
const RACK_STATIC_REO_WND: i32 = 2;
const RACK_NO_DUPTHRESH: i32 = 4;

/// Linux's congestion states that the SACK path moves through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CaState {
    /// No loss being repaired.
    #[default]
    Open,
    /// Fast recovery after losses found by SACK or RACK.
    Recovery,
    /// After an RTO.
    Loss,
}

/// The SACK path's state.
#[derive(Debug, Default)]
pub(crate) struct SackPath {
    pub(crate) board: Scoreboard,
    pub(crate) ca: CaState,
    /// SND.MAX when recovery or loss began: both end once it is acknowledged.
    high_seq: SeqNumber,
    /// PRR: cwnd at the start of recovery, data delivered and sent since.
    prior_cwnd: u32,
    prr_delivered: u32,
    prr_out: u32,
    /// Smallest RTT seen (Linux keeps a windowed minimum; the path here does not change).
    pub(crate) min_rtt: Option<Duration>,
    /// The RTT sample of the ACK being processed, if it gave one.
    pub(crate) last_rtt: Option<Duration>,
    /// Reordering was seen (by DSACK or a late original): RACK waits a reordering window.
    reord_seen: bool,
    reo_wnd_steps: u32,
    /// A tail loss probe is outstanding up to this sequence; was it a retransmission?
    tlp_high_seq: Option<SeqNumber>,
    tlp_retrans: bool,
    /// The probe timer fired: send a probe on the next poll.
    pub(crate) tlp_pending: bool,
    /// Segments of reordering seen (Linux `tp->reordering`); 0 until the first ACK.
    reordering: u32,
    /// What to restore if this recovery or RTO turns out spurious.
    undo: Option<Undo>,
    /// F-RTO (RFC 5682 §3.1, Linux `tp->frto`) is judging the last RTO.
    frto: bool,
    /// F-RTO step 2.b: this ACK sends new data, not retransmissions (Linux `REXMIT_NEW`).
    pub(crate) frto_new: bool,
    /// DSACK block for our next ACK.
    pub(crate) dsack: Option<(SeqNumber, SeqNumber)>,
    /// Start of the latest out-of-order segment received.
    pub(crate) last_ooo: Option<SeqNumber>,
}

/// Linux's undo state (`undo_marker`, `undo_retrans`, `prior_cwnd`, `prior_ssthresh`,
/// `retrans_stamp` as a timestamp value).
#[derive(Clone, Copy, Debug)]
struct Undo {
    marker: SeqNumber,
    /// Retransmissions not yet reported back as DSACKs.
    retrans: u32,
    /// Retransmissions in all.
    sent: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Our timestamp value on the first retransmission.
    first_tsval: Option<u32>,
}

/// The inputs of one PRR step, in bytes.
#[derive(Clone, Copy, Debug)]
struct Prr {
    prr_delivered: u32,
    prr_out: u32,
    /// Delivered by this ACK (acknowledged or SACKed).
    delivered: u32,
    pipe: u32,
    ssthresh: u32,
    prior_cwnd: u32,
    mss: u32,
    una_advanced: bool,
}

/// RFC 6937 §3 as Linux `tcp_cwnd_reduction`: how much may be sent on this ACK. Above
/// ssthresh, in proportion to what was delivered (`ceil(ssthresh * prr_delivered /
/// RecoverFS) - prr_out`); at or below it, PRR-SSRB: what was delivered plus one segment
/// when SND.UNA advanced, up to ssthresh. The first step sends at least one segment.
fn prr_sndcnt(p: &Prr) -> u64 {
    let (pd, po) = (u64::from(p.prr_delivered), u64::from(p.prr_out));
    let (pipe, ssthresh, mss) = (u64::from(p.pipe), u64::from(p.ssthresh), u64::from(p.mss));
    let mut sndcnt = if pipe > ssthresh {
        // Whole segments, as Linux counts in packets.
        (ssthresh * pd)
            .div_ceil(u64::from(p.prior_cwnd))
            .saturating_sub(po)
            .div_ceil(mss)
            * mss
    } else {
        let mut n = pd.saturating_sub(po).max(u64::from(p.delivered));
        if p.una_advanced {
            n += mss;
        }
        n.min(ssthresh - pipe)
    };
    if p.prr_out == 0 {
        sndcnt = sndcnt.max(mss);
    }
    sndcnt
}

/// Is the first block a DSACK (RFC 2883 §4: below the cumulative ACK, or inside the second)?
fn is_dsack(blocks: &[(SeqNumber, SeqNumber)], ack: SeqNumber) -> bool {
    match blocks {
        [(l, r), rest @ ..] => *r <= ack || rest.first().is_some_and(|(l2, r2)| l >= l2 && r <= r2),
        [] => false,
    }
}

impl Connection {
    /// RFC 8985 §6.2 step 4 as Linux `tcp_rack_reo_wnd`: no window before reordering is
    /// seen once in recovery or DupThresh segments are SACKed; else min RTT / 4 per DSACK
    /// step, at most SRTT.
    fn reo_wnd(&self, recovery: i32) -> Duration {
        let r = &self.rec;
        let mss = u32::from(self.eff_mss());
        let dupthresh = recovery & RACK_NO_DUPTHRESH == 0
            && r.board.sacked_bytes() >= r.reordering.max(1) * mss;
        if !r.reord_seen && (r.ca != CaState::Open || dupthresh) {
            return Duration::ZERO;
        }
        let quarter = r.min_rtt.unwrap_or(Duration::ZERO).total_micros() / 4;
        let wnd = Duration::from_micros(quarter * u64::from(r.reo_wnd_steps.max(1)));
        self.rtt.srtt().map_or(wnd, |s| wnd.min(s))
    }

    /// The scoreboard's part of an ACK, before SND.UNA moves: DSACK, the segments
    /// delivered (whose send times give the RTT sample Linux prefers).
    pub(super) fn sack_scoreboard(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
    ) -> (Delivered, bool) {
        let all = seg.options.sack_blocks.as_slice();
        let dsack = is_dsack(all, seg.ack);
        let c = ctx.config;
        if self.rec.reordering == 0 {
            self.rec.reordering = u32::try_from(c.tcp_reordering.max(1)).unwrap_or(3);
        }
        let blocks = if dsack {
            ctx.counters.dsack_recv += 1;
            self.rec.reord_seen = true;
            if c.tcp_recovery & RACK_STATIC_REO_WND == 0 {
                self.rec.reo_wnd_steps = (self.rec.reo_wnd_steps + 1).min(MAX_REO_STEPS);
            }
            // A retransmission of this episode came back twice: one fewer to explain.
            if let Some(u) = &mut self.rec.undo {
                if all[0].0 >= u.marker {
                    u.retrans = u.retrans.saturating_sub(1);
                }
            }
            &all[1..]
        } else {
            all
        };
        let d = self
            .rec
            .board
            .on_ack(seg.ack, blocks, ctx.now, self.rec.min_rtt);
        if d.reordered {
            let mss = u32::from(self.eff_mss()).max(1);
            let max = u32::try_from(c.tcp_max_reordering.max(1)).unwrap_or(300);
            let seen = d.reorder_distance.div_ceil(mss) + 1;
            self.rec.reordering = self.rec.reordering.max(seen).min(max);
        }
        (d, dsack)
    }

    /// The rest of an ACK on the SACK path, after SND.UNA moved (if it did): the TLP
    /// episode, RACK, recovery state and the congestion window.
    pub(super) fn sack_on_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        advanced: bool,
        (d, dsack): (Delivered, bool),
    ) {
        let now = ctx.now;
        let mss = u32::from(self.eff_mss());
        self.rec.frto_new = false;
        if d.reordered && !self.rec.reord_seen {
            ctx.counters.sack_reorder += 1;
            self.rec.reord_seen = true;
        }
        // The probe's episode ends once its sequence is acknowledged; a retransmitted probe
        // that repaired a loss (no DSACK says the original arrived) halves the window.
        if let Some(h) = self.rec.tlp_high_seq {
            if dsack && self.rec.tlp_retrans {
                self.rec.tlp_high_seq = None;
            } else if seg.ack > h {
                self.rec.tlp_high_seq = None;
                if self.rec.tlp_retrans && self.rec.ca == CaState::Open {
                    ctx.counters.tlp_recovery += 1;
                    self.ssthresh = self.cc_ssthresh();
                    self.cwnd = self.ssthresh;
                }
            }
        }
        self.try_undo(ctx, seg, advanced);
        if self.rec.ca == CaState::Loss && self.rec.frto {
            self.frto(ctx, seg, advanced, &d);
        }
        // Recovery and loss end when everything outstanding at their start is acknowledged.
        if advanced && self.rec.ca != CaState::Open && self.snd_una >= self.rec.high_seq {
            if self.rec.ca == CaState::Recovery {
                self.cwnd = self.ssthresh.max(mss);
            }
            self.rec.ca = CaState::Open;
        }
        let mut newly_lost = 0;
        let dubious = self.rec.board.sacked_bytes() > 0 || self.rec.ca != CaState::Open;
        let recovery = ctx.config.tcp_recovery;
        if recovery & RACK_LOSS_DETECTION == 0 {
            // RFC 6675: DupThresh segments SACKed above a hole.
            let thresh = self.rec.reordering.max(1) * mss;
            newly_lost = self.rec.board.mark_lost_by_sacks(thresh).lost;
        } else if dubious || dsack {
            let det = self.rec.board.detect_loss(now, self.reo_wnd(recovery));
            ctx.counters.lost_retransmit += u64::from(det.lost_retransmits);
            self.timers[Timer::Rack] = det.timer;
            newly_lost = det.lost;
        } else {
            self.timers[Timer::Rack] = None;
        }
        if newly_lost > 0 && self.rec.ca == CaState::Open {
            self.enter_recovery(ctx);
        }
        let delivered = d.acked + d.sacked;
        if self.rec.ca == CaState::Recovery {
            self.prr(delivered, advanced && newly_lost == 0);
        } else if d.acked > 0 {
            self.grow_cwnd(now, d.acked);
        }
        if self.rec.frto_new && self.data_to_send().is_none() {
            // Step 2.b found nothing new to send: conventional recovery after all.
            self.rec.frto_new = false;
            self.rec.frto = false;
        }
        self.arm_tlp(now);
    }

    /// F-RTO, SACK-enhanced (RFC 5682 §3.1 as Linux `tcp_process_loss`): after an RTO, an
    /// ACK or SACK of data sent before it and never retransmitted means the timeout was
    /// spurious (step 3.b), and the window is restored. The first ACK that moves SND.UNA
    /// sends new data rather than retransmissions (step 2.b); a SACK or duplicate ACK after
    /// that says the loss was real (step 3.a), and recovery goes on as usual.
    fn frto(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, advanced: bool, d: &Delivered) {
        if d.original_end.is_some_and(|e| e <= self.rec.high_seq) {
            if let Some(u) = self.rec.undo {
                ctx.counters.loss_undo += 1;
                ctx.counters.spurious_rtos += 1;
                self.undo(u);
            }
            self.rec.frto = false;
            return;
        }
        if self.snd_nxt > self.rec.high_seq {
            let dupack = !advanced && seg.payload.is_empty() && !seg.flags.fin();
            if d.sacked > 0 || dupack {
                self.rec.frto = false;
            }
        } else if advanced && self.snd_una < self.rec.high_seq {
            self.rec.high_seq = self.snd_nxt;
            let room = self.snd_una + self.snd_wnd > self.snd_nxt;
            if self.unsent() > 0 && room {
                self.rec.frto_new = true;
            } else {
                self.rec.frto = false;
            }
        }
    }

    /// Linux `tcp_enter_recovery`: the controller's ssthresh, PRR from here.
    fn enter_recovery(&mut self, ctx: &mut Ctx<'_>) {
        ctx.counters.sack_recovery += 1;
        self.rec.undo = Some(self.undo_point());
        self.ssthresh = self.cc_ssthresh();
        self.rec.prior_cwnd = self.cwnd;
        self.rec.prr_delivered = 0;
        self.rec.prr_out = 0;
        self.rec.high_seq = self.snd_max;
        self.rec.ca = CaState::Recovery;
        self.rec.tlp_high_seq = None;
        self.timers[Timer::Tlp] = None;
    }

    fn undo_point(&self) -> Undo {
        Undo {
            marker: self.snd_una,
            retrans: 0,
            sent: 0,
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            first_tsval: None,
        }
    }

    /// Linux `tcp_try_undo_dsack`, `tcp_try_undo_recovery` and `tcp_try_undo_loss`: a
    /// recovery whose every retransmission came back as a DSACK, or an episode whose ACK
    /// echoes a timestamp older than its first retransmission (Eifel, RFC 3522: the
    /// original arrived), was spurious. Restore the window and forget the loss marks.
    fn try_undo(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, advanced: bool) {
        let Some(u) = self.rec.undo else {
            return;
        };
        if self.rec.ca == CaState::Open {
            self.rec.undo = None;
            return;
        }
        let echo = seg
            .options
            .timestamps
            .filter(|_| self.ts_enabled)
            .map(|t| t.tsecr);
        let delayed = match (u.first_tsval, echo) {
            (Some(first), Some(e)) => e != 0 && (e.wrapping_sub(first) as i32) < 0,
            _ => false,
        };
        let all_dsacked = u.sent > 0 && u.retrans == 0;
        let undo = match self.rec.ca {
            CaState::Recovery if all_dsacked => {
                ctx.counters.dsack_undo += 1;
                true
            }
            CaState::Recovery if delayed && advanced && self.snd_una >= self.rec.high_seq => {
                ctx.counters.full_undo += 1;
                true
            }
            CaState::Loss if (delayed && advanced) || all_dsacked => {
                ctx.counters.loss_undo += 1;
                ctx.counters.spurious_rtos += 1;
                true
            }
            _ => false,
        };
        if undo {
            self.undo(u);
        }
    }

    /// Linux `tcp_undo_cwnd_reduction` with the loss marks forgotten: the window as it was.
    fn undo(&mut self, u: Undo) {
        self.cwnd = self.cwnd.max(u.cwnd);
        self.ssthresh = self.ssthresh.max(u.ssthresh);
        self.rec.board.unmark_lost();
        self.rec.ca = CaState::Open;
        self.rec.undo = None;
        self.rec.frto = false;
        self.rec.frto_new = false;
    }

    /// RFC 6937 as Linux `tcp_cwnd_reduction`: while the pipe is above ssthresh send in
    /// proportion to what is delivered; below it, slow start back up (PRR-SSRB).
    fn prr(&mut self, delivered: u32, una_advanced: bool) {
        if delivered == 0 || self.rec.prior_cwnd == 0 {
            return;
        }
        let mss = u32::from(self.eff_mss());
        let r = &mut self.rec;
        r.prr_delivered = r.prr_delivered.saturating_add(delivered);
        let pipe = r.board.pipe();
        let sndcnt = prr_sndcnt(&Prr {
            prr_delivered: r.prr_delivered,
            prr_out: r.prr_out,
            delivered,
            pipe,
            ssthresh: self.ssthresh,
            prior_cwnd: r.prior_cwnd,
            mss,
            una_advanced,
        });
        self.cwnd = (u64::from(pipe) + sndcnt).min(1 << 30) as u32;
    }

    /// The controller grows the window on `acked` new bytes (open or loss state).
    pub(super) fn grow_cwnd(&mut self, now: Instant, acked: u32) {
        let mss = u32::from(self.eff_mss());
        let mut w = Window {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
        };
        let in_flight = if self.sack_ok {
            self.rec.board.pipe()
        } else {
            self.snd_max.distance_from(self.snd_una)
        };
        let sample = AckSample {
            now,
            acked,
            rtt: self.rec.last_rtt,
            min_rtt: self.rec.min_rtt,
            in_flight,
            mss,
        };
        self.cc.on_ack(&mut w, &sample);
        self.cwnd = w.cwnd.clamp(mss, 1 << 30);
        self.ssthresh = w.ssthresh;
    }

    /// The controller's slow-start threshold for a loss now.
    pub(super) fn cc_ssthresh(&mut self) -> u32 {
        let mss = u32::from(self.eff_mss());
        let w = Window {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
        };
        self.cc.ssthresh(&w, mss)
    }

    /// Arm the probe timeout (Linux `tcp_schedule_loss_probe`): in the open state with data
    /// in flight, 2 SRTT after now (plus a delayed ACK's worth when one segment is out),
    /// when that comes before the RTO.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        self.timers[Timer::Tlp] = None;
        let r = &self.rec;
        if r.ca != CaState::Open
            || r.tlp_high_seq.is_some()
            || r.tlp_pending
            || self.snd_max == self.snd_una
            || self.timers[Timer::Rack].is_some()
        {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let one = r.board.pipe() <= u32::from(self.eff_mss());
        let pto = srtt.saturating_mul(2) + if one { TLP_DELACK } else { TLP_SLACK };
        let at = now + pto;
        if self.timers[Timer::Rto].is_none_or(|rto| at < rto) {
            self.timers[Timer::Tlp] = Some(at);
        }
    }

    /// The reordering timer fired: what RACK was waiting for is lost now.
    pub(super) fn on_rack_timer(&mut self, ctx: &mut Ctx<'_>) {
        let wnd = self.reo_wnd(ctx.config.tcp_recovery);
        let det = self.rec.board.detect_loss(ctx.now, wnd);
        ctx.counters.lost_retransmit += u64::from(det.lost_retransmits);
        self.timers[Timer::Rack] = det.timer;
        if det.lost > 0 && self.rec.ca == CaState::Open {
            self.enter_recovery(ctx);
            // Nothing was delivered: the fast retransmit goes out by PRR's forced segment.
            self.cwnd = self.rec.board.pipe() + u32::from(self.eff_mss());
        }
    }

    /// An RTO on the SACK path (Linux `tcp_enter_loss`): every segment not SACKed is lost,
    /// one segment of window, resent in order as ACKs come. Returns false when the
    /// scoreboard holds nothing (the caller goes back to SND.UNA instead).
    /// `repeat`: an earlier RTO on this SND.UNA went unanswered; `frto` is `tcp_frto`.
    pub(super) fn sack_on_rto(&mut self, repeat: bool, frto: bool) -> bool {
        if self.rec.board.is_empty() {
            return false;
        }
        let mss = u32::from(self.eff_mss());
        // RFC 5682 §3.1 step 1 as Linux `tcp_enter_loss`: judge this timeout unless it
        // interrupts a recovery (a repeated timeout on the same SND.UNA is judged anew).
        self.rec.frto = frto && (self.rec.ca == CaState::Open || repeat);
        self.rec.frto_new = false;
        if self.rec.ca != CaState::Loss {
            // A recovery interrupted by the RTO keeps its undo point.
            if self.rec.ca == CaState::Open || self.rec.undo.is_none() {
                self.rec.undo = Some(self.undo_point());
            }
            self.ssthresh = self.cc_ssthresh();
        }
        self.rec.board.mark_all_lost();
        self.rec.ca = CaState::Loss;
        self.rec.high_seq = self.snd_max;
        self.rec.tlp_high_seq = None;
        self.rec.tlp_pending = false;
        self.cwnd = mss;
        self.timers[Timer::Rack] = None;
        self.timers[Timer::Tlp] = None;
        true
    }

    /// A lost segment to resend now, if the window has room (Linux
    /// `tcp_xmit_retransmit_queue`: while the pipe is below cwnd).
    pub(super) fn lost_to_resend(&self) -> Option<(SeqNumber, SeqNumber)> {
        if self.rec.frto_new {
            return None;
        }
        let s = self.rec.board.next_lost()?;
        (self.rec.board.pipe() < self.cwnd).then_some((s.start, s.end))
    }

    /// Write the retransmission of `[start, end)` (a FIN at its end included).
    pub(super) fn write_retransmission(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut Vec<u8>,
        start: SeqNumber,
        end: SeqNumber,
        probe: bool,
    ) -> usize {
        let now = ctx.now;
        let fin = self.fin_queued && end == self.fin_seq() + 1;
        let len = end.distance_from(start) - u32::from(fin);
        let off = start.distance_from(self.data_seq()) as usize;
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        // As the original: PSH on the segment that ended the data queued.
        if len > 0 && off + len as usize == self.send_buf.len() {
            flags |= TcpFlags::PSH;
        }
        let n = self.write_segment(ctx, buf, flags, start, (off, len as usize));
        ctx.counters.retrans_segs += 1;
        // Linux counts fast retransmits outside the loss state, slow-start ones in it.
        if !probe {
            if self.rec.ca == CaState::Loss {
                ctx.counters.slow_start_retrans += 1;
            } else {
                ctx.counters.fast_retrans += 1;
            }
        }
        self.rec.board.on_retransmit(start, now);
        let tsval = self.ts_now(now);
        if let Some(u) = &mut self.rec.undo {
            u.retrans += 1;
            u.sent += 1;
            u.first_tsval.get_or_insert(tsval);
        }
        if self.rec.ca == CaState::Recovery {
            self.rec.prr_out += end.distance_from(start);
        }
        self.retrans_stamp.get_or_insert(now);
        self.rtt_probe = None;
        if self.timers[Timer::Rto].is_none() {
            self.arm_rto(now, self.rtt.backed_off(self.backoff));
        }
        n
    }

    /// New data left: remember it, and count it against PRR in recovery.
    pub(super) fn sack_on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        self.rec.board.on_send(start, end, now);
        if self.rec.ca == CaState::Recovery {
            self.rec.prr_out += end.distance_from(start);
        }
    }

    /// The probe (RFC 8985 §7.3): new data if the peer's window allows one segment, else
    /// the last segment again. `None` when there is nothing to probe with.
    pub(super) fn write_probe(&mut self, ctx: &mut Ctx<'_>, buf: &mut Vec<u8>) -> Option<usize> {
        self.rec.tlp_pending = false;
        let now = ctx.now;
        let in_flight = self.snd_nxt.distance_from(self.snd_una) as usize;
        let room = (self.snd_wnd as usize).saturating_sub(in_flight);
        let len = self.unsent().min(usize::from(self.eff_mss())).min(room);
        let n = if len > 0 {
            let n = self.write_new(ctx, buf, len, false);
            self.rec.tlp_retrans = false;
            n
        } else {
            let last = *self.rec.board.last()?;
            if last.sacked {
                return None;
            }
            let n = self.write_retransmission(ctx, buf, last.start, last.end, true);
            self.rec.tlp_retrans = true;
            n
        };
        ctx.counters.tlp += 1;
        self.rec.tlp_high_seq = Some(self.snd_nxt);
        // The RTO keeps counting from the head's transmission (Linux tcp_rearm_rto offsets
        // it by the time elapsed).
        if self.timers[Timer::Rto].is_none() {
            self.arm_rto(now, self.rtt.backed_off(self.backoff));
        }
        Some(n)
    }

    /// SACK blocks for our next segment: a DSACK first, then the block holding the latest
    /// out-of-order segment, then the others from the highest down.
    pub(super) fn sack_blocks(&self, max: usize) -> SackBlocks {
        let mut blocks = SackBlocks::new();
        if let Some((l, r)) = self.rec.dsack {
            blocks.push(l, r);
        }
        // Absolute ranges, without allocating: this runs for every segment we send.
        let ranges = self.recv_buf.ooo_ranges();
        let abs = |i: usize| {
            let (s, e) = ranges[i];
            (self.rcv_nxt + s as u32, self.rcv_nxt + e as u32)
        };
        let latest = self.rec.last_ooo.and_then(|q| {
            (0..ranges.len()).find(|&i| {
                let (l, r) = abs(i);
                l <= q && q < r
            })
        });
        let others = (0..ranges.len()).rev().filter(|&i| Some(i) != latest);
        for i in latest.into_iter().chain(others) {
            if blocks.as_slice().len() >= max {
                break;
            }
            let (l, r) = abs(i);
            blocks.push(l, r);
        }
        blocks
    }

    /// A segment (or part of one) below RCV.NXT arrived again: report it in a DSACK and
    /// ACK at once.
    pub(super) fn note_duplicate(&mut self, ctx: &mut Ctx<'_>, start: SeqNumber, end: SeqNumber) {
        if !self.sack_ok || !ctx.config.tcp_dsack || end <= start {
            return;
        }
        let end = end.min(self.rcv_nxt);
        if end <= start {
            return;
        }
        ctx.counters.dsack_old_sent += 1;
        self.rec.dsack = Some((start, end));
        self.enter_quickack();
        self.ack = AckState::Now;
    }
}

#[cfg(test)]
mod tests {
    use super::is_dsack;
    use synq_wire::SeqNumber as S;

    /// RFC 6937's first example (figure 1 of §5, in segments of 1000 bytes): 20 in flight,
    /// ssthresh 10; each ACK delivers one segment. PRR sends on every other ACK, spreading
    /// the ten retransmissions and new segments over the recovery.
    #[test]
    fn prr_sends_half_as_much_as_is_delivered_above_ssthresh() {
        use super::{prr_sndcnt, Prr};
        const MSS: u32 = 1000;
        let (mut delivered, mut out, mut pipe) = (0u32, 0u32, 19 * MSS);
        let mut sent = Vec::new();
        for _ in 0..10 {
            delivered += MSS;
            let n = prr_sndcnt(&Prr {
                prr_delivered: delivered,
                prr_out: out,
                delivered: MSS,
                pipe,
                ssthresh: 10 * MSS,
                prior_cwnd: 20 * MSS,
                mss: MSS,
                una_advanced: false,
            });
            let n = (n / u64::from(MSS)) as u32;
            sent.push(n);
            out += n * MSS;
            pipe = pipe - MSS + n * MSS;
        }
        assert_eq!(sent, [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
        // Below ssthresh PRR-SSRB grows back by what was delivered plus one segment.
        let n = prr_sndcnt(&Prr {
            prr_delivered: 20 * MSS,
            prr_out: 10 * MSS,
            delivered: MSS,
            pipe: 5 * MSS,
            ssthresh: 10 * MSS,
            prior_cwnd: 20 * MSS,
            mss: MSS,
            una_advanced: true,
        });
        assert_eq!(n, u64::from(5 * MSS).min(u64::from(10 * MSS + MSS)));
    }

    #[test]
    fn dsack_blocks_per_rfc_2883() {
        // Below the cumulative ACK.
        assert!(is_dsack(&[(S(100), S(200))], S(300)));
        // Inside the second block.
        assert!(is_dsack(&[(S(500), S(600)), (S(400), S(700))], S(300)));
        // An ordinary block.
        assert!(!is_dsack(&[(S(400), S(500))], S(300)));
        assert!(!is_dsack(&[(S(400), S(500)), (S(600), S(700))], S(300)));
        assert!(!is_dsack(&[], S(300)));
    }
}
