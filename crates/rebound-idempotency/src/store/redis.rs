//! A Redis store: one hash per record, every operation one Lua script
//! (`EVALSHA`, falling back to loading the script once), so a claim and a
//! completion are each one round trip.
//!
//! Keys are `{prefix}{<scoped key>}`: the braces make the scoped key the
//! Redis Cluster hash tag, so everything about one record lives in one slot
//! and the scripts are cluster-safe. Expiry decisions use the absolute
//! timestamps passed in from the layer's clock; `PEXPIRE` is set to the
//! retention plus a grace period, as garbage collection only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

use bytes::Bytes;

use crate::record::{ClaimOutcome, ClaimRequest};
use crate::store::{Store, StoreError};
use crate::time::{duration_millis, Timestamp};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "rebound:idem:";

// Fields: s = state (p in progress, c completed, r released), f = fence,
// fp = fingerprint, l = lease expiry (ms), e = retention expiry (ms),
// r = stored response.
const CLAIM: &str = r#"
local k = KEYS[1]
local fp, now, lease, ttl, gc = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local r = redis.call('HMGET', k, 's', 'f', 'fp', 'l', 'e', 'r')
local s = r[1]
if s and tonumber(r[5]) > now and s ~= 'r' and not (s == 'p' and tonumber(r[4]) <= now) then
  if r[3] ~= fp then return {'m'} end
  if s == 'c' then return {'c', r[6]} end
  return {'p', string.format('%d', tonumber(r[4]) - now)}
end
local f = (tonumber(r[2]) or 0) + 1
local exp = now + math.max(ttl, lease)
redis.call('HSET', k, 's', 'p', 'f', string.format('%d', f), 'fp', fp,
  'l', string.format('%d', now + lease), 'e', string.format('%d', exp))
redis.call('HDEL', k, 'r')
redis.call('PEXPIRE', k, math.max(ttl, lease) + gc)
return {'n', string.format('%d', f)}
"#;

const COMPLETE: &str = r#"
local k = KEYS[1]
local r = redis.call('HMGET', k, 's', 'f')
if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end
redis.call('HSET', k, 's', 'c', 'r', ARGV[2], 'e', string.format('%d', tonumber(ARGV[3]) + tonumber(ARGV[4])))
redis.call('PEXPIRE', k, tonumber(ARGV[4]) + tonumber(ARGV[5]))
return 1
"#;

const RELEASE: &str = r#"
local k = KEYS[1]
local r = redis.call('HMGET', k, 's', 'f')
if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end
redis.call('HSET', k, 's', 'r')
redis.call('HDEL', k, 'r')
return 1
"#;

const RENEW: &str = r#"
local k = KEYS[1]
local r = redis.call('HMGET', k, 's', 'f', 'e')
if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end
local now, lease, gc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local l = now + lease
local e = math.max(tonumber(r[3]), l)
redis.call('HSET', k, 'l', string.format('%d', l), 'e', string.format('%d', e))
redis.call('PEXPIRE', k, e - now + gc)
return 1
"#;

/// Records in Redis (standalone, or Cluster through any
/// [`ConnectionLike`] you pass to [`from_connection`](Self::from_connection)).
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_idempotency::StoreError> {
/// use rebound_idempotency::RedisStore;
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?
///     .with_prefix("shop:idem:")?;
/// # let _ = store; Ok(()) }
/// ```
pub struct RedisStore<C = ConnectionManager> {
    conn: Counted<C>,
    prefix: String,
    gc_grace: Duration,
    scripts: Arc<Scripts>,
}

struct Scripts {
    claim: Script,
    complete: Script,
    release: Script,
    renew: Script,
}

impl<C> std::fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("gc_grace", &self.gc_grace)
            .finish_non_exhaustive()
    }
}

fn map_err(e: RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Unavailable {
            store: "redis",
            source: Box::new(e),
        }
    } else {
        StoreError::Backend {
            store: "redis",
            source: Box::new(e),
        }
    }
}

