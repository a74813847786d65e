//! A queue under test with the time it runs on (a manual clock for the
//! stores, real time for the brokers), a test's metrics, and a driver that
//! moves time until a condition holds.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rebound::{Clock, ManualClock};
use rebound_jobs::Queue;

/// How time moves for a queue under test.
pub enum Time {
    /// A manual clock the test moves: the stores, which keep every time
    /// the caller gives them.
    Manual(ManualClock),
    /// Real time: the brokers, whose leases and delays run on their own
    /// clocks.
    Real,
}

/// A queue under test and the clock it reads.
pub struct Env {
    pub queue: Arc<dyn Queue>,
    pub clock: Clock,
    pub time: Time,
    pub name: String,
    /// Whether [`Queue::job`] finds jobs that wait or run (the stores), not
    /// only dead-lettered ones (the brokers).
    pub live_records: bool,
    /// How late past its time a delayed job may run: the poll interval and
    /// the backend's own rounding of delays.
    pub resolution: Duration,
    /// Keeps the embedded queue's directory (or a broker's resources) alive.
    pub _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Env {
    /// The wall time on the test's clock.
    pub fn now(&self) -> rebound_jobs::Timestamp {
        rebound_jobs::time::wall(&self.clock)
    }

    /// Lets `d` pass: moves the manual clock in small steps, or sleeps.
    pub async fn pass(&self, d: Duration) {
        match &self.time {
            Time::Manual(m) => {
                let step = Duration::from_millis(100);
                let mut left = d;
                while !left.is_zero() {
                    let s = left.min(step);
                    m.advance(s);
                    left -= s;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Time::Real => tokio::time::sleep(d).await,
        }
    }

    /// Moves time by `step` until `cond` holds; fails naming `what` after
    /// 5000 steps of a manual clock, or 60 s of real time.
    pub async fn eventually<F, Fut>(&self, step: Duration, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        match &self.time {
            Time::Manual(m) => eventually(m, step, what, cond).await,
            Time::Real => real_eventually(Duration::from_secs(60), what, cond).await,
        }
    }
}

/// How often a test's workers poll: 200 ms of a manual clock (each poll is
/// a step the test moves), 50 ms of real time (a broker's delivery waits no
/// longer than needed for the next poll; nothing asserted depends on it).
pub fn poll_interval(env: &Env) -> Duration {
    match env.time {
        Time::Manual(_) => Duration::from_millis(200),
        Time::Real => Duration::from_millis(50),
    }
}

/// Polls `cond` every 20 ms of real time until it holds; fails naming
/// `what` after `limit`.
pub async fn real_eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what} after {limit:?}");
}

/// An embedded queue on a manual clock.
#[cfg(feature = "embedded")]
pub async fn embedded_env() -> Option<Env> {
    let (clock, manual) = Clock::manual();
    let (q, dir) = super::embedded_queue(clock.clone());
    Some(Env {
        queue: Arc::new(q),
        clock,
        time: Time::Manual(manual),
        name: super::unique("q"),
        live_records: true,
        resolution: Duration::from_millis(500),
        _guard: Some(Box::new(dir)),
    })
}

/// A PostgreSQL queue on a fresh table and a manual clock, or `None`.
#[cfg(feature = "postgres")]
pub async fn postgres_env() -> Option<Env> {
    let (clock, manual) = Clock::manual();
    let q = super::postgres_queue(clock.clone()).await?;
    Some(Env {
        queue: Arc::new(q),
        clock,
        time: Time::Manual(manual),
        name: super::unique("q"),
        live_records: true,
        resolution: Duration::from_millis(500),
        _guard: None,
    })
}

/// A Redis stream of its own on real time, or `None`.
#[cfg(feature = "redis")]
pub async fn redis_env() -> Option<Env> {
    let url = super::service_url("REBOUND_REDIS_URL")?;
    let name = super::unique("rebound-test");
    let q = rebound_jobs::RedisStreamQueue::connect(&url, &name)
        .await
        .unwrap_or_else(|e| panic!("REBOUND_REDIS_URL={url} is set but Redis failed: {e}"));
    let guard = super::RedisCleanup::new(&url, &name);
    Some(Env {
        queue: Arc::new(q),
        clock: Clock::system(),
        time: Time::Real,
        name,
        live_records: false,
        resolution: Duration::from_millis(700),
        _guard: Some(Box::new(guard)),
    })
}

/// Advances `manual` by `step` (and lets the runtime run for 2 ms) until
/// `cond` holds; fails after 5000 steps, naming `what`.
pub async fn eventually<F, Fut>(manual: &ManualClock, step: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..5000 {
        if cond().await {
            return;
        }
        manual.advance(step);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("gave up waiting for {what}");
}

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let s = recorder.snapshotter();
        recorder
            .install()
            .expect("no other recorder in this test binary");
        s
    })
}

