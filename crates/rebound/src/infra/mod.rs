//! The plumbing policies and drivers stand on: the injected clock and
//! randomness, lock-free sliding windows, telemetry and configuration
//! errors.

pub mod clock;
pub mod error;
pub mod random;
pub(crate) mod sliding_window;
pub mod state;
pub(crate) mod sync;
pub mod telemetry;
