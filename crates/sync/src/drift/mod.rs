//! Drift repair (`iterable-lists audience verify`): the live list of an audience is read from
//! Iterable (`getUsers`, streamed, through the rate limiter) and compared with what the store
//! says Iterable acknowledged; with `repair`, the differences go back through the normal path.
//!
//! Memory stays flat in the size of the list and of the store: the list's identifiers are held
//! compactly ([`lines::LineSet`]: about 35 bytes per email), the store's keys are walked in pages
//! in key order and looked up in the lines ([`walk::Walk`]), and what is kept beyond that is the
//! drift itself. The list is read first, then the store: a key delivered in between shows as
//! drift and is sent again, which changes nothing in Iterable.
//!
//! Repair: a key acknowledged as a member that the list lacks, or a key of the store that the
//! list has while its desired state is not an acknowledged membership, is made pending again
//! ([`crate::Store::reopen_keys`]): the reconciler sends its desired state (subscribe or
//! unsubscribe). An identifier the store has no key for is unsubscribed by an event stored as
//! any other (`accept`), without a time, so any real event of that user wins over it.

pub mod lines;
pub mod schedule;
pub mod walk;

use std::time::{Duration, Instant};

use destination::settings::ProjectType;
use iterable::client::{Client, IterableError, UserLines};

use crate::store::{
    AudienceKey, ChangeSettings, EventContent, Identity, MembershipChange, NewEvent, Store,
    StoreError, VerifyRecord,
};
use lines::LineSet;
pub use walk::DriftCounts;
use walk::{Extras, Walk};

/// Keys read from the store per page.
const PAGE: usize = 5_000;
/// Keys made pending again per transaction, events stored per batch.
const REPAIR_BATCH: usize = 1_000;
/// Examples of each kind of drift kept for the report.
const SAMPLES: usize = 10;
/// How often progress is reported, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Why a key is pending again after a repair (what `events show` and `status` tell).
pub const MISSING_REASON: &str = "drift: missing from the Iterable list (audience verify)";
/// Why a key is pending again after a repair.
pub const EXTRA_REASON: &str = "drift: in the Iterable list against its state (audience verify)";

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub destination: String,
    pub audience: String,
    pub project_type: ProjectType,
    /// Send the corrections (through the store and the reconciler).
    pub repair: bool,
    /// Now, in epoch milliseconds: when the corrections are due.
    pub now_ms: i64,
}

/// What a step of [`verify`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the live list from Iterable (`done`: identifiers).
    Reading,
    /// Walking the store's keys (`done`: keys).
    Comparing,
    /// Storing the corrections (`done`: keys and identifiers).
    Repairing,
}

impl Phase {
    pub fn word(self) -> &'static str {
        match self {
            Phase::Reading => "reading",
            Phase::Comparing => "comparing",
            Phase::Repairing => "repairing",
        }
    }
}

/// Progress of [`verify`]; `total` when known (an estimate while reading: the members the
/// store knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: Option<u64>,
}

/// What [`verify`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub list_id: i64,
    pub counts: DriftCounts,
    /// A few acknowledged members the list lacks.
    pub missing_samples: Vec<String>,
    /// A few identifiers the list has against the store.
    pub extra_samples: Vec<String>,
    /// Keys made pending again (repair only).
    pub reopened: u64,
    /// Unsubscribes stored for identifiers unknown to the store (repair only).
    pub unsubscribes: u64,
    /// Bytes of the list read from Iterable.
    pub bytes: u64,
}

impl VerifyReport {
    /// Whether the list and the store agree.
    pub fn in_sync(&self) -> bool {
        self.counts.missing == 0 && self.counts.extra == 0
    }
}

/// Why [`verify`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "audience {audience:?} of destination {destination:?} has no list yet (nothing was delivered to it)"
    )]
    NoList {
        destination: String,
        audience: String,
    },
    #[error("cannot read the list from Iterable: {0}")]
    Iterable(#[from] IterableError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the list holds more than 4 GB of identifiers")]
    TooLarge,
}

type ProgressFn<'p> = &'p mut (dyn FnMut(Progress) + Send);

/// Throttles progress reports to one per [`PROGRESS_EVERY`].
struct Reporter<'p> {
    f: ProgressFn<'p>,
    last: Option<Instant>,
}

