//! Drivers act: executors, runners and tower layers that call operations,
//! wait on the injected clock and report what happened to the policies in
//! `crate::policy`. Each is a loop of "ask the machine, do the I/O, tell
//! the machine", with no decision of its own.

#[cfg(feature = "tokio")]
pub mod bulkhead;
#[cfg(feature = "tokio")]
pub mod coalesce;
#[cfg(feature = "tokio")]
pub mod hedge;
#[cfg(feature = "tokio")]
pub(crate) mod launch;
#[cfg(feature = "tokio")]
pub mod pipeline;
#[cfg(feature = "tokio")]
mod read_through;
pub mod retry;
#[cfg(feature = "tokio")]
pub mod timeout;
#[cfg(feature = "tower")]
pub mod tower;
