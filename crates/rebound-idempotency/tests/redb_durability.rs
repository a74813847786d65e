//! The embedded store keeps its promises across a `kill -9` and an I/O
//! fault: claims and completions are durable, and the store recovers by
//! itself once the fault is lifted. Each scenario runs in a child process
//! (this test binary, re-run), which is killed or put under a file-size
//! limit.
#![cfg(all(feature = "redb", unix))]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::child;
use common::http::{app, client, post_key, serve, AppState};
use rebound::Clock;
use rebound_idempotency::problem::codes;
use rebound_idempotency::{IdempotencyLayer, RedbStore};

/// The child side of the tests below; does nothing in a normal test run.
#[test]
fn child_process() {
    let Some(role) = child::role() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match role.split_once(':') {
        Some(("serve", path)) => rt.block_on(serve_until_killed(PathBuf::from(path))),
        Some(("fault", path)) => rt.block_on(fault_then_recover(PathBuf::from(path))),
        Some(("log", path)) => rt.block_on(write_through_a_small_log(PathBuf::from(path))),
        _ => panic!("unknown child role {role}"),
    }
}

/// Serve the test app on the redb file with a 5 s lease, tell the parent
/// the address and every handler start, and wait to be killed.
async fn serve_until_killed(path: PathBuf) {
    let store = RedbStore::open(&path).unwrap();
    let (state, mut started) = AppState::tagged("K");
    let layer = IdempotencyLayer::builder(store)
        .single_tenant()
        .lease(Duration::from_secs(5))
        .build()
        .unwrap();
    let addr = serve(app(state, layer)).await;
    child::say(format!("addr {addr}"));
    while let Some(key) = started.recv().await {
        child::say(format!("started {key}"));
    }
}

async fn message(lines: &mut Option<child::Lines>) -> String {
    let mut taken = lines.take().unwrap();
    let (msg, back) = tokio::task::spawn_blocking(move || (taken.next_message(), taken))
        .await
        .unwrap();
    *lines = Some(back);
    msg.expect("the child exited")
}

/// A completed request and a claim in progress, then `kill -9` of the
/// process holding them. A new process on the same file replays the
/// completed response, refuses the claimed key while the dead holder's
/// lease lasts, then runs it once with a larger fencing token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_completions_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idem.redb");
    let (mut proc, lines) = child::spawn("child_process", &format!("serve:{}", path.display()));
    let mut lines = Some(lines);
    let addr: SocketAddr = message(&mut lines)
        .await
        .strip_prefix("addr ")
        .unwrap()
        .parse()
        .unwrap();
    let c = client();
    let done = post_key(&c, addr, "/orders", "done", "sku-1").await;
    assert_eq!(
        (done.status, done.body.as_str()),
        (201, "K run 1 previous 0 body sku-1")
    );
    assert_eq!(message(&mut lines).await, "started done");

    let c2 = c.clone();
    let in_flight = tokio::spawn(async move {
        c2.post(format!("http://{addr}/hang"))
            .header("Idempotency-Key", "crash")
            .send()
            .await
    });
    assert_eq!(message(&mut lines).await, "started crash");
    proc.kill().unwrap(); // SIGKILL
    proc.wait().unwrap();
    let lost = in_flight.await.unwrap();
    assert!(
        lost.is_err(),
        "the connection died with the process: {lost:?}"
    );

    // A new process (this one) on the same file.
    let (clock, time) = Clock::manual();
    let (state, _started) = AppState::tagged("P");
    state.gate.notify_one(); // its /hang answers at once
    let layer = IdempotencyLayer::builder(RedbStore::open(&path).unwrap())
        .single_tenant()
        .clock(clock)
        .lease(Duration::from_secs(5))
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let replay = post_key(&c, addr, "/orders", "done", "sku-1").await;
    assert!(replay.replayed());
    assert_eq!(replay.body, done.body);

    let held = post_key(&c, addr, "/hang", "crash", "").await;
    assert_eq!(
        held.status, 409,
        "the dead holder's claim survived: {}",
        held.body
    );
    assert_eq!(held.code(), codes::IN_PROGRESS);
    assert_eq!(state.runs("crash"), 0);

    time.advance(Duration::from_secs(6));
    let taken_over = post_key(&c, addr, "/hang", "crash", "").await;
    assert_eq!(
        (taken_over.status, taken_over.body.as_str()),
        (201, "P run 1 previous 1 finished late"),
        "taken over with fence 2"
    );
}

