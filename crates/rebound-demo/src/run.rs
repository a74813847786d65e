//! The run: start both sides, restart their timelines together, place
//! orders at a steady rate, sample every second (and at each phase
//! change), then summarize.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::dashboard::Hub;
use crate::order::PlaceOrder;
use crate::sample::Sample;
use crate::side::{Kind, Side};
use crate::story::{self, StoryPhase};
use crate::summary::{PhaseLatencies, Summary};
use crate::{DemoError, DemoOptions};

/// Products on sale.
const SKUS: u32 = 20;
/// The share of orders whose address the label printer cannot print.
const BAD_ADDRESSES: f64 = 0.03;

/// When to sample: every whole second and at each phase change.
fn ticks(duration: f64, phases: &[StoryPhase]) -> Vec<f64> {
    let mut t: Vec<f64> = (1..=duration.ceil() as u64)
        .map(|s| (s as f64).min(duration))
        .chain(
            phases
                .iter()
                .map(|p| p.start)
                .filter(|s| *s > 0.0 && *s < duration),
        )
        .collect();
    t.sort_by(f64::total_cmp);
    t.dedup_by(|a, b| (*a - *b).abs() < 0.05);
    t
}

pub(crate) async fn run(opts: DemoOptions, hub: Arc<Hub>) -> Result<Summary, DemoError> {
    let duration = opts.duration;
    let secs = duration.as_secs_f64();
    let phases = story::phases(duration).map_err(|e| DemoError(e.to_string()))?;
    let timeline = story::timeline(duration).map_err(|e| DemoError(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix("rebound-demo-")
        .tempdir()
        .map_err(|e| DemoError(format!("cannot make a temporary folder: {e}")))?;
    // Stock for every order the run places, spread over the products; a
    // product sells out when retries reserve it twice.
    let expected = (f64::from(opts.rate) * secs).ceil() as u32;
    let units = (expected * 11 / 10).div_ceil(SKUS).max(1);
    let naive = Arc::new(
        Side::start(
            Kind::Naive,
            dir.path(),
            timeline.clone(),
            opts.seed,
            SKUS,
            units,
        )
        .await?,
    );
    let rebound =
        Arc::new(Side::start(Kind::Rebound, dir.path(), timeline, opts.seed, SKUS, units).await?);
    // Both stories start now.
    naive.proxy.control().restart_timeline();
    rebound.proxy.control().restart_timeline();
    let t0 = Instant::now();

    let load = tokio::spawn(place_orders(
        [naive.clone(), rebound.clone()],
        opts.rate,
        opts.seed,
        t0 + duration,
    ));
    let mut samples: Vec<Sample> = Vec::new();
    let mut latencies: PhaseLatencies = PhaseLatencies::new();
    let mut last = 0.0;
    for (i, t) in ticks(secs, &phases).into_iter().enumerate() {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(t)).await;
        let phase = story::phase_at(&phases, last + 1e-6);
        let bucket = latencies.entry(phase).or_default();
        let sample = Sample {
            i,
            t,
            dt: t - last,
            phase,
            naive: naive.sample(&mut bucket[0]).await,
            rebound: rebound.sample(&mut bucket[1]).await,
        };
        last = t;
        hub.push(sample.clone());
        samples.push(sample);
    }
    let _ = load.await;
    // Let the warehouse finish with the poison tasks and queued orders.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (dead, shipped, later) = match &rebound.warehouse {
        Some(w) => (
            w.dead_letters().await,
            w.counts.shipped.load(Ordering::Relaxed),
            w.counts.reserved_later.load(Ordering::Relaxed),
        ),
        None => (0, 0, 0),
    };
    let summary = Summary::build(
        opts.seed,
        secs,
        opts.rate,
        &phases,
        &samples,
        latencies,
        (dead, shipped, later),
    );
    hub.finish(&summary);
    drop(naive);
    if let Ok(side) = Arc::try_unwrap(rebound) {
        if let Some(w) = side.warehouse.clone() {
            drop(side);
            if let Ok(w) = Arc::try_unwrap(w) {
                w.shutdown().await;
            }
        }
    }
    drop(dir);
    Ok(summary)
}

/// The customers: `rate` orders a second until `until`, the same orders to
/// both sides, each sent once by a plain client (no retries).
async fn place_orders(sides: [Arc<Side>; 2], rate: u32, seed: u64, until: Instant) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut inflight = tokio::task::JoinSet::new();
    for order in 1u64.. {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        let o = PlaceOrder {
            order,
            sku: rng.u32(0..SKUS),
            bad_address: rng.f64() < BAD_ADDRESSES,
        };
        for side in &sides {
            let (side, http, o) = (side.clone(), http.clone(), o.clone());
            side.placed.fetch_add(1, Ordering::Relaxed);
            inflight.spawn(async move {
                let started = Instant::now();
                let body = serde_json::to_string(&o).unwrap_or_default();
                let _ = http
                    .post(format!("http://{}/orders", side.orders.addr))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                side.latencies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(ms);
            });
        }
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_on_seconds_and_phase_changes() {
        let phases = story::phases(Duration::from_secs(4)).unwrap();
        // Phases start at 0.6, 1.0, 1.8, 3.0.
        assert_eq!(ticks(4.0, &phases), [0.6, 1.0, 1.8, 2.0, 3.0, 4.0]);
    }
}
