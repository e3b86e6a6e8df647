//! A full snapshot of an audience uploaded from the console: the members pasted (or read from
//! a file by the page's script into the same field) as CSV or NDJSON, as `PUT
//! /v1/audiences/.../members` and `iterable-lists audience sync` take them
//! ([`crate::snapshot`], [`sync::snapshot::run_snapshot`]). The first POST is always a dry run
//! whose preview (members, adds, removes, unchanged, bad rows, a refusal) carries an Apply
//! button; Apply posts the same text again, applied, and goes back to the audience page with
//! the outcome.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use maud::{Markup, html};
use sync::Identity;
use sync::snapshot::{Format, Progress, RunError, SnapshotReport, run_snapshot};

use crate::snapshot::{SnapshotOptions, snapshot_spec};

use super::super::Console;
use super::super::format::count;
use super::super::guard::{Operator, forbidden_csrf};
use super::super::layout::{Nav, csrf_field, message_page, page};
use super::super::request::read_form_limited;
use super::super::respond::{html, redirect};
use super::super::sessions::{Flash, SessionView};
use super::widgets::{audience_href, destination_href};

/// The largest snapshot the console takes (bigger ones: the HTTP API or the CLI, streamed).
pub(crate) const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;

/// The upload form of the audience page.
pub(crate) fn form(destination: &str, audience: &str, s: &SessionView) -> Markup {
    let action = format!("{}/snapshot", audience_href(destination, audience));
    html! {
        form.snapshot method="post" action=(action) {
            (csrf_field(s))
            input type="hidden" name="mode" value="preview";
            p.muted {
                "Every member of the audience, one per line: CSV with a header naming "
                code { "email" } " and/or " code { "userId" } " (and data fields), or NDJSON. "
                "Up to " (count(MAX_SNAPSHOT_BYTES as u64 / 1024 / 1024)) " MiB here; larger snapshots "
                "through " code { "PUT /v1/audiences/{destination}/{audience}/members" } "."
            }
            input #snapshot-file type="file" accept=".csv,.ndjson,.jsonl,.txt,text/csv";
            textarea #snapshot-members name="members" rows="6" cols="80" placeholder="email,userId\njane@example.com,u1" {}
            label { input type="checkbox" name="allow_mass_removal" value="true"; " allow a mass removal" }
            button type="submit" { "Preview (dry run)" }
        }
    }
}

