//! Conformance cases of export and import (`store copy`): a copy holds every row exactly, the
//! store it makes works on as the original would, a non-empty target is refused unless allowed,
//! and an export reads one snapshot.

use sync::copy::{CopyError, CopyOptions, Progress, copy_store};
use sync::store::{CopyBatch, DesiredEntry, KeyState, PendingRow, TableCounts};

use super::*;

/// Fills `s` with one of everything a copy moves: multi-change, stale, rejected and skipped
/// events, ignored settings, data fields and settings, each outcome, failed tries, a second
/// destination, registry entries and destination states. Returns the seqs of `c1`..`c7`.
async fn fill(s: &Store) -> Vec<u64> {
    let mut with_fields = change("vip", "a@x.co", true, Some(10));
    let mut fields = Map::new();
    fields.insert("plan".into(), json!({"tier": "gold", "n": 1.5e-7}));
    with_fields.data_fields = Some(fields);
    with_fields.settings = ChangeSettings {
        update_existing_users_only: Some(true),
        channel_unsubscribe: None,
        campaign_id: Some(42),
    };
    with_fields.list_id = Some(9);
    let mut ignored = event(
        "c1",
        vec![with_fields, change("churn", "a@x.co", false, Some(10))],
    );
    ignored.ignored_settings = vec![IgnoredSetting {
        setting: SettingName::CampaignId,
        value: "\"x\"".into(),
        reason: "must be a whole positive number but it was a string".into(),
    }];
    let mut rejected = event("c5", vec![]);
    rejected.content = EventContent::Rejected("no email or userId".into());
    let mut skipped = event("c6", vec![]);
    skipped.content = EventContent::Skipped("not an audience event".into());
    let mut other = event(
        "c7",
        vec![MembershipChange {
            identity: Identity::new(None, Some("u-7")),
            ..change("vip", "", true, None)
        }],
    );
    other.destination = "staging".into();
    let rs = s
        .accept(vec![
            ignored,
            event("c2", vec![change("vip", "b@x.co", true, Some(10))]),
            event("c3", vec![change("vip", "c@x.co", true, Some(10))]),
            // Older than c1's change of a@x.co: stale, skipped.
            event("c4", vec![change("vip", "a@x.co", false, Some(5))]),
            rejected,
            skipped,
            other,
            event("c8", vec![change("vip", "d@x.co", true, Some(10))]),
        ])
        .await
        .expect("accept");
    let seqs: Vec<u64> = rs.iter().map(Receipt::seq).collect();
    s.record_outcomes(
        D,
        "vip",
        NOW + 1,
        vec![
            outcome(id("b@x.co"), seqs[1], Outcome::Delivered),
            outcome(
                id("c@x.co"),
                seqs[2],
                Outcome::Rejected {
                    reason: "invalidEmails".into(),
                },
            ),
            outcome(
                id("d@x.co"),
                seqs[7],
                Outcome::Superseded {
                    reason: "another row won".into(),
                },
            ),
        ],
    )
    .await
    .expect("record");
    s.record_outcomes(
        D,
        "churn",
        NOW + 2,
        vec![outcome(
            id("a@x.co"),
            seqs[0],
            Outcome::Retry {
                next_attempt_ms: NOW + 90_000,
                reason: "503".into(),
            },
        )],
    )
    .await
    .expect("record");
    let a = [(id("a@x.co"), seqs[0])];
    s.record_attempt(D, "vip", NOW + 3, &a, "timeout", Some(NOW + 4_000))
        .await
        .expect("attempt");
    // b@x.co leaves: the acknowledged version (member) stays while the desired one is pending.
    accept1(
        s,
        event("c9", vec![change("vip", "b@x.co", false, Some(20))]),
    )
    .await;
    s.put_list_id(D, "vip", 77).await.expect("put");
    s.put_list_id(D, "churn", 78).await.expect("put");
    s.put_list_id("staging", "vip", 79).await.expect("put");
    let paused = DestinationState::Paused {
        reason: "401 Invalid API key".into(),
        since_ms: NOW - 5,
    };
    s.set_destination_state(D, &paused, NOW + 5)
        .await
        .expect("state");
    s.set_destination_state("staging", &DestinationState::Running, NOW + 6)
        .await
        .expect("state");
    seqs
}

