//! `iterable-lists store copy` as a user runs it: a database the service wrote is copied into
//! a new file with the same rows (counts printed, progress on standard error), the copy
//! answers `events show` and `status` as the original does, a non-empty target is refused
//! unless `--allow-non-empty`, a source at an older schema is refused with what to do, and no
//! password of a URL is ever printed. SQLite to PostgreSQL and back gives the same rows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sync::{
    ChangeSettings, DestinationState, EventContent, Identity, MembershipChange, NewEvent, Outcome,
    OutcomeRow, SqliteStore, Store,
};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcdef";

/// A fresh directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let d = std::env::temp_dir().join(format!("il-copy-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        Self(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A service configuration over the database `db`, for `status` and `events show`.
    fn config(&self, db: &Path) -> PathBuf {
        let p = self.0.join(format!(
            "{}.toml",
            db.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
        ));
        std::fs::write(
            &p,
            format!(
                "[storage]\nurl = \"sqlite://{}\"\n[[destination]]\nname = \"prod\"\n\
                 api_key = \"{KEY}\"\nbase_url = \"http://127.0.0.1:9\"\nwrite_keys = [\"wk\"]\n",
                db.display()
            ),
        )
        .expect("config");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn change(audience: &str, email: &str, member: bool, time_ms: i64) -> MembershipChange {
    MembershipChange {
        audience_key: audience.into(),
        list_id: None,
        identity: Identity::new(Some(email), None),
        member,
        data_fields: None,
        settings: ChangeSettings::default(),
        time_ms: Some(time_ms),
    }
}

/// A database as the service leaves it: `n` events over two audiences, some delivered, one
/// rejected, a registry and a paused destination.
async fn make_source(path: &Path, n: usize) {
    let store = Store::sqlite(SqliteStore::open(path).expect("open the source"));
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent {
            destination: "prod".into(),
            message_id: format!("m{i}"),
            received_ms: 1_700_000_000_000 + i as i64,
            content: EventContent::Changes(vec![change(
                if i % 2 == 0 { "vip" } else { "churn" },
                &format!("u{}@x.co", i % 40),
                i % 3 != 0,
                i as i64,
            )]),
            ignored_settings: Vec::new(),
        })
        .collect();
    let mut seqs = Vec::new();
    for chunk in events.chunks(500) {
        let receipts = store.accept(chunk.to_vec()).await.expect("accept");
        seqs.extend(receipts.iter().map(|r| r.seq()));
    }
    let delivered: Vec<OutcomeRow> = store
        .pending("prod", "vip", i64::MAX, 10)
        .await
        .expect("pending")
        .into_iter()
        .enumerate()
        .map(|(i, row)| OutcomeRow {
            identity: row.identity,
            seq: row.version.seq,
            part: Some(row.part),
            row_id: None,
            outcome: if i == 0 {
                Outcome::Rejected {
                    reason: "invalidEmails".into(),
                }
            } else {
                Outcome::Delivered
            },
        })
        .collect();
    store
        .record_outcomes("prod", "vip", 1_700_000_100_000, delivered)
        .await
        .expect("record");
    store.put_list_id("prod", "vip", 101).await.expect("put");
    store.put_list_id("prod", "churn", 102).await.expect("put");
    let paused = DestinationState::Paused {
        reason: "401 Invalid API key".into(),
        since_ms: 1_700_000_200_000,
    };
    store
        .set_destination_state("prod", &paused, 1_700_000_200_000)
        .await
        .expect("state");
}

