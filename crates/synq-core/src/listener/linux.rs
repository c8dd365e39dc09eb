//! Linux's policy: a SYN queue and an accept queue (`tcp_conn_request`,
//! `inet_csk_reqsk_queue_is_full`, `sk_acceptq_is_full`), SYN cookies in Linux's encoding
//! (`cookie_v4_check`) and the request timer with its pruning rule (`reqsk_timer_handler`,
//! `syn_ack_recalc`).

use super::handshake::{syn_options, PassiveCtx, SynAck};
use super::{Child, ListenTable, Model, Passive};
use crate::config::Syncookies;
use crate::conn::Negotiated;
use crate::cookie;
use crate::hash::FourTuple;
use crate::request::{ReqId, Request};
use crate::slab::Key;
use crate::{Duration, Instant};
use synq_wire::{IpRepr, SeqNumber, TcpRepr};

/// `(unsigned)backlog > somaxconn` means somaxconn, so negative values become somaxconn.
pub(super) fn clamp_backlog(backlog: i32, somaxconn: u32) -> u32 {
    if backlog as u32 > somaxconn {
        somaxconn
    } else {
        backlog as u32
    }
}

/// Is the SYN queue full (`inet_csk_reqsk_queue_is_full`)? 6.13+: beyond the backlog;
/// 4.10-6.12: at it.
pub(super) fn syn_queue_full(model: Model, qlen: u32, backlog: u32) -> bool {
    match model {
        Model::Linux410 => qlen >= backlog,
        _ => qlen > backlog,
    }
}

/// min(1 s << n, 120 s).
pub(super) fn request_rto(n: u8) -> Duration {
    Duration::from_secs(1u64 << n.min(7)).min(crate::rtt::RTO_MAX)
}

/// Linux `tcp_synq_overflow`: stamp a cookie sent, at most once a second.
fn stamp_overflow(last: &mut Option<Instant>, now: Instant) {
    match *last {
        Some(t) if now >= t && now < t + Duration::from_secs(1) => {}
        _ => *last = Some(now),
    }
}

/// Linux `tcp_synq_no_recent_overflow`: no cookie sent in the last two minutes.
fn no_recent_overflow(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now > t + Duration::from_secs(60 * u64::from(cookie::MAX_AGE)))
}

/// A SYN for a listener (`tcp_conn_request`, steps in its order).
pub(super) fn on_syn(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
    tw_reopen: bool,
) -> Passive {
    let Some(l) = t.listeners.get(lkey) else {
        return Passive::Drop;
    };
    let qlen = t.requests.counts(lkey).len;
    let cookies = cx.config.tcp_syncookies;
    let mut want_cookie = false;
    if !tw_reopen
        && (cookies == Syncookies::Always || syn_queue_full(cx.config.model, qlen, l.backlog))
    {
        if cookies == Syncookies::Off {
            cx.counters.req_q_full_drop += 1;
            cx.counters.listen_drops += 1;
            return Passive::Drop;
        }
        want_cookie = true;
        cx.counters.req_q_full_do_cookies += 1;
    }
    if l.accept_full() {
        cx.listen_overflow();
        return Passive::Drop;
    }
    if !want_cookie && !tw_reopen && cookies == Syncookies::Off {
        // The last quarter of tcp_max_syn_backlog is kept for peers with a known RTT.
        let max = i64::from(cx.config.tcp_max_syn_backlog);
        if max - i64::from(qlen) < max >> 2 && !t.is_proven(tuple.remote.ip()) {
            cx.counters.listen_drops += 1;
            return Passive::Drop;
        }
    }
    if want_cookie {
        return send_cookie(t, cx, lkey, tuple, seg);
    }
    t.new_request(cx, lkey, tuple, seg)
}

