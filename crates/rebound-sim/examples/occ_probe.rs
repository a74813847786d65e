fn main() {
    use rebound_sim::occ::{run, Strategy};
    let t = std::time::Instant::now();
    let mut ev = 0;
    for s in Strategy::ALL {
        for n in [10u32, 50, 100, 190] {
            let mut calls = 0;
            let mut comp = 0;
            for r in 0..20 {
                let x = run(s, n, r);
                calls += x.calls;
                comp += x.completion_nanos;
                ev += x.events;
            }
            println!(
                "{:>14} n={n:>3} calls={:>8.1} completion={:>8.1}ms",
                s.name(),
                calls as f64 / 20.0,
                comp as f64 / 20.0 / 1e6
            );
        }
    }
    let el = t.elapsed();
    println!(
        "{ev} events in {el:?} = {:.2e}/s",
        ev as f64 / el.as_secs_f64()
    );
}
