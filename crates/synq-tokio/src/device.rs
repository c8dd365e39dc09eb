//! What the driver reads packets from and writes them to.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A source and sink of whole IP packets, read and written without blocking.
///
/// The driver drains `try_recv` until `WouldBlock` before it polls the stack, and writes
/// every packet the stack has before it sleeps; `poll_readable` and `poll_writable` wake it
/// when that can go on. A TUN device ([`synq_tun::Tun`], feature `tun`) and an in-memory
/// link ([`pipe`]) implement it.
pub trait Device: Send + Sync + 'static {
    /// Ready when a packet may be readable; a false positive is allowed.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// One packet into `buf`, or `WouldBlock`.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received>;
    /// Ready when a write may succeed.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Write one packet, or `WouldBlock`.
    fn try_send(&self, packet: &[u8]) -> io::Result<usize>;

    /// Whether the device cuts TCP super-segments itself ([`Device::try_send_tso`]).
    fn tso(&self) -> bool {
        false
    }

    /// Write one TCP super-segment to be cut into `mss`-byte segments, its TCP checksum
    /// field holding the pseudo-header sum. Called only where [`Device::tso`] is true.
    fn try_send_tso(&self, packet: &[u8], tso: Tso) -> io::Result<usize> {
        let _ = (packet, tso);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// How to cut a super-segment: see [`Device::try_send_tso`].
pub use synq_core::gso::Tso;

/// What [`Device::try_recv`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the packet in the buffer.
    pub len: usize,
    /// The device vouches for the transport checksum (offload): the engine skips it.
    pub checksum_ok: bool,
}

impl Received {
    /// A packet whose checksums the engine must verify.
    pub fn plain(len: usize) -> Self {
        Self {
            len,
            checksum_ok: false,
        }
    }
}

#[cfg(feature = "tun")]
impl Device for synq_tun::Tun {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Self::poll_readable(self, cx)
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        Self::try_recv(self, buf).map(|(len, checksum_ok)| Received { len, checksum_ok })
    }
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Self::poll_writable(self, cx)
    }
    fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        Self::try_send(self, packet)
    }
    fn tso(&self) -> bool {
        self.offload()
    }
    fn try_send_tso(&self, packet: &[u8], t: Tso) -> io::Result<usize> {
        Self::try_send_tso(self, packet, t.mss, t.l3_len, t.l4_len, t.ipv6)
    }
}

#[derive(Debug, Default)]
struct Queue {
    packets: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
    dropped: u64,
}

/// One end of an in-memory link made by [`pipe`]: what one end sends, the other receives.
#[derive(Debug)]
pub struct PipeEnd {
    rx: Arc<Mutex<Queue>>,
    tx: Arc<Mutex<Queue>>,
    capacity: usize,
}

/// Two connected in-memory devices, each direction holding at most `capacity` packets (more
/// are dropped, as a full NIC ring drops them). For tests and for two stacks in one process.
pub fn pipe(capacity: usize) -> (PipeEnd, PipeEnd) {
    let a = Arc::new(Mutex::new(Queue::default()));
    let b = Arc::new(Mutex::new(Queue::default()));
    (
        PipeEnd {
            rx: a.clone(),
            tx: b.clone(),
            capacity,
        },
        PipeEnd {
            rx: b,
            tx: a,
            capacity,
        },
    )
}

impl PipeEnd {
    /// Packets this end sent that the other end's full queue dropped.
    pub fn dropped(&self) -> u64 {
        lock(&self.tx).dropped
    }
}

fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // A panic elsewhere never leaves a queue half-updated, so a poisoned one is still sound.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

impl Device for PipeEnd {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut q = lock(&self.rx);
        if q.packets.is_empty() {
            q.waker = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let p = lock(&self.rx)
            .packets
            .pop_front()
            .ok_or(io::ErrorKind::WouldBlock)?;
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p[..n]);
        Ok(Received::plain(n))
    }
    fn poll_writable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        let mut q = lock(&self.tx);
        if q.packets.len() >= self.capacity {
            q.dropped += 1;
        } else {
            q.packets.push_back(packet.to_vec());
            if let Some(w) = q.waker.take() {
                w.wake();
            }
        }
        Ok(packet.len())
    }
}
