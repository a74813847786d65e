//! The stream's keys, queue-name checks and the consumer group.

use redis::RedisError;

use super::entry::map_err;
use super::RedisStreamQueue;
use crate::job::validate_queue_name;
use crate::queue::QueueError;

impl RedisStreamQueue {
    pub(super) fn schedule(&self) -> String {
        format!("{}:rebound:schedule", self.inner.stream)
    }

    pub(super) fn scheduled(&self) -> String {
        format!("{}:rebound:scheduled", self.inner.stream)
    }

    pub(super) fn check(&self, queue: &str) -> Result<(), QueueError> {
        if queue == self.inner.stream {
            return Ok(());
        }
        validate_queue_name(queue).map_err(|reason| QueueError::Invalid {
            field: "queue",
            reason,
        })?;
        Err(QueueError::Invalid {
            field: "queue",
            reason: format!(
                "this Redis queue serves the stream {:?}, not {queue:?}; connect one RedisStreamQueue per stream",
                self.inner.stream
            ),
        })
    }

    /// Creates the consumer group (at the start of the stream) once.
    pub(super) async fn ensure_group(&self) -> Result<(), QueueError> {
        self.inner
            .ready
            .get_or_try_init(|| async {
                let mut conn = self.inner.conn.clone();
                let r: Result<(), RedisError> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.inner.stream)
                    .arg(&self.inner.group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut conn)
                    .await;
                match r {
                    Ok(()) => Ok(()),
                    Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                    Err(e) => Err(map_err(e)),
                }
            })
            .await
            .map(|_| ())
    }
}
