//! The same seed gives byte-identical output files; another seed does not.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rebound_sim::output;
use rebound_sim::scenarios::{self, Options, Size};

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            for (k, v) in files(&p) {
                out.insert(
                    format!("{}/{k}", p.file_name().unwrap().to_string_lossy()),
                    v,
                );
            }
        } else {
            out.insert(
                p.file_name().unwrap().to_string_lossy().into(),
                fs::read(&p).unwrap(),
            );
        }
    }
    out
}

fn write(seed: u64, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let opts = Options {
        seed,
        size: Size::Test,
        ..Options::default()
    };
    let reports: Vec<_> = ["jitter-occ", "spike", "throttle", "tail-at-scale", "herd"]
        .iter()
        .map(|n| scenarios::find(n).unwrap().run(&opts))
        .collect();
    output::write_all(dir, &reports).unwrap();
    files(dir)
}

#[test]
fn same_seed_same_bytes() {
    let tmp = std::env::temp_dir().join(format!("rebound-sim-det-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let a = write(11, &tmp.join("a"));
    let b = write(11, &tmp.join("b"));
    let c = write(12, &tmp.join("c"));
    assert!(a.keys().any(|k| k.ends_with(".svg")));
    assert!(a.keys().any(|k| k.ends_with(".png")));
    assert!(a.keys().any(|k| k.ends_with(".csv")));
    assert!(a.contains_key("index.html"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(
            v == &b[k],
            "{k} differs between two runs with the same seed"
        );
    }
    for scenario in ["jitter-occ", "tail-at-scale"] {
        let report = format!("{scenario}/report.json");
        assert_ne!(a[&report], c[&report], "another seed gives other numbers");
    }
    let _ = fs::remove_dir_all(&tmp);
}
