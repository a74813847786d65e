//! Confirmed publishes: to a queue, or to the retry queue a delay waits
//! in.

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use lapin::PublisherConfirm;

use super::message::retry_step;
use super::{unavailable, AmqpQueue, OP_TIMEOUT};
use crate::job::JobRecord;
use crate::queue::broker::{Envelope, ENVELOPE_HEADER};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl AmqpQueue {
    /// Publishes `rec` to `queue` through the default exchange and waits
    /// for the broker's confirm.
    pub(super) async fn publish(&self, queue: &str, rec: &JobRecord) -> Result<(), QueueError> {
        let confirm = self.send(queue, rec).await?;
        confirmed(confirm, queue).await
    }

    /// Publishes `rec` to `queue` through the default exchange; the
    /// broker's confirm is to be awaited ([`confirmed`]).
    pub(super) async fn send(
        &self,
        queue: &str,
        rec: &JobRecord,
    ) -> Result<PublisherConfirm, QueueError> {
        let conn = self.conn().await?;
        let mut headers = FieldTable::default();
        headers.insert(
            ENVELOPE_HEADER.into(),
            AMQPValue::LongString(LongString::from(Envelope::of(rec).encode())),
        );
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(rec.id.0.to_string()))
            .with_headers(headers);
        conn.publish
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &rec.payload,
                props,
            )
            .await
            .map_err(unavailable)
    }

    /// Publishes `rec` to wait until its `run_at` (from `now`): into the
    /// queue if due, else into a retry queue.
    pub(super) async fn publish_due(
        &self,
        rec: &JobRecord,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let queue = self.due_queue(rec, now).await?;
        self.publish(&queue, rec).await
    }

    /// Where `rec` waits until its `run_at` (from `now`): the queue if due,
    /// else a retry queue (declared if this connection has not yet).
    pub(super) async fn due_queue(
        &self,
        rec: &JobRecord,
        now: Timestamp,
    ) -> Result<String, QueueError> {
        if rec.run_at <= now {
            return Ok(self.inner.queue.clone());
        }
        let ms = retry_step(rec.run_at.saturating_since(now));
        let name = format!("{}.retry.{ms}", self.inner.queue);
        let declared = self
            .inner
            .retry_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ms);
        if !declared {
            let conn = self.conn().await?;
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.inner.queue.as_str().into()),
            );
            conn.publish
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    args,
                )
                .await
                .map_err(unavailable)?;
            self.inner
                .retry_queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ms);
        }
        Ok(name)
    }
}

/// Waits for the broker's confirm of a message published to `queue`.
pub(super) async fn confirmed(confirm: PublisherConfirm, queue: &str) -> Result<(), QueueError> {
    let confirmed = tokio::time::timeout(OP_TIMEOUT, confirm)
        .await
        .map_err(|_| unavailable("no publisher confirm from RabbitMQ in 5 s"))?
        .map_err(unavailable)?;
    if confirmed.is_nack() {
        return Err(unavailable(format!(
            "RabbitMQ refused a message for {queue:?} (publisher nack)"
        )));
    }
    Ok(())
}
