//! Zero-copy IPv4, IPv6 and TCP packet views, plus parse/emit of whole
//! packets, for the synq userspace TCP/IP stack.
//!
//! Two layers:
//!
//! * Views ([`Ipv4Packet`], [`Ipv6Packet`], [`TcpPacket`]) wrap a byte
//!   buffer and read or write header fields in place.
//! * Representations ([`IpRepr`], [`TcpRepr`], [`TcpOptions`]) are plain
//!   values; [`parse_packet`] and [`emit_packet`] convert between them and
//!   bytes.
//!
//! # No-panic contract
//!
//! Nothing in this crate panics on untrusted input:
//!
//! * [`parse_packet`], [`peek_src`], [`peek_dst`], [`TcpOptions::parse`] and
//!   [`TcpRepr::parse`] accept any bytes and report problems as [`Error`].
//! * For the views, once `check_len` succeeds (which `new_checked` calls), no
//!   accessor panics. `new_unchecked` skips the checks and is meant for
//!   buffers you emit into; field accessors on a too-short unchecked buffer
//!   may panic, though `payload`/`options` clamp to the buffer.
//! * Emitting ([`TcpRepr::emit`], [`TcpOptions::emit`]) panics only when the
//!   caller passes a buffer shorter than the documented length;
//!   [`emit_packet`] checks this and returns [`Error::BufferTooSmall`].
//!
//! The crate is `no_std` and never allocates.
#![cfg_attr(not(test), no_std)]

use core::fmt;
use core::net::IpAddr;

pub mod checksum;
pub mod ipv4;
pub mod ipv6;
pub mod seq;
pub mod tcp;

pub use checksum::{fold, pseudo_header, sum};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use seq::SeqNumber;
pub use tcp::{ChecksumMode, SackBlocks, TcpFlags, TcpOptions, TcpPacket, TcpRepr, Timestamps};

/// Why a packet was rejected. Each variant is counted separately by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// Buffer shorter than a header or than a length field says.
    Truncated,
    /// IP version nibble not 4/6 (or not what the view expects).
    BadVersion,
    /// IPv4 IHL < 5 or past the buffer.
    BadHeaderLen,
    /// IPv4 total length < header length or > buffer; IPv6 payload length > buffer.
    BadTotalLen,
    /// IPv4 header or TCP checksum wrong.
    BadChecksum,
    /// TCP data offset < 5 or header past the segment.
    BadDataOffset,
    /// IPv4 MF set or fragment offset != 0 (we don't reassemble).
    Fragmented,
    /// Not TCP (IPv4 protocol / IPv6 next header != 6; IPv6 extension
    /// headers are unsupported).
    UnsupportedProtocol,
    /// Emit: output buffer too small.
    BufferTooSmall,
    /// Emit: src and dst of different families.
    AddressMismatch,
    /// Emit: packet longer than the IP length field can express.
    PacketTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "packet truncated",
            Self::BadVersion => "bad IP version",
            Self::BadHeaderLen => "bad IPv4 header length",
            Self::BadTotalLen => "bad IP length field",
            Self::BadChecksum => "bad checksum",
            Self::BadDataOffset => "bad TCP data offset",
            Self::Fragmented => "fragmented IPv4 packet",
            Self::UnsupportedProtocol => "not a TCP packet",
            Self::BufferTooSmall => "output buffer too small",
            Self::AddressMismatch => "source and destination address families differ",
            Self::PacketTooLarge => "packet too large for the IP length field",
        })
    }
}

impl core::error::Error for Error {}

/// Result with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// The IP-level fields synq keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRepr {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
}

/// An IP packet carrying a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedPacket<'a> {
    /// IP header fields.
    pub ip: IpRepr,
    /// The TCP segment; its payload borrows the input bytes.
    pub tcp: TcpRepr<'a>,
}

