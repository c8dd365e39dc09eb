//! Simulator benchmarks (written later).
fn main() {}