/// Every batch of a fresh export of `s`, in order, joined per table.
async fn everything(s: &Store) -> (TableCounts, Vec<CopyBatch>) {
    let mut export = s.export().await.expect("export");
    let counts = export.counts().await.expect("counts");
    let mut all: Vec<CopyBatch> = Vec::new();
    while let Some(batch) = export.next_batch(1000).await.expect("batch") {
        match (all.last_mut(), batch) {
            (Some(CopyBatch::Lists(a)), CopyBatch::Lists(b)) => a.extend(b),
            (Some(CopyBatch::DestinationStates(a)), CopyBatch::DestinationStates(b)) => a.extend(b),
            (Some(CopyBatch::Desired(a)), CopyBatch::Desired(b)) => a.extend(b),
            (Some(CopyBatch::Events(a)), CopyBatch::Events(b)) => a.extend(b),
            (_, b) => all.push(b),
        }
    }
    (counts, all)
}

async fn copy(from: &Store, to: &Store, options: CopyOptions) -> Result<Vec<Progress>, CopyError> {
    let mut seen = Vec::new();
    copy_store(from, to, options, &mut |p| seen.push(p))
        .await
        .map(|_| seen)
}

/// Two rows of each table per batch: every table takes several batches.
const SMALL: CopyOptions = CopyOptions {
    batch_rows: 2,
    allow_non_empty: false,
};

pub async fn a_copy_holds_every_row_exactly(h: &dyn Harness) {
    let source = h.open("copy-source");
    let seqs = fill(&source).await;
    let target = h.open("copy-target");
    let progress = copy(&source, &target, SMALL).await.expect("copy");
    let (counts, rows) = everything(&source).await;
    assert_eq!(
        counts,
        TableCounts {
            lists: 3,
            destination_states: 2,
            desired: 6,
            events: 9,
            event_changes: 10,
            ignored_settings: 1,
        }
    );
    assert_eq!(everything(&target).await, (counts, rows.clone()));
    assert_eq!(
        target.table_counts().await.expect("counts"),
        source.table_counts().await.expect("counts")
    );
    // Progress: from 0 to every row, counted as batches were written.
    let last = progress.last().expect("progress");
    assert_eq!((progress[0].done, last.done), (0, counts.batch_rows()));
    assert!(progress.iter().all(|p| p.total == counts.batch_rows()));
    assert!(progress.windows(2).all(|w| w[0].done <= w[1].done));
    // The exported state is exact: versions, statuses, attempts and acknowledged versions.
    let Some(CopyBatch::Desired(desired)) = rows.get(2) else {
        panic!("no desired rows in {rows:?}");
    };
    let key = |d: &&DesiredEntry| (d.audience_key.clone(), d.identity.clone());
    let find = |audience: &str, who: Identity| {
        desired
            .iter()
            .find(|d| key(d) == (audience.to_string(), who.clone()))
            .unwrap_or_else(|| panic!("no desired row {audience} {who:?}"))
    };
    let a = find("vip", id("a@x.co"));
    assert_eq!(
        (a.version.seq, a.version.time_ms, a.tries, a.list_id),
        (seqs[0], Some(10), 1, Some(9))
    );
    assert_eq!(a.settings.campaign_id, Some(42));
    let b = find("vip", id("b@x.co"));
    let ack = b.acknowledged.expect("b was acknowledged");
    assert_eq!(
        (ack.member, ack.version.seq, ack.at_ms),
        (true, seqs[1], NOW + 1)
    );
    assert!(!b.member, "b's desired version is the later leave");
    for (who, state) in [
        ("b@x.co", KeyState::Pending),
        ("c@x.co", KeyState::Rejected),
        ("d@x.co", KeyState::Superseded),
    ] {
        assert_eq!(find("vip", id(who)).state, state, "{who}");
    }
    let churn = find("churn", id("a@x.co"));
    assert_eq!(
        (
            churn.attempts,
            churn.next_attempt_ms,
            churn.reason.as_deref()
        ),
        (1, NOW + 90_000, Some("503"))
    );

    // The copy answers as the original: event stories, figures (as maintained and counted
    // again), pending work, the registry and the destination states.
    for m in ["c1", "c2", "c3", "c4", "c5", "c6", "c8", "c9"] {
        assert_eq!(
            target.event_status(D, m).await.expect("status"),
            source.event_status(D, m).await.expect("status"),
            "{m}"
        );
    }
    for d in [D, "staging"] {
        let counts = target.list_counts(d).await.expect("counts");
        assert_eq!(counts, source.list_counts(d).await.expect("counts"), "{d}");
        let events = target.event_counts(d).await.expect("counts");
        assert_eq!(events, source.event_counts(d).await.expect("counts"), "{d}");
        assert_eq!(target.recount(d).await.expect("recount"), (counts, events));
        assert_eq!(
            target.destination_state(d).await.expect("state"),
            source.destination_state(d).await.expect("state")
        );
        for at in [NOW, NOW + 4_000, NOW + 90_000] {
            for audience in ["vip", "churn"] {
                // The same rows; where each is kept (`row_id`) is the target's own.
                assert_eq!(
                    without_row_ids(target.pending(d, audience, at, 100).await.expect("pending")),
                    without_row_ids(source.pending(d, audience, at, 100).await.expect("pending")),
                    "{d} {audience} at {at}"
                );
            }
        }
    }
    assert_eq!(
        target.list_id("staging", "vip").await.expect("get"),
        Some(79)
    );

    // The copy goes on where the original stopped: duplicates are known, new events get
    // later sequence numbers, and outcomes of the copied pending rows apply.
    let dup = accept1(
        &target,
        event("c2", vec![change("vip", "b@x.co", true, Some(1))]),
    )
    .await;
    assert_eq!(dup, Receipt::Duplicate { seq: seqs[1] });
    let last = *seqs.iter().max().expect("seqs");
    let next = accept1(
        &target,
        event("c10", vec![change("vip", "e@x.co", true, None)]),
    )
    .await;
    assert!(next.seq() > last + 1, "{next:?} after {last}");
    let a_rows = [outcome(id("a@x.co"), seqs[0], Outcome::Delivered)];
    assert_eq!(
        target
            .record_outcomes(D, "vip", NOW + 10, a_rows.to_vec())
            .await
            .expect("record"),
        vec![Recorded::Applied]
    );
    assert_eq!(kinds(&target, "c1").await[0], StatusKind::Delivered);
}

