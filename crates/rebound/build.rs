//! Declares `cfg(loom)` (the loom model-checking build) to rustc's
//! check-cfg: `[lints] workspace = true` leaves no room for a per-crate
//! `[lints.rust]` table.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
