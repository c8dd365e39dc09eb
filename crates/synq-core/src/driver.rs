//! The driver contract: what anything that moves packets and time (the simulator, a TUN
//! loop, a test) needs from a host, whatever the host is.

use crate::{Event, Instant, Stack};

/// A sans-IO host a driver runs: packets and time go in, packets, events and a deadline
/// come out. [`Stack`] implements it; so can a host that wraps a stack with its
/// application, or a test double.
///
/// A driver repeats, for each host:
///
/// 1. **Input.** [`handle_packet`](Self::handle_packet) for each IP packet that arrived,
///    and [`handle_timeout`](Self::handle_timeout) once `now >= poll_timeout()`.
/// 2. **Application.** Socket calls on the host (for a [`Stack`]: `accept`, `connect`,
///    `send`, `recv`, `close`, ...), in answer to the events step 3 drained last time.
/// 3. **Output,** in this order: [`poll_transmit`](Self::poll_transmit) until `None`,
///    [`poll_event`](Self::poll_event) until `None`, then
///    [`poll_timeout`](Self::poll_timeout) for when to call back.
///
/// Time comes in as `now` on every call that can change state; the host never reads a
/// clock, and `now` never runs backwards from one call to the next.
///
/// # The packet pump
///
/// Two stacks and a wire of two queues, in virtual time: the server listens, the client
/// connects, packets take 50 µs each way, and the loop runs until `accept` returns the
/// connection. A TUN driver is the same loop with a device for the queues and a real clock.
///
/// ```
/// use core::net::{IpAddr, Ipv4Addr, SocketAddr};
/// use synq_core::{Config, Driver, Duration, Event, Instant, Stack};
///
/// /// Step 3 for one host: its packets onto the wire, its events for the application,
/// /// its next deadline back to the caller.
/// fn output<D: Driver>(
///     host: &mut D,
///     now: Instant,
///     wire: &mut Vec<Vec<u8>>,
///     events: &mut Vec<D::Event>,
/// ) -> Option<Instant> {
///     let mut buf = Vec::new();
///     while let Some(n) = host.poll_transmit(now, &mut buf) {
///         wire.push(buf[..n].to_vec());
///     }
///     while let Some(e) = host.poll_event() {
///         events.push(e);
///     }
///     host.poll_timeout()
/// }
///
/// let client_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// let server_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// let mut client = Stack::new(Config::default(), 1);
/// client.add_address(client_ip);
/// let mut server = Stack::new(Config::default(), 2);
/// server.add_address(server_ip);
///
/// let mut now = Instant::ZERO;
/// let server_addr = SocketAddr::new(server_ip, 80);
/// server.listen(now, server_addr, 128).expect("port 80 is free");
/// client.connect(now, server_addr).expect("the client has an address");
///
/// let one_way = Duration::from_micros(50);
/// let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
/// let mut events = Vec::new();
/// let mut accepted = None;
/// // Bounded: the handshake takes three packets; a livelock fails loudly.
/// for _ in 0..100 {
///     // 3. Output of both hosts; the earlier deadline of the two.
///     let mut deadline = output(&mut client, now, &mut to_server, &mut Vec::new());
///     let t = output(&mut server, now, &mut to_client, &mut events);
///     deadline = deadline.into_iter().chain(t).min();
///
///     // 2. Application: the server accepts when its listener says so.
///     for event in events.drain(..) {
///         if let Event::AcceptReady(listener) = event {
///             accepted = server.accept(now, listener).ok();
///         }
///     }
///     if let Some((_conn, peer)) = accepted {
///         assert_eq!(peer.ip(), client_ip);
///         break;
///     }
///
///     // 1. Input: packets in flight arrive after one hop; otherwise time jumps to the
///     //    next deadline.
///     if to_server.is_empty() && to_client.is_empty() {
///         let Some(t) = deadline else { break };
///         now = now.max(t);
///         client.handle_timeout(now);
///         server.handle_timeout(now);
///     } else {
///         now += one_way;
///         for p in to_server.drain(..) {
///             server.handle_packet(now, &p);
///         }
///         for p in to_client.drain(..) {
///             client.handle_packet(now, &p);
///         }
///     }
/// }
/// assert!(accepted.is_some(), "the handshake completed");
/// ```
pub trait Driver {
    /// What the host tells its application ([`Event`] for a stack).
    type Event;

    /// An IP packet addressed to this host arrived at `now`.
    fn handle_packet(&mut self, now: Instant, packet: &[u8]);

    /// As [`Driver::handle_packet`], for a packet whose transport checksum the device has
    /// vouched for (checksum offload). By default the checksum is verified all the same.
    fn handle_packet_verified(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet(now, packet);
    }

    /// Packets that arrived together at `now`, in order, each with whether the device
    /// vouched for its checksum. By default each goes to [`Driver::handle_packet`] or
    /// [`Driver::handle_packet_verified`]; a [`Stack`] looks a batch's table lookups up
    /// ahead (see [`Stack::handle_packets`]).
    fn handle_packets<'a>(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = (&'a [u8], bool)>,
    ) where
        Self: Sized,
    {
        for (p, verified) in packets {
            if verified {
                self.handle_packet_verified(now, p);
            } else {
                self.handle_packet(now, p);
            }
        }
    }

    /// Fire what is due at `now`; called once `now >= poll_timeout()`, may be spurious.
    fn handle_timeout(&mut self, now: Instant);

    /// Writes the next packet into buf (cleared by the callee); its length, or None.
    #[must_use]
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize>;

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the application, or `None` when all are drained.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;
}

impl Driver for Stack {
    type Event = Event;

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        Self::handle_packet(self, now, packet);
    }
    fn handle_packet_verified(&mut self, now: Instant, packet: &[u8]) {
        Self::handle_packet_verified(self, now, packet);
    }
    fn handle_packets<'a>(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = (&'a [u8], bool)>,
    ) {
        Self::handle_packets(self, now, packets);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        Self::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        Self::poll_event(self)
    }
}
