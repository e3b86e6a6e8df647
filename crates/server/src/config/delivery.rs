//! `[destination.delivery]`: how requests to one destination are batched, timed and paced.

use std::collections::HashMap;
use std::time::Duration;

use destination::plan::MAX_REQUEST_BYTES;
use iterable::limiter::{Endpoint, Limit};

use super::error::{Place, R};
use super::raw::RawDelivery;

/// How requests to one destination are batched and paced (`[destination.delivery]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// `batch_size`: rows per subscribe/unsubscribe request, 1 to 1000 (default 1000).
    pub batch_size: usize,
    /// `max_request_bytes`: bytes per request body, 1024 to 4,000,000 (the default).
    pub max_request_bytes: usize,
    /// `linger_ms`: how long to wait for more changes before sending, 0 to 1000 (default 500).
    pub linger: Duration,
    /// `concurrency`: requests in flight, 1 to 64 (default 4).
    pub concurrency: usize,
    /// `timeout_ms`: per attempt, 1 to 600,000 (default 30,000).
    pub timeout: Duration,
    /// `[destination.delivery.rate_limits]`: limits replacing [`Endpoint::default_limit`].
    pub rate_limits: HashMap<Endpoint, Limit>,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            max_request_bytes: MAX_REQUEST_BYTES,
            linger: Duration::from_millis(500),
            concurrency: 4,
            timeout: Duration::from_millis(30_000),
            rate_limits: HashMap::new(),
        }
    }
}

impl Place {
    /// `delivery` (this place is the table itself), each key within its range.
    pub(super) fn delivery(&self, raw: &RawDelivery) -> R<Delivery> {
        let d = Delivery::default();
        let rate_limits = match &raw.rate_limits {
            Some(r) => self.nested("rate_limits").rate_limits(&r.0)?,
            None => HashMap::new(),
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let max_bytes = MAX_REQUEST_BYTES as i64;
        Ok(Delivery {
            batch_size: self.int_in(
                "batch_size",
                raw.batch_size.as_ref(),
                1,
                1000,
                d.batch_size as i64,
            )?,
            max_request_bytes: self.int_in(
                "max_request_bytes",
                raw.max_request_bytes.as_ref(),
                1024,
                max_bytes,
                d.max_request_bytes as i64,
            )?,
            linger: Duration::from_millis(self.int_in(
                "linger_ms",
                raw.linger_ms.as_ref(),
                0,
                1000,
                ms(d.linger),
            )? as u64),
            concurrency: self.int_in(
                "concurrency",
                raw.concurrency.as_ref(),
                1,
                64,
                d.concurrency as i64,
            )?,
            timeout: Duration::from_millis(self.int_in(
                "timeout_ms",
                raw.timeout_ms.as_ref(),
                1,
                600_000,
                ms(d.timeout),
            )? as u64),
            rate_limits,
        })
    }
}
