//! Bulk transfers of real stacks across lossy, reordering, duplicating links.

use synq_core::Duration;
use synq_sim::scenario::{transfer, TransferParams};

const MB: u64 = 1_000_000;

fn run(bytes: u64, loss: f64, seed: u64) -> synq_sim::scenario::TransferReport {
    let p = TransferParams {
        bytes,
        loss,
        reorder: 0.02,
        duplicate: 0.01,
        rtt: Duration::from_millis(10),
        seed,
        ..TransferParams::default()
    };
    transfer(&p).unwrap()
}

#[test]
fn lossless_10mb_is_intact_without_retransmits() {
    let p = TransferParams {
        bytes: 10 * MB,
        rtt: Duration::from_millis(10),
        ..TransferParams::default()
    };
    let r = transfer(&p).unwrap();
    assert!(r.intact, "{r:?}");
    assert_eq!(r.bytes_received, 10 * MB);
    assert_eq!(r.retransmits, 0);
    assert_eq!(r.packets_lost, 0);
}

/// The grid: 10 MB under 0/1/5/10 % loss (with reordering and duplication) across seeds.
#[test]
fn ten_mb_under_loss_across_seeds() {
    for loss in [0.01, 0.05, 0.10] {
        for seed in 1..=4u64 {
            let r = run(10 * MB, loss, seed);
            assert!(r.intact, "loss {loss} seed {seed}: {r:?}");
            assert!(
                r.packets_lost > 0 && r.retransmits > 0,
                "loss {loss} seed {seed}: {r:?}"
            );
            assert!(r.packets_duplicated > 0, "duplication exercised: {r:?}");
        }
    }
}

/// Many seeds on smaller transfers, heavy impairment.
#[test]
fn many_seeds_small_transfers() {
    for seed in 0..40u64 {
        let loss = [0.0, 0.01, 0.05, 0.10][(seed % 4) as usize];
        let p = TransferParams {
            bytes: 200_000 + seed * 997,
            loss,
            reorder: 0.05,
            duplicate: 0.05,
            rtt: Duration::from_micros(100 + seed * 50),
            seed,
            ..TransferParams::default()
        };
        let r = transfer(&p).unwrap();
        assert!(r.intact, "seed {seed}: {r:?}");
    }
}

#[test]
fn same_seed_same_result() {
    let a = run(MB, 0.05, 7);
    let b = run(MB, 0.05, 7);
    assert_eq!(a, b);
    let c = run(MB, 0.05, 8);
    assert!(a != c, "another seed gives another run");
}

#[test]
fn ipv6_transfer_under_loss() {
    for seed in 1..=4 {
        let p = TransferParams {
            bytes: 2 * MB,
            loss: 0.05,
            reorder: 0.02,
            duplicate: 0.01,
            ipv6: true,
            seed,
            ..TransferParams::default()
        };
        let r = transfer(&p).unwrap();
        assert!(r.intact, "seed {seed}: {r:?}");
        assert!(r.packets_lost > 0);
    }
}

#[test]
fn bandwidth_limited_transfer_takes_its_time() {
    // 1 MB over 10 Mbit/s takes at least 0.8 s of virtual time.
    let p = TransferParams {
        bytes: MB,
        bandwidth_bps: Some(10_000_000),
        rtt: Duration::from_millis(2),
        ..TransferParams::default()
    };
    let r = transfer(&p).unwrap();
    assert!(r.intact);
    assert!(r.virtual_secs >= 0.8, "{}", r.virtual_secs);
    assert!(r.virtual_secs < 2.0, "{}", r.virtual_secs);
}

/// The loss grid of issue 9 (loss / reorder / duplication per direction, 100 µs RTT):
/// 4 MB arrives intact within 3600 virtual seconds for every seed tried, with CUBIC, SACK
/// and RACK-TLP. (How long it takes is a benchmark's business: `cargo bench -p synq-sim
/// --bench recovery`.)
#[test]
fn four_mb_through_every_loss_level_across_seeds() {
    let grid = [
        (0.01, 0.02, 0.01),
        (0.05, 0.02, 0.01),
        (0.12, 0.05, 0.03),
        (0.20, 0.10, 0.05),
        (0.25, 0.10, 0.05),
    ];
    for (loss, reorder, duplicate) in grid {
        for seed in 1..=6 {
            let r = transfer(&TransferParams {
                bytes: 4_000_000,
                loss,
                reorder,
                duplicate,
                rtt: Duration::from_micros(100),
                seed,
                time_limit: Duration::from_secs(3600),
                ..TransferParams::default()
            })
            .expect("valid link");
            assert!(
                r.intact,
                "{loss}/{reorder}/{duplicate} seed {seed}: {} of 4000000 bytes in {} s",
                r.bytes_received, r.virtual_secs
            );
        }
    }
}

/// Without SACK (the peer refuses it) recovery falls back to NewReno and still arrives.
#[test]
fn four_mb_with_newreno_when_sack_is_off() {
    let mut config = synq_core::Config::default();
    config.set("net.ipv4.tcp_sack", "0").unwrap();
    let r = transfer(&TransferParams {
        bytes: 4_000_000,
        loss: 0.02,
        rtt: Duration::from_micros(100),
        config,
        time_limit: Duration::from_secs(3600),
        ..TransferParams::default()
    })
    .expect("valid link");
    assert!(r.intact, "{r:?}");
}
