//! What every model shares: half-open requests, SYN-ACKs, the checks a segment for a
//! request passes (Linux `tcp_check_req`, in its order) and the socket options of a
//! listener. The family policies call in here and plug in where they differ.

use super::{bsd, freebsd, linux, Child, Family, ListenTable, Passive};
use crate::config::Config;
use crate::conn::{self, rst_reply, Negotiated};
use crate::counters::{Counters, FreeBsdCounters};
use crate::hash::{FourTuple, Secrets};
use crate::request::{NewRequest, ReqId, Request};
use crate::slab::Key;
use crate::stack::{queue_reply, ControlQueue};
use crate::{Duration, Instant};
use core::net::{IpAddr, SocketAddr};
use rand_chacha::ChaCha8Rng;
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

/// What the table borrows from the stack for one call.
pub(crate) struct PassiveCtx<'a> {
    pub(crate) now: Instant,
    pub(crate) config: &'a Config,
    pub(crate) counters: &'a mut Counters,
    pub(crate) bsd: &'a mut FreeBsdCounters,
    pub(crate) rng: &'a mut ChaCha8Rng,
    pub(crate) secrets: &'a Secrets,
    /// Our addresses (requests keep an index into it).
    pub(crate) addrs: &'a [IpAddr],
    /// Connections the stack holds, for `synq.max_connections`.
    pub(crate) conns: usize,
    /// The last 4-tuple the stack hashed (the packet's), with its hash.
    pub(crate) hashed: &'a Option<(FourTuple, u64)>,
    /// The stack's queue of stateless replies.
    pub(crate) control: &'a mut ControlQueue,
}

impl PassiveCtx<'_> {
    /// `t`'s hash if the stack already computed it for this packet.
    fn hash_of(&self, t: &FourTuple) -> Option<u64> {
        crate::hash::cached_hash(self.hashed, t)
    }

    fn addr_index(&self, ip: IpAddr) -> Option<u16> {
        self.addrs.iter().position(|a| *a == ip).map(|i| i as u16)
    }

    fn ts_offset(&self, tuple: &FourTuple) -> u32 {
        self.secrets.ts_offset(tuple, self.config.tcp_timestamps)
    }

    /// Queue a reply to `ip`'s sender (`ip` is already the reply's addressing); an RST
    /// among them counts in `TcpOutRsts` when `counted`. Replies are queued where they are
    /// built: one returned up the calls and copied into the queue was read back before its
    /// stores had landed (a store-forwarding stall per SYN).
    pub(super) fn send(&mut self, ip: IpRepr, tcp: TcpRepr<'static>, counted: bool) -> Passive {
        let cap = self.config.tx_queue_len;
        queue_reply(self.control, self.counters, cap, ip, tcp, counted);
        Passive::Sent
    }

    /// A reply to `ip`'s sender.
    pub(super) fn reply(&mut self, ip: IpRepr, tcp: TcpRepr<'static>) -> Passive {
        self.send(ip, tcp, true)
    }

    /// An RST answering `seg`.
    pub(super) fn rst(&mut self, ip: IpRepr, seg: &TcpRepr<'_>) -> Passive {
        self.reply(ip, rst_reply(seg))
    }

    fn ip_to(&self, tuple: &FourTuple) -> IpRepr {
        IpRepr {
            src: tuple.local.ip(),
            dst: tuple.remote.ip(),
            hop_limit: self.config.ip_default_ttl,
        }
    }

    /// `synq.max_connections` reached: count it and refuse.
    pub(super) fn table_full(&mut self, requests: usize) -> bool {
        if self.config.table_full(self.conns, requests) {
            self.counters.conn_table_full += 1;
            self.counters.listen_drops += 1;
            return true;
        }
        false
    }

    pub(super) fn listen_overflow(&mut self) {
        self.counters.listen_overflows += 1;
        self.counters.listen_drops += 1;
    }
}

/// What a SYN-ACK carries besides what its listener decides (MSS, window, scale).
pub(super) struct SynAck {
    pub(super) listener: Key,
    pub(super) tuple: FourTuple,
    pub(super) iss: SeqNumber,
    pub(super) irs: SeqNumber,
    pub(super) wscale: bool,
    pub(super) sack: bool,
    /// (our TSval before the per-connection offset, TSecr).
    pub(super) ts: Option<(u32, u32)>,
    /// The timestamp offset if already computed with the ISS (one hash gives both).
    pub(super) ts_off: Option<u32>,
}

