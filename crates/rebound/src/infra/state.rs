//! The live state of every circuit breaker, retry budget, bulkhead and
//! adaptive throttle, by dependency: for a `/resilience` endpoint, an admin
//! page or a test.
//!
//! Every policy is listed here from the moment it is built (a breaker
//! before its first call, whatever its host) until its last handle is
//! dropped; nothing is named by hand. [`snapshot`] reads them all without
//! stopping them; the [`ResilienceState`] it returns is serializable with
//! the `serde` feature, and with the `axum` feature `state::axum::handler`
//! serves it as JSON:
//!
//! ```
//! use rebound::{CircuitBreaker, RetryBudget, RetryPolicy};
//!
//! let breaker = CircuitBreaker::builder().dependency("state-doc-inventory").build()?;
//! let retry = RetryPolicy::builder()
//!     .dependency("state-doc-inventory")
//!     .budget(RetryBudget::token_bucket(10.0, 0.1)?)
//!     .build()?;
//!
//! let state = rebound::state::snapshot();
//! let inventory = &state.dependencies["state-doc-inventory"];
//! assert_eq!(inventory.breakers[0].state, "closed");
//! assert_eq!(inventory.budgets.len(), 1);
//! drop((breaker, retry));
//! assert!(!rebound::state::snapshot().dependencies.contains_key("state-doc-inventory"));
//! # Ok::<(), rebound::ConfigError>(())
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::budget::BudgetSnapshot;

/// The state of every live policy, by dependency name.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ResilienceState {
    /// By dependency name (the policies' `dependency` label).
    pub dependencies: BTreeMap<String, DependencyState>,
}

/// The live policies of one dependency.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DependencyState {
    /// Circuit breakers (one per host for an HTTP client with per-host breakers).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub breakers: Vec<BreakerState>,
    /// Retry budgets (a budget shared by several policies appears once).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub budgets: Vec<BudgetState>,
    /// Bulkheads.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub bulkheads: Vec<BulkheadState>,
    /// Adaptive throttles.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub throttles: Vec<ThrottleState>,
}

/// A circuit breaker right now.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BreakerState {
    /// `closed`, `open`, `half_open`, `isolated` or `disabled`.
    pub state: &'static str,
    /// Calls in the window (closed state).
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// When open: milliseconds until a probe is let through.
    pub open_for_ms: Option<u64>,
}

/// A retry budget right now.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum BudgetState {
    /// A ratio budget.
    Ratio {
        /// Requests (first attempts) in the window.
        requests: u64,
        /// Retries spent in the window.
        retries: u64,
        /// Retries the window allows (`ratio × requests + floor`).
        allowed: f64,
    },
    /// A token bucket.
    TokenBucket {
        /// Tokens now.
        tokens: f64,
        /// The bucket's size.
        max_tokens: f64,
    },
}

/// A bulkhead right now.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BulkheadState {
    /// Calls running.
    pub in_use: u32,
    /// Slots free.
    pub available: u32,
    /// Calls waiting.
    pub queued: u32,
    /// Calls allowed at once.
    pub max_concurrent: u32,
}

/// An adaptive throttle right now.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ThrottleState {
    /// Requests in the window.
    pub requests: u64,
    /// Requests the server accepted in the window.
    pub accepts: u64,
    /// The probability a new request is refused locally, rounded to 4 places.
    pub rejection_probability: f64,
}

/// One policy's state, as a probe reads it.
pub(crate) enum Component {
    Breaker(BreakerState),
    Budget(BudgetState),
    Bulkhead(BulkheadState),
    Throttle(ThrottleState),
}

type Probe = Box<dyn Fn() -> Option<Component> + Send + Sync>;

struct Entry {
    dependency: Arc<str>,
    /// The policy's shared state, by address: a clone is not listed twice.
    id: usize,
    alive: Weak<dyn Any + Send + Sync>,
    probe: Probe,
}

/// Built policies. Only building one and taking a snapshot touch it.
static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Lists the policy whose shared state is `inner` under `dependency`;
/// `probe` reads its state while it lives. Dropped policies are forgotten
/// here.
pub(crate) fn register<T: Any + Send + Sync>(
    dependency: &Arc<str>,
    inner: &Arc<T>,
    probe: impl Fn(Arc<T>) -> Component + Send + Sync + 'static,
) {
    let id = Arc::as_ptr(inner) as *const () as usize;
    let weak = Arc::downgrade(inner);
    let alive: Weak<dyn Any + Send + Sync> = weak.clone();
    let mut all = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|e| e.alive.strong_count() > 0);
    if all
        .iter()
        .any(|e| e.id == id && *e.dependency == **dependency)
    {
        return;
    }
    all.push(Entry {
        dependency: Arc::clone(dependency),
        id,
        alive,
        probe: Box::new(move || weak.upgrade().map(&probe)),
    });
}

/// The state of every live breaker, budget, bulkhead and throttle.
pub fn snapshot() -> ResilienceState {
    let mut out = ResilienceState::default();
    let mut all = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|e| e.alive.strong_count() > 0);
    for e in all.iter() {
        let Some(c) = (e.probe)() else { continue };
        let dep = out
            .dependencies
            .entry(e.dependency.to_string())
            .or_default();
        match c {
            Component::Breaker(b) => dep.breakers.push(b),
            Component::Budget(b) => dep.budgets.push(b),
            Component::Bulkhead(b) => dep.bulkheads.push(b),
            Component::Throttle(t) => dep.throttles.push(t),
        }
    }
    out
}

impl From<BudgetSnapshot> for BudgetState {
    fn from(s: BudgetSnapshot) -> Self {
        match s {
            BudgetSnapshot::Ratio {
                requests,
                retries,
                allowed,
            } => BudgetState::Ratio {
                requests,
                retries,
                allowed,
            },
            BudgetSnapshot::TokenBucket { tokens, max_tokens } => {
                BudgetState::TokenBucket { tokens, max_tokens }
            }
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// A `/resilience` endpoint for axum (feature `axum`).
#[cfg(feature = "axum")]
pub mod axum {
    /// Serves [`snapshot`](super::snapshot) as JSON:
    /// `Router::new().route("/resilience", get(rebound::state::axum::handler))`.
    pub async fn handler() -> ::axum::Json<super::ResilienceState> {
        ::axum::Json(super::snapshot())
    }
}
