//! The parsers of faults (spec lines, JSON bodies, TOML timelines) on
//! arbitrary and near-valid input: an error or a value, never a panic; and
//! what they accept, they write back to the same value.

use proptest::prelude::*;
use rebound_chaos::{Fault, FaultSet, Timeline};

const KEYS: &[&str] = &[
    "rate",
    "times",
    "methods",
    "path_prefix",
    "distribution",
    "delay",
    "min",
    "max",
    "mean",
    "std_dev",
    "median",
    "sigma",
    "at",
    "status",
    "retry_after",
    "retry_after_format",
    "chunk_bytes",
    "interval",
    "kind",
    "bogus",
];
const KINDS: &[&str] = &[
    "latency",
    "error",
    "throttle",
    "reset",
    "drop_response",
    "slow_body",
    "blackhole",
    "nope",
];
const VALUES: &[&str] = &[
    "0",
    "1",
    "0.5",
    "1.5",
    "-1",
    "NaN",
    "inf",
    "200ms",
    "1.5s",
    "2m",
    "3h",
    "10",
    "5000000000000000h",
    "99999999999999999999h",
    "1500ms",
    "uniform",
    "normal",
    "lognormal",
    "fixed",
    "request",
    "response",
    "http-date",
    "seconds",
    "429",
    "503",
    "500",
    "599",
    "200",
    "65535",
    "POST",
    "GET,PUT",
    ",",
    "post,",
    "/orders",
    "orders",
    "",
    "=",
    "\u{1F600}",
    "18446744073709551615",
];

fn near_spec() -> impl Strategy<Value = String> {
    (
        prop::sample::select(KINDS),
        prop::collection::vec(
            (prop::sample::select(KEYS), prop::sample::select(VALUES)),
            0..6,
        ),
    )
        .prop_map(|(kind, fields)| {
            let mut s = kind.to_string();
            for (k, v) in fields {
                s.push_str(&format!(" {k}={v}"));
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn spec_lines_never_panic_and_round_trip(spec in near_spec()) {
        if let Ok(fault) = spec.parse::<Fault>() {
            let again: Fault = fault.to_string().parse().unwrap();
            prop_assert_eq!(&again, &fault);
            let json = serde_json::json!([FaultSet::new([fault.clone()]).unwrap().to_json()[0]]);
            let back = FaultSet::from_json_str(&json.to_string()).unwrap();
            prop_assert_eq!(&back.faults()[0], &fault);
        }
    }

    #[test]
    fn any_text_is_an_error_or_a_value(text in ".{0,200}") {
        let _ = text.parse::<Fault>();
        let _ = FaultSet::from_specs(&text);
        let _ = FaultSet::from_json_str(&text);
        let _ = Timeline::from_toml_str(&text, "fuzz.toml");
    }

    #[test]
    fn near_timelines_never_panic(
        phases in prop::collection::vec(
            (prop::sample::select(VALUES), prop::sample::select(VALUES), near_spec()),
            0..4,
        ),
        repeat in any::<bool>(),
    ) {
        let mut toml = format!("repeat = {repeat}\n");
        for (i, (start, end, spec)) in phases.iter().enumerate() {
            toml.push_str(&format!("[[phases]]\nname = \"p{i}\"\nstart = \"{start}\"\nend = \"{end}\"\n"));
            let mut words = spec.split_whitespace();
            toml.push_str(&format!("[[phases.faults]]\nkind = \"{}\"\n", words.next().unwrap()));
            for w in words {
                let (k, v) = w.split_once('=').unwrap();
                // Numbers bare (rates, statuses), the rest as strings.
                if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-') && v.parse::<f64>().is_ok() {
                    toml.push_str(&format!("{k} = {v}\n"));
                } else {
                    toml.push_str(&format!("{k} = \"{}\"\n", v.escape_default()));
                }
            }
        }
        if let Ok(t) = Timeline::from_toml_str(&toml, "fuzz.toml") {
            prop_assert_eq!(Timeline::from_toml_str(&t.to_toml_string(), "again").unwrap(), t.clone());
            for s in [0u64, 1, 10, 1000, 1 << 40] {
                let _ = t.phase_at(std::time::Duration::from_secs(s));
                let _ = t.next_change(std::time::Duration::from_secs(s));
            }
        }
    }
}
