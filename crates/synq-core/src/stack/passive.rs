//! The stack's side of the passive open: it lends the listen table what it needs for one
//! call, applies the table's answer (send a segment, or make the completed connection),
//! and offers the listener socket options.

use super::{ListenerHandle, Owner, Slot, Stack};
use crate::conn::Connection;
use crate::listener::{
    defer_retrans_to_secs, defer_secs_to_retrans, Child, ListenTable, Model, Passive, PassiveCtx,
};
use crate::{Instant, SynRecvInfo};
use synq_wire::TcpRepr;

impl Stack {
    /// The listen table and what it borrows from the stack for one call.
    pub(super) fn passive(&mut self, now: Instant) -> (&mut ListenTable, PassiveCtx<'_>) {
        (
            &mut self.listen,
            PassiveCtx {
                now,
                config: &self.config,
                counters: &mut self.counters,
                bsd: &mut self.bsd_counters,
                rng: &mut self.rng,
                secrets: &self.secrets,
                addrs: &self.addrs,
                conns: self.conns.len(),
                hashed: &self.hashed,
                control: &mut self.control,
            },
        )
    }

    /// Carry out what the listen table decided. `seg` is the segment that completed a
    /// handshake (it may carry data or FIN for the new connection).
    #[inline]
    pub(super) fn apply(&mut self, now: Instant, p: Passive, seg: Option<&TcpRepr<'_>>) {
        match p {
            Passive::Drop | Passive::Sent => {}
            Passive::Child(child) => self.make_child(now, child, seg),
        }
    }

    /// The handshake completed: a connection joins the accept queue's tail. Out of line,
    /// so that `apply` stays small enough to inline into `Stack::input`.
    #[inline(never)]
    fn make_child(&mut self, now: Instant, c: Child, seg: Option<&TcpRepr<'_>>) {
        let ts_offset = self.secrets.ts_offset(&c.tuple, self.config.tcp_timestamps);
        let tuple_hash = self.by_tuple.hash_known(&c.tuple, &self.hashed);
        let config = &self.config;
        let key = self.conns.insert_with(|| Slot {
            conn: Connection::accept(c.tuple, config, now, c.iss, c.irs, c.neg, ts_offset),
            armed: None,
            in_tx: false,
            in_events: false,
            unaccepted: true,
            hashed: true,
            tuple_hash,
            in_tw: false,
            metrics_saved: false,
        });
        if let (Some(seg), Some(slot)) = (seg, self.conns.get_mut(key)) {
            slot.conn.set_initial_window(seg);
        }
        self.by_tuple.insert(key, tuple_hash);
        self.counters.passive_opens += 1;
        if let Some(seg) = seg {
            let (conns, mut ctx) = self.ctx(now);
            if let Some(slot) = conns.get_mut(key) {
                // The ACK may carry data or FIN.
                let _ = slot.conn.on_segment(&mut ctx, seg);
            }
        }
        self.listen.enqueue(c.listener, key);
        self.notify_listener(c.listener);
        self.touch(now, key);
    }

    pub(super) fn notify_listener(&mut self, lkey: crate::slab::Key) {
        if let Some(l) = self.listen.get_mut(lkey) {
            if !l.event_pending && l.accept.len() > 0 {
                l.event_pending = true;
                self.events.push_back(Owner::Listener(lkey));
            }
        }
    }

    // ---------------------------------------------------------- socket API

    /// `setsockopt(TCP_DEFER_ACCEPT, secs)`: a bare final ACK does not complete the handshake
    /// until data arrives or the deferral (rounded to SYN-ACK retransmissions) ends. Returns
    /// the value `getsockopt` reads back (Linux rounds 2 up to 3). Read when a final ACK
    /// or a request timer comes, so setting it changes nothing at once and takes no `now`.
    pub fn set_defer_accept(&mut self, l: ListenerHandle, secs: u32) -> Option<u32> {
        let listener = self.listen.get_mut(l.0)?;
        listener.defer_accept = defer_secs_to_retrans(secs);
        Some(defer_retrans_to_secs(listener.defer_accept))
    }

    /// `getsockopt(TCP_DEFER_ACCEPT)`.
    pub fn defer_accept(&self, l: ListenerHandle) -> Option<u32> {
        Some(defer_retrans_to_secs(self.listen.get(l.0)?.defer_accept))
    }

