//! Middleware overhead per request, against plain reqwest and reqwest-retry,
//! in one run.
//!
//! * `loopback/*`: a GET to an axum server on 127.0.0.1, body read — what a
//!   user sees, network stack included.
//! * `in_process/*`: the same middleware chain ending in a terminal
//!   middleware that answers 200 without any I/O — the middleware's own cost,
//!   without the loopback noise that dwarfs it.
//!
//! Run: `cargo bench -p rebound-http --bench overhead`.

use std::time::Duration;

use axum::{routing::get, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use http::Extensions;
use rebound::{RetryBudget, RetryPolicy};
use rebound_http::RetryMiddleware;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};

/// Answers 200 without sending anything.
struct Terminal;

#[async_trait::async_trait]
impl Middleware for Terminal {
    async fn handle(
        &self,
        _: Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        Ok(Response::from(http::Response::new("ok")))
    }
}

fn rebound() -> RetryMiddleware {
    RetryMiddleware::builder()
        .policy(RetryPolicy::builder().max_attempts(3))
        .budget_per_host(|| RetryBudget::ratio(0.1).build())
        .build()
        .unwrap()
}

/// Like for like with reqwest-retry: retries with backoff, nothing else
/// (no budget, no attempt header).
fn rebound_like_for_like() -> RetryMiddleware {
    RetryMiddleware::builder()
        .policy(RetryPolicy::builder().max_attempts(3))
        .no_attempt_header()
        .build()
        .unwrap()
}

fn reqwest_retry() -> RetryTransientMiddleware<ExponentialBackoff> {
    RetryTransientMiddleware::new_with_policy(
        ExponentialBackoff::builder().build_with_max_retries(2),
    )
}

fn clients(terminal: bool) -> Vec<(&'static str, ClientWithMiddleware)> {
    let http = reqwest::Client::new();
    let chain = |b: ClientBuilder| if terminal { b.with(Terminal) } else { b };
    vec![
        (
            "reqwest-middleware bare",
            chain(ClientBuilder::new(http.clone())).build(),
        ),
        (
            "reqwest-retry",
            chain(ClientBuilder::new(http.clone()).with(reqwest_retry())).build(),
        ),
        (
            "rebound-http",
            chain(ClientBuilder::new(http.clone()).with(rebound())).build(),
        ),
        (
            "rebound-http like for like",
            chain(ClientBuilder::new(http.clone()).with(rebound_like_for_like())).build(),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/stock/17", get(|| async { "42" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let url = format!("http://{addr}/stock/17");

    let mut g = c.benchmark_group("loopback");
    g.measurement_time(Duration::from_secs(4));
    let plain = reqwest::Client::new();
    g.bench_function("plain reqwest", |b| {
        b.to_async(&rt).iter(|| async {
            let r = plain.get(&url).send().await.unwrap();
            r.bytes().await.unwrap()
        })
    });
    for (name, client) in clients(false) {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let r = client.get(&url).send().await.unwrap();
                r.bytes().await.unwrap()
            })
        });
    }
    g.finish();

    // No I/O here, so a current-thread runtime: no idle workers to wake,
    // and steadier figures.
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("in_process");
    g.measurement_time(Duration::from_secs(3));
    for (name, client) in clients(true) {
        g.bench_function(name, |b| {
            b.to_async(&local)
                .iter(|| async { client.get(&url).send().await.unwrap().status() })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
