//! The blob store's suite: every test runs against a local directory and an S3-compatible
//! server (moto, started by `tests/ensure-s3.sh`; `YANSHOU_TEST_S3_URL`, default
//! `http://127.0.0.1:9000`). The S3 server is required, not optional: a missing server fails the
//! S3 half instead of skipping it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bytes::Bytes;
use uuid::Uuid;
use yanshou_server::{
    blobs::{BlobError, BlobHash, BlobStore},
    config::Settings,
};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Local,
    S3,
}

struct TestStore {
    store: BlobStore,
    dir: Option<PathBuf>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn s3_url() -> String {
    std::env::var("YANSHOU_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

async fn open(b: Backend) -> TestStore {
    match b {
        Backend::Local => {
            let dir = std::env::temp_dir().join(format!("yanshou-blobs-{}", Uuid::new_v4()));
            TestStore {
                store: BlobStore::local(&dir).unwrap(),
                dir: Some(dir),
            }
        }
        Backend::S3 => {
            let bucket = format!("yanshou-test-{}", Uuid::new_v4().simple());
            let url = s3_url();
            let status = reqwest::Client::new()
                .put(format!("{url}/{bucket}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("no S3 server at {url} (run tests/ensure-s3.sh): {e}"))
                .status();
            assert!(status.is_success(), "creating bucket {bucket}: {status}");
            let settings = Settings {
                s3_bucket: bucket,
                s3_endpoint: url,
                s3_access_key_id: "test".into(),
                s3_secret_access_key: "test".into(),
                ..Settings::default()
            };
            TestStore {
                store: BlobStore::from_settings(&settings).unwrap(),
                dir: None,
            }
        }
    }
}

/// Pseudo-random bytes (incompressible, like a photo).
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn a_blob_reads_back_under_its_hash(b: Backend) {
    let t = open(b).await;
    assert_eq!(
        t.store.backend(),
        if matches!(b, Backend::S3) {
            "s3"
        } else {
            "local"
        }
    );
    let bytes = noise(300_000, 1);
    let hash = t.store.put(bytes.clone()).await.unwrap();
    assert_eq!(hash, BlobHash::of(&bytes));
    assert_eq!(t.store.get(hash).await.unwrap(), bytes);
    assert_eq!(t.store.size(hash).await.unwrap(), Some(300_000));
}

async fn the_same_bytes_twice_are_one_blob(b: Backend) {
    let t = open(b).await;
    let bytes = noise(10_000, 2);
    let first = t.store.put(bytes.clone()).await.unwrap();
    let second = t.store.put(bytes.clone()).await.unwrap();
    assert_eq!(first, second);
    t.store.put_expecting(first, bytes.clone()).await.unwrap();
    assert_eq!(t.store.get(first).await.unwrap(), bytes);
    if let Some(dir) = &t.dir {
        assert_eq!(files_under(dir).len(), 1, "one file for one blob");
    }
}

async fn bytes_that_do_not_match_their_name_are_refused_and_not_stored(b: Backend) {
    let t = open(b).await;
    let claimed = BlobHash::of(b"what the phone said it sent");
    let sent = noise(5_000, 3);
    match t.store.put_expecting(claimed, sent.clone()).await {
        Err(BlobError::HashMismatch { expected, actual }) => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, BlobHash::of(&sent));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert_eq!(t.store.size(claimed).await.unwrap(), None);
    assert_eq!(t.store.size(BlobHash::of(&sent)).await.unwrap(), None);
    if let Some(dir) = &t.dir {
        assert!(
            files_under(dir).is_empty(),
            "nothing written: {:?}",
            files_under(dir)
        );
    }
}

async fn a_missing_blob_is_not_found(b: Backend) {
    let t = open(b).await;
    let h = BlobHash::of(b"never stored");
    assert_eq!(t.store.size(h).await.unwrap(), None);
    assert!(matches!(t.store.get(h).await, Err(BlobError::NotFound(x)) if x == h));
}

async fn parallel_writers_of_one_photo_all_succeed(b: Backend) {
    let t = open(b).await;
    let bytes = noise(3 * 1024 * 1024, 4);
    let hash = BlobHash::of(&bytes);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = t.store.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move { store.put_expecting(hash, bytes).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(t.store.get(hash).await.unwrap(), bytes);
    if let Some(dir) = &t.dir {
        assert_eq!(files_under(dir).len(), 1, "no staging file left behind");
    }
}

async fn a_large_photo_round_trips(b: Backend) {
    let t = open(b).await;
    let bytes = noise(12 * 1024 * 1024 + 7, 5);
    let hash = t.store.put(bytes.clone()).await.unwrap();
    let back = t.store.get(hash).await.unwrap();
    assert_eq!(back.len(), bytes.len());
    assert_eq!(BlobHash::of(&back), hash);
}

fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn upload_parts_join_in_offset_order_and_are_deleted(b: Backend) {
    let t = open(b).await;
    let upload = Uuid::now_v7();
    let bytes = noise(250_000, 9);
    // Written out of order, one of them twice (a retried chunk).
    t.store
        .put_part(upload, 100_000, bytes.slice(100_000..))
        .await
        .unwrap();
    t.store
        .put_part(upload, 0, bytes.slice(..100_000))
        .await
        .unwrap();
    t.store
        .put_part(upload, 0, bytes.slice(..100_000))
        .await
        .unwrap();
    // A shorter chunk that lost a race for offset 0 is passed over.
    t.store
        .put_part(upload, 0, bytes.slice(..10))
        .await
        .unwrap();
    assert_eq!(t.store.read_parts(upload, 250_000).await.unwrap(), bytes);
    // Only what was acknowledged: parts past `len` are not read.
    assert_eq!(
        t.store.read_parts(upload, 100_000).await.unwrap(),
        bytes.slice(..100_000)
    );
    // Had the short chunk won the race, the chain through it is the one that reaches the end.
    let other = Uuid::now_v7();
    t.store.put_part(other, 0, bytes.slice(..10)).await.unwrap();
    t.store
        .put_part(other, 0, bytes.slice(..100_000))
        .await
        .unwrap();
    t.store
        .put_part(other, 10, bytes.slice(10..))
        .await
        .unwrap();
    assert_eq!(t.store.read_parts(other, 250_000).await.unwrap(), bytes);
    t.store.delete_parts(other).await.unwrap();
    // Parts are not blobs.
    assert_eq!(t.store.size(BlobHash::of(&bytes)).await.unwrap(), None);
    t.store.delete_parts(upload).await.unwrap();
    assert!(
        t.store
            .read_parts(upload, 250_000)
            .await
            .unwrap()
            .is_empty()
    );
    t.store.delete_parts(upload).await.unwrap();
    if let Some(dir) = &t.dir {
        assert!(files_under(dir).is_empty(), "{:?}", files_under(dir));
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Local).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::S3).await })*
        }
    };
}

both_backends!(
    a_blob_reads_back_under_its_hash,
    the_same_bytes_twice_are_one_blob,
    bytes_that_do_not_match_their_name_are_refused_and_not_stored,
    a_missing_blob_is_not_found,
    parallel_writers_of_one_photo_all_succeed,
    a_large_photo_round_trips,
    upload_parts_join_in_offset_order_and_are_deleted,
);
