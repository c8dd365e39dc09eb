//! `synq sim transfer`'s promise: bytes arrive intact under loss, reordering and duplication,
//! for any seed.

use proptest::prelude::*;
use synq_core::Duration;
use synq_sim::scenario::{transfer, TransferParams};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn intact_for_any_seed(
        seed in any::<u64>(),
        bytes in 1u64..400_000,
        loss in 0.0f64..0.10,
        reorder in 0.0f64..0.10,
        duplicate in 0.0f64..0.05,
        rtt_us in 20u64..50_000,
    ) {
        let p = TransferParams {
            bytes,
            loss,
            reorder,
            duplicate,
            rtt: Duration::from_micros(rtt_us),
            seed,
            ..TransferParams::default()
        };
        let r = transfer(&p).unwrap();
        prop_assert!(r.intact, "{:?} -> {:?}", p, r);
        prop_assert_eq!(r.bytes_received, bytes);
    }
}
