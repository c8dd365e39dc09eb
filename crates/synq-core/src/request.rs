//! Half-open requests (Linux `request_sock`), kept small: a 40-byte record in a table of
//! fixed-size chunks (no doubling slack), found by 4-tuple through a hash index of 4-byte
//! slot numbers, its timer a 4-byte deadline beside it under a tree of minimums. An IPv4
//! peer's address lives in the record; an IPv6 peer's first 4 bytes do, its other 12 in a
//! side table beside the slot. A request holds what answering the final ACK needs and
//! nothing more.

use crate::hash::{FourTuple, SeededState};
use crate::slab::Key;
use crate::Duration;
use crate::Instant;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use synq_wire::SeqNumber;

mod deadlines;
mod grow;
mod index;
use deadlines::Deadlines;
use grow::{Moving, MOVE_BATCHES};
use index::SlotIndex;

const SACK: u8 = 1;
const ACKED: u8 = 2;
const TS: u8 = 4;
const V6: u8 = 8;
const RESENT: u8 = 16;
const LIVE: u8 = 32;
/// The index generation a record is filed under: the table's `epoch`, or the previous one
/// while the record waits in the index being replaced (`Moving`).
const EPOCH: u8 = 64;

/// A stored half-open request. Addresses are compact: ours as an index into the stack's
/// list, the listener as its slab index alone (its generation is the table's `counts`
/// entry's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rec {
    /// The peer's IPv4 address, or its IPv6 address's first 4 bytes (the other 12 are in
    /// the table's side chunks, at the record's slot).
    remote: u32,
    /// The listener's slab index, or `NO_LISTENER` once it closed.
    listener: u32,
    pub(crate) iss: SeqNumber,
    pub(crate) irs: SeqNumber,
    /// Peer's TSval from its SYN (valid when `has_ts`).
    ts_recent: u32,
    /// Last reply to an invalid segment, in µs (wrapping), plus one; 0 = never.
    last_oow: u32,
    /// First SYN-ACK, in µs (wrapping): the RTT sample and the request's age.
    sent: u32,
    remote_port: u16,
    local_port: u16,
    peer_mss: u16,
    local_ip: u16,
    peer_wscale: u8,
    /// SYN-ACK retransmissions by the timer (Linux `num_timeout`), changed only through
    /// the table so the young count follows.
    num_timeout: u8,
    flags: u8,
}

/// A request as the table hands it out: the record with the peer's address and its
/// listener's key resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    rec: Rec,
    remote_ip: IpAddr,
    /// The listener's key; one no listener has once it closed.
    pub(crate) listener: Key,
}

/// A request's listener field once the listener closed (a slab index no listener reaches:
/// it would take 2^32 listeners).
const NO_LISTENER: u32 = u32::MAX;

/// The generation a `counts` entry holds while no open listener has its slab index.
const CLOSED: u32 = u32::MAX;

/// The key a request of a closed listener resolves to: found in no table.
const GONE: Key = Key {
    index: NO_LISTENER,
    generation: u32::MAX,
};

impl core::ops::Deref for Request {
    type Target = Rec;
    fn deref(&self) -> &Rec {
        &self.rec
    }
}

/// What a new request is made from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewRequest {
    pub(crate) listener: Key,
    pub(crate) tuple: FourTuple,
    pub(crate) local_ip: u16,
    pub(crate) iss: SeqNumber,
    pub(crate) irs: SeqNumber,
    pub(crate) peer_mss: Option<u16>,
    pub(crate) peer_wscale: Option<u8>,
    pub(crate) sack: bool,
    pub(crate) ts_recent: Option<u32>,
}

fn micros32(t: Instant) -> u32 {
    t.total_micros() as u32
}

impl Request {
    pub(crate) fn tuple(&self, addrs: &[IpAddr]) -> FourTuple {
        let local = addrs
            .get(usize::from(self.local_ip))
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        FourTuple {
            local: SocketAddr::new(local, self.local_port),
            remote: SocketAddr::new(self.remote_ip, self.remote_port),
        }
    }
}

