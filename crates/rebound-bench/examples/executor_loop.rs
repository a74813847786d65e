//! The executor success path as a plain loop, for instruction counts:
//! `N` awaited calls of rebound's `policy.retry(..)` or backon's
//! `(..).retry(..)` on a current-thread runtime.
//!
//! ```sh
//! cargo build --release -p rebound-bench --example executor_loop
//! B=target/release/examples/executor_loop
//! for n in 100000 200000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n $B rebound $n
//! done
//! # instructions per call = (total at 200000 - total at 100000) / 100000
//! ```

use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "rebound".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let policy = rebound::RetryPolicy::builder()
        .build()
        .expect("the default policy");
    let backoff = backon::ExponentialBuilder::default();
    let sum = rt.block_on(async {
        let mut sum = 0u64;
        if which == "backon" {
            use backon::Retryable;
            for _ in 0..n {
                sum += (|| async { Ok::<u64, ()>(black_box(1)) })
                    .retry(backoff)
                    .await
                    .unwrap_or(0);
            }
        } else {
            for _ in 0..n {
                sum += policy
                    .retry(|| async { Ok::<u64, ()>(black_box(1)) })
                    .await
                    .unwrap_or(0);
            }
        }
        sum
    });
    assert_eq!(sum, n, "every call succeeds");
}
