//! `rebound demo` as users run it: the headless table, bad input.

use std::process::Command;

fn rebound() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rebound"))
}

#[test]
fn headless_prints_the_table_of_every_phase_and_the_story() {
    let out = rebound()
        .args([
            "demo",
            "--headless",
            "--duration",
            "6s",
            "--rate",
            "20",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 0 or 1 says whether the facts held; on a 6 s run they may not all.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "status {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for phase in ["healthy", "blip", "slow", "outage", "recovery", "total"] {
        assert!(stdout.contains(phase), "no {phase} row:\n{stdout}");
    }
    assert!(stdout.contains("seed 3"), "{stdout}");
    assert!(stdout.contains("The story:"), "{stdout}");
    assert!(
        stdout.contains("rebound reserved each order exactly once"),
        "{stdout}"
    );
}

#[test]
fn with_the_dashboard_it_prints_the_address_and_exits_when_asked() {
    let out = rebound()
        .args(["demo", "--duration", "5s", "--rate", "10", "--exit"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("rebound demo: dashboard on http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no dashboard address printed:\n{stdout}"));
    assert!(line.ends_with('/'), "{line}");
    assert!(stdout.contains("The story:"), "{stdout}");
    assert!(
        !stdout.contains("Ctrl-C to stop"),
        "--exit must not wait: {stdout}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_option() {
    let out = rebound()
        .args(["demo", "--headless", "--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration must be between 5s and 1h"));

    let out = rebound()
        .args(["demo", "--listen", "0.0.0.0:8080"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let out = rebound()
        .args(["demo", "--duration", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"));
}
