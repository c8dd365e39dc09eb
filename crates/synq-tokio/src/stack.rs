//! The shared stack and the driver task that owns its device.

use crate::device::Device;
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use synq_core::{ConnHandle, Driver, Event, Instant, ListenerHandle};

/// Packets read from the device before the stack is polled once.
const RX_BATCH: usize = 64;
/// Packets taken from the stack before they are written and the device is read again.
const TX_BATCH: usize = 256;
/// Receive buffer size: the largest IP packet.
const RX_BUF: usize = 65_536;

/// Which way a packet crossed the device, for a [`Tap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Read from the device, handed to the stack.
    In,
    /// Produced by the stack, written to the device.
    Out,
}

/// Sees every packet the driver moves (a capture file, a counter), in order.
pub type Tap = Box<dyn FnMut(Direction, &[u8]) + Send>;

#[derive(Default)]
pub(crate) struct Wakers {
    pub(crate) read: Option<Waker>,
    pub(crate) write: Option<Waker>,
}

pub(crate) struct State {
    pub(crate) stack: synq_core::Stack,
    epoch: std::time::Instant,
    pub(crate) conns: HashMap<ConnHandle, Wakers>,
    pub(crate) listeners: HashMap<ListenerHandle, Vec<Waker>>,
    /// Why the driver stopped, once it has.
    pub(crate) failed: Option<(io::ErrorKind, String)>,
    stopping: bool,
    tap: Option<Tap>,
    pub(crate) stats: DriverStats,
}

impl State {
    /// The stack's clock: microseconds since the stack was made, never decreasing because
    /// every reading happens under the lock.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    /// The driver's error, for a call that would otherwise wait forever.
    pub(crate) fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, why)) => Err(io::Error::new(*kind, why.clone())),
            None => Ok(()),
        }
    }

    fn collect(&mut self, ev: Event, out: &mut Vec<Waker>) {
        match ev {
            Event::AcceptReady(l) => {
                if let Some(ws) = self.listeners.get_mut(&l) {
                    out.append(ws);
                }
            }
            Event::Readable(h) => {
                if let Some(w) = self.conns.get_mut(&h) {
                    out.extend(w.read.take());
                }
            }
            Event::Writable(h) => {
                if let Some(w) = self.conns.get_mut(&h) {
                    out.extend(w.write.take());
                }
            }
            Event::Connected(h) | Event::Closed(h) => {
                if let Some(w) = self.conns.get_mut(&h) {
                    out.extend(w.read.take());
                    out.extend(w.write.take());
                }
            }
        }
    }

    fn wake_all(&mut self, out: &mut Vec<Waker>) {
        for w in self.conns.values_mut() {
            out.extend(w.read.take());
            out.extend(w.write.take());
        }
        for ws in self.listeners.values_mut() {
            out.append(ws);
        }
    }
}

/// What the driver did, for `synq stat` and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Packets read from the device.
    pub rx_packets: u64,
    /// Packets written to the device.
    pub tx_packets: u64,
    /// Packets the device refused to take (write errors other than `WouldBlock`).
    pub tx_errors: u64,
    /// Writes that carried several of the engine's segments for the device to cut
    /// (segmentation offload); `tx_packets` counts the segments.
    pub tx_super_segments: u64,
    /// Times the driver woke up and polled the stack.
    pub wakeups: u64,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    notify: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The stack is never left half-updated by a panic in user code (none runs under the
        // lock), so a poisoned lock is still sound to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Tell the driver the application changed something (it may have packets to send).
    pub(crate) fn kick(&self) {
        self.notify.notify_one();
    }
}

struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.kick();
    }
}

/// A synq stack driven by a tokio task over a [`Device`].
///
/// Cheap to clone; sockets hold a clone. The driver task stops when the last clone (and so
/// the last socket) is dropped, or at [`Stack::shutdown`]; the device is then closed (a TUN
/// interface disappears).
#[derive(Clone)]
pub struct Stack {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").finish_non_exhaustive()
    }
}

impl Stack {
    /// A stack over `device` with `config`, its secrets (ISN and cookie keys, timestamp
    /// offsets) seeded from the OS, and its driver spawned on the current tokio runtime.
    /// Fails outside a runtime.
    pub fn new(device: impl Device, config: synq_core::Config) -> io::Result<Self> {
        Self::with_seed(device, config, random_seed())
    }

    /// As [`Stack::new`] with a chosen seed (reproducible ISNs: for tests only).
    pub fn with_seed(
        device: impl Device,
        config: synq_core::Config,
        seed: u64,
    ) -> io::Result<Self> {
        let engine = synq_core::Stack::new(config, seed);
        Self::from_engine(device, engine, std::time::Instant::now())
    }

