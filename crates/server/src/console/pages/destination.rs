//! A destination: its state with the pause, resume and check-key actions, its queue and
//! Iterable's errors, its audiences a page at a time (list id, members, pending, rejected,
//! lag, last delivery, a removal hold), and its settings with every secret left out.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};

use crate::admin::params::PageParams;
use crate::admin::views::{AudienceRow, DestinationView, SettingsView};

use super::super::Console;
use super::super::format::{count, duration_ms, maybe_time};
use super::super::guard::Operator;
use super::super::layout::{Nav, action_button, csrf_field, page};
use super::super::respond::html;
use super::super::sessions::SessionView;
use super::widgets::{audience_href, destination_href, errors, next_page, queue, state};
use super::{PAGE_ROWS, admin_error};

/// `GET /console/destinations/{destination}[?after=KEY]`.
pub(crate) async fn get(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match PageParams::from_query(query.as_deref()) {
        Ok(p) => PageParams {
            limit: Some(PAGE_ROWS),
            ..p
        },
        Err(e) => return admin_error(&e, &op.session),
    };
    let app = &console.app;
    let mut v = match crate::admin::read::destination(app, &name, &params).await {
        Ok(v) => v,
        Err(e) => return admin_error(&e, &op.session),
    };
    // The view's pause comes from the figures, up to a second old; the page an operator lands
    // on after pausing or resuming shows the store's pause as it is now (one row).
    if let Ok(pause) = app.store.operator_pause(&name).await {
        v.operator_pause = pause.as_ref().map(crate::admin::read::pause_view);
    }
    html(200, render(&v, &op.session))
}

pub(crate) fn render(v: &DestinationView, s: &SessionView) -> Markup {
    let href = destination_href(&v.name);
    let paused = v.operator_pause.is_some();
    let body = html! {
        section.card {
            (state(&v.state, v.operator_pause.as_ref(), v.now_ms))
            div.actions {
                @if paused {
                    (action_button(s, &format!("{href}/resume"), "Resume", &[], None))
                } @else {
                    form.action.pause method="post" action=(format!("{href}/pause")) {
                        (csrf_field(s))
                        input type="text" name="reason" placeholder="reason (optional)" maxlength="200";
                        " "
                        button type="submit" { "Pause" }
                    }
                }
                (action_button(s, &format!("{href}/check-key"), "Check the API key", &[], None))
            }
            (queue(&v.queue, v.now_ms))
            (errors(&v.errors))
        }
        h2 { "Audiences " span.muted { "(" (count(v.audiences.total)) ")" } }
        (audiences(&v.name, &v.audiences.rows, v.now_ms))
        (next_page(&href, v.audiences.next_after.as_deref(), v.audiences.rows.len()))
        h2 { "Settings" }
        (settings(&v.settings))
    };
    page(
        &v.name,
        Nav::Overview,
        Some(s),
        &[("Overview", "/console".into())],
        body,
    )
}

fn audiences(destination: &str, rows: &[AudienceRow], now_ms: i64) -> Markup {
    html! {
        table.audiences {
            thead { tr {
                th { "Audience" } th.num { "List id" } th.num { "Members" } th.num { "Pending" }
                th.num { "Rejected" } th.num { "Lag" } th { "Last delivery" } th { "Hold" }
            } }
            tbody {
                @for a in rows {
                    tr data-audience=(a.audience_key) {
                        td.wrap { a href=(audience_href(destination, &a.audience_key)) { (a.audience_key) } }
                        td.num { @if let Some(id) = a.list_id { (id) } @else { "–" } }
                        td.num { (count(a.members)) }
                        td.num { (count(a.pending)) }
                        td.num { (count(a.rejected)) }
                        td.num { (a.lag_ms.map_or_else(|| "–".into(), duration_ms)) }
                        td { (maybe_time(a.last_delivery_ms, now_ms)) }
                        td { @if let Some(h) = &a.hold { span.state.paused { (count(h.held)) " held" } } }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No audience yet." } }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn settings(st: &SettingsView) -> Markup {
    html! {
        dl.facts.settings {
            dt { "Enabled" } dd { (yes_no(st.enabled)) }
            dt { "Project type" } dd { (st.project_type) }
            dt { "Base URL" } dd { (st.base_url) }
            dt { "API key" } dd { @if st.api_key_set { "set (hidden)" } @else { "not set" } }
            dt { "Write keys" } dd { (st.write_keys) " (hidden)" }
            dt { "Webhook secret" } dd { @if st.webhook_secret_set { "set (hidden)" } @else { "not set" } }
            dt { "Mapping" } dd { @if st.mapping_overridden { "overridden" } @else { "Segment's default" } }
            @if let Some(m) = &st.retl_sync_mode { dt { "Reverse ETL sync mode" } dd { (m) } }
            dt { "List deleted in Iterable" } dd { (st.on_list_deleted) }
            dt { "Scheduled verify" } dd {
                @match st.verify_every_ms {
                    Some(ms) => { "every " (duration_ms(ms as i64)) @if st.verify_repair { ", repairs" } }
                    None => { "off" }
                }
            }
            dt { "Batch size" } dd { (count(st.batch_size)) }
            dt { "Max request bytes" } dd { (count(st.max_request_bytes)) }
            dt { "Linger" } dd { (st.linger_ms) " ms" }
            dt { "Concurrency" } dd { (st.concurrency) }
            dt { "Timeout" } dd { (duration_ms(st.timeout_ms as i64)) }
            @for r in &st.rate_limits { dt { "Rate limit " (r.endpoint) } dd { (r.limit) } }
            dt { "Mass-removal guard" } dd {
                "at most " (format!("{:.0}%", st.max_removal_ratio * 100.0)) " of "
                (count(st.removal_guard_min_members)) "+ members in " (duration_ms(st.removal_window_ms as i64))
            }
            @for a in &st.audience_settings {
                dt { "Audience " (a.audience) }
                dd {
                    @if let Some(b) = a.update_existing_users_only { "updateExistingUsersOnly=" (b) " " }
                    @if let Some(b) = a.channel_unsubscribe { "channelUnsubscribe=" (b) " " }
                    @if let Some(c) = a.campaign_id { "campaignId=" (c) }
                }
            }
        }
    }
}
