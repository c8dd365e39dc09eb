//! Zero-copy view of an IPv6 fixed header (RFC 8200).

use core::net::Ipv6Addr;

use crate::{Error, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

mod field {
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const LENGTH: usize = 4;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
}

const FLOW_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet in a byte buffer.
///
/// Getters on a view made by [`new_unchecked`](Self::new_unchecked) may panic
/// if the buffer is too short; after [`check_len`](Self::check_len) (or
/// [`new_checked`](Self::new_checked)) succeeds none of them do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
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

    /// Checks the buffer holds the 40-byte header with version 6 and
    /// `payload_len <= buffer length - 40`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        if usize::from(self.payload_len()) > len - HEADER_LEN {
            return Err(Error::BadTotalLen);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, at: usize) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }

    fn addr_at(&self, at: usize) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[at..at + 16]);
        Ipv6Addr::from(o)
    }

    /// IP version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class byte.
    pub fn traffic_class(&self) -> u8 {
        (self.u32_at(field::VER_TC_FLOW) >> 20) as u8
    }

    /// 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.u32_at(field::VER_TC_FLOW) & FLOW_MASK
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::LENGTH], d[field::LENGTH + 1]])
    }

    /// Next header (protocol of the payload; 6 for TCP).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr_at(field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr_at(field::DST)
    }

    /// Payload: bytes `40..40 + payload_len` (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(d.len());
        &d[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_u32_at(&mut self, at: usize, v: u32) {
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TC_FLOW];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let old = self.u32_at(field::VER_TC_FLOW);
        let new = (old & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_u32_at(field::VER_TC_FLOW, new);
    }

    /// Sets the flow label (only the low 20 bits are used).
    pub fn set_flow_label(&mut self, label: u32) {
        let old = self.u32_at(field::VER_TC_FLOW);
        self.set_u32_at(field::VER_TC_FLOW, (old & !FLOW_MASK) | (label & FLOW_MASK));
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH..field::LENGTH + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }

    /// Mutable payload, bounded like [`payload`](Self::payload).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.as_ref().len();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(len);
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4);

    fn sample() -> [u8; 44] {
        let mut b = [0u8; 44];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_traffic_class(0xab);
        p.set_flow_label(0x0012_3456);
        p.set_payload_len(4);
        p.set_next_header(6);
        p.set_hop_limit(255);
        p.set_src_addr(SRC);
        p.set_dst_addr(DST);
        p.payload_mut().copy_from_slice(&[9, 8, 7, 6]);
        b
    }

    #[test]
    fn round_trip() {
        let b = sample();
        assert_eq!(b[0], 0x6a);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0x2_3456); // only 20 bits kept
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr(), DST);
        assert_eq!(p.payload(), &[9, 8, 7, 6]);
        assert_eq!(p.into_inner().len(), 44);
    }

    #[test]
    fn errors() {
        let b = sample();
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..43]).unwrap_err(),
            Error::BadTotalLen
        );
        let mut v = b;
        v[0] = 0x4a;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            Error::BadVersion
        );
    }
}
