//! Typed errors, one per operation, each mapping to the errno a socket user would see.

/// A numeric errno with its symbolic name, for users who think in errno.
pub trait Errno {
    /// The Linux errno name, e.g. `"EAGAIN"`.
    fn errno_name(&self) -> &'static str;
}

macro_rules! errno_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $errno:literal, $msg:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* #[error($msg)] $var,)*
        }
        impl Errno for $name {
            fn errno_name(&self) -> &'static str {
                match self { $(Self::$var => $errno,)* }
            }
        }
    };
}

errno_enum! {
    /// `listen()` failed.
    ListenError {
        /// EADDRINUSE: another listener or connection owns the address.
        AddrInUse => "EADDRINUSE", "address already in use (EADDRINUSE)";
        /// EADDRNOTAVAIL: the address is not one of this stack's.
        AddrNotAvailable => "EADDRNOTAVAIL", "address not available (EADDRNOTAVAIL)";
        /// EINVAL: the socket is not closed or listening, or port 0.
        InvalidState => "EINVAL", "invalid argument (EINVAL)";
    }
}

errno_enum! {
    /// `accept()` failed.
    AcceptError {
        /// EAGAIN: the accept queue is empty.
        WouldBlock => "EAGAIN", "no connection to accept (EAGAIN)";
        /// EINVAL: the handle is not a listening socket.
        NotListening => "EINVAL", "not a listening socket (EINVAL)";
    }
}

errno_enum! {
    /// `connect()` failed before any packet was sent.
    ConnectError {
        /// EADDRNOTAVAIL: no local address of the right family, or no free ephemeral port.
        AddrNotAvailable => "EADDRNOTAVAIL", "no local address or port available (EADDRNOTAVAIL)";
        /// EINVAL: port 0 or an unspecified remote address.
        InvalidInput => "EINVAL", "invalid remote address (EINVAL)";
        /// EADDRINUSE: the chosen 4-tuple is already in use.
        AddrInUse => "EADDRINUSE", "address already in use (EADDRINUSE)";
        /// ENOBUFS: the connection table is full (`synq.max_connections`).
        NoBuffers => "ENOBUFS", "connection table full (ENOBUFS)";
    }
}

errno_enum! {
    /// Why a connection ended abnormally: what a blocked call then reports.
    ConnError {
        /// ECONNREFUSED: the peer answered the SYN with RST.
        Refused => "ECONNREFUSED", "connection refused (ECONNREFUSED)";
        /// ECONNRESET: the peer reset an established connection.
        Reset => "ECONNRESET", "connection reset by peer (ECONNRESET)";
        /// ETIMEDOUT: retransmissions ran out.
        TimedOut => "ETIMEDOUT", "connection timed out (ETIMEDOUT)";
        /// EPIPE: reset after the peer's FIN (Linux `tcp_reset` in CLOSE_WAIT).
        BrokenPipe => "EPIPE", "broken pipe (EPIPE)";
    }
}

errno_enum! {
    /// `send()` failed.
    SendError {
        /// EAGAIN: the send buffer is full.
        WouldBlock => "EAGAIN", "send buffer full (EAGAIN)";
        /// ENOTCONN: the handshake has not completed.
        NotConnected => "ENOTCONN", "not connected (ENOTCONN)";
        /// EPIPE: the sending side was shut down.
        BrokenPipe => "EPIPE", "broken pipe (EPIPE)";
        /// ECONNREFUSED: see [`ConnError::Refused`].
        Refused => "ECONNREFUSED", "connection refused (ECONNREFUSED)";
        /// ECONNRESET: see [`ConnError::Reset`].
        Reset => "ECONNRESET", "connection reset by peer (ECONNRESET)";
        /// ETIMEDOUT: see [`ConnError::TimedOut`].
        TimedOut => "ETIMEDOUT", "connection timed out (ETIMEDOUT)";
        /// EBADF: the handle is stale or was closed.
        BadHandle => "EBADF", "bad handle (EBADF)";
    }
}

errno_enum! {
    /// `recv()` failed. End of stream is `Ok(0)`, not an error.
    RecvError {
        /// EAGAIN: nothing to read yet.
        WouldBlock => "EAGAIN", "nothing to read (EAGAIN)";
        /// ENOTCONN: the handshake has not completed.
        NotConnected => "ENOTCONN", "not connected (ENOTCONN)";
        /// ECONNREFUSED: see [`ConnError::Refused`].
        Refused => "ECONNREFUSED", "connection refused (ECONNREFUSED)";
        /// ECONNRESET: see [`ConnError::Reset`].
        Reset => "ECONNRESET", "connection reset by peer (ECONNRESET)";
        /// ETIMEDOUT: see [`ConnError::TimedOut`].
        TimedOut => "ETIMEDOUT", "connection timed out (ETIMEDOUT)";
        /// EPIPE: see [`ConnError::BrokenPipe`].
        BrokenPipe => "EPIPE", "broken pipe (EPIPE)";
        /// EBADF: the handle is stale or was closed.
        BadHandle => "EBADF", "bad handle (EBADF)";
    }
}

errno_enum! {
    /// `shutdown()` or `close()` failed.
    CloseError {
        /// ENOTCONN: shutdown on a connection that is not connected.
        NotConnected => "ENOTCONN", "not connected (ENOTCONN)";
        /// EBADF: the handle is stale or was closed.
        BadHandle => "EBADF", "bad handle (EBADF)";
    }
}

errno_enum! {
    /// `setsockopt()` on a connection failed.
    SockOptError {
        /// EBADF: the handle is stale or was closed.
        BadHandle => "EBADF", "bad handle (EBADF)";
    }
}

/// A call on a connection that already ended reports the connection's error.
macro_rules! from_conn_error {
    ($($t:ident),*) => {$(
        impl From<ConnError> for $t {
            fn from(e: ConnError) -> Self {
                match e {
                    ConnError::Refused => Self::Refused,
                    ConnError::Reset => Self::Reset,
                    ConnError::TimedOut => Self::TimedOut,
                    ConnError::BrokenPipe => Self::BrokenPipe,
                }
            }
        }
    )*};
}
from_conn_error!(SendError, RecvError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(AcceptError::WouldBlock.errno_name(), "EAGAIN");
        assert_eq!(ListenError::AddrInUse.errno_name(), "EADDRINUSE");
        assert_eq!(SendError::from(ConnError::Reset).errno_name(), "ECONNRESET");
        assert_eq!(
            RecvError::from(ConnError::TimedOut).errno_name(),
            "ETIMEDOUT"
        );
        assert_eq!(
            ConnError::Refused.to_string(),
            "connection refused (ECONNREFUSED)"
        );
    }
}
