//! Conformance cases of full audience snapshots (`apply_snapshot`): a snapshot fills an
//! audience and a second one makes exactly its entries and exits; a newer live change wins
//! over the snapshot and an older one loses; a dry run, a refusal and a cancelled feed write
//! nothing; repeated identities are counted with their lines.

use std::io::Cursor;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use sync::snapshot::{
    DiffRow, DiffSink, Feed, Format, Policy, Progress, RunError, SnapshotReport, SnapshotSpec,
    StagedRow, run_snapshot,
};

use super::*;

const A: &str = "snap_aud";

fn spec(time_ms: i64, message_id: &str, policy: Policy) -> SnapshotSpec {
    SnapshotSpec {
        destination: D.into(),
        audience_key: A.into(),
        time_ms,
        received_ms: NOW,
        message_id: message_id.into(),
        settings: ChangeSettings::default(),
        policy,
    }
}

async fn snap(s: &Store, time_ms: i64, id: &str, csv: &str, policy: Policy) -> SnapshotReport {
    try_snap(s, time_ms, id, csv, policy)
        .await
        .unwrap_or_else(|e| panic!("snapshot {id}: {e}"))
}

/// Collects the diff as `op email member` lines.
struct Collect(Arc<Mutex<Vec<String>>>);

impl DiffSink for Collect {
    fn row(&mut self, r: &DiffRow<'_>) -> std::io::Result<()> {
        let line = format!(
            "{} {}{} {:?}",
            r.op.as_str(),
            r.email,
            r.line.map(|l| format!("line {l}")).unwrap_or_default(),
            r.member
        );
        self.0.lock().expect("diff").push(line);
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn try_snap(
    s: &Store,
    time_ms: i64,
    id: &str,
    csv: &str,
    policy: Policy,
) -> Result<SnapshotReport, RunError> {
    try_snap_diff(s, time_ms, id, csv, policy, None).await
}

async fn try_snap_diff(
    s: &Store,
    time_ms: i64,
    id: &str,
    csv: &str,
    policy: Policy,
    diff: Option<Box<dyn DiffSink>>,
) -> Result<SnapshotReport, RunError> {
    run_snapshot(
        s,
        spec(time_ms, id, policy),
        Cursor::new(csv.as_bytes().to_vec()),
        Format::Csv,
        diff,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
}

/// The audience's desired membership (nothing was delivered, so every key is pending), with
/// each key's data fields.
async fn desired(s: &Store) -> BTreeMap<String, (bool, Option<Value>)> {
    s.pending(D, A, NOW + 1_000_000, 10_000)
        .await
        .expect("pending")
        .into_iter()
        .map(|p| {
            (
                p.identity.email.unwrap_or_default(),
                (p.member, p.data_fields.map(Value::Object)),
            )
        })
        .collect()
}

/// The maintained figures equal the ones counted from every row.
async fn figures_agree(s: &Store) {
    let (lists, events) = s.recount(D).await.expect("recount");
    assert_eq!(s.list_counts(D).await.expect("list_counts"), lists);
    assert_eq!(s.event_counts(D).await.expect("event_counts"), events);
}

fn members(m: &BTreeMap<String, (bool, Option<Value>)>) -> Vec<&str> {
    m.iter()
        .filter(|(_, (member, _))| *member)
        .map(|(e, _)| e.as_str())
        .collect()
}

pub async fn a_snapshot_fills_an_audience_and_the_next_makes_exactly_its_changes(h: &dyn Harness) {
    let s = h.open("snapshot-fill");
    let first = snap(
        &s,
        NOW,
        "snap-1",
        "email,plan\na@x.io,gold\nB@x.io,\nc@x.io,silver\n",
        Policy::default(),
    )
    .await;
    assert!(first.diff.applied, "{first:?}");
    assert_eq!(
        (first.diff.adds, first.diff.removes, first.diff.unchanged),
        (3, 0, 0)
    );
    let d = desired(&s).await;
    assert_eq!(members(&d), ["a@x.io", "b@x.io", "c@x.io"]);
    assert_eq!(d["a@x.io"].1, Some(json!({"plan": "gold"})));
    assert_eq!(d["b@x.io"].1, None);
    assert_eq!(kinds(&s, "snap-1").await, vec![StatusKind::Accepted; 3]);
    figures_agree(&s).await;

    // A second snapshot: b and c stay, a leaves, d enters.
    let second = snap(
        &s,
        NOW + 1000,
        "snap-2",
        "email\nb@x.io\nc@x.io\nd@x.io\n",
        Policy {
            max_removal_ratio: 0.5,
            ..Policy::default()
        },
    )
    .await;
    let sd = &second.diff;
    assert!(sd.applied, "{second:?}");
    assert_eq!(
        (sd.current_members, sd.adds, sd.removes, sd.unchanged),
        (3, 1, 1, 2)
    );
    assert_eq!(sd.samples.adds, vec![id("d@x.io")]);
    assert_eq!(sd.samples.removes, vec![id("a@x.io")]);
    let d = desired(&s).await;
    assert_eq!(members(&d), ["b@x.io", "c@x.io", "d@x.io"]);
    assert!(!d["a@x.io"].0);
    // a's first change was pending: it is superseded by the second snapshot.
    let first_statuses = kinds(&s, "snap-1").await;
    assert_eq!(
        first_statuses
            .iter()
            .filter(|k| **k == StatusKind::Superseded)
            .count(),
        1
    );
    assert_eq!(kinds(&s, "snap-2").await, vec![StatusKind::Accepted; 2]);
    figures_agree(&s).await;

    // The same snapshot again changes nothing and logs no event.
    let again = snap(
        &s,
        NOW + 2000,
        "snap-3",
        "email\nb@x.io\nc@x.io\nd@x.io\n",
        Policy::default(),
    )
    .await;
    assert!(!again.diff.applied);
    assert_eq!(
        (again.diff.adds, again.diff.removes, again.diff.unchanged),
        (0, 0, 3)
    );
    assert!(s.event_status(D, "snap-3").await.expect("status").is_none());
}

pub async fn a_newer_live_change_wins_over_a_snapshot_and_an_older_one_loses(h: &dyn Harness) {
    let s = h.open("snapshot-latest");
    let t = NOW;
    for (msg, email, member, time) in [
        ("x-exit-newer", "x@x.io", false, t + 10),
        ("y-enter-older", "y@x.io", true, t - 10),
        ("z-enter-newer", "z@x.io", true, t + 10),
        ("w-enter-older", "w@x.io", true, t - 5),
        ("v-exit-older", "v@x.io", false, t - 5),
    ] {
        accept1(&s, event(msg, vec![change(A, email, member, Some(time))])).await;
    }
    let csv = "email\nx@x.io\ny@x.io\nv@x.io\nbad\n";
    let policy = Policy {
        allow_mass_removal: true,
        max_bad_ratio: 0.5,
        ..Policy::default()
    };
    // The full diff of a dry run: entries, exits, kept newer changes (with their live state)
    // and bad rows.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dry = try_snap_diff(
        &s,
        t,
        "snap-race-dry",
        csv,
        Policy {
            dry_run: true,
            ..policy
        },
        Some(Box::new(Collect(lines.clone()))),
    )
    .await
    .expect("dry run");
    assert!(!dry.diff.applied);
    let mut lines = lines.lock().expect("diff").clone();
    lines.sort();
    assert_eq!(
        lines,
        [
            "add v@x.io None",
            "bad line 5 None",
            "keep_newer x@x.io Some(false)",
            "keep_newer z@x.io Some(true)",
            "remove w@x.io None",
        ]
    );
    let r = snap(&s, t, "snap-race", csv, policy).await;
    let d = &r.diff;
    assert!(d.applied, "{r:?}");
    // v enters (its exit is older); w leaves (its entry is older); y stays; x's newer exit
    // and z's newer entry are kept.
    assert_eq!((d.adds, d.removes, d.unchanged, d.kept_newer), (1, 1, 1, 2));
    let m = desired(&s).await;
    assert_eq!(members(&m), ["v@x.io", "y@x.io", "z@x.io"]);
    // The older live changes that were pending are superseded; the newer ones are not.
    assert_eq!(kinds(&s, "w-enter-older").await, [StatusKind::Superseded]);
    assert_eq!(kinds(&s, "v-exit-older").await, [StatusKind::Superseded]);
    assert_eq!(kinds(&s, "x-exit-newer").await, [StatusKind::Accepted]);
    // A live change older than the snapshot, arriving after it, is stale for the keys the
    // snapshot wrote.
    let late = accept1(
        &s,
        event("w-late", vec![change(A, "w@x.io", true, Some(t - 1))]),
    )
    .await;
    assert!(
        matches!(&late, Receipt::Accepted { changes, .. } if changes == &[Applied::Stale]),
        "{late:?}"
    );
    // A newer one wins.
    accept1(
        &s,
        event("w-newer", vec![change(A, "w@x.io", true, Some(t + 1))]),
    )
    .await;
    assert!(desired(&s).await["w@x.io"].0);
    figures_agree(&s).await;
}

pub async fn a_dry_run_a_refusal_and_a_cancelled_feed_write_nothing(h: &dyn Harness) {
    let s = h.open("snapshot-guard");
    let initial = "email\na@x.io\nb@x.io\nc@x.io\nd@x.io\n";
    snap(&s, NOW, "snap-0", initial, Policy::default()).await;
    let before = (desired(&s).await, s.table_counts().await.expect("counts"));

    // Dry run: the figures, nothing written.
    let dry = snap(
        &s,
        NOW + 1,
        "snap-dry",
        "email\na@x.io\ne@x.io\n",
        Policy {
            dry_run: true,
            allow_mass_removal: true,
            ..Policy::default()
        },
    )
    .await;
    assert_eq!(
        (
            dry.diff.adds,
            dry.diff.removes,
            dry.diff.unchanged,
            dry.diff.applied
        ),
        (1, 3, 1, false)
    );
    // The guard: emptying the list is refused with the numbers.
    let refused = snap(&s, NOW + 2, "snap-empty", "email\n", Policy::default()).await;
    let why = refused.diff.refused.expect("refused");
    assert_eq!(why.code(), "mass_removal");
    assert!(
        why.to_string().contains("remove 4 of the audience's 4"),
        "{why}"
    );
    // A feed that closes before its end: cancelled.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(Feed::Rows(vec![StagedRow {
        email: "z@x.io".into(),
        user_id: String::new(),
        data_fields: None,
        line: 2,
    }]))
    .await
    .expect("send");
    drop(tx);
    let spec = spec(NOW + 3, "snap-cancelled", Policy::default());
    let err = s.apply_snapshot(&spec, rx).await.expect_err("cancelled");
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert_eq!(
        (desired(&s).await, s.table_counts().await.expect("counts")),
        before
    );
    for msg in ["snap-dry", "snap-empty", "snap-cancelled"] {
        assert!(s.event_status(D, msg).await.expect("status").is_none());
    }

    // With the override, the empty snapshot empties the list.
    let forced = snap(
        &s,
        NOW + 4,
        "snap-forced",
        "email\n",
        Policy {
            allow_mass_removal: true,
            ..Policy::default()
        },
    )
    .await;
    assert!(
        forced.diff.applied && forced.diff.removes == 4,
        "{forced:?}"
    );
    assert!(members(&desired(&s).await).is_empty());
    figures_agree(&s).await;
}