/// The child: requests succeed, then the file hits a size limit (every
/// request now gets 503 and the handler does not run), then the limit is
/// lifted and requests succeed again without a restart.
async fn fault_then_recover(path: PathBuf) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // Writing past the limit raises SIGXFSZ, which would kill the process;
    // with a listener the write fails with EFBIG instead.
    let _xfsz =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
            .unwrap();
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let state = AppState::default();
    let layer = IdempotencyLayer::builder_shared(store.clone())
        .single_tenant()
        .complete_retry_for(Duration::from_millis(1))
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    for i in 0..3 {
        assert_eq!(
            post_key(&c, addr, "/orders", &format!("ok-{i}"), "x")
                .await
                .status,
            201
        );
    }

    let original = getrlimit(Resource::Fsize);
    let size = std::fs::metadata(&path).unwrap().len();
    setrlimit(
        Resource::Fsize,
        Rlimit {
            current: Some(size),
            maximum: original.maximum,
        },
    )
    .unwrap();
    let mut refused = None;
    for i in 0..2_000 {
        let r = post_key(&c, addr, "/big", &format!("fill-{i}"), "").await;
        if r.status == 503 {
            assert_eq!(r.code(), codes::STORE_UNAVAILABLE);
            refused = Some(i);
            break;
        }
    }
    let refused = refused.expect("the file-size limit never failed a write");
    child::say(format!("refused after {refused} requests"));
    // A refused request was not run.
    assert_eq!(state.runs(&format!("fill-{refused}")), 0);

    // Lift the fault: the store reopens the file and serves again.
    setrlimit(Resource::Fsize, original).unwrap();
    let after = post_key(&c, addr, "/orders", "after", "y").await;
    assert_eq!(after.status, 201, "{}", after.body);
    assert!(post_key(&c, addr, "/orders", "after", "y").await.replayed());
    assert!(post_key(&c, addr, "/orders", "ok-0", "x").await.replayed());
    assert!(store.reopened() >= 1);
    child::say("recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_a_write_fault_is_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idem.redb");
    let (mut proc, mut lines) = child::spawn("child_process", &format!("fault:{}", path.display()));
    let said = tokio::task::spawn_blocking(move || lines.rest())
        .await
        .unwrap();
    let status = proc.wait().unwrap();
    assert!(
        status.success(),
        "child failed ({status}); it said {said:?}"
    );
    assert_eq!(
        said.last().map(String::as_str),
        Some("recovered"),
        "{said:?}"
    );
}

/// The write-ahead log size of the log test: small, so that its writes go
/// round the log several times.
const SMALL_LOG: u64 = 16 * 1024;
const LOG_T0: u64 = 1_000_000;

fn log_claim(key: &str, now: u64, ttl: Duration) -> rebound_idempotency::ClaimRequest<'_> {
    rebound_idempotency::ClaimRequest {
        key,
        fingerprint: rebound_idempotency::Fingerprint::of(&[b"a"]),
        now: rebound_idempotency::Timestamp::from_millis(now),
        lease: Duration::from_secs(5),
        ttl,
    }
}

/// The child: through a 16 KiB log, 100 short-lived and 200 long-lived
/// keys claimed and completed, one key claimed and left in progress, the
/// short-lived ones swept; then wait to be killed.
async fn write_through_a_small_log(path: PathBuf) {
    use rebound_idempotency::{ClaimOutcome, Store, Timestamp};
    let store = RedbStore::options()
        .log_size(SMALL_LOG)
        .open(&path)
        .unwrap();
    for i in 0..300 {
        let key = format!("k{i}");
        let ttl = Duration::from_secs(if i < 100 { 1 } else { 60 });
        let ClaimOutcome::Claimed { fence: 1 } =
            store.claim(log_claim(&key, LOG_T0, ttl)).await.unwrap()
        else {
            panic!("{key} not claimed")
        };
        let body = bytes::Bytes::from(format!("response {i} {}", "x".repeat(64)));
        store
            .complete(&key, 1, body, Timestamp::from_millis(LOG_T0), ttl)
            .await
            .unwrap();
    }
    store
        .claim(log_claim("held", LOG_T0, Duration::from_secs(60)))
        .await
        .unwrap();
    let swept = store
        .sweep(Timestamp::from_millis(LOG_T0 + 10_000), 1_000)
        .await
        .unwrap();
    child::say(format!("swept {swept}"));
    child::say(format!("checkpoints {}", store.checkpoints()));
    child::say("ready");
    std::future::pending::<()>().await;
}

/// Claims, completions and sweeps that went round a small write-ahead log
/// several times survive `kill -9`: the last checkpoint plus the log's
/// entries after it give back every record, and the log keeps its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_the_log_survive_kill_9() {
    use rebound_idempotency::{ClaimOutcome, Store};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idem.redb");
    let (mut proc, mut lines) = child::spawn("child_process", &format!("log:{}", path.display()));
    let said = tokio::task::spawn_blocking(move || {
        let mut said = Vec::new();
        while let Some(m) = lines.next_message() {
            if m == "ready" {
                return said;
            }
            said.push(m);
        }
        panic!("the child exited; it said {said:?}")
    })
    .await
    .unwrap();
    proc.kill().unwrap(); // SIGKILL
    proc.wait().unwrap();
    assert_eq!(said[0], "swept 100");
    let checkpoints: u64 = said[1]
        .strip_prefix("checkpoints ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(checkpoints >= 2, "the log went round {checkpoints} times");

    let log = path.with_extension("redb.log");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), SMALL_LOG);
    let store = RedbStore::options()
        .log_size(SMALL_LOG)
        .open(&path)
        .unwrap();
    let later = LOG_T0 + 10_000;
    for i in 100..300 {
        let key = format!("k{i}");
        let body = format!("response {i} {}", "x".repeat(64));
        assert_eq!(
            store
                .claim(log_claim(&key, later, Duration::from_secs(60)))
                .await
                .unwrap(),
            ClaimOutcome::Completed(body.into()),
            "{key}"
        );
    }
    // Swept: gone, so a new claim starts a new record (fence 1, not 2).
    for i in 0..100 {
        let key = format!("k{i}");
        assert_eq!(
            store
                .claim(log_claim(&key, later, Duration::from_secs(1)))
                .await
                .unwrap(),
            ClaimOutcome::Claimed { fence: 1 },
            "{key}"
        );
    }
    assert!(matches!(
        store
            .claim(log_claim("held", LOG_T0 + 1_000, Duration::from_secs(60)))
            .await
            .unwrap(),
        ClaimOutcome::InProgress { .. }
    ));
    assert_eq!(std::fs::metadata(&log).unwrap().len(), SMALL_LOG);
}
