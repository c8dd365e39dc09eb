//! 4.4BSD's policy: one queue for half-open and established connections (`sonewconn`'s
//! `qlen + q0len > 3q/2`), SYNs beyond it dropped, embryos reset by the 75 s
//! connection-establishment timer, and FreeBSD's RST checks for an embryo
//! (`syncache_chkrst`), which our bsd models share.

use super::handshake::{reset_request, PassiveCtx};
use super::{ListenTable, Model, Passive};
use crate::hash::FourTuple;
use crate::request::{ReqId, Request};
use crate::slab::Key;
use crate::Duration;
use rand_chacha::rand_core::RngCore;
use synq_wire::TcpRepr;

/// 4.4BSD `TCPTV_KEEP_INIT`: an embryo not established by then is dropped (with RST).
pub(crate) const KEEP_INIT: Duration = Duration::from_secs(75);
/// 4.4BSD's first retransmission timeout with no RTT sample (`TCPTV_SRTTDFLT` 3 s, doubled
/// by the initial `t_rttvar` formula): SYN-ACKs are resent at 6, 18 and 42 s.
const RTO_INIT: Duration = Duration::from_secs(6);

/// Negative means 0, then `min(somaxconn)`.
pub(super) fn clamp_backlog(backlog: i32, somaxconn: u32) -> u32 {
    (backlog.max(0) as u32).min(somaxconn)
}

/// Connections (half-open plus established) a listener holds at most: 4.4BSD
/// floor(3q/2)+1, the textbook `q`.
pub(super) fn limit(model: Model, backlog: u32) -> u64 {
    let q = u64::from(backlog);
    match model {
        Model::Bsd => 3 * q / 2 + 1,
        _ => q,
    }
}

/// The retransmit timer (6 s doubling) until the keep-init timer at 75 s after the SYN.
pub(super) fn request_rto(n: u8, age: Duration) -> Duration {
    let rto = RTO_INIT.saturating_mul(1u64 << n.min(6));
    rto.min(KEEP_INIT - age)
}

/// A SYN for a listener: admitted below the single limit, else dropped in silence (or,
/// with `synq.bsd_drop_incomplete`, a random embryo makes room: FreeBSD 2.2-4.x
/// `sodropablereq`).
pub(super) fn on_syn(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    lkey: Key,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Passive {
    let Some(l) = t.listeners.get(lkey) else {
        return Passive::Drop;
    };
    let syn = t.requests.counts(lkey).len;
    if l.accept.len() as u64 + u64::from(syn) >= limit(cx.config.model, l.backlog) {
        if !(cx.config.bsd_drop_incomplete && syn > 0) {
            cx.listen_overflow();
            return Passive::Drop;
        }
        let pick = cx.rng.next_u32() % syn;
        let victim = t.requests.of_listener(lkey).nth(pick as usize);
        if let Some(id) = victim {
            t.remove_request(cx, id);
        }
    }
    t.new_request(cx, lkey, tuple, seg)
}

/// An in-window RST for an embryo (FreeBSD `syncache_chkrst`, RFC 5961 §3.2): only one
/// exactly at IRS+1 (or anywhere with `insecure_rst`) drops it (`None`); any other is
/// answered with a challenge ACK, rate-limited.
pub(super) fn challenge_rst(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
    tuple: FourTuple,
    seg: &TcpRepr<'_>,
) -> Option<Passive> {
    if cx.config.bsd_insecure_rst || seg.seq == req.irs + 1 {
        return None;
    }
    let gap = Duration::from_millis(u64::from(cx.config.tcp_invalid_ratelimit_ms));
    if t.requests
        .get_mut(id)
        .is_some_and(|r| r.oow_limited(cx.now, gap))
    {
        return Some(Passive::Drop);
    }
    Some(t.ack_for_request(cx, req, tuple, true))
}

/// The retransmit timer resends the SYN-ACK; at 75 s the keep-init timer drops the embryo
/// with RST (4.4BSD `tcp_drop`: it received a SYN).
pub(super) fn on_timer(
    t: &mut ListenTable,
    cx: &mut PassiveCtx<'_>,
    id: ReqId,
    req: &Request,
) -> Passive {
    cx.counters.timeouts += 1;
    let age = req.age(cx.now);
    if age >= KEEP_INIT {
        t.remove_request(cx, id);
        return reset_request(cx, req);
    }
    let out = t.resend_synack(cx, id);
    t.requests.bump_timeout(id);
    let after = request_rto(req.num_timeout().saturating_add(1), age);
    t.requests.rearm(id, cx.now, after);
    out
}
