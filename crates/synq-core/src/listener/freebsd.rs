//! FreeBSD's policy (`sys/netinet/tcp_syncache.c`): one syncache for every listener, in
//! hash buckets with a per-bucket and a total limit, the oldest entry evicted; every SYN
//! answered (the backlog is not consulted at SYN time); the ISS always a cookie when
//! `net.inet.tcp.syncookies` is on; a bucket overflow pauses the cache (cookies only) for
//! 15 s, doubling on recurrence; SYN-ACKs resent at 1, 3 and 7 s and the entry gone at
//! 15 s; the listen queue's floor(3q/2)+1 limit applied when the final ACK makes the
//! socket (`solisten_clone`), with RST or a silent drop per `rst_on_sock_fail`.

use super::handshake::{syn_options, PassiveCtx};
use super::{Child, ListenTable, Passive};
use crate::conn::Negotiated;
use crate::hash::{FourTuple, Secret};
use crate::request::{ReqId, Request};
use crate::slab::Key;
use crate::{Duration, Instant};
use std::collections::VecDeque;
use synq_wire::{IpRepr, SeqNumber, TcpRepr};

/// `TCP_SYNCACHE_PAUSE_TIME`: the first cookies-only period after an overflow.
const PAUSE: Duration = Duration::from_secs(15);
/// `TCP_SYNCACHE_MAX_BACKOFF`: the pause doubles at most six times (16 min).
const MAX_BACKOFF: u8 = 6;
/// `SYNCOOKIE_LIFETIME`: secrets are reseeded this often; a cookie lives 15-30 s, and an
/// ACK without an entry is checked as a cookie only this long after its bucket overflowed.
const LIFETIME: Duration = Duration::from_secs(15);
/// `tcp_rexmit_initial`: the first SYN-ACK resend.
const REXMIT_INITIAL: Duration = Duration::from_secs(1);
/// `tcp_sc_msstab`: MSS values a cookie can carry.
const MSS_TAB: [u16; 8] = [216, 536, 1200, 1360, 1400, 1440, 1452, 1460];
/// `tcp_sc_wstab`: window scales a cookie can carry (index 0: no scaling).
const WS_TAB: [u8; 8] = [0, 0, 1, 2, 4, 6, 7, 8];
/// `TCP_MAXWIN`: a SYN-ACK offers at most this (it is never scaled).
const MAXWIN: u32 = 65_535;

/// Negative or above `kern.ipc.somaxconn` means somaxconn (`solisten_proto`).
pub(super) fn clamp_backlog(backlog: i32, somaxconn: u32) -> u32 {
    if backlog < 0 || backlog as u32 > somaxconn {
        somaxconn
    } else {
        backlog as u32
    }
}

/// The window a FreeBSD SYN-ACK offers (`sc_wnd`): the listener's receive buffer, at most
/// 65535 (for `SO_RCVBUF` 0, the default receive space).
pub(super) fn synack_window(c: &crate::Config, rcvbuf: u32) -> u32 {
    let space = match rcvbuf {
        0 => c.tcp_rmem[1],
        buf => buf / 2,
    };
    space.min(MAXWIN)
}

/// `syncache_timeout`: 1 s, then `tcp_rexmit_initial * tcp_backoff[n]` (1, 2, 4, 8 ...
/// capped at 64 s), for the `n`-th resend.
pub(super) fn request_rto(n: u8) -> Duration {
    REXMIT_INITIAL.saturating_mul(1u64 << n.min(6))
}

/// One hash row of the syncache.
#[derive(Debug, Default)]
struct Bucket {
    /// Entries, newest first (`TAILQ_INSERT_HEAD`; eviction takes the tail).
    entries: VecDeque<ReqId>,
    /// `sch_last_overflow`: when this bucket last dropped an entry to make room.
    last_overflow: Option<Instant>,
}

