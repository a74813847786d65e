//! The faults in force and the counters of a running proxy, and the handle
//! that reads and changes them ([`Control`]). The control API is a thin
//! HTTP front on this handle.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rebound::Clock;
use tokio::sync::{watch, Notify};

use crate::counters::Counters;
use crate::duration::format as dur;
use crate::{Counts, FaultSet, Injector, Timeline};

/// Where the faults in force come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The timeline's current phase (or health between phases).
    Timeline,
    /// The faults the proxy was started with.
    Startup,
    /// Faults set while running, through [`Control`] or the control API.
    Control,
}

impl Source {
    /// `timeline`, `startup` or `control`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Timeline => "timeline",
            Source::Startup => "startup",
            Source::Control => "control",
        }
    }
}

/// The faults in force at one moment, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    source: Source,
    phase: Option<(usize, String)>,
    cycle: u64,
    elapsed: Duration,
    next_change: Option<Duration>,
    faults: FaultSet,
    version: u64,
}

impl Current {
    /// Where the faults come from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The timeline phase in force, when following a timeline and inside a
    /// phase.
    pub fn phase(&self) -> Option<&str> {
        self.phase.as_ref().map(|(_, n)| n.as_str())
    }

    /// The index of that phase in the timeline.
    pub fn phase_index(&self) -> Option<usize> {
        self.phase.as_ref().map(|(i, _)| *i)
    }

    /// Time since the timeline (or the proxy) started, on the proxy's clock.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// When (since the start) the timeline next changes phase, if it does.
    pub fn next_change(&self) -> Option<Duration> {
        self.next_change
    }

    /// The faults in force.
    pub fn faults(&self) -> &FaultSet {
        &self.faults
    }

    /// As the control API's `GET /faults` answers it.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| dur(Duration::from_millis(d.as_millis() as u64));
        serde_json::json!({
            "source": self.source.as_str(),
            "phase": self.phase(),
            "phase_index": self.phase_index(),
            "elapsed": ms(self.elapsed),
            "next_change": self.next_change.map(ms),
            "faults": self.faults.to_json(),
        })
    }

    /// Whether `other` is the same state (ignoring the passing of time).
    fn same_state(&self, other: &Current) -> bool {
        self.source == other.source
            && self.phase == other.phase
            && self.cycle == other.cycle
            && self.version == other.version
    }
}

impl std::fmt::Display for Current {
    /// `phase outage: throttle status=503 retry_after=5s`, `between
    /// phases: healthy`, `control faults: error status=502`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.phase, self.source) {
            (Some((_, name)), _) => write!(f, "phase {name}")?,
            (None, Source::Timeline) => f.write_str("between phases")?,
            (None, source) => write!(f, "{} faults", source.as_str())?,
        }
        let specs: Vec<String> = self.faults.faults().iter().map(|x| x.to_string()).collect();
        if specs.is_empty() {
            f.write_str(": healthy")
        } else {
            write!(f, ": {}", specs.join("; "))
        }
    }
}

/// A handle on a running proxy: the faults in force, changing them, the
/// counters. Cheap to clone; every clone controls the same proxy.
///
/// ```
/// # async fn demo(proxy: rebound_chaos::ChaosProxy) -> Result<(), rebound_chaos::SpecError> {
/// use rebound_chaos::{Fault, FaultSet};
/// let control = proxy.control();
/// control.set_faults(FaultSet::new([Fault::error(503).with_rate(0.5)])?);
/// // ... the outage ...
/// control.reset(); // healthy
/// control.restore(); // back to the timeline or the startup faults
/// println!("{}", control.current());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    started: Instant,
    state: RwLock<State>,
    counters: Counters,
    healthy: Arc<Injector>,
    changes: watch::Sender<Current>,
    rewake: Notify,
}

struct State {
    base: Base,
    manual: Option<Arc<Injector>>,
    version: u64,
}

enum Base {
    Fixed(Arc<Injector>),
    Timeline(Run),
}

/// A timeline being followed: its start and the injectors of the current
/// cycle (a repeating timeline counts `times` afresh each cycle).
struct Run {
    timeline: Arc<Timeline>,
    started: Instant,
    cycle: u64,
    injectors: Vec<Arc<Injector>>,
}

