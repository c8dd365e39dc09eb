//! Zero-copy view of a TCP segment (RFC 9293), its options, and a
//! high-level representation for parsing and emitting.

use core::fmt;
use core::net::IpAddr;
use core::ops::{BitOr, BitOrAssign};

use crate::checksum;
use crate::seq::SeqNumber;
use crate::{Error, Result};

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

mod opt {
    pub(super) const EOL: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const MSS: u8 = 2;
    pub(super) const WS: u8 = 3;
    pub(super) const SACK_PERM: u8 = 4;
    pub(super) const SACK: u8 = 5;
    pub(super) const TS: u8 = 8;
}

/// Largest window shift allowed by RFC 7323 §2.3.
const MAX_WINDOW_SHIFT: u8 = 14;

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

/// The timestamps option (RFC 7323 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamps {
    /// Sender's timestamp clock value.
    pub tsval: u32,
    /// Echo of the peer's most recent tsval.
    pub tsecr: u32,
}

/// Up to four SACK blocks (left edge, right edge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SackBlocks {
    len: u8,
    blocks: [(SeqNumber, SeqNumber); 4],
}

impl SackBlocks {
    /// Maximum number of blocks an option can carry.
    pub const CAPACITY: usize = 4;

    /// No blocks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a block; returns `false` (and drops it) when already full.
    pub fn push(&mut self, left: SeqNumber, right: SeqNumber) -> bool {
        let i = usize::from(self.len);
        if i >= Self::CAPACITY {
            return false;
        }
        self.blocks[i] = (left, right);
        self.len += 1;
        true
    }

    /// The blocks, in order.
    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.blocks[..usize::from(self.len).min(Self::CAPACITY)]
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes all blocks.
    pub fn clear(&mut self) {
        // Reset storage too, so equality only depends on the live blocks.
        *self = Self::default();
    }
}

/// The TCP options synq understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift (kind 3); parse clamps values > 14 to 14
    /// (RFC 7323 §2.3, as Linux does).
    pub window_scale: Option<u8>,
    /// SACK permitted (kind 4).
    pub sack_permitted: bool,
    /// SACK blocks (kind 5).
    pub sack_blocks: SackBlocks,
    /// Timestamps (kind 8).
    pub timestamps: Option<Timestamps>,
    /// Emit in FreeBSD's layout (`tcp_addoptions`: MSS, then window scale, SACK-permitted,
    /// timestamps and SACK blocks, each after the NOPs its alignment needs, EOLs to the
    /// end) instead of Linux's. `parse` never sets it.
    pub bsd_layout: bool,
}

/// Write `b` at `*n` (when there is a buffer) and advance `*n`.
fn put_opt(buf: &mut Option<&mut [u8]>, n: &mut usize, b: &[u8]) {
    if let Some(out) = buf.as_deref_mut() {
        out[*n..*n + b.len()].copy_from_slice(b);
    }
    *n += b.len();
}

/// Byte counts of the emitted option layout, shared by `len` and `emit`.
struct Layout {
    fixed: usize,
    sack_blocks: usize,
}

impl Layout {
    fn total(&self) -> usize {
        if self.sack_blocks == 0 {
            self.fixed
        } else {
            self.fixed + 4 + 8 * self.sack_blocks
        }
    }
}

impl TcpOptions {
    /// Parses an option area the way Linux's `tcp_parse_options` does:
    /// a malformed length stops parsing (keeping what was read), known
    /// options with the wrong length are ignored, unknown ones skipped.
    pub fn parse(bytes: &[u8]) -> Self {
        Self::parse_common(bytes).unwrap_or_else(|| Self::parse_any(bytes))
    }