pub async fn repeated_and_bad_rows_are_counted_with_their_lines(h: &dyn Harness) {
    let s = h.open("snapshot-bad");
    let csv = "email,userId\na@x.io,\nnot-an-email,\na@x.io,\nb@x.io,u2\n";
    let r = snap(
        &s,
        NOW,
        "snap-bad",
        csv,
        Policy {
            max_bad_ratio: 0.5,
            ..Policy::default()
        },
    )
    .await;
    assert_eq!((r.rows, r.diff.members, r.bad_rows), (4, 2, 2));
    let lines: Vec<u64> = r.bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [3, 4]);
    assert!(r.bad[1].reason.contains("repeats"), "{:?}", r.bad);
    // Over the allowed share: refused, nothing written.
    let strict = snap(&s, NOW + 1, "snap-strict", csv, Policy::default()).await;
    assert_eq!(
        strict.diff.refused.map(|r| r.code()),
        Some("too_many_bad_rows")
    );
    // A header without an identity column stops the snapshot before anything is staged.
    let err = try_snap(&s, NOW + 2, "snap-header", "name\nann\n", Policy::default())
        .await
        .expect_err("no identity column");
    assert!(
        err.to_string().contains("no email or userId column"),
        "{err}"
    );
    assert_eq!(members(&desired(&s).await), ["a@x.io", "b@x.io"]);
}

