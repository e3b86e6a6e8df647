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
