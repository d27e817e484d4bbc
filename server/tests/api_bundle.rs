//! The archive bundle of a round (`GET /api/v1/rounds/{id}/bundle.zip`) and its offline check
//! (`yanshou verify`, the real binary): a bundle as exported verifies; a changed byte, an added
//! file or an edited entity is reported on exactly the file that holds it.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Cursor, Read, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use common::{Backend, Phone, TestApp};
use serde_json::Value as Json;
use sha2::Digest;
use sync_protocol::{EntityId, Value};
use tower::ServiceExt;
use uuid::Uuid;
use yanshou_server::{
    exports::verify,
    model::Role,
    photos::{exif::build::ExifSpec, sample},
};

const BIN: &str = env!("CARGO_BIN_EXE_yanshou");
/// Inside the test mine's square boundary.
const INSIDE: (f64, f64) = (28.2354, 114.8133);
const PHOTOS: &str = "forestry/19.photos";

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("yanshou-bundle-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A round on the square mine whose forestry section is answered and signed with held
/// strokes, with `uploaded` photos attested and uploaded and `awaiting` attested only.
struct Round {
    app: TestApp,
    record: EntityId,
    office: String,
    photos: Vec<Vec<u8>>,
    awaiting: Vec<Vec<u8>>,
    strokes: Vec<u8>,
    strokes_sha: String,
}

fn photo(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let spec = ExifSpec {
        lat: Some(INSIDE.0),
        lon: Some(INSIDE.1),
        accuracy_m: Some(5.0),
        date_time_original: Some(now.format("%Y:%m:%d 10:00:00").to_string()),
        make: Some("Huawei".into()),
        model: Some(format!("P{seed}")),
        ..ExifSpec::default()
    };
    sample::sample_jpeg(width + u32::from(seed), height, Some(&spec), 80)
}

fn position() -> Value {
    Value::Map(BTreeMap::from([
        ("lat".to_owned(), Value::from(format!("{:.6}", INSIDE.0))),
        ("lon".to_owned(), Value::from(format!("{:.6}", INSIDE.1))),
        ("accuracy_m".to_owned(), Value::from("8")),
        ("altitude_m".to_owned(), Value::Null),
    ]))
}

async fn signed_round(b: Backend, photos: Vec<Vec<u8>>, awaiting: Vec<Vec<u8>>) -> Round {
    let app = TestApp::new(b).await;
    let (office, record) = app.open_round_on_square_mine("B-1").await;
    app.user("lin", Role::DepartmentInspector).await;
    let mut forestry = Phone::enroll(&app, "lin").await;
    forestry.sync(&app).await;
    forestry.now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
    for bytes in photos.iter().chain(&awaiting) {
        let element = forestry.attest(bytes, "image/jpeg", position());
        forestry.add(record, PHOTOS, element);
    }
    let strokes = forestry.upload_strokes(&app, &record.0.to_string()).await;
    let strokes_sha = sha256_hex(&strokes);
    forestry.answer_section(record, "forestry");
    forestry.sign(record, "forestry");
    forestry.sync(&app).await;
    let token = forestry.token.clone();
    for bytes in &photos {
        app.upload_photo(&token, &record.0.to_string(), bytes, "image/jpeg")
            .await;
    }
    Round {
        app,
        record,
        office,
        photos,
        awaiting,
        strokes,
        strokes_sha,
    }
}

/// GET `path` as raw bytes with the response's headers.
async fn get_raw(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `yanshou verify` on `bundle`: exit code and standard output.
fn run_verify(bundle: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("verify")
        .arg(bundle)
        .args(extra)
        // Offline: no configuration is read (this one does not exist).
        .env("YANSHOU_CONFIG", "/nonexistent/yanshou.toml")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// The files `verify`'s output names on its FAILED lines.
fn failed_files(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED"))
        .filter_map(|l| l.trim_start().split_once(": "))
        .map(|(file, _)| file.to_owned())
        .collect()
}

/// The zip's files by name.
fn unzip(bundle: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bundle)).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        out.insert(f.name().unwrap().into_owned(), bytes);
    }
    out
}

