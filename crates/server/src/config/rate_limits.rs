//! `[destination.delivery.rate_limits]`: the pace of each Iterable endpoint, written as
//! `"20/s"`, `"5/min"`, `"adaptive"` or `"off"`.

use std::collections::HashMap;

use iterable::limiter::{Endpoint, Limit};
use toml::Spanned;

use super::error::{Place, R};
use super::raw::RawRateLimits;

/// The `[destination.delivery.rate_limits]` key of each endpoint.
pub const ENDPOINT_KEYS: [(&str, Endpoint); 9] = [
    ("get_lists", Endpoint::GetLists),
    ("create_list", Endpoint::CreateList),
    ("delete_list", Endpoint::DeleteList),
    ("list_size", Endpoint::ListSize),
    ("get_users", Endpoint::GetUsers),
    ("subscribe", Endpoint::Subscribe),
    ("unsubscribe", Endpoint::Unsubscribe),
    ("user_by_email", Endpoint::UserByEmail),
    ("user_by_id", Endpoint::UserById),
];

fn positive(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// Reads one rate limit of `endpoint`: `"N/s"` or `"N/min"` (N may be fractional), optionally
/// followed by `",burst=B"`; `"adaptive"` (the endpoint's adaptive default, or, for an endpoint
/// with a published limit, adaptive below it), optionally with `",start=S"`, `",min=M"`,
/// `",max=X"` in requests per second; or `"off"`. A per-second rate keeps a tenth of a second's
/// worth as burst, a per-minute rate a minute's worth, as Iterable's buckets do.
pub fn parse_limit(endpoint: Endpoint, text: &str) -> Result<Limit, String> {
    let bad = || {
        format!(
            "expected \"N/s\" or \"N/min\" (optionally with \",burst=B\"), \"adaptive\" or \"off\", got {text:?}"
        )
    };
    let mut parts = text.trim().split(',').map(str::trim);
    let head = parts.next().unwrap_or_default();
    if head.eq_ignore_ascii_case("off") {
        return match parts.next() {
            None => Ok(Limit::Unlimited),
            Some(_) => Err(bad()),
        };
    }
    if head.eq_ignore_ascii_case("adaptive") {
        return adaptive(endpoint, parts, bad);
    }
    fixed(head, parts, bad)
}

/// `"adaptive"` and its `start=`, `min=`, `max=` options (`options` are the parts after the
/// first comma); what is not given comes from the endpoint's default limit.
fn adaptive<'t>(
    endpoint: Endpoint,
    options: impl Iterator<Item = &'t str>,
    bad: impl Fn() -> String,
) -> Result<Limit, String> {
    let (mut start, mut min, mut max) = match endpoint.default_limit() {
        Limit::Adaptive { start, min, max } => (start, min, max),
        Limit::Fixed { per_second, .. } => (per_second, per_second / 10.0, per_second),
        Limit::Unlimited => (20.0, 1.0, 1000.0),
    };
    for option in options {
        let (k, v) = option.split_once('=').ok_or_else(&bad)?;
        let v = positive(v).ok_or_else(|| {
            format!(
                "adaptive: {}: expected a positive number of requests per second, got {:?}",
                k.trim(),
                v.trim()
            )
        })?;
        match k.trim() {
            "start" => start = v,
            "min" => min = v,
            "max" => max = v,
            other => {
                return Err(format!(
                    "adaptive: unknown option {other:?}; expected start, min or max"
                ));
            }
        }
    }
    if !(min <= start && start <= max) {
        return Err(format!(
            "adaptive: expected min <= start <= max, got min={min}, start={start}, max={max}"
        ));
    }
    Ok(Limit::Adaptive { start, min, max })
}

