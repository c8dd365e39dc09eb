//! # synq-tun: packet I/O for synq on Linux
//!
//! [`Tun`] is a Linux TUN device (`IFF_TUN | IFF_NO_PI`: whole IPv4 and IPv6 packets, no
//! header in front) registered with tokio, read and written without blocking so a driver can
//! drain every readable packet before it polls the stack. [`Netns`] makes a private network
//! namespace for tests and examples and deletes it on drop, also when a test panics.
//!
//! The usual arrangement: the process stays where it is, creates the TUN device, and
//! [`Tun::move_into`] hands the interface to a namespace. The file descriptor keeps working,
//! so the kernel's own programs run inside the namespace (`ip netns exec`) and reach the
//! userspace stack through the device, while nothing outside the namespace sees either.
//!
//! [`Tun::create_queues`] opens a multi-queue device (`IFF_MULTI_QUEUE`): one descriptor per
//! queue, the kernel spreading flows over them by their hash, each [`TunQueue`] handed to
//! the thread (and tokio runtime) that will drive it.
//!
//! Everything here needs root (`CAP_NET_ADMIN`) and `/dev/net/tun`; [`unsupported`] says
//! in one line why not, where it cannot work.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

/// Why TUN devices and namespaces cannot be used here (not root, no `/dev/net/tun`, no `ip`),
/// or `None` when they can.
pub fn unsupported() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.is_none_or(|o| String::from_utf8_lossy(&o.stdout).trim() != "0") {
        return Some("needs root (CAP_NET_ADMIN) for TUN devices and namespaces".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    if Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Some("`ip` (iproute2) not found".into());
    }
    None
}

/// A TUN device: one IP packet per read or write. Closing it (drop) removes the interface.
pub struct Tun {
    dev: tun_rs::AsyncDevice,
    name: String,
    offload: bool,
}

/// Packets the kernel queues toward this process. Linux's default for TUN is 500, which
/// drops the opening bursts of a few hundred connections (initial window 10 each) that a
/// batch reader would take a moment later; losses then wait for retransmission timeouts.
pub const TX_QUEUE_LEN: u32 = 10_000;

