//! Several instances delivering from one store (see `crate::store::coordination`): which
//! audiences this instance delivers (leases), its share of each Iterable project's rate
//! budget (heartbeats), rate cuts handed between instances, and a pause or resume made by
//! another instance.
//!
//! - **Leases.** An instance reads, resolves and sends an audience's rows only while it holds
//!   the audience's lease. When it looks for due audiences it takes the free ones, up to its
//!   fair share (the due audiences divided by the live instances, rounded up), renews what it
//!   holds and still needs, gives back what it no longer needs or holds beyond its share
//!   (when nothing of it is in flight), and renews every third of the lease in any case. It
//!   stops starting requests for an audience a third of the lease before the lease would
//!   end, so that requests in flight finish before another instance may take over. A dead
//!   instance's audiences are taken over once its leases end; its rows stayed pending.
//! - **Heartbeats.** Every tick (a tenth of the lease, within 100 ms..=1 s) the instance
//!   registers with the project until the lease's end and learns how many instances send to
//!   it: the limiter then sends that share of every limit.
//! - **Send times.** The limiter reserves its send times from the project's one bucket in
//!   the store ([`StoreSlots`]), a tenth of a second's worth at a time, so all instances
//!   together keep to each limit as one instance would (the heartbeats' share is the
//!   fallback while the store cannot be reached).
//! - **Rate cuts.** A cut of an adaptive limit after a 429 is stored with the project and
//!   endpoint; the others take it up at their next tick.
//! - **Pause.** The stored destination state is read every tick: a pause stored by another
//!   instance pauses this one, and a resume stored by another resumes it.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use iterable::limiter::{Endpoint, SlotSource};

use super::shared::{Inner, lock};
use super::{DestinationState, EpochClock};
use crate::store::{RateCut, Store, StoreError};

