//! The send side's memory of what is in flight, for loss recovery with SACK: one record per
//! segment sent (Linux's retransmit queue), marked SACKed, lost or retransmitted, with the
//! time it last left. On it run RACK (RFC 8985 §6, Linux `tcp_rack_detect_loss`): a segment
//! is lost when one sent after it was delivered more than an RTT plus a reordering window
//! ago; and the RFC 6675 pipe (Linux `tcp_packets_in_flight`): bytes sent and neither SACKed
//! nor lost, plus lost bytes retransmitted.
//!
//! Counts are in sequence space (a FIN counts one). SACKed ranges are never resent; a
//! retransmission that is lost again is found by the same rule (Linux `TCPLostRetransmit`).

use crate::{Duration, Instant};
use std::collections::VecDeque;
use synq_wire::SeqNumber;

/// One segment in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub(crate) start: SeqNumber,
    pub(crate) end: SeqNumber,
    /// When it last left (first transmission or latest retransmission).
    pub(crate) sent: Instant,
    /// Transmission order: many segments leave in one instant of virtual time, and RACK
    /// must still tell which left first (Linux keeps a list sorted by transmission).
    pub(crate) order: u64,
    /// Retransmissions so far.
    pub(crate) retx: u8,
    pub(crate) sacked: bool,
    /// Marked lost and not retransmitted since, or retransmitted (`retrans`) and in flight.
    pub(crate) lost: bool,
    /// A retransmission of a lost segment is in flight.
    pub(crate) retrans: bool,
}

impl Seg {
    fn len(&self) -> u32 {
        self.end.distance_from(self.start)
    }
}

/// What an ACK told the scoreboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// Sequence space newly SACKed.
    pub(crate) sacked: u32,
    /// Sequence space the cumulative ACK covered that was not SACKed before.
    pub(crate) acked: u32,
    /// A segment delivered by this ACK had been retransmitted.
    pub(crate) retransmitted: bool,
    /// A segment never retransmitted was delivered below data SACKed before: the path
    /// reorders (Linux `tcp_check_sack_reordering`), by this much sequence space at most.
    pub(crate) reordered: bool,
    pub(crate) reorder_distance: u32,
    /// The most recently sent segment this ACK delivered (acknowledged or SACKed): its
    /// last send time and whether it had been retransmitted. The RTT sample starts there,
    /// as QUIC's largest-acknowledged rule (RFC 9002 §5.1), not Linux's oldest-acknowledged
    /// one: a segment whose SACKs were all lost waited behind a hole, and its age is not a
    /// round trip.
    pub(crate) newest: Option<(Instant, bool)>,
    /// The highest end of a delivered segment that was never retransmitted (Linux
    /// `FLAG_ORIG_SACK_ACKED` compares it with `high_seq`): after an RTO it says the
    /// original data was arriving all along (F-RTO, RFC 5682 §3.1 step 3.b).
    pub(crate) original_end: Option<SeqNumber>,
}

/// RACK's most recently delivered segment (RFC 8985 `RACK.xmit_ts`, `RACK.end_seq`,
/// `RACK.rtt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rack {
    pub(crate) xmit: Option<Instant>,
    /// Transmission order of that segment.
    pub(crate) order: u64,
    pub(crate) rtt: Duration,
}

/// Outcome of a RACK pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Detected {
    /// Sequence space newly marked lost.
    pub(crate) lost: u32,
    /// Retransmissions found lost again.
    pub(crate) lost_retransmits: u32,
    /// When the earliest segment not yet lost would be (the reordering timer).
    pub(crate) timer: Option<Instant>,
}

/// The retransmit queue.
#[derive(Debug, Default)]
pub(crate) struct Scoreboard {
    segs: VecDeque<Seg>,
    sacked: u32,
    /// Lost and not retransmitted.
    lost: u32,
    /// Lost and retransmitted, in flight.
    retrans: u32,
    /// Sequence space of every segment held.
    total: u32,
    /// Highest end of data ever SACKed.
    fack: Option<SeqNumber>,
    /// Transmissions so far (the next one's order).
    sends: u64,
    pub(crate) rack: Rack,
}

