//! The standalone timeout, in tokio's paused time.

use std::time::Duration;

use rebound::Timeout;
use tokio::time::{sleep, Instant};

#[tokio::test(start_paused = true)]
async fn fast_calls_pass_slow_calls_are_cut_and_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let t = Timeout::new(Duration::from_millis(300))
        .unwrap()
        .dependency("inventory");
    let t0 = Instant::now();
    assert_eq!(
        t.run(async {
            sleep(Duration::from_millis(299)).await;
            1
        })
        .await,
        Ok(1)
    );
    let err = t.run(sleep(Duration::from_secs(60))).await.unwrap_err();
    assert_eq!(err.after(), Duration::from_millis(300));
    assert_eq!(Instant::now() - t0, Duration::from_millis(599));

    let v = snap.snapshot().into_vec();
    let (key, _, _, value) = v
        .iter()
        .find(|(k, ..)| k.key().name() == "dependency_timeout_total")
        .expect("counted");
    assert_eq!(value, &DebugValue::Counter(1));
    assert!(key
        .key()
        .labels()
        .any(|l| l.key() == "dependency" && l.value() == "inventory"));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_future_is_dropped() {
    struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Flag(dropped.clone());
    let t = Timeout::new(Duration::from_secs(1)).unwrap();
    let r = t
        .run(async move {
            let _f = flag;
            std::future::pending::<()>().await
        })
        .await;
    assert!(r.is_err());
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
}
