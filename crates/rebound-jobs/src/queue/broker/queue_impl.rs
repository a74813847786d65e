//! `impl Queue` for a broker adapter, written once.
//!
//! Each adapter keeps its operations in files of their own (`claim.rs`,
//! `settle.rs`, `dead.rs`), as inherent methods named alike in every
//! adapter. The trait's methods only forward to them, so the forwarding is
//! one macro instead of three copies that must change together.

/// Implements [`Queue`](crate::queue::Queue) for `$adapter`: the items in
/// braces (`backend`, `clock` and whatever else the adapter overrides)
/// followed by the trait's operations, forwarded to the adapter's own
/// `add`, `take_due`, `extend`, `finish`, `forget_expired`, `count`,
/// `find_job`, `list_dead`, `move_back`, `delete_dead` and `dead_depth`.
macro_rules! impl_queue_for_broker {
    ($adapter:ty { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::queue::Queue for $adapter {
            $($own)*

            async fn enqueue_at(
                &self,
                job: $crate::job::NewJob,
                now: $crate::time::Timestamp,
            ) -> Result<$crate::job::JobId, $crate::queue::QueueError> {
                Ok(self.add(vec![job], now).await?[0])
            }

            async fn enqueue_many_at(
                &self,
                jobs: Vec<$crate::job::NewJob>,
                now: $crate::time::Timestamp,
            ) -> Result<Vec<$crate::job::JobId>, $crate::queue::QueueError> {
                self.add(jobs, now).await
            }

            async fn claim(
                &self,
                req: $crate::queue::ClaimRequest<'_>,
            ) -> Result<Vec<$crate::job::ClaimedJob>, $crate::queue::QueueError> {
                self.take_due(req).await
            }

            async fn renew(
                &self,
                lease: &$crate::job::Lease,
                now: $crate::time::Timestamp,
                lease_for: std::time::Duration,
            ) -> Result<$crate::time::Timestamp, $crate::queue::QueueError> {
                self.extend(lease, now, lease_for).await
            }

            async fn settle(
                &self,
                lease: &$crate::job::Lease,
                settlement: $crate::job::Settlement,
                now: $crate::time::Timestamp,
            ) -> Result<(), $crate::queue::QueueError> {
                self.finish(lease, settlement, now).await
            }

            async fn rescue(
                &self,
                now: $crate::time::Timestamp,
                max: usize,
            ) -> Result<usize, $crate::queue::QueueError> {
                self.forget_expired(now, max).await
            }

            async fn counts(
                &self,
                queue: &str,
                now: $crate::time::Timestamp,
            ) -> Result<$crate::job::QueueCounts, $crate::queue::QueueError> {
                self.count(queue, now).await
            }

            async fn job(
                &self,
                id: $crate::job::JobId,
            ) -> Result<Option<$crate::job::JobRecord>, $crate::queue::QueueError> {
                self.find_job(id).await
            }

            async fn dead_letters(
                &self,
                filter: &$crate::dlq::DeadLetterFilter,
                after: Option<$crate::job::JobId>,
                limit: usize,
            ) -> Result<Vec<$crate::job::JobRecord>, $crate::queue::QueueError> {
                self.list_dead(filter, after, limit).await
            }

            async fn redrive(
                &self,
                ids: &[$crate::job::JobId],
                now: $crate::time::Timestamp,
            ) -> Result<usize, $crate::queue::QueueError> {
                self.move_back(ids, now).await
            }

            async fn purge(
                &self,
                ids: &[$crate::job::JobId],
            ) -> Result<usize, $crate::queue::QueueError> {
                self.delete_dead(ids).await
            }

            async fn dead_letter_depth(
                &self,
                queue: Option<&str>,
            ) -> Result<u64, $crate::queue::QueueError> {
                self.dead_depth(queue).await
            }
        }
    };
}

pub(crate) use impl_queue_for_broker;