    /// A stack over `device` driving `engine`, made by the caller (a shard of a
    /// multi-threaded server: [`synq_core::Stack::new_shard`]), its clock reading the time
    /// since `epoch`. Shards of one host share the epoch as they share secrets: SYN cookies
    /// carry a minute counter and ISNs a 4 µs clock, both read from it.
    pub fn from_engine(
        device: impl Device,
        engine: synq_core::Stack,
        epoch: std::time::Instant,
    ) -> io::Result<Self> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("synq-tokio needs a tokio runtime: {e}")))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stack: engine,
                epoch,
                conns: HashMap::new(),
                listeners: HashMap::new(),
                failed: None,
                stopping: false,
                tap: None,
                stats: DriverStats::default(),
            }),
            notify: tokio::sync::Notify::new(),
        });
        let driver = rt.spawn(drive(shared.clone(), device));
        // If the driver dies (a panicking tap, say), sockets fail instead of waiting forever.
        let watch = shared.clone();
        rt.spawn(async move {
            if let Err(e) = driver.await {
                let mut wakers = Vec::new();
                let mut st = watch.lock();
                st.failed = Some((io::ErrorKind::Other, format!("driver task ended: {e}")));
                st.wake_all(&mut wakers);
                drop(st);
                for w in wakers {
                    w.wake();
                }
            }
        });
        Ok(Self {
            owner: Arc::new(Owner { shared }),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    /// Own `addr`: packets to it are ours; listeners may bind it and connect() uses it.
    pub fn add_address(&self, addr: IpAddr) {
        self.shared().lock().stack.add_address(addr);
    }

    /// Set a knob by its Linux sysctl name (`net.ipv4.tcp_syncookies`, `net.core.somaxconn`,
    /// `synq.listen_model`, ...); takes effect for later events, as `sysctl -w` does.
    pub fn set_sysctl(&self, name: &str, value: &str) -> io::Result<()> {
        self.shared()
            .lock()
            .stack
            .config_mut()
            .set(name, value)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
    }

    /// The backlog model for later `listen()` calls and SYNs (`synq.listen_model`): Linux's
    /// two queues by default, 4.4BSD's single queue, ...
    pub fn set_model(&self, model: synq_core::Model) {
        self.shared().lock().stack.set_model(model);
    }

    /// Read the engine's state under the lock: counters, `listeners()`, `connections()`,
    /// `syn_recv()`. Keep `f` short: the driver waits for it.
    pub fn with<R>(&self, f: impl FnOnce(&synq_core::Stack) -> R) -> R {
        f(&self.shared().lock().stack)
    }

    /// Run `f` on the engine at its current time, for what the socket API does not wrap
    /// (sharing a cookie stamp between shards, say), then let the driver send what it made.
    pub fn with_mut<R>(&self, f: impl FnOnce(&mut synq_core::Stack, Instant) -> R) -> R {
        self.call(f)
    }

    /// The driver's own figures.
    pub fn driver_stats(&self) -> DriverStats {
        self.shared().lock().stats
    }

    /// Give every packet the driver moves to `tap` from now on (a capture file, say).
    pub fn set_tap(&self, tap: Tap) {
        self.shared().lock().tap = Some(tap);
    }

    /// Stop the driver: sockets then fail with `NotConnected`, and the device is closed.
    pub fn shutdown(&self) {
        self.shared().lock().stopping = true;
        self.shared().kick();
    }

    /// Why the driver stopped, if it has (a device error, or [`Stack::shutdown`]).
    pub fn error(&self) -> Option<io::Error> {
        self.shared().lock().check().err()
    }

    /// Run `f` on the engine with the current time, then let the driver send what it made.
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut synq_core::Stack, Instant) -> R) -> R {
        let r = {
            let mut st = self.shared().lock();
            let now = st.now();
            f(&mut st.stack, now)
        };
        self.shared().kick();
        r
    }
}

/// A seed for a real stack's secrets ([`Stack::new`] uses one): from the OS's per-process
/// hash keys and the time (never used by the sans-IO core itself, which takes the seed as
/// an argument). Shards of one host draw one and share it.
pub fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// One round of the driver contract ([`synq_core::Driver`]) on any engine: hand it the
/// packets read, fire its timers if due, take up to `TX_BATCH` packets into `tx`, drain its
/// events. Returns how many packets `tx` holds.
fn pump<'a, D: Driver>(
    engine: &mut D,
    now: Instant,
    packets: impl Iterator<Item = (&'a [u8], bool)>,
    tx: &mut Vec<Vec<u8>>,
    tap: &mut Option<Tap>,
    events: &mut Vec<D::Event>,
) -> usize {
    // As a batch: a stack looks its table lookups up ahead (Stack::handle_packets).
    engine.handle_packets(
        now,
        packets.inspect(|&(p, _)| {
            if let Some(tap) = tap.as_mut() {
                tap(Direction::In, p);
            }
        }),
    );
    if engine.poll_timeout().is_some_and(|t| t <= now) {
        engine.handle_timeout(now);
    }
    let mut m = 0;
    while m < TX_BATCH {
        if m == tx.len() {
            tx.push(Vec::with_capacity(2048));
        }
        if engine.poll_transmit(now, &mut tx[m]).is_none() {
            break;
        }
        if let Some(tap) = tap.as_mut() {
            tap(Direction::Out, &tx[m]);
        }
        m += 1;
    }
    events.extend(std::iter::from_fn(|| engine.poll_event()));
    m
}

