//! The bulkhead's queue: waiting for a slot on the bulkhead's clock.

use crate::bulkhead::{FullReason, QueuePlace};
use crate::infra::sync::Ordering;
use crate::{Bulkhead, BulkheadFull, BulkheadPermit};

impl Bulkhead {
    /// Takes a slot, waiting in the queue (if the bulkhead has one) for at
    /// most `max_wait`. Cancel-safe: dropping the future gives the queue
    /// place back, and a slot it had been handed goes to the next waiter.
    /// `max_wait` is measured on the bulkhead's clock.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        if let Some(p) = self.grab() {
            return Ok(p);
        }
        let inner = &*self.inner;
        if inner.max_queue == 0 {
            return Err(self.reject(FullReason::Full));
        }
        let max_queue = inner.max_queue;
        if inner
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < max_queue).then_some(q + 1)
            })
            .is_err()
        {
            return Err(self.reject(FullReason::QueueFull));
        }
        let _place = QueuePlace(inner);
        let wait = async {
            loop {
                let notified = inner.freed.notified();
                tokio::pin!(notified);
                // Register before looking, so a slot freed in between wakes us.
                notified.as_mut().enable();
                if let Some(p) = self.grab() {
                    return p;
                }
                notified.await;
            }
        };
        match inner.max_wait {
            None => Ok(wait.await),
            Some(limit) => match inner.clock.timeout(Some(limit), wait).await {
                Ok(p) => Ok(p),
                Err(_) => Err(self.reject(FullReason::MaxWait)),
            },
        }
    }

    /// Runs `fut` in a slot (waiting as [`acquire`](Self::acquire) does).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let b = rebound::Bulkhead::builder().build().unwrap();
    /// assert_eq!(b.run(async { 7 }).await, Ok(7));
    /// # }
    /// ```
    pub async fn run<F: std::future::Future>(&self, fut: F) -> Result<F::Output, BulkheadFull> {
        let _permit = self.acquire().await?;
        Ok(fut.await)
    }
}
