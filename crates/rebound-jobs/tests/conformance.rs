//! One conformance suite, run against every queue. PostgreSQL reads
//! `REBOUND_POSTGRES_URL`; without it those checks print "skipped" unless
//! `REBOUND_REQUIRE_SERVICES=1`.

mod common;

#[cfg(feature = "embedded")]
mod embedded {
    async fn fresh() -> Option<rebound_jobs::EmbeddedQueue> {
        // The directory is leaked for the test's lifetime; the OS temp
        // cleaner removes it.
        let (clock, _) = rebound::Clock::manual();
        let (q, dir) = crate::common::embedded_queue(clock);
        let _ = dir.keep();
        Some(q)
    }
    rebound_jobs::conformance_suite!(fresh());

    #[tokio::test]
    async fn jobs_survive_reopening_the_file() {
        use rebound_jobs::{NewJob, Queue};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        let id = {
            let q = rebound_jobs::EmbeddedQueue::open(&path).unwrap();
            q.enqueue(NewJob::new("keep", "payload")).await.unwrap()
        };
        let q = rebound_jobs::EmbeddedQueue::open_existing(&path).unwrap();
        assert_eq!(q.job(id).await.unwrap().unwrap().payload, b"payload");
        let missing = rebound_jobs::EmbeddedQueue::open_existing(dir.path().join("nope.redb"));
        assert!(missing.unwrap_err().to_string().contains("no queue file"));
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    async fn fresh() -> Option<rebound_jobs::PostgresQueue> {
        let (clock, _) = rebound::Clock::manual();
        crate::common::postgres_queue(clock).await
    }
    rebound_jobs::conformance_suite!(fresh());
}

/// The brokers' timeline: 50 ms a unit (a 1.5 s lease), deliveries up to
/// 1 s late.
#[cfg(any(feature = "redis", feature = "nats", feature = "amqp"))]
mod brokers {
    use std::time::Duration;

    pub const UNIT: Duration = Duration::from_millis(50);
    pub const RESOLUTION: Duration = Duration::from_secs(1);
}

#[cfg(feature = "redis")]
mod redis {
    use rebound_jobs::conformance::{Limit, Subject};

    async fn fresh() -> Option<Subject> {
        let url = crate::common::service_url("REBOUND_REDIS_URL")?;
        let name = crate::common::unique("conformance");
        let guard = crate::common::RedisCleanup::new(&url, &name);
        let q = rebound_jobs::RedisStreamQueue::connect(&url, &name)
            .await
            .unwrap_or_else(|e| panic!("REBOUND_REDIS_URL={url} is set but Redis failed: {e}"));
        let (unit, res) = (crate::brokers::UNIT, crate::brokers::RESOLUTION);
        Some(
            Subject::broker(q, &name, unit, res)
                .limit(Limit::OneQueue)
                .limit(Limit::WaitingNotLookedUp)
                .limit(Limit::UntimedLostDeliveries)
                .keep(guard),
        )
    }
    rebound_jobs::conformance_suite!(subject: fresh());
}

#[cfg(feature = "nats")]
mod nats {
    use rebound_jobs::conformance::{Limit, Subject, LEASE_UNITS};

    async fn fresh() -> Option<Subject> {
        let url = crate::common::service_url("REBOUND_NATS_URL")?;
        let name = crate::common::unique("conformance");
        let guard = crate::common::NatsCleanup::new(&url, &name);
        let (unit, res) = (crate::brokers::UNIT, crate::brokers::RESOLUTION);
        let q = rebound_jobs::NatsQueue::connect(&url, &name)
            .await
            .unwrap_or_else(|e| panic!("REBOUND_NATS_URL={url} is set but NATS failed: {e}"))
            .with_lease(unit * LEASE_UNITS)
            .unwrap();
        Some(
            Subject::broker(q, &name, unit, res)
                .limit(Limit::OneQueue)
                .limit(Limit::WaitingNotLookedUp)
                .limit(Limit::BrokerEnqueueTime)
                .limit(Limit::ScheduledNotCounted)
                .limit(Limit::UntimedLostDeliveries)
                .keep(guard),
        )
    }
    rebound_jobs::conformance_suite!(subject: fresh());
}

#[cfg(feature = "amqp")]
mod amqp {
    use rebound_jobs::conformance::{Limit, Subject};

    async fn fresh() -> Option<Subject> {
        let url = crate::common::service_url("REBOUND_AMQP_URL")?;
        let name = crate::common::unique("conformance");
        let guard = crate::common::AmqpCleanup::new(&url, &name);
        // The checks hold up to 50 deliveries at once.
        let q = rebound_jobs::AmqpQueue::connect(&url, &name)
            .await
            .unwrap_or_else(|e| panic!("REBOUND_AMQP_URL={url} is set but RabbitMQ failed: {e}"))
            .with_prefetch(64)
            .unwrap();
        let (unit, res) = (crate::brokers::UNIT, crate::brokers::RESOLUTION);
        Some(
            Subject::broker(q, &name, unit, res)
                .limit(Limit::OneQueue)
                .limit(Limit::WaitingNotLookedUp)
                .limit(Limit::UntimedLostDeliveries)
                .keep(guard),
        )
    }
    rebound_jobs::conformance_suite!(subject: fresh());
}
