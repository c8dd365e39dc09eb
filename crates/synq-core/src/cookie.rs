//! SYN cookies in Linux's encoding (`net/ipv4/syncookies.c`): a stateless ISS that carries
//! the client's MSS index and, when the SYN had timestamps, its wscale and SACK in the low
//! bits of our TSval.

use crate::hash::{FourTuple, Secret};
use crate::Instant;

/// Linux `COOKIEBITS`: the low 24 bits carry hash + MSS index, the top 8 the minute counter.
const COOKIEBITS: u32 = 24;
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// Linux `MAX_SYNCOOKIE_AGE`: a cookie is valid in the minute it was made and the next.
pub(crate) const MAX_AGE: u32 = 2;
/// Linux `TCP_SYNCOOKIE_PERIOD`, in seconds.
const PERIOD_SECS: u64 = 60;

/// MSS values a cookie can carry (Linux `msstab`, IPv4 and IPv6).
const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// TSval option bits (Linux `TS_OPT_*`).
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TSBITS: u32 = 6;

/// The two cookie keys (Linux `syncookie_secret[2]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CookieKeys {
    pub(crate) k0: Secret,
    pub(crate) k1: Secret,
}

/// Linux `tcp_cookie_time`: minutes since boot.
fn count(now: Instant) -> u32 {
    (now.total_micros() / 1_000_000 / PERIOD_SECS) as u32
}

fn table(tuple: &FourTuple) -> &'static [u16; 4] {
    if tuple.local.is_ipv4() {
        &MSS_V4
    } else {
        &MSS_V6
    }
}

/// The MSS a cookie will carry for a client MSS: the largest table entry not above it
/// (index 0 when none is). Linux `__cookie_v4_init_sequence`.
pub(crate) fn encode_mss(tuple: &FourTuple, client_mss: u16) -> (u32, u16) {
    let t = table(tuple);
    let idx = (1..t.len())
        .rev()
        .find(|&i| client_mss >= t[i])
        .unwrap_or(0);
    (idx as u32, t[idx])
}

impl CookieKeys {
    fn h(&self, tuple: &FourTuple, c: u32, which: u8) -> u32 {
        let k = if which == 0 { &self.k0 } else { &self.k1 };
        k.hash_tuple(tuple, c) as u32
    }

    /// The ISS for a SYN with sequence number `client_isn` and MSS index `mss_idx`.
    pub(crate) fn make(
        &self,
        tuple: &FourTuple,
        client_isn: u32,
        mss_idx: u32,
        now: Instant,
    ) -> u32 {
        let c = count(now);
        self.h(tuple, 0, 0)
            .wrapping_add(client_isn)
            .wrapping_add(c << COOKIEBITS)
            .wrapping_add(self.h(tuple, c, 1).wrapping_add(mss_idx) & COOKIEMASK)
    }

