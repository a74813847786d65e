//! The herd's policies in files: a coalescer and a cache's freshness from
//! TOML and JSON, built on the file's clock and randomness, and bad values
//! named with their path and line.
#![cfg(all(feature = "serde", feature = "tokio"))]

use std::time::Duration;

use rebound::coalesce::Coalescer;
use rebound::config::{BuildEnv, Policies};
use rebound::fallback::{Lookup, StaleCache};
use rebound::{Clock, RandomSource};

const FILE: &str = r#"
[dependencies.catalog.coalesce]
max_wait = "250ms"
share_errors = false

[dependencies.catalog.cache]
ttl = "60s"
jitter = 0.25
early_refresh = 1.5
stale_while_loading = true
max_age = "10m"
max_entries = 500
"#;

#[test]
fn a_file_configures_the_coalescer_and_the_cache() {
    let policies = Policies::from_toml_str(FILE).unwrap();
    let catalog = policies.dependency("catalog").unwrap();
    let (clock, time) = Clock::manual();
    let env = BuildEnv {
        clock,
        random: RandomSource::seeded(9),
    };
    let cache: StaleCache<&str, u32> = catalog.cache.as_ref().unwrap().build_in(&env).unwrap();
    let f = cache.freshness().unwrap();
    assert_eq!(f.ttl(), Duration::from_secs(60));
    assert_eq!(f.jitter(), 0.25);
    assert_eq!(f.early_refresh(), Some(1.5));
    assert!(f.stale_while_loading());
    assert_eq!(cache.max_age(), Duration::from_secs(600));
    // The TTL drawn is in 60 s × [0.75, 1], on the file's clock.
    let t0 = time.now();
    cache.put("k", 1);
    let exp = cache.expires_at("k").unwrap() - t0;
    assert!(
        Duration::from_secs(45) <= exp && exp <= Duration::from_secs(60),
        "{exp:?}"
    );
    time.advance(Duration::from_secs(61));
    assert!(matches!(
        cache.lookup("k"),
        Lookup::Miss {
            stale: Some((1, _))
        }
    ));

    let herd: Coalescer<&str, u32, ()> = catalog
        .coalesce
        .as_ref()
        .unwrap()
        .build_in("catalog", &env)
        .unwrap();
    assert_eq!(herd.dependency_name(), "catalog");
    assert!(herd.clock().is_manual());

    // JSON says the same.
    let json = policies.to_json_string().unwrap();
    assert_eq!(Policies::from_json_str(&json).unwrap(), policies);
}

#[test]
fn bad_values_name_the_field_and_the_line() {
    for (file, path, line) in [
        (
            "[dependencies.x.cache]\nttl = \"1s\"\njitter = 1.5\n",
            "cache.jitter",
            3,
        ),
        ("[dependencies.x.cache]\nttl = \"0s\"\n", "cache.ttl", 2),
        (
            "[dependencies.x.cache]\nttl = \"1s\"\nearly_refresh = -1.0\n",
            "cache.early_refresh",
            3,
        ),
        (
            "[dependencies.x.cache]\nttl = \"1s\"\nmax_entries = 0\n",
            "cache.max_entries",
            3,
        ),
        (
            "[dependencies.x.coalesce]\nmax_wait = \"0s\"\n",
            "coalesce.max_wait",
            2,
        ),
    ] {
        let err = Policies::from_toml_str(file).unwrap_err();
        assert_eq!(err.line(), Some(line), "{file}: {err}");
        assert!(err.path().ends_with(path), "{file}: {} ({err})", err.path());
    }
    // Unknown fields and a missing TTL are refused too.
    let err = Policies::from_toml_str("[dependencies.x.cache]\nttl = \"1s\"\nttl_jitter = 0.1\n")
        .unwrap_err();
    assert!(err.to_string().contains("ttl_jitter"), "{err}");
    let err = Policies::from_toml_str("[dependencies.x.cache]\njitter = 0.1\n").unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");
}
