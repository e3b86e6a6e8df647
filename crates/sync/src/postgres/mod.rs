//! The PostgreSQL engine: the same [`crate::store::Engine`] as the SQLite one, on a database
//! that several instances of the service share.
//!
//! **Driver.** `tokio-postgres` with a `deadpool-postgres` pool: an async driver, so every
//! operation awaits the database on the caller's task (no thread hop, unlike SQLite's blocking
//! calls); small (no macros, no query checking at build time: `sqlx` compiles far more for the
//! same queries, and its compile-time checks need a database at build time); statements are
//! prepared once per connection and cached (`prepare_cached`), and the driver pipelines the
//! statements of one task. No TLS: the database is local or on a private network (a TLS
//! connector can be added to [`PostgresStore::connect`] later).
//!
//! **Durability.** Every operation is one transaction, committed before it returns, with
//! `synchronous_commit` set `on` for the engine's sessions (whatever the server's, database's
//! or role's default): an event is on disk before its 200.
//!
//! **Several writers.** Other instances write the same tables at the same time, so nothing
//! relies on being the only writer: a messageId is deduplicated by the unique key of `events`
//! (`INSERT ... ON CONFLICT DO NOTHING`); a key's desired row is locked (`SELECT ... FOR
//! UPDATE`, in key order) before it is decided on, and the update only replaces an older
//! version, so the latest event wins under READ COMMITTED, without serializable isolation.
//! Rows are locked in one order (keys sorted within a batch; figures last, sorted) so that
//! two batches on the same keys wait for each other rather than deadlock; a deadlock or
//! serialization failure that happens anyway is retried (`write`), as the transaction left
//! nothing behind.
//!
//! The parts: `schema` (tables, versions, migrations), `accept` (with its pure decisions in
//! `decide`, and the desired rows' writes in `desired`), `outcomes` (outcomes and failed tries, decided in `settle`), `pending`,
//! `registry` (lists, destination state, write probe), `reports`, `counts` (the figures per
//! audience), `retention` (pruning the event log), `export` and `import` (`store copy`: a
//! snapshot read in batches, and batches written back), `engine` (the async seam).

mod accept;
mod admin;
mod counts;
mod decide;
mod desired;
mod drift;
mod engine;
mod export;
mod holds;
mod import;
mod leases;
mod outcomes;
mod pending;
mod registry;
mod reports;
mod retention;
mod schema;
mod settle;
mod snapshot;

use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

pub use schema::SCHEMA_VERSION;
/// A parsed connection configuration (what a `postgres://` URL says).
pub use tokio_postgres::Config as PgConfig;

use crate::store::{Identity, StatusKind, StoreError, Version};

/// Connections of the pool when the configuration does not say.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// How long an operation waits for a free connection, and for a new one to open.
const POOL_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A transaction that failed on a deadlock or a serialization failure is run again, up to
/// this many times in all.
const MAX_TRIES: usize = 5;

/// The PostgreSQL store: a pool of connections to one database (and schema).
pub struct PostgresStore {
    pool: Pool,
    /// The URL without its password, for messages.
    location: String,
    /// Why the last write failed, while no write has succeeded since.
    failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// How the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The service: the schema is created or migrated.
    ReadWrite,
    /// Inspection commands: nothing is created or migrated; a missing or older schema is an
    /// error.
    ReadOnly,
}

/// `url` with its password (if any) replaced by `***`, for messages and status output.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let redacted_tail = redact_query_password(tail);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{redacted_tail}")
        }
        None => format!("{scheme}://{authority}{redacted_tail}"),
    }
}