/// A zip of `files` (what someone who changed a bundle and zipped it again would hand over).
fn zip_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Verifies `files` zipped again and expects exactly `file` to be blamed.
fn assert_blamed(dir: &TempDir, name: &str, files: &BTreeMap<String, Vec<u8>>, file: &str) {
    let path = dir.write(name, &zip_of(files));
    let (code, out) = run_verify(&path, &[]);
    assert_ne!(code, 0, "{name}: verify passed:\n{out}");
    assert_eq!(
        failed_files(&out),
        BTreeSet::from([file.to_owned()]),
        "{name}: the failures should name {file} alone:\n{out}"
    );
    assert!(out.contains("the bundle does NOT verify"), "{out}");
}

fn flip_middle(bytes: &mut [u8]) {
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
}

async fn a_bundle_as_exported_verifies_offline(b: Backend) {
    let r = signed_round(
        b,
        vec![photo(64, 48, 1), photo(64, 48, 2)],
        vec![photo(64, 48, 3)],
    )
    .await;
    let bundle_path = format!("/api/v1/rounds/{}/bundle.zip", r.record.0);
    let (s, headers, bundle) = get_raw(&r.app, &bundle_path, &r.office).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&bundle));
    assert_eq!(headers[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        headers[header::CONTENT_LENGTH].to_str().unwrap(),
        bundle.len().to_string()
    );
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with(&format!(
            "attachment; filename=\"bundle-{}.zip\"",
            r.record.0
        )),
        "{disposition}"
    );
    assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");

    let files = unzip(&bundle);
    let photo_names: Vec<String> = r
        .photos
        .iter()
        .map(|p| format!("photos/{}.jpg", sha256_hex(p)))
        .collect();
    let strokes_name = format!("strokes/{}.json", r.strokes_sha);
    let mut expected: BTreeSet<String> = [
        "record.json",
        "entity.json",
        "record.pdf",
        "keys.json",
        "manifest.json",
        "manifest.sig",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    expected.extend(photo_names.iter().cloned());
    expected.insert(strokes_name.clone());
    assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (name, bytes) in photo_names.iter().zip(&r.photos) {
        assert_eq!(&files[name], bytes, "{name} is the original, byte for byte");
    }
    assert_eq!(files[&strokes_name], r.strokes);
    assert!(files["record.pdf"].starts_with(b"%PDF-"));

    // record.json is the record as the API answers it.
    let (s, _, record) = get_raw(
        &r.app,
        &format!("/api/v1/rounds/{}/record", r.record.0),
        &r.office,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(files["record.json"], record);
    let record: Json = serde_json::from_slice(&record).unwrap();

    // The manifest: every other file, the signature's verdict, what was missing, the key.
    let manifest: Json = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["format"], "yanshou-bundle/1");
    assert_eq!(manifest["round_id"], r.record.0.to_string());
    assert_eq!(manifest["record_content_hash"], record["content_hash"]);
    let listed: BTreeMap<&str, (&Json, &Json)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), (&f["size"], &f["sha256"])))
        .collect();
    for (name, bytes) in &files {
        if name.starts_with("manifest.") {
            assert!(!listed.contains_key(name.as_str()));
            continue;
        }
        let (size, sha) = listed[name.as_str()];
        assert_eq!(size.as_u64(), Some(bytes.len() as u64), "{name}");
        assert_eq!(sha.as_str(), Some(sha256_hex(bytes).as_str()), "{name}");
    }
    let sigs = manifest["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{manifest}");
    assert_eq!(sigs[0]["section"], "forestry");
    assert_eq!(sigs[0]["hash_holds"], true);
    assert_eq!(sigs[0]["signature_valid"], true);
    assert_eq!(sigs[0]["signer"]["name"], "lin 测试");
    assert_eq!(
        manifest["missing"]["photos"],
        serde_json::json!([sha256_hex(&r.awaiting[0])])
    );
    assert_eq!(manifest["missing"]["strokes"], serde_json::json!([]));
    let (s, key) = r
        .app
        .call(Method::GET, "/api/v1/server-key", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(manifest["server"]["kid"], key["kid"]);
    assert_eq!(manifest["server"]["public_key"], key["public_key"]);
    assert_eq!(key["alg"], "ES256");
    let keys: Json = serde_json::from_slice(&files["keys.json"]).unwrap();
    assert_eq!(keys["devices"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys["devices"][0]["public_key"]["crv"], "P-256");

    // The real binary, offline.
    let dir = TempDir::new();
    let path = dir.write("bundle.zip", &bundle);
    let (code, out) = run_verify(&path, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(out.contains("the bundle verifies"), "{out}");
    for expected in [
        "ok      manifest.json: signed by the server key",
        "ok      record.json: its content hash",
        "ok      entity.json: section forestry hashes to",
        "ok      entity.json: the signature of section forestry: the ECDSA signature verifies",
        "ok      entity.json: the attestation of photo",
        "ok      record.json: agrees with entity.json: ",
        &format!("ok      {strokes_name}: "),
        &format!("ok      {}: ", photo_names[0]),
        // The photo never uploaded is known to be missing: not a failure.
        &format!(
            "skipped photos/{}.jpg: not in the bundle",
            sha256_hex(&r.awaiting[0])
        ),
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    // The auditor's kid, from the server's published key.
    let kid = key["kid"].as_str().unwrap();
    let (code, out) = run_verify(&path, &["--kid", kid]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_verify(&path, &["--kid", "0011223344556677"]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        failed_files(&out),
        BTreeSet::from(["manifest.json".to_owned()]),
        "{out}"
    );
    // The library gives the same verdict.
    let report = verify::verify_path(&path, &verify::Options::default());
    assert!(report.passed(), "{report}");
    assert_eq!(report.kid.as_deref(), Some(kid));
}

async fn a_changed_byte_or_file_is_blamed_on_exactly_that_file(b: Backend) {
    let r = signed_round(b, vec![photo(64, 48, 1), photo(64, 48, 2)], vec![]).await;
    let (s, _, bundle) = get_raw(
        &r.app,
        &format!("/api/v1/rounds/{}/bundle.zip", r.record.0),
        &r.office,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let files = unzip(&bundle);
    let dir = TempDir::new();
    // Zipped again unchanged, it still verifies (the check is of the contents, not the zip).
    let path = dir.write("same.zip", &zip_of(&files));
    let (code, out) = run_verify(&path, &[]);
    assert_eq!(code, 0, "{out}");

    let photo = format!("photos/{}.jpg", sha256_hex(&r.photos[0]));
    for name in [photo.as_str(), "record.json", "record.pdf", "manifest.json"] {
        let mut changed = files.clone();
        flip_middle(changed.get_mut(name).unwrap());
        assert_blamed(
            &dir,
            &format!("flipped-{}.zip", name.replace('/', "-")),
            &changed,
            name,
        );
    }
    // A byte of the record changed where it says something (a section's verdict).
    let mut changed = files.clone();
    let text = String::from_utf8(changed["record.json"].clone()).unwrap();
    assert!(text.contains("\"passed\":true"), "{text}");
    let text = text.replacen("\"passed\":true", "\"passed\":false", 1);
    changed.insert("record.json".into(), text.into_bytes());
    assert_ne!(changed["record.json"], files["record.json"]);
    assert_blamed(&dir, "record-verdict.zip", &changed, "record.json");

    // A file added after export.
    let mut added = files.clone();
    added.insert("photos/extra.jpg".into(), r.photos[1].clone());
    assert_blamed(&dir, "added.zip", &added, "photos/extra.jpg");

    // An answer changed in the entity: its section no longer hashes to what was signed.
    let mut entity: Json = serde_json::from_slice(&files["entity.json"]).unwrap();
    let key = entity["fields"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.starts_with("forestry/") && entity["fields"][k.as_str()]["value"] == "pass")
        .unwrap()
        .clone();
    entity["fields"][key.as_str()]["value"] = "fail".into();
    let mut edited = files.clone();
    edited.insert(
        "entity.json".into(),
        serde_json::to_vec_pretty(&entity).unwrap(),
    );
    let path = dir.write("entity.zip", &zip_of(&edited));
    let (code, out) = run_verify(&path, &[]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        failed_files(&out),
        BTreeSet::from(["entity.json".to_owned()]),
        "{out}"
    );
    assert!(
        out.lines().any(
            |l| l.starts_with("FAILED  entity.json: section forestry hashes to")
                && l.contains("but its signature covers")
        ),
        "{out}"
    );

    // A byte changed inside the zip itself (no zipping again): the zip's checksum catches it,
    // on the photo.
    let mut raw = bundle.clone();
    let start = {
        let mut zip = zip::ZipArchive::new(Cursor::new(&bundle)).unwrap();
        let f = zip.by_name(&photo).unwrap();
        f.data_start().unwrap() + f.compressed_size() / 2
    };
    raw[usize::try_from(start).unwrap()] ^= 0x40;
    let path = dir.write("raw.zip", &raw);
    let (code, out) = run_verify(&path, &[]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(failed_files(&out), BTreeSet::from([photo.clone()]), "{out}");
}

async fn bundles_of_unknown_or_unseen_rounds_are_refused(b: Backend) {
    let r = signed_round(b, vec![], vec![]).await;
    let path = format!("/api/v1/rounds/{}/bundle.zip", r.record.0);
    let (s, body) = r
        .app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}/bundle.zip", Uuid::new_v4()),
            Some(&r.office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    // A township officer of another township does not see the round.
    let elsewhere = r.app.other_township("翰堂镇").await;
    r.app
        .user_scoped("hantang", Role::TownshipOfficer, None, Some(elsewhere))
        .await;
    let token = r.app.login("hantang").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = r.app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    // A mine's holder gets no bundle (it holds the inspectors' original photos).
    let holder = r.app.token_for("holder", Role::Operator).await;
    let (s, body) = r.app.call(Method::GET, &path, Some(&holder), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _) = r.app.call(Method::GET, &path, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The township's own officer does.
    let sixi = r.app.login("sixi").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, bundle) = get_raw(&r.app, &path, &sixi).await;
    assert_eq!(s, StatusCode::OK);
    let dir = TempDir::new();
    let (code, out) = run_verify(&dir.write("b.zip", &bundle), &[]);
    assert_eq!(code, 0, "{out}");
    // Not a zip at all.
    let (code, out) = run_verify(&dir.write("not.zip", b"PK but not a zip"), &[]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        failed_files(&out),
        BTreeSet::from(["bundle".to_owned()]),
        "{out}"
    );
}

both_backends!(
    a_bundle_as_exported_verifies_offline,
    a_changed_byte_or_file_is_blamed_on_exactly_that_file,
    bundles_of_unknown_or_unseen_rounds_are_refused,
);

/// Size and build time of the bundle of a record with 30 camera-sized photos (12 MP JPEGs),
/// and `verify`'s time on it. Not a timed assertion: run it and read the numbers, e.g.
/// `cargo test --release -p yanshou-server --test api_bundle -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn measure_bundle_of_30_photos() {
    let count: u8 = 30;
    // Distinct photos (each its own scene size, so its own pixels and thumbnails).
    let photos: Vec<Vec<u8>> = (0..count).map(|i| photo(4000, 3000, i)).collect();
    let total: usize = photos.iter().map(Vec::len).sum();
    let started = Instant::now();
    let r = signed_round(Backend::Sqlite, photos, vec![]).await;
    let setup = started.elapsed();
    let path = format!("/api/v1/rounds/{}/bundle.zip", r.record.0);
    let mut times = Vec::new();
    let mut bundle = Vec::new();
    let mut rss_growth = Vec::new();
    for _ in 0..3 {
        drop(std::mem::take(&mut bundle));
        // The process's resident memory while the bundle is made (sampled every 2 ms), against
        // before: what making it holds, the response body it is read into aside.
        let before = rss_kib();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(rss_kib());
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                peak
            })
        };
        let started = Instant::now();
        let res = r
            .app
            .router
            .clone()
            .oneshot(
                Request::builder()
                    .uri(&path)
                    .header(header::AUTHORIZATION, format!("Bearer {}", r.office))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.join().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        bundle = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        times.push(started.elapsed().as_secs_f64());
        rss_growth.push(peak.saturating_sub(before) / 1024);
    }
    let dir = TempDir::new();
    let file = dir.write("bundle.zip", &bundle);
    let started = Instant::now();
    let report = verify::verify_path(&file, &verify::Options::default());
    let verify_lib = started.elapsed().as_secs_f64();
    assert!(report.passed(), "{report}");
    let started = Instant::now();
    let (code, out) = run_verify(&file, &[]);
    let verify_bin = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}");
    println!(
        "{count} photos of {:.2} MB on average ({:.1} MB in all; setup {:.1} s): bundle {} bytes \
         ({:.1} MB), GET bundle.zip {:.2} / {:.2} / {:.2} s (resident memory while making it: \
         +{:?} MiB); verify {:.2} s in process, {:.2} s as `yanshou verify` ({} checks)",
        total as f64 / 1e6 / f64::from(count),
        total as f64 / 1e6,
        setup.as_secs_f64(),
        bundle.len(),
        bundle.len() as f64 / 1e6,
        times[0],
        times[1],
        times[2],
        rss_growth,
        verify_lib,
        verify_bin,
        report.checks.len()
    );
}

/// This process's resident memory, KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
