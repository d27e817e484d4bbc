//! A record's photos: the original, its thumbnails, its facts, and a record's photos with
//! their place and time verdicts.
//!
//! A photo's files never change under their hash, so they are cached for a year (`immutable`)
//! with the hash as ETag; its facts name the records it belongs to, which can grow, so they are
//! revalidated.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::templates::IMMUTABLE;
use crate::{
    AppState,
    blobs::BlobHash,
    error::{AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    model::strokes::{MAX_STROKES_BYTES, STROKES_CONTENT_TYPE, parse_strokes},
    photos::{
        evidence::{self, Findings, Variant, Visible},
        exif::{CaptureTime, PhotoExif},
        geofence::{LocationVerdict, TimeVerdict},
    },
    store::{Photo, StoredThumb},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(photo_original))
        .routes(routes!(photo_thumbnail))
        .routes(routes!(photo_meta))
        .routes(routes!(record_photos))
        .routes(routes!(strokes_blob))
}

/// A field of the EXIF data that was present but impossible, and dropped.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExifWarningView {
    /// The EXIF tag, e.g. `GPSLatitude`.
    pub field: String,
    /// What is wrong, in English.
    pub problem: String,
}

/// What the photo's EXIF says, raw (every member is absent when the photo has none).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PhotoExif)]
pub struct ExifView {
    /// Latitude, degrees north (WGS-84).
    pub lat: Option<f64>,
    /// Longitude, degrees east (WGS-84).
    pub lon: Option<f64>,
    /// Altitude above sea level, metres.
    pub altitude_m: Option<f64>,
    /// Horizontal positioning error, metres.
    pub accuracy_m: Option<f64>,
    /// Capture time: RFC 3339 with the offset when the camera wrote one, else the camera's
    /// wall-clock time without offset (`2025-04-03T10:20:30`).
    pub captured_at: Option<String>,
    /// Whether `captured_at` carries the camera's UTC offset.
    pub captured_at_has_offset: bool,
    pub make: Option<String>,
    pub model: Option<String>,
    /// EXIF orientation, 1–8.
    pub orientation: Option<u16>,
    /// Fields present but dropped as impossible.
    pub warnings: Vec<ExifWarningView>,
}

impl From<&PhotoExif> for ExifView {
    fn from(e: &PhotoExif) -> Self {
        let (captured_at, captured_at_has_offset) = match &e.captured_at {
            Some(CaptureTime::Zoned(t)) => (Some(t.to_rfc3339()), true),
            Some(CaptureTime::Naive(t)) => {
                (Some(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()), false)
            }
            None => (None, false),
        };
        ExifView {
            lat: e.lat,
            lon: e.lon,
            altitude_m: e.altitude_m,
            accuracy_m: e.accuracy_m,
            captured_at,
            captured_at_has_offset,
            make: e.make.clone(),
            model: e.model.clone(),
            orientation: e.orientation,
            warnings: e
                .warnings
                .iter()
                .map(|w| ExifWarningView {
                    field: w.field.clone(),
                    problem: w.problem.clone(),
                })
                .collect(),
        }
    }
}

/// One thumbnail: a JPEG without any metadata.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PhotoThumbnail)]
pub struct ThumbView {
    /// SHA-256 of the thumbnail's bytes.
    pub sha256: String,
    pub bytes: u64,
    /// As viewed (after the EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// Where to get it.
    pub href: String,
}

impl ThumbView {
    pub fn new(photo: &str, size: &str, t: &StoredThumb) -> Self {
        ThumbView {
            sha256: t.sha256.clone(),
            bytes: t.bytes,
            width: t.width,
            height: t.height,
            href: format!("/api/v1/photos/{photo}/thumb/{size}"),
        }
    }
}

/// Both thumbnails.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PhotoThumbnails)]
pub struct ThumbsView {
    /// Long side 320 px.
    pub small: ThumbView,
    /// Long side 1280 px.
    pub large: ThumbView,
}

/// What the server learned from a photo.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PhotoMeta)]
pub struct PhotoView {
    /// SHA-256 of the original.
    pub sha256: String,
    /// `image/jpeg` or `image/png`, by the file's magic bytes.
    pub content_type: String,
    /// Size of the original, bytes.
    pub bytes: u64,
    /// As stored (before the EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub exif: ExifView,
    pub thumbnails: ThumbsView,
    /// When the server first kept it (Unix milliseconds).
    pub created_at: i64,
}

