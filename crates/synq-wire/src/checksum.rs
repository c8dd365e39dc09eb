//! Internet checksum (RFC 1071) helpers.

use core::net::IpAddr;

/// Adds `data` as big-endian 16-bit words to the ones'-complement accumulator
/// `initial`; an odd trailing byte is padded with zero.
///
/// The result is unfolded; chain calls and finish with [`fold`].
#[must_use]
#[inline(always)]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    // RFC 1071 §2(B): the sum does not depend on byte order, so add native-order words
    // eight bytes at a time and swap once at the end.
    let (whole, rest) = data.split_at(data.len() & !7);
    let mut acc = 0u64;
    if data.len() >= LONG {
        acc = sum_long(whole);
    } else {
        // A header: whole words with the carry added back (an add and an add-with-carry),
        // fewer instructions than the vector loop's set-up and tail.
        for b in whole.chunks_exact(8) {
            acc = add_carry(acc, word(b));
        }
    }
    // The last 0-7 bytes, zero padded: every block starts at an even offset, so an odd
    // last byte is the high byte of a big-endian word, as RFC 1071 pads it.
    let mut tail = 0u64;
    let mut at = 0;
    if rest.len() >= 4 {
        tail = u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        at = 4;
    }
    if rest.len() - at >= 2 {
        tail += u64::from(u16::from_ne_bytes([rest[at], rest[at + 1]]));
        at += 2;
    }
    if let Some(&last) = rest.get(at) {
        tail += u64::from(u16::from_ne_bytes([last, 0]));
    }
    acc = add_carry(acc, tail);
    // 64 to 32 to 16 bits, each carry added back (RFC 1071 §2(D)): no loop, no branch.
    let (lo, c) = (acc as u32).overflowing_add((acc >> 32) as u32);
    let w = lo + u32::from(c);
    let (lo, c) = (w as u16).overflowing_add((w >> 16) as u16);
    let folded = u16::from_be(lo + u16::from(c));
    let (total, c) = initial.overflowing_add(u32::from(folded));
    total + u32::from(c)
}

/// [`sum`] over a header, or a segment that may be one. The common header lengths (20: an
/// IPv4 header, a bare TCP header; 32: TCP with timestamps; 40: a SYN's or SYN-ACK's) each
/// get a copy at their constant length, which inlines as straight-line code with no loop.
#[must_use]
#[inline(always)]
pub(crate) fn sum_header(data: &[u8], initial: u32) -> u32 {
    match data.len() {
        20 => sum(&data[..20], initial),
        32 => sum(&data[..32], initial),
        40 => sum(&data[..40], initial),
        _ => sum(data, initial),
    }
}

/// From this many bytes on, [`sum`] takes its vector loop.
const LONG: usize = 128;

/// Eight bytes in native order.
#[inline(always)]
fn word(b: &[u8]) -> u64 {
    u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The blocks of a long buffer, each half of each word into a u64: no carry is lost for
/// any length, and the loop vectorises. Out of line, so the header path inlined at every
/// checksum stays small.
#[inline(never)]
fn sum_long(whole: &[u8]) -> u64 {
    let mut acc = 0u64;
    for b in whole.chunks_exact(8) {
        let v = word(b);
        acc += (v & 0xffff_ffff) + (v >> 32);
    }
    acc
}

/// `a + b` with the carry out added back in: no overflow, since a carry leaves at most
/// `u64::MAX - 1`.
#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, c) = a.overflowing_add(b);
    s + u64::from(c)
}

/// Folds the carries of an accumulated sum and complements it, giving the
/// value to store in a checksum field. Over data that includes a correct
/// checksum field the result is 0.
#[must_use]
pub fn fold(sum: u32) -> u16 {
    // One end-around carry fold leaves 16 bits: a carry out leaves at most 0xfffe.
    let (s, c) = (sum as u16).overflowing_add((sum >> 16) as u16);
    !(s + u16::from(c))
}

/// Sum of the TCP/UDP pseudo header: the IPv4 one (RFC 793) or the IPv6 one
/// (RFC 8200 §8.1) depending on the address family. Both reduce to the same
/// words: addresses, protocol, and the upper-layer length.
#[must_use]
#[inline]
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, length: u32) -> u32 {
    // Whole 32-bit words (each congruent to its 16-bit halves' sum, modulo 0xffff), at
    // most nine of them in a u64, then folded to 32 bits with the carry added back.
    let acc = addr_words(src) + addr_words(dst) + u64::from(protocol) + u64::from(length);
    let (lo, c) = (acc as u32).overflowing_add((acc >> 32) as u32);
    lo + u32::from(c)
}

