//! An audience's snapshot floor: the time of the newest snapshot applied to it. A snapshot is
//! the whole audience as of its time, so a live change older than that time is superseded by
//! it, whatever its key: also a key the snapshot kept as it was, or one it never named. Both
//! engines record the floor in the snapshot's transaction and check it when they accept an
//! event (pure: the rule and its wording live here, once).

use segment::event::format_timestamp_ms;

use crate::store::MembershipChange;

/// The newest snapshot of an audience: its time (epoch ms) and the messageId of the event that
/// logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floor {
    pub time_ms: i64,
    pub message_id: String,
}

impl Floor {
    /// The time a change is judged by: its event time, or, for an event without one, when
    /// the service received it (so that it applies after any snapshot taken before).
    pub fn time_of(change: &MembershipChange, received_ms: i64) -> i64 {
        change.time_ms.unwrap_or(received_ms)
    }

    /// Why `change` (received at `received_ms`) is superseded by this floor, if it is: its
    /// time is earlier than the snapshot's. A change at the snapshot's very time is not (the
    /// snapshot's own keys then compare by arrival, as two events of one time do).
    pub fn supersedes(&self, change: &MembershipChange, received_ms: i64) -> Option<String> {
        let t = Self::time_of(change, received_ms);
        (t < self.time_ms).then(|| {
            format!(
                "superseded by the snapshot {:?} at {}: it replaced the whole audience, and \
                 this change is older ({})",
                self.message_id,
                format_timestamp_ms(self.time_ms),
                format_timestamp_ms(t)
            )
        })
    }

    /// The floor after a snapshot at `time_ms` (logged as `message_id`) is applied over
    /// `old`: the later of the two (a snapshot older than the floor leaves it).
    pub fn raised(old: Option<Floor>, time_ms: i64, message_id: &str) -> Floor {
        match old {
            Some(f) if f.time_ms >= time_ms => f,
            _ => Floor {
                time_ms,
                message_id: message_id.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChangeSettings, Identity};

    fn change(time_ms: Option<i64>) -> MembershipChange {
        MembershipChange {
            audience_key: "vip".into(),
            list_id: None,
            identity: Identity::new(Some("a@x.io"), None),
            member: true,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms,
        }
    }

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn an_older_change_is_superseded_with_the_snapshot_named_and_a_later_one_is_not() {
        let f = Floor {
            time_ms: T,
            message_id: "snapshot-1".into(),
        };
        let why = f.supersedes(&change(Some(T - 1)), T + 5).expect("older");
        assert!(why.contains("2023-11-14T22:13:20.000Z"), "{why}");
        assert!(why.contains("\"snapshot-1\""), "{why}");
        assert!(why.contains("2023-11-14T22:13:19.999Z"), "{why}");
        assert_eq!(f.supersedes(&change(Some(T)), T + 5), None);
        assert_eq!(f.supersedes(&change(Some(T + 1)), T - 5), None);
        // Without a time: the arrival counts.
        assert_eq!(f.supersedes(&change(None), T + 5), None);
        assert!(f.supersedes(&change(None), T - 5).is_some());
    }

    #[test]
    fn the_floor_only_rises() {
        let f = Floor::raised(None, T, "s1");
        assert_eq!((f.time_ms, f.message_id.as_str()), (T, "s1"));
        let g = Floor::raised(Some(f.clone()), T - 10, "s0");
        assert_eq!(g, f);
        let h = Floor::raised(Some(f), T + 10, "s2");
        assert_eq!((h.time_ms, h.message_id.as_str()), (T + 10, "s2"));
    }
}
