//! A pipeline from a policy file: total timeout → retry (with a budget) →
//! circuit breaker → attempt timeout, around a flaky in-process dependency.
//! Prints each call's outcome and the breaker and budget state after.
//!
//! ```text
//! cargo run -p rebound --features serde --example pipeline
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rebound::config::Policies;

const POLICIES: &str = r#"
[dependencies.inventory.pipeline]
stages = [
  { type = "timeout", timeout = "2s" },
  { type = "retry", max_attempts = 3, backoff = { kind = "exponential", base = "20ms", max_delay = "200ms" }, budget = { kind = "ratio", ratio = 0.2 } },
  { type = "circuit_breaker", consecutive_failures = 5, break_duration = "1s" },
  { type = "timeout", timeout = "100ms" },
]
"#;

/// Calls 1–12 hit a dependency whose first attempt fails on every third
/// call (a retry fixes it); calls 13–20 an outage, where the retries stop
/// when the breaker opens and the calls fail fast.
async fn reserve(call: u32, attempt: u32) -> Result<&'static str, String> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    match call {
        13.. => Err("503 Service Unavailable".into()),
        _ if call.is_multiple_of(3) && attempt == 1 => Err("connection reset".into()),
        _ => Ok("reserved"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policies = Policies::from_toml_str(POLICIES)?;
    let pipeline = policies
        .dependency("inventory")
        .and_then(|d| d.pipeline("inventory").transpose())
        .expect("the file has the pipeline")?;
    let stages: Vec<_> = pipeline.stages().iter().map(|s| s.name()).collect();
    println!("inventory: {}", stages.join(" → "));

    let attempts = AtomicU32::new(0);
    for call in 1..=20 {
        attempts.store(0, Ordering::Relaxed);
        let result = pipeline
            .execute(|| reserve(call, attempts.fetch_add(1, Ordering::Relaxed) + 1))
            .await;
        match result {
            Ok(v) => println!(
                "call {call:>2}: {v} after {} attempt(s)",
                attempts.load(Ordering::Relaxed)
            ),
            Err(e) => println!(
                "call {call:>2}: gave up ({}) after {} attempt(s)",
                e.stop(),
                e.attempts()
            ),
        }
    }
    let state = rebound::state::snapshot();
    println!("\nstate: {:#?}", state.dependencies["inventory"]);
    Ok(())
}
