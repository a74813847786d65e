//! `herd`: the thundering herd at a cache expiry, and what each defence
//! does to it, with rebound's own [`StaleCache`], [`Freshness`] and
//! [`Coalescer`] driven in virtual time.
//!
//! N clients read ten hot keys from a cache in front of a database that
//! serves 10 loads at a time, 100 ms each (a queue behind). Each client
//! reads a random key, waits for the answer, thinks 100–200 ms, and reads
//! again (a closed loop). The cache was filled at time 0 (a deploy, a
//! restart, a batch), so every key was written at once with a 20 s TTL.
//!
//! | protection | what it changes |
//! |---|---|
//! | none | every client that misses loads the key itself |
//! | coalescing | one load per key; the others wait for it (cache-miss locking, `Fallback::read_through`) |
//! | staggered expiry | TTL × U(0.5, 1): keys expire over 10–20 s |
//! | early refresh | XFetch, β = 2: one reader reloads a key shortly before it expires |
//! | all | the three together |
//!
//! The claims (the "thundering herd" of cache stampede literature, and
//! Vattani, Chierichetti and Lowenstein, *Optimal Probabilistic Cache
//! Stampede Prevention*, VLDB 2015): without protection the database sees
//! of the order of N loads at the expiry and clients wait seconds; with
//! coalescing one load per key; with staggered expiry the loads spread
//! over the jitter window; with early refresh keys are reloaded before
//! they expire, so no reader waits for a miss.
//!
//! ## How it runs
//!
//! Each client is a task on a single-threaded tokio `LocalSet`; every wait
//! (thinking, a database load) is a timer on a [`ManualClock`]. The driver
//! lets the tasks run until none can move, then moves the clock to the
//! next timer: virtual time, run by the code that ships. Randomness
//! (think times, keys, TTL jitter, early-refresh draws) is seeded.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use rebound::coalesce::Coalescer;
use rebound::fallback::{Fallback, Lookup, StaleCache};
use rebound::freshness::Freshness;
use rebound::{Clock, ManualClock, RandomSource};

use crate::report::{Band, Cell as TCell, Chart, ScenarioReport, Table};
use crate::scenarios::Options;

/// Hot keys.
pub const KEYS: u32 = 10;
/// The TTL before jitter.
pub const TTL: Duration = Duration::from_secs(20);
/// The jitter fraction of the staggered variants: TTL × U(1 − x, 1).
pub const JITTER: f64 = 0.5;
/// The early refresh factor β.
pub const BETA: f64 = 2.0;
/// Loads the database serves at once.
pub const DB_CONCURRENCY: usize = 10;
/// One load's service time.
pub const SERVICE: Duration = Duration::from_millis(100);
/// The end of a run.
pub const END: Duration = Duration::from_secs(35);
/// Width of the load chart's bins.
const BIN: Duration = Duration::from_millis(250);

/// A defence against the herd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// The cache alone.
    None,
    /// Misses coalesced per key.
    Coalescing,
    /// TTLs with jitter.
    Staggered,
    /// Probabilistic early refresh.
    EarlyRefresh,
    /// All three.
    All,
}

impl Protection {
    /// Every variant, in table order.
    pub const ALL: [Protection; 5] = [
        Protection::None,
        Protection::Coalescing,
        Protection::Staggered,
        Protection::EarlyRefresh,
        Protection::All,
    ];