/// `"N/s"` or `"N/min"` (`head`) and its `burst=` option.
fn fixed<'t>(
    head: &str,
    options: impl Iterator<Item = &'t str>,
    bad: impl Fn() -> String,
) -> Result<Limit, String> {
    let (count, unit) = head.split_once('/').ok_or_else(&bad)?;
    let count = positive(count).ok_or_else(&bad)?;
    let mut limit = match unit.trim() {
        "s" | "sec" | "second" => Limit::fixed(count),
        "min" | "minute" => Limit::Fixed {
            per_second: count / 60.0,
            burst: (count.ceil() as u32).max(1),
        },
        _ => return Err(bad()),
    };
    for option in options {
        match option.split_once('=') {
            Some((k, v)) if k.trim() == "burst" => {
                if let Limit::Fixed { burst, .. } = &mut limit {
                    *burst = parse_burst(v)?;
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(limit)
}

/// The `burst=` value: a whole number of at least 1.
fn parse_burst(v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|b| *b >= 1)
        .ok_or_else(|| {
            format!(
                "burst: expected a whole number of at least 1, got {:?}",
                v.trim()
            )
        })
}

impl Place {
    /// `rate_limits` (this place is the table itself): `all`, then each endpoint's own key.
    pub(super) fn rate_limits(&self, raw: &RawRateLimits) -> R<HashMap<Endpoint, Limit>> {
        let mut limits = HashMap::new();
        if let Some(all) = &raw.all {
            for (_, e) in ENDPOINT_KEYS {
                let limit = parse_limit(e, &all.get_ref().0)
                    .map_err(|p| self.fail("all", all.span(), p))?;
                limits.insert(e, limit);
            }
        }
        for ((key, e), (_, value)) in ENDPOINT_KEYS.into_iter().zip(raw.by_key()) {
            if let Some(value) = value {
                let limit = parse_limit(e, &value.get_ref().0)
                    .map_err(|p| self.fail(key, Spanned::span(value), p))?;
                limits.insert(e, limit);
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::keys_of;

    #[test]
    fn rate_limit_table() {
        use Endpoint::*;
        let ok: &[(Endpoint, &str, Limit)] = &[
            (Subscribe, "20/s", Limit::fixed(20.0)),
            (Subscribe, " 20 / sec ", Limit::fixed(20.0)),
            (
                Subscribe,
                "200/s,burst=5",
                Limit::Fixed {
                    per_second: 200.0,
                    burst: 5,
                },
            ),
            (
                GetUsers,
                "5/min",
                Limit::Fixed {
                    per_second: 5.0 / 60.0,
                    burst: 5,
                },
            ),
            (
                GetUsers,
                "5/minute, burst=1",
                Limit::Fixed {
                    per_second: 5.0 / 60.0,
                    burst: 1,
                },
            ),
            (
                CreateList,
                "0.5/s",
                Limit::Fixed {
                    per_second: 0.5,
                    burst: 1,
                },
            ),
            (Unsubscribe, "off", Limit::Unlimited),
            (Unsubscribe, "OFF", Limit::Unlimited),
            (Subscribe, "adaptive", Subscribe.default_limit()),
            (
                Subscribe,
                "adaptive,start=10,max=200",
                Limit::Adaptive {
                    start: 10.0,
                    min: 1.0,
                    max: 200.0,
                },
            ),
            (
                GetLists,
                "adaptive",
                Limit::Adaptive {
                    start: 100.0,
                    min: 10.0,
                    max: 100.0,
                },
            ),
        ];
        for (e, text, want) in ok {
            assert_eq!(parse_limit(*e, text).as_ref(), Ok(want), "{e:?} {text:?}");
        }
        let bad = [
            ("", "expected \"N/s\" or \"N/min\""),
            ("20", "expected \"N/s\" or \"N/min\""),
            ("20/h", "expected \"N/s\" or \"N/min\""),
            ("0/s", "expected \"N/s\" or \"N/min\""),
            ("-1/s", "expected \"N/s\" or \"N/min\""),
            ("inf/s", "expected \"N/s\" or \"N/min\""),
            ("x/s", "expected \"N/s\" or \"N/min\""),
            (
                "20/s,burst=0",
                "burst: expected a whole number of at least 1, got \"0\"",
            ),
            ("20/s,burst=x", "burst: expected a whole number"),
            ("20/s,burts=2", "expected \"N/s\" or \"N/min\""),
            ("off,burst=2", "expected \"N/s\" or \"N/min\""),
            ("adaptive,speed=2", "adaptive: unknown option \"speed\""),
            (
                "adaptive,start=0",
                "adaptive: start: expected a positive number",
            ),
            (
                "adaptive,start=2000",
                "adaptive: expected min <= start <= max",
            ),
            ("adaptive,min", "expected \"N/s\" or \"N/min\""),
        ];
        for (text, want) in bad {
            let err = parse_limit(Subscribe, text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
        // Every endpoint has a key, and every key but `all` an endpoint.
        let rate_limit_keys = keys_of::<RawRateLimits>();
        assert_eq!(rate_limit_keys.len(), ENDPOINT_KEYS.len() + 1);
        for (key, _) in ENDPOINT_KEYS {
            assert!(rate_limit_keys.contains(&key));
        }
        let read: Vec<&str> = RawRateLimits::default().by_key().map(|(k, _)| k).to_vec();
        let keys: Vec<&str> = ENDPOINT_KEYS.map(|(k, _)| k).to_vec();
        assert_eq!(read, keys, "by_key follows ENDPOINT_KEYS");
    }
}
