//! Holding a claim: renewing its lease while the work runs, completing it
//! (with the completion retried in the background if the store fails), or
//! releasing it. Shared by the HTTP layer and the [`once`](crate::once) API,
//! so both keep the same leases and fencing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rebound::{Backoff, Clock, ConfigError, Decision, Jitter, Next, Outcome, RetryPolicy};

use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// Where claims live and how they are held: the part of a configuration the
/// layer and [`Once`](crate::once::Once) share.
pub(crate) struct ClaimSettings {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// The `dependency` label of metrics.
    pub name: Arc<str>,
    pub lease: Duration,
    pub renew_every: Option<Duration>,
    pub ttl: Duration,
    /// Drives the retries of a failed completion write; its total timeout
    /// is how long they go on.
    pub completion_retry: RetryPolicy,
}

impl std::fmt::Debug for ClaimSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimSettings")
            .field("store", &self.store)
            .field("name", &self.name)
            .field("lease", &self.lease)
            .field("renew_every", &self.renew_every)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The raw lease settings of a builder, validated by [`ClaimSettings::build`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseOptions {
    pub lease: Duration,
    /// `None`: the default (a third of the lease); `Some(None)`: off.
    pub renew_every: Option<Option<Duration>>,
    pub ttl: Duration,
    pub complete_retry_for: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            lease: Duration::from_secs(30),
            renew_every: None,
            ttl: Duration::from_secs(24 * 3600),
            complete_retry_for: Duration::from_secs(120),
        }
    }
}

impl ClaimSettings {
    pub(crate) fn build(
        component: &'static str,
        store: Arc<dyn Store>,
        clock: Clock,
        name: &str,
        o: LeaseOptions,
    ) -> Result<ClaimSettings, ConfigError> {
        let err = |field, msg: String| ConfigError::new(component, field, msg);
        if name.is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        // Described, and the headline series at zero, from the start.
        rebound::telemetry::describe();
        let dep = name.to_string();
        metrics::counter!("idempotency_requests_total", "dependency" => dep.clone(), "outcome" => "stored").increment(0);
        metrics::counter!(rebound::telemetry::IDEMPOTENCY_KEY_REUSED_TOTAL, "dependency" => dep, "outcome" => "replayed").increment(0);
        if o.lease < Duration::from_millis(1) {
            return Err(err(
                "lease",
                format!("must be at least 1 ms (got {:?})", o.lease),
            ));
        }
        let renew_every = match o.renew_every {
            None => Some(o.lease / 3).filter(|d| !d.is_zero()),
            Some(None) => None,
            Some(Some(d)) if d.is_zero() || d >= o.lease => {
                return Err(err(
                    "renew_every",
                    format!(
                        "must be greater than zero and shorter than the lease ({:?}; got {d:?})",
                        o.lease
                    ),
                ))
            }
            Some(Some(d)) => Some(d),
        };
        if o.ttl < o.lease {
            return Err(err(
                "ttl",
                format!(
                    "must not be shorter than the lease ({:?}; got {:?})",
                    o.lease, o.ttl
                ),
            ));
        }
        if o.complete_retry_for.is_zero() {
            return Err(err(
                "complete_retry_for",
                "must be greater than zero".into(),
            ));
        }
        let completion_retry = RetryPolicy::builder()
            .dependency(format!("idempotency-store:{name}"))
            .max_attempts(u32::MAX)
            .backoff(
                Backoff::exponential(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter(Jitter::Full),
            )
            .total_timeout(o.complete_retry_for)
            .clock(clock.clone())
            .build()
            .map_err(|e| err("complete_retry_for", e.message().to_owned()))?;
        Ok(ClaimSettings {
            store,
            clock,
            name: name.into(),
            lease: o.lease,
            renew_every,
            ttl: o.ttl,
            completion_retry,
        })
    }

    /// The time now, as stored.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::now(&self.clock)
    }

    /// Count a failed store operation.
    pub(crate) fn count_store_error(&self, operation: &'static str, e: &StoreError) {
        if !e.is_fence_rejected() {
            metrics::counter!("idempotency_store_errors_total", "dependency" => self.name.to_string(), "operation" => operation).increment(1);
        }
    }
}

/// What became of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// The result is stored.
    Stored,
    /// The claim was no longer held by this fence; nothing was stored.
    FenceRejected,
    /// The store failed; the write is retried in the background and the
    /// late outcome reported to the callback.
    Retrying,
    /// The store failed and no retry is possible.
    Abandoned,
}

/// The late outcome of a completion retried in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LateCompletion {
    Stored,
    FenceRejected,
    Abandoned,
}

pub(crate) type LateReport = Box<dyn FnOnce(LateCompletion) + Send + 'static>;

type RenewFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A claim held under `fence`.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub settings: Arc<ClaimSettings>,
    pub key: String,
    pub fence: u64,
}