impl Reporter<'_> {
    fn report(&mut self, p: Progress, force: bool) {
        if force || self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.last = Some(Instant::now());
            (self.f)(p);
        }
    }
}

/// The lines of the list, with progress.
struct Reading<'r, 'p> {
    set: LineSet,
    reporter: &'r mut Reporter<'p>,
    total: Option<u64>,
}

impl UserLines for Reading<'_, '_> {
    fn restart(&mut self) {
        self.set.clear();
    }

    fn line(&mut self, line: &str) {
        self.set.push(line);
        if self.set.len() % 1024 == 0 {
            let p = Progress {
                phase: Phase::Reading,
                done: self.set.len() as u64,
                total: self.total,
            };
            self.reporter.report(p, false);
        }
    }
}

/// Reads the live list of `opts.audience`, compares it with the store, and with
/// `opts.repair` stores the corrections. `progress` is called a few times a second. What it
/// found, or why it stopped, is kept as the audience's last verify
/// ([`crate::Store::record_verify`], shown by `status`), unless the audience has no list or
/// the store failed.
pub async fn verify(
    store: &Store,
    client: &Client,
    opts: &VerifyOptions,
    progress: ProgressFn<'_>,
) -> Result<VerifyReport, VerifyError> {
    let r = verify_list(store, client, opts, progress).await;
    let mut record = VerifyRecord {
        audience_key: opts.audience.clone(),
        ran_ms: opts.now_ms,
        repair: opts.repair,
        ..VerifyRecord::default()
    };
    match &r {
        Ok(report) => {
            let c = &report.counts;
            record.in_iterable = c.in_iterable;
            record.acknowledged = c.acknowledged;
            record.missing = c.missing;
            record.extra = c.extra;
            record.reopened = report.reopened;
            record.unsubscribes = report.unsubscribes;
        }
        Err(VerifyError::NoList { .. } | VerifyError::Store(_)) => return r,
        Err(e) => record.error = Some(e.to_string()),
    }
    store.record_verify(&opts.destination, &record).await?;
    r
}

async fn verify_list(
    store: &Store,
    client: &Client,
    opts: &VerifyOptions,
    progress: ProgressFn<'_>,
) -> Result<VerifyReport, VerifyError> {
    let (dest, aud) = (opts.destination.as_str(), opts.audience.as_str());
    let list_id = store
        .list_id(dest, aud)
        .await?
        .ok_or_else(|| VerifyError::NoList {
            destination: dest.to_string(),
            audience: aud.to_string(),
        })?;
    let mut reporter = Reporter {
        f: progress,
        last: None,
    };
    let (set, bytes) = read_list(store, client, opts, list_id, &mut reporter).await?;
    let mut report = VerifyReport {
        list_id,
        bytes,
        ..VerifyReport::default()
    };
    let extras = walk_store(store, opts, &set, &mut report, &mut reporter).await?;
    if opts.repair {
        repair_extras(store, opts, &set, &extras, &mut report, &mut reporter).await?;
    }
    Ok(report)
}

/// Reads the list from Iterable, sorted; and the bytes read.
async fn read_list(
    store: &Store,
    client: &Client,
    opts: &VerifyOptions,
    list_id: i64,
    reporter: &mut Reporter<'_>,
) -> Result<(LineSet, u64), VerifyError> {
    let members = store
        .list_counts(&opts.destination)
        .await?
        .into_iter()
        .find(|c| c.audience_key == opts.audience)
        .map(|c| c.members);
    let mut set = LineSet::default();
    // The members the store knows: about what the list holds (spans grow by doubling
    // otherwise, to twice as much).
    set.reserve(members.unwrap_or(0).min(50_000_000) as usize);
    let mut reading = Reading {
        set,
        reporter,
        total: members,
    };
    let prefer_user_id = opts.project_type == ProjectType::UserId;
    let bytes = client
        .get_users_streamed(list_id, prefer_user_id, &mut reading)
        .await?;
    let Reading {
        mut set, reporter, ..
    } = reading;
    let read = set.len() as u64;
    let done = Progress {
        phase: Phase::Reading,
        done: read,
        total: Some(read),
    };
    reporter.report(done, true);
    if !set.seal() {
        return Err(VerifyError::TooLarge);
    }
    Ok((set, bytes))
}

