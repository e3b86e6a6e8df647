//! The frame of every console page: the document head (the stylesheet and script from
//! [`super::assets`], nothing from the network), the navigation, the flash message of the last
//! action, and the helpers pages build their forms with (every state-changing form carries the
//! session's CSRF token).

use maud::{DOCTYPE, Markup, html};

use super::sessions::SessionView;

/// The navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Lookup,
    None,
}

/// A whole page. `session` is `None` on the sign-in and error pages shown without one.
pub(crate) fn page(
    title: &str,
    nav: Nav,
    session: Option<&SessionView>,
    crumbs: &[(&str, String)],
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · iterable-lists console" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                link rel="icon" href="data:,";
                script src=(super::assets::JS_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "iterable-lists" }
                    @if let Some(s) = session {
                        nav {
                            a href="/console" class=[active(nav == Nav::Overview)] { "Overview" }
                            a href="/console/lookup" class=[active(nav == Nav::Lookup)] { "Lookup" }
                        }
                        form.signout method="post" action="/console/signout" {
                            (csrf_field(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if !crumbs.is_empty() {
                        nav.crumbs aria-label="breadcrumb" {
                            @for (i, (label, href)) in crumbs.iter().enumerate() {
                                @if i > 0 { " / " }
                                a href=(href) { (label) }
                            }
                        }
                    }
                    h1 { (title) }
                    @if let Some(f) = session.and_then(|s| s.flash.as_ref()) {
                        p class=(if f.ok { "flash ok" } else { "flash error" }) role="status" { (f.text) }
                    }
                    (body)
                }
            }
        }
    }
}

fn active(yes: bool) -> Option<&'static str> {
    yes.then_some("active")
}

/// The hidden CSRF field of a state-changing form.
pub(crate) fn csrf_field(s: &SessionView) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A form of one button that POSTs to `action` (with the CSRF token and `fields`); `confirm`
/// asks before sending when JavaScript runs (the script reads `data-confirm`).
pub(crate) fn action_button(
    s: &SessionView,
    action: &str,
    label: &str,
    fields: &[(&str, &str)],
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.action method="post" action=(action) data-confirm=[confirm] {
            (csrf_field(s))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" { (label) }
        }
    }
}

/// A path segment, percent-encoded (audience keys and destination names may hold anything).
pub(crate) fn seg(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, SEGMENT).to_string()
}

/// A query value, percent-encoded.
pub(crate) fn q(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, SEGMENT).to_string()
}

/// Everything but unreserved characters (RFC 3986) is escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A small message page (errors: 403, 404, 429), with a link back.
pub(crate) fn message_page(title: &str, text: &str, session: Option<&SessionView>) -> Markup {
    page(
        title,
        Nav::None,
        session,
        &[],
        html! {
            p { (text) }
            p { a href="/console" { "Back to the console" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("a b/c?d#e"), "a%20b%2Fc%3Fd%23e");
        assert_eq!(seg("vip-2024_x.y~"), "vip-2024_x.y~");
        assert_eq!(seg("\"><script>"), "%22%3E%3Cscript%3E");
    }

    #[test]
    fn a_page_escapes_its_title_and_carries_the_token() {
        let s = SessionView {
            label: "ab".into(),
            csrf: "tok".into(),
            flash: Some(super::super::sessions::Flash {
                ok: false,
                text: "<b>".into(),
            }),
        };
        let html = page("<i>", Nav::Overview, Some(&s), &[], html! {}).into_string();
        assert!(
            html.contains("&lt;i&gt;") && !html.contains("<i>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains(r#"name="csrf" value="tok""#), "{html}");
    }
}
