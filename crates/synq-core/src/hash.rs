//! Seeded hashing: maps keyed by peer-controlled tuples use SipHash with a key from the
//! stack's seed, so iteration is deterministic and collisions cannot be precomputed.

use core::hash::BuildHasher;
use core::net::{IpAddr, SocketAddr};
use siphasher::sip::{SipHasher13, SipHasher24};
use synq_wire::{Ipv4Packet, Ipv6Packet, SeqNumber, TcpFlags, TcpPacket, TcpRepr};

/// A `BuildHasher` with an explicit key (never the OS's randomness).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// The index hash of an IPv4 4-tuple given as its parts: what hashing the
    /// [`FourTuple`] gives, without building one (the request index's growth rehashes
    /// every record this way).
    #[inline(always)]
    pub(crate) fn hash_v4(&self, local: [u8; 4], lport: u16, remote: [u8; 4], rport: u16) -> u64 {
        use core::hash::Hasher;
        let mut h = self.build_hasher();
        write_v4_index_key(&mut h, local, lport, remote, rport);
        h.finish()
    }

    /// A fast hasher's state from the same key, for a [`LocalMap`].
    pub(crate) fn local(&self) -> foldhash::fast::FixedState {
        foldhash::fast::FixedState::with_seed(self.k0 ^ self.k1.rotate_left(32))
    }
}

impl BuildHasher for SeededState {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A map whose keys only this stack inserts (listening addresses): a packet can look one
/// up but cannot add one, so no flooding to resist, and a fast seeded hash will do.
pub(crate) type LocalMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// A connection's identity, from this stack's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FourTuple {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

impl FourTuple {
    /// A segment from our end of this connection to the peer's, window 0, no options and
    /// no payload until the caller sets them: every segment the engine sends starts here.
    #[inline]
    pub(crate) fn segment(
        &self,
        seq: SeqNumber,
        ack: SeqNumber,
        flags: TcpFlags,
    ) -> TcpRepr<'static> {
        TcpRepr::header(self.local.port(), self.remote.port(), seq, ack, flags)
    }

    /// The 4-tuple of a TCP packet to us (IPv4 unfragmented, or IPv6 with TCP as the next
    /// header) as its headers give it, checksums not checked; `None` for anything else.
    /// Never panics, whatever the bytes.
    pub(crate) fn of_packet(packet: &[u8]) -> Option<Self> {
        let ports = |tcp: &[u8]| {
            let t = TcpPacket::new_checked(tcp).ok()?;
            Some((t.src_port(), t.dst_port()))
        };
        let (src, dst, (sport, dport)): (IpAddr, IpAddr, _) = match packet.first()? >> 4 {
            4 => {
                let p = Ipv4Packet::new_checked(packet).ok()?;
                if p.protocol() != 6 || p.frag_offset() != 0 || p.more_frags() {
                    return None;
                }
                (
                    p.src_addr().into(),
                    p.dst_addr().into(),
                    ports(p.payload())?,
                )
            }
            6 => {
                let p = Ipv6Packet::new_checked(packet).ok()?;
                if p.next_header() != 6 {
                    return None;
                }
                (
                    p.src_addr().into(),
                    p.dst_addr().into(),
                    ports(p.payload())?,
                )
            }
            _ => return None,
        };
        Some(Self {
            local: SocketAddr::new(dst, dport),
            remote: SocketAddr::new(src, sport),
        })
    }
}

/// A 4-tuple's hash, kept with the tuple it was computed for: the hash if that tuple is
/// `t`. Read by reference: the pair is 72 bytes to copy.
#[inline]
pub(crate) fn cached_hash(cache: &Option<(FourTuple, u64)>, t: &FourTuple) -> Option<u64> {
    match cache {
        Some((k, h)) if k == t => Some(*h),
        _ => None,
    }
}

/// Hashed as one packed write: a derived `Hash` feeds the keyed SipHash a dozen small
/// writes (discriminants, length prefixes, octets, ports), and every packet pays for them.
/// An IPv4 pair is padded to two whole words (16 bytes): SipHash then takes two full
/// blocks and no partial-word tail, and the connection and request indexes hash every
/// packet this way.
impl core::hash::Hash for FourTuple {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        if let (IpAddr::V4(x), IpAddr::V4(y)) = (self.local.ip(), self.remote.ip()) {
            let (lport, rport) = (self.local.port(), self.remote.port());
            return write_v4_index_key(h, x.octets(), lport, y.octets(), rport);
        }
        write_key(
            h,
            self.local.ip(),
            self.local.port(),
            self.remote.ip(),
            self.remote.port(),
        );
    }
}

/// An IPv4 4-tuple as the indexes hash it: two whole words, the ports padded to eight bytes.
#[inline(always)]
fn write_v4_index_key<H: core::hash::Hasher>(
    h: &mut H,
    local: [u8; 4],
    lport: u16,
    remote: [u8; 4],
    rport: u16,
) {
    h.write_u64(v4_pair(local, remote));
    h.write_u64(u64::from(port_word(lport, rport)));
}

