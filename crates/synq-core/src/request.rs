//! Half-open requests (Linux `request_sock`), kept small: a 60-byte record in a table of
//! fixed-size chunks (no doubling slack), found by 4-tuple through a hash index of 4-byte
//! slot numbers, its timer a 16-byte entry in a FIFO per retransmission interval. A request
//! holds what answering the final ACK needs and nothing more.

use crate::hash::{FourTuple, SeededState};
use crate::slab::Key;
use crate::Duration;
use crate::Instant;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use hashbrown::HashTable;
use std::collections::{BTreeMap, VecDeque};
use synq_wire::SeqNumber;

const SACK: u8 = 1;
const ACKED: u8 = 2;
const TS: u8 = 4;
const V6: u8 = 8;
const RESENT: u8 = 16;
const LIVE: u8 = 32;

/// A half-open connection. Addresses are stored compactly: the peer's as 16 bytes (IPv4
/// mapped), ours as an index into the stack's address list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    remote_ip: [u8; 16],
    pub(crate) listener: Key,
    pub(crate) iss: SeqNumber,
    pub(crate) irs: SeqNumber,
    /// Peer's TSval from its SYN (valid when `has_ts`).
    ts_recent: u32,
    /// Last reply to an invalid segment, in µs (wrapping), plus one; 0 = never.
    last_oow: u32,
    /// First SYN-ACK, in µs (wrapping): the RTT sample and the request's age.
    sent: u32,
    /// Bumped on every re-arm, so stale timer entries are recognised.
    timer_id: u32,
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
            remote: SocketAddr::new(self.remote_ip(), self.remote_port),
        }
    }
    fn remote_ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.remote_ip);
        if self.flags & V6 != 0 {
            IpAddr::V6(v6)
        } else {
            IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED))
        }
    }
    fn matches(&self, local_ip: u16, t: &FourTuple) -> bool {
        self.local_ip == local_ip
            && self.local_port == t.local.port()
            && self.remote_port == t.remote.port()
            && self.remote_ip == ip16(t.remote.ip())
            && (self.flags & V6 != 0) == t.remote.is_ipv6()
    }
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

fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

/// An unused slot.
const EMPTY: Request = Request {
    remote_ip: [0; 16],
    listener: Key {
        index: 0,
        generation: 0,
    },
    iss: SeqNumber(0),
    irs: SeqNumber(0),
    ts_recent: 0,
    last_oow: 0,
    sent: 0,
    timer_id: 0,
    remote_port: 0,
    local_port: 0,
    peer_mss: 0,
    local_ip: 0,
    peer_wscale: 0,
    num_timeout: 0,
    flags: 0,
};

/// Requests per chunk: the table grows a chunk at a time instead of doubling.
const CHUNK: usize = 1024;

/// Request slots in fixed-size chunks, addressed by slot number.
#[derive(Debug, Default)]
struct Chunks {
    chunks: Vec<Box<[Request]>>,
    used: usize,
}

impl Chunks {
    fn get(&self, i: u32) -> Option<&Request> {
        let i = i as usize;
        self.chunks.get(i / CHUNK).map(|c| &c[i % CHUNK])
    }
    fn get_mut(&mut self, i: u32) -> Option<&mut Request> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK])
    }
    fn push(&mut self, r: Request) -> u32 {
        if self.used == self.chunks.len() * CHUNK {
            self.chunks.push(vec![EMPTY; CHUNK].into_boxed_slice());
        }
        let i = self.used;
        self.used += 1;
        self.chunks[i / CHUNK][i % CHUNK] = r;
        i as u32
    }
    fn iter(&self) -> impl Iterator<Item = &Request> + '_ {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.used)
    }
}

/// Timer entries: (deadline, slot, timer id).
type TimerEntry = (Instant, u32, u32);

/// Slot number of a request. Stale numbers are harmless: lookups check the tuple, timers
/// check `timer_id`.
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
    slots: Chunks,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: SeededState,
    /// One FIFO per re-arm interval: entries join at `now + interval` with `now` never
    /// decreasing, so each FIFO is in deadline order and its front is its earliest.
    timers: BTreeMap<Duration, VecDeque<TimerEntry>>,
    next_timer_id: u32,
    len: usize,
    /// Per listener, indexed by its slab index, with the generation it belongs to.
    counts: Vec<(u32, SynCounts)>,
}