/// Parse one IPv4 or IPv6 packet carrying TCP (version from the first nibble); checks lengths,
/// the IPv4 header checksum (when mode is Verify), fragments, and the TCP checksum.
///
/// Bytes past the IP length field (link-layer padding) are ignored.
pub fn parse_packet(bytes: &[u8], checksum: ChecksumMode) -> Result<ParsedPacket<'_>> {
    let Some(&first) = bytes.first() else {
        return Err(Error::Truncated);
    };
    let (ip, segment) = match first >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(bytes)?;
            if checksum == ChecksumMode::Verify && !p.verify_checksum() {
                return Err(Error::BadChecksum);
            }
            if p.more_frags() || p.frag_offset() != 0 {
                return Err(Error::Fragmented);
            }
            if p.protocol() != tcp::PROTOCOL {
                return Err(Error::UnsupportedProtocol);
            }
            let ip = IpRepr {
                src: IpAddr::V4(p.src_addr()),
                dst: IpAddr::V4(p.dst_addr()),
                hop_limit: p.ttl(),
            };
            // Slice `bytes` directly so the segment borrows the input, not `p`.
            (ip, &bytes[p.header_len()..usize::from(p.total_len())])
        }
        6 => {
            let p = Ipv6Packet::new_checked(bytes)?;
            if p.next_header() != tcp::PROTOCOL {
                return Err(Error::UnsupportedProtocol);
            }
            let ip = IpRepr {
                src: IpAddr::V6(p.src_addr()),
                dst: IpAddr::V6(p.dst_addr()),
                hop_limit: p.hop_limit(),
            };
            let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
            (ip, &bytes[ipv6::HEADER_LEN..end])
        }
        _ => return Err(Error::BadVersion),
    };
    let packet = TcpPacket::new_checked(segment)?;
    let tcp = TcpRepr::parse(&packet, &ip.src, &ip.dst, checksum)?;
    Ok(ParsedPacket { ip, tcp })
}

#[inline]
fn ip_header_len(ip: &IpRepr) -> usize {
    match ip.src {
        IpAddr::V4(_) => ipv4::HEADER_LEN,
        IpAddr::V6(_) => ipv6::HEADER_LEN,
    }
}

/// Bytes emit_packet will write (the family is taken from `ip.src`).
pub fn packet_len(ip: &IpRepr, tcp: &TcpRepr<'_>) -> usize {
    Prepared::new(ip, tcp).len()
}

/// Emit IP header + TCP segment into buf[..n], returning n. IPv4: ident 0, DF set, TOS 0, TTL = hop_limit, protocol 6, header checksum filled.
/// IPv6: traffic class 0, flow label 0, next header 6. TCP checksum filled.
pub fn emit_packet(ip: &IpRepr, tcp: &TcpRepr<'_>, buf: &mut [u8]) -> Result<usize> {
    Prepared::new(ip, tcp).emit(buf)
}

/// A packet about to be emitted, its option layout worked out once: ask its
/// [`len`](Prepared::len) to size a buffer, then [`emit`](Prepared::emit) into it.
#[derive(Clone, Copy, Debug)]
pub struct Prepared<'r, 'a> {
    ip: &'r IpRepr,
    tcp: &'r TcpRepr<'a>,
    tcp_hl: usize,
}

impl<'r, 'a> Prepared<'r, 'a> {
    /// Lays out `ip` and `tcp` for emitting. Inlined into other crates (a few adds and
    /// moves, less than the call).
    #[inline]
    pub fn new(ip: &'r IpRepr, tcp: &'r TcpRepr<'a>) -> Self {
        let tcp_hl = tcp.header_len();
        Self { ip, tcp, tcp_hl }
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub fn len(&self) -> usize {
        ip_header_len(self.ip) + self.tcp_hl + self.tcp.payload.len()
    }

    /// Never: a packet has at least its headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// As [`emit_packet`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let (ip, tcp) = (self.ip, self.tcp);
        let hl = ip_header_len(ip);
        let n = self.len();
        match (ip.src, ip.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let total = u16::try_from(n).map_err(|_| Error::PacketTooLarge)?;
                let buf = buf.get_mut(..n).ok_or(Error::BufferTooSmall)?;
                // The whole header as one array: version 4, IHL 5, TOS 0, ident 0, DF.
                let mut h = [0u8; ipv4::HEADER_LEN];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[6] = 0x40;
                h[8] = ip.hop_limit;
                h[9] = tcp::PROTOCOL;
                h[12..16].copy_from_slice(&src.octets());
                h[16..20].copy_from_slice(&dst.octets());
                let c = fold(sum(&h, 0));
                h[10..12].copy_from_slice(&c.to_be_bytes());
                buf[..hl].copy_from_slice(&h);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let payload = u16::try_from(n - hl).map_err(|_| Error::PacketTooLarge)?;
                let buf = buf.get_mut(..n).ok_or(Error::BufferTooSmall)?;
                let mut p = Ipv6Packet::new_unchecked(&mut buf[..hl]);
                // Clears traffic class and flow label along with the version.
                p.set_flow_label(0);
                p.set_traffic_class(0);
                p.set_version(6);
                p.set_payload_len(payload);
                p.set_next_header(tcp::PROTOCOL);
                p.set_hop_limit(ip.hop_limit);
                p.set_src_addr(src);
                p.set_dst_addr(dst);
            }
            _ => return Err(Error::AddressMismatch),
        }
        tcp.emit_sized(&mut buf[hl..n], self.tcp_hl, &ip.src, &ip.dst);
        Ok(n)
    }
}

