//! Benchmarks of rebound against its peers; see `benches/` and the
//! workspace's `BENCHMARKS.md`. Nothing to use here.
//!
//! ```text
//! cargo bench -p rebound-bench
//! ```
