//! Live reload of a policy file on disk: new settings take effect, state
//! of what did not change is kept, a bad file is refused and the old
//! policies stay. The watcher runs on a manual clock.
#![cfg(all(feature = "serde", feature = "tokio"))]

use std::path::PathBuf;
use std::time::Duration;

use rebound::breaker::State;
use rebound::config::{BuildEnv, LivePolicies, LoadError, Reload};
use rebound::{Clock, RandomSource};

/// A fresh directory for one test's file.
fn file(test: &str, ext: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rebound-live-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("policies.{ext}"))
}

fn env() -> (BuildEnv, rebound::ManualClock) {
    let (clock, time) = Clock::manual();
    let env = BuildEnv {
        clock,
        random: RandomSource::seeded(5),
    };
    (env, time)
}

const V1: &str = r#"
[dependencies.inventory.retry]
max_attempts = 3
budget = { kind = "token_bucket", max_tokens = 4, token_ratio = 0.1 }

[dependencies.inventory.breaker]
consecutive_failures = 2
break_duration = "30s"

[dependencies.payments.breaker]
consecutive_failures = 2
"#;

/// Open both breakers with two failures each.
fn open_breakers(live: &LivePolicies) {
    let s = live.snapshot();
    for dep in ["inventory", "payments"] {
        let cb = s.dependency(dep).unwrap().circuit_breaker().unwrap();
        for _ in 0..2 {
            let _ = cb.call(|| Err::<(), _>("down"));
        }
        assert_eq!(cb.state(), State::Open, "{dep}");
    }
}

#[test]
fn new_settings_take_effect_and_unchanged_breakers_and_budgets_keep_their_state() {
    let path = file("apply", "toml");
    std::fs::write(&path, V1).unwrap();
    let (env, _time) = env();
    let live = LivePolicies::open(&path, env).unwrap();
    assert_eq!(live.snapshot().version(), 1);
    open_breakers(&live);
    let budget = live
        .snapshot()
        .dependency("inventory")
        .unwrap()
        .budget()
        .unwrap()
        .clone();
    assert!(budget.try_withdraw(), "spend a token");
    let left = budget.snapshot();

    // More attempts for inventory (its breaker and budget tables unchanged);
    // a new breaker for payments.
    let v2 = V1.replace("max_attempts = 3", "max_attempts = 5").replace(
        "[dependencies.payments.breaker]\nconsecutive_failures = 2",
        "[dependencies.payments.breaker]\nconsecutive_failures = 3",
    );
    std::fs::write(&path, &v2).unwrap();
    assert_eq!(
        live.reload().unwrap(),
        Reload::Applied {
            version: 2,
            changed: vec!["inventory".to_owned(), "payments".to_owned()],
        }
    );
    let s = live.snapshot();
    let inventory = s.dependency("inventory").unwrap();
    let retry = inventory.retry_policy().unwrap();
    assert_eq!(retry.max_attempts(), 5, "the new setting is in force");
    assert_eq!(
        inventory.circuit_breaker().unwrap().state(),
        State::Open,
        "an unchanged breaker keeps its state"
    );
    assert_eq!(
        retry.breaker().unwrap().state(),
        State::Open,
        "and guards the new retry policy"
    );
    assert!(
        inventory.budget().unwrap().same_as(&budget),
        "the same budget"
    );
    assert_eq!(inventory.budget().unwrap().snapshot(), left);
    assert!(retry.budget().unwrap().same_as(&budget));
    assert_eq!(
        s.dependency("payments")
            .unwrap()
            .circuit_breaker()
            .unwrap()
            .state(),
        State::Closed,
        "a changed breaker starts afresh"
    );
    // The same text again: nothing to do.
    assert_eq!(live.reload().unwrap(), Reload::Unchanged);
}

