//! The host-wide budget of RFC 5961 challenge ACKs (Linux `tcp_send_challenge_ack`, per
//! network namespace): `tcp_challenge_ack_limit` a second, drawn at random each second
//! between half the limit and one and a half times it, so an off-path attacker cannot count
//! the budget down to learn when a guess was in the window (CVE-2016-5696). `INT_MAX`, the
//! default since Linux 6.0, turns the budget off and leaves the per-connection limit.

use crate::Instant;

#[derive(Debug)]
pub(crate) struct ChallengeBudget {
    /// The second (since the clock's zero) the count belongs to.
    second: Option<u64>,
    count: u32,
    /// splitmix64 state: the draw only has to be unknown to the peer.
    rng: u64,
}

impl ChallengeBudget {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            second: None,
            count: 0,
            rng: seed,
        }
    }

    /// Shard `shard`'s own draws: the state jumps by a mixed shard index, so shards of one
    /// seed start far apart on splitmix64's cycle instead of one draw apart.
    pub(crate) fn set_stream(&mut self, shard: u32) {
        let mut jump = Self::new(u64::from(shard));
        self.rng ^= jump.next();
    }

    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// May one more challenge ACK leave at `now` under `limit`? Linux's arithmetic, in
    /// `u32` with its wrap-arounds (a limit of 0 draws from the whole `u32` range).
    pub(crate) fn take(&mut self, now: Instant, limit: i32) -> bool {
        if limit == i32::MAX {
            return true;
        }
        let limit = limit as u32;
        let second = now.total_micros() / 1_000_000;
        if self.second != Some(second) {
            self.second = Some(second);
            let half = limit.wrapping_add(1) >> 1;
            let span = u64::from(limit.wrapping_add(half).wrapping_sub(1).wrapping_sub(half)) + 1;
            self.count = half.wrapping_add((self.next() % span) as u32);
        }
        if self.count == 0 {
            return false;
        }
        self.count -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::ChallengeBudget;
    use crate::{Duration, Instant};

    fn per_second(b: &mut ChallengeBudget, s: u64, limit: i32) -> u32 {
        let t = Instant::ZERO + Duration::from_secs(s);
        (0..10_000).filter(|_| b.take(t, limit)).count() as u32
    }

    #[test]
    fn between_half_and_one_and_a_half_times_the_limit_each_second() {
        let mut b = ChallengeBudget::new(7);
        let counts: Vec<u32> = (0..50).map(|s| per_second(&mut b, s, 1000)).collect();
        assert!(
            counts.iter().all(|&c| (500..=1499).contains(&c)),
            "{counts:?}"
        );
        // Random, not a constant an attacker could count down.
        let first = counts[0];
        assert!(counts.iter().any(|&c| c != first), "{counts:?}");
        // A limit of one: exactly one a second.
        assert_eq!(per_second(&mut b, 60, 1), 1);
        assert_eq!(per_second(&mut b, 61, 1), 1);
    }

    #[test]
    fn shards_of_one_seed_draw_apart() {
        let budgets = |shard: u32| {
            let mut b = ChallengeBudget::new(7);
            if shard != 0 {
                b.set_stream(shard);
            }
            (0..20)
                .map(|s| per_second(&mut b, s, 1000))
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (budgets(0), budgets(1), budgets(2));
        assert!(a != b && b != c && a != c, "{a:?} {b:?} {c:?}");
        // Not one draw apart: shard 1's budgets are not shard 0's shifted by a second.
        assert_ne!(a[1..], b[..19]);
        assert_ne!(b[1..], a[..19]);
    }

    #[test]
    fn int_max_is_no_limit() {
        let mut b = ChallengeBudget::new(1);
        assert_eq!(per_second(&mut b, 0, i32::MAX), 10_000);
    }
}
