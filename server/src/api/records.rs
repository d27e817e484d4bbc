//! The assembled acceptance record of a visit (`records`): what the experts review and every
//! export shows.
//!
//! The body is the domain document itself, not a view built from it: its `content_hash` covers
//! exactly these members, so it is served as assembled (like the sync response, a documented
//! exception to "one view per resource").
//!
//! The archive bundle (`bundle.zip`) packs the record with everything needed to check it
//! offline (`yanshou verify`); `server-key` publishes the key its manifest is signed with.

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, ErrorBody, Result},
    exports::{bundle, manifest, pdf},
    identity::auth::AuthUser,
    records::{self, AssembledRecord},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assembled_record))
        .routes(routes!(record_pdf))
        .routes(routes!(record_bundle))
        .routes(routes!(server_key))
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

/// The archive bundle of the round: a zip of `record.json` (this record as `GET …/record`
/// answers it), `entity.json` (the record's sync entity, from which every section hash can be
/// recomputed), `record.pdf`, the original photos (`photos/<sha256>.jpg|png`) and handwritten
/// strokes (`strokes/<sha256>.json`) its signatures name, `keys.json` (the keys of the devices
/// that signed) and `manifest.json` (every file's size and SHA-256, the signatures' verdicts at
/// export, what the server did not hold) signed by the server's key in `manifest.sig`.
/// `yanshou verify BUNDLE.zip` checks it offline. Whoever may read the record, except a mine's
/// holder (the bundle holds the inspectors' original photos).
#[utoipa::path(get, path = "/rounds/{id}/bundle.zip", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "round (record) id")),
    responses((status = 200, content_type = "application/zip",
               description = "the bundle (`Content-Disposition: attachment`)",
               headers(("Content-Disposition" = String), ("Content-Length" = u64))),
              (status = 401, body = ErrorBody),
              (status = 403, description = "a mine's holder", body = ErrorBody),
              (status = 404, description = "no such record, or not one the caller may see",
               body = ErrorBody),
              (status = 503, description = "no CJK font for the PDF (`font_missing`), or the \
               blob store is unavailable", body = ErrorBody)))]
async fn record_bundle(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let bundle = bundle::bundle(&state, &caller, id).await?;
    let disposition =
        content_disposition("attachment", &format!("bundle-{id}.zip"), &bundle.filename)?;
    let stream = tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::from_std(bundle.file),
        64 * 1024,
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, HeaderValue::from(bundle.size)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The server's signing key: what an archive bundle's `manifest.json` names and its
/// `manifest.sig` is made with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerKeyView {
    /// `ES256` (ECDSA P-256 with SHA-256).
    pub alg: String,
    /// The first 8 bytes of the SHA-256 of the key's SPKI DER, in hex.
    pub kid: String,
    /// The public key as a JWK.
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// The server's public signing key, for an auditor to compare with the `kid` a bundle's
/// manifest names (`yanshou verify --kid`). Public: a public key is no secret.
#[utoipa::path(get, path = "/server-key", tag = "acceptance",
    responses((status = 200, body = ServerKeyView)))]
async fn server_key(State(state): State<AppState>) -> Json<ServerKeyView> {
    let key = manifest::ServerKey::of(&state.keys.public_key());
    Json(ServerKeyView {
        alg: key.alg,
        kid: key.kid,
        public_key: key.public_key,
    })
}

/// RFC 6266: an ASCII fallback name and the UTF-8 one (the mine's name is Chinese).
fn content_disposition(kind: &str, ascii: &str, utf8: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        super::percent_encode(utf8)
    ))
    .map_err(|e| AppError::Internal(format!("Content-Disposition: {e}")))
}