/// An address's big-endian 32-bit words, added.
#[inline]
fn addr_words(addr: &IpAddr) -> u64 {
    let be32 = |b: &[u8]| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    match addr {
        IpAddr::V4(a) => be32(&a.octets()),
        IpAddr::V6(a) => a.octets().chunks_exact(4).map(be32).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (after folding).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
        assert_eq!(sum(&[], 7), 7);
    }

    #[test]
    fn ipv4_header_known_vector() {
        // Classic example header with checksum b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&hdr, 0)), 0xb861);
        let mut with = hdr;
        with[10] = 0xb8;
        with[11] = 0x61;
        assert_eq!(fold(sum(&with, 0)), 0);
    }

    #[test]
    fn pseudo_header_is_the_sum_of_its_bytes() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfe80, 0xffff, 1, 2, 3, 4, 0xfffe, 0xabcd));
        let cases = [
            (v4(10, 0, 0, 1), v4(255, 255, 255, 255), 6, 40u32),
            (v4(192, 168, 0, 199), v4(0, 0, 0, 0), 17, 0x1_ffff),
            (v6, v6, 6, 65_535),
            // The word sum is 2^33 - 1: folding it to 32 bits carries out.
            (v4(255, 255, 255, 255), v4(255, 255, 255, 255), 1, 0),
        ];
        for (src, dst, proto, len) in cases {
            let octets = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            let mut bytes = [octets(src), octets(dst)].concat();
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, proto]);
            assert_eq!(
                fold(pseudo_header(&src, &dst, proto, len)),
                fold(sum(&bytes, 0)),
                "{src} {dst}"
            );
        }
    }

    /// The RFC 1071 sum as written: big-endian words one at a time.
    fn word_by_word(data: &[u8], initial: u32) -> u16 {
        let mut acc = u64::from(initial);
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            acc += u64::from(*last) << 8;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    proptest::proptest! {
        #[test]
        fn wide_sum_matches_word_by_word(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
            initial in proptest::num::u32::ANY,
        ) {
            proptest::prop_assert_eq!(fold(sum(&data, initial)), word_by_word(&data, initial));
        }

        #[test]
        fn pseudo_header_matches_its_bytes(
            a in proptest::array::uniform16(proptest::num::u8::ANY),
            b in proptest::array::uniform16(proptest::num::u8::ANY),
            v6 in proptest::bool::ANY,
            protocol in proptest::num::u8::ANY,
            length in proptest::num::u32::ANY,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let (src, dst, mut bytes) = if v6 {
                (IpAddr::from(a), IpAddr::from(b), [a, b].concat())
            } else {
                let (x, y) = ([a[0], a[1], a[2], a[3]], [b[0], b[1], b[2], b[3]]);
                (IpAddr::from(x), IpAddr::from(y), [x, y].concat())
            };
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, protocol]);
            let ph = pseudo_header(&src, &dst, protocol, length);
            proptest::prop_assert_eq!(fold(sum(&data, ph)), word_by_word(&[bytes, data].concat(), 0));
        }

        #[test]
        fn fold_matches_folding_until_16_bits(s in proptest::num::u32::ANY) {
            let mut acc = s;
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            proptest::prop_assert_eq!(fold(s), !(acc as u16));
        }
    }

    #[test]
    fn every_length_around_the_vector_loop_sums_alike() {
        // Bytes near 0xff make carries on both paths.
        let data: Vec<u8> = (0..2 * LONG as u32 + 9)
            .map(|i| 0xff - (i.wrapping_mul(2_654_435_761) >> 29) as u8)
            .collect();
        for n in 0..data.len() {
            assert_eq!(
                fold(sum(&data[..n], 0)),
                word_by_word(&data[..n], 0),
                "{n} bytes"
            );
            // The header sum's constant-length copies too, with a start near the top.
            for initial in [0, 0xfffe_ffff] {
                let want = word_by_word(&data[..n], initial);
                assert_eq!(fold(sum_header(&data[..n], initial)), want, "{n} bytes");
            }
        }
    }

    #[test]
    fn an_initial_sum_near_the_top_keeps_its_carry() {
        for initial in [u32::MAX, u32::MAX - 1, 0xffff_0000] {
            for data in [&[0xff, 0xff][..], &[0x80, 0x01, 0x7f], &[0xff; 9]] {
                assert_eq!(fold(sum(data, initial)), word_by_word(data, initial));
            }
        }
    }

    #[test]
    fn long_input_does_not_lose_carries() {
        let data = [0xffu8; 300_000];
        assert_eq!(fold(sum(&data, 0)), 0);
    }

    #[test]
    fn pseudo_header_sums() {
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let d = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let manual = sum(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 20], 0);
        assert_eq!(fold(pseudo_header(&s, &d, 6, 20)), fold(manual));

        let s6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let d6 = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2));
        let mut buf = [0u8; 40];
        buf[..16].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        buf[16..32].copy_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2).octets());
        buf[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        buf[39] = 6;
        assert_eq!(fold(pseudo_header(&s6, &d6, 6, 70_000)), fold(sum(&buf, 0)));
    }
}
