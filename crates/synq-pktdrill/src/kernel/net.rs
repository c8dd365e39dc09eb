//! The TUN device that is the script's wire, and the namespace's link set up around it.

use crate::settings::Settings;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration as StdDuration;
use synq_core::wire::checksum;
use synq_tun::Netns;

use super::{F_NEEDS_CSUM, VNET_HDR};

/// A TUN device with segmentation offload where the kernel allows it (a large write then
/// leaves as one super-segment, as packetdrill scripts expect).
pub(super) struct Tunnel {
    dev: tun_rs::SyncDevice,
    offload: bool,
}

impl Tunnel {
    pub(super) fn create(name: &str, mtu: u16) -> io::Result<Self> {
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(name)
                .mtu(mtu)
                .packet_information(false)
                .tx_queue_len(synq_tun::TX_QUEUE_LEN)
                .offload(offload)
                .enable(false)
                .build_sync()
        };
        let (dev, offload) = match build(true) {
            Ok(d) => (d, true),
            Err(_) => (build(false)?, false),
        };
        dev.set_nonblocking(true)?;
        Ok(Self { dev, offload })
    }

    /// Wait until a packet is readable or `d` has passed (to the microsecond).
    pub(super) fn wait(&self, d: StdDuration) {
        use nix::poll::{ppoll, PollFd, PollFlags};
        let mut fds = [PollFd::new(self.dev.as_fd(), PollFlags::POLLIN)];
        // EINTR or an error: the caller's loop looks at the clock and tries again.
        let _ = ppoll(&mut fds, Some(d.into()), None);
    }

    /// One packet, with its TCP checksum filled in when the kernel left it to offload.
    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = if self.offload {
            let mut hdr = [0u8; VNET_HDR];
            self.dev
                .recv_vectored(&mut [IoSliceMut::new(&mut hdr), IoSliceMut::new(buf)])
                .map(|n| {
                    let n = n.saturating_sub(VNET_HDR);
                    if hdr[0] & F_NEEDS_CSUM != 0 {
                        fill_tcp_checksum(&mut buf[..n]);
                    }
                    n
                })
        } else {
            self.dev.recv(buf)
        };
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn send(&self, packet: &[u8]) -> io::Result<usize> {
        if self.offload {
            let hdr = [0u8; VNET_HDR];
            let n = self
                .dev
                .send_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])?;
            Ok(n.saturating_sub(VNET_HDR))
        } else {
            self.dev.send(packet)
        }
    }
}

/// Where a packet's TCP header starts, and its addresses, if it is TCP over IPv4 or IPv6.
pub(super) fn tcp_part(b: &[u8]) -> Option<(usize, IpAddr, IpAddr)> {
    match b.first()? >> 4 {
        4 if b.len() >= 20 && b[9] == 6 => {
            let ihl = usize::from(b[0] & 15) * 4;
            let s: [u8; 4] = b[12..16].try_into().ok()?;
            let d: [u8; 4] = b[16..20].try_into().ok()?;
            (b.len() >= ihl + 20).then_some((ihl, s.into(), d.into()))
        }
        6 if b.len() >= 60 && b[6] == 6 => {
            let s: [u8; 16] = b[8..24].try_into().ok()?;
            let d: [u8; 16] = b[24..40].try_into().ok()?;
            Some((40, s.into(), d.into()))
        }
        _ => None,
    }
}

pub(super) fn fill_tcp_checksum(b: &mut [u8]) {
    let Some((off, src, dst)) = tcp_part(b) else {
        return;
    };
    let t = &mut b[off..];
    t[16] = 0;
    t[17] = 0;
    let sum = checksum::sum(t, checksum::pseudo_header(&src, &dst, 6, t.len() as u32));
    t[16..18].copy_from_slice(&checksum::fold(sum).to_be_bytes());
}

/// Move the device into the namespace as `tun0`, with the script's local address and a
/// route to everything else (the remote address included) through it.
pub(super) fn setup_link(ns: &Netns, name: &str, set: &Settings) -> io::Result<()> {
    let out = Command::new("ip")
        .args(["link", "set", "dev", name, "netns", ns.name()])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip link set {name} netns: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    ns.ip(&["link", "set", "dev", name, "name", "tun0"])?;
    let local = set.local();
    if local.is_ipv6() {
        // No duplicate address detection: the address is usable at once.
        ns.ip(&[
            "addr",
            "add",
            &format!("{local}/48"),
            "dev",
            "tun0",
            "nodad",
        ])?;
    } else {
        ns.ip(&["addr", "add", &format!("{local}/16"), "dev", "tun0"])?;
    }
    ns.ip(&["link", "set", "dev", "tun0", "up"])?;
    let remote = set.remote();
    let host = if remote.is_ipv6() { "128" } else { "32" };
    ns.ip(&[
        "route",
        "replace",
        &format!("{remote}/{host}"),
        "dev",
        "tun0",
    ])?;
    let family = if remote.is_ipv6() { "-6" } else { "-4" };
    ns.ip(&[family, "route", "replace", "default", "dev", "tun0"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offload_checksum_is_filled() {
        let p = crate::ast::Packet {
            dir: crate::ast::Dir::Out,
            ports: None,
            ip: Default::default(),
            flags: crate::ast::flag::ACK,
            seq: 1,
            len: 10,
            ack: Some(1),
            win: Some(100),
            urg: None,
            options: None,
        };
        let src: IpAddr = "192.168.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let dst: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut b = crate::pkt::build(src, dst, 8080, 48000, &p, 1, 1, &[]);
        b[36] ^= 0xff;
        fill_tcp_checksum(&mut b);
        assert!(crate::pkt::decode(&b).is_some_and(|s| s.csum_ok));
    }
}
