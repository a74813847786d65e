//! Behaviour over real sockets: a scripted server on 127.0.0.1, a reqwest
//! client with the middleware. Delays are observed on a manual clock injected
//! into the policy (sleeping on it advances it instantly), never by timing
//! the wall clock.

mod common;

use std::time::{Duration, SystemTime};

use common::{client, counter, status, status_with, until_timer, Action, Delays, TestServer};
use http::StatusCode;
use rebound::{Backoff, Clock, Jitter, RetryPolicy, Stop};
use rebound_http::{NotRetried, RetryMiddleware, RetryReport};

/// A policy on a manual clock with a tiny un-jittered backoff.
fn policy(clock: &Clock) -> rebound::RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(3)
        .clock(clock.clone())
        .backoff(Backoff::constant(Duration::from_millis(10)).with_jitter(Jitter::None))
}

fn gave_up(err: reqwest_middleware::Error) -> rebound_http::Error {
    match err {
        reqwest_middleware::Error::Middleware(e) => match e.downcast::<rebound_http::Error>() {
            Ok(e) => e,
            Err(e) => panic!("not a rebound_http::Error: {e:?}"),
        },
        other => panic!("expected the middleware's error, got {other:?}"),
    }
}

#[tokio::test]
async fn succeeds_on_the_nth_attempt_and_numbers_the_attempts() {
    let server = TestServer::start(|i, _| if i < 2 { status(503) } else { status(200) }).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let res = client(mw).get(server.url("/stock")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let report = RetryReport::of(&res).unwrap();
    assert_eq!((report.attempts(), report.stop()), (3, Stop::Succeeded));
    assert!(report.needed_retries());
    let numbers: Vec<_> = server
        .seen()
        .iter()
        .map(|s| s.header("x-attempt-count").unwrap().to_owned())
        .collect();
    assert_eq!(numbers, ["1", "2", "3"]);
}

#[tokio::test]
async fn attempt_header_can_be_renamed_or_switched_off() {
    let server = TestServer::start(|i, _| if i % 2 == 0 { status(503) } else { status(200) }).await;
    let (clock, _) = Clock::manual();
    let renamed = RetryMiddleware::builder()
        .policy(policy(&clock))
        .attempt_header(http::HeaderName::from_static("amz-sdk-attempt"))
        .build()
        .unwrap();
    client(renamed).get(server.url("/")).send().await.unwrap();
    let off = RetryMiddleware::builder()
        .policy(policy(&clock))
        .no_attempt_header()
        .build()
        .unwrap();
    client(off).get(server.url("/")).send().await.unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].header("amz-sdk-attempt"), Some("1"));
    assert_eq!(seen[1].header("amz-sdk-attempt"), Some("2"));
    assert!(seen[2..]
        .iter()
        .all(|s| s.header("x-attempt-count").is_none() && s.header("amz-sdk-attempt").is_none()));
}

#[tokio::test]
async fn retry_after_seconds_is_never_shortened() {
    let server = TestServer::start(|i, _| {
        if i == 0 {
            status_with(429, &[("retry-after", "3")])
        } else {
            status(200)
        }
    })
    .await;
    let (clock, time) = Clock::manual();
    let delays = Delays::default();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .on_retry(delays.hook())
        .build()
        .unwrap();
    let res = client(mw).get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let d = delays.get();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].2, Some(Duration::from_secs(3)));
    assert!(d[0].1 >= Duration::from_secs(3), "waited {:?}", d[0].1);
    assert!(time.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn retry_after_http_date_is_never_shortened() {
    // The server states its own Date, so the delay does not depend on our
    // clock: Retry-After is 5 s after it.
    let server = TestServer::start(|i, _| {
        if i == 0 {
            let now = SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                );
            let date = httpdate::fmt_http_date(now);
            let after = httpdate::fmt_http_date(now + Duration::from_secs(5));
            status_with(503, &[("date", &date), ("retry-after", &after)])
        } else {
            status(200)
        }
    })
    .await;
    let (clock, time) = Clock::manual();
    let delays = Delays::default();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .on_retry(delays.hook())
        .build()
        .unwrap();
    let res = client(mw).get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let d = delays.get();
    assert_eq!(d[0].2, Some(Duration::from_secs(5)));
    assert!(d[0].1 >= Duration::from_secs(5));
    assert!(time.elapsed() >= Duration::from_secs(5));
}

