//! The example scenario file.

/// An example scenario file, printed by `rebound simulate
/// --example-config` and tested.
pub const EXAMPLE: &str = r#"# A 300 QPS server, clients retrying once after a 1 s timeout, a 10 s stall.
name = "retry-storm"
title = "Does a budget save us from a retry storm?"
runs = 2
duration = "90s"
clients = 10          # each with its own policy objects (scope = "client")
trigger_end = "20s"
workload = { kind = "open", rate = 200 }

[[layers]]
name = "api"
workers = 1
service = { exponential = "3.333ms" }
outages = [{ start = "10s", end = "20s", mode = "stall" }]

# Each policy is written as a service's policy file writes it under
# [dependencies.NAME]. To simulate your service's own file, unchanged:
#   policy = { file = "policies.toml", dependency = "api" }
# (relative to this file; a .json file is read as JSON).

[[variants]]
name = "retry once"
policy.retry = { max_attempts = 2, attempt_timeout = "1s", backoff = { kind = "constant", base = "0s" } }

[[variants]]
name = "retry once, 10% budget"
policy.retry = { max_attempts = 2, attempt_timeout = "1s", backoff = { kind = "constant", base = "0s" }, budget = { kind = "ratio", ratio = 0.1, min_retries_per_second = 0 } }

[[variants]]
name = "retry once, adaptive throttle"
policy.retry = { max_attempts = 2, attempt_timeout = "1s", backoff = { kind = "constant", base = "0s" } }
policy.throttle = { k = 2.0, window = "30s" }

[[variants]]
name = "a pipeline: 2 s in total, retry, 1 s per attempt"
policy.pipeline.stages = [
  { type = "timeout", timeout = "2s" },
  { type = "retry", max_attempts = 2, backoff = { kind = "constant", base = "0s" }, budget = { kind = "ratio", ratio = 0.1, min_retries_per_second = 0 } },
  { type = "timeout", timeout = "1s" },
]
"#;
