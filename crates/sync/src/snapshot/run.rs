//! The driver of a snapshot: the file is parsed on a blocking thread and its rows go, in
//! batches of [`FEED_BATCH`] through a channel of a few batches, to the store's
//! [`crate::Engine::apply_snapshot`], which stages them as they come; so memory holds a few
//! batches whatever the size of the file. Bad rows are counted, the first [`BAD_KEPT`] kept
//! with their line, and all written to the diff when there is one.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};

use super::{
    BAD_KEPT, BadRow, DiffOp, DiffRow, DiffSink, FEED_BATCH, Feed, Format, ParseError, Row,
    SnapshotDiff, SnapshotSpec, StagedRow, read_rows,
};
use crate::store::{Identity, Store, StoreError};

/// What a running snapshot has done so far, for progress displays.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the input read (compressed, if it is).
    pub bytes: AtomicU64,
    /// Rows read (good and bad).
    pub rows: AtomicU64,
    /// Every row was read: the store is diffing and writing.
    pub read_all: AtomicBool,
}

/// Why a snapshot was not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cancelled: nothing was applied")]
    Cancelled,
    #[error("the snapshot's reader failed: {0}")]
    Task(String),
}

/// The result of a snapshot run.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotReport {
    pub destination: String,
    pub audience_key: String,
    pub message_id: String,
    pub time_ms: i64,
    pub dry_run: bool,
    /// Rows read (good, bad and repeated).
    pub rows: u64,
    /// Bad rows, repeated identities included.
    pub bad_rows: u64,
    /// The first [`BAD_KEPT`] of them, by line.
    pub bad: Vec<BadRow>,
    pub diff: SnapshotDiff,
}

struct Counting<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the reader found besides the members.
struct ReadOutcome {
    rows: u64,
    bad_rows: u64,
    bad: Vec<BadRow>,
}

/// Reads `input` and feeds the rows to `tx`, then the end with `diff`.
fn feed(
    input: impl Read,
    format: Format,
    mut diff: Option<Box<dyn DiffSink>>,
    tx: tokio::sync::mpsc::Sender<Feed>,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<ReadOutcome, RunError> {
    let rows = read_rows(input, format)?;
    let mut out = ReadOutcome {
        rows: 0,
        bad_rows: 0,
        bad: Vec::new(),
    };
    let mut batch = Vec::with_capacity(FEED_BATCH);
    for row in rows {
        if cancel.load(Ordering::Relaxed) {
            return Err(RunError::Cancelled);
        }
        out.rows += 1;
        progress.rows.fetch_add(1, Ordering::Relaxed);
        match row? {
            Row::Member(m) => {
                let data_fields = m.data_fields.map(|f| Value::Object(f).to_string());
                batch.push(StagedRow {
                    email: m.identity.email.unwrap_or_default(),
                    user_id: m.identity.user_id.unwrap_or_default(),
                    data_fields,
                    line: m.line,
                });
            }
            Row::Bad(b) => {
                out.bad_rows += 1;
                if let Some(sink) = diff.as_deref_mut() {
                    sink.row(&DiffRow {
                        op: DiffOp::Bad,
                        email: "",
                        user_id: "",
                        member: None,
                        data_fields: None,
                        line: Some(b.line),
                        reason: Some(&b.reason),
                    })
                    .map_err(|e| RunError::Task(format!("cannot write the diff: {e}")))?;
                }
                if out.bad.len() < BAD_KEPT {
                    out.bad.push(b);
                }
            }
        }
        if batch.len() == FEED_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(FEED_BATCH));
            if tx.blocking_send(Feed::Rows(full)).is_err() {
                // The store stopped (it says why).
                return Ok(out);
            }
        }
    }
    if !batch.is_empty() && tx.blocking_send(Feed::Rows(batch)).is_err() {
        return Ok(out);
    }
    progress.read_all.store(true, Ordering::Relaxed);
    let _ = tx.blocking_send(Feed::End {
        bad_rows: out.bad_rows,
        diff,
    });
    Ok(out)
}

