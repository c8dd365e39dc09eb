//! Shards: one stack per core behind one address, as Linux runs SO_REUSEPORT listeners
//! behind a NIC that spreads flows over its queues (RSS).
//!
//! Every shard of a seed shares the secrets [`Stack::new`] draws from it (ISN and timestamp
//! keys, SYN-cookie keys, hash keys), so a flow gets the same ISN on any shard and a cookie
//! one shard sent validates on any other; each shard draws its random choices (ephemeral
//! ports, BSD drop picks, the challenge-ACK budget) from a stream of its own. [`Steering`]
//! picks a packet's shard from its 4-tuple under a key of the seed, as RSS does with its
//! Toeplitz key; [`Shards`] holds the stacks and steers for tests, benchmarks and drivers
//! that keep every shard in one place. A driver with a thread per shard makes each stack
//! with [`Stack::new_shard`] and lets its device (a multi-queue TUN, a NIC) steer.

use crate::config::Config;
use crate::counters::Counters;
use crate::driver::Driver;
use crate::error::{AcceptError, ListenError};
use crate::hash::{write_key, FourTuple, SeededState};
use crate::stack::{ConnHandle, Event, ListenerHandle, ListenerInfo, Stack};
use crate::Instant;
use core::hash::BuildHasher;
use core::net::{IpAddr, SocketAddr};
use core::num::NonZeroUsize;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The ChaCha stream the steering key comes from: shard streams are `u32` indices, so no
/// shard draws from it.
const STEERING_STREAM: u64 = u64::MAX;

impl Stack {
    /// Shard `shard` of a host whose shards all have `seed`: every secret is the one
    /// [`Stack::new`]`(config, seed)` draws (so ISNs, timestamp offsets and SYN cookies agree
    /// across shards), while ephemeral ports, BSD drop picks and the challenge-ACK budget
    /// come from the shard's own random stream. Shard 0 is `Stack::new(config, seed)`.
    pub fn new_shard(config: Config, seed: u64, shard: u32) -> Self {
        let mut s = Self::new(config, seed);
        s.set_rng_stream(shard);
        s
    }
}

/// Which shard a packet belongs to: a keyed hash of its 4-tuple (SipHash-1-3, the key
/// drawn from the shards' seed), scaled to the shard count. Stable per flow, spread evenly
/// over flows, and not predictable without the seed, so a peer cannot aim every flow at
/// one shard. Packets without a TCP 4-tuple (malformed, fragments, other protocols) go
/// to shard 0, whose stack counts and drops them.
#[derive(Clone, Copy, Debug)]
pub struct Steering {
    key: SeededState,
}

impl Steering {
    /// The steering of every shard made from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STEERING_STREAM);
        Self {
            key: SeededState::new(rng.next_u64(), rng.next_u64()),
        }
    }

    /// The flow hash of a TCP packet (IPv4 unfragmented, or IPv6 with TCP as the next
    /// header), or `None`. Never panics, whatever the bytes.
    pub fn flow_hash(&self, packet: &[u8]) -> Option<u64> {
        let t = FourTuple::of_packet(packet)?;
        Some(self.tuple_hash(t.remote.ip(), t.remote.port(), t.local.ip(), t.local.port()))
    }

    /// The hash of a flow given by its addresses and ports as a packet to us carries them
    /// (the peer's as source).
    pub fn tuple_hash(&self, src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> u64 {
        let mut h = self.key.build_hasher();
        write_key(&mut h, src, src_port, dst, dst_port);
        core::hash::Hasher::finish(&h)
    }

    /// The shard, below `shards`, that `packet` goes to (0 when `shards` is 0 or 1).
    pub fn shard(&self, packet: &[u8], shards: usize) -> usize {
        match self.flow_hash(packet) {
            Some(h) if shards > 1 => scale(h, shards),
            _ => 0,
        }
    }
}

/// `h` scaled into `0..n` by multiplication, as Linux's `reciprocal_scale` does: uses the
/// high bits, costs no division.
fn scale(h: u64, n: usize) -> usize {
    ((u128::from(h) * n as u128) >> 64) as usize
}

/// A listener open on every shard (SO_REUSEPORT sockets of one group): one handle each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardListener {
    handles: Vec<ListenerHandle>,
    /// The group's newest SYN-cookie stamp, shared with every member.
    stamp: Option<Instant>,
}

impl ShardListener {
    /// The listener's handle on shard `shard`.
    pub fn handle(&self, shard: usize) -> Option<ListenerHandle> {
        self.handles.get(shard).copied()
    }
}

