//! TCP options (RFC 9293 §3.2, RFC 7323, RFC 2018): parsed as Linux parses them, emitted in
//! Linux's layout or FreeBSD's.

use super::MAX_OPTIONS_LEN;
use crate::seq::SeqNumber;

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
    // A whole word, though it counts to four: the emit path reads it as a word right after
    // the segment was built, and a byte-wide store there cannot forward to that load.
    len: u32,
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
        let i = self.len as usize;
        if i >= Self::CAPACITY {
            return false;
        }
        self.blocks[i] = (left, right);
        self.len += 1;
        true
    }

    /// The blocks, in order.
    #[inline]
    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.blocks[..(self.len as usize).min(Self::CAPACITY)]
    }

    /// Number of blocks.
    #[inline]
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
    /// SACK blocks that fit after `fixed` bytes of other options. The fixed part is at
    /// most 20 bytes, so at least two blocks always fit.
    #[inline]
    fn room(fixed: usize) -> usize {
        (MAX_OPTIONS_LEN - fixed).saturating_sub(4) / 8
    }

    #[inline]
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

    /// Any layout, option by option. Out of line, so the common layouts' path does not
    /// save and restore the registers this loop needs.
    #[inline(never)]
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
        use opt::{MSS, NOP, SACK_PERM, TS, WS};
        // Fixed-size arrays, each layout on its own: every read is at a constant offset,
        // so a word is one load, with no bounds check.
        let timestamps = |v: [u8; 8]| {
            Some(Timestamps {
                tsval: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                tsecr: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
            })
        };
        if let Ok(a) = <&[u8; 12]>::try_from(b) {
            if a[..4] != [NOP, NOP, TS, 10] {
                return None;
            }
            let [_, _, _, _, ts @ ..] = *a;
            return Some(Self {
                timestamps: timestamps(ts),
                ..Self::default()
            });
        }
        let a = <&[u8; 20]>::try_from(b).ok()?;
        if a[..2] != [MSS, 4] || a[4..8] != [SACK_PERM, 2, TS, 10] || a[16..19] != [NOP, WS, 3] {
            return None;
        }
        let [_, _, m0, m1, _, _, _, _, ts @ .., _, _, _, w] = *a;
        Some(Self {
            mss: Some(u16::from_be_bytes([m0, m1])),
            window_scale: Some(w.min(MAX_WINDOW_SHIFT)),
            sack_permitted: true,
            timestamps: timestamps(ts),
            ..Self::default()
        })
    }

    #[inline]
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
        Layout {
            fixed,
            sack_blocks: self.sack_blocks.len().min(Layout::room(fixed)),
        }
    }

    /// Bytes [`emit`](Self::emit) writes: a multiple of 4, at most 40.
    /// SACK blocks that do not fit are dropped (last ones first).
    #[inline]
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
        if let Some(n) = self.emit_common(buf) {
            return n;
        }
        self.emit_any(buf)
    }

    /// The two layouts nearly every packet carries, written whole: a segment's NOP, NOP,
    /// timestamps, and a SYN-ACK's MSS, SACK-permitted, timestamps, NOP, window scale
    /// (what `emit_any` writes for them; a proptest checks it). `None` for anything else.
    #[inline]
    fn emit_common(&self, buf: &mut [u8]) -> Option<usize> {
        use opt::{MSS, NOP, SACK_PERM, TS, WS};
        let ts = self.timestamps?;
        if !self.sack_blocks.is_empty() {
            return None;
        }
        let ([v0, v1, v2, v3], [e0, e1, e2, e3]) = (ts.tsval.to_be_bytes(), ts.tsecr.to_be_bytes());
        match (self.mss, self.sack_permitted, self.window_scale) {
            (None, false, None) => {
                let out: &mut [u8; 12] = buf.get_mut(..12)?.try_into().ok()?;
                *out = [NOP, NOP, TS, 10, v0, v1, v2, v3, e0, e1, e2, e3];
                Some(12)
            }
            (Some(mss), true, Some(ws)) => {
                let [m0, m1] = mss.to_be_bytes();
                let out: &mut [u8; 20] = buf.get_mut(..20)?.try_into().ok()?;
                *out = [
                    MSS, 4, m0, m1, SACK_PERM, 2, TS, 10, v0, v1, v2, v3, e0, e1, e2, e3, NOP, WS,
                    3, ws,
                ];
                Some(20)
            }
            _ => None,
        }
    }

    /// Any set of options, in Linux's order.
    fn emit_any(&self, buf: &mut [u8]) -> usize {
        // The layout falls out of the writes (`len` works it out without writing): the
        // fixed part first, then as many SACK blocks as the rest of the 40 bytes holds.
        let mut i = 0;
        let mut put = |i: &mut usize, bytes: &[u8]| {
            buf[*i..*i + bytes.len()].copy_from_slice(bytes);
            *i += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&mut i, &[opt::MSS, 4, m[0], m[1]]);
        }
        if let Some(ts) = self.timestamps {
            if self.sack_permitted {
                put(&mut i, &[opt::SACK_PERM, 2]);
            } else {
                put(&mut i, &[opt::NOP, opt::NOP]);
            }
            put(&mut i, &[opt::TS, 10]);
            put(&mut i, &ts.tsval.to_be_bytes());
            put(&mut i, &ts.tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&mut i, &[opt::NOP, opt::NOP, opt::SACK_PERM, 2]);
        }
        if let Some(ws) = self.window_scale {
            put(&mut i, &[opt::NOP, opt::WS, 3, ws]);
        }
        let k = self.sack_blocks.len().min(Layout::room(i));
        if k > 0 {
            put(&mut i, &[opt::NOP, opt::NOP, opt::SACK, (2 + 8 * k) as u8]);
            for (l, r) in &self.sack_blocks.as_slice()[..k] {
                put(&mut i, &l.0.to_be_bytes());
                put(&mut i, &r.0.to_be_bytes());
            }
        }
        i
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    proptest::proptest! {
        /// The fast path writes the two common layouts exactly as the general writer does,
        /// and gives way on anything else.
        #[test]
        fn common_layouts_emit_as_the_general_writer_does(
            mss in proptest::option::of(proptest::num::u16::ANY),
            ws in proptest::option::of(proptest::num::u8::ANY),
            sack_permitted in proptest::bool::ANY,
            ts in proptest::option::of((proptest::num::u32::ANY, proptest::num::u32::ANY)),
            blocks in 0..3u32,
            room in 0..41usize,
        ) {
            let mut sack_blocks = SackBlocks::new();
            for i in 0..blocks {
                sack_blocks.push(SeqNumber(i), SeqNumber(i + 1));
            }
            let o = TcpOptions {
                mss,
                window_scale: ws,
                sack_permitted,
                sack_blocks,
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                bsd_layout: false,
            };
            let (mut fast, mut general) = ([0u8; 40], [0u8; 40]);
            if let Some(n) = o.emit_common(&mut fast[..room]) {
                proptest::prop_assert_eq!(n, o.emit_any(&mut general));
                proptest::prop_assert_eq!(&fast[..n], &general[..n]);
            } else if room == 40 {
                // Given room, it declines only layouts other than its two.
                let two = ts.is_some() && blocks == 0 && matches!(
                    (mss, sack_permitted, ws),
                    (None, false, None) | (Some(_), true, Some(_))
                );
                proptest::prop_assert!(!two);
            }
        }

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

    /// Every option at once (the round trip in `tcp` uses it too).
    pub(crate) fn full_options() -> TcpOptions {
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
