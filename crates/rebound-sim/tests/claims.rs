//! Each scenario's published claim, on reduced sizes (see `Size::Test`).
//! The full sizes run with `cargo test -p rebound-sim --release -- --ignored`.

use rebound_sim::scenarios::{self, Options, Size};

fn check(name: &str, size: Size) {
    let opts = Options {
        size,
        ..Options::default()
    };
    let report = scenarios::find(name).expect("scenario exists").run(&opts);
    for c in &report.checks {
        eprintln!(
            "[{}] {} — {}",
            if c.holds { "ok" } else { "FAIL" },
            c.claim,
            c.measured
        );
    }
    assert!(!report.checks.is_empty());
    assert!(report.all_hold(), "{name}: {:#?}", report.checks);
}

#[test]
fn jitter_occ_orderings_and_ratios() {
    check("jitter-occ", Size::Test);
}

#[test]
fn amplification_matches_closed_forms_within_1_percent() {
    check("amplification", Size::Test);
}

#[test]
fn budgets_cap_load_and_token_buckets_degrade() {
    check("budgets", Size::Test);
}

#[test]
fn layers_multiply_64_and_243_exactly() {
    check("layers", Size::Test);
}

#[test]
fn throttle_attempts_per_accept_converge_to_k_within_10_percent() {
    check("throttle", Size::Test);
}

#[test]
fn metastable_boundary_near_150_qps() {
    check("metastable", Size::Test);
}

#[test]
fn spike_stays_down_without_mitigation_and_budgets_recover_within_drain_time() {
    check("spike", Size::Test);
}

#[test]
fn tail_at_scale_hedging_cuts_the_p999_tenfold_and_a_shared_budget_caps_the_load() {
    check("tail-at-scale", Size::Test);
}

#[test]
fn herd_expiry_coalescing_staggering_and_early_refresh() {
    check("herd", Size::Test);
}

#[test]
#[ignore = "published size: run in release with --ignored"]
fn herd_at_full_size() {
    check("herd", Size::Full);
}

#[test]
#[ignore = "published sizes: run in release with --ignored"]
fn every_claim_at_full_size() {
    for s in scenarios::all() {
        check(s.name, Size::Full);
    }
}
