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
}

impl ConfigError {
    /// A new error: `component` is what was being built (e.g. `"retry policy"`),
    /// `field` the setting at fault, `message` what is wrong with it.
    pub fn new(component: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            component,
            field,
            message: message.into(),
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
