//! Photos: what ingest learned from each stored original (one row per SHA-256), and the
//! acceptance records each photo was uploaded for. The bytes are blobs.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    SqlStore, StoreResult,
    sql::{Row, to_i64, to_u64},
};

/// One derivative of a photo, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredThumb {
    /// SHA-256 of the thumbnail's JPEG (its blob), lowercase hex.
    pub sha256: String,
    pub bytes: u64,
    /// As viewed (after the EXIF orientation).
    pub width: u32,
    pub height: u32,
}

/// One photo, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// SHA-256 of the original, lowercase hex (its blob).
    pub sha256: String,
    /// `image/jpeg` or `image/png`, by the file's magic bytes.
    pub content_type: String,
    pub bytes: u64,
    /// As stored (before the EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// The EXIF facts and their warnings, as JSON text (the photos module's `PhotoExif`).
    pub exif: String,
    pub small: StoredThumb,
    pub large: StoredThumb,
    pub created_at: i64,
}

/// Photos and the records they belong to.
#[async_trait]
pub trait PhotoStore {
    /// Keep `photo` (the first row for its hash wins: the same bytes ingest the same) and link
    /// it to `record_id`, then. Idempotent and safe to race: two calls for one
    /// photo leave one row, and one link per record.
    async fn add_photo(&self, photo: &Photo, record_id: Uuid, now: i64) -> StoreResult<()>;
    /// Keep `photo` without linking it to a record (a holder's evidence photo, linked to its
    /// mine when it is filed); the first row for its hash wins, as in [`Self::add_photo`].
    async fn keep_photo(&self, photo: &Photo) -> StoreResult<()>;
    /// Link an already stored photo to another record; `false` when no photo has this hash.
    async fn link_photo(&self, sha256: &str, record_id: Uuid, now: i64) -> StoreResult<bool>;
    /// The photo `sha256`, or [`super::StoreError::NotFound`].
    async fn get_photo(&self, sha256: &str) -> StoreResult<Photo>;
    /// The records the photo was uploaded for, in the order they were linked.
    async fn list_photo_records(&self, sha256: &str) -> StoreResult<Vec<Uuid>>;
    /// The photos of a record, in the order they were linked.
    async fn list_record_photos(&self, record_id: Uuid) -> StoreResult<Vec<Photo>>;
}

const PHOTO_COLUMNS: &str = "p.sha256, p.content_type, p.bytes, p.width, p.height, p.exif, \
     p.small_sha256, p.small_bytes, p.small_width, p.small_height, \
     p.large_sha256, p.large_bytes, p.large_width, p.large_height, p.created_at";

const LINK: &str = "insert into photo_records (sha256, record_id, created_at) values ($1, $2, $3) \
     on conflict (sha256, record_id) do nothing";

#[async_trait]
impl PhotoStore for SqlStore {
    async fn add_photo(&self, p: &Photo, record_id: Uuid, now: i64) -> StoreResult<()> {
        // Two plain statements, not a transaction: each is idempotent on its own, and a failure
        // between them leaves a photo that the retry (or a dedupe `create`) links.
        self.keep_photo(p).await?;
        self.db
            .query(LINK)
            .bind(&p.sha256)
            .bind(record_id)
            .bind(now)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn keep_photo(&self, p: &Photo) -> StoreResult<()> {
        self.db
            .query(
                "insert into photos (sha256, content_type, bytes, width, height, exif, \
             small_sha256, small_bytes, small_width, small_height, \
             large_sha256, large_bytes, large_width, large_height, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             on conflict (sha256) do nothing",
            )
            .bind(&p.sha256)
            .bind(&p.content_type)
            .bind(to_i64(p.bytes))
            .bind(i64::from(p.width))
            .bind(i64::from(p.height))
            .bind(&p.exif)
            .bind(&p.small.sha256)
            .bind(to_i64(p.small.bytes))
            .bind(i64::from(p.small.width))
            .bind(i64::from(p.small.height))
            .bind(&p.large.sha256)
            .bind(to_i64(p.large.bytes))
            .bind(i64::from(p.large.width))
            .bind(i64::from(p.large.height))
            .bind(p.created_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn link_photo(&self, sha256: &str, record_id: Uuid, now: i64) -> StoreResult<bool> {
        let held = self
            .db
            .query("select sha256 from photos where sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.db)
            .await?;
        if held.is_none() {
            return Ok(false);
        }
        self.db
            .query(LINK)
            .bind(sha256)
            .bind(record_id)
            .bind(now)
            .execute(&self.db)
            .await?;
        Ok(true)
    }

    async fn get_photo(&self, sha256: &str) -> StoreResult<Photo> {
        let row = self
            .db
            .query(format!(
                "select {PHOTO_COLUMNS} from photos p where p.sha256 = $1"
            ))
            .bind(sha256)
            .fetch_one(&self.db)
            .await?;
        photo_from_row(&row)
    }

    async fn list_photo_records(&self, sha256: &str) -> StoreResult<Vec<Uuid>> {
        self.db
            .query(
                "select record_id from photo_records where sha256 = $1 \
                 order by created_at, record_id",
            )
            .bind(sha256)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(|r| r.get("record_id"))
            .collect()
    }

    async fn list_record_photos(&self, record_id: Uuid) -> StoreResult<Vec<Photo>> {
        self.db
            .query(format!(
                "select {PHOTO_COLUMNS} from photo_records r join photos p on p.sha256 = r.sha256 \
                 where r.record_id = $1 order by r.created_at, p.sha256"
            ))
            .bind(record_id)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(photo_from_row)
            .collect()
    }
}

fn dimension(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn photo_from_row(r: &Row) -> StoreResult<Photo> {
    let thumb = |prefix: &str| -> StoreResult<StoredThumb> {
        Ok(StoredThumb {
            sha256: r.get(&format!("{prefix}_sha256"))?,
            bytes: to_u64(r.get(&format!("{prefix}_bytes"))?),
            width: dimension(r.get(&format!("{prefix}_width"))?),
            height: dimension(r.get(&format!("{prefix}_height"))?),
        })
    };
    Ok(Photo {
        sha256: r.get("sha256")?,
        content_type: r.get("content_type")?,
        bytes: to_u64(r.get("bytes")?),
        width: dimension(r.get("width")?),
        height: dimension(r.get("height")?),
        exif: r.get("exif")?,
        small: thumb("small")?,
        large: thumb("large")?,
        created_at: r.get("created_at")?,
    })
}
