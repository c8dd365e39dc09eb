//! Timer expiries: retransmission (with the SACK path's RTO in `sack.rs`), zero-window
//! probes, keepalives, TIME_WAIT and FIN_WAIT_2.

use super::*;

impl Connection {
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
    pub(super) fn on_keepalive(&mut self, ctx: &mut Ctx<'_>) {
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

    pub(super) fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
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
                let repeat = self.retries > 0;
                self.retries += 1;
                self.backoff += 1;
                self.rtt_probe = None;
                if self.sack_ok && self.sack_on_rto(repeat, ctx.config.tcp_frto != 0) {
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
    pub(super) fn fin_time(&self, config: &Config) -> Duration {
        let rto = self.rtt.backed_off(self.backoff);
        let floor = rto.saturating_mul(4) - Duration::from_micros(rto.total_micros() / 2);
        let secs = u64::try_from(config.tcp_fin_timeout).unwrap_or(0);
        Duration::from_secs(secs).max(floor)
    }

    pub(super) fn timed_out(&self, now: Instant, boundary: u32, base: Duration) -> bool {
        self.retrans_stamp
            .is_some_and(|t| now.saturating_since(t) >= model_timeout(boundary, base))
    }

    pub(super) fn arm_rto(&mut self, now: Instant, after: Duration) {
        self.timers[Timer::Rto] = Some(now + after);
        self.rto_armed_at = now;
    }

    pub(super) fn on_persist(&mut self, ctx: &mut Ctx<'_>) {
        if !self.state.is_synchronized() || self.snd_wnd > 0 || self.unsent() == 0 {
            return;
        }
        ctx.counters.win_probes += 1;
        self.backoff += 1;
        // A probe is an ACK with an old sequence number: the peer answers with its window.
        self.ack = AckState::Now;
        self.probe_pending = true;
    }
}
