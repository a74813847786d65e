//! A future that, when dropped before it finishes, keeps running on its own
//! task: how a handler outlives a client that hung up.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The boxed work a [`Detach`] drives.
pub(crate) type Work<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Polls `work` in place; if dropped first and `detach` is set, spawns the
/// rest of it on the current tokio runtime (its output is then discarded).
/// Nothing is spawned on the common path where the work finishes in place.
pub(crate) struct Detach<T: Send + 'static> {
    work: Option<Work<T>>,
    detach: bool,
}

impl<T: Send + 'static> Detach<T> {
    pub(crate) fn new(work: Work<T>, detach: bool) -> Self {
        Detach {
            work: Some(work),
            detach,
        }
    }
}

impl<T: Send + 'static> Future for Detach<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let work = self
            .work
            .as_mut()
            .expect("Detach polled after it completed");
        let out = std::task::ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(out)
    }
}

impl<T: Send + 'static> Drop for Detach<T> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        if !self.detach {
            return; // dropped: its guards release what it held
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    work.await;
                });
            }
            // The runtime is gone (shutting down): nothing can run it.
            Err(_) => drop(work),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn dropped_work_runs_to_the_end_only_when_detached() {
        for detach in [true, false] {
            let finished = Arc::new(AtomicBool::new(false));
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let f = finished.clone();
            let mut d = Detach::new(
                Box::pin(async move {
                    let _ = rx.await;
                    f.store(true, Ordering::SeqCst);
                }),
                detach,
            );
            assert!(futures_util::poll!(&mut d).is_pending());
            drop(d);
            let _ = tx.send(());
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(finished.load(Ordering::SeqCst), detach);
        }
    }
}
