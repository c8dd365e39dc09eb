//! Packets on the script's side of the wire: building inbound ones, reading outbound ones,
//! and printing both the way a script writes them.

use crate::ast::{flag, Dir, IpInfo, Packet, TcpOpt};
use std::fmt::Write as _;
use std::net::IpAddr;
use synq_core::wire::checksum;

/// Fast-open experimental option magic (RFC 7413 §4.1.1's pre-IANA form).
const FOEXP_MAGIC: [u8; 2] = [0xf9, 0x89];

/// The wire bytes of a TCP option list.
pub(crate) fn options_bytes(opts: &[TcpOpt]) -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
    for o in opts {
        match o {
            TcpOpt::Nop => b.push(1),
            TcpOpt::Eol => b.push(0),
            TcpOpt::Mss(m) => b.extend_from_slice(&[2, 4, (m >> 8) as u8, *m as u8]),
            TcpOpt::Wscale(w) => b.extend_from_slice(&[3, 3, *w]),
            TcpOpt::SackOk => b.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                b.extend_from_slice(&[5, (2 + 8 * blocks.len()) as u8]);
                for (l, r) in blocks {
                    b.extend_from_slice(&l.to_be_bytes());
                    b.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOpt::Ts(v, e) => {
                b.extend_from_slice(&[8, 10]);
                b.extend_from_slice(&v.to_be_bytes());
                b.extend_from_slice(&e.to_be_bytes());
            }
            TcpOpt::FastOpen(c) => {
                b.extend_from_slice(&[34, (2 + c.len()) as u8]);
                b.extend_from_slice(c);
            }
            TcpOpt::FastOpenExp(c) => {
                b.extend_from_slice(&[254, (4 + c.len()) as u8]);
                b.extend_from_slice(&FOEXP_MAGIC);
                b.extend_from_slice(c);
            }
        }
    }
    b
}

/// Read an option list back; `None` if it is malformed (then it is printed raw).
pub(crate) fn parse_options(mut b: &[u8]) -> Option<Vec<TcpOpt>> {
    let mut v = Vec::new();
    while let Some(&kind) = b.first() {
        match kind {
            0 => {
                v.push(TcpOpt::Eol);
                b = &b[1..];
                continue;
            }
            1 => {
                v.push(TcpOpt::Nop);
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let len = usize::from(*b.get(1)?);
        if len < 2 || len > b.len() {
            return None;
        }
        let d = &b[2..len];
        let be32 = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
        v.push(match (kind, d.len()) {
            (2, 2) => TcpOpt::Mss(u16::from_be_bytes([d[0], d[1]])),
            (3, 1) => TcpOpt::Wscale(d[0]),
            (4, 0) => TcpOpt::SackOk,
            (5, n) if n % 8 == 0 => TcpOpt::Sack(
                d.chunks(8)
                    .map(|c| (be32(&c[..4]), be32(&c[4..])))
                    .collect(),
            ),
            (8, 8) => TcpOpt::Ts(be32(&d[..4]), be32(&d[4..])),
            (34, _) => TcpOpt::FastOpen(d.to_vec()),
            (254, n) if n >= 2 && d[..2] == FOEXP_MAGIC => TcpOpt::FastOpenExp(d[2..].to_vec()),
            _ => return None,
        });
        b = &b[len..];
    }
    Some(v)
}

/// A TCP/IP packet as bytes, with checksums.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    p: &Packet,
    seq: u32,
    ack: u32,
    options: &[u8],
) -> Vec<u8> {
    let tcp_len = 20 + options.len() + p.len as usize;
    let mut tcp = vec![0u8; tcp_len];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    let words = (20 + options.len()) / 4;
    tcp[12] = ((words as u8) << 4) | u8::from(p.flags & flag::AE != 0);
    tcp[13] = p.flags as u8;
    tcp[14..16].copy_from_slice(&(p.win.unwrap_or(0).min(65535) as u16).to_be_bytes());
    tcp[18..20].copy_from_slice(&(p.urg.unwrap_or(0) as u16).to_be_bytes());
    tcp[20..20 + options.len()].copy_from_slice(options);
    let sum = checksum::sum(&tcp, checksum::pseudo_header(&src, &dst, 6, tcp_len as u32));
    tcp[16..18].copy_from_slice(&checksum::fold(sum).to_be_bytes());
    let ip = &p.ip;
    let tos = ip.tos.unwrap_or(0) & !3 | ip.ecn.unwrap_or(ip.tos.unwrap_or(0) & 3);
    let ttl = ip.ttl.unwrap_or(64);
    let mut out = Vec::with_capacity(40 + tcp_len);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x45, tos]);
            out.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, ttl, 6, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let c = checksum::fold(checksum::sum(&out, 0));
            out[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            let fl = ip.flowlabel.unwrap_or(0) & 0xf_ffff;
            let word = (6u32 << 28) | (u32::from(tos) << 20) | fl;
            out.extend_from_slice(&word.to_be_bytes());
            out.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            out.extend_from_slice(&[6, ttl]);
            out.extend_from_slice(&v6(s));
            out.extend_from_slice(&v6(d));
        }
    }
    out.extend_from_slice(&tcp);
    out
}

