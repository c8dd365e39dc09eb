//! Transmit coalescing for devices with segmentation offload: consecutive full-sized data
//! segments of one connection, as the engine emits them in one burst, become one
//! super-segment the kernel cuts again (what Linux's own TSO/GSO hands a NIC).

use synq_wire::checksum;

/// How to cut a super-segment back into segments (what a TSO device is told).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tso {
    /// Payload bytes per segment.
    pub mss: u16,
    /// IP header length.
    pub l3_len: u16,
    /// TCP header length.
    pub l4_len: u16,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
}

/// Largest super-segment: IP total length is 16 bits.
const MAX_SUPER: usize = 65_000;
/// Segments per super-segment at most (Linux's `GSO_MAX_SEGS` is larger; this bounds copies).
const MAX_SEGS: usize = 44;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// The parts of a TCP/IP packet the coalescer compares.
#[derive(Clone, Copy)]
struct View {
    ipv6: bool,
    l3: usize,
    l4: usize,
    seq: u32,
    flags: u8,
    payload: usize,
}

fn view(p: &[u8]) -> Option<View> {
    let (ipv6, l3, total) = match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            // No options, TCP, not a fragment (DF alone may be set).
            if ihl != 20
                || p.len() < 40
                || p[9] != 6
                || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0
            {
                return None;
            }
            (false, 20, usize::from(u16::from_be_bytes([p[2], p[3]])))
        }
        6 => {
            if p.len() < 60 || p[6] != 6 {
                return None;
            }
            (true, 40, 40 + usize::from(u16::from_be_bytes([p[4], p[5]])))
        }
        _ => return None,
    };
    if total != p.len() {
        return None;
    }
    let t = &p[l3..];
    let l4 = usize::from(t[12] >> 4) * 4;
    if l4 < 20 || l3 + l4 > p.len() {
        return None;
    }
    Some(View {
        ipv6,
        l3,
        l4,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        flags: t[13],
        payload: p.len() - l3 - l4,
    })
}

/// Whether `b` continues `a` in the same super-segment: same addresses, ports, IP fields,
/// ACK, window and options; `b` starts where `a` ends.
fn continues(a: &[u8], va: &View, b: &[u8], vb: &View) -> bool {
    if va.ipv6 != vb.ipv6 || va.l3 != vb.l3 || va.l4 != vb.l4 {
        return false;
    }
    let ip_same = if va.ipv6 {
        // Everything but the payload length.
        a[..4] == b[..4] && a[6..40] == b[6..40]
    } else {
        // Everything but total length, ID and header checksum.
        a[..2] == b[..2] && a[6..10] == b[6..10] && a[12..20] == b[12..20]
    };
    let (ta, tb) = (&a[va.l3..va.l3 + va.l4], &b[vb.l3..vb.l3 + vb.l4]);
    // Ports, ACK number, data offset, window, urgent pointer and options; not the sequence
    // number, flags or checksum.
    ip_same
        && ta[..4] == tb[..4]
        && ta[8..13] == tb[8..13]
        && ta[14..16] == tb[14..16]
        && ta[18..] == tb[18..]
        && vb.seq == va.seq.wrapping_add(va.payload as u32)
}

/// Merge the longest run at the front of `pkts` that the kernel can cut back into the same
/// segments into `out`; returns how many packets it took and, if more than one, how to cut.
/// A lone packet is left for a plain write (`out` untouched). The super-segment's TCP
/// checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL), as a device finishes it.
pub fn coalesce(pkts: &[Vec<u8>], out: &mut Vec<u8>) -> (usize, Option<Tso>) {
    coalesce_upto(pkts, MAX_SEGS, out)
}

