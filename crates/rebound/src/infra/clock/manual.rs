//! A clock that moves only when told to.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// A clock that moves only when told to. Clones share the same time.
///
/// Use it in tests and simulations; hand a [`Clock`](crate::Clock) made from it to
/// policies. Timers on it ([`Clock::timer`](crate::Clock::timer)) fire when it is moved past
/// their deadline, waking whoever waits on them.
///
/// ```
/// use std::time::Duration;
/// use rebound::ManualClock;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now() - t0, Duration::from_millis(250));
/// assert_eq!(clock.elapsed(), Duration::from_millis(250));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    origin: Instant,
    wall_origin: SystemTime,
    nanos: AtomicU64,
    timers: Mutex<Timers>,
}

/// The wakers of timers waiting on a manual clock.
#[derive(Default)]
pub(crate) struct Timers {
    #[cfg(feature = "tokio")]
    next_id: u64,
    /// (id, deadline in nanoseconds since the origin, waker)
    waiting: Vec<(u64, u64, std::task::Waker)>,
}

impl ManualClock {
    /// A manual clock standing at an arbitrary origin instant, with the
    /// current system time as its wall-clock origin.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A manual clock whose wall time starts at `wall`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use rebound::ManualClock;
    ///
    /// let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    /// let clock = ManualClock::starting_at(start);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(clock.wall(), start + Duration::from_secs(60));
    /// ```
    pub fn starting_at(wall: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                origin: Instant::now(),
                wall_origin: wall,
                nanos: AtomicU64::new(0),
                timers: Mutex::new(Timers::default()),
            }),
        }
    }

    /// The current instant: the origin plus everything advanced so far.
    #[inline]
    pub fn now(&self) -> Instant {
        self.inner.origin + Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// The current wall-clock time: the wall origin plus everything advanced
    /// so far.
    pub fn wall(&self) -> SystemTime {
        self.inner.wall_origin + self.elapsed()
    }

    /// The instant this clock started at.
    pub fn origin(&self) -> Instant {
        self.inner.origin
    }

    /// Time advanced since the origin.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` (saturating at about 584 years), and
    /// wakes the timers that are due.
    pub fn advance(&self, by: Duration) {
        let by = nanos_of(by);
        let _ = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
        self.wake_due();
    }

    /// Moves the clock to `origin + elapsed`. Time never goes backwards: an
    /// earlier value is ignored.
    pub fn set_elapsed(&self, elapsed: Duration) {
        self.inner
            .nanos
            .fetch_max(nanos_of(elapsed), Ordering::AcqRel);
        self.wake_due();
    }

    /// Timers waiting on this clock.
    pub fn pending_timers(&self) -> usize {
        self.timers().waiting.len()
    }

    /// The earliest deadline of the timers waiting on this clock, as time
    /// since the origin: where [`advance`](Self::advance) must get to for
    /// the next timer to fire.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers()
            .waiting
            .iter()
            .map(|&(_, at, _)| at)
            .min()
            .map(Duration::from_nanos)
    }

    fn timers(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.inner
            .timers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_due(&self) {
        let now = self.inner.nanos.load(Ordering::Acquire);
        let due: Vec<std::task::Waker> = {
            let mut timers = self.timers();
            if timers.waiting.is_empty() {
                return;
            }
            let mut due = Vec::new();
            timers.waiting.retain(|(_, at, waker)| {
                if *at <= now {
                    due.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            due
        };
        // Woken outside the lock: a waker may poll at once.
        due.into_iter().for_each(std::task::Waker::wake);
    }

    #[cfg(feature = "tokio")]
    /// Nanoseconds of `at` since the origin (zero before it).
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        nanos_of(at.saturating_duration_since(self.inner.origin))
    }

    #[cfg(feature = "tokio")]
    /// Whether the clock has reached `at_nanos` (since the origin); if not,
    /// registers `waker` under `id` (a new id when `None`) to be woken when
    /// it does. Checked under the lock, so an advance cannot slip between
    /// the check and the registration.
    pub(crate) fn poll_reached(
        &self,
        at_nanos: u64,
        id: &mut Option<u64>,
        waker: &std::task::Waker,
    ) -> bool {
        let mut timers = self.timers();
        if self.inner.nanos.load(Ordering::Acquire) >= at_nanos {
            if let Some(id) = id.take() {
                timers.waiting.retain(|(i, ..)| *i != id);
            }
            return true;
        }
        match id {
            Some(id) => match timers.waiting.iter_mut().find(|(i, ..)| i == id) {
                Some(entry) => {
                    entry.1 = at_nanos;
                    if !entry.2.will_wake(waker) {
                        entry.2 = waker.clone();
                    }
                }
                None => timers.waiting.push((*id, at_nanos, waker.clone())),
            },
            None => {
                let new = timers.next_id;
                timers.next_id += 1;
                timers.waiting.push((new, at_nanos, waker.clone()));
                *id = Some(new);
            }
        }
        false
    }

    #[cfg(feature = "tokio")]
    /// Forgets the timer registered under `id`.
    pub(crate) fn cancel(&self, id: u64) {
        self.timers().waiting.retain(|(i, ..)| *i != id);
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}
