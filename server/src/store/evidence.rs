//! A mine's holder evidence: the photos and documents filed for a mine (by its mining-right
//! holder, or the county office on their behalf) with their description, the acceptance items
//! and the deadline they answer. The bytes are blobs, uploaded for the mine beforehand.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    SqlStore, StoreResult,
    sql::{Row, from_json, to_i64, to_json, to_u64},
};

/// One filed entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MineEvidence {
    pub id: Uuid,
    pub mine_id: Uuid,
    /// `photo` or `document`.
    pub kind: String,
    /// The blob, lowercase hex.
    pub sha256: String,
    pub content_type: String,
    pub size: u64,
    /// 说明.
    pub description: String,
    /// Acceptance item numbers it answers (may be empty).
    pub items: Vec<String>,
    /// The deadline it answers (a campaign deadline's key, or `reinspection`).
    pub deadline_key: Option<String>,
    pub created_by: Uuid,
    /// The server's time of the filing.
    pub created_at: i64,
}

/// Holder evidence filed for mines.
#[async_trait]
pub trait EvidenceStore {
    /// File an entry; an unknown mine or user is a `Conflict` (foreign key).
    async fn add_mine_evidence(&self, entry: &MineEvidence) -> StoreResult<()>;
    /// The entries of a mine, in the order they were filed.
    async fn list_mine_evidence(&self, mine_id: Uuid) -> StoreResult<Vec<MineEvidence>>;
    /// The entry `id` of the mine `mine_id`, or [`super::StoreError::NotFound`] (also when it
    /// belongs to another mine).
    async fn get_mine_evidence(&self, mine_id: Uuid, id: Uuid) -> StoreResult<MineEvidence>;
    /// The mines whose evidence names the blob `sha256` (each once, by first filing).
    async fn list_evidence_mines(&self, sha256: &str) -> StoreResult<Vec<Uuid>>;
}

const SELECT_EVIDENCE: &str = "select id, mine_id, kind, sha256, content_type, size, description, \
     items_json, deadline_key, created_by, created_at from mine_evidence";

#[async_trait]
impl EvidenceStore for SqlStore {
    async fn add_mine_evidence(&self, e: &MineEvidence) -> StoreResult<()> {
        self.db
            .query(
                "insert into mine_evidence (id, mine_id, kind, sha256, content_type, size, \
                 description, items_json, deadline_key, created_by, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(e.id)
            .bind(e.mine_id)
            .bind(&e.kind)
            .bind(&e.sha256)
            .bind(&e.content_type)
            .bind(to_i64(e.size))
            .bind(&e.description)
            .bind(to_json(&e.items)?)
            .bind(e.deadline_key.as_deref())
            .bind(e.created_by)
            .bind(e.created_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn list_mine_evidence(&self, mine_id: Uuid) -> StoreResult<Vec<MineEvidence>> {
        self.db
            .query(format!(
                "{SELECT_EVIDENCE} where mine_id = $1 order by created_at, id"
            ))
            .bind(mine_id)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(evidence_from_row)
            .collect()
    }

    async fn get_mine_evidence(&self, mine_id: Uuid, id: Uuid) -> StoreResult<MineEvidence> {
        let row = self
            .db
            .query(format!("{SELECT_EVIDENCE} where mine_id = $1 and id = $2"))
            .bind(mine_id)
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        evidence_from_row(&row)
    }

    async fn list_evidence_mines(&self, sha256: &str) -> StoreResult<Vec<Uuid>> {
        self.db
            .query(
                "select mine_id, min(created_at) as first_at from mine_evidence where sha256 = $1 \
                 group by mine_id order by first_at, mine_id",
            )
            .bind(sha256)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(|r| r.get("mine_id"))
            .collect()
    }
}

fn evidence_from_row(r: &Row) -> StoreResult<MineEvidence> {
    let items: String = r.get("items_json")?;
    Ok(MineEvidence {
        id: r.get("id")?,
        mine_id: r.get("mine_id")?,
        kind: r.get("kind")?,
        sha256: r.get("sha256")?,
        content_type: r.get("content_type")?,
        size: to_u64(r.get("size")?),
        description: r.get("description")?,
        items: from_json(&items)?,
        deadline_key: r.get("deadline_key")?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
    })
}
