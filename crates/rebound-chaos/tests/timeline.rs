//! Timelines driven on a manual clock (requests over loopback) and on
//! tokio's paused time (the phase watcher), never on wall-clock sleeps.

mod common;

use std::time::Duration;

use common::{client, Upstream};
use rebound::Clock;
use rebound_chaos::{ChaosProxy, FaultKind, Source, Timeline};

const STORY: &str = r#"
[[phases]]
name = "healthy"
start = "0s"
end = "10s"

[[phases]]
name = "outage"
start = "10s"
end = "30s"
  [[phases.faults]]
  kind = "throttle"
  status = 503
  retry_after = "5s"

[[phases]]
name = "flaky"
start = "40s"
end = "60s"
  [[phases.faults]]
  kind = "error"
  status = 500
  times = 1

[[phases]]
name = "recovery"
start = "60s"
"#;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn requests_meet_the_phase_the_clock_is_in() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .timeline(Timeline::from_toml_str(STORY, "story.toml").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let c = client();
    let status = || async { c.get(proxy.url()).send().await.unwrap().status().as_u16() };

    assert_eq!(status().await, 200);
    assert_eq!(proxy.control().current().phase(), Some("healthy"));

    time.set_elapsed(s(10));
    assert_eq!(status().await, 503);
    assert_eq!(proxy.control().current().phase(), Some("outage"));
    time.set_elapsed(Duration::from_millis(29_999));
    assert_eq!(status().await, 503);

    // 30–40 s is a gap: healthy.
    time.set_elapsed(s(30));
    assert_eq!(status().await, 200);
    let gap = proxy.control().current();
    assert_eq!((gap.source(), gap.phase()), (Source::Timeline, None));
    assert_eq!(gap.next_change(), Some(s(40)));

    // One error, then the phase's `times` is spent.
    time.set_elapsed(s(45));
    assert_eq!(status().await, 500);
    assert_eq!(status().await, 200);

    time.set_elapsed(s(600));
    assert_eq!(status().await, 200);
    assert_eq!(proxy.control().current().phase(), Some("recovery"));

    let n = proxy.counts();
    assert_eq!(n.injected(FaultKind::Throttle), 2);
    assert_eq!(n.injected(FaultKind::Error), 1);
    assert_eq!((n.requests(), n.passed()), (7, 4));
}

#[tokio::test]
async fn the_watch_sees_each_phase_as_the_clock_reaches_it() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .timeline(Timeline::from_toml_str(STORY, "story.toml").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let mut watch = proxy.control().watch();
    assert_eq!(watch.borrow_and_update().phase(), Some("healthy"));
    for (at, phase) in [
        (10, Some("outage")),
        (30, None),
        (40, Some("flaky")),
        (60, Some("recovery")),
    ] {
        time.set_elapsed(s(at));
        common::within("the next phase", watch.changed())
            .await
            .unwrap();
        let now = watch.borrow_and_update().clone();
        assert_eq!(now.phase(), phase, "at {at}s");
        assert!(now.elapsed() >= s(at));
    }
}

#[tokio::test(start_paused = true)]
async fn the_phase_watcher_follows_tokio_paused_time() {
    // The default clock follows tokio's time; no request is sent, so the
    // paused clock only moves when the test advances it.
    let proxy = ChaosProxy::builder("http://127.0.0.1:9")
        .timeline(Timeline::from_toml_str(STORY, "story.toml").unwrap())
        .start()
        .await
        .unwrap();
    let mut watch = proxy.control().watch();
    assert_eq!(watch.borrow_and_update().phase(), Some("healthy"));
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(proxy.control().current().phase(), Some("healthy"));
    assert!(!watch.has_changed().unwrap());
    tokio::time::advance(Duration::from_millis(1)).await;
    watch.changed().await.unwrap();
    assert_eq!(watch.borrow_and_update().phase(), Some("outage"));
    tokio::time::advance(s(50)).await;
    watch.changed().await.unwrap();
    assert_eq!(watch.borrow_and_update().phase(), Some("recovery"));
    assert!(proxy.control().current().elapsed() >= s(60));
}

#[tokio::test]
async fn a_repeating_timeline_starts_over_and_counts_times_afresh() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let timeline = Timeline::from_toml_str(
        r#"
repeat = true
[[phases]]
name = "blip"
start = "0s"
end = "5s"
  [[phases.faults]]
  kind = "reset"
  times = 1
[[phases]]
name = "calm"
start = "5s"
end = "20s"
"#,
        "cycle.toml",
    )
    .unwrap();
    let proxy = ChaosProxy::builder(&up.url)
        .timeline(timeline)
        .clock(clock)
        .start()
        .await
        .unwrap();
    let c = client();
    let reset = || async { c.get(proxy.url()).send().await.is_err() };
    assert!(reset().await);
    assert!(!reset().await);
    time.set_elapsed(s(7));
    assert!(!reset().await);
    // The second cycle: the blip again, with its one reset.
    time.set_elapsed(s(21));
    assert_eq!(proxy.control().current().phase(), Some("blip"));
    assert!(reset().await);
    assert!(!reset().await);
    assert_eq!(proxy.counts().injected(FaultKind::Reset), 2);
}

#[tokio::test]
async fn restart_starts_the_timeline_over_now() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .timeline(Timeline::from_toml_str(STORY, "story.toml").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    time.set_elapsed(s(15));
    assert_eq!(proxy.control().current().phase(), Some("outage"));
    assert!(proxy.control().restart_timeline());
    let now = proxy.control().current();
    assert_eq!(now.phase(), Some("healthy"));
    assert_eq!(now.elapsed(), Duration::ZERO);
    time.advance(s(10));
    assert_eq!(proxy.control().current().phase(), Some("outage"));
}