impl PhotoView {
    fn new(photo: &Photo, exif: &PhotoExif) -> Self {
        PhotoView {
            sha256: photo.sha256.clone(),
            content_type: photo.content_type.clone(),
            bytes: photo.bytes,
            width: photo.width,
            height: photo.height,
            exif: ExifView::from(exif),
            thumbnails: ThumbsView {
                small: ThumbView::new(&photo.sha256, "small", &photo.small),
                large: ThumbView::new(&photo.sha256, "large", &photo.large),
            },
            created_at: photo.created_at,
        }
    }
}

/// A photo's facts and the records of it the caller may see.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PhotoDetail)]
pub struct PhotoDetailView {
    #[serde(flatten)]
    pub photo: PhotoView,
    /// The acceptance records (round ids) the photo was uploaded for, of those the caller sees.
    pub records: Vec<Uuid>,
    /// The mines whose holder evidence the photo is, of those the caller sees.
    pub mines: Vec<Uuid>,
}

/// Where a photo was taken, against the mine's boundary.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationVerdictView {
    /// `inside`, `near` (outside within the tolerance), `outside`, or `unknown` (no position,
    /// or the mine has no boundary).
    #[schema(pattern = "^(inside|near|outside|unknown)$")]
    pub verdict: String,
    /// Distance outside the boundary, metres (0 inside; absent when unknown).
    pub distance_m: Option<f64>,
}

impl From<LocationVerdict> for LocationVerdictView {
    fn from(v: LocationVerdict) -> Self {
        let (verdict, distance_m) = match v {
            LocationVerdict::Inside => ("inside", Some(0.0)),
            LocationVerdict::Near { metres } => ("near", Some(metres)),
            LocationVerdict::Outside { metres } => ("outside", Some(metres)),
            LocationVerdict::Unknown => ("unknown", None),
        };
        LocationVerdictView {
            verdict: verdict.into(),
            distance_m,
        }
    }
}

/// When a photo was taken, against the visit, by the county's calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeVerdictView {
    /// `same_day`, `within_days`, `outside`, or `unknown` (no capture time).
    #[schema(pattern = "^(same_day|within_days|outside|unknown)$")]
    pub verdict: String,
    /// The photo's date minus the visit's, days (negative before it; absent when unknown).
    pub days: Option<i64>,
}

impl From<TimeVerdict> for TimeVerdictView {
    fn from(v: TimeVerdict) -> Self {
        let (verdict, days) = match v {
            TimeVerdict::SameDay => ("same_day", Some(0)),
            TimeVerdict::WithinDays { days } => ("within_days", Some(days)),
            TimeVerdict::Outside { days } => ("outside", Some(days)),
            TimeVerdict::Unknown => ("unknown", None),
        };
        TimeVerdictView {
            verdict: verdict.into(),
            days,
        }
    }
}

/// A record's photo: the raw facts and the verdicts drawn from them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RecordPhoto)]
pub struct RecordPhotoView {
    #[serde(flatten)]
    pub photo: PhotoView,
    pub location: LocationVerdictView,
    pub time: TimeVerdictView,
}

impl From<&Findings> for RecordPhotoView {
    fn from(f: &Findings) -> Self {
        RecordPhotoView {
            photo: PhotoView::new(&f.photo, &f.exif),
            location: f.location.into(),
            time: f.time.into(),
        }
    }
}

/// A photo file: the blob with immutable caching under its hash, or 304 when the client has it.
async fn serve_file(
    state: &AppState,
    caller: &AuthUser,
    sha256: &str,
    variant: Variant,
    headers: &HeaderMap,
) -> Result<Response> {
    let (media, hash) = evidence::file(state, caller, sha256, variant).await?;
    cached(state, &media, hash, headers, None).await
}

/// An immutable blob answered with its hash as ETag (304 when the client holds it); `bytes`
/// when the caller already read them.
async fn cached(
    state: &AppState,
    media: &str,
    hash: BlobHash,
    headers: &HeaderMap,
    bytes: Option<bytes::Bytes>,
) -> Result<Response> {
    let etag = format!("\"{}\"", hash.hex());
    let header_value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| AppError::Internal(e.to_string()));
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        (header::ETAG, header_value(&etag)?),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let bytes = match bytes {
        Some(b) => b,
        None => state.blobs.get(hash).await?,
    };
    Ok((cache, [(header::CONTENT_TYPE, header_value(media)?)], bytes).into_response())
}

