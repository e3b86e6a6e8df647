//! `PUT /v1/audiences/{destination}/{audience}/members` (admin): a full snapshot of an
//! audience, for warehouse jobs; the same as `iterable-lists audience sync` (see
//! `crate::snapshot`). The body (CSV or NDJSON, gzip recognised) is streamed to the parser
//! chunk by chunk, never held whole; the listener's minimum body rate bounds a slow upload,
//! and the parser caps a row at [`sync::snapshot::MAX_ROW_BYTES`]. Query: `dry_run`,
//! `allow_mass_removal` (`true`/`false`), `max_bad_ratio` (0 to 1), `as_of` (epoch ms or ISO
//! 8601), `format` (`csv`, `ndjson`; default from `Content-Type`, else the first byte).
//!
//! Answers: 200 with the report (applied, dry run (with `refused` if it would be), or nothing
//! to change); 409 with the report when refused (mass removal, too many bad rows); 400 naming the parameter, or the line that
//! stops the reading; 404 for an unknown destination; 429 while [`MAX_RUNNING`] snapshots run.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{Request, State};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::Value;
use sync::snapshot::{Format, Progress, RunError, run_snapshot};
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::snapshot::{SnapshotOptions, snapshot_spec};

use super::auth::Admin;
use super::params::{path_segment, query_param};
use super::reply::{Reply, body_handled, closing, error_reply, json_reply};

/// Snapshots applied at once by a service; more are answered 429.
pub const MAX_RUNNING: usize = 2;

/// The handler.
#[utoipa::path(put, path = "/v1/audiences/{destination}/{audience}/members", tag = "admin (earlier)",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
        ("dry_run" = Option<bool>, Query, description = "Report the changes without making them"),
        ("allow_mass_removal" = Option<bool>, Query, description = "Apply even past the removal guard"),
        ("max_bad_ratio" = Option<f64>, Query, description = "Share of bad rows tolerated, 0 to 1"),
        ("as_of" = Option<String>, Query, description = "The snapshot's time: epoch ms or ISO 8601"),
        ("format" = Option<String>, Query, description = "csv or ndjson (default from Content-Type)"),
    ),
    request_body(content = String, description = "The audience's members, CSV or NDJSON (gzip recognised)", content_type = "text/csv"),
    responses(
        (status = 200, description = "The report: applied, dry run, or nothing to change", body = Object),
        (status = 400, description = "A bad parameter, or the line that stops the reading"),
        (status = 404, description = "No such destination"),
        (status = 409, description = "Refused (mass removal, too many bad rows), with the report", body = Object),
        (status = 429, description = "Too many snapshots at once"),
    ))]
pub(crate) async fn put_members(
    _: Admin,
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Reply {
    body_handled(members(&state, req).await)
}

/// `(destination, audience)` of `/v1/audiences/{destination}/{audience}/members`.
fn names(path: &str) -> Option<(String, String)> {
    let mut parts = path.trim_matches('/').split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("v1"), Some("audiences"), Some(d), Some(a), Some("members"), None) => {
            Some((path_segment(d), path_segment(a)))
        }
        _ => None,
    }
}

fn flag(query: Option<&str>, name: &str) -> Result<bool, String> {
    match query_param(query, name).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(format!("{name} must be true or false, got {other:?}")),
    }
}

/// The options of the query string, each refused with its name.
fn options(query: Option<&str>) -> Result<(SnapshotOptions, Option<Format>), String> {
    let mut o = SnapshotOptions {
        dry_run: flag(query, "dry_run")?,
        allow_mass_removal: flag(query, "allow_mass_removal")?,
        ..SnapshotOptions::default()
    };
    if let Some(v) = query_param(query, "max_bad_ratio") {
        o.max_bad_ratio = v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| format!("max_bad_ratio must be a share between 0 and 1, got {v:?}"))?;
    }
    if let Some(v) = query_param(query, "as_of") {
        let t = v.trim();
        o.time_ms = Some(match t.parse::<i64>() {
            Ok(ms) => ms,
            Err(_) => segment::event::parse_timestamp_ms(t).map_err(|e| {
                format!("as_of must be epoch milliseconds or an ISO 8601 time, got {v:?}: {e}")
            })?,
        });
    }
    let format = match query_param(query, "format").as_deref() {
        None => None,
        Some("csv") => Some(Format::Csv),
        Some("ndjson") | Some("jsonl") => Some(Format::Ndjson),
        Some(other) => return Err(format!("format must be csv or ndjson, got {other:?}")),
    };
    Ok((o, format))
}

