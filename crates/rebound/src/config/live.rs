//! Live reload: a policy file watched on disk, its policies swapped
//! atomically, the state of what did not change kept.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::{BuildEnv, ConfigFileError, DependencyConfig, LoadError, Policies, RetryConfig};
use crate::throttle::AdaptiveThrottle;
use crate::{Bulkhead, CircuitBreaker, ConfigError, RetryBudget, RetryPolicy};

/// A policy file kept in force while it changes on disk: the policies of
/// its last valid version, rebuilt on [`reload`](Self::reload) (or
/// periodically, with [`watch`](Self::watch)) and swapped atomically.
///
/// - **State survives a reload** where the settings did not change: a
///   dependency's breaker, retry budget, throttle and bulkhead are kept —
///   the same objects, an open breaker still open, a budget's window still
///   counting — when their tables are unchanged, and rebuilt (fresh)
///   when they changed. A retry policy is rebuilt around the kept ones.
/// - **A bad file is refused**: one that does not parse or validate
///   leaves the policies in force untouched; the error (file, line, field)
///   is returned, logged at ERROR, and kept in
///   [`last_error`](Self::last_error) until a valid version is applied.
///   A file that did not change since it was last read is not parsed
///   again, so a refused file is reported once.
/// - **Readers** take a [`Snapshot`] (one read lock and a reference
///   count): everything in it is of one version of the file. Take one per
///   call (or per batch of calls) to follow the file; an object kept from
///   an old snapshot keeps the old settings.
///
/// For a reqwest client, rebound-http's `LiveRetryMiddleware` follows a
/// `LivePolicies` the same way, per host.
///
/// Pipelines and hedges are not built here; read their tables from
/// [`Snapshot::policies`] and rebuild them when the
/// [`version`](Snapshot::version) changes.
///
/// ```
/// use std::time::Duration;
/// use rebound::config::{BuildEnv, LivePolicies, Reload};
/// use rebound::breaker::State;
///
/// let dir = std::env::temp_dir().join(format!("rebound-live-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let file = dir.join("policies.toml");
/// std::fs::write(&file, "[dependencies.inventory.retry]\nmax_attempts = 3\n\n[dependencies.inventory.breaker]\nconsecutive_failures = 5\n")?;
///
/// let live = LivePolicies::open(&file, BuildEnv::default())?;
/// let before = live.snapshot();
/// let breaker = before.dependency("inventory").unwrap().circuit_breaker().unwrap().clone();
/// breaker.isolate(); // some state: forced open
///
/// // Operators raise the attempts; the breaker's table is unchanged.
/// std::fs::write(&file, "[dependencies.inventory.retry]\nmax_attempts = 5\n\n[dependencies.inventory.breaker]\nconsecutive_failures = 5\n")?;
/// assert!(matches!(live.reload()?, Reload::Applied { version: 2, .. }));
/// let now = live.snapshot();
/// let inventory = now.dependency("inventory").unwrap();
/// assert_eq!(inventory.retry_policy().unwrap().max_attempts(), 5);
/// assert_eq!(inventory.circuit_breaker().unwrap().state(), State::Isolated, "kept");
///
/// // A bad edit is refused; version 2 stays in force.
/// std::fs::write(&file, "[dependencies.inventory.retry]\nmax_attempts = 0\n")?;
/// let err = live.reload().unwrap_err();
/// assert!(err.to_string().contains("policies.toml:2: `dependencies.inventory.retry.max_attempts`"), "{err}");
/// assert_eq!(live.snapshot().version(), 2);
/// assert!(live.last_error().is_some());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct LivePolicies {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    env: BuildEnv,
    current: RwLock<Arc<Snapshot>>,
    /// The text last read, applied or refused; held through a reload, so
    /// reloads run one at a time.
    seen: Mutex<String>,
    last_error: Mutex<Option<LoadError>>,
    /// Counts reloads that applied or refused a new text.
    #[cfg(feature = "tokio")]
    outcomes: tokio::sync::watch::Sender<u64>,
}

/// What a [`reload`](LivePolicies::reload) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reload {
    /// The file's text is the one last read: nothing to do.
    Unchanged,
    /// A new version is in force.
    Applied {
        /// Its number: 1 for the file as opened, then 2, 3, …
        version: u64,
        /// The dependencies added, removed or changed, by name.
        changed: Vec<String>,
    },
}

/// One version of the file: its policies, and the live objects built from
/// them. Cheap to hold (an `Arc`); get it with
/// [`LivePolicies::snapshot`].
#[derive(Debug)]
pub struct Snapshot {
    version: u64,
    policies: Policies,
    dependencies: BTreeMap<String, LiveDependency>,
}

impl Snapshot {
    /// The version: 1 for the file as opened, one more for each change
    /// applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The file's tables, as parsed.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The live objects of dependency `name`, if the file has it.
    pub fn dependency(&self, name: &str) -> Option<&LiveDependency> {
        self.dependencies.get(name)
    }
}

