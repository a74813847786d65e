//! Bulkheads: a cap on how many calls to one dependency run at once.
//!
//! A ship's bulkheads keep one flooded compartment from sinking the rest. A
//! slow dependency does the same to a service through its threads, sockets
//! and memory: every call to it waits, and waiting calls pile up until
//! nothing else can run. A bulkhead isolates the part of a service that
//! calls one dependency, so its failure does not sink the rest (Michael
//! Nygard, *Release It!*, 2nd ed., 2018). A [`Bulkhead`] lets
//! at most `max_concurrent` calls in; the next ones wait in a bounded queue
//! for at most `max_wait`, or are refused at once with a typed reason and a
//! count in `bulkhead_rejected_total`.
//!
//! Permits are released when dropped, so a cancelled call (a dropped future,
//! a timeout, a panic) always gives its slot back.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Bulkhead, bulkhead::FullReason};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bulkhead = Bulkhead::builder()
//!     .dependency("inventory")
//!     .max_concurrent(2)
//!     .max_queue(1)
//!     .max_wait(Duration::from_millis(50))
//!     .build()?;
//!
//! let a = bulkhead.try_acquire()?;
//! let _b = bulkhead.try_acquire()?;
//! assert_eq!(bulkhead.try_acquire().unwrap_err().reason(), FullReason::Full);
//!
//! // `acquire` queues: it gets the slot `a` frees...
//! let (waiting, _) = tokio::join!(bulkhead.acquire(), async { drop(a) });
//! assert!(waiting.is_ok());
//! // ...or gives up after max_wait.
//! let late = bulkhead.acquire().await.unwrap_err();
//! assert_eq!(late.reason(), FullReason::MaxWait);
//! # Ok(()) }
//! ```
//!
//! Waiting callers are woken in the order they queued, but a newcomer that
//! finds a free slot takes it without queueing (no strict FIFO), as
//! resilience4j's semaphore bulkhead does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{check, ConfigError};
use crate::infra::sync::{AtomicU32, Ordering};
use crate::telemetry;
#[cfg(feature = "tokio")]
use crate::Clock;

const COMPONENT: &str = "bulkhead";

/// A cap on concurrent calls. Cheap to clone; clones share the slots. See
/// the [module docs](self).
///
/// ```
/// use rebound::Bulkhead;
///
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
/// let permit = bulkhead.try_acquire()?;
/// assert!(bulkhead.try_acquire().is_err());
/// drop(permit);
/// assert!(bulkhead.try_acquire().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Bulkhead {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    max_concurrent: u32,
    pub(crate) max_queue: u32,
    pub(crate) max_wait: Option<Duration>,
    #[cfg(feature = "tokio")]
    pub(crate) clock: Clock,
    dependency: Arc<str>,
    host: Option<Arc<str>>,
    /// `bulkhead_rejected_total{reason}`, labelled once, indexed by
    /// [`FullReason::index`].
    rejected: [telemetry::CounterKey; 3],
    in_use: AtomicU32,
    pub(crate) queued: AtomicU32,
    #[cfg(feature = "tokio")]
    pub(crate) freed: tokio::sync::Notify,
}

/// Why a bulkhead refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FullReason {
    /// Every slot was taken and the bulkhead has no queue (or the caller
    /// did not wait).
    Full,
    /// Every slot and every queue place was taken.
    QueueFull,
    /// The caller queued but no slot freed within `max_wait`.
    MaxWait,
}

