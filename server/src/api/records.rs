//! The assembled acceptance record of a visit (`records`): what the experts review and every
//! export shows.
//!
//! The body is the domain document itself, not a view built from it: its `content_hash` covers
//! exactly these members, so it is served as assembled (like the sync response, a documented
//! exception to "one view per resource").

use axum::{
    Json,
    extract::{Path, State},
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ErrorBody, Result},
    exports::pdf,
    identity::auth::AuthUser,
    records::{self, AssembledRecord},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assembled_record))
        .routes(routes!(record_pdf))
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

/// The record as a PDF laid out like the county's paper form (A4): title, header block, each
/// department's acceptance table with its signature line (the signer's handwriting drawn from
/// the uploaded strokes, or 〔笔迹未上传〕 / 〔笔迹无法读取〕), the conclusion with open conflicts
/// and photos awaiting upload, then one page per received photo (its large thumbnail with the
/// place and time verdicts); 第 x 页 共 y 页 and the record's content hash in every footer.
/// Same visibility as the JSON record.
#[utoipa::path(get, path = "/rounds/{id}/record.pdf", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "round (record) id")),
    responses((status = 200, content_type = "application/pdf",
               description = "the PDF (`Content-Disposition: inline`)",
               headers(("Content-Disposition" = String))),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such record, or not one the caller may see",
               body = ErrorBody),
              (status = 503, description = "no CJK font on the server (`font_missing`: the \
               message names the font and the package to install)", body = ErrorBody)))]
async fn record_pdf(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let pdf = pdf::record_pdf(&state, &caller, id).await?;
    super::pdf_response(&format!("record-{id}.pdf"), &pdf.filename, pdf.bytes)
}
