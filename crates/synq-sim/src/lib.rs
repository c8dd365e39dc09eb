//! synq-sim: a seeded, virtual-time, discrete-event network simulator.
//!
//! Hosts are anything implementing [`synq_core::Driver`], the contract a TUN
//! driver uses too; a [`synq_core::Stack`] is one. Packets are routed by the
//! destination address in their IPv4/IPv6 header and cross directed links
//! that model delay, jitter, loss, reordering, duplication, bandwidth and a
//! tail-drop queue. Every random decision comes from the seed, and ties in
//! the event queue break by insertion order, so a run is fully reproducible.
//!
//! After every input a host gets (a packet, a timeout, a call through
//! [`Network::host_mut`]) the network runs the driver loop's output step on
//! it: `poll_transmit` until `None`, then `poll_event` until `None`, handing
//! each event to the [`EventHook`] if one is set, so the host's application
//! can answer (accept, read, write). What it sends is drained at once, and
//! so on until a pass yields no event.

pub mod scenario;

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

use rand::{Rng, SeedableRng};
pub use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use synq_core::Driver;
pub use synq_core::{Duration, Instant};

/// Index of a host inside a [`Network`], in the order hosts were added.
pub type HostId = usize;

/// Default bound on [`Network::step`] calls over a network's lifetime.
pub const DEFAULT_STEP_LIMIT: u64 = 50_000_000;

/// Bound on packets one host may emit in a single drain of `poll_transmit`, on
/// events in a single drain of `poll_event`, and on drain passes after one input.
pub const MAX_DRAIN: usize = 1_000_000;

/// Free buffers kept for reuse; more are simply dropped.
const POOL_LIMIT: usize = 4096;

/// Errors from configuring a [`Network`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A [`LinkConfig`] field is out of range.
    #[error("invalid link config: {0}")]
    InvalidLink(String),
    /// A host id that was never returned by [`Network::add_host`].
    #[error("unknown host {0}")]
    UnknownHost(HostId),
    /// The run took more steps than [`Network::set_step_limit`] allows.
    #[error("the simulation exceeded {limit} steps at t={at}")]
    StepLimit {
        /// The limit.
        limit: u64,
        /// Virtual time of the step that went over it.
        at: Instant,
    },
}

/// Behaviour of one directed link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra uniform `[0, jitter]` delay per packet (may reorder).
    pub jitter: Duration,
    /// Drop probability per packet.
    pub loss: f64,
    /// Probability a packet is held back an extra `reorder_delay`, letting
    /// later packets overtake it.
    pub reorder: f64,
    /// Hold-back applied to packets picked by `reorder`.
    pub reorder_delay: Duration,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Serialization rate in bits/s; `None` is infinite.
    pub bandwidth_bps: Option<u64>,
    /// Packets waiting for serialization on this link; beyond it the link
    /// tail-drops. Only meaningful with a bandwidth.
    pub queue_limit: usize,
    /// Probability a delivered packet (or copy) arrives with one bit flipped, anywhere in
    /// it: the receiver's checksums must catch every one.
    pub corrupt: f64,
    /// Flapping: the link is down for `flap_down` at the start of every `flap_every`
    /// (from time zero), and drops what is sent meanwhile. Zero `flap_every`: never.
    pub flap_every: Duration,
    /// How long each flap keeps the link down.
    pub flap_down: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_micros(50),
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            bandwidth_bps: None,
            queue_limit: 1000,
            corrupt: 0.0,
            flap_every: Duration::ZERO,
            flap_down: Duration::ZERO,
        }
    }
}

impl LinkConfig {
    /// Check that probabilities are finite and in `[0, 1]`, that the queue
    /// holds at least one packet and that a bandwidth, if set, is non-zero.
    pub fn validate(&self) -> Result<(), SimError> {
        for (name, p) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
        ] {
            // NaN fails `contains`, so this also rejects it.
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::InvalidLink(format!(
                    "{name} must be a probability in [0, 1], got {p}"
                )));
            }
        }
        if self.flap_every > Duration::ZERO && self.flap_down >= self.flap_every {
            return Err(SimError::InvalidLink(
                "flap_down must be shorter than flap_every (the link would never be up)".into(),
            ));
        }
        if self.queue_limit == 0 {
            return Err(SimError::InvalidLink("queue_limit must be >= 1".into()));
        }
        if self.bandwidth_bps == Some(0) {
            return Err(SimError::InvalidLink(
                "bandwidth_bps must be > 0 (leave it unset for no limit)".into(),
            ));
        }
        Ok(())
    }
}

