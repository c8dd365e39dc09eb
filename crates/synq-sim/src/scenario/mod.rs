//! Ready-made experiments over simulated networks of real synq stacks.

mod backlog;
mod soak;
mod transfer;
pub mod workload;

pub use backlog::{
    client_addr, flood_source, flood_source_v6, forged_ack, overflow, overflow_tapped, spoofed_syn,
    synflood, synflood_tapped, BacklogParams, BacklogReport, ClientHost, ClientsReport, Flooder,
    Host, ListenerReport, OverflowParams, ServerHost, SocketRow, SynfloodParams, LISTEN_COUNTERS,
    PORT,
};
pub use soak::{soak, SoakParams, SoakReport};
pub use transfer::{transfer, transfer_tapped, TransferParams, TransferReport};
pub use workload::{
    builtin, run, run_tapped, run_with, RunParams, RunReport, Scenario, ScenarioError, BUILTINS,
};

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Client address used by scenarios (TEST-NET-1, never routed anywhere real).
pub const CLIENT_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// Server address used by scenarios.
pub const SERVER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// IPv6 client address (documentation prefix 2001:db8::/32).
pub const CLIENT_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
/// IPv6 server address.
pub const SERVER_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

/// Derive an independent sub-seed (SplitMix64), so each stack and stream gets its own.
pub fn subseed(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
