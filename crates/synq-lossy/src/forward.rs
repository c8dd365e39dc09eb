//! The link: two namespaces, a TUN device moved into each, and a thread in this process
//! (in the root namespace, owning both descriptors) that carries every IPv4 packet from one
//! device to the other under an [`Impairment`].

use crate::impair::{Fate, Impairment, Roller};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use synq_tun::{Netns, Tun};
use tokio::io::unix::AsyncFd;

/// Namespace A's address, on its TUN device.
pub const A_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Namespace B's address, on its TUN device.
pub const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// MTU of both devices: Ethernet's, so a segment here is a segment in `synq sim transfer`
/// (the devices have no segmentation offload, so the kernel hands over MTU-sized packets and
/// a loss takes one segment, not a 64 KB burst).
pub const MTU: u16 = 1500;
/// Packets read from one device before the other gets a turn.
const BATCH: usize = 64;
/// Packets held back per direction at most; beyond it a packet picked for reordering
/// passes at once (and is not counted as reordered). The devices queue as many.
const MAX_HELD: usize = synq_tun::TX_QUEUE_LEN as usize;

/// One direction's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// IPv4 packets read from the source device.
    pub packets: u64,
    /// Dropped by the loss roll.
    pub lost: u64,
    /// Held back by the reorder delay.
    pub reordered: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Writes to the destination device that succeeded, copies included.
    pub delivered: u64,
    /// Writes that failed (the destination refused the packet).
    pub write_errors: u64,
    /// Packets that were not IPv4 (IPv6 router solicitations and the like), not forwarded
    /// and not rolled, so the generator's draws belong to the experiment's traffic.
    pub ignored: u64,
}

/// The forwarder's counts, both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// From namespace A to namespace B.
    pub a_to_b: DirStats,
    /// From namespace B to namespace A.
    pub b_to_a: DirStats,
    /// The forwarder stopped because its lifetime ran out.
    pub expired: bool,
}

impl Stats {
    /// Both directions added.
    pub fn total(&self) -> DirStats {
        let (a, b) = (self.a_to_b, self.b_to_a);
        DirStats {
            packets: a.packets + b.packets,
            lost: a.lost + b.lost,
            reordered: a.reordered + b.reordered,
            duplicated: a.duplicated + b.duplicated,
            delivered: a.delivered + b.delivered,
            write_errors: a.write_errors + b.write_errors,
            ignored: a.ignored + b.ignored,
        }
    }
}

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    duplicated: AtomicU64,
    delivered: AtomicU64,
    write_errors: AtomicU64,
    ignored: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirStats {
        DirStats {
            packets: self.packets.load(Relaxed),
            lost: self.lost.load(Relaxed),
            reordered: self.reordered.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            ignored: self.ignored.load(Relaxed),
        }
    }
}

#[derive(Default)]
struct Shared {
    dirs: [Counters; 2],
    expired: AtomicBool,
}

static NEXT_LINK: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by the impairing forwarder: A holds [`A_ADDR`], B holds
/// [`B_ADDR`], each with a route to the other's /24 through its device. Dropping the link
/// stops the forwarder (which closes both devices, removing them) and then deletes both
/// namespaces and whatever still runs in them; a panicking caller's unwinding does the same.
pub struct LossyLink {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    shared: Arc<Shared>,
    imp: Impairment,
    tuns: [String; 2],
    // Declared last: dropped after the forwarder has closed the devices.
    a: Netns,
    b: Netns,
}

impl std::fmt::Debug for LossyLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossyLink")
            .field("a", &self.a.name())
            .field("b", &self.b.name())
            .field("tuns", &self.tuns)
            .field("impairment", &self.imp)
            .finish()
    }
}

