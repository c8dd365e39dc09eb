//! A listening socket: a SYN queue of half-open requests and an accept queue of
//! established connections, as two separate structures (Linux's two-queue design).
//!
//! Half-open requests are small records ([`Request`]), never full connections; a request
//! becomes a [`crate::conn::Connection`] only when its handshake completes.

use crate::hash::FourTuple;
use crate::slab::Key;
use crate::Instant;
use core::net::SocketAddr;
use std::collections::VecDeque;
use synq_wire::SeqNumber;

/// Established connections waiting for `accept()`, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct AcceptQueue {
    queue: VecDeque<Key>,
}

impl AcceptQueue {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
    pub(crate) fn push(&mut self, conn: Key) {
        self.queue.push_back(conn);
    }
    pub(crate) fn pop(&mut self) -> Option<Key> {
        self.queue.pop_front()
    }
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Key> + '_ {
        self.queue.drain(..)
    }
}

/// Counts of half-open requests (the requests live in the stack's request table, hashed by
/// 4-tuple, as Linux keeps them in the established hash).
#[derive(Debug, Default)]
pub(crate) struct SynQueue {
    /// Requests held (Linux `qlen`).
    pub(crate) len: u32,
    /// Requests whose SYN-ACK was never retransmitted (Linux `young`).
    pub(crate) young: u32,
}

/// A listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) local: SocketAddr,
    /// `sk_max_ack_backlog`: the listen() backlog after the somaxconn clamp.
    pub(crate) backlog: u32,
    pub(crate) accept: AcceptQueue,
    pub(crate) syn: SynQueue,
    /// An AcceptReady event is queued and not yet drained.
    pub(crate) event_pending: bool,
}

impl Listener {
    pub(crate) fn new(local: SocketAddr, backlog: u32) -> Self {
        Self {
            local,
            backlog,
            accept: AcceptQueue::default(),
            syn: SynQueue::default(),
            event_pending: false,
        }
    }

    /// Linux `sk_acceptq_is_full`: strictly more than the backlog, so backlog+1 fit.
    pub(crate) fn accept_full(&self) -> bool {
        self.accept.len() as u64 > u64::from(self.backlog)
    }

    /// Linux >= 6.13 `inet_csk_reqsk_queue_is_full`: `qlen > backlog`.
    pub(crate) fn syn_full(&self) -> bool {
        self.syn.len > self.backlog
    }
}

/// A half-open connection (Linux `request_sock`): what is needed to answer the final ACK.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    pub(crate) listener: Key,
    pub(crate) tuple: FourTuple,
    pub(crate) iss: SeqNumber,
    pub(crate) irs: SeqNumber,
    pub(crate) peer_mss: Option<u16>,
    pub(crate) peer_wscale: Option<u8>,
    pub(crate) sack: bool,
    pub(crate) ts_recent: Option<u32>,
    /// SYN-ACK retransmissions so far (Linux `num_timeout`).
    pub(crate) num_timeout: u8,
    /// A final ACK arrived but could not be accepted (queue full).
    pub(crate) acked: bool,
    /// When the SYN-ACK timer fires.
    pub(crate) deadline: Instant,
    /// Last reply to an invalid segment (rate limit).
    pub(crate) last_oow: Option<Instant>,
}
