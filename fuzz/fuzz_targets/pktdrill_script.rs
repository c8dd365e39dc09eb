//! The packetdrill-script parser on arbitrary text: it returns errors, never panics. A
//! short script it accepts is also run against a synq stack in virtual time (every model in
//! turn), so the interpreter, the syscall layer and the command shell see hostile scripts
//! too: a run may fail the script, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synq_pktdrill::{parse, Runner};

/// Longest script run (parsing has no cap beyond the lexer's).
const MAX_RUN_BYTES: usize = 4096;
/// Most events run.
const MAX_EVENTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(script) = parse(text, &[]) else {
        return;
    };
    if text.len() > MAX_RUN_BYTES || script.events.len() > MAX_EVENTS {
        return;
    }
    for model in ["linux", "bsd", "freebsd"] {
        let r = Runner {
            model: model.parse().ok(),
            ..Runner::default()
        };
        let _ = r.run_script(&script);
    }
});