    /// `setsockopt(TCP_MAXSEG)` on a listener (0 clears it): its SYN-ACKs advertise at most
    /// this MSS and its connections send segments no larger (Linux `user_mss`, which
    /// clamps `mss_clamp` and the advertised MSS). Linux takes 88..=32767.
    pub fn set_listener_mss(&mut self, l: ListenerHandle, mss: u16) -> Option<()> {
        self.listen.get_mut(l.0)?.user_mss = mss;
        Some(())
    }

    /// `getsockopt(TCP_MAXSEG)` on a listener: the value set, or 0.
    pub fn listener_mss(&self, l: ListenerHandle) -> Option<u16> {
        Some(self.listen.get(l.0)?.user_mss)
    }

    /// `setsockopt(SO_RCVBUF, bytes)` on a listener: Linux keeps twice the value (after
    /// capping it at `net.core.rmem_max`; at least SOCK_MIN_RCVBUF, about 4608 bytes) and
    /// locks it: its SYN-ACKs offer half of it as their window, scale by it (not by
    /// `tcp_rmem[2]`), and its connections keep that buffer, untuned. Returns what
    /// `getsockopt` reads back.
    pub fn set_listener_rcvbuf(&mut self, l: ListenerHandle, bytes: u32) -> Option<u32> {
        self.listen.set_rcvbuf(&self.config, l.0, bytes)
    }

    /// `setsockopt(TCP_SYNCNT)` on a listener: SYN-ACK retransmissions for its requests
    /// (0 means `tcp_synack_retries`). Read when a request timer fires, so setting it
    /// changes nothing at once and takes no `now`.
    pub fn set_syncnt(&mut self, l: ListenerHandle, n: u8) -> Option<()> {
        self.listen.get_mut(l.0)?.syncnt = n;
        Some(())
    }

    /// Every half-open request (`ss -nt state syn-recv`). Cookie handshakes hold none.
    pub fn syn_recv(&self) -> impl Iterator<Item = SynRecvInfo> + '_ {
        self.listen.syn_recv(&self.addrs)
    }

    /// Heap bytes the request table holds: record chunks, free list, IPv6 address chunks,
    /// hash index and timer deadlines (allocator overhead aside).
    pub fn request_table_bytes(&self) -> usize {
        self.listen.requests.heap_bytes()
    }

    /// Bytes one half-open request from an IPv4 peer costs: its record, its 4-byte
    /// hash-index word and its 4-byte timer deadline, before container slack and the tree
    /// over the deadlines (a quarter byte). An IPv6 peer adds 12 bytes of its address.
    pub const fn request_entry_bytes() -> usize {
        Self::request_record_bytes() + 4 + 4
    }

    /// Bytes of one stored request record.
    pub const fn request_record_bytes() -> usize {
        size_of::<crate::request::Rec>()
    }

    /// Change the backlog model (takes effect for later SYNs, as a sysctl write does).
    pub fn set_model(&mut self, model: Model) {
        self.config.model = model;
    }

    /// When listener `l` last sent a SYN cookie (Linux's `tcp_synq_overflow` stamp): it
    /// checks ACKs as cookies only within two minutes of it.
    pub fn cookie_stamp(&self, l: ListenerHandle) -> Option<Instant> {
        self.listen.get(l.0).and_then(|l| l.last_overflow)
    }

    /// Take a sibling listener's stamp when it is newer: Linux keeps one stamp per
    /// SO_REUSEPORT group (`reuse->synq_overflow_ts`), so a cookie one socket sent
    /// validates on any socket of the group.
    pub fn share_cookie_stamp(&mut self, l: ListenerHandle, stamp: Instant) {
        if let Some(l) = self.listen.get_mut(l.0) {
            if l.last_overflow.is_none_or(|t| t < stamp) {
                l.last_overflow = Some(stamp);
            }
        }
    }

    /// The FreeBSD model's syncache counters, under their `netstat -s` (`struct tcpstat`)
    /// names. The other models leave them at zero.
    pub fn freebsd_counters(&self) -> &crate::counters::FreeBsdCounters {
        &self.bsd_counters
    }
}