/// The syncache's own state beside the request table: buckets, the pause, the cookie key.
#[derive(Debug)]
pub(crate) struct Syncache {
    /// Keys the bucket hash and, one epoch at a time, the cookie MAC.
    key: Secret,
    /// Empty until the model first needs them.
    buckets: Vec<Bucket>,
    /// Cookies only until then (`pause_until`, `paused`).
    pause_until: Option<Instant>,
    backoff: u8,
    /// FreeBSD's two secrets, odd and even (`secret.key[2]`): each the one of the latest
    /// epoch of its parity, derived from `key` when that epoch first needs it.
    secrets: [(u64, Secret); 2],
}

impl Syncache {
    pub(super) fn new(key: Secret) -> Self {
        Self {
            key,
            buckets: Vec::new(),
            pause_until: None,
            backoff: 0,
            secrets: [(u64::MAX, key); 2],
        }
    }

    fn paused(&self, now: Instant) -> bool {
        self.pause_until.is_some_and(|t| now < t)
    }

    /// `syncache_hashbucket`, keyed (FreeBSD: Jenkins hash with a secret).
    fn bucket_of(&self, tuple: &FourTuple) -> usize {
        let h = self.key.hash_tuple(tuple, 0x5343_4143);
        (h as usize) & self.buckets.len().saturating_sub(1)
    }

    /// `syncache_pause`: cookies only for 15 s, doubling when an overflow comes within
    /// the previous period after the last pause ended.
    fn pause(&mut self, cx: &mut PassiveCtx<'_>) {
        if self.paused(cx.now) {
            return;
        }
        cx.bsd.sc_bucketoverflow += 1;
        if !cx.config.freebsd_syncookies {
            return;
        }
        let prev = PAUSE.saturating_mul(1u64 << self.backoff);
        let recurs = self.pause_until.is_some_and(|t| cx.now < t + prev);
        self.backoff = match recurs {
            true => (self.backoff + 1).min(MAX_BACKOFF),
            false => 0,
        };
        self.pause_until = Some(cx.now + PAUSE.saturating_mul(1u64 << self.backoff));
    }

    /// The secret of `epoch` (reseeded every 15 s, as `syncookie_reseed` does).
    fn secret(&mut self, epoch: u64) -> Secret {
        let slot = &mut self.secrets[(epoch & 1) as usize];
        if slot.0 != epoch {
            *slot = (epoch, self.key.derive(epoch));
        }
        slot.1
    }

    /// `syncookie_mac`: SipHash-2-4 over the 4-tuple, the peer's ISN, the flag byte and
    /// the bucket, its two halves folded to 32 bits.
    fn mac(&mut self, epoch: u64, tuple: &FourTuple, irs: u32, flags: u8, bucket: usize) -> u32 {
        let word = u32::from(flags) | (bucket as u32) << 8;
        let h = self.secret(epoch).hash_tuple2(tuple, irs, word);
        (h as u32) ^ (h >> 32) as u32
    }

    /// `syncookie_generate`: 24 MAC bits, then the flag byte (wscale index, MSS index,
    /// SACK, odd/even secret) XOR the MAC's top byte.
    fn cookie(&mut self, now: Instant, tuple: &FourTuple, irs: u32, opts: CookieOpts) -> u32 {
        let epoch = epoch(now);
        let mss_idx = MSS_TAB.iter().rposition(|&m| m <= opts.mss).unwrap_or(0) as u8;
        let ws_idx = opts.wscale.map_or(0, |w| {
            WS_TAB.iter().rposition(|&x| x <= w).unwrap_or(0).max(1) as u8
        });
        let flags = (epoch & 1) as u8 | u8::from(opts.sack) << 1 | mss_idx << 2 | ws_idx << 5;
        let hash = self.mac(epoch, tuple, irs, flags, self.bucket_of(tuple));
        (hash & !0xff) | u32::from(flags ^ (hash >> 24) as u8)
    }

