//! A fresh PostgreSQL schema per test, so that tests run in parallel on one database: created
//! on [`PgSchema::create`], dropped (with everything in it) when the value is dropped. The
//! server comes from `ITERABLE_LISTS_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); when it does not answer, the test fails with a
//! message that says so (CI starts PostgreSQL; tests never skip).

use std::sync::atomic::{AtomicU64, Ordering};

/// The variable that names the test server.
pub const TEST_PG_URL_ENV: &str = "ITERABLE_LISTS_TEST_PG_URL";

/// The test server when [`TEST_PG_URL_ENV`] is not set.
pub const DEFAULT_TEST_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The URL of the test server.
pub fn test_pg_url() -> String {
    std::env::var(TEST_PG_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_PG_URL.to_string())
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A schema of its own on the test server.
#[derive(Debug)]
pub struct PgSchema {
    name: String,
    base: String,
}

/// Runs `sql` on the test server, on a thread with a runtime of its own (so that it works
/// from synchronous and asynchronous code alike).
fn run_sql(base: &str, sql: String) -> Result<(), String> {
    let base = base.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let task = tokio::spawn(conn);
            // The server's own message (a driver error prints only "db error").
            let r = client
                .batch_execute(&sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => format!("{e}: {}", db.message()),
                    None => e.to_string(),
                });
            drop(client);
            let _ = task.await;
            r
        })
    })
    .join()
    .map_err(|_| "the thread running SQL panicked".to_string())?
}

impl PgSchema {
    /// Creates a schema named after `label` (letters, digits and `_` kept), unique to this
    /// process and call. Panics, naming the server, when the server does not answer.
    pub fn create(label: &str) -> PgSchema {
        let base = test_pg_url();
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "test_{clean}_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = run_sql(&base, format!("CREATE SCHEMA {name}")) {
            panic!(
                "PostgreSQL at {base} is not usable for tests ({e}); start it (CI does: \
                 .ci/run), or point {TEST_PG_URL_ENV} at one"
            );
        }
        PgSchema { name, base }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL with this schema as the `search_path` of every connection.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// The server's URL, without a schema.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Runs SQL in the schema (set-up of old versions in tests).
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        run_sql(
            &self.base,
            format!("SET search_path TO {}; {sql}", self.name),
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = run_sql(
            &self.base,
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}
