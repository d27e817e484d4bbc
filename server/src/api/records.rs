//! The assembled acceptance record of a visit (`records`): what the experts review and every
//! export shows.
//!
//! The body is the domain document itself, not a view built from it: its `content_hash` covers
//! exactly these members, so it is served as assembled (like the sync response, a documented
//! exception to "one view per resource").

use axum::{
    Json,
    extract::{Path, State},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ErrorBody, Result},
    identity::auth::AuthUser,
    records::{self, AssembledRecord},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(assembled_record))
}

/// One visit as one document: the mine's header, each department's section with its items,
/// answers, verdicts, rectification requirements, photos (with the server's findings) and
/// signature (checked again now: the section's hash and the device key), the township's
/// pre-inspection, the conclusion, the conflicts still open, and the document's content hash.
#[utoipa::path(get, path = "/rounds/{id}/record", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "round (record) id")),
    responses((status = 200, body = AssembledRecord),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such record, or not one the caller may see",
               body = ErrorBody)))]
async fn assembled_record(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AssembledRecord>> {
    Ok(Json(records::assemble(&state, &caller, id).await?))
}