    /// `syncookie_lookup`: the options a valid cookie carries, or `None`.
    fn check(&mut self, now: Instant, tuple: &FourTuple, seq: u32, ack: u32) -> Option<CookieOpts> {
        let (iss, irs) = (ack.wrapping_sub(1), seq.wrapping_sub(1));
        let flags = (iss as u8) ^ (iss >> 24) as u8;
        // The secret of this parity in force now: made this epoch or the one before.
        let now_epoch = epoch(now);
        let sel = u64::from(flags & 1);
        let epoch = match now_epoch & 1 == sel {
            true => now_epoch,
            false => now_epoch.checked_sub(1)?,
        };
        let hash = self.mac(epoch, tuple, irs, flags, self.bucket_of(tuple));
        if iss & !0xff != hash & !0xff {
            return None;
        }
        let ws_idx = usize::from(flags >> 5);
        Some(CookieOpts {
            mss: MSS_TAB[usize::from(flags >> 2 & 7)],
            wscale: (ws_idx > 0).then(|| WS_TAB[ws_idx]),
            sack: flags & 2 != 0,
        })
    }
}

/// The secret epoch: secrets are reseeded every 15 s.
fn epoch(now: Instant) -> u64 {
    now.total_micros() / LIFETIME.total_micros()
}

/// What a FreeBSD cookie carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CookieOpts {
    mss: u16,
    wscale: Option<u8>,
    sack: bool,
}

impl ListenTable {
    /// Allocate the buckets the first time (or again if the hash size changed), filing
    /// any entries already held.
    fn syncache_ready(&mut self, cx: &PassiveCtx<'_>) {
        let n = cx.config.syncache_hashsize.max(1) as usize;
        if self.syncache.buckets.len() == n {
            return;
        }
        self.syncache.buckets = (0..n).map(|_| Bucket::default()).collect();
        let ids: Vec<(ReqId, FourTuple)> = self
            .requests
            .ids()
            .filter_map(|id| Some((id, self.requests.get(id)?.tuple(cx.addrs))))
            .collect();
        for (id, tuple) in ids {
            let b = self.syncache.bucket_of(&tuple);
            self.syncache.buckets[b].entries.push_front(id);
        }
    }

    /// Take a removed request out of its bucket.
    pub(super) fn syncache_forget(&mut self, id: ReqId, tuple: &FourTuple) {
        if self.syncache.buckets.is_empty() {
            return;
        }
        let b = self.syncache.bucket_of(tuple);
        let entries = &mut self.syncache.buckets[b].entries;
        if let Some(i) = entries.iter().position(|&e| e == id) {
            entries.remove(i);
        }
    }

    fn cookies_only(&self, cx: &PassiveCtx<'_>) -> bool {
        let c = cx.config;
        c.freebsd_syncookies && (c.freebsd_syncookies_only || self.syncache.paused(cx.now))
    }

    /// `syncache_drop` of a bucket's oldest entry, stamping the overflow.
    fn evict_oldest(&mut self, cx: &mut PassiveCtx<'_>, b: usize) -> bool {
        let Some(&old) = self.syncache.buckets[b].entries.back() else {
            return false;
        };
        self.syncache.buckets[b].last_overflow = Some(cx.now);
        self.remove_request(cx, old);
        true
    }

    /// The window a FreeBSD SYN-ACK offers for a listener.
    pub(super) fn freebsd_window(&self, c: &crate::Config, lkey: Key) -> u32 {
        synack_window(c, self.listeners.get(lkey).map_or(0, |l| l.rcvbuf))
    }
}

