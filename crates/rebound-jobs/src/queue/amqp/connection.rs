//! The connection: declaring the queues, reconnecting, the consumer.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

use super::{unavailable, AmqpQueue, Conn, OP_TIMEOUT};
use crate::queue::QueueError;

impl AmqpQueue {
    /// The live connection, reconnecting (and restarting the consumer) if
    /// it was lost.
    pub(super) async fn conn(&self) -> Result<Arc<Conn>, QueueError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.connection.status().connected() && c.publish.status().connected() {
                return Ok(c.clone());
            }
        }
        let c = tokio::time::timeout(OP_TIMEOUT, self.open())
            .await
            .map_err(|_| unavailable("connecting to RabbitMQ took longer than 5 s"))??;
        let c = Arc::new(c);
        *slot = Some(c.clone());
        Ok(c)
    }

    pub(super) async fn open(&self) -> Result<Conn, QueueError> {
        let i = &self.inner;
        let connection = Connection::connect(&i.url, ConnectionProperties::default())
            .await
            .map_err(unavailable)?;
        let publish = connection.create_channel().await.map_err(unavailable)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        let mut quorum = FieldTable::default();
        quorum.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        publish
            .queue_declare(
                i.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                quorum,
            )
            .await
            .map_err(unavailable)?;
        publish
            .queue_declare(
                self.dead_letter_queue().as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        self.inner
            .retry_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(Conn {
            connection,
            publish,
            consuming: tokio::sync::OnceCell::new(),
        })
    }

    /// Starts the consumer on `conn` once: only a queue that claims takes
    /// deliveries (a producer's connection never holds any).
    pub(super) async fn consume(&self, conn: &Conn) -> Result<(), QueueError> {
        let start = conn.consuming.get_or_try_init(|| async {
            let i = &self.inner;
            let consume = conn
                .connection
                .create_channel()
                .await
                .map_err(unavailable)?;
            consume
                .basic_qos(i.prefetch, BasicQosOptions::default())
                .await
                .map_err(unavailable)?;
            let mut consumer = consume
                .basic_consume(
                    i.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
            let (tx, wake) = (i.deliveries_tx.clone(), i.wake.clone());
            i.runtime.spawn(async move {
                // Ends when the channel closes; the next claim
                // reconnects.
                let _keep = consume;
                while let Some(Ok(d)) = consumer.next().await {
                    if tx.send(d).is_err() {
                        return;
                    }
                    wake.notify_waiters();
                }
            });
            Ok(())
        });
        tokio::time::timeout(OP_TIMEOUT, start)
            .await
            .map_err(|_| unavailable("starting the consumer took longer than 5 s"))?
            .map(|_| ())
    }
}
