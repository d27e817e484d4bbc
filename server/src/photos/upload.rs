//! Resumable uploads: create, ask the offset, append chunks, finish.
//!
//! - **create** declares the SHA-256, size and media type of a file for one acceptance record
//!   (a round's id) or one mine (its holder's rectification evidence). The caller must be on an
//!   enrolled device and allowed to write some section of the record (the rights of
//!   `sync::policy`), or be the mine's bound holder, the county office or an admin. For a
//!   record, a hash the blob store already holds answers at once (and links the photo to this
//!   record too): nothing is uploaded twice. For a mine, only a file already uploaded for that
//!   mine does: a holder proves they have the bytes by sending them, so a hash seen elsewhere
//!   (an inspector's photo) never becomes the holder's evidence, nor their original to fetch.
//!   A mine also takes documents: a PDF (by its `%PDF-` magic bytes, at most
//!   [`DOCUMENT_MAX_BYTES`]), kept as uploaded without ingest.
//! - **append** writes a chunk at the upload's current offset as a part in the blob store, and
//!   only then advances the stored offset, in one write guarded by the offset the chunk was
//!   sent at: a chunk at another offset, or a duplicate that lost the race, gets 409 with the
//!   current offset, and a server that dies in between leaves the offset where it was (the
//!   part is written again by the retry).
//! - A record also takes a person's handwritten signature: a strokes blob (PROTOCOL.md §14,
//!   [`STROKES_CONTENT_TYPE`], at most [`MAX_STROKES_BYTES`]), checked against the format at
//!   finish and kept as uploaded. Experts upload theirs to the record of the round whose letter
//!   they sign; a sync op naming strokes is accepted only once they are held.
//! - **finish** joins the parts, checks size and SHA-256 and ingests the file (off the async
//!   threads: type, caps, EXIF, both thumbnails; an undecodable image is refused and nothing is
//!   kept; a document is only checked for its magic bytes), stores the thumbnails, the photo's
//!   facts and its link to the record (a mine's photo is linked when it is filed), then the blob,
//!   marks the upload complete and deletes the parts. Finishing again answers the same.

use bytes::Bytes;
use sync_protocol::EntityId;
use uuid::Uuid;

use super::evidence;
use crate::{
    AppState,
    blobs::{BlobError, BlobHash},
    error::{AppError, ErrorCode, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{
        Role,
        record::{HEADER_SECTION, TOWNSHIP_SECTION},
        strokes::{MAX_STROKES_BYTES, STROKES_CONTENT_TYPE, parse_strokes},
    },
    store::{StoreError, Upload},
    sync::policy::SyncPolicy,
};

pub use crate::model::record::{LIMITS, Limits};

/// The media type of the documents a mine's holder may upload (生态修复方案, completion reports).
pub const DOCUMENT_CONTENT_TYPE: &str = "application/pdf";
/// Largest document: a scanned report of a few dozen pages.
pub const DOCUMENT_MAX_BYTES: u64 = 20_000_000;
/// The first bytes of every PDF file.
pub const PDF_MAGIC: &[u8] = b"%PDF-";

/// What an upload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An acceptance record (a round's id): an inspector's photo.
    Record(Uuid),
    /// A mine: its holder's evidence of the rectification (photo or document).
    Mine(Uuid),
}

/// A new upload as declared by the phone.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub target: Target,
}

/// What `create` answers.
#[derive(Debug, Clone)]
pub enum Created {
    /// Send the bytes to this upload.
    Started(Upload),
    /// The server already holds these bytes: nothing to send.
    AlreadyStored { sha256: BlobHash, size: u64 },
}

