//! The PostgreSQL queue's statements, built once per table name.

const COLUMNS: &str = "id, queue, status, payload, run_at, enqueued_at, deliveries, failures, \
    interrupts, backoff_retries, backoff_previous_nanos, fence, lease_expires_at, reason, \
    dead_at, redrives, history";

pub(super) struct Sql {
    pub(super) migrate: String,
    pub(super) enqueue: String,
    pub(super) enqueue_many: String,
    pub(super) claim: String,
    pub(super) renew: String,
    pub(super) ack: String,
    pub(super) settle: String,
    pub(super) rescue: String,
    pub(super) counts: String,
    pub(super) job: String,
    pub(super) dead_letters: String,
    pub(super) redrive: String,
    pub(super) purge: String,
    pub(super) depth: String,
}

impl Sql {
    pub(super) fn new(t: &str) -> Sql {
        let short = t.rsplit('.').next().unwrap_or(t);
        Sql {
            migrate: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                   id BIGSERIAL PRIMARY KEY,
                   queue TEXT NOT NULL,
                   status SMALLINT NOT NULL DEFAULT 0,
                   payload BYTEA NOT NULL,
                   run_at BIGINT NOT NULL,
                   enqueued_at BIGINT NOT NULL,
                   deliveries INTEGER NOT NULL DEFAULT 0,
                   failures INTEGER NOT NULL DEFAULT 0,
                   interrupts INTEGER NOT NULL DEFAULT 0,
                   backoff_retries INTEGER NOT NULL DEFAULT 0,
                   backoff_previous_nanos BIGINT,
                   fence BIGINT NOT NULL DEFAULT 0,
                   lease_expires_at BIGINT,
                   reason SMALLINT,
                   dead_at BIGINT,
                   redrives INTEGER NOT NULL DEFAULT 0,
                   last_error TEXT,
                   history JSONB NOT NULL DEFAULT '[]'
                 );
                 CREATE INDEX IF NOT EXISTS {short}_due ON {t} (queue, run_at, id) WHERE status = 0;
                 CREATE INDEX IF NOT EXISTS {short}_leases ON {t} (lease_expires_at) WHERE status = 1;
                 CREATE INDEX IF NOT EXISTS {short}_dead ON {t} (queue, id) WHERE status = 2;"
            ),
            enqueue: format!(
                "INSERT INTO {t} (queue, payload, run_at, enqueued_at)
                 VALUES ($1::text, $2::bytea, $3::bigint, $3::bigint) RETURNING id"
            ),
            enqueue_many: format!(
                "INSERT INTO {t} (queue, payload, run_at, enqueued_at)
                 SELECT q, p, r, r FROM unnest($1::text[], $2::bytea[], $3::bigint[])
                   WITH ORDINALITY AS j(q, p, r, n) ORDER BY n
                 RETURNING id"
            ),
            claim: format!(
                "WITH picked AS (
                   SELECT id FROM {t}
                    WHERE status = 0 AND queue = $1::text AND run_at <= $2::bigint
                    ORDER BY run_at, id LIMIT $3::bigint
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE {t} AS j
                    SET status = 1, deliveries = j.deliveries + 1, fence = j.fence + 1,
                        lease_expires_at = $2::bigint + $4::bigint,
                        history = j.history || jsonb_build_array(jsonb_build_object(
                          'delivery', j.deliveries + 1, 'redrive', j.redrives,
                          'claimed_at', $2::bigint, 'worker', $5::text, 'result', 'no_outcome'))
                   FROM picked WHERE j.id = picked.id
                 RETURNING j.id, j.queue, j.payload, j.deliveries, j.failures, j.interrupts,
                           j.enqueued_at, j.backoff_retries, j.backoff_previous_nanos, j.fence,
                           j.lease_expires_at, j.last_error, j.run_at"
            ),
            renew: format!(
                "UPDATE {t} SET lease_expires_at = $3::bigint
                  WHERE id = $1::bigint AND fence = $2::bigint AND status = 1"
            ),
            ack: format!(
                "DELETE FROM {t} WHERE id = $1::bigint AND fence = $2::bigint AND status = 1"
            ),
            settle: format!(
                "UPDATE {t}
                    SET status = $3::smallint, run_at = COALESCE($4::bigint, run_at),
                        deliveries = $5::integer, failures = $6::integer, interrupts = $7::integer,
                        enqueued_at = $8::bigint, backoff_retries = $9::integer,
                        backoff_previous_nanos = $10::bigint, lease_expires_at = NULL,
                        reason = $11::smallint, dead_at = $12::bigint,
                        last_error = COALESCE($13::text, last_error),
                        history = CASE WHEN jsonb_array_length(history) = 0 THEN history
                          ELSE jsonb_set(history, ARRAY[(jsonb_array_length(history) - 1)::text],
                                         (history -> -1) || $14::jsonb) END
                  WHERE id = $1::bigint AND fence = $2::bigint AND status = 1"
            ),
            rescue: format!(
                "UPDATE {t} SET status = 0, lease_expires_at = NULL
                  WHERE id IN (SELECT id FROM {t}
                                WHERE status = 1 AND lease_expires_at <= $1::bigint
                                ORDER BY lease_expires_at LIMIT $2::bigint
                                FOR UPDATE SKIP LOCKED)
                    AND status = 1"
            ),
            counts: format!(
                "SELECT count(*) FILTER (WHERE status = 0 AND run_at <= $2::bigint),
                        count(*) FILTER (WHERE status = 0 AND run_at > $2::bigint),
                        count(*) FILTER (WHERE status = 1),
                        count(*) FILTER (WHERE status = 2)
                   FROM {t} WHERE queue = $1::text"
            ),
            job: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1::bigint"),
            dead_letters: format!(
                "SELECT {COLUMNS} FROM {t}
                  WHERE status = 2 AND id > $1::bigint
                    AND ($2::text IS NULL OR queue = $2::text)
                    AND ($3::smallint IS NULL OR reason = $3::smallint)
                    AND ($4::bigint IS NULL OR dead_at <= $4::bigint)
                    AND ($5::bigint IS NULL OR dead_at >= $5::bigint)
                    AND ($6::text IS NULL OR EXISTS (
                          SELECT 1 FROM jsonb_array_elements(history) AS e
                           WHERE strpos(lower(e ->> 'error'), lower($6::text)) > 0))
                  ORDER BY id LIMIT $7::bigint"
            ),
            redrive: format!(
                "UPDATE {t}
                    SET status = 0, run_at = $2::bigint, enqueued_at = $2::bigint,
                        deliveries = 0, failures = 0, interrupts = 0,
                        backoff_retries = 0, backoff_previous_nanos = NULL,
                        reason = NULL, dead_at = NULL, redrives = redrives + 1
                  WHERE id = ANY($1::bigint[]) AND status = 2"
            ),
            purge: format!("DELETE FROM {t} WHERE id = ANY($1::bigint[]) AND status = 2"),
            depth: format!(
                "SELECT count(*) FROM {t} WHERE status = 2 AND ($1::text IS NULL OR queue = $1::text)"
            ),
        }
    }
}
