//! Internet checksum (RFC 1071) helpers.

use core::net::IpAddr;

/// Adds `data` as big-endian 16-bit words to the ones'-complement accumulator
/// `initial`; an odd trailing byte is padded with zero.
///
/// The result is unfolded; chain calls and finish with [`fold`].
#[must_use]
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    // RFC 1071 §2(B): the sum does not depend on byte order, so add native-order words
    // eight bytes at a time (each half into a u64: no carry is lost for any length) and
    // swap once at the end. Four times fewer additions than word by word.
    let mut acc = 0u64;
    let mut blocks = data.chunks_exact(8);
    for b in &mut blocks {
        let v = u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        acc += (v & 0xffff_ffff) + (v >> 32);
    }
    let mut words = blocks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        // Padded with a zero byte after it, as a big-endian word.
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let folded = u16::from_be(acc as u16);
    let mut total = u64::from(initial) + u64::from(folded);
    // 2^32 == 1 (mod 0xffff), so folding the high half keeps the sum.
    while total > u64::from(u32::MAX) {
        total = (total & 0xffff_ffff) + (total >> 32);
    }
    total as u32
}

/// Folds the carries of an accumulated sum and complements it, giving the
/// value to store in a checksum field. Over data that includes a correct
/// checksum field the result is 0.
#[must_use]
pub fn fold(sum: u32) -> u16 {
    let mut s = sum;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Sum of the TCP/UDP pseudo header: the IPv4 one (RFC 793) or the IPv6 one
/// (RFC 8200 §8.1) depending on the address family. Both reduce to the same
/// words: addresses, protocol, and the upper-layer length.
#[must_use]
#[inline]
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, length: u32) -> u32 {
    // Whole big-endian words, no folding: at most 16 address words and three more, far
    // from overflowing, and any later `sum` or `fold` takes the carries.
    addr_words(src) + addr_words(dst) + u32::from(protocol) + (length >> 16) + (length & 0xffff)
}

/// An address's 16-bit big-endian words, added.
#[inline]
fn addr_words(addr: &IpAddr) -> u32 {
    let pair = |b: &[u8]| {
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (v >> 16) + (v & 0xffff)
    };
    match addr {
        IpAddr::V4(a) => pair(&a.octets()),
        IpAddr::V6(a) => a.octets().chunks_exact(4).map(pair).sum(),
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
