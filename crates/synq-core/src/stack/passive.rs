//! The passive side: SYNs to listeners, half-open requests, SYN cookies and the accept
//! queue, following Linux `tcp_conn_request`, `tcp_check_req`, `reqsk_timer_handler` and
//! `cookie_v4_check`, with the single-queue models plugged in where they differ.

use super::{ListenerHandle, Owner, Slot, Stack};
use crate::conn::{self, rst_reply, Connection, Negotiated};
use crate::cookie;
use crate::hash::FourTuple;
use crate::listener::{
    defer_retrans_to_secs, defer_secs_to_retrans, request_rto, Model, BSD_KEEP_INIT,
};
use crate::request::{NewRequest, ReqId, Request};
use crate::slab::Key;
use crate::{Duration, Instant};
use core::net::{IpAddr, SocketAddr};
use rand_chacha::rand_core::RngCore;
use synq_wire::{IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr, Timestamps};

/// A half-open request, as `ss -nt state syn-recv` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SynRecvInfo {
    /// Our address.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
    /// SYN-ACK retransmissions by the timer (`/proc/net/tcp` `retrnsmt`).
    pub retransmits: u8,
}

/// What a SYN-ACK carries.
struct SynAck {
    tuple: FourTuple,
    /// The MSS we advertise (the route's, clamped by the listener's TCP_MAXSEG).
    mss: u16,
    /// The listener's receive space and window scale (see `listener_rcv`).
    rcv: (u32, u8),
    iss: SeqNumber,
    irs: SeqNumber,
    wscale: bool,
    sack: bool,
    /// (our TSval before the per-peer offset, TSecr).
    ts: Option<(u32, u32)>,
}

/// Linux SOCK_MIN_RCVBUF on 64-bit (2 x (2048 + the sk_buff's aligned size)).
const SOCK_MIN_RCVBUF: u32 = 4608;

/// A request's receive window for an advertised MSS (less 12 with timestamps): Linux 6.x
/// `tcp_openreq_init_rwin`, the listener's receive space (half its buffer: the default
/// scaling ratio) in whole segments. The SYN-ACK's own field carries at most 65535 of it (it is never scaled).
pub(super) fn synack_window(space: u32, adv_mss: u16, ts: bool) -> u32 {
    let mss = adv_mss - if ts { 12 } else { 0 };
    let m = u32::from(mss).max(1);
    if space > m {
        space / m * m
    } else {
        space
    }
}

impl Stack {
    fn addr_index(&self, ip: IpAddr) -> Option<u16> {
        self.addrs.iter().position(|a| *a == ip).map(|i| i as u16)
    }

    pub(super) fn find_request(&self, tuple: &FourTuple) -> Option<ReqId> {
        let li = self.addr_index(tuple.local.ip())?;
        self.requests.find(li, tuple)
    }

    /// A segment for a listener with no matching request or connection.
    pub(super) fn on_listener_segment(
        &mut self,
        now: Instant,
        lkey: Key,
        tuple: FourTuple,
        ip: IpRepr,
        seg: &TcpRepr<'_>,
        tw_reopen: bool,
    ) {
        if seg.flags.rst() {
            return;
        }
        if seg.flags.ack() {
            // Linux tcp_v4_cookie_check runs first; whatever it rejects meets an RST.
            if !seg.flags.syn() && self.cookie_ack(now, lkey, tuple, seg) {
                return;
            }
            return self.queue_control(ip, rst_reply(seg), true);
        }
        if !seg.flags.syn() {
            return;
        }
        // SYN+FIN: Linux drops it; a BSD stack takes it as a SYN unless drop_synfin.
        if seg.flags.fin() && (!self.config.model.single_queue() || self.config.bsd_drop_synfin) {
            return;
        }
        self.syn_to_listener(now, lkey, tuple, seg, tw_reopen);
    }

    fn listen_overflow(&mut self) {
        self.counters.listen_overflows += 1;
        self.counters.listen_drops += 1;
    }