/// The objects of one dependency in one version of the file. Clones of
/// them share state with the ones here (a breaker's state, a budget's
/// window), which later versions keep while their tables do not change.
#[derive(Debug, Clone, Default)]
pub struct LiveDependency {
    retry: Option<RetryPolicy>,
    breaker: Option<CircuitBreaker>,
    budget: Option<RetryBudget>,
    throttle: Option<AdaptiveThrottle>,
    bulkhead: Option<Bulkhead>,
}

impl LiveDependency {
    /// The retry policy (`retry`), with the dependency's budget, breaker
    /// and throttle inside it.
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// The breaker (`breaker`): inside the retry policy when there is one.
    pub fn circuit_breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The retry budget (`retry.budget`).
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The adaptive throttle (`throttle`): inside the retry policy when
    /// there is one.
    pub fn throttle(&self) -> Option<&AdaptiveThrottle> {
        self.throttle.as_ref()
    }

    /// The bulkhead (`bulkhead`).
    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }
}

impl LivePolicies {
    /// Loads the policy file at `path` (JSON when its extension is `.json`,
    /// TOML otherwise) and builds its policies on the clock and randomness
    /// of `env`. A file that cannot be read or is invalid is an error: there
    /// are no policies to keep yet.
    pub fn open(path: impl AsRef<Path>, env: BuildEnv) -> Result<Self, LoadError> {
        let path = path.as_ref().to_owned();
        let src = read(&path)?;
        let policies = Policies::from_source(&path, &src)?;
        let snapshot = build(&path, &env, policies, 1, None)?;
        Ok(LivePolicies {
            shared: Arc::new(Shared {
                path,
                env,
                current: RwLock::new(Arc::new(snapshot)),
                seen: Mutex::new(src),
                last_error: Mutex::new(None),
                #[cfg(feature = "tokio")]
                outcomes: tokio::sync::watch::channel(0).0,
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The clock and randomness its policies are built on.
    pub fn env(&self) -> &BuildEnv {
        &self.shared.env
    }

    /// The version in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current)
    }

    /// Why the file's last text was refused, until a valid one is applied.
    pub fn last_error(&self) -> Option<LoadError> {
        lock(&self.shared.last_error).clone()
    }

    /// Reads the file now; applies it if its text changed and it is
    /// valid. A refused file leaves the version in force, is logged at
    /// ERROR and kept in [`last_error`](Self::last_error).
    pub fn reload(&self) -> Result<Reload, LoadError> {
        let shared = &*self.shared;
        let mut seen = lock(&shared.seen);
        let src = match read(&shared.path) {
            Ok(src) => src,
            Err(e) => return Err(self.refuse(e)),
        };
        if *seen == src {
            return Ok(Reload::Unchanged);
        }
        *seen = src;
        let current = self.snapshot();
        let next = Policies::from_source(&shared.path, &seen).and_then(|p| {
            build(
                &shared.path,
                &shared.env,
                p,
                current.version + 1,
                Some(&current),
            )
        });
        drop(seen);
        let next = match next {
            Ok(next) => next,
            Err(e) => return Err(self.refuse(e)),
        };
        let changed = changed(&current.policies, &next.policies);
        let version = next.version;
        *shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        *lock(&shared.last_error) = None;
        tracing::info!(
            file = %shared.path.display(),
            version,
            changed = ?changed,
            "policy file reloaded"
        );
        self.notify();
        Ok(Reload::Applied { version, changed })
    }

    fn refuse(&self, e: LoadError) -> LoadError {
        let mut last = lock(&self.shared.last_error);
        if last.as_ref() != Some(&e) {
            tracing::error!(
                error = %e,
                version = self.snapshot().version,
                "policy file refused; the policies in force stay"
            );
            self.notify();
        }
        *last = Some(e.clone());
        e
    }

    fn notify(&self) {
        #[cfg(feature = "tokio")]
        self.shared.outcomes.send_modify(|n| *n += 1);
    }

    /// Reloads the file every `every` on the clock of the [`BuildEnv`]
    /// (a manual clock in tests: a reload happens each time the clock is
    /// moved past the next check), in a task on the current tokio
    /// runtime, until the returned [`Watch`] is dropped. Polling the text
    /// is portable (no file-system events, which network and container file
    /// systems often lack) and cheap for a file of a few kilobytes; the
    /// read is a small blocking one.
    ///
    /// Errors: `every` zero, or no tokio runtime to run on.
    #[cfg(feature = "tokio")]
    pub fn watch(&self, every: std::time::Duration) -> Result<Watch, ConfigError> {
        const C: &str = "live policies";
        if every.is_zero() {
            return Err(ConfigError::new(C, "every", "must be greater than zero"));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ConfigError::new(C, "watch", "must be called inside a tokio runtime"))?;
        let live = self.clone();
        let task = runtime.spawn(async move {
            let clock = live.shared.env.clock.clone();
            loop {
                clock.timer(clock.now() + every).await;
                // Refusals are logged and kept in `last_error`.
                let _ = live.reload();
            }
        });
        Ok(Watch { task })
    }

    /// A receiver told each time a reload applied or refused a new text
    /// (its value counts them): to wait for the watcher in tests, or to
    /// rebuild what is built from [`Snapshot::policies`].
    #[cfg(feature = "tokio")]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.outcomes.subscribe()
    }
}

impl fmt::Debug for LivePolicies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LivePolicies")
            .field("path", &self.shared.path)
            .field("version", &self.snapshot().version)
            .field("last_error", &self.last_error())
            .finish()
    }
}

/// The task of [`LivePolicies::watch`]; stops watching when dropped.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "tokio")]
impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The dependencies added, removed or changed between two versions.
fn changed(old: &Policies, new: &Policies) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = old
        .dependencies
        .keys()
        .chain(new.dependencies.keys())
        .filter(|n| old.dependencies.get(*n) != new.dependencies.get(*n))
        .collect();
    names.into_iter().cloned().collect()
}

