//! Zero-copy view of a TCP segment (RFC 9293), its options, and a
//! high-level representation for parsing and emitting.

use core::fmt;
use core::net::IpAddr;
use core::ops::{BitOr, BitOrAssign};

use crate::checksum;
use crate::seq::SeqNumber;
use crate::{Error, Result};

mod options;

pub use options::{SackBlocks, TcpOptions, Timestamps};

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest option area (data offset 15 means a 60-byte header).
pub const MAX_OPTIONS_LEN: usize = 40;
/// IP protocol number of TCP.
pub const PROTOCOL: u8 = 6;

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// The eight TCP flag bits (byte 13 of the header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push function.
    pub const PSH: Self = Self(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Self = Self(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Self = Self(0x20);
    /// ECN echo.
    pub const ECE: Self = Self(0x40);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x80);

    /// No flags set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Flags set in either.
    #[must_use]
    pub const fn union(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }

    /// `self` without the flags of `o`.
    #[must_use]
    pub const fn difference(self, o: Self) -> Self {
        Self(self.0 & !o.0)
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// PSH is set.
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    /// URG is set.
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }

    /// ECE is set.
    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }

    /// CWR is set.
    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }
}

impl BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

/// tcpdump's notation: `[S.]` for SYN|ACK, `[.]` for a bare ACK, `[none]`.
impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("[none]");
        }
        // Same letters and order as tcpdump's print-tcp.c table.
        const LETTERS: [(TcpFlags, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        f.write_str("[")?;
        for (flag, c) in LETTERS {
            if self.contains(flag) {
                fmt::Write::write_char(f, c)?;
            }
        }
        f.write_str("]")
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A view of a TCP segment in a byte buffer; the buffer must be exactly the
/// segment (the IP payload), as the checksum covers all of it.
///
/// Getters on a view made by [`new_unchecked`](Self::new_unchecked) may panic
/// if the buffer is too short; after [`check_len`](Self::check_len) (or
/// [`new_checked`](Self::new_checked)) succeeds none of them do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without any check (for emitting into).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds 20 bytes, data offset >= 5, and the whole
    /// header. A header longer than the buffer is `Truncated` (Linux drops it
    /// uncounted); a data offset below 5 is `BadDataOffset` (Linux: `TcpInErrs`).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadDataOffset);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: usize) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::SEQ))
    }

    /// Acknowledgment number (raw; meaningful only with ACK).
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::ACK))
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }

    /// Flag bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    fn header_end(&self) -> usize {
        self.header_len().min(self.buffer.as_ref().len())
    }

    /// Raw option bytes (`20..header_len`, clamped to the buffer).
    pub fn options(&self) -> &[u8] {
        let end = self.header_end();
        &self.buffer.as_ref()[HEADER_LEN.min(end)..end]
    }

    /// Payload (`header_len..`, clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_end()..]
    }

    /// Whether the checksum over the pseudo header and the whole buffer is
    /// correct.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, d.len() as u32);
        checksum::fold(checksum::sum_header(d, ph)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_u16_at(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn set_u32_at(&mut self, at: usize, v: u32) {
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: SeqNumber) {
        self.set_u32_at(field::SEQ, v.0);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: SeqNumber) {
        self.set_u32_at(field::ACK, v.0);
    }

    /// Sets the header length in bytes (stored as `len / 4`; the reserved
    /// bits are cleared).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::OFFSET] = ((len / 4) as u8 & 0x0f) << 4;
    }

    /// Sets the flag bits.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, v: u16) {
        self.set_u16_at(field::WINDOW, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_u16_at(field::URGENT, v);
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, d.len() as u32);
        let c = checksum::fold(checksum::sum(d, ph));
        self.set_checksum(c);
    }

    /// Mutable option bytes (set the header length first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_end();
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }

    /// Mutable payload (set the header length first).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_end();
        &mut self.buffer.as_mut()[start..]
    }
}

/// Whether [`TcpRepr::parse`] checks the TCP checksum (and
/// [`parse_packet`](crate::parse_packet) the IPv4 header checksum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMode {
    /// Reject packets whose checksum is wrong.
    Verify,
    /// Accept any checksum (e.g. when the NIC already verified it).
    Ignore,
}

