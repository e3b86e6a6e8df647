//! The Iterable endpoints the emulator serves: routing from method and path, config names,
//! and the documented default rate limits.

use std::fmt;
use std::str::FromStr;

use crate::ratelimit::RateLimit;

/// One emulated API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    GetLists,
    CreateList,
    DeleteList,
    ListSize,
    GetUsers,
    PreviewUsers,
    Subscribe,
    Unsubscribe,
    GetUserByEmail,
    GetUserById,
    UpdateUser,
}

/// A routed request: the endpoint plus the list id taken from the path, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    /// The raw `{listId}` path segment for `DELETE /api/lists/{listId}` and `/size`.
    pub list_id_segment: Option<String>,
}

impl Endpoint {
    pub const ALL: [Endpoint; 11] = [
        Endpoint::GetLists,
        Endpoint::CreateList,
        Endpoint::DeleteList,
        Endpoint::ListSize,
        Endpoint::GetUsers,
        Endpoint::PreviewUsers,
        Endpoint::Subscribe,
        Endpoint::Unsubscribe,
        Endpoint::GetUserByEmail,
        Endpoint::GetUserById,
        Endpoint::UpdateUser,
    ];

    /// The name used in flags and config files (`--limit subscribe=20/s`).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::GetLists => "lists",
            Endpoint::CreateList => "create",
            Endpoint::DeleteList => "delete",
            Endpoint::ListSize => "size",
            Endpoint::GetUsers => "getUsers",
            Endpoint::PreviewUsers => "previewUsers",
            Endpoint::Subscribe => "subscribe",
            Endpoint::Unsubscribe => "unsubscribe",
            Endpoint::GetUserByEmail => "getByEmail",
            Endpoint::GetUserById => "byUserId",
            Endpoint::UpdateUser => "usersUpdate",
        }
    }

    /// Iterable's published limit for this endpoint, per project; `None` where none is published.
    pub fn default_limit(self) -> Option<RateLimit> {
        match self {
            Endpoint::GetLists | Endpoint::GetUserByEmail | Endpoint::GetUserById => {
                Some(RateLimit::per_second(100))
            }
            Endpoint::ListSize | Endpoint::GetUsers | Endpoint::PreviewUsers => {
                Some(RateLimit::per_minute(5))
            }
            Endpoint::UpdateUser => Some(RateLimit::per_second(500)),
            Endpoint::CreateList
            | Endpoint::DeleteList
            | Endpoint::Subscribe
            | Endpoint::Unsubscribe => None,
        }
    }

    /// Routes a request under `/api`. `None` means Iterable's 404 "Action not found".
    pub fn route(method: &str, path: &str) -> Option<Route> {
        let simple = |endpoint| {
            Some(Route {
                endpoint,
                list_id_segment: None,
            })
        };
        match (method, path) {
            ("GET", "/api/lists") => simple(Endpoint::GetLists),
            ("POST", "/api/lists") => simple(Endpoint::CreateList),
            ("GET", "/api/lists/getUsers") => simple(Endpoint::GetUsers),
            ("GET", "/api/lists/previewUsers") => simple(Endpoint::PreviewUsers),
            ("POST", "/api/lists/subscribe") => simple(Endpoint::Subscribe),
            ("POST", "/api/lists/unsubscribe") => simple(Endpoint::Unsubscribe),
            ("GET", "/api/users/getByEmail") => simple(Endpoint::GetUserByEmail),
            ("GET", "/api/users/byUserId") => simple(Endpoint::GetUserById),
            ("POST", "/api/users/update") => simple(Endpoint::UpdateUser),
            _ => {
                let rest = path.strip_prefix("/api/lists/")?;
                let with_segment = |endpoint, seg: &str| {
                    (!seg.is_empty() && !seg.contains('/')).then(|| Route {
                        endpoint,
                        list_id_segment: Some(seg.to_string()),
                    })
                };
                match method {
                    "DELETE" => with_segment(Endpoint::DeleteList, rest),
                    "GET" => with_segment(Endpoint::ListSize, rest.strip_suffix("/size")?),
                    _ => None,
                }
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An endpoint name that is not one of [`Endpoint::name`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown endpoint {0:?}; expected one of lists, create, delete, size, getUsers, previewUsers, subscribe, unsubscribe, getByEmail, byUserId, usersUpdate"
)]
pub struct UnknownEndpoint(pub String);

impl FromStr for Endpoint {
    type Err = UnknownEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| UnknownEndpoint(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        type Case = (
            &'static str,
            &'static str,
            Option<(Endpoint, Option<&'static str>)>,
        );
        let cases: &[Case] = &[
            ("GET", "/api/lists", Some((Endpoint::GetLists, None))),
            ("POST", "/api/lists", Some((Endpoint::CreateList, None))),
            (
                "DELETE",
                "/api/lists/42",
                Some((Endpoint::DeleteList, Some("42"))),
            ),
            (
                "GET",
                "/api/lists/42/size",
                Some((Endpoint::ListSize, Some("42"))),
            ),
            (
                "GET",
                "/api/lists/getUsers",
                Some((Endpoint::GetUsers, None)),
            ),
            (
                "GET",
                "/api/lists/previewUsers",
                Some((Endpoint::PreviewUsers, None)),
            ),
            (
                "POST",
                "/api/lists/subscribe",
                Some((Endpoint::Subscribe, None)),
            ),
            (
                "POST",
                "/api/lists/unsubscribe",
                Some((Endpoint::Unsubscribe, None)),
            ),
            (
                "GET",
                "/api/users/getByEmail",
                Some((Endpoint::GetUserByEmail, None)),
            ),
            (
                "GET",
                "/api/users/byUserId",
                Some((Endpoint::GetUserById, None)),
            ),
            (
                "POST",
                "/api/users/update",
                Some((Endpoint::UpdateUser, None)),
            ),
            ("DELETE", "/api/lists/", None),
            ("DELETE", "/api/lists/1/2", None),
            ("GET", "/api/lists/42", None),
            ("PUT", "/api/lists", None),
            ("GET", "/api/lists/subscribe", None),
            ("GET", "/api/nothing", None),
        ];
        for (m, p, want) in cases {
            let got = Endpoint::route(m, p).map(|r| (r.endpoint, r.list_id_segment));
            let want = want.map(|(e, s)| (e, s.map(str::to_string)));
            assert_eq!(got, want, "{m} {p}");
        }
    }

    #[test]
    fn names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(e.name().parse::<Endpoint>().unwrap(), e);
        }
        assert!("bogus".parse::<Endpoint>().is_err());
    }
}