impl ListenerInfo {
    /// Fold in a sibling listener (the same address on another shard): queues and
    /// backlogs add up, `since` is the earliest; the peaks add up too, so they bound the
    /// group's peak from above (the shards need not have peaked at the same time).
    pub fn merge(&mut self, other: &Self) {
        self.recv_q += other.recv_q;
        self.send_q = self.send_q.saturating_add(other.send_q);
        self.syn_recv += other.syn_recv;
        self.since = self.since.min(other.since);
        self.peak_recv_q += other.peak_recv_q;
        self.peak_syn_recv += other.peak_syn_recv;
    }
}

/// Several stacks of one seed, one per shard, and the steering between them, in one
/// place: for tests, benchmarks and single-threaded drivers. [`Driver`] feeds each packet
/// to its shard and drains the shards in turn; events carry their shard's index.
#[derive(Debug)]
pub struct Shards {
    stacks: Vec<Stack>,
    steering: Steering,
    listeners: Vec<ShardListener>,
    /// The shard `poll_transmit` and `poll_event` drain first, so none starves the others.
    next_tx: usize,
    next_event: usize,
}

impl Shards {
    /// `n` shards made with [`Stack::new_shard`]`(config, seed, i)`.
    pub fn new(config: &Config, seed: u64, n: NonZeroUsize) -> Self {
        Self {
            stacks: (0..n.get())
                .map(|i| Stack::new_shard(config.clone(), seed, i as u32))
                .collect(),
            steering: Steering::new(seed),
            listeners: Vec::new(),
            next_tx: 0,
            next_event: 0,
        }
    }

    /// How many shards.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    /// Never: there is at least one shard (clippy wants the pair).
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The steering in force.
    pub fn steering(&self) -> &Steering {
        &self.steering
    }

    /// Shard `i`'s stack.
    pub fn shard(&self, i: usize) -> Option<&Stack> {
        self.stacks.get(i)
    }

    /// Shard `i`'s stack, for socket calls on its connections.
    pub fn shard_mut(&mut self, i: usize) -> Option<&mut Stack> {
        self.stacks.get_mut(i)
    }

    /// Every shard's stack, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Stack> + '_ {
        self.stacks.iter()
    }

    /// Own `addr` on every shard.
    pub fn add_address(&mut self, addr: IpAddr) {
        for s in &mut self.stacks {
            s.add_address(addr);
        }
    }

    /// `listen(2)` on every shard, as SO_REUSEPORT sockets of one group; each shard has the
    /// backlog of its own. If a shard refuses, the shards that had opened close again.
    pub fn listen(
        &mut self,
        now: Instant,
        local: SocketAddr,
        backlog: i32,
    ) -> Result<ShardListener, ListenError> {
        let mut handles = Vec::with_capacity(self.stacks.len());
        for s in &mut self.stacks {
            match s.listen(now, local, backlog) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Only what this call opened: a listen again leaves the group as it was.
                    let known =
                        |h: &ListenerHandle| self.listeners.iter().any(|l| l.handles.contains(h));
                    let opened: Vec<_> = handles.iter().map(|h| !known(h)).collect();
                    for ((s, &h), new) in self.stacks.iter_mut().zip(&handles).zip(opened) {
                        if new {
                            s.close_listener(now, h);
                        }
                    }
                    return Err(e);
                }
            }
        }
        if let Some(l) = self.listeners.iter().find(|l| l.handles == handles) {
            return Ok(l.clone());
        }
        let l = ShardListener {
            handles,
            stamp: None,
        };
        self.listeners.push(l.clone());
        Ok(l)
    }

    /// `accept(2)` on the group: the first shard, in order, with a connection waiting;
    /// the shard's index, the connection and its peer.
    pub fn accept(
        &mut self,
        now: Instant,
        l: &ShardListener,
    ) -> Result<(usize, ConnHandle, SocketAddr), AcceptError> {
        let mut err = AcceptError::NotListening;
        for (i, (s, &h)) in self.stacks.iter_mut().zip(&l.handles).enumerate() {
            match s.accept(now, h) {
                Ok((c, peer)) => return Ok((i, c, peer)),
                Err(AcceptError::WouldBlock) => err = AcceptError::WouldBlock,
                Err(_) => {}
            }
        }
        Err(err)
    }

    /// The group as one `ss -lnt` row: every shard's listener merged
    /// ([`ListenerInfo::merge`]).
    pub fn listener_info(&self, l: &ShardListener) -> Option<ListenerInfo> {
        let mut rows = self
            .stacks
            .iter()
            .zip(&l.handles)
            .filter_map(|(s, &h)| s.listener_info(h));
        let mut sum = rows.next()?;
        for r in rows {
            sum.merge(&r);
        }
        Some(sum)
    }

    /// Every shard's counters added up.
    pub fn counters(&self) -> Counters {
        let mut sum = Counters::default();
        for s in &self.stacks {
            sum += s.counters();
        }
        sum
    }

    /// Hand `bytes` to shard `shard` (as a device queue would, whatever the steering
    /// says); packets for a shard that does not exist go to shard 0.
    pub fn handle_packet_on(&mut self, now: Instant, shard: usize, bytes: &[u8]) {
        self.input_on(now, shard, bytes, false);
    }

    fn input_on(&mut self, now: Instant, shard: usize, bytes: &[u8], verified: bool) {
        let shard = if shard < self.stacks.len() { shard } else { 0 };
        let s = &mut self.stacks[shard];
        if verified {
            s.handle_packet_verified(now, bytes);
        } else {
            s.handle_packet(now, bytes);
        }
        self.share_stamps(shard);
    }

    /// Give every member of each group the newest cookie stamp `shard`'s member has, as
    /// Linux's group keeps one: a cookie ACK steered elsewhere is still checked.
    fn share_stamps(&mut self, shard: usize) {
        for l in &mut self.listeners {
            let Some(&h) = l.handles.get(shard) else {
                continue;
            };
            let Some(t) = self.stacks[shard].cookie_stamp(h) else {
                continue;
            };
            if l.stamp.is_some_and(|s| s >= t) {
                continue;
            }
            l.stamp = Some(t);
            for (s, &h) in self.stacks.iter_mut().zip(&l.handles) {
                s.share_cookie_stamp(h, t);
            }
        }
    }
}

