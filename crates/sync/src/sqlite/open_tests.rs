//! Tests of what opening a database checks and migrates, of the write-health flag, and of the
//! cost of recording failed tries.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::outcomes::{MARK_TRIED_EVENTS, MARK_TRIES};
use super::*;
use crate::store::*;

/// A directory under the system temp dir, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let d = std::env::temp_dir().join(format!(
            "sync-sqlite-open-{}-{name}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        Self(d)
    }

    fn db(&self) -> std::path::PathBuf {
        self.0.join("store.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Version 2's schema, as the previous release created it.
const V2_SCHEMA: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (2);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL,
    message_id TEXT NOT NULL, received_ms INTEGER NOT NULL, UNIQUE (destination, message_id)
);
CREATE TABLE event_audiences (
    seq INTEGER NOT NULL, part INTEGER NOT NULL, list_key TEXT NOT NULL, email TEXT NOT NULL,
    user_id TEXT NOT NULL, member INTEGER, time_ms INTEGER, status TEXT NOT NULL, reason TEXT,
    next_attempt_ms INTEGER, updated_ms INTEGER NOT NULL, PRIMARY KEY (seq, part)
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
CREATE INDEX desired_pending ON desired (destination, list_key, seq) WHERE state = 'pending';
CREATE TABLE lists (
    destination TEXT NOT NULL, audience_key TEXT NOT NULL, list_id INTEGER NOT NULL,
    PRIMARY KEY (destination, audience_key)
);
";

/// Rows of a version-2 database: two destinations; in `d`, audience `vip` has a member
/// delivered, one whose removal is pending after a failure, one rejected and one superseded
/// by a pending change; audience `new` one pending change; plus an event rejected whole.
const V2_ROWS: &str = "
INSERT INTO lists VALUES ('d', 'vip', 77);
INSERT INTO events VALUES (1, 'd', 'm1', 100), (2, 'd', 'm2', 110), (3, 'd', 'm3', 120),
    (4, 'd', 'm4', 130), (5, 'd', 'm5', 140), (6, 'd', 'm6', 150), (7, 'd', 'm7', 160),
    (8, 'other', 'm1', 170), (9, 'd', 'm9', 180);
INSERT INTO event_audiences VALUES
    (1, 0, 'vip', 'a@x.co', '', 1, NULL, 'delivered', NULL, NULL, 200),
    (2, 0, 'vip', 'b@x.co', '', 1, NULL, 'delivered', NULL, NULL, 200),
    (3, 0, 'vip', 'b@x.co', '', 0, NULL, 'pending', '500', 9000, 300),
    (4, 0, 'vip', 'c@x.co', '', 1, NULL, 'rejected', 'invalidEmails', NULL, 300),
    (5, 0, 'vip', 'e@x.co', '', 1, NULL, 'superseded', 'by m6', NULL, 300),
    (6, 0, 'vip', 'e@x.co', '', 1, NULL, 'accepted', NULL, NULL, 150),
    (7, 0, 'new', 'f@x.co', '', 1, NULL, 'accepted', NULL, NULL, 160),
    (8, 0, 'vip', 'a@x.co', '', 1, NULL, 'accepted', NULL, NULL, 170),
    (9, 0, '', '', '', NULL, NULL, 'rejected', 'no identity', NULL, 180);
INSERT INTO desired (destination, list_key, email, user_id, member, seq, part, accepted_ms,
    state, reason, attempts, next_attempt_ms, ack_member, ack_time_ms, ack_seq, ack_ms) VALUES
    ('d', 'vip', 'a@x.co', '', 1, 1, 0, 100, 'delivered', NULL, 0, 0, 1, NULL, 1, 200),
    ('d', 'vip', 'b@x.co', '', 0, 3, 0, 120, 'pending', '500', 1, 9000, 1, NULL, 2, 250),
    ('d', 'vip', 'c@x.co', '', 1, 4, 0, 130, 'rejected', 'invalidEmails', 0, 0, NULL, NULL, NULL, NULL),
    ('d', 'vip', 'e@x.co', '', 1, 6, 0, 150, 'pending', NULL, 0, 0, NULL, NULL, NULL, NULL),
    ('d', 'new', 'f@x.co', '', 1, 7, 0, 160, 'pending', NULL, 0, 0, NULL, NULL, NULL, NULL),
    ('other', 'vip', 'a@x.co', '', 1, 8, 0, 170, 'pending', NULL, 0, 0, NULL, NULL, NULL, NULL);
";

#[test]
fn a_version_2_database_is_migrated_and_its_counts_computed_once() {
    let t = Dir::new("v2");
    let c = Connection::open(t.db()).expect("create");
    c.execute_batch(V2_SCHEMA).expect("v2 schema");
    c.execute_batch(V2_ROWS).expect("v2 rows");
    drop(c);
    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let lists = s.list_counts("d").expect("counts");
    let vip = ListCounts {
        audience_key: "vip".into(),
        list_id: Some(77),
        members: 2,
        pending: 2,
        retrying: 1,
        rejected: 1,
        oldest_pending_ms: Some(120),
        last_delivery_ms: Some(250),
    };
    let new = ListCounts {
        audience_key: "new".into(),
        list_id: None,
        members: 0,
        pending: 1,
        retrying: 0,
        rejected: 0,
        oldest_pending_ms: Some(160),
        last_delivery_ms: None,
    };
    assert_eq!(lists, vec![new, vip]);
    let events = s.event_counts("d").expect("counts");
    assert_eq!(
        events,
        EventCounts {
            accepted: 2,
            pending: 1,
            delivered: 2,
            superseded: 1,
            rejected: 2,
            skipped: 0
        }
    );
    assert_eq!(s.recount("d").expect("recount"), (lists, events));
    assert_eq!(s.event_counts("other").expect("counts").accepted, 1);
    assert_eq!(s.list_counts("other").expect("counts")[0].pending, 1);
    // The rows are as they were, with no failed tries counted.
    let e = s.event_status("d", "m3").expect("status").expect("known");
    assert_eq!(
        (e.audiences[0].status, e.audiences[0].attempts),
        (StatusKind::Pending, 1),
        "a stored retry counts one try at least"
    );
    let due = s.pending("d", "vip", 10_000, 10).expect("pending");
    assert_eq!(due.len(), 2);
    // Writes from here on keep the figures: deliver e, then compare with a recount.
    let e_seq = due
        .iter()
        .find(|r| r.identity.email.as_deref() == Some("e@x.co"))
        .expect("e")
        .version
        .seq;
    s.record_outcomes(
        "d",
        "vip",
        400,
        &[OutcomeRow {
            identity: Identity::new(Some("e@x.co"), None),
            seq: e_seq,
            part: None,
            row_id: None,
            outcome: Outcome::Delivered,
        }],
    )
    .expect("record");
    let after = s.list_counts("d").expect("counts");
    assert_eq!((after[1].members, after[1].pending), (3, 1));
    assert_eq!(s.recount("d").expect("recount").0, after);
    drop(s);
    // Opening again migrates nothing and keeps the figures.
    let s = SqliteStore::open(t.db()).expect("reopen");
    assert_eq!(s.list_counts("d").expect("counts"), after);
}

#[test]
fn a_version_1_database_keeps_its_failed_tries_through_both_migrations() {
    // Version 1 is version 2 with `desired` a rowid table.
    let v1 = V2_SCHEMA
        .replace(
            "INSERT INTO schema_version VALUES (2);",
            "INSERT INTO schema_version VALUES (1);",
        )
        .replace(
            ") WITHOUT ROWID;\nCREATE INDEX desired_pending",
            ");\nCREATE INDEX desired_pending",
        );
    assert_ne!(v1, V2_SCHEMA);
    let t = Dir::new("v1");
    let c = Connection::open(t.db()).expect("create");
    c.execute_batch(&v1).expect("v1 schema");
    c.execute_batch(V2_ROWS).expect("v1 rows");
    drop(c);
    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    // As from version 2: the removal of b, retried once, shows its failed try.
    let e = s.event_status("d", "m3").expect("status").expect("known");
    assert_eq!(
        (e.audiences[0].status, e.audiences[0].attempts),
        (StatusKind::Pending, 1),
        "a stored retry counts one try at least"
    );
    // Every index of the current schema is there from the first open (the migration to 2
    // rebuilds `desired`, and the indexes made on the old table went with it), and the
    // reads that name them work.
    assert_eq!(desired_indexes(&t.db()), CURRENT_DESIRED_INDEXES);
    s.user_states(&UserQuery::UserId("u1".into()), None, 10)
        .expect("by userId");
    s.rejected_keys("d", "vip", None, None, 10)
        .expect("rejected keys");
}

/// The indexes on `desired` of the current schema (the last one: its key, a unique index since
/// version 8 made it a rowid table).
const CURRENT_DESIRED_INDEXES: [&str; 5] = [
    "desired_by_user_id",
    "desired_pending",
    "desired_pending_exits",
    "desired_rejected",
    "sqlite_autoindex_desired_1",
];

/// Overwrites `pages` pages from page 3 on with bytes that are no B-tree page.
fn damage(path: &std::path::Path, pages: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for damage");
    f.seek(SeekFrom::Start(2 * 4096)).expect("seek");
    let junk: Vec<u8> = (0..pages * 4096).map(|i| (i * 7 % 251) as u8 | 1).collect();
    f.write_all(&junk).expect("write junk");
    f.sync_all().expect("sync");
}

fn filled(t: &Dir, events: usize) -> std::path::PathBuf {
    let s = SqliteStore::open(t.db()).expect("create");
    let batch: Vec<NewEvent> = (0..events)
        .map(|i| NewEvent {
            destination: "d".into(),
            message_id: format!("m{i}"),
            received_ms: 1,
            content: EventContent::Changes(vec![crate::store::MembershipChange {
                audience_key: format!("a{}", i % 3),
                list_id: None,
                identity: Identity::new(Some(&format!("u{i}@x.co")), None),
                member: true,
                data_fields: None,
                settings: ChangeSettings::default(),
                time_ms: None,
            }]),
            ignored_settings: Vec::new(),
        })
        .collect();
    s.accept(&batch).expect("accept");
    drop(s);
    // Everything in the database file itself, no WAL left to mask the damage.
    let c = Connection::open(t.db()).expect("open");
    let mode: String = c
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "delete");
    t.db()
}

#[test]
fn a_damaged_file_is_refused_naming_the_path_and_the_way_back() {
    let t = Dir::new("damaged");
    let path = filled(&t, 2_000);
    damage(&path, 6);
    let err = SqliteStore::open(&path).expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Damaged { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("refusing to start"), "{text}");
    assert!(text.contains(".recover"), "how to recover: {text}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_as_damaged() {
    let t = Dir::new("garbage");
    std::fs::write(t.db(), vec![b'x'; 64 * 1024]).expect("garbage");
    let err = SqliteStore::open(t.db()).expect_err("refused");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert!(
        err.to_string().contains(&t.db().display().to_string()),
        "{err}"
    );
}

#[test]
fn a_check_that_runs_out_of_time_is_reported_and_the_store_opens() {
    let t = Dir::new("budget");
    let path = filled(&t, 2_000);
    let s = SqliteStore::open(&path).expect("open");
    assert_eq!(s.quick_check(), QuickCheck::Passed);
    drop(s);
    // A budget that is over at the first look (every 1,000 instructions; the check of 2,000
    // rows takes many more).
    let budget = Duration::from_nanos(1);
    let s = SqliteStore::open_with_options(
        &path,
        &OpenOptions {
            quick_check: Some(budget),
        },
    )
    .expect("opens all the same");
    assert_eq!(s.quick_check(), QuickCheck::Unfinished { budget });
    assert_eq!(s.list_counts("d").expect("counts").len(), 3);
    // Injected: the budget runs out at the third look.
    let c = Connection::open(&path).expect("open");
    let mut looks = 0;
    let r = integrity::quick_check(&c, "x", budget, move || {
        looks += 1;
        looks > 2
    })
    .expect("checked");
    assert_eq!(r, QuickCheck::Unfinished { budget });
    let r = integrity::quick_check(&c, "x", budget, || false).expect("checked");
    assert_eq!(r, QuickCheck::Passed);
}

#[test]
fn a_database_that_cannot_be_written_fails_at_open_naming_the_path() {
    let t = Dir::new("readonly");
    let path = filled(&t, 10);
    // SQLite's read-only mode stands for a file it cannot write (tests run as root, which
    // writes any file whatever its mode; crates/cli/tests/store_health.rs makes the
    // filesystem read-only for real).
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let err = SqliteStore::init(
        conn,
        Some(&path),
        WAL_RESTART_FRAMES,
        &OpenOptions::default(),
    )
    .expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unwritable { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("read-only"), "{text}");
}

#[test]
fn failed_writes_set_the_health_flag_and_a_committed_one_clears_it() {
    let t = Dir::new("health");
    let s = SqliteStore::open(t.db()).expect("open");
    assert_eq!(s.write_failure(), None);
    let event = |m: &str| NewEvent {
        destination: "d".into(),
        message_id: m.into(),
        received_ms: 1,
        content: EventContent::Skipped("x".into()),
        ignored_settings: Vec::new(),
    };
    // The writer stops being able to write (as on a filesystem turned read-only).
    s.lock_writer()
        .conn
        .pragma_update(None, "query_only", true)
        .expect("query_only");
    let err = s.accept(&[event("m1")]).expect_err("refused");
    let failure = s.write_failure().expect("flagged");
    assert!(failure.contains("readonly"), "{failure} / {err}");
    assert!(s.probe_write().is_err());
    assert!(s.write_failure().is_some(), "still failing");
    s.lock_writer()
        .conn
        .pragma_update(None, "query_only", false)
        .expect("query_only");
    s.probe_write().expect("writes again");
    assert_eq!(s.write_failure(), None);
    s.accept(&[event("m2")]).expect("accepted");
    assert_eq!(s.event_counts("d").expect("counts").skipped, 1);
    // An operation refused for its input does not mean the store cannot write.
    let bad = OutcomeRow {
        identity: Identity::new(Some("a@x.co"), None),
        seq: u64::MAX,
        part: None,
        row_id: None,
        outcome: Outcome::Delivered,
    };
    let refused = s.record_outcomes("d", "k", 1, &[bad]);
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(s.write_failure(), None);
}

#[test]
fn failed_tries_are_recorded_by_key_lookups_not_scans() {
    let s = SqliteStore::open(":memory:").expect("open");
    let conn = s.lock();
    let plan = |sql: &str| query_plan(&conn, sql);
    // Whatever the planner thinks of the tables' sizes, each key is found by its primary
    // key: nothing reads an audience's rows one by one.
    for sql in [MARK_TRIES, MARK_TRIED_EVENTS] {
        let p = plan(sql);
        for line in p.lines() {
            assert!(
                !line.starts_with("SCAN") || line.contains("VIRTUAL TABLE"),
                "{sql}\n{p}"
            );
            if line.starts_with("SEARCH desired") || line.starts_with("SEARCH d ") {
                assert!(line.contains("user_id=?"), "the whole key: {p}");
            }
        }
        assert!(p.contains("SEARCH"), "{p}");
    }
    // The figures: one row per audience, and an index seek for the oldest change.
    let counts = plan(
        "SELECT (SELECT accepted_ms FROM desired INDEXED BY desired_pending
           WHERE destination = c.destination AND list_key = c.list_key AND state = 'pending'
           ORDER BY seq LIMIT 1) FROM audience_counts c WHERE c.destination = 'd'",
    );
    assert!(!counts.contains("SCAN desired"), "{counts}");
    assert!(!counts.contains("SCAN c"), "{counts}");
}

/// A snapshot of `emails` for audience `vip` of destination `d` at `time_ms`, applied.
fn apply_snapshot_of(s: &SqliteStore, time_ms: i64, id: &str, emails: &[&str]) {
    use crate::snapshot::{Feed, Policy, SnapshotSpec, StagedRow};
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let rows = emails
        .iter()
        .zip(2..)
        .map(|(e, line)| StagedRow {
            email: (*e).into(),
            user_id: String::new(),
            data_fields: None,
            line,
        })
        .collect();
    tx.try_send(Feed::Rows(rows)).expect("rows");
    tx.try_send(Feed::End {
        bad_rows: 0,
        diff: None,
    })
    .expect("end");
    let spec = SnapshotSpec {
        destination: "d".into(),
        audience_key: "vip".into(),
        time_ms,
        received_ms: time_ms,
        message_id: id.into(),
        settings: ChangeSettings::default(),
        policy: Policy::default(),
    };
    let diff = s.apply_snapshot(&spec, &mut rx).expect("snapshot");
    assert!(diff.refused.is_none(), "{diff:?}");
}

fn older_event(id: &str, email: &str, time_ms: i64) -> NewEvent {
    NewEvent {
        destination: "d".into(),
        message_id: id.into(),
        received_ms: time_ms + 1_000,
        content: EventContent::Changes(vec![MembershipChange {
            audience_key: "vip".into(),
            list_id: None,
            identity: Identity::new(Some(email), None),
            member: true,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: Some(time_ms),
        }]),
        ignored_settings: Vec::new(),
    }
}

#[test]
fn a_version_5_database_gets_the_snapshot_floors_and_keeps_them_across_opens() {
    let t = Dir::new("v5");
    let s = SqliteStore::open(t.db()).expect("create");
    s.accept(&[older_event("before", "a@x.io", 500)])
        .expect("accept");
    drop(s);
    // Version 5 is version 6 without the floors' and the last verifies' tables.
    let c = Connection::open(t.db()).expect("open");
    c.execute_batch(
        "DROP TABLE snapshot_floors; DROP TABLE last_verify; UPDATE schema_version SET version = 5;",
    )
        .expect("back to version 5");
    drop(c);

    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    assert!(s.event_status("d", "before").expect("read").is_some());
    apply_snapshot_of(&s, 1_000, "snapshot-1", &["a@x.io"]);
    drop(s);

    // Reopened: the floor is read at open, and an older event for a key the snapshot never
    // named is superseded by it.
    let s = SqliteStore::open(t.db()).expect("reopen");
    let r = s
        .accept(&[older_event("late", "b@x.io", 999)])
        .expect("accept");
    assert!(
        matches!(&r[0], Receipt::Accepted { changes, .. } if changes == &[Applied::Stale]),
        "{r:?}"
    );
    let st = s.event_status("d", "late").expect("read").expect("logged");
    assert_eq!(st.audiences[0].status, StatusKind::Superseded);
    let why = st.audiences[0].reason.as_deref().unwrap_or("");
    assert!(
        why.contains("\"snapshot-1\"") && why.contains("1970-01-01T00:00:01.000Z"),
        "{why}"
    );
}

/// The names of the database's indexes on `desired`.
fn desired_indexes(path: &std::path::Path) -> Vec<String> {
    let c = Connection::open(path).expect("open");
    let mut st = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'desired'
                  ORDER BY name",
        )
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("indexes")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn a_version_6_database_loses_the_email_index_and_still_finds_users_by_email() {
    let t = Dir::new("v6");
    let s = SqliteStore::open(t.db()).expect("create");
    let mut ev = older_event("jane", "jane@x.io", 500);
    if let EventContent::Changes(c) = &mut ev.content {
        let mut other = c[0].clone();
        other.audience_key = "beta".into();
        other.identity = Identity::new(Some("jane@x.io"), Some("u1"));
        c.push(other);
    }
    s.accept(&[ev, older_event("joe", "joe@x.io", 500)])
        .expect("accept");
    drop(s);
    // Version 6 is version 7 with an index on emails.
    let c = Connection::open(t.db()).expect("open");
    c.execute_batch(
        "CREATE INDEX desired_by_email ON desired (email) WHERE email <> '';
         UPDATE schema_version SET version = 6;",
    )
    .expect("back to version 6");
    drop(c);
    assert!(desired_indexes(&t.db()).contains(&"desired_by_email".to_string()));

    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let found = s
        .user_states(&UserQuery::Email("jane@x.io".into()), None, 10)
        .expect("by email");
    let keys: Vec<_> = found
        .iter()
        .map(|u| (u.audience_key.as_str(), u.identity.user_id.as_deref()))
        .collect();
    assert_eq!(keys, [("beta", Some("u1")), ("vip", None)]);
    let by_id = s
        .user_states(&UserQuery::UserId("u1".into()), None, 10)
        .expect("by userId");
    assert_eq!(by_id.len(), 1);
    drop(s);
    assert_eq!(desired_indexes(&t.db()), CURRENT_DESIRED_INDEXES);
}

/// Every row of `desired`, each as text, in key order.
fn desired_rows(c: &Connection) -> Vec<String> {
    let mut st = c
        .prepare(
            "SELECT json_array(destination, list_key, email, user_id, list_id, member, time_ms,
               seq, part, accepted_ms, data_fields, update_existing_users_only,
               channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms,
               ack_member, ack_time_ms, ack_seq, ack_ms, tries)
             FROM desired ORDER BY destination, list_key, email, user_id",
        )
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Version 7's `desired`, clustered by its key, as version 7 made it.
const V7_DESIRED: &str = "
    ALTER TABLE desired RENAME TO desired_v8;
    DROP INDEX desired_pending; DROP INDEX desired_pending_exits;
    DROP INDEX desired_rejected; DROP INDEX desired_by_user_id;
    CREATE TABLE desired (
        destination TEXT NOT NULL, list_key TEXT NOT NULL, email TEXT NOT NULL,
        user_id TEXT NOT NULL, list_id INTEGER, member INTEGER NOT NULL, time_ms INTEGER,
        seq INTEGER NOT NULL, part INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,
        data_fields TEXT, update_existing_users_only INTEGER, channel_unsubscribe INTEGER,
        campaign_id INTEGER, state TEXT NOT NULL, reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
        ack_member INTEGER, ack_time_ms INTEGER, ack_seq INTEGER, ack_ms INTEGER,
        tries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (destination, list_key, email, user_id)
    ) WITHOUT ROWID;
    INSERT INTO desired SELECT * FROM desired_v8;
    DROP TABLE desired_v8;
    CREATE INDEX desired_pending ON desired (destination, list_key, seq) WHERE state = 'pending';
    CREATE INDEX desired_pending_exits ON desired (destination, list_key, seq)
        WHERE state = 'pending' AND member = 0;
    CREATE INDEX desired_rejected ON desired (destination, list_key, email, user_id)
        WHERE state = 'rejected';
    CREATE INDEX desired_by_user_id ON desired (user_id) WHERE user_id <> '';
    UPDATE schema_version SET version = 7;
";

/// A version 7 database (`desired` clustered by its key) with keys in every state becomes a
/// rowid table with its key a unique index: the same rows, every index, the same figures and
/// pending rows, and it goes on accepting and settling.
#[test]
fn a_version_7_database_gets_desired_as_a_rowid_table_with_every_row() {
    let t = Dir::new("v7");
    let s = SqliteStore::open(t.db()).expect("create");
    let mut joining = older_event("jane", "jane@x.io", 500);
    if let EventContent::Changes(c) = &mut joining.content {
        let mut other = c[0].clone();
        other.identity = Identity::new(Some("joe@x.io"), Some("u1"));
        c.push(other);
        let mut leaving = c[0].clone();
        leaving.identity = Identity::new(Some("ann@x.io"), None);
        leaving.member = false;
        c.push(leaving);
        let mut rejected = c[0].clone();
        rejected.identity = Identity::new(Some("bad"), None);
        c.push(rejected);
    }
    let r = s.accept(&[joining]).expect("accept");
    let Some(Receipt::Accepted { seq, .. }) = r.first() else {
        panic!("{r:?}");
    };
    let row = |email: &str, user_id: Option<&str>, part: u32, outcome| OutcomeRow {
        identity: Identity::new(Some(email), user_id),
        seq: *seq,
        part: Some(part),
        row_id: None,
        outcome,
    };
    let outcomes = [
        row("jane@x.io", None, 0, Outcome::Delivered),
        row(
            "bad",
            None,
            3,
            Outcome::Rejected {
                reason: "invalid email".into(),
            },
        ),
    ];
    s.record_outcomes("d", "vip", 2_000, &outcomes)
        .expect("record");
    let tried = [(Identity::new(Some("ann@x.io"), None), *seq)];
    s.record_attempt("d", "vip", 2_100, &tried, "HTTP 503", Some(9_000))
        .expect("attempt");
    let counts = s.list_counts("d").expect("counts");
    let pending = s.pending("d", "vip", 10_000, 10).expect("pending");
    drop(s);
    let c = Connection::open(t.db()).expect("open");
    let before = desired_rows(&c);
    c.execute_batch(V7_DESIRED).expect("back to version 7");
    let sql = table_sql(&c, "desired");
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    assert_eq!(desired_rows(&c), before);
    drop(c);

    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let c = Connection::open(t.db()).expect("open");
    let sql = table_sql(&c, "desired");
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    assert_eq!(desired_rows(&c), before);
    assert_eq!(before.len(), 4, "{before:?}");
    let old: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'desired_old'",
            [],
            |r| r.get(0),
        )
        .expect("old");
    assert_eq!(old, 0, "the old table and its indexes are gone");
    drop(c);
    assert_eq!(desired_indexes(&t.db()), CURRENT_DESIRED_INDEXES);
    assert_eq!(s.list_counts("d").expect("counts"), counts);
    assert_eq!(s.recount("d").expect("recount").0, counts);
    // The same pending rows; within one seq, in another order (the rows are in seq order
    // only: the rebuild copied them in key order, where they had been in arrival order), and
    // numbered anew (`row_id`).
    let by_part = |mut rows: Vec<PendingRow>| {
        rows.sort_by_key(|r| (r.version.seq, r.part));
        for r in &mut rows {
            r.row_id = None;
        }
        rows
    };
    assert_eq!(
        by_part(s.pending("d", "vip", 10_000, 10).expect("pending")),
        by_part(pending.clone())
    );
    assert_eq!(
        s.user_states(&UserQuery::UserId("u1".into()), None, 10)
            .expect("by userId")
            .len(),
        1
    );
    assert_eq!(
        s.rejected_keys("d", "vip", None, None, 10)
            .expect("rejected")
            .len(),
        1
    );
    // It goes on: the pending joiner is delivered, and a new event replaces jane's key.
    let joe = pending
        .iter()
        .find(|p| p.identity.email.as_deref() == Some("joe@x.io"))
        .expect("joe pending");
    // Planned before the migration: its row_id names the old table's row, and now whichever
    // row the rebuild numbered so.
    let delivered = OutcomeRow {
        identity: joe.identity.clone(),
        seq: joe.version.seq,
        part: Some(1),
        row_id: joe.row_id,
        outcome: Outcome::Delivered,
    };
    assert_eq!(
        s.record_outcomes("d", "vip", 3_000, &[delivered])
            .expect("record"),
        [Recorded::Applied]
    );
    s.accept(&[older_event("jane-again", "jane@x.io", 700)])
        .expect("accept");
    let after = s.list_counts("d").expect("counts");
    assert_eq!(s.recount("d").expect("recount").0, after);
    assert_eq!(after[0].members, counts[0].members + 1);
    // Opening again migrates nothing.
    drop(s);
    let s = SqliteStore::open(t.db()).expect("reopen");
    assert_eq!(s.list_counts("d").expect("counts"), after);
}