    /// The name in tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            Protection::None => "none",
            Protection::Coalescing => "coalescing",
            Protection::Staggered => "staggered expiry",
            Protection::EarlyRefresh => "early refresh",
            Protection::All => "all",
        }
    }

    fn coalesces(self) -> bool {
        matches!(self, Protection::Coalescing | Protection::All)
    }

    fn freshness(self) -> Freshness {
        let mut f = Freshness::builder(TTL);
        if matches!(self, Protection::Staggered | Protection::All) {
            f = f.jitter(JITTER);
        }
        if matches!(self, Protection::EarlyRefresh | Protection::All) {
            f = f.early_refresh(BETA);
        }
        f.build().expect("valid constants")
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct HerdRun {
    /// Start times of every database load.
    pub loads: Vec<Duration>,
    /// (start, latency) of every read.
    pub reads: Vec<(Duration, Duration)>,
    /// The most loads in the database (served and queued) at once.
    pub peak_outstanding: usize,
}

impl HerdRun {
    /// Loads started in `[from, to)`.
    pub fn loads_between(&self, from: Duration, to: Duration) -> usize {
        self.loads.iter().filter(|&&t| from <= t && t < to).count()
    }

    /// The longest read that started in `[from, to)`.
    pub fn max_latency_between(&self, from: Duration, to: Duration) -> Duration {
        self.reads
            .iter()
            .filter(|(t, _)| from <= *t && *t < to)
            .map(|(_, l)| *l)
            .max()
            .unwrap_or_default()
    }

    /// The time between the 10th and the 90th percentile of the start
    /// times of the loads in `[from, to)`: how spread out they are.
    pub fn load_spread(&self, from: Duration, to: Duration) -> Duration {
        let mut ts: Vec<Duration> = self
            .loads
            .iter()
            .copied()
            .filter(|&t| from <= t && t < to)
            .collect();
        if ts.is_empty() {
            return Duration::ZERO;
        }
        ts.sort();
        let at = |q: f64| ts[((ts.len() - 1) as f64 * q).round() as usize];
        at(0.9) - at(0.1)
    }

    /// The most loads started in one second.
    pub fn peak_loads_per_second(&self) -> usize {
        let last = END.as_secs() as usize;
        let mut per = vec![0usize; last + 1];
        for t in &self.loads {
            per[(t.as_secs() as usize).min(last)] += 1;
        }
        per.into_iter().max().unwrap_or(0)
    }
}

struct Sim {
    time: ManualClock,
    clock: Clock,
    db: tokio::sync::Semaphore,
    cache: StaleCache<u32, u32>,
    herd: Coalescer<u32, u32, std::io::Error>,
    fallback: Fallback,
    coalesce: bool,
    activity: Cell<u64>,
    outstanding: Cell<usize>,
    peak_outstanding: Cell<usize>,
    loads: RefCell<Vec<Duration>>,
    reads: RefCell<Vec<(Duration, Duration)>>,
}

impl Sim {
    fn step(&self) {
        self.activity.set(self.activity.get() + 1);
    }

    async fn load(&self, key: u32) -> Result<u32, std::io::Error> {
        self.step();
        self.loads.borrow_mut().push(self.time.elapsed());
        self.outstanding.set(self.outstanding.get() + 1);
        self.peak_outstanding
            .set(self.peak_outstanding.get().max(self.outstanding.get()));
        let permit = self.db.acquire().await.expect("never closed");
        self.step();
        self.clock.timer_after(SERVICE).await;
        drop(permit);
        self.outstanding.set(self.outstanding.get() - 1);
        self.step();
        Ok(key)
    }

    async fn read(&self, key: u32) {
        if self.coalesce {
            let _ = self
                .fallback
                .read_through(&self.cache, &self.herd, key, || self.load(key))
                .await;
            return;
        }
        // The cache alone: whoever misses (or draws an early refresh)
        // loads and stores.
        match self.cache.lookup(&key) {
            Lookup::Hit { .. } => {}
            Lookup::Refresh { .. } | Lookup::Miss { .. } => {
                let start = self.clock.now();
                if let Ok(v) = self.load(key).await {
                    let took = self.clock.now() - start;
                    self.cache.put_loaded(key, v, took);
                }
            }
        }
    }

    async fn client(self: Rc<Self>, mut rng: fastrand::Rng) {
        // Start at a random phase.
        self.clock
            .timer_after(Duration::from_millis(10 * rng.u64(0..=20)))
            .await;
        while self.time.elapsed() < END {
            let key = rng.u32(0..KEYS);
            let start = self.time.elapsed();
            self.step();
            self.read(key).await;
            self.step();
            self.reads
                .borrow_mut()
                .push((start, self.time.elapsed() - start));
            let think = Duration::from_millis(100 + 10 * rng.u64(0..=10));
            self.clock.timer_after(think).await;
        }
    }
}

/// One run: `clients` clients under `protection`, seeded by `seed`.
pub fn simulate(protection: Protection, clients: u32, seed: u64) -> HerdRun {
    let (clock, time) = Clock::manual();
    let cache = StaleCache::new(Duration::from_secs(3600))
        .with_freshness(protection.freshness())
        .with_random(RandomSource::seeded(seed ^ 0x00C0_FFEE))
        .with_clock(clock.clone());
    // Filled at time 0: every key written at once, its load as long as one
    // database service time.
    for k in 0..KEYS {
        cache.put_loaded(k, k, SERVICE);
    }
    let sim = Rc::new(Sim {
        time: time.clone(),
        clock: clock.clone(),
        db: tokio::sync::Semaphore::new(DB_CONCURRENCY),
        cache,
        herd: Coalescer::new().dependency("db").with_clock(clock),
        fallback: Fallback::builder().dependency("db").build(),
        coalesce: protection.coalesces(),
        activity: Cell::new(0),
        outstanding: Cell::new(0),
        peak_outstanding: Cell::new(0),
        loads: RefCell::new(Vec::new()),
        reads: RefCell::new(Vec::new()),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        for c in 0..clients {
            let rng =
                fastrand::Rng::with_seed(seed.wrapping_mul(0x9E37_79B9).wrapping_add(u64::from(c)));
            tokio::task::spawn_local(Rc::clone(&sim).client(rng));
        }
        loop {
            // Let every task run until none moves...
            let mut quiet = 0;
            let mut last = sim.activity.get();
            while quiet < 4 {
                tokio::task::yield_now().await;
                let now = sim.activity.get();
                if now == last {
                    quiet += 1;
                } else {
                    (quiet, last) = (0, now);
                }
            }
            // ...then move the clock to the next timer.
            match time.next_deadline() {
                Some(d) if d <= END + Duration::from_secs(5) => time.set_elapsed(d),
                _ => break,
            }
        }
    });
    let run = HerdRun {
        loads: sim.loads.borrow().clone(),
        reads: sim.reads.borrow().clone(),
        peak_outstanding: sim.peak_outstanding.get(),
    };
    drop(local);
    run
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let clients: u32 = opts.pick(1000, 500, 200);
    let runs = 1;
    let results: Vec<HerdRun> = Protection::ALL
        .iter()
        .map(|&p| simulate(p, clients, opts.seed))
        .collect();
    let mut rep = ScenarioReport::new(
        "herd",
        "The thundering herd at a cache expiry: coalescing, staggered expiry, early refresh",
        "Cache stampede (thundering herd); Vattani, Chierichetti and Lowenstein, \"Optimal Probabilistic \
         Cache Stampede Prevention\", VLDB 2015",
        opts.seed,
        runs,
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    rep.setup = format!(
        "{clients} clients in a closed loop (read a random key of {KEYS}, think 100–200 ms) in front of a \
         database serving {DB_CONCURRENCY} loads at a time, {} ms each, with a queue. The cache was filled at \
         0 s with a TTL of {} s (staggered: × U({}, 1); early refresh: XFetch, β = {BETA}). Runs last {} s. \
         rebound's StaleCache, Freshness and Coalescer, on a manual clock.",
        ms(SERVICE),
        TTL.as_secs(),
        1.0 - JITTER,
        END.as_secs()
    );
    let lo = TTL.mul_f64(1.0 - JITTER);
    let herd_from = TTL;
    let herd_to = TTL + Duration::from_secs(5);
    let mut t = Table::new(
        "herd",
        "Database load and client latency",
        &[
            "protection",
            "loads, total",
            "loads at expiry (20–25 s)",
            "loads before expiry (10–20 s)",
            "peak loads in one second",
            "peak loads in the database at once",
            "longest read (ms)",
        ],
    );
    let mut load_chart = Chart::new(
        "db_load",
        "Database loads started per second",
        "time (s)",
        "loads per second",
    );
    let mut latency_chart = Chart::new(
        "latency",
        "Longest client read per 250 ms",
        "time (s)",
        "latency (ms)",
    );
    for chart in [&mut load_chart, &mut latency_chart] {
        chart.bands.push(Band {
            from: lo.as_secs_f64(),
            to: TTL.as_secs_f64(),
            label: "jitter window".into(),
        });
    }
    let bins = (END.as_nanos() / BIN.as_nanos()) as usize + 1;
    for (p, r) in Protection::ALL.iter().zip(&results) {
        t.row(vec![
            TCell::text(p.name()),
            TCell::int(r.loads.len() as i64),
            TCell::int(r.loads_between(herd_from, herd_to) as i64),
            TCell::int(r.loads_between(lo, TTL) as i64),
            TCell::int(r.peak_loads_per_second() as i64),
            TCell::int(r.peak_outstanding as i64),
            TCell::num(ms(r.max_latency_between(Duration::ZERO, END)), 0),
        ]);
        let mut per = vec![0u32; bins];
        let mut worst = vec![0f64; bins];
        for t in &r.loads {
            per[((t.as_nanos() / BIN.as_nanos()) as usize).min(bins - 1)] += 1;
        }
        for (t, l) in &r.reads {
            let i = ((t.as_nanos() / BIN.as_nanos()) as usize).min(bins - 1);
            worst[i] = worst[i].max(ms(*l));
        }
        let x = |i: usize| (i as f64 + 0.5) * BIN.as_secs_f64();
        load_chart.line(
            p.name(),
            per.iter()
                .enumerate()
                .map(|(i, &n)| [x(i), f64::from(n) / BIN.as_secs_f64()])
                .collect(),
        );
        latency_chart.line(
            p.name(),
            worst.iter().enumerate().map(|(i, &w)| [x(i), w]).collect(),
        );
    }
    rep.tables.push(t);
    rep.charts.push(load_chart);
    rep.charts.push(latency_chart);

    let [none, coalescing, staggered, early, all] = [0, 1, 2, 3, 4].map(|i| &results[i]);
    let n = f64::from(clients);
    let none_herd = none.loads_between(herd_from, herd_to);
    rep.check(
        "without protection the database sees of the order of N loads at the expiry, and clients wait",
        format!(
            "{none_herd} loads in the 5 s after expiry for N = {clients} ({:.0}% of N); longest read {:.0} ms \
             against {:.0} ms for one load",
            100.0 * none_herd as f64 / n,
            ms(none.max_latency_between(herd_from, herd_to)),
            ms(SERVICE)
        ),
        none_herd as f64 >= 0.5 * n
            && none.max_latency_between(herd_from, herd_to) >= SERVICE * 5,
    );
    let c_herd = coalescing.loads_between(herd_from, herd_to);
    rep.check(
        "with coalescing, one load per key",
        format!("{c_herd} loads in the 5 s after expiry, for {KEYS} keys"),
        c_herd == KEYS as usize,
    );
    // The first expiry of every key: nothing before the window, all of it
    // in the window (+1 s to drain); reloaded keys expire again later.
    let s_early = staggered.loads_between(Duration::ZERO, lo);
    let window_end = TTL + Duration::from_secs(1);
    let s_in = staggered.loads_between(lo, window_end);
    let s_spread = staggered.load_spread(lo, window_end);
    let n_spread = none.load_spread(herd_from, herd_to);
    rep.check(
        "with staggered expiry the loads spread over the jitter window",
        format!(
            "{s_early} loads before {} s, {s_in} between {} s and {} s (+1 s to drain), their middle 80% \
             spread over {:.1} s (without protection: {:.2} s); peak {} loads in one second against {} \
             without protection",
            lo.as_secs(),
            lo.as_secs(),
            TTL.as_secs(),
            s_spread.as_secs_f64(),
            n_spread.as_secs_f64(),
            staggered.peak_loads_per_second(),
            none.peak_loads_per_second()
        ),
        s_early == 0
            && s_in >= KEYS as usize
            && s_spread >= (TTL - lo).mul_f64(0.3)
            && s_spread >= n_spread * 10
            && (staggered.peak_loads_per_second() as f64)
                <= 0.75 * none.peak_loads_per_second() as f64,
    );
    let e_before = early.loads_between(Duration::ZERO, TTL);
    rep.check(
        "with early refresh every key is reloaded before it expires, and no read waits on a miss",
        format!(
            "{e_before} of {} loads before {} s; longest read {:.0} ms (one load: {:.0} ms)",
            early.loads.len(),
            TTL.as_secs(),
            ms(early.max_latency_between(Duration::ZERO, END)),
            ms(SERVICE)
        ),
        e_before == early.loads.len()
            && e_before >= KEYS as usize
            && early.max_latency_between(Duration::ZERO, END) <= SERVICE * 2,
    );
    rep.check(
        "all together: about one load per key and TTL, spread out, no read waits more than a load",
        format!(
            "{} loads for {KEYS} keys in {} s (shortest TTL {} s); peak {} in one second; longest read {:.0} ms",
            all.loads.len(),
            END.as_secs(),
            lo.as_secs(),
            all.peak_loads_per_second(),
            ms(all.max_latency_between(Duration::ZERO, END))
        ),
        all.loads.len() >= KEYS as usize
            && all.loads.len() as f64 <= f64::from(KEYS) * END.div_duration_f64(lo)
            && all.max_latency_between(Duration::ZERO, END) <= SERVICE * 2,
    );
    rep.notes.push(
        "Coalescing alone still loads every key at the same moment (ten loads at once here, one per key); \
         staggered expiry alone still lets every client that misses a key load it (the herd is smaller, \
         not gone). Early refresh keeps readers off the miss path altogether; with the coalescer behind it \
         a key is reloaded once however many readers draw the refresh."
            .to_string(),
    );
    rep.notes.push(format!(
        "Staggering alone does not cap the loads: each key's expiry still sends every client that misses \
         it to the database ({} loads at {clients} clients, more than N when the database, at {} loads/s, \
         cannot finish the first load of a key before its readers come back); it only keeps the keys from \
         all missing in the same second.",
        staggered.loads_between(lo, window_end),
        DB_CONCURRENCY as f64 / SERVICE.as_secs_f64()
    ));
    rep
}
