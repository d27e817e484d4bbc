//! Content-addressed blobs: photos, signature strokes, generated PDFs.
//!
//! Vocabulary:
//! - **blob**: immutable bytes named by their SHA-256 ([`BlobHash`], 64 lowercase hex digits).
//!   A record, a signature or a manifest names a blob by its hash, so whoever holds the hash can
//!   check the bytes, and the same photo uploaded twice is stored once.
//! - **backend**: a local directory (the default, `blob_dir`) or a bucket of an S3-compatible
//!   object store (`s3_bucket`), both through the `object_store` crate, behind one type
//!   ([`BlobStore`]); the same test suite runs against both (`server/tests/blob_store.rs`).
//!
//! A write is atomic: the bytes are hashed first and refused when they do not match the name
//! they are written under; the local backend writes a staging file and renames it into place,
//! and S3 makes an object visible only once its upload completed. A crash never leaves a partial
//! file under a valid hash.
//!
//! Layout inside the store: `sha256/ab/cd/abcd…` (two levels of fan-out keep directories small).
//!
//! **Parts** of a resumable upload (`photos::upload`) are kept beside the blobs, under
//! `uploads/<upload id>/<offset>-<length>` (both 20 decimal digits, so names sort by offset),
//! in the same store, so any replica sharing it continues an upload another one started. Parts
//! are not content-addressed: the upload's hash is checked when they are joined into a blob.

use std::{fmt, str::FromStr, sync::Arc};

use bytes::Bytes;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, aws::AmazonS3Builder,
    local::LocalFileSystem, path::Path,
};
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// The SHA-256 of a blob's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        BlobHash(Sha256::digest(bytes).into())
    }

    /// Lowercase hex, as everywhere in the protocol and the exports.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    fn path(&self) -> Path {
        let h = self.hex();
        Path::from(format!("sha256/{}/{}/{h}", &h[0..2], &h[2..4]))
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.hex())
    }
}

impl FromStr for BlobHash {
    type Err = BlobError;

    /// 64 lowercase hex digits (uppercase is refused, so one blob has one name).
    fn from_str(s: &str) -> Result<Self, BlobError> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(BlobError::BadHash(s.chars().take(80).collect()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BlobError::BadHash(s.to_owned()))?;
        Ok(BlobHash(out))
    }
}

/// What can go wrong with a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("not a SHA-256 in lowercase hex: {0:?}")]
    BadHash(String),
    #[error("the bytes hash to {actual}, not {expected}")]
    HashMismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    #[error("no blob {0}")]
    NotFound(BlobHash),
    #[error("blob store misconfigured: {0}")]
    Config(String),
    /// The backend failed (disk, network, S3 error): retry later.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        BlobError::Unavailable(e.to_string())
    }
}

pub type BlobResult<T> = Result<T, BlobError>;

/// The blob store of one server (cheap to clone).
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    backend: &'static str,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("backend", &self.backend)
            .field("store", &self.inner.to_string())
            .finish()
    }
}

impl BlobStore {
    /// The store the settings name: the S3 bucket when `s3_bucket` is set, else `blob_dir`.
    pub fn from_settings(settings: &Settings) -> BlobResult<Self> {
        if settings.s3_bucket.is_empty() {
            Self::local(&settings.blob_dir)
        } else {
            Self::s3(settings)
        }
    }

