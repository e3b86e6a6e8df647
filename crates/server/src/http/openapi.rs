//! The OpenAPI 3.1 document of the admin API, generated from the handlers' annotations and
//! the views' types with `utoipa` (never written by hand), served at `GET /v1/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, admin_api, audience, holds, metrics};

/// The bearer `admin_token` every admin route asks for.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The configured admin_token. Without one, only loopback clients are \
                         answered (403 otherwise).",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iterable-lists admin API",
        description = "What an operator reads and does: destinations, audiences, rejected users, \
                       users and events, pause and resume, key checks, retries, removal holds, \
                       verify and repair. Times are epoch milliseconds.",
    ),
    paths(
        admin_api::overview,
        admin_api::destination,
        admin_api::audience_view,
        admin_api::rejected,
        admin_api::rejected_csv,
        admin_api::user,
        admin_api::event,
        admin_api::pause,
        admin_api::resume,
        admin_api::check_key,
        admin_api::retry_rejected,
        admin_api::release_hold,
        admin_api::discard_hold,
        admin_api::verify,
        admin::status,
        admin::event,
        holds::release,
        holds::discard,
        audience::put_members,
        metrics::admin_metrics,
    ),
    modifiers(&AdminToken),
    security(("admin_token" = [])),
    tags(
        (name = "admin", description = "Views of what the service holds"),
        (name = "admin actions", description = "What an operator does; each is logged with who and what"),
        (name = "admin (earlier)", description = "The admin endpoints that came before /v1/admin"),
    )
)]
struct AdminApi;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = AdminApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
