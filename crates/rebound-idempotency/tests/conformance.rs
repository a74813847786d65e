//! One conformance suite, run against every store.
//!
//! Redis and PostgreSQL read `REBOUND_REDIS_URL` / `REBOUND_POSTGRES_URL`;
//! without them these print "skipped" unless `REBOUND_REQUIRE_SERVICES=1`.

mod common;

mod memory {
    use rebound_idempotency::MemoryStore;
    crate::conformance_suite!(async { Some(MemoryStore::new()) }, sweeps = true);
}

#[cfg(feature = "redb")]
mod redb {
    use rebound_idempotency::RedbStore;

    async fn open() -> Option<RedbStore> {
        // The directory is leaked for the test's lifetime; the OS temp
        // cleaner removes it.
        let dir = tempfile::tempdir().unwrap().keep();
        Some(RedbStore::open(dir.join("idem.redb")).unwrap())
    }
    crate::conformance_suite!(open(), sweeps = true);

    /// Concurrent writes share commits (one fsync each): 64 claims at once
    /// take far fewer than 64 transactions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_committed_together() {
        use rebound_idempotency::{ClaimOutcome, ClaimRequest, Fingerprint, Store, Timestamp};
        use std::time::Duration;
        let store = std::sync::Arc::new(open().await.unwrap());
        let before = store.commits();
        let now = Timestamp::now(&rebound::Clock::system());
        let claims = (0..64).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("group-{i}");
                store
                    .claim(ClaimRequest {
                        key: &key,
                        fingerprint: Fingerprint::of(&[b"a"]),
                        now,
                        lease: Duration::from_secs(5),
                        ttl: Duration::from_secs(60),
                    })
                    .await
                    .unwrap()
            })
        });
        for c in futures_util::future::join_all(claims).await {
            assert!(matches!(c.unwrap(), ClaimOutcome::Claimed { fence: 1 }));
        }
        let commits = store.commits() - before;
        assert!(commits <= 32, "64 claims took {commits} commits");
        println!("64 concurrent claims in {commits} commits");
    }

    #[tokio::test]
    async fn records_survive_reopening_the_file() {
        use rebound_idempotency::{ClaimOutcome, ClaimRequest, Fingerprint, Store, Timestamp};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idem.redb");
        let t0 = Timestamp::from_millis(1_000_000);
        let req = ClaimRequest {
            key: "k",
            fingerprint: Fingerprint::of(&[b"a"]),
            now: t0,
            lease: Duration::from_secs(5),
            ttl: Duration::from_secs(60),
        };
        let stored = bytes::Bytes::from_static(b"kept");
        {
            let store = RedbStore::open(&path).unwrap();
            let ClaimOutcome::Claimed { fence } = store.claim(req).await.unwrap() else {
                panic!("not claimed")
            };
            store
                .complete("k", fence, stored.clone(), t0, req.ttl)
                .await
                .unwrap();
        }
        let reopened = RedbStore::open(&path).unwrap();
        assert_eq!(
            reopened.claim(req).await.unwrap(),
            ClaimOutcome::Completed(stored)
        );
    }
}

#[cfg(feature = "redis")]
mod redis {
    use crate::common::redis_store;
    crate::conformance_suite!(redis_store(), sweeps = false);

    /// One round trip per claim and per complete (EVALSHA), after the first
    /// call has loaded each script; Redis keeps a GC backstop TTL.
    #[tokio::test]
    async fn one_round_trip_per_claim_and_complete() {
        use rebound_idempotency::{ClaimOutcome, ClaimRequest, Fingerprint, Store, Timestamp};
        use std::time::Duration;
        let Some(store) = redis_store().await else {
            return;
        };
        let resp = bytes::Bytes::from_static(b"x");
        let now = Timestamp::now(&rebound::Clock::system());
        let mk = |k: &'static str| ClaimRequest {
            key: k,
            fingerprint: Fingerprint::of(&[b"a"]),
            now,
            lease: Duration::from_secs(5),
            ttl: Duration::from_secs(60),
        };
        // Warm up: scripts may need loading once per server.
        let ClaimOutcome::Claimed { fence } = store.claim(mk("warm")).await.unwrap() else {
            panic!()
        };
        store
            .complete("warm", fence, resp.clone(), now, Duration::from_secs(60))
            .await
            .unwrap();

        let before = store.round_trips();
        let ClaimOutcome::Claimed { fence } = store.claim(mk("k")).await.unwrap() else {
            panic!()
        };
        assert_eq!(store.round_trips() - before, 1, "claim");
        let before = store.round_trips();
        store
            .complete("k", fence, resp.clone(), now, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.round_trips() - before, 1, "complete");
        let before = store.round_trips();
        assert!(matches!(
            store.claim(mk("k")).await.unwrap(),
            ClaimOutcome::Completed(_)
        ));
        assert_eq!(store.round_trips() - before, 1, "replay");

        // The backstop TTL: retention (60 s) + grace (10 min), in ms.
        let url = std::env::var("REBOUND_REDIS_URL").unwrap();
        let mut conn = ::redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(store.redis_key("k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 600_000 && pttl <= 660_000, "pttl {pttl}");
    }

    #[tokio::test]
    async fn bad_prefix_and_url_are_named() {
        let e = rebound_idempotency::RedisStore::connect("not a url")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
        if let Some(store) = redis_store().await {
            let e = store.with_prefix("a{b").unwrap_err();
            assert!(e.to_string().contains("prefix"), "{e}");
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use crate::common::postgres_store;
    crate::conformance_suite!(postgres_store(), sweeps = true);

    /// One round trip per claim, complete and replay; `migrate` is
    /// idempotent.
    #[tokio::test]
    async fn one_round_trip_per_claim_and_complete() {
        use rebound_idempotency::{ClaimOutcome, ClaimRequest, Fingerprint, Store, Timestamp};
        use std::time::Duration;
        let Some(store) = postgres_store().await else {
            return;
        };
        store.migrate().await.unwrap();
        let resp = bytes::Bytes::from_static(b"x");
        let now = Timestamp::now(&rebound::Clock::system());
        let mk = |k: &'static str| ClaimRequest {
            key: k,
            fingerprint: Fingerprint::of(&[b"a"]),
            now,
            lease: Duration::from_secs(5),
            ttl: Duration::from_secs(60),
        };
        let before = store.round_trips();
        let ClaimOutcome::Claimed { fence } = store.claim(mk("k")).await.unwrap() else {
            panic!()
        };
        assert_eq!(store.round_trips() - before, 1, "claim");
        let before = store.round_trips();
        store
            .complete("k", fence, resp.clone(), now, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.round_trips() - before, 1, "complete");
        let before = store.round_trips();
        assert!(matches!(
            store.claim(mk("k")).await.unwrap(),
            ClaimOutcome::Completed(_)
        ));
        assert_eq!(store.round_trips() - before, 1, "replay");
        crate::common::drop_table(&store).await;
    }

    #[tokio::test]
    async fn down_database_is_unavailable_not_a_panic() {
        use rebound_idempotency::{ClaimRequest, Fingerprint, Store, StoreError, Timestamp};
        let store =
            rebound_idempotency::PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
                .unwrap();
        let err = store
            .claim(ClaimRequest {
                key: "k",
                fingerprint: Fingerprint::of(&[]),
                now: Timestamp::from_millis(1),
                lease: std::time::Duration::from_secs(1),
                ttl: std::time::Duration::from_secs(2),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        let e = rebound_idempotency::PostgresStore::connect("nope://").unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
    }
}
