//! Creating (or finding) the stream, the durable consumer, the record
//! bucket and the dead-letter and advisory streams.

use async_nats::jetstream::{consumer, stream};

use super::records::Records;
use super::{setup, NatsQueue, Ready};
use crate::queue::QueueError;

impl NatsQueue {
    /// Creates (or finds) the stream, consumer, bucket, dead-letter and
    /// advisory streams once.
    pub(super) async fn ready(&self) -> Result<&Ready, QueueError> {
        self.inner
            .ready
            .get_or_try_init(|| async {
                let i = &self.inner;
                let js = &i.js;
                let mut main = js
                    .get_or_create_stream(stream::Config {
                        name: i.stream.clone(),
                        subjects: vec![i.subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the stream")(&e))?;
                // Publish where an existing stream listens.
                let subject = main
                    .info()
                    .await
                    .map_err(|e| setup("reading the stream info")(&e))?
                    .config
                    .subjects
                    .first()
                    .cloned()
                    .unwrap_or_else(|| i.subject.clone());
                let consumer = main
                    .get_or_create_consumer(
                        &i.consumer_name,
                        consumer::pull::Config {
                            durable_name: Some(i.consumer_name.clone()),
                            ack_policy: consumer::AckPolicy::Explicit,
                            ack_wait: i.lease,
                            max_deliver: i.max_deliver,
                            max_ack_pending: -1,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| setup("creating the durable consumer")(&e))?;
                // A key-value stream: one message per subject, the last.
                let records = js
                    .get_or_create_stream(stream::Config {
                        name: format!("{}_REBOUND", i.stream),
                        subjects: vec![format!("{}_REBOUND.>", i.stream)],
                        max_messages_per_subject: 1,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the record stream")(&e))?;
                let records = Records {
                    js: js.clone(),
                    stream: records,
                    prefix: format!("{}_REBOUND", i.stream),
                };
                let dead = js
                    .get_or_create_stream(stream::Config {
                        name: self.dead_letter_stream(),
                        subjects: vec![self.dead_letter_stream()],
                        allow_direct: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the dead-letter stream")(&e))?;
                let adv = js
                    .get_or_create_stream(stream::Config {
                        name: format!("{}_ADVISORIES", i.stream),
                        subjects: vec![format!(
                            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                            i.stream, i.consumer_name
                        )],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the advisory stream")(&e))?;
                let advisories = adv
                    .get_or_create_consumer(
                        "rebound",
                        consumer::pull::Config {
                            durable_name: Some("rebound".into()),
                            ack_policy: consumer::AckPolicy::Explicit,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| setup("creating the advisory consumer")(&e))?;
                Ok(Ready {
                    subject,
                    consumer,
                    advisories,
                    records,
                    dead,
                })
            })
            .await
    }
}
