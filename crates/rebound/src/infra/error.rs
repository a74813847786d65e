//! Configuration errors.

use std::fmt;

/// A setting was rejected when a policy was built.
///
/// Policies validate everything in `build()`, so a bad value surfaces at
/// start-up with the name of the field, never as a panic or a silent clamp at
/// call time.
///
/// ```
/// use rebound::RetryPolicy;
///
/// let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(err.field(), "max_attempts");
/// assert!(err.to_string().contains("max_attempts"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    component: &'static str,
    field: &'static str,
    message: String,
    /// Where the field sits in a configuration: a dotted path, the field
    /// included, once it was placed [`within`](Self::within) one.
    path: Option<String>,
    /// The pipeline stage at fault, for a rule about a pipeline's stages.
    stage: Option<usize>,
}

impl ConfigError {
    /// A new error: `component` is what was being built (e.g. `"retry policy"`),
    /// `field` the setting at fault, `message` what is wrong with it.
    pub fn new(component: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            component,
            field,
            message: message.into(),
            path: None,
            stage: None,
        }
    }

    /// The same error, for a field found under `part` of a configuration
    /// (e.g. `retry`, then `dependencies.inventory`): see
    /// [`path`](Self::path).
    #[must_use]
    pub fn within(mut self, part: impl fmt::Display) -> Self {
        self.path = Some(format!("{part}.{}", self.path()));
        self
    }

    /// The same error, placed at `path` (the field included) in the
    /// configuration: where a rule's field is written in a file.
    #[must_use]
    #[cfg(all(feature = "serde", feature = "tokio"))]
    pub(crate) fn placed_at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The same error, about the pipeline stage at position `index`
    /// (outermost first).
    #[must_use]
    #[cfg(feature = "tokio")]
    pub(crate) fn at_stage(mut self, index: usize) -> Self {
        self.stage = Some(index);
        self
    }

    /// The position of the pipeline stage a pipeline rule found at fault,
    /// when the rule is about one stage (outermost first).
    pub fn stage(&self) -> Option<usize> {
        self.stage
    }

    /// The field's dotted path in the configuration it came from, e.g.
    /// `retry.backoff.base`: the parts it was found [`within`](Self::within)
    /// and the field. Just the field for an error from a builder.
    ///
    /// ```
    /// use rebound::ConfigError;
    /// let e = ConfigError::new("backoff", "base", "must be greater than zero").within("backoff").within("retry");
    /// assert_eq!(e.path(), "retry.backoff.base");
    /// assert_eq!(e.field(), "base");
    /// ```
    pub fn path(&self) -> String {
        match &self.path {
            Some(p) => p.clone(),
            None => self.field.to_string(),
        }
    }

    /// What was being built, e.g. `"retry policy"` or `"circuit breaker"`.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// The name of the rejected setting, as spelled by its builder method.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with the value.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: `{}` {}",
            self.component, self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Validation helpers shared by every builder.
pub(crate) mod check {
    use super::ConfigError;
    use std::time::Duration;

    pub(crate) fn ratio(c: &'static str, field: &'static str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::new(
                c,
                field,
                format!("must be a ratio in [0, 1] (got {v})"),
            ))
        }
    }

    pub(crate) fn positive_f64(
        c: &'static str,
        field: &'static str,
        v: f64,
    ) -> Result<f64, ConfigError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(ConfigError::new(
                c,
                field,
                format!("must be a finite number greater than 0 (got {v})"),
            ))
        }
    }

    pub(crate) fn non_negative_f64(
        c: &'static str,
        field: &'static str,
        v: f64,
    ) -> Result<f64, ConfigError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(ConfigError::new(
                c,
                field,
                format!("must be a finite number of at least 0 (got {v})"),
            ))
        }
    }

    pub(crate) fn non_zero_duration(
        c: &'static str,
        field: &'static str,
        v: Duration,
    ) -> Result<Duration, ConfigError> {
        if v.is_zero() {
            Err(ConfigError::new(c, field, "must be greater than zero"))
        } else {
            Ok(v)
        }
    }
}
