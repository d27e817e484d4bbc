//! The archive bundle of an acceptance round (`GET /rounds/{id}/bundle.zip`): one zip that an
//! auditor can check years later without the server (`yanshou verify`, [`super::verify`]).
//! The layout and the manifest are [`super::manifest`]'s.
//!
//! How it is made:
//! - the record and its sync entity come from one read ([`records::assemble_with_entity`]), so
//!   `record.json` and `entity.json` describe the same state; the PDF is rendered from that
//!   same assembled record;
//! - the zip is written to an unnamed temporary file (gone when closed; in `$TMPDIR`, which
//!   should be on disk, not a RAM-backed tmpfs) on the blocking pool, one photo at a time: the
//!   server holds at most one photo's bytes, never the whole bundle, and the response streams
//!   the finished file with its length; at most two bundles are made at once;
//! - the round's opinion letter, when it has one, is archived the same way (`letter.json` as
//!   `GET /letters/{id}` answers it, `letter-entity.json`, `letter.pdf`); the devices and
//!   strokes of its experts' words join the record's;
//! - photos are stored as they are (a JPEG does not deflate), the JSON, strokes and PDF are
//!   deflated;
//! - the manifest lists every other file with its size and SHA-256 and is signed with the
//!   server's key ([`crate::identity::tokens::TokenKeys::sign_document`]).
//!
//! Who may have it: whoever may read the record, except a mine's holder: the bundle holds the
//! original photos (EXIF and GPS included), which a holder never gets (`photos::evidence`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{Seek, SeekFrom, Write},
};

use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike};
use sha2::{Digest, Sha256};
use sync_protocol::{EntityState, Value, signature};
use uuid::Uuid;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use super::{
    letter_pdf,
    manifest::{
        self, DeviceKey, ENTITY, FileEntry, KEYS, KeysFile, LETTER, LETTER_ENTITY, LETTER_PDF,
        LetterSummary, Manifest, Missing, RECORD, RECORD_PDF, ServerKey, SignatureEntry,
    },
    pdf,
};
use crate::{
    AppState,
    blobs::{BlobError, BlobHash},
    error::{AppError, Result},
    identity::auth::AuthUser,
    letters,
    model::{
        Role,
        letter::{OPINIONS_FIELD, letter_id},
        record::is_evidence_field,
    },
    photos::geofence::CHINA_STANDARD_TIME,
    records::{self, AssembledRecord},
    store::StoreError,
    sync::signatures::decode_key,
};

/// The roles that may have a bundle (every role but a mine's holder).
const BUNDLE_ROLES: &[Role] = &[
    Role::Admin,
    Role::CountyOffice,
    Role::DepartmentInspector,
    Role::TownshipOfficer,
    Role::Expert,
];

/// Bundles made at once. Each holds a temporary file the size of its photos (150 MB for 30
/// camera photos) and a core for hashing and the PDF: a few auditors exporting every round at
/// once wait their turn instead of filling the temporary directory together.
static BUILDING: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(2));

/// A finished bundle: the zip in an unnamed temporary file, positioned at its start.
#[derive(Debug)]
pub struct Bundle {
    pub file: File,
    pub size: u64,
    /// `验收档案-<mine>-第N次-<date>.zip`
    pub filename: String,
}

