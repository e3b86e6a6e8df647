//! What only the PostgreSQL engine has: schema versions on a shared server, read-only opening
//! for inspection, several processes (here: several pools) writing the same keys at once, and
//! passwords kept out of messages. The conformance suite (`store_conformance.rs`) checks the
//! rest, as for SQLite.

use std::collections::BTreeMap;

use sync::postgres::{Access, SCHEMA_VERSION};
use sync::{
    ChangeSettings, EventContent, Identity, MembershipChange, NewEvent, Outcome, OutcomeRow,
    PostgresStore, Receipt, Store, StoreError,
};
use testkit::postgres::PgSchema;

const D: &str = "prod";

async fn open(schema: &PgSchema, access: Access) -> Result<PostgresStore, StoreError> {
    PostgresStore::open(&schema.url(), 4, access).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_schema_opens_again_and_a_newer_one_is_refused() {
    let schema = PgSchema::create("versions");
    // Read-only on an empty schema: a clear error, and nothing created.
    let err = open(&schema, Access::ReadOnly)
        .await
        .expect_err("no schema yet");
    let text = err.to_string();
    assert!(
        text.contains("no iterable-lists schema") && text.contains("iterable-lists serve"),
        "{text}"
    );
    let err = open(&schema, Access::ReadOnly)
        .await
        .expect_err("still none");
    assert!(
        err.to_string().contains("no iterable-lists schema"),
        "{err}"
    );

    // Created once, then opened again (by a second instance, as at a restart): idempotent.
    let first = Store::postgres(open(&schema, Access::ReadWrite).await.expect("create"));
    first
        .accept(vec![event("v1", "a@x.co", true, 1)])
        .await
        .expect("accept");
    drop(first);
    let (a, b) = tokio::join!(
        open(&schema, Access::ReadWrite),
        open(&schema, Access::ReadWrite)
    );
    let (a, b) = (a.expect("again"), b.expect("at once"));
    let again = Store::postgres(a);
    let got = again.event_status(D, "v1").await.expect("status");
    assert!(got.is_some(), "the data survived opening again");
    drop((again, b));
    schema
        .execute(&format!(
            "DO $$ BEGIN IF (SELECT COUNT(*) FROM schema_version) <> 1
               OR (SELECT MAX(version) FROM schema_version) <> {SCHEMA_VERSION}
             THEN RAISE EXCEPTION 'not one row at the current version'; END IF; END $$"
        ))
        .expect("one version row, the current one");

    // Read-only sees it and cannot write.
    let ro = Store::postgres(open(&schema, Access::ReadOnly).await.expect("read-only"));
    assert!(ro.event_status(D, "v1").await.expect("read").is_some());
    assert!(
        ro.put_list_id(D, "vip", 1).await.is_err(),
        "read-only writes"
    );
    drop(ro);

    // A newer version (a newer program ran here): refused, by both kinds of opening.
    schema
        .execute(&format!(
            "UPDATE schema_version SET version = {}",
            SCHEMA_VERSION + 1
        ))
        .expect("bump");
    for access in [Access::ReadWrite, Access::ReadOnly] {
        let err = open(&schema, access).await.expect_err("newer");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_never_shows_in_errors() {
    // Nothing listens on port 1.
    let url = "postgres://someone:pw_never_shown@127.0.0.1:1/db";
    let err = PostgresStore::open(url, 1, Access::ReadWrite)
        .await
        .expect_err("nothing listens");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("pw_never_shown"), "{text}");
    assert!(
        text.contains("postgres://someone:***@127.0.0.1:1/db"),
        "{text}"
    );
}

fn event(message_id: &str, email: &str, member: bool, time_ms: i64) -> NewEvent {
    NewEvent {
        destination: D.into(),
        message_id: message_id.into(),
        received_ms: 1,
        content: EventContent::Changes(vec![MembershipChange {
            audience_key: "vip".into(),
            list_id: None,
            identity: Identity::new(Some(email), None),
            member,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: Some(time_ms),
        }]),
        ignored_settings: Vec::new(),
    }
}

/// Up to `limit` due keys of audience "vip", recorded as delivered (as the reconciler would
/// after Iterable's 200).
async fn deliver_pending(store: &Store, limit: usize) {
    let rows = store
        .pending(D, "vip", i64::MAX, limit)
        .await
        .expect("pending");
    let outcomes = rows
        .iter()
        .map(|r| OutcomeRow {
            identity: r.identity.clone(),
            seq: r.version.seq,
            part: Some(r.part),
            row_id: None,
            outcome: Outcome::Delivered,
        })
        .collect();
    store
        .record_outcomes(D, "vip", 5, outcomes)
        .await
        .expect("record");
}

/// Several instances (pools) accept batches over the same users at once, in different orders,
/// with messageIds shared between them (a sender retrying on another instance), while one
/// delivers. Every messageId is stored once; each user's desired state is the latest event's;
/// the figures equal a recount; nothing fails (deadlocks, if any, are retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_writing_the_same_keys_agree() {
    let schema = PgSchema::create("concurrent");
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Store::postgres(
            open(&schema, Access::ReadWrite).await.expect("open"),
        ));
    }
    const USERS: usize = 40;
    const ROUNDS: usize = 12;
    // Event (round, user): time = round * 7 % ROUNDS-ish scramble, member = time is even.
    let time = |round: usize, user: usize| ((round * 7 + user * 3) % ROUNDS) as i64;
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for part in 0..2 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut receipts = Vec::new();
                for round in 0..ROUNDS {
                    let mut batch: Vec<NewEvent> = (0..USERS)
                        .map(|u| {
                            let t = time(round, u);
                            event(
                                &format!("r{round}-u{u}"),
                                &format!("u{u}@x.co"),
                                t % 2 == 0,
                                t,
                            )
                        })
                        .collect();
                    // Different orders per task: the keys still lock in one order.
                    if (n + part) % 2 == 1 {
                        batch.reverse();
                    }
                    let ids: Vec<String> = batch.iter().map(|e| e.message_id.clone()).collect();
                    let r = store.accept(batch).await.expect("accept");
                    receipts.extend(ids.into_iter().zip(r));
                }
                receipts
            }));
        }
    }
    let deliver = {
        let store = stores[0].clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                deliver_pending(&store, 25).await;
            }
        })
    };
    let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
    let mut duplicates: Vec<(String, u64)> = Vec::new();
    for t in tasks {
        for (id, r) in t.await.expect("task") {
            match r {
                Receipt::Accepted { seq, .. } => {
                    assert!(
                        accepted.insert(id.clone(), seq).is_none(),
                        "{id} accepted twice"
                    );
                }
                Receipt::Duplicate { seq } => duplicates.push((id, seq)),
            }
        }
    }
    deliver.await.expect("deliver");
    assert_eq!(
        accepted.len(),
        USERS * ROUNDS,
        "every messageId stored once"
    );
    assert_eq!(duplicates.len(), USERS * ROUNDS * 5);
    for (id, seq) in duplicates {
        assert_eq!(accepted[&id], seq, "{id}: a duplicate names the first seq");
    }
    // The latest event per user (by time, then seq) is the desired state: pending or delivered.
    let s = &stores[1];
    for u in 0..USERS {
        let latest = (0..ROUNDS)
            .map(|round| {
                let id = format!("r{round}-u{u}");
                ((time(round, u), accepted[&id]), id)
            })
            .max()
            .expect("rounds");
        let story = s
            .event_status(D, &latest.1)
            .await
            .expect("status")
            .expect("known");
        let st = story.audiences[0].status;
        assert!(
            matches!(st, sync::StatusKind::Accepted | sync::StatusKind::Delivered),
            "u{u}: latest {} is {st:?}",
            latest.1
        );
        for round in 0..ROUNDS {
            let id = format!("r{round}-u{u}");
            if id == latest.1 {
                continue;
            }
            let st = s
                .event_status(D, &id)
                .await
                .expect("status")
                .expect("known");
            assert!(
                st.audiences[0].status.is_final(),
                "u{u}: older {id} is {:?}",
                st.audiences[0].status
            );
        }
    }
    let rows = s.pending(D, "vip", i64::MAX, 1000).await.expect("pending");
    for r in &rows {
        assert!(r.version.time_ms.is_some());
    }
    let (lists, events) = s.recount(D).await.expect("recount");
    assert_eq!(lists, s.list_counts(D).await.expect("lists"));
    assert_eq!(events, s.event_counts(D).await.expect("events"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_upgraded_with_its_rows() {
    // Version 1 is the current schema without version 2's coordination tables (leases,
    // instances, rate cuts, rate slots): build one, with a stored event and a list.
    let schema = PgSchema::create("upgrade");
    let store = Store::postgres(open(&schema, Access::ReadWrite).await.expect("create"));
    store
        .accept(vec![event("old-1", "a@x.co", true, 1)])
        .await
        .expect("accept");
    assert_eq!(store.put_list_id(D, "vip", 77).await.expect("list"), 77);
    drop(store);
    schema
        .execute(
            "DROP TABLE leases, instances, rate_cuts, rate_slots, removal_guard, removal_window,
               snapshot_floors, last_verify;
             DROP INDEX desired_pending_exits;
             UPDATE schema_version SET version = 1",
        )
        .expect("back to version 1");

    // Inspection does not upgrade: it refuses, saying how.
    let err = open(&schema, Access::ReadOnly)
        .await
        .expect_err("an older schema");
    assert!(err.to_string().contains("iterable-lists serve"), "{err}");

    // `serve` (a read-write open) migrates it, and nothing stored is lost.
    let store = Store::postgres(open(&schema, Access::ReadWrite).await.expect("upgrade"));
    assert!(
        store
            .event_status(D, "old-1")
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(store.list_id(D, "vip").await.expect("list"), Some(77));
    let held = store
        .acquire_leases(D, "i1", &["vip".to_owned()], 1, 1_000, 31_000)
        .await
        .expect("the leases table is there");
    assert_eq!(held, ["vip"]);
    assert_eq!(store.leases(D).await.expect("leases").len(), 1);
    drop(store);
    schema
        .execute(&format!(
            "DO $$ BEGIN IF (SELECT COUNT(*) FROM schema_version) <> 1
               OR (SELECT MAX(version) FROM schema_version) <> {SCHEMA_VERSION}
             THEN RAISE EXCEPTION 'not one row at the current version'; END IF; END $$"
        ))
        .expect("one version row, the current one");
}

/// A current schema given `events`, taken back to `version` by `back` (SQL), refused by a
/// read-only open that names the version, and upgraded by a read-write one.
async fn upgraded_from(
    schema: &PgSchema,
    events: Vec<NewEvent>,
    version: i64,
    back: &str,
) -> Store {
    let store = Store::postgres(open(schema, Access::ReadWrite).await.expect("create"));
    store.accept(events).await.expect("accept");
    drop(store);
    schema
        .execute(&format!(
            "{back}; UPDATE schema_version SET version = {version}"
        ))
        .expect("back to the older version");
    let err = open(schema, Access::ReadOnly)
        .await
        .expect_err("an older schema");
    assert!(
        err.to_string().contains(&format!("version {version}")),
        "{err}"
    );
    Store::postgres(open(schema, Access::ReadWrite).await.expect("upgrade"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_database_gets_the_snapshot_floors_and_the_last_verifies() {
    // Version 3 is the current schema without version 4's `snapshot_floors` and
    // `last_verify`.
    let schema = PgSchema::create("upgrade-floors");
    let store = upgraded_from(
        &schema,
        vec![event("old-1", "a@x.co", true, 1)],
        3,
        "DROP TABLE snapshot_floors, last_verify",
    )
    .await;
    assert!(
        store
            .event_status(D, "old-1")
            .await
            .expect("read")
            .is_some()
    );
    // The table is there, empty: no audience has a floor, so an old event still applies.
    let r = store
        .accept(vec![event("old-2", "b@x.co", true, 2)])
        .await
        .expect("accept");
    assert!(
        matches!(&r[0], Receipt::Accepted { changes, .. } if changes == &[sync::Applied::Current]),
        "{r:?}"
    );
    drop(store);
    schema
        .execute(&format!(
            "DO $$ BEGIN IF (SELECT MAX(version) FROM schema_version) <> {SCHEMA_VERSION}
               OR {SCHEMA_VERSION} < 4 OR to_regclass('snapshot_floors') IS NULL
               OR to_regclass('last_verify') IS NULL
             THEN RAISE EXCEPTION 'not upgraded to version 4'; END IF; END $$"
        ))
        .expect("the current version, with the floors' table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_database_loses_the_email_index_and_still_finds_users_by_email() {
    // Version 4 had the admin API's indexes unnumbered, one of them on emails.
    let schema = PgSchema::create("upgrade-admin");
    let store = upgraded_from(
        &schema,
        vec![
            event("jane", "jane@x.co", true, 1),
            event("joe", "joe@x.co", true, 1),
        ],
        4,
        "CREATE INDEX desired_by_email ON desired (email) WHERE email <> ''",
    )
    .await;
    let found = store
        .user_states(&sync::UserQuery::Email("jane@x.co".into()), None, 10)
        .await
        .expect("by email");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].desired.message_id.as_deref(), Some("jane"));
    drop(store);
    schema
        .execute(&format!(
            "DO $$ BEGIN IF (SELECT MAX(version) FROM schema_version) <> {SCHEMA_VERSION}
               OR to_regclass('desired_by_email') IS NOT NULL
               OR to_regclass('desired_by_user_id') IS NULL
               OR to_regclass('desired_rejected') IS NULL
               OR to_regclass('operator_pauses') IS NULL
             THEN RAISE EXCEPTION 'not upgraded'; END IF; END $$"
        ))
        .expect("the current version, without the index on emails");
}

/// A new schema's migration drops an index on emails of its own only: another deployment's,
/// in a schema further down the `search_path`, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_leaves_another_schemas_email_index_alone() {
    let other = PgSchema::create("other-deployment");
    other
        .execute(
            "CREATE TABLE desired (email TEXT);
             CREATE INDEX desired_by_email ON desired (email)",
        )
        .expect("the other deployment");
    let schema = PgSchema::create("new-deployment");
    let sep = if schema.base_url().contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{}{sep}options=-c%20search_path%3D{}%2C{}",
        schema.base_url(),
        schema.name(),
        other.name()
    );
    let store = PostgresStore::open(&url, 2, Access::ReadWrite)
        .await
        .expect("create");
    drop(store);
    other
        .execute(
            "DO $$ BEGIN IF to_regclass(current_schema() || '.desired_by_email') IS NULL
             THEN RAISE EXCEPTION 'dropped'; END IF; END $$",
        )
        .expect("the other deployment's index is still there");
}

/// The statements of accept and delivery look keys up through the indexes, also when the
/// planner's statistics are far behind the tables (here: analyzed nearly empty, autovacuum
/// off, then 5,000 keys accepted and delivered). Planned from such statistics, they used to
/// hash a scan of the whole `desired` and `event_audiences` tables on every batch, so that the
/// server's work per event grew with the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lookups_use_the_indexes_whatever_the_statistics_say() {
    let schema = PgSchema::create("keyed");
    let store = Store::postgres(open(&schema, Access::ReadWrite).await.expect("open"));
    store
        .accept(vec![event("first", "first@x.co", true, 1)])
        .await
        .expect("accept");
    schema
        .execute(
            "ANALYZE desired; ANALYZE event_audiences; \
             ALTER TABLE desired SET (autovacuum_enabled = false); \
             ALTER TABLE event_audiences SET (autovacuum_enabled = false)",
        )
        .expect("stale statistics");
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 500;
    for b in 0..BATCHES {
        let batch: Vec<NewEvent> = (0..PER_BATCH)
            .map(|i| {
                let n = b * PER_BATCH + i;
                event(&format!("m{n}"), &format!("u{n}@x.co"), true, 2)
            })
            .collect();
        store.accept(batch).await.expect("accept");
        deliver_pending(&store, 1000).await;
    }
    let keys = BATCHES * PER_BATCH + 1;
    // Each server process reports its table statistics within seconds of going idle: wait
    // until every insert and update shows, then no scan may have read a table whole (a scan
    // while it held a row or two reads that many).
    let check = format!(
        "DO $$ DECLARE d RECORD; e RECORD; BEGIN
           SELECT * INTO d FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'desired';
           SELECT * INTO e FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'event_audiences';
           IF d.n_tup_ins < {keys} OR d.n_tup_upd < {keys} - 1 OR e.n_tup_ins < {keys} THEN
             RAISE EXCEPTION 'not reported yet: % inserts, % updates', d.n_tup_ins, d.n_tup_upd;
           END IF;
           IF d.seq_tup_read > 100 OR e.seq_tup_read > 100 THEN
             RAISE EXCEPTION 'SCANNED WHOLE: desired % rows in % scans, event_audiences % rows in % scans',
               d.seq_tup_read, d.seq_scan, e.seq_tup_read, e.seq_scan;
           END IF;
         END $$"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match schema.execute(&check) {
            Ok(()) => break,
            Err(e) if e.contains("SCANNED WHOLE") => panic!("{e}"),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

/// Delivering a snapshot's keys reads each outcome's event row alone. All of a snapshot's keys
/// share one seq, and recording a batch of outcomes used to read every row of the outcomes'
/// seqs in the audience: the whole snapshot per batch, so that delivering it was quadratic
/// (200,000 keys: 330 ms per batch of 1,000, 67 s in all, against 27 ms and 6 s now). Here
/// 3,000 keys in 30 batches of 100: 6,000 event rows fetched (a read and an update of each),
/// against 93,000 before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshots_delivery_reads_each_outcomes_event_row_alone() {
    use sync::snapshot::{Policy, SnapshotSpec};

    const KEYS: usize = 3_000;
    let schema = PgSchema::create("snapshot_outcomes");
    let store = Store::postgres(open(&schema, Access::ReadWrite).await.expect("open"));
    let mut csv = String::from("email\n");
    for i in 0..KEYS {
        csv.push_str(&format!("u{i}@x.co\n"));
    }
    let spec = SnapshotSpec {
        destination: D.into(),
        audience_key: "vip".into(),
        time_ms: 1_000,
        received_ms: 1_000,
        message_id: "snapshot-1".into(),
        settings: ChangeSettings::default(),
        policy: Policy::default(),
    };
    let report = apply_csv(&store, spec, csv).await.expect("snapshot");
    assert_eq!(report.diff.adds, KEYS as u64, "{report:?}");
    schema
        .execute("SELECT pg_stat_reset_single_table_counters('event_audiences'::regclass)")
        .expect("reset the counters");
    for _ in 0..KEYS / 100 {
        deliver_pending(&store, 100).await;
    }
    assert!(
        store
            .pending(D, "vip", i64::MAX, 1)
            .await
            .expect("pending")
            .is_empty()
    );
    let check = format!(
        "DO $$ DECLARE e RECORD; BEGIN
           SELECT * INTO e FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'event_audiences';
           IF e.n_tup_upd < {KEYS} THEN
             RAISE EXCEPTION 'not reported yet: % updates', e.n_tup_upd;
           END IF;
           IF e.idx_tup_fetch > {KEYS} * 3 THEN
             RAISE EXCEPTION 'READ TOO MANY: % event rows fetched for % outcomes',
               e.idx_tup_fetch, {KEYS};
           END IF;
         END $$"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match schema.execute(&check) {
            Ok(()) => break,
            Err(e) if e.contains("READ TOO MANY") => panic!("{e}"),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

/// A snapshot waiting for `desired` while it holds `events` can be a deadlock's victim (seen
/// once in a loaded CI run); it takes its locks again instead of failing. Here another session
/// holds `desired` and then asks for `events` while the snapshot waits: a cycle, which the
/// snapshot's session finds first (its `deadlock_timeout` is the server's 1 s, the other's 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_chosen_as_a_deadlock_victim_takes_its_locks_again() {
    use sync::snapshot::{Policy, SnapshotSpec};

    let schema = PgSchema::create("snapshot_deadlock");
    let store = Store::postgres(open(&schema, Access::ReadWrite).await.expect("open"));
    let (other, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    other
        .batch_execute(
            "SET deadlock_timeout = '5s'; BEGIN; LOCK TABLE desired IN ROW EXCLUSIVE MODE",
        )
        .await
        .expect("the other session holds desired");

    let snapshot = tokio::spawn({
        let store = store.clone();
        async move {
            let spec = SnapshotSpec {
                destination: D.into(),
                audience_key: "locked".into(),
                time_ms: 1_000,
                received_ms: 1_000,
                message_id: "snapshot-deadlock".into(),
                settings: ChangeSettings::default(),
                policy: Policy::default(),
            };
            apply_csv(&store, spec, "email\na@x.co\nb@x.co\n").await
        }
    });
    // Until the snapshot, holding `events`, waits for `desired`.
    until_a_lock_is_awaited(
        &other,
        "AND relation = 'desired'::regclass",
        "the snapshot never waited for desired",
    )
    .await;
    other
        .batch_execute("LOCK TABLE events IN ROW EXCLUSIVE MODE; COMMIT")
        .await
        .expect("the other session gets events once the snapshot gave way");
    let report = snapshot
        .await
        .expect("join")
        .expect("the snapshot applied after taking its locks again");
    assert_eq!(report.diff.adds, 2, "{report:?}");
}

/// A transaction that locks a desired row (`SELECT ... FOR UPDATE`, as outcomes do) and then
/// writes it must not deadlock with a snapshot changing that row. The snapshot used to lock the
/// tables in `SHARE ROW EXCLUSIVE` mode, which let the row lock in, then wait for the row while
/// the other waited for the table: a deadlock after the locks, which failed the snapshot (a 500
/// in a CI run). Here the other session finds a snapshot in line before its write, writes,
/// commits, and the snapshot then applies whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_locked_before_a_snapshot_is_written_and_the_snapshot_then_applies() {
    use sync::snapshot::{Policy, SnapshotReport, SnapshotSpec};

    async fn snap(store: &Store, time_ms: i64, id: &str, csv: &'static str) -> SnapshotReport {
        let spec = SnapshotSpec {
            destination: D.into(),
            audience_key: "rowlock".into(),
            time_ms,
            received_ms: time_ms,
            message_id: id.into(),
            settings: ChangeSettings::default(),
            policy: Policy {
                max_removal_ratio: 1.0,
                ..Policy::default()
            },
        };
        apply_csv(store, spec, csv)
            .await
            .unwrap_or_else(|e| panic!("snapshot {id}: {e}"))
    }

    let schema = PgSchema::create("snapshot_row_lock");
    let store = Store::postgres(open(&schema, Access::ReadWrite).await.expect("open"));
    assert_eq!(
        snap(&store, 1_000, "s1", "email\na@x.co\nb@x.co\n")
            .await
            .diff
            .adds,
        2
    );

    let (other, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let row = "destination = $1 AND list_key = 'rowlock' AND email = 'a@x.co'";
    other
        .batch_execute("SET deadlock_timeout = '5s'; BEGIN")
        .await
        .expect("begin");
    let locked = other
        .query(
            &format!("SELECT seq FROM desired WHERE {row} FOR UPDATE"),
            &[&D],
        )
        .await
        .expect("the other session locks a@x.co's desired row");
    assert_eq!(locked.len(), 1);

    // The second snapshot removes a@x.co.
    let snapshot = tokio::spawn({
        let store = store.clone();
        async move { snap(&store, 2_000, "s2", "email\nb@x.co\nc@x.co\n").await }
    });
    // A session waiting for `other` itself (tests run in parallel on one server).
    let pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let blocked = format!(
        "AND pid IN (SELECT pid FROM pg_stat_activity WHERE {pid} = ANY(pg_blocking_pids(pid)))"
    );
    until_a_lock_is_awaited(
        &other,
        &blocked,
        "the snapshot never waited for the other session",
    )
    .await;
    other
        .execute(
            &format!("UPDATE desired SET tries = tries + 1 WHERE {row}"),
            &[&D],
        )
        .await
        .expect("the other session writes the row it locked");
    other.batch_execute("COMMIT").await.expect("commit");
    let report = snapshot.await.expect("join");
    assert_eq!(
        (report.diff.adds, report.diff.removes),
        (1, 1),
        "{report:?}"
    );
    let state: String = other
        .query_one(&format!("SELECT state FROM desired WHERE {row}"), &[&D])
        .await
        .expect("a@x.co's row")
        .get(0);
    assert_eq!(
        state, "pending",
        "the snapshot's removal is what a@x.co waits for"
    );
}

/// Waits (up to 30 s) until some session waits for a lock, among those `filter` (SQL after
/// `WHERE NOT granted`) keeps; panics with `never` after that.
async fn until_a_lock_is_awaited(client: &tokio_postgres::Client, filter: &str, never: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM pg_locks WHERE NOT granted {filter}"),
                &[],
            )
            .await
            .expect("pg_locks")
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{never}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A CSV snapshot applied through `run_snapshot` (no diff file, never cancelled).
async fn apply_csv(
    store: &Store,
    spec: sync::snapshot::SnapshotSpec,
    csv: impl Into<Vec<u8>>,
) -> Result<sync::snapshot::SnapshotReport, sync::snapshot::RunError> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use sync::snapshot::{Format, Progress, run_snapshot};

    run_snapshot(
        store,
        spec,
        std::io::Cursor::new(csv.into()),
        Format::Csv,
        None,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
}
