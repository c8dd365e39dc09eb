//! Scenario tests of the engine through the two-stack harness.

pub(crate) mod util;

mod batch;
mod blind;
mod close;
mod data;
mod exhaustion;
mod freebsd;
mod handshake;
mod listen;
mod malformed;
mod receive;
mod recovery;
mod reset;
mod secrets;
mod state_machine;
mod transitions;