/// Packet counters of one directed link (or a sum of links).
///
/// After the network is idle:
/// `sent + duplicated == delivered + lost + queue_drops`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Packets handed to the link, including ones later lost or dropped.
    pub sent: u64,
    /// Packets that reached the destination host, duplicates included.
    pub delivered: u64,
    /// Packets dropped by the loss roll.
    pub lost: u64,
    /// Packets tail-dropped because the serialization queue was full.
    pub queue_drops: u64,
    /// Extra copies created by the duplicate roll.
    pub duplicated: u64,
    /// Packets held back by the reorder roll.
    pub reordered: u64,
    /// Bytes of delivered packets, duplicates included.
    pub bytes_delivered: u64,
    /// Delivered packets (or copies) with a bit flipped by the corruption roll.
    pub corrupted: u64,
    /// Packets dropped because the link was down (flapping); counted in `lost` too.
    pub down_drops: u64,
}

impl LinkStats {
    fn add(&mut self, o: &Self) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.queue_drops += o.queue_drops;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.bytes_delivered += o.bytes_delivered;
        self.corrupted += o.corrupted;
        self.down_drops += o.down_drops;
    }
}

/// What happened to a packet, as reported to the tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TapKind {
    /// Handed to a link (reported for every routable packet, even if it is
    /// then lost or dropped).
    Sent,
    /// Arrived at the destination host.
    Delivered,
    /// Dropped by the loss roll.
    Lost,
    /// Tail-dropped by a full serialization queue.
    QueueDrop,
    /// A second copy was scheduled.
    Duplicated,
    /// The destination matched no host, or the header was malformed.
    Unroutable,
}

/// One packet event, handed to the tap.
#[derive(Clone, Copy, Debug)]
pub struct TapEvent<'a> {
    /// Virtual time of the event.
    pub time: Instant,
    /// Sending host.
    pub from: HostId,
    /// Receiving host, `None` when unroutable.
    pub to: Option<HostId>,
    /// What happened.
    pub kind: TapKind,
    /// The IP packet.
    pub packet: &'a [u8],
}

/// Callback receiving every [`TapEvent`].
pub type Tap = Box<dyn FnMut(&TapEvent<'_>)>;

/// Callback receiving every event a host's `poll_event` yields: the time, the
/// host's id, the host itself (to act on the event as its application would)
/// and the event. Packets the host queues in answer leave at once.
pub type EventHook<N> = Box<dyn FnMut(Instant, HostId, &mut N, <N as Driver>::Event)>;

/// The packets one address sent and received, in order, with their virtual times: what a
/// capture on that host would hold (a packet it sent is recorded when it leaves, even if a
/// link then loses it; one it received when it arrives). Clones share the record, so keep
/// a clone and install [`Capture::tap`]. At most `limit` packets are kept; later ones are
/// counted in [`Capture::missed`].
#[derive(Clone)]
pub struct Capture(Rc<RefCell<CaptureState>>);

struct CaptureState {
    addr: IpAddr,
    limit: usize,
    packets: Vec<(Instant, Vec<u8>)>,
    missed: u64,
}

impl core::fmt::Debug for Capture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let st = self.0.borrow();
        f.debug_struct("Capture")
            .field("addr", &st.addr)
            .field("packets", &st.packets.len())
            .field("missed", &st.missed)
            .finish()
    }
}

impl Capture {
    /// An empty capture of `addr`'s traffic, keeping at most `limit` packets.
    pub fn new(addr: IpAddr, limit: usize) -> Self {
        Self(Rc::new(RefCell::new(CaptureState {
            addr,
            limit,
            packets: Vec::new(),
            missed: 0,
        })))
    }

