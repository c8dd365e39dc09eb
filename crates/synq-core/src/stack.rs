//! The stack: demultiplexing, listeners, timers, transmit scheduling and the socket API.

mod audit;
mod index;
mod passive;
mod timers;

pub use crate::listener::SynRecvInfo;

use crate::challenge::ChallengeBudget;
use crate::config::Config;
use crate::conn::{emit, ev, rst_reply, ConnInfo, Connection, Ctx, Disposition, State};
use crate::cookie::CookieKeys;
use crate::counters::{Counters, FreeBsdCounters};
use crate::error::{AcceptError, CloseError, ConnectError, ListenError, RecvError, SendError};
use crate::hash::{FourTuple, Secret, Secrets, SeededState};
use crate::listener::ListenTable;
use crate::slab::{Key, Slab};
use crate::Instant;
use core::net::{IpAddr, SocketAddr};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use synq_wire::{
    ChecksumMode, Error as WireError, IpRepr, Ipv4Packet, Ipv6Packet, TcpPacket, TcpRepr,
};

/// A connection, as the application holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnHandle(Key);

/// A listening socket, as the application holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerHandle(pub(crate) Key);

/// Readiness and lifecycle events, drained with [`Stack::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake of a `connect()` completed.
    Connected(ConnHandle),
    /// Data, end of stream or an error can be read.
    Readable(ConnHandle),
    /// Send buffer space freed up.
    Writable(ConnHandle),
    /// The connection ended (TIME_WAIT or CLOSED): check [`Stack::info`] for the error.
    Closed(ConnHandle),
    /// The listener's accept queue is non-empty (EPOLLIN on a listener).
    AcceptReady(ListenerHandle),
}

/// What `ss -lnt` shows for a listener, plus the SYN-RECV count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerInfo {
    /// Local address.
    pub local: SocketAddr,
    /// Recv-Q: established connections waiting for accept().
    pub recv_q: u32,
    /// Send-Q: the backlog after the somaxconn clamp.
    pub send_q: u32,
    /// Half-open requests held (rows of `ss -nt state syn-recv`).
    pub syn_recv: u32,
    /// When `listen()` opened the listener (a second `listen()` keeps the first time).
    pub since: Instant,
    /// The longest the accept queue has been since listen().
    pub peak_recv_q: u32,
    /// The most half-open requests held at once since listen().
    pub peak_syn_recv: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Conn(Key),
    Listener(Key),
}

/// Per-connection bookkeeping the stack keeps next to the TCB.
#[derive(Debug)]
struct Slot {
    conn: Connection,
    /// Deadline registered in the timer set.
    armed: Option<Instant>,
    in_tx: bool,
    in_events: bool,
    /// Sitting in a listener's accept queue (no application handle yet).
    unaccepted: bool,
    /// Still in the 4-tuple map.
    hashed: bool,
    /// The 32 bits of the tuple's index hash the index keeps, so removal needs no SipHash.
    tuple_hash: u32,
    /// Counted against `tcp_max_tw_buckets`.
    in_tw: bool,
    /// The peer's RTT was recorded (once, when the connection ended).
    metrics_saved: bool,
}

/// Entries the control queue and the due lists of `handle_timeout` keep room for once a
/// burst (thousands of SYN-ACKs due at once) has passed.
const BURST_KEEP: usize = 256;

/// A sans-IO TCP/IP stack. See the crate documentation for the calling contract.
pub struct Stack {
    config: Config,
    counters: Counters,
    bsd_counters: FreeBsdCounters,
    addrs: Vec<IpAddr>,
    conns: Slab<Slot>,
    by_tuple: index::ConnIndex,
    /// Listeners, half-open requests, cookie keys and peer metrics.
    listen: ListenTable,
    /// Connection timers (request timers live in the request table).
    timers: timers::Timers,
    control: ControlQueue,
    tx_ready: VecDeque<Key>,
    events: VecDeque<Owner>,
    /// Entries in `events` whose connection is gone (freed before its events were polled).
    stale_events: usize,
    secrets: Secrets,
    rng: ChaCha8Rng,
    challenge: ChallengeBudget,
    orphans: u32,
    time_wait: u32,
    /// Scratch for `handle_timeout`, kept to avoid an allocation per call.
    due: Vec<Key>,
    due_reqs: Vec<crate::request::ReqId>,
    /// The last 4-tuple hashed for the connection index and request table (the same keyed
    /// hash): a packet's tuple is looked up in both, then a request or a child is filed
    /// under it, and each reuses this instead of hashing again.
    hashed: Option<(FourTuple, u64)>,
    /// The packet being handled's tuple and hash, when `handle_packets` computed them.
    hashed_in: Option<(FourTuple, u64)>,
}

/// Stale event entries tolerated before a sweep (a sweep walks the whole queue).
pub(crate) const STALE_EVENTS_MIN: usize = 64;