#[test]
fn an_invalid_file_is_refused_and_the_old_policies_stay() {
    let path = file("refuse", "toml");
    std::fs::write(&path, V1).unwrap();
    let (env, _time) = env();
    let live = LivePolicies::open(&path, env).unwrap();
    open_breakers(&live);

    std::fs::write(&path, V1.replace("max_attempts = 3", "max_attempts = 0")).unwrap();
    let err = live.reload().unwrap_err();
    let invalid = err.invalid().expect("read and rejected");
    assert_eq!(invalid.path(), "dependencies.inventory.retry.max_attempts");
    assert_eq!(invalid.line(), Some(3));
    assert!(err.to_string().contains("policies.toml:3:"), "{err}");
    assert_eq!(live.last_error(), Some(err));
    let s = live.snapshot();
    assert_eq!(s.version(), 1);
    let inventory = s.dependency("inventory").unwrap();
    assert_eq!(inventory.retry_policy().unwrap().max_attempts(), 3);
    assert_eq!(inventory.circuit_breaker().unwrap().state(), State::Open);
    // Reported once: the same bad text is not parsed again.
    assert_eq!(live.reload().unwrap(), Reload::Unchanged);

    // A file that cannot be read: refused the same way.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(live.reload(), Err(LoadError::Io { .. })));
    assert_eq!(live.snapshot().version(), 1);

    // Fixed: applied, and the error cleared.
    std::fs::write(&path, V1.replace("max_attempts = 3", "max_attempts = 4")).unwrap();
    assert!(matches!(
        live.reload().unwrap(),
        Reload::Applied { version: 2, .. }
    ));
    assert_eq!(live.last_error(), None);
    let s = live.snapshot();
    let inventory = s.dependency("inventory").unwrap();
    assert_eq!(inventory.retry_policy().unwrap().max_attempts(), 4);
    assert_eq!(inventory.circuit_breaker().unwrap().state(), State::Open);
}

#[test]
fn a_file_that_is_invalid_from_the_start_is_an_error() {
    let path = file("open", "json");
    std::fs::write(
        &path,
        r#"{"dependencies": {"x": {"retry": {"max_attempts": 0}}}}"#,
    )
    .unwrap();
    let err = LivePolicies::open(&path, BuildEnv::default()).unwrap_err();
    assert_eq!(
        err.invalid().unwrap().path(),
        "dependencies.x.retry.max_attempts"
    );
}

#[tokio::test]
async fn the_watcher_reloads_on_its_clock() {
    let path = file("watch", "toml");
    std::fs::write(&path, V1).unwrap();
    let (env, time) = env();
    let live = LivePolicies::open(&path, env).unwrap();
    let mut outcomes = live.subscribe();
    let every = Duration::from_secs(5);
    let _watch = live.watch(every).unwrap();
    // The watcher waits for its first check.
    while time.pending_timers() == 0 {
        tokio::task::yield_now().await;
    }

    std::fs::write(&path, V1.replace("max_attempts = 3", "max_attempts = 6")).unwrap();
    assert_eq!(live.snapshot().version(), 1, "nothing before the check");
    time.advance(every);
    // A generous bound, so a loaded machine cannot hang the test; the
    // check itself is due at once on the manual clock.
    tokio::time::timeout(Duration::from_secs(30), outcomes.changed())
        .await
        .expect("the watcher reloads when its clock passes the check")
        .unwrap();
    let s = live.snapshot();
    assert_eq!(s.version(), 2);
    assert_eq!(
        s.dependency("inventory")
            .unwrap()
            .retry_policy()
            .unwrap()
            .max_attempts(),
        6
    );

    // A bad edit: reported, the old stays.
    std::fs::write(&path, "[dependencies.inventory.retry]\nmax_attempts = -1\n").unwrap();
    time.advance(every);
    tokio::time::timeout(Duration::from_secs(30), outcomes.changed())
        .await
        .expect("the watcher reports the refusal")
        .unwrap();
    assert!(live.last_error().is_some());
    assert_eq!(live.snapshot().version(), 2);

    assert!(live.watch(Duration::ZERO).is_err());
}
