//! The dashboard in a real browser: headless Chromium loads the page while
//! the story runs; the charts render (SVG polylines for both sides) and
//! their values change from one look to the next.
//!
//! Needs `chromium` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs it). Without it the test says it was skipped, unless
//! `REBOUND_REQUIRE_SERVICES=1`, under which it fails.

use std::process::Command;
use std::time::{Duration, Instant};

use rebound_demo::{Demo, DemoOptions};

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

/// The page's DOM after its scripts ran for a while, as Chromium sees it.
fn dump_dom(browser: &str, url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            // Dump what the page shows 3 s after it started loading (the
            // event stream never ends while the story runs).
            "--timeout=3000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attr="..."` on the element whose id is `id`.
fn attr_of(dom: &str, id: &str, attr: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_owned())
}

/// The text of the element whose id is `id`.
fn text_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let open = at + dom[at..].find('>')? + 1;
    Some(dom[open..open + dom[open..].find('<')?].to_owned())
}

fn samples_in(dom: &str) -> usize {
    let Some(at) = dom.find("<body") else {
        return 0;
    };
    dom[at..]
        .split_once("data-samples=\"")
        .and_then(|(_, rest)| rest.split('"').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_charts_whose_values_change() {
    let Some(browser) = chromium() else {
        if std::env::var("REBOUND_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("chromium is required (REBOUND_REQUIRE_SERVICES=1) but was not found");
        }
        eprintln!("skipped: no chromium on PATH");
        return;
    };
    let demo = Demo::start(DemoOptions {
        // Long enough to outlast the looks; dropping the demo ends it.
        duration: Duration::from_secs(40),
        dashboard: Some("127.0.0.1:0".parse().unwrap()),
        ..DemoOptions::default()
    })
    .await
    .expect("the demo starts");
    let url = format!("http://{}/", demo.dashboard_addr().unwrap());

    // The page itself: self-contained, no outside resources.
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("<svg") || page.contains("createElementNS"));
    for line in page.lines() {
        let outside = line.contains("https://")
            || line.contains("src=")
            || line.contains("<link")
            || line
                .replace("http://www.w3.org/2000/svg", "")
                .contains("http://");
        assert!(!outside, "the page must embed everything, found: {line}");
    }

    // Look until the page has shown a few samples, then look again later.
    let look = |browser: String, url: String| async move {
        tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(45);
    let first = loop {
        let dom = look(browser.clone(), url.clone()).await;
        if samples_in(&dom) >= 3 {
            break dom;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed 3 samples; last DOM:\n{dom}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let n1 = samples_in(&first);
    let second = loop {
        let dom = look(browser.clone(), url.clone()).await;
        if samples_in(&dom) >= n1 + 3 {
            break dom;
        }
        assert!(
            Instant::now() < deadline,
            "the page stopped updating at {n1} samples; last DOM:\n{dom}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // The charts render: every chart has points, and a line per side where
    // both sides have the figure.
    for chart in [
        "attempts",
        "load",
        "p99",
        "double",
        "prevented",
        "budget",
        "breaker",
        "queued",
        "dlq",
    ] {
        let id = format!("chart-{chart}");
        let p1: usize = attr_of(&first, &id, "data-points")
            .unwrap()
            .parse()
            .unwrap();
        let p2: usize = attr_of(&second, &id, "data-points")
            .unwrap()
            .parse()
            .unwrap();
        assert!(p1 > 0, "{chart} drew nothing on the first look");
        assert!(p2 > p1, "{chart} did not grow: {p1} then {p2} points");
    }
    for side in ["naive", "rebound"] {
        assert!(
            second.contains(&format!("class=\"series-{side}\"")),
            "no {side} line in the charts"
        );
    }
    // The values change: the clock, and the attempts polyline.
    assert_ne!(text_of(&first, "clock"), text_of(&second, "clock"));
    let line = |dom: &str| {
        let at = dom.find("id=\"chart-attempts\"").unwrap();
        dom[at..]
            .split("class=\"series-rebound\" points=\"")
            .nth(1)
            .map(|r| r.split('"').next().unwrap().to_owned())
    };
    assert_ne!(
        line(&first),
        line(&second),
        "the attempts chart did not change"
    );
    assert!(text_of(&second, "tile-rebound-breaker").is_some());
    drop(demo);
}
