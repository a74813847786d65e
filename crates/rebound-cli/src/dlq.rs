//! `rebound dlq`: inspect and operate the dead-letter queue of a
//! rebound-jobs queue (the embedded file, PostgreSQL) or broker (a Redis
//! stream, a NATS JetStream stream, a RabbitMQ queue).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rebound_jobs::time::wall;
use rebound_jobs::{
    dlq, AmqpQueue, DeadLetterFilter, DeadLetterReason, EmbeddedQueue, JobId, JobRecord, NatsQueue,
    PostgresQueue, Queue, RedisStreamQueue, RedriveOptions, Timestamp,
};

const DLQ_EXAMPLES: &str = "\
Examples:
  rebound dlq --file jobs.redb list
      Every dead-lettered job of an embedded queue file: reason, age, runs, last error.
  rebound dlq --postgres postgres://app@db/app list --queue invoices --reason exhausted
      Only the invoice jobs that ran out of attempts (PostgreSQL queue, table rebound_jobs).
  rebound dlq --file jobs.redb show 42
      One job: payload, reason, and every delivery's time, worker and error.
  rebound dlq --file jobs.redb redrive --queue invoices --error 503 --rate 20
      Move the invoice jobs that failed with a 503 back to their queue, 20 a second,
      each with a fresh attempt budget.
  rebound dlq --file jobs.redb purge --older-than 30d
      Delete dead-lettered jobs older than 30 days.
  rebound dlq --redis redis://127.0.0.1:6379 --stream invoices list
      The dead-letter stream invoices:rebound:dead of the Redis stream invoices.
  rebound dlq --nats nats://127.0.0.1:4222 --stream INVOICES show 1042
      One job of the JetStream dead-letter stream INVOICES_DEAD.
  rebound dlq --amqp amqp://guest:guest@127.0.0.1:5672/%2f --queue invoices redrive --all
      Every job of the RabbitMQ queue invoices.dead back to invoices.

The embedded queue file is locked by the process that has it open: stop the worker
first (or run these operations through it). Add --json for machine-readable output.";

/// Inspect and operate a dead-letter queue.
#[derive(Debug, Args)]
#[command(after_help = DLQ_EXAMPLES)]
pub struct DlqArgs {
    /// An embedded queue file (redb). Wins over --postgres.
    #[arg(long, value_name = "PATH", global = true)]
    file: Option<PathBuf>,

    /// A PostgreSQL queue, by URL (e.g. postgres://user@host:5432/db).
    #[arg(
        long,
        value_name = "URL",
        global = true,
        env = "REBOUND_JOBS_POSTGRES_URL"
    )]
    postgres: Option<String>,

    /// The PostgreSQL table (`name` or `schema.name`).
    #[arg(
        long,
        value_name = "TABLE",
        global = true,
        default_value = "rebound_jobs"
    )]
    table: String,

    /// A Redis server whose stream (--stream) holds the jobs; its
    /// dead-letter stream is `<stream>:rebound:dead`.
    #[arg(
        long,
        value_name = "URL",
        global = true,
        env = "REBOUND_JOBS_REDIS_URL"
    )]
    redis: Option<String>,

    /// A NATS server whose JetStream stream (--stream) holds the jobs; its
    /// dead-letter stream is `<stream>_DEAD`.
    #[arg(long, value_name = "URL", global = true, env = "REBOUND_JOBS_NATS_URL")]
    nats: Option<String>,

    /// A RabbitMQ server whose quorum queue (--queue) holds the jobs; its
    /// dead-letter queue is `<queue>.dead`.
    #[arg(long, value_name = "URL", global = true, env = "REBOUND_JOBS_AMQP_URL")]
    amqp: Option<String>,

    /// The stream of --redis or --nats.
    #[arg(long, value_name = "STREAM", global = true)]
    stream: Option<String>,

    /// Only this queue (with --file, --postgres); the queue of --amqp.
    #[arg(long, value_name = "NAME", global = true)]
    queue: Option<String>,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead-lettered jobs (oldest id first), with the depth.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Show one job: payload, reason and every delivery.
    Show {
        /// The job id (as `list` prints it).
        id: JobId,
    },
    /// Move dead-lettered jobs back to their queue, rate-limited, each with a
    /// fresh attempt budget and maximum age.
    Redrive {
        #[command(flatten)]
        filter: FilterArgs,
        /// Redrive every dead-lettered job (required when no filter is given).
        #[arg(long)]
        all: bool,
        /// At most this many jobs a second.
        #[arg(long, default_value_t = 100, value_name = "PER_SECOND", value_parser = clap::value_parser!(u32).range(1..))]
        rate: u32,
        /// Stop after this many jobs.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Delete dead-lettered jobs older than a given age.
    Purge {
        /// Only jobs dead-lettered at least this long ago (e.g. 30d, 12h).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Duration,
        /// Only this reason.
        #[arg(long, value_name = "REASON")]
        reason: Option<DeadLetterReason>,
    },
    /// How many jobs are dead-lettered.
    Depth,
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// Only this reason: exhausted, expired, permanent, poison.
    #[arg(long, value_name = "REASON")]
    reason: Option<DeadLetterReason>,
    /// Only jobs one of whose errors contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    error: Option<String>,
    /// Only jobs dead-lettered at least this long ago (e.g. 7d, 12h, 30m).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<Duration>,
    /// Only jobs dead-lettered at most this long ago.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    newer_than: Option<Duration>,
}

