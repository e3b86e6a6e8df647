//! Response classification: maps a `UserBulkUpdateListResponse` back to an outcome per row
//! sent, keeping Iterable's bucket as the reason. Emails are compared case-insensitively.

use std::collections::HashSet;

use iterable_api::types::{BulkUpdateResponse, FailedUpdates};

use crate::plan::Operation;

/// What happened to one row of a subscribe or unsubscribe request that got a 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Iterable applied it.
    Done,
    /// Unsubscribe of a user Iterable does not know: the user is not on the list, which is
    /// what was wanted.
    DoneNotFound,
    /// The profile is GDPR-forgotten: skipped for good, retrying never helps.
    Forgotten { bucket: &'static str },
    /// Iterable refused the row; `bucket` is the `failedUpdates` key (or deprecated array).
    Rejected { bucket: &'static str },
}

impl RowOutcome {
    /// Whether the desired state may be considered reached.
    pub fn is_done(&self) -> bool {
        matches!(self, RowOutcome::Done | RowOutcome::DoneNotFound)
    }
}

/// A row as sent: its identifiers.
#[derive(Debug, Clone, Copy)]
pub struct SentRow<'a> {
    pub email: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

/// Per-row outcomes, plus the failures Iterable counted that no row could be matched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub rows: Vec<RowOutcome>,
    pub unmatched_failures: u64,
}

struct Buckets {
    /// (bucket name, lowercased emails, userIds), in precedence order.
    sets: Vec<(&'static str, HashSet<String>, HashSet<String>)>,
}

fn lower_set(v: &[String]) -> HashSet<String> {
    v.iter().map(|e| e.to_lowercase()).collect()
}

fn set(v: &[String]) -> HashSet<String> {
    v.iter().cloned().collect()
}

impl Buckets {
    fn from_failed(f: &FailedUpdates) -> Self {
        // Forgotten first (a permanent skip), then not-found, then the refusals.
        Buckets {
            sets: vec![
                (
                    "forgotten",
                    lower_set(&f.forgotten_emails),
                    set(&f.forgotten_user_ids),
                ),
                (
                    "notFound",
                    lower_set(&f.not_found_emails),
                    set(&f.not_found_user_ids),
                ),
                (
                    "conflict",
                    lower_set(&f.conflict_emails),
                    set(&f.conflict_user_ids),
                ),
                (
                    "invalidData",
                    lower_set(&f.invalid_data_emails),
                    set(&f.invalid_data_user_ids),
                ),
                (
                    "invalid",
                    lower_set(&f.invalid_emails),
                    set(&f.invalid_user_ids),
                ),
            ],
        }
    }

    fn from_deprecated(r: &BulkUpdateResponse) -> Self {
        Buckets {
            sets: vec![(
                "invalid",
                lower_set(&r.invalid_emails),
                set(&r.invalid_user_ids),
            )],
        }
    }