/// Stateless replies (SYN-ACKs, RSTs, ACKs for no connection) waiting for `poll_transmit`.
pub(crate) type ControlQueue = VecDeque<(IpRepr, TcpRepr<'static>)>;

/// Queue a stateless reply as Linux counts it, or drop it on a full queue. `ip` is already
/// the reply's addressing.
#[inline]
pub(crate) fn queue_reply(
    control: &mut ControlQueue,
    counters: &mut Counters,
    cap: u32,
    ip: IpRepr,
    tcp: TcpRepr<'static>,
    counted_rst: bool,
) {
    if control.len() >= cap as usize {
        counters.tx_queue_drops += 1;
        return;
    }
    if tcp.flags.syn() {
        counters.synacks_sent += 1;
    }
    if counted_rst && tcp.flags.rst() {
        counters.out_rsts += 1;
    }
    counters.out_segs += 1;
    control.push_back((ip, tcp));
}

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("addrs", &self.addrs)
            .field("connections", &self.conns.len())
            .field("listeners", &self.listen.listeners.len())
            .field("requests", &self.listen.requests.len())
            .finish_non_exhaustive()
    }
}

/// A packet's IP layer, checked: (source, destination, TCP bytes).
type IpParts<'a> = (IpAddr, IpAddr, &'a [u8]);

impl Stack {
    /// A stack with `config`; every random choice (ISN keys, timestamp offsets, ephemeral
    /// ports, hash keys) derives from `seed`.
    pub fn new(config: Config, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut k = || rng.next_u64();
        let hash = SeededState::new(k(), k());
        let isn_secret = Secret::new(k(), k());
        // Drawn and unused since the ISN's hash also gives the timestamp offset: later draws
        // (cookie keys, ports) stay as they were.
        let _ = (k(), k());
        let cookie_keys = CookieKeys {
            k0: Secret::new(k(), k()),
            k1: Secret::new(k(), k()),
        };
        // Derived, not drawn: every later draw of `rng` stays as it was.
        let syncache_key = cookie_keys.k1.derive(0x5359_4e43);
        Self {
            config,
            counters: Counters::default(),
            bsd_counters: FreeBsdCounters::default(),
            addrs: Vec::new(),
            conns: Slab::new(),
            by_tuple: index::ConnIndex::new(hash),
            listen: ListenTable::new(hash, cookie_keys, syncache_key),
            timers: timers::Timers::default(),
            control: VecDeque::new(),
            tx_ready: VecDeque::new(),
            events: VecDeque::new(),
            stale_events: 0,
            secrets: Secrets { isn: isn_secret },
            rng,
            orphans: 0,
            time_wait: 0,
            due: Vec::new(),
            due_reqs: Vec::new(),
            hashed: None,
            hashed_in: None,
            // Its own stream: the draws of `rng` (ports, keys) stay as they were.
            challenge: ChallengeBudget::new(seed ^ 0x6368_616c_6c65_6e67),
        }
    }

    /// Move the random choices (ephemeral ports, BSD drop picks, the challenge-ACK budget)
    /// to shard `shard`'s own stream, keeping every secret drawn from the seed (see
    /// [`Stack::new_shard`]). Shard 0 keeps the stream [`Stack::new`] gave it.
    pub(crate) fn set_rng_stream(&mut self, shard: u32) {
        if shard != 0 {
            self.rng.set_stream(u64::from(shard));
            self.challenge.set_stream(shard);
        }
    }

    /// Own `addr`: packets to it are ours, and connect() may use it as a source.
    pub fn add_address(&mut self, addr: IpAddr) {
        if !self.addrs.contains(&addr) {
            self.addrs.push(addr);
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Change the configuration; takes effect for later events, as a sysctl write does.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// The counters, under their nstat names.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn ctx(&mut self, now: Instant) -> (&mut Slab<Slot>, Ctx<'_>) {
        (
            &mut self.conns,
            Ctx {
                now,
                config: &self.config,
                counters: &mut self.counters,
                challenge: &mut self.challenge,
            },
        )
    }

    // ---------------------------------------------------------------- input

    /// Hand the stack one IP packet received at `now`. Malformed packets are counted and
    /// dropped; this never panics on any input.
    // Kept out of line so profiles can count packets by this symbol (one call per packet).
    #[inline(never)]
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        self.input(now, bytes, ChecksumMode::Verify);
    }

    /// As [`Stack::handle_packet`] for a packet whose TCP checksum the device vouches for: it
    /// verified it, or the packet comes from the local kernel with the checksum left for
    /// offload to fill (a TUN device's `VIRTIO_NET_HDR_F_NEEDS_CSUM`), so the field holds
    /// only the pseudo-header sum. Every other check still applies.
    pub fn handle_packet_verified(&mut self, now: Instant, bytes: &[u8]) {
        self.input(now, bytes, ChecksumMode::Ignore);
    }

