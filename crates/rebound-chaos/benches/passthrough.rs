//! The proxy's pass-through overhead in its healthy phase, against calling
//! the service directly, in one run.
//!
//! * `loopback/*`: a reqwest GET to an axum service on 127.0.0.1, body
//!   read — directly, through a healthy proxy, and through a proxy whose
//!   faults are in force but do not hit (a scoped fault and a rate-0
//!   fault: the plan is drawn, nothing is injected).
//! * `loopback_1mib/*`: the same with a 1 MiB answer, streamed.
//! * `plan/*`: the decision alone, in process (no I/O).
//!
//! Run: `cargo bench -p rebound-chaos --bench passthrough`.

use std::time::Duration;

use axum::{routing::get, Router};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::Method;
use rebound_chaos::{ChaosProxy, FaultSet, Injector};

fn bench(c: &mut Criterion) {
    // One thread runs the client, the proxy and the service: the figures
    // are their CPU work plus loopback, and the machine's other load moves
    // them less than with threads racing for its two cores.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (service, healthy, unhit) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = vec![b'x'; 1 << 20];
        let app = Router::new()
            .route("/stock/17", get(|| async { "42" }))
            .route("/big", get(move || async move { big.clone() }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let service = format!("http://{addr}");
        let healthy = ChaosProxy::builder(&service).start().await.unwrap();
        let unhit = ChaosProxy::builder(&service)
            .faults(
                FaultSet::from_specs(
                    "error status=503 path_prefix=/orders\nlatency delay=1s rate=0",
                )
                .unwrap(),
            )
            .seed(1)
            .start()
            .await
            .unwrap();
        (service, healthy, unhit)
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let targets = [
        ("direct", service.clone()),
        ("via proxy, healthy", healthy.url()),
        ("via proxy, faults in force, none hits", unhit.url()),
    ];

    let mut group = c.benchmark_group("loopback");
    for (name, base) in &targets {
        let url = format!("{base}/stock/17");
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.bytes().await.unwrap().len(), 2);
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("loopback_1mib");
    group.throughput(Throughput::Bytes(1 << 20));
    for (name, base) in &targets[..2] {
        let url = format!("{base}/big");
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.bytes().await.unwrap().len(), 1 << 20);
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("plan");
    for (name, specs) in [
        ("healthy", ""),
        (
            "3 faults, none hits",
            "error status=503 path_prefix=/orders\nlatency delay=1s rate=0\nreset methods=POST",
        ),
    ] {
        let injector = Injector::new(FaultSet::from_specs(specs).unwrap());
        let random = rebound::RandomSource::seeded(7);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut rng = random.rng();
                std::hint::black_box(injector.plan(&Method::GET, "/stock/17", &mut rng))
            })
        });
    }
    group.finish();
    drop((healthy, unhit));
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
