//! The SQLite database as an [`Engine`]: each operation runs the blocking call of
//! [`SqliteStore`] on tokio's blocking pool, the one place where store calls leave the async
//! world, except ingestion, which goes through the engine's own queue and thread (see
//! `ingest`). The writers share one group transaction (see `group`) and the checkpointer
//! copies the WAL (see `checkpoint`).

use std::sync::Arc;

use super::SqliteStore;
use super::ingest::Ingest;
use crate::snapshot::{FeedReceiver, SnapshotDiff, SnapshotSpec};
use crate::store::{
    AudienceKey, CopyBatch, DestinationState, Engine, EventCounts, EventRecord, Export,
    GuardVerdict, HoldAction, Identity, Lease, ListCounts, NewEvent, OutcomeRow, PendingRow,
    RateCut, Receipt, Recorded, RemovalHold, RemovalPolicy, Seq, Store, StoreError, StoreFuture,
    TableCounts, VerifyRecord,
};
use crate::store::{OperatorPause, RejectedKey, UserKey, UserQuery, UserState};

/// A shared [`SqliteStore`] as an engine of [`Store`], with its ingestion queue.
#[derive(Debug)]
pub struct SqliteEngine {
    db: Arc<SqliteStore>,
    ingest: Ingest,
}

impl SqliteEngine {
    pub fn new(db: Arc<SqliteStore>) -> Self {
        Self {
            db,
            ingest: Ingest::default(),
        }
    }

    /// The database, for its blocking calls (tests, diagnostics).
    pub fn database(&self) -> &Arc<SqliteStore> {
        &self.db
    }

    /// Runs `f` on the database on tokio's blocking pool.
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .map_err(|e| StoreError::Task {
                    op,
                    message: e.to_string(),
                })?
        })
    }
}

impl Store {
    /// A store over a SQLite database.
    pub fn sqlite(db: SqliteStore) -> Self {
        Self::sqlite_shared(Arc::new(db))
    }

    /// A store over a SQLite database that the caller also uses directly (tests).
    pub fn sqlite_shared(db: Arc<SqliteStore>) -> Self {
        Self::new(Arc::new(SqliteEngine::new(db)))
    }
}