impl FullReason {
    /// A short, stable name, used as the `reason` label: `full`,
    /// `queue_full`, `max_wait`.
    pub fn as_str(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    const NAMES: [&'static str; 3] = ["full", "queue_full", "max_wait"];

    fn index(&self) -> usize {
        match self {
            FullReason::Full => 0,
            FullReason::QueueFull => 1,
            FullReason::MaxWait => 2,
        }
    }
}

/// A bulkhead refused a call; the call did not run.
///
/// ```
/// use rebound::{Bulkhead, bulkhead::FullReason};
/// let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
/// let _held = b.try_acquire().unwrap();
/// let err = b.try_acquire().unwrap_err();
/// assert_eq!(err.reason(), FullReason::Full);
/// assert_eq!(err.to_string(), "bulkhead full (1 calls in flight)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadFull {
    reason: FullReason,
    max_concurrent: u32,
}

impl BulkheadFull {
    /// Why.
    pub fn reason(&self) -> FullReason {
        self.reason
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.max_concurrent;
        match self.reason {
            FullReason::Full => write!(f, "bulkhead full ({n} calls in flight)"),
            FullReason::QueueFull => write!(f, "bulkhead full ({n} calls in flight, queue full)"),
            FullReason::MaxWait => {
                write!(f, "bulkhead full (no slot freed within the maximum wait)")
            }
        }
    }
}

impl std::error::Error for BulkheadFull {}

/// One slot of a [`Bulkhead`]; the slot is freed when this is dropped.
///
/// ```
/// use rebound::Bulkhead;
/// let b = Bulkhead::builder().max_concurrent(3).build().unwrap();
/// let p = b.try_acquire().unwrap();
/// assert_eq!(b.in_use(), 1);
/// drop(p);
/// assert_eq!(b.in_use(), 0);
/// ```
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct BulkheadPermit {
    inner: Arc<Inner>,
}

impl Drop for BulkheadPermit {
    #[inline]
    fn drop(&mut self) {
        self.inner.in_use.fetch_sub(1, Ordering::AcqRel);
        #[cfg(feature = "tokio")]
        self.inner.freed.notify_one();
    }
}

impl fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("dependency", &self.inner.dependency)
            .finish()
    }
}

/// Gives a queue place back however the wait ends.
#[cfg(feature = "tokio")]
pub(crate) struct QueuePlace<'a>(pub(crate) &'a Inner);

#[cfg(feature = "tokio")]
impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// A builder with the defaults listed on each setter.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::new()
    }

    /// Takes a slot if one is free, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        self.grab().ok_or_else(|| self.reject(FullReason::Full))
    }

    #[inline]
    pub(crate) fn grab(&self) -> Option<BulkheadPermit> {
        let max = self.inner.max_concurrent;
        self.inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| BulkheadPermit {
                inner: Arc::clone(&self.inner),
            })
    }

    #[cold]
    pub(crate) fn reject(&self, reason: FullReason) -> BulkheadFull {
        self.inner.rejected[reason.index()].incr();
        tracing::debug!(
            dependency = &*self.inner.dependency,
            reason = reason.as_str(),
            "bulkhead refused a call"
        );
        BulkheadFull {
            reason,
            max_concurrent: self.inner.max_concurrent,
        }
    }

    /// Slots taken now.
    pub fn in_use(&self) -> u32 {
        self.inner.in_use.load(Ordering::Acquire)
    }

    /// Slots free now.
    pub fn available(&self) -> u32 {
        self.inner.max_concurrent.saturating_sub(self.in_use())
    }

    /// Callers waiting in the queue now.
    pub fn queued(&self) -> u32 {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// The most calls let in at once.
    pub fn max_concurrent(&self) -> u32 {
        self.inner.max_concurrent
    }

    /// The dependency name used as the metrics label.
    pub fn dependency(&self) -> &str {
        &self.inner.dependency
    }

    /// The `host` label of its metrics, if one was set with
    /// [`BulkheadBuilder::host`].
    pub fn host(&self) -> Option<&str> {
        self.inner.host.as_deref()
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("dependency", &self.inner.dependency)
            .field("in_use", &self.in_use())
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("queued", &self.queued())
            .field("max_queue", &self.inner.max_queue)
            .field("max_wait", &self.inner.max_wait)
            .finish()
    }
}