/// An outbound packet as the stack sent it, decoded.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u16,
    pub(crate) win: u16,
    pub(crate) urg: u16,
    pub(crate) options: Vec<u8>,
    pub(crate) len: u32,
    pub(crate) ip: IpInfo,
    pub(crate) csum_ok: bool,
}

/// Decode an IPv4 or IPv6 TCP packet (the stack's own output, so only sanity checks).
pub(crate) fn decode(b: &[u8]) -> Option<Seen> {
    let (src, dst, l4, tc, ttl, flowlabel): (IpAddr, IpAddr, usize, u8, u8, Option<u32>) =
        match b.first()? >> 4 {
            4 if b.len() >= 20 => {
                let ihl = usize::from(b[0] & 15) * 4;
                let s: [u8; 4] = b[12..16].try_into().ok()?;
                let d: [u8; 4] = b[16..20].try_into().ok()?;
                (s.into(), d.into(), ihl, b[1], b[8], None)
            }
            6 if b.len() >= 40 => {
                let s: [u8; 16] = b[8..24].try_into().ok()?;
                let d: [u8; 16] = b[24..40].try_into().ok()?;
                let w = u32::from_be_bytes(b[0..4].try_into().ok()?);
                (
                    s.into(),
                    d.into(),
                    40,
                    (w >> 20) as u8,
                    b[7],
                    Some(w & 0xf_ffff),
                )
            }
            _ => return None,
        };
    let t = b.get(l4..)?;
    if t.len() < 20 {
        return None;
    }
    let off = usize::from(t[12] >> 4) * 4;
    if off < 20 || off > t.len() {
        return None;
    }
    let be32 = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    let be16 = |i: usize| u16::from_be_bytes([t[i], t[i + 1]]);
    let sum = checksum::sum(t, checksum::pseudo_header(&src, &dst, 6, t.len() as u32));
    Some(Seen {
        src,
        dst,
        sport: be16(0),
        dport: be16(2),
        seq: be32(4),
        ack: be32(8),
        flags: u16::from(t[13]) | (u16::from(t[12] & 1) << 8),
        win: be16(14),
        urg: be16(18),
        options: t[20..off].to_vec(),
        len: (t.len() - off) as u32,
        ip: IpInfo {
            ecn: Some(tc & 3),
            tos: Some(tc),
            ttl: Some(ttl),
            flowlabel,
        },
        csum_ok: checksum::fold(sum) == 0,
    })
}

/// `S.`, `.`, `P.`, `-`: flags as a script writes them.
pub(crate) fn flags_str(f: u16) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (flag::FIN, 'F'),
        (flag::SYN, 'S'),
        (flag::RST, 'R'),
        (flag::PSH, 'P'),
        (flag::URG, 'U'),
        (flag::ECE, 'E'),
        (flag::CWR, 'W'),
        (flag::AE, 'A'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if f & flag::ACK != 0 {
        s.push('.');
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// An option list as a script writes it.
pub(crate) fn options_str(opts: &[TcpOpt]) -> String {
    let mut s = String::new();
    for (i, o) in opts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let hex = |c: &[u8]| {
            c.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        };
        match o {
            TcpOpt::Nop => s.push_str("nop"),
            TcpOpt::Eol => s.push_str("eol"),
            TcpOpt::Mss(m) => {
                let _ = write!(s, "mss {m}");
            }
            TcpOpt::Wscale(w) => {
                let _ = write!(s, "wscale {w}");
            }
            TcpOpt::SackOk => s.push_str("sackOK"),
            TcpOpt::Sack(b) => {
                s.push_str("sack");
                for (l, r) in b {
                    let _ = write!(s, " {l}:{r}");
                }
            }
            TcpOpt::Ts(v, e) => {
                let _ = write!(s, "TS val {v} ecr {e}");
            }
            TcpOpt::FastOpen(c) => {
                let _ = write!(s, "FO {}", hex(c));
            }
            TcpOpt::FastOpenExp(c) => {
                let _ = write!(s, "FOEXP {}", hex(c));
            }
        }
    }
    s
}

/// A packet line as a script writes it (numbers already mapped to the script's view).
pub(crate) fn packet_str(p: &Packet) -> String {
    let mut s = String::from(if p.dir == Dir::In { "<" } else { ">" });
    if let Some((a, b)) = p.ports {
        let _ = write!(s, " {a}>{b}");
    }
    let _ = write!(
        s,
        " {} {}:{}({})",
        flags_str(p.flags),
        p.seq,
        p.seq.wrapping_add(p.len),
        p.len
    );
    if let Some(a) = p.ack {
        let _ = write!(s, " ack {a}");
    }
    if let Some(w) = p.win {
        let _ = write!(s, " win {w}");
    }
    if let Some(u) = p.urg {
        let _ = write!(s, " urg {u}");
    }
    match &p.options {
        None => s.push_str(" <...>"),
        Some(o) if o.is_empty() => {}
        Some(o) => {
            let _ = write!(s, " <{}>", options_str(o));
        }
    }
    s
}
