//! The soak in short: the same checks as the two-hour run (`cargo bench -p synq-sim --bench
//! soak`), over a few virtual minutes.

use synq_core::Duration;
use synq_sim::scenario::{soak, SoakParams};
use synq_sim::LinkConfig;

#[test]
fn every_byte_once_in_order_or_a_clear_error_and_nothing_left() {
    let p = SoakParams {
        connections: 200,
        bytes: 20_000,
        span: Duration::from_secs(120),
        settle: Duration::from_secs(600),
        link: LinkConfig {
            delay: Duration::from_millis(5),
            loss: 0.03,
            reorder: 0.03,
            reorder_delay: Duration::from_millis(10),
            duplicate: 0.02,
            corrupt: 0.02,
            flap_every: Duration::from_secs(30),
            flap_down: Duration::from_secs(3),
            ..LinkConfig::default()
        },
        ..SoakParams::default()
    };
    let r = soak(&p).unwrap();
    eprintln!("{}", serde_json::to_string(&r).unwrap());
    assert_eq!(r.opened, 200);
    assert_eq!(r.bad_bytes, 0, "{r:?}");
    assert_eq!(r.short_streams, 0, "{r:?}");
    // Every connection either delivered its stream whole or reported an error.
    let errors: u64 = r.client_errors.values().sum();
    assert!(r.intact + errors >= r.opened, "{r:?}");
    assert!(r.intact >= 190, "{r:?}");
    assert!(r.bytes_checked >= r.intact * 20_000, "{r:?}");
    // The checksums caught every corrupted packet; nothing outlived the run.
    assert!(r.corrupted > 100, "{r:?}");
    assert_eq!(r.checksum_drops, r.corrupted, "{r:?}");
    assert_eq!(r.live_at_end, 0, "{r:?}");
    assert!(r.links.down_drops > 0, "{r:?}");
}
