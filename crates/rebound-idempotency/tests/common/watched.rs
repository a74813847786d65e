//! A store that tells the test which operations went through it: a thin
//! wrapper that forwards every call to a real store and then reports it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rebound_idempotency::{ClaimOutcome, ClaimRequest, Store, StoreError, Timestamp};
use tokio::sync::mpsc;

/// What went through: the operation and whether it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub name: &'static str,
    pub ok: bool,
}

#[derive(Debug)]
pub struct Watched {
    inner: Arc<dyn Store>,
    tx: mpsc::UnboundedSender<Op>,
}

impl Watched {
    pub fn new(inner: Arc<dyn Store>) -> (Arc<Self>, mpsc::UnboundedReceiver<Op>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Watched { inner, tx }), rx)
    }

    fn report<T>(&self, name: &'static str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let _ = self.tx.send(Op {
            name,
            ok: r.is_ok(),
        });
        r
    }
}

/// Wait for the next `name` operation; returns whether it succeeded.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Op>, name: &str) -> bool {
    loop {
        let op = rx.recv().await.expect("store dropped");
        if op.name == name {
            return op.ok;
        }
    }
}

#[async_trait::async_trait]
impl Store for Watched {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        let r = self.inner.claim(req).await;
        self.report("claim", r)
    }

    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let r = self.inner.renew(key, fence, now, lease).await;
        self.report("renew", r)
    }

    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let r = self.inner.complete(key, fence, result, now, ttl).await;
        self.report("complete", r)
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        let r = self.inner.release(key, fence).await;
        self.report("release", r)
    }

    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        let r = self.inner.sweep(now, batch).await;
        self.report("sweep", r)
    }
}
