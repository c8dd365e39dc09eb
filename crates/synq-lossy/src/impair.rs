//! What happens to each packet: the seeded rolls, with no I/O, so they can be tested and
//! replayed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Per-packet impairment, the same in both directions (each direction rolls its own
/// seeded generator).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairment {
    /// Probability a packet is dropped.
    pub loss: f64,
    /// Probability a packet that survived is held back by `reorder_delay`, so packets
    /// behind it overtake it.
    pub reorder: f64,
    /// Probability a packet that survived is delivered twice (the copy right after it).
    pub duplicate: f64,
    /// How long a reordered packet is held back. `synq sim transfer` holds one path RTT,
    /// and the benchmark does the same with the RTT it measured.
    pub reorder_delay: Duration,
    /// Seed of both directions' generators.
    pub seed: u64,
}

impl Impairment {
    /// A clean link: every packet passes once, in order.
    pub fn none() -> Self {
        Self {
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            reorder_delay: Duration::ZERO,
            seed: 0,
        }
    }

    /// Check that the probabilities are in `[0, 1]` (NaN is not).
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability in [0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// What one packet gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped.
    Lost,
    /// Delivered: `held` says whether after the reorder delay, `copies` is 1 or 2.
    Pass {
        /// Held back by the reorder delay.
        held: bool,
        /// Delivered this many times (2: duplicated).
        copies: u8,
    },
}

/// One direction's generator: [`Roller::roll`] decides each packet's fate in the order
/// `synq-sim`'s links do (loss, then reorder, then duplicate), so with the same
/// probabilities the two see the same kinds of events at the same rates.
#[derive(Clone, Debug)]
pub struct Roller {
    imp: Impairment,
    rng: ChaCha8Rng,
}

impl Roller {
    /// The generator of direction `dir` (0: A to B, 1: B to A) under `imp`.
    pub fn new(imp: Impairment, dir: u64) -> Self {
        // Distinct, fixed streams per direction from one seed.
        let rng = ChaCha8Rng::seed_from_u64(imp.seed ^ dir.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Self { imp, rng }
    }

    /// The next packet's fate.
    pub fn roll(&mut self) -> Fate {
        if self.imp.loss > 0.0 && self.rng.gen::<f64>() < self.imp.loss {
            return Fate::Lost;
        }
        let held = self.imp.reorder > 0.0 && self.rng.gen::<f64>() < self.imp.reorder;
        let dup = self.imp.duplicate > 0.0 && self.rng.gen::<f64>() < self.imp.duplicate;
        Fate::Pass {
            held,
            copies: if dup { 2 } else { 1 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(loss: f64, reorder: f64, duplicate: f64, seed: u64) -> Impairment {
        Impairment {
            loss,
            reorder,
            duplicate,
            reorder_delay: Duration::from_micros(100),
            seed,
        }
    }

    #[test]
    fn clean_link_passes_everything_once() {
        let mut r = Roller::new(Impairment::none(), 0);
        for _ in 0..1000 {
            assert_eq!(
                r.roll(),
                Fate::Pass {
                    held: false,
                    copies: 1
                }
            );
        }
    }

    #[test]
    fn rates_match_the_probabilities() {
        let n = 200_000;
        let mut r = Roller::new(imp(0.05, 0.02, 0.01, 7), 0);
        let (mut lost, mut held, mut dup) = (0u32, 0u32, 0u32);
        for _ in 0..n {
            match r.roll() {
                Fate::Lost => lost += 1,
                Fate::Pass { held: h, copies } => {
                    held += u32::from(h);
                    dup += u32::from(copies == 2);
                }
            }
        }
        let passed = f64::from(n - lost);
        // Five standard deviations of a binomial count at these sizes.
        let near = |got: u32, p: f64, of: f64| {
            (f64::from(got) - p * of).abs() < 5.0 * (p * (1.0 - p) * of).sqrt()
        };
        assert!(near(lost, 0.05, f64::from(n)), "lost {lost}");
        assert!(near(held, 0.02, passed), "held {held}");
        assert!(near(dup, 0.01, passed), "dup {dup}");
    }

    #[test]
    fn same_seed_same_fates_and_directions_differ() {
        let i = imp(0.2, 0.1, 0.05, 42);
        let run = |dir| {
            let mut r = Roller::new(i, dir);
            (0..500).map(|_| r.roll()).collect::<Vec<_>>()
        };
        assert_eq!(run(0), run(0));
        assert_ne!(run(0), run(1));
    }

    #[test]
    fn probabilities_outside_zero_one_are_refused() {
        assert!(imp(1.5, 0.0, 0.0, 1).validate().is_err());
        assert!(imp(0.0, f64::NAN, 0.0, 1).validate().is_err());
        assert!(imp(0.0, 0.0, -0.1, 1).validate().is_err());
        assert!(imp(1.0, 1.0, 0.0, 1).validate().is_ok());
    }
}
