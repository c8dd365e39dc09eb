//! synq-core: sans-IO TCP.
pub mod time;
pub use time::{Duration, Instant};