impl Driver for Shards {
    type Event = (usize, Event);

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        let shard = self.steering.shard(packet, self.stacks.len());
        self.input_on(now, shard, packet, false);
    }

    fn handle_packet_verified(&mut self, now: Instant, packet: &[u8]) {
        let shard = self.steering.shard(packet, self.stacks.len());
        self.input_on(now, shard, packet, true);
    }

    fn handle_timeout(&mut self, now: Instant) {
        for s in &mut self.stacks {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        let n = self.stacks.len();
        for i in 0..n {
            let k = (self.next_tx + i) % n;
            if let Some(len) = self.stacks[k].poll_transmit(now, buf) {
                self.next_tx = (k + 1) % n;
                return Some(len);
            }
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.stacks.iter().filter_map(Stack::poll_timeout).min()
    }

    fn poll_event(&mut self) -> Option<(usize, Event)> {
        let n = self.stacks.len();
        for i in 0..n {
            let k = (self.next_event + i) % n;
            if let Some(e) = self.stacks[k].poll_event() {
                self.next_event = (k + 1) % n;
                return Some((k, e));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::util::drain;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;
    use synq_wire::{parse_packet, ChecksumMode};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const SEED: u64 = 7;

    fn two(config: &Config) -> Shards {
        let mut s = Shards::new(config, SEED, NonZeroUsize::new(2).unwrap());
        s.add_address(SERVER);
        s
    }

    fn client() -> Stack {
        let mut c = Stack::new(Config::default(), 99);
        c.add_address(CLIENT);
        c
    }

    #[test]
    fn shard_zero_is_the_plain_stack() {
        let remote = SocketAddr::new(SERVER, 80);
        let now = Instant::from_secs(1);
        let mut a = Stack::new(Config::default(), SEED);
        let mut b = Stack::new_shard(Config::default(), SEED, 0);
        for s in [&mut a, &mut b] {
            s.add_address(CLIENT);
            for _ in 0..20 {
                s.connect(now, remote).unwrap();
            }
        }
        assert_eq!(drain(&mut a, now), drain(&mut b, now));
    }

    #[test]
    fn a_cookie_from_one_shard_validates_on_another() {
        let mut config = Config::default();
        config.set("net.ipv4.tcp_syncookies", "2").unwrap();
        let mut shards = two(&config);
        let local = SocketAddr::new(SERVER, 80);
        let l = shards.listen(Instant::ZERO, local, 16).unwrap();
        let mut c = client();
        let now = Instant::from_secs(5);
        let conn = c.connect(now, local).unwrap();
        let [syn] = drain(&mut c, now).try_into().unwrap();
        shards.handle_packet_on(now, 0, &syn);
        let [synack] = drain(&mut shards, now).try_into().unwrap();
        assert_eq!(shards.shard(0).unwrap().counters().syncookies_sent, 1);
        assert_eq!(
            shards.listener_info(&l).unwrap().syn_recv,
            0,
            "no state kept"
        );
        c.handle_packet(now, &synack);
        let [ack] = drain(&mut c, now).try_into().unwrap();
        // The final ACK lands on the shard that never saw the SYN.
        shards.handle_packet_on(now, 1, &ack);
        let b = shards.shard(1).unwrap().counters();
        assert_eq!((b.syncookies_recv, b.syncookies_failed), (1, 0));
        let (i, _, peer) = shards.accept(now, &l).unwrap();
        assert_eq!(
            (i, peer),
            (
                1,
                SocketAddr::new(CLIENT, c.info(conn).unwrap().tuple.local.port())
            )
        );
        assert_eq!(shards.counters().passive_opens, 1);
        assert!(drain(&mut shards, now).is_empty(), "no RST");
    }

    #[test]
    fn a_freebsd_cookie_from_one_shard_validates_on_another() {
        // FreeBSD's cookie key and bucket hash derive from the shared seed too: with
        // syncookies_only every shard checks any shard's cookies. (A bucket overflow, and
        // so a pause, stays the business of the shard it happened on.)
        let mut config = Config::default();
        config.set("synq.listen_model", "freebsd").unwrap();
        config.set("net.inet.tcp.syncookies_only", "1").unwrap();
        let mut shards = two(&config);
        let local = SocketAddr::new(SERVER, 80);
        let l = shards.listen(Instant::ZERO, local, 16).unwrap();
        let mut c = client();
        let now = Instant::from_secs(5);
        c.connect(now, local).unwrap();
        let [syn] = drain(&mut c, now).try_into().unwrap();
        shards.handle_packet_on(now, 0, &syn);
        let [synack] = drain(&mut shards, now).try_into().unwrap();
        c.handle_packet(now, &synack);
        let [ack] = drain(&mut c, now).try_into().unwrap();
        shards.handle_packet_on(now, 1, &ack);
        let bsd = shards.shard(1).unwrap().freebsd_counters();
        assert_eq!(bsd.sc_recvcookie, 1);
        assert_eq!(shards.accept(now, &l).unwrap().0, 1);
        assert!(drain(&mut shards, now).is_empty(), "no RST");
    }

    #[test]
    fn isns_and_timestamps_agree_across_shards() {
        let mut shards = Shards::new(&Config::default(), SEED, NonZeroUsize::new(3).unwrap());
        shards.add_address(SERVER);
        let now = Instant::from_secs(2);
        let (local, remote) = (SocketAddr::new(SERVER, 40_000), SocketAddr::new(CLIENT, 80));
        let syns: Vec<(u32, u32)> = (0..3)
            .map(|i| {
                let s = shards.shard_mut(i).unwrap();
                s.connect_from(now, local, remote).unwrap();
                let [syn] = drain(s, now).try_into().unwrap();
                let p = parse_packet(&syn, ChecksumMode::Verify).unwrap();
                (p.tcp.seq.0, p.tcp.options.timestamps.unwrap().tsval)
            })
            .collect();
        assert!(syns.windows(2).all(|w| w[0] == w[1]), "{syns:?}");
        // Another seed is another host.
        let mut other = Stack::new_shard(Config::default(), SEED + 1, 0);
        other.add_address(SERVER);
        other.connect_from(now, local, remote).unwrap();
        let [syn] = drain(&mut other, now).try_into().unwrap();
        assert_ne!(
            parse_packet(&syn, ChecksumMode::Verify).unwrap().tcp.seq.0,
            syns[0].0
        );
    }

    #[test]
    fn each_shard_draws_its_own_ports() {
        let shards = Shards::new(&Config::default(), SEED, NonZeroUsize::new(4).unwrap());
        let ports: Vec<Vec<u16>> = (0..4)
            .map(|i| {
                let mut s = Stack::new_shard(Config::default(), SEED, i);
                s.add_address(CLIENT);
                (0..8)
                    .map(|_| {
                        let h = s
                            .connect(Instant::ZERO, SocketAddr::new(SERVER, 80))
                            .unwrap();
                        s.info(h).unwrap().tuple.local.port()
                    })
                    .collect()
            })
            .collect();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(ports[i], ports[j], "shards {i} and {j}");
            }
        }
        assert_eq!(shards.len(), 4);
    }

    fn v4_syn(src: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&Ipv4Addr::new(192, 0, 2, 2).octets());
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = 0x02;
        p
    }

    #[test]
    fn steering_is_stable_per_flow_and_spreads_flows() {
        let st = Steering::new(SEED);
        let mut per = [0u32; 4];
        for i in 0..10_000u32 {
            let src = Ipv4Addr::from(0x0a00_0000 | (i >> 6));
            let p = v4_syn(src, 1024 + (i & 63) as u16 * 7, 80);
            let k = st.shard(&p, 4);
            assert_eq!(k, st.shard(&p, 4), "stable");
            assert_eq!(
                k,
                Steering::new(SEED).shard(&p, 4),
                "the same key for every shard"
            );
            per[k] += 1;
        }
        for n in per {
            assert!((2250..=2750).contains(&n), "{per:?}");
        }
        // Another seed steers the same flows elsewhere.
        let other = Steering::new(SEED + 1);
        let moved = (0..1000u16)
            .filter(|&p| {
                st.shard(&v4_syn(Ipv4Addr::new(10, 0, 0, 1), p, 80), 4)
                    != other.shard(&v4_syn(Ipv4Addr::new(10, 0, 0, 1), p, 80), 4)
            })
            .count();
        assert!(moved > 500, "{moved}");
    }

    #[test]
    fn steering_sends_what_has_no_tuple_to_shard_zero() {
        let st = Steering::new(SEED);
        let p = v4_syn(Ipv4Addr::new(10, 1, 2, 3), 5555, 80);
        let mut udp = p.clone();
        udp[9] = 17;
        let mut frag = p.clone();
        frag[6] = 0x20; // more fragments
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&20u16.to_be_bytes());
        v6[6] = 17;
        v6[8..24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        for bad in [&p[..30], &udp[..], &frag[..], &v6[..], &[][..], &[0x45][..]] {
            assert_eq!(st.flow_hash(bad), None);
            assert_eq!(st.shard(bad, 8), 0);
        }
        v6[6] = 6;
        v6[43] = 0; // a TCP header of zeros still has ports
        v6[52] = 5 << 4;
        assert!(st.flow_hash(&v6).is_some());
        assert_eq!(st.shard(&p, 0), 0);
        assert_eq!(st.shard(&p, 1), 0);
    }

    proptest! {
        #[test]
        fn steering_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120),
                                 n in 0usize..64, cut in 0usize..60) {
            let st = Steering::new(SEED);
            prop_assert!(st.shard(&bytes, n) < n.max(1));
            // A real SYN cut short or with bytes flipped.
            let mut p = v4_syn(Ipv4Addr::new(10, 9, 8, 7), 4000, 80);
            let len = p.len();
            p.truncate(len - cut.min(len));
            for (i, b) in bytes.iter().enumerate().take(p.len()) {
                if i % 3 == 0 {
                    p[i] ^= b;
                }
            }
            prop_assert!(st.shard(&p, n) < n.max(1));
        }
    }

    #[test]
    fn shards_as_a_driver_complete_handshakes_on_every_shard() {
        let mut shards = Shards::new(&Config::default(), SEED, NonZeroUsize::new(3).unwrap());
        shards.add_address(SERVER);
        let local = SocketAddr::new(SERVER, 80);
        let l = shards.listen(Instant::ZERO, local, 128).unwrap();
        let mut c = client();
        let now = Instant::from_secs(1);
        for _ in 0..60 {
            c.connect(now, local).unwrap();
        }
        for _ in 0..10 {
            for p in drain(&mut c, now) {
                Driver::handle_packet(&mut shards, now, &p);
            }
            for p in drain(&mut shards, now) {
                c.handle_packet(now, &p);
            }
        }
        let mut per = [0usize; 3];
        let mut events = 0;
        while let Some((i, e)) = shards.poll_event() {
            assert!(matches!(e, Event::AcceptReady(_)));
            assert!(i < 3);
            events += 1;
        }
        assert!(events >= 3, "each shard's listener became ready");
        while let Ok((i, _, _)) = shards.accept(now, &l) {
            per[i] += 1;
        }
        assert_eq!(per.iter().sum::<usize>(), 60);
        assert!(per.iter().all(|&n| n > 0), "{per:?}");
        let info = shards.listener_info(&l).unwrap();
        assert_eq!((info.recv_q, info.send_q), (0, 3 * 128));
        assert_eq!(shards.counters().passive_opens, 60);
        assert_eq!(
            shards.counters().passive_opens,
            shards
                .iter()
                .map(|s| s.counters().passive_opens)
                .sum::<u64>()
        );
        assert_eq!(
            shards.listen(now, local, 1).map(|l| l.handle(2).is_some()),
            Ok(true),
            "listening again changes the backlog"
        );
    }
}