/// The driver: drain the device, feed the stack, fire timers, write everything the stack
/// has, wake the sockets its events name, then sleep until the device is readable, an
/// application call kicks, or the stack's next timer.
async fn drive<D: Device>(shared: Arc<Shared>, dev: D) {
    let mut rx: Vec<Vec<u8>> = (0..RX_BATCH).map(|_| vec![0; RX_BUF]).collect();
    let mut rx_len = [(0usize, false); RX_BATCH];
    let mut tx: Vec<Vec<u8>> = Vec::new();
    let mut wakers = Vec::new();
    let mut merged = Vec::with_capacity(65_536);
    let mut events = Vec::new();
    let mut tso_writes = 0u64;
    let tso_ok = dev.tso();
    let epoch = tokio::time::Instant::from_std(shared.lock().epoch);
    let why = loop {
        let mut n = 0;
        let mut read_error = None;
        while n < RX_BATCH {
            match dev.try_recv(&mut rx[n]) {
                Ok(r) => {
                    rx_len[n] = (r.len.min(RX_BUF), r.checksum_ok);
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = read_error {
            break (e.kind(), format!("device read failed: {e}"));
        }
        let (sent, deadline) = {
            let mut st = shared.lock();
            if st.stopping {
                break (
                    io::ErrorKind::NotConnected,
                    "the stack was shut down".to_string(),
                );
            }
            let st = &mut *st;
            st.stats.wakeups += 1;
            st.stats.rx_packets += n as u64;
            let now = st.now();
            let packets = rx
                .iter()
                .zip(&rx_len)
                .take(n)
                .map(|(b, &(len, ok))| (&b[..len], ok));
            let mut tap = st.tap.take();
            events.clear();
            let m = pump(&mut st.stack, now, packets, &mut tx, &mut tap, &mut events);
            st.tap = tap;
            for ev in events.drain(..) {
                st.collect(ev, &mut wakers);
            }
            (m, Driver::poll_timeout(&st.stack))
        };
        for w in wakers.drain(..) {
            w.wake();
        }
        let mut errors = 0;
        let mut i = 0;
        while i < sent {
            // With segmentation offload, a run of full segments goes down as one write.
            let (take, tso) = if tso_ok {
                synq_core::gso::coalesce(&tx[i..sent], &mut merged)
            } else {
                (1, None)
            };
            let pkt: &[u8] = if tso.is_some() { &merged } else { &tx[i] };
            i += take;
            loop {
                let r = match tso {
                    Some(t) => dev.try_send_tso(pkt, t),
                    None => dev.try_send(pkt),
                };
                match r {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if poll_fn(|cx| dev.poll_writable(cx)).await.is_err() {
                            errors += take;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // A packet the device will not take is lost, as on a wire; TCP recovers.
                    Err(_) => {
                        errors += take;
                        break;
                    }
                }
            }
            if tso.is_some() {
                tso_writes += 1;
            }
        }
        {
            let mut st = shared.lock();
            st.stats.tx_packets += (sent - errors) as u64;
            st.stats.tx_super_segments += core::mem::take(&mut tso_writes);
            st.stats.tx_errors += errors as u64;
        }
        if n == RX_BATCH || sent == TX_BATCH {
            // More is waiting on one side: go round again, letting other tasks run first.
            tokio::task::yield_now().await;
            continue;
        }
        // A deadline past what the clock can represent (`Instant::MAX`) is no deadline.
        let sleep = deadline
            .and_then(|d| epoch.checked_add(std::time::Duration::from_micros(d.total_micros())))
            .map(tokio::time::sleep_until);
        tokio::select! {
            r = poll_fn(|cx| dev.poll_readable(cx)) => {
                if let Err(e) = r {
                    break (e.kind(), format!("device failed: {e}"));
                }
            }
            () = shared.notify.notified() => {}
            () = async {
                match sleep {
                    Some(s) => s.await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    };
    let mut st = shared.lock();
    st.failed = Some(why);
    st.wake_all(&mut wakers);
    drop(st);
    for w in wakers {
        w.wake();
    }
    // `dev` drops here: a TUN interface disappears with its descriptor.
    drop(dev);
}