    fn find(&self, row: &SentRow<'_>) -> Option<&'static str> {
        let email = row.email.map(str::to_lowercase);
        self.sets.iter().find_map(|(name, emails, ids)| {
            let hit = email.as_ref().is_some_and(|e| emails.contains(e))
                || row.user_id.is_some_and(|u| ids.contains(u));
            hit.then_some(*name)
        })
    }
}

fn bucket_key(name: &'static str, emails: bool) -> &'static str {
    match (name, emails) {
        ("forgotten", true) => "forgottenEmails",
        ("forgotten", false) => "forgottenUserIds",
        ("notFound", true) => "notFoundEmails",
        ("notFound", false) => "notFoundUserIds",
        ("conflict", true) => "conflictEmails",
        ("conflict", false) => "conflictUserIds",
        ("invalidData", true) => "invalidDataEmails",
        ("invalidData", false) => "invalidDataUserIds",
        (_, true) => "invalidEmails",
        (_, false) => "invalidUserIds",
    }
}

/// Classifies every row of a request that Iterable answered with 200. `failedUpdates` is used
/// when present; otherwise the deprecated `invalidEmails`/`invalidUserIds` arrays are.
pub fn classify(op: Operation, rows: &[SentRow<'_>], resp: &BulkUpdateResponse) -> Classified {
    let buckets = match &resp.failed_updates {
        Some(f) => Buckets::from_failed(f),
        None => Buckets::from_deprecated(resp),
    };
    let mut failed = 0u64;
    let out = rows
        .iter()
        .map(|row| {
            let Some(name) = buckets.find(row) else {
                return RowOutcome::Done;
            };
            failed += 1;
            // Name the bucket by the identifier that matched, email first.
            let by_email = row.email.is_some_and(|e| {
                buckets
                    .sets
                    .iter()
                    .any(|(n, emails, _)| *n == name && emails.contains(&e.to_lowercase()))
            });
            let bucket = bucket_key(name, by_email);
            match (name, op) {
                ("forgotten", _) => RowOutcome::Forgotten { bucket },
                ("notFound", Operation::Unsubscribe) => RowOutcome::DoneNotFound,
                _ => RowOutcome::Rejected { bucket },
            }
        })
        .collect();
    Classified {
        rows: out,
        unmatched_failures: resp.fail_count.saturating_sub(failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(text: &str) -> BulkUpdateResponse {
        serde_json::from_str(text).unwrap()
    }

    fn row<'a>(email: Option<&'a str>, user_id: Option<&'a str>) -> SentRow<'a> {
        SentRow { email, user_id }
    }

    #[test]
    fn buckets_map_back_to_rows() {
        let r = resp(
            r#"{"successCount":2,"failCount":5,
                "invalidEmails":["bad@","gone@x.co","new@x.co","c@x.co"],"invalidUserIds":["u9"],
                "failedUpdates":{"invalidEmails":["bad@"],"forgottenEmails":["gone@x.co"],
                "notFoundEmails":["new@x.co"],"conflictUserIds":["u9"],"invalidDataEmails":["c@x.co"]}}"#,
        );
        let rows = [
            row(Some("ok@x.co"), None),
            row(Some("BAD@"), None),
            row(Some("Gone@X.co"), Some("g")),
            row(Some("new@x.co"), None),
            row(Some("a@x.co"), Some("u9")),
            row(Some("c@x.co"), None),
            row(None, Some("fine")),
        ];
        let sub = classify(Operation::Subscribe, &rows, &r);
        assert_eq!(
            sub.rows,
            vec![
                RowOutcome::Done,
                RowOutcome::Rejected {
                    bucket: "invalidEmails"
                },
                RowOutcome::Forgotten {
                    bucket: "forgottenEmails"
                },
                RowOutcome::Rejected {
                    bucket: "notFoundEmails"
                },
                RowOutcome::Rejected {
                    bucket: "conflictUserIds"
                },
                RowOutcome::Rejected {
                    bucket: "invalidDataEmails"
                },
                RowOutcome::Done,
            ]
        );
        assert_eq!(sub.unmatched_failures, 0);
        let unsub = classify(Operation::Unsubscribe, &rows, &r);
        assert_eq!(
            unsub.rows[3],
            RowOutcome::DoneNotFound,
            "notFound on unsubscribe is done"
        );
        assert!(unsub.rows[3].is_done() && !unsub.rows[1].is_done());
    }

    #[test]
    fn old_responses_use_the_deprecated_arrays() {
        let r = resp(r#"{"successCount":1,"failCount":1,"invalidEmails":["user@"]}"#);
        let c = classify(
            Operation::Subscribe,
            &[row(Some("user@"), None), row(Some("a@x.co"), None)],
            &r,
        );
        assert_eq!(
            c.rows,
            vec![
                RowOutcome::Rejected {
                    bucket: "invalidEmails"
                },
                RowOutcome::Done
            ]
        );
    }

    #[test]
    fn failures_that_match_no_row_are_counted() {
        let r = resp(r#"{"successCount":0,"failCount":2,"failedUpdates":{}}"#);
        let c = classify(Operation::Subscribe, &[row(Some("a@x.co"), None)], &r);
        assert_eq!(
            (c.rows[0].clone(), c.unmatched_failures),
            (RowOutcome::Done, 2)
        );
    }
}
