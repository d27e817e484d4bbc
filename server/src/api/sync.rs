//! The sync endpoint and the conflict queue.

use axum::{Json, extract::DefaultBodyLimit, extract::State};
use sync_protocol::ProtocolError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{AppError, ErrorBody, RawJson, Result},
    identity::auth::AuthUser,
    photos,
    sync::{self, conflicts::ConflictItem},
};

/// Largest sync request: 500 ops with generous values; larger bodies get 413.
pub const MAX_SYNC_BODY_BYTES: usize = 8 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_endpoint))
        .layer(DefaultBodyLimit::max(MAX_SYNC_BODY_BYTES))
        .routes(routes!(list_conflicts))
}

/// Names the hand-written `SyncRequest` schema (`sync_schemas.json`) in the annotation below.
#[derive(Debug)]
struct SyncRequestSchema;
/// Names the hand-written `SyncResponse` schema.
#[derive(Debug)]
struct SyncResponseSchema;

impl utoipa::ToSchema for SyncRequestSchema {}
impl utoipa::ToSchema for SyncResponseSchema {}

impl utoipa::PartialSchema for SyncRequestSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::Ref::from_schema_name("SyncRequest").into()
    }
}

impl utoipa::PartialSchema for SyncResponseSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::Ref::from_schema_name("SyncResponse").into()
    }
}

/// Push a batch of ops and pull the changes since a cursor (`sync-protocol/PROTOCOL.md`).
/// Needs a session bound to the enrolled device named in the request. One batch is one
/// transaction; retrying the same batch any number of times is safe.
#[utoipa::path(post, path = "/sync", tag = "sync", security(("bearer" = [])),
    request_body(content = inline(SyncRequestSchema), content_type = "application/json",
                 description = "SyncRequest (PROTOCOL.md §9)"),
    responses((status = 200, description = "SyncResponse (PROTOCOL.md §9)",
               body = inline(SyncResponseSchema)),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
async fn sync_endpoint(
    State(state): State<AppState>,
    caller: AuthUser,
    RawJson(body): RawJson,
) -> Result<Json<sync::SyncResponseOut>> {
    let request = sync_protocol::decode_request(&body).map_err(|e| match e {
        ProtocolError::UnsupportedVersion { .. } => AppError::UnsupportedProtocol(e.to_string()),
        ProtocolError::Malformed(m) => {
            AppError::bad_request(format!("malformed sync request: {m}"))
        }
        ProtocolError::OpIdReused(_) => AppError::bad_request(e.to_string()),
    })?;
    let results = sync::push(&state, &caller, &request).await?;
    // The push is committed whatever happens here: findings that could not be published now
    // are published again by the next push or upload of the record's photos.
    if let Err(e) = photos::findings::after_push(&state, &request.ops, &results).await {
        tracing::warn!(error = ?e.to_string(), "publishing photo findings after a push failed");
    }
    Ok(Json(sync::pull(&state, &caller, &request, results).await?))
}

/// Unresolved conflicts the caller may resolve (resolution is a `resolve` op sent through sync).
#[utoipa::path(get, path = "/sync/conflicts", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = [ConflictView]), (status = 401, body = ErrorBody)))]
async fn list_conflicts(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<ConflictView>>> {
    Ok(Json(
        sync::conflicts::list(&state, &caller)
            .await?
            .into_iter()
            .map(ConflictView::from)
            .collect(),
    ))
}

/// One field waiting for a person to choose among concurrent values.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ConflictItem)]
pub struct ConflictView {
    #[schema(value_type = Uuid)]
    pub entity: sync_protocol::EntityId,
    pub entity_type: String,
    pub field: String,
    pub section: String,
    /// The field revision a `resolve` op must be based on.
    pub rev: u64,
    /// Every concurrent value (oldest first; the last is the provisional winner).
    #[schema(value_type = Vec<Object>)]
    pub candidates: Vec<sync_protocol::Candidate>,
    pub since_commit: u64,
}

impl From<ConflictItem> for ConflictView {
    fn from(c: ConflictItem) -> Self {
        ConflictView {
            entity: c.entity,
            entity_type: c.entity_type,
            field: c.field,
            section: c.section,
            rev: c.rev,
            candidates: c.candidates,
            since_commit: c.since_commit,
        }
    }
}
