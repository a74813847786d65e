//! A [`RetryMiddlewareBuilder`] from a dependency's table in a policy file
//! (feature `config`).

use std::sync::Arc;

use rebound::config::{BuildEnv, DependencyConfig, Policies, RetryConfig};
use rebound::{ConfigError, RetryPolicy};

use super::RetryMiddlewareBuilder;

const C: &str = "retry middleware";

impl RetryMiddlewareBuilder {
    /// The middleware for dependency `name` of a policy file: its retry
    /// policy, budget, breaker and throttle, and `name` as the
    /// [`dependency`](Self::dependency) label of every series. Adjust the
    /// rest (classifier, idempotency keys, headers) before building.
    ///
    /// Each setting has one place in the file, and here is where it goes:
    ///
    /// | in `[dependencies.NAME]` | in the middleware |
    /// |---|---|
    /// | `retry` (attempts, backoff, timeouts, `max_server_delay`) | the [`policy`](Self::policy) every host starts from |
    /// | `retry.budget` | a budget **per host** ([`budget_per_host`](Self::budget_per_host)) |
    /// | `breaker` | a breaker **per host** ([`breaker_per_host`](Self::breaker_per_host)), guarding every attempt |
    /// | `throttle` | a throttle **per host** ([`throttle_per_host`](Self::throttle_per_host)), guarding every attempt |
    /// | `bulkhead` | not here: a bulkhead bounds the caller's concurrency; take it with [`DependencyConfig::bulkhead`] |
    /// | `timeout`, `hedge`, `pipeline` | refused: the middleware would not apply them (use `retry.attempt_timeout` / `retry.total_timeout`, or the tower layers) |
    ///
    /// With no `retry` table, each request gets one attempt (through the
    /// breaker and throttle, if any). The file's `retry.breaker` and
    /// `retry.throttle` are refused when it is loaded (see
    /// [`DependencyConfig::validate`]). Policies are built on the default
    /// clock and fresh randomness; see [`from_dependency_in`](Self::from_dependency_in)
    /// for others.
    ///
    /// ```
    /// use rebound::config::Policies;
    /// use rebound_http::RetryMiddlewareBuilder;
    ///
    /// let policies = Policies::from_toml_str(r#"
    /// [dependencies.inventory.retry]
    /// max_attempts = 3
    /// attempt_timeout = "300ms"
    /// total_timeout = "2s"
    /// budget = { kind = "ratio", ratio = 0.1 }
    ///
    /// [dependencies.inventory.breaker]
    /// failure_ratio = 0.5
    /// break_duration = "15s"
    /// "#)?;
    /// let middleware = RetryMiddlewareBuilder::from_policies(&policies, "inventory")?
    ///     .generate_idempotency_keys(true)
    ///     .build()?;
    /// assert_eq!(middleware.dependency(), Some("inventory"));
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(middleware)
    ///     .build();
    ///
    /// // A dependency the file does not have is named.
    /// let err = RetryMiddlewareBuilder::from_policies(&policies, "payments").unwrap_err();
    /// assert!(err.to_string().contains("payments"), "{err}");
    /// # let _ = client;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_policies(policies: &Policies, name: &str) -> Result<Self, ConfigError> {
        let Some(config) = policies.dependency(name) else {
            let known: Vec<&str> = policies.dependencies.keys().map(String::as_str).collect();
            return Err(ConfigError::new(
                C,
                "dependency",
                format!(
                    "the policy file has no dependency `{name}` (it has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        Self::from_dependency_in(name, config, &BuildEnv::default())
    }

    /// Like [`from_policies`](Self::from_policies), from one dependency's
    /// table, with the clock and randomness of `env` for the policy, the
    /// budgets, breakers and throttles (a manual clock in tests). An
    /// error's [`path`](ConfigError::path) is where the field is written
    /// under the dependency (`retry.backoff.base`, `breaker.min_calls`).
    pub fn from_dependency_in(
        name: &str,
        config: &DependencyConfig,
        env: &BuildEnv,
    ) -> Result<Self, ConfigError> {
        config.validate(name)?;
        for (set, field, instead) in [
            (
                config.timeout.is_some(),
                "timeout",
                "use `retry.attempt_timeout` and `retry.total_timeout`",
            ),
            (
                config.hedge.is_some(),
                "hedge",
                "hedge with the tower layers (`rebound::tower::hedge`)",
            ),
            (
                config.pipeline.is_some(),
                "pipeline",
                "run a pipeline with the tower layers (`rebound::tower::pipeline`)",
            ),
        ] {
            if set {
                return Err(ConfigError::new(
                    C,
                    field,
                    format!("is not applied by the HTTP retry middleware: {instead}"),
                ));
            }
        }
        let dependency: Arc<str> = Arc::from(name);
        let template = match &config.retry {
            // Budget, breaker and throttle are per host, below.
            Some(r) => RetryConfig {
                budget: None,
                breaker: None,
                throttle: None,
                ..r.clone()
            }
            .builder_in(name, env)
            .map_err(|e| e.within("retry"))?,
            None => RetryPolicy::builder()
                .dependency(Arc::clone(&dependency))
                .max_attempts(1)
                .clock(env.clock.clone())
                .random(env.random.clone()),
        };
        let mut b = RetryMiddlewareBuilder::new()
            .dependency(dependency)
            .policy(template);
        if let Some(budget) = config.retry.as_ref().and_then(|r| r.budget.clone()) {
            budget
                .build_in(env)
                .map_err(|e| e.within("budget").within("retry"))?;
            let env = env.clone();
            b = b.budget_per_host(move || budget.build_in(&env));
        }
        if let Some(breaker) = &config.breaker {
            let breaker = breaker
                .builder(name)
                .clock(env.clock.clone())
                .random(env.random.clone());
            breaker.clone().build().map_err(|e| e.within("breaker"))?;
            b = b.breaker_per_host(breaker);
        }
        if let Some(throttle) = &config.throttle {
            let throttle = throttle
                .builder(name)
                .clock(env.clock.clone())
                .random(env.random.clone());
            throttle.clone().build().map_err(|e| e.within("throttle"))?;
            b = b.throttle_per_host(throttle);
        }
        Ok(b)
    }
}