/// [`coalesce`], merging at most `max_segs` segments (a sender's TSO autosizing).
pub fn coalesce_upto(pkts: &[Vec<u8>], max_segs: usize, out: &mut Vec<u8>) -> (usize, Option<Tso>) {
    let max_segs = max_segs.clamp(1, MAX_SEGS);
    let Some(first) = pkts.first() else {
        return (0, None);
    };
    let Some(v0) = view(first) else {
        return (1, None);
    };
    let mss = v0.payload;
    if mss == 0 || v0.flags != ACK {
        return (1, None);
    }
    let mut n = 1;
    let mut total = first.len();
    let mut prev = v0;
    while n < pkts.len() && n < max_segs && prev.flags == ACK && prev.payload == mss {
        let p = &pkts[n];
        let Some(v) = view(p) else { break };
        if v.payload == 0
            || v.payload > mss
            || !(v.flags == ACK || v.flags == ACK | PSH)
            || total + v.payload > MAX_SUPER
            || !continues(&pkts[n - 1], &prev, p, &v)
        {
            break;
        }
        total += v.payload;
        prev = v;
        n += 1;
    }
    if n == 1 {
        return (1, None);
    }
    let hdr = v0.l3 + v0.l4;
    out.clear();
    out.extend_from_slice(&first[..hdr]);
    for p in &pkts[..n] {
        out.extend_from_slice(&p[hdr..]);
    }
    // The last segment's flags (PSH) ride on the super-segment; the kernel keeps them for
    // the last piece only, as tcp_gso_segment does.
    out[v0.l3 + 13] = prev.flags;
    let len = out.len();
    let (src, dst) = if v0.ipv6 {
        out[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        let s: [u8; 16] = out[8..24].try_into().unwrap_or_default();
        let d: [u8; 16] = out[24..40].try_into().unwrap_or_default();
        (core::net::IpAddr::from(s), core::net::IpAddr::from(d))
    } else {
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        out[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::fold(checksum::sum(&out[..20], 0));
        out[10..12].copy_from_slice(&c.to_be_bytes());
        let s: [u8; 4] = out[12..16].try_into().unwrap_or_default();
        let d: [u8; 4] = out[16..20].try_into().unwrap_or_default();
        (core::net::IpAddr::from(s), core::net::IpAddr::from(d))
    };
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not complemented.
    let pseudo = checksum::pseudo_header(&src, &dst, 6, (len - v0.l3) as u32);
    let partial = !checksum::fold(pseudo);
    out[v0.l3 + 16..v0.l3 + 18].copy_from_slice(&partial.to_be_bytes());
    (
        n,
        Some(Tso {
            mss: mss as u16,
            l3_len: v0.l3 as u16,
            l4_len: v0.l4 as u16,
            ipv6: v0.ipv6,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use synq_wire::{emit_packet, IpRepr, SeqNumber, TcpFlags, TcpOptions, TcpRepr};

    fn seg(seq: u32, len: usize, flags: TcpFlags, window: u16) -> Vec<u8> {
        let payload = vec![seq as u8; len];
        let tcp = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNumber(seq),
            ack: SeqNumber(7),
            flags,
            window,
            urgent: 0,
            options: TcpOptions {
                timestamps: Some(synq_wire::Timestamps { tsval: 5, tsecr: 6 }),
                ..TcpOptions::default()
            },
            payload: &payload,
        };
        let ip = IpRepr {
            src: "10.0.0.2".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; 2000];
        let n = emit_packet(&ip, &tcp, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn full_segments_merge_up_to_a_push_or_a_gap() {
        let a = TcpFlags::ACK;
        let pkts = vec![
            seg(1000, 1448, a, 500),
            seg(2448, 1448, a, 500),
            seg(3896, 100, a | TcpFlags::PSH, 500),
            seg(3996, 1448, a, 500),
        ];
        let mut out = Vec::new();
        let (n, tso) = coalesce(&pkts, &mut out);
        assert_eq!(n, 3);
        let tso = tso.unwrap();
        assert_eq!(
            (tso.mss, tso.l3_len, tso.l4_len, tso.ipv6),
            (1448, 20, 32, false)
        );
        assert_eq!(out.len(), 20 + 32 + 1448 * 2 + 100);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]) as usize, out.len());
        assert_eq!(
            checksum::fold(checksum::sum(&out[..20], 0)),
            0,
            "IP checksum"
        );
        assert_eq!(out[20 + 13], (a | TcpFlags::PSH).0);
        assert_eq!(&out[52..52 + 1448], &pkts[0][52..]);
        assert_eq!(&out[52 + 2896..], &pkts[2][52..]);
        // A window change, a short segment or a sequence gap ends a run.
        let (n, _) = coalesce(&[seg(1, 1448, a, 500), seg(1449, 1448, a, 501)], &mut out);
        assert_eq!(n, 1);
        let (n, _) = coalesce(&[seg(1, 1000, a, 500), seg(1001, 1000, a, 500)], &mut out);
        assert_eq!(n, 2, "a run may start with any full size");
        let (n, _) = coalesce(&[seg(1, 1448, a, 500), seg(9999, 1448, a, 500)], &mut out);
        assert_eq!(n, 1);
        let (n, tso) = coalesce(&[seg(1, 0, a, 500), seg(1, 0, a, 500)], &mut out);
        assert_eq!((n, tso), (1, None), "pure ACKs are sent as they are");
    }
}