/// A stateless SYN-ACK whose ISS is a cookie (nothing is stored).
fn send_cookie(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Passive {
    let (mut wscale, mut sack, ts) = syn_options(cx.config, seg);
    if ts.is_none() {
        // Without timestamps a cookie has nowhere to keep these (Linux clears them).
        (wscale, sack) = (None, false);
    }
    let peer = t.clamp_peer_mss(lkey, seg.options.mss).unwrap_or(536);
    let (idx, _) = cookie::encode_mss(&tuple, peer);
    let iss = t.cookie_keys.make(&tuple, seg.seq.0, idx, cx.now);
    cx.counters.syncookies_sent += 1;
    if let Some(l) = t.listeners.get_mut(lkey) {
        stamp_overflow(&mut l.last_overflow, cx.now);
    }
    let ts = ts.map(|tsecr| {
        let base = cookie::timestamp(cx.now.total_millis() as u32, wscale, sack);
        (base, tsecr)
    });
    t.synack(
        cx,
        SynAck {
            listener: lkey,
            tuple,
            iss: SeqNumber(iss),
            irs: seg.seq,
            wscale: wscale.is_some(),
            sack,
            ts,
            ts_off: None,
        },
    )
}

/// An ACK to a listener: a SYN cookie's final ACK? (`cookie_v4_check`.) `Some` when the
/// segment was consumed (child made, or dropped on a full accept queue).
pub(super) fn cookie_ack(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Option<Passive> {
    let c = cx.config;
    if !c.tcp_syncookies.on() {
        return None;
    }
    let l = t.listeners.get(lkey)?;
    if no_recent_overflow(l.last_overflow, cx.now) {
        return None;
    }
    let Some(mss) = t.cookie_keys.check(&tuple, seg.seq.0, seg.ack.0, cx.now) else {
        cx.counters.syncookies_failed += 1;
        return None;
    };
    cx.counters.syncookies_recv += 1;
    let (wscale, sack, ts_recent) = match seg.options.timestamps.filter(|_| c.tcp_timestamps.on()) {
        Some(ts) => {
            let tsecr = match ts.tsecr {
                0 => 0,
                e => e.wrapping_sub(cx.secrets.ts_offset(&tuple, c.tcp_timestamps)),
            };
            let (w, s) = cookie::decode_timestamp(tsecr, c.tcp_sack, c.tcp_window_scaling)?;
            (w, s, Some(ts.tsval))
        }
        None => (None, false, None),
    };
    if l.accept_full() {
        // Even with tcp_abort_on_overflow: a cookie ACK overflow is a silent drop.
        cx.listen_overflow();
        return Some(Passive::Drop);
    }
    if cx.table_full(t.requests.len()) {
        return Some(Passive::Drop);
    }
    let neg = Negotiated {
        peer_mss: Some(mss),
        peer_wscale: wscale,
        sack,
        ts_recent,
        rtt: None,
        rcvbuf: t.listener_rcvbuf(c, lkey),
    };
    Some(Passive::Child(Child {
        listener: lkey,
        tuple,
        iss: seg.ack - 1,
        irs: seg.seq - 1,
        neg,
    }))
}

/// A retransmitted SYN restarts the request's timer from its current interval.
pub(super) fn rearm_for_dup_syn(
    t: &mut ListenTable,
    cx: &PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
) {
    let after = request_rto(req.num_timeout());
    t.requests.rearm(id, cx.now, after);
}

/// The final ACK finds the accept queue full: drop it (the request stays, marked acked, and
/// its SYN-ACK is resent), or with `tcp_abort_on_overflow` reset the peer. `None`: room.
pub(super) fn final_ack_overflow(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    tuple: &FourTuple,
    accept_full: bool,
    ip: IpRepr,
    seg: &TcpRepr<'_>,
) -> Option<Passive> {
    if !accept_full {
        return None;
    }
    cx.listen_overflow();
    if cx.config.tcp_abort_on_overflow {
        t.remove_known(cx, id, tuple);
        cx.counters.embryonic_rsts += 1;
        return Some(cx.rst(ip, seg));
    }
    if let Some(r) = t.requests.get_mut(id) {
        r.set_acked();
    }
    Some(Passive::Drop)
}

/// SYN-ACK timer (`reqsk_timer_handler` with `syn_ack_recalc` and the pruning rule).
pub(super) fn on_timer(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
) -> Passive {
    let Some(l) = t.listeners.get(req.listener) else {
        return Passive::Drop;
    };
    cx.counters.timeouts += 1;
    let mut max = if l.syncnt != 0 {
        l.syncnt
    } else {
        cx.config.tcp_synack_retries
    };
    let counts = t.requests.counts(req.listener);
    let qlen = u64::from(counts.len);
    if qlen << 1 > u64::from(l.backlog).max(8) {
        let mut young = u64::from(counts.young) << 1;
        while max > 2 && qlen >= young {
            max -= 1;
            young <<= 1;
        }
    }
    let (n, d, acked) = (req.num_timeout(), l.defer_accept, req.acked());
    let (expire, resend) = if d == 0 {
        (n >= max, true)
    } else {
        (n >= max && (!acked || n >= d), !acked || n >= d - 1)
    };
    if expire {
        t.remove_request(cx, id);
        return Passive::Drop;
    }
    let out = if resend {
        t.resend_synack(cx, id)
    } else {
        Passive::Drop
    };
    t.requests.bump_timeout(id);
    t.requests
        .rearm(id, cx.now, request_rto(n.saturating_add(1)));
    out
}