/// The reason of `message_id`'s (only) change.
async fn reason(s: &Store, message_id: &str) -> String {
    status(s, message_id)
        .await
        .into_iter()
        .next()
        .and_then(|(_, r)| r)
        .unwrap_or_default()
}

pub async fn a_live_change_older_than_a_snapshot_is_superseded_whatever_its_key(h: &dyn Harness) {
    let s = h.open("snapshot-floor");
    // A second instance on the same database: it accepted for the audience before the
    // snapshot (so it knows it had no floor), and must see the floor the first one raises.
    let other = h.open("snapshot-floor");
    let t = NOW;
    accept1(
        &s,
        event(
            "kept-enter",
            vec![change(A, "kept@x.io", true, Some(t - 100))],
        ),
    )
    .await;
    accept1(
        &other,
        event(
            "gone-enter",
            vec![change(A, "gone@x.io", true, Some(t - 100))],
        ),
    )
    .await;
    let policy = Policy {
        allow_mass_removal: true,
        ..Policy::default()
    };
    let r = snap(&s, t, "snap-floor", "email\nkept@x.io\n", policy).await;
    // kept@ was a member already and stays one: the snapshot writes nothing for it.
    assert_eq!((r.diff.adds, r.diff.removes, r.diff.unchanged), (0, 1, 1));
    let before = desired(&s).await;
    assert_eq!(members(&before), ["kept@x.io"]);

    // Older than the snapshot, arriving after it: (a) a key it kept, (b) a key it never named
    // (and which was never desired), on either instance. Both superseded, nothing changes.
    for (store, msg, email, member) in [
        (&s, "late-kept-exit", "kept@x.io", false),
        (&other, "late-absent-enter", "absent@x.io", true),
        (&other, "late-kept-exit-2", "kept@x.io", false),
        (&s, "late-absent-enter-2", "absent@x.io", true),
    ] {
        let r = accept1(
            store,
            event(msg, vec![change(A, email, member, Some(t - 1))]),
        )
        .await;
        assert!(
            matches!(&r, Receipt::Accepted { changes, .. } if changes == &[Applied::Stale]),
            "{msg}: {r:?}"
        );
        assert_eq!(kinds(&s, msg).await, [StatusKind::Superseded], "{msg}");
        let why = reason(&s, msg).await;
        assert!(
            why.contains("\"snap-floor\"") && why.contains("2023-11-14T22:13:20.000Z"),
            "{msg}: {why}"
        );
    }
    assert_eq!(desired(&s).await, before);
    // Another audience has no floor: an old event applies there.
    let r = accept1(
        &s,
        event(
            "other-aud",
            vec![change("no_snapshot", "a@x.io", true, Some(1))],
        ),
    )
    .await;
    assert!(
        matches!(&r, Receipt::Accepted { changes, .. } if changes == &[Applied::Current]),
        "{r:?}"
    );

    // A snapshot older than the floor does not lower it.
    snap(&other, t - 50, "snap-older", "email\nkept@x.io\n", policy).await;
    accept1(
        &s,
        event(
            "late-30",
            vec![change(A, "absent@x.io", true, Some(t - 30))],
        ),
    )
    .await;
    assert_eq!(kinds(&s, "late-30").await, [StatusKind::Superseded]);

    // Newer than the snapshot: it applies, on either instance.
    accept1(
        &other,
        event(
            "newer-absent",
            vec![change(A, "absent@x.io", true, Some(t + 1))],
        ),
    )
    .await;
    accept1(
        &s,
        event(
            "newer-kept",
            vec![change(A, "kept@x.io", false, Some(t + 1))],
        ),
    )
    .await;
    assert_eq!(kinds(&s, "newer-absent").await, [StatusKind::Accepted]);
    assert_eq!(kinds(&s, "newer-kept").await, [StatusKind::Accepted]);
    assert_eq!(members(&desired(&s).await), ["absent@x.io"]);
    figures_agree(&s).await;
}

