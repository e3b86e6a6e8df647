//! The operator console at `/console`: server-rendered HTML pages (they read fine with
//! JavaScript off) over the admin module's views and actions, for watching and repairing the
//! service from a browser. Everything it needs is in the binary; nothing is fetched from the
//! network.
//!
//! - `routes`: the paths and their handlers;
//! - `sessions`, `signin`, `throttle`, `guard`: sign-in with the admin token, server-side
//!   sessions with a cookie, CSRF tokens, the sign-in rate limit, who may see what;
//! - `request`, `respond`: cookies and forms in, pages, redirects and security headers out;
//! - `layout`, `chart`, `format`, `assets`: the page frame, SVG charts, numbers and times,
//!   the stylesheet and script;
//! - `pages`: one file per page.

mod assets;
mod chart;
mod format;
mod guard;
mod layout;
mod pages;
mod request;
mod respond;
mod routes;
mod sessions;
mod signin;
mod throttle;

use std::sync::Arc;

use crate::app::AppState;

pub(crate) use routes::router;

/// The console's state: the service's, and the console's own sessions and sign-in limiter.
pub(crate) struct Console {
    pub app: Arc<AppState>,
    pub sessions: sessions::Sessions,
    pub throttle: throttle::Throttle,
}

impl Console {
    pub(crate) fn new(app: Arc<AppState>) -> Self {
        Self {
            app,
            sessions: sessions::Sessions::default(),
            throttle: throttle::Throttle::default(),
        }
    }
}