/// Linux SOCK_MIN_RCVBUF on 64-bit (2 x (2048 + the sk_buff's aligned size)).
const SOCK_MIN_RCVBUF: u32 = 4608;

/// A request's receive window for an advertised MSS (less 12 with timestamps): Linux 6.x
/// `tcp_openreq_init_rwin`, the listener's receive space (half its buffer: the default
/// scaling ratio) in whole segments. The SYN-ACK's own field carries at most 65535 of it
/// (it is never scaled).
pub(super) fn synack_window(space: u32, adv_mss: u16, ts: bool) -> u32 {
    let mss = adv_mss - if ts { 12 } else { 0 };
    let m = u32::from(mss).max(1);
    if space > m {
        space / m * m
    } else {
        space
    }
}

/// Negotiable options of a SYN, as far as our sysctls allow them: (wscale, SACK, TSval).
pub(super) fn syn_options(c: &Config, seg: &TcpRepr<'_>) -> (Option<u8>, bool, Option<u32>) {
    (
        seg.options.window_scale.filter(|_| c.tcp_window_scaling),
        seg.options.sack_permitted && c.tcp_sack,
        seg.options
            .timestamps
            .filter(|_| c.tcp_timestamps.on())
            .map(|t| t.tsval),
    )
}

impl ListenTable {
    /// The request for `tuple`; `h` its hash if known.
    pub(crate) fn find_request(
        &self,
        addrs: &[IpAddr],
        tuple: &FourTuple,
        h: Option<u64>,
    ) -> Option<ReqId> {
        if self.requests.len() == 0 {
            // A cookies-only listener under a flood holds none: skip the address search.
            return None;
        }
        let li = addrs.iter().position(|a| *a == tuple.local.ip())? as u16;
        self.requests.find(li, tuple, h)
    }

    /// A segment for a listener with no matching request or connection.
    pub(crate) fn on_listener_segment(
        &mut self,
        cx: &mut PassiveCtx<'_>,
        lkey: Key,
        tuple: FourTuple,
        ip: IpRepr,
        seg: &TcpRepr<'_>,
        tw_reopen: bool,
    ) -> Passive {
        if seg.flags.rst() {
            return Passive::Drop;
        }
        if seg.flags.ack() {
            // A cookie's final ACK? Whatever the model rejects meets an RST.
            if !seg.flags.syn() {
                let consumed = match cx.config.model.family() {
                    Family::Linux => linux::cookie_ack(self, cx, lkey, tuple, seg),
                    Family::Bsd => None,
                    Family::FreeBsd => freebsd::cookie_ack(self, cx, lkey, tuple, seg),
                };
                if let Some(p) = consumed {
                    return p;
                }
            }
            return cx.rst(ip, seg);
        }
        if !seg.flags.syn() {
            return Passive::Drop;
        }
        // SYN+FIN: Linux drops it; a BSD stack takes it as a SYN unless drop_synfin.
        if seg.flags.fin() && (!cx.config.model.bsd_wire() || cx.config.bsd_drop_synfin) {
            return Passive::Drop;
        }
        match cx.config.model.family() {
            Family::Linux => linux::on_syn(self, cx, lkey, tuple, seg, tw_reopen),
            Family::Bsd => bsd::on_syn(self, cx, lkey, tuple, seg),
            Family::FreeBsd => freebsd::on_syn(self, cx, lkey, tuple, seg),
        }
    }

    /// Store a request for `seg` with our `iss`, its timer due `after`; `None` when the
    /// connection table is full or the address is not ours.
    pub(super) fn add_request(
        &mut self,
        cx: &mut PassiveCtx<'_>,
        lkey: Key,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        iss: SeqNumber,
        after: Duration,
    ) -> Option<ReqId> {
        let local_ip = cx.addr_index(tuple.local.ip())?;
        if cx.table_full(self.requests.len()) {
            return None;
        }
        let (wscale, sack, ts) = syn_options(cx.config, seg);
        let n = NewRequest {
            listener: lkey,
            tuple,
            local_ip,
            iss,
            irs: seg.seq,
            peer_mss: self.clamp_peer_mss(lkey, seg.options.mss),
            peer_wscale: wscale,
            sack,
            ts_recent: ts,
        };
        let h = cx.hash_of(&tuple);
        Some(self.requests.insert(n, cx.now, after, cx.addrs, h))
    }