impl Rec {
    /// SYN-ACK retransmissions by the timer.
    pub(crate) fn num_timeout(&self) -> u8 {
        self.num_timeout
    }
    pub(crate) fn peer_mss(&self) -> Option<u16> {
        (self.peer_mss != 0).then_some(self.peer_mss)
    }
    pub(crate) fn peer_wscale(&self) -> Option<u8> {
        (self.peer_wscale != u8::MAX).then_some(self.peer_wscale)
    }
    pub(crate) fn sack(&self) -> bool {
        self.flags & SACK != 0
    }
    pub(crate) fn ts_recent(&self) -> Option<u32> {
        (self.flags & TS != 0).then_some(self.ts_recent)
    }
    pub(crate) fn acked(&self) -> bool {
        self.flags & ACKED != 0
    }
    pub(crate) fn set_acked(&mut self) {
        self.flags |= ACKED;
    }
    /// A SYN-ACK was resent (by timer or duplicate SYN): no RTT sample (Karn).
    pub(crate) fn set_resent(&mut self) {
        self.flags |= RESENT;
    }
    /// Handshake RTT, if the SYN-ACK was never resent.
    pub(crate) fn rtt(&self, now: Instant) -> Option<Duration> {
        (self.flags & RESENT == 0)
            .then(|| Duration::from_micros(u64::from(micros32(now).wrapping_sub(self.sent))))
    }
    /// Time since the first SYN-ACK.
    pub(crate) fn age(&self, now: Instant) -> Duration {
        Duration::from_micros(u64::from(micros32(now).wrapping_sub(self.sent)))
    }
    /// Whether a reply to an invalid segment must wait (`tcp_oow_rate_limited`); records
    /// the reply when it may go.
    pub(crate) fn oow_limited(&mut self, now: Instant, gap: Duration) -> bool {
        let now32 = micros32(now);
        if self.last_oow != 0 {
            let since = now32.wrapping_sub(self.last_oow.wrapping_sub(1));
            if u64::from(since) < gap.total_micros() {
                return true;
            }
        }
        self.last_oow = now32.wrapping_add(1).max(1);
        false
    }
}

/// An unused slot.
const EMPTY: Rec = Rec {
    remote: 0,
    listener: NO_LISTENER,
    iss: SeqNumber(0),
    irs: SeqNumber(0),
    ts_recent: 0,
    last_oow: 0,
    sent: 0,
    remote_port: 0,
    local_port: 0,
    peer_mss: 0,
    local_ip: 0,
    peer_wscale: 0,
    num_timeout: 0,
    flags: 0,
};

impl Default for Rec {
    fn default() -> Self {
        EMPTY
    }
}

/// Index words loaded together ahead of their use (a rebuild's records, a batch of
/// packets): enough misses in flight to cover one's latency, few enough for the core's
/// miss buffers.
pub(crate) const WARM_BATCH: usize = 16;

/// Slots per chunk: the tables grow a chunk at a time instead of doubling. A fuzz build
/// takes 16 (the deadline tree's fan-out, which a chunk must be a multiple of), so that
/// the few dozen requests a fuzz input makes at most cross chunk boundaries.
const CHUNK: usize = if cfg!(fuzzing) { 16 } else { 1024 };

/// Slots in fixed-size chunks, addressed by slot number.
#[derive(Debug)]
struct Chunks<T> {
    chunks: Vec<Box<[T]>>,
    used: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            used: 0,
        }
    }
}

impl<T: Copy + Default> Chunks<T> {
    fn get(&self, i: u32) -> Option<&T> {
        let i = i as usize;
        self.chunks.get(i / CHUNK).map(|c| &c[i % CHUNK])
    }
    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK])
    }
    fn push(&mut self, v: T) -> u32 {
        if self.used == self.chunks.len() * CHUNK {
            self.chunks
                .push(vec![T::default(); CHUNK].into_boxed_slice());
        }
        let i = self.used;
        self.used += 1;
        self.chunks[i / CHUNK][i % CHUNK] = v;
        i as u32
    }
    fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.used)
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.chunks
            .iter_mut()
            .flat_map(|c| c.iter_mut())
            .take(self.used)
    }
    fn bytes(&self) -> usize {
        self.chunks.len() * CHUNK * size_of::<T>() + self.chunks.capacity() * size_of::<Box<[T]>>()
    }
}

/// Slots with reuse: freed slot numbers are handed out again before new ones.
#[derive(Debug)]
struct Store<T> {
    slots: Chunks<T>,
    free: Vec<u32>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Self {
            slots: Chunks::default(),
            free: Vec::new(),
        }
    }
}

impl<T: Copy + Default> Store<T> {
    fn add(&mut self, v: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = v;
                }
                i
            }
            None => self.slots.push(v),
        }
    }
    /// The slot number `add` hands out next.
    fn next_id(&self) -> u32 {
        self.free.last().copied().unwrap_or(self.slots.used as u32)
    }
    fn bytes(&self) -> usize {
        self.slots.bytes() + self.free.capacity() * size_of::<u32>()
    }
}

/// Slot number of a request. Stale numbers are harmless: lookups check the tuple, and a
/// freed slot's timer is dropped with it.
pub(crate) type ReqId = u32;