/// Two addresses and two ports (or any u16 tags) in one hash write; IPv4 pairs take 12
/// bytes, anything else 36.
#[inline(always)]
pub(crate) fn write_key<H: core::hash::Hasher>(h: &mut H, a: IpAddr, pa: u16, b: IpAddr, pb: u16) {
    // Whole words, not a byte slice: on a fresh hasher the block logic folds away. The byte
    // stream is the same as one write of the packed key, so every hash value is unchanged.
    let ports = port_word(pa, pb);
    if let (IpAddr::V4(x), IpAddr::V4(y)) = (a, b) {
        h.write_u64(v4_pair(x.octets(), y.octets()));
        h.write_u32(ports);
        return;
    }
    let v6 = |a: IpAddr| match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    };
    for addr in [v6(a), v6(b)] {
        let (hi, lo) = addr.split_at(8);
        h.write_u64(u64::from_le_bytes(hi.try_into().unwrap_or_default()));
        h.write_u64(u64::from_le_bytes(lo.try_into().unwrap_or_default()));
    }
    h.write_u32(ports);
}

/// Two big-endian ports as the 4 bytes `write_key` hashes, read little-endian.
#[inline(always)]
fn port_word(pa: u16, pb: u16) -> u32 {
    u32::from(u16::from_le_bytes(pa.to_be_bytes()))
        | u32::from(u16::from_le_bytes(pb.to_be_bytes())) << 16
}

/// Two IPv4 addresses' 8 bytes read little-endian, as whole words (not byte by byte).
#[inline(always)]
fn v4_pair(x: [u8; 4], y: [u8; 4]) -> u64 {
    u64::from(u32::from_le_bytes(x)) | u64::from(u32::from_le_bytes(y)) << 32
}

/// Words hashed after a 4-tuple's key (a cookie's counter, FreeBSD's flag word).
#[derive(Clone, Copy)]
enum Tail {
    None,
    U32(u32),
    U64(u64),
}

/// Keyed 128-bit SipHash-2-4 secret, used for ISNs and timestamp offsets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Secret {
    k0: u64,
    k1: u64,
}

impl Secret {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// SipHash-2-4 of the 4-tuple (one packed write, see [`write_key`]) plus `extra`.
    pub(crate) fn hash_tuple(&self, t: &FourTuple, extra: u32) -> u64 {
        self.sip_tuple(t, Tail::U32(extra))
    }

    /// SipHash-2-4 of the 4-tuple alone (12 bytes for IPv4, as Linux's `siphash_3u32`).
    pub(crate) fn hash_key(&self, t: &FourTuple) -> u64 {
        self.sip_tuple(t, Tail::None)
    }

    /// As [`Secret::hash_tuple`], with a second word mixed in.
    pub(crate) fn hash_tuple2(&self, t: &FourTuple, extra: u32, more: u32) -> u64 {
        self.sip_tuple(t, Tail::U64(u64::from(extra) | u64::from(more) << 32))
    }

    /// The 4-tuple, then `tail` (inlined per caller: a hot path per SYN). An IPv4 key
    /// with at most a 4-byte tail is written and finished on its own path: the ports and
    /// the tail go in one word, so the hasher's block logic folds away (the same byte
    /// stream as `write_key` then the tail, so the same value).
    #[inline(always)]
    fn sip_tuple(&self, t: &FourTuple, tail: Tail) -> u64 {
        use core::hash::Hasher;
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        let (a, b) = (t.local.ip(), t.remote.ip());
        if let (IpAddr::V4(x), IpAddr::V4(y)) = (a, b) {
            let ports = port_word(t.local.port(), t.remote.port());
            match tail {
                Tail::None => {
                    h.write_u64(v4_pair(x.octets(), y.octets()));
                    h.write_u32(ports);
                    return h.finish();
                }
                Tail::U32(w) => {
                    h.write_u64(v4_pair(x.octets(), y.octets()));
                    h.write_u64(u64::from(ports) | u64::from(w) << 32);
                    return h.finish();
                }
                Tail::U64(_) => {}
            }
        }
        write_key(&mut h, a, t.local.port(), b, t.remote.port());
        match tail {
            Tail::None => {}
            Tail::U32(w) => h.write_u32(w),
            Tail::U64(w) => h.write_u64(w),
        }
        h.finish()
    }

    /// A secret derived from this one and `n` (a key schedule without a random source:
    /// the core draws no randomness of its own).
    pub(crate) fn derive(&self, n: u64) -> Self {
        use core::hash::Hasher;
        let word = |tag: u64| {
            let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
            h.write_u64(n);
            h.write_u64(tag);
            h.finish()
        };
        Self::new(word(0), word(1))
    }
}

