//! # synq-core: a sans-IO TCP engine
//!
//! The protocol core of synq. It is fully deterministic: it never reads a clock, never
//! touches a socket or file, never spawns and never asks the OS for randomness. Time comes
//! in as an [`Instant`] argument, randomness as the seed given to [`Stack::new`], and
//! packets as byte slices. Clippy's `disallowed-methods` (see this crate's `clippy.toml`)
//! enforces that.
//!
//! ## Calling contract
//!
//! A driver (the simulator, a TUN loop, a test) owns a [`Stack`] and runs it through the
//! [`Driver`] trait, repeating:
//!
//! 1. **Input.** [`Stack::handle_packet`] for each received IP packet, and
//!    [`Stack::handle_timeout`] once `now >= poll_timeout()`.
//! 2. **Application.** Socket calls, each taking `now` when it can change protocol state:
//!    [`Stack::listen`], [`Stack::accept`], [`Stack::connect`], [`Stack::send`],
//!    [`Stack::recv`], [`Stack::shutdown`], [`Stack::close`].
//! 3. **Output,** in this order: [`Stack::poll_transmit`] until `None` (each call yields one
//!    IP packet), [`Stack::poll_event`] until `None`, then [`Stack::poll_timeout`] to know
//!    when to call back.
//!
//! [`Driver`]'s documentation has this loop as a runnable example: two stacks, a wire of
//! two queues and a virtual clock, from `listen` and `connect` to `accept`.
//!
//! Several cores serve one address as shards: stacks made with [`Stack::new_shard`] from
//! one seed share every secret (ISNs and SYN cookies agree across them) and draw their
//! random choices from streams of their own; [`Steering`] picks a packet's shard by its
//! 4-tuple, and [`Shards`] keeps N of them behind one [`Driver`].
//!
//! Malformed input is counted under Linux's counter names ([`Counters`]) and dropped;
//! nothing in this crate panics on network input. Every queue is bounded by a knob of
//! [`Config`], set by Linux sysctl name.
//!
//! ## What is implemented
//!
//! RFC 9293 states and segment processing over IPv4 and IPv6, RFC 5961 RST/SYN/ACK checks
//! with rate-limited challenge ACKs, RFC 7323 window scaling, timestamps (RTTM and PAWS),
//! RFC 6298 RTO with Linux's 200 ms floor, RFC 6528 ISNs, delayed ACKs, zero-window probing,
//! keepalive, TIME_WAIT and receive-buffer autotuning.
//!
//! Loss recovery as Linux runs it: with SACK, a scoreboard with RACK loss detection and tail
//! loss probes (RFC 8985), proportional rate reduction (RFC 6937), F-RTO (RFC 5682) and
//! DSACK (RFC 2883); without SACK, NewReno (RFC 6582). Congestion control is CUBIC (RFC 9438,
//! HyStart included, the default) or Reno (RFC 5681), per stack or per socket
//! ([`congestion`]). Runs of full-sized segments can leave as one super-segment for a
//! device with segmentation offload ([`gso`]).
//!
//! Listeners' backlogs follow a [`Model`]: Linux (two queues, SYN cookies in Linux's
//! encoding, request pruning, `TCP_DEFER_ACCEPT`), Linux 4.10-6.12, 4.4BSD's single queue,
//! the textbook single queue, or modern FreeBSD's syncache with its own SYN cookies.

pub mod config;
pub mod congestion;
pub mod conn;
pub mod counters;
pub mod driver;
pub mod error;
pub mod gso;
pub mod time;

mod buffer;
mod challenge;
mod cookie;
mod hash;
mod listener;
mod recovery;
mod request;
mod rtt;
mod shard;
mod slab;
mod stack;

pub use config::{Config, Syncookies, SysctlError, TsMode, UnknownSysctl};
pub use conn::{ConnInfo, State};
pub use counters::{Counters, FreeBsdCounters};
pub use driver::Driver;
pub use error::{
    AcceptError, CloseError, ConnError, ConnectError, Errno, ListenError, RecvError, SendError,
    SockOptError,
};
pub use hash::FourTuple;
pub use listener::{Family, Model};
pub use rtt::{RttEstimator, RTO_INIT, RTO_MAX, RTO_MIN};
pub use shard::{ShardListener, Shards, Steering};
pub use stack::{ConnHandle, Event, ListenerHandle, ListenerInfo, Stack, SynRecvInfo};
pub use synq_wire as wire;
pub use time::{Duration, Instant};

#[cfg(test)]
mod tests;