/// A SYN with no entry (`syncache_add`).
pub(super) fn on_syn(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Passive {
    if !t.listeners.contains(lkey) {
        return Passive::Drop;
    }
    t.syncache_ready(cx);
    let cookies = cx.config.freebsd_syncookies;
    let b = t.syncache.bucket_of(&tuple);
    let mut store = !t.cookies_only(cx);
    if store && t.requests.len() >= cx.config.syncache_cachelimit as usize {
        // The zone is exhausted: this bucket's oldest makes room, if it has one.
        cx.bsd.sc_zonefail += 1;
        if t.evict_oldest(cx, b) {
            t.syncache.pause(cx);
        }
        if t.requests.len() >= cx.config.syncache_cachelimit as usize {
            if !cookies {
                cx.counters.listen_drops += 1;
                return Passive::Drop;
            }
            store = false;
        }
    }
    let (wscale, sack, _) = syn_options(cx.config, seg);
    let iss = if cookies {
        cx.bsd.sc_sendcookie += 1;
        let opts = CookieOpts {
            mss: t.clamp_peer_mss(lkey, seg.options.mss).unwrap_or(0),
            wscale,
            sack,
        };
        SeqNumber(t.syncache.cookie(cx.now, &tuple, seg.seq.0, opts))
    } else {
        cx.secrets.isn(&tuple, cx.now)
    };
    if !store {
        cx.counters.syncookies_sent += 1;
        // Nothing stored: the SYN-ACK a new entry's would be.
        return t.first_synack(cx, lkey, tuple, seg, iss, None);
    }
    // syncache_insert: a full bucket loses its oldest entry and pauses the cache.
    if t.syncache.buckets[b].entries.len() >= cx.config.syncache_bucketlimit as usize {
        t.syncache.pause(cx);
        t.evict_oldest(cx, b);
    }
    let Some(id) = t.add_request(cx, lkey, tuple, seg, iss, request_rto(0)) else {
        return Passive::Drop;
    };
    t.syncache.buckets[b].entries.push_front(id);
    cx.bsd.sc_added += 1;
    t.first_synack(cx, lkey, tuple, seg, iss, None)
}

/// A segment for an entry (`syncache_add` for a SYN, `syncache_chkrst` for an RST,
/// `syncache_expand` for an ACK), as `tcp_input` sorts them for a listener.
pub(super) fn on_request_segment(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    tuple: FourTuple,
    ip: IpRepr,
    seg: &TcpRepr<'_>,
) -> Passive {
    let Some(req) = t.requests.get(id) else {
        return Passive::Drop;
    };
    let f = seg.flags;
    if t.cookies_only(cx) {
        // No lookup in cookies-only mode: the entry is invisible until a timer drops it.
        if !t.listeners.contains(req.listener) {
            return if f.rst() {
                Passive::Drop
            } else {
                cx.rst(ip, seg)
            };
        }
        return t.on_listener_segment(cx, req.listener, tuple, ip, seg, false);
    }
    if f.rst() {
        return check_rst(t, cx, id, &req, tuple, seg);
    }
    if f.syn() && f.ack() {
        // A SYN-ACK to a listening socket.
        return cx.rst(ip, seg);
    }
    if f.syn() {
        if f.fin() && cx.config.bsd_drop_synfin {
            return Passive::Drop;
        }
        // Duplicate SYN: resend, and restart the schedule (no check of its ISN).
        cx.bsd.sc_dupsyn += 1;
        t.requests.clear_timeouts(id);
        t.requests.rearm(id, cx.now, request_rto(0));
        if let Some(r) = t.requests.get_mut(id) {
            r.set_resent();
        }
        return t.request_synack(cx, id);
    }
    if !f.ack() {
        return Passive::Drop;
    }
    expand(t, cx, id, &req, tuple, ip, seg)
}

/// `syncache_chkrst`: an RST in the window drops the entry only when exactly at IRS+1 (or
/// anywhere with `insecure_rst`); elsewhere in the window it gets a challenge ACK.
fn check_rst(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Passive {
    let nxt = req.irs + 1;
    let wnd = t.freebsd_window(cx.config, req.listener);
    let in_window = (seg.seq >= nxt && seg.seq < nxt + wnd) || (wnd == 0 && seg.seq == nxt);
    if !in_window {
        cx.bsd.badrst += 1;
        return Passive::Drop;
    }
    if cx.config.bsd_insecure_rst || seg.seq == nxt {
        t.remove_request(cx, id);
        cx.bsd.sc_reset += 1;
        cx.counters.embryonic_rsts += 1;
        cx.counters.attempt_fails += 1;
        return Passive::Drop;
    }
    cx.bsd.badrst += 1;
    t.ack_for_request(cx, req, tuple, true)
}

/// `syncache_expand` with an entry: timestamp checks leave the entry; otherwise it leaves
/// the cache, and a wrong ACK or sequence number is answered with RST.
#[allow(clippy::too_many_arguments)]
fn expand(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
    tuple: FourTuple,
    ip: IpRepr,
    seg: &TcpRepr<'_>,
) -> Passive {
    let seg_ts = seg.options.timestamps;
    if let (Some(recent), Some(ts)) = (req.ts_recent(), seg_ts) {
        // PAWS.
        if (ts.tsval.wrapping_sub(recent) as i32) < 0 {
            return Passive::Drop;
        }
    }
    if req.ts_recent().is_some() && seg_ts.is_none() {
        // Timestamps were negotiated and this segment lacks them (RFC 7323 §3.2).
        return Passive::Drop;
    }
    t.remove_request(cx, id);
    let wnd = t.freebsd_window(cx.config, req.listener);
    let closed = !t.listeners.contains(req.listener);
    if closed || seg.ack != req.iss + 1 || seg.seq <= req.irs || seg.seq > req.irs + wnd {
        // (A listener closed since: no socket for the segment, RST as for any.)
        return cx.rst(ip, seg);
    }
    if let Some(refused) = solisten_clone(t, cx, req.listener, ip, seg) {
        return refused;
    }
    cx.bsd.sc_completed += 1;
    Passive::Child(Child {
        listener: req.listener,
        tuple,
        iss: req.iss,
        irs: req.irs,
        neg: Negotiated {
            peer_mss: req.peer_mss(),
            peer_wscale: req.peer_wscale(),
            sack: req.sack(),
            ts_recent: req.ts_recent().and(seg_ts.map(|ts| ts.tsval)),
            rtt: req.rtt(cx.now),
            rcvbuf: t.listener_rcvbuf(cx.config, req.listener),
        },
    })
}

/// `solisten_clone`: a listener holding more than 3q/2 completed connections takes no
/// more (`sol_qlen > 3 * sol_qlimit / 2`). `Some` is the refusal.
fn solisten_clone(
    t: &ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    ip: IpRepr,
    seg: &TcpRepr<'_>,
) -> Option<Passive> {
    let full = match t.listeners.get(lkey) {
        Some(l) => l.accept.len() as u64 > 3 * u64::from(l.backlog) / 2,
        None => true,
    };
    if !full && !cx.table_full(t.requests.len()) {
        return None;
    }
    cx.bsd.listendrop += 1;
    cx.bsd.sc_aborted += 1;
    cx.listen_overflow();
    Some(match cx.config.syncache_rst_on_sock_fail {
        true => cx.rst(ip, seg),
        false => Passive::Drop,
    })
}

/// An ACK with no entry: a returning cookie? Checked in cookies-only mode, or when
/// cookies are on and this bucket overflowed in the last 15 s. `None`: answer with RST.
pub(super) fn cookie_ack(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Option<Passive> {
    let c = cx.config;
    if !c.freebsd_syncookies {
        return None;
    }
    t.syncache_ready(cx);
    if !t.cookies_only(cx) {
        let b = t.syncache.bucket_of(&tuple);
        let recent = t.syncache.buckets[b]
            .last_overflow
            .is_some_and(|at| cx.now <= at + LIFETIME);
        if !recent {
            return None;
        }
    }
    let opts = t.syncache.check(cx.now, &tuple, seg.seq.0, seg.ack.0)?;
    cx.bsd.sc_recvcookie += 1;
    cx.counters.syncookies_recv += 1;
    let ip = IpRepr {
        src: tuple.local.ip(),
        dst: tuple.remote.ip(),
        hop_limit: c.ip_default_ttl,
    };
    if let Some(refused) = solisten_clone(t, cx, lkey, ip, seg) {
        return Some(refused);
    }
    cx.bsd.sc_completed += 1;
    let ts = seg.options.timestamps.filter(|_| c.tcp_timestamps.on());
    Some(Passive::Child(Child {
        listener: lkey,
        tuple,
        iss: seg.ack - 1,
        irs: seg.seq - 1,
        neg: Negotiated {
            peer_mss: Some(opts.mss),
            peer_wscale: opts.wscale.filter(|_| c.tcp_window_scaling),
            sack: opts.sack && c.tcp_sack,
            ts_recent: ts.map(|ts| ts.tsval),
            rtt: None,
            rcvbuf: t.listener_rcvbuf(c, lkey),
        },
    }))
}

/// The bucket timer (`syncache_timer`): while paused every entry of the bucket goes; an
/// entry past `rexmtlimit` resends goes (stale); others get their SYN-ACK again.
pub(super) fn on_timer(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
) -> Passive {
    cx.counters.timeouts += 1;
    t.syncache_ready(cx);
    if t.syncache.paused(cx.now) {
        let b = t.syncache.bucket_of(&req.tuple(cx.addrs));
        let ids: Vec<ReqId> = t.syncache.buckets[b].entries.iter().copied().collect();
        for id in ids {
            t.remove_request(cx, id);
        }
        return Passive::Drop;
    }
    let n = req.num_timeout();
    if n >= cx.config.syncache_rexmtlimit {
        t.remove_request(cx, id);
        cx.bsd.sc_stale += 1;
        return Passive::Drop;
    }
    cx.bsd.sc_retransmitted += 1;
    let out = t.resend_synack(cx, id);
    t.requests.bump_timeout(id);
    t.requests
        .rearm(id, cx.now, request_rto(n.saturating_add(1)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> FourTuple {
        FourTuple {
            local: "10.0.0.1:80".parse().unwrap(),
            remote: "10.0.0.2:40000".parse().unwrap(),
        }
    }

    fn cache() -> Syncache {
        let mut s = Syncache::new(Secret::new(7, 9));
        s.buckets = (0..512).map(|_| Bucket::default()).collect();
        s
    }

    #[test]
    fn cookie_round_trip_and_lifetime() {
        let mut s = cache();
        let opts = CookieOpts {
            mss: 1450,
            wscale: Some(7),
            sack: true,
        };
        let t0 = Instant::from_secs(100);
        let irs = 0x1234_5678;
        let iss = s.cookie(t0, &tuple(), irs, opts);
        let mut got = |secs| s.check(Instant::from_secs(secs), &tuple(), irs + 1, iss + 1);
        // Rounded down to the tables: 1440 and 7.
        let want = Some(CookieOpts {
            mss: 1440,
            wscale: Some(7),
            sack: true,
        });
        // Made in the epoch 90-105 s: valid to the end of the next one (120 s).
        assert_eq!(got(100), want);
        assert_eq!(got(119), want);
        assert_eq!(got(120), None);
        // Back in the epoch it was made (a secret derived anew gives the same answer).
        assert_eq!(got(100), want);
        // Any change of tuple, ISN or cookie bits fails.
        assert_eq!(s.check(t0, &tuple(), irs + 2, iss + 1), None);
        assert_eq!(s.check(t0, &tuple(), irs + 1, iss + 2), None);
        assert_eq!(s.check(t0, &tuple(), irs + 1, (iss ^ 0x100) + 1), None);
    }

    #[test]
    fn cookie_tables() {
        let mut s = cache();
        let t0 = Instant::from_secs(1);
        for (mss, wscale, want_mss, want_ws) in [
            (0, None, 216, None),
            (535, Some(0), 216, Some(0)),
            (1460, Some(14), 1460, Some(8)),
            (1300, Some(3), 1200, Some(2)),
        ] {
            let opts = CookieOpts {
                mss,
                wscale,
                sack: false,
            };
            let iss = s.cookie(t0, &tuple(), 5, opts);
            let got = s.check(t0, &tuple(), 6, iss + 1).unwrap();
            assert_eq!(
                (got.mss, got.wscale),
                (want_mss, want_ws),
                "{mss} {wscale:?}"
            );
        }
    }

    #[test]
    fn schedule_and_clamp() {
        let secs: Vec<u64> = (0..5)
            .map(|n| request_rto(n).total_millis() / 1000)
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16]);
        assert_eq!(clamp_backlog(-1, 128), 128);
        assert_eq!(clamp_backlog(1000, 128), 128);
        assert_eq!(clamp_backlog(0, 128), 0);
    }
}