/// A new instance id: random per process start (and per reconciler within a process).
pub fn new_instance_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let random = RandomState::new().hash_one(std::time::SystemTime::now());
    format!(
        "{}-{random:016x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What this instance knows of its coordination with the others.
#[derive(Debug, Default)]
pub(super) struct Coord {
    /// Audiences whose lease it holds, with the moment (epoch ms) it stops starting
    /// requests for them unless renewed.
    pub held: HashMap<String, i64>,
    /// When the leases were last renewed (epoch ms).
    pub renewed_ms: Option<i64>,
    /// Due audiences it could not get at the last try (held by others), and when that was.
    pub refused: HashSet<String>,
    pub refused_ms: Option<i64>,
    /// Live instances sending to the project, this one included (1 until the first beat).
    pub instances: usize,
    /// When the last tick ran (epoch ms).
    pub ticked_ms: Option<i64>,
    /// Per endpoint, the cut last taken up or handed on (its `cut_ms`).
    pub seen_cuts: HashMap<Endpoint, i64>,
}

/// Which leases to ask for: what is held and still needed first, then the other due
/// audiences starting at a place of `instance`'s own, so instances prefer different ones.
/// Returns the candidates and how many to hold at most (the fair share).
pub(super) fn plan_leases(
    instance: &str,
    due: &[String],
    held: &[String],
    busy: &HashSet<String>,
    instances: usize,
) -> (Vec<String>, usize) {
    let due_set: HashSet<&String> = due.iter().collect();
    let mut cands: Vec<String> = held
        .iter()
        .filter(|a| due_set.contains(a) || busy.contains(*a))
        .cloned()
        .collect();
    let kept: HashSet<String> = cands.iter().cloned().collect();
    let mut fresh: Vec<&String> = due.iter().filter(|a| !kept.contains(*a)).collect();
    fresh.sort();
    if !fresh.is_empty() {
        let start = (stable_hash(instance) % fresh.len() as u64) as usize;
        fresh.rotate_left(start);
    }
    cands.extend(fresh.into_iter().cloned());
    let share = cands.len().div_ceil(instances.max(1)).max(1);
    (cands, share)
}

/// FNV-1a: the same in every process (unlike std's randomly keyed hasher).
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Inner {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.cfg.lease.as_millis())
            .unwrap_or(i64::MAX / 4)
            .max(3)
    }

    /// How often the coordination runs (see the module doc).
    pub fn tick(&self) -> Duration {
        (self.cfg.lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// When the last tick ran (epoch ms).
    pub fn ticked(&self) -> Option<i64> {
        lock(&self.coord).ticked_ms
    }

    /// Whether this instance may start requests for `audience` now.
    pub fn holds(&self, audience: &str) -> bool {
        let now = self.now();
        lock(&self.coord)
            .held
            .get(audience)
            .is_some_and(|&t| now < t)
    }

    /// Takes or renews the leases of the due audiences (see the module doc); returns the ones
    /// it holds. `busy` are audiences with work in flight, whose leases it keeps.
    pub async fn claim(
        &self,
        due: Vec<String>,
        busy: &HashSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        let now = self.now();
        let lease = self.lease_ms();
        let (held, instances, renew_due, retry_refused) = {
            let c = lock(&self.coord);
            let held: Vec<String> = c.held.keys().cloned().collect();
            let renew_due = c.renewed_ms.is_none_or(|t| now - t >= lease / 3);
            let retry = c
                .refused_ms
                .is_none_or(|t| now - t >= self.tick().as_millis() as i64);
            (held, c.instances.max(1), renew_due, retry)
        };
        let held_set: HashSet<&String> = held.iter().collect();
        let new_due = {
            let c = lock(&self.coord);
            due.iter()
                .any(|a| !held_set.contains(a) && (retry_refused || !c.refused.contains(a)))
        };
        let released: Vec<String> = held
            .iter()
            .filter(|a| !due.contains(a) && !busy.contains(*a))
            .cloned()
            .collect();
        if !renew_due && !new_due && released.is_empty() {
            let c = lock(&self.coord);
            return Ok(due.into_iter().filter(|a| c.held.contains_key(a)).collect());
        }
        let (cands, share) = plan_leases(&self.cfg.instance, &due, &held, busy, instances);
        if cands.is_empty() && released.is_empty() {
            // Nothing held, nothing due: no transaction.
            let mut c = lock(&self.coord);
            c.held.clear();
            c.renewed_ms = Some(now);
            return Ok(Vec::new());
        }
        let got = self
            .store
            .acquire_leases(
                &self.cfg.destination,
                &self.cfg.instance,
                &cands,
                share,
                now,
                now + lease,
            )
            .await?;
        // Beyond the share (another instance joined): give back what is not in flight.
        let mut keep: Vec<String> = Vec::with_capacity(got.len());
        let mut give_back = released;
        for a in got {
            if keep.len() >= share && !busy.contains(&a) {
                give_back.push(a);
            } else {
                keep.push(a);
            }
        }
        if !give_back.is_empty() {
            self.store
                .release_leases(&self.cfg.destination, &self.cfg.instance, Some(&give_back))
                .await?;
        }
        let stop_at = now + lease - lease / 3;
        let mut c = lock(&self.coord);
        c.held = keep.iter().map(|a| (a.clone(), stop_at)).collect();
        c.renewed_ms = Some(now);
        c.refused = due
            .iter()
            .filter(|a| !c.held.contains_key(*a))
            .cloned()
            .collect();
        c.refused_ms = Some(now);
        Ok(due.into_iter().filter(|a| c.held.contains_key(a)).collect())
    }

    /// Renews the leases held when a third of the lease has passed since the last renewal.
    async fn renew(&self) -> Result<(), StoreError> {
        let now = self.now();
        let lease = self.lease_ms();
        let held: Vec<String> = {
            let c = lock(&self.coord);
            if c.held.is_empty() || c.renewed_ms.is_some_and(|t| now - t < lease / 3) {
                return Ok(());
            }
            c.held.keys().cloned().collect()
        };
        let got = self
            .store
            .acquire_leases(
                &self.cfg.destination,
                &self.cfg.instance,
                &held,
                held.len(),
                now,
                now + lease,
            )
            .await?;
        let stop_at = now + lease - lease / 3;
        let mut c = lock(&self.coord);
        c.held = got.into_iter().map(|a| (a, stop_at)).collect();
        c.renewed_ms = Some(now);
        Ok(())
    }

    /// Gives back every lease and the registration with the project (shutdown).
    pub async fn leave(&self) {
        lock(&self.coord).held.clear();
        let d = &self.cfg.destination;
        if let Err(e) = self.store.release_leases(d, &self.cfg.instance, None).await {
            tracing::warn!(destination = %d, error = %e, "could not give back the leases at shutdown: other instances take the audiences over when the leases end");
        }
        if let Err(e) = self
            .store
            .leave(&self.cfg.project, &self.cfg.instance)
            .await
        {
            tracing::warn!(destination = %d, error = %e, "could not leave the project's shared rate budget at shutdown: the others count this instance until its registration ends");
        }
    }

    /// One tick, when due (`force`: now): beat, renew, share cuts. Store failures are
    /// returned; what was done before stays done.
    pub async fn coordinate(&self, force: bool) -> Result<(), StoreError> {
        let now = self.now();
        {
            let mut c = lock(&self.coord);
            let tick = self.tick().as_millis() as i64;
            if !force && c.ticked_ms.is_some_and(|t| now - t < tick) {
                return Ok(());
            }
            c.ticked_ms = Some(now);
        }
        let lease = self.lease_ms();
        let n = self
            .store
            .heartbeat(&self.cfg.project, &self.cfg.instance, now, now + lease)
            .await?;
        lock(&self.coord).instances = n;
        self.client.limiter().set_share(n);
        self.renew().await?;
        self.share_cuts(now).await
    }

    /// Hands this instance's rate cuts on and takes up the others'.
    async fn share_cuts(&self, now: i64) -> Result<(), StoreError> {
        let limiter = self.client.limiter();
        for e in limiter.adaptive_endpoints() {
            let mine = limiter.take_cut(e).map(|rate| RateCut {
                rate,
                cut_ms: now,
                instance: self.cfg.instance.clone(),
            });
            let stored = self
                .store
                .share_rate_cut(&self.cfg.project, e.label(), mine.as_ref())
                .await?;
            let Some(cut) = stored else { continue };
            let mut c = lock(&self.coord);
            let seen = c.seen_cuts.get(&e).copied();
            if seen.is_some_and(|s| cut.cut_ms <= s) {
                continue;
            }
            c.seen_cuts.insert(e, cut.cut_ms);
            drop(c);
            let fresh = now - cut.cut_ms < CUT_MEMORY_MS;
            if cut.instance != self.cfg.instance && fresh {
                limiter.adopt_cut(e, cut.rate);
            }
        }
        Ok(())
    }

    /// Follows a pause or resume that another instance stored (`stored`: the word this
    /// instance last stored or took up).
    pub async fn follow_stored_state(&self, stored: &mut Option<&'static str>) {
        let s = match self.store.destination_state(&self.cfg.destination).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    destination = %self.cfg.destination,
                    error = %e,
                    "could not read the destination's stored state (paused or running); trying again at the next tick"
                );
                return;
            }
        };
        match s {
            Some(DestinationState::Paused { reason, since_ms }) if !self.is_paused() => {
                self.adopt_pause(reason, since_ms);
                *stored = Some("paused");
            }
            Some(other) if !other.is_paused() && self.is_paused() && *stored == Some("paused") => {
                // Another instance's probe worked.
                self.resume();
                *stored = Some(other.word());
            }
            _ => {}
        }
    }
}

