//! Half-open requests (Linux `request_sock`), kept small: a 44-byte record in a table of
//! fixed-size chunks (no doubling slack), found by 4-tuple through a hash index of 4-byte
//! slot numbers, its timer an 8-byte entry in a chunked FIFO per retransmission interval.
//! An IPv4 peer's address lives in the record; an IPv6 peer's 16 bytes in a side table.
//! A request holds what answering the final ACK needs and nothing more.

use crate::hash::{FourTuple, SeededState};
use crate::slab::Key;
use crate::Duration;
use crate::Instant;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};
use synq_wire::SeqNumber;

mod index;
use index::SlotIndex;

const SACK: u8 = 1;
const ACKED: u8 = 2;
const TS: u8 = 4;
const V6: u8 = 8;
const RESENT: u8 = 16;
const LIVE: u8 = 32;
/// A timer entry for this request is pending.
const ARMED: u8 = 64;
/// Flips on every arm; the entry carries it too, so an entry left behind by a re-arm at
/// the same microsecond and interval is told from the new one.
const PARITY: u8 = 128;

/// A stored half-open request. Addresses are compact: the peer's as its IPv4 address or the
/// index of its IPv6 address in the side table, ours as an index into the stack's list;
/// the listener as its slab index alone (its generation is the table's `counts` entry's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rec {
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
    /// The armed timer's deadline, in µs (wrapping); matched against timer entries.
    deadline: u32,
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
    deadline: 0,
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

/// Slots per chunk: the tables grow a chunk at a time instead of doubling.
const CHUNK: usize = 1024;

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

/// Timer entries per FIFO block.
const BLOCK: usize = 512;

/// A run of timer entries: (µs after `base`, slot number with the arm's parity in bit 31).
#[derive(Debug)]
struct Block {
    base: Instant,
    head: usize,
    items: Vec<(u32, u32)>,
}

/// One interval's timer entries in deadline order, in blocks so the queue grows without
/// doubling and an entry costs 8 bytes.
#[derive(Debug, Default)]
struct Fifo {
    blocks: VecDeque<Block>,
    /// An emptied block's storage, kept so a steady trickle does not allocate per entry.
    spare: Vec<(u32, u32)>,
}

const PARITY_BIT: u32 = 1 << 31;

/// Bytes of one timer entry.
const ENTRY: usize = size_of::<(u32, u32)>();

impl Fifo {
    fn push(&mut self, at: Instant, tag: u32) {
        if let Some(b) = self.blocks.back_mut() {
            let off = at.total_micros() - b.base.total_micros();
            if b.items.len() < BLOCK && off <= u64::from(u32::MAX) {
                b.items.push((off as u32, tag));
                return;
            }
        }
        let mut items = std::mem::take(&mut self.spare);
        if items.capacity() == 0 && !self.blocks.is_empty() {
            // A busy FIFO: a whole block at once (a lone first block grows from small).
            items.reserve_exact(BLOCK);
        }
        items.push((0, tag));
        self.blocks.push_back(Block {
            base: at,
            head: 0,
            items,
        });
    }
    fn front(&self) -> Option<(Instant, u32)> {
        let b = self.blocks.front()?;
        let &(off, tag) = b.items.get(b.head)?;
        Some((b.base + Duration::from_micros(u64::from(off)), tag))
    }
    fn pop_front(&mut self) {
        let Some(b) = self.blocks.front_mut() else {
            return;
        };
        b.head += 1;
        if b.head >= b.items.len() {
            if let Some(b) = self.blocks.pop_front() {
                self.retire(b);
            }
        }
    }
    /// A block done with: its storage kept as the spare if it is the largest seen.
    fn retire(&mut self, mut b: Block) {
        if b.items.capacity() > self.spare.capacity() {
            b.items.clear();
            self.spare = b.items;
        }
    }
    /// Drop every entry, keeping the largest block's room for the next ones.
    fn clear(&mut self) {
        while let Some(b) = self.blocks.pop_front() {
            self.retire(b);
        }
    }
    fn bytes(&self) -> usize {
        self.blocks.capacity() * size_of::<Block>()
            + self
                .blocks
                .iter()
                .map(|b| b.items.capacity())
                .sum::<usize>()
                * ENTRY
            + self.spare.capacity() * ENTRY
    }
}

/// Slot number of a request. Stale numbers are harmless: lookups check the tuple, timers
/// check the deadline and parity.
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
    /// IPv6 peers' addresses, by the index their record holds.
    v6: Store<[u8; 16]>,
    index: SlotIndex,
    hasher: SeededState,
    /// One FIFO per re-arm interval: entries join at `now + interval` with `now` never
    /// decreasing, so each FIFO is in deadline order and its front is its earliest.
    timers: BTreeMap<Duration, Fifo>,
    len: usize,
    /// Per listener, indexed by its slab index, with the generation it belongs to.
    counts: Vec<(u32, SynCounts)>,
}

