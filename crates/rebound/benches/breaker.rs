//! Circuit breaker benchmarks (placeholder while being written).
fn main() {}
