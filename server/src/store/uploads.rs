//! Resumable uploads: the state of each upload (declared hash and size, bytes acknowledged,
//! completion) and what it is for (an acceptance record, or a mine: its holder's evidence).
//! The bytes themselves are parts in the blob store.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    SqlStore, StoreResult,
    sql::{Row, to_i64, to_u64},
};

/// One upload, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Uuid,
    /// The acceptance record (a round's id) the file is for, or …
    pub record_id: Option<Uuid>,
    /// … the mine whose holder's evidence it is: exactly one of the two (a check constraint).
    pub mine_id: Option<Uuid>,
    /// Declared SHA-256, lowercase hex.
    pub sha256: String,
    /// Declared size in bytes.
    pub size: u64,
    pub content_type: String,
    /// Bytes acknowledged so far: the offset of the next chunk.
    pub received: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// Resumable uploads.
#[async_trait]
pub trait UploadStore {
    /// Store a new upload (its `received` is normally 0).
    async fn create_upload(&self, upload: &Upload) -> StoreResult<()>;
    /// The upload `id`, or [`super::StoreError::NotFound`].
    async fn get_upload(&self, id: Uuid) -> StoreResult<Upload>;
    /// Move `received` from `expected` to `new` in one guarded write; `false` when the upload's
    /// offset is not `expected` (another chunk got there first) or it is complete.
    async fn advance_upload(
        &self,
        id: Uuid,
        expected: u64,
        new: u64,
        now: i64,
    ) -> StoreResult<bool>;
    /// Mark the upload complete (the first completion time is kept); `false` when there is no
    /// such upload.
    async fn complete_upload(&self, id: Uuid, now: i64) -> StoreResult<bool>;
    /// The upload of `sha256` for the mine `mine_id` that got furthest (a complete one first,
    /// then the most bytes, then the latest), or `None` when the file was never declared for it.
    async fn find_mine_upload(&self, mine_id: Uuid, sha256: &str) -> StoreResult<Option<Upload>>;
}

const SELECT_UPLOADS: &str = "select id, user_id, device_id, record_id, mine_id, sha256, size, \
     content_type, received, created_at, updated_at, completed_at from uploads";

#[async_trait]
impl UploadStore for SqlStore {
    async fn create_upload(&self, u: &Upload) -> StoreResult<()> {
        self.db
            .query(
                "insert into uploads (id, user_id, device_id, record_id, mine_id, sha256, size, \
                 content_type, received, created_at, updated_at, completed_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(u.id)
            .bind(u.user_id)
            .bind(u.device_id)
            .bind(u.record_id)
            .bind(u.mine_id)
            .bind(&u.sha256)
            .bind(to_i64(u.size))
            .bind(&u.content_type)
            .bind(to_i64(u.received))
            .bind(u.created_at)
            .bind(u.updated_at)
            .bind(u.completed_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn get_upload(&self, id: Uuid) -> StoreResult<Upload> {
        let row = self
            .db
            .query(format!("{SELECT_UPLOADS} where id = $1"))
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        upload_from_row(&row)
    }

    async fn advance_upload(
        &self,
        id: Uuid,
        expected: u64,
        new: u64,
        now: i64,
    ) -> StoreResult<bool> {
        let n = self
            .db
            .query(
                "update uploads set received = $1, updated_at = $2 \
                 where id = $3 and received = $4 and completed_at is null",
            )
            .bind(to_i64(new))
            .bind(now)
            .bind(id)
            .bind(to_i64(expected))
            .execute(&self.db)
            .await?;
        Ok(n == 1)
    }

    async fn complete_upload(&self, id: Uuid, now: i64) -> StoreResult<bool> {
        let n = self
            .db
            .query(
                "update uploads set completed_at = coalesce(completed_at, $1), updated_at = $1 \
                 where id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(n == 1)
    }

    async fn find_mine_upload(&self, mine_id: Uuid, sha256: &str) -> StoreResult<Option<Upload>> {
        let row = self
            .db
            .query(format!(
                "{SELECT_UPLOADS} where mine_id = $1 and sha256 = $2 \
                 order by (case when completed_at is null then 1 else 0 end), received desc, \
                 created_at desc, id desc limit 1"
            ))
            .bind(mine_id)
            .bind(sha256)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }
}

fn upload_from_row(r: &Row) -> StoreResult<Upload> {
    Ok(Upload {
        id: r.get("id")?,
        user_id: r.get("user_id")?,
        device_id: r.get("device_id")?,
        record_id: r.get("record_id")?,
        mine_id: r.get("mine_id")?,
        sha256: r.get("sha256")?,
        size: to_u64(r.get("size")?),
        content_type: r.get("content_type")?,
        received: to_u64(r.get("received")?),
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        completed_at: r.get("completed_at")?,
    })
}
