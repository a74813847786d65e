//! What the broker adapters share: the job's record travels with its
//! message (an *envelope*), and the broker's own delivery count says how
//! many times the message was handed out since the envelope was written.
//!
//! A broker keeps messages, not records: it cannot update a message in
//! place. So every adapter follows the same rules, the record-level rules
//! of [`apply`](super::apply) applied to the envelope:
//!
//! * **claim**: the delivery count the broker reports for this message
//!   (the pending entries list in Redis, `num_delivered` in JetStream,
//!   `x-delivery-count` in a RabbitMQ quorum queue) minus the deliveries the
//!   envelope already accounts for gives the deliveries that never reported
//!   — each becomes a history entry without an outcome, and poison
//!   detection counts it — then this delivery is counted and leased.
//! * **settle**: the rules update the record; the adapter writes it back
//!   the broker's way (a new message carrying the envelope, a delayed
//!   redelivery, a message on the dead-letter stream or queue).
//! * the **fencing token** is the envelope's fence plus the broker's
//!   count, so a takeover by the broker (a redelivery) always raises it.

mod envelope;
mod in_flight;
mod ops;
mod queue_impl;

pub(crate) use envelope::{claim, Envelope, ENVELOPE_HEADER};
#[allow(unused_imports)] // which ones an adapter uses depends on the features
pub(crate) use in_flight::{lost, InFlight};
pub(crate) use ops::{find, listed, redrive, Outcome};
pub(crate) use queue_impl::impl_queue_for_broker;