/// `POST /console/destinations/{destination}/audiences/{audience}/snapshot`: fields
/// `members`, `mode` (`preview` or `apply`), `allow_mass_removal`.
pub(crate) async fn post(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((destination, audience)): Path<(String, String)>,
    req: Request,
) -> Response {
    let form = match read_form_limited(req.into_body(), MAX_SNAPSHOT_BYTES + 16 * 1024).await {
        Ok(f) => f,
        Err(e) => {
            return html(
                413,
                message_page("Snapshot too large", &e.to_string(), Some(&op.session)),
            );
        }
    };
    if !op.csrf_ok(&form) {
        return forbidden_csrf();
    }
    let app = &console.app;
    let Some(d) = app.destination(&destination) else {
        let text = format!("no destination named {destination:?}");
        return html(404, message_page("Not found", &text, Some(&op.session)));
    };
    let apply = form.get("mode") == Some("apply");
    let allow_mass_removal = form.get("allow_mass_removal") == Some("true");
    let members = form.get("members").unwrap_or_default().to_string();
    let back = audience_href(&destination, &audience);
    let options = SnapshotOptions {
        dry_run: !apply,
        allow_mass_removal,
        ..SnapshotOptions::default()
    };
    let spec = match snapshot_spec(&d.config, &audience, options, app.now_ms()) {
        Ok(s) => s,
        Err(e) => return html(400, message_page("Bad request", &e, Some(&op.session))),
    };
    let Ok(_permit) = app.snapshots.try_acquire() else {
        let text = "Other snapshots are being applied; try again when they are done.";
        return html(429, message_page("Busy", text, Some(&op.session)));
    };
    let who = op.who();
    let input = std::io::Cursor::new(members.clone().into_bytes());
    let result = run_snapshot(
        &app.store,
        spec,
        input,
        Format::Auto,
        None,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let report = match result {
        Ok(r) => r,
        Err(RunError::Parse(e)) => {
            let text = format!("The snapshot could not be read: {e}");
            return html(400, message_page("Bad snapshot", &text, Some(&op.session)));
        }
        Err(e) => {
            return html(
                500,
                message_page("Error", &e.to_string(), Some(&op.session)),
            );
        }
    };
    tracing::info!(
        who,
        what = if apply {
            "snapshot"
        } else {
            "snapshot dry run"
        },
        destination,
        audience,
        adds = report.diff.adds,
        removes = report.diff.removes,
        applied = report.diff.applied,
        "admin action"
    );
    if apply {
        if report.diff.applied {
            d.waker.notify_one();
        }
        let flash = match &report.diff.refused {
            Some(r) => Flash {
                ok: false,
                text: format!("The snapshot was not applied: {r}"),
            },
            None => Flash {
                ok: true,
                text: format!(
                    "Snapshot applied: {} to add, {} to remove, {} unchanged.",
                    report.diff.adds, report.diff.removes, report.diff.unchanged
                ),
            },
        };
        console.sessions.flash(&op.id, flash);
        return redirect(&back);
    }
    html(
        200,
        preview(
            &destination,
            &audience,
            &report,
            &members,
            allow_mass_removal,
            &op.session,
        ),
    )
}

fn samples(title: &str, ids: &[Identity]) -> Markup {
    html! {
        @if !ids.is_empty() {
            p { (title) ": "
                @for (i, id) in ids.iter().enumerate() {
                    @if i > 0 { ", " }
                    (id.email.as_deref().or(id.user_id.as_deref()).unwrap_or("?"))
                }
            }
        }
    }
}

fn preview(
    destination: &str,
    audience: &str,
    r: &SnapshotReport,
    members: &str,
    allow_mass_removal: bool,
    s: &SessionView,
) -> Markup {
    let d = &r.diff;
    let href = audience_href(destination, audience);
    let body = html! {
        section.card.preview {
            dl.facts {
                dt { "Rows read" } dd { (count(r.rows)) }
                dt { "Members in the snapshot" } dd data-members=(d.members) { (count(d.members)) }
                dt { "Members now" } dd { (count(d.current_members)) }
                dt { "To add" } dd data-adds=(d.adds) { (count(d.adds)) }
                dt { "To remove" } dd data-removes=(d.removes) { (count(d.removes)) }
                dt { "Unchanged" } dd { (count(d.unchanged)) }
                dt { "Kept (newer live change)" } dd { (count(d.kept_newer)) }
                dt { "Bad rows" } dd { (count(r.bad_rows)) }
            }
            (samples("Some adds", &d.samples.adds))
            (samples("Some removes", &d.samples.removes))
            @if !r.bad.is_empty() {
                ul { @for b in &r.bad { li { "line " (b.line) ": " (b.reason) } } }
            }
            @if let Some(refusal) = &d.refused {
                p.flash.error role="alert" { "Would be refused: " (refusal.to_string()) }
            }
        }
        @if d.refused.is_none() && d.adds + d.removes > 0 {
            form.snapshot-apply method="post" action=(format!("{href}/snapshot")) {
                (csrf_field(s))
                input type="hidden" name="mode" value="apply";
                input type="hidden" name="members" value=(members);
                @if allow_mass_removal { input type="hidden" name="allow_mass_removal" value="true"; }
                button type="submit" { "Apply this snapshot" }
            }
        } @else if d.refused.is_none() {
            p.muted { "Nothing to change." }
        }
        p { a href=(href) { "Back to the audience" } }
    };
    page(
        &format!("Snapshot of {audience}: preview"),
        Nav::Overview,
        Some(s),
        &[
            ("Overview", "/console".into()),
            (destination, destination_href(destination)),
            (audience, href.clone()),
        ],
        body,
    )
}
