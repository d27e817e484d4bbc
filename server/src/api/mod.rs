//! HTTP API: each resource module exposes `router()`; they are merged under `/api/v1` and the
//! OpenAPI document is collected from the handlers' annotations (utoipa), so it cannot drift from
//! the code.

pub mod auth;
pub mod devices;
pub mod health;
pub mod mines;
pub mod org;
pub mod sync;
pub mod templates;
pub mod users;

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Yanshou API", description = "Offline-first field acceptance for mine restoration"),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// All routes, and the OpenAPI document describing them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(devices::router())
        .merge(org::router())
        .merge(sync::router())
        .merge(mines::router())
        .merge(templates::router());
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(health::router())
        .split_for_parts();
    let doc = openapi.clone();
    let router = router.route(
        "/api/v1/openapi.json",
        get(move || async move { Json(doc) }),
    );
    (router, openapi)
}