impl Run {
    fn new(timeline: Arc<Timeline>, started: Instant) -> Self {
        let injectors = injectors(&timeline);
        Run {
            timeline,
            started,
            cycle: 0,
            injectors,
        }
    }

    fn cycle_at(&self, elapsed: Duration) -> u64 {
        match self.timeline.length() {
            Some(len) if self.timeline.is_repeating() && !len.is_zero() => {
                (elapsed.as_nanos() / len.as_nanos()) as u64
            }
            _ => 0,
        }
    }
}

fn injectors(timeline: &Timeline) -> Vec<Arc<Injector>> {
    timeline
        .phases()
        .iter()
        .map(|p| Arc::new(Injector::new(p.faults().clone())))
        .collect()
}

impl Control {
    pub(crate) fn new(clock: Clock, faults: FaultSet, timeline: Option<Timeline>) -> Self {
        let started = clock.now();
        let base = match timeline {
            Some(t) => Base::Timeline(Run::new(Arc::new(t), started)),
            None => Base::Fixed(Arc::new(Injector::new(faults))),
        };
        let state = State {
            base,
            manual: None,
            version: 0,
        };
        let healthy = Arc::new(Injector::new(FaultSet::healthy()));
        let first = current(&state, &healthy, started, started);
        Control {
            inner: Arc::new(Inner {
                clock,
                started,
                state: RwLock::new(state),
                counters: Counters::default(),
                healthy,
                changes: watch::channel(first).0,
                rewake: Notify::new(),
            }),
        }
    }

