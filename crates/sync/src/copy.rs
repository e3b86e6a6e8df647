//! Copying a whole store into another, whatever their engines (`iterable-lists store copy`):
//! the list registry, destination states, desired and acknowledged state, and the event log
//! with its statuses and ignored settings, exactly as stored.
//!
//! The source is read from one snapshot ([`crate::Engine::export`]) in batches by key; each
//! batch is written to the target in one transaction while the next one is read. Afterwards
//! the target rebuilds what it derives ([`crate::Engine::finish_import`]) and the rows per
//! table are counted on both sides: the copy succeeds only if the target holds what the
//! snapshot held, and if the source did not change meanwhile (a service still writing to it
//! would have accepted events that the copy lacks).

use tokio::sync::mpsc;

use crate::store::{CopyBatch, Store, StoreError, TableCounts};

/// Rows per batch when none is given: small enough to keep memory flat, large enough that a
/// transaction's commit costs little per row.
pub const DEFAULT_BATCH_ROWS: usize = 1000;

/// How to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Rows per batch and transaction (an event counts once, with its changes).
    pub batch_rows: usize,
    /// Copy into a target that holds rows already: rows of the same key are replaced, others
    /// kept (to run an interrupted copy again). Without it, such a target is refused.
    pub allow_non_empty: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            allow_non_empty: false,
        }
    }
}

/// Where a copy stands, after each batch written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The table of the last batch (`lists`, `destination states`, `desired`, `events`).
    pub table: &'static str,
    /// Rows written so far (an event counts once, with its changes and ignored settings).
    pub done: u64,
    /// Rows to write in all.
    pub total: u64,
}

/// What a copy found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows per table of the source's snapshot.
    pub source: TableCounts,
    /// Rows per table of the target before the copy.
    pub target_before: TableCounts,
    /// Rows per table of the target after it.
    pub target_after: TableCounts,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "the target is not empty ({}); copy into an empty database, or pass --allow-non-empty \
         to add to it (rows of the same key are replaced)",
        describe(.0)
    )]
    TargetNotEmpty(TableCounts),
    #[error("reading the source: {0}")]
    Source(#[source] StoreError),
    #[error("writing the target: {0}")]
    Target(#[source] StoreError),
    #[error("the target does not hold what the source held after the copy: {0}")]
    Mismatch(String),
    #[error(
        "the source changed while it was copied (its rows now: {}; copied: {}): something still \
         writes to it. Stop every service using it and copy again with --allow-non-empty",
        describe(.now),
        describe(.copied)
    )]
    SourceChanged {
        copied: TableCounts,
        now: TableCounts,
    },
}

/// `lists 3, destination states 1, ...` (the non-empty tables; `no rows` if none).
pub fn describe(c: &TableCounts) -> String {
    let parts: Vec<String> = c
        .tables()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    if parts.is_empty() {
        "no rows".into()
    } else {
        parts.join(", ")
    }
}

fn table_of(batch: &CopyBatch) -> &'static str {
    match batch {
        CopyBatch::Lists(_) => "lists",
        CopyBatch::DestinationStates(_) => "destination states",
        CopyBatch::Desired(_) => "desired",
        CopyBatch::Events(_) => "events",
    }
}