    /// A SYN for a listener (Linux `tcp_conn_request`, steps in its order).
    fn syn_to_listener(
        &mut self,
        now: Instant,
        lkey: Key,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        tw_reopen: bool,
    ) {
        let model = self.config.model;
        let Some(l) = self.listeners.get(lkey) else {
            return;
        };
        if model.single_queue() {
            if l.single_full(model) {
                if !(self.config.bsd_drop_incomplete && l.syn.len > 0) {
                    return self.listen_overflow();
                }
                // FreeBSD 2.2-4.x `sodropablereq`: drop one embryo to make room.
                let pick = self.rng.next_u32() % l.syn.len;
                let victim = self.requests.of_listener(lkey).nth(pick as usize);
                if let Some(id) = victim {
                    self.remove_request(id);
                }
            }
            return self.new_request(now, lkey, tuple, seg);
        }
        let cookies = self.config.tcp_syncookies;
        let mut want_cookie = false;
        if !tw_reopen && (cookies == 2 || model.syn_queue_full(l.syn.len, l.backlog)) {
            if cookies == 0 {
                self.counters.req_q_full_drop += 1;
                self.counters.listen_drops += 1;
                return;
            }
            want_cookie = true;
            self.counters.req_q_full_do_cookies += 1;
        }
        if l.accept_full() {
            return self.listen_overflow();
        }
        if !want_cookie && !tw_reopen && cookies == 0 {
            // The last quarter of tcp_max_syn_backlog is kept for peers with a known RTT.
            let max = i64::from(self.config.tcp_max_syn_backlog);
            if max - i64::from(l.syn.len) < max >> 2 && !self.is_proven(tuple.remote.ip()) {
                self.counters.listen_drops += 1;
                return;
            }
        }
        if want_cookie {
            return self.send_cookie(now, lkey, tuple, seg);
        }
        self.new_request(now, lkey, tuple, seg);
    }

    /// Negotiable options of a SYN, as far as our sysctls allow them.
    fn syn_options(&self, seg: &TcpRepr<'_>) -> (Option<u8>, bool, Option<u32>) {
        let c = &self.config;
        (
            seg.options.window_scale.filter(|_| c.tcp_window_scaling),
            seg.options.sack_permitted && c.tcp_sack,
            seg.options
                .timestamps
                .filter(|_| c.tcp_timestamps != 0)
                .map(|t| t.tsval),
        )
    }

    fn new_request(&mut self, now: Instant, lkey: Key, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let Some(local_ip) = self.addr_index(tuple.local.ip()) else {
            return;
        };
        if self.requests.len() + self.conns.len() >= self.config.max_connections as usize {
            self.counters.conn_table_full += 1;
            self.counters.listen_drops += 1;
            return;
        }
        let (wscale, sack, ts) = self.syn_options(seg);
        let n = NewRequest {
            listener: lkey,
            tuple,
            local_ip,
            iss: self.isn(&tuple, now),
            irs: seg.seq,
            peer_mss: self.clamp_peer_mss(lkey, seg.options.mss),
            peer_wscale: wscale,
            sack,
            ts_recent: ts,
        };
        let after = request_rto(self.config.model, 0, Duration::ZERO);
        let id = self.requests.insert(n, now, after);
        if let Some(l) = self.listeners.get_mut(lkey) {
            l.syn.len += 1;
            l.syn.young += 1;
            l.syn.peak = l.syn.peak.max(l.syn.len);
        }
        if let Some(r) = self.requests.get(id) {
            let r = *r;
            self.send_request_synack(now, &r, tuple);
        }
    }

    /// A stateless SYN-ACK whose ISS is a cookie (nothing is stored).
    fn send_cookie(&mut self, now: Instant, lkey: Key, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let (mut wscale, mut sack, ts) = self.syn_options(seg);
        if ts.is_none() {
            // Without timestamps a cookie has nowhere to keep these (Linux clears them).
            (wscale, sack) = (None, false);
        }
        let peer = self.clamp_peer_mss(lkey, seg.options.mss).unwrap_or(536);
        let (idx, _) = cookie::encode_mss(&tuple, peer);
        let iss = self.cookie_keys.make(&tuple, seg.seq.0, idx, now);
        self.counters.syncookies_sent += 1;
        if let Some(l) = self.listeners.get_mut(lkey) {
            l.stamp_overflow(now);
        }
        let ts = ts.map(|tsecr| {
            let base = cookie::timestamp(now.total_millis() as u32, wscale, sack);
            (base, tsecr)
        });
        self.send_synack(SynAck {
            tuple,
            mss: self.adv_mss(lkey, &tuple),
            rcv: self.listener_rcv(lkey),
            iss: SeqNumber(iss),
            irs: seg.seq,
            wscale: wscale.is_some(),
            sack,
            ts,
        });
    }

