//! A dependency's table as one stack: the pipeline and its tower layer
//! apply what the file says.
#![cfg(all(feature = "serde", feature = "tower"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rebound::config::{BuildEnv, Policies};
use rebound::{Clock, RandomSource};
use tower::{service_fn, Layer, Service, ServiceExt};

const FILE: &str = r#"
[dependencies.inventory]
retry = { max_attempts = 3, backoff = { kind = "constant", base = "10ms", jitter = "none" } }
breaker = { consecutive_failures = 4, break_duration = "30s" }

[dependencies.both]
retry = { max_attempts = 2 }
hedge = { delay = "20ms" }

[dependencies.staged]
timeout = "1s"
pipeline = { stages = [{ type = "timeout", timeout = "2s" }] }
"#;

#[tokio::test]
async fn the_layer_retries_and_breaks_as_the_file_says() {
    let policies = Policies::from_toml_str(FILE).unwrap();
    let (clock, _time) = Clock::manual();
    let env = BuildEnv {
        clock,
        random: RandomSource::seeded(1),
    };
    let pipeline = policies
        .dependency("inventory")
        .unwrap()
        .pipeline_in("inventory", &env)
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let failing = service_fn(move |_: ()| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(std::io::Error::other("down")) }
    });
    let mut svc = pipeline.layer().layer(failing);
    // 3 attempts, all failures.
    assert!(svc.ready().await.unwrap().call(()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The 4th failure in a row opens the breaker, which stops the retries.
    assert!(svc.ready().await.unwrap().call(()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(svc.ready().await.unwrap().call(()).await.is_err());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "refused by the open breaker"
    );
}

#[test]
fn combinations_with_an_open_order_are_refused_by_name() {
    let policies = Policies::from_toml_str(FILE).unwrap();
    let env = BuildEnv::default();
    let e = policies
        .dependency("both")
        .unwrap()
        .pipeline_in("both", &env)
        .unwrap_err();
    assert_eq!(e.path(), "hedge");
    let e = policies
        .dependency("staged")
        .unwrap()
        .layer("staged")
        .unwrap_err();
    assert_eq!(e.path(), "timeout");
    assert!(e.to_string().contains("stage"), "{e}");
}