    /// A tap recording the address's packets into this capture.
    pub fn tap(&self) -> Tap {
        let this = self.clone();
        Box::new(move |ev| this.update(ev))
    }

    /// Record `ev` if it is a packet the address sent or received.
    pub fn update(&self, ev: &TapEvent<'_>) {
        let st = &mut *self.0.borrow_mut();
        let ours = match ev.kind {
            // A packet to nobody (a spoofed address) still left the host.
            TapKind::Sent | TapKind::Unroutable => source(ev.packet) == Some(st.addr),
            TapKind::Delivered => destination(ev.packet) == Some(st.addr),
            _ => false,
        };
        if !ours {
            return;
        }
        if st.packets.len() < st.limit {
            st.packets.push((ev.time, ev.packet.to_vec()));
        } else {
            st.missed += 1;
        }
    }

    /// The packets recorded, oldest first, taken out of the capture.
    pub fn take(&self) -> Vec<(Instant, Vec<u8>)> {
        core::mem::take(&mut self.0.borrow_mut().packets)
    }

    /// Packets not kept because the limit was reached.
    pub fn missed(&self) -> u64 {
        self.0.borrow().missed
    }
}

/// The source address of an IPv4 or IPv6 packet, if the header is there.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let b: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// A SHA-256 fingerprint of a tap stream, for checking that two runs are
/// identical. Clones share one hasher, so keep a clone and install
/// [`TraceDigest::tap`].
#[derive(Clone, Default)]
pub struct TraceDigest(Rc<RefCell<(Sha256, u64)>>);

impl TraceDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tap feeding every event into this digest.
    pub fn tap(&self) -> Tap {
        let this = self.clone();
        Box::new(move |ev| this.update(ev))
    }

    /// Feed one event: time, endpoints, kind and the packet bytes.
    pub fn update(&self, ev: &TapEvent<'_>) {
        let (h, n) = &mut *self.0.borrow_mut();
        h.update(ev.time.total_micros().to_le_bytes());
        h.update((ev.from as u64).to_le_bytes());
        h.update(ev.to.map_or(u64::MAX, |t| t as u64).to_le_bytes());
        h.update([ev.kind as u8]);
        // Length prefix keeps packet boundaries unambiguous.
        h.update((ev.packet.len() as u64).to_le_bytes());
        h.update(ev.packet);
        *n += 1;
    }

    /// Events fed so far.
    pub fn events(&self) -> u64 {
        self.0.borrow().1
    }

    /// Digest of the events fed so far.
    pub fn digest(&self) -> [u8; 32] {
        self.0.borrow().0.clone().finalize().into()
    }
}

/// Read the destination address from an IPv4 or IPv6 header.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let b: [u8; 4] = packet[16..20].try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 if packet.len() >= 40 => {
            let b: [u8; 16] = packet[24..40].try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

enum EventKind {
    Deliver {
        from: HostId,
        to: HostId,
        packet: Vec<u8>,
    },
    Timer {
        host: HostId,
        generation: u64,
    },
}

struct Event {
    time: Instant,
    seq: u64,
    kind: EventKind,
}

// Reversed so the max-heap pops the earliest (time, seq) first.
impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}
impl Eq for Event {}

struct HostState<N> {
    node: N,
    /// Bumped to invalidate the queued timer event.
    generation: u64,
    /// Time of the live (current-generation) timer event, if queued.
    timer_at: Option<Instant>,
    dirty: bool,
}

#[derive(Default)]
struct Link {
    cfg: Option<LinkConfig>,
    stats: LinkStats,
    /// End of the last serialization in units of 1/`scale_bps` µs, so a
    /// packet's transmission time `bits * 10^6` is exact and never drifts.
    busy_until: u128,
    /// The bandwidth `busy_until` is scaled by.
    scale_bps: u64,
    /// Serialization start times (rounded up) of accepted packets, oldest first.
    starts: VecDeque<Instant>,
}

