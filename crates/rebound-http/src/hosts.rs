//! Per-host state: one retry policy (with its budget and breaker) for each
//! authority, created on first use, bounded in number, evicted when idle.
//!
//! A budget or a breaker protects one dependency. For an HTTP client the
//! natural dependency is the host: `api.example.com` being down says nothing
//! about `auth.example.com`. So the middleware keeps a [`Host`] per authority
//! (`host` or `host:port` as written in the URL, without user info), made
//! from the template policy on the first request to it and shared by every
//! clone of the client.
//!
//! A crawler that touches a million hosts must not keep a million budgets.
//! The registry holds at most `max_hosts` (default 10 000); hosts unused for
//! `idle_timeout` (default 10 minutes, on the policy's clock) are dropped
//! when a new host is added, and when the registry is full the least
//! recently used are dropped first. A request in flight keeps its host's
//! state alive; a later request to an evicted host starts afresh.
//!
//! The host added last is also kept with the start of the URL that added it,
//! so a client that talks to one host finds it with one string comparison.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rebound::{CircuitBreaker, Clock, ConfigError, RetryBudget, RetryPolicy, RetryPolicyBuilder};
use url::Position;

/// The hosts by authority, keyed with foldhash (seeded per process):
/// authorities are short, and SipHash cost more than the rest of a lookup.
type HostMap = HashMap<Arc<str>, Arc<Host>, foldhash::fast::RandomState>;

/// Customizes the template policy for one host (adds its budget, breaker…);
/// told the host's [`Names`].
pub(crate) type Customize = Arc<
    dyn Fn(&Names<'_>, RetryPolicyBuilder) -> Result<RetryPolicyBuilder, ConfigError> + Send + Sync,
>;

/// The two names of a host's series: the dependency's name (the `dependency`
/// label) and the host's authority (the `host` label).
pub(crate) struct Names<'a> {
    pub(crate) dependency: &'a Arc<str>,
    pub(crate) authority: &'a Arc<str>,
}

/// The state kept for one host: its policy, and through it its retry budget
/// (and circuit breaker, when configured).
///
/// Get one with [`RetryMiddleware::host`](crate::RetryMiddleware::host).
pub struct Host {
    authority: Arc<str>,
    dependency: Arc<str>,
    policy: RetryPolicy,
    /// Nanoseconds since the registry's origin.
    last_used: AtomicU64,
}

impl Host {
    /// The authority this state is for (`host` or `host:port`); the `host`
    /// label of its metrics.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The `dependency` label of its metrics: the middleware's
    /// [`dependency`](crate::RetryMiddlewareBuilder::dependency) name when
    /// one is given, else the authority.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    pub(crate) fn dependency_arc(&self) -> &Arc<str> {
        &self.dependency
    }

    pub(crate) fn authority_arc(&self) -> &Arc<str> {
        &self.authority
    }

    /// The host's retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The host's retry budget, if one is configured.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.policy.budget()
    }

    /// The host's circuit breaker, if one is configured.
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.policy.breaker()
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("authority", &self.authority)
            .field("dependency", &self.dependency)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The hosts by authority, and the one added last.
#[derive(Default)]
struct Hosts {
    by_authority: HostMap,
    /// The host added last, with the start of the URL that added it
    /// (`scheme://host[:port]`, none with user info). Most clients talk to
    /// one host: its requests are matched against this start instead of
    /// slicing the authority out of the URL, hashing it and probing the
    /// map, which cost ~130 instructions a request.
    newest: Option<(Box<str>, Arc<Host>)>,
}

impl Hosts {
    /// The newest host, if `url` (serialized) is on it.
    fn newest_for(&self, url: &str) -> Option<&Arc<Host>> {
        let (start, host) = self.newest.as_ref()?;
        let rest = url.strip_prefix(&**start)?;
        // The authority must end where the start does: `http://a:80` is
        // not the start of `http://a:8080/`.
        matches!(rest.as_bytes().first(), None | Some(b'/' | b'?' | b'#')).then_some(host)
    }