    /// Blobs under a local directory (created if missing).
    pub fn local(dir: &std::path::Path) -> BlobResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BlobError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| BlobError::Config(format!("{}: {e}", dir.display())))?;
        Ok(BlobStore {
            inner: Arc::new(fs),
            backend: "local",
        })
    }

    /// Blobs in an S3-compatible bucket.
    pub fn s3(settings: &Settings) -> BlobResult<Self> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&settings.s3_bucket)
            .with_region(&settings.s3_region)
            .with_access_key_id(&settings.s3_access_key_id)
            .with_secret_access_key(&settings.s3_secret_access_key);
        if !settings.s3_endpoint.is_empty() {
            b = b
                .with_endpoint(&settings.s3_endpoint)
                // Path-style URLs (`endpoint/bucket/key`): what MinIO and most self-hosted
                // S3-compatible servers expect.
                .with_virtual_hosted_style_request(false)
                .with_allow_http(settings.s3_endpoint.starts_with("http://"));
        }
        let s3 = b.build().map_err(|e| BlobError::Config(e.to_string()))?;
        Ok(BlobStore {
            inner: Arc::new(s3),
            backend: "s3",
        })
    }

    /// `local` or `s3`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Store `bytes` under their hash and return it. Storing bytes the store already holds is
    /// a no-op (content addressing: the same photo twice is one blob).
    pub async fn put(&self, bytes: Bytes) -> BlobResult<BlobHash> {
        let hash = hash_off_thread(bytes.clone()).await?;
        self.write(hash, bytes).await?;
        Ok(hash)
    }

    /// Store `bytes` under `expected`, refusing them (nothing written) when they hash to
    /// anything else.
    pub async fn put_expecting(&self, expected: BlobHash, bytes: Bytes) -> BlobResult<()> {
        let actual = hash_off_thread(bytes.clone()).await?;
        if actual != expected {
            return Err(BlobError::HashMismatch { expected, actual });
        }
        self.write(expected, bytes).await
    }

    async fn write(&self, hash: BlobHash, bytes: Bytes) -> BlobResult<()> {
        if self.size(hash).await?.is_some() {
            return Ok(());
        }
        let opts = PutOptions {
            // Never overwrite: a blob, once there, is the bytes its name says.
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&hash.path(), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(()),
            // Another writer stored the same bytes first: the blob is there either way. (A
            // server that ignores the create-only condition overwrites the object with the same
            // bytes, which is harmless: they were checked against the name.)
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob's bytes.
    pub async fn get(&self, hash: BlobHash) -> BlobResult<Bytes> {
        match self.inner.get(&hash.path()).await {
            Ok(r) => Ok(r.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(hash)),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob's size, or `None` when the store does not hold it.
    pub async fn size(&self, hash: BlobHash) -> BlobResult<Option<u64>> {
        match self.inner.head(&hash.path()).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Parts of resumable uploads.
impl BlobStore {
    fn parts_prefix(upload: uuid::Uuid) -> Path {
        Path::from(format!("uploads/{upload}"))
    }

    /// Write the chunk of upload `upload` that starts at `offset` (durable when this returns;
    /// writing the same part again replaces it).
    pub async fn put_part(&self, upload: uuid::Uuid, offset: u64, bytes: Bytes) -> BlobResult<()> {
        let path = Path::from(format!(
            "uploads/{upload}/{offset:020}-{len:020}",
            len = bytes.len()
        ));
        self.inner.put(&path, PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// The parts of `upload` as (offset, length, path), by offset.
    async fn list_parts(&self, upload: uuid::Uuid) -> BlobResult<Vec<(u64, u64, Path)>> {
        let listing = self
            .inner
            .list_with_delimiter(Some(&Self::parts_prefix(upload)))
            .await?;
        let mut parts: Vec<(u64, u64, Path)> = listing
            .objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_owned();
                let (offset, len) = name.split_once('-')?;
                Some((offset.parse().ok()?, len.parse().ok()?, meta.location))
            })
            .collect();
        parts.sort_by_key(|a| (a.0, std::cmp::Reverse(a.1)));
        Ok(parts)
    }

    /// The first `len` bytes of `upload`, joined from its parts: a chain of parts from offset
    /// 0, each starting where the previous one ended, that ends exactly at `len` (should two
    /// chunks of different lengths have raced for one offset, only the acknowledged one leads
    /// there). Without such a chain, the longest chain's bytes: fewer than `len`.
    pub async fn read_parts(&self, upload: uuid::Uuid, len: u64) -> BlobResult<Bytes> {
        let parts = self.list_parts(upload).await?;
        // How each reachable offset was first reached: offset -> index of the part ending there.
        let mut reached: std::collections::BTreeMap<u64, Option<usize>> =
            std::collections::BTreeMap::from([(0, None)]);
        let mut frontier = vec![0u64];
        while let Some(at) = frontier.pop() {
            for (i, (offset, part_len, _)) in parts.iter().enumerate() {
                let end = offset + part_len;
                if *offset == at && *part_len > 0 && end <= len && !reached.contains_key(&end) {
                    reached.insert(end, Some(i));
                    frontier.push(end);
                }
            }
        }
        let target = if reached.contains_key(&len) {
            len
        } else {
            reached.keys().next_back().copied().unwrap_or(0)
        };
        let mut chain = Vec::new();
        let mut at = target;
        while let Some(Some(i)) = reached.get(&at) {
            chain.push(*i);
            at = parts[*i].0;
        }
        let mut out = Vec::with_capacity(usize::try_from(target).unwrap_or(0));
        for i in chain.into_iter().rev() {
            let (_, part_len, path) = &parts[i];
            let bytes = match self.inner.get(path).await {
                Ok(r) => r.bytes().await?,
                // Deleted since the listing (a concurrent finish): fewer bytes.
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            if bytes.len() as u64 != *part_len {
                break;
            }
            out.extend_from_slice(&bytes);
        }
        Ok(Bytes::from(out))
    }

    /// Delete every part of `upload` (parts already gone are fine).
    pub async fn delete_parts(&self, upload: uuid::Uuid) -> BlobResult<()> {
        for (_, _, path) in self.list_parts(upload).await? {
            match self.inner.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// SHA-256 of a large buffer on a blocking thread (a 8 MB photo takes tens of milliseconds).
async fn hash_off_thread(bytes: Bytes) -> BlobResult<BlobHash> {
    if bytes.len() < 64 * 1024 {
        return Ok(BlobHash::of(&bytes));
    }
    tokio::task::spawn_blocking(move || BlobHash::of(&bytes))
        .await
        .map_err(|e| BlobError::Unavailable(format!("hashing task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_read_back_and_refuse_other_spellings() {
        let h = BlobHash::of(b"abc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.hex().parse::<BlobHash>().ok(), Some(h));
        assert!(h.hex().to_uppercase().parse::<BlobHash>().is_err());
        assert!("abc".parse::<BlobHash>().is_err());
        assert!(format!("{}0", h.hex()).parse::<BlobHash>().is_err());
        assert_eq!(
            h.path().as_ref(),
            format!("sha256/ba/78/{}", h.hex()).as_str()
        );
    }
}