    fn parse_any(mut bytes: &[u8]) -> Self {
        let mut opts = Self::default();
        while let Some((&kind, rest)) = bytes.split_first() {
            match kind {
                opt::EOL => break,
                opt::NOP => {
                    bytes = rest;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = rest.first() else { break };
            let len = usize::from(len);
            if len < 2 || len > bytes.len() {
                break;
            }
            let data = &bytes[2..len];
            match (kind, data.len()) {
                (opt::MSS, 2) => opts.mss = Some(u16::from_be_bytes([data[0], data[1]])),
                (opt::WS, 1) => opts.window_scale = Some(data[0].min(MAX_WINDOW_SHIFT)),
                (opt::SACK_PERM, 0) => opts.sack_permitted = true,
                (opt::SACK, n) if n % 8 == 0 && (8..=32).contains(&n) => {
                    // Like Linux, the last SACK option wins.
                    opts.sack_blocks.clear();
                    for b in data.chunks_exact(8) {
                        let left = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                        opts.sack_blocks.push(SeqNumber(left), SeqNumber(right));
                    }
                }
                (opt::TS, 8) => {
                    opts.timestamps = Some(Timestamps {
                        tsval: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                        tsecr: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
                    });
                }
                _ => {}
            }
            bytes = &bytes[len..];
        }
        opts
    }

    /// The two layouts nearly every packet carries, recognised whole (the loop above
    /// reads them into the same fields; a proptest checks it): Linux's SYN (MSS, SACK-permitted, timestamps, NOP,
    /// window scale) and a segment's NOP, NOP, timestamps.
    #[inline]
    fn parse_common(b: &[u8]) -> Option<Self> {
        let word = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let (mut opts, ts) = match b.len() {
            12 if b[..4] == [opt::NOP, opt::NOP, opt::TS, 10] => (Self::default(), 4),
            20 if b[..2] == [opt::MSS, 4]
                && b[4..8] == [opt::SACK_PERM, 2, opt::TS, 10]
                && b[16..19] == [opt::NOP, opt::WS, 3] =>
            {
                let opts = Self {
                    mss: Some(u16::from_be_bytes([b[2], b[3]])),
                    window_scale: Some(b[19].min(MAX_WINDOW_SHIFT)),
                    sack_permitted: true,
                    ..Self::default()
                };
                (opts, 8)
            }
            _ => return None,
        };
        opts.timestamps = Some(Timestamps {
            tsval: word(ts),
            tsecr: word(ts + 4),
        });
        Some(opts)
    }

    fn layout(&self) -> Layout {
        let mut fixed = 0;
        if self.mss.is_some() {
            fixed += 4;
        }
        if self.timestamps.is_some() {
            fixed += 12;
        } else if self.sack_permitted {
            fixed += 4;
        }
        if self.window_scale.is_some() {
            fixed += 4;
        }
        // Fixed part is at most 20 bytes, so at least two blocks always fit.
        let room = (MAX_OPTIONS_LEN - fixed).saturating_sub(4) / 8;
        Layout {
            fixed,
            sack_blocks: self.sack_blocks.len().min(room),
        }
    }

    /// Bytes [`emit`](Self::emit) writes: a multiple of 4, at most 40.
    /// SACK blocks that do not fit are dropped (last ones first).
    pub fn len(&self) -> usize {
        if self.bsd_layout {
            return self.bsd_emit(None);
        }
        self.layout().total()
    }

    /// FreeBSD's layout, written into `buf` if given; returns its length.
    fn bsd_emit(&self, mut buf: Option<&mut [u8]>) -> usize {
        let mut n = 0;
        let b = &mut buf;
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put_opt(b, &mut n, &[opt::MSS, 4, m[0], m[1]]);
        }
        if let Some(ws) = self.window_scale {
            while n == 0 || n % 2 != 1 {
                put_opt(b, &mut n, &[opt::NOP]);
            }
            put_opt(b, &mut n, &[opt::WS, 3, ws]);
        }
        if self.sack_permitted {
            while n % 2 != 0 {
                put_opt(b, &mut n, &[opt::NOP]);
            }
            put_opt(b, &mut n, &[opt::SACK_PERM, 2]);
        }
        if let Some(ts) = self.timestamps {
            while n == 0 || n % 4 != 2 {
                put_opt(b, &mut n, &[opt::NOP]);
            }
            put_opt(b, &mut n, &[opt::TS, 10]);
            put_opt(b, &mut n, &ts.tsval.to_be_bytes());
            put_opt(b, &mut n, &ts.tsecr.to_be_bytes());
        }
        if !self.sack_blocks.is_empty() {
            let mut pad = 0;
            while (n + pad) % 4 != 2 {
                pad += 1;
            }
            let room = MAX_OPTIONS_LEN.saturating_sub(n + pad + 2) / 8;
            let k = self.sack_blocks.len().min(room);
            if k > 0 {
                for _ in 0..pad {
                    put_opt(b, &mut n, &[opt::NOP]);
                }
                put_opt(b, &mut n, &[opt::SACK, (2 + 8 * k) as u8]);
                for (l, r) in &self.sack_blocks.as_slice()[..k] {
                    put_opt(b, &mut n, &l.0.to_be_bytes());
                    put_opt(b, &mut n, &r.0.to_be_bytes());
                }
            }
        }
        while n % 4 != 0 {
            put_opt(b, &mut n, &[opt::EOL]);
        }
        n
    }

    /// Whether no option would be emitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the options in Linux's order and returns the byte count
    /// ([`len`](Self::len)).
    ///
    /// # Panics
    /// If `buf` is shorter than [`len`](Self::len).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        if self.bsd_layout {
            return self.bsd_emit(Some(buf));
        }
        let layout = self.layout();
        let out = &mut buf[..layout.total()];
        let mut i = 0;
        let mut put = |bytes: &[u8]| {
            out[i..i + bytes.len()].copy_from_slice(bytes);
            i += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[opt::MSS, 4, m[0], m[1]]);
        }
        if let Some(ts) = self.timestamps {
            if self.sack_permitted {
                put(&[opt::SACK_PERM, 2]);
            } else {
                put(&[opt::NOP, opt::NOP]);
            }
            put(&[opt::TS, 10]);
            put(&ts.tsval.to_be_bytes());
            put(&ts.tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[opt::NOP, opt::NOP, opt::SACK_PERM, 2]);
        }
        if let Some(ws) = self.window_scale {
            put(&[opt::NOP, opt::WS, 3, ws]);
        }
        if layout.sack_blocks > 0 {
            put(&[
                opt::NOP,
                opt::NOP,
                opt::SACK,
                (2 + 8 * layout.sack_blocks) as u8,
            ]);
            for (l, r) in &self.sack_blocks.as_slice()[..layout.sack_blocks] {
                put(&l.0.to_be_bytes());
                put(&r.0.to_be_bytes());
            }
        }
        i
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
        checksum::fold(checksum::sum(d, ph)) == 0
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
        d[hl..].copy_from_slice(self.payload);
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, n as u32);
        let c = checksum::fold(checksum::sum(d, ph));
        d[field::CHECKSUM..][..2].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    proptest::proptest! {
        /// The fast path reads the two common layouts exactly as the general loop does,
        /// and gives way on anything else (the bytes mostly follow a layout, some not).
        #[test]
        fn common_layouts_parse_as_the_loop_does(
            syn in proptest::bool::ANY,
            mut b in proptest::collection::vec(proptest::num::u8::ANY, 20),
            keep in proptest::collection::vec(0..4u8, 20),
        ) {
            let layout: &[(usize, u8)] = if syn {
                &[(0, 2), (1, 4), (4, 4), (5, 2), (6, 8), (7, 10), (16, 1), (17, 3), (18, 3)]
            } else {
                &[(0, 1), (1, 1), (2, 8), (3, 10)]
            };
            // Each layout byte is kept three times in four, so near misses come up too.
            for &(at, v) in layout {
                if keep[at] != 0 {
                    b[at] = v;
                }
            }
            let b = if syn { &b[..] } else { &b[..12] };
            let fast = TcpOptions::parse_common(b);
            if let Some(f) = fast {
                proptest::prop_assert_eq!(f, TcpOptions::parse_any(b));
            }
            proptest::prop_assert_eq!(TcpOptions::parse(b), TcpOptions::parse_any(b));
        }
    }

    fn full_options() -> TcpOptions {
        let mut sack = SackBlocks::new();
        for i in 0..4 {
            assert!(sack.push(SeqNumber(i * 100), SeqNumber(i * 100 + 50)));
        }
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            sack_blocks: sack,
            timestamps: Some(Timestamps {
                tsval: 0x0102_0304,
                tsecr: 0x0506_0708,
            }),
            bsd_layout: false,
        }
    }

    #[test]
    fn freebsd_layout() {
        let mut o = full_options();
        o.sack_blocks = SackBlocks::new();
        o.bsd_layout = true;
        let mut buf = [0u8; 40];
        // MSS, NOP + WS, SACK-permitted, TS: 20 bytes, no padding at all.
        let n = o.emit(&mut buf);
        assert_eq!((n, o.len()), (20, 20));
        assert_eq!(&buf[..10], &[2, 4, 5, 180, 1, 3, 3, 7, 4, 2]);
        assert_eq!(&buf[10..12], &[8, 10]);
        // Without window scaling: MSS, SACK-permitted, TS.
        o.window_scale = None;
        let n = o.emit(&mut buf);
        assert_eq!(&buf[..8], &[2, 4, 5, 180, 4, 2, 8, 10]);
        assert_eq!(n, 16);
        // Without timestamps: MSS, NOP + WS, SACK-permitted, EOL padding.
        o.window_scale = Some(7);
        o.timestamps = None;
        let n = o.emit(&mut buf);
        assert_eq!(&buf[..n], &[2, 4, 5, 180, 1, 3, 3, 7, 4, 2, 0, 0]);
        let back = TcpOptions::parse(&buf[..n]);
        assert_eq!(
            (back.mss, back.window_scale, back.sack_permitted),
            (Some(1460), Some(7), true)
        );
        // Timestamps and SACK blocks on a data segment: NOP NOP TS, NOP NOP SACK.
        let mut d = full_options();
        d.mss = None;
        d.window_scale = None;
        d.sack_permitted = false;
        d.bsd_layout = true;
        let n = d.emit(&mut buf);
        assert_eq!(n, d.len());
        assert_eq!(&buf[..4], &[1, 1, 8, 10]);
        assert_eq!(&buf[12..16], &[1, 1, 5, 26]);
        assert_eq!(n, 12 + 4 + 24);
    }

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
    fn sack_blocks() {
        let mut s = SackBlocks::new();
        assert!(s.is_empty());
        for i in 0..4 {
            assert!(s.push(SeqNumber(i), SeqNumber(i + 1)));
        }
        assert!(!s.push(SeqNumber(9), SeqNumber(10)));
        assert_eq!(s.len(), 4);
        assert_eq!(s.as_slice()[3], (SeqNumber(3), SeqNumber(4)));
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s, SackBlocks::new());
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let payload = [0xaa; 33];
        let r = repr(&payload, full_options());
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

    #[test]
    fn parse_stops_at_eol() {
        let o = TcpOptions::parse(&[2, 4, 5, 0xb4, 0, 3, 3, 7]);
        assert_eq!(o.mss, Some(1460));
        assert_eq!(o.window_scale, None);
    }

    #[test]
    fn parse_skips_nop_and_unknown() {
        let o = TcpOptions::parse(&[1, 1, 30, 4, 0xff, 0xff, 3, 3, 2, 1, 4, 2]);
        assert_eq!(o.window_scale, Some(2));
        assert!(o.sack_permitted);
    }

    #[test]
    fn parse_overrun_stops_but_keeps_earlier() {
        let o = TcpOptions::parse(&[2, 4, 1, 0, 8, 10, 0, 0, 0, 1]);
        assert_eq!(o.mss, Some(256));
        assert_eq!(o.timestamps, None);
        // Length byte missing.
        let o = TcpOptions::parse(&[4, 2, 3]);
        assert!(o.sack_permitted);
        assert_eq!(o.window_scale, None);
    }

    #[test]
    fn parse_length_zero_or_one_stops() {
        for bad in [0u8, 1] {
            let o = TcpOptions::parse(&[4, 2, 30, bad, 3, 3, 5]);
            assert!(o.sack_permitted);
            assert_eq!(o.window_scale, None);
        }
    }

    #[test]
    fn parse_wrong_length_known_option_ignored() {
        // MSS len 3, WS len 4, SACK-perm len 3, TS len 8, SACK len 12, then valid WS.
        let bytes = [
            2, 3, 9, 3, 4, 1, 2, 4, 3, 0, 8, 8, 0, 0, 0, 0, 0, 0, 5, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 3, 3, 5,
        ];
        let o = TcpOptions::parse(&bytes);
        assert_eq!(
            o,
            TcpOptions {
                window_scale: Some(5),
                ..TcpOptions::default()
            }
        );
        // SACK with 5 blocks (len 42) is ignored too.
        let mut big = [0u8; 42];
        big[0] = 5;
        big[1] = 42;
        assert!(TcpOptions::parse(&big).sack_blocks.is_empty());
    }

    #[test]
    fn parse_window_scale_clamped() {
        assert_eq!(TcpOptions::parse(&[3, 3, 15]).window_scale, Some(14));
        assert_eq!(TcpOptions::parse(&[3, 3, 255]).window_scale, Some(14));
        assert_eq!(TcpOptions::parse(&[3, 3, 14]).window_scale, Some(14));
    }

    #[test]
    fn parse_sack_and_ts() {
        let o = TcpOptions::parse(&[
            1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0,
            30, 0, 0, 0, 40,
        ]);
        assert_eq!(o.timestamps, Some(Timestamps { tsval: 1, tsecr: 2 }));
        assert_eq!(
            o.sack_blocks.as_slice(),
            &[
                (SeqNumber(10), SeqNumber(20)),
                (SeqNumber(30), SeqNumber(40))
            ]
        );
    }

    fn emitted(o: &TcpOptions) -> ([u8; 40], usize) {
        let mut buf = [0u8; 40];
        let n = o.emit(&mut buf);
        assert_eq!(n, o.len());
        assert_eq!(n % 4, 0);
        (buf, n)
    }

    #[test]
    fn emit_order_syn() {
        let mut o = full_options();
        o.sack_blocks.clear();
        let (b, n) = emitted(&o);
        assert_eq!(
            &b[..n],
            &[2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7]
        );
        assert_eq!(TcpOptions::parse(&b[..n]), o);
    }

    #[test]
    fn emit_variants() {
        let ts = Some(Timestamps { tsval: 9, tsecr: 0 });
        let o = TcpOptions {
            timestamps: ts,
            ..TcpOptions::default()
        };
        let (b, n) = emitted(&o);
        assert_eq!(&b[..n], &[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0]);

        let o = TcpOptions {
            sack_permitted: true,
            ..TcpOptions::default()
        };
        let (b, n) = emitted(&o);
        assert_eq!(&b[..n], &[1, 1, 4, 2]);

        let o = TcpOptions::default();
        assert!(o.is_empty());
        assert_eq!(emitted(&o).1, 0);

        // Without TS, all four SACK blocks fit: 4 + 32 = 36 bytes.
        let mut o = full_options();
        o.timestamps = None;
        o.mss = None;
        o.window_scale = None;
        o.sack_permitted = false;
        let (b, n) = emitted(&o);
        assert_eq!(n, 36);
        assert_eq!(&b[..4], &[1, 1, 5, 34]);
        assert_eq!(TcpOptions::parse(&b[..n]), o);

        // With TS only: three blocks.
        let mut o = full_options();
        o.mss = None;
        o.window_scale = None;
        o.sack_permitted = false;
        let (b, n) = emitted(&o);
        assert_eq!(n, 40);
        assert_eq!(&b[12..16], &[1, 1, 5, 26]);
        assert_eq!(TcpOptions::parse(&b[..n]).sack_blocks.len(), 3);

        // Everything: 20 fixed bytes, two blocks.
        let o = full_options();
        let (b, n) = emitted(&o);
        assert_eq!(n, 40);
        assert_eq!(&b[20..24], &[1, 1, 5, 18]);
    }
}
