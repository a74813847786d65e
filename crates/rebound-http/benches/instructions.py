#!/usr/bin/env python3
"""Instructions per request of the overhead benchmark, counted by callgrind:
repeatable where wall-clock times on a shared machine are not.

    cargo bench -p rebound-http --bench overhead --no-run
    python3 crates/rebound-http/benches/instructions.py [--loopback] [client ...]

For each client (default: all four), runs the `in_process/<client>` case
(`loopback/<client>` with `--loopback`) under `valgrind --tool=callgrind`
and prints the inclusive instructions of `reqwest_middleware`'s
`RequestBuilder::send` future divided by the number of requests: the calls
of the benchmark's terminal middleware in process, of reqwest's
`Client::execute_request` on loopback. In process the count is exact and
repeats; on loopback it includes the client's share of hyper and the
socket calls, and moves by about ±2 % between runs (connection reuse,
wake-ups). Needs valgrind and callgrind_annotate on the PATH.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

CLIENTS = [
    "reqwest-middleware bare",
    "reqwest-retry",
    "rebound-http",
    "rebound-http like for like",
]


def bench_binary():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    found = [
        p
        for p in glob.glob(os.path.join(target, "release", "deps", "overhead-*"))
        if not p.endswith(".d") and os.access(p, os.X_OK)
    ]
    if not found:
        sys.exit(f"no overhead benchmark under {target}/release/deps: "
                 "run `cargo bench -p rebound-http --bench overhead --no-run` first")
    return max(found, key=os.path.getmtime)


def calls_of(profile, is_counted):
    """Calls of the functions whose names `is_counted` accepts."""
    ids, pending, calls = set(), None, 0
    with open(profile) as f:
        for line in f:
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m:
                fid, name = m.group(1), m.group(2)
                if name and is_counted(name):
                    ids.add(fid)
                if line.startswith("cfn="):
                    pending = fid
                continue
            m = re.match(r"calls=(\d+)", line)
            if m and pending in ids:
                calls += int(m.group(1))
                pending = None
    return calls


def send_instructions(profile):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", profile],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        if "RequestBuilder::send::{{closure}}" in line:
            return int(line.split()[0].replace(",", ""))
    sys.exit(f"{profile}: no RequestBuilder::send future in the profile")


def terminal_handle(name):
    return "Terminal" in name and name.endswith(">::handle")


def execute_request(name):
    return name.endswith("Client::execute_request")


def main():
    binary = bench_binary()
    args = sys.argv[1:]
    loopback = "--loopback" in args
    clients = [a for a in args if a != "--loopback"] or CLIENTS
    group, is_request = ("loopback", execute_request) if loopback else (
        "in_process", terminal_handle)
    print(f"{binary}, {group}")
    for client in clients:
        with tempfile.TemporaryDirectory() as tmp:
            profile = os.path.join(tmp, "callgrind.out")
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}",
                 binary, "--bench", f"{group}/{client}$", "--profile-time", "2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
            )
            requests = calls_of(profile, is_request)
            if requests == 0:
                sys.exit(f"{client}: no request ran (is the name right?)")
            total = send_instructions(profile)
            print(f"{client:32} {total / requests:8.0f} instructions/request "
                  f"({total} over {requests} requests)")


if __name__ == "__main__":
    main()
