//! The hosts of a run and their applications: the server (accept pattern, answers each
//! request), Linux clients (connect, request, read the response) and attackers.

use super::file::{Accept, MAX_MESSAGE};
use super::Tally;
use crate::scenario::backlog::Flooder;
use crate::Instant;
use core::net::{IpAddr, SocketAddr};
use std::collections::BTreeMap;
use std::rc::Rc;
use synq_core::{Config, ConnHandle, Driver, Event, ListenerHandle, Stack, State};

/// A host of a scenario run. Clients are many: the server and their stacks are boxed so
/// that a client that is not running costs a few hundred bytes.
pub(super) enum Node {
    Server(Box<Server>),
    Client(Client),
    Attacker(Flooder),
}

pub(super) struct Server {
    pub(super) stack: Stack,
    pub(super) listeners: Vec<(ListenerHandle, Accept, Option<Instant>)>,
    pub(super) conns: BTreeMap<ConnHandle, Served>,
}

/// A served connection: the request so far, then the response.
#[derive(Default)]
pub(super) struct Served {
    header: [u8; 8],
    got: u64,
    respond: Option<u64>,
}

pub(super) struct Client {
    pub(super) config: Rc<Config>,
    pub(super) seed: u64,
    pub(super) addr: IpAddr,
    pub(super) dst: SocketAddr,
    pub(super) start: Instant,
    pub(super) stack: Option<Box<Stack>>,
    pub(super) conn: Option<ConnHandle>,
    pub(super) request: u64,
    pub(super) response: u64,
    pub(super) sent: u64,
    pub(super) received: u64,
    pub(super) phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Waiting,
    Connecting,
    Exchanging,
    Done,
    Failed,
}

const SCRATCH: usize = 16 * 1024;

impl Server {
    fn poll_timeout(&self) -> Option<Instant> {
        let ticks = self.listeners.iter().filter_map(|l| l.2);
        ticks.chain(self.stack.poll_timeout()).min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.listeners.len() {
            let (l, accept, tick) = self.listeners[i];
            if let (Accept::Every { every, batch }, Some(t)) = (accept, tick) {
                if now >= t {
                    self.accept(now, l, batch);
                    self.listeners[i].2 = Some(t + every);
                }
            }
        }
        self.stack.handle_timeout(now);
    }

    fn accept(&mut self, now: Instant, l: ListenerHandle, batch: u32) {
        for _ in 0..batch {
            let Ok((h, _)) = self.stack.accept(now, l) else {
                return;
            };
            self.conns.insert(h, Served::default());
            // Data may have arrived before accept(): read it now.
            self.read(now, h);
        }
    }

    pub(super) fn on_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::AcceptReady(l) => {
                if let Some(&(_, Accept::Immediate, _)) = self.listeners.iter().find(|x| x.0 == l) {
                    self.accept(now, l, u32::MAX);
                }
            }
            Event::Readable(h) => self.read(now, h),
            Event::Writable(h) => self.write(now, h),
            Event::Closed(h) => {
                if self.conns.remove(&h).is_some() {
                    let _ = self.stack.close(now, h);
                }
            }
            Event::Connected(_) => {}
        }
    }

    fn read(&mut self, now: Instant, h: ConnHandle) {
        let Some(s) = self.conns.get_mut(&h) else {
            return;
        };
        let mut buf = [0u8; SCRATCH];
        loop {
            match self.stack.recv(now, h, &mut buf) {
                Ok(0) => {
                    // The request is complete: answer with the size its header asked for.
                    if s.respond.is_none() {
                        s.respond = Some(if s.got >= 8 {
                            u64::from_be_bytes(s.header).min(MAX_MESSAGE)
                        } else {
                            0
                        });
                        self.write(now, h);
                    }
                    return;
                }
                Ok(n) => {
                    let off = s.got as usize;
                    if off < 8 {
                        let k = (8 - off).min(n);
                        s.header[off..off + k].copy_from_slice(&buf[..k]);
                    }
                    s.got += n as u64;
                }
                Err(_) => return,
            }
        }
    }

    fn write(&mut self, now: Instant, h: ConnHandle) {
        let Some(s) = self.conns.get_mut(&h) else {
            return;
        };
        let Some(left) = s.respond else {
            return;
        };
        let zeros = [0u8; SCRATCH];
        let mut left = left;
        while left > 0 {
            let n = (left as usize).min(SCRATCH);
            match self.stack.send(now, h, &zeros[..n]) {
                Ok(k) => left -= k as u64,
                Err(_) => break,
            }
        }
        s.respond = Some(left);
        if left == 0 {
            self.conns.remove(&h);
            let _ = self.stack.close(now, h);
        }
    }
}

impl Client {
    /// Free the stack of a client that is done and holds no connection, so that memory
    /// follows the clients alive, not all that ever came. A packet for it later meets a
    /// fresh stack, which answers as a host without sockets does (RST), as the old one would.
    pub(super) fn reap(&mut self) {
        let idle = self
            .stack
            .as_ref()
            .is_some_and(|s| s.connections().next().is_none() && s.poll_timeout().is_none());
        if idle && matches!(self.phase, Phase::Done | Phase::Failed) {
            self.stack = None;
        }
    }

