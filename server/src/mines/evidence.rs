//! The holder's rectification evidence: photos and documents a mine's holder (or the county
//! office on their behalf) files for the mine, each with its description (说明) and optionally
//! the acceptance items and the deadline it answers.
//!
//! The bytes arrive first through a resumable upload for the mine (`POST /uploads` with
//! `mine_id`, [`crate::photos::upload`]): a photo is ingested there (thumbnails), a document is
//! checked to be a PDF. Filing names the upload's hash; a file not (completely) uploaded for
//! this mine is `evidence_not_uploaded` (409). Whoever sees the mine sees its evidence
//! ([`visible_mine`]: the county roles, its township's officers, its holder).

use uuid::Uuid;

use super::campaign;
use crate::{
    AppState,
    error::{AppError, ErrorCode, Result},
    identity::auth::{AuthUser, visible_mine},
    model::Role,
    photos::upload::{DOCUMENT_CONTENT_TYPE, LIMITS},
    rules::workflow::REINSPECTION_KEY,
    store::MineEvidence,
};

/// The two kinds of evidence.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A JPEG or PNG photo (ingested: facts and thumbnails).
    Photo,
    /// A PDF (生态修复方案, completion report), kept as uploaded.
    Document,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Photo => "photo",
            EvidenceKind::Document => "document",
        }
    }
}

/// An entry to file.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    pub sha256: String,
    pub kind: EvidenceKind,
    pub description: String,
    pub items: Vec<String>,
    pub deadline_key: Option<String>,
}

/// Longest description, characters.
pub const DESCRIPTION_MAX_CHARS: usize = 2000;
/// Longest acceptance item number, characters.
pub const ITEM_MAX_CHARS: usize = 32;

/// File an evidence entry for the mine `mine_id`: its holder, the county office or an admin;
/// the file must have been uploaded for this mine.
pub async fn file_evidence(
    state: &AppState,
    caller: &AuthUser,
    mine_id: Uuid,
    new: NewEvidence,
) -> Result<MineEvidence> {
    if !matches!(
        caller.role(),
        Role::Operator | Role::CountyOffice | Role::Admin
    ) {
        return Err(AppError::Forbidden(
            "only the mine's holder, the county office or an admin file holder evidence".into(),
        ));
    }
    let mine = visible_mine(state, caller, mine_id).await?;
    let description = new.description.trim().to_owned();
    if description.is_empty() {
        return Err(AppError::invalid_field(
            "description",
            "say what the file shows or is (说明)",
        ));
    }
    if description.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(AppError::invalid_field(
            "description",
            format!("at most {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    let mut items = Vec::with_capacity(new.items.len());
    for (i, item) in new.items.iter().enumerate() {
        let item = item.trim();
        if item.is_empty() || item.chars().count() > ITEM_MAX_CHARS {
            return Err(AppError::invalid_field(
                &format!("items[{i}]"),
                format!("an acceptance item number of 1 to {ITEM_MAX_CHARS} characters"),
            ));
        }
        if !items.iter().any(|known: &String| known == item) {
            items.push(item.to_owned());
        }
    }
    let deadline_key = match new.deadline_key.as_deref().map(str::trim) {
        None => None,
        Some(key) => {
            let campaign = campaign(state, &mine.campaign_id).await?;
            let known = key == REINSPECTION_KEY || campaign.deadlines.iter().any(|d| d.key == key);
            if !known {
                return Err(AppError::invalid_field(
                    "deadline_key",
                    format!(
                        "not a deadline of the mine's campaign {} (nor `{REINSPECTION_KEY}`)",
                        campaign.id
                    ),
                ));
            }
            Some(key.to_owned())
        }
    };
    let hash: crate::blobs::BlobHash = new
        .sha256
        .parse()
        .map_err(|_| AppError::invalid_field("sha256", "64 lowercase hexadecimal digits"))?;
    let sha256 = hash.hex();
    let upload = state.store.find_mine_upload(mine.id, &sha256).await?;
    let upload = match upload {
        Some(u) if u.completed_at.is_some() => u,
        Some(u) => {
            return Err(AppError::Conflict {
                code: ErrorCode::EvidenceNotUploaded,
                message: format!(
                    "the upload of {sha256} for this mine has {} of its {} bytes: finish it \
                     (POST /uploads/{}/finish) before filing",
                    u.received, u.size, u.id
                ),
            });
        }
        None => {
            return Err(AppError::Conflict {
                code: ErrorCode::EvidenceNotUploaded,
                message: format!(
                    "no file {sha256} was uploaded for this mine: upload it first \
                     (POST /uploads with mine_id)"
                ),
            });
        }
    };
    let is_photo = LIMITS.content_types.contains(&upload.content_type.as_str());
    let matches = match new.kind {
        EvidenceKind::Photo => is_photo,
        EvidenceKind::Document => upload.content_type == DOCUMENT_CONTENT_TYPE,
    };
    if !matches {
        return Err(AppError::invalid_field(
            "kind",
            format!(
                "the file is {}, not a {}",
                upload.content_type,
                new.kind.as_str()
            ),
        ));
    }
    let entry = MineEvidence {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        kind: new.kind.as_str().to_owned(),
        sha256,
        content_type: upload.content_type,
        size: upload.size,
        description,
        items,
        deadline_key,
        created_by: caller.id(),
        created_at: state.clock.now_ms(),
    };
    state.store.add_mine_evidence(&entry).await?;
    Ok(entry)
}

/// The evidence of a mine the caller sees, in filing order.
pub async fn list_evidence(
    state: &AppState,
    caller: &AuthUser,
    mine_id: Uuid,
) -> Result<Vec<MineEvidence>> {
    let mine = visible_mine(state, caller, mine_id).await?;
    Ok(state.store.list_mine_evidence(mine.id).await?)
}

/// One entry of a mine the caller sees (another mine's entry is "not found").
pub async fn get_evidence(
    state: &AppState,
    caller: &AuthUser,
    mine_id: Uuid,
    id: Uuid,
) -> Result<MineEvidence> {
    let mine = visible_mine(state, caller, mine_id).await?;
    match state.store.get_mine_evidence(mine.id, id).await {
        Ok(e) => Ok(e),
        Err(crate::store::StoreError::NotFound) => Err(AppError::NotFound("evidence")),
        Err(e) => Err(e.into()),
    }
}