/// Length of the `virtio_net_hdr` in front of every packet of an offload device.
const VNET_HDR: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the local kernel left the checksum for offload to fill.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_TCPV4` and `_TCPV6`.
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).finish()
    }
}

impl Tun {
    /// Create the TUN device `name` in the current network namespace, with no address and
    /// down. Needs a tokio runtime (the fd is registered with its reactor).
    pub fn create(name: &str, mtu: u16) -> io::Result<Self> {
        Self::open(name, mtu, false)
    }

    /// As [`Tun::create`], with TCP segmentation and checksum offload (`IFF_VNET_HDR`,
    /// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`): the kernel hands over TCP segments of up to
    /// 64 KB with the checksum left unfilled, so one read carries what would take up to 44
    /// reads at MTU 1500. Packets this side writes are never segmented by the kernel.
    pub fn create_offload(name: &str, mtu: u16) -> io::Result<Self> {
        Self::open(name, mtu, true)
    }

    fn open(name: &str, mtu: u16, offload: bool) -> io::Result<Self> {
        let dev = builder(name, mtu, offload)?.build_async()?;
        Ok(Self {
            dev,
            name: name.to_string(),
            offload,
        })
    }

    /// Create `name` with `queues` queues (`IFF_MULTI_QUEUE`, at most [`MAX_QUEUES`]): one
    /// descriptor each, every one a device of its own to read and write, for a thread each.
    /// The kernel picks a packet's queue by its flow hash (a flow stays on the queue that
    /// last wrote a packet of it, see `tun_automq_select_queue`). With `offload`, every
    /// queue has it. The interface goes when the last queue closes. Needs no runtime: each
    /// queue joins one with [`TunQueue::into_tun`].
    pub fn create_queues(
        name: &str,
        mtu: u16,
        offload: bool,
        queues: usize,
    ) -> io::Result<Vec<TunQueue>> {
        if !(1..=MAX_QUEUES).contains(&queues) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{queues} queues: a TUN device has 1 to {MAX_QUEUES}"),
            ));
        }
        let first = builder(name, mtu, offload)?
            .multi_queue(true)
            .build_sync()?;
        let mut devs = Vec::with_capacity(queues);
        for _ in 1..queues {
            devs.push(first.try_clone()?);
        }
        devs.insert(0, first);
        Ok(devs
            .into_iter()
            .map(|dev| TunQueue {
                dev,
                name: name.to_string(),
                offload,
            })
            .collect())
    }

    /// As [`Tun::create_queues`], and give the kernel side `host/prefix`, up (what
    /// `synq serve --threads N` does).
    pub fn create_queues_with_address(
        name: &str,
        mtu: u16,
        offload: bool,
        queues: usize,
        host: IpAddr,
        prefix: u8,
    ) -> io::Result<Vec<TunQueue>> {
        let q = Self::create_queues(name, mtu, offload, queues)?;
        address_up(name, host, prefix)?;
        Ok(q)
    }

    /// Create `name` and give the kernel side `host/prefix`, up: what `synq serve` does. The
    /// userspace stack then answers for other addresses of that subnet.
    pub fn create_with_address(
        name: &str,
        mtu: u16,
        offload: bool,
        host: IpAddr,
        prefix: u8,
    ) -> io::Result<Self> {
        let tun = Self::open(name, mtu, offload)?;
        address_up(name, host, prefix)?;
        Ok(tun)
    }

    /// Move the interface into `ns` and configure it there: the kernel side gets
    /// `host/prefix`, the device and the namespace's loopback come up. The descriptor stays
    /// with this process.
    pub fn move_into(&self, ns: &Netns, host: IpAddr, prefix: u8) -> io::Result<()> {
        move_link(&self.name, ns, host, prefix)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ready when a packet may be readable (it may be a false positive: `try_recv` then says
    /// `WouldBlock` and clears the readiness).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.dev.poll_readable(cx)
    }

    /// Ready when a write may succeed.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.dev.poll_writable(cx)
    }

    /// Whether the device was made with offload ([`Tun::create_offload`]).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// One packet into `buf` (65535 bytes holds any), or `WouldBlock`: its length, and
    /// whether the kernel vouched for its transport checksum (offload devices only).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        if !self.offload {
            return self.dev.try_recv(buf).map(|n| (n, false));
        }
        let mut hdr = [0u8; VNET_HDR];
        let n = self
            .dev
            .try_recv_vectored(&mut [IoSliceMut::new(&mut hdr), IoSliceMut::new(buf)])?;
        let len = n.checked_sub(VNET_HDR).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "read shorter than virtio_net_hdr",
            )
        })?;
        Ok((len, hdr[0] & (F_NEEDS_CSUM | F_DATA_VALID) != 0))
    }

    /// Write one TCP super-segment for the kernel to cut into `mss`-byte segments (offload
    /// devices only): `l3_len` and `l4_len` are its IP and TCP header lengths, and its TCP
    /// checksum field holds the pseudo-header sum (the kernel fills each segment's checksum).
    pub fn try_send_tso(
        &self,
        packet: &[u8],
        mss: u16,
        l3_len: u16,
        l4_len: u16,
        ipv6: bool,
    ) -> io::Result<usize> {
        if !self.offload {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "segmentation offload needs an offload device",
            ));
        }
        let mut hdr = [0u8; VNET_HDR];
        hdr[0] = F_NEEDS_CSUM;
        hdr[1] = if ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
        hdr[2..4].copy_from_slice(&(l3_len + l4_len).to_le_bytes());
        hdr[4..6].copy_from_slice(&mss.to_le_bytes());
        hdr[6..8].copy_from_slice(&l3_len.to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes()); // TCP checksum offset
        let n = self
            .dev
            .try_send_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])?;
        Ok(n.saturating_sub(VNET_HDR))
    }

    /// Write one packet (checksums complete, no segmentation asked), or `WouldBlock`.
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        if !self.offload {
            return self.dev.try_send(packet);
        }
        let hdr = [0u8; VNET_HDR];
        let n = self
            .dev
            .try_send_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])?;
        Ok(n.saturating_sub(VNET_HDR))
    }
}