/// Applies the snapshot `input` (see [`crate::Engine::apply_snapshot`]) and reports. Setting
/// `cancel` stops it with nothing applied (unless the store is committing already).
pub async fn run_snapshot<R: Read + Send + 'static>(
    store: &Store,
    spec: SnapshotSpec,
    input: R,
    format: Format,
    diff: Option<Box<dyn DiffSink>>,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
) -> Result<SnapshotReport, RunError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reader_progress = progress.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let input = Counting {
            inner: input,
            progress: reader_progress.clone(),
        };
        feed(input, format, diff, tx, &reader_progress, &cancel)
    });
    let applied = store.apply_snapshot(&spec, rx).await;
    let read = reader.await.map_err(|e| RunError::Task(e.to_string()))?;
    // The reader's failure is the cause when both failed (the store saw its rows end early).
    let read = read?;
    let diff = applied?;
    let mut bad = read.bad;
    for line in &diff.duplicate_lines {
        if bad.len() >= BAD_KEPT {
            break;
        }
        bad.push(BadRow {
            line: *line,
            reason: "repeats the email and userId of an earlier row (the first counts)".into(),
        });
    }
    bad.sort_by_key(|b| b.line);
    Ok(SnapshotReport {
        destination: spec.destination,
        audience_key: spec.audience_key,
        message_id: spec.message_id,
        time_ms: spec.time_ms,
        dry_run: spec.policy.dry_run,
        rows: read.rows,
        bad_rows: read.bad_rows + diff.duplicates,
        bad,
        diff,
    })
}

fn ids(v: &[Identity]) -> Value {
    Value::Array(
        v.iter()
            .map(|i| {
                let mut o = serde_json::Map::new();
                if let Some(e) = &i.email {
                    o.insert("email".into(), e.clone().into());
                }
                if let Some(u) = &i.user_id {
                    o.insert("userId".into(), u.clone().into());
                }
                Value::Object(o)
            })
            .collect(),
    )
}

fn shown(i: &Identity) -> String {
    match (&i.email, &i.user_id) {
        (Some(e), Some(u)) => format!("{e} ({u})"),
        (Some(e), None) => e.clone(),
        (None, Some(u)) => format!("userId {u}"),
        (None, None) => "?".into(),
    }
}

impl SnapshotReport {
    /// The report as JSON (`--json`, the HTTP answer).
    pub fn to_json(&self) -> Value {
        let d = &self.diff;
        json!({
            "destination": self.destination,
            "audience": self.audience_key,
            "messageId": if d.applied { Value::from(self.message_id.clone()) } else { Value::Null },
            "timeMs": self.time_ms,
            "dryRun": self.dry_run,
            "applied": d.applied,
            "rows": self.rows,
            "members": d.members,
            "currentMembers": d.current_members,
            "adds": d.adds,
            "removes": d.removes,
            "unchanged": d.unchanged,
            "keptNewer": d.kept_newer,
            "badRows": self.bad_rows,
            "bad": self.bad.iter().map(|b| json!({"line": b.line, "reason": b.reason})).collect::<Vec<_>>(),
            "samples": {
                "adds": ids(&d.samples.adds),
                "removes": ids(&d.samples.removes),
                "unchanged": ids(&d.samples.unchanged),
                "keptNewer": ids(&d.samples.kept_newer),
            },
            "refused": d.refused.as_ref().map(|r| r.to_json()),
        })
    }

    /// The report as text, for a terminal.
    pub fn to_text(&self) -> String {
        let d = &self.diff;
        let what = if self.dry_run {
            "dry run, nothing written"
        } else if d.applied {
            "applied"
        } else if d.refused.is_some() {
            "refused, nothing written"
        } else {
            "nothing to change"
        };
        let mut out = format!(
            "audience {:?} of destination {:?} ({what}): {} rows read, {} members; \
             {} adds, {} removes, {} unchanged, {} kept (newer live changes), {} bad rows; \
             {} current members before\n",
            self.audience_key,
            self.destination,
            self.rows,
            d.members,
            d.adds,
            d.removes,
            d.unchanged,
            d.kept_newer,
            self.bad_rows,
            d.current_members
        );
        for (label, list) in [
            ("adds", &d.samples.adds),
            ("removes", &d.samples.removes),
            ("unchanged", &d.samples.unchanged),
            ("kept", &d.samples.kept_newer),
        ] {
            if !list.is_empty() {
                let names: Vec<String> = list.iter().map(shown).collect();
                out.push_str(&format!("  e.g. {label}: {}\n", names.join(", ")));
            }
        }
        for b in self.bad.iter().take(super::SAMPLE) {
            out.push_str(&format!("  bad row, line {}: {}\n", b.line, b.reason));
        }
        if self.bad.len() > super::SAMPLE || self.bad_rows > self.bad.len() as u64 {
            out.push_str(&format!(
                "  ... {} bad rows in all (--json lists the first {BAD_KEPT}; --diff-out all)\n",
                self.bad_rows
            ));
        }
        if d.applied {
            out.push_str(&format!(
                "logged as event {:?} (iterable-lists events show {:?})\n",
                self.message_id, self.message_id
            ));
        }
        if let Some(r) = &d.refused {
            let how = if self.dry_run {
                "would be refused"
            } else {
                "refused"
            };
            out.push_str(&format!("{how}: {r}\n"));
        }
        out
    }
}