pub async fn a_copy_refuses_a_non_empty_target_unless_allowed(h: &dyn Harness) {
    let source = h.open("copy-refuse-source");
    fill(&source).await;
    let target = h.open("copy-refuse-target");
    accept1(
        &target,
        event("t1", vec![change("vip", "z@x.co", true, None)]),
    )
    .await;
    let before = target.table_counts().await.expect("counts");
    match copy(&source, &target, SMALL).await {
        Err(CopyError::TargetNotEmpty(found)) => assert_eq!(found, before),
        other => panic!("a non-empty target was not refused: {other:?}"),
    }
    assert_eq!(
        target.table_counts().await.expect("counts"),
        before,
        "untouched"
    );

    // Allowed, and run twice (as after an interruption): the source's rows are there once,
    // the target's own rows kept.
    let allowed = CopyOptions {
        allow_non_empty: true,
        ..SMALL
    };
    let empty = h.open("copy-refuse-empty");
    copy(&source, &empty, allowed).await.expect("copy");
    copy(&source, &empty, allowed).await.expect("copy again");
    assert_eq!(everything(&empty).await, everything(&source).await);

    // The target's own event has the sequence number of the source's first: they collide,
    // and the target's event is left as it was.
    let err = copy(&source, &target, allowed).await.unwrap_err();
    assert!(
        matches!(err, CopyError::Target(_)),
        "colliding events must fail the copy: {err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("collides with another event"), "{message}");
    assert_eq!(kinds(&target, "t1").await, vec![StatusKind::Accepted]);
}

pub async fn an_export_reads_one_snapshot(h: &dyn Harness) {
    let source = h.open("copy-snapshot");
    fill(&source).await;
    let mut export = source.export().await.expect("export");
    let counts = export.counts().await.expect("counts");
    // Written after the export began: not seen by it.
    accept1(
        &source,
        event("late", vec![change("vip", "l@x.co", true, None)]),
    )
    .await;
    source.put_list_id(D, "late", 5).await.expect("put");
    let mut read = TableCounts::default();
    while let Some(batch) = export.next_batch(3).await.expect("batch") {
        assert!(batch.len() <= 3, "{batch:?}");
        read.add(&batch.counts());
    }
    assert_eq!(read, counts);
    assert_eq!(counts.events, 9);
    drop(export);

    // A copy that sees the source change under it fails, naming it.
    let target = h.open("copy-snapshot-target");
    let writer = source.clone();
    let mut written = false;
    let result = copy_store(&source, &target, SMALL, &mut |_| {
        if !written {
            written = true;
            accept1(&writer, event("later", vec![])).wait();
        }
    })
    .await;
    match result {
        Err(CopyError::SourceChanged { copied, now }) => {
            assert_eq!(now.events, copied.events + 1);
        }
        other => panic!("a changing source went unnoticed: {other:?}"),
    }
}

pub async fn a_copy_continues_past_every_sequence_it_names(h: &dyn Harness) {
    let source = h.open("copy-pruned");
    let rs = source
        .accept(vec![
            event("p1", vec![change("vip", "a@x.co", true, Some(1))]),
            event("p2", vec![change("vip", "b@x.co", true, Some(1))]),
        ])
        .await
        .expect("accept");
    let seqs: Vec<u64> = rs.iter().map(Receipt::seq).collect();
    let delivered = seqs
        .iter()
        .zip(["a@x.co", "b@x.co"])
        .map(|(s, who)| outcome(id(who), *s, Outcome::Delivered))
        .collect();
    source
        .record_outcomes(D, "vip", NOW, delivered)
        .await
        .expect("record");
    // Retention removes the delivered events; their versions stay in desired state.
    source.prune_events(i64::MAX, 100).await.expect("prune");
    let counts = source.table_counts().await.expect("counts");
    assert_eq!((counts.events, counts.desired), (0, 2));
    let target = h.open("copy-pruned-target");
    copy(&source, &target, SMALL).await.expect("copy");
    // A new event of a known key is newer than the acknowledged version it follows.
    let r = accept1(
        &target,
        event("p3", vec![change("vip", "b@x.co", false, Some(1))]),
    )
    .await;
    assert!(
        r.seq() > seqs[1],
        "{r:?} reuses a sequence number ({seqs:?})"
    );
    assert_eq!(
        r,
        Receipt::Accepted {
            seq: r.seq(),
            changes: vec![Applied::Current]
        }
    );
}

/// A delivery recorded by the part the reconciler gives (which SQLite writes to the key's
/// desired row alone) is exported as delivered, at its time: the copy shows it so on either
/// engine.
pub async fn a_delivery_is_exported_as_delivered(h: &dyn Harness) {
    let source = h.open("copy-delivered");
    let r = accept1(
        &source,
        event("x1", vec![change("vip", "a@x.co", true, Some(1))]),
    )
    .await;
    // A failed try first: the event is pending, with the error and the next try.
    let retry = Outcome::Retry {
        next_attempt_ms: NOW + 3,
        reason: "503".into(),
    };
    let rows = vec![outcome_row(id("a@x.co"), r.seq(), Some(0), retry)];
    source
        .record_outcomes(D, "vip", NOW + 1, rows)
        .await
        .expect("record");
    let row = outcome_row(id("a@x.co"), r.seq(), Some(0), Outcome::Delivered);
    source
        .record_outcomes(D, "vip", NOW + 7, vec![row])
        .await
        .expect("record");
    let (_, batches) = everything(&source).await;
    let changes: Vec<(StatusKind, Option<String>, Option<i64>, i64)> = batches
        .iter()
        .filter_map(|b| match b {
            CopyBatch::Events(events) => Some(events),
            _ => None,
        })
        .flatten()
        .flat_map(|e| &e.changes)
        .map(|c| (c.status, c.reason.clone(), c.next_attempt_ms, c.updated_ms))
        .collect();
    assert_eq!(changes, vec![(StatusKind::Delivered, None, None, NOW + 7)]);
}

/// A copy into a non-empty target that replaces a key whose delivery the target keeps with
/// the desired row alone (SQLite): the target's event still shows that delivery.
pub async fn an_import_over_a_kept_delivery_keeps_it_shown(h: &dyn Harness) {
    let target = h.open("copy-kept-target");
    let t = accept1(
        &target,
        event("t-a", vec![change("vip", "a@x.co", true, Some(1))]),
    )
    .await;
    let row = outcome_row(id("a@x.co"), t.seq(), Some(0), Outcome::Delivered);
    target
        .record_outcomes(D, "vip", NOW + 3, vec![row])
        .await
        .expect("record");
    // The source: a newer version of the same key, delivered, its events pruned (so no
    // sequence number collides with the target's).
    let source = h.open("copy-kept-source");
    let seqs: Vec<u64> = source
        .accept(vec![
            event("s-b", vec![change("vip", "b@x.co", true, Some(5))]),
            event("s-a", vec![change("vip", "a@x.co", true, Some(5))]),
        ])
        .await
        .expect("accept")
        .iter()
        .map(Receipt::seq)
        .collect();
    let rows = vec![
        outcome_row(id("b@x.co"), seqs[0], Some(0), Outcome::Delivered),
        outcome_row(id("a@x.co"), seqs[1], Some(0), Outcome::Delivered),
    ];
    source
        .record_outcomes(D, "vip", NOW + 9, rows)
        .await
        .expect("record");
    source.prune_events(i64::MAX, 100).await.expect("prune");
    let allowed = CopyOptions {
        allow_non_empty: true,
        ..SMALL
    };
    copy(&source, &target, allowed).await.expect("copy");
    assert_eq!(
        shown(&target, "t-a").await,
        (StatusKind::Delivered, None, None, NOW + 3)
    );
    let (_, events) = target.recount(D).await.expect("recount");
    assert_eq!(target.event_counts(D).await.expect("counts"), events);
}

/// `rows` without where the engine keeps them (each database numbers its own rows).
fn without_row_ids(mut rows: Vec<PendingRow>) -> Vec<PendingRow> {
    for r in &mut rows {
        r.row_id = None;
    }
    rows
}