    /// Packets that arrived together at `now`, in order, each with whether the device
    /// vouched for its TCP checksum (as [`Stack::handle_packet_verified`]). The same as
    /// handing them over one by one, but a batch's 4-tuples are hashed first and the
    /// request index words their lookups start at loaded together: under a SYN flood whose
    /// half-open table outgrows the cache, the batch's cache misses overlap instead of each
    /// SYN waiting for its own.
    pub fn handle_packets<'a>(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = (&'a [u8], bool)>,
    ) {
        let mut packets = packets.into_iter();
        loop {
            let mut batch: [(&[u8], bool); LOOKAHEAD] = [(&[], false); LOOKAHEAD];
            let n = batch
                .iter_mut()
                .zip(packets.by_ref())
                .map(|(slot, p)| *slot = p)
                .count();
            let mut known = [None; LOOKAHEAD];
            // Nothing to look up in an empty request table (a cookie flood): no hashing ahead.
            if self.listen.requests.len() > 0 {
                for (k, &(p, _)) in known.iter_mut().zip(&batch[..n]) {
                    *k = FourTuple::of_packet(p).map(|t| (t, self.by_tuple.hash(&t)));
                }
                self.listen
                    .requests
                    .warm(known[..n].iter().flatten().map(|&(_, h)| h));
            }
            for (&(p, verified), k) in batch[..n].iter().zip(known) {
                self.hashed_in = k;
                let csum = if verified {
                    ChecksumMode::Ignore
                } else {
                    ChecksumMode::Verify
                };
                self.input(now, p, csum);
            }
            self.hashed_in = None;
            if n < LOOKAHEAD {
                return;
            }
        }
    }

    fn input(&mut self, now: Instant, bytes: &[u8], csum: ChecksumMode) {
        self.counters.ip_in_receives += 1;
        let Some((src, dst, payload)) = self.parse_ip(bytes) else {
            return;
        };
        // Used where it was parsed, by reference: moving the segment out copied it with
        // wide loads right after parse's narrow stores (a store-forwarding stall per packet).
        let parsed =
            TcpPacket::new_checked(payload).and_then(|p| TcpRepr::parse(&p, &src, &dst, csum));
        let seg = match &parsed {
            Ok(seg) => seg,
            Err(e) => return self.tcp_error(*e),
        };
        if seg.src_port == 0 || seg.dst_port == 0 || src.is_multicast() || src.is_unspecified() {
            self.counters.in_errs += 1;
            return;
        }
        // The reply's addressing: its source is our address.
        let ip = IpRepr {
            src: dst,
            dst: src,
            hop_limit: self.config.ip_default_ttl,
        };
        let tuple = FourTuple {
            local: SocketAddr::new(dst, seg.dst_port),
            remote: SocketAddr::new(src, seg.src_port),
        };
        let mut reopened = false;
        // One keyed hash serves both tables (none when both are empty: a cookie flood).
        let h = (self.by_tuple.len() > 0 || self.listen.requests.len() > 0).then(|| {
            // Read in place and cleared, not taken: a take copies the whole tuple out.
            let h = crate::hash::cached_hash(&self.hashed_in, &tuple)
                .unwrap_or_else(|| self.by_tuple.hash(&tuple));
            self.hashed_in = None;
            self.hashed = Some((tuple, h));
            h
        });
        let found = h.and_then(|h| self.by_tuple.get_hashed(&self.conns, &tuple, h));
        if let Some(key) = found {
            let (conns, mut ctx) = self.ctx(now);
            let Some(slot) = conns.get_mut(key) else {
                return;
            };
            let disp = slot.conn.on_segment(&mut ctx, seg);
            let listening = disp == Disposition::Reopen && self.listen.find(tuple.local).is_some();
            if disp == Disposition::Reopen {
                if let Some(slot) = self.conns.get_mut(key) {
                    if listening {
                        self.counters.tw_syn_reopen += 1;
                        slot.conn.end_time_wait();
                    } else {
                        slot.conn.ack_now();
                    }
                }
            }
            self.touch(now, key);
            match disp {
                Disposition::Done => return,
                Disposition::Rst(rst) => return self.queue_control(ip, rst, true),
                // TIME_WAIT gave way to the listener below, or stays and re-ACKs.
                Disposition::Reopen if listening => reopened = true,
                Disposition::Reopen => return,
            }
        }
        if let Some(id) = self.listen.find_request(&self.addrs, &tuple, h) {
            let (table, mut cx) = self.passive(now);
            let p = table.on_request_segment(&mut cx, id, tuple, ip, seg);
            return self.apply(now, p, Some(seg));
        }
        if let Some(lkey) = self.listen.find(tuple.local) {
            let (table, mut cx) = self.passive(now);
            let p = table.on_listener_segment(&mut cx, lkey, tuple, ip, seg, reopened);
            return self.apply(now, p, Some(seg));
        }
        self.counters.in_not_for_us += 1;
        if !seg.flags.rst() {
            self.queue_control(ip, rst_reply(seg), true);
        }
    }

    /// The IP layer of a packet, with error counters named as Linux names them.
    fn parse_ip<'a>(&mut self, bytes: &'a [u8]) -> Option<IpParts<'a>> {
        let c = &mut self.counters;
        let (src, dst, proto, payload) = match bytes.first().map(|b| b >> 4) {
            Some(4) => match Ipv4Packet::new_checked(bytes) {
                Ok(p) => {
                    if !p.verify_checksum() {
                        c.ip_in_hdr_errors += 1;
                        return None;
                    }
                    if p.more_frags() || p.frag_offset() != 0 {
                        c.ip_reasm_fails += 1;
                        return None;
                    }
                    let body = bytes
                        .get(p.header_len()..usize::from(p.total_len()))
                        .unwrap_or_default();
                    (
                        IpAddr::V4(p.src_addr()),
                        IpAddr::V4(p.dst_addr()),
                        p.protocol(),
                        body,
                    )
                }
                Err(e) => return ip_error(c, e),
            },
            Some(6) => match Ipv6Packet::new_checked(bytes) {
                Ok(p) => {
                    let body = bytes
                        .get(40..40 + usize::from(p.payload_len()))
                        .unwrap_or_default();
                    (
                        IpAddr::V6(p.src_addr()),
                        IpAddr::V6(p.dst_addr()),
                        p.next_header(),
                        body,
                    )
                }
                Err(e) => return ip_error(c, e),
            },
            _ => {
                c.ip_in_hdr_errors += 1;
                return None;
            }
        };
        if !self.addrs.contains(&dst) {
            c.ip_in_addr_errors += 1;
            return None;
        }
        if proto != 6 {
            c.ip_in_unknown_protos += 1;
            return None;
        }
        c.in_segs += 1;
        Some((src, dst, payload))
    }

    /// Count a segment TCP could not parse, as tcp_v4_rcv counts it: a header cut short is
    /// dropped without TcpInErrs (its `discard_it`), a bad offset or checksum is counted
    /// (`bad_packet`, `csum_error`).
    fn tcp_error(&mut self, e: WireError) {
        let c = &mut self.counters;
        if e == WireError::Truncated {
            c.in_truncated_segs += 1;
            return;
        }
        c.in_errs += 1;
        match e {
            WireError::BadChecksum => c.in_csum_errors += 1,
            WireError::BadDataOffset => c.in_bad_data_offset += 1,
            _ => {}
        }
    }

    /// Queue a stateless reply. `ip` is already the reply's addressing.
    #[inline]
    fn queue_control(&mut self, ip: IpRepr, tcp: TcpRepr<'static>, counted_rst: bool) {
        let cap = self.config.tx_queue_len;
        queue_reply(
            &mut self.control,
            &mut self.counters,
            cap,
            ip,
            tcp,
            counted_rst,
        );
    }

    // -------------------------------------------------- bookkeeping per conn

    /// After anything touched a connection: events, gauges, maps, timers, transmit list.
    fn touch(&mut self, now: Instant, key: Key) {
        self.touch_with(now, key, true);
    }

    /// `touch`, asking `wants_transmit` only if `check_tx` (the caller that just asked
    /// need not: nothing here makes a connection want to send; the TIME_WAIT overflow
    /// below only closes one).
    fn touch_with(&mut self, now: Instant, key: Key, check_tx: bool) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let estab = matches!(slot.conn.state, State::Established | State::CloseWait);
        if estab != slot.conn.counted_estab {
            slot.conn.counted_estab = estab;
            if estab {
                self.counters.curr_estab += 1;
            } else {
                self.counters.curr_estab -= 1;
                // Linux tcp_set_state (RFC 1213 tcpEstabResets): ESTABLISHED or CLOSE_WAIT
                // straight to CLOSED, whatever the cause (RST in or out, timeout).
                if slot.conn.state == State::Closed {
                    self.counters.estab_resets += 1;
                }
            }
        }
        let tw = slot.conn.state == State::TimeWait;
        if tw && !slot.in_tw {
            if i64::from(self.time_wait) >= i64::from(self.config.tcp_max_tw_buckets) {
                // Linux: no TIME_WAIT socket is kept beyond the bucket limit.
                self.counters.tw_overflow += 1;
                slot.conn.abort();
            } else {
                self.time_wait += 1;
                slot.in_tw = true;
            }
        } else if !tw && slot.in_tw {
            self.time_wait -= 1;
            slot.in_tw = false;
        }
        let ended = matches!(slot.conn.state, State::Closed | State::TimeWait);
        if ended && !slot.metrics_saved {
            slot.metrics_saved = true;
            // Record the peer's RTT (Linux `tcp_update_metrics` when a connection ends). The
            // metrics live in other fields than the slot: no second slab lookup.
            if slot.conn.has_rtt()
                && !self
                    .listen
                    .save_metrics(slot.conn.tuple.remote.ip(), self.config.tcp_metrics_entries)
            {
                self.counters.metrics_full += 1;
            }
        }
        if slot.hashed && slot.conn.state == State::Closed {
            slot.hashed = false;
            self.by_tuple.remove(slot.tuple_hash, key);
        }
        if slot.conn.events != 0 && !slot.in_events && !slot.unaccepted && !slot.conn.orphan {
            slot.in_events = true;
            self.events.push_back(Owner::Conn(key));
        }
        if slot.conn.orphan || slot.unaccepted {
            slot.conn.events = 0;
        }
        if slot.conn.state == State::Closed && slot.conn.orphan {
            return self.free(key);
        }
        if check_tx && !slot.in_tx && slot.conn.wants_transmit() {
            slot.in_tx = true;
            self.tx_ready.push_back(key);
        }
        let deadline = slot.conn.deadline().map(|t| t.max(now));
        // A deadline that only moved later keeps its earlier entry: the timer then wakes
        // once early, finds nothing due and re-arms. Every ACK and send pushes the RTO or
        // the probe timeout later, and this spares the timer set a removal and an insertion
        // each time.
        let later = matches!((deadline, slot.armed), (Some(d), Some(a)) if d > a);
        if deadline != slot.armed && !later {
            let old = core::mem::replace(&mut slot.armed, deadline);
            if old.is_some() {
                self.timer_dropped();
            }
            if let Some(new) = deadline {
                self.timers.arm(new, key);
            }
        }
    }

    fn free(&mut self, key: Key) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        let (armed, hashed, h) = (slot.armed, slot.hashed, slot.tuple_hash);
        let (orphan, in_tw, in_events) = (slot.conn.orphan, slot.in_tw, slot.in_events);
        if hashed {
            self.by_tuple.remove(h, key);
        }
        if orphan {
            self.orphans = self.orphans.saturating_sub(1);
        }
        if in_tw {
            self.time_wait -= 1;
        }
        self.conns.discard(key);
        if armed.is_some() {
            self.timer_dropped();
        }
        if in_events {
            self.stale_events += 1;
            // An application that never polls events would let the entries of closed
            // connections pile up without end: past half the queue (and past 64), sweep
            // them out. Amortised, and the queue stays within twice its live entries + 64.
            if self.stale_events > STALE_EVENTS_MIN && self.stale_events * 2 > self.events.len() {
                self.sweep_events();
            }
        }
    }

    /// A connection stopped naming its armed deadline (its `armed` already changed, or it
    /// was freed): the timer set lets that entry go.
    fn timer_dropped(&mut self) {
        let conns = &self.conns;
        self.timers
            .disarm(|t, k| conns.get(k).is_some_and(|s| s.armed == Some(t)));
    }

    /// Drops the event entries of freed connections. Out of line: amortised, and it keeps
    /// `free` small.
    #[cold]
    #[inline(never)]
    fn sweep_events(&mut self) {
        let conns = &self.conns;
        self.events.retain(|o| match *o {
            Owner::Conn(k) => conns.get(k).is_some(),
            Owner::Listener(_) => true,
        });
        self.stale_events = 0;
    }

    // ---------------------------------------------------------------- output

    /// The next packet to send, written into `buf` (cleared first); its length, or `None`
    /// when there is nothing to send now. Call until `None` after every `handle_*` call
    /// and every application call.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        if let Some((ip, tcp)) = self.control.front() {
            // Emitted in place: moving the pair out first copies 136 bytes per SYN-ACK.
            let n = emit(ip, tcp, buf);
            self.control.pop_front();
            if self.control.is_empty() && self.control.capacity() > BURST_KEEP {
                // A burst (thousands of SYN-ACKs due at once) is over: give its room back
                // rather than hold the high-water mark for good.
                self.control.shrink_to(BURST_KEEP);
            }
            self.counters.ip_out_requests += 1;
            return Some(n);
        }
        // Each pass either transmits or removes one entry, so this ends.
        while let Some(&key) = self.tx_ready.front() {
            let mut ctx = Ctx {
                now,
                config: &self.config,
                counters: &mut self.counters,
                challenge: &mut self.challenge,
            };
            let Some(slot) = self.conns.get_mut(key) else {
                self.tx_ready.pop_front();
                continue;
            };
            match slot.conn.poll_transmit(&mut ctx, buf) {
                Some(n) => {
                    ctx.counters.ip_out_requests += 1;
                    if !slot.conn.wants_transmit() {
                        slot.in_tx = false;
                        self.tx_ready.pop_front();
                    }
                    self.touch_with(now, key, false);
                    return Some(n);
                }
                None => {
                    slot.in_tx = false;
                    self.tx_ready.pop_front();
                    self.touch(now, key);
                }
            }
        }
        None
    }

    /// The earliest instant at which [`Stack::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.timers.first();
        match (conn, self.listen.requests.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fire every timer due at `now`. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Take the due set first so a timer re-armed at `now` waits for the next call.
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        while let Some(k) = self.timers.pop_due(now) {
            // The top entry is live: its slot names it until this clears it.
            if let Some(slot) = self.conns.get_mut(k) {
                slot.armed = None;
            }
            self.timer_dropped();
            due.push(k);
        }
        for &key in &due {
            let (conns, mut ctx) = self.ctx(now);
            let Some(slot) = conns.get_mut(key) else {
                continue;
            };
            slot.conn.on_timer(&mut ctx);
            self.touch(now, key);
        }
        keep_room(&mut due);
        self.due = due;
        let mut reqs = core::mem::take(&mut self.due_reqs);
        reqs.clear();
        while let Some(id) = self.listen.requests.pop_due(now) {
            reqs.push(id);
        }
        for &id in &reqs {
            let (table, mut cx) = self.passive(now);
            let p = table.on_request_timer(&mut cx, id);
            self.apply(now, p, None);
        }
        keep_room(&mut reqs);
        self.due_reqs = reqs;
    }

    /// Room the due lists hold (for tests of their bound).
    #[cfg(test)]
    pub(crate) fn due_room(&self) -> usize {
        self.due.capacity() + self.due_reqs.capacity()
    }

    /// Entries in the event queue, live or stale (for tests of its bound).
    #[cfg(test)]
    pub(crate) fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// The next application event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(owner) = self.events.pop_front() {
            match owner {
                Owner::Listener(lkey) => {
                    let Some(l) = self.listen.get_mut(lkey) else {
                        continue;
                    };
                    l.event_pending = false;
                    if l.accept.len() > 0 {
                        return Some(Event::AcceptReady(ListenerHandle(lkey)));
                    }
                }
                Owner::Conn(key) => {
                    let Some(slot) = self.conns.get_mut(key) else {
                        self.stale_events = self.stale_events.saturating_sub(1);
                        continue;
                    };
                    let bits = slot.conn.events;
                    if bits == 0 {
                        slot.in_events = false;
                        continue;
                    }
                    let bit = bits & bits.wrapping_neg();
                    slot.conn.events &= !bit;
                    if slot.conn.events != 0 {
                        self.events.push_front(owner);
                    } else {
                        slot.in_events = false;
                    }
                    let h = ConnHandle(key);
                    return Some(match bit {
                        ev::CONNECTED => Event::Connected(h),
                        ev::READABLE => Event::Readable(h),
                        ev::WRITABLE => Event::Writable(h),
                        _ => Event::Closed(h),
                    });
                }
            }
        }
        None
    }

    // ---------------------------------------------------------- socket API

    /// `listen(2)`: start listening on `local` (an unspecified IP listens on every address).
    /// The backlog is clamped as the [`crate::Model`] says (Linux: negative or above
    /// `net.core.somaxconn` means somaxconn; BSD: negative means 0). Listening again on the
    /// same address only changes the backlog. `now` is recorded as the time the listener
    /// opened ([`ListenerInfo::since`]).
    pub fn listen(
        &mut self,
        now: Instant,
        local: SocketAddr,
        backlog: i32,
    ) -> Result<ListenerHandle, ListenError> {
        if local.port() == 0 {
            return Err(ListenError::InvalidState);
        }
        if !local.ip().is_unspecified() && !self.addrs.contains(&local.ip()) {
            return Err(ListenError::AddrNotAvailable);
        }
        let model = self.config.model;
        let backlog = model.clamp_backlog(backlog, model.somaxconn(&self.config));
        if let Some(key) = self.listen.relisten(local, backlog) {
            return Ok(ListenerHandle(key));
        }
        let bound = |(_, s): (Key, &Slot)| s.hashed && s.conn.tuple.local == local;
        if self.listen.clashes(local) || self.conns.iter().any(bound) {
            return Err(ListenError::AddrInUse);
        }
        Ok(ListenerHandle(self.listen.open(now, local, backlog)))
    }

    /// `accept(2)`: the oldest established connection and its peer address. The connection
    /// gets an application handle at `now`: its events start (Writable, and Readable if
    /// data, end of stream or an error is waiting) and its timers and transmits are
    /// reconciled as after any other socket call.
    pub fn accept(
        &mut self,
        now: Instant,
        l: ListenerHandle,
    ) -> Result<(ConnHandle, SocketAddr), AcceptError> {
        let listener = self.listen.get_mut(l.0).ok_or(AcceptError::NotListening)?;
        let key = listener.accept.pop().ok_or(AcceptError::WouldBlock)?;
        let slot = self.conns.get_mut(key).ok_or(AcceptError::WouldBlock)?;
        slot.unaccepted = false;
        let mut bits = ev::WRITABLE;
        if slot.conn.readable() > 0 || slot.conn.at_eof() || slot.conn.error.is_some() {
            bits |= ev::READABLE;
        }
        slot.conn.events = bits;
        let remote = slot.conn.tuple.remote;
        // Queues the connection's events, as for any socket call.
        self.touch(now, key);
        if self.listen.get(l.0).is_some_and(|l| l.accept.len() > 0) {
            self.notify_listener(l.0);
        }
        Ok((ConnHandle(key), remote))
    }

    /// Stop listening: queued, unaccepted connections are reset (their peers see
    /// ECONNRESET). Half-open requests stay until their timer fires and then vanish, as on
    /// Linux; the single-queue models abort them at once with RST, as 4.4BSD `soclose` does.
    pub fn close_listener(&mut self, now: Instant, l: ListenerHandle) {
        let (table, mut cx) = self.passive(now);
        table.close_requests(&mut cx, l.0);
        let Some(mut listener) = self.listen.remove(l.0) else {
            return;
        };
        let children: Vec<Key> = listener.accept.drain().collect();
        for key in children {
            if let Some(slot) = self.conns.get_mut(key) {
                slot.unaccepted = false;
                slot.conn.orphan = true;
                slot.conn.abort();
                // An orphan until freed, as Linux `inet_child_forget` counts it; `free`
                // takes it off the gauge again.
                self.orphans += 1;
            }
            self.touch(now, key);
        }
    }

    /// `connect(2)` to `remote` from an address of ours of the same family and an ephemeral
    /// port. The SYN goes out on the next `poll_transmit`.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
    ) -> Result<ConnHandle, ConnectError> {
        let local_ip = *self
            .addrs
            .iter()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .ok_or(ConnectError::AddrNotAvailable)?;
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(ConnectError::InvalidInput);
        }
        let [lo, hi] = self.config.ip_local_port_range;
        let span = u32::from(hi - lo) + 1;
        let start = self.rng.next_u32() % span;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let local = SocketAddr::new(local_ip, port);
            let tuple = FourTuple { local, remote };
            let h = self.by_tuple.hash(&tuple);
            if self.by_tuple.get_hashed(&self.conns, &tuple, h).is_none()
                && self
                    .listen
                    .find_request(&self.addrs, &tuple, Some(h))
                    .is_none()
                && self.listen.find(local).is_none()
            {
                self.hashed = Some((tuple, h));
                return self.connect_tuple(now, tuple);
            }
        }
        Err(ConnectError::AddrNotAvailable)
    }

    /// `bind(2)` + `connect(2)`: connect from a chosen local address and port.
    pub fn connect_from(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnHandle, ConnectError> {
        if !self.addrs.contains(&local.ip()) || local.is_ipv4() != remote.is_ipv4() {
            return Err(ConnectError::AddrNotAvailable);
        }
        if remote.port() == 0 || local.port() == 0 || remote.ip().is_unspecified() {
            return Err(ConnectError::InvalidInput);
        }
        let tuple = FourTuple { local, remote };
        if self.by_tuple.get(&self.conns, &tuple).is_some()
            || self
                .listen
                .find_request(&self.addrs, &tuple, None)
                .is_some()
        {
            return Err(ConnectError::AddrInUse);
        }
        self.connect_tuple(now, tuple)
    }

    fn connect_tuple(
        &mut self,
        now: Instant,
        tuple: FourTuple,
    ) -> Result<ConnHandle, ConnectError> {
        if self
            .config
            .table_full(self.conns.len(), self.listen.requests.len())
        {
            self.counters.conn_table_full += 1;
            return Err(ConnectError::NoBuffers);
        }
        let (isn, ts_offset) =
            self.secrets
                .isn_and_ts_offset(&tuple, now, self.config.tcp_timestamps);
        let tuple_hash = self.by_tuple.hash_known(&tuple, &self.hashed);
        let config = &self.config;
        let key = self.conns.insert_with(|| Slot {
            conn: Connection::connect(tuple, config, isn, ts_offset),
            armed: None,
            in_tx: false,
            in_events: false,
            unaccepted: false,
            hashed: true,
            tuple_hash,
            in_tw: false,
            metrics_saved: false,
        });
        self.by_tuple.insert(key, tuple_hash);
        self.counters.active_opens += 1;
        self.touch(now, key);
        Ok(ConnHandle(key))
    }

    fn slot(&mut self, h: ConnHandle) -> Option<&mut Slot> {
        self.conns.get_mut(h.0).filter(|s| !s.conn.orphan)
    }

    /// `send(2)`: queue bytes; returns how many fit (EAGAIN if none).
    pub fn send(&mut self, now: Instant, h: ConnHandle, data: &[u8]) -> Result<usize, SendError> {
        let slot = self.slot(h).ok_or(SendError::BadHandle)?;
        let c = &mut slot.conn;
        if let Some(e) = c.error {
            return Err(e.into());
        }
        match c.state {
            State::SynSent | State::SynReceived => return Err(SendError::WouldBlock),
            State::Closed | State::Listen => return Err(SendError::NotConnected),
            _ if !c.can_send_data() => return Err(SendError::BrokenPipe),
            _ => {}
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = c.send(data);
        self.touch(now, h.0);
        if n == 0 {
            return Err(SendError::WouldBlock);
        }
        Ok(n)
    }

    /// `recv(2)`: read into `buf`; `Ok(0)` is end of stream.
    pub fn recv(
        &mut self,
        now: Instant,
        h: ConnHandle,
        buf: &mut [u8],
    ) -> Result<usize, RecvError> {
        let config = &self.config;
        let slot = self
            .conns
            .get_mut(h.0)
            .filter(|s| !s.conn.orphan)
            .ok_or(RecvError::BadHandle)?;
        let c = &mut slot.conn;
        if c.readable() == 0 {
            if let Some(e) = c.error {
                return Err(e.into());
            }
            if c.at_eof() || buf.is_empty() {
                return Ok(0);
            }
            return match c.state {
                State::SynSent | State::SynReceived => Err(RecvError::WouldBlock),
                State::Closed | State::Listen => Err(RecvError::NotConnected),
                _ => Err(RecvError::WouldBlock),
            };
        }
        let n = c.recv(now, buf, config);
        self.touch(now, h.0);
        Ok(n)
    }

    /// `shutdown(SHUT_WR)`: send FIN after the queued data.
    pub fn shutdown(&mut self, now: Instant, h: ConnHandle) -> Result<(), CloseError> {
        let slot = self.slot(h).ok_or(CloseError::BadHandle)?;
        if !slot.conn.state.is_synchronized() && slot.conn.state != State::SynSent {
            return Err(CloseError::NotConnected);
        }
        slot.conn.shutdown_write();
        self.touch(now, h.0);
        Ok(())
    }

    /// `close(2)`: release the handle. The connection finishes in the background (FIN,
    /// TIME_WAIT); unread received data makes it a reset instead, as on Linux.
    pub fn close(&mut self, now: Instant, h: ConnHandle) -> Result<(), CloseError> {
        if self.slot(h).is_none() {
            return Err(CloseError::BadHandle);
        }
        if self.orphans >= self.config.tcp_max_orphans {
            self.counters.orphan_overflow += 1;
            if let Some(slot) = self.conns.get_mut(h.0) {
                slot.conn.orphan = true;
                slot.conn.abort();
            }
            // Counted while it sends its RST, as Linux's `tcp_close` counts every orphan
            // before `tcp_check_oom`; `free` takes it off again.
            self.orphans += 1;
        } else {
            self.orphans += 1;
            let (conns, mut ctx) = self.ctx(now);
            if let Some(slot) = conns.get_mut(h.0) {
                slot.conn.close(&mut ctx);
            }
        }
        self.touch(now, h.0);
        Ok(())
    }

    /// Abort with RST (`SO_LINGER` 0 then `close`).
    pub fn abort(&mut self, now: Instant, h: ConnHandle) -> Result<(), CloseError> {
        let slot = self.slot(h).ok_or(CloseError::BadHandle)?;
        slot.conn.orphan = true;
        slot.conn.abort();
        self.orphans += 1;
        self.touch(now, h.0);
        Ok(())
    }

    /// `TCP_NODELAY`: send small segments at once instead of waiting for outstanding data
    /// to be acknowledged (Nagle). Turning it on at `now` releases data Nagle was holding,
    /// as Linux pushes pending frames on this setsockopt.
    pub fn set_nodelay(&mut self, now: Instant, h: ConnHandle, on: bool) {
        if let Some(slot) = self.slot(h) {
            slot.conn.nodelay = on;
            self.touch(now, h.0);
        }
    }

    /// `setsockopt(SO_KEEPALIVE)`: probe the peer after `net.ipv4.tcp_keepalive_time` of
    /// silence.
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        h: ConnHandle,
        on: bool,
    ) -> Result<(), crate::error::SockOptError> {
        let config = &self.config;
        let slot = self
            .conns
            .get_mut(h.0)
            .filter(|s| !s.conn.orphan)
            .ok_or(crate::error::SockOptError::BadHandle)?;
        slot.conn.set_keepalive(now, on, config);
        self.touch(now, h.0);
        Ok(())
    }

    /// `setsockopt(TCP_CONGESTION)`: the algorithm this connection uses from now on (its
    /// window carries over, as on Linux).
    pub fn set_congestion(
        &mut self,
        h: ConnHandle,
        algorithm: crate::congestion::Algorithm,
    ) -> Result<(), crate::error::SockOptError> {
        let slot = self.slot(h).ok_or(crate::error::SockOptError::BadHandle)?;
        if slot.conn.cc.algorithm() != algorithm {
            slot.conn.cc = crate::congestion::Controller::new(algorithm);
        }
        Ok(())
    }

    /// Connection state, or `None` for a stale handle.
    pub fn state(&self, h: ConnHandle) -> Option<State> {
        self.conns.get(h.0).map(|s| s.conn.state)
    }

    /// A snapshot of a connection.
    pub fn info(&self, h: ConnHandle) -> Option<ConnInfo> {
        self.conns.get(h.0).map(|s| s.conn.info())
    }

    /// Free space in the send buffer.
    pub fn send_space(&self, h: ConnHandle) -> usize {
        self.conns.get(h.0).map_or(0, |s| s.conn.send_space())
    }

    /// What `ss -lnt` shows for a listener.
    pub fn listener_info(&self, l: ListenerHandle) -> Option<ListenerInfo> {
        let syn = self.listen.requests.counts(l.0);
        self.listen.get(l.0).map(|l| ListenerInfo {
            local: l.local,
            recv_q: l.accept.len() as u32,
            send_q: l.backlog,
            syn_recv: syn.len,
            since: l.since,
            peak_recv_q: l.accept.peak(),
            peak_syn_recv: syn.peak,
        })
    }

    /// Every connection (including unaccepted and orphaned ones).
    pub fn connections(&self) -> impl Iterator<Item = ConnInfo> + '_ {
        self.conns.iter().map(|(_, s)| s.conn.info())
    }

    /// Every listener.
    pub fn listeners(&self) -> impl Iterator<Item = ListenerInfo> + '_ {
        self.listen
            .listeners
            .iter()
            .filter_map(|(k, _)| self.listener_info(ListenerHandle(k)))
    }
}

/// A due list after its timers fired: a burst's room (thousands of requests retransmitting
/// at one instant) goes back rather than stay at the high-water mark for good.
fn keep_room<T>(list: &mut Vec<T>) {
    if list.capacity() > BURST_KEEP {
        list.clear();
        list.shrink_to(BURST_KEEP);
    }
}

/// Count an IP-layer rejection under Linux's name for it.
fn ip_error<T>(c: &mut Counters, e: WireError) -> Option<T> {
    if e == WireError::Truncated {
        c.ip_in_truncated += 1;
    } else {
        c.ip_in_hdr_errors += 1;
    }
    None
}

/// Packets hashed and looked ahead at together by [`Stack::handle_packets`].
const LOOKAHEAD: usize = crate::request::WARM_BATCH;
