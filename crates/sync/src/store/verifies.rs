//! The last `audience verify` of each audience (run by the command or by the `verify_every`
//! schedule), kept by the store so that `status` and `GET /v1/status` can say when the live
//! list was last compared and what drift was found, on every instance and across restarts.

/// What the last verify of an audience found, or why it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRecord {
    pub audience_key: String,
    /// When it ran (epoch ms: its start).
    pub ran_ms: i64,
    /// Whether it repaired what it found.
    pub repair: bool,
    /// Why it stopped before the end; `None` when it completed (the figures are then its
    /// findings; otherwise they are 0).
    pub error: Option<String>,
    /// Distinct identifiers in the live list.
    pub in_iterable: u64,
    /// Keys the store holds as acknowledged members.
    pub acknowledged: u64,
    /// Acknowledged members that the list lacks.
    pub missing: u64,
    /// Identifiers in the list that the store does not hold as members.
    pub extra: u64,
    /// Keys made pending again (repair).
    pub reopened: u64,
    /// Unsubscribes stored for identifiers the store did not know (repair).
    pub unsubscribes: u64,
}

impl VerifyRecord {
    /// It completed and found no drift.
    pub fn in_sync(&self) -> bool {
        self.error.is_none() && self.missing == 0 && self.extra == 0
    }

    /// One line for people: `in sync`, `drift: 3 missing, 2 extra (repaired: ...)` or
    /// `failed: ...`.
    pub fn describe(&self) -> String {
        if let Some(e) = &self.error {
            return format!("failed: {e}");
        }
        let found = format!(
            "{} in Iterable, {} acknowledged",
            self.in_iterable, self.acknowledged
        );
        if self.in_sync() {
            return format!("in sync ({found})");
        }
        let mut s = format!(
            "drift: {} missing, {} extra ({found})",
            self.missing, self.extra
        );
        if self.repair {
            s.push_str(&format!(
                "; repaired: {} key(s) sent again, {} unsubscribe(s)",
                self.reopened, self.unsubscribes
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_says_in_sync_drift_or_failure() {
        let mut r = VerifyRecord {
            in_iterable: 10,
            acknowledged: 10,
            ..VerifyRecord::default()
        };
        assert_eq!(r.describe(), "in sync (10 in Iterable, 10 acknowledged)");
        r.missing = 2;
        r.extra = 1;
        r.repair = true;
        r.reopened = 2;
        assert_eq!(
            r.describe(),
            "drift: 2 missing, 1 extra (10 in Iterable, 10 acknowledged); repaired: 2 key(s) \
             sent again, 0 unsubscribe(s)"
        );
        r.error = Some("cannot read the list from Iterable: HTTP 401".into());
        assert!(!r.in_sync());
        assert_eq!(
            r.describe(),
            "failed: cannot read the list from Iterable: HTTP 401"
        );
    }
}
