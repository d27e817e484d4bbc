//! Photos as evidence of a record: keeping what ingest learned (the original, both thumbnails,
//! a row of facts, the records a photo was uploaded for), showing them to whoever may see one
//! of their records, and the place and time verdicts of a record's photos.
//!
//! Who sees a photo: a caller who may see one of its records (the rule of records and mines,
//! [`visible_mine`] through the round's mine), or one of the mines whose holder evidence it is.
//! A mine's holder (`operator`) sees thumbnails and facts of its own mine's photos but never the
//! original of an inspector's photo; the original of a photo filed as their mine's evidence
//! (uploaded for that mine, so theirs or the county office's) they may get back. Anything else
//! is "not found", whether the photo exists or not.

use bytes::Bytes;
use uuid::Uuid;

use super::{
    IngestError, Ingested,
    exif::PhotoExif,
    geofence::{
        CHINA_STANDARD_TIME, Fix, GeofenceSettings, LocationVerdict, TimeVerdict, boundary_polygon,
        judge_time, locate,
    },
    sniff::Limits,
};
use crate::{
    AppState,
    blobs::BlobHash,
    error::{AppError, ErrorCode, Result},
    identity::auth::{AuthUser, visible_mine},
    model::Role,
    store::{Photo, StoreError, StoredThumb},
};

/// Photos ingested at once, at most one per core. Each ingest holds the file, a DCT-scaled
/// decode and both thumbnails (about 24 MiB for a 12-megapixel photo): without a cap, 20
/// uploads finishing together took the server from 150 to 630 MiB (`uploadbench`), for no
/// gain in throughput on a machine whose cores were already busy.
static INGESTING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from))
});

/// Run [`super::ingest`] on the blocking pool (it is CPU work), refusing what it refuses; at
/// most one ingest per core runs at a time, the others wait their turn.
pub async fn ingest_off_thread(bytes: Bytes) -> Result<Ingested> {
    let _permit = INGESTING
        .acquire()
        .await
        .map_err(|e| AppError::Internal(format!("ingest semaphore closed: {e}")))?;
    tokio::task::spawn_blocking(move || super::ingest(&bytes, &Limits::default()))
        .await
        .map_err(|e| AppError::Internal(format!("ingest task: {e}")))?
        .map_err(refused)
}

/// The API error of a file ingest refuses: 422 `photo_refused` with ingest's message.
pub fn refused(e: IngestError) -> AppError {
    AppError::Unprocessable {
        code: ErrorCode::PhotoRefused,
        message: e.to_string(),
    }
}

/// Keep an ingested photo for `record`: both thumbnails as blobs, then its row and the link.
/// The original's blob is the caller's (stored before or after, by its own rules).
pub async fn keep(state: &AppState, photo: &Ingested, record: Uuid) -> Result<()> {
    let row = thumbnails(state, photo).await?;
    state.store.add_photo(&row, record, row.created_at).await?;
    Ok(())
}

/// Keep an ingested photo uploaded for a mine (a holder's evidence): thumbnails and row, no
/// record; it is linked to the mine when it is filed (and visible from then on).
pub async fn keep_unlinked(state: &AppState, photo: &Ingested) -> Result<()> {
    let row = thumbnails(state, photo).await?;
    state.store.keep_photo(&row).await?;
    Ok(())
}

/// Store both thumbnails as blobs; the photo's row to keep.
async fn thumbnails(state: &AppState, photo: &Ingested) -> Result<Photo> {
    let small = state
        .blobs
        .put(Bytes::from(photo.small.jpeg.clone()))
        .await?;
    let large = state
        .blobs
        .put(Bytes::from(photo.large.jpeg.clone()))
        .await?;
    let exif = serde_json::to_string(&photo.exif)
        .map_err(|e| AppError::Internal(format!("EXIF facts: {e}")))?;
    Ok(Photo {
        sha256: photo.sha256.clone(),
        content_type: photo.kind.media_type().to_owned(),
        bytes: photo.bytes as u64,
        width: photo.width,
        height: photo.height,
        exif,
        small: StoredThumb {
            sha256: small.hex(),
            bytes: photo.small.jpeg.len() as u64,
            width: photo.small.width,
            height: photo.small.height,
        },
        large: StoredThumb {
            sha256: large.hex(),
            bytes: photo.large.jpeg.len() as u64,
            width: photo.large.width,
            height: photo.large.height,
        },
        created_at: state.clock.now_ms(),
    })
}

/// A photo the server already holds, declared again (for this record or another): link it to
/// `record`. A blob kept without its facts (a crash between the two) is ingested now.
pub async fn link_held(state: &AppState, hash: BlobHash, record: Uuid) -> Result<()> {
    let now = state.clock.now_ms();
    if state.store.link_photo(&hash.hex(), record, now).await? {
        return Ok(());
    }
    let bytes = state.blobs.get(hash).await?;
    let photo = ingest_off_thread(bytes).await?;
    keep(state, &photo, record).await
}