/// The `CREATE` statement of table `name`.
fn table_sql(c: &Connection, name: &str) -> String {
    c.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .expect("table")
}

/// Every table and index (type, name, table, SQL) but `sqlite_sequence`, by name.
fn schema_of(c: &Connection) -> Vec<(String, String, String, Option<String>)> {
    c.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master
         WHERE name <> 'sqlite_sequence' ORDER BY name",
    )
    .expect("prepare")
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The seq of event `message_id` of destination `d`, read from the file.
fn seq_of(path: &std::path::Path, message_id: &str) -> i64 {
    let c = Connection::open(path).expect("open");
    c.query_row(
        "SELECT seq FROM events WHERE destination = 'd' AND message_id = ?1",
        [message_id],
        |r| r.get(0),
    )
    .expect("seq")
}

/// Makes the file of `t`, filled with 3 events, a version 9 database: `events.seq`
/// AUTOINCREMENT with its counter at `counter` (past the rows, as pruning leaves it), and the
/// acknowledged version of one desired row at `ack_seq`.
fn back_to_version_9(t: &Dir, counter: i64, ack_seq: i64) {
    let c = Connection::open(t.db()).expect("open");
    c.execute_batch(
        "ALTER TABLE events RENAME TO events_v10;
         CREATE TABLE events (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             destination TEXT NOT NULL,
             message_id TEXT NOT NULL,
             received_ms INTEGER NOT NULL,
             UNIQUE (destination, message_id)
         );
         INSERT INTO events SELECT * FROM events_v10;
         DROP TABLE events_v10;
         DROP TABLE seq_floor;
         UPDATE schema_version SET version = 9;",
    )
    .expect("back to version 9");
    c.execute(
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
        [counter],
    )
    .expect("counter");
    c.execute(
        "UPDATE desired SET ack_seq = ?1 WHERE email = 'u1@x.co'",
        [ack_seq],
    )
    .expect("ack");
}