/// Makes `client`'s limiter take its send times from the project's shared bucket in `store`
/// (as the reconcilers do), so that a command run beside the service (`audience verify`)
/// keeps to the project's limits together with it.
pub fn share_rate_budget(
    client: &iterable::client::Client,
    store: Store,
    project: String,
    clock: EpochClock,
) {
    client
        .limiter()
        .share_slots(std::sync::Arc::new(StoreSlots {
            store,
            project,
            clock,
            warned_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        }));
}

/// The project's shared bucket in the store, as the limiter's [`SlotSource`].
pub(super) struct StoreSlots {
    pub store: Store,
    pub project: String,
    pub clock: EpochClock,
    /// When a failure to reach the bucket was last logged (epoch ms).
    pub warned_ms: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for StoreSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSlots")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl SlotSource for StoreSlots {
    fn reserve(
        &self,
        endpoint: Endpoint,
        count: u32,
        interval: Duration,
        tolerance: Duration,
        not_before: Duration,
    ) -> Pin<Box<dyn Future<Output = Option<Duration>> + Send + '_>> {
        Box::pin(async move {
            let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
            let now_us = (self.clock)().saturating_mul(1000);
            let from_us = now_us.saturating_add(micros(not_before));
            let first = self
                .store
                .reserve_slots(
                    &self.project,
                    endpoint.label(),
                    count,
                    micros(interval).max(1),
                    micros(tolerance),
                    from_us,
                )
                .await;
            match first {
                // The wait counts from now, after the store's answer: counted from before
                // the call, every slot would be late by the call's time, which varies, and
                // two requests a slot apart could leave closer than the limit allows.
                Ok(first) => {
                    let answered_us = (self.clock)().saturating_mul(1000);
                    Some(Duration::from_micros(
                        u64::try_from(first.saturating_sub(answered_us)).unwrap_or(0),
                    ))
                }
                Err(e) => {
                    // Every request asks: one line a minute while it lasts.
                    let now = (self.clock)();
                    let last = self.warned_ms.load(Ordering::Relaxed);
                    if now.saturating_sub(last) >= 60_000
                        && self
                            .warned_ms
                            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        tracing::warn!(
                            project = %self.project,
                            error = %e,
                            "the shared rate budget could not be read; this instance limits its share on its own meanwhile"
                        );
                    }
                    None
                }
            }
        })
    }
}

