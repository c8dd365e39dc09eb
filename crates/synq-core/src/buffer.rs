//! Send and receive buffers. Both are fixed-capacity: the bound is the socket buffer size.

/// Bytes from SND.UNA onwards (sent-unacked, then unsent), kept contiguous so a segment's
/// payload is a single slice.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    data: Vec<u8>,
    head: usize,
    cap: usize,
}

impl SendBuffer {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            data: Vec::new(),
            head: 0,
            cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.head
    }

    pub(crate) fn free(&self) -> usize {
        self.cap.saturating_sub(self.len())
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Grow the bound (send-buffer autotuning); the storage grows only as data is written.
    pub(crate) fn grow_to(&mut self, cap: usize) {
        self.cap = self.cap.max(cap);
    }

    /// Append as much as fits; returns bytes taken.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        if n == 0 {
            return 0;
        }
        // Compact lazily: at most one memmove per buffer's worth of acked data.
        if self.head > 0 && self.head >= self.data.len() / 2 {
            self.data.drain(..self.head);
            self.head = 0;
        }
        self.data.extend_from_slice(&bytes[..n]);
        n
    }

    /// Drop `n` acknowledged bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        self.head += n.min(self.len());
        if self.head == self.data.len() {
            self.data.clear();
            self.head = 0;
        }
    }

    /// Up to `len` bytes starting `offset` bytes after SND.UNA.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> &[u8] {
        let start = (self.head + offset).min(self.data.len());
        let end = (start + len).min(self.data.len());
        &self.data[start..end]
    }
}

/// Most out-of-order ranges held at once; a segment that would need more is dropped.
pub(crate) const MAX_OOO_RANGES: usize = 32;

/// A ring of at most `cap` bytes: readable in-order data, then a window in which out-of-order
/// segments are written in place and tracked as ranges relative to RCV.NXT. Storage grows on
/// demand (doubling, up to `cap`), so an idle connection costs no buffer memory.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    buf: Vec<u8>,
    cap: usize,
    head: usize,
    len: usize,
    /// Sorted, disjoint, non-adjacent `[start, end)` offsets from the end of readable data.
    ooo: Vec<(usize, usize)>,
}

/// What a write into the receive buffer did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// RCV.NXT advanced by this many bytes (may exceed the segment: a hole was filled).
    InOrder(usize),
    /// Held out of order.
    OutOfOrder,
    /// Too many ranges already: dropped.
    Dropped,
}

/// Smallest storage allocated once data arrives.
const MIN_STORAGE: usize = 4096;

