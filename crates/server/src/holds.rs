//! What an operator does about the mass-removal guard's holds, shared by the admin endpoint
//! (`POST /v1/holds/release|discard?destination=&audience=`) and `iterable-lists audience
//! hold`: the hold of one audience shown, released (its removals are sent) or discarded (they
//! are not; the users stay members and each removal's event says the operator discarded it).
//! Both act on the store, so every instance sharing it sees the decision at its next look.

use serde_json::{Value, json};
use sync::{HoldAction, RemovalHold, Store, StoreError};

use crate::status::hold_json;

/// Why an operator's decision could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("no destination named {0:?} in the configuration")]
    UnknownDestination(String),
    #[error("the removals of audience {audience:?} of destination {destination:?} are not held")]
    NotHeld {
        destination: String,
        audience: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hold of `audience`, if its removals are held.
pub async fn show(
    store: &Store,
    destination: &str,
    audience: &str,
) -> Result<Option<RemovalHold>, StoreError> {
    Ok(store
        .removal_holds(destination)
        .await?
        .into_iter()
        .find(|h| h.audience_key == audience))
}

/// Applies `action` to the held removals of `audience`, as `actor` (kept in the store and
/// logged). Returns how many removals it released or discarded.
pub async fn resolve(
    store: &Store,
    destination: &str,
    audience: &str,
    action: HoldAction,
    actor: &str,
    now_ms: i64,
) -> Result<u64, HoldError> {
    let n = store
        .resolve_hold(destination, audience, action, actor, now_ms)
        .await?
        .ok_or_else(|| HoldError::NotHeld {
            destination: destination.to_string(),
            audience: audience.to_string(),
        })?;
    tracing::warn!(
        destination = %destination,
        audience = %audience,
        action = action.word(),
        removals = n,
        actor = %actor,
        "mass-removal guard: {n} held removal(s) of audience {audience:?} {} by {actor}{}",
        action.past(),
        match action {
            HoldAction::Release => "; they are sent now",
            HoldAction::Discard => "; they will not be sent and the users stay on the list",
        }
    );
    Ok(n)
}

/// What a decision did, as JSON.
pub fn resolved_json(destination: &str, audience: &str, action: HoldAction, n: u64) -> Value {
    json!({
        "success": true,
        "destination": destination,
        "audience": audience,
        "action": action.past(),
        "removals": n,
    })
}

/// A hold (or none) as JSON.
pub fn shown_json(destination: &str, audience: &str, hold: Option<&RemovalHold>) -> Value {
    json!({
        "destination": destination,
        "audience": audience,
        "held": hold.is_some(),
        "hold": hold.map(hold_json),
    })
}
