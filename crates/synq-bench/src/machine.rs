//! What this machine gives one core, measured the way the SYN floods use it: the limits
//! docs/PERFORMANCE.md sets the SYN rates against. Copying bytes (the bandwidth a SYN's
//! packets and state take), waiting for a load at a random address (what a new SYN does in
//! a request index larger than the caches) and the keyed hashes every SYN pays for.

use core::hash::Hasher;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use siphasher::sip::{SipHasher13, SipHasher24};
use std::hint::black_box;
use std::time::{Duration as Wall, Instant as WallInstant};

/// Bytes each copy buffer holds: four times this machine's 32 MiB last-level cache.
const COPY_BYTES: usize = 128 << 20;
/// The cookies-off flood's request index at 2^20 requests: 2^21 four-byte words.
const INDEX_BYTES: usize = 8 << 20;
/// Far beyond the last-level cache (and the reach of the TLB).
const FAR_BYTES: usize = 256 << 20;
/// A cache line: the chase reads one word per line, as a probe of the index does.
const LINE: usize = 64;

/// The figures, each per one core.
pub(crate) struct Limits {
    /// Bytes copied per second between two buffers larger than the caches.
    pub(crate) copy_bytes_per_sec: f64,
    /// Nanoseconds per load whose address the previous load gave, at random over 8 MiB.
    pub(crate) load_ns_index: f64,
    /// The same over 256 MiB.
    pub(crate) load_ns_far: f64,
    /// Nanoseconds per keyed SipHash-2-4 of 12 bytes (an IPv4 4-tuple: the ISN's and the
    /// timestamp offset's hash).
    pub(crate) siphash24_12_ns: f64,
    /// SipHash-2-4 of 16 bytes (a 4-tuple and a counter: a SYN cookie's hash).
    pub(crate) siphash24_16_ns: f64,
    /// SipHash-1-3 of 16 bytes (the connection and request indexes).
    pub(crate) siphash13_16_ns: f64,
}

impl Limits {
    pub(crate) fn json(&self) -> Value {
        let r = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "machine_copy_bytes_per_sec": self.copy_bytes_per_sec.round(),
            "machine_load_ns_8mib": r(self.load_ns_index),
            "machine_load_ns_256mib": r(self.load_ns_far),
            "siphash24_12b_ns": r(self.siphash24_12_ns),
            "siphash24_16b_ns": r(self.siphash24_16_ns),
            "siphash13_16b_ns": r(self.siphash13_16_ns),
        })
    }

    pub(crate) fn line(&self) -> String {
        line_of(&self.json())
    }
}

/// The limits' line from their JSON keys in `v` (one run's, or the medians of several).
pub(crate) fn line_of(v: &Value) -> String {
    let f = |key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    format!(
        "machine, one core: copy {:.1} GB/s; a dependent load at random {:.1} ns over 8 MiB, \
         {:.1} ns over 256 MiB; SipHash-2-4 {:.1} ns (12 bytes), {:.1} ns (16 bytes), \
         SipHash-1-3 {:.1} ns (16 bytes)",
        f("machine_copy_bytes_per_sec") / 1e9,
        f("machine_load_ns_8mib"),
        f("machine_load_ns_256mib"),
        f("siphash24_12b_ns"),
        f("siphash24_16b_ns"),
        f("siphash13_16b_ns")
    )
}

/// Every figure, each measured for about a sixth of `secs` (each at least once).
pub(crate) fn measure(secs: f64) -> Limits {
    let part = Wall::from_secs_f64(secs / 6.0);
    Limits {
        copy_bytes_per_sec: copy_rate(part),
        load_ns_index: load_ns(INDEX_BYTES, part),
        load_ns_far: load_ns(FAR_BYTES, part),
        siphash24_12_ns: hash_ns(part, |k, x| {
            let mut h = SipHasher24::new_with_keys(k, !k);
            h.write_u64(x);
            h.write_u32(x as u32);
            h.finish()
        }),
        siphash24_16_ns: hash_ns(part, |k, x| {
            let mut h = SipHasher24::new_with_keys(k, !k);
            h.write_u64(x);
            h.write_u64(x.rotate_left(17));
            h.finish()
        }),
        siphash13_16_ns: hash_ns(part, |k, x| {
            let mut h = SipHasher13::new_with_keys(k, !k);
            h.write_u64(x);
            h.write_u64(x.rotate_left(17));
            h.finish()
        }),
    }
}

/// Bytes copied per second from one buffer to another, both written first so that no
/// page is faulted in while timed.
fn copy_rate(part: Wall) -> f64 {
    let src = vec![0x5au8; COPY_BYTES];
    let mut dst = vec![0xa5u8; COPY_BYTES];
    let start = WallInstant::now();
    let mut copies = 0u64;
    while copies == 0 || start.elapsed() < part {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        copies += 1;
    }
    (copies * COPY_BYTES as u64) as f64 / start.elapsed().as_secs_f64()
}

/// Nanoseconds per load over `bytes`: one word per cache line, the lines linked in one
/// cycle in a seeded random order, each load's address the value of the last.
fn load_ns(bytes: usize, part: Wall) -> f64 {
    let per = LINE / size_of::<u32>();
    let lines = bytes / LINE;
    let mut next = vec![0u32; bytes / size_of::<u32>()];
    let mut order: Vec<u32> = (0..lines as u32).collect();
    order.shuffle(&mut StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15));
    // Line `order[k]` leads to line `order[k + 1]`: one cycle through every line.
    for (k, &line) in order.iter().enumerate() {
        next[line as usize * per] = order[(k + 1) % lines] * per as u32;
    }
    drop(order);
    // One untimed pass first: every line once, so the timed loads find the caches and the
    // page tables as a flood that has run a while does.
    let mut at = 0u32;
    for _ in 0..lines {
        at = next[at as usize];
    }
    let steps = lines.min(1 << 20);
    let start = WallInstant::now();
    let mut loads = 0u64;
    while loads == 0 || start.elapsed() < part {
        for _ in 0..steps {
            at = next[at as usize];
        }
        loads += steps as u64;
    }
    black_box(at);
    start.elapsed().as_secs_f64() * 1e9 / loads as f64
}

/// Nanoseconds per hash, the hashes independent of one another (as a flood's SYNs are).
fn hash_ns(part: Wall, hash: impl Fn(u64, u64) -> u64) -> f64 {
    let key = black_box(0x0123_4567_89ab_cdefu64);
    let start = WallInstant::now();
    let (mut n, mut acc) = (0u64, 0u64);
    while n == 0 || start.elapsed() < part {
        for i in 0..100_000u64 {
            acc = acc.wrapping_add(hash(key, n + i));
        }
        n += 100_000;
    }
    black_box(acc);
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}
