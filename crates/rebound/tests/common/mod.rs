// Not a test target of its own: included by the behaviour tests.
#![allow(dead_code)]

use std::future::ready;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rebound::{Classifier, Report, RetryHook};

/// The two executors: every behaviour test runs against both.
#[derive(Debug, Clone, Copy)]
pub enum Runner {
    Blocking,
    Async,
}

pub const RUNNERS: [Runner; 2] = [Runner::Blocking, Runner::Async];

impl Runner {
    pub fn run<T, E, C, H, F>(
        self,
        retry: &rebound::retry::RetryExecutor<'_, C, H>,
        mut op: F,
    ) -> Report<T, E>
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
        F: FnMut() -> Result<T, E>,
    {
        match self {
            Runner::Blocking => retry.run_blocking(op),
            Runner::Async => tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
                .block_on(retry.run(|| ready(op()))),
        }
    }
}

/// Counts live attempts: incremented when an attempt starts, decremented
/// when its future is dropped (finished or cancelled).
pub struct Live(Arc<AtomicU32>);

impl Live {
    pub fn new(c: &Arc<AtomicU32>) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        Live(c.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