impl Held {
    /// Drive `work`, renewing the lease every `renew_every` until it
    /// finishes. The renewal runs beside the work, never pausing it.
    pub(crate) async fn renewing<F: Future>(&self, work: F) -> F::Output {
        let s = &self.settings;
        let Some(every) = s.renew_every else {
            return work.await;
        };
        let mut work = std::pin::pin!(work);
        let mut next = s.clock.now() + every;
        let mut renewal: Option<RenewFuture> = None;
        let mut renewing = true;
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                done = async { renewal.as_mut().expect("guarded").await }, if renewal.is_some() => {
                    renewal = None;
                    match done {
                        Ok(()) => tracing::trace!(layer = &*s.name, fence = self.fence, "lease renewed"),
                        Err(e) if e.is_fence_rejected() => {
                            tracing::warn!(layer = &*s.name, fence = self.fence, "lease lost to another holder while the work runs");
                            renewing = false;
                        }
                        Err(e) => {
                            s.count_store_error("renew", &e);
                            tracing::warn!(layer = &*s.name, error = %e, "lease renewal failed; will try again");
                        }
                    }
                }
                () = s.clock.timer(next), if renewal.is_none() && renewing => {
                    next = s.clock.now() + every;
                    renewal = Some(self.renew());
                }
            }
        }
    }

    fn renew(&self) -> RenewFuture {
        let s = self.settings.clone();
        let (key, fence) = (self.key.clone(), self.fence);
        Box::pin(async move { s.store.renew(&key, fence, s.now(), s.lease).await })
    }

    /// Give the claim up so a retry can run.
    pub(crate) async fn release(&self) -> Result<(), StoreError> {
        let r = self.settings.store.release(&self.key, self.fence).await;
        if let Err(e) = &r {
            self.settings.count_store_error("release", e);
        }
        r
    }

    /// Store `result` under the claim. If the store fails, the write is
    /// retried in the background (the lease renewed meanwhile) for the
    /// configured time, and `late` hears how it ended.
    pub(crate) async fn complete(self, result: Bytes, late: LateReport) -> Completion {
        let s = self.settings.clone();
        let policy = &s.completion_retry;
        let mut state = policy.start();
        let Ok(attempt) = state.begin_attempt(policy) else {
            return Completion::Abandoned;
        };
        let e = match s
            .store
            .complete(&self.key, self.fence, result.clone(), s.now(), s.ttl)
            .await
        {
            Ok(()) => return Completion::Stored,
            Err(e) if e.is_fence_rejected() => return Completion::FenceRejected,
            Err(e) => e,
        };
        s.count_store_error("complete", &e);
        tracing::error!(layer = &*s.name, error = %e, fence = self.fence, "could not store the result; retrying in the background while the lease is renewed");
        let next = state.on_outcome(policy, attempt, Outcome::<(), _>::Err(&e), Decision::Retry);
        let Next::Retry { delay } = next else {
            return Completion::Abandoned;
        };
        tokio::spawn(async move {
            let outcome = self.retry_completion(state, delay, result).await;
            late(outcome);
        });
        Completion::Retrying
    }

    /// The background half of [`complete`](Self::complete): a driver over
    /// the policy's retry state that renews the lease while it waits.
    async fn retry_completion(
        self,
        mut state: rebound::RetryState,
        mut delay: Duration,
        result: Bytes,
    ) -> LateCompletion {
        let s = self.settings.clone();
        let policy = &s.completion_retry;
        let mut renew_at = s.renew_every.map(|every| s.clock.now() + every);
        loop {
            let retry_at = s.clock.now() + delay;
            loop {
                let wake = renew_at.map_or(retry_at, |r| r.min(retry_at));
                s.clock.timer(wake).await;
                let now = s.clock.now();
                if let (Some(at), Some(every)) = (renew_at, s.renew_every) {
                    if now >= at {
                        match self.renew().await {
                            Err(e) if e.is_fence_rejected() => {
                                return LateCompletion::FenceRejected
                            }
                            Err(e) => s.count_store_error("renew", &e),
                            Ok(()) => {}
                        }
                        renew_at = Some(s.clock.now() + every);
                    }
                }
                if s.clock.now() >= retry_at {
                    break;
                }
            }
            let Ok(attempt) = state.begin_attempt(policy) else {
                break;
            };
            match s
                .store
                .complete(&self.key, self.fence, result.clone(), s.now(), s.ttl)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        layer = &*s.name,
                        fence = self.fence,
                        attempts = state.attempts(),
                        "stored the result after retrying"
                    );
                    return LateCompletion::Stored;
                }
                Err(e) if e.is_fence_rejected() => return LateCompletion::FenceRejected,
                Err(e) => {
                    s.count_store_error("complete", &e);
                    match state.on_outcome(
                        policy,
                        attempt,
                        Outcome::<(), _>::Err(&e),
                        Decision::Retry,
                    ) {
                        Next::Retry { delay: d } => delay = d,
                        Next::Stop(_) => break,
                    }
                }
            }
        }
        tracing::error!(
            layer = &*s.name,
            fence = self.fence,
            attempts = state.attempts(),
            "gave up storing the result; once the lease runs out a retry will run the work again"
        );
        LateCompletion::Abandoned
    }
}

/// Releases the claim if dropped while still armed: the work was cancelled
/// (the future dropped) before it completed or released.
pub(crate) struct ReleaseOnDrop {
    held: Option<Held>,
    on_release: Option<OnRelease>,
}

type OnRelease = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

impl ReleaseOnDrop {
    pub(crate) fn new(
        held: Held,
        on_release: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Self {
        ReleaseOnDrop {
            held: Some(held),
            on_release: Some(Box::new(on_release)),
        }
    }

    /// The claim, no longer released on drop.
    pub(crate) fn disarm(mut self) -> Held {
        self.on_release = None;
        self.held.take().expect("held until disarmed")
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let (Some(held), Some(report)) = (self.held.take(), self.on_release.take()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime (shutting down): the lease runs out instead.
            return;
        };
        rt.spawn(async move { report(held.release().await) });
    }
}
