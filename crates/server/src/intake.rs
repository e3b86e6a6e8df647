//! From parsed ingestion items to store rows: each event goes through the destination's
//! planner (mapping, validation, membership; from the event's text on the fast path) and becomes changes, a rejection or a skip; the
//! audience settings it carried that could not be used are logged with it (each is left unset
//! for the event, so the audience's configured value, if any, applies).

use destination::plan::Planner;
use destination::prepare::Prepared;
use sync::{EventContent, MembershipChange, NewEvent};

use crate::config::DestinationConfig;
use crate::ingest::{EventBody, Item};

/// What the intake needs of one destination.
pub struct Intake<'a> {
    pub config: &'a DestinationConfig,
    pub planner: &'a Planner,
}

impl Intake<'_> {
    /// One store row per item, in order. `fallback_id` names items that carried no usable
    /// messageId (invalid ones), so they are still logged and can be found. The events given
    /// as text are read as one batch ([`Planner::prepare_texts`]).
    pub fn to_new_events(
        &self,
        items: Vec<Item>,
        received_ms: i64,
        fallback_id: &str,
    ) -> Vec<NewEvent> {
        let mut from_texts = self
            .planner
            .prepare_texts(items.iter().filter_map(Item::text))
            .into_iter();
        items
            .into_iter()
            .map(|item| {
                let from_text = item.text().and_then(|_| from_texts.next());
                self.to_new_event(item, from_text, received_ms, fallback_id)
            })
            .collect()
    }

    /// One store row for an item; `from_text` is what the planner made of its text, if it
    /// came as text.
    fn to_new_event(
        &self,
        item: Item,
        from_text: Option<Result<Prepared, String>>,
        received_ms: i64,
        fallback_id: &str,
    ) -> NewEvent {
        let mut ignored_settings = Vec::new();
        let (message_id, content) = match item {
            Item::Event { message_id, event } => {
                let prepared = match event {
                    EventBody::Json(event) => self.planner.prepare(event, 0),
                    // Checked JSON already; the reason is only there to lose nothing.
                    EventBody::Text(text) => from_text
                        .unwrap_or_else(|| self.planner.prepare_text(&text, 0))
                        .unwrap_or_else(Prepared::Rejected),
                };
                let content = match prepared {
                    Prepared::Change { change, ignored } => {
                        let mut m = MembershipChange::from_change(&change);
                        m.settings = self
                            .config
                            .audience_settings(&change.audience_key, change.settings)
                            .into();
                        ignored_settings = ignored;
                        EventContent::Changes(vec![m])
                    }
                    Prepared::Rejected(reason) => EventContent::Rejected(reason),
                    Prepared::Skipped(reason) => EventContent::Skipped(reason),
                };
                (message_id, content)
            }
            Item::Invalid {
                index,
                message_id,
                reason,
            } => (
                message_id.unwrap_or_else(|| format!("{fallback_id}:{index}")),
                EventContent::Rejected(reason),
            ),
        };
        NewEvent {
            destination: self.config.name.clone(),
            message_id,
            received_ms,
            content,
            ignored_settings,
        }
    }
}
