//! Why a job was dead-lettered.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a job was moved to the dead-letter queue: the `reason` label of
/// `dead_letter_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// Every attempt failed transiently and the attempt budget is spent.
    Exhausted,
    /// The job reached its maximum age (or its next retry could not start
    /// before it).
    Expired,
    /// The handler's error was classified permanent: retrying cannot help.
    Permanent,
    /// The job was delivered again and again without any run reporting an
    /// outcome: it crashes its worker. Dead-lettered **without running**.
    Poison,
}

impl DeadLetterReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DeadLetterReason; 4] = [
        DeadLetterReason::Exhausted,
        DeadLetterReason::Expired,
        DeadLetterReason::Permanent,
        DeadLetterReason::Poison,
    ];

    /// The label: `exhausted`, `expired`, `permanent`, `poison`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Exhausted => "exhausted",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Permanent => "permanent",
            DeadLetterReason::Poison => "poison",
        }
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    /// A stable small number (the column value queues store).
    pub(crate) const fn code(self) -> i16 {
        match self {
            DeadLetterReason::Exhausted => 0,
            DeadLetterReason::Expired => 1,
            DeadLetterReason::Permanent => 2,
            DeadLetterReason::Poison => 3,
        }
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    /// The reason stored as `code`.
    pub(crate) fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`DeadLetterReason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dead-letter reason `{0}`; expected one of: exhausted, expired, permanent, poison")]
pub struct UnknownReason(pub String);

impl FromStr for DeadLetterReason {
    type Err = UnknownReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}