/// A `password=` query parameter hidden.
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Planner settings of every session: this engine's statements look rows up by key, or by
/// batches of keys (`UNNEST` arrays), in tables that grow fast. The planner's statistics lag
/// behind that growth (autovacuum analyzes a table after it grew by a tenth, at most once a
/// minute), and planning for a table it believes small, it scans the table whole, or hashes
/// such a scan for a join: seen with `auto_explain` on part (c-pg) of the benchmark, the
/// accept, outcome and pending statements read the whole `desired` and `event_audiences`
/// tables on every batch, so that the server's work per event grew with the data. Index
/// lookups are what each of them wants at any size; with these settings the planner takes
/// them whatever its statistics say (a table without a fitting index is still scanned). The
/// few statements that read a table whole (a recount, an export) then walk an index, which is
/// slower but bounded. JIT is off: past the cost these settings give a scan, it compiled for
/// a tenth of a second statements that run in a millisecond.
const KEYED_PLANS: &str =
    " -c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off -c jit=off";

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`) with a pool
    /// of `pool_size` connections, and creates or migrates the schema (`ReadWrite`) or checks
    /// it (`ReadOnly`).
    pub async fn open(url: &str, pool_size: usize, access: Access) -> Result<Self, StoreError> {
        let location = redact_url(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Open {
            location: location.clone(),
            source: format!("not a PostgreSQL URL: {e}").into(),
        })?;
        Self::connect(config, &location, pool_size, access).await
    }

    /// [`PostgresStore::open`] from a parsed configuration (tests set `options`, e.g. a
    /// `search_path`, on it). `location` names the database in messages (no password).
    pub async fn connect(
        mut config: tokio_postgres::Config,
        location: &str,
        pool_size: usize,
        access: Access,
    ) -> Result<Self, StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            location: location.to_string(),
            source,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("iterable-lists");
        }
        // Durability does not depend on the server's, database's or role's default: every
        // commit of this engine waits for the WAL flush. Inspection sessions cannot write.
        let mut options = config.get_options().unwrap_or("").to_string();
        options.push_str(" -c synchronous_commit=on");
        options.push_str(KEYED_PLANS);
        if access == Access::ReadOnly {
            options.push_str(" -c default_transaction_read_only=on");
        }
        config.options(options.trim());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| open_err(e.to_string().into()))?;
        let store = Self {
            pool,
            location: location.to_string(),
            failure: Mutex::new(None),
        };
        let client = store
            .pool
            .get()
            .await
            .map_err(|e| open_err(pool_error_text(&e).into()))?;
        match access {
            Access::ReadWrite => schema::create_or_migrate(&client, location).await?,
            Access::ReadOnly => schema::check_read_only(&client, location).await?,
        }
        Ok(store)
    }

    /// The URL of the database, without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A connection of the pool.
    async fn client(&self, op: &'static str) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::engine(op, pool_error_text(&e)))
    }

    /// Notes the result of a write for [`crate::store::Engine::write_failure`].
    fn note_write<T>(&self, r: &Result<T, StoreError>) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(_) => *f = None,
            Err(e) if cannot_write(e) => *f = Some(e.to_string()),
            Err(_) => {}
        }
    }
}

/// A pool failure in words (never the URL).
fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Timeout(_) => "no database connection became free in time".to_string(),
        PoolError::Backend(e) => pg_text(e),
        other => other.to_string(),
    }
}

/// A driver error in words, with the server's message and code when there is one.
fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A driver error as a [`StoreError`] of `op`.
fn pg(op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::engine(op, PgError(e))
}

/// A driver error kept as the source of a [`StoreError`], so that [`retryable`] can look at its
/// code.
#[derive(Debug)]
struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&pg_text(&self.0))
    }
}

impl std::error::Error for PgError {}

fn sql_state(e: &StoreError) -> Option<&SqlState> {
    let source = match e {
        StoreError::Engine { source, .. } => source,
        _ => return None,
    };
    source.downcast_ref::<PgError>()?.0.code()
}

/// A transaction that failed this way can simply run again.
fn retryable(e: &StoreError) -> bool {
    if let StoreError::Engine { source, .. } = e
        && source.downcast_ref::<accept::Raced>().is_some()
    {
        return true;
    }
    matches!(
        sql_state(e),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

/// The store cannot write: no connection, a read-only or full database, a server shutting
/// down.
fn cannot_write(e: &StoreError) -> bool {
    let StoreError::Engine { source, .. } = e else {
        return false;
    };
    let Some(PgError(err)) = source.downcast_ref::<PgError>() else {
        // Pool errors (no connection) are text.
        return true;
    };
    match err.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c.starts_with("58")
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
    }
}

/// Runs one write transaction: `$body` with `$tx` bound to an open transaction, committed
/// after it; run again (from a fresh transaction) after a deadlock or serialization failure.
/// Notes the result for the store's write health.
macro_rules! write_tx {
    ($store:expr, $op:expr, |$tx:ident| $body:expr) => {{
        let store = $store;
        let op: &'static str = $op;
        let mut tries = 0;
        let r = loop {
            tries += 1;
            let attempt = async {
                let mut client = store.client(op).await?;
                let $tx = client
                    .transaction()
                    .await
                    .map_err($crate::postgres::pg(op))?;
                let out = $body;
                $tx.commit().await.map_err($crate::postgres::pg(op))?;
                Ok(out)
            }
            .await;
            match attempt {
                Err(e)
                    if $crate::postgres::retryable(&e) && tries < $crate::postgres::MAX_TRIES =>
                {
                    continue;
                }
                other => break other,
            }
        };
        store.note_write(&r);
        r
    }};
}
pub(crate) use write_tx;

fn to_i64(op: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid {
        op,
        message: format!("{v} is out of range"),
    })
}

fn to_u64(op: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        op,
        message: format!("negative count or sequence {v}"),
    })
}

fn key_part(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn identity_of(email: String, user_id: String) -> Identity {
    Identity {
        email: (!email.is_empty()).then_some(email),
        user_id: (!user_id.is_empty()).then_some(user_id),
    }
}

fn status_of(op: &'static str, s: &str) -> Result<StatusKind, StoreError> {
    StatusKind::parse(s).ok_or_else(|| StoreError::Corrupt {
        op,
        message: format!("unknown status {s:?}"),
    })
}

fn version(op: &'static str, time_ms: Option<i64>, seq: i64) -> Result<Version, StoreError> {
    Ok(Version {
        time_ms,
        seq: to_u64(op, seq)?,
    })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("postgresql://u:p%40ss@h", "postgresql://u:***@h"),
            (
                "postgres://h/db?user=u&password=secret&sslmode=disable",
                "postgres://h/db?user=u&password=***&sslmode=disable",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
            assert!(!redact_url(url).contains("secret"));
        }
    }
}