/// One listener's share of the table (Linux `request_sock_queue` counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SynCounts {
    /// Requests held (Linux `qlen`).
    pub(crate) len: u32,
    /// Requests whose SYN-ACK was never resent by the timer (Linux `young`).
    pub(crate) young: u32,
    /// The most requests held at once (a high-water mark for reports).
    pub(crate) peak: u32,
}

/// Every half-open request of the stack, and each listener's counts of them, kept here so
/// they cannot drift from the records.
#[derive(Debug)]
pub(crate) struct RequestTable {
    recs: Store<Rec>,
    /// IPv6 peers' address bytes 4..16, by slot, a chunk allocated once a record in its
    /// range has an IPv6 peer.
    v6: Vec<Option<Box<V6Chunk>>>,
    index: SlotIndex,
    /// The index being replaced by `index`, while its records move over.
    moving: Option<Moving>,
    /// `EPOCH` or 0: the bit records filed in `index` carry.
    epoch: u8,
    hasher: SeededState,
    /// Each armed request's deadline, by slot.
    timers: Deadlines,
    len: usize,
    /// Per listener, indexed by its slab index, with the generation it belongs to.
    counts: Vec<(u32, SynCounts)>,
}

/// The last 12 bytes of IPv6 peers' addresses for one chunk of slots.
type V6Chunk = [[u8; 12]; CHUNK];

/// An IPv6 address split as the table keeps it: the record's 4 bytes, the side table's 12.
fn split_v6(v: Ipv6Addr) -> (u32, [u8; 12]) {
    let o = v.octets();
    let mut tail = [0; 12];
    tail.copy_from_slice(&o[4..]);
    (u32::from_be_bytes([o[0], o[1], o[2], o[3]]), tail)
}

impl RequestTable {
    pub(crate) fn new(hasher: SeededState) -> Self {
        Self {
            recs: Store::default(),
            v6: Vec::new(),
            index: SlotIndex::default(),
            moving: None,
            epoch: 0,
            hasher,
            timers: Deadlines::default(),
            len: 0,
            counts: Vec::new(),
        }
    }

    /// A listener's counts (zero for one holding nothing).
    pub(crate) fn counts(&self, l: Key) -> SynCounts {
        match self.counts.get(l.index as usize) {
            Some(&(generation, c)) if generation == l.generation => c,
            _ => SynCounts::default(),
        }
    }

    fn counts_mut(&mut self, l: Key) -> Option<&mut SynCounts> {
        match self.counts.get_mut(l.index as usize) {
            Some((generation, c)) if *generation == l.generation => Some(c),
            _ => None,
        }
    }

    /// The counts of a record's listener: its index names the open listener, if any.
    fn counts_of(&mut self, listener: u32) -> Option<&mut SynCounts> {
        let l = self.listener_key(listener);
        self.counts_mut(l)
    }

    /// The key of a record's listener (`GONE` once it closed).
    fn listener_key(&self, listener: u32) -> Key {
        match self.counts.get(listener as usize) {
            Some(&(generation, _)) if generation != CLOSED => Key {
                index: listener,
                generation,
            },
            _ => GONE,
        }
    }

