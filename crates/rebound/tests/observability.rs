//! Observability: every metric described and its series registered at zero
//! when its policy is built; the state of every breaker, budget, bulkhead
//! and throttle by dependency; budget figures printed as written.

use std::time::Duration;

use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use rebound::state::{BudgetState, ResilienceState};
use rebound::{Bulkhead, CircuitBreaker, Clock, RetryBudget, RetryPolicy};

/// `(kind, name, labels sorted, unit, help, value)` of every series.
type Row = (
    MetricKind,
    String,
    Vec<(String, String)>,
    Option<Unit>,
    Option<String>,
    DebugValue,
);

fn rows(recorder: &DebuggingRecorder) -> Vec<Row> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, help, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            (
                kind,
                key.name().to_string(),
                labels,
                unit,
                help.map(|h| h.to_string()),
                value,
            )
        })
        .collect()
}

fn find<'a>(rows: &'a [Row], name: &str, labels: &[(&str, &str)]) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.1 == name
            && labels.len() == r.2.len()
            && labels
                .iter()
                .all(|(k, v)| r.2.iter().any(|(rk, rv)| rk == k && rv == v))
    })
}

#[test]
fn series_exist_at_zero_and_are_described_when_policies_are_built() {
    let recorder = DebuggingRecorder::new();
    let (clock, _time) = Clock::manual();
    metrics::with_local_recorder(&recorder, || {
        let _retry = RetryPolicy::builder()
            .dependency("obs-inventory")
            .total_timeout(Duration::from_secs(2))
            .budget(
                RetryBudget::ratio(0.1)
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let _breaker = CircuitBreaker::builder()
            .dependency("obs-inventory")
            .clock(clock.clone())
            .build()
            .unwrap();
        let _bulkhead = Bulkhead::builder()
            .dependency("obs-inventory")
            .max_concurrent(4)
            .build()
            .unwrap();
    });
    let rows = rows(&recorder);
    let dep = ("dependency", "obs-inventory");
    for (name, labels) in [
        ("retry_attempts_total", vec![dep]),
        ("retry_budget_exhausted_total", vec![dep]),
        ("dependency_timeout_total", vec![dep]),
        ("retry_exhausted_total", vec![dep, ("reason", "attempts")]),
        ("retry_exhausted_total", vec![dep, ("reason", "deadline")]),
        ("retry_exhausted_total", vec![dep, ("reason", "budget")]),
        ("circuit_breaker_open_total", vec![dep]),
        ("circuit_breaker_rejected_total", vec![dep]),
        ("bulkhead_rejected_total", vec![dep, ("reason", "full")]),
    ] {
        let row = find(&rows, name, &labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} not registered: {rows:#?}"));
        assert_eq!(row.0, MetricKind::Counter);
        assert_eq!(row.5, DebugValue::Counter(0), "{name}");
        assert_eq!(row.3, Some(Unit::Count), "{name} has no unit");
        assert!(
            row.4.as_ref().is_some_and(|h| h.len() > 20),
            "{name} has no help"
        );
    }
    // No breaker on the retry, no queue on the bulkhead: no series for them.
    assert!(find(
        &rows,
        "retry_exhausted_total",
        &[dep, ("reason", "breaker_open")]
    )
    .is_none());
    assert!(find(
        &rows,
        "bulkhead_rejected_total",
        &[dep, ("reason", "queue_full")]
    )
    .is_none());
    let state = find(&rows, "circuit_breaker_state", &[dep]).expect("the state gauge");
    assert_eq!(state.0, MetricKind::Gauge);
    assert_eq!(state.5, DebugValue::Gauge(0.0.into()));
    assert!(state.4.as_ref().unwrap().contains("0 closed, 1 open"));
}

#[test]
fn the_state_of_every_policy_by_dependency() {
    let (clock, time) = Clock::manual();
    let breaker = CircuitBreaker::consecutive_failures(1)
        .dependency("state-payments")
        .break_duration(Duration::from_secs(30))
        .clock(clock.clone())
        .build()
        .unwrap();
    let budget = RetryBudget::ratio(0.1)
        .min_retries_per_second(10.0)
        .window(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    let retry = RetryPolicy::builder()
        .dependency("state-payments")
        .budget(budget.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    // The same budget in a second policy is listed once.
    let again = RetryPolicy::builder()
        .dependency("state-payments")
        .budget(budget.clone())
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder()
        .dependency("state-search")
        .max_concurrent(2)
        .build()
        .unwrap();
    let throttle = rebound::throttle::AdaptiveThrottle::builder()
        .dependency("state-search")
        .clock(clock.clone())
        .build()
        .unwrap();

    // Before any call, whatever happens later.
    let s = rebound::state::snapshot();
    let payments = &s.dependencies["state-payments"];
    assert_eq!(payments.breakers.len(), 1);
    assert_eq!(payments.breakers[0].state, "closed");
    assert_eq!(payments.budgets.len(), 1);
    let search = &s.dependencies["state-search"];
    assert_eq!(search.bulkheads[0].max_concurrent, 2);
    assert_eq!(search.bulkheads[0].in_use, 0);
    assert_eq!(search.throttles.len(), 1);

    breaker.try_acquire().unwrap().failure();
    time.advance(Duration::from_secs(10));
    for _ in 0..98 {
        budget.record_request();
    }
    let _slot = bulkhead.try_acquire().unwrap();
    let s = rebound::state::snapshot();
    let payments = &s.dependencies["state-payments"];
    assert_eq!(payments.breakers[0].state, "open");
    assert_eq!(payments.breakers[0].open_for_ms, Some(20_000));
    // 0.1 × 98 + 10/s × 10 s, as written: not 109.80000000000001.
    assert_eq!(
        payments.budgets[0],
        BudgetState::Ratio {
            requests: 98,
            retries: 0,
            allowed: 109.8
        }
    );
    assert!(
        format!("{budget:?}").contains("allowed: 109.8 "),
        "{budget:?}"
    );
    assert_eq!(s.dependencies["state-search"].bulkheads[0].in_use, 1);

    // Serializable, for an endpoint.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json["dependencies"]["state-payments"]["breakers"][0]["state"],
        "open"
    );
    assert_eq!(
        json["dependencies"]["state-payments"]["budgets"][0]["kind"],
        "ratio"
    );
    assert_eq!(
        json["dependencies"]["state-payments"]["budgets"][0]["allowed"],
        109.8
    );

    // Dropped policies leave.
    drop((breaker, retry, again, budget, bulkhead, _slot, throttle));
    let s: ResilienceState = rebound::state::snapshot();
    assert!(!s.dependencies.contains_key("state-payments"));
    assert!(!s.dependencies.contains_key("state-search"));
}
