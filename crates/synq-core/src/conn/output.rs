//! What to send next: RST, SYN, retransmissions (the scoreboard's, a probe, NewReno's
//! head), new data under Nagle and the windows, zero-window probes and pure ACKs.

use super::*;

impl Connection {
    /// Anything for `poll_transmit`? (Cheap; the stack keeps a ready list with it.)
    pub(crate) fn wants_transmit(&self) -> bool {
        if self.rst_pending {
            return true;
        }
        // Exactly what `poll_transmit` sends in these states: the SYN or SYN-ACK (again) and,
        // in SYN-RECEIVED, an ACK. Anything else left over (segments marked lost when an RST
        // closed the connection mid-recovery, say) must not count, or the stack's transmit
        // loop would ask this connection forever.
        if matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Closed | State::Listen
        ) {
            return (self.state != State::Closed
                && self.state != State::Listen
                && self.snd_nxt == self.iss)
                || (self.state == State::SynReceived && self.ack == AckState::Now);
        }
        if self.ack == AckState::Now || self.retx_head || self.probe_pending {
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
    pub(super) fn data_to_send(&self) -> Option<(usize, bool)> {
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
        // RFC 1122 4.2.3.4 SWS avoidance and RFC 896 Nagle (Linux: Minshall's variant).
        let short_in_flight = self.snd_sml > self.snd_una && self.snd_sml <= self.snd_nxt;
        let ok = len == mss
            || fin
            || (len == unsent
                && (in_flight == 0 || self.nodelay || (self.minshall && !short_in_flight)))
            || (in_flight == 0 && (len == usable || len >= (self.max_snd_wnd as usize / 2).max(1)));
        ok.then_some((len, fin))
    }

    /// Free space to advertise from.
    pub(super) fn adv_space(&self) -> usize {
        self.rcv_space.saturating_sub(self.recv_buf.len())
    }

    /// Our receive window for the next segment, never shrinking the right edge
    /// (RFC 9293 §3.8.6.2.2). A window rounded up to the scale stays within the buffer's slack.
    pub(super) fn advertise(&mut self) -> u16 {
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

    pub(super) fn options(&self, now: Instant, syn: bool, config: &Config) -> TcpOptions {
        let mut o = TcpOptions::default();
        if syn {
            // A BSD stack lays out its SYN options as FreeBSD's `tcp_addoptions` does.
            o.bsd_layout = config.model.bsd_wire();
            o.mss = Some(mss_for(&self.tuple, config));
            let offer = self.state == State::SynSent;
            if config.tcp_window_scaling && (offer || self.snd_wscale > 0 || self.rcv_wscale > 0) {
                o.window_scale = Some(self.rcv_wscale);
            }
            o.sack_permitted = config.tcp_sack && (offer || self.sack_ok);
            if config.tcp_timestamps.on() && (offer || self.ts_enabled) {
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

    pub(super) fn write_segment(
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
            window,
            options,
            payload: self.send_buf.slice(payload.0, payload.1),
            ..self.tuple.segment(seq, ack, flags)
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
    pub(super) fn write_new(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut Vec<u8>,
        len: usize,
        fin: bool,
    ) -> usize {
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
            if len < usize::from(self.eff_mss()) {
                self.snd_sml = seq + len as u32;
            }
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
    pub(super) fn arm_persist(&mut self, now: Instant) {
        let stalled = self.snd_wnd == 0 && self.unsent() > 0 && self.snd_nxt == self.snd_una;
        if stalled && self.timers[Timer::Rto].is_none() && self.timers[Timer::Persist].is_none() {
            self.timers[Timer::Persist] = Some(now + self.rtt.backed_off(self.backoff));
        }
    }

    // ---- introspection ----

    /// An RTT sample was taken (Linux saves tcp_metrics only then).
    pub(crate) fn has_rtt(&self) -> bool {
        self.rtt.srtt().is_some()
    }

    /// Snapshot for tests, `ss`-like views and the simulator.
    pub(crate) fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            tuple: self.tuple,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            snd_wnd: self.snd_wnd,
            max_snd_wnd: self.max_snd_wnd,
            rcv_wnd: self.rcv_adv.distance_from(self.rcv_nxt).min(1 << 30),
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
