//! What several instances on one store share to work together: leases of audiences (who
//! delivers an audience now), the live instances per Iterable project (how the project's rate
//! budget is divided), and the latest rate cut per project and endpoint (a 429 seen by one
//! instance slows all of them).

/// An instance's lease of one audience of a destination: only the holder reads the
/// audience's pending rows, resolves its list and sends its requests, until `expires_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The audience.
    pub audience_key: String,
    /// The holding instance's id (random per process start).
    pub holder: String,
    /// When the lease ends unless renewed (epoch ms, the holder's clock).
    pub expires_ms: i64,
}

/// The latest cut of an adaptive rate limit after a 429, shared by every instance sending to
/// the same Iterable project: the project's whole rate after the cut (requests per second,
/// all instances together), when it was cut, and by which instance.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCut {
    /// The project's rate after the cut, all instances together (requests/s).
    pub rate: f64,
    /// When it was cut (epoch ms); a later cut replaces an earlier one.
    pub cut_ms: i64,
    /// The instance that saw the 429.
    pub instance: String,
}

/// GCRA over a block of slots: the first slot's time and the bucket's next schedule, from the
/// stored schedule `tat` (none yet: now).
pub(crate) fn slots_after(
    tat: Option<i64>,
    count: u32,
    interval_us: i64,
    tolerance_us: i64,
    now_us: i64,
) -> (i64, i64) {
    let tat = tat.unwrap_or(now_us);
    let first = tat.saturating_sub(tolerance_us).max(now_us);
    let next = tat
        .max(now_us)
        .saturating_add(interval_us.saturating_mul(i64::from(count.max(1))));
    (first, next)
}

#[cfg(test)]
mod tests {
    use super::slots_after;

    #[test]
    fn slots_follow_the_schedule_and_never_come_before_now() {
        // Empty bucket: from now; the schedule moves by the block.
        assert_eq!(slots_after(None, 3, 100, 0, 1_000), (1_000, 1_300));
        // Behind schedule: the next slot is the schedule's, less the tolerance.
        assert_eq!(slots_after(Some(1_300), 1, 100, 0, 1_010), (1_300, 1_400));
        assert_eq!(slots_after(Some(1_300), 1, 100, 100, 1_010), (1_200, 1_400));
        // Idle: from now again.
        assert_eq!(slots_after(Some(1_300), 2, 100, 0, 9_000), (9_000, 9_200));
        // A block of none counts as one.
        assert_eq!(slots_after(None, 0, 100, 0, 0), (0, 100));
    }
}