enum Outcome {
    Lost,
    QueueDrop,
    Deliver {
        at: Instant,
        duplicate_at: Option<Instant>,
        /// Bits to flip in the original and in the copy (bit index into the packet).
        flip: [Option<usize>; 2],
    },
}

/// A simulated network of hosts of type `N`.
pub struct Network<N: Driver> {
    now: Instant,
    hosts: Vec<HostState<N>>,
    routes: BTreeMap<IpAddr, HostId>,
    default_link: LinkConfig,
    links: BTreeMap<(HostId, HostId), Link>,
    queue: BinaryHeap<Event>,
    next_seq: u64,
    dirty: Vec<HostId>,
    steps: u64,
    step_limit: u64,
    link_rng: ChaCha8Rng,
    scenario_rng: ChaCha8Rng,
    scratch: Vec<u8>,
    pool: Vec<Vec<u8>>,
    unroutable: u64,
    tap: Option<Tap>,
    event_hook: Option<EventHook<N>>,
}

impl<N: Driver> Network<N> {
    /// An empty network at time zero whose randomness derives from `seed`.
    pub fn new(seed: u64) -> Self {
        // Separate ChaCha streams: scenario draws never shift link rolls.
        let link_rng = ChaCha8Rng::seed_from_u64(seed);
        let mut scenario_rng = ChaCha8Rng::seed_from_u64(seed);
        scenario_rng.set_stream(1);
        Self {
            now: Instant::ZERO,
            hosts: Vec::new(),
            routes: BTreeMap::new(),
            default_link: LinkConfig::default(),
            links: BTreeMap::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            dirty: Vec::new(),
            steps: 0,
            step_limit: DEFAULT_STEP_LIMIT,
            link_rng,
            scenario_rng,
            scratch: Vec::with_capacity(2048),
            pool: Vec::new(),
            unroutable: 0,
            tap: None,
            event_hook: None,
        }
    }

    /// Add a host reachable at `addr`. It is polled before the next event.
    ///
    /// # Panics
    /// If `addr` already belongs to a host.
    pub fn add_host(&mut self, addr: IpAddr, node: N) -> HostId {
        let id = self.hosts.len();
        self.hosts.push(HostState {
            node,
            generation: 0,
            timer_at: None,
            dirty: false,
        });
        self.add_address(id, addr);
        self.mark_dirty(id);
        id
    }

    /// Route packets for `addr` to `host` as well.
    ///
    /// # Panics
    /// If `host` is unknown or `addr` already belongs to a host.
    pub fn add_address(&mut self, host: HostId, addr: IpAddr) {
        assert!(host < self.hosts.len(), "{}", SimError::UnknownHost(host));
        if let Some(prev) = self.routes.insert(addr, host) {
            panic!("address {addr} already assigned to host {prev}");
        }
    }

    /// The host owning `addr`, if any.
    pub fn lookup(&self, addr: IpAddr) -> Option<HostId> {
        self.routes.get(&addr).copied()
    }

    /// Use `cfg` for every directed pair without its own config.
    ///
    /// # Panics
    /// If `cfg` is invalid; see [`Self::try_set_default_link`].
    pub fn set_default_link(&mut self, cfg: LinkConfig) {
        if let Err(e) = self.try_set_default_link(cfg) {
            panic!("{e}");
        }
    }

    /// Like [`Self::set_default_link`], returning validation errors.
    pub fn try_set_default_link(&mut self, cfg: LinkConfig) -> Result<(), SimError> {
        cfg.validate()?;
        self.default_link = cfg;
        Ok(())
    }

    /// Configure the directed link `from -> to`.
    ///
    /// # Panics
    /// If `cfg` is invalid or a host is unknown; see [`Self::try_set_link`].
    pub fn set_link(&mut self, from: HostId, to: HostId, cfg: LinkConfig) {
        if let Err(e) = self.try_set_link(from, to, cfg) {
            panic!("{e}");
        }
    }

