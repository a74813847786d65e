//! A bulkhead in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bulkhead::BulkheadBuilder;
use crate::{Bulkhead, ConfigError};

/// A [`Bulkhead`] in a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls at once. Default 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Waiting callers. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    /// Longest wait. Default none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

impl BulkheadConfig {
    /// The bulkhead's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> BulkheadBuilder {
        let mut b = Bulkhead::builder().dependency(dependency);
        if let Some(v) = self.max_concurrent {
            b = b.max_concurrent(v);
        }
        if let Some(v) = self.max_queue {
            b = b.max_queue(v);
        }
        if let Some(v) = self.max_wait {
            b = b.max_wait(v);
        }
        b
    }

    /// The bulkhead, validated.
    pub fn build(&self, dependency: &str) -> Result<Bulkhead, ConfigError> {
        self.builder(dependency).build()
    }
}