    /// An ACK to a listener: a SYN cookie's final ACK? Linux `cookie_v4_check`. True when
    /// the segment was consumed (child made, or dropped on a full accept queue).
    fn cookie_ack(&mut self, now: Instant, lkey: Key, tuple: FourTuple, seg: &TcpRepr<'_>) -> bool {
        if self.config.tcp_syncookies == 0 || self.config.model.single_queue() {
            return false;
        }
        let Some(l) = self.listeners.get(lkey) else {
            return false;
        };
        if l.no_recent_overflow(now) {
            return false;
        }
        let Some(mss) = self.cookie_keys.check(&tuple, seg.seq.0, seg.ack.0, now) else {
            self.counters.syncookies_failed += 1;
            return false;
        };
        self.counters.syncookies_recv += 1;
        let c = &self.config;
        let (wscale, sack, ts_recent) =
            match seg.options.timestamps.filter(|_| c.tcp_timestamps != 0) {
                Some(ts) => {
                    let tsecr = match ts.tsecr {
                        0 => 0,
                        e => e.wrapping_sub(self.ts_offset(&tuple)),
                    };
                    match cookie::decode_timestamp(tsecr, c.tcp_sack, c.tcp_window_scaling) {
                        Some((w, s)) => (w, s, Some(ts.tsval)),
                        None => return false,
                    }
                }
                None => (None, false, None),
            };
        if l.accept_full() {
            // Even with tcp_abort_on_overflow: a cookie ACK overflow is a silent drop.
            self.listen_overflow();
            return true;
        }
        if self.requests.len() + self.conns.len() >= self.config.max_connections as usize {
            self.counters.conn_table_full += 1;
            self.counters.listen_drops += 1;
            return true;
        }
        let neg = Negotiated {
            peer_mss: Some(mss),
            peer_wscale: wscale,
            sack,
            ts_recent,
            rtt: None,
            rcvbuf: self.listener_rcvbuf(lkey),
        };
        self.make_child(now, lkey, tuple, seg.ack - 1, seg.seq - 1, neg, seg);
        true
    }

    fn send_request_synack(&mut self, now: Instant, r: &Request, tuple: FourTuple) {
        let ts = r
            .ts_recent()
            .map(|tsecr| (now.total_millis() as u32, tsecr));
        self.send_synack(SynAck {
            tuple,
            mss: self.adv_mss(r.listener, &tuple),
            rcv: self.listener_rcv(r.listener),
            iss: r.iss,
            irs: r.irs,
            wscale: r.peer_wscale().is_some(),
            sack: r.sack(),
            ts,
        });
    }

    fn send_synack(&mut self, s: SynAck) {
        let c = &self.config;
        let mut options = TcpOptions {
            mss: Some(s.mss),
            ..TcpOptions::default()
        };
        if s.wscale {
            options.window_scale = Some(s.rcv.1);
        }
        options.sack_permitted = s.sack;
        // A BSD stack answers with FreeBSD's layout (`tcp_addoptions` in syncache_respond).
        options.bsd_layout = c.model.single_queue();
        if let Some((base, tsecr)) = s.ts {
            let tsval = base.wrapping_add(self.ts_offset(&s.tuple));
            options.timestamps = Some(Timestamps { tsval, tsecr });
        }
        let tcp = TcpRepr {
            src_port: s.tuple.local.port(),
            dst_port: s.tuple.remote.port(),
            seq: s.iss,
            ack: s.irs + 1,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: synack_window(s.rcv.0, s.mss, s.ts.is_some()).min(65_535) as u16,
            urgent: 0,
            options,
            payload: &[],
        };
        let ip = IpRepr {
            src: s.tuple.local.ip(),
            dst: s.tuple.remote.ip(),
            hop_limit: c.ip_default_ttl,
        };
        self.queue_control(ip, tcp, false);
    }

    fn remove_request(&mut self, id: ReqId) -> Option<Request> {
        let r = *self.requests.get(id)?;
        let tuple = r.tuple(&self.addrs);
        self.requests.remove(id, &tuple)?;
        if let Some(l) = self.listeners.get_mut(r.listener) {
            l.syn.len -= 1;
            if r.num_timeout == 0 {
                l.syn.young -= 1;
            }
        }
        Some(r)
    }