impl LossyLink {
    /// Build the namespaces (`{prefix}a-…`, `{prefix}b-…`) and devices and start
    /// forwarding under `imp`. The forwarder stops by itself after `lifetime`, so a caller
    /// that hangs cannot leave it running. Needs root and `/dev/net/tun`
    /// ([`synq_tun::unsupported`]).
    pub fn create(prefix: &str, imp: Impairment, lifetime: Duration) -> io::Result<Self> {
        imp.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let a = Netns::create(&format!("{prefix}a"))?;
        let b = Netns::create(&format!("{prefix}b"))?;
        let n = NEXT_LINK.fetch_add(1, Relaxed);
        // Unique in the root namespace, where the devices are born; at most 15 characters.
        let id = format!("{}x{}", std::process::id() % 1_000_000, n % 1000);
        let tuns = [format!("sqla{id}"), format!("sqlb{id}")];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (ta, tb) = {
            let _in = rt.enter();
            (Tun::create(&tuns[0], MTU)?, Tun::create(&tuns[1], MTU)?)
        };
        ta.move_into(&a, A_ADDR.into(), 24)?;
        tb.move_into(&b, B_ADDR.into(), 24)?;
        a.ip(&["route", "add", "10.77.1.0/24", "dev", &tuns[0]])?;
        b.ip(&["route", "add", "10.77.0.0/24", "dev", &tuns[1]])?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("synq-lossy".into())
            .spawn(move || rt.block_on(forward([ta, tb], imp, &sh, stopped, lifetime)))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            shared,
            imp,
            tuns,
            a,
            b,
        })
    }

    /// Namespace A (the sending side in the benchmark).
    pub fn a(&self) -> &Netns {
        &self.a
    }

    /// Namespace B.
    pub fn b(&self) -> &Netns {
        &self.b
    }

    /// The devices' names: A's, then B's.
    pub fn tun_names(&self) -> [&str; 2] {
        [&self.tuns[0], &self.tuns[1]]
    }

    /// The impairment in force.
    pub fn impairment(&self) -> Impairment {
        self.imp
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        Stats {
            a_to_b: self.shared.dirs[0].snapshot(),
            b_to_a: self.shared.dirs[1].snapshot(),
            expired: self.shared.expired.load(Relaxed),
        }
    }

    /// Packets each namespace's kernel dropped at its device because the forwarder had not
    /// read them yet (`tx_dropped`; the queue is [`synq_tun::TX_QUEUE_LEN`] long): losses the
    /// impairment did not choose. A's, then B's.
    pub fn queue_drops(&self) -> io::Result<[u64; 2]> {
        let read = |ns: &Netns, dev: &str| -> io::Result<u64> {
            let out = ns
                .command("cat")
                .arg(format!("/sys/class/net/{dev}/statistics/tx_dropped"))
                .output()?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|e| io::Error::other(format!("{dev} tx_dropped: {e}")))
        };
        Ok([read(&self.a, &self.tuns[0])?, read(&self.b, &self.tuns[1])?])
    }

    /// Stop forwarding, delete devices and namespaces, and return the final counts (or the
    /// forwarder's error).
    pub fn stop(mut self) -> io::Result<Stats> {
        let r = self.halt();
        r.map(|()| self.stats())
    }

    fn halt(&mut self) -> io::Result<()> {
        drop(self.stop.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the forwarder thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// The timer that releases held packets: a timerfd, because tokio's timers fire on a 1 ms
/// wheel and the reorder delay is about one path RTT, around 100 µs here.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A packet held back: when it is due, its bytes, how many copies to write.
type Held = (Instant, Vec<u8>, u8);

async fn forward(
    tuns: [Tun; 2],
    imp: Impairment,
    shared: &Shared,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    lifetime: Duration,
) -> io::Result<()> {
    // `AsyncFd::register`, which tokio now prefers, is unsafe (forbidden here); its contract
    // holds anyway: `Timer` owns the descriptor, open and unchanged for the AsyncFd's life.
    #[allow(deprecated)]
    let timer = AsyncFd::new(Timer(
        TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?,
    ))?;
    let end = tokio::time::sleep(lifetime);
    tokio::pin!(end);
    let mut rollers = [Roller::new(imp, 0), Roller::new(imp, 1)];
    let mut held: [VecDeque<Held>; 2] = Default::default();
    let mut armed: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        // Unbiased: a device that stays readable must not starve the other direction.
        tokio::select! {
            _ = &mut stop => break,
            () = &mut end => {
                shared.expired.store(true, Relaxed);
                break;
            }
            r = std::future::poll_fn(|cx| tuns[0].poll_readable(cx)) => {
                r?;
                pump(&tuns, 0, &mut rollers[0], &mut held[0], &mut buf, imp, shared)?;
            }
            r = std::future::poll_fn(|cx| tuns[1].poll_readable(cx)) => {
                r?;
                pump(&tuns, 1, &mut rollers[1], &mut held[1], &mut buf, imp, shared)?;
            }
            r = timer.readable() => {
                let mut g = r?;
                // Consume the expiry; non-blocking, so an early wake just says EAGAIN.
                let _ = g.get_inner().0.wait();
                g.clear_ready();
                armed = None;
            }
        }
        let now = Instant::now();
        for dir in 0..2 {
            while held[dir].front().is_some_and(|h| h.0 <= now) {
                let (_, p, copies) = held[dir].pop_front().expect("front exists");
                deliver(&tuns[1 - dir], &p, copies, &shared.dirs[dir]);
            }
        }
        let next = held.iter().filter_map(|q| q.front().map(|h| h.0)).min();
        if next != armed {
            match next {
                Some(t) => {
                    // A zero expiry would disarm the timer: wait at least 1 µs.
                    let wait = t
                        .saturating_duration_since(now)
                        .max(Duration::from_micros(1));
                    timer
                        .get_ref()
                        .0
                        .set(
                            Expiration::OneShot(TimeSpec::from_duration(wait)),
                            TimerSetTimeFlags::empty(),
                        )
                        .map_err(io::Error::from)?;
                }
                None => timer.get_ref().0.unset().map_err(io::Error::from)?,
            }
            armed = next;
        }
    }
    Ok(())
}

/// Read up to [`BATCH`] packets from device `dir` and send each on its way.
fn pump(
    tuns: &[Tun; 2],
    dir: usize,
    roller: &mut Roller,
    held: &mut VecDeque<Held>,
    buf: &mut [u8],
    imp: Impairment,
    shared: &Shared,
) -> io::Result<()> {
    let c = &shared.dirs[dir];
    for _ in 0..BATCH {
        let n = match tuns[dir].try_recv(buf) {
            Ok((n, _)) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        };
        let p = &buf[..n];
        if p.first().map(|b| b >> 4) != Some(4) {
            c.ignored.fetch_add(1, Relaxed);
            continue;
        }
        c.packets.fetch_add(1, Relaxed);
        match roller.roll() {
            Fate::Lost => {
                c.lost.fetch_add(1, Relaxed);
            }
            Fate::Pass { held: hold, copies } => {
                if copies > 1 {
                    c.duplicated.fetch_add(1, Relaxed);
                }
                if hold && held.len() < MAX_HELD {
                    c.reordered.fetch_add(1, Relaxed);
                    held.push_back((Instant::now() + imp.reorder_delay, p.to_vec(), copies));
                } else {
                    deliver(&tuns[1 - dir], p, copies, c);
                }
            }
        }
    }
    Ok(())
}

fn deliver(to: &Tun, p: &[u8], copies: u8, c: &Counters) {
    for _ in 0..copies {
        match to.try_send(p) {
            Ok(_) => c.delivered.fetch_add(1, Relaxed),
            Err(_) => c.write_errors.fetch_add(1, Relaxed),
        };
    }
}