    /// Like [`Self::set_link`], returning errors.
    pub fn try_set_link(
        &mut self,
        from: HostId,
        to: HostId,
        cfg: LinkConfig,
    ) -> Result<(), SimError> {
        for h in [from, to] {
            if h >= self.hosts.len() {
                return Err(SimError::UnknownHost(h));
            }
        }
        cfg.validate()?;
        self.links.entry((from, to)).or_default().cfg = Some(cfg);
        Ok(())
    }

    /// Bound the total number of steps; exceeding it panics, or is
    /// [`SimError::StepLimit`] from the `try_` methods.
    pub fn set_step_limit(&mut self, steps: u64) {
        self.step_limit = steps;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Shared access to a host.
    pub fn host(&self, id: HostId) -> &N {
        &self.hosts[id].node
    }

    /// Mutable access to a host. Marks it dirty: before the next event it is
    /// drained of transmits and events and its timeout is re-read.
    pub fn host_mut(&mut self, id: HostId) -> &mut N {
        self.mark_dirty(id);
        &mut self.hosts[id].node
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Randomness for scenario code, a stream separate from link rolls.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.scenario_rng
    }

    /// Install a callback that sees every packet event.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Remove the tap, returning it.
    pub fn take_tap(&mut self) -> Option<Tap> {
        self.tap.take()
    }

    /// Install the callback that receives every host event. Without one,
    /// events are drained and dropped.
    pub fn set_event_hook(&mut self, hook: EventHook<N>) {
        self.event_hook = Some(hook);
    }

    /// Remove the event hook, returning it.
    pub fn take_event_hook(&mut self) -> Option<EventHook<N>> {
        self.event_hook.take()
    }

    /// Counters of the directed link `from -> to`.
    pub fn link_stats(&self, from: HostId, to: HostId) -> LinkStats {
        self.links
            .get(&(from, to))
            .map(|l| l.stats)
            .unwrap_or_default()
    }

    /// Counters summed over all links.
    pub fn total_stats(&self) -> LinkStats {
        let mut total = LinkStats::default();
        for l in self.links.values() {
            total.add(&l.stats);
        }
        total
    }

    /// Packets dropped because their destination matched no host.
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }

    /// Time of the next pending event, after polling dirty hosts.
    pub fn next_event_time(&mut self) -> Option<Instant> {
        self.flush_dirty();
        loop {
            let ev = self.queue.peek()?;
            if self.is_stale(ev) {
                self.queue.pop();
                continue;
            }
            return Some(ev.time);
        }
    }