impl Engine for SqliteEngine {
    /// Through the ingestion queue (see `ingest`), not the blocking pool.
    fn accept(&self, batch: Vec<NewEvent>) -> StoreFuture<'_, Vec<Receipt>> {
        Box::pin(self.ingest.accept(&self.db, batch))
    }

    fn pending_except<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        limit: usize,
        in_flight: Vec<Seq>,
    ) -> StoreFuture<'a, Vec<PendingRow>> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        self.run("pending", move |db| {
            db.pending_except(&d, &a, now_ms, limit, &in_flight)
        })
    }

    fn pending_audiences<'a>(
        &'a self,
        destination: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<String>> {
        let d = destination.to_string();
        self.run("pending_audiences", move |db| {
            db.pending_audiences(&d, now_ms)
        })
    }

    fn record_outcomes<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        outcomes: Vec<OutcomeRow>,
    ) -> StoreFuture<'a, Vec<Recorded>> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        self.run("record_outcomes", move |db| {
            db.record_outcomes(&d, &a, now_ms, &outcomes)
        })
    }

    fn record_attempt<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        rows: &'a [(Identity, Seq)],
        reason: &'a str,
        next_attempt_ms: Option<i64>,
    ) -> StoreFuture<'a, usize> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        let (rows, reason) = (rows.to_vec(), reason.to_string());
        self.run("record_attempt", move |db| {
            db.record_attempt(&d, &a, now_ms, &rows, &reason, next_attempt_ms)
        })
    }

    fn list_id<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
    ) -> StoreFuture<'a, Option<i64>> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        self.run("list_id", move |db| db.list_id(&d, &a))
    }

    fn put_list_id<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        list_id: i64,
    ) -> StoreFuture<'a, i64> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        self.run("put_list_id", move |db| db.put_list_id(&d, &a, list_id))
    }

    fn replace_list<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        old_list: i64,
        new_list: i64,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<usize>> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        self.run("replace_list", move |db| {
            db.replace_list(&d, &a, old_list, new_list, now_ms)
        })
    }

    fn audience_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        after: Option<&'a Identity>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<AudienceKey>> {
        let (d, a, after) = (
            destination.to_string(),
            audience_key.to_string(),
            after.cloned(),
        );
        self.run("audience_keys", move |db| {
            db.audience_keys(&d, &a, after.as_ref(), limit)
        })
    }

    fn reopen_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        keys: &'a [Identity],
        reason: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, usize> {
        let (d, a, keys, reason) = (
            destination.to_string(),
            audience_key.to_string(),
            keys.to_vec(),
            reason.to_string(),
        );
        self.run("reopen_keys", move |db| {
            db.reopen_keys(&d, &a, &keys, &reason, now_ms)
        })
    }

    fn rejected_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        after: Option<&'a Identity>,
        filter: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RejectedKey>> {
        let (d, a, after, filter) = (
            destination.to_string(),
            audience_key.to_string(),
            after.cloned(),
            filter.map(str::to_string),
        );
        self.run("rejected_keys", move |db| {
            db.rejected_keys(&d, &a, after.as_ref(), filter.as_deref(), limit)
        })
    }

    fn retry_rejected<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        keys: Option<&'a [Identity]>,
        now_ms: i64,
    ) -> StoreFuture<'a, usize> {
        let (d, a, keys) = (
            destination.to_string(),
            audience_key.to_string(),
            keys.map(<[Identity]>::to_vec),
        );
        self.run("retry_rejected", move |db| {
            db.retry_rejected(&d, &a, keys.as_deref(), now_ms)
        })
    }

    fn user_states<'a>(
        &'a self,
        query: &'a UserQuery,
        after: Option<&'a UserKey>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<UserState>> {
        let (query, after) = (query.clone(), after.cloned());
        self.run("user_states", move |db| {
            db.user_states(&query, after.as_ref(), limit)
        })
    }

    fn operator_pause<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, Option<OperatorPause>> {
        let d = destination.to_string();
        self.run("operator_pause", move |db| db.operator_pause(&d))
    }

    fn set_operator_pause<'a>(
        &'a self,
        destination: &'a str,
        pause: Option<&'a OperatorPause>,
    ) -> StoreFuture<'a, bool> {
        let (d, pause) = (destination.to_string(), pause.cloned());
        self.run("set_operator_pause", move |db| {
            db.set_operator_pause(&d, pause.as_ref())
        })
    }

    fn event_status<'a>(
        &'a self,
        destination: &'a str,
        message_id: &'a str,
    ) -> StoreFuture<'a, Option<EventRecord>> {
        let (d, m) = (destination.to_string(), message_id.to_string());
        self.run("event_status", move |db| db.event_status(&d, &m))
    }

    fn list_counts<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<ListCounts>> {
        let d = destination.to_string();
        self.run("list_counts", move |db| db.list_counts(&d))
    }

    fn event_counts<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, EventCounts> {
        let d = destination.to_string();
        self.run("event_counts", move |db| db.event_counts(&d))
    }

    fn recount<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, (Vec<ListCounts>, EventCounts)> {
        let d = destination.to_string();
        self.run("recount", move |db| db.recount(&d))
    }

    fn destination_state<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, Option<DestinationState>> {
        let d = destination.to_string();
        self.run("destination_state", move |db| db.destination_state(&d))
    }

    fn set_destination_state<'a>(
        &'a self,
        destination: &'a str,
        state: &'a DestinationState,
        now_ms: i64,
    ) -> StoreFuture<'a, ()> {
        let (d, state) = (destination.to_string(), state.clone());
        self.run("set_destination_state", move |db| {
            db.set_destination_state(&d, &state, now_ms)
        })
    }

    fn write_failure(&self) -> Option<String> {
        self.db.write_failure()
    }

    fn probe_write(&self) -> StoreFuture<'_, ()> {
        self.run("probe_write", SqliteStore::probe_write)
    }

    fn acquire_leases<'a>(
        &'a self,
        destination: &'a str,
        instance: &'a str,
        candidates: &'a [String],
        max: usize,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreFuture<'a, Vec<String>> {
        let (d, i, c) = (
            destination.to_string(),
            instance.to_string(),
            candidates.to_vec(),
        );
        self.run("acquire_leases", move |db| {
            db.acquire_leases(&d, &i, &c, max, now_ms, expires_ms)
        })
    }

    fn release_leases<'a>(
        &'a self,
        destination: &'a str,
        instance: &'a str,
        audiences: Option<&'a [String]>,
    ) -> StoreFuture<'a, usize> {
        let (d, i, a) = (
            destination.to_string(),
            instance.to_string(),
            audiences.map(<[String]>::to_vec),
        );
        self.run("release_leases", move |db| {
            db.release_leases(&d, &i, a.as_deref())
        })
    }

    fn leases<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<Lease>> {
        let d = destination.to_string();
        self.run("leases", move |db| db.leases(&d))
    }

    fn heartbeat<'a>(
        &'a self,
        project: &'a str,
        instance: &'a str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreFuture<'a, usize> {
        let (p, i) = (project.to_string(), instance.to_string());
        self.run("heartbeat", move |db| {
            db.heartbeat(&p, &i, now_ms, expires_ms)
        })
    }

    fn leave<'a>(&'a self, project: &'a str, instance: &'a str) -> StoreFuture<'a, ()> {
        let (p, i) = (project.to_string(), instance.to_string());
        self.run("leave", move |db| db.leave(&p, &i))
    }

    fn share_rate_cut<'a>(
        &'a self,
        project: &'a str,
        endpoint: &'a str,
        cut: Option<&'a RateCut>,
    ) -> StoreFuture<'a, Option<RateCut>> {
        let (p, e, c) = (project.to_string(), endpoint.to_string(), cut.cloned());
        self.run("share_rate_cut", move |db| {
            db.share_rate_cut(&p, &e, c.as_ref())
        })
    }

    fn reserve_slots<'a>(
        &'a self,
        project: &'a str,
        endpoint: &'a str,
        count: u32,
        interval_us: i64,
        tolerance_us: i64,
        now_us: i64,
    ) -> StoreFuture<'a, i64> {
        let (p, e) = (project.to_string(), endpoint.to_string());
        self.run("reserve_slots", move |db| {
            db.reserve_slots(&p, &e, count, interval_us, tolerance_us, now_us)
        })
    }

    fn export(&self) -> StoreFuture<'_, Box<dyn Export>> {
        self.run("export", SqliteStore::export)
    }

    fn import(&self, batch: CopyBatch) -> StoreFuture<'_, ()> {
        self.run("import", move |db| db.import(&batch))
    }

    fn finish_import(&self) -> StoreFuture<'_, ()> {
        self.run("finish_import", SqliteStore::finish_import)
    }

    fn table_counts(&self) -> StoreFuture<'_, TableCounts> {
        self.run("table_counts", SqliteStore::table_counts)
    }

    fn prune_events(&self, before_ms: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.run("prune_events", move |db| db.prune_events(before_ms, limit))
    }

    fn guard_removals<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        exits: &'a [(Identity, Seq)],
        policy: RemovalPolicy,
        now_ms: i64,
    ) -> StoreFuture<'a, GuardVerdict> {
        let (d, a, exits) = (
            destination.to_string(),
            audience_key.to_string(),
            exits.to_vec(),
        );
        self.run("guard_removals", move |db| {
            db.guard_removals(&d, &a, &exits, policy, now_ms)
        })
    }

    fn removal_holds<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<RemovalHold>> {
        let d = destination.to_string();
        self.run("removal_holds", move |db| db.removal_holds(&d))
    }

    fn last_hold_decision<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
    ) -> StoreFuture<'a, Option<(String, i64)>> {
        let (d, a) = (destination.to_string(), audience_key.to_string());
        self.run("last_hold_decision", move |db| {
            db.last_hold_decision(&d, &a)
        })
    }

    fn record_verify<'a>(
        &'a self,
        destination: &'a str,
        record: &'a VerifyRecord,
    ) -> StoreFuture<'a, ()> {
        let (d, r) = (destination.to_string(), record.clone());
        self.run("record_verify", move |db| db.record_verify(&d, &r))
    }

    fn last_verifies<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<VerifyRecord>> {
        let d = destination.to_string();
        self.run("last_verifies", move |db| db.last_verifies(&d))
    }

    fn resolve_hold<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        action: HoldAction,
        actor: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<u64>> {
        let (d, a, who) = (
            destination.to_string(),
            audience_key.to_string(),
            actor.to_string(),
        );
        self.run("resolve_hold", move |db| {
            db.resolve_hold(&d, &a, action, &who, now_ms)
        })
    }

    fn apply_snapshot<'a>(
        &'a self,
        spec: &'a SnapshotSpec,
        feed: FeedReceiver,
    ) -> StoreFuture<'a, SnapshotDiff> {
        let spec = spec.clone();
        let mut feed = feed;
        self.run("apply_snapshot", move |db| {
            db.apply_snapshot(&spec, &mut feed)
        })
    }
}