impl RequestTable {
    pub(crate) fn new(hasher: SeededState) -> Self {
        Self {
            slots: Chunks::default(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher,
            timers: BTreeMap::new(),
            next_timer_id: 0,
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

    /// Start counting for a listener that opened (its slab slot may be a reused one).
    pub(crate) fn open_counts(&mut self, l: Key) {
        let i = l.index as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, (u32::MAX, SynCounts::default()));
        }
        self.counts[i] = (l.generation, SynCounts::default());
    }

    /// Stop counting for a listener that closed: requests it leaves behind die by their
    /// timers and count for nobody.
    pub(crate) fn close_counts(&mut self, l: Key) {
        if let Some(e) = self.counts.get_mut(l.index as usize) {
            *e = (u32::MAX, SynCounts::default());
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
            if let Some(c) = self.counts_mut(l) {
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
            if let Some(c) = self.counts_mut(l) {
                c.young += 1;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, local_ip: u16, t: &FourTuple) -> u64 {
        req_hash(
            &self.hasher,
            local_ip,
            t.local.port(),
            t.remote.ip(),
            t.remote.port(),
        )
    }

    pub(crate) fn find(&self, local_ip: u16, t: &FourTuple) -> Option<ReqId> {
        if self.len == 0 {
            // No keyed hash for an empty table (a cookies-only listener under a flood).
            return None;
        }
        let slots = &self.slots;
        self.index
            .find(self.hash(local_ip, t), |&i| {
                slots.get(i).is_some_and(|r| r.matches(local_ip, t))
            })
            .copied()
    }

    pub(crate) fn get(&self, id: ReqId) -> Option<&Request> {
        self.slots.get(id).filter(|r| r.flags & LIVE != 0)
    }

    pub(crate) fn get_mut(&mut self, id: ReqId) -> Option<&mut Request> {
        self.slots.get_mut(id).filter(|r| r.flags & LIVE != 0)
    }

    /// Add a request whose first SYN-ACK goes out at `now`, its timer due `after` that.
    pub(crate) fn insert(&mut self, n: NewRequest, now: Instant, after: Duration) -> ReqId {
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
        let req = Request {
            remote_ip: ip16(n.tuple.remote.ip()),
            listener: n.listener,
            iss: n.iss,
            irs: n.irs,
            ts_recent: n.ts_recent.unwrap_or(0),
            last_oow: 0,
            sent: micros32(now),
            timer_id: 0,
            remote_port: n.tuple.remote.port(),
            local_port: n.tuple.local.port(),
            peer_mss: n.peer_mss.unwrap_or(0),
            local_ip: n.local_ip,
            peer_wscale: n.peer_wscale.unwrap_or(u8::MAX),
            num_timeout: 0,
            flags,
        };
        let id = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = req;
                }
                i
            }
            None => self.slots.push(req),
        };
        let h = self.hash(n.local_ip, &n.tuple);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(h, id, |&i| {
            let r = slots.get(i).unwrap_or(&EMPTY);
            req_hash(
                hasher,
                r.local_ip,
                r.local_port,
                r.remote_ip(),
                r.remote_port,
            )
        });
        self.len += 1;
        if let Some(c) = self.counts_mut(n.listener) {
            c.len += 1;
            c.young += 1;
            c.peak = c.peak.max(c.len);
        }
        self.rearm(id, now, after);
        id
    }

    pub(crate) fn remove(&mut self, id: ReqId, local_tuple: &FourTuple) -> Option<Request> {
        let r = *self.get(id)?;
        let h = self.hash(r.local_ip, local_tuple);
        if let Ok(e) = self.index.find_entry(h, |&i| i == id) {
            e.remove();
        }
        if let Some(slot) = self.slots.get_mut(id) {
            slot.flags = 0;
        }
        self.free.push(id);
        self.len -= 1;
        if let Some(c) = self.counts_mut(r.listener) {
            c.len -= 1;
            if r.num_timeout == 0 {
                c.young -= 1;
            }
        }
        Some(r)
    }

    /// (Re)arm a request's timer to fire `after` from `now`; any earlier entry goes stale.
    /// `now` must not decrease from call to call (the stack's clock contract).
    pub(crate) fn rearm(&mut self, id: ReqId, now: Instant, after: Duration) {
        self.next_timer_id = self.next_timer_id.wrapping_add(1);
        let tid = self.next_timer_id;
        if let Some(r) = self.get_mut(id) {
            r.timer_id = tid;
            self.timers
                .entry(after)
                .or_default()
                .push_back((now + after, id, tid));
        }
    }

    fn live(&self, &(_, id, tid): &TimerEntry) -> bool {
        self.get(id).is_some_and(|r| r.timer_id == tid)
    }

    /// The FIFO whose front is due first (ties: the shorter interval).
    fn earliest(&self) -> Option<(Duration, TimerEntry)> {
        // Every poll_timeout asks, and most stacks hold no request at all.
        if self.timers.is_empty() {
            return None;
        }
        self.timers
            .iter()
            .filter_map(|(&k, q)| q.front().map(|&e| (k, e)))
            .min_by_key(|&(k, e)| (e.0, k))
    }

    fn pop_front_of(&mut self, k: Duration) {
        if let Some(q) = self.timers.get_mut(&k) {
            q.pop_front();
            if q.is_empty() {
                self.timers.remove(&k);
            }
        }
    }

    /// Drop stale entries from the fronts so `first_entry` is a live deadline; returns it.
    pub(crate) fn purge_front(&mut self) -> Option<Instant> {
        let keys: Vec<Duration> = self.timers.keys().copied().collect();
        for k in keys {
            while let Some(&e) = self.timers.get(&k).and_then(VecDeque::front) {
                if self.live(&e) {
                    break;
                }
                self.pop_front_of(k);
            }
        }
        self.first_entry()
    }

    /// The earliest timer entry (live or stale), for `poll_timeout` on a shared borrow.
    pub(crate) fn first_entry(&self) -> Option<Instant> {
        // Entries left behind by requests that are gone wait for the next pop_due.
        if self.len == 0 {
            return None;
        }
        self.earliest().map(|(_, e)| e.0)
    }

    /// Pop a live timer due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ReqId> {
        while let Some((k, e)) = self.earliest() {
            if e.0 > now {
                return None;
            }
            self.pop_front_of(k);
            if self.live(&e) {
                return Some(e.1);
            }
        }
        None
    }