/// Declare an upload.
pub async fn create(state: &AppState, caller: &AuthUser, new: NewUpload) -> Result<Created> {
    let device = enrolled_device(caller)?;
    let hash: BlobHash = new
        .sha256
        .parse()
        .map_err(|_| AppError::invalid_field("sha256", "64 lowercase hexadecimal digits"))?;
    if new.size == 0 {
        return Err(AppError::invalid_field(
            "size",
            "an empty file is not a photo",
        ));
    }
    let document = new.content_type == DOCUMENT_CONTENT_TYPE;
    let strokes = new.content_type == STROKES_CONTENT_TYPE;
    let max = if document {
        DOCUMENT_MAX_BYTES
    } else if strokes {
        MAX_STROKES_BYTES as u64
    } else {
        LIMITS.file_max_bytes
    };
    if new.size > max {
        return Err(AppError::TooLarge(format!(
            "the file has {} bytes; at most {max} are accepted",
            new.size
        )));
    }
    let photo_type = LIMITS.content_types.contains(&new.content_type.as_str());
    match new.target {
        Target::Record(_) if !photo_type && !strokes => {
            return Err(AppError::invalid_field(
                "content_type",
                format!(
                    "accepted types: {}, {STROKES_CONTENT_TYPE}",
                    LIMITS.content_types.join(", ")
                ),
            ));
        }
        Target::Mine(_) if !photo_type && !document => {
            return Err(AppError::invalid_field(
                "content_type",
                format!(
                    "accepted types: {}, {DOCUMENT_CONTENT_TYPE}",
                    LIMITS.content_types.join(", ")
                ),
            ));
        }
        _ => {}
    }
    match new.target {
        Target::Record(record) => {
            check_may_write_record(state, caller, record, strokes).await?;
            if strokes && state.blobs.size(hash).await? == Some(new.size) {
                // The same strokes were uploaded before (a retry whose answer was lost).
                return Ok(Created::AlreadyStored {
                    sha256: hash,
                    size: new.size,
                });
            }
            if !strokes && state.blobs.size(hash).await? == Some(new.size) {
                // Already held: this record is one more the photo belongs to.
                evidence::link_held(state, hash, record).await?;
                publish_findings(super::findings::publish(state, EntityId(record))).await;
                return Ok(Created::AlreadyStored {
                    sha256: hash,
                    size: new.size,
                });
            }
        }
        Target::Mine(mine) => {
            check_may_upload_to_mine(state, caller, mine).await?;
            if let Some(done) = state.store.find_mine_upload(mine, &hash.hex()).await?
                && done.completed_at.is_some()
                && done.size == new.size
                && done.content_type == new.content_type
            {
                // Sent for this mine before (by its holder or the county office).
                return Ok(Created::AlreadyStored {
                    sha256: hash,
                    size: new.size,
                });
            }
        }
    }
    let now = state.clock.now_ms();
    let upload = Upload {
        id: Uuid::now_v7(),
        user_id: caller.id(),
        device_id: device,
        record_id: match new.target {
            Target::Record(r) => Some(r),
            Target::Mine(_) => None,
        },
        mine_id: match new.target {
            Target::Mine(m) => Some(m),
            Target::Record(_) => None,
        },
        sha256: hash.hex(),
        size: new.size,
        content_type: new.content_type,
        received: 0,
        created_at: now,
        updated_at: now,
        completed_at: None,
    };
    state.store.create_upload(&upload).await?;
    Ok(Created::Started(upload))
}

/// The photo is stored whatever happens here: findings that could not be published now are
/// published again by the next push or upload of the record's photos.
async fn publish_findings(publish: impl std::future::Future<Output = Result<()>>) {
    if let Err(e) = publish.await {
        tracing::warn!(error = ?e.to_string(), "publishing photo findings failed");
    }
}

