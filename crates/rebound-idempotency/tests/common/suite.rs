//! The conformance suite: the rules of `rebound_idempotency::store`, checked
//! against any `Store`. Times are absolute and moved by hand, never slept.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rebound_idempotency::{
    ClaimOutcome, ClaimRequest, Fingerprint, Store, StoreError, StoredResponse, Timestamp,
};

pub const LEASE: Duration = Duration::from_secs(10);
pub const TTL: Duration = Duration::from_secs(60);

fn fp(s: &str) -> Fingerprint {
    Fingerprint::of(&[s.as_bytes()])
}

fn req(key: &str, fingerprint: Fingerprint, now: Timestamp) -> ClaimRequest<'_> {
    ClaimRequest {
        key,
        fingerprint,
        now,
        lease: LEASE,
        ttl: TTL,
    }
}

fn start() -> Timestamp {
    Timestamp::now(&rebound::Clock::system())
}

/// A stored result: an encoded response, as the HTTP layer stores.
fn response(tag: &str) -> Bytes {
    Bytes::from(
        StoredResponse::new(201)
            .with_header("content-type", "application/json")
            .with_header("location", format!("/orders/{tag}"))
            .with_body(format!("{{\"order\":\"{tag}\"}}"))
            .encode(),
    )
}

fn key(name: &str) -> String {
    super::unique(name)
}

async fn claimed(store: &dyn Store, r: ClaimRequest<'_>) -> u64 {
    match store.claim(r).await.unwrap() {
        ClaimOutcome::Claimed { fence } => fence,
        other => panic!("expected Claimed, got {other:?}"),
    }
}

fn assert_fence_rejected(r: Result<(), StoreError>) {
    match r {
        Err(StoreError::FenceRejected { .. }) => {}
        other => panic!("expected FenceRejected, got {other:?}"),
    }
}

/// A fresh key is claimed; a second claim sees it in progress with the
/// remaining lease.
pub async fn claim_then_in_progress(store: &dyn Store) {
    let k = key("claim");
    let t0 = start();
    let f = claimed(store, req(&k, fp("a"), t0)).await;
    assert!(f >= 1);
    assert_eq!(
        store.claim(req(&k, fp("a"), t0)).await.unwrap(),
        ClaimOutcome::InProgress { retry_after: LEASE }
    );
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(
        store.claim(req(&k, fp("a"), t1)).await.unwrap(),
        ClaimOutcome::InProgress {
            retry_after: Duration::from_secs(7)
        }
    );
    // Other keys are independent.
    let other = key("claim_other");
    claimed(store, req(&other, fp("a"), t0)).await;
}

/// A completed key replays exactly what was stored, binary body included.
pub async fn complete_then_replay(store: &dyn Store) {
    let k = key("replay");
    let t0 = start();
    let f = claimed(store, req(&k, fp("a"), t0)).await;
    let resp = Bytes::from(
        StoredResponse::new(201)
            .with_header("x-dup", "1")
            .with_header("x-dup", "2")
            .with_body((0..=255u8).cycle().take(300_000).collect::<Vec<u8>>())
            .encode(),
    );
    store.complete(&k, f, resp.clone(), t0, TTL).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            store
                .claim(req(&k, fp("a"), t0 + Duration::from_secs(30)))
                .await
                .unwrap(),
            ClaimOutcome::Completed(resp.clone())
        );
    }
}

/// A different fingerprint is a mismatch, while in progress and after
/// completion, and leaves the record as it was.
pub async fn mismatch_leaves_record(store: &dyn Store) {
    let k = key("mismatch");
    let t0 = start();
    let f = claimed(store, req(&k, fp("a"), t0)).await;
    assert_eq!(
        store.claim(req(&k, fp("b"), t0)).await.unwrap(),
        ClaimOutcome::Mismatch
    );
    // The holder still holds it.
    store.complete(&k, f, response("a"), t0, TTL).await.unwrap();
    assert_eq!(
        store.claim(req(&k, fp("b"), t0)).await.unwrap(),
        ClaimOutcome::Mismatch
    );
    assert_eq!(
        store.claim(req(&k, fp("a"), t0)).await.unwrap(),
        ClaimOutcome::Completed(response("a"))
    );
}

/// An expired lease can be taken over with a larger fence; the old holder's
/// complete, release and renew are rejected and the new owner's result wins.
pub async fn lease_expiry_takeover_and_fencing(store: &dyn Store) {
    let k = key("takeover");
    let t0 = start();
    let f1 = claimed(store, req(&k, fp("a"), t0)).await;
    // One millisecond before the lease ends: still held.
    let almost = t0 + LEASE - Duration::from_millis(1);
    assert_eq!(
        store.claim(req(&k, fp("a"), almost)).await.unwrap(),
        ClaimOutcome::InProgress {
            retry_after: Duration::from_millis(1)
        }
    );
    let t1 = t0 + LEASE;
    let f2 = claimed(store, req(&k, fp("a"), t1)).await;
    assert!(f2 > f1, "fence must grow: {f1} then {f2}");
    assert_fence_rejected(store.complete(&k, f1, response("old"), t1, TTL).await);
    assert_fence_rejected(store.renew(&k, f1, t1, LEASE).await);
    assert_fence_rejected(store.release(&k, f1).await);
    // The new owner is unaffected by the stale attempts.
    store
        .complete(&k, f2, response("new"), t1, TTL)
        .await
        .unwrap();
    assert_eq!(
        store.claim(req(&k, fp("a"), t1)).await.unwrap(),
        ClaimOutcome::Completed(response("new"))
    );
    // Completed records are not "held": the winner's fence is now stale too.
    assert_fence_rejected(store.complete(&k, f2, response("again"), t1, TTL).await);
    assert_fence_rejected(store.release(&k, f2).await);
}

