//! The attempt loop's promise to every driver (`AttemptIo`): it holds one
//! attempt at a time, finishing or dropping each before it starts the next,
//! and drops every attempt before its own future completes. rebound-http
//! relies on it to lend each attempt the request's `&mut Extensions`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rebound::classify::{Decision, Outcome};
use rebound::retry::{Attempt, AttemptIo, Failure};
use rebound::{Backoff, Clock, RetryPolicy, Stop};

/// How many attempts exist right now, and the most that ever did.
#[derive(Default)]
struct Live {
    now: AtomicU32,
    most: AtomicU32,
    started: AtomicU32,
}

/// An attempt that counts itself alive until dropped. `Hang` never ends
/// (the timeout cuts it off), `Fail` and `Succeed` end after one pending
/// poll.
struct Counted {
    live: Arc<Live>,
    script: Script,
    polled: bool,
}

#[derive(Clone, Copy)]
enum Script {
    Hang,
    Fail,
    Succeed,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Future for Counted {
    type Output = Result<u32, Failure<&'static str>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.script {
            Script::Hang => Poll::Pending,
            Script::Fail => Poll::Ready(Err(Failure::Error("busy"))),
            Script::Succeed => Poll::Ready(Ok(7)),
        }
    }
}

struct Io {
    live: Arc<Live>,
    scripts: Vec<Script>,
}

impl AttemptIo<u32, &'static str> for Io {
    type Attempt = Counted;

    fn start(&mut self, attempt: &Attempt) -> Counted {
        let live = &self.live;
        assert_eq!(
            live.now.load(Ordering::SeqCst),
            0,
            "attempt {} started while another was alive",
            attempt.number()
        );
        let now = live.now.fetch_add(1, Ordering::SeqCst) + 1;
        live.most.fetch_max(now, Ordering::SeqCst);
        live.started.fetch_add(1, Ordering::SeqCst);
        let script = self.scripts[attempt.number() as usize - 1];
        Counted {
            live: Arc::clone(live),
            script,
            polled: false,
        }
    }

    fn classify(&self, outcome: Outcome<'_, u32, &'static str>) -> Decision {
        match outcome {
            Outcome::Ok(_) => Decision::DoNotRetry,
            _ => Decision::Retry,
        }
    }
}

fn policy(attempt_timeout: Option<Duration>) -> RetryPolicy {
    let b = RetryPolicy::builder()
        .clock(Clock::tokio())
        .max_attempts(4)
        .backoff(Backoff::constant(Duration::from_millis(10)));
    match attempt_timeout {
        Some(t) => b.attempt_timeout(t),
        None => b,
    }
    .build()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn one_attempt_at_a_time_and_none_after_the_loop() {
    let live = Arc::new(Live::default());
    let mut io = Io {
        live: Arc::clone(&live),
        // Cut off by its timeout, failed, then answered.
        scripts: vec![Script::Hang, Script::Fail, Script::Succeed],
    };
    let policy = policy(Some(Duration::from_millis(50)));
    let report = policy.drive(policy.start(), &mut io).await;
    assert_eq!((report.stop(), report.attempts()), (Stop::Succeeded, 3));
    assert_eq!(live.started.load(Ordering::SeqCst), 3);
    assert_eq!(live.most.load(Ordering::SeqCst), 1);
    assert_eq!(
        live.now.load(Ordering::SeqCst),
        0,
        "an attempt outlived the loop"
    );
}

#[tokio::test(start_paused = true)]
async fn no_attempt_outlives_a_loop_that_gives_up() {
    let live = Arc::new(Live::default());
    let mut io = Io {
        live: Arc::clone(&live),
        scripts: vec![Script::Fail, Script::Hang, Script::Fail, Script::Hang],
    };
    let policy = policy(Some(Duration::from_millis(50)));
    let report = policy.drive(policy.start(), &mut io).await;
    assert_eq!(
        (report.stop(), report.attempts()),
        (Stop::AttemptsExhausted, 4)
    );
    assert_eq!(live.most.load(Ordering::SeqCst), 1);
    assert_eq!(live.now.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_loop_drops_its_attempt() {
    let live = Arc::new(Live::default());
    let mut io = Io {
        live: Arc::clone(&live),
        scripts: vec![Script::Hang; 4],
    };
    let policy = policy(None);
    let cut = tokio::time::timeout(
        Duration::from_secs(1),
        policy.drive::<u32, &'static str, _>(policy.start(), &mut io),
    )
    .await;
    assert!(
        cut.is_err(),
        "the hanging attempt has no timeout of its own"
    );
    assert_eq!(live.started.load(Ordering::SeqCst), 1);
    assert_eq!(live.now.load(Ordering::SeqCst), 0);
}
