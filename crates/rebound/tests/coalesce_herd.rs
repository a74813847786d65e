//! Request coalescing: one execution for a thousand concurrent callers,
//! shared errors without `Clone`, and a cancelled leader handing over.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rebound::coalesce::Coalescer;

#[derive(Debug)]
struct NotClone(&'static str);

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_callers_share_one_execution() {
    let herd: Coalescer<&str, u64, NotClone> = Coalescer::new();
    let executions = Arc::new(AtomicU32::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (herd, executions) = (herd.clone(), executions.clone());
        set.spawn(async move {
            herd.run("product:42", || async move {
                executions.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(42)
            })
            .await
        });
    }
    let results = set.join_all().await;
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| matches!(r, Ok(42))));
    assert_eq!(executions.load(Ordering::SeqCst), 1);
    assert_eq!(herd.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn errors_are_shared_without_clone() {
    let herd: Coalescer<u8, (), NotClone> = Coalescer::new();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let herd = herd.clone();
        set.spawn(async move {
            herd.run(1, || async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Err(NotClone("db down"))
            })
            .await
        });
    }
    let results = set.join_all().await;
    let errs: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap_err().failed().cloned().expect("the call's error"))
        .collect();
    assert!(errs.iter().all(|e| e.0 == "db down"));
    assert!(
        errs.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])),
        "one error, shared"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_over() {
    let herd: Coalescer<u8, u32, NotClone> = Coalescer::new();
    let executions = Arc::new(AtomicU32::new(0));
    let call = |herd: Coalescer<u8, u32, NotClone>, executions: Arc<AtomicU32>| async move {
        herd.run(7, || async move {
            let n = executions.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(n)
        })
        .await
    };
    let leader = tokio::spawn(call(herd.clone(), executions.clone()));
    tokio::task::yield_now().await;
    let mut followers = tokio::task::JoinSet::new();
    for _ in 0..5 {
        followers.spawn(call(herd.clone(), executions.clone()));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let results = followers.join_all().await;
    // One follower took over (execution 1); everyone got its result.
    assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
    assert_eq!(executions.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn different_keys_run_separately() {
    let herd: Coalescer<u8, u8, NotClone> = Coalescer::new();
    let executions = Arc::new(AtomicU32::new(0));
    let mut set = tokio::task::JoinSet::new();
    for k in 0..4u8 {
        for _ in 0..3 {
            let (herd, e) = (herd.clone(), executions.clone());
            set.spawn(async move {
                herd.run(k, || async move {
                    e.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok(k)
                })
                .await
            });
        }
    }
    set.join_all().await;
    assert_eq!(executions.load(Ordering::SeqCst), 4);
}