/// Builder for [`Bulkhead`]; [`build`](Self::build) validates every setting
/// and names the first bad one.
///
/// ```
/// use std::time::Duration;
/// use rebound::Bulkhead;
///
/// let b = Bulkhead::builder()
///     .max_concurrent(25)
///     .max_queue(100)
///     .max_wait(Duration::from_millis(200))
///     .build()?;
/// assert_eq!(b.available(), 25);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BulkheadBuilder {
    max_concurrent: u32,
    max_queue: u32,
    max_wait: Option<Duration>,
    dependency: Arc<str>,
    host: Option<Arc<str>>,
    #[cfg(feature = "tokio")]
    clock: Clock,
}

impl Default for BulkheadBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BulkheadBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        BulkheadBuilder {
            max_concurrent: 25,
            max_queue: 0,
            max_wait: None,
            dependency: Arc::from("default"),
            host: None,
            #[cfg(feature = "tokio")]
            clock: Clock::default(),
        }
    }

    /// The most calls let in at once. Default 25 (resilience4j's). Must be
    /// at least 1.
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.max_concurrent = n;
        self
    }

    /// How many callers of [`Bulkhead::acquire`] may wait for a slot. Default
    /// 0: a full bulkhead refuses at once.
    pub fn max_queue(mut self, n: u32) -> Self {
        self.max_queue = n;
        self
    }

    /// How long a queued caller waits for a slot before it is refused with
    /// [`FullReason::MaxWait`]. Default: no limit (a queued caller waits
    /// until a slot frees or it is cancelled). Must be non-zero, and needs a
    /// queue (`max_queue` ≥ 1).
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = Some(d);
        self
    }

    /// The name of the dependency this bulkhead guards, used as the
    /// `dependency` label. Default `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The instance of the dependency this bulkhead guards (for HTTP, the
    /// `host` or `host:port`), added as the `host` label beside
    /// `dependency`. Default: no `host` label.
    pub fn host(mut self, host: impl Into<Arc<str>>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The clock a queued caller's `max_wait` is measured on. Default
    /// [`Clock::default`].
    #[cfg(feature = "tokio")]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates and builds the bulkhead.
    ///
    /// Rejected: `max_concurrent` 0; a zero `max_wait`; a `max_wait` without
    /// a queue.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "max_concurrent",
                "must be at least 1",
            ));
        }
        if let Some(w) = self.max_wait {
            check::non_zero_duration(COMPONENT, "max_wait", w)?;
            if self.max_queue == 0 {
                return Err(ConfigError::new(
                    COMPONENT,
                    "max_wait",
                    "has no effect without a queue: set max_queue to at least 1",
                ));
            }
        }
        let bulkhead = Bulkhead {
            inner: Arc::new(Inner {
                max_concurrent: self.max_concurrent,
                max_queue: self.max_queue,
                max_wait: self.max_wait,
                #[cfg(feature = "tokio")]
                clock: self.clock,
                rejected: FullReason::NAMES.map(|r| {
                    telemetry::CounterKey::hosted(
                        telemetry::BULKHEAD_REJECTED_TOTAL,
                        &self.dependency,
                        self.host.as_ref(),
                        Some(r),
                    )
                }),
                dependency: self.dependency,
                host: self.host,
                in_use: AtomicU32::new(0),
                queued: AtomicU32::new(0),
                #[cfg(feature = "tokio")]
                freed: tokio::sync::Notify::new(),
            }),
        };
        telemetry::describe();
        bulkhead.inner.rejected[0].touch();
        if bulkhead.inner.max_queue > 0 {
            for key in &bulkhead.inner.rejected[1..] {
                key.touch();
            }
        }
        crate::state::register(&bulkhead.inner.dependency, &bulkhead.inner, |inner| {
            let b = Bulkhead { inner };
            crate::state::Component::Bulkhead(crate::state::BulkheadState {
                in_use: b.in_use(),
                available: b.available(),
                queued: b.queued(),
                max_concurrent: b.max_concurrent(),
            })
        });
        Ok(bulkhead)
    }
}
