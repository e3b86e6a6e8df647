//! Unit tests of the SQLite engine: pragmas, read-only opens, migrations, the group commit,
//! the WAL restart and the query plans.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use destination::{IgnoredSetting, SettingName};
use serde_json::Value;

use super::checkpoint::WAL_FRAME_BYTES;
use super::*;
use crate::store::*;

struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sync-sqlite-unit-{}-{name}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        Self(dir)
    }
    fn file(&self) -> std::path::PathBuf {
        self.0.join("nested").join("store.db")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn files_use_wal_and_full_sync_and_record_the_schema_version() {
    let t = TempDb::new("pragmas");
    let s = SqliteStore::open(t.file()).unwrap();
    assert_eq!(s.pragma("journal_mode").unwrap(), "wal");
    // FULL is 2.
    assert_eq!(s.pragma("synchronous").unwrap(), "2");
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    drop(s);
    // Reopening keeps one version row.
    let s = SqliteStore::open(t.file()).unwrap();
    let conn = s.lock();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

/// Why [`SqliteStore::open_read_only`] refuses `path`.
fn read_only_err(path: &Path) -> StoreError {
    match SqliteStore::open_read_only(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn read_only_opens_create_and_change_nothing() {
    let t = TempDb::new("read-only");
    // A missing file: an error naming it, and no file or directory appears.
    let err = read_only_err(&t.file());
    assert!(
        err.to_string().contains(&t.file().display().to_string()),
        "{err}"
    );
    assert!(!t.0.exists(), "read-only open created {}", t.0.display());

    let s = SqliteStore::open(t.file()).unwrap();
    s.put_list_id("d", "vip", 7).unwrap();
    drop(s);
    let r = SqliteStore::open_read_only(t.file()).unwrap();
    assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(r.list_id("d", "vip").unwrap(), Some(7));
    assert!(r.list_counts("d").unwrap().is_empty());
    let err = r.put_list_id("d", "other", 8).expect_err("a write");
    assert!(err.to_string().contains("readonly"), "{err}");
    drop(r);
    assert_eq!(
        SqliteStore::open(t.file())
            .unwrap()
            .list_id("d", "other")
            .unwrap(),
        None
    );

    // Another SQLite file, or a newer schema, is refused.
    let other = t.0.join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let err = read_only_err(&other);
    assert!(
        err.to_string().contains("not an iterable-lists database"),
        "{err}"
    );
    Connection::open(t.file())
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    let err = read_only_err(&t.file());
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

/// Version 1's `desired` (a rowid table), as an earlier build created it.
const V1_DESIRED: &str = "
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1);
    CREATE TABLE desired (
        destination TEXT NOT NULL, list_key TEXT NOT NULL, email TEXT NOT NULL,
        user_id TEXT NOT NULL, list_id INTEGER, member INTEGER NOT NULL, time_ms INTEGER,
        seq INTEGER NOT NULL, part INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,
        data_fields TEXT, update_existing_users_only INTEGER, channel_unsubscribe INTEGER,
        campaign_id INTEGER, state TEXT NOT NULL, reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
        ack_member INTEGER, ack_time_ms INTEGER, ack_seq INTEGER, ack_ms INTEGER,
        PRIMARY KEY (destination, list_key, email, user_id)
    );
    CREATE INDEX desired_pending ON desired (destination, list_key, seq)
        WHERE state = 'pending';
    INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
        accepted_ms, data_fields, state)
        VALUES ('d', 'k', 'a@x.co', '', 1, 7, 0, 5, '{\"plan\":\"gold\"}', 'pending');
";

#[test]
fn a_version_1_database_is_migrated_with_its_rows() {
    let t = TempDb::new("v1");
    std::fs::create_dir_all(t.file().parent().unwrap()).unwrap();
    Connection::open(t.file())
        .unwrap()
        .execute_batch(V1_DESIRED)
        .unwrap();
    let s = SqliteStore::open(t.file()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let rows = s.pending("d", "k", 10, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].identity.email.as_deref(), Some("a@x.co"));
    assert_eq!(rows[0].version.seq, 7);
    assert_eq!(
        rows[0].data_fields.as_ref().and_then(|m| m.get("plan")),
        Some(&Value::from("gold"))
    );
    let sql: String = s
        .lock()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'desired'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Version 2 clustered it by its key; version 8 made it a rowid table again.
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    assert!(
        sql.contains("PRIMARY KEY (destination, list_key, email, user_id)"),
        "{sql}"
    );
    drop(s);
    // Opening again changes nothing.
    let s = SqliteStore::open(t.file()).unwrap();
    assert_eq!(s.pending("d", "k", 10, 10).unwrap().len(), 1);
}

/// A version-2 database (the schema before `ignored_settings`) with one logged event, as
/// the previous build left it.
const V2_WITH_AN_EVENT: &str = "
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (2);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL,
        message_id TEXT NOT NULL, received_ms INTEGER NOT NULL,
        UNIQUE (destination, message_id)
    );
    CREATE TABLE event_audiences (
        seq INTEGER NOT NULL, part INTEGER NOT NULL, list_key TEXT NOT NULL,
        email TEXT NOT NULL, user_id TEXT NOT NULL, member INTEGER, time_ms INTEGER,
        status TEXT NOT NULL, reason TEXT, next_attempt_ms INTEGER,
        updated_ms INTEGER NOT NULL, PRIMARY KEY (seq, part)
    ) WITHOUT ROWID;
    CREATE TABLE desired (
        destination TEXT NOT NULL, list_key TEXT NOT NULL, email TEXT NOT NULL,
        user_id TEXT NOT NULL, list_id INTEGER, member INTEGER NOT NULL, time_ms INTEGER,
        seq INTEGER NOT NULL, part INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,
        data_fields TEXT, update_existing_users_only INTEGER, channel_unsubscribe INTEGER,
        campaign_id INTEGER, state TEXT NOT NULL, reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
        ack_member INTEGER, ack_time_ms INTEGER, ack_seq INTEGER, ack_ms INTEGER,
        PRIMARY KEY (destination, list_key, email, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX desired_pending ON desired (destination, list_key, seq)
        WHERE state = 'pending';
    CREATE TABLE lists (
        destination TEXT NOT NULL, audience_key TEXT NOT NULL, list_id INTEGER NOT NULL,
        PRIMARY KEY (destination, audience_key)
    );
    INSERT INTO events VALUES (1, 'd', 'old', 5);
    INSERT INTO event_audiences VALUES (1, 0, 'k', 'a@x.co', '', 1, NULL, 'accepted',
        NULL, NULL, 5);
    INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
        accepted_ms, state) VALUES ('d', 'k', 'a@x.co', '', 1, 1, 0, 5, 'pending');
";

#[test]
fn a_version_2_database_is_upgraded_and_logs_ignored_settings() {
    use crate::store::{EventContent, MembershipChange, NewEvent};
    let t = TempDb::new("v2");
    std::fs::create_dir_all(t.file().parent().unwrap()).unwrap();
    Connection::open(t.file())
        .unwrap()
        .execute_batch(V2_WITH_AN_EVENT)
        .unwrap();
    let s = SqliteStore::open(t.file()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    // The old event reads as before, with nothing ignored.
    let old = s.event_status("d", "old").unwrap().unwrap();
    assert_eq!(old.audiences.len(), 1);
    assert_eq!(old.ignored_settings, vec![]);
    assert_eq!(s.pending("d", "k", 10, 10).unwrap().len(), 1);
    // A new event logs its ignored settings, and a reopen keeps them.
    let ignored = IgnoredSetting {
        setting: SettingName::CampaignId,
        value: "1.5".into(),
        reason: "must be a whole positive number but it was a number".into(),
    };
    let change = MembershipChange {
        audience_key: "k".into(),
        list_id: None,
        identity: Identity::new(Some("b@x.co"), None),
        member: true,
        data_fields: None,
        settings: ChangeSettings::default(),
        time_ms: None,
    };
    s.accept(&[NewEvent {
        destination: "d".into(),
        message_id: "new".into(),
        received_ms: 6,
        content: EventContent::Changes(vec![change]),
        ignored_settings: vec![ignored.clone()],
    }])
    .unwrap();
    drop(s);
    let s = SqliteStore::open(t.file()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let new = s.event_status("d", "new").unwrap().unwrap();
    assert_eq!(new.ignored_settings, vec![ignored]);
    let versions: i64 = s
        .lock()
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 1);
}

#[test]
fn an_unknown_ignored_setting_is_an_error_not_a_panic() {
    let s = SqliteStore::open_in_memory().unwrap();
    run_sql(
        &s,
        "INSERT INTO events VALUES (1, 'd', 'm', 5);
         INSERT INTO ignored_settings VALUES (1, 'campaignID', '1', 'x');",
    );
    let err = s.event_status("d", "m").unwrap_err();
    assert!(err.to_string().contains("campaignID"), "{err}");
}

/// Runs SQL as one write (rows the store's API would not write).
fn run_sql(s: &SqliteStore, sql: &str) {
    s.write("test", |c| c.execute_batch(sql).map_err(engine("test")))
        .unwrap();
}

fn insert_list(c: &Connection, key: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO lists (destination, audience_key, list_id) VALUES ('d', ?1, 1)",
        [key],
    )
    .map(|_| ())
    .map_err(engine("test"))
}

fn stored_lists(s: &SqliteStore) -> Vec<String> {
    let conn = s.lock();
    let mut stmt = conn
        .prepare("SELECT audience_key FROM lists ORDER BY audience_key")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn concurrent_writes_each_return_after_their_commit() {
    let t = TempDb::new("group");
    let s = Arc::new(SqliteStore::open(t.file()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for j in 0..50 {
                    let key = format!("t{i}-{j:02}");
                    s.write("test", |c| insert_list(c, &key)).unwrap();
                    // Returned: committed, so the read connection sees it.
                    let n: i64 = s
                        .lock()
                        .query_row(
                            "SELECT COUNT(*) FROM lists WHERE audience_key = ?1",
                            [&key],
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_eq!(n, 1, "{key} visible after its write returned");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(stored_lists(&s).len(), 400);
    drop(s);
    let s = SqliteStore::open(t.file()).unwrap();
    assert_eq!(stored_lists(&s).len(), 400, "all durable");
}

#[test]
fn a_failing_or_panicking_write_leaves_the_others_of_its_group_intact() {
    let s = Arc::new(SqliteStore::open_in_memory().unwrap());
    // Hold the writer so that the next writers queue up and share one group.
    let gate = s.lock_writer();
    let spawn = |key: &'static str, mode: u8| {
        let s = s.clone();
        std::thread::spawn(move || {
            s.write("test", |c| {
                insert_list(c, key)?;
                match mode {
                    1 => Err(StoreError::Invalid {
                        op: "test",
                        message: "refused".into(),
                    }),
                    2 => panic!("boom"),
                    _ => Ok(()),
                }
            })
        })
    };
    let ok1 = spawn("ok1", 0);
    let bad = spawn("bad", 1);
    let boom = spawn("boom", 2);
    let ok2 = spawn("ok2", 0);
    while s.queued.load(Ordering::SeqCst) < 4 {
        std::thread::yield_now();
    }
    drop(gate);
    assert!(ok1.join().unwrap().is_ok());
    assert!(ok2.join().unwrap().is_ok());
    assert!(matches!(
        bad.join().unwrap(),
        Err(StoreError::Invalid { .. })
    ));
    assert!(boom.join().is_err(), "the panic reaches its caller");
    assert_eq!(stored_lists(&s), ["ok1", "ok2"]);
    // The store goes on working.
    s.write("test", |c| insert_list(c, "after")).unwrap();
    assert_eq!(stored_lists(&s), ["after", "ok1", "ok2"]);
}

#[test]
fn a_failing_or_panicking_first_write_of_a_group_leaves_nothing() {
    // Alone, each write is the first of its group and runs without a savepoint.
    let t = TempDb::new("first");
    let s = SqliteStore::open(t.file()).unwrap();
    let refused = s.write("test", |c| {
        insert_list(c, "refused")?;
        Err::<(), _>(StoreError::Invalid {
            op: "test",
            message: "refused".into(),
        })
    });
    assert!(matches!(refused, Err(StoreError::Invalid { .. })));
    let boom = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.write("test", |c| -> Result<(), StoreError> {
            insert_list(c, "boom")?;
            panic!("boom")
        })
    }));
    assert!(boom.is_err(), "the panic reaches its caller");
    assert!(stored_lists(&s).is_empty());
    s.write("test", |c| insert_list(c, "after")).unwrap();
    assert_eq!(stored_lists(&s), ["after"]);
}

#[test]
fn the_wal_is_restarted_under_a_steady_stream_of_commits() {
    let t = TempDb::new("wal");
    let s = Arc::new(SqliteStore::open_with(&t.file(), 64, &OpenOptions::default()).unwrap());
    let wal = t.file().with_extension("db-wal");
    let mut largest = 0;
    // Commits without pause, each adding pages: the WAL would grow without bound if only
    // passive checkpoints ran (36 MB here), and lags far behind if only the checkpointer
    // thread restarted it (2.5 MB). The writer restarts the WAL once it holds twice the
    // 64 frames, whenever the checkpointer runs; a restart that meets a running passive
    // checkpoint is retried at the next commits, hence the room for as many again.
    let bound = 4 * 64 * WAL_FRAME_BYTES;
    for i in 0..3000 {
        s.write("test", |c| {
            c.execute(
                "INSERT INTO lists (destination, audience_key, list_id) VALUES ('d', ?1, ?2)",
                params![format!("{i:06}-{}", "x".repeat(200)), i],
            )
            .map(|_| ())
            .map_err(engine("test"))
        })
        .unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert_eq!(stored_lists(&s).len(), 3000);
    // Far below the ~9,000 frames the commits wrote.
    assert!(largest <= bound, "WAL of {largest} bytes, bound {bound}");
}

#[test]
fn a_newer_schema_is_refused() {
    let t = TempDb::new("newer");
    let s = SqliteStore::open(t.file()).unwrap();
    s.write("test", |c| {
        c.execute("UPDATE schema_version SET version = 99", [])
            .map_err(engine("test"))
    })
    .unwrap();
    drop(s);
    let err = SqliteStore::open(t.file()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: SCHEMA_VERSION
            }
        ),
        "{err}"
    );
}

#[test]
fn the_pending_query_uses_the_partial_index() {
    let s = SqliteStore::open(":memory:").unwrap();
    let conn = s.lock();
    let text = super::query_plan(&conn, super::pending::PENDING_ROWS);
    assert!(
        text.contains("INDEX desired_pending (destination=? AND list_key=? AND seq>?)"),
        "{text}"
    );
    assert!(!text.contains("TEMP B-TREE"), "no sort step: {text}");
}

/// A page of an audience's keys (drift repair, verify) is a range of the key's unique index,
/// with nothing sorted.
#[test]
fn a_page_of_an_audiences_keys_is_a_range_of_its_key() {
    let s = SqliteStore::open(":memory:").unwrap();
    let conn = s.lock();
    let text = super::query_plan(&conn, super::drift::AUDIENCE_KEYS);
    assert!(
        text.contains(
            "INDEX sqlite_autoindex_desired_1 (destination=? AND list_key=? AND (email,user_id)>(?,?))"
        ),
        "{text}"
    );
    assert!(!text.contains("TEMP B-TREE"), "no sort step: {text}");
}

#[test]
fn the_walk_past_the_rows_in_flight_reads_the_partial_index_alone() {
    let s = SqliteStore::open(":memory:").unwrap();
    let conn = s.lock();
    let text = super::query_plan(&conn, super::pending::PENDING_SEQS);
    assert!(text.contains("COVERING INDEX desired_pending"), "{text}");
    assert!(!text.contains("TEMP B-TREE"), "no sort step: {text}");
}

#[test]
fn due_audiences_are_those_with_a_due_pending_row() {
    let s = SqliteStore::open(":memory:").unwrap();
    run_sql(
        &s,
        "INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
         accepted_ms, state, next_attempt_ms) VALUES
         ('d', 'a', 'x', '', 1, 1, 0, 0, 'delivered', 0),
         ('d', 'b', 'x', '', 1, 2, 0, 0, 'pending', 0),
         ('d', 'c', 'x', '', 1, 3, 0, 0, 'pending', 100),
         ('d', 'c', 'y', '', 1, 4, 0, 0, 'pending', 9),
         ('d', 'e', 'x', '', 1, 5, 0, 0, 'pending', 100),
         ('other', 'f', 'x', '', 1, 6, 0, 0, 'pending', 0)",
    );
    assert_eq!(s.pending_audiences("d", 10).unwrap(), ["b", "c"]);
    assert_eq!(s.pending_audiences("d", 100).unwrap(), ["b", "c", "e"]);
    assert!(s.pending_audiences("none", 100).unwrap().is_empty());
}

#[test]
fn corrupt_data_fields_are_an_error_not_a_panic() {
    let s = SqliteStore::open(":memory:").unwrap();
    run_sql(
        &s,
        "INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
         accepted_ms, data_fields, state) VALUES ('d', 'k', 'a@x.co', '', 1, 1, 0, 0,
         'not json', 'pending')",
    );
    let err = s.pending("d", "k", 0, 10).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { op: "pending", .. }),
        "{err}"
    );
}