    /// Forgets the newest host if it is no longer in the map.
    fn forget_newest_if_gone(&mut self) {
        if let Some((_, host)) = &self.newest {
            let kept = self
                .by_authority
                .get(&*host.authority)
                .is_some_and(|h| Arc::ptr_eq(h, host));
            if !kept {
                self.newest = None;
            }
        }
    }
}

/// Records a use of `host` at `now` and hands out a reference.
fn touch(host: &Arc<Host>, now: u64) -> Arc<Host> {
    // Only write when it moved, so hot hosts don't bounce a line.
    if host.last_used.load(Ordering::Relaxed) != now {
        host.last_used.store(now, Ordering::Relaxed);
    }
    Arc::clone(host)
}

pub(crate) struct Registry {
    map: RwLock<Hosts>,
    template: RetryPolicyBuilder,
    /// The explicit dependency name; `None`: each host's authority.
    dependency: Option<Arc<str>>,
    customize: Vec<Customize>,
    clock: Clock,
    origin: Instant,
    max_hosts: usize,
    idle_timeout: Option<Duration>,
    last_sweep: AtomicU64,
}

impl Registry {
    pub(crate) fn new(
        template: RetryPolicyBuilder,
        dependency: Option<Arc<str>>,
        customize: Vec<Customize>,
        clock: Clock,
        max_hosts: usize,
        idle_timeout: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        let r = Registry {
            map: RwLock::new(Hosts::default()),
            origin: clock.now(),
            template,
            dependency,
            customize,
            clock,
            max_hosts,
            idle_timeout,
            last_sweep: AtomicU64::new(0),
        };
        // Surface configuration errors now, not on the first request.
        r.create(Arc::from("validation.invalid"))?;
        Ok(r)
    }

    pub(crate) fn dependency(&self) -> Option<&Arc<str>> {
        self.dependency.as_ref()
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    fn now_nanos(&self) -> u64 {
        self.nanos_at(self.clock.now())
    }

    fn nanos_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }

    fn create(&self, authority: Arc<str>) -> Result<Host, ConfigError> {
        let dependency = self
            .dependency
            .clone()
            .unwrap_or_else(|| Arc::clone(&authority));
        let mut b = self
            .template
            .clone()
            .dependency(Arc::clone(&dependency))
            .host(Arc::clone(&authority));
        let names = Names {
            dependency: &dependency,
            authority: &authority,
        };
        for c in &self.customize {
            b = c(&names, b)?;
        }
        Ok(Host {
            policy: b.build()?,
            authority,
            dependency,
            last_used: AtomicU64::new(self.now_nanos()),
        })
    }

    /// The state for `url`'s authority, created on first use; `now` is the
    /// clock's current time (the caller has just read it).
    pub(crate) fn get(&self, url: &reqwest::Url, now: Instant) -> Result<Arc<Host>, ConfigError> {
        let now = self.nanos_at(now);
        let key = {
            let hosts = self.read();
            if let Some(h) = hosts.newest_for(url.as_str()) {
                return Ok(touch(h, now));
            }
            // `host[:port]` sliced straight from the URL's serialization:
            // the port is there only when not the scheme's default; no user
            // info.
            let key = &url[Position::BeforeHost..Position::AfterPort];
            if let Some(h) = hosts.by_authority.get(key) {
                return Ok(touch(h, now));
            }
            key
        };
        let start = &url[..Position::AfterPort];
        // No user info kept in memory longer than the request.
        let start = (!start.contains('@')).then_some(start);
        self.insert(key, start, now)
    }

    #[cfg(test)]
    fn get_key(&self, key: &str) -> Result<Arc<Host>, ConfigError> {
        let now = self.now_nanos();
        if let Some(h) = self.read().by_authority.get(key) {
            return Ok(touch(h, now));
        }
        self.insert(key, None, now)
    }