/// The snapshot of `policies`, keeping from `old` every stateful object
/// whose table did not change.
fn build(
    path: &Path,
    env: &BuildEnv,
    policies: Policies,
    version: u64,
    old: Option<&Snapshot>,
) -> Result<Snapshot, LoadError> {
    let mut dependencies = BTreeMap::new();
    for (name, config) in &policies.dependencies {
        let before = old.and_then(|s| {
            Some((
                s.policies.dependencies.get(name)?,
                s.dependencies.get(name)?,
            ))
        });
        let live = build_dependency(name, config, before, env).map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            error: ConfigFileError::from_config_error(name, &e),
        })?;
        dependencies.insert(name.clone(), live);
    }
    Ok(Snapshot {
        version,
        policies,
        dependencies,
    })
}

/// `kept` when the table is the same as before, else `make()`.
fn keep_or<C: PartialEq, T: Clone>(
    now: Option<&C>,
    before: Option<(Option<&C>, Option<&T>)>,
    make: impl FnOnce(&C) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    let Some(now) = now else { return Ok(None) };
    if let Some((Some(was), Some(kept))) = before {
        if was == now {
            return Ok(Some(kept.clone()));
        }
    }
    make(now).map(Some)
}

fn budget_of(c: &DependencyConfig) -> Option<&super::BudgetConfig> {
    c.retry.as_ref().and_then(|r| r.budget.as_ref())
}

fn build_dependency(
    name: &str,
    c: &DependencyConfig,
    before: Option<(&DependencyConfig, &LiveDependency)>,
    env: &BuildEnv,
) -> Result<LiveDependency, ConfigError> {
    let budget = keep_or(
        budget_of(c),
        before.map(|(c, l)| (budget_of(c), l.budget.as_ref())),
        |b| {
            b.build_in(env)
                .map_err(|e| e.within("budget").within("retry"))
        },
    )?;
    let breaker = keep_or(
        c.breaker.as_ref(),
        before.map(|(c, l)| (c.breaker.as_ref(), l.breaker.as_ref())),
        |b| {
            b.builder(name)
                .clock(env.clock.clone())
                .random(env.random.clone())
                .build()
                .map_err(|e| e.within("breaker"))
        },
    )?;
    let throttle = keep_or(
        c.throttle.as_ref(),
        before.map(|(c, l)| (c.throttle.as_ref(), l.throttle.as_ref())),
        |t| {
            t.builder(name)
                .clock(env.clock.clone())
                .random(env.random.clone())
                .build()
                .map_err(|e| e.within("throttle"))
        },
    )?;
    let bulkhead = keep_or(
        c.bulkhead.as_ref(),
        before.map(|(c, l)| (c.bulkhead.as_ref(), l.bulkhead.as_ref())),
        |b| {
            let b = b.builder(name);
            #[cfg(feature = "tokio")]
            let b = b.clock(env.clock.clone());
            b.build().map_err(|e| e.within("bulkhead"))
        },
    )?;
    let retry = match &c.retry {
        None => None,
        Some(r) => {
            let mut b = RetryConfig {
                budget: None,
                breaker: None,
                throttle: None,
                ..r.clone()
            }
            .builder_in(name, env)
            .map_err(|e| e.within("retry"))?;
            if let Some(x) = &budget {
                b = b.budget(x.clone());
            }
            if let Some(x) = &breaker {
                b = b.breaker(x.clone());
            }
            if let Some(x) = &throttle {
                b = b.throttle(x.clone());
            }
            Some(b.build().map_err(|e| e.within("retry"))?)
        }
    };
    Ok(LiveDependency {
        retry,
        breaker,
        budget,
        throttle,
        bulkhead,
    })
}
