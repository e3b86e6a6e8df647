//! `verify_every`: each audience of a destination is verified against its live list once per
//! period, in the background, and the drift found is reported as metrics
//! (`iterable_lists_drift_members{kind}` and the time of the last verify); with
//! `verify_repair`, it is repaired too.
//!
//! Several instances on one store verify each audience once per period together, not once
//! each: an instance verifies an audience only after taking the audience's verify lease, which
//! lasts the period (a lease of the store's lease table, under a key no audience can have).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{VerifyOptions, verify};
use crate::reconciler::Reconciler;

/// How often the audiences are verified, and whether the drift is repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifySchedule {
    /// The period of every audience not named in `by_audience` (`None`: not verified).
    pub every: Option<Duration>,
    /// Audiences with their own period, or `None` to leave them out.
    pub by_audience: BTreeMap<String, Option<Duration>>,
    pub repair: bool,
}

impl VerifySchedule {
    /// How often `audience` is verified, if it is.
    pub fn period(&self, audience: &str) -> Option<Duration> {
        match self.by_audience.get(audience) {
            Some(p) => *p,
            None => self.every,
        }
    }

    /// Whether any audience is verified at all.
    pub fn is_active(&self) -> bool {
        self.every.is_some() || self.by_audience.values().any(Option::is_some)
    }

    /// The shortest period.
    fn shortest(&self) -> Option<Duration> {
        self.every
            .into_iter()
            .chain(self.by_audience.values().flatten().copied())
            .min()
    }
}

/// The lease key of an audience's verify: starts with a control character, which the
/// audience keys of events never hold.
pub fn lease_key(audience: &str) -> String {
    format!("\u{1}verify:{audience}")
}

/// How often the schedule looks for audiences due: a quarter of the period, between 100 ms and
/// a minute.
fn tick(every: Duration) -> Duration {
    (every / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Verifies the audiences of `rec`'s destination on `schedule` until `shutdown` turns true.
pub async fn run(
    rec: Arc<Reconciler>,
    schedule: VerifySchedule,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(shortest) = schedule.shortest() else {
        return;
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let watching = shutdown.clone();
        tokio::select! {
            _ = shutdown.changed() => return,
            r = verify_due(&rec, &schedule, &watching) => {
                if let Err(e) = r {
                    tracing::warn!(
                        destination = %rec.config().destination,
                        error = %e,
                        "the scheduled verify could not run; trying again later"
                    );
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(tick(shortest)) => {}
        }
    }
}

/// Verifies each audience with a list whose verify lease this instance takes now.
async fn verify_due(
    rec: &Reconciler,
    schedule: &VerifySchedule,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), crate::store::StoreError> {
    let cfg = rec.config();
    let store = rec.store();
    let audiences: Vec<String> = store
        .list_counts(&cfg.destination)
        .await?
        .into_iter()
        .filter(|c| c.list_id.is_some())
        .map(|c| c.audience_key)
        .collect();
    for audience in audiences {
        let Some(every) = schedule.period(&audience) else {
            continue;
        };
        let period = i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 4);
        let now = rec.now_ms();
        let key = [lease_key(&audience)];
        let got = store
            .acquire_leases(&cfg.destination, &cfg.instance, &key, 1, now, now + period)
            .await?;
        if got.is_empty() {
            continue;
        }
        let opts = VerifyOptions {
            destination: cfg.destination.clone(),
            audience: audience.clone(),
            project_type: cfg.project_type,
            repair: schedule.repair,
            now_ms: now,
        };
        match verify(store, rec.client(), &opts, &mut |_| {}).await {
            Ok(r) => {
                rec.metrics().drift_verified(
                    &audience,
                    r.counts.missing,
                    r.counts.extra,
                    rec.now_ms(),
                );
                if !r.in_sync() {
                    tracing::warn!(
                        destination = %cfg.destination,
                        audience,
                        list_id = r.list_id,
                        missing = r.counts.missing,
                        extra = r.counts.extra,
                        reopened = r.reopened,
                        unsubscribes = r.unsubscribes,
                        "the Iterable list drifted from the audience: {} missing, {} extra{}",
                        r.counts.missing,
                        r.counts.extra,
                        if schedule.repair {
                            "; the corrections are being sent"
                        } else {
                            "; run `iterable-lists audience verify --repair` to send the \
                             corrections"
                        }
                    );
                }
            }
            Err(e) => tracing::warn!(
                destination = %cfg.destination,
                audience,
                error = %e,
                "the scheduled verify failed; tried again next period"
            ),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_a_quarter_of_the_period_within_bounds() {
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(tick(Duration::from_millis(10)), Duration::from_millis(100));
        assert_eq!(tick(Duration::from_secs(6 * 3600)), Duration::from_secs(60));
        assert!(lease_key("vip").starts_with('\u{1}'));
    }

    #[test]
    fn each_audience_has_its_period_or_the_destination_s() {
        let hour = Duration::from_secs(3600);
        let s = VerifySchedule {
            every: Some(hour),
            by_audience: [
                ("fast".to_string(), Some(Duration::from_secs(60))),
                ("never".to_string(), None),
            ]
            .into(),
            repair: false,
        };
        assert_eq!(s.period("other"), Some(hour));
        assert_eq!(s.period("fast"), Some(Duration::from_secs(60)));
        assert_eq!(s.period("never"), None);
        assert_eq!(s.shortest(), Some(Duration::from_secs(60)));
        assert!(s.is_active());
        let only_one = VerifySchedule {
            by_audience: [("vip".to_string(), Some(hour))].into(),
            ..VerifySchedule::default()
        };
        assert_eq!(
            (only_one.period("x"), only_one.period("vip")),
            (None, Some(hour))
        );
        assert!(only_one.is_active());
        assert!(!VerifySchedule::default().is_active());
    }
}
