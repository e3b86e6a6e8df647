//! The seam every storage engine implements: one object-safe trait whose operations return
//! boxed futures. An engine with an async driver (PostgreSQL through `tokio-postgres`) runs
//! them natively, without a thread hop; the embedded SQLite engine, a blocking library, runs
//! each on tokio's blocking pool and ingestion on a thread of its own
//! (`crate::sqlite::engine`). Callers hold the engine behind [`crate::Store`].

use std::future::Future;
use std::pin::Pin;

use super::admin::{OperatorPause, RejectedKey, UserKey, UserQuery, UserState};
use super::coordination::{Lease, RateCut};
use super::error::StoreError;
use super::holds::{GuardVerdict, HoldAction, RemovalHold, RemovalPolicy};
use super::rows::{
    AudienceKey, EventCounts, EventRecord, Identity, ListCounts, NewEvent, OutcomeRow, PendingRow,
    Receipt, Recorded, Seq,
};
use super::state::DestinationState;
use super::transfer::{CopyBatch, Export, TableCounts};
use super::verifies::VerifyRecord;
use crate::snapshot::{FeedReceiver, SnapshotDiff, SnapshotSpec};

/// What every engine operation returns: a future of the operation's result, `Send` so that
/// any task may await it.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Durable state behind the sync service. Every operation is one transaction.
///
/// Arguments: names are borrowed (an engine that needs them past the call copies them, which
/// costs nothing next to a transaction); the batches of the hot paths, [`Engine::accept`] and
/// [`Engine::record_outcomes`], are moved in, so that no engine has to copy them.
pub trait Engine: Send + Sync + 'static {
    /// Stores a batch of events in one durable transaction: when this returns `Ok`, every
    /// change and log row is on disk; on `Err`, nothing of the batch is. Duplicate messageIds
    /// (per destination, also within the batch) are ignored. One receipt per event, in order.
    fn accept(&self, batch: Vec<NewEvent>) -> StoreFuture<'_, Vec<Receipt>>;

    /// Up to `limit` keys of one audience whose desired version still has to reach Iterable
    /// and whose next attempt is due at `now_ms`, oldest arrival first.
    fn pending<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<PendingRow>> {
        self.pending_except(destination, audience_key, now_ms, limit, Vec::new())
    }

    /// [`Engine::pending`], leaving out the keys whose desired version's seq is in
    /// `in_flight` (ascending): the rows the reconciler has in flight, which it would only
    /// skip. `limit` counts the rows returned. A key whose seq is in `in_flight` by chance
    /// (another change of an event in flight, in the same audience) is only left for a later
    /// read, once that seq is no longer in flight.
    fn pending_except<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        limit: usize,
        in_flight: Vec<Seq>,
    ) -> StoreFuture<'a, Vec<PendingRow>>;

    /// Audiences of `destination` with at least one key due at `now_ms`.
    fn pending_audiences<'a>(
        &'a self,
        destination: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<String>>;

    /// Records what happened to planned rows of one audience, in one transaction. One result
    /// per row, in order.
    fn record_outcomes<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        outcomes: Vec<OutcomeRow>,
    ) -> StoreFuture<'a, Vec<Recorded>>;

    /// Records one failed try of a request (or of the list lookup) that `rows` wait for, while
    /// the client tries again: each row whose desired version is still that `seq` and pending
    /// counts one more attempt, and its event shows `pending` with `reason` and the next try
    /// at `next_attempt_ms`. Returns how many rows it marked.
    fn record_attempt<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        rows: &'a [(Identity, Seq)],
        reason: &'a str,
        next_attempt_ms: Option<i64>,
    ) -> StoreFuture<'a, usize>;

    /// The registry's list for an audience.
    fn list_id<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
    ) -> StoreFuture<'a, Option<i64>>;

    /// Registers a list for an audience unless one is registered already (first writer wins).
    /// Returns the registered id, which is `list_id` only if this call won.
    fn put_list_id<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        list_id: i64,
    ) -> StoreFuture<'a, i64>;

    /// Replaces the registry's list of an audience, but only if it is still `old_list` (a
    /// list deleted in Iterable and created again), and makes the audience's whole desired
    /// membership go to the new list, in one transaction: every key whose event named no list
    /// forgets what Iterable acknowledged, and its delivered members are pending again, due at
    /// `now_ms` (pending keys are due at `now_ms` too). Returns how many keys it made pending
    /// again, or `None` when the registry no longer holds `old_list` (another instance
    /// replaced it first: nothing changed).
    fn replace_list<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        old_list: i64,
        new_list: i64,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<usize>>;

    /// Up to `limit` keys of one audience after `after` (all from the first when `None`), in
    /// key order (email, then userId, by bytes; an absent part is the empty string): what
    /// `audience verify` walks.
    fn audience_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        after: Option<&'a Identity>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<AudienceKey>>;

    /// Makes `keys` of one audience pending again (drift found by `audience verify`): each
    /// stored key that is not pending forgets what Iterable acknowledged and is due at
    /// `now_ms` with its desired version, with `reason`; unknown and pending keys are left
    /// alone. Returns how many keys it reopened. One transaction.
    fn reopen_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        keys: &'a [Identity],
        reason: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, usize>;

    /// What happened to an event, per audience; `None` if the messageId is unknown.
    fn event_status<'a>(
        &'a self,
        destination: &'a str,
        message_id: &'a str,
    ) -> StoreFuture<'a, Option<EventRecord>>;

    /// Gauges per audience of `destination`, by audience key.
    fn list_counts<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<ListCounts>>;

    /// Event-log counts per status of `destination`.
    fn event_counts<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, EventCounts>;

    /// [`Engine::list_counts`] and [`Engine::event_counts`] counted again from every row, for
    /// checks. The two are maintained as rows change and cost nothing that grows with the
    /// data; this one reads everything.
    fn recount<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, (Vec<ListCounts>, EventCounts)>;

    /// The destination's stored state; `None` when none was ever stored.
    fn destination_state<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, Option<DestinationState>>;

    /// Stores the destination's state.
    fn set_destination_state<'a>(
        &'a self,
        destination: &'a str,
        state: &'a DestinationState,
        now_ms: i64,
    ) -> StoreFuture<'a, ()>;

    /// Why the last write failed, while no write has succeeded since (the store cannot write:
    /// a read-only or full disk, a broken file). `None` while writes succeed. A flag: it never
    /// waits.
    fn write_failure(&self) -> Option<String>;

    /// A real write transaction that changes nothing, to find out whether the store can write
    /// again (it clears [`Engine::write_failure`] when it succeeds).
    fn probe_write(&self) -> StoreFuture<'_, ()>;

    /// Takes or renews leases of audiences of `destination` for `instance` (several instances
    /// on one store), in one transaction: every lease of `candidates` that `instance` holds
    /// is renewed; then leases of the other candidates, in order, that nobody holds or whose
    /// lease ended at `now_ms` are taken, until `instance` holds `max` of them. Every lease
    /// taken or renewed lasts until `expires_ms`. Returns the candidates `instance` holds
    /// afterwards, in the order given.
    fn acquire_leases<'a>(
        &'a self,
        destination: &'a str,
        instance: &'a str,
        candidates: &'a [String],
        max: usize,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreFuture<'a, Vec<String>>;

    /// Gives up the leases `instance` holds of `audiences` of `destination` (of all its
    /// audiences when `None`): another instance may take them at once. Returns how many
    /// were given up.
    fn release_leases<'a>(
        &'a self,
        destination: &'a str,
        instance: &'a str,
        audiences: Option<&'a [String]>,
    ) -> StoreFuture<'a, usize>;

    /// The leases of `destination` (ended ones included, until taken or released), by
    /// audience key.
    fn leases<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<Lease>>;

    /// Registers `instance` as sending to the Iterable project `project` (a hash of its API
    /// key, never the key) until `expires_ms`, and forgets the instances of every project
    /// whose registration ended at `now_ms`. Returns how many instances send to `project`
    /// now, this one included: each takes that share of the project's rate budget.
    fn heartbeat<'a>(
        &'a self,
        project: &'a str,
        instance: &'a str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreFuture<'a, usize>;

    /// Forgets `instance`'s registration with `project` (at shutdown).
    fn leave<'a>(&'a self, project: &'a str, instance: &'a str) -> StoreFuture<'a, ()>;

    /// The latest rate cut of `endpoint` of `project` (see [`RateCut`]): `cut`, when given,
    /// replaces the stored one if it is later (`cut_ms`); returns the one stored afterwards.
    fn share_rate_cut<'a>(
        &'a self,
        project: &'a str,
        endpoint: &'a str,
        cut: Option<&'a RateCut>,
    ) -> StoreFuture<'a, Option<RateCut>>;
    /// Reserves `count` consecutive send slots, `interval_us` apart, in the one bucket
    /// (GCRA) of `endpoint` of `project` that every instance sending to the project shares:
    /// the first slot is the bucket's schedule less `tolerance_us` (a burst), but not before
    /// `now_us`; the schedule moves on by `count` slots from the later of itself and
    /// `now_us`. Returns the first slot's time (epoch microseconds). One transaction.
    fn reserve_slots<'a>(
        &'a self,
        project: &'a str,
        endpoint: &'a str,
        count: u32,
        interval_us: i64,
        tolerance_us: i64,
        now_us: i64,
    ) -> StoreFuture<'a, i64>;

    /// A consistent read-only view of the whole store, read in batches (`store copy`): one
    /// snapshot, so that what it reads belongs together even while the store is written.
    fn export(&self) -> StoreFuture<'_, Box<dyn Export>>;

    /// Writes one batch of exported rows in one transaction. A row whose key is stored already
    /// is replaced (so an interrupted copy can be run again); an event that collides with
    /// another one of the target (its messageId under another arrival sequence, or another
    /// event under its sequence) fails the batch. Call [`Engine::finish_import`] after
    /// the last batch.
    fn import(&self, batch: CopyBatch) -> StoreFuture<'_, ()>;

    /// After the last [`Engine::import`]: rebuilds what the engine derives from the rows (the
    /// figures per audience, the next arrival sequence, past every imported one).
    fn finish_import(&self) -> StoreFuture<'_, ()>;

    /// Rows per table of what a copy moves, counted now.
    fn table_counts(&self) -> StoreFuture<'_, TableCounts>;

    /// Removes up to `limit` final event-log rows (delivered, superseded, rejected, skipped)
    /// whose status last changed before `before_ms`, oldest events first, in one transaction,
    /// and the events left without rows (their messageIds are then forgotten); returns how
    /// many rows it removed. Desired and acknowledged state is never touched; the figures
    /// ([`Engine::event_counts`]) drop with the rows. Calls with the same `before_ms` make one
    /// round: SQLite starts each after the last row the previous call of the round removed,
    /// when that call removed `limit` rows (so rows still to send are walked once per round),
    /// and a row before that point that becomes final during the round is removed in the
    /// next round.
    fn prune_events(&self, before_ms: i64, limit: usize) -> StoreFuture<'_, usize>;

    /// The mass-removal guard (see `crate::store::holds`), before `exits` (pending exits of
    /// one audience, by key and planned seq) are sent, in one transaction:
    /// - the audience is held: the exits given that the guard has not approved are parked
    ///   (still pending, never due) and the hold is returned;
    /// - else, when its figures ([`super::holds::RemovalFigures`]: acknowledged members,
    ///   pending exits of members not approved yet, exits sent within `policy.window_ms`)
    ///   trip the policy, the hold is stored (for every instance, across restarts), every
    ///   pending exit of the audience not approved yet is parked, and the hold is returned;
    /// - else the exits not approved yet are counted in the window, and may be sent.
    fn guard_removals<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        exits: &'a [(Identity, Seq)],
        policy: RemovalPolicy,
        now_ms: i64,
    ) -> StoreFuture<'a, GuardVerdict>;

    /// The held audiences of `destination`, by audience key, each with the removals parked
    /// now.
    fn removal_holds<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<RemovalHold>>;

    /// The last operator decision on the audience's held removals (`released N removal(s):
    /// <actor>`), with when it was made (epoch ms); `None` when there was none.
    fn last_hold_decision<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
    ) -> StoreFuture<'a, Option<(String, i64)>>;

    /// Keeps `record` as the last `audience verify` of its audience (replacing the one
    /// before), for `status`.
    fn record_verify<'a>(
        &'a self,
        destination: &'a str,
        record: &'a VerifyRecord,
    ) -> StoreFuture<'a, ()>;

    /// The last verify of each audience of `destination` that had one, by audience key.
    fn last_verifies<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<VerifyRecord>>;

    /// An operator's decision on an audience's held removals (see [`HoldAction`]), in one
    /// transaction: the hold ends, and the window starts afresh. `actor` (who or what
    /// decided) is kept with the audience and, on discard, in each removal's reason.
    /// Returns how many parked removals were released or discarded; `None` when the audience
    /// is not held.
    fn resolve_hold<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        action: HoldAction,
        actor: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<u64>>;
    /// Applies a full snapshot of one audience (see [`crate::snapshot`]): stages the rows
    /// `feed` brings until its [`crate::snapshot::Feed::End`] (without holding the writer, in
    /// memory that does not grow with them), diffs them against the audience's desired rows
    /// (entries: staged, not desired members; exits: desired members not staged; a key whose
    /// change is newer than `spec.time_ms` keeps it), checks `spec.policy`, and writes the
    /// entries and exits as the changes of one new event (`spec.message_id`, version
    /// (`spec.time_ms`, its seq)) in one transaction. Nothing is written on a dry run, a
    /// refusal, an empty diff, an error, or a feed closed before its end.
    fn apply_snapshot<'a>(
        &'a self,
        spec: &'a SnapshotSpec,
        feed: FeedReceiver,
    ) -> StoreFuture<'a, SnapshotDiff>;

    /// Up to `limit` rejected keys of one audience after `after` (from the first when
    /// `None`), in key order (as [`Engine::audience_keys`]), whose email or userId contains
    /// `filter` (ASCII letters compared without case; every key when `None`). Reads an index
    /// of the rejected keys only: the cost grows with the audience's rejected keys at most.
    fn rejected_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        after: Option<&'a Identity>,
        filter: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RejectedKey>>;

    /// Sends rejected keys of one audience again (`keys`, or every rejected key when `None`),
    /// in one transaction: each key whose desired version is rejected becomes pending, due at
    /// `now_ms`, with no failed attempt, and its event's row shows `pending` with
    /// [`super::RETRIED_REASON`]; what Iterable acknowledged stays. Other keys are left alone.
    /// Returns how many keys it made pending.
    fn retry_rejected<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        keys: Option<&'a [Identity]>,
        now_ms: i64,
    ) -> StoreFuture<'a, usize>;

    /// The keys, in every destination and audience, whose email (or userId) is exactly the
    /// query's, with their desired and acknowledged state and the events that set them: up to
    /// `limit` after `after` (from the first when `None`), by destination, audience and key.
    /// An indexed lookup.
    fn user_states<'a>(
        &'a self,
        query: &'a UserQuery,
        after: Option<&'a UserKey>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<UserState>>;

    /// The operator's pause of `destination`, if one is in force.
    fn operator_pause<'a>(&'a self, destination: &'a str)
    -> StoreFuture<'a, Option<OperatorPause>>;

    /// Pauses `destination` for every instance (`Some`), or ends the operator's pause
    /// (`None`). Returns whether anything changed.
    fn set_operator_pause<'a>(
        &'a self,
        destination: &'a str,
        pause: Option<&'a OperatorPause>,
    ) -> StoreFuture<'a, bool>;
}