    fn resend_synack(&mut self, now: Instant, id: ReqId, tuple: FourTuple) {
        let Some(r) = self.requests.get_mut(id) else {
            return;
        };
        r.set_resent();
        let r = *r;
        // Linux tcp_rtx_synack: every resend counts, by timer or for a duplicate SYN.
        self.counters.syn_retrans += 1;
        self.counters.retrans_segs += 1;
        self.send_request_synack(now, &r, tuple);
    }

    /// A segment for a half-open request (Linux `tcp_check_req`, in its order).
    pub(super) fn on_request_segment(
        &mut self,
        now: Instant,
        id: ReqId,
        tuple: FourTuple,
        ip: IpRepr,
        seg: &TcpRepr<'_>,
    ) {
        let Some(&req) = self.requests.get(id) else {
            return;
        };
        let model = self.config.model;
        let gap = Duration::from_millis(u64::from(self.config.tcp_invalid_ratelimit_ms));
        let f = seg.flags;
        if f.syn() && !f.ack() && !f.rst() && !f.fin() && seg.seq == req.irs {
            // Retransmitted SYN: resend the SYN-ACK, at most once per rate-limit interval.
            if self
                .requests
                .get_mut(id)
                .is_some_and(|r| r.oow_limited(now, gap))
            {
                self.counters.ack_skipped_syn_recv += 1;
                return;
            }
            if !model.single_queue() {
                let after = request_rto(model, req.num_timeout, req.age(now));
                self.requests.rearm(id, now, after);
                self.requests.purge_front();
            }
            return self.resend_synack(now, id, tuple);
        }
        if f.ack() && seg.ack != req.iss + 1 {
            // Handed back to the listener, which answers with RST; the request stays.
            return self.queue_control(ip, rst_reply(seg), true);
        }
        let rcv_nxt = req.irs + 1;
        let adv = self.adv_mss(req.listener, &tuple);
        let space = self.listener_rcv(req.listener).0;
        let wnd = synack_window(space, adv, req.ts_recent().is_some());
        let end = seg.seq + seg.payload.len() as u32 + u32::from(f.syn()) + u32::from(f.fin());
        let in_window = seg.seq == rcv_nxt || (end > rcv_nxt && seg.seq < rcv_nxt + wnd);
        if !in_window {
            if !f.rst()
                && !self
                    .requests
                    .get_mut(id)
                    .is_some_and(|r| r.oow_limited(now, gap))
            {
                let ack = self.ack_for_request(now, &req, tuple);
                self.queue_control(ip, ack, false);
            }
            return;
        }
        // FreeBSD `syncache_chkrst` (RFC 5961 §3.2): a BSD stack drops the entry only for an
        // RST exactly at IRS+1 (or anywhere in the window with insecure_rst) and answers any
        // other in-window RST with a challenge ACK, rate-limited. Linux drops it for any
        // in-window RST.
        if f.rst()
            && self.config.model.single_queue()
            && !self.config.bsd_insecure_rst
            && seg.seq != rcv_nxt
        {
            if !self
                .requests
                .get_mut(id)
                .is_some_and(|r| r.oow_limited(now, gap))
            {
                self.counters.challenge_ack += 1;
                let ack = self.ack_for_request(now, &req, tuple);
                self.queue_control(ip, ack, false);
            }
            return;
        }
        // A SYN at the request's own ISN is out of window on its left: ignore the flag.
        let syn = f.syn() && seg.seq != req.irs;
        if f.rst() || syn {
            self.remove_request(id);
            self.counters.embryonic_rsts += 1;
            self.counters.attempt_fails += 1;
            if !f.rst() {
                self.queue_control(ip, rst_reply(seg), true);
            }
            return;
        }
        if !f.ack() {
            return;
        }
        let Some(l) = self.listeners.get(req.listener) else {
            // The listener closed: nobody to hand the child to.
            self.remove_request(id);
            return self.queue_control(ip, rst_reply(seg), true);
        };
        let data_end = seg.seq + seg.payload.len() as u32 + u32::from(f.fin());
        if req.num_timeout < l.defer_accept && data_end == rcv_nxt {
            // TCP_DEFER_ACCEPT: a bare ACK waits for data (or the deferral's end).
            if let Some(r) = self.requests.get_mut(id) {
                r.set_acked();
            }
            self.counters.defer_accept_drop += 1;
            return;
        }
        if !model.single_queue() && l.accept_full() {
            self.listen_overflow();
            if self.config.tcp_abort_on_overflow {
                self.remove_request(id);
                self.counters.embryonic_rsts += 1;
                return self.queue_control(ip, rst_reply(seg), true);
            }
            if let Some(r) = self.requests.get_mut(id) {
                r.set_acked();
            }
            return;
        }
        self.remove_request(id);
        let neg = Negotiated {
            peer_mss: req.peer_mss(),
            peer_wscale: req.peer_wscale(),
            sack: req.sack(),
            ts_recent: req.ts_recent(),
            rtt: req.rtt(now),
            rcvbuf: self.listener_rcvbuf(req.listener),
        };
        self.make_child(now, req.listener, tuple, req.iss, req.irs, neg, seg);
    }

