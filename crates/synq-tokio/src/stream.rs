//! `TcpStream`: a connection as tokio's `AsyncRead` and `AsyncWrite`.

use crate::error::to_io;
use crate::stack::Stack;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use synq_core::{ConnHandle, ConnInfo, RecvError, SendError, State};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The connection itself; closed (`close(2)`) when the last half is dropped.
#[derive(Debug)]
struct Inner {
    stack: Stack,
    h: ConnHandle,
    local: SocketAddr,
    peer: SocketAddr,
    write_shut: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        release(&self.stack, self.h);
    }
}

/// `close(2)` the connection and forget its wakers.
fn release(stack: &Stack, h: ConnHandle) {
    stack.call(|s, now| {
        let _ = s.close(now, h);
    });
    stack.shared().lock().conns.remove(&h);
}

impl Inner {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let shared = self.stack.shared();
        let mut st = shared.lock();
        let now = st.now();
        match st.stack.recv(now, self.h, buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                drop(st);
                // Reading may open the window: the driver sends the update.
                shared.kick();
                Poll::Ready(Ok(()))
            }
            Err(RecvError::WouldBlock) => {
                st.check()?;
                st.conns.entry(self.h).or_default().read = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = self.stack.shared();
        let mut st = shared.lock();
        let now = st.now();
        match st.stack.send(now, self.h, data) {
            Ok(n) => {
                drop(st);
                shared.kick();
                Poll::Ready(Ok(n))
            }
            // The send buffer is full (its bound is tcp_wmem): park until ACKs free space.
            Err(SendError::WouldBlock) => {
                st.check()?;
                st.conns.entry(self.h).or_default().write = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    fn shutdown(&self) -> io::Result<()> {
        if self.write_shut.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let h = self.h;
        self.stack.call(|s, now| s.shutdown(now, h)).map_err(to_io)
    }
}

/// A TCP connection over a synq [`Stack`], like `tokio::net::TcpStream`.
///
/// Reads and writes move bytes between the caller and the stack's buffers: a write that finds
/// the send buffer full waits (it never grows the buffer), a read that finds nothing waits.
/// Dropping the stream closes it: FIN after the queued data, or RST if received data was left
/// unread, as Linux does.
#[derive(Debug)]
pub struct TcpStream {
    inner: Arc<Inner>,
}

impl TcpStream {
    pub(crate) fn new(stack: Stack, h: ConnHandle) -> io::Result<Self> {
        let info = stack
            .with(|s| s.info(h))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection vanished"))?;
        stack.shared().lock().conns.entry(h).or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                stack,
                h,
                local: info.tuple.local,
                peer: info.tuple.remote,
                write_shut: AtomicBool::new(false),
            }),
        })
    }

    /// `connect(2)` to `addr` from one of the stack's addresses and an ephemeral port, and
    /// wait for the handshake. Fails with `ConnectionRefused` (RST), `TimedOut` (the SYN
    /// retries ran out: 131 s with Linux's defaults), `AddrNotAvailable`, ...
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that dropping the future abandons the attempt: the
    /// half-open connection is closed, as closing a socket in SYN_SENT does.
    pub async fn connect(stack: &Stack, addr: SocketAddr) -> io::Result<Self> {
        let h = stack.call(|s, now| s.connect(now, addr)).map_err(to_io)?;
        let guard = CloseOnDrop(stack, Some(h));
        poll_fn(|cx| {
            let mut st = stack.shared().lock();
            match st.stack.state(h) {
                Some(State::SynSent | State::SynReceived) => {
                    st.check()?;
                    st.conns.entry(h).or_default().write = Some(cx.waker().clone());
                    Poll::Pending
                }
                Some(State::Closed) | None => {
                    let e = st.stack.info(h).and_then(|i| i.error);
                    Poll::Ready(Err(e.map_or_else(
                        || io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed"),
                        to_io,
                    )))
                }
                Some(_) => Poll::Ready(Ok(())),
            }
        })
        .await?;
        let stream = Self::new(stack.clone(), h);
        std::mem::forget(guard);
        stream
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.local)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }

    /// `TCP_NODELAY`: send small segments at once instead of waiting for an ACK (Nagle off).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let h = self.inner.h;
        self.inner.stack.call(|s, now| s.set_nodelay(now, h, on));
        Ok(())
    }

    /// `SO_KEEPALIVE`: probe the peer after `net.ipv4.tcp_keepalive_time` of silence; a
    /// peer that never answers ends the connection with `TimedOut`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        let h = self.inner.h;
        self.inner
            .stack
            .call(|s, now| s.set_keepalive(now, h, on))
            .map_err(to_io)
    }

    /// `TCP_CONGESTION`: the congestion control this connection uses from now on.
    pub fn set_congestion(&self, algorithm: synq_core::congestion::Algorithm) -> io::Result<()> {
        let h = self.inner.h;
        self.inner
            .stack
            .call(|s, _| s.set_congestion(h, algorithm))
            .map_err(to_io)
    }

    /// A snapshot of the connection (state, windows, RTT, queues), as `ss -ti` shows it.
    pub fn info(&self) -> Option<ConnInfo> {
        let h = self.inner.h;
        self.inner.stack.with(|s| s.info(h))
    }

    /// Split into halves that can move to different tasks. The connection closes when both
    /// are dropped; dropping the write half shuts down the sending side (FIN).
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                inner: self.inner.clone(),
            },
            OwnedWriteHalf { inner: self.inner },
        )
    }
}

/// Closes a connection attempt that was abandoned (its future dropped or failed).
struct CloseOnDrop<'a>(&'a Stack, Option<ConnHandle>);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.1 {
            release(self.0, h);
        }
    }
}

/// Reading through [`Inner`]: the stream and its read half behave alike.
macro_rules! async_read {
    ($($t:ty),*) => {$(
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.inner.poll_read(cx, buf)
            }
        }
    )*};
}

/// Writing through [`Inner`]: bytes are in the stack once written, so there is nothing to
/// flush; shutdown is `shutdown(SHUT_WR)` (FIN after the queued data, reading goes on).
macro_rules! async_write {
    ($($t:ty),*) => {$(
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }
            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.inner.shutdown())
            }
        }
    )*};
}

async_read!(TcpStream, OwnedReadHalf);
async_write!(TcpStream, OwnedWriteHalf);

/// The reading half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<Inner>,
}

/// The writing half of [`TcpStream::into_split`]; dropping it sends FIN.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<Inner>,
}

impl OwnedReadHalf {
    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }
}

impl OwnedWriteHalf {
    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        let _ = self.inner.shutdown();
    }
}
