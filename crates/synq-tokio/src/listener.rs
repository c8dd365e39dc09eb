//! `TcpListener`: a synq listener with its backlog, accepting as tokio's does.

use crate::error::to_io;
use crate::stack::Stack;
use crate::stream::TcpStream;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use synq_core::{AcceptError, ListenError, ListenerHandle, ListenerInfo};

/// A listening socket over a synq [`Stack`], like `tokio::net::TcpListener`, with the
/// backlog semantics of the stack's model (`synq.listen_model`: Linux by default, so
/// `backlog + 1` established connections wait for `accept()`, SYN cookies beyond the SYN
/// queue, `net.core.somaxconn` clamping).
///
/// Dropping it stops listening: connections still in the accept queue are reset.
#[derive(Debug)]
pub struct TcpListener {
    stack: Stack,
    l: ListenerHandle,
    local: SocketAddr,
}

impl TcpListener {
    /// `bind(2)` + `listen(2)` on `addr` (one of the stack's addresses, or unspecified for
    /// all) with `backlog`, clamped as the model says (`AddrInUse`, `AddrNotAvailable`).
    pub fn bind(stack: &Stack, addr: SocketAddr, backlog: i32) -> io::Result<Self> {
        let l = stack.call(|s, now| {
            // The engine's listen() on a listening address re-listens (changes the backlog);
            // a second socket binding it is EADDRINUSE, as bind(2) says.
            if s.listeners().any(|l| l.local == addr) {
                return Err(to_io(ListenError::AddrInUse));
            }
            s.listen(now, addr, backlog).map_err(to_io)
        })?;
        stack.shared().lock().listeners.entry(l).or_default();
        Ok(Self {
            stack: stack.clone(),
            l,
            local: addr,
        })
    }

    /// Wait for the oldest established connection in the accept queue.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is taken from the queue only when the future completes, so
    /// dropping it in a `select!` loses nothing.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`TcpListener::accept`]; wakes `cx` when a connection is ready.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let shared = self.stack.shared();
        let mut st = shared.lock();
        let now = st.now();
        match st.stack.accept(now, self.l) {
            Ok((h, peer)) => {
                drop(st);
                shared.kick();
                Poll::Ready(TcpStream::new(self.stack.clone(), h).map(|s| (s, peer)))
            }
            Err(AcceptError::WouldBlock) => {
                st.check()?;
                let ws = st.listeners.entry(self.l).or_default();
                if !ws.iter().any(|w| w.will_wake(cx.waker())) {
                    ws.push(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Listen again with another backlog (`listen(2)` on a listening socket: only the
    /// backlog changes).
    pub fn set_backlog(&self, backlog: i32) -> io::Result<()> {
        let local = self.local;
        self.stack
            .call(|s, now| s.listen(now, local, backlog))
            .map(drop)
            .map_err(to_io)
    }

    /// `TCP_DEFER_ACCEPT` in seconds: a connection joins the accept queue only once data
    /// arrives (or the final ACK is retried past the limit). Returns what `getsockopt` would
    /// read back (Linux rounds up to a retransmission count: 2 reads back as 3).
    pub fn set_defer_accept(&self, secs: u32) -> io::Result<u32> {
        let l = self.l;
        self.stack
            .call(|s, _| s.set_defer_accept(l, secs))
            .ok_or_else(not_listening)
    }

    /// `TCP_SYNCNT` for this listener: SYN-ACK retransmissions before a request is dropped
    /// (default `net.ipv4.tcp_synack_retries`).
    pub fn set_syncnt(&self, n: u8) -> io::Result<()> {
        let l = self.l;
        self.stack
            .call(|s, _| s.set_syncnt(l, n))
            .ok_or_else(not_listening)
    }

    /// What `ss -lnt` shows: Recv-Q (accept queue), Send-Q (backlog) and SYN-RECV requests.
    pub fn info(&self) -> io::Result<ListenerInfo> {
        let l = self.l;
        self.stack
            .with(|s| s.listener_info(l))
            .ok_or_else(not_listening)
    }

    /// The engine's handle of this listener, for calls through [`Stack::with`] and
    /// [`Stack::with_mut`] that this type does not wrap.
    pub fn handle(&self) -> ListenerHandle {
        self.l
    }

    /// The stack this listener lives on.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }
}

fn not_listening() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not listening (EINVAL)")
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let l = self.l;
        self.stack.call(|s, now| s.close_listener(now, l));
        self.stack.shared().lock().listeners.remove(&l);
    }
}

#[cfg(feature = "axum")]
impl axum::serve::Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match Self::accept(self).await {
                Ok(conn) => return conn,
                // As axum's own listener does: an accept error is not fatal to the server.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
