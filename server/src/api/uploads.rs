//! Resumable uploads (tus-like): limits, create, offset, chunks, finish. Inspectors' photos for
//! an acceptance record; a mine holder's evidence (photos, PDF documents) for a mine.

use axum::{
    Json,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    model::strokes::{MAX_STROKES_BYTES, STROKES_CONTENT_TYPE},
    photos::upload::{
        self, Created, DOCUMENT_CONTENT_TYPE, DOCUMENT_MAX_BYTES, LIMITS, NewUpload, Target,
    },
    store::Upload,
};

/// The media type of a chunk (as in tus).
pub const CHUNK_CONTENT_TYPE: &str = "application/offset+octet-stream";
/// The header naming a chunk's offset, and the offset after it.
pub const UPLOAD_OFFSET: &str = "upload-offset";

pub fn router() -> OpenApiRouter<AppState> {
    // A chunk is raw bytes up to the announced chunk limit, above the JSON body limit: the
    // handler answers a chunk over the limit with `upload_too_large`, larger bodies get 413.
    let chunk_body_limit = usize::try_from(LIMITS.chunk_max_bytes).unwrap_or(usize::MAX) + 1024;
    OpenApiRouter::new()
        .routes(routes!(upload_status, append_chunk))
        .layer(DefaultBodyLimit::max(chunk_body_limit))
        .routes(routes!(upload_limits))
        .routes(routes!(create_upload))
        .routes(routes!(finish_upload))
}

/// What the server accepts; a phone refuses a file outside these before relying on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadLimits {
    /// Largest chunk of one `PATCH`.
    pub chunk_max_bytes: u64,
    /// Largest file.
    pub file_max_bytes: u64,
    /// Accepted media types of photos.
    pub content_types: Vec<String>,
    /// Largest document (a mine holder's evidence).
    pub document_max_bytes: u64,
    /// Accepted media types of documents (uploads for a mine only).
    pub document_content_types: Vec<String>,
    /// The media type of a handwritten signature's strokes (PROTOCOL.md §14; uploads for a
    /// record only).
    pub strokes_content_type: String,
    /// Largest strokes blob.
    pub strokes_max_bytes: u64,
}

/// A file to upload, declared by its hash and size.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUploadRequest {
    /// SHA-256 of the whole file, 64 lowercase hexadecimal digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// Size of the whole file in bytes (at most the limits' `file_max_bytes`, for a document
    /// `document_max_bytes`).
    #[schema(minimum = 1, maximum = 30_000_000)]
    pub size: u64,
    /// Media type, one of the limits' `content_types` (for a mine also
    /// `document_content_types`; for a record also `strokes_content_type`).
    #[schema(
        pattern = "^(image/(jpeg|png)|application/pdf|application/vnd\\.yanshou\\.strokes\\+json)$"
    )]
    pub content_type: String,
    /// The acceptance record (round id) the photo is for; or
    pub record_id: Option<Uuid>,
    /// the mine whose holder's evidence the file is (exactly one of the two).
    pub mine_id: Option<Uuid>,
}

/// State of an upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadView {
    /// Absent when the file was already stored (nothing to send).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Bytes received so far: where the next chunk starts.
    pub offset: u64,
    pub size: u64,
    pub sha256: String,
    /// The file is stored under `sha256`.
    pub complete: bool,
}

impl From<&Upload> for UploadView {
    fn from(u: &Upload) -> Self {
        UploadView {
            id: Some(u.id),
            offset: u.received,
            size: u.size,
            sha256: u.sha256.clone(),
            complete: u.completed_at.is_some(),
        }
    }
}

/// A stored file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
}

/// A chunk's raw bytes, in the document (`type: string, format: binary`).
#[derive(Debug)]
struct ChunkBytes;

impl utoipa::ToSchema for ChunkBytes {}

impl utoipa::PartialSchema for ChunkBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

/// The upload limits.
#[utoipa::path(get, path = "/uploads/limits", tag = "uploads", security(("bearer" = [])),
    responses((status = 200, body = UploadLimits), (status = 401, body = ErrorBody)))]
async fn upload_limits(_caller: AuthUser) -> Json<UploadLimits> {
    Json(UploadLimits {
        chunk_max_bytes: LIMITS.chunk_max_bytes,
        file_max_bytes: LIMITS.file_max_bytes,
        content_types: LIMITS
            .content_types
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        document_max_bytes: DOCUMENT_MAX_BYTES,
        document_content_types: vec![DOCUMENT_CONTENT_TYPE.to_owned()],
        strokes_content_type: STROKES_CONTENT_TYPE.to_owned(),
        strokes_max_bytes: MAX_STROKES_BYTES as u64,
    })
}

