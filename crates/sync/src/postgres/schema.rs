//! The PostgreSQL schema, its versions and the migrations between them, run at start in one
//! transaction under an advisory lock (instances that start together take turns; the second
//! finds the schema current).
//!
//! Version 1:
//! - `events`: the log, one row per new event; `seq` from the sequence `event_seq` (never
//!   reused); `UNIQUE (destination, message_id)` catches duplicates across instances.
//! - `event_audiences`: the status of an event in each audience it named (`part` = index of
//!   the change in the event; one row with an empty audience for unusable events).
//! - `desired`: per (destination, audience, email, userId) the desired version and its data,
//!   the acknowledged version (`ack_*`), and `state` (pending | delivered | rejected |
//!   superseded) with attempts, failed tries, next attempt and reason. Absent identity parts
//!   are `''` so the primary key covers them. `desired_pending`: a partial index on pending
//!   rows, in arrival order per audience.
//! - `lists`: the list registry; `ignored_settings`: per event, the audience settings it
//!   carried that could not be used; `audience_counts`: the figures per audience (see
//!   `counts`); `destination_state`; `write_probe`.
//!
//! Version 2: the coordination tables (see `leases`). Version 3: the mass-removal guard's
//! tables and the partial index on pending exits (see `holds`). Version 4: the snapshot
//! floors (see `floors`) and the last verify of each audience (see `verifies`). Version 5: the
//! admin API's indexes and the operator's pauses (see `admin`; created unnumbered at every
//! open before), without the index on emails.

use deadpool_postgres::Object;

use crate::store::StoreError;

/// The schema version this code creates and reads.
pub const SCHEMA_VERSION: i64 = 5;

/// The steps from an empty database: step `i` brings the schema to version `i + 1`.
const STEPS: &[&[&str]] = &[
    &[V1],
    &[super::leases::V2],
    &[super::holds::V3],
    &[super::floors::V4, super::verifies::V4],
    &[super::admin::V5],
];

const V1: &str = r#"
CREATE SEQUENCE event_seq;
CREATE TABLE events (
    seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
    destination TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    received_ms BIGINT NOT NULL,
    UNIQUE (destination, message_id)
);
CREATE TABLE event_audiences (
    seq BIGINT NOT NULL,
    part INTEGER NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    email TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    member BOOLEAN,
    time_ms BIGINT,
    status TEXT NOT NULL,
    reason TEXT,
    next_attempt_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (seq, part)
);
CREATE TABLE desired (
    destination TEXT COLLATE "C" NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    email TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    list_id BIGINT,
    member BOOLEAN NOT NULL,
    time_ms BIGINT,
    seq BIGINT NOT NULL,
    part INTEGER NOT NULL,
    accepted_ms BIGINT NOT NULL,
    data_fields TEXT,
    update_existing_users_only BOOLEAN,
    channel_unsubscribe BOOLEAN,
    campaign_id BIGINT,
    state TEXT NOT NULL,
    reason TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    ack_member BOOLEAN,
    ack_time_ms BIGINT,
    ack_seq BIGINT,
    ack_ms BIGINT,
    tries BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, list_key, email, user_id)
);
CREATE INDEX desired_pending ON desired (destination, list_key, seq) WHERE state = 'pending';
CREATE TABLE lists (
    destination TEXT COLLATE "C" NOT NULL,
    audience_key TEXT COLLATE "C" NOT NULL,
    list_id BIGINT NOT NULL,
    PRIMARY KEY (destination, audience_key)
);
CREATE TABLE ignored_settings (
    seq BIGINT NOT NULL,
    setting TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (seq, setting)
);
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
CREATE TABLE destination_state (
    destination TEXT COLLATE "C" PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT,
    since_ms BIGINT,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE audience_counts (
    destination TEXT COLLATE "C" NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    keys BIGINT NOT NULL DEFAULT 0,
    members BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    last_delivery_ms BIGINT,
    events_accepted BIGINT NOT NULL DEFAULT 0,
    events_pending BIGINT NOT NULL DEFAULT 0,
    events_delivered BIGINT NOT NULL DEFAULT 0,
    events_superseded BIGINT NOT NULL DEFAULT 0,
    events_rejected BIGINT NOT NULL DEFAULT 0,
    events_skipped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, list_key)
);
"#;

/// The write of the writability probe: changes a row, committed.
pub(super) const PROBE: &str = "INSERT INTO write_probe (id, n) VALUES (1, 1)
     ON CONFLICT (id) DO UPDATE SET n = (write_probe.n + 1) % 1000000";

/// The advisory lock migrations hold (any fixed number, the same for every instance).
const MIGRATION_LOCK: i64 = 0x6974_6c69_7374_7331;

fn open_error(location: &str, during: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        location: location.to_string(),
        source: format!("{during}: {e}").into(),
    }
}

/// The version stored, `None` when the database has no `schema_version` table (or no row).
async fn stored_version(
    client: &tokio_postgres::Client,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    client
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await
        .map(|r| r.get(0))
}

/// Creates the schema, or brings an older one to [`SCHEMA_VERSION`], and proves the database
/// writable, in one transaction.
pub(super) async fn create_or_migrate(client: &Object, location: &str) -> Result<(), StoreError> {
    create_or_migrate_to(client, location, SCHEMA_VERSION).await
}

/// [`create_or_migrate`] up to version `target` (tests build older databases with it).
pub(super) async fn create_or_migrate_to(
    client: &Object,
    location: &str,
    target: i64,
) -> Result<(), StoreError> {
    let err = |during: &'static str| {
        move |e: tokio_postgres::Error| open_error(location, during, super::pg_text(&e))
    };
    client.batch_execute("BEGIN").await.map_err(err("begin"))?;
    let r = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err("lock"))?;
        let found = stored_version(client)
            .await
            .map_err(err("schema version"))?;
        let from = match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) => v,
            None => {
                client
                    .batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
                    .await
                    .map_err(err("schema version"))?;
                0
            }
        };
        for (i, step) in STEPS.iter().enumerate() {
            let version = i as i64 + 1;
            if version > from && version <= target {
                for part in *step {
                    client.batch_execute(part).await.map_err(|e| {
                        open_error(
                            location,
                            &format!("migration to version {version}"),
                            super::pg_text(&e),
                        )
                    })?;
                }
            }
        }
        let now = from.max(target);
        client
            .execute("DELETE FROM schema_version", &[])
            .await
            .map_err(err("schema version"))?;
        client
            .execute("INSERT INTO schema_version (version) VALUES ($1)", &[&now])
            .await
            .map_err(err("schema version"))?;
        // A real write, committed: a read-only database fails here, at start.
        client
            .execute(PROBE, &[])
            .await
            .map_err(err("write test"))?;
        Ok(())
    }
    .await;
    match r {
        Ok(()) => client.batch_execute("COMMIT").await.map_err(err("commit")),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// For inspection: the schema must be there, at this program's version; nothing is changed.
pub(super) async fn check_read_only(client: &Object, location: &str) -> Result<(), StoreError> {
    let found = stored_version(client)
        .await
        .map_err(|e| open_error(location, "schema version", super::pg_text(&e)))?;
    match found {
        None => Err(open_error(
            location,
            "schema",
            "no iterable-lists schema in this database (and search_path); start \
             `iterable-lists serve` on it once to create it",
        )),
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(v) if v < SCHEMA_VERSION => Err(open_error(
            location,
            "schema",
            format!(
                "the database has schema version {v}, older than this program's \
                 {SCHEMA_VERSION}; start `iterable-lists serve` on it once to upgrade it"
            ),
        )),
        Some(_) => Ok(()),
    }
}