    /// A request with an ISS from the RFC 6528 generator, and its first SYN-ACK.
    pub(super) fn new_request(
        &mut self,
        cx: &mut PassiveCtx<'_>,
        lkey: Key,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> Passive {
        let (iss, ts_off) = cx
            .secrets
            .isn_and_ts_offset(&tuple, cx.now, cx.config.tcp_timestamps);
        let after = super::request_rto(cx.config.model, 0, Duration::ZERO);
        match self.add_request(cx, lkey, tuple, seg, iss, after) {
            Some(_) => self.first_synack(cx, lkey, tuple, seg, iss, Some(ts_off)),
            None => Passive::Drop,
        }
    }

    /// The first SYN-ACK of a request just stored from `seg`, built from the SYN as
    /// [`Self::request_synack`] builds it from the record: reading back the record just
    /// written would wait for its stores (a stall per SYN in a cookies-off flood).
    pub(super) fn first_synack(
        &self,
        cx: &mut PassiveCtx<'_>,
        lkey: Key,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        iss: SeqNumber,
        ts_off: Option<u32>,
    ) -> Passive {
        let (wscale, sack, ts) = syn_options(cx.config, seg);
        self.synack(
            cx,
            SynAck {
                listener: lkey,
                tuple,
                iss,
                irs: seg.seq,
                wscale: wscale.is_some(),
                sack,
                ts: ts.map(|tsecr| (cx.now.total_millis() as u32, tsecr)),
                ts_off,
            },
        )
    }

    /// The SYN-ACK for a stored request.
    pub(super) fn request_synack(&self, cx: &mut PassiveCtx<'_>, id: ReqId) -> Passive {
        let Some(r) = self.requests.get(id) else {
            return Passive::Drop;
        };
        let ts = r
            .ts_recent()
            .map(|tsecr| (cx.now.total_millis() as u32, tsecr));
        self.synack(
            cx,
            SynAck {
                listener: r.listener,
                tuple: r.tuple(cx.addrs),
                iss: r.iss,
                irs: r.irs,
                wscale: r.peer_wscale().is_some(),
                sack: r.sack(),
                ts,
                ts_off: None,
            },
        )
    }

    pub(super) fn synack(&self, cx: &mut PassiveCtx<'_>, s: SynAck) -> Passive {
        let c = cx.config;
        // One listener lookup for MSS, window and scale: this runs for every SYN.
        let (user_mss, rcvbuf) = self
            .listeners
            .get(s.listener)
            .map_or((0, 0), |l| (l.user_mss, l.rcvbuf));
        let mss = adv_mss_for(c, &s.tuple, user_mss);
        let (space, scale) = rcv_space(c, rcvbuf);
        let window = match c.model.family() {
            Family::FreeBsd => freebsd::synack_window(c, rcvbuf),
            _ => synack_window(space, mss, s.ts.is_some()),
        };
        let mut options = TcpOptions {
            mss: Some(mss),
            ..TcpOptions::default()
        };
        if s.wscale {
            options.window_scale = Some(scale);
        }
        options.sack_permitted = s.sack;
        // A BSD stack answers with FreeBSD's layout (`tcp_addoptions` in syncache_respond).
        options.bsd_layout = cx.config.model.bsd_wire();
        if let Some((base, tsecr)) = s.ts {
            let off = s.ts_off.unwrap_or_else(|| cx.ts_offset(&s.tuple));
            let tsval = base.wrapping_add(off);
            options.timestamps = Some(Timestamps { tsval, tsecr });
        }
        let tcp = TcpRepr {
            window: window.min(65_535) as u16,
            options,
            ..s.tuple
                .segment(s.iss, s.irs + 1, TcpFlags::SYN | TcpFlags::ACK)
        };
        let ip = cx.ip_to(&s.tuple);
        cx.send(ip, tcp, false)
    }

    /// Every removal comes here, so the syncache's buckets follow the table.
    pub(super) fn remove_request(&mut self, cx: &PassiveCtx<'_>, id: ReqId) -> Option<Request> {
        let tuple = self.requests.get(id)?.tuple(cx.addrs);
        self.remove_known(cx, id, &tuple)
    }

    /// As `remove_request`, the request's 4-tuple known (no lookup to rebuild it).
    pub(super) fn remove_known(
        &mut self,
        cx: &PassiveCtx<'_>,
        id: ReqId,
        tuple: &FourTuple,
    ) -> Option<Request> {
        self.syncache_forget(id, tuple);
        self.requests.remove(id, tuple, cx.hash_of(tuple))
    }

    /// Resend a request's SYN-ACK (by timer or for a duplicate SYN).
    pub(super) fn resend_synack(&mut self, cx: &mut PassiveCtx<'_>, id: ReqId) -> Passive {
        let Some(r) = self.requests.get_mut(id) else {
            return Passive::Drop;
        };
        r.set_resent();
        // Linux tcp_rtx_synack: every resend counts, by timer or for a duplicate SYN.
        cx.counters.syn_retrans += 1;
        cx.counters.retrans_segs += 1;
        self.request_synack(cx, id)
    }

    /// A segment for a half-open request.
    pub(crate) fn on_request_segment(
        &mut self,
        cx: &mut PassiveCtx<'_>,
        id: ReqId,
        tuple: FourTuple,
        ip: IpRepr,
        seg: &TcpRepr<'_>,
    ) -> Passive {
        let Some(req) = self.requests.get(id) else {
            return Passive::Drop;
        };
        let family = cx.config.model.family();
        if family == Family::FreeBsd {
            return freebsd::on_request_segment(self, cx, id, tuple, ip, seg);
        }
        let now = cx.now;
        let gap = Duration::from_millis(u64::from(cx.config.tcp_invalid_ratelimit_ms));
        let f = seg.flags;
        if f.syn() && !f.ack() && !f.rst() && !f.fin() && seg.seq == req.irs {
            // Retransmitted SYN: resend the SYN-ACK, at most once per rate-limit interval.
            if self
                .requests
                .get_mut(id)
                .is_some_and(|r| r.oow_limited(now, gap))
            {
                cx.counters.ack_skipped_syn_recv += 1;
                return Passive::Drop;
            }
            if family == Family::Linux {
                linux::rearm_for_dup_syn(self, cx, id, &req);
            }
            return self.resend_synack(cx, id);
        }
        if f.ack() && seg.ack != req.iss + 1 {
            // Handed back to the listener, which answers with RST; the request stays.
            return cx.rst(ip, seg);
        }
        let rcv_nxt = req.irs + 1;
        let wnd = self.request_window(cx.config, &req, &tuple);
        let end = seg.seq + seg.payload.len() as u32 + u32::from(f.syn()) + u32::from(f.fin());
        let in_window = seg.seq == rcv_nxt || (end > rcv_nxt && seg.seq < rcv_nxt + wnd);
        if !in_window {
            if !f.rst()
                && !self
                    .requests
                    .get_mut(id)
                    .is_some_and(|r| r.oow_limited(now, gap))
            {
                return self.ack_for_request(cx, &req, tuple, false);
            }
            return Passive::Drop;
        }
        if f.rst() && family == Family::Bsd {
            if let Some(p) = bsd::challenge_rst(self, cx, id, &req, tuple, seg) {
                return p;
            }
        }
        // A SYN at the request's own ISN is out of window on its left: ignore the flag.
        let syn = f.syn() && seg.seq != req.irs;
        if f.rst() || syn {
            self.remove_request(cx, id);
            cx.counters.embryonic_rsts += 1;
            cx.counters.attempt_fails += 1;
            if !f.rst() {
                return cx.rst(ip, seg);
            }
            return Passive::Drop;
        }
        if !f.ack() {
            return Passive::Drop;
        }
        let Some(l) = self.listeners.get(req.listener) else {
            // The listener closed: nobody to hand the child to.
            self.remove_request(cx, id);
            return cx.rst(ip, seg);
        };
        let accept_full = l.accept_full();
        let data_end = seg.seq + seg.payload.len() as u32 + u32::from(f.fin());
        if req.num_timeout() < l.defer_accept && data_end == rcv_nxt {
            // TCP_DEFER_ACCEPT: a bare ACK waits for data (or the deferral's end).
            if let Some(r) = self.requests.get_mut(id) {
                r.set_acked();
            }
            cx.counters.defer_accept_drop += 1;
            return Passive::Drop;
        }
        if family == Family::Linux {
            if let Some(p) = linux::final_ack_overflow(self, cx, id, &tuple, accept_full, ip, seg) {
                return p;
            }
        }
        self.complete(cx, id, tuple)
    }

    /// The request's handshake is done: it leaves the table as a child.
    fn complete(&mut self, cx: &mut PassiveCtx<'_>, id: ReqId, tuple: FourTuple) -> Passive {
        let Some(req) = self.remove_known(cx, id, &tuple) else {
            return Passive::Drop;
        };
        let neg = Negotiated {
            peer_mss: req.peer_mss(),
            peer_wscale: req.peer_wscale(),
            sack: req.sack(),
            ts_recent: req.ts_recent(),
            rtt: req.rtt(cx.now),
            rcvbuf: self.listener_rcvbuf(cx.config, req.listener),
        };
        Passive::Child(Child {
            listener: req.listener,
            tuple,
            iss: req.iss,
            irs: req.irs,
            neg,
        })
    }

    /// The receive window a request offered in its SYN-ACK.
    pub(super) fn request_window(&self, c: &Config, req: &Request, tuple: &FourTuple) -> u32 {
        let adv = self.adv_mss(c, req.listener, tuple);
        self.offered_window(c, req.listener, adv, req.ts_recent().is_some())
    }

    /// The window a listener's SYN-ACK offers: Linux the receive space in whole segments
    /// (`synack_window`), FreeBSD the receive buffer up to 65535 (`sc_wnd`).
    fn offered_window(&self, c: &Config, lkey: Key, adv_mss: u16, ts: bool) -> u32 {
        let rcvbuf = self.listeners.get(lkey).map_or(0, |l| l.rcvbuf);
        match c.model.family() {
            Family::FreeBsd => freebsd::synack_window(c, rcvbuf),
            _ => synack_window(rcv_space(c, rcvbuf).0, adv_mss, ts),
        }
    }

    /// A bare ACK from a request (Linux `tcp_v4_reqsk_send_ack`: the request's window,
    /// scaled). `challenge` counts it as a challenge ACK.
    pub(super) fn ack_for_request(
        &self,
        cx: &mut PassiveCtx<'_>,
        req: &Request,
        tuple: FourTuple,
        challenge: bool,
    ) -> Passive {
        if challenge {
            cx.counters.challenge_ack += 1;
        }
        let mut options = TcpOptions::default();
        if let Some(tsecr) = req.ts_recent() {
            let tsval = (cx.now.total_millis() as u32).wrapping_add(cx.ts_offset(&tuple));
            options.timestamps = Some(Timestamps { tsval, tsecr });
        }
        let wscale = self.listener_rcv(cx.config, req.listener).1;
        let shift = req.peer_wscale().map_or(0, |_| wscale);
        let tcp = TcpRepr {
            window: (self.request_window(cx.config, req, &tuple) >> shift) as u16,
            options,
            ..tuple.segment(req.iss + 1, req.irs + 1, TcpFlags::ACK)
        };
        let ip = cx.ip_to(&tuple);
        cx.send(ip, tcp, false)
    }

    /// A request's timer fired.
    pub(crate) fn on_request_timer(&mut self, cx: &mut PassiveCtx<'_>, id: ReqId) -> Passive {
        let Some(req) = self.requests.get(id) else {
            return Passive::Drop;
        };
        let family = cx.config.model.family();
        if !self.listeners.contains(req.listener) && family != Family::FreeBsd {
            // The listener is gone: the request is dropped without a word. (FreeBSD's
            // bucket timer does not look: its SYN-ACKs go on until the entry expires.)
            self.remove_request(cx, id);
            return Passive::Drop;
        }
        match family {
            Family::Linux => linux::on_timer(self, cx, id, &req),
            Family::Bsd => bsd::on_timer(self, cx, id, &req),
            Family::FreeBsd => freebsd::on_timer(self, cx, id, &req),
        }
    }

    /// Close a listener: the RSTs its model sends for its half-open requests (4.4BSD
    /// `soabort`, queued here; Linux and FreeBSD leave them to their timers).
    pub(crate) fn close_requests(&mut self, cx: &mut PassiveCtx<'_>, lkey: Key) {
        if cx.config.model.family() != Family::Bsd {
            return;
        }
        let ids: Vec<ReqId> = self.requests.of_listener(lkey).collect();
        for id in ids {
            if let Some(req) = self.remove_request(cx, id) {
                reset_request(cx, &req);
            }
        }
    }

    // ---------------------------------------------------------- socket options

    /// A listener's receive space for its SYN-ACK window (half the buffer: Linux's default
    /// scaling ratio) and its window scale.
    pub(super) fn listener_rcv(&self, c: &Config, lkey: Key) -> (u32, u8) {
        rcv_space(c, self.listeners.get(lkey).map_or(0, |l| l.rcvbuf))
    }

    /// What a child inherits of its listener's `SO_RCVBUF`, if set.
    pub(super) fn listener_rcvbuf(&self, c: &Config, lkey: Key) -> Option<(u32, u8)> {
        let buf = self.listeners.get(lkey).map_or(0, |l| l.rcvbuf);
        (buf > 0).then(|| (buf, conn::wscale_within(c, buf / 2)))
    }

    /// The MSS a listener's SYN-ACK advertises: the route's, clamped by TCP_MAXSEG.
    pub(super) fn adv_mss(&self, c: &Config, lkey: Key, tuple: &FourTuple) -> u16 {
        adv_mss_for(c, tuple, self.listeners.get(lkey).map_or(0, |l| l.user_mss))
    }

    /// The peer's MSS as a request keeps it: clamped by TCP_MAXSEG (Linux `mss_clamp`); a
    /// SYN without the option counts as 536 then.
    pub(super) fn clamp_peer_mss(&self, lkey: Key, peer: Option<u16>) -> Option<u16> {
        match self.listeners.get(lkey).map_or(0, |l| l.user_mss) {
            0 => peer,
            user => Some(peer.unwrap_or(536).min(user)),
        }
    }

    /// `setsockopt(SO_RCVBUF)` on a listener (see `Stack::set_listener_rcvbuf`).
    pub(crate) fn set_rcvbuf(&mut self, c: &Config, l: Key, bytes: u32) -> Option<u32> {
        let listener = self.listeners.get_mut(l)?;
        listener.rcvbuf = (bytes.min(c.rmem_max).min(i32::MAX as u32 / 2) * 2).max(SOCK_MIN_RCVBUF);
        Some(listener.rcvbuf)
    }

    /// Every half-open request (`ss -nt state syn-recv`).
    pub(crate) fn syn_recv<'a>(
        &'a self,
        addrs: &'a [IpAddr],
    ) -> impl Iterator<Item = SynRecvInfo> + 'a {
        self.requests.iter().map(move |r| {
            let t = r.tuple(addrs);
            SynRecvInfo {
                local: t.local,
                remote: t.remote,
                retransmits: r.num_timeout(),
            }
        })
    }
}

/// The MSS a SYN-ACK advertises: the route's, clamped by the listener's TCP_MAXSEG (0:
/// not set).
fn adv_mss_for(c: &Config, tuple: &FourTuple, user_mss: u16) -> u16 {
    match user_mss {
        0 => conn::mss_for(tuple, c),
        user => conn::mss_for(tuple, c).min(user),
    }
}

/// A listener's receive space and window scale for its `SO_RCVBUF` (0: not set).
fn rcv_space(c: &Config, rcvbuf: u32) -> (u32, u8) {
    match rcvbuf {
        0 => (c.tcp_rmem[1] / 2, conn::wscale_for(c)),
        buf => (buf / 2, conn::wscale_within(c, buf / 2)),
    }
}

/// An RST to a request's peer (an embryo dropped after it received a SYN).
pub(super) fn reset_request(cx: &mut PassiveCtx<'_>, req: &Request) -> Passive {
    let tuple = req.tuple(cx.addrs);
    let tcp = tuple.segment(req.iss + 1, req.irs + 1, TcpFlags::RST | TcpFlags::ACK);
    let ip = cx.ip_to(&tuple);
    cx.reply(ip, tcp)
}