/// Walks the store's keys of the audience against the list: counts and samples in `report`;
/// with `opts.repair`, the missing members are reopened as they are found. Returns the
/// extras.
async fn walk_store(
    store: &Store,
    opts: &VerifyOptions,
    set: &LineSet,
    report: &mut VerifyReport,
    reporter: &mut Reporter<'_>,
) -> Result<Extras, VerifyError> {
    let (dest, aud) = (opts.destination.as_str(), opts.audience.as_str());
    let mut walk = Walk::new(set, report.list_id);
    let mut missing: Vec<Identity> = Vec::new();
    let mut after: Option<Identity> = None;
    let mut walked = 0u64;
    loop {
        let page: Vec<AudienceKey> = store.audience_keys(dest, aud, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.identity.clone());
        for k in &page {
            if walk.key(k) {
                if report.missing_samples.len() < SAMPLES {
                    report.missing_samples.push(shown(&k.identity));
                }
                if opts.repair {
                    missing.push(k.identity.clone());
                }
            }
        }
        walked += page.len() as u64;
        if missing.len() >= REPAIR_BATCH {
            report.reopened += reopen(store, opts, &missing, MISSING_REASON).await?;
            missing.clear();
        }
        let p = Progress {
            phase: Phase::Comparing,
            done: walked,
            total: None,
        };
        reporter.report(p, false);
    }
    report.reopened += reopen(store, opts, &missing, MISSING_REASON).await?;
    let (counts, extras) = walk.finish();
    report.counts = counts;
    report.extra_samples = extras
        .known
        .iter()
        .map(shown)
        .chain(extras.unknown.iter().map(|i| set.get(*i).to_string()))
        .take(SAMPLES)
        .collect();
    Ok(extras)
}

/// Stores the corrections of the extras: known keys reopened, unknown identifiers
/// unsubscribed by an event each.
async fn repair_extras(
    store: &Store,
    opts: &VerifyOptions,
    set: &LineSet,
    extras: &Extras,
    report: &mut VerifyReport,
    reporter: &mut Reporter<'_>,
) -> Result<(), VerifyError> {
    let total = (extras.known.len() + extras.unknown.len()) as u64;
    let mut done = 0u64;
    for chunk in extras.known.chunks(REPAIR_BATCH) {
        report.reopened += reopen(store, opts, chunk, EXTRA_REASON).await?;
        done += chunk.len() as u64;
        reporter.report(repairing(done, total), false);
    }
    for (n, chunk) in extras.unknown.chunks(REPAIR_BATCH).enumerate() {
        let events: Vec<NewEvent> = chunk
            .iter()
            .enumerate()
            .map(|(i, line)| unsubscribe_event(opts, set.get(*line), n * REPAIR_BATCH + i))
            .collect();
        store.accept(events).await?;
        report.unsubscribes += chunk.len() as u64;
        done += chunk.len() as u64;
        reporter.report(repairing(done, total), false);
    }
    reporter.report(repairing(done, total), true);
    Ok(())
}

fn repairing(done: u64, total: u64) -> Progress {
    Progress {
        phase: Phase::Repairing,
        done,
        total: Some(total),
    }
}

async fn reopen(
    store: &Store,
    opts: &VerifyOptions,
    keys: &[Identity],
    reason: &str,
) -> Result<u64, StoreError> {
    let n = store
        .reopen_keys(&opts.destination, &opts.audience, keys, reason, opts.now_ms)
        .await?;
    Ok(n as u64)
}

/// How a key is shown in the report: its email, else its userId.
fn shown(id: &Identity) -> String {
    id.email
        .clone()
        .or_else(|| id.user_id.clone())
        .unwrap_or_default()
}

/// The identity of a line of the list: an email if it has an `@`, else a userId.
pub fn identity_of_line(line: &str) -> Identity {
    if line.contains('@') {
        Identity::new(Some(line), None)
    } else {
        Identity::new(None, Some(line))
    }
}

/// An event that takes `line` out of the audience, older than any real event (no time).
fn unsubscribe_event(opts: &VerifyOptions, line: &str, n: usize) -> NewEvent {
    NewEvent {
        destination: opts.destination.clone(),
        message_id: format!("audience-verify:{}:{}:{n}", opts.audience, opts.now_ms),
        received_ms: opts.now_ms,
        content: EventContent::Changes(vec![MembershipChange {
            audience_key: opts.audience.clone(),
            list_id: None,
            identity: identity_of_line(line),
            member: false,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: None,
        }]),
        ignored_settings: Vec::new(),
    }
}