fn peek_addr(bytes: &[u8], v4_at: usize, v6_at: usize) -> Option<IpAddr> {
    // Both peeks require the whole fixed header, so they agree on validity.
    match bytes.first()? >> 4 {
        4 if bytes.len() >= ipv4::HEADER_LEN => {
            let o: [u8; 4] = bytes.get(v4_at..v4_at + 4)?.try_into().ok()?;
            Some(IpAddr::from(o))
        }
        6 if bytes.len() >= ipv6::HEADER_LEN => {
            let o: [u8; 16] = bytes.get(v6_at..v6_at + 16)?.try_into().ok()?;
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

/// Destination address of an IP packet, without full validation (for routing in the simulator). None if too short / not v4/v6.
pub fn peek_dst(bytes: &[u8]) -> Option<IpAddr> {
    peek_addr(bytes, 16, 24)
}

/// Source address likewise.
pub fn peek_src(bytes: &[u8]) -> Option<IpAddr> {
    peek_addr(bytes, 12, 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpRepr = IpRepr {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        hop_limit: 64,
    };
    const V6: IpRepr = IpRepr {
        src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        hop_limit: 255,
    };

    fn tcp(payload: &[u8]) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 1234,
            dst_port: 443,
            seq: SeqNumber(1),
            ack: SeqNumber(2),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 29200,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                sack_blocks: SackBlocks::new(),
                timestamps: Some(Timestamps { tsval: 5, tsecr: 6 }),
                bsd_layout: false,
            },
            payload,
        }
    }

    fn emit(ip: &IpRepr, t: &TcpRepr<'_>) -> ([u8; 200], usize) {
        let mut buf = [0xeeu8; 200];
        let n = emit_packet(ip, t, &mut buf).unwrap();
        assert_eq!(n, packet_len(ip, t));
        (buf, n)
    }

    proptest::proptest! {
        /// `Prepared::emit` writes every byte of the length it gives, whatever the buffer
        /// held: callers reuse the last packet's buffer without zeroing it. The options
        /// write as many bytes as `len` says.
        #[test]
        fn emit_writes_every_byte(
            v6 in proptest::bool::ANY,
            mss in proptest::option::of(proptest::num::u16::ANY),
            ws in proptest::option::of(0..15u8),
            sack_permitted in proptest::bool::ANY,
            ts in proptest::option::of((proptest::num::u32::ANY, proptest::num::u32::ANY)),
            blocks in 0..5u32,
            bsd_layout in proptest::bool::ANY,
            len in 0..64usize,
        ) {
            let mut sack_blocks = SackBlocks::new();
            for i in 0..blocks {
                sack_blocks.push(SeqNumber(i * 1000), SeqNumber(i * 1000 + 500));
            }
            let payload = vec![0x5a; len];
            let mut t = tcp(&payload);
            t.options = TcpOptions {
                mss,
                window_scale: ws,
                sack_permitted,
                sack_blocks,
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                bsd_layout,
            };
            let mut area = [0u8; 40];
            proptest::prop_assert_eq!(t.options.emit(&mut area), t.options.len());
            let ip = if v6 { V6 } else { V4 };
            let p = Prepared::new(&ip, &t);
            let (mut zeros, mut ones) = (vec![0u8; p.len()], vec![0xffu8; p.len()]);
            proptest::prop_assert_eq!(p.emit(&mut zeros), Ok(p.len()));
            proptest::prop_assert_eq!(p.emit(&mut ones), Ok(p.len()));
            proptest::prop_assert_eq!(zeros, ones);
        }
    }

    #[test]
    fn round_trip_both_families() {
        let data = *b"hello";
        for ip in [V4, V6] {
            let t = tcp(&data);
            let (buf, n) = emit(&ip, &t);
            let parsed = parse_packet(&buf[..n], ChecksumMode::Verify).unwrap();
            assert_eq!(parsed, ParsedPacket { ip, tcp: t });
            // Trailing padding after the IP length is ignored.
            let parsed = parse_packet(&buf[..n + 10], ChecksumMode::Verify).unwrap();
            assert_eq!(parsed.tcp.payload, b"hello");
            assert_eq!(peek_src(&buf[..n]), Some(ip.src));
            assert_eq!(peek_dst(&buf[..n]), Some(ip.dst));
        }
    }

    #[test]
    fn ipv4_header_fields() {
        let (buf, n) = emit(&V4, &tcp(&[]));
        let p = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag());
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 6);
        assert!(p.verify_checksum());
        let (buf, n) = emit(&V6, &tcp(&[]));
        let p = Ipv6Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
        assert_eq!(usize::from(p.payload_len()), n - 40);
    }

    fn reparse(buf: &[u8]) -> Error {
        parse_packet(buf, ChecksumMode::Verify).unwrap_err()
    }

    #[test]
    fn every_error_variant() {
        let (good, n) = emit(&V4, &tcp(b"data"));
        let good = &good[..n];

        assert_eq!(reparse(&[]), Error::Truncated);
        assert_eq!(reparse(&good[..19]), Error::Truncated);

        let mut b = good.to_vec();
        b[0] = 0x55;
        assert_eq!(reparse(&b), Error::BadVersion);

        let mut b = good.to_vec();
        b[0] = 0x43;
        assert_eq!(reparse(&b), Error::BadHeaderLen);

        assert_eq!(reparse(&good[..n - 1]), Error::BadTotalLen);

        let mut b = good.to_vec();
        b[8] ^= 1; // TTL
        assert_eq!(reparse(&b), Error::BadChecksum);
        assert!(parse_packet(&b, ChecksumMode::Ignore).is_ok());

        let mut b = good.to_vec();
        b[n - 1] ^= 0x10; // payload byte
        assert_eq!(reparse(&b), Error::BadChecksum);

        let fix = |b: &mut Vec<u8>| {
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.fill_checksum();
        };
        let mut b = good.to_vec();
        b[20 + 12] = 0x30;
        assert_eq!(reparse(&b), Error::BadDataOffset);

        let mut b = good.to_vec();
        b[3] = 20 + 19; // IP total length cuts the TCP header short
        fix(&mut b);
        assert_eq!(reparse(&b), Error::Truncated);

        let mut b = good.to_vec();
        Ipv4Packet::new_unchecked(&mut b[..]).set_more_frags(true);
        fix(&mut b);
        assert_eq!(reparse(&b), Error::Fragmented);

        let mut b = good.to_vec();
        Ipv4Packet::new_unchecked(&mut b[..]).set_frag_offset(8);
        fix(&mut b);
        assert_eq!(reparse(&b), Error::Fragmented);

        let mut b = good.to_vec();
        b[9] = 17;
        fix(&mut b);
        assert_eq!(reparse(&b), Error::UnsupportedProtocol);

        let (v6, n6) = emit(&V6, &tcp(&[]));
        let mut b = v6[..n6].to_vec();
        b[6] = 0; // hop-by-hop extension header
        assert_eq!(reparse(&b), Error::UnsupportedProtocol);
        assert_eq!(reparse(&v6[..n6 - 1]), Error::BadTotalLen);
        assert_eq!(reparse(&v6[..39]), Error::Truncated);

        let t = tcp(b"data");
        let mut small = [0u8; 40];
        assert_eq!(emit_packet(&V4, &t, &mut small), Err(Error::BufferTooSmall));
        let mixed = IpRepr {
            src: V4.src,
            dst: V6.dst,
            hop_limit: 1,
        };
        let mut big = [0u8; 200];
        assert_eq!(
            emit_packet(&mixed, &t, &mut big),
            Err(Error::AddressMismatch)
        );
        static HUGE: [u8; 70_000] = [0; 70_000];
        let mut out = std::vec![0u8; 80_000];
        assert_eq!(
            emit_packet(&V4, &tcp(&HUGE), &mut out),
            Err(Error::PacketTooLarge)
        );
        assert_eq!(
            emit_packet(&V6, &tcp(&HUGE), &mut out),
            Err(Error::PacketTooLarge)
        );
    }

    #[test]
    fn jumbo_sized_v6_payload_fits() {
        // IPv6 payload length excludes the fixed header: 65535 bytes of TCP are fine.
        static DATA: [u8; 65535 - 40] = [7; 65535 - 40];
        let t = tcp(&DATA); // 40 bytes of header (20 + 20 options)
        let mut out = std::vec![0u8; 70_000];
        let n = emit_packet(&V6, &t, &mut out).unwrap();
        assert_eq!(n, 40 + 65535);
        assert_eq!(
            parse_packet(&out[..n], ChecksumMode::Verify).unwrap().tcp,
            t
        );
    }

    #[test]
    fn peek_short_or_bad() {
        assert_eq!(peek_dst(&[]), None);
        assert_eq!(peek_src(&[0x45; 19]), None);
        assert_eq!(peek_dst(&[0x45; 19]), None);
        assert_eq!(peek_dst(&[0x60; 39]), None);
        assert_eq!(peek_src(&[0x60; 39]), None);
        assert_eq!(peek_dst(&[0x15; 60]), None);
        assert_eq!(
            peek_dst(&[0x45; 20]),
            Some(IpAddr::V4(Ipv4Addr::new(0x45, 0x45, 0x45, 0x45)))
        );
    }

    #[test]
    fn error_display() {
        assert_eq!(std::format!("{}", Error::BadChecksum), "bad checksum");
        let e: &dyn core::error::Error = &Error::Truncated;
        assert_eq!(e.to_string(), "packet truncated");
    }
}