/// The key ISNs and timestamp offsets derive from (RFC 6528; Linux 6.x
/// `secure_tcp_seq_and_ts_off`: one keyed hash of the 4-tuple, its low half the ISN's hash,
/// its high half the timestamp offset).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Secrets {
    pub(crate) isn: Secret,
}

impl Secrets {
    /// The ISN (RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock) and the timestamp
    /// offset, both from one hash as Linux 6.x computes them.
    pub(crate) fn isn_and_ts_offset(
        &self,
        tuple: &FourTuple,
        now: crate::Instant,
        mode: crate::config::TsMode,
    ) -> (SeqNumber, u32) {
        let h = self.isn.hash_key(tuple);
        let isn = (h as u32).wrapping_add((now.total_micros() / 4) as u32);
        (SeqNumber(isn), ts_half(h, mode))
    }

    /// The ISN alone.
    pub(crate) fn isn(&self, tuple: &FourTuple, now: crate::Instant) -> SeqNumber {
        self.isn_and_ts_offset(tuple, now, crate::config::TsMode::Off)
            .0
    }

    /// The timestamp offset alone: per connection, as the 6.18 kernel keys it (checked
    /// side by side in synq-sim's `kernel_facts.rs`).
    pub(crate) fn ts_offset(&self, tuple: &FourTuple, mode: crate::config::TsMode) -> u32 {
        match mode {
            crate::config::TsMode::On => ts_half(self.isn.hash_key(tuple), mode),
            _ => 0,
        }
    }
}

/// The timestamp offset in the ISN's hash: its high half, with `tcp_timestamps` = 1 only.
fn ts_half(h: u64, mode: crate::config::TsMode) -> u32 {
    match mode {
        crate::config::TsMode::On => (h >> 32) as u32,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::{Hash, Hasher};
    use core::net::{Ipv4Addr, Ipv6Addr};

    /// The packed key as bytes: addresses (IPv4 alone when both are IPv4, else IPv6 or
    /// IPv4-mapped), then both ports big-endian.
    fn key_bytes(t: &FourTuple) -> Vec<u8> {
        let mut b = Vec::new();
        match (t.local.ip(), t.remote.ip()) {
            (IpAddr::V4(x), IpAddr::V4(y)) => {
                b.extend_from_slice(&x.octets());
                b.extend_from_slice(&y.octets());
            }
            (x, y) => {
                for a in [x, y] {
                    let v6 = match a {
                        IpAddr::V4(v) => v.to_ipv6_mapped(),
                        IpAddr::V6(v) => v,
                    };
                    b.extend_from_slice(&v6.octets());
                }
            }
        }
        b.extend_from_slice(&t.local.port().to_be_bytes());
        b.extend_from_slice(&t.remote.port().to_be_bytes());
        b
    }

    /// Every fast path hashes the same byte stream as one write of the packed key and its
    /// tail, so the values (ISNs, offsets, cookies) do not depend on how it is fed.
    #[test]
    fn tuple_hashes_equal_one_write_of_the_packed_bytes() {
        let s = Secret::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let v4 = |a, p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), p);
        let v6 = |a, p| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, a)), p);
        let tuples = [
            FourTuple {
                local: v4(1, 80),
                remote: v4(2, 40_000),
            },
            FourTuple {
                local: v6(1, 443),
                remote: v6(2, 1),
            },
            FourTuple {
                local: v4(1, 80),
                remote: v6(2, 65_535),
            },
        ];
        let one_write = |t: &FourTuple, tail: &[u8]| {
            let mut h = SipHasher24::new_with_keys(s.k0, s.k1);
            h.write(&[key_bytes(t), tail.to_vec()].concat());
            h.finish()
        };
        for t in &tuples {
            assert_eq!(s.hash_key(t), one_write(t, &[]), "{t:?}");
            assert_eq!(
                s.hash_tuple(t, 0xdead_beef),
                one_write(t, &0xdead_beefu32.to_le_bytes())
            );
            let both = [7u32.to_le_bytes(), 9u32.to_le_bytes()].concat();
            assert_eq!(s.hash_tuple2(t, 7, 9), one_write(t, &both), "{t:?}");
            // The indexes' hash: an IPv4 pair padded with four zero bytes.
            let mut h = SipHasher13::new_with_keys(1, 2);
            t.hash(&mut h);
            let mut w = SipHasher13::new_with_keys(1, 2);
            let pad: &[u8] = if key_bytes(t).len() == 12 {
                &[0; 4]
            } else {
                &[]
            };
            w.write(&[key_bytes(t), pad.to_vec()].concat());
            let index_hash = h.finish();
            assert_eq!(index_hash, w.finish(), "{t:?}");
            if let (IpAddr::V4(l), IpAddr::V4(r)) = (t.local.ip(), t.remote.ip()) {
                let parts = SeededState::new(1, 2).hash_v4(
                    l.octets(),
                    t.local.port(),
                    r.octets(),
                    t.remote.port(),
                );
                assert_eq!(parts, index_hash, "{t:?}");
            }
        }
    }
}
