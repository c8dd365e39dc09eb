//! Scenario tests of the engine through the two-stack harness.

mod util;

mod close;
mod data;
mod handshake;
mod listen;
mod malformed;
mod receive;
mod recovery;
mod reset;
mod state_machine;
mod transitions;
