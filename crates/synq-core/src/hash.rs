//! Seeded hashing: maps keyed by peer-controlled tuples use SipHash with a key from the
//! stack's seed, so iteration is deterministic and collisions cannot be precomputed.

use core::hash::BuildHasher;
use core::net::{IpAddr, SocketAddr};
use siphasher::sip::{SipHasher13, SipHasher24};

/// A `BuildHasher` with an explicit key (never the OS's randomness).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }
}

impl BuildHasher for SeededState {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, SeededState>;

/// A connection's identity, from this stack's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// Keyed 128-bit SipHash-2-4 secret, used for ISNs and timestamp offsets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Secret {
    k0: u64,
    k1: u64,
}

impl Secret {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// SipHash-2-4 of the 4-tuple (addresses then ports) plus `extra`.
    pub(crate) fn hash_tuple(&self, t: &FourTuple, extra: u32) -> u64 {
        use core::hash::Hasher;
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        let mut addr = |a: IpAddr| match a {
            IpAddr::V4(v) => h.write(&v.octets()),
            IpAddr::V6(v) => h.write(&v.octets()),
        };
        addr(t.local.ip());
        addr(t.remote.ip());
        h.write_u16(t.local.port());
        h.write_u16(t.remote.port());
        h.write_u32(extra);
        h.finish()
    }
}