impl FilterArgs {
    fn is_empty(&self, queue: Option<&str>) -> bool {
        queue.is_none()
            && self.reason.is_none()
            && self.error.is_none()
            && self.older_than.is_none()
            && self.newer_than.is_none()
    }

    fn to_filter(&self, queue: Option<&str>, now: Timestamp) -> DeadLetterFilter {
        let mut f = DeadLetterFilter {
            queue: queue.map(str::to_owned),
            reason: self.reason,
            error_contains: self.error.clone(),
            ..Default::default()
        };
        if let Some(age) = self.older_than {
            f = f.older_than(age, now);
        }
        if let Some(age) = self.newer_than {
            f = f.newer_than(age, now);
        }
        f
    }
}

fn parse_age(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not an age ({e}); write it like 30d, 12h, 90m or 45s"))
}

/// Runs `rebound dlq`.
pub fn run(args: DlqArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(execute(args)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(args: &DlqArgs) -> Result<Box<dyn Queue>, String> {
    let stream = |flag: &str| {
        args.stream
            .clone()
            .ok_or_else(|| format!("{flag} needs --stream NAME: the stream that holds the jobs"))
    };
    let given = [
        args.file.is_some(),
        args.postgres.is_some(),
        args.redis.is_some(),
        args.nats.is_some(),
        args.amqp.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 && args.file.is_none() {
        return Err(
            "give one of --postgres, --redis, --nats or --amqp (or --file, which wins)".into(),
        );
    }
    let boxed = |q: Result<Box<dyn Queue>, rebound_jobs::QueueError>| q.map_err(|e| e.to_string());
    if let Some(path) = &args.file {
        return boxed(EmbeddedQueue::open_existing(path).map(|q| Box::new(q) as Box<dyn Queue>));
    }
    if let Some(url) = &args.postgres {
        return boxed(
            PostgresQueue::connect(url)
                .and_then(|q| q.with_table(&args.table))
                .map(|q| Box::new(q) as Box<dyn Queue>),
        );
    }
    if let Some(url) = &args.redis {
        let stream = stream("--redis")?;
        return boxed(
            RedisStreamQueue::connect(url, &stream)
                .await
                .map(|q| Box::new(q) as Box<dyn Queue>),
        );
    }
    if let Some(url) = &args.nats {
        let stream = stream("--nats")?;
        return boxed(
            NatsQueue::connect(url, &stream)
                .await
                .map(|q| Box::new(q) as Box<dyn Queue>),
        );
    }
    if let Some(url) = &args.amqp {
        let queue = args
            .queue
            .clone()
            .ok_or("--amqp needs --queue NAME: the quorum queue that holds the jobs")?;
        return boxed(
            AmqpQueue::connect(url, &queue)
                .await
                .map(|q| Box::new(q) as Box<dyn Queue>),
        );
    }
    Err(
        "which queue? give --file PATH (an embedded queue file), --postgres URL, \
         --redis URL --stream NAME, --nats URL --stream NAME or --amqp URL --queue NAME \
         (or set REBOUND_JOBS_POSTGRES_URL)"
            .into(),
    )
}

async fn execute(args: DlqArgs) -> Result<String, String> {
    let queue = open(&args).await?;
    let now = wall(queue.clock());
    let json = args.json;
    let only = args.queue.as_deref();
    let err = |e: rebound_jobs::QueueError| e.to_string();
    match args.command {
        DlqCommand::List { filter, limit } => {
            let f = filter.to_filter(only, now);
            let jobs = dlq::list(&*queue, &f, limit).await.map_err(err)?;
            let depth = queue.dead_letter_depth(only).await.map_err(err)?;
            if json {
                return Ok(to_json(
                    &serde_json::json!({ "depth": depth, "jobs": jobs }),
                ));
            }
            Ok(list_table(&jobs, depth, now))
        }
        DlqCommand::Show { id } => {
            let job = queue.job(id).await.map_err(err)?.ok_or_else(|| {
                format!("no job {id} in this queue (it may have been acked, or purged)")
            })?;
            if json {
                return Ok(to_json(&job));
            }
            Ok(show(&job, now))
        }
        DlqCommand::Redrive {
            filter,
            all,
            rate,
            limit,
        } => {
            if filter.is_empty(only) && !all {
                return Err(
                    "redrive needs a filter (--queue, --reason, --error, --older-than, \
                     --newer-than) or --all to move every dead-lettered job"
                        .into(),
                );
            }
            let moved = dlq::redrive(
                &*queue,
                &filter.to_filter(only, now),
                RedriveOptions {
                    per_second: rate,
                    limit,
                },
            )
            .await
            .map_err(err)?;
            if json {
                return Ok(to_json(&serde_json::json!({ "redriven": moved })));
            }
            Ok(format!(
                "Moved {moved} job{} back to {} queue, each with a fresh attempt budget.\n",
                if moved == 1 { "" } else { "s" },
                if moved == 1 { "its" } else { "their" }
            ))
        }
        DlqCommand::Purge { older_than, reason } => {
            let mut f = DeadLetterFilter::default().older_than(older_than, now);
            f.queue = only.map(str::to_owned);
            f.reason = reason;
            let purged = dlq::purge(&*queue, &f).await.map_err(err)?;
            if json {
                return Ok(to_json(&serde_json::json!({ "purged": purged })));
            }
            Ok(format!(
                "Deleted {purged} dead-lettered job{} older than {}.\n",
                if purged == 1 { "" } else { "s" },
                humantime::format_duration(older_than)
            ))
        }
        DlqCommand::Depth => {
            let depth = queue.dead_letter_depth(only).await.map_err(err)?;
            if json {
                return Ok(to_json(&serde_json::json!({ "depth": depth })));
            }
            Ok(format!("{depth}\n"))
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("serializable");
    s.push('\n');
    s
}

/// `3d 4h` style age, to the largest two units.
fn age(now: Timestamp, then: Timestamp) -> String {
    let secs = now.saturating_since(then).as_secs();
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn list_table(jobs: &[JobRecord], depth: u64, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{depth} dead-lettered job{} in all; {} listed",
        if depth == 1 { "" } else { "s" },
        jobs.len()
    );
    if jobs.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:>8}  {:<16}  {:<9}  {:>8}  {:>5}  LAST ERROR",
        "ID", "QUEUE", "REASON", "AGE", "RUNS"
    );
    for j in jobs {
        let _ = writeln!(
            out,
            "{:>8}  {:<16}  {:<9}  {:>8}  {:>5}  {}",
            j.id,
            one_line(&j.queue, 16),
            j.reason.map_or("-", DeadLetterReason::as_str),
            j.dead_at.map_or("-".into(), |t| age(now, t)),
            j.history.len(),
            one_line(j.last_error().unwrap_or("-"), 70)
        );
    }
    out
}

fn show(j: &JobRecord, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "job {} in queue {}", j.id, j.queue);
    let status = match j.status {
        rebound_jobs::JobStatus::Dead => format!(
            "dead-lettered ({}) at {}, {} ago",
            j.reason.map_or("?", DeadLetterReason::as_str),
            j.dead_at.map_or("?".into(), |t| t.to_string()),
            j.dead_at.map_or("?".into(), |t| age(now, t))
        ),
        rebound_jobs::JobStatus::Available => format!("waiting, due at {}", j.run_at),
        rebound_jobs::JobStatus::Running => format!(
            "running, leased until {}",
            j.lease_expires_at.map_or("?".into(), |t| t.to_string())
        ),
    };
    let _ = writeln!(out, "status:    {status}");
    let _ = writeln!(out, "enqueued:  {}", j.state.enqueued_at);
    let _ = writeln!(
        out,
        "counts:    {} deliveries, {} failures, {} handed back at shutdown, {} redrives",
        j.state.deliveries, j.state.failures, j.state.interrupts, j.redrives
    );
    match j.payload_text() {
        Some(t) => {
            let _ = writeln!(out, "payload:   {t}");
        }
        None => {
            let hex: String = j.payload.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(out, "payload:   ({} bytes, hex) {hex}", j.payload.len());
        }
    }
    let _ = writeln!(out, "deliveries:");
    for h in &j.history {
        let claimed = match (h.claimed_at, h.worker.as_str()) {
            (Some(at), "") => format!("claimed {at} (worker unknown)"),
            (Some(at), worker) => format!("claimed {at} by {worker}"),
            // A broker counted this delivery; nobody reported it.
            (None, _) => {
                "claimed (time and worker unknown: the broker counted a delivery that never reported)"
                    .to_owned()
            }
        };
        let _ = writeln!(
            out,
            "  #{}{}  {claimed}  {}{}",
            h.delivery,
            if h.redrive > 0 {
                format!(" (after redrive {})", h.redrive)
            } else {
                String::new()
            },
            h.result.as_str(),
            h.ended_at.map_or(String::new(), |t| format!(" at {t}"))
        );
        if let Some(e) = &h.error {
            let _ = writeln!(out, "      {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rebound_jobs::{DeliveryRecord, JobId, JobStatus, RunResult};

    #[test]
    fn show_says_when_a_delivery_time_is_unknown() {
        let t = Timestamp::from_millis(1_700_000_000_000);
        let rec = |claimed_at: Option<Timestamp>, worker: &str| DeliveryRecord {
            delivery: 1,
            redrive: 0,
            claimed_at,
            worker: worker.to_owned(),
            ended_at: None,
            result: RunResult::NoOutcome,
            error: None,
        };
        let job = JobRecord {
            id: JobId(7),
            queue: "invoices".into(),
            status: JobStatus::Dead,
            payload: b"{}".to_vec(),
            state: rebound_jobs::DeliveryState::new(t),
            run_at: t,
            lease_expires_at: None,
            fence: 2,
            reason: Some(DeadLetterReason::Poison),
            dead_at: Some(t),
            redrives: 0,
            history: vec![rec(None, ""), rec(Some(t), "host-1/worker")],
        };
        let text = show(&job, t);
        assert!(text.contains("claimed (time and worker unknown"), "{text}");
        assert!(
            text.contains("claimed 2023-11-14T22:13:20.000Z by host-1/worker"),
            "{text}"
        );
    }
}