/// The upload `id` of the caller's device (another's is "not found").
pub async fn get(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<Upload> {
    let device = enrolled_device(caller)?;
    match state.store.get_upload(id).await {
        Ok(u) if u.user_id == caller.id() && u.device_id == device => Ok(u),
        Ok(_) | Err(StoreError::NotFound) => Err(AppError::NotFound("upload")),
        Err(e) => Err(e.into()),
    }
}

/// Append `chunk` at `offset`; returns the new offset.
pub async fn append(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    offset: u64,
    chunk: Bytes,
) -> Result<u64> {
    let upload = get(state, caller, id).await?;
    if upload.completed_at.is_some() || offset != upload.received {
        return Err(AppError::UploadOffset {
            code: ErrorCode::UploadOffsetMismatch,
            offset: upload.received,
        });
    }
    let len = chunk.len() as u64;
    if len > LIMITS.chunk_max_bytes {
        return Err(AppError::TooLarge(format!(
            "a chunk has at most {} bytes",
            LIMITS.chunk_max_bytes
        )));
    }
    if offset + len > upload.size {
        return Err(AppError::TooLarge(format!(
            "the chunk ends at {}, past the declared size {}",
            offset + len,
            upload.size
        )));
    }
    if len == 0 {
        return Ok(offset);
    }
    state.blobs.put_part(id, offset, chunk).await?;
    let now = state.clock.now_ms();
    if state
        .store
        .advance_upload(id, offset, offset + len, now)
        .await?
    {
        Ok(offset + len)
    } else {
        // Another chunk for this offset got there first.
        let current = state.store.get_upload(id).await?;
        Err(AppError::UploadOffset {
            code: ErrorCode::UploadOffsetMismatch,
            offset: current.received,
        })
    }
}

/// Verify and store the uploaded file; returns its hash and size.
pub async fn finish(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<(BlobHash, u64)> {
    let upload = get(state, caller, id).await?;
    let hash: BlobHash = upload
        .sha256
        .parse()
        .map_err(|e: BlobError| AppError::Internal(e.to_string()))?;
    if upload.completed_at.is_some() {
        return Ok((hash, upload.size));
    }
    if upload.received < upload.size {
        return Err(AppError::UploadOffset {
            code: ErrorCode::UploadIncomplete,
            offset: upload.received,
        });
    }
    let bytes = state.blobs.read_parts(id, upload.size).await?;
    if bytes.len() as u64 != upload.size {
        // A concurrent finish of this upload may have stored the blob and deleted the parts.
        if state.store.get_upload(id).await?.completed_at.is_some() {
            return Ok((hash, upload.size));
        }
        state.blobs.delete_parts(id).await?;
        return Err(mismatch(format!(
            "only {} of the {} bytes of this upload are kept; start a new upload",
            bytes.len(),
            upload.size
        )));
    }
    if upload.content_type == STROKES_CONTENT_TYPE {
        if let Err(e) = parse_strokes(&bytes) {
            state.blobs.delete_parts(id).await?;
            return Err(AppError::Unprocessable {
                code: ErrorCode::StrokesRefused,
                message: format!("not a handwritten signature (PROTOCOL.md §14): {e}"),
            });
        }
    } else if upload.content_type == DOCUMENT_CONTENT_TYPE {
        if !bytes.starts_with(PDF_MAGIC) {
            state.blobs.delete_parts(id).await?;
            return Err(AppError::Unprocessable {
                code: ErrorCode::DocumentRefused,
                message: format!(
                    "the file is not a PDF (it does not start with %PDF-), not the declared \
                     {DOCUMENT_CONTENT_TYPE}"
                ),
            });
        }
    } else {
        let photo = match ingest(&upload, bytes.clone()).await {
            Ok(photo) => photo,
            Err(e) => {
                // A file the server will not keep: its parts are of no use either.
                state.blobs.delete_parts(id).await?;
                return Err(e);
            }
        };
        if photo.sha256 != hash.hex() {
            state.blobs.delete_parts(id).await?;
            return Err(mismatch(format!(
                "the bytes hash to {}, not the declared {hash}; start a new upload",
                photo.sha256
            )));
        }
        // The thumbnails and facts first: a stored original always has them (a crash in
        // between leaves unreferenced thumbnails, and a retry makes the same ones).
        match upload.record_id {
            Some(record) => evidence::keep(state, &photo, record).await?,
            None => evidence::keep_unlinked(state, &photo).await?,
        }
    }
    match state.blobs.put_expecting(hash, bytes).await {
        Ok(()) => {}
        Err(BlobError::HashMismatch { actual, .. }) => {
            // Nothing is stored; the parts are of no use to anyone.
            state.blobs.delete_parts(id).await?;
            return Err(mismatch(format!(
                "the bytes hash to {actual}, not the declared {hash}; start a new upload"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .complete_upload(id, state.clock.now_ms())
        .await?;
    if let Err(e) = state.blobs.delete_parts(id).await {
        tracing::warn!(upload = %id, error = %e, "could not delete the parts of an upload");
    }
    if upload.record_id.is_some() && upload.content_type != STROKES_CONTENT_TYPE {
        publish_findings(super::findings::after_upload(state, &hash.hex())).await;
    }
    Ok((hash, upload.size))
}

/// Content checks of an upload before its blob is stored, by the full [`super::ingest`] on the
/// blocking pool: the file must be the type it was declared as, by its magic bytes (a text file
/// named `.jpg` is refused, HEIC with its own message), within the byte and pixel caps read from
/// its header (a decompression bomb never reaches a decoder), and decode to its thumbnails (a
/// truncated or corrupt image is refused).
async fn ingest(upload: &Upload, bytes: Bytes) -> Result<super::Ingested> {
    let photo = evidence::ingest_off_thread(bytes).await?;
    if photo.kind.media_type() != upload.content_type {
        return Err(AppError::Unprocessable {
            code: ErrorCode::PhotoRefused,
            message: format!(
                "the file is {}, not the declared {}",
                photo.kind.media_type(),
                upload.content_type
            ),
        });
    }
    Ok(photo)
}

fn mismatch(message: String) -> AppError {
    AppError::Unprocessable {
        code: ErrorCode::HashMismatch,
        message,
    }
}

/// Uploads come from enrolled phones only: the caller's device, or 403.
pub fn enrolled_device(caller: &AuthUser) -> Result<Uuid> {
    caller.device().ok_or_else(|| {
        AppError::Forbidden(
            "uploads need a session bound to an enrolled device (log in with device_id)".into(),
        )
    })
}

/// The mine must exist and be visible to the caller (else "not found": a holder's own mines
/// only), and the caller must be its holder, the county office or an admin (else 403:
/// inspectors, township officers and experts add photos to acceptance records).
async fn check_may_upload_to_mine(state: &AppState, caller: &AuthUser, mine: Uuid) -> Result<()> {
    if !matches!(
        caller.role(),
        Role::Operator | Role::CountyOffice | Role::Admin
    ) {
        return Err(AppError::Forbidden(
            "only the mine's holder, the county office or an admin upload to a mine; \
             inspectors upload photos to acceptance records (record_id)"
                .into(),
        ));
    }
    visible_mine(state, caller, mine).await?;
    Ok(())
}

/// The record must exist and be visible to the caller (else "not found"), and the caller must
/// be allowed to write a section of it (else 403): county office and admins the header, a
/// township officer the township section (of its own township's records), an inspector its
/// department's section. An expert writes no section of a record: they upload only the
/// strokes of their signature of the round's opinion letter.
async fn check_may_write_record(
    state: &AppState,
    caller: &AuthUser,
    record: Uuid,
    strokes: bool,
) -> Result<()> {
    let round = match state.store.get_round(record).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("record")),
        Err(e) => return Err(e.into()),
    };
    visible_mine(state, caller, round.mine_id)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("record"),
            e => e,
        })?;
    let section = match caller.role() {
        Role::Admin | Role::CountyOffice => HEADER_SECTION,
        Role::TownshipOfficer => TOWNSHIP_SECTION,
        Role::Expert if strokes => return Ok(()),
        Role::Expert => {
            return Err(AppError::Forbidden(
                "an expert adds no photos to an acceptance record; they sign the opinion letter"
                    .into(),
            ));
        }
        Role::DepartmentInspector => caller.claims.dept.as_deref().unwrap_or_default(),
        Role::Operator => {
            return Err(AppError::Forbidden(
                "a holder may not add photos to an acceptance record".into(),
            ));
        }
    };
    let policy = SyncPolicy::for_caller(caller, &state.inspecting_departments);
    policy
        .may_write(section)
        .map_err(|reject| AppError::Forbidden(reject.message))
}
