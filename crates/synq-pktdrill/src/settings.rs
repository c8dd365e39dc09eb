//! packetdrill's command-line options (`--name=value`), from the script's header and the
//! command line (which wins).

use std::net::IpAddr;

/// Address family of the flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    /// `ipv4`.
    V4,
    /// `ipv6`.
    V6,
    /// `ipv4-mapped-ipv6`: AF_INET6 sockets, IPv4 on the wire.
    Mapped,
}

/// What the options say.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--tolerance_usecs` (4000).
    pub tolerance_usecs: u64,
    /// `--tolerance_percent` (12.5) of the scheduled gap since the previous event.
    pub tolerance_percent: f64,
    /// `--ip_version`.
    pub ip_version: IpVersion,
    /// `--local_ip` (192.168.0.1 / fd3d:a0b:17d6::1, as packetdrill's runners pin them).
    pub local_ip: Option<IpAddr>,
    /// `--remote_ip` (192.0.2.1 / fd3d:fa7b:d17d::1).
    pub remote_ip: Option<IpAddr>,
    /// `--bind_port` (8080).
    pub bind_port: u16,
    /// `--connect_port` (8080).
    pub connect_port: u16,
    /// `--mtu` (1500).
    pub mtu: u16,
    /// `--non_fatal=packet`: packet mismatches warn instead of failing.
    pub non_fatal_packet: bool,
    /// `--non_fatal=syscall`: syscall mismatches warn instead of failing.
    pub non_fatal_syscall: bool,
    /// `--tcp_ts_tick_usecs` (0: outbound TS values are not checked).
    pub tcp_ts_tick_usecs: u64,
    /// `--strict` (synq's extension): an outbound segment no line expects fails the script.
    pub strict: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tolerance_usecs: 4000,
            tolerance_percent: 12.5,
            ip_version: IpVersion::V4,
            local_ip: None,
            remote_ip: None,
            bind_port: 8080,
            connect_port: 8080,
            mtu: 1500,
            non_fatal_packet: false,
            non_fatal_syscall: false,
            tcp_ts_tick_usecs: 0,
            strict: false,
        }
    }
}

/// Options packetdrill takes that change nothing in a virtual-time run (devices, wire
/// client/server mode, speeds, init scripts run by the real tool's wrapper).
const IGNORED: &[&str] = &[
    "gateway_ip",
    "netmask_ip",
    "speed",
    "dry_run",
    "verbose",
    "wire_client",
    "wire_server",
    "wire_server_ip",
    "wire_server_port",
    "wire_client_dev",
    "wire_server_dev",
    "tun_dev",
    "persist_tun",
    "so_filename",
    "so_flags",
    "debug",
    "send_omit_free",
    "init_scripts",
    "mss",
    "ip_dont_frag",
];

impl Settings {
    /// Apply one option; `Err` names what is wrong with it.
    pub fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        let given = name;
        let name = name.replace('-', "_");
        let need = || value.ok_or_else(|| format!("--{name} needs a value"));
        let num = |v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("--{name}={v}: expected a whole number, 0 or more"))
        };
        match name.as_str() {
            "tolerance_usecs" => self.tolerance_usecs = num(need()?)?,
            "tolerance_percent" => {
                let v = need()?;
                self.tolerance_percent = v
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| format!("--tolerance_percent={v}: expected 0 to 100"))?;
            }
            "ip_version" => {
                self.ip_version = match need()? {
                    "ipv4" => IpVersion::V4,
                    "ipv6" => IpVersion::V6,
                    "ipv4_mapped_ipv6" | "ipv4-mapped-ipv6" => IpVersion::Mapped,
                    v => {
                        return Err(format!(
                            "--ip_version={v}: expected ipv4, ipv6 or ipv4-mapped-ipv6"
                        ))
                    }
                }
            }
            "local_ip" | "remote_ip" => {
                let v = need()?;
                let a: IpAddr = v
                    .parse()
                    .map_err(|_| format!("--{name}={v}: not an IP address"))?;
                if name == "local_ip" {
                    self.local_ip = Some(a);
                } else {
                    self.remote_ip = Some(a);
                }
            }
            "bind_port" | "connect_port" => {
                let v = need()?;
                let p = v
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("--{name}={v}: expected a port 1-65535"))?;
                if name == "bind_port" {
                    self.bind_port = p;
                } else {
                    self.connect_port = p;
                }
            }
            "mtu" => {
                let v = need()?;
                self.mtu = v
                    .parse::<u16>()
                    .ok()
                    .filter(|&m| m >= 576)
                    .ok_or_else(|| format!("--mtu={v}: expected 576-65535"))?;
            }
            "non_fatal" => {
                for part in need()?.split(',') {
                    match part {
                        "packet" => self.non_fatal_packet = true,
                        "syscall" => self.non_fatal_syscall = true,
                        p => {
                            return Err(format!(
                                "--non_fatal: unknown class {p:?} (packet, syscall)"
                            ))
                        }
                    }
                }
            }
            "tcp_ts_tick_usecs" => self.tcp_ts_tick_usecs = num(need()?)?,
            "strict" => self.strict = true,
            n if IGNORED.contains(&n) => {}
            _ => return Err(format!("unknown packetdrill option --{given}")),
        }
        Ok(())
    }

    /// Is the wire IPv6?
    pub fn ipv6(&self) -> bool {
        self.ip_version == IpVersion::V6
    }

    /// Our address.
    pub fn local(&self) -> IpAddr {
        self.local_ip.unwrap_or_else(|| {
            if self.ipv6() {
                IpAddr::V6(std::net::Ipv6Addr::new(
                    0xfd3d, 0x0a0b, 0x17d6, 0, 0, 0, 0, 1,
                ))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 0, 1))
            }
        })
    }

    /// The script's address.
    pub fn remote(&self) -> IpAddr {
        self.remote_ip.unwrap_or_else(|| {
            if self.ipv6() {
                IpAddr::V6(std::net::Ipv6Addr::new(
                    0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1,
                ))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1))
            }
        })
    }
}
