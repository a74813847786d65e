//! `rebound chaos`: a fault-injecting HTTP proxy in front of a service, for
//! tests written in any language. The proxy is the `rebound-chaos`
//! library; this is its command-line front door.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rebound_chaos::{ChaosProxy, Counts, Fault, FaultKind, FaultSet, SpecError, Timeline};

pub(crate) const EXAMPLES: &str = "\
Examples:
  rebound chaos --upstream http://127.0.0.1:3001
      A healthy proxy on 127.0.0.1:8081: point your client at it instead of the service.
  rebound chaos -u http://127.0.0.1:3001 -f 'error status=503 rate=0.1'
      One request in ten answered 503 by the proxy; the service never sees those.
  rebound chaos -u http://127.0.0.1:3001 -f 'latency distribution=lognormal median=200ms sigma=0.5'
      Long-tailed latency on every request: half under 200 ms, a few over a second.
  rebound chaos -u http://127.0.0.1:3001 -f 'drop_response methods=POST times=1'
      The first POST runs on the service but its answer is lost: is your retry safe?
  rebound chaos -u http://127.0.0.1:3001 -t timeline.toml -c 127.0.0.1:8082 --seed 7
      Faults that change over time (see --example-timeline), a control API, repeatable draws.
  rebound chaos -t timeline.toml --check
      Check a timeline file and print its phases.

Faults: -f 'KIND key=value ...' (the same fields as a timeline's [[phases.faults]])
  latency        delay=200ms
                 or distribution=uniform min=100ms max=300ms
                 or distribution=normal mean=200ms std_dev=50ms [max=1s]
                 or distribution=lognormal median=200ms sigma=0.5 [max=5s]
                 at=request (default: before the service) or at=response (after it ran)
  error          status=500..599 (default 500), answered by the proxy
  throttle       status=429|503 (default 429) retry_after=5s
                 retry_after_format=seconds (default) or http-date
  reset          the connection is reset before the service sees the request
  drop_response  the service runs the request; the client's connection is reset
  slow_body      chunk_bytes=16 interval=100ms (the defaults): the answer trickles
  blackhole      accepted, never answered
  any kind       rate=0..1 (default 1)  times=N (at most N hits)
                 methods=POST,PUT  path_prefix=/orders (default: every request)
Durations take a unit: 250ms, 1.5s, 2m. Of error, throttle, reset, drop_response and
blackhole, the first that hits a request decides its answer; latencies add up.

Control API (-c ADDR):
  GET /faults, PUT /faults (body: spec lines or JSON), POST /faults (add to them),
  DELETE /faults (back to the timeline), POST /reset (healthy), GET /timeline,
  POST /timeline/restart, GET /metrics (Prometheus text). For example:
  curl -X PUT --data 'error status=503' http://127.0.0.1:8082/faults

Requests and answers pass unchanged but for hop-by-hop headers, Host (set to the service's) and
an added `Via: 1.1 rebound-chaos`; answers the proxy made or changed carry `x-rebound-chaos`.
Ctrl-C stops the proxy and prints what it injected.
Exit codes: 0 after Ctrl-C, 2 on bad input, 1 if the proxy cannot start.";

#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// The service to forward to, over plain HTTP, e.g. http://127.0.0.1:3001.
    #[arg(
        long,
        short = 'u',
        value_name = "URL",
        required_unless_present_any = ["example_timeline", "check"]
    )]
    upstream: Option<String>,

    /// Where the proxy listens: clients call this address instead of the
    /// service (port 0: any free port, printed at start).
    #[arg(
        long,
        short = 'l',
        value_name = "ADDR",
        default_value = "127.0.0.1:8081"
    )]
    listen: SocketAddr,

    /// A fault in force for as long as the proxy runs: 'KIND key=value ...'
    /// (repeat for several; see Faults below).
    #[arg(long, short = 'f', value_name = "SPEC", conflicts_with = "timeline")]
    fault: Vec<String>,

    /// Faults that change over time, from a TOML file (see
    /// --example-timeline).
    #[arg(long, short = 't', value_name = "FILE.toml")]
    timeline: Option<PathBuf>,

    /// Serve the control API (faults, timeline, metrics) on this address.
    #[arg(long, short = 'c', value_name = "ADDR")]
    control: Option<SocketAddr>,

    /// Seed of the random draws (rates, latencies): the same seed and the
    /// same order of requests give the same faults. Default: a fresh seed,
    /// printed at start.
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,

    /// Check the faults or the timeline, print them, and exit.
    #[arg(long)]
    check: bool,

    /// Print an example timeline file and exit.
    #[arg(long)]
    example_timeline: bool,
}

