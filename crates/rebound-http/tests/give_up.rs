//! From a give-up to a fallback: the cause of a failed request, on the
//! report, on the error, and with `error_on_give_up` on one error path.
//! Real sockets on 127.0.0.1; a manual clock for the backoff.

mod common;

use std::time::Duration;

use common::{client, status, Action, TestServer};
use http::StatusCode;
use rebound::fallback::{Cause, Fallback};
use rebound::{Backoff, Clock, Jitter, RetryPolicy, Stop};
use rebound_http::{GiveUpExt, RetryMiddleware, RetryReport};

fn policy(clock: &Clock) -> rebound::RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(3)
        .clock(clock.clone())
        .backoff(Backoff::constant(Duration::from_millis(10)).with_jitter(Jitter::None))
}

#[tokio::test]
async fn a_final_503_is_a_response_with_a_cause_or_with_the_option_an_error() {
    let server = TestServer::start(|_, _| status(503)).await;
    let (clock, _) = Clock::manual();

    // Default: the last 503 comes back as a response; its report has the cause.
    let plain = client(
        RetryMiddleware::builder()
            .policy(policy(&clock))
            .build()
            .unwrap(),
    );
    let r = plain.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report = RetryReport::of(&r).unwrap();
    assert!(report.gave_up());
    assert_eq!(report.stop(), Stop::AttemptsExhausted);
    assert_eq!(report.cause(), Some(Cause::Failed));
    assert_eq!(server.count(), 3);

    // Opted in: the same give-up is an error naming the status and the cause.
    let strict = client(
        RetryMiddleware::builder()
            .dependency("inventory")
            .policy(policy(&clock))
            .error_on_give_up(true)
            .build()
            .unwrap(),
    );
    let e = strict.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(server.count(), 6, "still retried as configured");
    let gave_up = e.gave_up().expect("the middleware's error");
    assert_eq!(gave_up.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(gave_up.attempts(), 3);
    assert_eq!(gave_up.cause(), Cause::Failed);
    assert_eq!(e.cause(), Cause::Failed);
    let text = gave_up.to_string();
    assert!(
        text.starts_with(&format!("inventory ({}): ", server.authority())),
        "{text}"
    );
    assert!(text.contains("503"), "{text}");

    // And a fallback takes it as it comes.
    let fallback = Fallback::builder().dependency("inventory").build();
    let result = strict.get(server.url("/")).send().await.map(|_| "live");
    assert_eq!(
        fallback
            .call_with(result, GiveUpExt::cause, |_, _| Some("cached"))
            .unwrap(),
        "cached"
    );
}

#[tokio::test]
async fn successes_and_statuses_never_retried_stay_responses() {
    let server = TestServer::start(|i, _| if i == 0 { status(404) } else { status(200) }).await;
    let (clock, _) = Clock::manual();
    let c = client(
        RetryMiddleware::builder()
            .policy(policy(&clock))
            .error_on_give_up(true)
            .report_every_response(true)
            .build()
            .unwrap(),
    );
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let report = RetryReport::of(&r).unwrap();
    assert!(!report.gave_up());
    assert_eq!(
        report.cause(),
        Some(Cause::Failed),
        "a 404 is a failure, not a give-up"
    );
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(RetryReport::of(&r).unwrap().cause(), None);
}

#[tokio::test]
async fn a_timeout_and_a_dead_connection_have_their_causes() {
    let server = TestServer::start(|_, _| Action::Stall(Duration::from_secs(30))).await;
    let c = client(
        RetryMiddleware::builder()
            .policy(
                RetryPolicy::builder()
                    .max_attempts(1)
                    .attempt_timeout(Duration::from_millis(50)),
            )
            .build()
            .unwrap(),
    );
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.cause(), Cause::Timeout, "{e}");
    assert_eq!(
        rebound::fallback::HasCause::cause(e.gave_up().unwrap()),
        Cause::Timeout
    );

    // A builder error passes through untouched: not a give-up, a failure.
    let e = c.get("http://[::1").send().await.unwrap_err();
    assert!(e.gave_up().is_none());
    assert_eq!(e.cause(), Cause::Failed);
}
