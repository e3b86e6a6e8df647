//! Why one user write was refused, and the `failedUpdates` buckets (and deprecated arrays) a
//! bulk answer reports it in.

use crate::identity::{UserIdProblem, normalize_email};
use crate::wire::BulkResponse;

/// Why one user write was refused. Subscribe reports it in a bucket; users/update as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// Neither email nor userId was given.
    NoIdentifier,
    Invalid {
        email: Option<String>,
        user_id: Option<(String, UserIdProblem)>,
    },
    Forgotten {
        email: bool,
        user_id: bool,
    },
    NotFound {
        email: bool,
        user_id: bool,
    },
    Conflict {
        email: bool,
        user_id: bool,
    },
    FieldType {
        field: String,
        expected: &'static str,
        incoming: &'static str,
    },
}

/// Puts a failed row's identifiers in their `failedUpdates` buckets and the deprecated arrays.
pub(super) fn record_failure(
    resp: &mut BulkResponse,
    email: Option<&str>,
    user_id: Option<&str>,
    err: &RowError,
) {
    resp.fail_count += 1;
    let email_l = email.map(|e| normalize_email(e).into_owned());
    let f = &mut resp.failed_updates;
    let (email_bucket, uid_bucket): (Option<&mut Vec<String>>, Option<&mut Vec<String>>) = match err
    {
        RowError::NoIdentifier => (None, None),
        RowError::Invalid {
            email: e,
            user_id: u,
        } => (
            e.as_ref().map(|_| &mut f.invalid_emails),
            u.as_ref().map(|_| &mut f.invalid_user_ids),
        ),
        RowError::Forgotten {
            email: e,
            user_id: u,
        } => (
            e.then_some(&mut f.forgotten_emails),
            u.then_some(&mut f.forgotten_user_ids),
        ),
        RowError::NotFound {
            email: e,
            user_id: u,
        } => (
            e.then_some(&mut f.not_found_emails),
            u.then_some(&mut f.not_found_user_ids),
        ),
        RowError::Conflict {
            email: e,
            user_id: u,
        } => (
            e.then_some(&mut f.conflict_emails),
            u.then_some(&mut f.conflict_user_ids),
        ),
        RowError::FieldType { .. } => (
            Some(&mut f.invalid_data_emails),
            Some(&mut f.invalid_data_user_ids),
        ),
    };
    if let (Some(b), Some(e)) = (email_bucket, &email_l) {
        b.push(e.clone());
    }
    if let (Some(b), Some(u)) = (uid_bucket, user_id) {
        b.push(u.to_string());
    }
    if let Some(e) = email_l {
        resp.invalid_emails.push(e);
    }
    if let Some(u) = user_id {
        resp.invalid_user_ids.push(u.to_string());
    }
}