/// A released claim (handler failed) can be claimed again at once, with a
/// larger fence, even with another fingerprint; a double release fails.
pub async fn release_on_failure(store: &dyn Store) {
    let k = key("release");
    let t0 = start();
    let f1 = claimed(store, req(&k, fp("a"), t0)).await;
    store.release(&k, f1).await.unwrap();
    assert_fence_rejected(store.release(&k, f1).await);
    assert_fence_rejected(store.complete(&k, f1, response("x"), t0, TTL).await);
    let f2 = claimed(store, req(&k, fp("b"), t0)).await;
    assert!(f2 > f1);
    store
        .complete(&k, f2, response("b"), t0, TTL)
        .await
        .unwrap();
    assert_eq!(
        store.claim(req(&k, fp("b"), t0)).await.unwrap(),
        ClaimOutcome::Completed(response("b"))
    );
}

/// A completed record is replayed until its TTL ends, then the key is free
/// again (for any fingerprint).
pub async fn ttl_expiry(store: &dyn Store) {
    let k = key("ttl");
    let t0 = start();
    let f = claimed(store, req(&k, fp("a"), t0)).await;
    let done = t0 + Duration::from_secs(2);
    store
        .complete(&k, f, response("a"), done, TTL)
        .await
        .unwrap();
    let before = done + TTL - Duration::from_millis(1);
    assert_eq!(
        store.claim(req(&k, fp("a"), before)).await.unwrap(),
        ClaimOutcome::Completed(response("a"))
    );
    let after = done + TTL;
    let f2 = claimed(store, req(&k, fp("z"), after)).await;
    assert!(f2 > f);
}

/// Renewal moves the lease end; renewing a record you do not hold fails.
pub async fn renew_extends_lease(store: &dyn Store) {
    let k = key("renew");
    let t0 = start();
    let f = claimed(store, req(&k, fp("a"), t0)).await;
    store
        .renew(&k, f, t0 + Duration::from_secs(8), LEASE)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim(req(&k, fp("a"), t0 + Duration::from_secs(12)))
            .await
            .unwrap(),
        ClaimOutcome::InProgress {
            retry_after: Duration::from_secs(6)
        }
    );
    let f2 = claimed(store, req(&k, fp("a"), t0 + Duration::from_secs(18))).await;
    assert!(f2 > f);
    assert_fence_rejected(store.renew(&key("renew_absent"), 1, t0, LEASE).await);
}

/// Many concurrent claims of one key: exactly one wins.
pub async fn concurrent_claims_one_winner(store: Arc<dyn Store>) {
    for round in 0..10 {
        let k = key(&format!("race{round}"));
        let t0 = start();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let store = store.clone();
                let k = k.clone();
                tokio::spawn(async move { store.claim(req(&k, fp("a"), t0)).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            match t.await.unwrap() {
                ClaimOutcome::Claimed { .. } => winners += 1,
                ClaimOutcome::InProgress { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

/// Expired records are deleted in batches; live ones stay. Only for stores
/// that sweep (Redis expires keys by itself).
pub async fn sweep_in_batches(store: &dyn Store) {
    let t0 = start();
    let (old1, old2, live) = (key("sweep_old1"), key("sweep_old2"), key("sweep_live"));
    for (k, ttl) in [(&old1, TTL), (&old2, TTL), (&live, TTL * 10)] {
        let f = claimed(store, req(k, fp("a"), t0)).await;
        store.complete(k, f, response("s"), t0, ttl).await.unwrap();
    }
    let later = t0 + TTL;
    assert_eq!(store.sweep(later, 1).await.unwrap(), 1);
    assert_eq!(store.sweep(later, 10).await.unwrap(), 1);
    assert_eq!(store.sweep(later, 10).await.unwrap(), 0);
    assert_eq!(
        store.claim(req(&live, fp("a"), later)).await.unwrap(),
        ClaimOutcome::Completed(response("s"))
    );
    // A swept key starts afresh.
    claimed(store, req(&old1, fp("other"), later)).await;
}

/// Generate one `#[tokio::test]` per suite case for a store maker.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr, sweeps = $sweeps:expr) => {
        use std::sync::Arc;
        use $crate::common::suite;

        async fn make() -> Option<Arc<dyn rebound_idempotency::Store>> {
            $make
                .await
                .map(|s| Arc::new(s) as Arc<dyn rebound_idempotency::Store>)
        }

        macro_rules! case {
            ($name:ident) => {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(store) = make().await {
                        suite::$name(&*store).await;
                    }
                }
            };
        }

        case!(claim_then_in_progress);
        case!(complete_then_replay);
        case!(mismatch_leaves_record);
        case!(lease_expiry_takeover_and_fencing);
        case!(release_on_failure);
        case!(ttl_expiry);
        case!(renew_extends_lease);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_claims_one_winner() {
            if let Some(store) = make().await {
                suite::concurrent_claims_one_winner(store).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sweep_in_batches() {
            if let Some(store) = make().await {
                if $sweeps {
                    suite::sweep_in_batches(&*store).await;
                } else {
                    assert_eq!(
                        store
                            .sweep(rebound_idempotency::Timestamp::from_millis(u64::MAX), 10)
                            .await
                            .unwrap(),
                        0
                    );
                }
            }
        }
    };
}