/// Declare an upload for a record (from an enrolled device of a user who may write the
/// record), or for a mine (its holder's evidence: the bound holder, the county office, an
/// admin). 201 with the upload to send chunks to, or 200 with `complete: true` when the server
/// already holds a file with this hash (for a mine: one uploaded for this mine).
#[utoipa::path(post, path = "/uploads", tag = "uploads", security(("bearer" = [])),
    request_body = NewUploadRequest,
    responses((status = 201, description = "upload created", body = UploadView),
              (status = 200, description = "already stored", body = UploadView),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "no device-bound session, or may not write the record \
               (a holder never does) or upload to the mine", body = ErrorBody),
              (status = 404, description = "no such record or mine", body = ErrorBody),
              (status = 413, description = "file larger than the limit", body = ErrorBody)))]
async fn create_upload(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<NewUploadRequest>,
) -> Result<Response> {
    let target = match (body.record_id, body.mine_id) {
        (Some(record), None) => Target::Record(record),
        (None, Some(mine)) => Target::Mine(mine),
        (Some(_), Some(_)) => {
            return Err(AppError::invalid_field(
                "mine_id",
                "give record_id (an acceptance record's photo) or mine_id (a holder's \
                 evidence), not both",
            ));
        }
        (None, None) => {
            return Err(AppError::invalid_field(
                "record_id",
                "required (or mine_id, for a holder's evidence)",
            ));
        }
    };
    let new = NewUpload {
        sha256: body.sha256,
        size: body.size,
        content_type: body.content_type,
        target,
    };
    Ok(match upload::create(&state, &caller, new).await? {
        Created::Started(u) => (StatusCode::CREATED, Json(UploadView::from(&u))).into_response(),
        Created::AlreadyStored { sha256, size } => Json(UploadView {
            id: None,
            offset: size,
            size,
            sha256: sha256.hex(),
            complete: true,
        })
        .into_response(),
    })
}

/// Where an upload stands (the offset to continue at).
#[utoipa::path(get, path = "/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "upload id")),
    responses((status = 200, body = UploadView, headers(("Upload-Offset" = u64))),
              (status = 401, body = ErrorBody),
              (status = 403, description = "no device-bound session", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn upload_status(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let u = upload::get(&state, &caller, id).await?;
    Ok((
        [(UPLOAD_OFFSET, u.received.to_string())],
        Json(UploadView::from(&u)),
    )
        .into_response())
}

/// Send a chunk at the upload's offset (`Upload-Offset`); answers the new offset.
#[utoipa::path(patch, path = "/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "upload id"),
           ("Upload-Offset" = u64, Header,
            description = "where this chunk starts: the upload's offset")),
    request_body(content = inline(ChunkBytes), content_type = "application/offset+octet-stream",
                 description = "the chunk's bytes"),
    responses((status = 204, description = "chunk stored",
               headers(("Upload-Offset" = u64, description = "the new offset"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "no device-bound session", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody,
               description = "not the upload's offset (`Upload-Offset` says where it is)"),
              (status = 413, description = "chunk over the limit or past the declared size",
               body = ErrorBody),
              (status = 415, body = ErrorBody)))]
async fn append_chunk(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    upload::enrolled_device(&caller)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(CHUNK_CONTENT_TYPE)) {
        return Err(AppError::UnsupportedMediaType(CHUNK_CONTENT_TYPE));
    }
    let offset: u64 = headers
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            AppError::invalid_field(
                "Upload-Offset",
                "a header with the chunk's offset is required",
            )
        })?;
    let new_offset = upload::append(&state, &caller, id, offset, body).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(UPLOAD_OFFSET, HeaderValue::from(new_offset));
    Ok(res)
}

/// Verify the received bytes against the declared size and SHA-256 and store the file.
/// Finishing a finished upload answers the same.
#[utoipa::path(post, path = "/uploads/{id}/finish", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "upload id")),
    responses((status = 200, body = StoredBlob), (status = 401, body = ErrorBody),
              (status = 403, description = "no device-bound session", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "bytes missing (`Upload-Offset` says how many arrived)",
               body = ErrorBody),
              (status = 422, body = ErrorBody,
               description = "the bytes do not hash to the declared SHA-256; nothing stored")))]
async fn finish_upload(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<StoredBlob>> {
    let (hash, size) = upload::finish(&state, &caller, id).await?;
    Ok(Json(StoredBlob {
        sha256: hash.hex(),
        size,
    }))
}
