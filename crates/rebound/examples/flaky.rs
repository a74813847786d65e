//! A flaky in-process dependency, called 40 times under a retry policy with
//! exponential backoff, full jitter and a 10 % retry budget. Prints every
//! attempt with the delay slept before it, then the totals.
//!
//! ```text
//! cargo run -p rebound --example flaky
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rebound::{Backoff, Jitter, RandomSource, RetryBudget, RetryEvent, RetryPolicy};

/// The dependency: fails 30 % of calls with a transient error, and is down
/// for calls 16–25 (an outage), when the budget must stop the retries.
async fn reserve_inventory(call: u32, fails: bool) -> Result<&'static str, String> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    if (16..=25).contains(&call) {
        Err("503 Service Unavailable (outage)".into())
    } else if fails {
        Err("connection reset by peer".into())
    } else {
        Ok("reserved")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let budget = RetryBudget::ratio(0.1)
        .min_retries_per_second(0.5)
        .window(Duration::from_secs(10))
        .build()?;
    let policy = RetryPolicy::builder()
        .dependency("inventory")
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(10)).with_jitter(Jitter::Full))
        .attempt_timeout(Duration::from_millis(200))
        .total_timeout(Duration::from_secs(1))
        .budget(budget.clone())
        .random(RandomSource::seeded(7))
        .build()?;

    let mut dependency_rng = fastrand::Rng::with_seed(7);
    let delay_before = Cell::new(Duration::ZERO);
    let (mut attempts, mut retries) = (0u32, 0u32);
    let mut stops: BTreeMap<String, u32> = BTreeMap::new();
    let started = Instant::now();

    println!("call  attempt  slept before  result");
    for call in 1..=40u32 {
        delay_before.set(Duration::ZERO);
        let mut attempt = 0u32;
        let report = policy
            .on_retry(|e: &RetryEvent<'_, &str, String>| delay_before.set(e.delay))
            .run(|| {
                attempt += 1;
                let (a, slept) = (attempt, delay_before.get());
                let fut = reserve_inventory(call, dependency_rng.f64() < 0.3);
                async move {
                    let r = fut.await;
                    let shown = match &r {
                        Ok(v) => v.to_string(),
                        Err(e) => e.clone(),
                    };
                    println!("{call:>4}  {a:>7}  {:>12}  {shown}", format!("{slept:.1?}"));
                    r
                }
            })
            .await;
        if !report.stop().is_success() {
            println!("{:>4}  gave up: {}", "", report.stop());
        }
        attempts += report.attempts();
        retries += report.retries();
        *stops.entry(report.stop().to_string()).or_default() += 1;
    }

    println!();
    println!(
        "40 calls, {attempts} attempts ({retries} retries), {:.2?} elapsed",
        started.elapsed()
    );
    for (stop, n) in &stops {
        println!("  {n:>3} × {stop}");
    }
    println!("budget: {:?}", budget.snapshot());
    Ok(())
}