    /// The injector deciding requests now.
    pub(crate) fn injector(&self) -> Arc<Injector> {
        let now = self.inner.clock.now();
        {
            let state = self
                .inner
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(m) = &state.manual {
                return m.clone();
            }
            match &state.base {
                Base::Fixed(i) => return i.clone(),
                Base::Timeline(run) => {
                    let elapsed = now.saturating_duration_since(run.started);
                    if run.cycle_at(elapsed) == run.cycle {
                        return lookup(run, elapsed, &self.inner.healthy);
                    }
                }
            }
        }
        // A repeating timeline began a new cycle: fresh injectors.
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = &state.manual {
            return m.clone();
        }
        match &mut state.base {
            Base::Fixed(i) => i.clone(),
            Base::Timeline(run) => {
                let elapsed = now.saturating_duration_since(run.started);
                let cycle = run.cycle_at(elapsed);
                if cycle != run.cycle {
                    run.cycle = cycle;
                    run.injectors = injectors(&run.timeline);
                }
                lookup(run, elapsed, &self.inner.healthy)
            }
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Wall-clock time on the proxy's clock (for HTTP-dates): a manual
    /// clock's moves it too.
    pub(crate) fn wall_now(&self) -> SystemTime {
        self.inner.clock.wall()
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        {
            let mut state = self
                .inner
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            f(&mut state);
            state.version += 1;
        }
        self.publish();
        self.inner.rewake.notify_one();
    }

    /// Puts `faults` in force in place of the timeline or the startup
    /// faults, until [`restore`](Self::restore) or
    /// [`restart_timeline`](Self::restart_timeline). Their `times` count
    /// from zero.
    pub fn set_faults(&self, faults: FaultSet) {
        self.change(|s| s.manual = Some(Arc::new(Injector::new(faults))));
    }

    /// Adds `faults` after those in force now, in place of the timeline or
    /// the startup faults (as [`set_faults`](Self::set_faults)).
    pub fn add_faults(&self, faults: FaultSet) {
        let now = self.inner.clock.now();
        let (healthy, started) = (self.inner.healthy.clone(), self.inner.started);
        self.change(|s| {
            let in_force = current(s, &healthy, started, now).faults;
            s.manual = Some(Arc::new(Injector::new(in_force.and(faults))));
        });
    }

    /// Healthy: no faults, until [`restore`](Self::restore) or
    /// [`restart_timeline`](Self::restart_timeline).
    pub fn reset(&self) {
        self.set_faults(FaultSet::healthy());
    }

    /// Drops faults set while running: back to the timeline (where it is
    /// now) or the startup faults.
    pub fn restore(&self) {
        self.change(|s| s.manual = None);
    }

    /// Starts the timeline over from its first phase, now, and follows it
    /// (dropping faults set while running). `false` if the proxy has no
    /// timeline.
    pub fn restart_timeline(&self) -> bool {
        let now = self.inner.clock.now();
        let mut had = false;
        self.change(|s| {
            if let Base::Timeline(run) = &mut s.base {
                *run = Run::new(run.timeline.clone(), now);
                s.manual = None;
                had = true;
            }
        });
        had
    }

    /// The timeline, if the proxy follows one.
    pub fn timeline(&self) -> Option<Timeline> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match &state.base {
            Base::Timeline(run) => Some((*run.timeline).clone()),
            Base::Fixed(_) => None,
        }
    }

    /// The faults in force now, and why.
    pub fn current(&self) -> Current {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        current(
            &state,
            &self.inner.healthy,
            self.inner.started,
            self.inner.clock.now(),
        )
    }

    /// A receiver that sees each change of the faults in force: a new
    /// timeline phase (when the proxy's clock reaches it), faults set or
    /// reset through the control API. The demo dashboard and the command
    /// line's log follow it.
    pub fn watch(&self) -> watch::Receiver<Current> {
        self.inner.changes.subscribe()
    }

    /// The counters since the proxy started.
    pub fn counts(&self) -> Counts {
        self.inner.counters.snapshot()
    }

    /// The counters as Prometheus text (what `GET /metrics` serves).
    pub fn prometheus(&self) -> String {
        let current = self.current();
        self.counts().to_prometheus(current.phase())
    }

    /// Publishes the state to watchers if it changed.
    fn publish(&self) {
        let now = self.current();
        self.inner.changes.send_if_modified(|old| {
            if old.same_state(&now) {
                return false;
            }
            tracing::info!(target: "rebound_chaos", elapsed = ?now.elapsed, "{now}");
            *old = now;
            true
        });
    }

    /// Follows the timeline, publishing each phase change when the clock
    /// reaches it, until `shutdown` fires.
    pub(crate) async fn follow(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.publish();
            let next = {
                let current = self.current();
                let start = self.run_start();
                match (current.source, current.next_change, start) {
                    (Source::Timeline, Some(at), Some(start)) => start.checked_add(at),
                    _ => None,
                }
            };
            let clock = self.inner.clock.clone();
            tokio::select! {
                _ = self.inner.rewake.notified() => {}
                _ = async {
                    match next {
                        // A timer that races the control changes: on a
                        // manual clock it fires when the test moves it.
                        Some(deadline) => clock.timer(deadline).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn run_start(&self) -> Option<Instant> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match &state.base {
            Base::Timeline(run) => Some(run.started),
            Base::Fixed(_) => None,
        }
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

fn lookup(run: &Run, elapsed: Duration, healthy: &Arc<Injector>) -> Arc<Injector> {
    match run.timeline.phase_at(elapsed) {
        Some((i, _)) => run.injectors[i].clone(),
        None => healthy.clone(),
    }
}

fn current(state: &State, healthy: &Arc<Injector>, started: Instant, now: Instant) -> Current {
    let (start, cycle) = match &state.base {
        Base::Timeline(run) => (
            run.started,
            run.cycle_at(now.saturating_duration_since(run.started)),
        ),
        Base::Fixed(_) => (started, 0),
    };
    let elapsed = now.saturating_duration_since(start);
    let mut c = Current {
        source: Source::Startup,
        phase: None,
        cycle,
        elapsed,
        next_change: None,
        faults: FaultSet::healthy(),
        version: state.version,
    };
    if let Some(m) = &state.manual {
        c.source = Source::Control;
        c.faults = m.faults().clone();
        return c;
    }
    match &state.base {
        Base::Fixed(i) => c.faults = i.faults().clone(),
        Base::Timeline(run) => {
            c.source = Source::Timeline;
            c.next_change = run.timeline.next_change(elapsed);
            match run.timeline.phase_at(elapsed) {
                Some((i, p)) => {
                    c.phase = Some((i, p.name().to_string()));
                    c.faults = p.faults().clone();
                }
                None => c.faults = healthy.faults().clone(),
            }
        }
    }
    c
}