/// Copies everything of `source` into `target` (see the module doc), calling `progress`
/// after each batch.
pub async fn copy_store(
    source: &Store,
    target: &Store,
    options: CopyOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<CopyReport, CopyError> {
    let target_before = target.table_counts().await.map_err(CopyError::Target)?;
    if !target_before.is_empty() && !options.allow_non_empty {
        return Err(CopyError::TargetNotEmpty(target_before));
    }
    let mut export = source.export().await.map_err(CopyError::Source)?;
    let snapshot = export.counts().await.map_err(CopyError::Source)?;
    let total = snapshot.batch_rows();
    progress(Progress {
        table: "lists",
        done: 0,
        total,
    });
    // The next batch is read while one is written.
    let (tx, mut rx) = mpsc::channel::<Result<CopyBatch, StoreError>>(2);
    let batch_rows = options.batch_rows.max(1);
    let reader = tokio::spawn(async move {
        loop {
            let next = export.next_batch(batch_rows).await.transpose();
            let Some(next) = next else { break };
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                break;
            }
        }
    });
    let mut written = TableCounts::default();
    let mut done = 0;
    while let Some(batch) = rx.recv().await {
        let batch = batch.map_err(CopyError::Source)?;
        let (table, counts) = (table_of(&batch), batch.counts());
        done += batch.len() as u64;
        target.import(batch).await.map_err(CopyError::Target)?;
        written.add(&counts);
        progress(Progress { table, done, total });
    }
    reader.await.map_err(|e| {
        CopyError::Source(StoreError::Task {
            op: "export",
            message: e.to_string(),
        })
    })?;
    if written != snapshot {
        return Err(CopyError::Mismatch(format!(
            "the source's snapshot counted {} but its batches held {}",
            describe(&snapshot),
            describe(&written)
        )));
    }
    target.finish_import().await.map_err(CopyError::Target)?;
    let target_after = target.table_counts().await.map_err(CopyError::Target)?;
    verify(&snapshot, &target_before, &target_after)?;
    let now = source.table_counts().await.map_err(CopyError::Source)?;
    if now != snapshot {
        return Err(CopyError::SourceChanged {
            copied: snapshot,
            now,
        });
    }
    Ok(CopyReport {
        source: snapshot,
        target_before,
        target_after,
    })
}

/// Each table of the target holds the source's rows: exactly as many into an empty target;
/// into a non-empty one, at least the source's and at most the source's beside what was there.
fn verify(
    source: &TableCounts,
    before: &TableCounts,
    after: &TableCounts,
) -> Result<(), CopyError> {
    let mut wrong = Vec::new();
    for (((table, s), (_, b)), (_, a)) in source
        .tables()
        .into_iter()
        .zip(before.tables())
        .zip(after.tables())
    {
        let ok = if b == 0 { a == s } else { a >= s && a <= s + b };
        if !ok {
            wrong.push(format!(
                "{table}: the source has {s}, the target {a} (it had {b} before)"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(CopyError::Mismatch(wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: [u64; 6]) -> TableCounts {
        TableCounts {
            lists: n[0],
            destination_states: n[1],
            desired: n[2],
            events: n[3],
            event_changes: n[4],
            ignored_settings: n[5],
        }
    }

    #[test]
    fn verify_wants_exact_counts_in_an_empty_target() {
        let s = counts([1, 1, 5, 7, 8, 1]);
        assert!(verify(&s, &TableCounts::default(), &s).is_ok());
        let short = counts([1, 1, 5, 6, 8, 1]);
        let err = verify(&s, &TableCounts::default(), &short).unwrap_err();
        assert!(
            err.to_string()
                .contains("events: the source has 7, the target 6 (it had 0 before)"),
            "{err}"
        );
        let long = counts([1, 1, 6, 7, 8, 1]);
        assert!(verify(&s, &TableCounts::default(), &long).is_err());
    }

    #[test]
    fn verify_allows_rows_that_were_there_before() {
        let s = counts([1, 1, 5, 7, 8, 1]);
        let before = counts([1, 0, 2, 2, 2, 0]);
        // Every key of the target also in the source, or none of them: both in bounds.
        assert!(verify(&s, &before, &s).is_ok());
        assert!(verify(&s, &before, &counts([2, 1, 7, 9, 10, 1])).is_ok());
        assert!(verify(&s, &before, &counts([2, 1, 8, 9, 10, 1])).is_err());
        assert!(verify(&s, &before, &counts([1, 1, 4, 7, 8, 1])).is_err());
    }

    #[test]
    fn describe_names_the_non_empty_tables() {
        assert_eq!(describe(&TableCounts::default()), "no rows");
        assert_eq!(
            describe(&counts([2, 0, 0, 10, 12, 0])),
            "lists 2, events 10, event changes 12"
        );
    }
}
