//! The last WARN and ERROR events of this process's log, for the overview's "recent warnings":
//! a `tracing` [`Layer`] ([`WarningLayer`]) that keeps the last [`KEPT`] of them, with their
//! message and fields, in memory ([`WarningLog`]). Nothing the service logs carries a secret
//! (see README.md, "Logs"), so neither does this; values are cut to [`MAX_VALUE_CHARS`]
//! characters and events to [`MAX_FIELDS`] fields, so memory stays bounded.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex};

use sync::EpochClock;
use tracing::field::{Field as TracingField, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use super::views::{Field, Warning};

/// Events kept.
pub const KEPT: usize = 100;

/// Characters kept of the message and of each field's value.
pub const MAX_VALUE_CHARS: usize = 1000;

/// Fields kept of an event (besides its message).
pub const MAX_FIELDS: usize = 32;

/// The last [`KEPT`] WARN and ERROR events.
pub struct WarningLog {
    clock: EpochClock,
    ring: Mutex<VecDeque<Warning>>,
}

impl std::fmt::Debug for WarningLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarningLog").finish_non_exhaustive()
    }
}

static GLOBAL: LazyLock<Arc<WarningLog>> =
    LazyLock::new(|| Arc::new(WarningLog::new(crate::app::system_clock())));

/// The process's log of warnings: what [`crate::logs::install`] fills and the service shows.
pub fn global() -> Arc<WarningLog> {
    GLOBAL.clone()
}

impl WarningLog {
    /// An empty log whose events are timed by `clock` (epoch ms).
    pub fn new(clock: EpochClock) -> Self {
        Self {
            clock,
            ring: Mutex::new(VecDeque::with_capacity(KEPT)),
        }
    }

    fn push(&self, w: Warning) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(w);
    }

    /// The events kept, newest first.
    pub fn recent(&self) -> Vec<Warning> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().cloned().collect()
    }

    /// The layer that fills this log.
    pub fn layer(self: &Arc<Self>) -> WarningLayer {
        WarningLayer { log: self.clone() }
    }
}

/// Keeps each WARN and ERROR event in its [`WarningLog`].
#[derive(Debug, Clone)]
pub struct WarningLayer {
    log: Arc<WarningLog>,
}

fn cut(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(MAX_VALUE_CHARS) {
        s.truncate(at);
        s.push('…');
    }
    s
}

#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<Field>,
}

impl Collect {
    fn add(&mut self, field: &TracingField, value: String) {
        if field.name() == "message" {
            self.message = cut(value);
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.push(Field {
                name: field.name().to_string(),
                value: cut(value),
            });
        }
    }
}

impl Visit for Collect {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.add(field, value.to_string());
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn Debug) {
        self.add(field, format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for WarningLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // Levels order by verbosity: ERROR < WARN < INFO.
        if *meta.level() > Level::WARN {
            return;
        }
        let mut c = Collect::default();
        event.record(&mut c);
        self.log.push(Warning {
            at_ms: (self.log.clock)(),
            level: meta.level().as_str().to_string(),
            target: meta.target().to_string(),
            message: c.message,
            fields: c.fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_newest_first_and_bounded() {
        let log = Arc::new(WarningLog::new(Arc::new(|| 42)));
        let subscriber = tracing_subscriber::registry().with(log.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(destination = "prod", "not kept");
            tracing::warn!(destination = "prod", status = 401u16, "the key was refused");
            tracing::error!(reason = %"disk full", "the store cannot write");
            tracing::debug!("not kept either");
        });
        let got = log.recent();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].level, "ERROR");
        assert_eq!(got[0].message, "the store cannot write");
        assert_eq!(
            got[0].fields,
            [Field {
                name: "reason".into(),
                value: "disk full".into()
            }]
        );
        assert_eq!(got[1].level, "WARN");
        assert_eq!(got[1].at_ms, 42);
        assert_eq!(
            got[1]
                .fields
                .iter()
                .map(|f| (f.name.as_str(), f.value.as_str()))
                .collect::<Vec<_>>(),
            [("destination", "prod"), ("status", "401")]
        );

        let long = "x".repeat(MAX_VALUE_CHARS + 10);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(log.layer()), || {
            for i in 0..KEPT + 5 {
                tracing::warn!(n = i, value = %long, "warning {i}");
            }
        });
        let got = log.recent();
        assert_eq!(got.len(), KEPT);
        assert_eq!(got[0].message, format!("warning {}", KEPT + 4));
        assert_eq!(got[KEPT - 1].message, "warning 5");
        assert_eq!(got[0].fields[1].value.chars().count(), MAX_VALUE_CHARS + 1);
    }
}
