//! Fuzzing the server-delay parsers: any header value gives a delay or a
//! clean "ignored", never a panic; and what parses is never shorter than
//! what the server wrote.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use rebound_http::retry_after::{
    parse_delta_seconds, parse_ratelimit, parse_retry_after, parse_x_ratelimit_reset, server_delay,
};

fn any_time() -> impl Strategy<Value = SystemTime> {
    (0u64..8_000_000_000).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// Values that look like what the parsers expect, so the fuzzer reaches
/// their inner branches, not only the first rejection.
fn plausible() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,25}",
        "[0-9]{1,12}\\.[0-9]{0,14}",
        "[ \t]{0,2}-?[0-9]{1,5}[ \t]{0,2}",
        "(Mon|Tue|Sun|Sunday|Xyz), [0-9]{1,2} (Jan|Nov|Foo) [0-9]{2,5} [0-9]{1,2}:[0-9]{2}:[0-9]{2} (GMT|UTC)?",
        "(Sun|Mon) (Nov|Dec) [ 0-9]{1,2} [0-9:]{8} [0-9]{4}",
        "\"?[a-z]*\"?(;[a-z]{1,5}=[0-9a-z\\.]{0,12}){0,4}",
        "(limit|remaining|reset)=[0-9]{0,12}(, ?(limit|remaining|reset)=[0-9]{0,12}){0,3}",
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_give_a_delay_or_ignored(bytes in proptest::collection::vec(any::<u8>(), 0..64), now in any_time()) {
        let _ = parse_retry_after(&bytes, now);
        let _ = parse_delta_seconds(&bytes);
        let _ = parse_x_ratelimit_reset(&bytes, now);
        let _ = parse_ratelimit(&bytes);
    }

    #[test]
    fn plausible_strings_give_a_delay_or_ignored(s in plausible(), now in any_time()) {
        let _ = parse_retry_after(s.as_bytes(), now);
        let _ = parse_delta_seconds(s.as_bytes());
        let _ = parse_x_ratelimit_reset(s.as_bytes(), now);
        let _ = parse_ratelimit(s.as_bytes());
    }

    #[test]
    fn any_header_map_gives_a_delay_or_none(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 5),
        plausible_values in proptest::collection::vec(plausible(), 5),
        use_plausible in any::<bool>(),
        now in any_time(),
    ) {
        let mut headers = HeaderMap::new();
        let names = ["retry-after", "ratelimit", "ratelimit-reset", "x-ratelimit-reset", "date"];
        for (i, name) in names.iter().enumerate() {
            let raw = if use_plausible { plausible_values[i].as_bytes().to_vec() } else { values[i].clone() };
            // Only values a real HeaderMap can hold reach the middleware.
            if let Ok(v) = HeaderValue::from_bytes(&raw) {
                headers.insert(*name, v);
            }
        }
        let _ = server_delay(&headers, now);
    }

    #[test]
    fn delta_seconds_are_exact(n in any::<u64>(), now in any_time()) {
        prop_assert_eq!(parse_retry_after(n.to_string().as_bytes(), now), Ok(Duration::from_secs(n)));
    }

    #[test]
    fn fractions_are_never_rounded_down(int in 0u64..1_000_000, frac in "[0-9]{1,15}") {
        let parsed = parse_delta_seconds(format!("{int}.{frac}").as_bytes()).unwrap();
        // The exact value, in units of 10^-15 s.
        let digits = format!("{frac:0<15}");
        let exact_femto = u128::from(int) * 1_000_000_000_000_000 + digits.parse::<u128>().unwrap();
        let parsed_femto = parsed.as_nanos() * 1_000_000;
        prop_assert!(parsed_femto >= exact_femto, "{parsed:?} < {int}.{frac}");
        prop_assert!(parsed_femto - exact_femto < 1_000_000, "rounded up by less than 1 ns");
    }

    #[test]
    fn http_dates_give_exactly_the_wait(now in any_time(), ahead in 0u64..10_000_000) {
        let at = now + Duration::from_secs(ahead);
        let value = httpdate::fmt_http_date(at);
        prop_assert_eq!(parse_retry_after(value.as_bytes(), now), Ok(Duration::from_secs(ahead)));
    }

    #[test]
    fn past_dates_mean_now(now in any_time(), behind in 1u64..1_000_000) {
        // Not before 1970: an HTTP-date cannot say so (httpdate panics).
        let at = now
            .checked_sub(Duration::from_secs(behind))
            .filter(|t| *t >= SystemTime::UNIX_EPOCH)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let value = httpdate::fmt_http_date(at);
        prop_assert_eq!(parse_retry_after(value.as_bytes(), now), Ok(Duration::ZERO));
    }
}