impl RecvBuffer {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            head: 0,
            len: 0,
            ooo: Vec::new(),
        }
    }

    /// Readable bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Free space after readable data: the receive window.
    pub(crate) fn window(&self) -> usize {
        self.cap - self.len
    }

    /// Let it hold up to `cap` bytes (never shrinks; storage still grows on demand).
    pub(crate) fn grow_cap(&mut self, cap: usize) {
        self.cap = self.cap.max(cap);
    }

    pub(crate) fn has_ooo(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Out-of-order ranges, relative to RCV.NXT.
    pub(crate) fn ooo_ranges(&self) -> &[(usize, usize)] {
        &self.ooo
    }

    /// Make storage hold `extent` bytes from `head`, moving the contents to the front.
    fn reserve(&mut self, extent: usize) {
        let phys = self.buf.len();
        if extent <= phys {
            return;
        }
        let new_phys = extent
            .next_power_of_two()
            .max(MIN_STORAGE)
            .min(self.cap)
            .max(extent);
        let used = (self.len + self.ooo.last().map_or(0, |r| r.1)).min(phys);
        let mut next = vec![0u8; new_phys];
        if phys > 0 {
            let first = used.min(phys - self.head);
            next[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
            next[first..used].copy_from_slice(&self.buf[..used - first]);
        }
        self.buf = next;
        self.head = 0;
    }

    fn copy_in(&mut self, off: usize, data: &[u8]) {
        self.reserve(self.len + off + data.len());
        let phys = self.buf.len();
        let pos = (self.head + self.len + off) % phys;
        let first = data.len().min(phys - pos);
        self.buf[pos..pos + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Write `data` at `off` bytes past RCV.NXT. The caller trims to the window first.
    pub(crate) fn write_at(&mut self, off: usize, data: &[u8]) -> Written {
        debug_assert!(off + data.len() <= self.window());
        if data.is_empty() {
            return Written::InOrder(0);
        }
        let (start, end) = (off, off + data.len());
        if off > 0 {
            // Merge into the range list before copying, so a refusal copies nothing.
            let i = self.ooo.partition_point(|&(_, e)| e < start);
            let mut j = i;
            let (mut s, mut e) = (start, end);
            while j < self.ooo.len() && self.ooo[j].0 <= end {
                s = s.min(self.ooo[j].0);
                e = e.max(self.ooo[j].1);
                j += 1;
            }
            if i == j && self.ooo.len() >= MAX_OOO_RANGES {
                return Written::Dropped;
            }
            self.copy_in(off, data);
            self.ooo.splice(i..j, [(s, e)]);
            return Written::OutOfOrder;
        }
        self.copy_in(0, data);
        let mut advance = end;
        // Absorb held ranges that now touch the in-order edge.
        while let Some(&(s, e)) = self.ooo.first() {
            if s > advance {
                break;
            }
            advance = advance.max(e);
            self.ooo.remove(0);
        }
        self.len += advance;
        for r in &mut self.ooo {
            r.0 -= advance;
            r.1 -= advance;
        }
        Written::InOrder(advance)
    }

    /// Read into `out`; returns bytes copied.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        if n == 0 {
            return 0;
        }
        let phys = self.buf.len();
        let first = n.min(phys - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = (self.head + n) % phys;
        self.len -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_buffer_bounds_and_slices() {
        let mut s = SendBuffer::new(10);
        assert_eq!(s.write(b"hello world"), 10);
        assert_eq!(s.free(), 0);
        assert_eq!(s.slice(6, 100), b"worl");
        s.consume(6);
        assert_eq!(s.slice(0, 2), b"wo");
        assert_eq!(s.write(b"abcdefg"), 6);
        assert_eq!(s.slice(0, 100), b"worlabcdef");
        s.consume(100);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn in_order_and_wrap() {
        let mut r = RecvBuffer::new(8);
        assert_eq!(r.write_at(0, b"abcdef"), Written::InOrder(6));
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(r.window(), 6);
        assert_eq!(r.write_at(0, b"ghijkl"), Written::InOrder(6));
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out), 8);
        assert_eq!(&out[..8], b"efghijkl");
    }

    #[test]
    fn out_of_order_fill() {
        let mut r = RecvBuffer::new(32);
        assert_eq!(r.write_at(4, b"ef"), Written::OutOfOrder);
        assert_eq!(r.write_at(8, b"ij"), Written::OutOfOrder);
        assert_eq!(r.ooo_ranges(), &[(4, 6), (8, 10)]);
        assert_eq!(r.write_at(6, b"gh"), Written::OutOfOrder);
        assert_eq!(r.ooo_ranges(), &[(4, 10)]);
        assert_eq!(r.write_at(0, b"abcd"), Written::InOrder(10));
        assert!(!r.has_ooo());
        let mut out = [0u8; 10];
        r.read(&mut out);
        assert_eq!(&out, b"abcdefghij");
    }

    #[test]
    fn overlapping_duplicates() {
        let mut r = RecvBuffer::new(32);
        r.write_at(2, b"cdef");
        r.write_at(3, b"de");
        assert_eq!(r.ooo_ranges(), &[(2, 6)]);
        assert_eq!(r.write_at(0, b"abc"), Written::InOrder(6));
    }

    #[test]
    fn storage_grows_on_demand_and_keeps_order() {
        let mut r = RecvBuffer::new(100_000);
        assert_eq!(r.buf.len(), 0, "nothing allocated before data");
        r.write_at(0, &[1; 3000]);
        let mut out = vec![0u8; 2000];
        r.read(&mut out);
        // Wrapped contents and an out-of-order range survive growth.
        r.write_at(5000, &[3; 100]);
        r.write_at(0, &[2; 3000]);
        assert!(r.buf.len() >= 8192);
        let mut out = vec![0u8; 4000];
        assert_eq!(r.read(&mut out), 4000);
        assert!(out[..1000].iter().all(|&b| b == 1) && out[1000..].iter().all(|&b| b == 2));
        assert_eq!(r.ooo_ranges(), &[(2000, 2100)]);
        assert_eq!(r.write_at(0, &[4; 2000]), Written::InOrder(2100));
        let mut out = vec![0u8; 2100];
        r.read(&mut out);
        assert!(out[2000..].iter().all(|&b| b == 3));
    }

    #[test]
    fn storage_never_exceeds_cap() {
        let mut r = RecvBuffer::new(5000);
        r.write_at(0, &[1; 4999]);
        assert!(r.buf.len() <= 5000 && r.buf.len() >= 4999);
        let mut out = vec![0u8; 4000];
        r.read(&mut out);
        r.write_at(0, &[2; 4001]);
        assert_eq!(r.buf.len(), 5000);
        let mut out = vec![0u8; 5000];
        assert_eq!(r.read(&mut out), 5000);
        assert!(out[..999].iter().all(|&b| b == 1) && out[999..].iter().all(|&b| b == 2));
    }

    #[test]
    fn range_bound() {
        let mut r = RecvBuffer::new(1024);
        for i in 0..MAX_OOO_RANGES {
            assert_eq!(r.write_at(2 + 3 * i, b"x"), Written::OutOfOrder);
        }
        assert_eq!(r.write_at(500, b"y"), Written::Dropped);
        // Extending an existing range is still fine.
        assert_eq!(r.write_at(3, b"z"), Written::OutOfOrder);
    }

    proptest::proptest! {
        /// A stream written as random overlapping, out-of-order segments with reads in
        /// between comes out byte for byte.
        #[test]
        fn ring_matches_model(
            cap in 1usize..3000,
            ops in proptest::collection::vec((0usize..4000, 1usize..600, 0usize..700), 1..200),
        ) {
            let stream: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut r = RecvBuffer::new(cap);
            let (mut nxt, mut out) = (0usize, Vec::new());
            for (ahead, len, read) in ops {
                // A segment starting `ahead` bytes past RCV.NXT, trimmed to the window.
                let off = ahead % (r.window() + 1);
                let len = len.min(r.window() - off);
                if nxt + off + len <= stream.len() && len > 0 {
                    if let Written::InOrder(n) = r.write_at(off, &stream[nxt + off..nxt + off + len]) {
                        nxt += n;
                    }
                }
                let mut buf = vec![0u8; read];
                let n = r.read(&mut buf);
                out.extend_from_slice(&buf[..n]);
                proptest::prop_assert!(r.buf.len() <= cap);
            }
            let mut buf = vec![0u8; cap];
            let n = r.read(&mut buf);
            out.extend_from_slice(&buf[..n]);
            proptest::prop_assert_eq!(out.len(), nxt);
            proptest::prop_assert_eq!(&out[..], &stream[..nxt]);
        }
    }
}
