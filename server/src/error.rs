//! One error type for the HTTP layer.
//!
//! Every error response has the same JSON shape:
//! `{"error": {"code": "stable_machine_code", "message": "human text", "fields": [...]}}`.
//! Internal details (database messages, panics) go to the log only, never to the client.

use axum::{
    Json,
    extract::{FromRequest, Request},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{blobs::BlobError, store::StoreError};

/// Crate-wide result type for handlers and domain code.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The stable, machine-readable `code` of every error body: clients (the phone's Chinese
/// messages) switch on it, so a value here is never renamed, only added. Listed in the OpenAPI
/// document as an enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or fails validation (`fields` names the culprits).
    InvalidRequest,
    /// Wrong username or password.
    InvalidCredentials,
    /// Missing, malformed or expired credentials.
    Unauthenticated,
    /// A rotated refresh token was presented again: the whole login was signed out.
    RefreshTokenReused,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Too many failed attempts (`Retry-After` says when to try again).
    RateLimited,
    /// The device speaks another sync protocol version.
    UnsupportedProtocolVersion,
    /// The store is unreachable or busy; retry.
    Unavailable,
    Internal,
    /// The request conflicts with existing data (an unnamed constraint).
    Conflict,
    UsernameTaken,
    TownshipExists,
    LicenceTaken,
    /// A new sync op reuses the id of a stored op (PROTOCOL.md §7).
    OpIdReused,
    /// The mine changed since the caller saw it (`version`).
    StaleVersion,
    /// The workflow does not allow this step now (the message says why).
    TransitionNotAllowed,
    /// An acceptance outcome names a round whose required sections are not all signed.
    RecordNotSigned,
    /// An acceptance outcome disagrees with the verdict of the round's record.
    VerdictMismatch,
    /// A round was opened for a mine without an approved disposition.
    NoDisposition,
    /// A round was opened for a mine in a stage that is not inspected.
    NotInspectable,
    /// An admin tried to disable their own account.
    CannotDisableSelf,
    /// A chunk was sent at another offset than the upload's (the `Upload-Offset` header of the
    /// answer says where to continue).
    UploadOffsetMismatch,
    /// An upload was finished before all its declared bytes arrived (`Upload-Offset` says how
    /// many did).
    UploadIncomplete,
    /// The bytes of an upload do not hash to (or do not have the size of) what was declared.
    HashMismatch,
    /// The file is larger than the server accepts, or a chunk passes the declared size.
    UploadTooLarge,
    /// The uploaded file is not a photo the server keeps: another type than declared (by its
    /// magic bytes), HEIC, or beyond the byte or pixel caps.
    PhotoRefused,
    /// The uploaded document is not the type declared (a PDF starts with `%PDF-`).
    DocumentRefused,
    /// Holder evidence names a file not (or not completely) uploaded for this mine yet.
    EvidenceNotUploaded,
    /// A PDF export needs a CJK font the server cannot find (the message names it and the
    /// package that provides it).
    FontMissing,
    /// An uploaded strokes blob is not a handwritten signature in the format of PROTOCOL.md §14.
    StrokesRefused,
    /// The round already has its opinion letter.
    LetterExists,
    /// The opinion letter is issued; nothing changes it.
    LetterIssued,
    /// The letter cannot be issued yet: a required specialty has not signed, or a panel expert
    /// declined (the message says which).
    LetterIncomplete,
    /// An opinion letter needs an acceptance record that passed and is fully signed.
    RecordNotPassed,
    /// The record changed since the letter was drafted from it: update the letter (the panel
    /// signs again).
    RecordChanged,
}

