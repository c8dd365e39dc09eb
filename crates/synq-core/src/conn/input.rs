//! Segment arrival: the SYN-SENT and TIME_WAIT special cases, RFC 9293's acceptability
//! and RFC 5961's checks, ACK processing (NewReno here; the SACK path in `sack.rs`) and
//! payload, FIN and DSACK on the receive side.

use super::*;

impl Connection {
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    pub(super) fn rate_limited(&mut self, ctx: &Ctx<'_>) -> bool {
        let gap = Duration::from_millis(u64::from(ctx.config.tcp_invalid_ratelimit_ms));
        match self.last_oow_ack {
            Some(t) if ctx.now < t + gap => true,
            _ => {
                self.last_oow_ack = Some(ctx.now);
                false
            }
        }
    }

    /// RFC 5961 challenge ACK, rate-limited per connection and then host-wide
    /// (`tcp_challenge_ack_limit`) as Linux does.
    pub(super) fn challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.rate_limited(ctx) {
            ctx.counters.ack_skipped_challenge += 1;
        } else if !ctx
            .challenge
            .take(ctx.now, ctx.config.tcp_challenge_ack_limit)
        {
            ctx.counters.challenge_ack_limited += 1;
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

    pub(super) fn on_syn_sent(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
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
            rcvbuf: None,
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
            // A SYN resend the timer queued and no poll sent yet (snd_nxt back at ISS) is
            // moot: the SYN is acknowledged, and sending goes on from after it.
            self.snd_nxt = self.snd_nxt.max(self.snd_una);
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

    pub(super) fn on_time_wait(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
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
    pub(super) fn paws_reject(&self, ctx: &Ctx<'_>, seg: &TcpRepr<'_>) -> bool {
        let Some(ts) = seg.options.timestamps.filter(|_| self.ts_enabled) else {
            return false;
        };
        !seg.flags.rst()
            && (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0
            && ctx.now.saturating_since(self.ts_recent_stamp) < PAWS_IDLE
    }

    /// Record the peer's timestamp before ACK processing (RFC 7323 §4.3 rule 2: the segment
    /// starts at or before Last.ACK.sent; PAWS already dropped older TSvals).
    pub(super) fn record_ts_recent(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        if let Some(ts) = seg.options.timestamps.filter(|_| self.ts_enabled) {
            if seg.seq <= self.last_ack_sent {
                self.ts_recent = ts.tsval;
                self.ts_recent_stamp = now;
            }
        }
    }

    /// RFC 9293 §3.10.7.4 acceptability test against the window we advertised.
    pub(super) fn acceptable(&self, seg: &TcpRepr<'_>) -> bool {
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

    pub(super) fn on_synchronized(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
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
        // challenge ACK (a BSD stack with insecure_rst takes any in-window RST).
        if seg.flags.rst() {
            let insecure = ctx.config.bsd_insecure_rst && ctx.config.model.bsd_wire();
            if seg.seq != self.rcv_nxt && !insecure {
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
    pub(super) fn process_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
    ) -> Option<Disposition> {
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
        // A receiver's view: nothing of ours in flight and no SACK news. The scoreboard has
        // nothing to learn from such an ACK.
        let idle = !advanced && self.snd_max == self.snd_una && seg.options.sack_blocks.is_empty();
        let board = (self.sack_ok && self.state.is_synchronized() && !idle)
            .then(|| self.sack_scoreboard(ctx, seg));
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
    pub(super) fn rtt_sample(&mut self, s: Duration, precise: bool) {
        self.rec.last_rtt = Some(s);
        self.rtt.sample(s);
        if precise {
            self.rec.min_rtt = Some(self.rec.min_rtt.map_or(s, |m| m.min(s)));
        }
    }

    /// `newest`: on the SACK path, the newest segment this ACK delivered (its send time,
    /// and whether it was a retransmission).
    pub(super) fn on_new_ack(
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

    pub(super) fn on_dupack(&mut self, ctx: &mut Ctx<'_>) {
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
    pub(super) fn retransmit_head(&mut self) {
        self.retx_head = true;
        self.rtt_probe = None;
    }

    /// Payload and FIN of an acceptable segment.
    pub(super) fn process_payload(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
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
            // In-order data that covers out-of-order data already held: Linux
            // `tcp_ofo_queue` reports the first such range in a DSACK.
            let dsack = if off == 0 && self.sack_ok && ctx.config.tcp_dsack {
                let end = data.len();
                self.recv_buf
                    .ooo_ranges()
                    .iter()
                    .find(|&&(s, _)| s < end)
                    .map(|&(s, e)| (seq + s as u32, seq + e.min(end) as u32))
            } else {
                None
            };
            match self.recv_buf.write_at(off, data) {
                Written::InOrder(n) => {
                    if let Some(d) = dsack {
                        self.rec.dsack = Some(d);
                    }
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
                    // Keep the FIN for when the hole fills (Linux queues it with the data).
                    if fin {
                        self.ooo_fin = Some(seq + data.len() as u32);
                    }
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
        if fin && data.is_empty() && seq > self.rcv_nxt && self.state.can_recv() {
            // A bare FIN beyond a hole: it counts once the hole fills.
            self.ooo_fin = Some(seq);
            self.ack = AckState::Now;
        }
        let fin_now =
            (fin && seq + data.len() as u32 == self.rcv_nxt) || self.ooo_fin == Some(self.rcv_nxt);
        if fin_now && !self.fin_received {
            self.ooo_fin = None;
            self.fin_received = true;
            self.rcv_nxt += 1;
            self.events |= ev::READABLE;
            // Linux tcp_fin: tcp_sack_reset, so no DSACK rides on the FIN's ACK.
            self.rec.dsack = None;
            if self.state == State::Established {
                // Linux tcp_fin: CLOSE_WAIT enters ping-pong mode, so the FIN's ACK waits
                // for the delayed-ACK timer (or for the application's reply or close).
                self.enter_pingpong();
                if self.ack != AckState::Now {
                    self.ack = AckState::None;
                    self.schedule_ack(ctx.now, false);
                }
            } else {
                self.ack = AckState::Now;
            }
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

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers.clear();
        self.timers[Timer::Close] = Some(now + TIME_WAIT_LEN);
        self.events |= ev::CLOSED;
    }

    /// Sequence number our FIN occupies (after all buffered data).
    pub(super) fn fin_seq(&self) -> SeqNumber {
        self.data_seq() + self.send_buf.len() as u32
    }

    /// Sequence number of the first byte in the send buffer.
    pub(super) fn data_seq(&self) -> SeqNumber {
        if self.snd_una == self.iss {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    pub(super) fn unsent(&self) -> usize {
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
    TcpRepr::header(seg.dst_port, seg.src_port, seq, ack, flags)
}
