//! # synq-tokio: the synq stack under tokio
//!
//! A [`Stack`] owns a synq engine and a [`Device`] (a TUN device, or an in-memory [`pipe`]);
//! one driver task per stack reads packets in batches, feeds the engine, fires its timers,
//! writes what it sends, and wakes the sockets its events name (quinn's `ConnectionDriver`
//! shape). Sockets reach the engine through a short lock, never held across an `.await`.
//!
//! [`TcpListener`] and [`TcpStream`] mirror `tokio::net`: `bind`, `accept().await`,
//! `connect().await`, tokio's `AsyncRead`/`AsyncWrite` with backpressure, half-close,
//! `into_split`. Errors are `std::io::Error` whose kind follows the errno (`ConnectionRefused`,
//! `ConnectionReset`, `TimedOut`, `AddrInUse`, ...). hyper serves over a `TcpStream` through
//! hyper-util's `TokioIo`; with the `axum` feature, `TcpListener` is an
//! `axum::serve::Listener`.
//!
//! Two stacks in one process over an in-memory link:
//!
//! ```
//! use synq_tokio::{pipe, Stack, TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (a, b) = pipe(1024);
//! let server = Stack::new(a, synq_core::Config::default())?;
//! let client = Stack::new(b, synq_core::Config::default())?;
//! server.add_address("192.0.2.2".parse().unwrap());
//! client.add_address("192.0.2.1".parse().unwrap());
//!
//! let listener = TcpListener::bind(&server, "192.0.2.2:80".parse().unwrap(), 128)?;
//! tokio::spawn(async move {
//!     let (mut conn, _peer) = listener.accept().await?;
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf).await?;
//!     conn.write_all(&buf).await?;
//!     Ok::<_, std::io::Error>(())
//! });
//!
//! let mut conn = TcpStream::connect(&client, "192.0.2.2:80".parse().unwrap()).await?;
//! conn.write_all(b"hello").await?;
//! let mut echoed = [0; 5];
//! conn.read_exact(&mut echoed).await?;
//! assert_eq!(&echoed, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! Over a TUN device (root), the kernel's own programs are the peers: see
//! `examples/echo.rs` and `synq serve`.

mod device;
mod error;
mod listener;
mod stack;
mod stream;

pub use device::{pipe, Device, PipeEnd, Received, Tso};
pub use listener::TcpListener;
pub use stack::{random_seed, Direction, DriverStats, Stack, Tap};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, TcpStream};
pub use synq_core;
#[cfg(feature = "tun")]
pub use synq_tun;

/// Catch SIGINT (Ctrl-C) and SIGTERM from now on; the future ends when one arrives. A
/// server that serves until stopped awaits it, and its destructors (a TUN device, a
/// network namespace) then run, where SIGTERM's default action would end the process
/// without them. Call it (inside the runtime) before saying that it serves, so a signal
/// sent at once is caught.
pub fn until_stopped() -> std::io::Result<impl core::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