/// Which file of a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The bytes as uploaded (EXIF and GPS included): not for holders.
    Original,
    /// The small thumbnail (long side 320 px), no metadata.
    Small,
    /// The large thumbnail (long side 1280 px), no metadata.
    Large,
}

/// A photo the caller may see, with the records of it the caller may see.
#[derive(Debug, Clone)]
pub struct Visible {
    pub photo: Photo,
    pub exif: PhotoExif,
    pub records: Vec<Uuid>,
    /// The mines whose holder evidence it is, of those the caller sees.
    pub mines: Vec<Uuid>,
}

/// The photo `sha256` if the caller may see one of its records, or one of the mines whose
/// evidence it is (else "not found").
pub async fn visible_photo(state: &AppState, caller: &AuthUser, sha256: &str) -> Result<Visible> {
    let not_found = || AppError::NotFound("photo");
    let hash: BlobHash = sha256.parse().map_err(|_| not_found())?;
    let photo = match state.store.get_photo(&hash.hex()).await {
        Ok(p) => p,
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let mut records = Vec::new();
    for record in state.store.list_photo_records(&photo.sha256).await? {
        let round = match state.store.get_round(record).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        match visible_mine(state, caller, round.mine_id).await {
            Ok(_) => records.push(record),
            Err(AppError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut mines = Vec::new();
    for mine in state.store.list_evidence_mines(&photo.sha256).await? {
        match visible_mine(state, caller, mine).await {
            Ok(_) => mines.push(mine),
            Err(AppError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if records.is_empty() && mines.is_empty() {
        return Err(not_found());
    }
    let exif = exif_of(&photo);
    Ok(Visible {
        photo,
        exif,
        records,
        mines,
    })
}

/// The media type and blob of one file of a visible photo; a holder gets no original but of
/// their own mine's evidence.
pub async fn file(
    state: &AppState,
    caller: &AuthUser,
    sha256: &str,
    variant: Variant,
) -> Result<(String, BlobHash)> {
    let seen = visible_photo(state, caller, sha256).await?;
    let (media, hash) = match variant {
        Variant::Original if caller.role() == Role::Operator && seen.mines.is_empty() => {
            return Err(AppError::NotFound("photo"));
        }
        Variant::Original => (seen.photo.content_type.clone(), &seen.photo.sha256),
        Variant::Small => ("image/jpeg".to_owned(), &seen.photo.small.sha256),
        Variant::Large => ("image/jpeg".to_owned(), &seen.photo.large.sha256),
    };
    let hash = hash
        .parse()
        .map_err(|e| AppError::Internal(format!("stored photo hash: {e}")))?;
    Ok((media, hash))
}

/// A record's photo with its facts and verdicts.
#[derive(Debug, Clone)]
pub struct Findings {
    pub photo: Photo,
    pub exif: PhotoExif,
    /// The EXIF position against the mine's boundary.
    pub location: LocationVerdict,
    /// The EXIF capture time against the visit (the round's opening), by the county's calendar.
    pub time: TimeVerdict,
}

/// The photos of the record `round_id` the caller may see, with their verdicts.
pub async fn record_findings(
    state: &AppState,
    caller: &AuthUser,
    round_id: Uuid,
) -> Result<Vec<Findings>> {
    let round = match state.store.get_round(round_id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("record")),
        Err(e) => return Err(e.into()),
    };
    let mine = visible_mine(state, caller, round.mine_id)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("record"),
            e => e,
        })?;
    let boundary = mine.boundary.as_ref().and_then(boundary_polygon);
    let settings = GeofenceSettings::default();
    Ok(state
        .store
        .list_record_photos(round_id)
        .await?
        .into_iter()
        .map(|photo| {
            let exif = exif_of(&photo);
            let fix = exif
                .position()
                .map(|(lat, lon)| Fix::wgs84(lat, lon, exif.accuracy_m));
            let location = locate(fix.as_ref(), boundary.as_ref(), &settings);
            let time = judge_time(
                exif.captured_at.as_ref(),
                round.created_at,
                CHINA_STANDARD_TIME,
                &settings,
            );
            Findings {
                photo,
                exif,
                location,
                time,
            }
        })
        .collect())
}

/// The stored EXIF facts (a row that does not parse shows as a warning, not an error).
pub(super) fn exif_of(photo: &Photo) -> PhotoExif {
    serde_json::from_str(&photo.exif).unwrap_or_else(|e| PhotoExif {
        warnings: vec![super::exif::ExifWarning {
            field: "EXIF".into(),
            problem: format!("stored facts unreadable: {e}"),
        }],
        ..PhotoExif::default()
    })
}
