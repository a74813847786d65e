//! An adaptive throttle in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::throttle::AdaptiveThrottleBuilder;

/// An [`AdaptiveThrottle`](crate::throttle::AdaptiveThrottle) in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// `K`. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<f64>,
    /// The window. Default 2 min.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// Slices. Default 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
}

impl ThrottleConfig {
    /// The throttle's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> AdaptiveThrottleBuilder {
        let mut b = crate::throttle::AdaptiveThrottle::builder().dependency(dependency);
        if let Some(v) = self.k {
            b = b.k(v);
        }
        if let Some(v) = self.window {
            b = b.window(v);
        }
        if let Some(v) = self.buckets {
            b = b.buckets(v);
        }
        b
    }
}
