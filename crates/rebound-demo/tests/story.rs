//! The story's facts, on a compressed 12 s timeline over real sockets:
//! naive retries reserve stock twice and multiply load in the outage;
//! rebound reserves once, holds load under its budget, opens its breaker,
//! falls back and dead-letters poison tasks.

use std::time::Duration;

use rebound_demo::{Demo, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_holds_on_a_compressed_timeline() {
    let mut demo = Demo::start(DemoOptions {
        duration: Duration::from_secs(12),
        seed: 7,
        ..DemoOptions::default()
    })
    .await
    .expect("the demo starts");
    let summary = demo.wait().await.expect("the demo runs");
    let table = summary.table();
    println!("{table}");

    assert!(
        summary.naive.double_reservations > 0,
        "naive retries without a key must reserve some order twice\n{table}"
    );
    assert_eq!(
        summary.rebound.double_reservations, 0,
        "rebound must reserve every order exactly once\n{table}"
    );
    assert!(
        summary.rebound.duplicates_prevented > 0,
        "the idempotency layer must have answered some retries\n{table}"
    );
    let outage = summary.phase("outage").expect("an outage phase");
    assert!(outage.naive.orders > 0 && outage.rebound.orders > 0);
    assert!(
        outage.naive.load >= 3.5,
        "in the outage every naive order makes 4 attempts: {:.2}x\n{table}",
        outage.naive.load
    );
    assert!(
        outage.rebound.load <= 1.2,
        "in the outage rebound must hold the load under 1.2x: {:.2}x\n{table}",
        outage.rebound.load
    );
    assert!(
        outage.rebound.breaker_open_samples > 0,
        "rebound's breaker must open in the outage\n{table}"
    );
    assert!(
        outage.rebound.queued > 0,
        "rebound's fallback must queue orders in the outage\n{table}"
    );
    assert!(
        summary.dead_letters > 0,
        "poison tasks must end in the dead-letter queue\n{table}"
    );
    for fact in summary.facts() {
        assert!(fact.holds, "{}\n{table}", fact.claim);
    }
}

#[tokio::test]
async fn bad_options_are_refused_with_the_option_named() {
    let short = Demo::start(DemoOptions {
        duration: Duration::from_secs(1),
        ..DemoOptions::default()
    })
    .await;
    assert!(short.err().unwrap().0.contains("duration"));
    let zero = Demo::start(DemoOptions {
        rate: 0,
        ..DemoOptions::default()
    })
    .await;
    assert!(zero.err().unwrap().0.contains("rate"));
    let public = Demo::start(DemoOptions {
        dashboard: Some("0.0.0.0:0".parse().unwrap()),
        ..DemoOptions::default()
    })
    .await;
    assert!(public.err().unwrap().0.contains("loopback"));
}
