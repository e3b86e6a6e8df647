//! Segment-compatible ingestion parsing (placeholder, being written).

/// Segment's size limits, configurable under `[ingest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// One event, in a batch or alone (Segment: 32 KB).
    pub max_event_bytes: usize,
    /// A `/v1/identify` or `/v1/track` call (Segment: 32 KB).
    pub max_call_bytes: usize,
    /// A `/v1/batch` request or a webhook body, after gzip decoding (Segment: 500 KB).
    pub max_batch_bytes: usize,
    /// Events in one batch (Segment: 2,500).
    pub max_batch_events: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_call_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
            max_batch_events: 2500,
        }
    }
}
