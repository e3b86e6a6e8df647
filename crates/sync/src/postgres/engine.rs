//! The PostgreSQL store as an [`Engine`]: every operation awaits the driver on the caller's
//! task.

use std::sync::Arc;

use super::PostgresStore;
use crate::snapshot::{FeedReceiver, SnapshotDiff, SnapshotSpec};
use crate::store::{
    AudienceKey, CopyBatch, DestinationState, Engine, EventCounts, EventRecord, Export,
    GuardVerdict, HoldAction, Identity, Lease, ListCounts, NewEvent, OutcomeRow, PendingRow,
    RateCut, Receipt, Recorded, RemovalHold, RemovalPolicy, Seq, Store, StoreFuture, TableCounts,
    VerifyRecord,
};
use crate::store::{OperatorPause, RejectedKey, UserKey, UserQuery, UserState};

impl Store {
    /// A store over a PostgreSQL database.
    pub fn postgres(db: PostgresStore) -> Self {
        Self::new(Arc::new(db))
    }
}

impl Engine for PostgresStore {
    fn accept(&self, batch: Vec<NewEvent>) -> StoreFuture<'_, Vec<Receipt>> {
        Box::pin(PostgresStore::accept(self, batch))
    }

    fn pending_except<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        limit: usize,
        in_flight: Vec<Seq>,
    ) -> StoreFuture<'a, Vec<PendingRow>> {
        Box::pin(async move {
            PostgresStore::pending_except(
                self,
                destination,
                audience_key,
                now_ms,
                limit,
                &in_flight,
            )
            .await
        })
    }

    fn pending_audiences<'a>(
        &'a self,
        destination: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(PostgresStore::pending_audiences(self, destination, now_ms))
    }

    fn record_outcomes<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        now_ms: i64,
        outcomes: Vec<OutcomeRow>,
    ) -> StoreFuture<'a, Vec<Recorded>> {
        Box::pin(PostgresStore::record_outcomes(
            self,
            destination,
            audience_key,
            now_ms,
            outcomes,
        ))
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
        Box::pin(PostgresStore::record_attempt(
            self,
            destination,
            audience_key,
            now_ms,
            rows,
            reason,
            next_attempt_ms,
        ))
    }

    fn list_id<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
    ) -> StoreFuture<'a, Option<i64>> {
        Box::pin(PostgresStore::list_id(self, destination, audience_key))
    }

    fn put_list_id<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        list_id: i64,
    ) -> StoreFuture<'a, i64> {
        Box::pin(PostgresStore::put_list_id(
            self,
            destination,
            audience_key,
            list_id,
        ))
    }

    fn replace_list<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        old_list: i64,
        new_list: i64,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<usize>> {
        Box::pin(PostgresStore::replace_list(
            self,
            destination,
            audience_key,
            old_list,
            new_list,
            now_ms,
        ))
    }

    fn audience_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        after: Option<&'a Identity>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<AudienceKey>> {
        Box::pin(PostgresStore::audience_keys(
            self,
            destination,
            audience_key,
            after,
            limit,
        ))
    }

    fn rejected_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        after: Option<&'a Identity>,
        filter: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RejectedKey>> {
        Box::pin(PostgresStore::rejected_keys(
            self,
            destination,
            audience_key,
            after,
            filter,
            limit,
        ))
    }

    fn retry_rejected<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        keys: Option<&'a [Identity]>,
        now_ms: i64,
    ) -> StoreFuture<'a, usize> {
        Box::pin(PostgresStore::retry_rejected(
            self,
            destination,
            audience_key,
            keys,
            now_ms,
        ))
    }

    fn user_states<'a>(
        &'a self,
        query: &'a UserQuery,
        after: Option<&'a UserKey>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<UserState>> {
        Box::pin(PostgresStore::user_states(self, query, after, limit))
    }

    fn operator_pause<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, Option<OperatorPause>> {
        Box::pin(PostgresStore::operator_pause(self, destination))
    }

    fn set_operator_pause<'a>(
        &'a self,
        destination: &'a str,
        pause: Option<&'a OperatorPause>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(PostgresStore::set_operator_pause(self, destination, pause))
    }

    fn reopen_keys<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        keys: &'a [Identity],
        reason: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, usize> {
        Box::pin(PostgresStore::reopen_keys(
            self,
            destination,
            audience_key,
            keys,
            reason,
            now_ms,
        ))
    }

    fn event_status<'a>(
        &'a self,
        destination: &'a str,
        message_id: &'a str,
    ) -> StoreFuture<'a, Option<EventRecord>> {
        Box::pin(PostgresStore::event_status(self, destination, message_id))
    }

    fn list_counts<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<ListCounts>> {
        Box::pin(PostgresStore::list_counts(self, destination))
    }

    fn event_counts<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, EventCounts> {
        Box::pin(PostgresStore::event_counts(self, destination))
    }

    fn recount<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, (Vec<ListCounts>, EventCounts)> {
        Box::pin(PostgresStore::recount(self, destination))
    }

    fn destination_state<'a>(
        &'a self,
        destination: &'a str,
    ) -> StoreFuture<'a, Option<DestinationState>> {
        Box::pin(PostgresStore::destination_state(self, destination))
    }

    fn set_destination_state<'a>(
        &'a self,
        destination: &'a str,
        state: &'a DestinationState,
        now_ms: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(PostgresStore::set_destination_state(
            self,
            destination,
            state,
            now_ms,
        ))
    }

    fn write_failure(&self) -> Option<String> {
        PostgresStore::write_failure(self)
    }

    fn probe_write(&self) -> StoreFuture<'_, ()> {
        Box::pin(PostgresStore::probe_write(self))
    }

    fn prune_events(&self, before_ms: i64, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(PostgresStore::prune_events(self, before_ms, limit))
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
        Box::pin(PostgresStore::acquire_leases(
            self,
            destination,
            instance,
            candidates,
            max,
            now_ms,
            expires_ms,
        ))
    }

    fn release_leases<'a>(
        &'a self,
        destination: &'a str,
        instance: &'a str,
        audiences: Option<&'a [String]>,
    ) -> StoreFuture<'a, usize> {
        Box::pin(PostgresStore::release_leases(
            self,
            destination,
            instance,
            audiences,
        ))
    }

    fn leases<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<Lease>> {
        Box::pin(PostgresStore::leases(self, destination))
    }

    fn heartbeat<'a>(
        &'a self,
        project: &'a str,
        instance: &'a str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreFuture<'a, usize> {
        Box::pin(PostgresStore::heartbeat(
            self, project, instance, now_ms, expires_ms,
        ))
    }

    fn leave<'a>(&'a self, project: &'a str, instance: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(PostgresStore::leave(self, project, instance))
    }

    fn share_rate_cut<'a>(
        &'a self,
        project: &'a str,
        endpoint: &'a str,
        cut: Option<&'a RateCut>,
    ) -> StoreFuture<'a, Option<RateCut>> {
        Box::pin(PostgresStore::share_rate_cut(self, project, endpoint, cut))
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
        Box::pin(PostgresStore::reserve_slots(
            self,
            project,
            endpoint,
            count,
            interval_us,
            tolerance_us,
            now_us,
        ))
    }

    fn export(&self) -> StoreFuture<'_, Box<dyn Export>> {
        Box::pin(PostgresStore::export(self))
    }

    fn import(&self, batch: CopyBatch) -> StoreFuture<'_, ()> {
        Box::pin(PostgresStore::import(self, batch))
    }

    fn finish_import(&self) -> StoreFuture<'_, ()> {
        Box::pin(PostgresStore::finish_import(self))
    }

    fn table_counts(&self) -> StoreFuture<'_, TableCounts> {
        Box::pin(PostgresStore::table_counts(self))
    }

    fn guard_removals<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        exits: &'a [(Identity, Seq)],
        policy: RemovalPolicy,
        now_ms: i64,
    ) -> StoreFuture<'a, GuardVerdict> {
        Box::pin(PostgresStore::guard_removals(
            self,
            destination,
            audience_key,
            exits,
            policy,
            now_ms,
        ))
    }

    fn removal_holds<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<RemovalHold>> {
        Box::pin(PostgresStore::removal_holds(self, destination))
    }

    fn last_hold_decision<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
    ) -> StoreFuture<'a, Option<(String, i64)>> {
        Box::pin(PostgresStore::last_hold_decision(
            self,
            destination,
            audience_key,
        ))
    }

    fn record_verify<'a>(
        &'a self,
        destination: &'a str,
        record: &'a VerifyRecord,
    ) -> StoreFuture<'a, ()> {
        Box::pin(PostgresStore::record_verify(self, destination, record))
    }

    fn last_verifies<'a>(&'a self, destination: &'a str) -> StoreFuture<'a, Vec<VerifyRecord>> {
        Box::pin(PostgresStore::last_verifies(self, destination))
    }

    fn resolve_hold<'a>(
        &'a self,
        destination: &'a str,
        audience_key: &'a str,
        action: HoldAction,
        actor: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<u64>> {
        Box::pin(PostgresStore::resolve_hold(
            self,
            destination,
            audience_key,
            action,
            actor,
            now_ms,
        ))
    }

    fn apply_snapshot<'a>(
        &'a self,
        spec: &'a SnapshotSpec,
        feed: FeedReceiver,
    ) -> StoreFuture<'a, SnapshotDiff> {
        Box::pin(PostgresStore::apply_snapshot(self, spec, feed))
    }
}