/// The value of a table's row in the printed counts: `(source, target)`.
fn counts_of(stdout: &str, table: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(table) && l[table.len()..].starts_with("  "))
        .unwrap_or_else(|| panic!("no {table} row in {stdout}"));
    let n: Vec<u64> = line[table.len()..]
        .split_whitespace()
        .map(|w| w.parse().expect("a count"))
        .collect();
    (n[0], n[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_the_same_store() {
    let dir = Dir::new("same");
    let (src, dst) = (dir.path("source.db"), dir.path("copy.db"));
    make_source(&src, 2500).await;
    let out = run(&[
        "store",
        "copy",
        "--from",
        &url(&src),
        "--to",
        &url(&dst),
        "--batch-rows",
        "300",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("counts verified"), "{stdout}");
    assert_eq!(counts_of(&stdout, "events"), (2500, 2500), "{stdout}");
    assert_eq!(counts_of(&stdout, "event changes"), (2500, 2500));
    assert_eq!(counts_of(&stdout, "desired"), (40, 40));
    assert_eq!(counts_of(&stdout, "lists"), (2, 2));
    assert_eq!(counts_of(&stdout, "destination states"), (1, 1));
    // Not a terminal: plain progress lines, the last one at 100%, with rate and ETA.
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("store copy: ") && l.contains(" rows ("))
        .unwrap_or_else(|| panic!("no progress line in {stderr}"));
    assert!(last.contains("2543/2543 rows (100%)"), "{stderr}");
    assert!(last.contains("rows/s, ETA"), "{last}");
    assert!(stderr.contains("every row written"), "{stderr}");

    // The copy answers as the original.
    let (src_cfg, dst_cfg) = (dir.config(&src), dir.config(&dst));
    for args in [
        vec!["status", "--json", "--config"],
        vec!["events", "show", "m7", "--json", "--config"],
        vec!["events", "show", "m2", "--json", "--config"],
    ] {
        let a = run(&[args.as_slice(), &[src_cfg.to_str().expect("path")]].concat());
        let b = run(&[args.as_slice(), &[dst_cfg.to_str().expect("path")]].concat());
        assert!(a.status.success(), "{}", text(&a.stderr));
        assert_eq!(text(&a.stdout), text(&b.stdout), "{args:?}");
    }
    let status = text(&run(&["status", "--config", dst_cfg.to_str().expect("path")]).stdout);
    assert!(status.contains("paused"), "{status}");

    // Again into the same target: refused, untouched; allowed with the flag.
    let again = run(&["store", "copy", "--from", &url(&src), "--to", &url(&dst)]);
    assert_eq!(again.status.code(), Some(2));
    let err = text(&again.stderr);
    assert!(err.contains("the target is not empty"), "{err}");
    assert!(err.contains("--allow-non-empty"), "{err}");
    let allowed = run(&[
        "store",
        "copy",
        "--from",
        &url(&src),
        "--to",
        &url(&dst),
        "--allow-non-empty",
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert_eq!(counts_of(&text(&allowed.stdout), "events"), (2500, 2500));

    // The same file on both sides.
    let same = run(&["store", "copy", "--from", &url(&src), "--to", &url(&src)]);
    assert_eq!(same.status.code(), Some(2));
    assert!(
        text(&same.stderr).contains("--from and --to name the same database"),
        "{}",
        text(&same.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_or_missing_source_is_refused() {
    let dir = Dir::new("old");
    let src = dir.path("old.db");
    make_source(&src, 10).await;
    let conn = rusqlite::Connection::open(&src).expect("open");
    conn.execute("UPDATE schema_version SET version = version - 1", [])
        .expect("downgrade");
    drop(conn);
    let out = run(&[
        "store",
        "copy",
        "--from",
        &url(&src),
        "--to",
        &url(&dir.path("new.db")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&src.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains("older than this program's"), "{err}");
    assert!(
        err.contains("iterable-lists serve"),
        "says what to do: {err}"
    );
    assert!(!dir.path("new.db").exists(), "nothing created: {err}");

    let missing = dir.path("missing.db");
    let out = run(&[
        "store",
        "copy",
        "--from",
        &url(&missing),
        "--to",
        &url(&dir.path("x.db")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("no database at {}", missing.display())),
        "{err}"
    );
    assert!(!missing.exists());
}

/// The statuses of `event_audiences` as the store shows them: a row still `accepted` or
/// `pending` whose key's desired row is delivered at its seq and part was delivered at the
/// desired row's `ack_ms` (SQLite keeps the common delivery with the desired row alone), and a
/// copy writes it so.
const SHOWN_EVENT_AUDIENCES: &str = "(SELECT seq, part, list_key, email, user_id, member,
     time_ms, CASE WHEN dm IS NULL THEN status ELSE 'delivered' END AS status,
     CASE WHEN dm IS NULL THEN reason END AS reason,
     CASE WHEN dm IS NULL THEN next_attempt_ms END AS next_attempt_ms,
     COALESCE(dm, updated_ms) AS updated_ms
     FROM (SELECT ea.*, (SELECT d.ack_ms FROM desired d JOIN events e ON e.seq = ea.seq
             WHERE ea.status IN ('accepted', 'pending') AND d.destination = e.destination
               AND d.list_key = ea.list_key AND d.email = ea.email
               AND d.user_id = ea.user_id AND d.seq = ea.seq AND d.part = ea.part
               AND d.state = 'delivered') AS dm
           FROM event_audiences ea))";

/// Every row of the tables a copy moves, as text, table by table in key order (the event
/// log's statuses as shown).
fn dump(db: &Path) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    [
        ("lists", "lists", "destination, audience_key"),
        ("destination_state", "destination_state", "destination"),
        (
            "desired",
            "desired",
            "destination, list_key, email, user_id",
        ),
        ("events", "events", "seq"),
        ("event_audiences", SHOWN_EVENT_AUDIENCES, "seq, part"),
        ("ignored_settings", "ignored_settings", "seq, setting"),
    ]
    .into_iter()
    .map(|(table, rows, key)| {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {rows} ORDER BY {key}"))
            .expect("prepare");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(cells.join("|"))
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        (table.to_string(), rows)
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_keeps_every_row() {
    let dir = Dir::new("pg");
    let (src, back) = (dir.path("source.db"), dir.path("back.db"));
    make_source(&src, 1200).await;
    let schema = testkit::postgres::PgSchema::create("store_copy");
    let pg = schema.url();
    for (from, to) in [(url(&src), pg.clone()), (pg.clone(), url(&back))] {
        let out = run(&[
            "store",
            "copy",
            "--from",
            &from,
            "--to",
            &to,
            "--batch-rows",
            "250",
        ]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{from} -> {to}: {}",
            text(&out.stderr)
        );
        assert_eq!(counts_of(&stdout, "events"), (1200, 1200), "{stdout}");
        assert_eq!(counts_of(&stdout, "desired"), (40, 40), "{stdout}");
    }
    let (a, b) = (dump(&src), dump(&back));
    for ((table, rows_a), (_, rows_b)) in a.iter().zip(&b) {
        assert_eq!(rows_a, rows_b, "{table}");
    }
    assert_eq!(a.iter().map(|(_, r)| r.len()).sum::<usize>(), 2443);

    // PostgreSQL holds rows now: a second copy into it is refused.
    let again = run(&["store", "copy", "--from", &url(&src), "--to", &pg]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("the target is not empty"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn passwords_are_never_printed() {
    let dir = Dir::new("secret");
    let src = dir.path("none.db");
    // An unreachable server (port 1): the error names it, without the password.
    for (from, to) in [
        (
            "postgres://app:s3cr3t-pw@127.0.0.1:1/lists".to_string(),
            url(&dir.path("x.db")),
        ),
        (
            url(&src),
            "postgres://app:s3cr3t-pw@127.0.0.1:1/lists".to_string(),
        ),
    ] {
        std::fs::write(&src, b"").expect("touch");
        let out = run(&["store", "copy", "--from", &from, "--to", &to]);
        assert_eq!(out.status.code(), Some(2));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("s3cr3t-pw"), "{all}");
    }
}
