//! Running many independent runs in parallel, deterministically.
//!
//! Runs execute on rayon's pool in any order; results come back in task
//! order and every run's seed is derived from its coordinates
//! ([`crate::seed::derive`]), so the output does not depend on scheduling.
//!
//! ```
//! use rebound_sim::sweep::{run_all, NoProgress};
//! let squares = run_all(&[1u64, 2, 3], &NoProgress, |x| x * x);
//! assert_eq!(squares, [1, 4, 9]);
//! ```

use rayon::prelude::*;

/// Hears about progress on long sweeps (the CLI shows a bar).
pub trait Progress: Sync {
    /// A sweep of `total` runs named `label` starts.
    fn start(&self, label: &str, total: u64);
    /// `n` more runs finished.
    fn advance(&self, n: u64);
    /// The sweep is over.
    fn finish(&self);
}

/// Ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Runs `f` on every task in parallel; results in task order.
pub fn run_all<T, R, F>(tasks: &[T], progress: &dyn Progress, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    tasks
        .par_iter()
        .map(|t| {
            let r = f(t);
            progress.advance(1);
            r
        })
        .collect()
}