    /// The handshake completed: a connection joins the accept queue's tail.
    #[allow(clippy::too_many_arguments)]
    fn make_child(
        &mut self,
        now: Instant,
        lkey: Key,
        tuple: FourTuple,
        iss: SeqNumber,
        irs: SeqNumber,
        neg: Negotiated,
        seg: &TcpRepr<'_>,
    ) {
        let ts_offset = self.ts_offset(&tuple);
        let mut conn = Connection::accept(tuple, &self.config, now, iss, irs, neg, ts_offset);
        conn.set_initial_window(seg);
        let key = self.conns.insert(Slot {
            conn,
            armed: None,
            in_tx: false,
            in_events: false,
            unaccepted: true,
            hashed: true,
            in_tw: false,
            metrics_saved: false,
        });
        self.by_tuple.insert(tuple, key);
        self.counters.passive_opens += 1;
        {
            let (conns, mut ctx) = self.ctx(now);
            if let Some(slot) = conns.get_mut(key) {
                // The ACK may carry data or FIN.
                let _ = slot.conn.on_segment(&mut ctx, seg);
            }
        }
        if let Some(l) = self.listeners.get_mut(lkey) {
            l.accept.push(key);
        }
        self.notify_listener(lkey);
        self.touch(now, key);
    }

    fn ack_for_request(&self, now: Instant, req: &Request, tuple: FourTuple) -> TcpRepr<'static> {
        let mut options = TcpOptions::default();
        if let Some(tsecr) = req.ts_recent() {
            let tsval = (now.total_millis() as u32).wrapping_add(self.ts_offset(&tuple));
            options.timestamps = Some(Timestamps { tsval, tsecr });
        }
        let (space, wscale) = self.listener_rcv(req.listener);
        let shift = req.peer_wscale().map_or(0, |_| wscale);
        TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq: req.iss + 1,
            ack: req.irs + 1,
            flags: TcpFlags::ACK,
            // Linux tcp_v4_reqsk_send_ack: the request's window, scaled.
            window: (synack_window(
                space,
                self.adv_mss(req.listener, &tuple),
                req.ts_recent().is_some(),
            ) >> shift) as u16,
            urgent: 0,
            options,
            payload: &[],
        }
    }

    /// SYN-ACK timer (Linux `reqsk_timer_handler` with `syn_ack_recalc` and the pruning
    /// rule; BSD: the retransmit timer, then the 75 s keep-init drop).
    pub(super) fn on_request_timer(&mut self, now: Instant, id: ReqId) {
        let Some(&req) = self.requests.get(id) else {
            return;
        };
        let tuple = req.tuple(&self.addrs);
        let model = self.config.model;
        let Some(l) = self.listeners.get(req.listener) else {
            // The listener is gone: the request is dropped without a word.
            self.remove_request(id);
            return;
        };
        self.counters.timeouts += 1;
        let age = req.age(now);
        let (expire, resend) = if model.single_queue() {
            (age >= BSD_KEEP_INIT, true)
        } else {
            let mut max = if l.syncnt != 0 {
                l.syncnt
            } else {
                self.config.tcp_synack_retries
            };
            let qlen = u64::from(l.syn.len);
            if qlen << 1 > u64::from(l.backlog).max(8) {
                let mut young = u64::from(l.syn.young) << 1;
                while max > 2 && qlen >= young {
                    max -= 1;
                    young <<= 1;
                }
            }
            let (n, d, acked) = (req.num_timeout, l.defer_accept, req.acked());
            if d == 0 {
                (n >= max, true)
            } else {
                (n >= max && (!acked || n >= d), !acked || n >= d - 1)
            }
        };
        if expire {
            self.remove_request(id);
            if model.single_queue() {
                // 4.4BSD tcp_drop: an embryo that received a SYN is reset.
                self.queue_reset(&req, tuple);
            }
            return;
        }
        if resend {
            self.resend_synack(now, id, tuple);
        }
        if let Some(r) = self.requests.get_mut(id) {
            r.num_timeout = r.num_timeout.saturating_add(1);
        }
        if req.num_timeout == 0 {
            if let Some(l) = self.listeners.get_mut(req.listener) {
                l.syn.young -= 1;
            }
        }
        let after = request_rto(model, req.num_timeout.saturating_add(1), age);
        self.requests.rearm(id, now, after);
    }

    /// Remove every request of a listener, resetting each peer (4.4BSD `soabort`).
    pub(super) fn abort_requests(&mut self, lkey: Key) {
        let ids: Vec<ReqId> = self.requests.of_listener(lkey).collect();
        for id in ids {
            if let Some(req) = self.remove_request(id) {
                let tuple = req.tuple(&self.addrs);
                self.queue_reset(&req, tuple);
            }
        }
    }

    fn queue_reset(&mut self, req: &Request, tuple: FourTuple) {
        let tcp = TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq: req.iss + 1,
            ack: req.irs + 1,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        let ip = IpRepr {
            src: tuple.local.ip(),
            dst: tuple.remote.ip(),
            hop_limit: self.config.ip_default_ttl,
        };
        self.queue_control(ip, tcp, true);
    }

    pub(super) fn notify_listener(&mut self, lkey: Key) {
        if let Some(l) = self.listeners.get_mut(lkey) {
            if !l.event_pending && l.accept.len() > 0 {
                l.event_pending = true;
                self.events.push_back(Owner::Listener(lkey));
            }
        }
    }

    /// Linux `tcp_peer_is_proven`: an RTT for this peer is on record.
    fn is_proven(&self, ip: IpAddr) -> bool {
        self.metrics.contains(&ip)
    }

    /// Record a peer's RTT (Linux `tcp_update_metrics` when a connection ends).
    pub(super) fn save_metrics(&mut self, ip: IpAddr) {
        if self.metrics.contains(&ip) {
            return;
        }
        if self.metrics.len() >= self.config.tcp_metrics_entries as usize {
            self.counters.metrics_full += 1;
            return;
        }
        self.metrics.insert(ip);
    }

    // ---------------------------------------------------------- socket API

    /// `setsockopt(TCP_DEFER_ACCEPT, secs)`: a bare final ACK does not complete the handshake
    /// until data arrives or the deferral (rounded to SYN-ACK retransmissions) ends. Returns
    /// the value `getsockopt` reads back (Linux rounds 2 up to 3). Read when a final ACK
    /// or a request timer comes, so setting it changes nothing at once and takes no `now`.
    pub fn set_defer_accept(&mut self, l: ListenerHandle, secs: u32) -> Option<u32> {
        let listener = self.listeners.get_mut(l.0)?;
        listener.defer_accept = defer_secs_to_retrans(secs);
        Some(defer_retrans_to_secs(listener.defer_accept))
    }

    /// `getsockopt(TCP_DEFER_ACCEPT)`.
    pub fn defer_accept(&self, l: ListenerHandle) -> Option<u32> {
        Some(defer_retrans_to_secs(self.listeners.get(l.0)?.defer_accept))
    }

    /// `setsockopt(TCP_MAXSEG)` on a listener (0 clears it): its SYN-ACKs advertise at most
    /// this MSS and its connections send segments no larger (Linux `user_mss`, which
    /// clamps `mss_clamp` and the advertised MSS). Linux takes 88..=32767.
    pub fn set_listener_mss(&mut self, l: ListenerHandle, mss: u16) -> Option<()> {
        self.listeners.get_mut(l.0)?.user_mss = mss;
        Some(())
    }

    /// `getsockopt(TCP_MAXSEG)` on a listener: the value set, or 0.
    pub fn listener_mss(&self, l: ListenerHandle) -> Option<u16> {
        Some(self.listeners.get(l.0)?.user_mss)
    }

    /// `setsockopt(SO_RCVBUF, bytes)` on a listener: Linux keeps twice the value (after
    /// capping it at `net.core.rmem_max`; at least SOCK_MIN_RCVBUF, about 4608 bytes) and
    /// locks it: its SYN-ACKs offer half of it as their window, scale by it (not by
    /// `tcp_rmem[2]`), and its connections keep that buffer, untuned. Returns what
    /// `getsockopt` reads back.
    pub fn set_listener_rcvbuf(&mut self, l: ListenerHandle, bytes: u32) -> Option<u32> {
        let max = self.config.rmem_max;
        let listener = self.listeners.get_mut(l.0)?;
        listener.rcvbuf = (bytes.min(max).min(i32::MAX as u32 / 2) * 2).max(SOCK_MIN_RCVBUF);
        Some(listener.rcvbuf)
    }

    /// A listener's receive space for its SYN-ACK window (half the buffer: Linux's default
    /// scaling ratio) and its window scale.
    fn listener_rcv(&self, lkey: Key) -> (u32, u8) {
        match self.listeners.get(lkey).map_or(0, |l| l.rcvbuf) {
            0 => (self.config.tcp_rmem[1] / 2, conn::wscale_for(&self.config)),
            buf => (buf / 2, conn::wscale_within(&self.config, buf / 2)),
        }
    }

    /// What a child inherits of its listener's `SO_RCVBUF`, if set.
    fn listener_rcvbuf(&self, lkey: Key) -> Option<(u32, u8)> {
        let buf = self.listeners.get(lkey).map_or(0, |l| l.rcvbuf);
        (buf > 0).then(|| (buf, conn::wscale_within(&self.config, buf / 2)))
    }

    /// The MSS a listener's SYN-ACK advertises: the route's, clamped by TCP_MAXSEG.
    fn adv_mss(&self, lkey: Key, tuple: &FourTuple) -> u16 {
        let route = conn::mss_for(tuple, &self.config);
        match self.listeners.get(lkey).map_or(0, |l| l.user_mss) {
            0 => route,
            user => route.min(user),
        }
    }

    /// The peer's MSS as a request keeps it: clamped by TCP_MAXSEG (Linux `mss_clamp`); a
    /// SYN without the option counts as 536 then.
    fn clamp_peer_mss(&self, lkey: Key, peer: Option<u16>) -> Option<u16> {
        match self.listeners.get(lkey).map_or(0, |l| l.user_mss) {
            0 => peer,
            user => Some(peer.unwrap_or(536).min(user)),
        }
    }

    /// `setsockopt(TCP_SYNCNT)` on a listener: SYN-ACK retransmissions for its requests
    /// (0 means `tcp_synack_retries`). Read when a request timer fires, so setting it
    /// changes nothing at once and takes no `now`.
    pub fn set_syncnt(&mut self, l: ListenerHandle, n: u8) -> Option<()> {
        self.listeners.get_mut(l.0)?.syncnt = n;
        Some(())
    }

    /// Every half-open request (`ss -nt state syn-recv`). Cookie handshakes hold none.
    pub fn syn_recv(&self) -> impl Iterator<Item = SynRecvInfo> + '_ {
        self.requests.iter().map(|r| {
            let t = r.tuple(&self.addrs);
            SynRecvInfo {
                local: t.local,
                remote: t.remote,
                retransmits: r.num_timeout,
            }
        })
    }

    /// Heap bytes the request table holds: record chunks, free list, hash index and timer
    /// FIFOs (allocator overhead aside).
    pub fn request_table_bytes(&self) -> usize {
        self.requests.heap_bytes()
    }

    /// Bytes one half-open request costs: its record, its hash-index slot (4 bytes plus a
    /// control byte) and its timer-FIFO entry, before container slack.
    pub const fn request_entry_bytes() -> usize {
        size_of::<Request>() + 5 + size_of::<(Instant, u32, u32)>()
    }

    /// Change the backlog model (takes effect for later SYNs, as a sysctl write does).
    pub fn set_model(&mut self, model: Model) {
        self.config.model = model;
    }
}