impl ErrorCode {
    /// The wire text (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::RefreshTokenReused => "refresh_token_reused",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnsupportedProtocolVersion => "unsupported_protocol_version",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Conflict => "conflict",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::TownshipExists => "township_exists",
            ErrorCode::LicenceTaken => "licence_taken",
            ErrorCode::OpIdReused => "op_id_reused",
            ErrorCode::StaleVersion => "stale_version",
            ErrorCode::TransitionNotAllowed => "transition_not_allowed",
            ErrorCode::RecordNotSigned => "record_not_signed",
            ErrorCode::VerdictMismatch => "verdict_mismatch",
            ErrorCode::NoDisposition => "no_disposition",
            ErrorCode::NotInspectable => "not_inspectable",
            ErrorCode::CannotDisableSelf => "cannot_disable_self",
            ErrorCode::UploadOffsetMismatch => "upload_offset_mismatch",
            ErrorCode::UploadIncomplete => "upload_incomplete",
            ErrorCode::HashMismatch => "hash_mismatch",
            ErrorCode::UploadTooLarge => "upload_too_large",
            ErrorCode::PhotoRefused => "photo_refused",
            ErrorCode::DocumentRefused => "document_refused",
            ErrorCode::EvidenceNotUploaded => "evidence_not_uploaded",
            ErrorCode::FontMissing => "font_missing",
            ErrorCode::StrokesRefused => "strokes_refused",
            ErrorCode::LetterExists => "letter_exists",
            ErrorCode::LetterIssued => "letter_issued",
            ErrorCode::LetterIncomplete => "letter_incomplete",
            ErrorCode::RecordNotPassed => "record_not_passed",
            ErrorCode::RecordChanged => "record_changed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the field in the request body, e.g. `username` or `items[2].value`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or fails validation.
    #[error("{message}")]
    BadRequest {
        message: String,
        fields: Vec<FieldError>,
    },
    /// Wrong username or password; never says which.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Missing, malformed, expired or otherwise unacceptable credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A refresh token was presented again after it had been rotated: the family is revoked.
    #[error("refresh token was already used; all sessions from that login were signed out")]
    RefreshTokenReused,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// An upload is at another offset than the request assumed: 409 with the offset in the
    /// `Upload-Offset` header.
    #[error("the upload is at offset {offset}")]
    UploadOffset { code: ErrorCode, offset: u64 },
    /// The request is well-formed but its content is refused (422), e.g. bytes that do not
    /// hash to the declared SHA-256.
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    #[error("request body too large")]
    PayloadTooLarge,
    /// A file or a chunk larger than an upload accepts (413, `upload_too_large`).
    #[error("{0}")]
    TooLarge(String),
    /// The body's media type is not the one the endpoint reads (named here).
    #[error("expected Content-Type: {0}")]
    UnsupportedMediaType(&'static str),
    #[error("too many failed attempts; try again later")]
    RateLimited { retry_after_secs: u64 },
    /// The device speaks another sync protocol version.
    #[error("{0}")]
    UnsupportedProtocol(String),
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// An export needs a font the server lacks (503): the message says which and how to
    /// install it, for the operator reading it in the client.
    #[error("{0}")]
    FontMissing(String),
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::BadRequest {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A validation failure of one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError::BadRequest {
            message: format!("{field}: {message}"),
            fields: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } | AppError::UnsupportedProtocol(_) => {
                StatusCode::BAD_REQUEST
            }
            AppError::InvalidCredentials
            | AppError::Unauthenticated(_)
            | AppError::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } | AppError::UploadOffset { .. } => StatusCode::CONFLICT,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::PayloadTooLarge | AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::FontMissing(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::BadRequest { .. } => ErrorCode::InvalidRequest,
            AppError::InvalidCredentials => ErrorCode::InvalidCredentials,
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::Conflict { code, .. }
            | AppError::UploadOffset { code, .. }
            | AppError::Unprocessable { code, .. } => *code,
            AppError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            AppError::TooLarge(_) => ErrorCode::UploadTooLarge,
            AppError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::UnsupportedProtocol(_) => ErrorCode::UnsupportedProtocolVersion,
            AppError::Unavailable(_) => ErrorCode::Unavailable,
            AppError::FontMissing(_) => ErrorCode::FontMissing,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `unauthenticated`, `rate_limited`.
    pub code: ErrorCode,
    /// Human-readable explanation (English; the PWA shows Chinese text keyed by `code`).
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            AppError::Internal(detail) => tracing::error!(?detail, "internal error"),
            AppError::Unavailable(detail) => tracing::warn!(?detail, "store unavailable"),
            AppError::FontMissing(detail) => tracing::warn!(%detail, "export without a font"),
            _ => {}
        }
        let fields = match &self {
            AppError::BadRequest { fields, .. } => fields.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                fields,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let AppError::UploadOffset { offset, .. } = self {
            response
                .headers_mut()
                .insert("upload-offset", HeaderValue::from(offset));
        }
        if let AppError::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("resource"),
            StoreError::Conflict { constraint } => conflict_from_constraint(&constraint),
            StoreError::Unavailable(detail) => AppError::Unavailable(detail),
            StoreError::Other(detail) => AppError::Internal(detail),
        }
    }
}