    /// Start counting for a listener that opened (its slab slot may be a reused one).
    pub(crate) fn open_counts(&mut self, l: Key) {
        let i = l.index as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, (CLOSED, SynCounts::default()));
        }
        self.counts[i] = (l.generation, SynCounts::default());
    }

    /// Stop counting for a listener that closed: requests it leaves behind die by their
    /// timers and count for nobody. They are marked as nobody's (one walk over the records,
    /// only when it held any), so that a listener reusing its slab index takes none over.
    pub(crate) fn close_counts(&mut self, l: Key) {
        let Some(e) = self.counts.get_mut(l.index as usize) else {
            return;
        };
        if e.0 != l.generation {
            return;
        }
        let held = e.1.len;
        *e = (CLOSED, SynCounts::default());
        if held == 0 {
            return;
        }
        for r in self.recs.slots.iter_mut() {
            if r.flags & LIVE != 0 && r.listener == l.index {
                r.listener = NO_LISTENER;
            }
        }
    }

    /// The request's first SYN-ACK resend by the timer: it is no longer young.
    pub(crate) fn bump_timeout(&mut self, id: ReqId) {
        let Some(r) = self.get_mut(id) else {
            return;
        };
        let first = r.num_timeout == 0;
        r.num_timeout = r.num_timeout.saturating_add(1);
        let l = r.listener;
        if first {
            if let Some(c) = self.counts_of(l) {
                c.young -= 1;
            }
        }
    }

    /// Reset the resend count (FreeBSD: a duplicate SYN restarts the schedule).
    pub(crate) fn clear_timeouts(&mut self, id: ReqId) {
        let Some(r) = self.get_mut(id) else {
            return;
        };
        let was_old = r.num_timeout != 0;
        r.num_timeout = 0;
        let l = r.listener;
        if was_old {
            if let Some(c) = self.counts_of(l) {
                c.young += 1;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes 4..16 of the IPv6 peer's address of slot `id`.
    fn v6_tail(&self, id: ReqId) -> [u8; 12] {
        let i = id as usize;
        match self.v6.get(i / CHUNK) {
            Some(Some(c)) => c[i % CHUNK],
            _ => [0; 12],
        }
    }

    fn set_v6_tail(&mut self, id: ReqId, tail: [u8; 12]) {
        let i = id as usize;
        if self.v6.len() <= i / CHUNK {
            self.v6.resize_with(i / CHUNK + 1, || None);
        }
        let c = self.v6[i / CHUNK].get_or_insert_with(|| Box::new([[0; 12]; CHUNK]));
        c[i % CHUNK] = tail;
    }

    fn remote_of(&self, id: ReqId, r: &Rec) -> IpAddr {
        if r.flags & V6 != 0 {
            let mut o = [0; 16];
            o[..4].copy_from_slice(&r.remote.to_be_bytes());
            o[4..].copy_from_slice(&self.v6_tail(id));
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::from(r.remote))
        }
    }

    fn matches(&self, id: ReqId, r: &Rec, local_ip: u16, t: &FourTuple) -> bool {
        if r.local_ip != local_ip
            || r.local_port != t.local.port()
            || r.remote_port != t.remote.port()
        {
            return false;
        }
        match t.remote.ip() {
            IpAddr::V4(v) => r.flags & V6 == 0 && r.remote == u32::from(v),
            IpAddr::V6(v) => {
                let (head, tail) = split_v6(v);
                r.flags & V6 != 0 && r.remote == head && self.v6_tail(id) == tail
            }
        }
    }

    /// The keyed hash of a 4-tuple: the connection index's, so a packet hashes once.
    pub(crate) fn hash(&self, t: &FourTuple) -> u64 {
        use core::hash::BuildHasher;
        self.hasher.hash_one(t)
    }

    /// The request for `t` (arriving on our address number `local_ip`), `h` its hash if
    /// known.
    pub(crate) fn find(&self, local_ip: u16, t: &FourTuple, h: Option<u64>) -> Option<ReqId> {
        if self.len == 0 {
            // No keyed hash for an empty table (a cookies-only listener under a flood).
            return None;
        }
        let h = h.unwrap_or_else(|| self.hash(t));
        let mut eq = |i| {
            self.recs
                .slots
                .get(i)
                .is_some_and(|r| r.flags & LIVE != 0 && self.matches(i, r, local_ip, t))
        };
        // While an index is replaced, a record not yet moved is in the old one. The old
        // one's words of moved records are stale but still name their record: the
        // comparison above decides.
        self.index
            .find(h, &mut eq)
            .or_else(|| self.moving.as_ref().and_then(|m| m.old.find(h, &mut eq)))
    }

    /// Load the index words lookups of these hashes start at, so their cache misses are
    /// under way together before the lookups.
    pub(crate) fn warm(&self, hashes: impl Iterator<Item = u64>) {
        self.index.warm(hashes);
    }

    /// The record with its peer's address looked up.
    fn resolve(&self, id: ReqId, rec: Rec) -> Request {
        Request {
            rec,
            remote_ip: self.remote_of(id, &rec),
            listener: self.listener_key(rec.listener),
        }
    }

    pub(crate) fn get(&self, id: ReqId) -> Option<Request> {
        let rec = *self.recs.slots.get(id).filter(|r| r.flags & LIVE != 0)?;
        Some(self.resolve(id, rec))
    }

    pub(crate) fn get_mut(&mut self, id: ReqId) -> Option<&mut Rec> {
        self.recs.slots.get_mut(id).filter(|r| r.flags & LIVE != 0)
    }

    /// Add a request whose first SYN-ACK goes out at `now`, its timer due `after` that;
    /// `addrs` are the stack's addresses (`local_ip` indexes them), `h` the tuple's hash if
    /// known.
    pub(crate) fn insert(
        &mut self,
        n: NewRequest,
        now: Instant,
        after: Duration,
        addrs: &[IpAddr],
        h: Option<u64>,
    ) -> ReqId {
        let next = self.recs.next_id();
        if self.moving.is_some() {
            self.move_some(addrs, MOVE_BATCHES);
        }
        if !self.index.has_room(next) {
            self.grow_index(addrs, next);
        }
        let mut flags = LIVE | self.epoch;
        for (on, bit) in [
            (n.sack, SACK),
            (n.ts_recent.is_some(), TS),
            (n.tuple.remote.is_ipv6(), V6),
        ] {
            if on {
                flags |= bit;
            }
        }
        let (remote, v6_tail) = match n.tuple.remote.ip() {
            IpAddr::V4(v) => (u32::from(v), None),
            IpAddr::V6(v) => {
                let (head, tail) = split_v6(v);
                (head, Some(tail))
            }
        };
        // A listener the table does not count for (none in a running stack) holds nothing:
        // its request is born as a closed listener's.
        let listener = match self.counts_mut(n.listener) {
            Some(c) => {
                c.len += 1;
                c.young += 1;
                c.peak = c.peak.max(c.len);
                n.listener.index
            }
            None => NO_LISTENER,
        };
        let id = self.recs.add(Rec {
            remote,
            listener,
            iss: n.iss,
            irs: n.irs,
            ts_recent: n.ts_recent.unwrap_or(0),
            last_oow: 0,
            sent: micros32(now),
            remote_port: n.tuple.remote.port(),
            local_port: n.tuple.local.port(),
            peer_mss: n.peer_mss.unwrap_or(0),
            local_ip: n.local_ip,
            peer_wscale: n.peer_wscale.unwrap_or(u8::MAX),
            num_timeout: 0,
            flags,
        });
        if let Some(tail) = v6_tail {
            self.set_v6_tail(id, tail);
        }
        let h = h.unwrap_or_else(|| self.hash(&n.tuple));
        self.index.insert(h, id);
        self.len += 1;
        self.rearm(id, now, after);
        id
    }

    /// Remove request `id`, filed under `tuple` (`h` its hash if known).
    pub(crate) fn remove(
        &mut self,
        id: ReqId,
        tuple: &FourTuple,
        h: Option<u64>,
    ) -> Option<Request> {
        let req = self.get(id)?;
        let h = h.unwrap_or_else(|| self.hash(tuple));
        match &mut self.moving {
            Some(m) if req.rec.flags & EPOCH != self.epoch => {
                m.old.remove(h, id);
                m.pending = m.pending.saturating_sub(1);
            }
            _ => self.index.remove(h, id),
        }
        if let Some(slot) = self.recs.slots.get_mut(id) {
            slot.flags = 0;
        }
        self.recs.free.push(id);
        self.timers.disarm(id);
        self.len -= 1;
        if let Some(c) = self.counts_of(req.rec.listener) {
            c.len -= 1;
            if req.num_timeout == 0 {
                c.young -= 1;
            }
        }
        Some(req)
    }

    /// (Re)arm a request's timer to fire `after` from `now`, in place of any earlier one.
    /// `now` must not decrease from call to call (the stack's clock contract).
    pub(crate) fn rearm(&mut self, id: ReqId, now: Instant, after: Duration) {
        if self.get_mut(id).is_some() {
            self.timers.arm(id, now, now + after);
        }
    }

    /// The earliest timer, for `poll_timeout`.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first_at()
    }

    /// Pop a timer due at `now`, earliest first (ties: the lower slot).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ReqId> {
        let (id, at) = self.timers.first()?;
        if at > now {
            return None;
        }
        self.timers.disarm(id);
        Some(id)
    }

    fn live_ids(&self) -> impl Iterator<Item = (ReqId, &Rec)> + '_ {
        self.recs
            .slots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.flags & LIVE != 0)
            .map(|(i, r)| (i as u32, r))
    }

    /// Live requests of one listener, in slot order.
    pub(crate) fn of_listener(&self, l: Key) -> impl Iterator<Item = ReqId> + '_ {
        // A closed listener's requests were marked as nobody's: none answer to its key.
        let open = l != GONE && self.listener_key(l.index) == l;
        self.live_ids()
            .filter(move |(_, r)| open && r.listener == l.index)
            .map(|(i, _)| i)
    }

    /// Every live request's id, in slot order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ReqId> + '_ {
        self.live_ids().map(|(i, _)| i)
    }

    /// Every live request.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Request> + '_ {
        self.live_ids().map(|(id, &rec)| self.resolve(id, rec))
    }

    /// For the audit: the index holds one entry per live request, each found by its tuple.
    /// While an index is replaced: each record in exactly the index its epoch names, and
    /// those still in the old one at or past the cursor.
    pub(crate) fn check_index(&self, addrs: &[IpAddr]) -> Result<(), String> {
        let pending = self.moving.as_ref().map_or(0, |m| m.pending);
        if self.index.len() + pending != self.len {
            return Err(format!(
                "request index holds {} entries and {pending} wait in the old one, for {} \
                 requests",
                self.index.len(),
                self.len
            ));
        }
        let mut waiting = 0;
        for (id, r) in self.live_ids() {
            let t = self.resolve(id, *r).tuple(addrs);
            if self.find(r.local_ip, &t, None) != Some(id) {
                return Err(format!("request {id} ({t:?}) not found through the index"));
            }
            let h = self.hash(&t);
            let filed = if r.flags & EPOCH == self.epoch {
                self.index.find(h, |i| i == id)
            } else {
                waiting += 1;
                match &self.moving {
                    Some(m) if id >= m.cursor => m.old.find(h, |i| i == id),
                    _ => None,
                }
            };
            if filed != Some(id) {
                return Err(format!(
                    "request {id} ({t:?}) not in the index its epoch names"
                ));
            }
        }
        if waiting != pending {
            return Err(format!(
                "{waiting} requests wait in the old index, counted {pending}"
            ));
        }
        Ok(())
    }

    /// Every live request belongs to an open listener or, marked when its listener closed,
    /// to none.
    pub(crate) fn check_listeners(&self, open: impl Fn(Key) -> bool) -> Result<(), String> {
        for (id, r) in self.live_ids() {
            let l = self.listener_key(r.listener);
            if r.listener != NO_LISTENER && (l == GONE || !open(l)) {
                return Err(format!(
                    "request {id} names listener slot {} and no open listener holds it",
                    r.listener
                ));
            }
        }
        Ok(())
    }

    /// For the audit: the timer tree is exact, and only live requests have timers.
    pub(crate) fn check_timers(&self) -> Result<(), String> {
        self.timers.check()?;
        let armed = self
            .live_ids()
            .filter(|&(id, _)| self.timers.is_armed(id))
            .count();
        if armed != self.timers.armed() {
            return Err(format!(
                "{} request timers armed, {armed} of them on live requests",
                self.timers.armed()
            ));
        }
        Ok(())
    }

    /// Heap bytes held, for the per-entry cost report.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.recs.bytes()
            + self.v6.capacity() * size_of::<Option<Box<V6Chunk>>>()
            + self.v6.iter().flatten().count() * size_of::<V6Chunk>()
            + self.index.bytes()
            + self.moving.as_ref().map_or(0, |m| m.old.bytes())
            + self.timers.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::util::XorShift32;

    const V4: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];

    #[test]
    fn request_record_is_small() {
        assert_eq!(size_of::<Rec>(), 40);
    }

    fn new(port: u16) -> NewRequest {
        new_from(SocketAddr::new("10.0.0.2".parse().unwrap(), port))
    }

    /// A request to 10.0.0.1:80 from `remote`, with the common options.
    pub(super) fn new_from(remote: SocketAddr) -> NewRequest {
        NewRequest {
            listener: Key {
                index: 0,
                generation: 0,
            },
            tuple: FourTuple {
                local: "10.0.0.1:80".parse().unwrap(),
                remote,
            },
            local_ip: 0,
            iss: SeqNumber(1),
            irs: SeqNumber(2),
            peer_mss: Some(1460),
            peer_wscale: Some(7),
            sack: true,
            ts_recent: None,
        }
    }

    #[test]
    fn insert_find_remove_and_timers() {
        let addrs = ["10.0.0.1".parse().unwrap()];
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let now = Instant::from_secs(1);
        let ids: Vec<_> = (1..=100)
            .map(|p| t.insert(new(p), now, Duration::from_secs(u64::from(p)), &V4, None))
            .collect();
        assert_eq!(t.len(), 100);
        let tu = new(42).tuple;
        let id = t.find(0, &tu, None).unwrap();
        assert_eq!(t.get(id).unwrap().tuple(&addrs), tu);
        assert_eq!(t.get(id).unwrap().peer_wscale(), Some(7));
        t.remove(id, &tu, None).unwrap();
        assert_eq!(t.find(0, &tu, None), None);
        // Re-arming replaces the old deadline; removed requests never fire.
        t.rearm(ids[0], now, Duration::from_secs(500));
        let mut fired = Vec::new();
        while let Some(id) = t.pop_due(now + Duration::from_secs(200)) {
            fired.push(id);
        }
        assert_eq!(fired.len(), 98);
        // Deadlines 1..100 s, armed with 100 intervals, fire earliest first.
        assert!(fired.windows(2).all(|w| w[0] < w[1]), "{fired:?}");
        assert!(!fired.contains(&ids[0]) && !fired.contains(&id));
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(500)));
        // A freed slot is reused and found under its new tuple only.
        let n = t.insert(new(4242), now, Duration::ZERO, &V4, None);
        assert_eq!(n, id);
        assert_eq!(t.find(0, &new(4242).tuple, None), Some(id));
    }

    /// Handshakes that complete before their SYN-ACK timers leave no timer behind, and
    /// their room serves the next ones.
    #[test]
    fn an_emptied_table_holds_no_timer_entries() {
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let mut now = Instant::from_secs(1);
        let rto = Duration::from_secs(1);
        let mut room = 0;
        for round in 0..1_000u16 {
            let reqs: Vec<_> = (0..16)
                .map(|i| {
                    let n = new(round.wrapping_mul(16).wrapping_add(i));
                    (t.insert(n, now, rto, &V4, None), n.tuple)
                })
                .collect();
            for (id, tuple) in reqs {
                t.remove(id, &tuple, None).unwrap();
            }
            assert_eq!(t.timers.armed(), 0, "round {round}");
            t.check_timers().unwrap();
            if round == 0 {
                room = t.heap_bytes();
            }
            // Reused room: 16 000 handshakes hold what the first 16 did.
            assert_eq!(t.heap_bytes(), room, "round {round}");
            now += Duration::from_micros(10);
        }
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.pop_due(now + Duration::from_secs(10)), None);
        // Timers still work after the sweep.
        let id = t.insert(new(7), now, rto, &V4, None);
        assert_eq!(t.pop_due(now + rto), Some(id));
    }

    #[test]
    fn a_rearm_replaces_the_deadline_and_ties_fire_in_slot_order() {
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let now = Instant::from_secs(1);
        let a = t.insert(new(1), now, Duration::from_secs(1), &V4, None);
        let b = t.insert(new(2), now, Duration::from_secs(2), &V4, None);
        let c = t.insert(new(3), now, Duration::from_secs(3), &V4, None);
        // c moves ahead of b, then to b's deadline; a moves behind both.
        t.rearm(c, now, Duration::from_millis(1500));
        t.rearm(c, now, Duration::from_secs(2));
        t.rearm(a, now, Duration::from_secs(5));
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(2)));
        let due = now + Duration::from_secs(2);
        assert_eq!(t.pop_due(due), Some(b));
        assert_eq!(t.pop_due(due), Some(c));
        assert_eq!(t.pop_due(due), None);
        assert_eq!(t.pop_due(due + Duration::from_secs(3)), Some(a));
        assert_eq!(t.pop_due(due + Duration::from_secs(100)), None);
        t.check_timers().unwrap();
    }

    #[test]
    fn timers_span_many_chunks_and_long_gaps() {
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let step = Duration::from_millis(1);
        let mut now = Instant::from_secs(1);
        let after = Duration::from_secs(3);
        let mut ids = Vec::new();
        for p in 1..=1500u16 {
            ids.push(t.insert(new(p), now, after, &V4, None));
            now += step;
        }
        // Two hours on (beyond 32-bit microsecond offsets from the epoch), one more: the
        // first 1500, overdue by more than half the span, fire first, in slot order.
        let late = now + Duration::from_secs(7200);
        let last = t.insert(new(2000), late, after, &V4, None);
        let mut fired = Vec::new();
        while let Some(id) = t.pop_due(late) {
            fired.push(id);
        }
        assert_eq!(fired, ids, "in slot order");
        assert_eq!(t.next_deadline(), Some(late + after));
        assert_eq!(t.pop_due(late + after - step), None);
        assert_eq!(t.pop_due(late + after), Some(last));
    }

    /// Listeners open and close, a closed one's slab slot reopened under a new generation,
    /// while requests come and go: each request keeps its listener until that one closes
    /// and none after, and each listener's counts and `of_listener` match a model.
    #[test]
    fn requests_keep_their_listener_through_closes_and_reused_slots() {
        use std::collections::BTreeMap;
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let now = Instant::from_secs(1);
        let mut open: [Option<Key>; 3] = [None; 3];
        let mut closed: Vec<Key> = Vec::new();
        let mut generation = 0u32;
        // Request id -> (its port, its listener or none once that closed).
        let mut model: BTreeMap<ReqId, (u16, Option<Key>)> = BTreeMap::new();
        let (mut rng, mut port) = (XorShift32(7), 0u16);
        let mut orphaned_steps = 0u32;
        for step in 0..5_000 {
            let x = rng.next_u32();
            let slot = (x >> 8) as usize % open.len();
            match x % 5 {
                0 => match open[slot].take() {
                    Some(k) => {
                        t.close_counts(k);
                        closed.push(k);
                        for v in model.values_mut().filter(|v| v.1 == Some(k)) {
                            v.1 = None;
                        }
                    }
                    None => {
                        generation += 1;
                        let k = Key {
                            index: slot as u32,
                            generation,
                        };
                        t.open_counts(k);
                        open[slot] = Some(k);
                    }
                },
                1 | 2 => {
                    if let Some(k) = open[slot] {
                        port += 1;
                        let mut n = new(port);
                        n.listener = k;
                        let id = t.insert(n, now, Duration::from_secs(1), &V4, None);
                        model.insert(id, (port, Some(k)));
                    }
                }
                _ => {
                    if let Some((&id, &(p, _))) = model.iter().nth(x as usize % model.len().max(1))
                    {
                        t.remove(id, &new(p).tuple, None).unwrap();
                        model.remove(&id);
                    }
                }
            }
            for (&id, &(_, owner)) in &model {
                assert_eq!(
                    t.get(id).unwrap().listener,
                    owner.unwrap_or(GONE),
                    "step {step}"
                );
            }
            for &k in open.iter().flatten() {
                let mine: Vec<ReqId> = model
                    .iter()
                    .filter(|(_, v)| v.1 == Some(k))
                    .map(|(&id, _)| id)
                    .collect();
                assert_eq!(t.of_listener(k).collect::<Vec<_>>(), mine, "step {step}");
                let c = t.counts(k);
                assert_eq!((c.len as usize, c.young as usize), (mine.len(), mine.len()));
            }
            orphaned_steps += u32::from(model.values().any(|v| v.1.is_none()));
            for &k in closed.iter().rev().take(4) {
                assert_eq!(t.of_listener(k).count(), 0, "step {step}");
                assert_eq!(t.counts(k), SynCounts::default());
            }
        }
        // The run did what it is for: many closes, requests left behind by them.
        assert!(closed.len() > 100, "{} closes", closed.len());
        assert!(orphaned_steps > 500, "{orphaned_steps} steps with orphans");
    }

    #[test]
    fn ipv6_peers_keep_their_address_across_record_and_side_table() {
        let addrs: [IpAddr; 1] = ["fd00::1".parse().unwrap()];
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let now = Instant::from_secs(1);
        let v6 = |port: u16, host: &str| {
            let mut n = new(port);
            n.tuple = FourTuple {
                local: "[fd00::1]:80".parse().unwrap(),
                remote: SocketAddr::new(host.parse().unwrap(), port),
            };
            n
        };
        let a = t.insert(v6(1, "fd00::2"), now, Duration::from_secs(1), &addrs, None);
        let b = t.insert(v6(1, "fd00::3"), now, Duration::from_secs(1), &addrs, None);
        let v4 = t.insert(new(1), now, Duration::from_secs(1), &V4, None);
        assert_eq!(t.find(0, &v6(1, "fd00::2").tuple, None), Some(a));
        assert_eq!(t.find(0, &v6(1, "fd00::3").tuple, None), Some(b));
        assert_eq!(t.find(0, &new(1).tuple, None), Some(v4));
        assert_eq!(t.get(b).unwrap().tuple(&addrs), v6(1, "fd00::3").tuple);
        let gone = t.remove(a, &v6(1, "fd00::2").tuple, None).unwrap();
        assert_eq!(gone.tuple(&addrs), v6(1, "fd00::2").tuple);
        assert_eq!(t.find(0, &v6(1, "fd00::2").tuple, None), None);
        // The freed slot is reused by the next IPv6 peer; peers alike in their first 4
        // bytes or in their last 12 are told apart.
        let c = t.insert(v6(9, "fd00::9"), now, Duration::from_secs(1), &addrs, None);
        assert_eq!(c, a);
        assert_eq!(t.get(c).unwrap().tuple(&addrs), v6(9, "fd00::9").tuple);
        assert_eq!(t.get(b).unwrap().tuple(&addrs), v6(1, "fd00::3").tuple);
        let d = t.insert(v6(1, "fd01::3"), now, Duration::from_secs(1), &addrs, None);
        assert_eq!(t.find(0, &v6(1, "fd01::3").tuple, None), Some(d));
        assert_eq!(t.find(0, &v6(1, "fd00::3").tuple, None), Some(b));
        assert_eq!(t.find(0, &v6(1, "fd01::9").tuple, None), None);
        // An IPv4 peer in a slot an IPv6 one held is not taken for it.
        t.remove(c, &v6(9, "fd00::9").tuple, None).unwrap();
        let e = t.insert(new(2), now, Duration::from_secs(1), &V4, None);
        assert_eq!(e, c);
        assert_eq!(t.get(e).unwrap().tuple(&V4), new(2).tuple);
        assert_eq!(t.find(0, &v6(9, "fd00::9").tuple, None), None);
    }
}