/// A stored cut older than this is history: a starting instance does not take it up.
const CUT_MEMORY_MS: i64 = 5 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_share_is_the_due_audiences_over_the_instances() {
        let due = v(&["a", "b", "c", "d", "e"]);
        let (cands, share) = plan_leases("i1", &due, &[], &HashSet::new(), 2);
        assert_eq!(share, 3);
        let mut sorted = cands.clone();
        sorted.sort();
        assert_eq!(sorted, due, "every due audience is a candidate");
        let (_, share) = plan_leases("i1", &due, &[], &HashSet::new(), 1);
        assert_eq!(share, 5);
        let (_, share) = plan_leases("i1", &[], &[], &HashSet::new(), 3);
        assert_eq!(share, 1, "at least one");
    }

    #[test]
    fn held_audiences_come_first_and_idle_ones_are_left_out() {
        let due = v(&["a", "b", "c"]);
        let busy: HashSet<String> = ["z".to_string()].into();
        let (cands, _) = plan_leases("i1", &due, &v(&["c", "y", "z"]), &busy, 1);
        // c (held and due) and z (held, in flight) first; y (held, idle) is not renewed.
        assert_eq!(&cands[..2], &v(&["c", "z"])[..]);
        assert!(!cands.contains(&"y".to_string()));
        assert_eq!(cands.len(), 4);
    }

    #[test]
    fn instances_start_at_different_places() {
        let due: Vec<String> = (0..20).map(|i| format!("aud_{i:02}")).collect();
        let firsts: HashSet<String> = (0..10)
            .map(|i| plan_leases(&format!("inst{i}"), &due, &[], &HashSet::new(), 3).0[0].clone())
            .collect();
        assert!(firsts.len() > 1, "{firsts:?}");
    }

    #[tokio::test]
    async fn a_slot_wait_counts_from_the_store_answer_not_from_the_call() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicI64, Ordering};
        // Each read of the clock is 30 ms after the previous one, as if every store call
        // took that long.
        let ms = Arc::new(AtomicI64::new(0));
        let tick = ms.clone();
        let slots = StoreSlots {
            store: Store::sqlite(crate::sqlite::SqliteStore::open_in_memory().expect("open")),
            project: "p".into(),
            clock: Arc::new(move || tick.fetch_add(30, Ordering::SeqCst)),
            warned_ms: AtomicI64::new(i64::MIN),
        };
        let interval = Duration::from_millis(100);
        let reserve = || {
            slots.reserve(
                Endpoint::Subscribe,
                1,
                interval,
                Duration::ZERO,
                Duration::ZERO,
            )
        };
        // Called at 0 ms: the first slot is at 0 ms; answered at 30 ms: no wait.
        assert_eq!(reserve().await, Some(Duration::ZERO));
        // Called at 60 ms: the next slot is at 100 ms; answered at 90 ms: 10 ms to wait (not
        // the 40 ms counted from the call, which would send it at 130 ms).
        assert_eq!(reserve().await, Some(Duration::from_millis(10)));
        assert_eq!(ms.load(Ordering::SeqCst), 120);
    }

    #[test]
    fn instance_ids_differ() {
        assert_ne!(new_instance_id(), new_instance_id());
    }
}
