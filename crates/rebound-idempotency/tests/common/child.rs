//! Tests that need a process of their own (to be killed, or to run under a
//! resource limit) re-run this test binary as a child: the child runs one
//! named test with a role in its environment, and talks back on stdout in
//! lines marked `@@ `.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

const ROLE: &str = "REBOUND_IDEMPOTENCY_TEST_CHILD";

/// The role this process was started with, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Start this test binary as a child running `test` (its full path, e.g.
/// `child_process`) with `role`.
pub fn spawn(test: &str, role: &str) -> (Child, Lines) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, Lines(BufReader::new(stdout)))
}

/// Say something to the parent.
pub fn say(line: impl std::fmt::Display) {
    println!("@@ {line}");
}

/// The child's messages.
pub struct Lines(BufReader<ChildStdout>);

impl Lines {
    /// The next message (blocking); `None` when the child's stdout closed.
    pub fn next_message(&mut self) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.0.read_line(&mut line).ok()? == 0 {
                return None;
            }
            // The test harness may have printed "test name ... " first.
            if let Some((_, msg)) = line.trim_end().split_once("@@ ") {
                return Some(msg.to_owned());
            }
        }
    }

    /// Everything until the child's stdout closes.
    pub fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.next_message()).collect()
    }
}