/// Most queues a TUN device takes (Linux `MAX_TAP_QUEUES`).
pub const MAX_QUEUES: usize = 256;

/// One queue of a multi-queue TUN device ([`Tun::create_queues`]), not yet registered with
/// a tokio runtime, so it can move to the thread whose runtime will drive it.
pub struct TunQueue {
    dev: tun_rs::SyncDevice,
    name: String,
    offload: bool,
}

impl std::fmt::Debug for TunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunQueue")
            .field("name", &self.name)
            .finish()
    }
}

impl TunQueue {
    /// The queue as a [`Tun`], registered with the current tokio runtime (fails outside
    /// one).
    pub fn into_tun(self) -> io::Result<Tun> {
        Ok(Tun {
            dev: tun_rs::AsyncDevice::new(self.dev)?,
            name: self.name,
            offload: self.offload,
        })
    }

    /// The interface name (every queue of a device has the same).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// As [`Tun::move_into`]: the interface (with every queue) moves into `ns`.
    pub fn move_into(&self, ns: &Netns, host: IpAddr, prefix: u8) -> io::Result<()> {
        move_link(&self.name, ns, host, prefix)
    }
}

/// The device settings every TUN of ours has: raw IP, our queue length, down until
/// configured.
fn builder(name: &str, mtu: u16, offload: bool) -> io::Result<tun_rs::DeviceBuilder> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?} (1 to 15 characters, no '/' or space)"),
        ));
    }
    Ok(tun_rs::DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .packet_information(false)
        .tx_queue_len(TX_QUEUE_LEN)
        .offload(offload)
        .enable(false))
}

/// Give the kernel side of `name` `host/prefix` and bring it up, in this namespace.
fn address_up(name: &str, host: IpAddr, prefix: u8) -> io::Result<()> {
    ip(
        None,
        &["addr", "add", &format!("{host}/{prefix}"), "dev", name],
    )?;
    ip(None, &["link", "set", "dev", name, "up"])
}

/// Move interface `name` into `ns`, give it `host/prefix` there and bring it and the
/// namespace's loopback up.
fn move_link(name: &str, ns: &Netns, host: IpAddr, prefix: u8) -> io::Result<()> {
    ip(None, &["link", "set", "dev", name, "netns", ns.name()])?;
    let n = Some(ns);
    ip(
        n,
        &["addr", "add", &format!("{host}/{prefix}"), "dev", name],
    )?;
    ip(n, &["link", "set", "dev", name, "up"])?;
    ip(n, &["link", "set", "dev", "lo", "up"])?;
    Ok(())
}

/// A network namespace of our own (`ip netns add`), deleted with everything in it on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// A new, empty namespace named `{prefix}-{pid}-{n}` (unique in this process, and across
    /// processes by the pid). Its loopback is brought up.
    pub fn create(prefix: &str) -> io::Result<Self> {
        let n = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ip(Some(&ns), &["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Set a sysctl inside the namespace (`net.*` knobs are per namespace).
    pub fn sysctl(&self, name: &str, value: &str) -> io::Result<()> {
        run_ok(
            self.command("sysctl")
                .args(["-q", "-w", &format!("{name}={value}")]),
        )
        .map(drop)
    }

    /// Run `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        ip(Some(self), args)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside (a server a failed test left), then delete.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether a namespace of that name exists (`ip netns list`).
pub fn netns_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name))
        })
}

/// Whether an interface of that name exists in the current namespace.
pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip(ns: Option<&Netns>, args: &[&str]) -> io::Result<()> {
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns.name()]);
    }
    run_ok(c.args(args)).map(drop)
}

fn run_ok(c: &mut Command) -> io::Result<Output> {
    let out = c.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{:?} failed: {}",
            c,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
