//! Full audience snapshots: a file (CSV or NDJSON, gzip or not) that names every member of an
//! audience, applied as one change set. Members in it that are not desired become entries,
//! desired members missing from it become exits, each with the snapshot's time as its
//! version, so that a newer live change still wins over it.
//!
//! - `floor`: an audience's snapshot floor: a live change older than the newest snapshot is
//!   superseded by it, whatever its key (pure; both engines record and check it).
//! - `parse`: reading the file into rows, with the bad ones counted by line (pure).
//! - `policy`: whether a diff may be applied: the mass-removal guard and the share of bad
//!   rows (pure).
//! - `run`: the driver: parses on a blocking thread and feeds the rows, in batches, to the
//!   store's [`crate::Engine::apply_snapshot`], which stages them, diffs them against the
//!   audience's desired rows and writes the changes in one transaction (or none).

mod floor;
mod parse;
mod policy;
mod run;

pub use floor::Floor;
pub use parse::{BadRow, Format, MAX_ROW_BYTES, ParseError, Row, SnapshotMember, read_rows};
pub use policy::{DEFAULT_MAX_BAD_RATIO, Figures, Policy, Refusal};
pub use run::{Progress, RunError, SnapshotReport, run_snapshot};

use crate::store::{ChangeSettings, Identity, Seq};

/// Rows per batch handed from the parser to the store.
pub const FEED_BATCH: usize = 10_000;

/// Identities kept as examples of each kind of difference, and bad rows kept with their line.
pub const SAMPLE: usize = 10;

/// Bad rows (and repeated identities) kept with their line number and reason in a report.
pub const BAD_KEPT: usize = 100;

/// What to apply: which audience, as of when, and under which rules.
#[derive(Debug, Clone)]
pub struct SnapshotSpec {
    pub destination: String,
    pub audience_key: String,
    /// The snapshot's time (epoch ms): the version time of every change it makes.
    pub time_ms: i64,
    /// When it was received (epoch ms): the event's arrival.
    pub received_ms: i64,
    /// The messageId of the event that logs its changes (`events show`).
    pub message_id: String,
    /// The audience's settings, as an event of it would carry them.
    pub settings: ChangeSettings,
    pub policy: Policy,
}

/// One member as staged: identity parts as the store keys them (`''` when absent) and the data
/// fields as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRow {
    pub email: String,
    pub user_id: String,
    pub data_fields: Option<String>,
    /// The row's line in the file (1-based; the header is line 1 of a CSV file).
    pub line: u64,
}

/// What the parser sends the store.
pub enum Feed {
    Rows(Vec<StagedRow>),
    /// Every row was sent: `bad_rows` were left out by the parser; `diff` receives the full
    /// diff (after the parser wrote the bad rows into it).
    End {
        bad_rows: u64,
        diff: Option<Box<dyn DiffSink>>,
    },
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Feed::Rows(r) => write!(f, "Rows({})", r.len()),
            Feed::End { bad_rows, diff } => {
                write!(
                    f,
                    "End {{ bad_rows: {bad_rows}, diff: {} }}",
                    diff.is_some()
                )
            }
        }
    }
}

/// The receiving end of a snapshot's rows. Closed without [`Feed::End`] means "cancelled":
/// nothing is applied.
pub type FeedReceiver = tokio::sync::mpsc::Receiver<Feed>;

/// What kind of difference a row of the diff is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffOp {
    /// In the snapshot, not a desired member: an entry.
    Add,
    /// A desired member missing from the snapshot: an exit.
    Remove,
    /// An entry or exit not made because the key's live change is newer than the snapshot.
    KeptNewer,
    /// A row of the file that could not be used (`reason` says why).
    Bad,
}

impl DiffOp {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffOp::Add => "add",
            DiffOp::Remove => "remove",
            DiffOp::KeptNewer => "keep_newer",
            DiffOp::Bad => "bad",
        }
    }
}

/// One row of the full diff (`--diff-out`).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow<'a> {
    pub op: DiffOp,
    pub email: &'a str,
    pub user_id: &'a str,
    /// `KeptNewer`: whether the live change keeps the key a member.
    pub member: Option<bool>,
    pub data_fields: Option<&'a str>,
    /// `Bad`: the line and why.
    pub line: Option<u64>,
    pub reason: Option<&'a str>,
}

/// Where the full diff goes, row by row.
pub trait DiffSink: Send {
    fn row(&mut self, row: &DiffRow<'_>) -> std::io::Result<()>;
    /// After the last row (flushes).
    fn finish(&mut self) -> std::io::Result<()>;
}

/// A [`DiffSink`] writing NDJSON lines (`{"op":"add","email":..,"userId":..,"dataFields":..}`).
pub struct NdjsonDiff<W: std::io::Write + Send>(pub W);

impl<W: std::io::Write + Send> DiffSink for NdjsonDiff<W> {
    fn row(&mut self, r: &DiffRow<'_>) -> std::io::Result<()> {
        let mut o = serde_json::Map::new();
        o.insert("op".into(), r.op.as_str().into());
        if let Some(line) = r.line {
            o.insert("line".into(), line.into());
        }
        if !r.email.is_empty() {
            o.insert("email".into(), r.email.into());
        }
        if !r.user_id.is_empty() {
            o.insert("userId".into(), r.user_id.into());
        }
        if let Some(m) = r.member {
            o.insert("member".into(), m.into());
        }
        if let Some(d) = r.data_fields
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(d)
        {
            o.insert("dataFields".into(), v);
        }
        if let Some(reason) = r.reason {
            o.insert("reason".into(), reason.into());
        }
        serde_json::to_writer(&mut self.0, &o)?;
        self.0.write_all(b"\n")
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Examples of each kind of difference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples {
    pub adds: Vec<Identity>,
    pub removes: Vec<Identity>,
    pub unchanged: Vec<Identity>,
    pub kept_newer: Vec<Identity>,
}

/// What the store found and did with a snapshot ([`crate::Engine::apply_snapshot`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotDiff {
    /// Distinct identities staged.
    pub members: u64,
    /// Rows that repeated an identity staged before (the first counts), with the lines of the
    /// first [`BAD_KEPT`].
    pub duplicates: u64,
    pub duplicate_lines: Vec<u64>,
    /// Bad rows the parser left out (from [`Feed::End`]).
    pub parse_bad_rows: u64,
    /// Desired members of the audience before the snapshot.
    pub current_members: u64,
    pub adds: u64,
    pub removes: u64,
    pub unchanged: u64,
    /// Entries or exits not made: the key's live change is newer.
    pub kept_newer: u64,
    pub samples: Samples,
    /// Why it was not applied, if it was refused.
    pub refused: Option<Refusal>,
    /// Whether the changes were committed (not a dry run, not refused, something to do).
    pub applied: bool,
    /// The event that logs the changes, when applied.
    pub seq: Option<Seq>,
}
