//! synq's errno-typed errors as `std::io::Error`, with the `ErrorKind` the errno implies.

use std::io;
use synq_core::Errno;

/// The `io::Error` a socket user expects for a synq error: its kind from the errno
/// (ECONNREFUSED is `ConnectionRefused`, ETIMEDOUT `TimedOut`, ...), its text synq's own.
pub(crate) fn to_io<E: Errno + std::fmt::Display>(e: E) -> io::Error {
    io::Error::new(kind(e.errno_name()), e.to_string())
}

fn kind(errno: &str) -> io::ErrorKind {
    use io::ErrorKind as K;
    match errno {
        "EAGAIN" => K::WouldBlock,
        "EINVAL" => K::InvalidInput,
        "EADDRINUSE" => K::AddrInUse,
        "EADDRNOTAVAIL" => K::AddrNotAvailable,
        "ECONNREFUSED" => K::ConnectionRefused,
        "ECONNRESET" => K::ConnectionReset,
        "ETIMEDOUT" => K::TimedOut,
        "EPIPE" => K::BrokenPipe,
        "ENOTCONN" => K::NotConnected,
        "ENOBUFS" => K::OutOfMemory,
        _ => K::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synq_core::{ConnError, ConnectError, ListenError, RecvError, SendError};

    #[test]
    fn kinds_follow_errno() {
        let k = |e: io::Error| e.kind();
        assert_eq!(
            k(to_io(ConnError::Refused)),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(k(to_io(ConnError::Reset)), io::ErrorKind::ConnectionReset);
        assert_eq!(k(to_io(ConnError::TimedOut)), io::ErrorKind::TimedOut);
        assert_eq!(k(to_io(ListenError::AddrInUse)), io::ErrorKind::AddrInUse);
        assert_eq!(
            k(to_io(ConnectError::AddrNotAvailable)),
            io::ErrorKind::AddrNotAvailable
        );
        assert_eq!(k(to_io(SendError::BrokenPipe)), io::ErrorKind::BrokenPipe);
        assert_eq!(k(to_io(RecvError::WouldBlock)), io::ErrorKind::WouldBlock);
        assert!(to_io(ConnError::Refused)
            .to_string()
            .contains("ECONNREFUSED"));
    }
}
