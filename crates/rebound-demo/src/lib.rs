//! # rebound-demo
//!
//! The story rebound exists for, live on loopback with nothing to install:
//! a customer orders the last item, the inventory call times out, and
//! naive retries either reserve it twice or pile load onto a struggling
//! dependency. `rebound demo` runs it; this crate is what it runs.
//!
//! Two copies of one small shop run side by side, each with
//!
//! * an **inventory service** (axum, behind rebound-idempotency's layer on
//!   an embedded redb file) that counts units reserved twice for one order;
//! * a **chaos proxy** (rebound-chaos) in front of it following the story's
//!   timeline: healthy, a blip (answers lost after the inventory reserved,
//!   connections reset), a slow dependency (answers late, past the
//!   caller's timeout), an outage (503), recovery;
//! * an **order service** calling the inventory through rebound-http's
//!   middleware.
//!
//! One load generator places the same orders on both. The **naive** side
//! configures the middleware as a hand-written loop behaves: 3 immediate
//! retries, no idempotency key, no retry budget, no breaker. The
//! **rebound** side uses a policy shaped like the standard preset (backoff
//! with jitter, a 10 % retry budget, a circuit breaker), sends the order's
//! `Idempotency-Key`, and when the inventory cannot be reached its
//! [`Fallback`](rebound::fallback::Fallback) queues the order in the
//! warehouse's embedded rebound-jobs queue; the warehouse worker reserves
//! it later and ships confirmed orders, and orders whose label cannot be
//! printed (poison tasks) end in the dead-letter queue.
//!
//! Nothing here decides a retry: both sides are the library's own
//! middleware, worker and layer, configured differently.
//!
//! ```no_run
//! use std::time::Duration;
//! use rebound_demo::{Demo, DemoOptions};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), rebound_demo::DemoError> {
//! let mut demo = Demo::start(DemoOptions {
//!     duration: Duration::from_secs(12),
//!     ..DemoOptions::default()
//! })
//! .await?;
//! let summary = demo.wait().await?;
//! print!("{}", summary.table());
//! assert!(summary.facts().iter().all(|f| f.holds));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod clients;
mod dashboard;
mod fulfilment;
mod inventory;
mod order;
mod run;
mod sample;
mod side;
mod story;
mod summary;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use clients::ATTEMPT_TIMEOUT;
pub use dashboard::INDEX_HTML;
pub use sample::{Sample, SideSample};
pub use story::{phases, timeline, StoryPhase};
pub use summary::{Fact, PhaseRow, SideTotals, Summary};

/// Why the demo could not run: a bad option, or a part that could not
/// start (the message names which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoError(pub String);

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DemoError {}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The story's length; the phases keep their shares of it. Default
    /// 60 s; at least 5 s, at most 1 h.
    pub duration: Duration,
    /// Seed of the orders, the proxy's draws and the policies' jitter.
    /// Default 7.
    pub seed: u64,
    /// Orders per second, placed on each side. Default 40; 1 to 500.
    pub rate: u32,
    /// Serve the live dashboard on this address (port 0: any free port).
    /// Default `None`: no dashboard.
    pub dashboard: Option<SocketAddr>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(60),
            seed: 7,
            rate: 40,
            dashboard: None,
        }
    }
}

impl DemoOptions {
    /// Checks the options; the error names the bad one.
    pub fn validate(&self) -> Result<(), DemoError> {
        if self.duration < Duration::from_secs(5) || self.duration > Duration::from_secs(3600) {
            return Err(DemoError(format!(
                "duration must be between 5s and 1h (got {:?}): the story has five phases",
                self.duration
            )));
        }
        if !(1..=500).contains(&self.rate) {
            return Err(DemoError(format!(
                "rate must be between 1 and 500 orders per second (got {})",
                self.rate
            )));
        }
        if let Some(addr) = self.dashboard {
            if !addr.ip().is_loopback() {
                return Err(DemoError(format!(
                    "the dashboard listens on loopback only (got {addr})"
                )));
            }
        }
        Ok(())
    }
}

/// A running demo. Dropping it stops the dashboard (and the story, if it
/// is still running).
pub struct Demo {
    dashboard: Option<SocketAddr>,
    server: Option<JoinHandle<()>>,
    story: Option<JoinHandle<Result<Summary, DemoError>>>,
}

impl Demo {
    /// Starts every part on the current tokio runtime (the dashboard first,
    /// if asked for) and begins the story.
    pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
        options.validate()?;
        let phases = story::phases(options.duration).map_err(|e| DemoError(e.to_string()))?;
        let meta = serde_json::json!({
            "duration": options.duration.as_secs_f64(),
            "rate": options.rate,
            "seed": options.seed,
            "phases": phases,
            "sides": {
                "naive": "3 immediate retries, no idempotency key, no retry budget, no breaker",
                "rebound": "backoff with jitter, 10% retry budget, circuit breaker, Idempotency-Key, fallback queue, dead-letter queue",
            },
        });
        let hub = Arc::new(dashboard::Hub::new(meta));
        let (addr, server) = match options.dashboard {
            Some(at) => {
                let (addr, task) = dashboard::serve(at, hub.clone())
                    .await
                    .map_err(|e| DemoError(format!("cannot serve the dashboard on {at}: {e}")))?;
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        let story = tokio::spawn(run::run(options, hub));
        Ok(Demo {
            dashboard: addr,
            server,
            story: Some(story),
        })
    }

    /// The dashboard's address, when one was asked for.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard
    }

    /// Waits for the story to end and returns its summary. The dashboard
    /// keeps serving (with the summary) until the demo is dropped.
    pub async fn wait(&mut self) -> Result<Summary, DemoError> {
        match self.story.take() {
            Some(task) => task
                .await
                .map_err(|e| DemoError(format!("the story stopped: {e}")))?,
            None => Err(DemoError("the story was already waited for".to_owned())),
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(s) = &self.server {
            s.abort();
        }
        if let Some(s) = &self.story {
            s.abort();
        }
    }
}