/// Installs the test binary's metrics recorder (call before building a
/// worker whose metrics a test reads).
pub fn metrics() {
    snapshotter();
}

/// Every series seen so far: the recorder's snapshots drain counters, so
/// each read adds the drained values here (tests read their own queue's
/// series, and may run at the same time).
#[derive(Default)]
struct Seen {
    counters: std::collections::HashMap<(String, Vec<(String, String)>), u64>,
    gauges: std::collections::HashMap<(String, Vec<(String, String)>), f64>,
    described: std::collections::HashMap<String, (Option<metrics::Unit>, String)>,
}

fn seen() -> std::sync::MutexGuard<'static, Seen> {
    static SEEN: OnceLock<std::sync::Mutex<Seen>> = OnceLock::new();
    let mut g = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for (key, unit, desc, value) in snapshotter().snapshot().into_vec() {
        let k = key.key();
        let labels: Vec<(String, String)> = k
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let id = (k.name().to_owned(), labels);
        if let Some(d) = desc {
            g.described
                .insert(k.name().to_owned(), (unit, d.to_string()));
        }
        match value {
            DebugValue::Counter(v) => *g.counters.entry(id).or_default() += v,
            DebugValue::Gauge(v) if v.into_inner() != 0.0 => {
                g.gauges.insert(id, v.into_inner());
            }
            _ => {}
        }
    }
    g
}

fn has(labels: &[(String, String)], key: &str, value: &str) -> bool {
    labels.iter().any(|(k, v)| k == key && v == value)
}

/// The value of counter `name` with label `queue` (and `reason`).
pub fn counter(name: &str, queue: &str, reason: Option<&str>) -> u64 {
    seen()
        .counters
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && has(labels, "queue", queue)
                && reason.is_none_or(|r| has(labels, "reason", r))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// The last non-zero value of gauge `name` with label `queue`.
pub fn gauge(name: &str, queue: &str) -> Option<f64> {
    seen()
        .gauges
        .iter()
        .find(|((n, labels), _)| n == name && has(labels, "queue", queue))
        .map(|(_, v)| *v)
}

/// The registered description (unit, help) of metric `name`.
pub fn description(name: &str) -> Option<(Option<metrics::Unit>, String)> {
    seen().described.get(name).cloned()
}

/// A JetStream stream of its own (1 s ack wait) on real time, or `None`.
#[cfg(feature = "nats")]
pub async fn nats_env() -> Option<Env> {
    let url = super::service_url("REBOUND_NATS_URL")?;
    let name = super::unique("rebound-test");
    let q = rebound_jobs::NatsQueue::connect(&url, &name)
        .await
        .unwrap_or_else(|e| panic!("REBOUND_NATS_URL={url} is set but NATS failed: {e}"))
        .with_lease(Duration::from_secs(1))
        .unwrap();
    let guard = super::NatsCleanup::new(&url, &name);
    Some(Env {
        queue: Arc::new(q),
        clock: Clock::system(),
        time: Time::Real,
        name,
        live_records: false,
        resolution: Duration::from_millis(700),
        _guard: Some(Box::new(guard)),
    })
}

/// A RabbitMQ quorum queue of its own on real time, or `None`.
#[cfg(feature = "amqp")]
pub async fn amqp_env() -> Option<Env> {
    let url = super::service_url("REBOUND_AMQP_URL")?;
    let name = super::unique("rebound-test");
    let q = rebound_jobs::AmqpQueue::connect(&url, &name)
        .await
        .unwrap_or_else(|e| panic!("REBOUND_AMQP_URL={url} is set but RabbitMQ failed: {e}"));
    let guard = super::AmqpCleanup::new(&url, &name);
    Some(Env {
        queue: Arc::new(q),
        clock: Clock::system(),
        time: Time::Real,
        name,
        live_records: false,
        resolution: Duration::from_millis(700),
        _guard: Some(Box::new(guard)),
    })
}