/// A handwritten signature's strokes blob (PROTOCOL.md §14) by its SHA-256, for a phone that
/// shows a signature made on another device. The hash is named only inside signatures, which
/// only those who see the signed record or letter receive; and only a blob that is strokes is
/// served here (a photo's hash is 404: photos have their own route and rights).
#[utoipa::path(get, path = "/strokes/{sha256}", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the strokes blob"),
           ("If-None-Match" = Option<String>, Header, description = "an ETag already held")),
    responses((status = 200, description = "the strokes, byte for byte",
               content_type = "application/vnd.yanshou.strokes+json",
               headers(("ETag" = String), ("Cache-Control" = String))),
              (status = 304, description = "the client's copy is current"),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no strokes blob with this hash", body = ErrorBody)))]
async fn strokes_blob(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let hash: BlobHash = sha256.parse().map_err(|_| AppError::NotFound("strokes"))?;
    let bytes = match state.blobs.size(hash).await? {
        Some(n) if n <= MAX_STROKES_BYTES as u64 => state.blobs.get(hash).await?,
        _ => return Err(AppError::NotFound("strokes")),
    };
    if parse_strokes(&bytes).is_err() {
        return Err(AppError::NotFound("strokes"));
    }
    cached(&state, STROKES_CONTENT_TYPE, hash, &headers, Some(bytes)).await
}

/// The original photo, byte for byte (EXIF and GPS included). Not for a mine's holder, but for
/// the photos filed as their own mine's evidence.
#[utoipa::path(get, path = "/photos/{sha256}", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the original"),
           ("If-None-Match" = Option<String>, Header, description = "an ETag already held")),
    responses((status = 200, description = "the original (`image/jpeg` or `image/png`)",
               content_type = "image/*", headers(("ETag" = String), ("Cache-Control" = String))),
              (status = 304, description = "the client's copy is current"),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such photo, or not one the caller may see",
               body = ErrorBody)))]
async fn photo_original(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    serve_file(&state, &caller, &sha256, Variant::Original, &headers).await
}

/// A thumbnail: an upright JPEG without any metadata (no EXIF, no GPS); `small` has a long
/// side of 320 px, `large` of 1280 px.
#[utoipa::path(get, path = "/photos/{sha256}/thumb/{size}", tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the original"),
           ("size" = String, Path, description = "`small` or `large`"),
           ("If-None-Match" = Option<String>, Header, description = "an ETag already held")),
    responses((status = 200, description = "the thumbnail", content_type = "image/jpeg",
               headers(("ETag" = String), ("Cache-Control" = String))),
              (status = 304, description = "the client's copy is current"),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such photo or size, or not one the caller may see",
               body = ErrorBody)))]
async fn photo_thumbnail(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((sha256, size)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let variant = match size.as_str() {
        "small" => Variant::Small,
        "large" => Variant::Large,
        _ => return Err(AppError::NotFound("thumbnail size")),
    };
    serve_file(&state, &caller, &sha256, variant, &headers).await
}

/// What the server learned from a photo: type, size, dimensions, the EXIF facts and their
/// warnings, the thumbnails, and the records it belongs to.
#[utoipa::path(get, path = "/photos/{sha256}/meta", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the original")),
    responses((status = 200, body = PhotoDetailView),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such photo, or not one the caller may see",
               body = ErrorBody)))]
async fn photo_meta(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(sha256): Path<String>,
) -> Result<Response> {
    let Visible {
        photo,
        exif,
        records,
        mines,
    } = evidence::visible_photo(&state, &caller, &sha256).await?;
    let view = PhotoDetailView {
        photo: PhotoView::new(&photo, &exif),
        records,
        mines,
    };
    Ok((
        [
            (header::CACHE_CONTROL, "private, no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Json(view),
    )
        .into_response())
}

/// The record's photos with their facts and verdicts: the EXIF position against the mine's
/// boundary, the capture time against the visit (the round's opening day).
#[utoipa::path(get, path = "/rounds/{id}/photos", tag = "photos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "round (record) id")),
    responses((status = 200, body = Vec<RecordPhotoView>),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such record, or not one the caller may see",
               body = ErrorBody)))]
async fn record_photos(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<RecordPhotoView>>> {
    let findings = evidence::record_findings(&state, &caller, id).await?;
    Ok(Json(findings.iter().map(RecordPhotoView::from).collect()))
}