/// Map a violated constraint (PostgreSQL names it; SQLite names the columns) to a client error.
fn conflict_from_constraint(constraint: &str) -> AppError {
    let c = constraint.to_ascii_lowercase();
    if c.contains("users_username_key") || c.contains("users.username") {
        AppError::Conflict {
            code: ErrorCode::UsernameTaken,
            message: "a user with this username already exists".into(),
        }
    } else if c.contains("townships_name_key") || c.contains("townships.name") {
        AppError::Conflict {
            code: ErrorCode::TownshipExists,
            message: "a township with this name already exists".into(),
        }
    } else if c.contains("mines_licence_no_key") || c.contains("mines.licence_no") {
        AppError::Conflict {
            code: ErrorCode::LicenceTaken,
            message: "a mine with this licence number is already registered".into(),
        }
    } else if c.contains("foreign key") || c.contains("fkey") {
        AppError::bad_request("the request refers to something that does not exist")
    } else {
        tracing::warn!(?constraint, "unmapped constraint violation");
        AppError::Conflict {
            code: ErrorCode::Conflict,
            message: "the request conflicts with existing data".into(),
        }
    }
}

impl From<BlobError> for AppError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::BadHash(_) => {
                AppError::invalid_field("sha256", "64 lowercase hexadecimal digits")
            }
            BlobError::HashMismatch { .. } => AppError::Unprocessable {
                code: ErrorCode::HashMismatch,
                message: e.to_string(),
            },
            BlobError::NotFound(_) => AppError::NotFound("blob"),
            BlobError::Unavailable(detail) => AppError::Unavailable(detail),
            BlobError::Config(detail) => AppError::Internal(detail),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(format!("blocking task failed: {e}"))
    }
}

/// A JSON body extractor whose rejections have the common error shape, with the path of the
/// offending field (via `serde_path_to_error`) for missing fields and wrong types.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawJson(bytes) = RawJson::from_request(req, state).await?;
        // Every request body of the API is a JSON object; serde would also read a struct from
        // an array of its fields in order (`["token"]` for `{"refresh_token": "token"}`).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::bad_request("the body must be a JSON object"));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// The raw bytes of a JSON request body (content type and size checked), for handlers that parse
/// it themselves (e.g. sync, which checks the protocol version before the rest).
#[derive(Debug, Clone)]
pub struct RawJson(pub axum::body::Bytes);

impl<S> FromRequest<S> for RawJson
where
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType("application/json"));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::bad_request("could not read the request body")
                }
            })?;
        // serde_json skips the strings of members it ignores without checking their UTF-8:
        // check the whole body, so nothing unchecked reaches a handler.
        if std::str::from_utf8(&bytes).is_err() {
            return Err(AppError::bad_request(
                "malformed JSON: the body is not valid UTF-8",
            ));
        }
        Ok(RawJson(bytes))
    }
}

/// The code of an error response that did not come from an [`AppError`] (a rejection by the
/// router or an extractor: a malformed path segment or query, a wrong method …).
fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    }
}

/// Middleware: every error response of the API has the JSON shape of [`ErrorBody`], whatever
/// produced it. Responses that already are JSON pass unchanged; others (axum's plain-text
/// rejections of a malformed path id or query value, the bare 405 of a wrong method) are
/// rewritten with a `code` from their status, keeping their status and headers (`Allow`).
pub async fn json_errors(req: Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path() == "/api" || req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let status = res.status();
    if !api || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if status.is_server_error() || text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code_for_status(status),
            message,
            fields: Vec::new(),
        },
    };
    let json = match serde_json::to_vec(&body) {
        Ok(json) => json,
        Err(_) => return AppError::Internal("encode error body".into()).into_response(),
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// Deserialize a JSON document, reporting the failing field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            AppError::bad_request(format!("malformed JSON: {message}"))
        } else {
            // For a missing field serde reports the path of the enclosing object; name the field.
            let field = match (path.as_str(), missing_field_name(&message)) {
                (".", Some(name)) => name.to_owned(),
                (p, Some(name)) => format!("{p}.{name}"),
                (p, None) => p.to_owned(),
            };
            AppError::BadRequest {
                message: format!("{field}: {message}"),
                fields: vec![FieldError { field, message }],
            }
        }
    })?;
    de.end()
        .map_err(|e| AppError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn fields(e: AppError) -> Vec<String> {
        match e {
            AppError::BadRequest { fields, .. } => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse_json::<Login>(br#"{"username":"a"}"#).expect_err("missing password");
        assert_eq!(fields(e), ["password"]);
    }

    #[test]
    fn wrong_type_names_the_nested_path() {
        let e = parse_json::<Login>(br#"{"username":"a","password":"b","inner":{"count":"x"}}"#)
            .expect_err("wrong type");
        assert_eq!(fields(e), ["inner.count"]);
    }

    #[test]
    fn syntax_error_has_no_field() {
        let e = parse_json::<Login>(br#"{"username":"#).expect_err("truncated");
        assert!(e.to_string().starts_with("malformed JSON"), "{e}");
        assert!(fields(e).is_empty());
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse_json::<Login>(br#"{"username":"a","password":"b"} x"#).is_err());
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let e = AppError::from(StoreError::Other("relation users does not exist".into()));
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
