//! A dependency's policies as one stack: a [`Pipeline`] and its tower
//! layer.

use super::{BuildEnv, DependencyConfig};
use crate::pipeline::Pipeline;
use crate::ConfigError;

impl DependencyConfig {
    /// Every policy of the dependency as one [`Pipeline`], on the clock and
    /// randomness of `env`: its `pipeline` when it has one, else, outermost
    /// first, the `timeout` (the whole call), the `bulkhead`, then the
    /// `retry` policy with the dependency's `breaker` and `throttle` guarding
    /// every attempt (without a `retry`: the `breaker`, then the
    /// `throttle`), or the `hedge`. Refused: a `pipeline` beside other
    /// policies (its stages say how they combine), and a `retry` beside a
    /// `hedge` (their order is open: write them as `pipeline` stages).
    ///
    /// With the feature `tower`, `layer` turns it into a
    /// tower layer.
    ///
    /// ```
    /// use rebound::config::{BuildEnv, Policies};
    /// let policies = Policies::from_toml_str(r#"
    /// [dependencies.inventory]
    /// timeout = "3s"
    /// bulkhead = { max_concurrent = 20 }
    /// retry = { max_attempts = 3, attempt_timeout = "500ms" }
    /// breaker = { consecutive_failures = 5 }
    /// "#)?;
    /// let inventory = policies.dependency("inventory").unwrap();
    /// let pipeline = inventory.pipeline_in("inventory", &BuildEnv::default())?;
    /// assert_eq!(pipeline.dependency(), "inventory");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pipeline_in(&self, dependency: &str, env: &BuildEnv) -> Result<Pipeline, ConfigError> {
        const C: &str = "dependency";
        if let Some(p) = &self.pipeline {
            let others = [
                (self.retry.is_some(), "retry"),
                (self.breaker.is_some(), "breaker"),
                (self.bulkhead.is_some(), "bulkhead"),
                (self.timeout.is_some(), "timeout"),
                (self.throttle.is_some(), "throttle"),
                (self.hedge.is_some(), "hedge"),
            ];
            if let Some((_, field)) = others.into_iter().find(|(set, _)| *set) {
                return Err(ConfigError::new(
                    C,
                    field,
                    "is set beside a `pipeline`, whose stages say how policies combine: make it \
                     a stage of the pipeline",
                ));
            }
            return p.build_in(dependency, env);
        }
        if self.retry.is_some() && self.hedge.is_some() {
            return Err(ConfigError::new(
                C,
                "hedge",
                "is set with `retry` outside a pipeline, which leaves their order open: write \
                 them as `pipeline` stages (a retry, then a hedge)",
            ));
        }
        let mut b = Pipeline::builder()
            .dependency(dependency)
            .clock(env.clock.clone());
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        if let Some(h) = &self.bulkhead {
            let bulkhead = h.builder(dependency).clock(env.clock.clone()).build();
            b = b.bulkhead(bulkhead.map_err(|e| e.within("bulkhead"))?);
        }
        match self.retry_builder_in(dependency, env)? {
            Some(r) => b = b.retry(r.build().map_err(|e| e.within("retry"))?),
            None => {
                if let Some(c) = &self.breaker {
                    let breaker = c
                        .builder(dependency)
                        .clock(env.clock.clone())
                        .random(env.random.clone())
                        .build();
                    b = b.circuit_breaker(breaker.map_err(|e| e.within("breaker"))?);
                }
                if let Some(t) = &self.throttle {
                    let throttle = t
                        .builder(dependency)
                        .clock(env.clock.clone())
                        .random(env.random.clone())
                        .build();
                    b = b.throttle(throttle.map_err(|e| e.within("throttle"))?);
                }
            }
        }
        if let Some(h) = &self.hedge {
            if h.idempotent {
                b = b.idempotent();
            }
            let policy = h.builder_in(dependency, env).and_then(|p| p.build());
            b = b.hedge(policy.map_err(|e| e.within("hedge"))?);
        }
        b.build()
    }

    /// The dependency's [`pipeline_in`](Self::pipeline_in) as a tower layer
    /// (feature `tower`), on the default clock and fresh randomness: every
    /// policy of the file's table around a service, in one layer.
    ///
    /// ```
    /// use rebound::config::Policies;
    /// let policies = Policies::from_toml_str(r#"
    /// [dependencies.inventory]
    /// retry = { max_attempts = 3 }
    /// breaker = { consecutive_failures = 5 }
    /// "#)?;
    /// let layer = policies.dependency("inventory").unwrap().layer("inventory")?;
    /// // tower::ServiceBuilder::new().layer(layer).service(inventory_client)
    /// # let _ = layer;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tower")]
    pub fn layer(
        &self,
        dependency: &str,
    ) -> Result<crate::tower::pipeline::PipelineLayer, ConfigError> {
        Ok(self.pipeline_in(dependency, &BuildEnv::default())?.layer())
    }
}
