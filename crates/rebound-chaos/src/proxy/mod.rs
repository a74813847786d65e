//! The proxy: listeners, connections, the builder and the running handle.

mod body;
mod conn;
mod forward;
mod headers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rebound::{Clock, RandomSource};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::conn::{Kill, KillableStream};
use self::forward::{ProxyService, Shared};
use self::headers::Upstream;
use crate::{control_api, Control, Counts, FaultSet, StartError, Timeline};

/// A fault-injecting HTTP/1.1 reverse proxy, running on the tokio runtime
/// it was started on. Dropping it (or [`shutdown`](Self::shutdown)) stops
/// it and cuts every connection.
///
/// See the [crate docs](crate) for what it does to requests; build one with
/// [`ChaosProxy::builder`].
pub struct ChaosProxy {
    addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    upstream: String,
    control: Control,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Builder of a [`ChaosProxy`]; [`start`](Self::start) binds and runs it.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rebound::Clock;
/// use rebound_chaos::{ChaosProxy, Timeline};
///
/// let (clock, time) = Clock::manual();
/// let proxy = ChaosProxy::builder("http://127.0.0.1:3001")
///     .listen("127.0.0.1:0".parse()?)           // any free port
///     .control_api("127.0.0.1:0".parse()?)      // GET /faults, PUT /faults, GET /metrics, ...
///     .timeline(Timeline::from_toml_str(rebound_chaos::EXAMPLE_TIMELINE, "timeline.toml")?)
///     .clock(clock)                             // the test moves time: time.advance(...)
///     .seed(7)                                  // the same draws every run
///     .start()
///     .await?;
/// # drop((proxy, time)); Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until started"]
pub struct ChaosProxyBuilder {
    upstream: String,
    listen: SocketAddr,
    control: Option<SocketAddr>,
    clock: Clock,
    random: RandomSource,
    faults: FaultSet,
    timeline: Option<Timeline>,
}

impl ChaosProxy {
    /// A proxy in front of `upstream` (`http://host:port`, optionally with
    /// a path prefix that is put in front of every request's path).
    pub fn builder(upstream: impl Into<String>) -> ChaosProxyBuilder {
        ChaosProxyBuilder {
            upstream: upstream.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: None,
            clock: Clock::default(),
            random: RandomSource::entropy(),
            faults: FaultSet::healthy(),
            timeline: None,
        }
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: what clients call instead of the upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The control API's address, if it was asked for.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The upstream URL.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The handle that reads and changes the faults in force.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// The counters since the proxy started.
    pub fn counts(&self) -> Counts {
        self.control.counts()
    }

    /// Stops the proxy: no new connections, every open one cut (a
    /// blackholed request's client sees its connection close).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("control_addr", &self.control_addr)
            .finish_non_exhaustive()
    }
}

impl ChaosProxyBuilder {
    /// Where the proxy listens (default `127.0.0.1:0`: a free port, see
    /// [`ChaosProxy::addr`]).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Serves the control API on `addr` (default: none). See
    /// [`control_api`](crate::control_api) for its endpoints.
    pub fn control_api(mut self, addr: SocketAddr) -> Self {
        self.control = Some(addr);
        self
    }

    /// Faults in force from the start, for as long as the proxy runs
    /// (default: healthy). Replaces a timeline set before.
    pub fn faults(mut self, faults: FaultSet) -> Self {
        self.faults = faults;
        self.timeline = None;
        self
    }

    /// Follows `timeline` from the moment the proxy starts. Replaces faults
    /// set before.
    pub fn timeline(mut self, timeline: Timeline) -> Self {
        self.timeline = Some(timeline);
        self.faults = FaultSet::healthy();
        self
    }

    /// The clock of every wait and of the timeline (default:
    /// [`Clock::default()`], which follows tokio's paused time in tests). A
    /// manual clock makes waits end only when the test moves it.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Draws rates and latencies from a sequence seeded with `seed`
    /// (default: fresh entropy). Requests draw in the order they arrive.
    pub fn seed(mut self, seed: u64) -> Self {
        self.random = RandomSource::seeded(seed);
        self
    }

    /// Draws from `random` (default: fresh entropy).
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Binds the listeners and runs the proxy on the current tokio
    /// runtime.
    pub async fn start(self) -> Result<ChaosProxy, StartError> {
        let upstream = Upstream::parse(&self.upstream)?;
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| StartError::Bind {
                listener: "proxy",
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            listener: "proxy",
            addr: self.listen,
            source,
        })?;
        let control_listener = match self.control {
            Some(at) => {
                let l = TcpListener::bind(at)
                    .await
                    .map_err(|source| StartError::Bind {
                        listener: "control API",
                        addr: at,
                        source,
                    })?;
                Some(l)
            }
            None => None,
        };
        let control_addr = control_listener.as_ref().and_then(|l| l.local_addr().ok());

        let control = Control::new(self.clock, self.faults, self.timeline);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let shared = Arc::new(Shared {
            upstream,
            client,
            control: control.clone(),
            random: self.random,
        });
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(accept(listener, shared, stop.clone())),
            tokio::spawn(control.clone().follow(stop.clone())),
        ];
        if let Some(l) = control_listener {
            tasks.push(tokio::spawn(control_api::serve(l, control.clone(), stop)));
        }
        tracing::info!(target: "rebound_chaos", %addr, upstream = %self.upstream, "chaos proxy listening");
        Ok(ChaosProxy {
            addr,
            control_addr,
            upstream: self.upstream,
            control,
            shutdown,
            tasks,
        })
    }
}

/// Accepts client connections until shutdown.
async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment
                    // rather than spin.
                    tracing::warn!(target: "rebound_chaos", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        tokio::spawn(serve(stream, shared.clone(), stop.clone()));
    }
}

/// Serves one client connection until it ends, a fault resets it, or the
/// proxy shuts down.
async fn serve(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Kill::default());
    let io = TokioIo::new(KillableStream::new(stream, kill.clone()));
    let service = ProxyService {
        shared,
        kill: kill.clone(),
    };
    let connection = http1::Builder::new().serve_connection(io, service);
    tokio::select! {
        _ = connection => {}
        _ = kill.killed() => {}
        _ = stop.changed() => {}
    }
}