    /// Process the next event (polling dirty hosts first). Returns false if
    /// nothing is pending.
    ///
    /// # Panics
    /// When the step limit is exceeded; see [`Self::try_step`].
    pub fn step(&mut self) -> bool {
        self.try_step().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Self::step`], returning [`SimError::StepLimit`] instead of panicking (the
    /// event that would exceed the limit is not processed).
    pub fn try_step(&mut self) -> Result<bool, SimError> {
        self.flush_dirty();
        let ev = loop {
            let Some(ev) = self.queue.pop() else {
                return Ok(false);
            };
            if !self.is_stale(&ev) {
                break ev;
            }
        };
        if self.steps >= self.step_limit {
            let at = ev.time;
            // Left pending, so the network stays as it was.
            self.queue.push(ev);
            return Err(SimError::StepLimit {
                limit: self.step_limit,
                at,
            });
        }
        self.steps += 1;
        self.now = self.now.max(ev.time);
        match ev.kind {
            EventKind::Deliver { from, to, packet } => self.deliver(from, to, packet),
            EventKind::Timer { host, .. } => self.fire_timer(host),
        }
        Ok(true)
    }

    /// Step until virtual time would pass `deadline` (events at exactly
    /// `deadline` are processed), then set the clock to `deadline`.
    ///
    /// # Panics
    /// When the step limit is exceeded; see [`Self::try_run_until`].
    pub fn run_until(&mut self, deadline: Instant) {
        self.run_until_with(deadline, |_| true);
    }

    /// Like [`Self::run_until`], returning [`SimError::StepLimit`] instead of panicking.
    pub fn try_run_until(&mut self, deadline: Instant) -> Result<(), SimError> {
        self.try_run_until_with(deadline, |_| true)
    }

    /// Like [`Self::run_until`], calling `hook` after every step; stops early
    /// (leaving the clock at the last event) if `hook` returns false.
    ///
    /// # Panics
    /// When the step limit is exceeded; see [`Self::try_run_until_with`].
    pub fn run_until_with(&mut self, deadline: Instant, hook: impl FnMut(&mut Self) -> bool) {
        if let Err(e) = self.try_run_until_with(deadline, hook) {
            panic!("{e}");
        }
    }

    /// Like [`Self::run_until_with`], returning [`SimError::StepLimit`] instead of
    /// panicking.
    pub fn try_run_until_with(
        &mut self,
        deadline: Instant,
        mut hook: impl FnMut(&mut Self) -> bool,
    ) -> Result<(), SimError> {
        while self.next_event_time().is_some_and(|t| t <= deadline) {
            self.try_step()?;
            if !hook(self) {
                return Ok(());
            }
        }
        self.now = self.now.max(deadline);
        Ok(())
    }

    /// Step until nothing is pending; returns the steps taken.
    ///
    /// # Panics
    /// When the step limit is exceeded.
    pub fn run_until_idle(&mut self) -> u64 {
        let start = self.steps;
        while self.step() {}
        self.steps - start
    }

    fn mark_dirty(&mut self, id: HostId) {
        let h = &mut self.hosts[id];
        if !h.dirty {
            h.dirty = true;
            self.dirty.push(id);
        }
    }

    fn flush_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &h in &dirty {
            self.hosts[h].dirty = false;
            self.service(h);
        }
        // Hand the allocation back for next time.
        let mut dirty = dirty;
        dirty.clear();
        self.dirty = dirty;
    }

    fn is_stale(&self, ev: &Event) -> bool {
        match ev.kind {
            EventKind::Timer { host, generation } => self.hosts[host].generation != generation,
            EventKind::Deliver { .. } => false,
        }
    }

    fn push(&mut self, time: Instant, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Event { time, seq, kind });
    }

    fn deliver(&mut self, from: HostId, to: HostId, packet: Vec<u8>) {
        let stats = &mut self
            .links
            .get_mut(&(from, to))
            .expect("delivery on a link that was never used")
            .stats;
        stats.delivered += 1;
        stats.bytes_delivered += packet.len() as u64;
        self.emit(from, Some(to), TapKind::Delivered, &packet);
        self.hosts[to].node.handle_packet(self.now, &packet);
        if self.pool.len() < POOL_LIMIT {
            self.pool.push(packet);
        }
        self.service(to);
    }

    fn fire_timer(&mut self, h: HostId) {
        let host = &mut self.hosts[h];
        host.timer_at = None;
        // The event may predate a later deadline (see `rearm`); only call
        // the node once its deadline has really come.
        if host.node.poll_timeout().is_some_and(|d| d <= self.now) {
            host.node.handle_timeout(self.now);
            self.service(h);
        } else {
            self.rearm(h);
        }
    }

    /// The driver loop's output step: drain the host's transmits into links and
    /// re-arm its timer, then hand its events to the hook; if there were any,
    /// what the hook did may have queued packets, so go again.
    fn service(&mut self, h: HostId) {
        for _ in 0..MAX_DRAIN {
            self.drain_transmits(h);
            self.rearm(h);
            if !self.drain_events(h) {
                return;
            }
        }
        panic!(
            "host {h} kept yielding events for {MAX_DRAIN} passes at t={}",
            self.now
        );
    }

    fn drain_transmits(&mut self, h: HostId) {
        let now = self.now;
        let mut buf = std::mem::take(&mut self.scratch);
        let mut n = 0usize;
        loop {
            buf.clear();
            let Some(len) = self.hosts[h].node.poll_transmit(now, &mut buf) else {
                break;
            };
            n += 1;
            if n > MAX_DRAIN {
                panic!("host {h} emitted more than {MAX_DRAIN} packets in one drain at t={now}");
            }
            self.send(h, &buf[..len]);
        }
        self.scratch = buf;
    }

    /// Hand every pending event of the host to the hook; false if there was none.
    fn drain_events(&mut self, h: HostId) -> bool {
        let now = self.now;
        let node = &mut self.hosts[h].node;
        let mut n = 0usize;
        while let Some(event) = node.poll_event() {
            n += 1;
            if n > MAX_DRAIN {
                panic!("host {h} yielded more than {MAX_DRAIN} events in one drain at t={now}");
            }
            if let Some(hook) = self.event_hook.as_mut() {
                hook(now, h, node, event);
            }
        }
        n > 0
    }

    fn rearm(&mut self, h: HostId) {
        let now = self.now;
        let host = &mut self.hosts[h];
        let Some(deadline) = host.node.poll_timeout() else {
            // A still-queued event just wakes the host spuriously; cheaper
            // than leaving a stale entry behind.
            return;
        };
        let at = deadline.max(now);
        // An earlier queued wake-up suffices: it re-arms when it fires. This
        // keeps deadlines that only move later from piling up stale events.
        if host.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        host.generation += 1;
        host.timer_at = Some(at);
        let generation = host.generation;
        self.push(
            at,
            EventKind::Timer {
                host: h,
                generation,
            },
        );
    }

    fn emit(&mut self, from: HostId, to: Option<HostId>, kind: TapKind, packet: &[u8]) {
        if let Some(tap) = self.tap.as_mut() {
            tap(&TapEvent {
                time: self.now,
                from,
                to,
                kind,
                packet,
            });
        }
    }

    fn send(&mut self, from: HostId, packet: &[u8]) {
        let Some(to) = destination(packet).and_then(|a| self.routes.get(&a).copied()) else {
            self.unroutable += 1;
            self.emit(from, None, TapKind::Unroutable, packet);
            return;
        };
        let outcome = self.roll(from, to, packet.len());
        self.emit(from, Some(to), TapKind::Sent, packet);
        match outcome {
            Outcome::Lost => self.emit(from, Some(to), TapKind::Lost, packet),
            Outcome::QueueDrop => self.emit(from, Some(to), TapKind::QueueDrop, packet),
            Outcome::Deliver {
                at,
                duplicate_at,
                flip,
            } => {
                let mut copy = self.copy_of(packet);
                flip_bit(&mut copy, flip[0]);
                self.push(
                    at,
                    EventKind::Deliver {
                        from,
                        to,
                        packet: copy,
                    },
                );
                if let Some(at2) = duplicate_at {
                    self.emit(from, Some(to), TapKind::Duplicated, packet);
                    let mut copy = self.copy_of(packet);
                    flip_bit(&mut copy, flip[1]);
                    self.push(
                        at2,
                        EventKind::Deliver {
                            from,
                            to,
                            packet: copy,
                        },
                    );
                }
            }
        }
    }

    /// Apply the link model to one packet. Rolls happen in a fixed order:
    /// loss, jitter, reorder, duplicate, duplicate's jitter.
    fn roll(&mut self, from: HostId, to: HostId, size: usize) -> Outcome {
        let now = self.now;
        let rng = &mut self.link_rng;
        let Link {
            cfg,
            stats,
            busy_until,
            scale_bps,
            starts,
        } = self.links.entry((from, to)).or_default();
        let cfg = cfg.as_ref().unwrap_or(&self.default_link);
        stats.sent += 1;

        if cfg.flap_every > Duration::ZERO
            && now.total_micros() % cfg.flap_every.total_micros() < cfg.flap_down.total_micros()
        {
            stats.down_drops += 1;
            stats.lost += 1;
            return Outcome::Lost;
        }
        if cfg.loss > 0.0 && rng.gen::<f64>() < cfg.loss {
            stats.lost += 1;
            return Outcome::Lost;
        }

        let tx_done = match cfg.bandwidth_bps {
            None => now,
            Some(bps) => {
                if *scale_bps != bps {
                    // The rate changed: rescale, rounding the old end up.
                    let old = u128::from((*scale_bps).max(1));
                    *busy_until = busy_until.div_ceil(old).saturating_mul(u128::from(bps));
                    *scale_bps = bps;
                }
                let bps = u128::from(bps);
                // Packets whose serialization has begun no longer wait.
                while starts.front().is_some_and(|&s| s <= now) {
                    starts.pop_front();
                }
                if starts.len() >= cfg.queue_limit {
                    stats.queue_drops += 1;
                    return Outcome::QueueDrop;
                }
                let start = (*busy_until).max(u128::from(now.total_micros()) * bps);
                let done = start.saturating_add(size as u128 * 8 * 1_000_000);
                starts.push_back(to_instant(start.div_ceil(bps)));
                *busy_until = done;
                to_instant(done.div_ceil(bps))
            }
        };

        let mut at = tx_done + cfg.delay;
        at += jitter(rng, cfg.jitter);
        if cfg.reorder > 0.0 && rng.gen::<f64>() < cfg.reorder {
            stats.reordered += 1;
            at += cfg.reorder_delay;
        }
        let duplicate_at = if cfg.duplicate > 0.0 && rng.gen::<f64>() < cfg.duplicate {
            stats.duplicated += 1;
            // 1 µs later so the copy never precedes the original at equal
            // jitter, plus fresh jitter so copies can also spread out.
            Some(at + Duration::from_micros(1) + jitter(rng, cfg.jitter))
        } else {
            None
        };
        let mut flip = [None; 2];
        if cfg.corrupt > 0.0 {
            for (i, f) in flip.iter_mut().enumerate() {
                if (i == 0 || duplicate_at.is_some()) && rng.gen::<f64>() < cfg.corrupt {
                    stats.corrupted += 1;
                    *f = Some(rng.gen_range(0..size.max(1) * 8));
                }
            }
        }
        Outcome::Deliver {
            at,
            duplicate_at,
            flip,
        }
    }

    fn copy_of(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(packet);
        v
    }
}

fn to_instant(us: u128) -> Instant {
    Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

/// Flip bit `bit` (counted from the first byte's high bit) of `packet`, if any.
fn flip_bit(packet: &mut [u8], bit: Option<usize>) {
    if let Some(b) = bit.filter(|&b| b / 8 < packet.len()) {
        packet[b / 8] ^= 0x80 >> (b % 8);
    }
}

fn jitter(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    if max == Duration::ZERO {
        Duration::ZERO
    } else {
        Duration::from_micros(rng.gen_range(0..=max.total_micros()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_parses_v4_v6_and_rejects_junk() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(
            destination(&v4),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
        );
        assert_eq!(destination(&v4[..19]), None);

        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[39] = 1;
        assert_eq!(destination(&v6), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(destination(&v6[..39]), None);

        assert_eq!(destination(&[]), None);
        let mut bad = v4;
        bad[0] = 0x55;
        assert_eq!(destination(&bad), None);
    }

    #[test]
    fn events_pop_in_time_then_fifo_order() {
        let mut q = BinaryHeap::new();
        for (seq, t) in [(0, 5), (1, 3), (2, 5), (3, 3)] {
            q.push(Event {
                time: Instant::from_micros(t),
                seq,
                kind: EventKind::Timer {
                    host: 0,
                    generation: 0,
                },
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|e| e.seq)).collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }

    #[test]
    fn validate_rejects_bad_configs() {
        assert!(LinkConfig::default().validate().is_ok());
        let bad = [
            LinkConfig {
                loss: 1.5,
                ..Default::default()
            },
            LinkConfig {
                loss: f64::NAN,
                ..Default::default()
            },
            LinkConfig {
                duplicate: -0.1,
                ..Default::default()
            },
            LinkConfig {
                reorder: f64::INFINITY,
                ..Default::default()
            },
            LinkConfig {
                queue_limit: 0,
                ..Default::default()
            },
            LinkConfig {
                bandwidth_bps: Some(0),
                ..Default::default()
            },
        ];
        for cfg in bad {
            assert!(
                matches!(cfg.validate(), Err(SimError::InvalidLink(_))),
                "{cfg:?}"
            );
        }
    }
}
