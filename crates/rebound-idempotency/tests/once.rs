//! `once::Once` on every store: one run per (scope, key), the stored value
//! on repeats, in-progress and mismatch errors, failures and cancellations
//! released, detached runs finishing after their caller is gone, and a
//! crashed run taken over with fencing.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rebound::Clock;
use rebound_idempotency::once::{Once, OnceContext, OnceError, Ran};
use rebound_idempotency::{MemoryStore, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Charge {
    id: String,
    amount: u64,
    fence: u64,
}

fn once(store: &Arc<dyn Store>, clock: Clock) -> Once {
    Once::builder_shared(store.clone())
        .name("once-test")
        .clock(clock)
        .lease(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs once, replays the stored value, refuses another payload; scopes
/// and keys are independent.
async fn runs_once_and_replays(store: Arc<dyn Store>) {
    let once = once(&store, Clock::default());
    let key = common::unique("msg");
    let runs = Arc::new(AtomicU32::new(0));
    let charge = |amount: u64| {
        let runs = runs.clone();
        move |ctx: OnceContext| async move {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, std::io::Error>(Charge {
                id: format!("ch_{n}"),
                amount,
                fence: ctx.fence(),
            })
        }
    };
    let payload = br#"{"amount":4200}"#;
    let first = once
        .run("payments", &key, payload, charge(4200))
        .await
        .unwrap();
    let expected = Charge {
        id: "ch_1".into(),
        amount: 4200,
        fence: 1,
    };
    assert_eq!(first, Ran::First(expected.clone()));
    for _ in 0..3 {
        let again = once
            .run("payments", &key, payload, charge(4200))
            .await
            .unwrap();
        assert!(again.is_replayed());
        assert_eq!(again.into_inner(), expected);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let other = once.run("payments", &key, b"{}", charge(1)).await;
    assert!(matches!(other, Err(OnceError::Mismatch)), "{other:?}");
    // Another scope with the same key is another piece of work.
    let refunds = once.run("refunds", &key, b"{}", charge(7)).await.unwrap();
    assert!(matches!(refunds, Ran::First(Charge { amount: 7, .. })));
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // A stored value read as another type: a codec error, not a panic.
    let wrong: Result<Ran<Vec<u8>>, OnceError<std::io::Error>> = once
        .run("payments", &key, payload, |_| async { Ok(vec![1u8]) })
        .await;
    assert!(
        matches!(
            wrong,
            Err(OnceError::Codec {
                what: "decoded",
                ..
            })
        ),
        "{wrong:?}"
    );
}

/// While one run holds the key, another gets `InProgress` with the lease
/// left; a failed run releases the key and the next one runs, told it is
/// not the first.
async fn in_progress_and_failures(store: Arc<dyn Store>) {
    let once = once(&store, Clock::default());
    let key = common::unique("busy");
    let gate = Arc::new(Notify::new());
    let (started_tx, started) = oneshot::channel();
    let (o, k, g) = (once.clone(), key.clone(), gate.clone());
    let holder = tokio::spawn(async move {
        o.run("jobs", &k, b"p", move |_| async move {
            let _ = started_tx.send(());
            g.notified().await;
            Err::<u32, _>("downstream said no")
        })
        .await
    });
    started.await.unwrap();
    let busy = once
        .run("jobs", &key, b"p", |_| async { Ok::<u32, String>(0) })
        .await;
    match busy {
        Err(OnceError::InProgress { retry_after }) => {
            assert!(retry_after <= Duration::from_secs(10) && retry_after > Duration::ZERO)
        }
        other => panic!("expected InProgress, got {other:?}"),
    }
    gate.notify_one();
    let failed = holder.await.unwrap();
    assert!(matches!(
        failed,
        Err(OnceError::Failed("downstream said no"))
    ));

    let retry = once
        .run("jobs", &key, b"p", |ctx| async move {
            Ok::<_, String>(ctx.previous_attempts())
        })
        .await
        .unwrap();
    assert_eq!(retry, Ran::First(1));
}

/// Dropping a `run` future releases its claim; dropping a `run_detached`
/// future lets the work finish and store its value.
async fn cancellation(store: Arc<dyn Store>) {
    let once = once(&store, Clock::default());

    let key = common::unique("dropped");
    let (started_tx, started) = oneshot::channel();
    let (o, k) = (once.clone(), key.clone());
    let run = tokio::spawn(async move {
        o.run("jobs", &k, b"p", move |_| async move {
            let _ = started_tx.send(());
            std::future::pending::<Result<u32, String>>().await
        })
        .await
    });
    started.await.unwrap();
    run.abort();
    let _ = run.await;
    // The release is asynchronous: wait until the key is free.
    let mut next = None;
    for _ in 0..400 {
        match once
            .run("jobs", &key, b"p", |ctx| async move {
                Ok::<_, String>(ctx.previous_attempts())
            })
            .await
        {
            // The release / completion happens on another task: poll.
            Err(OnceError::InProgress { .. }) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => {
                next = Some(other.unwrap());
                break;
            }
        }
    }
    assert_eq!(next, Some(Ran::First(1)));

    let key = common::unique("detached");
    let gate = Arc::new(Notify::new());
    let (started_tx, started) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let (o, k, g) = (once.clone(), key.clone(), gate.clone());
    let run = tokio::spawn(async move {
        o.run_detached("jobs", k, &b"p"[..], move |_| async move {
            let _ = started_tx.send(());
            g.notified().await;
            let _ = done_tx.send(());
            Ok::<_, String>("sent".to_string())
        })
        .await
    });
    started.await.unwrap();
    run.abort(); // the caller is gone; the work is not
    let _ = run.await;
    gate.notify_one();
    done.await.unwrap();
    let mut replayed = None;
    for _ in 0..400 {
        match once
            .run("jobs", &key, b"p", |_| async {
                Ok::<_, String>("again".to_string())
            })
            .await
        {
            // The release / completion happens on another task: poll.
            Err(OnceError::InProgress { .. }) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => {
                replayed = Some(other.unwrap());
                break;
            }
        }
    }
    assert_eq!(replayed, Some(Ran::Replayed("sent".to_string())));
}

/// A run that stops renewing (its process crashed) is taken over after the
/// lease with a larger fence; when it wakes up, its value is not stored.
async fn takeover_with_fencing(store: Arc<dyn Store>) {
    let (frozen, _never) = Clock::manual();
    let (clock, time) = Clock::manual();
    let dead = once(&store, frozen);
    let live = once(&store, clock);
    let key = common::unique("crashed");
    let gate = Arc::new(Notify::new());
    let (started_tx, started) = oneshot::channel();
    let (k, g) = (key.clone(), gate.clone());
    let stuck = tokio::spawn(async move {
        dead.run("jobs", &k, b"p", move |ctx| async move {
            let _ = started_tx.send(());
            g.notified().await;
            Ok::<_, String>(format!("late, fence {}", ctx.fence()))
        })
        .await
    });
    started.await.unwrap();
    let early = live
        .run("jobs", &key, b"p", |_| async {
            Ok::<_, String>(String::new())
        })
        .await;
    assert!(matches!(early, Err(OnceError::InProgress { .. })));
    time.advance(Duration::from_secs(10));
    let taken = live
        .run("jobs", &key, b"p", |ctx| async move {
            Ok::<_, String>(format!("new, fence {}", ctx.fence()))
        })
        .await
        .unwrap();
    assert_eq!(taken, Ran::First("new, fence 2".to_string()));
    gate.notify_one();
    // The late run did its work (its caller gets the value) but cannot
    // overwrite the new owner's.
    assert_eq!(
        stuck.await.unwrap().unwrap(),
        Ran::First("late, fence 1".to_string())
    );
    let after = live
        .run("jobs", &key, b"p", |_| async {
            Ok::<_, String>(String::new())
        })
        .await
        .unwrap();
    assert_eq!(after, Ran::Replayed("new, fence 2".to_string()));
}

macro_rules! per_store {
    ($modname:ident, $make:expr) => {
        mod $modname {
            use super::*;

            async fn make() -> Option<Arc<dyn Store>> {
                $make.await.map(|s| Arc::new(s) as Arc<dyn Store>)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_once_and_replays_the_stored_value() {
                if let Some(store) = make().await {
                    runs_once_and_replays(store).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_progress_and_failed_runs() {
                if let Some(store) = make().await {
                    in_progress_and_failures(store).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dropped_and_detached_runs() {
                if let Some(store) = make().await {
                    cancellation(store).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_crashed_run_is_taken_over_with_fencing() {
                if let Some(store) = make().await {
                    takeover_with_fencing(store).await;
                }
            }
        }
    };
}

per_store!(memory, async { Some(MemoryStore::new()) });

#[cfg(feature = "redb")]
per_store!(redb, async {
    let dir = tempfile::tempdir().unwrap().keep();
    Some(rebound_idempotency::RedbStore::open(dir.join("idem.redb")).unwrap())
});

#[cfg(feature = "redis")]
per_store!(redis, common::redis_store());

#[cfg(feature = "postgres")]
per_store!(postgres, common::postgres_store());

/// The store down before the work starts: an error, and the work not run.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_store_that_is_down_runs_nothing() {
    let store = rebound_idempotency::PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
        .unwrap();
    let once = Once::builder(store).build().unwrap();
    let ran = AtomicU32::new(0);
    let r = once
        .run("jobs", "k", b"p", |_| async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(1)
        })
        .await;
    assert!(matches!(r, Err(OnceError::Store(_))), "{r:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}
