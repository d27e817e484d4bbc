//! HTTP API: each resource module exposes `router()`; they are merged under `/api/v1` and the
//! OpenAPI document is collected from the handlers' annotations (utoipa), so it cannot drift from
//! the code.

pub mod auth;
pub mod devices;
pub mod evidence;
pub mod health;
pub mod letters;
pub mod mines;
pub mod org;
pub mod photos;
pub mod records;
pub mod sync;
pub mod templates;
pub mod uploads;
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
    modifiers(&BearerAuth, &SyncSchemas),
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

/// The statuses every operation of a kind can answer, whatever its handler does, added to each
/// operation so the document names them all (the handlers' annotations name the rest):
/// - an operation with a bearer security requirement: 401 (no, a bad or an expired token);
/// - one with a request body: 400 (malformed, not UTF-8, a field invalid), 413 (too large) and
///   415 (another content type than the one documented);
/// - one with path or query parameters: 400 (a malformed id or query value).
///
/// Every one of them has the JSON error shape ([`crate::error::ErrorBody`]).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            RefOr,
            path::{HttpMethod, Operation},
            response::ResponseBuilder,
        };
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        let add = |op: &mut Operation, status: &str, description: &str| {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| error(description));
        };
        for item in openapi.paths.paths.values_mut() {
            for method in [
                HttpMethod::Get,
                HttpMethod::Put,
                HttpMethod::Post,
                HttpMethod::Delete,
                HttpMethod::Patch,
            ] {
                let op = match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Put => item.put.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Delete => item.delete.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    _ => None,
                };
                let Some(op) = op else { continue };
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(op, "401", "missing, invalid or expired access token");
                }
                if op.request_body.is_some() {
                    add(op, "400", "malformed request or invalid field");
                    add(op, "413", "request body too large");
                    add(op, "415", "unsupported Content-Type");
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add(op, "400", "malformed path or query parameter");
                }
            }
        }
    }
}

/// The `/sync` request and response bodies (PROTOCOL.md §9), written here as JSON Schema: the
/// `sync-protocol` crate stays free of utoipa, and these mirror its wire types (PROTOCOL.md §4,
/// §8, §9; the golden fixtures in `sync-protocol/fixtures/` pin the wire format).
struct SyncSchemas;

/// JSON Schema of the sync messages, by component name.
pub const SYNC_SCHEMAS: &str = include_str!("sync_schemas.json");

impl Modify for SyncSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schemas: std::collections::BTreeMap<
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        > = match serde_json::from_str(SYNC_SCHEMAS) {
            Ok(s) => s,
            Err(e) => panic!("api/sync_schemas.json is not a valid schema map: {e}"),
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
    }
}

/// Bodies that refuse unknown members (`deny_unknown_fields` on an internally tagged enum, which
/// utoipa does not write down): each variant object gets `additionalProperties: false`, so the
/// document says what the server does.
struct ClosedBodies;

/// Component schemas whose objects take no members beyond their properties.
const CLOSED_BODIES: &[&str] = &["NewCase"];

impl Modify for ClosedBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        fn close(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    if map.contains_key("properties") {
                        map.insert(
                            "additionalProperties".into(),
                            serde_json::Value::Bool(false),
                        );
                    }
                    map.values_mut().for_each(close);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(close),
                _ => {}
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in CLOSED_BODIES {
            let Some(schema) = components.schemas.get_mut(*name) else {
                continue;
            };
            let Ok(mut json) = serde_json::to_value(&*schema) else {
                continue;
            };
            close(&mut json);
            if let Ok(closed) = serde_json::from_value(json) {
                *schema = closed;
            }
        }
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
        .merge(evidence::router())
        .merge(templates::router())
        .merge(uploads::router())
        .merge(photos::router())
        .merge(records::router())
        .merge(letters::router());
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(health::router())
        .split_for_parts();
    // After the routes are collected: it walks every operation.
    CommonResponses.modify(&mut openapi);
    ClosedBodies.modify(&mut openapi);
    let doc = openapi.clone();
    let router = router.route(
        "/api/v1/openapi.json",
        get(move || async move { Json(doc) }),
    );
    (router, openapi)
}

/// A PDF shown in the browser (`Content-Disposition: inline`) under `filename`, with the ASCII
/// `fallback` name for clients without RFC 6266's UTF-8 form (the names are Chinese).
fn pdf_response(
    fallback: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> crate::error::Result<axum::response::Response> {
    use axum::{
        http::{HeaderValue, header},
        response::IntoResponse,
    };
    let disposition = format!(
        "inline; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(filename)
    );
    let disposition = HeaderValue::from_str(&disposition)
        .map_err(|e| crate::error::AppError::Internal(format!("Content-Disposition: {e}")))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