/// The bundle of round `round_id`, for a caller who may read its record (else "not found")
/// and is not a mine's holder (else "forbidden").
pub async fn bundle(state: &AppState, caller: &AuthUser, round_id: Uuid) -> Result<Bundle> {
    caller.require(BUNDLE_ROLES).map_err(|_| {
        AppError::Forbidden(
            "a mine's holder gets no archive bundle: it holds the inspectors' original photos"
                .into(),
        )
    })?;
    let (record, entity) = records::assemble_with_entity(state, caller, round_id).await?;
    let _permit = BUILDING.acquire().await.map_err(internal)?;
    let exported_at_ms = state.clock.now_ms();
    let filename = format!(
        "验收档案-{}-第{}次-{}.zip",
        record.mine.name, record.round_no, record.opened_on
    );
    let record_json = serde_json::to_vec(&record).map_err(internal)?;
    let entity_json = pretty(&entity)?;
    let signatures = signature_entries(&record);
    let record_hash = record.content_hash.clone();
    let pdf = pdf::render_record(state, record).await?;
    let mut named = Named::of(&entity);
    let letter = match letters::assemble_with_entity(state, caller, letter_id(round_id)).await {
        Ok((doc, letter)) => {
            for word in letter.elements(OPINIONS_FIELD) {
                named.statement(word);
            }
            let pdf = letter_pdf::render_letter(state, doc.clone()).await?;
            Some((doc, letter, pdf.bytes))
        }
        Err(AppError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let mut missing = Missing::default();
    let keys = device_keys(state, &named.devices, &mut missing).await?;

    let mut w = Writer::start(exported_at_ms).await?;
    w = w.add(RECORD, record_json, true).await?;
    w = w.add(ENTITY, entity_json, true).await?;
    w = w.add(RECORD_PDF, pdf.bytes, true).await?;
    w = w.add(KEYS, pretty(&keys)?, true).await?;
    let letter_summary = match letter {
        Some((doc, entity, pdf)) => {
            let summary = LetterSummary {
                letter_id: doc.letter_id,
                letter_hash: doc.letter_hash.clone(),
                content_hash: doc.content_hash.clone(),
                status: doc.status.clone(),
            };
            w = w
                .add(LETTER, serde_json::to_vec(&doc).map_err(internal)?, true)
                .await?;
            w = w.add(LETTER_ENTITY, pretty(&entity)?, true).await?;
            w = w.add(LETTER_PDF, pdf, true).await?;
            Some(summary)
        }
        None => None,
    };
    for (sha256, content_type) in &named.photos {
        match blob(state, sha256).await? {
            Some(bytes) => {
                w = w
                    .add(&manifest::photo_path(sha256, content_type), bytes, false)
                    .await?;
            }
            None => missing.photos.push(sha256.clone()),
        }
    }
    for sha256 in &named.strokes {
        match blob(state, sha256).await? {
            Some(bytes) => w = w.add(&manifest::strokes_path(sha256), bytes, true).await?,
            None => missing.strokes.push(sha256.clone()),
        }
    }
    let manifest = Manifest {
        format: manifest::FORMAT.to_owned(),
        round_id,
        record_content_hash: record_hash,
        letter: letter_summary,
        exported_at_ms,
        exported_at: DateTime::from_timestamp_millis(exported_at_ms)
            .map(|t| t.with_timezone(&CHINA_STANDARD_TIME).to_rfc3339())
            .unwrap_or_default(),
        server: ServerKey::of(&state.keys.public_key()),
        files: w.files.clone(),
        signatures,
        missing,
    };
    let manifest = pretty(&manifest)?;
    let sig = manifest::encode_signature(&state.keys.sign_document(&manifest));
    let (file, size) = blocking(move || w.finish(&manifest, sig.as_bytes())).await?;
    Ok(Bundle {
        file,
        size,
        filename,
    })
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("bundle: {e}"))
}

/// Two-space pretty JSON with a final newline (the protocol fixtures' style), for the files a
/// person may read.
fn pretty(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(value).map_err(internal)?;
    out.push(b'\n');
    Ok(out)
}

/// The blob `sha256`, or `None` when the server does not hold it.
async fn blob(state: &AppState, sha256: &str) -> Result<Option<Bytes>> {
    let hash: BlobHash = sha256.parse()?;
    match state.blobs.get(hash).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The record's section signatures with the server's verdicts (as assembled).
fn signature_entries(record: &AssembledRecord) -> Vec<SignatureEntry> {
    record
        .sections
        .iter()
        .filter_map(|s| {
            let sig = s.signature.as_ref()?;
            Some(SignatureEntry {
                section: s.department.clone(),
                signer: sig.signer.clone(),
                device: sig.device,
                content_hash: sig.content_hash.clone(),
                hash_holds: sig.hash_holds,
                signature_valid: sig.signature_valid,
            })
        })
        .collect()
}

/// What an entity's signed statements name: photos (SHA-256 → media type), strokes blobs and
/// the devices that signed.
#[derive(Debug, Default)]
pub struct Named {
    pub photos: BTreeMap<String, String>,
    pub strokes: BTreeSet<String>,
    pub devices: BTreeSet<Uuid>,
}

impl Named {
    /// Everything `entity`'s section signatures (withdrawn ones too) and photo attestations
    /// name.
    pub fn of(entity: &EntityState) -> Self {
        let mut named = Named::default();
        let sections = entity
            .signatures
            .values()
            .chain(entity.withdrawals.iter().map(|w| &w.signature));
        for sig in sections {
            named.devices.insert(sig.device.0);
            named.statement(&sig.signature);
        }
        for (key, set) in &entity.sets {
            if !is_evidence_field(key) {
                continue;
            }
            for element in set.elements.values() {
                if let Ok(claim) = signature::photo_claim(&element.value) {
                    named.devices.insert(claim.device.0);
                    named.photos.insert(claim.sha256, claim.content_type);
                }
            }
        }
        named
    }

    /// The device and strokes a signature value names.
    pub fn statement(&mut self, value: &Value) {
        let Ok(sig) = signature::DeviceSignature::from_value(value) else {
            return;
        };
        if let Some(device) = sig.device() {
            self.devices.insert(device.0);
        }
        if let Some((sha256, _)) = manifest::strokes_of(&sig.statement) {
            self.strokes.insert(sha256);
        }
    }
}

/// The enrolled keys of `devices`; devices the server does not know are noted as missing.
async fn device_keys(
    state: &AppState,
    devices: &BTreeSet<Uuid>,
    missing: &mut Missing,
) -> Result<KeysFile> {
    let mut out = KeysFile::default();
    for id in devices {
        let device = match state.store.get_device(*id).await {
            Ok(d) => d,
            Err(StoreError::NotFound) => {
                missing.device_keys.push(*id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let user_name = match state.store.get_user(device.user_id).await {
            Ok(u) => u.display_name,
            Err(StoreError::NotFound) => String::new(),
            Err(e) => return Err(e.into()),
        };
        out.devices.push(DeviceKey {
            device: device.id,
            name: device.name,
            user: device.user_id,
            user_name,
            public_key: manifest::jwk_of(&decode_key(&device.public_key_spki)?),
            enrolled_at_ms: device.created_at,
            revoked_at_ms: device.revoked_at,
        });
    }
    Ok(out)
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(internal)
}

/// The zip being written, with the entries the manifest will list.
struct Writer {
    zip: ZipWriter<File>,
    files: Vec<FileEntry>,
    /// Every entry's modification time: the export's, county time.
    when: zip::DateTime,
}

impl Writer {
    async fn start(exported_at_ms: i64) -> Result<Self> {
        let when = DateTime::from_timestamp_millis(exported_at_ms)
            .map(|t| t.with_timezone(&CHINA_STANDARD_TIME))
            .and_then(|t| {
                zip::DateTime::from_date_and_time(
                    u16::try_from(t.year()).ok()?,
                    u8::try_from(t.month()).ok()?,
                    u8::try_from(t.day()).ok()?,
                    u8::try_from(t.hour()).ok()?,
                    u8::try_from(t.minute()).ok()?,
                    u8::try_from(t.second()).ok()?,
                )
                .ok()
            })
            .unwrap_or_default();
        blocking(move || {
            let file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
            Ok(Writer {
                zip: ZipWriter::new(file),
                files: Vec::new(),
                when,
            })
        })
        .await
    }

    /// Adds `bytes` as `path` (on the blocking pool; the bytes are dropped once written).
    async fn add(
        self,
        path: &str,
        bytes: impl AsRef<[u8]> + Send + 'static,
        deflate: bool,
    ) -> Result<Self> {
        let path = path.to_owned();
        blocking(move || {
            let mut w = self;
            w.write(&path, bytes.as_ref(), deflate)?;
            w.files.push(FileEntry {
                sha256: hex::encode(Sha256::digest(bytes.as_ref())),
                size: bytes.as_ref().len() as u64,
                path,
            });
            Ok(w)
        })
        .await
    }

    fn write(
        &mut self,
        path: &str,
        bytes: &[u8],
        deflate: bool,
    ) -> std::result::Result<(), String> {
        let options = SimpleFileOptions::default()
            .compression_method(if deflate {
                CompressionMethod::Deflated
            } else {
                CompressionMethod::Stored
            })
            .last_modified_time(self.when)
            .unix_permissions(0o644)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        self.zip
            .start_file(path, options)
            .map_err(|e| format!("{path}: {e}"))?;
        self.zip
            .write_all(bytes)
            .map_err(|e| format!("{path}: {e}"))
    }

    /// Writes the manifest and its signature, closes the zip; the file is at its start.
    fn finish(mut self, manifest: &[u8], sig: &[u8]) -> std::result::Result<(File, u64), String> {
        self.write(manifest::MANIFEST, manifest, true)?;
        self.write(manifest::MANIFEST_SIG, sig, false)?;
        let mut file = self.zip.finish().map_err(|e| e.to_string())?;
        file.flush().map_err(|e| e.to_string())?;
        let size = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        Ok((file, size))
    }
}