/// A version 9 database whose counter is past every seq its rows name: the next event after
/// the migration takes the counter's next seq.
#[test]
fn a_version_9_counter_past_every_row_is_kept() {
    let t = Dir::new("v9-counter");
    drop(filled(&t, 3));
    back_to_version_9(&t, 10, 2);
    let s = SqliteStore::open(t.db()).expect("migrated");
    let r = s
        .accept(&[older_event("after", "z@x.io", 5)])
        .expect("accept");
    assert_eq!(r[0].seq(), 11, "{r:?}");
}

/// A version 9 database (`events.seq` AUTOINCREMENT, whose counter is past the rows left by
/// pruning, and a desired row naming a seq past the counter) gets `events` without
/// AUTOINCREMENT with every row, and its next event a seq past both; so does the first event
/// of a batch, or a snapshot's event, after pruning removed the newest events.
#[test]
fn a_version_9_database_keeps_its_seqs_without_autoincrement() {
    let t = Dir::new("v9");
    drop(filled(&t, 3));
    back_to_version_9(&t, 10, 15);

    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    for i in 0..3 {
        assert!(
            s.event_status("d", &format!("m{i}"))
                .expect("read")
                .is_some()
        );
    }
    let r = s
        .accept(&[older_event("after", "z@x.io", 5)])
        .expect("accept");
    // Past the counter (10) and the acknowledged version a desired row names (15).
    assert_eq!(r[0].seq(), 16, "{r:?}");
    drop(s);
    let c = Connection::open(t.db()).expect("open");
    let sql = table_sql(&c, "events");
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    // The same tables and indexes as a new database (`sqlite_sequence`, empty, stays).
    let fresh = Dir::new("v10");
    drop(SqliteStore::open(fresh.db()).expect("create"));
    assert_eq!(
        schema_of(&c),
        schema_of(&Connection::open(fresh.db()).expect("open"))
    );
    let seqs: Vec<i64> = c
        .prepare("SELECT seq FROM events ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(seqs, vec![1, 2, 3, 16]);
    // Every event but the first gone, as pruning leaves it (the floor kept by
    // `seqs::keep_newest`).
    let prune_to = |c: &Connection, floor: i64| {
        c.execute(
            "INSERT INTO seq_floor (id, seq) VALUES (1, ?1)
               ON CONFLICT (id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            [floor],
        )
        .expect("floor");
        c.execute_batch(
            "DELETE FROM event_audiences WHERE seq > 1; DELETE FROM events WHERE seq > 1;",
        )
        .expect("prune");
    };
    prune_to(&c, 25);
    drop(c);
    // A batch that starts with a duplicate (of the event kept), then a new event twice and
    // another: the first new one takes the floor's next seq, the second SQLite's.
    let s = SqliteStore::open(t.db()).expect("reopen");
    let r = s
        .accept(&[
            older_event("m0", "u0@x.co", 5),
            older_event("last", "y@x.io", 5),
            older_event("last", "y@x.io", 5),
            older_event("later", "x@x.io", 5),
        ])
        .expect("accept");
    let seqs: Vec<u64> = r.iter().map(Receipt::seq).collect();
    assert_eq!(seqs, vec![1, 26, 26, 27], "{r:?}");
    assert!(matches!(r[0], Receipt::Duplicate { .. }), "{r:?}");
    drop(s);
    // A snapshot's event after the same.
    let c = Connection::open(t.db()).expect("open");
    prune_to(&c, 30);
    drop(c);
    let s = SqliteStore::open(t.db()).expect("reopen");
    apply_snapshot_of(
        &s,
        1_000,
        "snapshot-1",
        &["a@x.io", "x@x.io", "y@x.io", "z@x.io"],
    );
    drop(s);
    assert_eq!(seq_of(&t.db(), "snapshot-1"), 31);
}

/// A version 10 database (the event log's duplicate check keyed by destination first) gets
/// `events` with the check keyed by message id first, every row and seq kept: an event seen
/// before is still a duplicate, a new one takes the next seq, and the lookups by message id
/// search the new index.
#[test]
fn a_version_10_event_log_is_keyed_by_message_id_first() {
    let t = Dir::new("v10-key");
    drop(filled(&t, 3));
    let c = Connection::open(t.db()).expect("open");
    c.execute_batch(
        "ALTER TABLE events RENAME TO events_v11;
         CREATE TABLE events (
             seq INTEGER PRIMARY KEY,
             destination TEXT NOT NULL,
             message_id TEXT NOT NULL,
             received_ms INTEGER NOT NULL,
             UNIQUE (destination, message_id)
         );
         INSERT INTO events SELECT * FROM events_v11;
         DROP TABLE events_v11;
         UPDATE schema_version SET version = 10;",
    )
    .expect("back to version 10");
    drop(c);

    let s = SqliteStore::open(t.db()).expect("migrated");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let r = s
        .accept(&[
            older_event("m1", "u1@x.co", 5),
            older_event("after", "z@x.io", 5),
        ])
        .expect("accept");
    assert!(matches!(r[0], Receipt::Duplicate { seq: 2 }), "{r:?}");
    assert_eq!(r[1].seq(), 4, "{r:?}");
    drop(s);
    let c = Connection::open(t.db()).expect("open");
    let sql = table_sql(&c, "events");
    assert!(sql.contains("UNIQUE (message_id, destination)"), "{sql}");
    let fresh = Dir::new("v11");
    drop(SqliteStore::open(fresh.db()).expect("create"));
    assert_eq!(
        schema_of(&c),
        schema_of(&Connection::open(fresh.db()).expect("open"))
    );
    for i in 0..3 {
        assert_eq!(seq_of(&t.db(), &format!("m{i}")), i + 1);
    }
    let plan = query_plan(
        &c,
        "SELECT seq FROM events WHERE destination = ?1 AND message_id = ?2",
    );
    assert!(
        plan.contains("INDEX sqlite_autoindex_events_1 (message_id=? AND destination=?)"),
        "{plan}"
    );
}