#[test]
fn an_unknown_event_status_is_an_error_not_a_silent_miscount() {
    let s = SqliteStore::open(":memory:").unwrap();
    run_sql(
        &s,
        "INSERT INTO events (seq, destination, message_id, received_ms)
         VALUES (1, 'd', 'm1', 0), (2, 'd', 'm2', 0);
         INSERT INTO event_audiences (seq, part, list_key, email, user_id, status,
         updated_ms) VALUES (1, 0, 'k', 'a@x.co', '', 'delivered', 0)",
    );
    // Rows written behind the store's back are not in the maintained counts; the full
    // recount reads every row.
    assert_eq!(s.recount("d").unwrap().1.delivered, 1);
    run_sql(
        &s,
        "INSERT INTO event_audiences (seq, part, list_key, email, user_id, status,
         updated_ms) VALUES (2, 0, 'k', 'b@x.co', '', 'bogus', 0)",
    );
    let err = s.recount("d").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { op: "recount", message } if message.contains("1 event statuses")),
        "{err}"
    );
}

/// Desired rows imported by `store copy` name seqs whose events the source pruned: an event
/// accepted before the copy finishes (the service started on a target left half copied) still
/// takes a seq past them, as the key's version it replaces is older.
#[test]
fn an_unfinished_import_gives_out_seqs_past_the_rows_it_holds() {
    let s = SqliteStore::open_in_memory().expect("open");
    let row = DesiredEntry {
        destination: "d".into(),
        audience_key: "vip".into(),
        identity: Identity::new(Some("a@x.co"), None),
        list_id: None,
        member: true,
        version: Version {
            time_ms: None,
            seq: 40,
        },
        part: 0,
        accepted_ms: 5,
        data_fields: None,
        settings: ChangeSettings::default(),
        state: KeyState::Delivered,
        reason: None,
        attempts: 0,
        tries: 0,
        next_attempt_ms: 0,
        acknowledged: Some(Acknowledged {
            member: true,
            version: Version {
                time_ms: None,
                seq: 50,
            },
            at_ms: 6,
        }),
    };
    s.import(&CopyBatch::Desired(vec![row])).expect("import");
    let leave = NewEvent {
        destination: "d".into(),
        message_id: "leave".into(),
        received_ms: 7,
        content: EventContent::Changes(vec![MembershipChange {
            audience_key: "vip".into(),
            list_id: None,
            identity: Identity::new(Some("a@x.co"), None),
            member: false,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: None,
        }]),
        ignored_settings: Vec::new(),
    };
    let r = s.accept(&[leave]).expect("accept");
    assert_eq!(
        r,
        vec![Receipt::Accepted {
            seq: 51,
            changes: vec![Applied::Current]
        }]
    );
}

/// At the largest seq SQLite would pick a random free rowid, an older seq among them: an event
/// after it is refused with a clear error, whether it starts its batch or follows the event
/// that took the largest seq, and nothing of the failed batch is written.
#[test]
fn an_exhausted_sequence_refuses_the_event() {
    let s = SqliteStore::open_in_memory().expect("open");
    run_sql(
        &s,
        "INSERT INTO seq_floor (id, seq) VALUES (1, 9223372036854775806)",
    );
    let ev = |id: &str| NewEvent {
        destination: "d".into(),
        message_id: id.into(),
        received_ms: 7,
        content: EventContent::Rejected("no audience".into()),
        ignored_settings: Vec::new(),
    };
    let err = s.accept(&[ev("a"), ev("b")]).expect_err("refused");
    assert!(err.to_string().contains("exhausted"), "{err}");
    assert!(s.event_status("d", "a").expect("read").is_none());
    let r = s.accept(&[ev("a")]).expect("the last seq");
    assert_eq!(r[0].seq(), u64::try_from(i64::MAX).expect("max"));
    let err = s.accept(&[ev("c")]).expect_err("refused");
    assert!(err.to_string().contains("exhausted"), "{err}");
    assert!(s.event_status("d", "c").expect("read").is_none());
}