/// The format a `Content-Type` names, if any.
fn format_of_type(content_type: Option<&str>) -> Format {
    let t = content_type.unwrap_or_default().to_ascii_lowercase();
    if t.starts_with("text/csv") {
        Format::Csv
    } else if t.contains("ndjson") || t.contains("jsonl") || t.contains("json-seq") {
        Format::Ndjson
    } else {
        Format::Auto
    }
}

async fn members(state: &AppState, req: Request) -> Reply {
    let Some((dest, audience)) = names(req.uri().path()) else {
        return closing(error_reply(404, "no such endpoint"));
    };
    let Some(d) = state.destination(&dest) else {
        return closing(error_reply(404, format!("no destination named {dest:?}")));
    };
    let (options, format) = match options(req.uri().query()) {
        Ok(o) => o,
        Err(e) => return closing(error_reply(400, e)),
    };
    match req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") | Some("gzip") => {}
        Some(other) => {
            return closing(error_reply(
                415,
                format!("Content-Encoding {other:?} is not supported; send gzip or none"),
            ));
        }
    }
    let format = format.unwrap_or_else(|| {
        format_of_type(
            req.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )
    });
    let spec = match snapshot_spec(&d.config, &audience, options, state.now_ms()) {
        Ok(s) => s,
        Err(e) => return closing(error_reply(400, e)),
    };
    let Ok(_permit) = state.snapshots.try_acquire() else {
        return closing(error_reply(
            429,
            format!("{MAX_RUNNING} snapshots are being applied already; retry when one is done"),
        ));
    };
    // The body, chunk by chunk, to the parser's thread.
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let mut body = req.into_body();
    let pump = tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(f) => match f.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Err(e) => Err(e.to_string()),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let input = BodyReader {
        rx,
        chunk: Bytes::new(),
    };
    let result = run_snapshot(
        &state.store,
        spec,
        input,
        format,
        None,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    pump.abort();
    match result {
        Ok(report) => {
            let mut v = report.to_json();
            // A dry run answers what would happen, a refusal included.
            let refused = report.diff.refused.is_some() && !report.dry_run;
            v["success"] = Value::Bool(!refused);
            if report.diff.applied {
                // Deliver the changes now rather than at the next poll.
                d.waker.notify_one();
            }
            json_reply(if refused { 409 } else { 200 }, &v)
        }
        Err(RunError::Parse(e)) => closing(error_reply(400, e.to_string())),
        Err(e) => closing(error_reply(500, e.to_string())),
    }
}

/// The request body as a blocking reader, for the parser's thread.
struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    chunk: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => {
                    return Err(std::io::Error::other(format!(
                        "the request body could not be read: {e}"
                    )));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_query_options_are_read_or_refused_by_name() {
        assert_eq!(
            names("/v1/audiences/prod/vip%20users/members"),
            Some(("prod".into(), "vip users".into()))
        );
        assert_eq!(names("/v1/audiences/prod/members"), None);
        let ok = options(Some("dry_run=true&allow_mass_removal=1&max_bad_ratio=0.5&as_of=2023-11-14T22:13:20Z&format=csv"))
            .expect("options");
        assert!(ok.0.dry_run && ok.0.allow_mass_removal);
        assert_eq!(ok.0.max_bad_ratio, 0.5);
        assert_eq!(ok.0.time_ms, Some(1_700_000_000_000));
        assert_eq!(ok.1, Some(Format::Csv));
        let cases = [
            ("dry_run=yes", "dry_run must be true or false"),
            (
                "max_bad_ratio=2",
                "max_bad_ratio must be a share between 0 and 1",
            ),
            (
                "as_of=soon",
                "as_of must be epoch milliseconds or an ISO 8601 time",
            ),
            ("format=xml", "format must be csv or ndjson"),
        ];
        for (q, want) in cases {
            let e = options(Some(q)).expect_err(q);
            assert!(e.contains(want), "{q}: {e}");
        }
        assert_eq!(format_of_type(Some("text/csv; charset=utf-8")), Format::Csv);
        assert_eq!(format_of_type(Some("application/x-ndjson")), Format::Ndjson);
        assert_eq!(format_of_type(None), Format::Auto);
    }
}