impl Scoreboard {
    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Bytes SACKed above the cumulative ACK.
    pub(crate) fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// Bytes marked lost and waiting for their retransmission.
    #[cfg(test)]
    pub(crate) fn lost_bytes(&self) -> u32 {
        self.lost
    }

    /// RFC 6675 pipe: sent and neither SACKed nor lost, plus retransmissions in flight.
    pub(crate) fn pipe(&self) -> u32 {
        self.total - self.sacked - self.lost
    }

    /// The last segment held, if any.
    pub(crate) fn last(&self) -> Option<&Seg> {
        self.segs.back()
    }

    /// A new segment `[start, end)` left at `now` (it follows the last one held).
    pub(crate) fn on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        if end <= start {
            return;
        }
        if let Some(last) = self.segs.back() {
            if start < last.end {
                return;
            }
        }
        self.total += end.distance_from(start);
        self.sends += 1;
        self.segs.push_back(Seg {
            start,
            end,
            sent: now,
            order: self.sends,
            retx: 0,
            sacked: false,
            lost: false,
            retrans: false,
        });
    }

    /// Index of the segment holding `seq`.
    fn find(&self, seq: SeqNumber) -> Option<usize> {
        let i = self.segs.partition_point(|s| s.end <= seq);
        (i < self.segs.len() && self.segs[i].start <= seq).then_some(i)
    }

    /// The first lost segment not yet retransmitted (lowest sequence first).
    pub(crate) fn next_lost(&self) -> Option<Seg> {
        if self.lost == 0 {
            return None;
        }
        self.segs.iter().find(|s| s.lost && !s.retrans).copied()
    }

    /// The segment starting at `start` was sent again at `now`.
    pub(crate) fn on_retransmit(&mut self, start: SeqNumber, now: Instant) {
        let Some(i) = self.find(start) else {
            return;
        };
        self.sends += 1;
        let s = &mut self.segs[i];
        s.sent = now;
        s.order = self.sends;
        s.retx = s.retx.saturating_add(1);
        if s.lost && !s.retrans {
            s.retrans = true;
            let len = s.len();
            self.lost -= len;
            self.retrans += len;
        }
    }

    /// Drop the flags' share of `s` from the counts.
    fn uncount(&mut self, s: &Seg, len: u32) {
        if s.sacked {
            self.sacked -= len;
        } else if s.lost && s.retrans {
            self.retrans -= len;
        } else if s.lost {
            self.lost -= len;
        }
        self.total -= len;
    }

    /// A cumulative ACK up to `ack` and SACK blocks at `now`. Updates RACK from the segments
    /// delivered (skipping a retransmission acknowledged faster than `min_rtt`, which the
    /// original more likely earned).
    pub(crate) fn on_ack(
        &mut self,
        ack: SeqNumber,
        blocks: &[(SeqNumber, SeqNumber)],
        now: Instant,
        min_rtt: Option<Duration>,
    ) -> Delivered {
        if self.segs.is_empty() {
            // Nothing in flight: the peer's data segments on a receiving connection.
            return Delivered::default();
        }
        if blocks.is_empty() {
            if let Some(d) = self.on_plain_ack(ack, now) {
                return d;
            }
        }
        let mut d = Delivered::default();
        let mut newest: Option<Seg> = None;
        let mut latest: Option<Seg> = None;
        let fack = self.fack;
        let mut note = |s: &Seg, d: &mut Delivered| {
            if latest.is_none_or(|l| s.order > l.order) {
                latest = Some(*s);
            }
            d.retransmitted |= s.retx > 0;
            if s.retx == 0 {
                d.original_end = Some(d.original_end.map_or(s.end, |e| e.max(s.end)));
            }
            if let Some(f) = fack.filter(|&f| s.retx == 0 && s.end < f) {
                d.reordered = true;
                d.reorder_distance = d.reorder_distance.max(f.distance_from(s.start));
            }
            let trusted = s.retx == 0 || min_rtt.is_none_or(|m| now - s.sent >= m);
            let later = newest.is_none_or(|n| s.order > n.order);
            if trusted && later {
                newest = Some(*s);
            }
        };
        while let Some(&s) = self.segs.front() {
            if s.end <= ack {
                if !s.sacked {
                    d.acked += s.len();
                    note(&s, &mut d);
                }
                self.uncount(&s, s.len());
                self.segs.pop_front();
            } else if s.start < ack {
                // Partly acknowledged: keep the rest.
                let cut = ack.distance_from(s.start);
                if !s.sacked {
                    d.acked += cut;
                }
                self.uncount(&s, cut);
                self.segs[0].start = ack;
                break;
            } else {
                break;
            }
        }
        for &(left, right) in blocks {
            if right <= ack || right <= left {
                continue;
            }
            let mut i = self.segs.partition_point(|s| s.end <= left);
            while i < self.segs.len() && self.segs[i].end <= right {
                let s = self.segs[i];
                if s.start >= left && !s.sacked {
                    self.uncount(&s, s.len());
                    self.total += s.len();
                    self.sacked += s.len();
                    let seg = &mut self.segs[i];
                    seg.sacked = true;
                    seg.lost = false;
                    seg.retrans = false;
                    d.sacked += s.len();
                    note(&s, &mut d);
                    self.fack = Some(self.fack.map_or(s.end, |f| f.max(s.end)));
                }
                i += 1;
            }
        }
        // The newest delivered (by transmission order), whatever its retransmissions.
        if let Some(s) = latest {
            d.newest = Some((s.sent, s.retx > 0));
        }
        if let Some(s) = newest {
            if self.rack.xmit.is_none() || s.order > self.rack.order {
                self.rack = Rack {
                    xmit: Some(s.sent),
                    order: s.order,
                    rtt: now - s.sent,
                };
            }
        }
        d
    }

    /// The common ACK on a clean path: no SACK blocks, nothing SACKed above, and every
    /// segment it covers whole sent once. Then the last one covered is both the newest
    /// delivered and RACK's, and nothing was reordered. `None` when the ACK is not that
    /// simple (the general walk in `on_ack` handles it).
    fn on_plain_ack(&mut self, ack: SeqNumber, now: Instant) -> Option<Delivered> {
        if self.sacked != 0 || self.fack.is_some_and(|f| f > ack) {
            return None;
        }
        let mut last = None;
        for s in &self.segs {
            if s.end > ack {
                if s.start < ack {
                    return None;
                }
                break;
            }
            if s.retx > 0 || s.lost {
                return None;
            }
            last = Some(*s);
        }
        let last = last?;
        let acked = last.end.distance_from(self.segs.front()?.start);
        self.total -= acked;
        while self.segs.front().is_some_and(|s| s.end <= ack) {
            self.segs.pop_front();
        }
        if self.rack.xmit.is_none() || last.order > self.rack.order {
            self.rack = Rack {
                xmit: Some(last.sent),
                order: last.order,
                rtt: now - last.sent,
            };
        }
        Some(Delivered {
            acked,
            newest: Some((last.sent, false)),
            original_end: Some(last.end),
            ..Delivered::default()
        })
    }

    /// RACK (RFC 8985 §6.2 step 5): mark lost every segment not SACKed that was sent before
    /// the most recently delivered one and has waited `RACK.rtt + reo_wnd` since.
    pub(crate) fn detect_loss(&mut self, now: Instant, reo_wnd: Duration) -> Detected {
        let mut out = Detected::default();
        if self.rack.xmit.is_none() {
            return out;
        }
        let wait = self.rack.rtt + reo_wnd;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.sacked || (s.lost && !s.retrans) {
                continue;
            }
            if s.order >= self.rack.order {
                continue;
            }
            let at = s.sent + wait;
            if at <= now {
                let len = s.len();
                if s.retrans {
                    // Its retransmission is lost too (Linux TCPLostRetransmit).
                    self.retrans -= len;
                    out.lost_retransmits += 1;
                }
                self.lost += len;
                out.lost += len;
                let seg = &mut self.segs[i];
                seg.lost = true;
                seg.retrans = false;
            } else {
                out.timer = Some(out.timer.map_or(at, |t: Instant| t.min(at)));
            }
        }
        out
    }

    /// RFC 6675 `IsLost` (Linux without RACK, `tcp_recovery` = 0): a segment with at least
    /// `thresh` sequence space SACKed above it is lost.
    pub(crate) fn mark_lost_by_sacks(&mut self, thresh: u32) -> Detected {
        let mut out = Detected::default();
        let mut above = 0u32;
        for i in (0..self.segs.len()).rev() {
            let s = self.segs[i];
            if s.sacked {
                above += s.len();
                continue;
            }
            if above >= thresh && !s.lost {
                let len = s.len();
                self.lost += len;
                out.lost += len;
                self.segs[i].lost = true;
            }
        }
        out
    }

    /// Undo (a spurious recovery or RTO): what was marked lost and not yet resent is in
    /// flight after all.
    pub(crate) fn unmark_lost(&mut self) {
        for s in self.segs.iter_mut() {
            if s.lost && !s.retrans && !s.sacked {
                s.lost = false;
                self.lost -= s.end.distance_from(s.start);
            }
        }
    }

    /// An RTO: every segment not SACKed is lost (Linux `tcp_enter_loss`), retransmissions
    /// in flight included. Returns the sequence space marked.
    pub(crate) fn mark_all_lost(&mut self) -> u32 {
        let mut marked = 0;
        for s in self.segs.iter_mut() {
            if s.sacked || (s.lost && !s.retrans) {
                continue;
            }
            let len = s.end.distance_from(s.start);
            if s.retrans {
                self.retrans -= len;
            }
            self.lost += len;
            marked += len;
            s.lost = true;
            s.retrans = false;
        }
        marked
    }

    /// Every segment held.
    #[cfg(test)]
    pub(crate) fn segs(&self) -> Vec<Seg> {
        self.segs.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }
    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    /// Ten segments of 100, sent 1 ms apart from t=0.
    fn ten() -> Scoreboard {
        let mut b = Scoreboard::default();
        for i in 0..10 {
            b.on_send(s(i * 100), s(i * 100 + 100), t(u64::from(i)));
        }
        b
    }

    #[test]
    fn cumulative_and_partial_acks_shrink_the_queue() {
        let mut b = ten();
        assert_eq!(b.pipe(), 1000);
        let d = b.on_ack(s(250), &[], t(20), None);
        assert_eq!(d.acked, 250);
        assert_eq!(b.segs()[0].start, s(250));
        assert_eq!(b.pipe(), 750);
        // RACK learns the newest segment delivered whole (as Linux, which advances RACK
        // only for segments fully acknowledged): the one sent at 1 ms, 19 ms ago.
        assert_eq!(b.rack.xmit, Some(t(1)));
        assert_eq!(b.rack.rtt, Duration::from_millis(19));
    }

    #[test]
    fn sacked_ranges_leave_the_pipe_and_are_never_lost() {
        let mut b = ten();
        // Segments 0 and 1 lost; 2..=5 SACKed at 10 ms.
        let d = b.on_ack(s(0), &[(s(200), s(600))], t(10), None);
        assert_eq!(d.sacked, 400);
        assert_eq!(b.sacked_bytes(), 400);
        assert_eq!(b.pipe(), 600);
        assert_eq!(b.rack.xmit, Some(t(5)));
        // No reordering window: 0 and 1 were sent before 5 and an RTT (5 ms) has passed.
        let lost = b.detect_loss(t(10), Duration::ZERO);
        assert_eq!(lost.lost, 200);
        assert_eq!(b.lost_bytes(), 200);
        assert_eq!(b.pipe(), 400);
        // 6..=9 were sent after the newest delivered: not lost.
        assert!(b.segs()[6..].iter().all(|s| !s.lost));
        assert_eq!(b.next_lost().map(|s| s.start), Some(s(0)));
        b.on_retransmit(s(0), t(11));
        assert_eq!(b.next_lost().map(|s| s.start), Some(s(100)));
        assert_eq!(b.pipe(), 500);
        // A later SACK of a lost segment clears it.
        b.on_ack(s(0), &[(s(100), s(200))], t(12), None);
        assert_eq!(b.next_lost(), None);
        assert_eq!(b.lost_bytes(), 0);
        // In flight: the retransmission of 0 and segments 6..=9.
        assert_eq!(b.pipe(), 500);
    }

    #[test]
    fn the_reordering_window_defers_the_verdict_to_a_timer() {
        let mut b = ten();
        b.on_ack(s(0), &[(s(300), s(400))], t(10), None);
        // RACK.rtt = 10 - 3 = 7 ms; with a 4 ms window segment 0 (sent at 0) is lost at 11.
        let d = b.detect_loss(t(10), Duration::from_millis(4));
        assert_eq!(d.lost, 0);
        assert_eq!(d.timer, Some(t(11)));
        let d = b.detect_loss(t(11), Duration::from_millis(4));
        assert_eq!(d.lost, 100);
        assert_eq!(d.timer, Some(t(12)));
    }

    #[test]
    fn a_lost_retransmission_is_found_again() {
        let mut b = ten();
        b.on_ack(s(0), &[(s(100), s(200))], t(10), None);
        assert_eq!(b.detect_loss(t(10), Duration::ZERO).lost, 100);
        b.on_retransmit(s(0), t(10));
        // Segments sent after the retransmission are SACKed 20 ms later: it was lost too.
        b.on_send(s(1000), s(1100), t(11));
        b.on_ack(s(0), &[(s(1000), s(1100))], t(30), None);
        let d = b.detect_loss(t(30), Duration::ZERO);
        assert_eq!(d.lost_retransmits, 1);
        assert_eq!(b.next_lost().map(|s| s.start), Some(s(0)));
    }

    #[test]
    fn an_rto_marks_everything_not_sacked() {
        let mut b = ten();
        b.on_ack(s(0), &[(s(500), s(700))], t(10), None);
        assert_eq!(b.mark_all_lost(), 800);
        assert_eq!(b.pipe(), 0);
        let order: Vec<u32> = std::iter::from_fn(|| {
            let n = b.next_lost()?;
            b.on_retransmit(n.start, t(20));
            Some(n.start.0)
        })
        .collect();
        assert_eq!(order, [0, 100, 200, 300, 400, 700, 800, 900]);
        assert_eq!(b.pipe(), 800);
    }

    #[test]
    fn dupthresh_marks_below_three_sacked_segments_and_undo_clears() {
        let mut b = ten();
        b.on_ack(s(0), &[(s(200), s(400)), (s(500), s(600))], t(10), None);
        // 300 SACKed above 0 and 100, 100 above 400: only 0 and 100 are lost.
        let d = b.mark_lost_by_sacks(300);
        assert_eq!(d.lost, 200);
        assert_eq!(b.next_lost().map(|x| x.start), Some(s(0)));
        b.unmark_lost();
        assert_eq!(b.next_lost(), None);
        assert_eq!(b.pipe(), 700);
    }

    #[test]
    fn late_original_below_sacked_data_is_reordering() {
        let mut b = ten();
        let d = b.on_ack(s(0), &[(s(300), s(500))], t(10), None);
        assert!(!d.reordered);
        // Segment 1 arrives late and is SACKed below 500 without a retransmission.
        let d = b.on_ack(s(0), &[(s(100), s(200)), (s(300), s(500))], t(11), None);
        assert!(d.reordered);
        assert_eq!(d.reorder_distance, 400);
    }

    #[test]
    fn a_fast_ack_of_a_retransmission_does_not_teach_rack() {
        let mut b = ten();
        b.on_ack(s(0), &[(s(100), s(200))], t(10), None);
        b.detect_loss(t(10), Duration::ZERO);
        b.on_retransmit(s(0), t(10));
        let before = b.rack;
        // Acked 1 ms after the retransmission, with min RTT 5 ms: the original's ACK.
        b.on_ack(s(100), &[], t(11), Some(Duration::from_millis(5)));
        assert_eq!(b.rack, before);
    }

    /// Random ACKs, SACK blocks, RACK passes, RTOs and resends keep the counts equal to
    /// the flags, and a segment once SACKed is never offered for resending.
    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Send(u8),
            Ack(u16, Vec<(u16, u16)>),
            Detect(u8),
            Rto,
            Resend,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (1u8..4).prop_map(Op::Send),
                (
                    0u16..3000,
                    proptest::collection::vec((0u16..3000, 1u16..400), 0..4)
                )
                    .prop_map(|(a, b)| Op::Ack(a, b)),
                (0u8..20).prop_map(Op::Detect),
                Just(Op::Rto),
                Just(Op::Resend),
            ]
        }

        proptest! {
            #[test]
            fn counts_match_flags_and_sacked_data_is_never_resent(ops in proptest::collection::vec(op(), 1..80)) {
                let mut b = Scoreboard::default();
                let mut next = 0u32;
                let mut ack = 0u32;
                let mut clock = 0u64;
                let mut sacked_ever: Vec<(u32, u32)> = Vec::new();
                for o in ops {
                    clock += 1;
                    let now = t(clock);
                    match o {
                        Op::Send(n) => {
                            for _ in 0..n {
                                b.on_send(s(next), s(next + 100), now);
                                next += 100;
                            }
                        }
                        Op::Ack(a, blocks) => {
                            ack = ack.max(u32::from(a).min(next));
                            let blocks: Vec<(SeqNumber, SeqNumber)> = blocks
                                .iter()
                                .map(|&(l, len)| {
                                    let l = u32::from(l).min(next);
                                    (s(l), s((l + u32::from(len)).min(next)))
                                })
                                .collect();
                            let before: Vec<Seg> = b.segs();
                            b.on_ack(s(ack), &blocks, now, None);
                            for x in before {
                                let inside = blocks.iter().any(|&(l, r)| l <= x.start && x.end <= r);
                                if inside && x.end > s(ack) {
                                    sacked_ever.push((x.start.0, x.end.0));
                                }
                            }
                        }
                        Op::Detect(w) => {
                            b.detect_loss(now, Duration::from_millis(u64::from(w)));
                        }
                        Op::Rto => {
                            b.mark_all_lost();
                        }
                        Op::Resend => {
                            if let Some(x) = b.next_lost() {
                                prop_assert!(!sacked_ever.iter().any(|&(l, r)| l <= x.start.0 && x.end.0 <= r),
                                    "resending SACKed {:?}", x);
                                b.on_retransmit(x.start, now);
                            }
                        }
                    }
                    let segs = b.segs();
                    let len = |x: &Seg| x.end.distance_from(x.start);
                    let total: u32 = segs.iter().map(len).sum();
                    let sacked: u32 = segs.iter().filter(|x| x.sacked).map(len).sum();
                    let lost: u32 = segs.iter().filter(|x| x.lost && !x.retrans && !x.sacked).map(len).sum();
                    prop_assert_eq!(b.sacked_bytes(), sacked);
                    prop_assert_eq!(b.lost_bytes(), lost);
                    prop_assert_eq!(b.pipe(), total - sacked - lost);
                    prop_assert!(segs.windows(2).all(|w| w[0].end <= w[1].start));
                    prop_assert!(segs.first().is_none_or(|x| x.start >= s(ack)));
                }
            }
        }
    }
}
