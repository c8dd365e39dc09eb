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

/// Connections opened all at once overflow a SYN queue of 16 (`somaxconn`), so the server
/// answers with SYN cookies. A client whose data segment reaches the server before its
/// handshake's ACK is reset: the cookie is checked against that segment's sequence number
/// minus one and fails, and the listener answers RST, as Linux does. If the ACK arrives
/// after, it makes a server connection whose client is gone, and nothing but keepalive
/// ends it. Over a dozen seeds some such connection outlives the settling time with
/// Linux's `tcp_keepalive_time` (7200 s), and none with the soak's (300 s).
#[test]
fn keepalive_ends_the_connections_a_reset_client_leaves() {
    let run = |seed, keepalive| {
        let p = SoakParams {
            connections: 300,
            span: Duration::from_secs(0),
            settle: Duration::from_secs(1200),
            link: LinkConfig {
                delay: Duration::from_millis(5),
                loss: 0.03,
                reorder: 0.1,
                reorder_delay: Duration::from_millis(10),
                ..LinkConfig::default()
            },
            seed,
            config: synq_core::Config {
                somaxconn: 16,
                tcp_keepalive_time: keepalive,
                ..SoakParams::default().config
            },
            ..SoakParams::default()
        };
        soak(&p).unwrap()
    };
    let mut left = 0;
    for seed in 1..=12 {
        left += run(seed, 7200).live_at_end;
        let r = run(seed, 300);
        let errors: u64 = r.client_errors.values().sum();
        assert_eq!(r.live_at_end, 0, "seed {seed}: {r:?}");
        assert_eq!(r.bad_bytes + r.short_streams, 0, "seed {seed}: {r:?}");
        assert!(r.intact + errors >= r.opened, "seed {seed}: {r:?}");
        assert!(errors > 0, "seed {seed}: no cookie reset at all: {r:?}");
    }
    assert!(left > 0, "no connection outlived the run without keepalive");
}
