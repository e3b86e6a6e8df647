//! The query parameters of the admin reads, typed, each with a parser of a query string that
//! names the field at fault. The limits are checked by the reads themselves ([`super::read`]),
//! so that a caller building a value by hand (the console) gets the same errors.

use utoipa::IntoParams;

use super::AdminError;
use crate::http::query_param;

/// Rows of a page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 100;

/// The most rows a page holds.
pub const MAX_LIMIT: usize = 500;

/// The longest filter taken, in characters.
pub const MAX_FILTER_CHARS: usize = 200;

/// The longest email or userId looked up, in bytes.
pub const MAX_ID_BYTES: usize = 1024;

fn limit_of(query: Option<&str>) -> Result<Option<usize>, AdminError> {
    match query_param(query, "limit") {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            AdminError::bad(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}, got {v:?}"),
            )
        }),
    }
}

/// The page size asked for, checked: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given.
pub fn checked_limit(limit: Option<usize>) -> Result<usize, AdminError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(AdminError::bad(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}, got {n}"),
        )),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// A page of audiences, by audience key.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The audience key after which the page starts (the `nextAfter` of the page before).
    pub after: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    pub limit: Option<usize>,
}

impl PageParams {
    pub fn from_query(query: Option<&str>) -> Result<Self, AdminError> {
        Ok(Self {
            after: non_empty(query_param(query, "after")),
            limit: limit_of(query)?,
        })
    }
}

/// A page of rejected users.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RejectedParams {
    /// Where the page starts: the `nextAfter` of the page before (opaque).
    pub after: Option<String>,
    /// Only users whose email or userId contains this (ASCII letters without case), at most
    /// 200 characters.
    pub filter: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    pub limit: Option<usize>,
}

impl RejectedParams {
    pub fn from_query(query: Option<&str>) -> Result<Self, AdminError> {
        Ok(Self {
            after: non_empty(query_param(query, "after")),
            filter: non_empty(query_param(query, "filter")),
            limit: limit_of(query)?,
        })
    }
}

/// Whom to look up: exactly one of `email` and `userId`; a page of the audiences they are in.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct UserParams {
    /// The exact email (compared lowercased, as stored).
    pub email: Option<String>,
    /// The exact userId.
    pub user_id: Option<String>,
    /// Where the page starts: the `nextAfter` of the page before (opaque).
    pub after: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    pub limit: Option<usize>,
}

impl UserParams {
    pub fn from_query(query: Option<&str>) -> Result<Self, AdminError> {
        Ok(Self {
            email: non_empty(query_param(query, "email")),
            user_id: non_empty(query_param(query, "userId")),
            after: non_empty(query_param(query, "after")),
            limit: limit_of(query)?,
        })
    }
}

/// Which destination's event to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only this destination's event (every destination's by default).
    pub destination: Option<String>,
}

impl EventParams {
    pub fn from_query(query: Option<&str>) -> Result<Self, AdminError> {
        Ok(Self {
            destination: non_empty(query_param(query, "destination")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_name_their_field() {
        assert_eq!(checked_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(checked_limit(Some(500)), Ok(500));
        for bad in [0, 501] {
            let e = checked_limit(Some(bad)).expect_err("out of range");
            assert_eq!(e.status(), 400);
            assert!(e.to_string().starts_with("limit: must be"), "{e}");
        }
        let e = PageParams::from_query(Some("limit=ten")).expect_err("not a number");
        assert_eq!(e.body().field.as_deref(), Some("limit"));
        assert_eq!(
            PageParams::from_query(Some("after=vip%20list&limit=5")),
            Ok(PageParams {
                after: Some("vip list".into()),
                limit: Some(5)
            })
        );
        assert_eq!(
            UserParams::from_query(Some("userId=u+1&email=")),
            Ok(UserParams {
                email: None,
                user_id: Some("u 1".into()),
                after: None,
                limit: None,
            })
        );
    }
}