/// A parsed TCP segment, independent of its wire layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNumber,
    /// Acknowledgment number; meaningful only with ACK, parse stores the raw field.
    pub ack: SeqNumber,
    /// Flag bits.
    pub flags: TcpFlags,
    /// Window field (unscaled).
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Understood options.
    pub options: TcpOptions,
    /// Segment data.
    pub payload: &'a [u8],
}

impl TcpRepr<'static> {
    /// A segment with these ports, sequence numbers and flags, and window 0, urgent pointer
    /// 0, no options and no payload until struct update syntax sets them:
    ///
    /// ```
    /// use synq_wire::{SeqNumber, TcpFlags, TcpRepr};
    ///
    /// let flags = TcpFlags::SYN | TcpFlags::ACK;
    /// let reply = TcpRepr {
    ///     window: 65_535,
    ///     ..TcpRepr::header(80, 40_000, SeqNumber(7), SeqNumber(2), flags)
    /// };
    /// assert_eq!((reply.src_port, reply.ack, reply.window), (80, SeqNumber(2), 65_535));
    /// assert!(reply.payload.is_empty() && reply.options.mss.is_none());
    /// ```
    #[inline]
    pub fn header(
        src_port: u16,
        dst_port: u16,
        seq: SeqNumber,
        ack: SeqNumber,
        flags: TcpFlags,
    ) -> Self {
        Self {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        }
    }
}