/// Why the command stopped: bad input (exit 2) or a failure to run (1).
enum Failure {
    Input(String),
    Start(String),
}

pub(crate) fn run(args: ChaosArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Start(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run_inner(args: ChaosArgs) -> Result<(), Failure> {
    if args.example_timeline {
        print!("{}", rebound_chaos::EXAMPLE_TIMELINE);
        return Ok(());
    }
    let faults = args
        .fault
        .iter()
        .map(|spec| {
            spec.parse::<Fault>()
                .map_err(|e| input(e.with_origin(format!("--fault '{spec}'"))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let faults = FaultSet::new(faults).map_err(|e| Failure::Input(e.to_string()))?;
    let timeline = match &args.timeline {
        Some(path) => Some(Timeline::load(path).map_err(input)?),
        None => None,
    };
    if args.check {
        match &timeline {
            Some(t) => print!(
                "{}: {} phases\n{t}",
                args.timeline
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
                t.phases().len()
            ),
            None => println!("{}", faults),
        }
        return Ok(());
    }
    let upstream = args.upstream.clone().unwrap_or_default();
    let seed = args.seed.unwrap_or_else(fresh_seed);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Start(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let mut builder = ChaosProxy::builder(&upstream)
            .listen(args.listen)
            .seed(seed);
        builder = match timeline {
            Some(t) => builder.timeline(t),
            None => builder.faults(faults),
        };
        if let Some(at) = args.control {
            builder = builder.control_api(at);
        }
        let proxy = builder.start().await.map_err(|e| match e {
            rebound_chaos::StartError::Upstream { .. } => Failure::Input(e.to_string()),
            _ => Failure::Start(e.to_string()),
        })?;
        println!(
            "rebound chaos listening on {}, forwarding to {} (seed {seed})",
            proxy.url(),
            proxy.upstream()
        );
        if let Some(at) = proxy.control_addr() {
            println!(
                "control API on http://{at} (GET /faults, PUT /faults, POST /reset, GET /metrics)"
            );
        }
        let mut changes = proxy.control().watch();
        let first = changes.borrow_and_update().clone();
        println!("{}", line(&first));
        let log = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let now = changes.borrow_and_update().clone();
                println!("{}", line(&now));
            }
        });
        stopped().await;
        log.abort();
        let counts = proxy.counts();
        proxy.shutdown().await;
        println!("{}", summary(&counts));
        Ok(())
    })
}

fn input(e: SpecError) -> Failure {
    Failure::Input(e.to_string())
}

/// `[    12.3s] phase outage: error status=503`.
fn line(current: &rebound_chaos::Current) -> String {
    format!("[{:>8.1}s] {current}", current.elapsed().as_secs_f64())
}

/// What the proxy did, in one paragraph.
fn summary(counts: &Counts) -> String {
    let injected: Vec<String> = FaultKind::ALL
        .iter()
        .filter(|k| counts.injected(**k) > 0)
        .map(|k| format!("{k} {}", counts.injected(*k)))
        .collect();
    format!(
        "{} requests: {} passed untouched, faults injected: {}; {} sent to the upstream, {} upstream errors; {:.1}s of latency added.",
        counts.requests(),
        counts.passed(),
        if injected.is_empty() { "none".to_string() } else { injected.join(", ") },
        counts.upstream_requests(),
        counts.upstream_errors(),
        counts.injected_delay().as_secs_f64(),
    )
}

/// Resolves on Ctrl-C (or SIGTERM on Unix).
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A seed from the process's hash randomness and the time.
fn fresh_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos(),
    );
    h.finish()
}