/// Whether a timer entry (deadline, tag) is the one its request is armed with.
fn entry_live(recs: &Chunks<Rec>, at: Instant, tag: u32) -> bool {
    recs.get(tag & !PARITY_BIT).is_some_and(|r| {
        let parity = if r.flags & PARITY != 0 { PARITY_BIT } else { 0 };
        r.flags & (LIVE | ARMED) == LIVE | ARMED
            && r.deadline == micros32(at)
            && tag & PARITY_BIT == parity
    })
}

impl RequestTable {
    pub(crate) fn new(hasher: SeededState) -> Self {
        Self {
            recs: Store::default(),
            v6: Store::default(),
            index: SlotIndex::default(),
            hasher,
            timers: BTreeMap::new(),
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

    fn remote_of(&self, r: &Rec) -> IpAddr {
        if r.flags & V6 != 0 {
            IpAddr::V6(Ipv6Addr::from(
                self.v6.slots.get(r.remote).copied().unwrap_or_default(),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(r.remote))
        }
    }

    fn matches(&self, r: &Rec, local_ip: u16, t: &FourTuple) -> bool {
        if r.local_ip != local_ip
            || r.local_port != t.local.port()
            || r.remote_port != t.remote.port()
        {
            return false;
        }
        match t.remote.ip() {
            IpAddr::V4(v) => r.flags & V6 == 0 && r.remote == u32::from(v),
            IpAddr::V6(v) => r.flags & V6 != 0 && self.v6.slots.get(r.remote) == Some(&v.octets()),
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
        self.index.find(h, |i| {
            self.recs
                .slots
                .get(i)
                .is_some_and(|r| r.flags & LIVE != 0 && self.matches(r, local_ip, t))
        })
    }

    /// Load the index words lookups of these hashes start at, so their cache misses are
    /// under way together before the lookups.
    pub(crate) fn warm(&self, hashes: impl Iterator<Item = u64>) {
        self.index.warm(hashes);
    }

    /// The record with its peer's address looked up.
    fn resolve(&self, rec: Rec) -> Request {
        Request {
            rec,
            remote_ip: self.remote_of(&rec),
            listener: self.listener_key(rec.listener),
        }
    }

    pub(crate) fn get(&self, id: ReqId) -> Option<Request> {
        let rec = *self.recs.slots.get(id).filter(|r| r.flags & LIVE != 0)?;
        Some(self.resolve(rec))
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
        let mut flags = LIVE;
        for (on, bit) in [
            (n.sack, SACK),
            (n.ts_recent.is_some(), TS),
            (n.tuple.remote.is_ipv6(), V6),
        ] {
            if on {
                flags |= bit;
            }
        }
        let next = self.recs.next_id();
        if !self.index.has_room(next) {
            self.grow_index(addrs, next);
        }
        let remote = match n.tuple.remote.ip() {
            IpAddr::V4(v) => u32::from(v),
            IpAddr::V6(v) => self.v6.add(v.octets()),
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
            deadline: 0,
            remote_port: n.tuple.remote.port(),
            local_port: n.tuple.local.port(),
            peer_mss: n.peer_mss.unwrap_or(0),
            local_ip: n.local_ip,
            peer_wscale: n.peer_wscale.unwrap_or(u8::MAX),
            num_timeout: 0,
            flags,
        });
        let h = h.unwrap_or_else(|| self.hash(&n.tuple));
        self.index.insert(h, id);
        self.len += 1;
        self.rearm(id, now, after);
        id
    }

    /// Rebuild the index for one more request (`slot` its slot number), doubled or with
    /// its removed words dropped, walking the records in slot order. Out of line: rare,
    /// and inlined it tripled `insert`'s code.
    #[cold]
    #[inline(never)]
    fn grow_index(&mut self, addrs: &[IpAddr], slot: u32) {
        let mut index = SlotIndex::with_bits(self.index.bits_for(slot));
        // The chunks walked by hand, not through `live_ids`: its iterator chains cost 30-70
        // more instructions per SYN of a cookies-off flood (callgrind, over 2^20 SYNs).
        // Hashed in batches so the batch's cache misses in the new index overlap.
        let mut batch = [(0u64, 0u32); WARM_BATCH];
        let mut n = 0;
        let mut i = 0u32;
        for chunk in &self.recs.slots.chunks {
            for r in chunk.iter() {
                if r.flags & LIVE != 0 {
                    batch[n] = (self.rec_hash(r, addrs), i);
                    n += 1;
                    if n == WARM_BATCH {
                        index.insert_batch(&batch);
                        n = 0;
                    }
                }
                i += 1;
            }
        }
        index.insert_batch(&batch[..n]);
        self.index = index;
    }

    /// The index hash of a stored record: an IPv4 pair straight from its fields (one
    /// SipHash and nothing built), anything else through its [`FourTuple`].
    fn rec_hash(&self, r: &Rec, addrs: &[IpAddr]) -> u64 {
        if r.flags & V6 == 0 {
            if let Some(IpAddr::V4(local)) = addrs.get(usize::from(r.local_ip)) {
                return self.hasher.hash_v4(
                    local.octets(),
                    r.local_port,
                    r.remote.to_be_bytes(),
                    r.remote_port,
                );
            }
        }
        self.hash(&self.resolve(*r).tuple(addrs))
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
        self.index.remove(h, id);
        if let Some(slot) = self.recs.slots.get_mut(id) {
            slot.flags = 0;
        }
        self.recs.free.push(id);
        if req.flags & V6 != 0 {
            self.v6.free.push(req.remote);
        }
        self.len -= 1;
        if self.len == 0 {
            // Every timer entry left is stale. Dropped now, or a listener whose handshakes
            // all complete before their SYN-ACK timers (poll_timeout then says nothing is
            // due) would hold 8 bytes per handshake until some later request's timer fires.
            self.timers.values_mut().for_each(Fifo::clear);
        }
        if let Some(c) = self.counts_of(req.rec.listener) {
            c.len -= 1;
            if req.num_timeout == 0 {
                c.young -= 1;
            }
        }
        Some(req)
    }

    /// (Re)arm a request's timer to fire `after` from `now`; any earlier entry goes stale.
    /// `now` must not decrease from call to call (the stack's clock contract).
    pub(crate) fn rearm(&mut self, id: ReqId, now: Instant, after: Duration) {
        let at = now + after;
        let Some(r) = self.get_mut(id) else {
            return;
        };
        r.flags = (r.flags ^ PARITY) | ARMED;
        r.deadline = micros32(at);
        let tag = id | if r.flags & PARITY != 0 { PARITY_BIT } else { 0 };
        self.timers.entry(after).or_default().push(at, tag);
    }

    /// The FIFO whose front is due first (ties: the shorter interval).
    fn earliest(&self) -> Option<(Duration, Instant, u32)> {
        // Every poll_timeout asks, and most stacks hold no request at all.
        if self.timers.is_empty() {
            return None;
        }
        self.timers
            .iter()
            .filter_map(|(&k, q)| q.front().map(|(at, tag)| (k, at, tag)))
            .min_by_key(|&(k, at, _)| (at, k))
    }

    fn pop_front_of(&mut self, k: Duration) {
        if let Some(q) = self.timers.get_mut(&k) {
            q.pop_front();
            if q.blocks.is_empty() {
                self.timers.remove(&k);
            }
        }
    }

    /// Drop stale entries from the fronts so `first_entry` is a live deadline; returns it.
    pub(crate) fn purge_front(&mut self) -> Option<Instant> {
        let recs = &self.recs.slots;
        self.timers.retain(|_, q| {
            while let Some((at, tag)) = q.front() {
                if entry_live(recs, at, tag) {
                    break;
                }
                q.pop_front();
            }
            !q.blocks.is_empty()
        });
        self.first_entry()
    }

    /// The earliest timer entry (live or stale), for `poll_timeout` on a shared borrow.
    pub(crate) fn first_entry(&self) -> Option<Instant> {
        // Entries left behind by requests that are gone wait for the next pop_due.
        if self.len == 0 {
            return None;
        }
        self.earliest().map(|(_, at, _)| at)
    }

    /// Pop a live timer due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ReqId> {
        while let Some((k, at, tag)) = self.earliest() {
            if at > now {
                return None;
            }
            self.pop_front_of(k);
            if entry_live(&self.recs.slots, at, tag) {
                let id = tag & !PARITY_BIT;
                if let Some(r) = self.get_mut(id) {
                    r.flags &= !ARMED;
                }
                return Some(id);
            }
        }
        None
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
        self.live_ids().map(|(_, &rec)| self.resolve(rec))
    }

    /// For the audit: the index holds one entry per live request, each found by its tuple.
    pub(crate) fn check_index(&self, addrs: &[IpAddr]) -> Result<(), String> {
        if self.index.len() != self.len {
            return Err(format!(
                "request index holds {} entries for {} requests",
                self.index.len(),
                self.len
            ));
        }
        for (id, r) in self.live_ids() {
            let t = self.resolve(*r).tuple(addrs);
            if self.find(r.local_ip, &t, None) != Some(id) {
                return Err(format!("request {id} ({t:?}) not found through the index"));
            }
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

    /// Timer entries held, live or stale (none while the table is empty).
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers
            .values()
            .flat_map(|q| q.blocks.iter())
            .map(|b| b.items.len() - b.head)
            .sum()
    }

    /// Heap bytes held, for the per-entry cost report.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.recs.bytes()
            + self.v6.bytes()
            + self.index.bytes()
            + self.timers.values().map(Fifo::bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];

    #[test]
    fn request_record_is_small() {
        assert_eq!(size_of::<Rec>(), 44);
    }

    fn new(port: u16) -> NewRequest {
        NewRequest {
            listener: Key {
                index: 0,
                generation: 0,
            },
            tuple: FourTuple {
                local: "10.0.0.1:80".parse().unwrap(),
                remote: SocketAddr::new("10.0.0.2".parse().unwrap(), port),
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
        // Re-arming makes the old entry stale; removed requests never fire.
        t.rearm(ids[0], now, Duration::from_secs(500));
        let mut fired = Vec::new();
        while let Some(id) = t.pop_due(now + Duration::from_secs(200)) {
            fired.push(id);
        }
        assert_eq!(fired.len(), 98);
        // Deadlines 1..100 s sit in 100 interval FIFOs; they fire earliest first.
        assert!(fired.windows(2).all(|w| w[0] < w[1]), "{fired:?}");
        assert!(!fired.contains(&ids[0]) && !fired.contains(&id));
        assert_eq!(t.purge_front(), Some(now + Duration::from_secs(500)));
        // A freed slot is reused and found under its new tuple only.
        let n = t.insert(new(4242), now, Duration::ZERO, &V4, None);
        assert_eq!(n, id);
        assert_eq!(t.find(0, &new(4242).tuple, None), Some(id));
    }

    /// Handshakes that complete before their SYN-ACK timers leave entries behind; once
    /// the table is empty they are all stale and go, their room kept for the next ones.
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
            assert!(
                t.timers.values().all(|q| q.blocks.is_empty()),
                "round {round}"
            );
            if round == 0 {
                room = t.heap_bytes();
            }
            // Reused room: 16 000 handshakes hold what the first 16 did.
            assert_eq!(t.heap_bytes(), room, "round {round}");
            now += Duration::from_micros(10);
        }
        assert_eq!(t.first_entry(), None);
        assert_eq!(t.pop_due(now + Duration::from_secs(10)), None);
        // Timers still work after the sweep.
        let id = t.insert(new(7), now, rto, &V4, None);
        assert_eq!(t.pop_due(now + rto), Some(id));
    }

    #[test]
    fn a_rearm_at_the_same_instant_fires_in_its_new_place() {
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let now = Instant::from_secs(1);
        let a = t.insert(new(1), now, Duration::from_secs(1), &V4, None);
        let b = t.insert(new(2), now, Duration::from_secs(1), &V4, None);
        // Same microsecond, same interval: the entry behind b is the live one.
        t.rearm(a, now, Duration::from_secs(1));
        let due = now + Duration::from_secs(1);
        assert_eq!(t.pop_due(due), Some(b));
        assert_eq!(t.pop_due(due), Some(a));
        assert_eq!(t.pop_due(due + Duration::from_secs(100)), None);
    }

    #[test]
    fn timer_blocks_span_many_entries_and_long_gaps() {
        let mut t = RequestTable::new(SeededState::new(1, 2));
        let step = Duration::from_millis(1);
        let mut now = Instant::from_secs(1);
        let after = Duration::from_secs(3);
        let mut ids = Vec::new();
        for p in 1..=1500u16 {
            ids.push(t.insert(new(p), now, after, &V4, None));
            now += step;
        }
        // Two hours on (beyond a block's 32-bit microsecond offsets), one more.
        let late = now + Duration::from_secs(7200);
        let last = t.insert(new(2000), late, after, &V4, None);
        let mut fired = Vec::new();
        while let Some(id) = t.pop_due(now + after) {
            fired.push(id);
        }
        assert_eq!(fired, ids, "in deadline order across blocks");
        assert_eq!(t.first_entry(), Some(late + after));
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
        let (mut x, mut port) = (7u32, 0u16);
        let mut orphaned_steps = 0u32;
        for step in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
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
    fn ipv6_peers_keep_their_address_in_the_side_table() {
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
        // The freed address slot is reused by the next IPv6 peer.
        let c = t.insert(v6(9, "fd00::9"), now, Duration::from_secs(1), &addrs, None);
        assert_eq!(t.get(c).unwrap().tuple(&addrs), v6(9, "fd00::9").tuple);
        assert_eq!(t.get(b).unwrap().tuple(&addrs), v6(1, "fd00::3").tuple);
    }
}
