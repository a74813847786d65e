//! `rebound demo`: the order → inventory story, naive retries beside
//! rebound, live on a web dashboard. The demo is the `rebound-demo`
//! library; this is its command-line front door.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rebound_demo::{Demo, DemoOptions};

pub(crate) const EXAMPLES: &str = "\
Examples:
  rebound demo --open
      The story in a minute, live on a dashboard on 127.0.0.1 (its address is printed, and
      opened in a browser when one is found). Ctrl-C stops it.
  rebound demo --headless
      The same story without the dashboard; a table per phase at the end.
  rebound demo --headless --duration 12s --seed 3
      A compressed timeline, other draws.

What runs, on loopback, twice (naive and rebound): an inventory service (idempotency
keys on an embedded redb file), a chaos proxy in front of it (healthy, blip, slow,
outage, recovery), an order service calling it, customers placing orders for scarce
stock; on the rebound side a warehouse worker on an embedded queue with a dead-letter
queue. Nothing to install.
Exit codes: 0 when the story's facts held, 1 when one did not, 2 on bad input.";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// No dashboard: run the story and print the summary table.
    #[arg(long)]
    headless: bool,

    /// Print the dashboard's address and open it in a browser, if one is
    /// found.
    #[arg(long, conflicts_with = "headless")]
    open: bool,

    /// The story's length (phases keep their shares), e.g. 60s, 12s, 2m.
    #[arg(long, short = 'd', value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Seed of the orders, the proxy's draws and the policies' jitter.
    #[arg(long, value_name = "SEED", default_value_t = 7)]
    seed: u64,

    /// Orders per second placed on each side.
    #[arg(long, value_name = "N", default_value_t = 40)]
    rate: u32,

    /// Where the dashboard listens (loopback only; port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Exit when the story ends instead of keeping the dashboard up until
    /// Ctrl-C.
    #[arg(long)]
    exit: bool,
}

pub(crate) fn run(args: DemoArgs) -> ExitCode {
    let options = DemoOptions {
        duration: args.duration,
        seed: args.seed,
        rate: args.rate,
        dashboard: (!args.headless).then_some(args.listen),
    };
    if let Err(e) = options.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let mut demo = match Demo::start(options).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some(addr) = demo.dashboard_addr() {
            let url = format!("http://{addr}/");
            println!("rebound demo: dashboard on {url}");
            if args.open {
                open(&url);
            }
        }
        println!(
            "running the story for {} (healthy, blip, slow, outage, recovery)...",
            humantime::format_duration(args.duration)
        );
        let summary = tokio::select! {
            s = demo.wait() => s,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        };
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        print!("{}", summary.table());
        let held = summary.facts().iter().all(|f| f.holds);
        if demo.dashboard_addr().is_some() && !args.exit {
            println!("\nThe dashboard stays up; Ctrl-C to stop.");
            let _ = tokio::signal::ctrl_c().await;
        }
        if held {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    })
}

/// Opens `url` in the desktop's browser, if there is one; the address is
/// printed either way.
fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => println!("opening it with {opener}"),
        Err(_) => println!("(no {opener} here: open the address in a browser)"),
    }
}