#[tokio::test]
async fn rate_limit_reset_headers_are_honoured() {
    let server = TestServer::start(|i, _| match i {
        0 => status_with(429, &[("x-ratelimit-reset", "4")]),
        1 => status_with(429, &[("ratelimit-reset", "2")]),
        _ => status(200),
    })
    .await;
    let (clock, _) = Clock::manual();
    let delays = Delays::default();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .on_retry(delays.hook())
        .build()
        .unwrap();
    client(mw).get(server.url("/")).send().await.unwrap();
    let d = delays.get();
    assert_eq!(d[0].2, Some(Duration::from_secs(4)));
    assert_eq!(d[1].2, Some(Duration::from_secs(2)));
    assert!(d[0].1 >= Duration::from_secs(4) && d[1].1 >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_server_delay_longer_than_allowed_stops_at_once_as_throttled() {
    let server = TestServer::start(|_, _| status_with(429, &[("retry-after", "120")])).await;
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock).max_server_delay(Duration::from_secs(10)))
        .build()
        .unwrap();
    let res = client(mw).get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let report = RetryReport::of(&res).unwrap();
    assert_eq!(
        report.stop(),
        Stop::Throttled {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    assert_eq!((report.attempts(), server.count()), (1, 1));
    assert_eq!(time.elapsed(), Duration::ZERO, "did not wait at all");
}

#[tokio::test]
async fn a_server_delay_crossing_the_deadline_stops_now_reporting_it() {
    let server = TestServer::start(|_, _| status_with(503, &[("retry-after", "10")])).await;
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock).total_timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    let res = client(mw).get(server.url("/")).send().await.unwrap();
    let report = RetryReport::of(&res).unwrap();
    assert_eq!(
        report.stop(),
        Stop::DeadlineExceeded {
            requested_delay: Some(Duration::from_secs(10))
        }
    );
    assert_eq!(server.count(), 1);
    assert_eq!(time.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn permanent_statuses_are_not_retried() {
    let server = TestServer::start(|_, s| {
        let code: u16 = s.path.trim_start_matches('/').parse().unwrap();
        status(code)
    })
    .await;
    let (clock, _) = Clock::manual();
    let c = client(
        RetryMiddleware::builder()
            .policy(policy(&clock))
            .build()
            .unwrap(),
    );
    for code in [400u16, 401, 403, 404, 409, 422] {
        let res = c.get(server.url(&format!("/{code}"))).send().await.unwrap();
        assert_eq!(res.status().as_u16(), code);
        let r = RetryReport::of(&res).unwrap();
        assert_eq!((r.attempts(), r.stop()), (1, Stop::Permanent), "{code}");
    }
    assert_eq!(server.count(), 6);
}

#[tokio::test]
async fn a_conflict_marked_with_retry_after_is_retried() {
    // What an Idempotency-Key server answers while the first request with
    // the same key is still running.
    let server = TestServer::start(|i, _| {
        if i == 0 {
            status_with(409, &[("retry-after", "1")])
        } else {
            status(201)
        }
    })
    .await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let res = client(mw)
        .post(server.url("/orders"))
        .header("idempotency-key", "\"k-1\"")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn overrides_per_status_and_per_method() {
    let server = TestServer::start(|_, _| status(501)).await;
    let (clock, _) = Clock::manual();
    let classifier = rebound_http::HttpClassifier::new()
        .retry_status(StatusCode::NOT_IMPLEMENTED, true)
        .method(http::Method::GET, rebound_http::MethodRule::Never);
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .classifier(classifier)
        .build()
        .unwrap();
    let c = client(mw);
    c.put(server.url("/")).body("x").send().await.unwrap();
    assert_eq!(server.count(), 3, "501 retried on PUT");
    let res = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(server.count(), 4, "GET never retried");
    assert!(matches!(
        RetryReport::of(&res).unwrap().not_retried(),
        Some(NotRetried::Method { .. })
    ));
}

#[tokio::test]
async fn post_without_a_key_is_never_retried() {
    let server = TestServer::start(|_, _| status(503)).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let c = client(mw);
    let res = c
        .post(server.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.count(), 1);
    let report = RetryReport::of(&res).unwrap();
    assert!(matches!(
        report.not_retried(),
        Some(NotRetried::MissingIdempotencyKey { .. })
    ));
    // The host's one policy, with retries forbidden for this request.
    assert_eq!((report.stop(), report.attempts()), (Stop::NotRetryable, 1));
    let res = c
        .patch(server.url("/orders/1"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn post_without_a_key_that_loses_its_connection_says_why() {
    let server = TestServer::start(|_, _| Action::Reset).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let err = client(mw)
        .post(server.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    let e = gave_up(err);
    assert!(matches!(
        e.not_retried(),
        Some(NotRetried::MissingIdempotencyKey { .. })
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("not retried") && msg.contains("idempotency-key"),
        "{msg}"
    );
    assert!(e.last_error().is_some());
}

#[tokio::test]
async fn post_with_a_key_is_retried_with_the_same_key() {
    let server = TestServer::start(|i, _| if i < 2 { status(503) } else { status(201) }).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let res = client(mw)
        .post(server.url("/orders"))
        .header("Idempotency-Key", "\"order-8e1\"")
        .body(r#"{"sku":17}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.header("idempotency-key"), Some("\"order-8e1\""));
        assert_eq!(&s.body[..], br#"{"sku":17}"#);
    }
}

#[tokio::test]
async fn a_generated_key_is_one_uuid_sent_on_every_attempt() {
    let server = TestServer::start(|i, _| match i {
        0 => Action::Reset,
        1 => status(502),
        _ => status(201),
    })
    .await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .generate_idempotency_keys(true)
        .build()
        .unwrap();
    let c = client(mw);
    let res = c
        .post(server.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let keys: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let k = &keys[0];
    assert!(k.starts_with('"') && k.ends_with('"'), "an sf-string: {k}");
    uuid::Uuid::parse_str(&k[1..k.len() - 1]).unwrap();
    // A second request gets a new key.
    c.post(server.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_ne!(server.seen()[3].header("idempotency-key").unwrap(), k);
}

#[tokio::test]
async fn connection_resets_and_lost_responses_are_retried() {
    let server = TestServer::start(|i, _| match i {
        0 => Action::Reset,
        1 => Action::Drop,
        _ => status(200),
    })
    .await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let res = client(mw)
        .delete(server.url("/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn resets_until_exhausted_give_a_typed_error_naming_host_and_reason() {
    let server = TestServer::start(|_, _| Action::Reset).await;
    let (clock, _) = Clock::manual();
    common::metrics();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let err = client(mw).get(server.url("/")).send().await.unwrap_err();
    let e = gave_up(err);
    assert_eq!((e.stop(), e.attempts()), (Stop::AttemptsExhausted, 3));
    assert_eq!(e.host(), server.authority());
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}: attempts exhausted after 3 attempts; last failure:",
            server.authority()
        )),
        "{msg}"
    );
    let host = server.authority();
    assert_eq!(counter("retry_attempts_total", &host, None), 2);
    assert_eq!(counter("retry_exhausted_total", &host, Some("attempts")), 1);
}

#[tokio::test]
async fn connection_refused_is_retried() {
    // Bind then drop a listener: nothing listens on that port any more.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let err = client(mw)
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    let e = gave_up(err);
    assert_eq!((e.stop(), e.attempts()), (Stop::AttemptsExhausted, 3));
    assert!(e.last_error().unwrap().is_connect());
}

#[tokio::test]
async fn a_stall_past_the_attempt_timeout_is_cut_off_counted_and_retried() {
    // The attempt timeout runs on the policy's (manual) clock: the server
    // stalls, and the test moves the clock past the timeout.
    let server = TestServer::start(|i, _| {
        if i == 0 {
            Action::Stall(Duration::from_secs(30))
        } else {
            status(200)
        }
    })
    .await;
    common::metrics();
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock).attempt_timeout(Duration::from_millis(200)))
        .build()
        .unwrap();
    let call = tokio::spawn(client(mw).get(server.url("/")).send());
    server.wait_for(1).await;
    until_timer(&time).await;
    time.advance(Duration::from_millis(199));
    assert!(!call.is_finished(), "cut off before its timeout");
    time.advance(Duration::from_millis(1));
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(server.count(), 2);
    assert_eq!(
        counter("dependency_timeout_total", &server.authority(), None),
        1
    );
}

#[tokio::test]
async fn stalls_until_exhausted_report_a_timeout() {
    let server = TestServer::start(|_, _| Action::Stall(Duration::from_secs(30))).await;
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(
            policy(&clock)
                .max_attempts(2)
                .attempt_timeout(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let call = tokio::spawn(client(mw).get(server.url("/")).send());
    for n in 1..=2 {
        server.wait_for(n).await;
        until_timer(&time).await;
        time.advance(Duration::from_millis(100));
    }
    let e = gave_up(call.await.unwrap().unwrap_err());
    assert!(e.is_timeout());
    assert_eq!(e.attempts(), 2);
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_and_the_error_says_why() {
    let server = TestServer::start(|_, _| Action::Reset).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        vec![Ok("part one, ".into()), Ok("part two".into())];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let err = client(mw)
        .put(server.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert_eq!(&server.seen()[0].body[..], b"part one, part two");
    let e = gave_up(err);
    assert_eq!(e.not_retried(), Some(&NotRetried::StreamingBody));
    assert!(
        e.to_string().contains("stream and cannot be sent twice"),
        "{e}"
    );
}

#[tokio::test]
async fn a_streaming_body_answered_503_comes_back_with_the_reason() {
    let server = TestServer::start(|_, _| status(503)).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![Ok("x".into())];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = client(mw)
        .put(server.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.count(), 1);
    assert_eq!(
        RetryReport::of(&res).unwrap().not_retried(),
        Some(&NotRetried::StreamingBody)
    );
}

#[tokio::test]
async fn errors_from_inner_middleware_are_permanent_and_untouched() {
    struct Refuse;
    #[async_trait::async_trait]
    impl reqwest_middleware::Middleware for Refuse {
        async fn handle(
            &self,
            _: reqwest::Request,
            _: &mut http::Extensions,
            _: reqwest_middleware::Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            Err(reqwest_middleware::Error::Middleware(anyhow_like(
                "refused",
            )))
        }
    }
    fn anyhow_like(msg: &'static str) -> anyhow::Error {
        anyhow::anyhow!(msg)
    }
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let c = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .with(Refuse)
        .build();
    let err = c.get("http://127.0.0.1:9/").send().await.unwrap_err();
    assert_eq!(err.to_string(), "refused");
}

#[tokio::test]
async fn the_total_timeout_cuts_an_attempt_and_stops_with_a_deadline() {
    // No per-attempt timeout: the attempt is cut by what is left of the
    // total, and no retry starts after it.
    let server = TestServer::start(|_, _| Action::Stall(Duration::from_secs(30))).await;
    common::metrics();
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock).total_timeout(Duration::from_millis(150)))
        .build()
        .unwrap();
    let call = tokio::spawn(client(mw).get(server.url("/")).send());
    server.wait_for(1).await;
    until_timer(&time).await;
    time.advance(Duration::from_millis(150));
    let e = gave_up(call.await.unwrap().unwrap_err());
    assert_eq!(
        (e.stop(), e.attempts()),
        (
            Stop::DeadlineExceeded {
                requested_delay: None
            },
            1
        )
    );
    assert!(e.is_timeout());
    assert_eq!(server.count(), 1);
    assert_eq!(
        counter("dependency_timeout_total", &server.authority(), None),
        1
    );
}

mod spans {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    #[derive(Default, Debug, Clone)]
    pub struct Seen {
        pub attempt: u64,
        pub dependency: String,
        pub method: String,
    }

    impl Visit for Seen {
        fn record_u64(&mut self, field: &Field, value: u64) {
            if field.name() == "attempt" {
                self.attempt = value;
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "dependency" {
                self.dependency = value.to_owned();
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "http.method" {
                self.method = format!("{value:?}");
            }
        }
    }

    #[derive(Clone, Default)]
    pub struct Recorder(pub Arc<Mutex<Vec<Seen>>>);

    impl<S: Subscriber> Layer<S> for Recorder {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            if attrs.metadata().name() == "rebound_http.attempt" {
                let mut seen = Seen::default();
                attrs.record(&mut seen);
                self.0.lock().unwrap().push(seen);
            }
        }
    }

    pub fn install() -> (Recorder, tracing::subscriber::DefaultGuard) {
        let r = Recorder::default();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(r.clone()));
        (r, guard)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_attempt_has_its_own_span() {
    let (recorder, _guard) = spans::install();
    let server = TestServer::start(|i, _| if i < 2 { status(503) } else { status(200) }).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    client(mw).get(server.url("/")).send().await.unwrap();
    let spans = recorder.0.lock().unwrap().clone();
    assert_eq!(
        spans.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(spans
        .iter()
        .all(|s| s.dependency == server.authority() && s.method == "GET"));
}

mod timeouts {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    /// The `after` of every "attempt timed out" event.
    #[derive(Clone, Default)]
    pub struct Recorder(pub Arc<Mutex<Vec<String>>>);

    struct After(Option<String>, bool);

    impl Visit for After {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "after" => self.0 = Some(format!("{value:?}")),
                "message" => self.1 = format!("{value:?}") == "attempt timed out",
                _ => {}
            }
        }
    }

    impl<S: Subscriber> Layer<S> for Recorder {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut after = After(None, false);
            event.record(&mut after);
            if let (Some(a), true) = after.into_parts() {
                self.0.lock().unwrap().push(a);
            }
        }
    }

    impl After {
        fn into_parts(self) -> (Option<String>, bool) {
            (self.0, self.1)
        }
    }

    pub fn install() -> (Recorder, tracing::subscriber::DefaultGuard) {
        let r = Recorder::default();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(r.clone()));
        (r, guard)
    }
}

/// A timeout of the client's own (reqwest's) is the time since its
/// *attempt* began, as for every other driver, not since the call began:
/// the second attempt here timed out after 50 ms, though the call had run
/// 200 ms by then.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_client_timeout_is_measured_from_the_attempt() {
    let (recorder, _guard) = timeouts::install();
    let server = TestServer::start(|_, _| Action::Stall(Duration::from_secs(30))).await;
    let mw = RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .max_attempts(2)
                .clock(Clock::tokio())
                .backoff(Backoff::constant(Duration::from_millis(100)).with_jitter(Jitter::None)),
        )
        .build()
        .unwrap();
    let c = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .with(mw)
    .build();
    let e = gave_up(c.get(server.url("/")).send().await.unwrap_err());
    assert!(e.is_timeout());
    assert_eq!(e.attempts(), 2);
    assert_eq!(*recorder.0.lock().unwrap(), ["50ms", "50ms"]);
}

#[tokio::test]
async fn a_clean_response_carries_a_report_only_when_asked() {
    let server = TestServer::start(|_, _| status(200)).await;
    let (clock, _) = Clock::manual();
    let quiet = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let res = client(quiet).get(server.url("/")).send().await.unwrap();
    assert!(
        RetryReport::of(&res).is_none(),
        "first attempt, 200: nothing to report"
    );
    let every = RetryMiddleware::builder()
        .policy(policy(&clock))
        .report_every_response(true)
        .build()
        .unwrap();
    let res = client(every).get(server.url("/")).send().await.unwrap();
    let report = RetryReport::of(&res).unwrap();
    assert_eq!((report.attempts(), report.stop()), (1, Stop::Succeeded));
    // A 404 on the first attempt is reported: the request failed for good.
    let server = TestServer::start(|_, _| status(404)).await;
    let quiet = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let res = client(quiet).get(server.url("/")).send().await.unwrap();
    assert_eq!(RetryReport::of(&res).unwrap().stop(), Stop::Permanent);
}

/// The attempts a middleware after the retry one saw, kept in the
/// request's extensions.
#[derive(Clone, Debug, PartialEq)]
struct Seen(u32);

/// A middleware after the retry one that counts the attempts in the
/// request's extensions; with `hang_first`, the first attempt then never
/// answers.
struct CountAttempts {
    hang_first: bool,
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for CountAttempts {
    async fn handle(
        &self,
        req: reqwest::Request,
        ext: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = ext.get::<Seen>().map_or(0, |s| s.0) + 1;
        ext.insert(Seen(n));
        if n == 1 && self.hang_first {
            std::future::pending::<()>().await;
        }
        next.run(req, ext).await
    }
}

/// Each attempt sees what the one before left in the request's extensions,
/// and the caller gets them back.
#[tokio::test]
async fn extensions_pass_from_attempt_to_attempt_and_back() {
    let server = TestServer::start(|i, _| if i < 2 { status(503) } else { status(200) }).await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .build()
        .unwrap();
    let c = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .with(CountAttempts { hang_first: false })
        .build();
    let mut ext = http::Extensions::new();
    ext.insert(Seen(10));
    let req = c.get(server.url("/")).build().unwrap();
    let res = c.execute_with_extensions(req, &mut ext).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        ext.get::<Seen>(),
        Some(&Seen(13)),
        "three attempts, each saw the last"
    );
}

/// An attempt cut off by its timeout while the rest of the chain holds the
/// request's extensions: what it wrote before it was dropped stays, the
/// next attempt sees it, and so does the caller.
#[tokio::test(start_paused = true)]
async fn extensions_survive_an_attempt_cut_off_by_its_timeout() {
    let server = TestServer::start(|_, _| status(200)).await;
    let mw = RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .clock(Clock::tokio())
                .attempt_timeout(Duration::from_secs(1))
                .backoff(Backoff::constant(Duration::from_millis(10))),
        )
        .report_every_response(true)
        .build()
        .unwrap();
    let c = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .with(CountAttempts { hang_first: true })
        .build();
    let mut ext = http::Extensions::new();
    let req = c.get(server.url("/")).build().unwrap();
    let res = c.execute_with_extensions(req, &mut ext).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(RetryReport::of(&res).unwrap().attempts(), 2);
    assert_eq!(
        ext.get::<Seen>(),
        Some(&Seen(2)),
        "the cut-off attempt's write stayed"
    );
    assert_eq!(
        server.count(),
        1,
        "only the second attempt reached the server"
    );
}