impl RedisStore<ConnectionManager> {
    /// Connect to `url` (e.g. `redis://127.0.0.1:6379`) with a reconnecting
    /// connection manager; connection and response timeouts are 2 s.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        use redis::IntoConnectionInfo;
        let info = url
            .into_connection_info()
            .map_err(|e| StoreError::InvalidConfig {
                field: "url",
                reason: format!("{url:?} is not a Redis URL: {e}"),
            })?;
        // Requests from concurrent callers share one pipelined connection:
        // with Nagle's algorithm a request written while the previous one is
        // unacknowledged waits for that acknowledgement, a round trip.
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let client = redis::Client::open(info.set_tcp_settings(tcp)).map_err(|e| {
            StoreError::InvalidConfig {
                field: "url",
                reason: format!("{url:?}: {e}"),
            }
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(map_err)?;
        Ok(Self::from_connection(conn))
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisStore<C> {
    /// Use an existing connection (a `ConnectionManager`, a
    /// `MultiplexedConnection`, or a cluster connection).
    pub fn from_connection(conn: C) -> Self {
        RedisStore {
            conn: Counted {
                inner: conn,
                count: Arc::new(AtomicU64::new(0)),
            },
            prefix: DEFAULT_PREFIX.to_owned(),
            gc_grace: Duration::from_secs(600),
            scripts: Arc::new(Scripts {
                claim: Script::new(CLAIM),
                complete: Script::new(COMPLETE),
                release: Script::new(RELEASE),
                renew: Script::new(RENEW),
            }),
        }
    }

    /// The prefix of every key this store writes. Default: `rebound:idem:`.
    /// It may not contain `{` or `}` (they would change the cluster hash tag).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) {
            return Err(StoreError::InvalidConfig {
                field: "prefix",
                reason: format!(
                    "{prefix:?} contains a brace; braces are reserved for the hash tag"
                ),
            });
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// How long past its retention Redis keeps a record before expiring it
    /// by itself. Default: 10 minutes. This is garbage collection only:
    /// whether a record is expired is decided from the layer's clock.
    pub fn with_gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }

    /// The Redis key holding the record for `key`.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{{{}}}", self.prefix, key)
    }

    /// How many commands this store has sent to Redis (each one round trip).
    pub fn round_trips(&self) -> u64 {
        self.conn.count.load(Ordering::Relaxed)
    }

    async fn fenced(
        &self,
        script: &Script,
        key: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = script.key(self.redis_key(key));
        for a in args {
            inv.arg(a);
        }
        let ok: i64 = inv.invoke_async(&mut conn).await.map_err(map_err)?;
        Ok(ok == 1)
    }
}

fn num(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

#[async_trait]
impl<C: ConnectionLike + Clone + Send + Sync + 'static> Store for RedisStore<C> {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<Vec<u8>> = self
            .scripts
            .claim
            .key(self.redis_key(req.key))
            .arg(&req.fingerprint.0[..])
            .arg(req.now.as_millis())
            .arg(duration_millis(req.lease))
            .arg(duration_millis(req.ttl))
            .arg(duration_millis(self.gc_grace))
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        let parse = |b: Option<&Vec<u8>>| -> Result<u64, StoreError> {
            b.and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Backend {
                    store: "redis",
                    source: "claim script returned a malformed number".into(),
                })
        };
        match reply.first().map(Vec::as_slice) {
            Some(b"n") => Ok(ClaimOutcome::Claimed {
                fence: parse(reply.get(1))?,
            }),
            Some(b"p") => Ok(ClaimOutcome::InProgress {
                retry_after: Duration::from_millis(parse(reply.get(1))?),
            }),
            Some(b"c") => Ok(ClaimOutcome::Completed(
                reply
                    .get(1)
                    .map(|b| Bytes::copy_from_slice(b))
                    .unwrap_or_default(),
            )),
            Some(b"m") => Ok(ClaimOutcome::Mismatch),
            _ => Err(StoreError::Backend {
                store: "redis",
                source: "claim script returned an unknown reply".into(),
            }),
        }
    }

    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let args = vec![
            num(fence),
            num(now.as_millis()),
            num(duration_millis(lease)),
            num(duration_millis(self.gc_grace)),
        ];
        match self.fenced(&self.scripts.renew, key, args).await? {
            true => Ok(()),
            false => Err(StoreError::FenceRejected { fence }),
        }
    }

    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let args = vec![
            num(fence),
            result.to_vec(),
            num(now.as_millis()),
            num(duration_millis(ttl)),
            num(duration_millis(self.gc_grace)),
        ];
        match self.fenced(&self.scripts.complete, key, args).await? {
            true => Ok(()),
            false => Err(StoreError::FenceRejected { fence }),
        }
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        match self
            .fenced(&self.scripts.release, key, vec![num(fence)])
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::FenceRejected { fence }),
        }
    }
}

/// A connection that counts the commands sent through it.
#[derive(Clone)]
struct Counted<C> {
    inner: C,
    count: Arc<AtomicU64>,
}

impl<C: ConnectionLike> ConnectionLike for Counted<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
