//! [`AdminError`]: why an admin read or action failed, with the HTTP status it answers with.

use super::views::ErrorBody;

/// Why an admin read or action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("no destination named {0:?}")]
    UnknownDestination(String),
    #[error("destination {destination:?} has no audience {audience:?}")]
    UnknownAudience {
        destination: String,
        audience: String,
    },
    #[error("no event with messageId {0:?}")]
    UnknownEvent(String),
    /// A query or body field the caller got wrong.
    #[error("{field}: {reason}")]
    BadParam { field: String, reason: String },
    /// The action does not apply now (e.g. no hold to release, a disabled destination).
    #[error("{0}")]
    Conflict(String),
    /// Iterable answered an action's call with an error (never the key).
    #[error("Iterable: {0}")]
    Iterable(String),
    /// The store could not be read or written.
    #[error("the store: {0}")]
    Store(String),
}

impl AdminError {
    /// A bad value of `field`.
    pub fn bad(field: &str, reason: impl Into<String>) -> Self {
        AdminError::BadParam {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The HTTP status: 404 for what does not exist, 400 for a bad parameter, 409 for an
    /// action that does not apply, 502 for Iterable's failure, 503 for the store's.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::UnknownDestination(_)
            | AdminError::UnknownAudience { .. }
            | AdminError::UnknownEvent(_) => 404,
            AdminError::BadParam { .. } => 400,
            AdminError::Conflict(_) => 409,
            AdminError::Iterable(_) => 502,
            AdminError::Store(_) => 503,
        }
    }

    /// The JSON body of the error answer.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            success: false,
            message: self.to_string(),
            field: match self {
                AdminError::BadParam { field, .. } => Some(field.clone()),
                _ => None,
            },
        }
    }
}

impl From<sync::StoreError> for AdminError {
    fn from(e: sync::StoreError) -> Self {
        AdminError::Store(e.to_string())
    }
}
