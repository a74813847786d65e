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