    /// A host not in the map yet: made from the template and added, as the
    /// newest when `start` (the URL up to its port) is given.
    fn insert(&self, key: &str, start: Option<&str>, now: u64) -> Result<Arc<Host>, ConfigError> {
        let host = Arc::new(self.create(Arc::from(key))?);
        let mut hosts = self.write();
        if let Some(h) = hosts.by_authority.get(key) {
            return Ok(Arc::clone(h)); // another request created it meanwhile
        }
        self.make_room(&mut hosts, now);
        hosts
            .by_authority
            .insert(Arc::clone(&host.authority), Arc::clone(&host));
        if let Some(start) = start {
            hosts.newest = Some((start.into(), Arc::clone(&host)));
        }
        Ok(host)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Hosts> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Hosts> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    fn make_room(&self, hosts: &mut Hosts, now: u64) {
        self.evict(&mut hosts.by_authority, now);
        hosts.forget_newest_if_gone();
    }

    fn evict(&self, map: &mut HostMap, now: u64) {
        if let Some(idle) = self.idle_timeout {
            let idle = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
            // Sweep at most every quarter of the idle timeout, or when full.
            let last = self.last_sweep.load(Ordering::Relaxed);
            if map.len() >= self.max_hosts || now.saturating_sub(last) >= idle / 4 {
                self.last_sweep.store(now, Ordering::Relaxed);
                map.retain(|_, h| now.saturating_sub(h.last_used.load(Ordering::Relaxed)) < idle);
            }
        }
        if map.len() < self.max_hosts {
            return;
        }
        // Full of recently used hosts: drop the least recently used
        // sixteenth at once, so a stream of new hosts costs O(log n) each.
        let mut by_age: Vec<(u64, Arc<str>)> = map
            .iter()
            .map(|(k, h)| (h.last_used.load(Ordering::Relaxed), Arc::clone(k)))
            .collect();
        let evict = (map.len() / 16).max(map.len() + 1 - self.max_hosts);
        if evict < by_age.len() {
            by_age.select_nth_unstable(evict);
        }
        for (_, k) in by_age.into_iter().take(evict) {
            map.remove(&k);
        }
    }

    /// Drops every host idle for `idle_timeout`; returns how many.
    pub(crate) fn evict_idle(&self) -> usize {
        let Some(idle) = self.idle_timeout else {
            return 0;
        };
        let idle = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
        let now = self.now_nanos();
        let mut hosts = self.write();
        let before = hosts.by_authority.len();
        hosts
            .by_authority
            .retain(|_, h| now.saturating_sub(h.last_used.load(Ordering::Relaxed)) < idle);
        hosts.forget_newest_if_gone();
        self.last_sweep.store(now, Ordering::Relaxed);
        before - hosts.by_authority.len()
    }

    pub(crate) fn peek(&self, key: &str) -> Option<Arc<Host>> {
        self.read().by_authority.get(key).cloned()
    }

    /// Every host with state now.
    #[cfg(feature = "config")]
    pub(crate) fn all(&self) -> Vec<Arc<Host>> {
        self.read().by_authority.values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().by_authority.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rebound::ManualClock;

    fn registry(max: usize, idle: Option<Duration>) -> (Registry, ManualClock) {
        let (clock, time) = Clock::manual();
        let template = RetryPolicy::builder().clock(clock.clone());
        let r = Registry::new(template, None, Vec::new(), clock, max, idle).unwrap();
        (r, time)
    }

    #[test]
    fn bounded_by_max_hosts_dropping_the_least_recently_used() {
        let (r, time) = registry(4, None);
        for h in ["a", "b", "c", "d"] {
            r.get_key(h).unwrap();
            time.advance(Duration::from_secs(1));
        }
        r.get_key("a").unwrap(); // a is now the most recent
        time.advance(Duration::from_secs(1));
        r.get_key("e").unwrap();
        assert_eq!(r.len(), 4);
        assert!(r.peek("b").is_none(), "b was the least recently used");
        assert!(r.peek("a").is_some());
        for i in 0..1000 {
            r.get_key(&format!("h{i}")).unwrap();
            assert!(r.len() <= 4);
        }
    }

    #[test]
    fn idle_hosts_are_swept_when_a_new_host_arrives() {
        let (r, time) = registry(100, Some(Duration::from_secs(60)));
        r.get_key("old").unwrap();
        time.advance(Duration::from_secs(61));
        r.get_key("new").unwrap();
        assert!(r.peek("old").is_none());
        assert!(r.peek("new").is_some());
        time.advance(Duration::from_secs(61));
        assert_eq!(r.evict_idle(), 1);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn keys_are_host_and_explicit_port_without_user_info() {
        let key = |u: &str| {
            let u = reqwest::Url::parse(u).unwrap();
            u[Position::BeforeHost..Position::AfterPort].to_owned()
        };
        assert_eq!(key("http://a.example/x"), "a.example");
        assert_eq!(key("https://a.example:443/x"), "a.example");
        assert_eq!(key("http://a.example:8080/x?q"), "a.example:8080");
        assert_eq!(key("http://user:secret@a.example:81/"), "a.example:81");
        assert_eq!(key("http://[::1]:3000/"), "[::1]:3000");
    }

    fn url(u: &str) -> reqwest::Url {
        reqwest::Url::parse(u).unwrap()
    }

    fn get(r: &Registry, u: &str) -> Arc<Host> {
        r.get(&url(u), r.clock.now()).unwrap()
    }

    #[test]
    fn the_newest_host_is_found_by_the_start_of_its_urls() {
        let (r, _) = registry(10, None);
        let a = get(&r, "http://a.example:808/x");
        assert!(Arc::ptr_eq(&a, &get(&r, "http://a.example:808/y?q=1")));
        assert!(Arc::ptr_eq(&a, &get(&r, "http://a.example:808?q")));
        assert!(Arc::ptr_eq(&a, &get(&r, "http://a.example:808#f")));
        // Same authority, another start: found in the map.
        assert!(Arc::ptr_eq(&a, &get(&r, "https://a.example:808/")));
        // A longer port, or the start as user info: other hosts.
        let b = get(&r, "http://a.example:8080/");
        assert_eq!(b.authority(), "a.example:8080");
        let c = get(&r, "http://a.example:808@c.example/");
        assert_eq!(c.authority(), "c.example");
        assert!(!Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &c));
        assert_eq!(r.len(), 3);
        for (key, host) in [("a.example:808", &a), ("a.example:8080", &b)] {
            assert!(Arc::ptr_eq(&r.peek(key).unwrap(), host));
        }
    }

    #[test]
    fn user_info_is_never_kept_as_the_newest_start() {
        let (r, _) = registry(10, None);
        get(&r, "http://a.example/");
        get(&r, "http://user:secret@b.example/");
        let newest = r.read().newest.as_ref().map(|(start, _)| start.to_string());
        assert_eq!(newest.as_deref(), Some("http://a.example"));
    }

    #[test]
    fn an_evicted_newest_host_is_not_found_by_its_start() {
        // Evicted as idle.
        let (r, time) = registry(10, Some(Duration::from_secs(60)));
        let old = get(&r, "http://a.example/");
        time.advance(Duration::from_secs(61));
        assert_eq!(r.evict_idle(), 1);
        let new = get(&r, "http://a.example/");
        assert!(!Arc::ptr_eq(&old, &new), "the evicted state came back");
        assert!(Arc::ptr_eq(&r.peek("a.example").unwrap(), &new));
        // Evicted to make room, by a host that came through the map.
        let (r, _) = registry(1, None);
        let old = get(&r, "http://a.example/");
        r.get_key("b.example").unwrap();
        assert!(r.peek("a.example").is_none());
        let new = get(&r, "http://a.example/");
        assert!(!Arc::ptr_eq(&old, &new), "the evicted state came back");
        assert!(Arc::ptr_eq(&r.peek("a.example").unwrap(), &new));
    }

    #[test]
    fn same_host_same_state() {
        let (r, _) = registry(10, None);
        let a = r.get_key("x:1").unwrap();
        let b = r.get_key("x:1").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.policy().dependency(), "x:1");
        assert_eq!(a.policy().host(), Some("x:1"));
    }
}