    /// Validate the ACK of a cookie SYN-ACK (`ack - 1` is the cookie, `seq - 1` the client's
    /// ISN): the MSS the connection uses, or `None`. Linux `__cookie_v4_check`.
    pub(crate) fn check(&self, tuple: &FourTuple, seq: u32, ack: u32, now: Instant) -> Option<u16> {
        let c = count(now);
        let cookie = ack
            .wrapping_sub(1)
            .wrapping_sub(self.h(tuple, 0, 0).wrapping_add(seq.wrapping_sub(1)));
        let age = c.wrapping_sub(cookie >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
        if age >= MAX_AGE {
            return None;
        }
        let idx = cookie.wrapping_sub(self.h(tuple, c.wrapping_sub(age), 1)) & COOKIEMASK;
        table(tuple).get(idx as usize).copied()
    }
}

/// Options a cookie carries in the TSval (Linux `cookie_init_timestamp`): the SYN-ACK's
/// TSval before the per-peer offset is added.
pub(crate) fn timestamp(now_ms: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let mut options = wscale.map_or(TS_WSCALE_MASK, |w| u32::from(w) & TS_WSCALE_MASK);
    if sack {
        options |= TS_SACK;
    }
    let ts = (now_ms >> TSBITS << TSBITS) | options;
    if ts > now_ms {
        ts.wrapping_sub(1 << TSBITS)
    } else {
        ts
    }
}

/// Options recovered from an echoed TSval (already less the offset): (wscale, SACK).
/// Linux `cookie_timestamp_decode`, including its refusals when a feature is now off.
pub(crate) fn decode_timestamp(
    tsecr: u32,
    sack_enabled: bool,
    wscale_enabled: bool,
) -> Option<(Option<u8>, bool)> {
    let sack = tsecr & TS_SACK != 0;
    if sack && !sack_enabled {
        return None;
    }
    if tsecr & TS_WSCALE_MASK == TS_WSCALE_MASK {
        return Some((None, sack));
    }
    if !wscale_enabled {
        return None;
    }
    Some((Some((tsecr & TS_WSCALE_MASK) as u8), sack))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::util::XorShift32;
    use crate::Duration;

    fn tuple() -> FourTuple {
        FourTuple {
            local: "10.0.0.1:80".parse().unwrap(),
            remote: "10.0.0.2:40000".parse().unwrap(),
        }
    }

    fn keys() -> CookieKeys {
        CookieKeys {
            k0: Secret::new(1, 2),
            k1: Secret::new(3, 4),
        }
    }

    #[test]
    fn mss_table_rounds_down() {
        let t = tuple();
        assert_eq!(encode_mss(&t, 1460), (3, 1460));
        assert_eq!(encode_mss(&t, 1400), (1, 1300));
        assert_eq!(encode_mss(&t, 9000), (3, 1460));
        assert_eq!(encode_mss(&t, 100), (0, 536));
        let v6 = FourTuple {
            local: "[2001:db8::2]:80".parse().unwrap(),
            remote: "[2001:db8::1]:40000".parse().unwrap(),
        };
        assert_eq!(encode_mss(&v6, 1440), (2, 1440));
        assert_eq!(encode_mss(&v6, 1400), (0, 1220));
        assert_eq!(encode_mss(&v6, 9000), (3, 8940));
        let k = keys();
        let now = Instant::from_secs(600);
        let iss = k.make(&v6, 77, 2, now);
        assert_eq!(k.check(&v6, 78, iss.wrapping_add(1), now), Some(1440));
    }

    #[test]
    fn round_trip_and_age() {
        let (k, t) = (keys(), tuple());
        let t0 = Instant::from_secs(3600);
        for idx in 0..4 {
            let iss = k.make(&t, 1000, idx, t0);
            let mss = MSS_V4[idx as usize];
            // Valid in its minute and the next, not after.
            for (dt, ok) in [(0, true), (59, true), (60, true), (119, true), (120, false)] {
                let now = t0 + Duration::from_secs(dt);
                let got = k.check(&t, 1001, iss.wrapping_add(1), now);
                assert_eq!(got, ok.then_some(mss), "idx {idx} at +{dt}s");
            }
        }
    }

    #[test]
    fn tampering_fails() {
        let (k, t) = (keys(), tuple());
        let now = Instant::from_secs(7200);
        let iss = k.make(&t, 5, 3, now);
        assert!(k.check(&t, 6, iss.wrapping_add(1), now).is_some());
        // Linux's cookie is additive: the check is only the age and MSS-index ranges, so
        // small deltas can pass. Unrelated values (a forged ACK, another peer) fail.
        let mut rng = XorShift32(0x9e37_79b9);
        let mut passed = 0;
        for _ in 0..10_000 {
            passed += usize::from(k.check(&t, 6, rng.next_u32(), now).is_some());
        }
        assert_eq!(passed, 0);
        let mut other = t;
        other.remote.set_port(40001);
        assert_eq!(k.check(&other, 6, iss.wrapping_add(1), now), None);
    }

    #[test]
    fn timestamp_carries_options() {
        for now_ms in [0u32, 63, 64, 1000, 123_456_789] {
            let ts = timestamp(now_ms, Some(7), true);
            assert!(ts <= now_ms || now_ms < 64);
            assert_eq!(decode_timestamp(ts, true, true), Some((Some(7), true)));
            let ts = timestamp(now_ms, None, false);
            assert_eq!(decode_timestamp(ts, true, true), Some((None, false)));
        }
        // A feature turned off since the SYN: refused.
        assert_eq!(
            decode_timestamp(timestamp(5000, Some(2), true), false, true),
            None
        );
        assert_eq!(
            decode_timestamp(timestamp(5000, Some(2), false), true, false),
            None
        );
    }
}
