//! The layer's metrics, read from a recorder installed for this test
//! binary: key reuse, responses stored after their client hung up, and
//! store failures.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::http::{app, client, post_key, serve, AppState};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rebound_idempotency::{IdempotencyLayer, MemoryStore};

/// Counter totals by (name, dependency, outcome or operation). Reading a
/// snapshot resets the recorder's counters, so totals are accumulated here
/// for every test of the binary.
fn counter(name: &str, dependency: &str, label: &str) -> u64 {
    static RECORDER: OnceLock<(Snapshotter, Mutex<HashMap<String, u64>>)> = OnceLock::new();
    let (snapshotter, totals) = RECORDER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        (snapshotter, Mutex::new(HashMap::new()))
    });
    let mut totals = totals.lock().unwrap();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            *totals
                .entry(format!("{}{{{}}}", key.name(), labels.join(",")))
                .or_default() += n;
        }
    }
    let find = |kind: &str| {
        totals
            .get(&format!("{name}{{dependency={dependency},{kind}={label}}}"))
            .copied()
    };
    find("outcome").or_else(|| find("operation")).unwrap_or(0)
}

fn install() {
    counter("", "", "");
}

/// A replay, a duplicate in progress and a mismatch each count one
/// `idempotency_key_reused_total`; first requests do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_reuse_is_counted() {
    install();
    let (state, mut started) = AppState::tagged("M");
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .name("metrics-reuse")
        .single_tenant()
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    post_key(&c, addr, "/orders", "a", "1").await;
    post_key(&c, addr, "/orders", "a", "1").await; // replayed
    post_key(&c, addr, "/orders", "a", "2").await; // mismatch
    let c2 = c.clone();
    let held = tokio::spawn(async move { post_key(&c2, addr, "/hang", "b", "").await });
    started.recv().await.unwrap();
    started.recv().await.unwrap();
    post_key(&c, addr, "/hang", "b", "").await; // in progress
    state.gate.notify_one();
    held.await.unwrap();

    let reused = |o| counter("idempotency_key_reused_total", "metrics-reuse", o);
    assert_eq!(reused("replayed"), 1);
    assert_eq!(reused("mismatch"), 1);
    assert_eq!(reused("in_progress"), 1);
    assert_eq!(reused("stored"), 0);
    assert_eq!(
        counter("idempotency_requests_total", "metrics-reuse", "stored"),
        2
    );
}

/// Clients that hang up while their handlers run: every handler runs to
/// its end and is counted as stored, exactly once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_is_counted_when_the_client_is_gone() {
    install();
    let (state, mut started) = AppState::tagged("G");
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .name("metrics-gone")
        .single_tenant()
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    const N: u64 = 50;
    for i in 0..N {
        let c = c.clone();
        let request =
            tokio::spawn(async move { post_key(&c, addr, "/hang", &format!("g{i}"), "").await });
        assert_eq!(started.recv().await.unwrap(), format!("g{i}"));
        request.abort();
        let _ = request.await;
    }
    let stored = || counter("idempotency_requests_total", "metrics-gone", "stored");
    assert_eq!(stored(), 0);
    state.open_gate();
    let mut settled = false;
    for _ in 0..1000 {
        if stored() >= N {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(settled, "{} of {N} stored", stored());
    assert_eq!(stored(), N);
    assert_eq!(state.finished.lock().unwrap().len() as u64, N);
    assert_eq!(
        counter("idempotency_requests_total", "metrics-gone", "released"),
        0
    );
    for i in 0..N {
        let r = post_key(&c, addr, "/hang", &format!("g{i}"), "").await;
        assert_eq!((r.status, r.replayed()), (201, true));
    }
    assert_eq!(
        state.total.load(std::sync::atomic::Ordering::SeqCst) as u64,
        N
    );
}

/// A store that cannot be reached counts its failures by operation.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn store_failures_are_counted() {
    install();
    let store = rebound_idempotency::PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
        .unwrap();
    let layer = IdempotencyLayer::builder_shared(Arc::new(store))
        .name("metrics-down")
        .single_tenant()
        .build()
        .unwrap();
    let addr = serve(app(AppState::default(), layer)).await;
    let c = client();
    for i in 0..3 {
        assert_eq!(
            post_key(&c, addr, "/orders", &format!("d{i}"), "")
                .await
                .status,
            503
        );
    }
    assert_eq!(
        counter("idempotency_store_errors_total", "metrics-down", "claim"),
        3
    );
    assert_eq!(
        counter(
            "idempotency_requests_total",
            "metrics-down",
            "store_unavailable"
        ),
        3
    );
}

/// The layer's headline series exist, at zero and described, from the
/// moment it is built: a dashboard shows 0 before the first retry.
#[tokio::test]
async fn series_are_described_and_registered_when_the_layer_is_built() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        IdempotencyLayer::builder(MemoryStore::new())
            .name("metrics-built")
            .single_tenant()
            .build()
            .unwrap();
    });
    let rows = recorder.snapshotter().snapshot().into_vec();
    for name in ["idempotency_key_reused_total", "idempotency_requests_total"] {
        let (_, unit, help, value) = rows
            .iter()
            .find(|(k, ..)| {
                k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "dependency" && l.value() == "metrics-built")
            })
            .unwrap_or_else(|| panic!("{name} not registered"));
        assert_eq!(*value, DebugValue::Counter(0), "{name}");
        assert_eq!(*unit, Some(metrics::Unit::Count), "{name}");
        assert!(
            help.as_ref().is_some_and(|h| h.contains("by dependency")),
            "{name}"
        );
    }
}