impl<'a> TcpRepr<'a> {
    /// Parses a segment; `src`/`dst` are the IP addresses for the checksum.
    pub fn parse(
        packet: &TcpPacket<&'a [u8]>,
        src: &IpAddr,
        dst: &IpAddr,
        checksum: ChecksumMode,
    ) -> Result<Self> {
        packet.check_len()?;
        if checksum == ChecksumMode::Verify && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        // Slice the borrowed buffer itself so the payload outlives `packet`.
        let bytes: &'a [u8] = packet.buffer;
        let hl = packet.header_len();
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(&bytes[HEADER_LEN..hl]),
            payload: &bytes[hl..],
        })
    }

    /// Header length: 20 plus the emitted options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies: payload.len() + SYN + FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// Writes header, options, payload and checksum into packet (whose
    /// buffer is at least buffer_len()). The checksum covers only the first
    /// `buffer_len()` bytes; bytes after them are left alone.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: &IpAddr,
        dst: &IpAddr,
    ) {
        let hl = self.header_len();
        self.emit_sized(packet.buffer.as_mut(), hl, src, dst);
    }

    /// Emit into `buf` (at least `hl` plus the payload long), `hl` the header length
    /// already worked out.
    pub(crate) fn emit_sized(&self, buf: &mut [u8], hl: usize, src: &IpAddr, dst: &IpAddr) {
        let n = hl + self.payload.len();
        let d = &mut buf[..n];
        // The fixed header as one array, checksum zero (one store and one bounds check,
        // not one per field).
        let mut h = [0u8; HEADER_LEN];
        h[field::SRC_PORT..][..2].copy_from_slice(&self.src_port.to_be_bytes());
        h[field::DST_PORT..][..2].copy_from_slice(&self.dst_port.to_be_bytes());
        h[field::SEQ..][..4].copy_from_slice(&self.seq.0.to_be_bytes());
        h[field::ACK..][..4].copy_from_slice(&self.ack.0.to_be_bytes());
        h[field::OFFSET] = ((hl / 4) as u8 & 0x0f) << 4;
        h[field::FLAGS] = self.flags.0;
        h[field::WINDOW..][..2].copy_from_slice(&self.window.to_be_bytes());
        h[field::URGENT..][..2].copy_from_slice(&self.urgent.to_be_bytes());
        d[..HEADER_LEN].copy_from_slice(&h);
        self.options.emit(&mut d[HEADER_LEN..hl]);
        // Most segments carry nothing: skip the call a zero-length copy still makes.
        if !self.payload.is_empty() {
            d[hl..].copy_from_slice(self.payload);
        }
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, n as u32);
        let c = checksum::fold(checksum::sum_header(d, ph));
        d[field::CHECKSUM..][..2].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    fn repr(payload: &[u8], options: TcpOptions) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 49152,
            dst_port: 80,
            seq: SeqNumber(0xdead_beef),
            ack: SeqNumber(0x0102_0304),
            flags: TcpFlags::PSH | TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options,
            payload,
        }
    }

    #[test]
    fn flags_debug_like_tcpdump() {
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "[S.]");
        assert_eq!(format!("{:?}", TcpFlags::PSH | TcpFlags::ACK), "[P.]");
        assert_eq!(format!("{:?}", TcpFlags::FIN | TcpFlags::ACK), "[F.]");
        assert_eq!(format!("{:?}", TcpFlags::RST), "[R]");
        assert_eq!(format!("{:?}", TcpFlags::ACK), "[.]");
        assert_eq!(format!("{:?}", TcpFlags::default()), "[none]");
        assert_eq!(format!("{}", TcpFlags(0xff)), "[FSRP.UEW]");
    }

    #[test]
    fn flags_ops() {
        let mut f = TcpFlags::SYN;
        f |= TcpFlags::ACK;
        assert!(f.syn() && f.ack() && !f.fin() && !f.rst() && !f.psh() && !f.urg());
        assert!(f.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!f.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(f.intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert!(!f.intersects(TcpFlags::FIN | TcpFlags::RST));
        assert_eq!(f.difference(TcpFlags::SYN), TcpFlags::ACK);
        assert!(TcpFlags(0xc0).ece() && TcpFlags(0xc0).cwr());
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let payload = [0xaa; 33];
        let r = repr(&payload, options::tests::full_options());
        for (s, d) in [
            (SRC, DST),
            (
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
            ),
        ] {
            let mut buf = [0u8; 200];
            let n = r.buffer_len();
            r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &s, &d);
            let p = TcpPacket::new_checked(&buf[..n]).unwrap();
            assert!(p.verify_checksum(&s, &d));
            assert_eq!(p.header_len(), 60);
            let parsed = TcpRepr::parse(&p, &s, &d, ChecksumMode::Verify).unwrap();
            // Only two SACK blocks fit next to MSS, TS and WS.
            let mut expect = r;
            expect.options.sack_blocks = SackBlocks::new();
            expect.options.sack_blocks.push(SeqNumber(0), SeqNumber(50));
            expect
                .options
                .sack_blocks
                .push(SeqNumber(100), SeqNumber(150));
            assert_eq!(parsed, expect);
            assert_eq!(parsed.segment_len(), 33);
        }
    }

    #[test]
    fn packet_accessors() {
        let payload = [1, 2, 3];
        let mut r = repr(&payload, TcpOptions::default());
        r.flags = TcpFlags::SYN | TcpFlags::FIN | TcpFlags::URG;
        r.urgent = 7;
        let mut buf = [0u8; 23];
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.src_port(), 49152);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), SeqNumber(0xdead_beef));
        assert_eq!(p.ack_number(), SeqNumber(0x0102_0304));
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), r.flags);
        assert_eq!(p.window_len(), 65535);
        assert_eq!(p.urgent_at(), 7);
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &payload);
        assert_ne!(p.checksum(), 0);
        assert_eq!(r.segment_len(), 5);
        assert_eq!(p.into_inner().len(), 23);
    }

    #[test]
    fn errors() {
        let mut buf = [0u8; 24];
        let r = repr(&[], TcpOptions::default());
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST);
        assert_eq!(
            TcpPacket::new_checked(&buf[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut b = buf;
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::BadDataOffset
        );
        b[12] = 0x70; // 28-byte header in 24 bytes
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = buf;
        b[0] ^= 1;
        let p = TcpPacket::new_checked(&b[..20]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, &SRC, &DST, ChecksumMode::Verify).unwrap_err(),
            Error::BadChecksum
        );
        assert!(TcpRepr::parse(&p, &SRC, &DST, ChecksumMode::Ignore).is_ok());
        // parse re-checks views made without checks.
        let p = TcpPacket::new_unchecked(&buf[..10]);
        assert_eq!(
            TcpRepr::parse(&p, &SRC, &DST, ChecksumMode::Ignore).unwrap_err(),
            Error::Truncated
        );
    }
}
