//! A client that follows a live policy file: a new version applies to the
//! next request; each host's breaker keeps its state while its table does
//! not change; a refused version leaves the client as it was. Real sockets
//! on 127.0.0.1; policies on a manual clock.
#![cfg(feature = "config")]

mod common;

use common::{status, TestServer};
use rebound::breaker::State;
use rebound::config::{BuildEnv, LivePolicies};
use rebound::{Clock, RandomSource, Stop};
use rebound_http::{GiveUpExt, LiveRetryMiddleware};

const V1: &str = r#"
[dependencies.inventory.retry]
max_attempts = 2
backoff = { kind = "constant", base = "10ms", jitter = "none" }

[dependencies.inventory.breaker]
consecutive_failures = 2
break_duration = "30s"
"#;

#[tokio::test]
async fn a_new_version_applies_to_the_next_request_and_an_unchanged_breaker_stays_open() {
    let server = TestServer::start(|_, _| status(503)).await;
    let dir = std::env::temp_dir().join(format!("rebound-http-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policies.toml");
    std::fs::write(&path, V1).unwrap();
    let (clock, _time) = Clock::manual();
    let env = BuildEnv {
        clock,
        random: RandomSource::seeded(9),
    };
    let live = LivePolicies::open(&path, env).unwrap();
    let mw = LiveRetryMiddleware::new(&live, "inventory", |b| b.error_on_give_up(true)).unwrap();
    let c = client_live(mw.clone());

    // Version 1: two attempts, two failures: the host's breaker opens.
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.gave_up().unwrap().attempts(), 2);
    assert_eq!(server.count(), 2);
    let breaker = mw
        .current()
        .host(&server.authority())
        .unwrap()
        .breaker()
        .unwrap()
        .clone();
    assert_eq!(breaker.state(), State::Open);

    // Version 2 raises the attempts; the breaker's table is unchanged.
    std::fs::write(&path, V1.replace("max_attempts = 2", "max_attempts = 4")).unwrap();
    live.reload().unwrap();
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.gave_up().unwrap().stop(), Stop::BreakerOpen, "still open");
    assert_eq!(server.count(), 2);
    let host = mw.current().host(&server.authority()).unwrap();
    assert_eq!(
        host.policy().max_attempts(),
        4,
        "the new setting is in force"
    );
    assert_eq!(host.breaker().unwrap().state(), State::Open);

    // Version 3 changes the breaker: a fresh, closed one; four attempts.
    std::fs::write(
        &path,
        V1.replace("max_attempts = 2", "max_attempts = 4")
            .replace("consecutive_failures = 2", "consecutive_failures = 100"),
    )
    .unwrap();
    live.reload().unwrap();
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.gave_up().unwrap().attempts(), 4);
    assert_eq!(server.count(), 6);

    // A bad version is refused by the file handle; the client is unchanged.
    std::fs::write(&path, "[dependencies.inventory.retry]\nmax_attempts = 0\n").unwrap();
    assert!(live.reload().is_err());
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.gave_up().unwrap().attempts(), 4);
    assert_eq!(server.count(), 10);

    // A version without this dependency: refused for this client.
    std::fs::write(&path, "[dependencies.payments.retry]\nmax_attempts = 1\n").unwrap();
    live.reload().unwrap();
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(
        e.gave_up().unwrap().attempts(),
        4,
        "the settings in force stay"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn client_live(mw: LiveRetryMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .build()
}
