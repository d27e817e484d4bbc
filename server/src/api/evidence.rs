//! The holder's rectification evidence of a mine: file an entry for an uploaded photo or
//! document, list them, fetch a file.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::photos::{ThumbView, ThumbsView};
use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    mines::{self, EvidenceKind, NewEvidence},
    model::Role,
    store::{MineEvidence, StoreError},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_evidence, file_evidence))
        .routes(routes!(evidence_file))
}

/// An entry to file: a file uploaded for the mine (`POST /uploads` with `mine_id`), described.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewEvidence)]
pub struct NewEvidenceRequest {
    /// SHA-256 of the uploaded file, 64 lowercase hexadecimal digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// `photo` (JPEG or PNG) or `document` (PDF).
    pub kind: EvidenceKind,
    /// 说明: what the file shows or is (required, not blank).
    pub description: String,
    /// The acceptance item numbers it answers (e.g. the failing items of the last round).
    #[serde(default)]
    pub items: Vec<String>,
    /// The deadline it answers: a key of the mine's campaign (e.g. `restoration_plan`,
    /// `rectification`) or `reinspection` (a 限期整改's requirement).
    pub deadline_key: Option<String>,
}

/// Who filed an entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = EvidenceFiler)]
pub struct FilerView {
    pub id: Uuid,
    pub display_name: String,
    pub role: Role,
}

/// A filed entry of a mine's holder evidence.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MineEvidence)]
pub struct EvidenceView {
    pub id: Uuid,
    pub mine_id: Uuid,
    pub kind: EvidenceKind,
    pub sha256: String,
    /// Bytes of the file.
    pub size: u64,
    /// `image/jpeg`, `image/png` or `application/pdf`.
    pub content_type: String,
    pub description: String,
    pub items: Vec<String>,
    pub deadline_key: Option<String>,
    pub filed_by: FilerView,
    /// When the server received the filing (Unix milliseconds, the server's clock).
    pub filed_at: i64,
    /// The file itself.
    pub href: String,
    /// A photo's thumbnails (through the photo routes); absent for documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<ThumbsView>,
}

/// The views of `entries`, with their filers and thumbnails.
async fn views(state: &AppState, entries: Vec<MineEvidence>) -> Result<Vec<EvidenceView>> {
    let mut filers: HashMap<Uuid, FilerView> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let filer = match filers.get(&e.created_by) {
            Some(f) => f.clone(),
            None => {
                let user = state.store.get_user(e.created_by).await?;
                let f = FilerView {
                    id: user.id,
                    display_name: user.display_name,
                    role: user.role,
                };
                filers.insert(e.created_by, f.clone());
                f
            }
        };
        let kind = if e.kind == EvidenceKind::Photo.as_str() {
            EvidenceKind::Photo
        } else {
            EvidenceKind::Document
        };
        let thumbnails = match kind {
            EvidenceKind::Photo => match state.store.get_photo(&e.sha256).await {
                Ok(p) => Some(ThumbsView {
                    small: ThumbView::new(&p.sha256, "small", &p.small),
                    large: ThumbView::new(&p.sha256, "large", &p.large),
                }),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            EvidenceKind::Document => None,
        };
        out.push(EvidenceView {
            href: format!("/api/v1/mines/{}/evidence/{}/file", e.mine_id, e.id),
            id: e.id,
            mine_id: e.mine_id,
            kind,
            sha256: e.sha256,
            size: e.size,
            content_type: e.content_type,
            description: e.description,
            items: e.items,
            deadline_key: e.deadline_key,
            filed_by: filer,
            filed_at: e.created_at,
            thumbnails,
        });
    }
    Ok(out)
}

/// File evidence of the rectification for the mine (its holder, the county office, an admin):
/// a photo or document uploaded for the mine beforehand, with its description and what it
/// answers.
#[utoipa::path(post, path = "/mines/{id}/evidence", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewEvidenceRequest,
    responses((status = 201, body = EvidenceView),
              (status = 400, description = "a blank description, an unknown deadline, a kind \
               that is not the file's", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, description = "not the holder, the county office or an admin",
               body = ErrorBody),
              (status = 404, description = "no such mine, or not the caller's", body = ErrorBody),
              (status = 409, description = "`evidence_not_uploaded`: the file is not (completely) \
               uploaded for this mine", body = ErrorBody)))]
async fn file_evidence(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<NewEvidenceRequest>,
) -> Result<(StatusCode, Json<EvidenceView>)> {
    let entry = mines::file_evidence(
        &state,
        &caller,
        id,
        NewEvidence {
            sha256: body.sha256,
            kind: body.kind,
            description: body.description,
            items: body.items,
            deadline_key: body.deadline_key,
        },
    )
    .await?;
    let mut view = views(&state, vec![entry]).await?;
    let view = view
        .pop()
        .ok_or_else(|| AppError::Internal("no view of a filed entry".into()))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The mine's holder evidence, in filing order: whoever sees the mine (the county roles, its
/// township's officers, its holder).
#[utoipa::path(get, path = "/mines/{id}/evidence", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = [EvidenceView]), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn list_evidence(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<EvidenceView>>> {
    let entries = mines::list_evidence(&state, &caller, id).await?;
    Ok(Json(views(&state, entries).await?))
}

/// The file of an entry, as uploaded, with its media type (`Content-Disposition`: a document
/// as an attachment, a photo inline).
#[utoipa::path(get, path = "/mines/{id}/evidence/{entry}/file", tag = "mines",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("entry" = Uuid, Path)),
    responses((status = 200, description = "the file", content_type = "application/octet-stream",
               headers(("Content-Disposition" = String), ("ETag" = String))),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn evidence_file(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((id, entry)): Path<(Uuid, Uuid)>,
) -> Result<Response> {
    let e = mines::get_evidence(&state, &caller, id, entry).await?;
    let hash = e
        .sha256
        .parse()
        .map_err(|e| AppError::Internal(format!("stored evidence hash: {e}")))?;
    let bytes = state.blobs.get(hash).await?;
    let extension = match e.content_type.as_str() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        _ => "jpg",
    };
    let disposition = if e.kind == EvidenceKind::Document.as_str() {
        "attachment"
    } else {
        "inline"
    };
    let header_value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| AppError::Internal(e.to_string()));
    Ok((
        [
            (header::CONTENT_TYPE, header_value(&e.content_type)?),
            (
                header::CONTENT_DISPOSITION,
                header_value(&format!(
                    "{disposition}; filename=\"evidence-{}.{extension}\"",
                    e.sha256.get(..12).unwrap_or_default()
                ))?,
            ),
            (header::ETAG, header_value(&format!("\"{}\"", e.sha256))?),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}
