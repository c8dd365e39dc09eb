//! `Stack::handle_packets` against `Stack::handle_packet`: two servers prepared alike in
//! each backlog model, one handed the input's packets one by one, the other in batches (a
//! batch runs through each frame whose control byte has bit 5 set, up to and including the
//! first that has not). Both must send the same packets, keep the same counters and hold
//! the same half-open requests after every batch and every timer run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synq_core::{Duration, Model};
use synq_fuzz::{drain, each_model, fire, fix_checksums, frames, Fixture, Frame, SERVER};

fuzz_target!(|data: &[u8]| each_model(data, run));

fn run(model: Model, data: &[u8]) {
    let mut one = Fixture::new(model);
    let mut many = Fixture::new(model);
    let all: Vec<Frame<'_>> = frames(data).collect();
    for batch in all.split_inclusive(|f| f.ctl & 0x20 == 0) {
        let packets: Vec<(Vec<u8>, bool)> = batch
            .iter()
            .map(|f| {
                let mut p = f.packet.to_vec();
                if f.ctl & 1 != 0 {
                    fix_checksums(&mut p);
                }
                (p, f.ctl & 2 != 0)
            })
            .collect();
        let now = one.now;
        for (p, verified) in &packets {
            if *verified {
                one.server.handle_packet_verified(now, p);
            } else {
                one.server.handle_packet(now, p);
            }
        }
        many.server
            .handle_packets(now, packets.iter().map(|(p, v)| (p.as_slice(), *v)));
        same(&mut one, &mut many);
        let k = batch.last().map_or(0, |f| u32::from((f.ctl >> 2) & 7));
        let step = Duration::from_millis(4u64.pow(k) - 1);
        for f in [&mut one, &mut many] {
            f.now += step;
            fire(&mut f.server, f.now);
        }
        same(&mut one, &mut many);
    }
}

/// Both servers send the same, count the same and hold the same requests.
fn same(one: &mut Fixture, many: &mut Fixture) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    drain(&mut one.server, one.now, &SERVER, &mut a);
    drain(&mut many.server, many.now, &SERVER, &mut b);
    assert_eq!(a, b, "the batch sent something else");
    assert_eq!(one.server.counters(), many.server.counters());
    assert!(one
        .server
        .syn_recv()
        .map(|r| (r.local, r.remote))
        .eq(many.server.syn_recv().map(|r| (r.local, r.remote))));
}
