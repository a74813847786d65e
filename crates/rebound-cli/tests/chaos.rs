//! `rebound chaos` as a user runs it: the binary in front of a real
//! service on loopback, driven over real sockets, stopped with SIGINT; and
//! its answers to bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const REBOUND: &str = env!("CARGO_BIN_EXE_rebound");

/// A minimal HTTP/1.1 service on loopback that answers `ok` and counts the
/// requests it handled.
fn service() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    // One request head (these requests carry no body).
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, hits)
}

/// `rebound chaos` with `args`, and the proxy and control URLs it printed.
struct Running {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    proxy: String,
    control: Option<String>,
}

impl Drop for Running {
    /// A test that fails midway does not leave the proxy running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(REBOUND)
        .arg("chaos")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("rebound chaos listening on http://127.0.0.1:"),
        "{first}"
    );
    let proxy = url_in(&first);
    let control = if args.contains(&"--control") {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("control API on "), "{line}");
        Some(url_in(&line))
    } else {
        None
    };
    Running {
        child,
        out,
        proxy,
        control,
    }
}

fn url_in(line: &str) -> String {
    let at = line.find("http://").unwrap();
    line[at..]
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

/// One request on a fresh connection: the status line and body, or the
/// I/O error that ended it.
fn request(url: &str, method: &str, path: &str, body: &str) -> Result<(String, String), String> {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    if answer.is_empty() {
        return Err("no answer".into());
    }
    let status = answer.lines().next().unwrap_or("").to_string();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

fn interrupt(mut running: Running) -> (i32, String) {
    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.child.wait().unwrap();
    let mut rest = String::new();
    running.out.read_to_string(&mut rest).unwrap();
    (status.code().unwrap_or(-1), rest)
}

#[test]
fn the_proxy_injects_its_faults_and_reports_them_on_ctrl_c() {
    let (service, hits) = service();
    let running = start(&[
        "--upstream",
        &service,
        "--listen",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--seed",
        "7",
        "--fault",
        "error status=503 times=1",
        "--fault",
        "reset path_prefix=/reset",
    ]);
    let proxy = running.proxy.clone();
    assert_eq!(
        request(&proxy, "GET", "/stock", "").unwrap(),
        (
            "HTTP/1.1 503 Service Unavailable".into(),
            "rebound chaos: injected 503 Service Unavailable (fault `error`)\n".into()
        )
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(request(&proxy, "GET", "/stock", "").unwrap().1, "ok");
    assert!(request(&proxy, "GET", "/reset/now", "").is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The control API changes the faults while it runs.
    let control = running.control.clone().unwrap();
    let (status, _) = request(
        &control,
        "PUT",
        "/faults",
        "throttle status=429 retry_after=9s",
    )
    .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, body) = request(&proxy, "GET", "/stock", "").unwrap();
    assert_eq!(status, "HTTP/1.1 429 Too Many Requests");
    assert!(body.contains("Retry-After: 9"), "{body}");
    let (_, metrics) = request(&control, "GET", "/metrics", "").unwrap();
    assert!(metrics.contains("chaos_requests_total 4\n"), "{metrics}");
    assert!(
        metrics.contains("chaos_faults_injected_total{fault=\"reset\"} 1\n"),
        "{metrics}"
    );

    let (code, rest) = interrupt(running);
    assert_eq!(code, 0, "{rest}");
    assert!(
        rest.contains("s] control faults: throttle status=429 retry_after=9s\n"),
        "{rest}"
    );
    assert!(
        rest.contains("4 requests: 1 passed untouched, faults injected: error 1, throttle 1, reset 1; 1 sent to the upstream"),
        "{rest}"
    );
}

#[test]
fn the_example_timeline_checks_and_a_bad_one_names_its_line() {
    let example = Command::new(REBOUND)
        .args(["chaos", "--example-timeline"])
        .output()
        .unwrap();
    assert!(example.status.success());
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("timeline.toml");
    std::fs::write(&good, &example.stdout).unwrap();
    let check = Command::new(REBOUND)
        .args(["chaos", "--check", "--timeline"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains(": 5 phases\nhealthy (0s–10s): healthy\n"),
        "{text}"
    );

    let bad = dir.path().join("bad.toml");
    let broken = String::from_utf8_lossy(&example.stdout).replace("rate = 0.7", "rate = 7");
    std::fs::write(&bad, broken).unwrap();
    let check = Command::new(REBOUND)
        .args(["chaos", "--check", "--timeline"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.starts_with(&format!("error: {}:", bad.display()))
            && err.contains(": phases[3].faults[0].rate: 7 is outside [0, 1]"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_refused_with_exit_code_2() {
    for (args, says) in [
        (
            &["-u", "http://127.0.0.1:1", "-f", "latency delay=5"][..],
            "--fault 'latency delay=5': delay: `5` has no unit",
        ),
        (
            &["-u", "http://127.0.0.1:1", "-f", "fire"],
            "unknown fault kind `fire`",
        ),
        (&["-u", "ftp://x"], "cannot proxy to upstream `ftp://x`"),
    ] {
        let out = Command::new(REBOUND)
            .arg("chaos")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn a_busy_port_is_a_failure_to_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(REBOUND)
        .args(["chaos", "-u", "http://127.0.0.1:1", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("error: cannot listen for the proxy on {addr}")),
        "{err}"
    );
}
