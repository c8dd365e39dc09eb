//! `Stack::handle_packet` on a server prepared in each backlog model (two listeners, live
//! connections accepted and queued, data in flight, half-open requests), fed the input as a
//! sequence of packets (see `synq_fuzz::frames`). Never panics; a packet `parse_packet`
//! rejects is counted under a malformed-input counter; after each packet the stack drains
//! (every emitted packet parses), fires its timers, and its bookkeeping and queue bounds
//! hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synq_core::{Duration, Model};
use synq_fuzz::{
    check_monotonic, drain, each_model, fire, fix_checksums, frames, malformed, Bounds, Fixture,
    SERVER,
};
use synq_wire::{parse_packet, ChecksumMode};

fuzz_target!(|data: &[u8]| each_model(data, run));

fn run(model: Model, data: &[u8]) {
    let mut f = Fixture::new(model);
    let mut bounds = Bounds::default();
    bounds.check(&f.server);
    let mut packet = Vec::new();
    let mut out = Vec::new();
    for frame in frames(data) {
        packet.clear();
        packet.extend_from_slice(frame.packet);
        if frame.ctl & 1 != 0 {
            fix_checksums(&mut packet);
        }
        let verified = frame.ctl & 2 != 0;
        let mode = if verified {
            ChecksumMode::Ignore
        } else {
            ChecksumMode::Verify
        };
        let rejected = parse_packet(&packet, mode).is_err();
        let before = f.server.counters().clone();
        if verified {
            f.server.handle_packet_verified(f.now, &packet);
        } else {
            f.server.handle_packet(f.now, &packet);
        }
        let after = f.server.counters().clone();
        check_monotonic(&before, &after);
        assert_eq!(after.ip_in_receives, before.ip_in_receives + 1);
        if rejected {
            assert!(
                malformed(&after) > malformed(&before),
                "a packet parse_packet rejects was not counted as malformed"
            );
        }
        out.clear();
        drain(&mut f.server, f.now, &SERVER, &mut out);
        let k = u32::from((frame.ctl >> 2) & 7);
        let step = Duration::from_millis(4u64.pow(k) - 1);
        f.now += step;
        fire(&mut f.server, f.now);
        drain(&mut f.server, f.now, &SERVER, &mut out);
        bounds.check(&f.server);
        let _ = f.server.poll_timeout();
    }
    // Let every timer run out: requests expire, connections time out.
    for _ in 0..200 {
        let Some(t) = f.server.poll_timeout() else {
            break;
        };
        f.now = f.now.max(t);
        fire(&mut f.server, f.now);
        drain(&mut f.server, f.now, &SERVER, &mut Vec::new());
    }
    bounds.check(&f.server);
}