    fn revive(&mut self) -> &mut Stack {
        self.stack.get_or_insert_with(|| {
            let mut s = Stack::new((*self.config).clone(), self.seed ^ 1);
            s.add_address(self.addr);
            Box::new(s)
        })
    }

    fn exchange(&self) -> bool {
        self.request > 0 || self.response > 0
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = &mut self.stack {
            s.handle_timeout(now);
            return;
        }
        if now < self.start || self.phase != Phase::Waiting {
            return;
        }
        let mut stack = Stack::new((*self.config).clone(), self.seed);
        stack.add_address(self.addr);
        match stack.connect(now, self.dst) {
            Ok(h) => {
                self.conn = Some(h);
                self.phase = Phase::Connecting;
            }
            Err(_) => self.phase = Phase::Failed,
        }
        self.stack = Some(Box::new(stack));
    }

    pub(super) fn on_event(&mut self, now: Instant, ev: Event, tally: &mut Tally) {
        let (Some(stack), Some(conn)) = (&mut self.stack, self.conn) else {
            return;
        };
        match ev {
            Event::Connected(h) if h == conn && self.phase == Phase::Connecting => {
                tally.latencies_us.push((now - self.start).total_micros());
                if self.exchange() {
                    self.phase = Phase::Exchanging;
                    self.write(now);
                } else {
                    self.phase = Phase::Done;
                    tally.completed += 1;
                    tally.completions_us.push((now - self.start).total_micros());
                }
            }
            Event::Writable(h) if h == conn => self.write(now),
            Event::Readable(h) if h == conn && self.phase == Phase::Exchanging => {
                let mut buf = [0u8; SCRATCH];
                loop {
                    match stack.recv(now, h, &mut buf) {
                        Ok(0) => {
                            let ok = self.received >= self.response;
                            self.phase = if ok { Phase::Done } else { Phase::Failed };
                            if ok {
                                tally.completed += 1;
                                tally.completions_us.push((now - self.start).total_micros());
                            } else {
                                tally.gave_up += 1;
                            }
                            let _ = stack.close(now, h);
                            return;
                        }
                        Ok(n) => self.received += n as u64,
                        Err(_) => return,
                    }
                }
            }
            Event::Closed(h) if h == conn => {
                let closed = matches!(stack.state(h), Some(State::Closed) | None);
                if closed && matches!(self.phase, Phase::Connecting | Phase::Exchanging) {
                    self.phase = Phase::Failed;
                    tally.gave_up += 1;
                }
                // A connect-only client reset after its handshake (FreeBSD refuses at the
                // final ACK, after the client's connect() returned): it did not complete.
                let reset = stack.info(h).is_some_and(|i| i.error.is_some());
                if closed && reset && self.phase == Phase::Done && !self.exchange() {
                    self.phase = Phase::Failed;
                    tally.completed -= 1;
                    tally.gave_up += 1;
                }
            }
            _ => {}
        }
    }

    /// Send what is left of the request (8 bytes of response size, then zeros), then FIN.
    fn write(&mut self, now: Instant) {
        let (Some(stack), Some(h)) = (&mut self.stack, self.conn) else {
            return;
        };
        if self.phase != Phase::Exchanging || self.sent >= self.request {
            return;
        }
        let mut chunk = [0u8; SCRATCH];
        while self.sent < self.request {
            let n = ((self.request - self.sent) as usize).min(SCRATCH);
            chunk[..n].fill(0);
            if self.sent < 8 {
                let header = self.response.to_be_bytes();
                let off = self.sent as usize;
                let k = (8 - off).min(n);
                chunk[..k].copy_from_slice(&header[off..off + k]);
            }
            match stack.send(now, h, &chunk[..n]) {
                Ok(k) => self.sent += k as u64,
                Err(_) => return,
            }
        }
        let _ = stack.shutdown(now, h);
    }
}

impl Driver for Node {
    type Event = Event;

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        match self {
            Self::Server(s) => s.stack.handle_packet(now, packet),
            Self::Client(c) => {
                if c.phase != Phase::Waiting {
                    c.revive().handle_packet(now, packet);
                }
            }
            Self::Attacker(_) => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Self::Server(s) => s.handle_timeout(now),
            Self::Client(c) => c.handle_timeout(now),
            Self::Attacker(_) => {}
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        match self {
            Self::Server(s) => s.stack.poll_transmit(now, buf),
            Self::Client(c) => {
                let out = c.stack.as_mut()?.poll_transmit(now, buf);
                if out.is_none() {
                    c.reap();
                }
                out
            }
            Self::Attacker(f) => f.poll_transmit(now, buf),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::Server(s) => s.poll_timeout(),
            Self::Client(c) => match &c.stack {
                Some(s) => s.poll_timeout(),
                None if c.phase == Phase::Waiting => Some(c.start),
                None => None,
            },
            Self::Attacker(f) => f.poll_timeout(),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        match self {
            Self::Server(s) => s.stack.poll_event(),
            Self::Client(c) => c.stack.as_mut()?.poll_event(),
            Self::Attacker(_) => None,
        }
    }
}