/// A live change delivered by the part the reconciler gives (which SQLite writes to the key's
/// desired row alone), then removed by a snapshot: its event stays delivered, at its time.
pub async fn a_delivery_replaced_by_a_snapshot_stays_delivered(h: &dyn Harness) {
    let s = h.open("snapshot-delivered");
    let r = accept1(
        &s,
        event("live-1", vec![change(A, "a@x.io", true, Some(1))]),
    )
    .await;
    let row = outcome_row(id("a@x.io"), r.seq(), Some(0), Outcome::Delivered);
    s.record_outcomes(D, A, NOW - 50, vec![row])
        .await
        .expect("record");
    let policy = Policy {
        max_removal_ratio: 1.0,
        ..Policy::default()
    };
    let report = snap(&s, NOW + 1000, "snap-d", "email\nb@x.io\n", policy).await;
    assert_eq!(
        (report.diff.adds, report.diff.removes),
        (1, 1),
        "{report:?}"
    );
    let e = s
        .event_status(D, "live-1")
        .await
        .expect("status")
        .expect("known");
    let a = &e.audiences[0];
    assert_eq!(
        (a.status, a.reason.clone(), a.updated_ms),
        (StatusKind::Delivered, None, NOW - 50)
    );
    figures_agree(&s).await;
}
