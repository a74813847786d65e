//! A middleware that follows a live policy file (feature `config`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use http::Extensions;
use rebound::config::{DependencyConfig, LivePolicies};
use rebound::throttle::AdaptiveThrottle;
use rebound::{CircuitBreaker, ConfigError, RetryBudget};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::{RetryMiddleware, RetryMiddlewareBuilder};

type Adjust = Arc<dyn Fn(RetryMiddlewareBuilder) -> RetryMiddlewareBuilder + Send + Sync>;

/// A [`RetryMiddleware`] for dependency `name` of a [`LivePolicies`] file,
/// rebuilt when a new version of the file is in force: the next request
/// after a reload runs under the new settings. Each host's breaker, budget
/// and throttle are **kept** (state and all: an open breaker stays open)
/// while their tables in the file do not change, and start afresh when
/// they do. A version whose table for `name` is missing or does not build
/// is refused (logged at ERROR); the middleware in force stays.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use rebound::config::{BuildEnv, LivePolicies};
/// use rebound_http::LiveRetryMiddleware;
///
/// let live = LivePolicies::open("policies.toml", BuildEnv::default())?;
/// let _watch = live.watch(Duration::from_secs(10))?; // keep it alive
/// let middleware = LiveRetryMiddleware::new(&live, "inventory", |b| b.generate_idempotency_keys(true))?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(middleware)
///     .build();
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct LiveRetryMiddleware {
    inner: Arc<Inner>,
}

struct Inner {
    live: LivePolicies,
    name: Arc<str>,
    adjust: Adjust,
    current: RwLock<Arc<Version>>,
    /// Held while a new version is built, so it is built once.
    rebuilding: Mutex<()>,
}

struct Version {
    /// The file version this was built from, or the last one looked at
    /// (a refused version is not looked at again).
    seen: u64,
    config: DependencyConfig,
    middleware: RetryMiddleware,
}

impl LiveRetryMiddleware {
    /// The middleware for `name` in the version of `live` in force, built
    /// as [`RetryMiddlewareBuilder::from_dependency_in`] does on the
    /// clock of `live`, then passed through `adjust` for what the file does
    /// not say (classifier, idempotency keys, headers, hooks). Later
    /// versions go through `adjust` too.
    pub fn new<F>(live: &LivePolicies, name: &str, adjust: F) -> Result<Self, ConfigError>
    where
        F: Fn(RetryMiddlewareBuilder) -> RetryMiddlewareBuilder + Send + Sync + 'static,
    {
        let snapshot = live.snapshot();
        let adjust: Adjust = Arc::new(adjust);
        let config = dependency(snapshot.policies(), name)?.clone();
        let builder = RetryMiddlewareBuilder::from_dependency_in(name, &config, live.env())?;
        let middleware = adjust(builder).build()?;
        Ok(LiveRetryMiddleware {
            inner: Arc::new(Inner {
                live: live.clone(),
                name: Arc::from(name),
                adjust,
                current: RwLock::new(Arc::new(Version {
                    seen: snapshot.version(),
                    config,
                    middleware,
                })),
                rebuilding: Mutex::new(()),
            }),
        })
    }

    /// The middleware in force, rebuilt first if a new version of the file
    /// is.
    pub fn current(&self) -> RetryMiddleware {
        let inner = &*self.inner;
        let version = inner.live.snapshot().version();
        let now = Arc::clone(&inner.current.read().unwrap_or_else(PoisonError::into_inner));
        if now.seen == version {
            return now.middleware.clone();
        }
        let _one = inner
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Arc::clone(&inner.current.read().unwrap_or_else(PoisonError::into_inner));
        if now.seen == version {
            return now.middleware.clone();
        }
        let next = match inner.rebuild(&now) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(
                    dependency = &*inner.name,
                    file = %inner.live.path().display(),
                    version,
                    error = %e,
                    "policy file version refused for this client; its settings in force stay"
                );
                Version {
                    seen: version,
                    config: now.config.clone(),
                    middleware: now.middleware.clone(),
                }
            }
        };
        let middleware = next.middleware.clone();
        *inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        middleware
    }
}

impl Inner {
    fn rebuild(&self, old: &Version) -> Result<Version, ConfigError> {
        let snapshot = self.live.snapshot();
        let config = dependency(snapshot.policies(), &self.name)?.clone();
        let builder =
            RetryMiddlewareBuilder::from_dependency_in(&self.name, &config, self.live.env())?;
        // Each host's state, kept where its table did not change.
        let same_budget = budget_of(&old.config) == budget_of(&config);
        let same_breaker = old.config.breaker == config.breaker;
        let same_throttle = old.config.throttle == config.throttle;
        let kept: HashMap<Arc<str>, Kept> = old
            .middleware
            .inner
            .hosts
            .all()
            .into_iter()
            .map(|h| {
                let kept = Kept {
                    budget: h.budget().filter(|_| same_budget).cloned(),
                    breaker: h.breaker().filter(|_| same_breaker).cloned(),
                    throttle: h.policy().throttle().filter(|_| same_throttle).cloned(),
                };
                (Arc::clone(h.authority_arc()), kept)
            })
            .collect();
        let middleware = (self.adjust)(builder)
            .per_host(move |authority, mut b| {
                if let Some(k) = kept.get(authority) {
                    if let Some(x) = &k.budget {
                        b = b.budget(x.clone());
                    }
                    if let Some(x) = &k.breaker {
                        b = b.breaker(x.clone());
                    }
                    if let Some(x) = &k.throttle {
                        b = b.throttle(x.clone());
                    }
                }
                Ok(b)
            })
            .build()?;
        tracing::info!(
            dependency = &*self.name,
            version = snapshot.version(),
            "client rebuilt from a new policy file version"
        );
        Ok(Version {
            seen: snapshot.version(),
            config,
            middleware,
        })
    }
}

/// One host's stateful parts carried into a new version.
struct Kept {
    budget: Option<RetryBudget>,
    breaker: Option<CircuitBreaker>,
    throttle: Option<AdaptiveThrottle>,
}

fn budget_of(c: &DependencyConfig) -> Option<&rebound::config::BudgetConfig> {
    c.retry.as_ref().and_then(|r| r.budget.as_ref())
}

fn dependency<'p>(
    policies: &'p rebound::config::Policies,
    name: &str,
) -> Result<&'p DependencyConfig, ConfigError> {
    policies.dependency(name).ok_or_else(|| {
        ConfigError::new(
            "retry middleware",
            "dependency",
            format!("the policy file has no dependency `{name}`"),
        )
    })
}

impl fmt::Debug for LiveRetryMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LiveRetryMiddleware")
            .field("dependency", &self.inner.name)
            .field("version", &now.seen)
            .field("middleware", &now.middleware)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Middleware for LiveRetryMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let middleware = self.current();
        middleware.handle(req, extensions, next).await
    }
}