    /// Live requests of one listener, in slot order.
    pub(crate) fn of_listener(&self, l: Key) -> impl Iterator<Item = ReqId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.flags & LIVE != 0 && r.listener == l)
            .map(|(i, _)| i as u32)
    }

    /// Every live request's id, in slot order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ReqId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.flags & LIVE != 0)
            .map(|(i, _)| i as u32)
    }

    /// Every live request.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Request> + '_ {
        self.slots.iter().filter(|r| r.flags & LIVE != 0)
    }

    /// Heap bytes held, for the per-entry cost report.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.chunks.len() * CHUNK * size_of::<Request>()
            + self.free.capacity() * 4
            + self.index.capacity() * (size_of::<u32>() + 1)
            + self
                .timers
                .values()
                .map(|q| q.capacity() * size_of::<TimerEntry>())
                .sum::<usize>()
    }
}

/// A request's key, hashed in one write (see `hash::write_key`): the local address is an
/// index, so it travels as a tag in place of an address.
fn req_hash(
    hasher: &SeededState,
    local_ip: u16,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
) -> u64 {
    use core::hash::{BuildHasher, Hasher};
    let mut h = hasher.build_hasher();
    let local = match remote {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::from(local_ip))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::from(local_ip))),
    };
    crate::hash::write_key(&mut h, local, local_port, remote, remote_port);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_record_is_small() {
        assert!(size_of::<Request>() <= 64, "{}", size_of::<Request>());
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
            .map(|p| t.insert(new(p), now, Duration::from_secs(u64::from(p))))
            .collect();
        assert_eq!(t.len(), 100);
        let tu = new(42).tuple;
        let id = t.find(0, &tu).unwrap();
        assert_eq!(t.get(id).unwrap().tuple(&addrs), tu);
        assert_eq!(t.get(id).unwrap().peer_wscale(), Some(7));
        t.remove(id, &tu).unwrap();
        assert_eq!(t.find(0, &tu), None);
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
        let n = t.insert(new(4242), now, Duration::ZERO);
        assert_eq!(n, id);
        assert_eq!(t.find(0, &new(4242).tuple), Some(id));
    }
}
