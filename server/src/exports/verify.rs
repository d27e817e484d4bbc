//! Offline verification of an archive bundle (`yanshou verify BUNDLE.zip`): everything is
//! checked from the zip alone, with no server, store or network. Pure, synchronous code.
//!
//! Every check names the one file it is about, so a changed byte is blamed on the file that
//! holds it:
//! - **manifest.json**: parses, names its own key consistently (`kid`), and `manifest.sig` is
//!   the key's ES256 signature of its exact bytes. A manifest that fails is reported as that
//!   and nothing else: its list of sizes and hashes is then not used against other files;
//! - **each file**: present, readable (the zip's CRC), of the size and SHA-256 the manifest
//!   lists; no file the manifest does not list;
//! - **photos/**: each photo's bytes hash to its name, and its size is the attested one;
//! - **record.json**: its `content_hash` is the canonical hash of the rest (PROTOCOL.md §3);
//! - **entity.json**: every section signature's hash is the section hash recomputed from the
//!   entity, its statement says what the signature says, and its ECDSA signature verifies with
//!   the device key in `keys.json`; withdrawn signatures and photo attestations verify too;
//! - **strokes/**: each strokes blob hashes to what the statement names;
//! - **record.json against entity.json**: answers, signatures, photos and the pre-inspection
//!   agree where both have them;
//! - the opinion letter likewise, when the bundle carries one.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    io::{Read, Seek},
    path::Path,
};

use p256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};
use sync_protocol::{
    EntityState, SectionSignature, Value,
    signature::{self, DeviceSignature, PURPOSE_LETTER, PURPOSE_SECTION},
};
use uuid::Uuid;

use super::manifest::{
    self, DeviceKey, ENTITY, KEYS, KeysFile, LETTER, LETTER_ENTITY, MANIFEST, MANIFEST_SIG,
    Manifest, PHOTOS_DIR, RECORD, STROKES_DIR,
};
use crate::model::record::is_evidence_field;

/// The opinion letter's entity type, its text's section and its experts' words (PROTOCOL.md
/// §15).
const LETTER_TYPE: &str = "opinion_letter";
const LETTER_SECTION: &str = "letter";
const OPINIONS_FIELD: &str = "experts/opinions";

/// A JSON file larger than this is not parsed (a record of hundreds of items is ~1 MB).
const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    /// Not checkable, for a reason that is not this file's fault (e.g. a photo that was never
    /// uploaded, as the manifest says).
    Skipped,
}

/// One check: its outcome, the file it is about and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub file: String,
    pub message: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        write!(f, "{status:<7} {}: {}", self.file, self.message)
    }
}

/// Every check of a bundle, in the order made.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// The kid of the key that signed the manifest, when its signature holds.
    pub kid: Option<String>,
}

impl Report {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Status::Failed)
    }

    /// The files some check failed on.
    pub fn failed_files(&self) -> BTreeSet<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .map(|c| c.file.as_str())
            .collect()
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

impl fmt::Display for Report {
    /// One line per check, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{c}")?;
        }
        writeln!(
            f,
            "{} checks: {} ok, {} failed, {} skipped",
            self.checks.len(),
            self.count(Status::Ok),
            self.count(Status::Failed),
            self.count(Status::Skipped)
        )?;
        if self.passed() {
            match &self.kid {
                Some(kid) => writeln!(
                    f,
                    "the bundle verifies; its manifest is signed by the server key {kid} (compare \
                     it with GET /api/v1/server-key)"
                ),
                None => writeln!(f, "the bundle verifies"),
            }
        } else {
            let files: Vec<&str> = self.failed_files().into_iter().collect();
            writeln!(
                f,
                "the bundle does NOT verify: failures in {}",
                files.join(", ")
            )
        }
    }
}

/// What the auditor knows beyond the bundle.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The kid the server publishes (`GET /api/v1/server-key`): the manifest must be signed by
    /// that key.
    pub expect_kid: Option<String>,
}

/// Verifies the bundle at `path`.
pub fn verify_path(path: &Path, options: &Options) -> Report {
    match std::fs::File::open(path) {
        Ok(file) => verify(std::io::BufReader::new(file), options),
        Err(e) => {
            let mut r = Report::default();
            r.checks.push(Check {
                status: Status::Failed,
                file: path.display().to_string(),
                message: format!("cannot open: {e}"),
            });
            r
        }
    }
}

/// Verifies a bundle.
pub fn verify<R: Read + Seek>(archive: R, options: &Options) -> Report {
    let mut c = Checker::default();
    let mut zip = match zip::ZipArchive::new(archive) {
        Ok(z) => z,
        Err(e) => {
            c.fail("bundle", format!("not a zip archive: {e}"));
            return c.report;
        }
    };
    c.read_entries(&mut zip);
    let manifest = c.check_manifest(options);
    c.check_files(manifest.as_ref());
    let record = c.check_record(manifest.as_ref());
    let keys = c.read_keys();
    let entity = c.read_entity(ENTITY, manifest.as_ref().map(|m| m.round_id));
    if let Some(entity) = &entity {
        c.check_signatures(entity, &keys, manifest.as_ref());
        c.check_photos(entity, &keys, manifest.as_ref());
    }
    let has_letter = c.entries.contains_key(LETTER_ENTITY)
        || manifest.as_ref().is_some_and(|m| m.letter.is_some());
    if has_letter {
        let expected = manifest
            .as_ref()
            .and_then(|m| m.letter.as_ref())
            .map(|l| l.letter_id);
        let named = manifest
            .as_ref()
            .and_then(|m| m.letter.as_ref())
            .map(|l| l.content_hash.clone());
        let doc = c.check_document(LETTER, named.as_deref());
        if let Some(letter) = c.read_entity(LETTER_ENTITY, expected) {
            c.check_letter(&letter, record.as_ref(), &keys, manifest.as_ref());
            if let Some(doc) = &doc {
                c.check_letter_overlap(doc, &letter);
            }
        }
    }
    c.check_photo_names();
    c.check_unnamed_blobs();
    if let (Some(record), Some(entity)) = (&record, &entity) {
        c.check_overlap(record, entity);
    }
    c.report
}

/// One file of the zip.
#[derive(Debug)]
enum Entry {
    Read {
        size: u64,
        sha256: String,
        /// The bytes of a JSON or signature file (others are only hashed).
        content: Option<Vec<u8>>,
    },
    /// The zip could not give its bytes (a CRC or a deflate error: the bytes were changed).
    Unreadable(String),
}

#[derive(Debug, Default)]
struct Checker {
    report: Report,
    entries: BTreeMap<String, Entry>,
    /// Photos and strokes blobs some statement named (the rest are strays).
    named_blobs: BTreeSet<String>,
}

impl Checker {
    fn push(&mut self, status: Status, file: &str, message: String) {
        self.report.checks.push(Check {
            status,
            file: file.to_owned(),
            message,
        });
    }

    fn ok(&mut self, file: &str, message: String) {
        self.push(Status::Ok, file, message);
    }

    fn fail(&mut self, file: &str, message: String) {
        self.push(Status::Failed, file, message);
    }

    fn skip(&mut self, file: &str, message: String) {
        self.push(Status::Skipped, file, message);
    }

    fn failed(&self, file: &str) -> bool {
        self.report
            .checks
            .iter()
            .any(|c| c.status == Status::Failed && c.file == file)
    }

    /// Hashes every file of the zip, keeping the bytes of JSON and signature files.
    fn read_entries<R: Read + Seek>(&mut self, zip: &mut zip::ZipArchive<R>) {
        for i in 0..zip.len() {
            let name = zip.name_for_index(i).and_then(Result::ok).map_or_else(
                || format!("entry #{i} (name not UTF-8)"),
                |n| n.into_owned(),
            );
            let mut file = match zip.by_index(i) {
                Ok(f) => f,
                Err(e) => {
                    self.entries.insert(name, Entry::Unreadable(e.to_string()));
                    continue;
                }
            };
            let keep = name.ends_with(".json") || name.ends_with(".sig");
            let mut hasher = Sha256::new();
            let mut content = Vec::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            let entry = loop {
                match file.read(&mut buf) {
                    Ok(0) => {
                        break Entry::Read {
                            size,
                            sha256: hex::encode(hasher.finalize()),
                            content: (keep && content.len() <= MAX_JSON_BYTES).then_some(content),
                        };
                    }
                    Ok(n) => {
                        hasher.update(&buf[..n]);
                        size += n as u64;
                        if keep && content.len() <= MAX_JSON_BYTES {
                            content.extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(e) => break Entry::Unreadable(e.to_string()),
                }
            };
            self.entries.insert(name, entry);
        }
    }

    /// The bytes of `file`, or `None` (reported: missing, unreadable or too large) unless
    /// already reported.
    fn content(&mut self, file: &str) -> Option<Vec<u8>> {
        let result = match self.entries.get(file) {
            None => Err("missing from the bundle".to_owned()),
            Some(Entry::Unreadable(_)) => return None,
            Some(Entry::Read { content: None, .. }) => Err("too large to check".to_owned()),
            Some(Entry::Read {
                content: Some(c), ..
            }) => Ok(c.clone()),
        };
        match result {
            Ok(c) => Some(c),
            Err(why) => {
                if !self.failed(file) {
                    self.fail(file, why);
                }
                None
            }
        }
    }

    fn digest(&self, file: &str) -> Option<(u64, &str)> {
        match self.entries.get(file) {
            Some(Entry::Read { size, sha256, .. }) => Some((*size, sha256.as_str())),
            _ => None,
        }
    }

    /// The manifest, when it parses and its signature holds.
    fn check_manifest(&mut self, options: &Options) -> Option<Manifest> {
        let bytes = match self.entries.get(MANIFEST) {
            None => {
                self.fail(MANIFEST, "missing from the bundle".into());
                return None;
            }
            Some(Entry::Unreadable(e)) => {
                self.fail(
                    MANIFEST,
                    format!("cannot be read from the zip ({e}): it was changed after export"),
                );
                return None;
            }
            Some(Entry::Read { content: None, .. }) => {
                self.fail(MANIFEST, "too large for a manifest".into());
                return None;
            }
            Some(Entry::Read {
                content: Some(c), ..
            }) => c.clone(),
        };
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                self.fail(
                    MANIFEST,
                    format!(
                        "not a manifest ({e}): it was changed after export, so its signature \
                         cannot be checked and its list of files is not used"
                    ),
                );
                return None;
            }
        };
        if manifest.format != manifest::FORMAT {
            self.fail(
                MANIFEST,
                format!(
                    "format {:?}, not {:?}: not a bundle this version checks",
                    manifest.format,
                    manifest::FORMAT
                ),
            );
            return None;
        }
        let key = match manifest::key_from_jwk(&manifest.server.public_key) {
            Ok(k) => k,
            Err(e) => {
                self.fail(MANIFEST, format!("the server's public key: {e}"));
                return None;
            }
        };
        let kid = manifest::kid_of(&key);
        if kid != manifest.server.kid {
            self.fail(
                MANIFEST,
                format!(
                    "names the server key {} but its public key is {kid}",
                    manifest.server.kid
                ),
            );
            return None;
        }
        if let Some(expected) = &options.expect_kid
            && expected != &kid
        {
            self.fail(
                MANIFEST,
                format!("signed by the key {kid}, not the server key {expected}"),
            );
            return None;
        }
        let sig = match self.entries.get(MANIFEST_SIG) {
            Some(Entry::Read {
                content: Some(c), ..
            }) => c.clone(),
            None => {
                self.fail(
                    MANIFEST_SIG,
                    "missing from the bundle: the manifest cannot be authenticated".into(),
                );
                return None;
            }
            Some(_) => {
                self.fail(MANIFEST_SIG, "cannot be read from the zip".into());
                return None;
            }
        };
        match manifest::verify_signature(&key, &bytes, &sig) {
            Ok(()) => {
                self.ok(
                    MANIFEST,
                    format!(
                        "signed by the server key {kid} (ES256, manifest.sig), exported {}",
                        manifest.exported_at
                    ),
                );
                self.report.kid = Some(kid);
                Some(manifest)
            }
            Err(manifest::ManifestSigError::Malformed) => {
                self.fail(
                    MANIFEST_SIG,
                    "not a base64url ES256 signature (64 bytes r‖s)".into(),
                );
                None
            }
            Err(manifest::ManifestSigError::Invalid) => {
                self.fail(
                    MANIFEST,
                    "the server's signature (manifest.sig) does not verify over its bytes: the \
                     manifest was changed after export; its list of files is not used"
                        .into(),
                );
                None
            }
        }
    }

    /// Every file against the manifest's list; unreadable files whatever the manifest.
    fn check_files(&mut self, manifest: Option<&Manifest>) {
        let unreadable: Vec<(String, String)> = self
            .entries
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::Unreadable(why) if name != MANIFEST => Some((name.clone(), why.clone())),
                _ => None,
            })
            .collect();
        for (name, why) in unreadable {
            self.fail(
                &name,
                format!("cannot be read from the zip ({why}): its bytes were changed"),
            );
        }
        let Some(manifest) = manifest else {
            self.skip(
                MANIFEST,
                "the sizes and hashes it lists are not compared with the files: it is not \
                 authentic"
                    .into(),
            );
            return;
        };
        let mut listed = BTreeSet::new();
        for f in &manifest.files {
            listed.insert(f.path.as_str());
            if self.failed(&f.path) {
                continue;
            }
            match self.digest(&f.path).map(|(s, h)| (s, h.to_owned())) {
                None => self.fail(
                    &f.path,
                    "listed in the manifest but missing from the bundle".into(),
                ),
                Some((size, sha256)) if size == f.size && sha256 == f.sha256 => {
                    self.ok(&f.path, format!("{size} bytes, SHA-256 as listed"));
                }
                Some((size, sha256)) => {
                    let message = format!(
                        "{size} bytes with SHA-256 {sha256}; the manifest lists {} bytes with \
                         SHA-256 {}: the file was changed after export",
                        f.size, f.sha256
                    );
                    self.fail(&f.path, message);
                }
            }
        }
        let strays: Vec<String> = self
            .entries
            .keys()
            .filter(|n| {
                !listed.contains(n.as_str()) && n.as_str() != MANIFEST && n.as_str() != MANIFEST_SIG
            })
            .cloned()
            .collect();
        for name in strays {
            self.fail(
                &name,
                "not listed in the manifest: added after export".into(),
            );
        }
    }

    /// `record.json` and its own content hash.
    fn check_record(&mut self, manifest: Option<&Manifest>) -> Option<serde_json::Value> {
        self.check_document(RECORD, manifest.map(|m| m.record_content_hash.as_str()))
    }

    /// An assembled document (`record.json`, `letter.json`): its `content_hash` is the
    /// canonical hash of the rest, and the one the manifest names (when there is one).
    fn check_document(&mut self, file: &str, named: Option<&str>) -> Option<serde_json::Value> {
        let bytes = self.content(file)?;
        let json: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(j) => j,
            Err(e) => {
                self.fail(file, format!("not JSON ({e})"));
                return None;
            }
        };
        let stated = json
            .get("content_hash")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut rest = json.clone();
        if let Some(map) = rest.as_object_mut() {
            map.remove("content_hash");
        }
        match Value::from_json(rest).and_then(|v| sync_protocol::content_hash(&v)) {
            Ok(actual) if actual == stated => {
                self.ok(file, format!("its content hash {stated} holds"));
            }
            Ok(actual) => self.fail(
                file,
                format!(
                    "its content_hash says {stated} but the document hashes to {actual}: it was \
                     changed after export"
                ),
            ),
            Err(e) => self.fail(file, format!("not plain data ({e})")),
        }
        if let Some(named) = named
            && named != stated
        {
            self.fail(
                file,
                format!("content hash {stated}, the manifest names {named}"),
            );
        }
        Some(json)
    }

    /// `keys.json`, by device.
    fn read_keys(&mut self) -> BTreeMap<Uuid, (DeviceKey, VerifyingKey)> {
        let mut out = BTreeMap::new();
        let Some(bytes) = self.content(KEYS) else {
            return out;
        };
        let keys: KeysFile = match serde_json::from_slice(&bytes) {
            Ok(k) => k,
            Err(e) => {
                self.fail(KEYS, format!("not a list of device keys ({e})"));
                return out;
            }
        };
        for d in keys.devices {
            match manifest::key_from_jwk(&d.public_key) {
                Ok(key) => {
                    out.insert(d.device, (d, key));
                }
                Err(e) => self.fail(KEYS, format!("device {}: {e}", d.device)),
            }
        }
        out
    }

    /// An entity state file, named as the manifest expects.
    fn read_entity(&mut self, file: &str, expected: Option<Uuid>) -> Option<EntityState> {
        let bytes = self.content(file)?;
        let entity: EntityState = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                self.fail(file, format!("not an entity state ({e})"));
                return None;
            }
        };
        if let Some(expected) = expected
            && entity.id.0 != expected
        {
            self.fail(
                file,
                format!(
                    "the entity {} is not the one the manifest names ({expected})",
                    entity.id.0
                ),
            );
        }
        Some(entity)
    }

    /// A device signature against its device's key in `keys.json`; `what` names it.
    fn check_device_signature(
        &mut self,
        file: &str,
        what: &str,
        sig: &DeviceSignature,
        keys: &BTreeMap<Uuid, (DeviceKey, VerifyingKey)>,
    ) {
        let Some(device) = sig.device() else {
            self.fail(file, format!("{what}: the statement names no device"));
            return;
        };
        let Some((info, key)) = keys.get(&device.0) else {
            self.fail(
                KEYS,
                format!("no key for device {}, whose {what} is in {file}", device.0),
            );
            return;
        };
        match sig.verify(key) {
            Ok(()) => {
                let revoked = info
                    .revoked_at_ms
                    .map(|t| format!(", revoked at {t} ms"))
                    .unwrap_or_default();
                self.ok(
                    file,
                    format!(
                        "{what}: the ECDSA signature verifies with the key of device {} ({}, \
                         {}{revoked})",
                        device.0, info.name, info.user_name
                    ),
                );
            }
            Err(e) => self.fail(
                file,
                format!(
                    "{what}: {e} (device {}, keys.json): the statement was changed after it was \
                     signed",
                    device.0
                ),
            ),
        }
    }

    /// Every section signature of the record entity (and the withdrawn ones).
    fn check_signatures(
        &mut self,
        entity: &EntityState,
        keys: &BTreeMap<Uuid, (DeviceKey, VerifyingKey)>,
        manifest: Option<&Manifest>,
    ) {
        for (section, sig) in &entity.signatures {
            let what = format!("the signature of section {section}");
            match sync_protocol::section_hash(entity, section) {
                Ok(h) if h == sig.content_hash => self.ok(
                    ENTITY,
                    format!(
                        "section {section} hashes to {h}, the hash its signature covers \
                         (recomputed from the entity)"
                    ),
                ),
                Ok(h) => self.fail(
                    ENTITY,
                    format!(
                        "section {section} hashes to {h}, but its signature covers {}: the \
                         section was changed after it was signed",
                        sig.content_hash
                    ),
                ),
                Err(e) => self.fail(
                    ENTITY,
                    format!("section {section} is signed but has no hash: {e}"),
                ),
            }
            if let Some(parsed) = self.section_statement(entity, section, sig, &what) {
                self.check_device_signature(ENTITY, &what, &parsed, keys);
                self.check_strokes(ENTITY, &parsed, &what, manifest);
            }
        }
        for w in &entity.withdrawals {
            let what = format!(
                "the withdrawn signature of section {} (withdrawn: {})",
                w.section, w.reason
            );
            if let Some(parsed) = self.section_statement(entity, &w.section, &w.signature, &what) {
                self.check_device_signature(ENTITY, &what, &parsed, keys);
                self.check_strokes(ENTITY, &parsed, &what, manifest);
            }
        }
    }

    /// The statement of a section signature, checked to say what the signature says.
    fn section_statement(
        &mut self,
        entity: &EntityState,
        section: &str,
        sig: &SectionSignature,
        what: &str,
    ) -> Option<DeviceSignature> {
        let parsed = match DeviceSignature::from_value(&sig.signature) {
            Ok(p) => p,
            Err(e) => {
                self.fail(ENTITY, format!("{what}: {e}"));
                return None;
            }
        };
        let entity_id = entity.id.0.to_string();
        let device = sig.device.0.to_string();
        for (member, expected) in [
            ("purpose", PURPOSE_SECTION),
            ("device", device.as_str()),
            ("entity", entity_id.as_str()),
            ("section", section),
            ("content_hash", sig.content_hash.as_str()),
        ] {
            let said = parsed.str(member);
            if said != Some(expected) {
                self.fail(
                    ENTITY,
                    format!(
                        "{what}: its statement's {member} is {}, not {expected}",
                        said.unwrap_or("missing")
                    ),
                );
                return None;
            }
        }
        Some(parsed)
    }

    /// The strokes blob a statement names: in the bundle with that hash and size, or known to
    /// be missing.
    fn check_strokes(
        &mut self,
        file: &str,
        sig: &DeviceSignature,
        what: &str,
        manifest: Option<&Manifest>,
    ) {
        let Some((sha256, size)) = manifest::strokes_of(&sig.statement) else {
            self.fail(
                file,
                format!("{what}: names no strokes blob {{sha256, size}}"),
            );
            return;
        };
        let path = manifest::strokes_path(&sha256);
        if !self.named_blobs.insert(path.clone()) {
            return;
        }
        self.check_blob(
            &path,
            &sha256,
            size,
            &format!("{what} names"),
            manifest.map(|m| m.missing.strokes.contains(&sha256)),
        );
    }

    /// A blob (photo or strokes) some statement names as `sha256` of `size` bytes.
    /// `known_missing`: whether the manifest says the server did not hold it (`None`: no
    /// manifest to ask).
    fn check_blob(
        &mut self,
        path: &str,
        sha256: &str,
        size: i64,
        named_by: &str,
        known_missing: Option<bool>,
    ) {
        if self.failed(path) {
            return;
        }
        match self.digest(path).map(|(s, h)| (s, h.to_owned())) {
            Some((actual_size, actual)) => {
                if actual == sha256 && i64::try_from(actual_size).ok() == Some(size) {
                    self.ok(
                        path,
                        format!("{size} bytes hashing to the SHA-256 {named_by}"),
                    );
                } else {
                    let message = format!(
                        "{actual_size} bytes with SHA-256 {actual}; {named_by} {size} bytes with \
                         SHA-256 {sha256}"
                    );
                    self.fail(path, message);
                }
            }
            None if self.entries.contains_key(path) => {}
            None => match known_missing {
                Some(true) => self.skip(
                    path,
                    format!(
                        "not in the bundle: the server did not hold it at export (the manifest \
                         says so); {named_by} it"
                    ),
                ),
                Some(false) => self.fail(
                    path,
                    format!(
                        "{named_by} it, but it is missing from the bundle and the manifest does \
                         not list it as missing"
                    ),
                ),
                None => self.skip(
                    path,
                    format!(
                        "not in the bundle ({named_by} it); without an authentic manifest it \
                         cannot be told whether the server held it"
                    ),
                ),
            },
        }
    }

    /// The opinion letter (PROTOCOL.md §15): its hash recomputed from its entity, what it
    /// was drafted from and issued over, and every expert's word.
    fn check_letter(
        &mut self,
        letter: &EntityState,
        record: Option<&serde_json::Value>,
        keys: &BTreeMap<Uuid, (DeviceKey, VerifyingKey)>,
        manifest: Option<&Manifest>,
    ) {
        const FILE: &str = LETTER_ENTITY;
        if letter.entity_type != LETTER_TYPE {
            self.fail(
                FILE,
                format!(
                    "an entity of type {:?}, not an opinion letter",
                    letter.entity_type
                ),
            );
            return;
        }
        let hash = match sync_protocol::section_hash(letter, LETTER_SECTION) {
            Ok(h) => h,
            Err(e) => {
                self.fail(FILE, format!("the letter has no hash: {e}"));
                return;
            }
        };
        match manifest.and_then(|m| m.letter.as_ref()) {
            Some(m) if m.letter_hash != hash => self.fail(
                FILE,
                format!(
                    "the letter hashes to {hash} (section letter, recomputed), the manifest \
                     names {}: it was changed after export",
                    m.letter_hash
                ),
            ),
            _ => self.ok(
                FILE,
                format!("the letter hashes to {hash} (section letter, recomputed from the entity)"),
            ),
        }
        let text = |key: &str| letter.value(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(record) = record {
            let record_id = record["record_id"].as_str().unwrap_or_default();
            if text("record").as_deref() != Some(record_id) {
                self.fail(
                    FILE,
                    format!(
                        "the letter is about record {}, not the bundle's record {record_id}",
                        text("record").unwrap_or_default()
                    ),
                );
            }
            let record_hash = record["content_hash"].as_str().unwrap_or_default();
            match text("letter/record_hash") {
                Some(h) if h == record_hash => self.ok(
                    FILE,
                    format!("the letter was drafted from this record ({h})"),
                ),
                other => self.skip(
                    FILE,
                    format!(
                        "the letter was drafted from the record as it hashed to {}; the \
                         bundle's record hashes to {record_hash} (it changed after drafting)",
                        other.unwrap_or_default()
                    ),
                ),
            }
        }
        if let Some(Value::Map(issued)) = letter.value("issued") {
            // The hash issued over (`letter_hash`; `content_hash` in PROTOCOL.md §15's first
            // wording).
            let issued_hash = issued
                .get("letter_hash")
                .or_else(|| issued.get("content_hash"))
                .and_then(Value::as_str);
            match issued_hash {
                Some(h) if h == hash => {
                    self.ok(FILE, format!("issued over this text ({h})"));
                }
                other => self.fail(
                    FILE,
                    format!(
                        "issued over the text hashing to {}, but the letter hashes to {hash}: it \
                         was changed after it was issued",
                        other.unwrap_or("nothing")
                    ),
                ),
            }
        }
        let letter_id = letter.id.0.to_string();
        for element in letter.elements(OPINIONS_FIELD) {
            let sig = match DeviceSignature::from_value(element) {
                Ok(s) => s,
                Err(e) => {
                    self.fail(FILE, format!("an expert's word is not a signature ({e})"));
                    continue;
                }
            };
            let name = match sig.statement.get("signer") {
                Some(Value::Map(m)) => m.get("name").and_then(Value::as_str).unwrap_or_default(),
                _ => "",
            };
            let decision = sig.str("decision").unwrap_or_default().to_owned();
            let what = format!("the word of {name} ({decision})");
            if sig.purpose() != Some(PURPOSE_LETTER) || sig.str("letter") != Some(&letter_id) {
                self.fail(FILE, format!("{what}: not a statement about this letter"));
                continue;
            }
            self.check_device_signature(FILE, &what, &sig, keys);
            match sig.str("content_hash") {
                Some(h) if h == hash => self.ok(FILE, format!("{what}: given on this text")),
                other => self.skip(
                    FILE,
                    format!(
                        "{what}: given on an earlier text ({}), superseded",
                        other.unwrap_or("no hash")
                    ),
                ),
            }
            if decision == "sign" || manifest::strokes_of(&sig.statement).is_some() {
                self.check_strokes(FILE, &sig, &what, manifest);
            }
        }
    }

    /// `letter.json` against `letter-entity.json`: the letter hash, status and every word.
    fn check_letter_overlap(&mut self, doc: &serde_json::Value, letter: &EntityState) {
        let (blame, other) = match (self.failed(LETTER), self.failed(LETTER_ENTITY)) {
            (false, true) => (LETTER_ENTITY, LETTER),
            _ => (LETTER, LETTER_ENTITY),
        };
        let mut disagreements = Vec::new();
        if doc["letter_id"].as_str() != Some(letter.id.0.to_string().as_str()) {
            disagreements.push(format!(
                "letter_id {} is not the entity {}",
                doc["letter_id"], letter.id.0
            ));
        }
        match sync_protocol::section_hash(letter, LETTER_SECTION) {
            Ok(h) if doc["letter_hash"].as_str() == Some(h.as_str()) => {}
            Ok(h) => disagreements.push(format!(
                "letter_hash {} in letter.json, {h} recomputed from letter-entity.json",
                doc["letter_hash"]
            )),
            Err(_) => {}
        }
        let status = letter.value("status").map(Value::to_json);
        if status.as_ref() != Some(&doc["status"]) {
            disagreements.push(format!(
                "status {} in letter.json, {} in letter-entity.json",
                doc["status"],
                status.unwrap_or_default()
            ));
        }
        // Compared as canonical JSON (§3), whatever the files' key order.
        let canonical = |v: &Value| sync_protocol::canonical_json(v).unwrap_or_default();
        let shown: BTreeSet<String> = doc["opinions"]
            .as_array()
            .map(|words| {
                words
                    .iter()
                    .map(|w| {
                        Value::from_json(w["value"].clone())
                            .map_or_else(|_| String::new(), |v| canonical(&v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let held: BTreeSet<String> = letter
            .elements(OPINIONS_FIELD)
            .into_iter()
            .map(canonical)
            .collect();
        if shown != held {
            disagreements.push(format!(
                "{} experts' words in letter.json, {} in letter-entity.json, not the same",
                shown.len(),
                held.len()
            ));
        }
        if disagreements.is_empty() {
            self.ok(
                LETTER,
                format!(
                    "agrees with letter-entity.json: letter hash, status and {} experts' words",
                    held.len()
                ),
            );
        }
        for d in disagreements {
            self.fail(blame, format!("disagrees with {other}: {d}"));
        }
    }

    /// Every photo attestation in an evidence field, and its photo.
    fn check_photos(
        &mut self,
        entity: &EntityState,
        keys: &BTreeMap<Uuid, (DeviceKey, VerifyingKey)>,
        manifest: Option<&Manifest>,
    ) {
        for (field, set) in &entity.sets {
            if !is_evidence_field(field) {
                continue;
            }
            for element in set.elements.values() {
                let claim = match signature::photo_claim(&element.value) {
                    Ok(c) => c,
                    Err(e) => {
                        self.fail(
                            ENTITY,
                            format!("{field}: an element is not a photo attestation ({e})"),
                        );
                        continue;
                    }
                };
                let what = format!("the attestation of photo {} on {field}", claim.sha256);
                if let Ok(sig) = DeviceSignature::from_value(&element.value) {
                    self.check_device_signature(ENTITY, &what, &sig, keys);
                }
                let path = manifest::photo_path(&claim.sha256, &claim.content_type);
                if !self.named_blobs.insert(path.clone()) {
                    continue;
                }
                self.check_blob(
                    &path,
                    &claim.sha256,
                    claim.size,
                    &format!("its attestation on {field} names"),
                    manifest.map(|m| m.missing.photos.contains(&claim.sha256)),
                );
            }
        }
    }

    /// Every file under `photos/` and `strokes/` hashes to its name.
    fn check_photo_names(&mut self) {
        let blobs: Vec<(String, u64, String)> = self
            .entries
            .iter()
            .filter(|(n, _)| n.starts_with(PHOTOS_DIR) || n.starts_with(STROKES_DIR))
            .filter_map(|(n, e)| match e {
                Entry::Read { size, sha256, .. } => Some((n.clone(), *size, sha256.clone())),
                Entry::Unreadable(_) => None,
            })
            .collect();
        for (name, size, sha256) in blobs {
            let stem = name
                .rsplit('/')
                .next()
                .and_then(|f| f.split('.').next())
                .unwrap_or_default();
            if stem == sha256 {
                // Named blobs were checked with their statement; this is the rest.
                if !self.named_blobs.contains(&name) {
                    self.ok(&name, format!("{size} bytes hashing to its name"));
                }
            } else if !self.failed(&name) {
                self.fail(
                    &name,
                    format!("its bytes hash to {sha256}, not to its name"),
                );
            }
        }
    }

    /// Photos and strokes that no statement names.
    fn check_unnamed_blobs(&mut self) {
        let strays: Vec<String> = self
            .entries
            .keys()
            .filter(|n| {
                (n.starts_with(PHOTOS_DIR) || n.starts_with(STROKES_DIR))
                    && !self.named_blobs.contains(n.as_str())
            })
            .cloned()
            .collect();
        for name in strays {
            if !self.failed(&name) {
                self.fail(
                    &name,
                    "no statement in the entity names it (a photo attestation or a signature's \
                     strokes)"
                        .into(),
                );
            }
        }
    }

    /// `record.json` against `entity.json` where both say something.
    fn check_overlap(&mut self, record: &serde_json::Value, entity: &EntityState) {
        // Blame the file whose own integrity already failed, if only one did.
        let (blame, other) = match (self.failed(RECORD), self.failed(ENTITY)) {
            (false, true) => (ENTITY, RECORD),
            _ => (RECORD, ENTITY),
        };
        let mut disagreements = Vec::new();
        let (mut answers, mut signatures, mut photos) = (0, 0, 0);
        let field = |key: &str| {
            entity
                .fields
                .get(key)
                .map_or(serde_json::Value::Null, |f| f.value.to_json())
        };
        if record["record_id"].as_str() != Some(entity.id.0.to_string().as_str()) {
            disagreements.push(format!(
                "record_id {} is not the entity {}",
                record["record_id"], entity.id.0
            ));
        }
        let empty = Vec::new();
        for section in record["sections"].as_array().unwrap_or(&empty) {
            let dept = section["department"].as_str().unwrap_or_default();
            for item in section["items"].as_array().unwrap_or(&empty) {
                for answer in item["answers"].as_array().unwrap_or(&empty) {
                    let key = answer["field"].as_str().unwrap_or_default();
                    let held = field(key);
                    answers += 1;
                    if answer["value"] != held {
                        disagreements.push(format!(
                            "{key} is {} in record.json, {held} in entity.json",
                            answer["value"]
                        ));
                    }
                }
                let number = item["number"].as_u64().unwrap_or_default();
                let key = format!("{dept}/{number}.photos");
                let shown: BTreeSet<&str> = item["photos"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .filter_map(|p| p["sha256"].as_str())
                    .collect();
                let held: BTreeSet<String> = entity
                    .elements(&key)
                    .into_iter()
                    .filter_map(|e| signature::photo_claim(e).ok().map(|c| c.sha256))
                    .collect();
                photos += held.len();
                if shown != held.iter().map(String::as_str).collect() {
                    disagreements.push(format!(
                        "the photos of {key} differ: {shown:?} in record.json, {held:?} in \
                         entity.json"
                    ));
                }
            }
            let shown = &section["signature"];
            match entity.signatures.get(dept) {
                None if shown.is_null() => {}
                None => disagreements.push(format!(
                    "section {dept} is signed in record.json, not in entity.json"
                )),
                Some(_) if shown.is_null() => disagreements.push(format!(
                    "section {dept} is signed in entity.json, not in record.json"
                )),
                Some(sig) => {
                    signatures += 1;
                    let same = shown["device"].as_str() == Some(sig.device.0.to_string().as_str())
                        && shown["content_hash"].as_str() == Some(sig.content_hash.as_str())
                        && shown["signed_at_commit"].as_u64() == Some(sig.signed_at_commit)
                        && shown["value"] == sig.signature.to_json();
                    if !same {
                        disagreements.push(format!(
                            "the signature of section {dept} differs between record.json and \
                             entity.json"
                        ));
                    }
                }
            }
        }
        let pre = record["pre_inspection"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, value) in &pre {
            let held = field(key);
            if *value != held {
                disagreements.push(format!(
                    "{key} is {value} in record.json, {held} in entity.json"
                ));
            }
        }
        if disagreements.is_empty() {
            self.ok(
                RECORD,
                format!(
                    "agrees with entity.json: {answers} answers, {signatures} signed sections, \
                     {photos} photos, {} pre-inspection fields",
                    pre.len()
                ),
            );
        }
        for d in disagreements {
            self.fail(blame, format!("disagrees with {other}: {d}"));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The opinion letter's checks on a hand-made bundle (the record's own checks run against
    //! real exports in `server/tests/api_bundle.rs`).
    #![allow(clippy::unwrap_used)]

    use std::{collections::BTreeSet, io::Write};

    use p256::ecdsa::{SigningKey, signature::Signer};
    use sync_protocol::{DeviceId, EntityId, FieldState, Hlc, OpId, OrSet, SetElement};

    use super::*;
    use crate::exports::manifest::{FileEntry, LetterSummary, Missing, ServerKey};

    fn key() -> SigningKey {
        SigningKey::from(p256::SecretKey::random(
            &mut p256::elliptic_curve::rand_core::OsRng,
        ))
    }

    fn field(value: Value) -> FieldState {
        FieldState {
            value,
            rev: 1,
            last_writer: DeviceId(Uuid::nil()),
            op: OpId(Uuid::now_v7()),
            hlc: Hlc {
                wall_ms: 1,
                counter: 0,
            },
            streak_base: 0,
            conflict: None,
            resolution: None,
        }
    }

    struct Letter {
        entity: EntityState,
        expert: SigningKey,
        device: Uuid,
        strokes: Vec<u8>,
    }

    /// A letter with one expert's signing word on its current text.
    fn letter() -> Letter {
        let id = EntityId(Uuid::now_v7());
        let mut entity = EntityState {
            id,
            entity_type: LETTER_TYPE.into(),
            created_by: OpId(Uuid::now_v7()),
            tombstoned: false,
            fields: BTreeMap::new(),
            sets: BTreeMap::new(),
            signatures: BTreeMap::new(),
            withdrawals: Vec::new(),
        };
        for (k, v) in [
            ("status", "draft"),
            ("letter/title", "验收合格意见书"),
            ("letter/conclusion", "pass"),
        ] {
            entity.fields.insert(k.into(), field(Value::from(v)));
        }
        entity.sets.insert(OPINIONS_FIELD.into(), OrSet::default());
        let hash = sync_protocol::section_hash(&entity, LETTER_SECTION).unwrap();
        let expert = key();
        let device = Uuid::now_v7();
        let strokes = br#"{"format":"yanshou-strokes/1","width":1,"height":1,"strokes":[{"points":[[0,0,0]]}]}"#.to_vec();
        let statement = BTreeMap::from([
            ("purpose".to_owned(), Value::from(PURPOSE_LETTER)),
            ("device".to_owned(), Value::from(device.to_string())),
            ("letter".to_owned(), Value::from(id.0.to_string())),
            ("content_hash".to_owned(), Value::from(hash)),
            ("decision".to_owned(), Value::from("sign")),
            ("reason".to_owned(), Value::from("")),
            (
                "signer".to_owned(),
                Value::Map(BTreeMap::from([("name".to_owned(), Value::from("王专家"))])),
            ),
            ("signed_at_ms".to_owned(), Value::Int(1)),
            (
                "strokes".to_owned(),
                Value::Map(BTreeMap::from([
                    (
                        "sha256".to_owned(),
                        Value::from(hex::encode(Sha256::digest(&strokes))),
                    ),
                    ("size".to_owned(), Value::Int(strokes.len() as i64)),
                ])),
            ),
        ]);
        let word = signature::sign(&expert, statement).to_value();
        entity
            .sets
            .get_mut(OPINIONS_FIELD)
            .unwrap()
            .elements
            .insert(
                sync_protocol::canonical_json(&word).unwrap(),
                SetElement {
                    value: word,
                    tags: BTreeSet::from([OpId(Uuid::now_v7())]),
                },
            );
        Letter {
            entity,
            expert,
            device,
            strokes,
        }
    }

    /// A bundle of the letter alone, its manifest naming `letter_hash`.
    fn bundle(l: &Letter, letter_hash: &str) -> Vec<u8> {
        let keys = KeysFile {
            devices: vec![DeviceKey {
                device: l.device,
                name: "王 的手机".into(),
                user: Uuid::now_v7(),
                user_name: "王专家".into(),
                public_key: manifest::jwk_of(l.expert.verifying_key()),
                enrolled_at_ms: 0,
                revoked_at_ms: None,
            }],
        };
        let strokes_path = manifest::strokes_path(&hex::encode(Sha256::digest(&l.strokes)));
        let files = [
            (
                LETTER_ENTITY.to_owned(),
                serde_json::to_vec(&l.entity).unwrap(),
            ),
            (KEYS.to_owned(), serde_json::to_vec(&keys).unwrap()),
            (strokes_path, l.strokes.clone()),
        ];
        let server = key();
        let m = Manifest {
            format: manifest::FORMAT.into(),
            round_id: Uuid::now_v7(),
            record_content_hash: String::new(),
            letter: Some(LetterSummary {
                letter_id: l.entity.id.0,
                letter_hash: letter_hash.into(),
                content_hash: String::new(),
                status: "draft".into(),
            }),
            exported_at_ms: 0,
            exported_at: String::new(),
            server: ServerKey::of(server.verifying_key()),
            files: files
                .iter()
                .map(|(path, bytes)| FileEntry {
                    path: path.clone(),
                    size: bytes.len() as u64,
                    sha256: hex::encode(Sha256::digest(bytes)),
                })
                .collect(),
            signatures: Vec::new(),
            missing: Missing::default(),
        };
        let m = serde_json::to_vec(&m).unwrap();
        let sig: p256::ecdsa::Signature = server.sign(&m);
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (path, bytes) in files.iter().chain(
            [
                (MANIFEST.to_owned(), m.clone()),
                (
                    MANIFEST_SIG.to_owned(),
                    manifest::encode_signature(&sig.to_bytes().into()).into_bytes(),
                ),
            ]
            .iter(),
        ) {
            w.start_file(path.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn letter_lines(report: &Report) -> Vec<String> {
        report
            .checks
            .iter()
            .filter(|c| c.file == LETTER_ENTITY || c.file.starts_with(STROKES_DIR))
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_letter_and_its_experts_words_verify_from_its_entity() {
        let l = letter();
        let hash = sync_protocol::section_hash(&l.entity, LETTER_SECTION).unwrap();
        let report = verify(std::io::Cursor::new(bundle(&l, &hash)), &Options::default());
        let lines = letter_lines(&report);
        assert!(lines.iter().all(|l| l.starts_with("ok ")), "{report}");
        for expected in [
            "the letter hashes to",
            "the word of 王专家 (sign): the ECDSA signature verifies",
            "the word of 王专家 (sign): given on this text",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(expected)),
                "{expected}: {report}"
            );
        }
        assert!(
            lines.iter().any(|l| l.starts_with("ok      strokes/")),
            "{report}"
        );
    }

    #[test]
    fn a_letter_changed_after_export_or_a_forged_word_fails_on_the_letter() {
        let mut l = letter();
        let hash = sync_protocol::section_hash(&l.entity, LETTER_SECTION).unwrap();
        // The text changed after export: the manifest names the old hash, the word is on it.
        l.entity
            .fields
            .insert("letter/conclusion".into(), field(Value::from("fail")));
        let report = verify(std::io::Cursor::new(bundle(&l, &hash)), &Options::default());
        let failed = letter_lines(&report)
            .into_iter()
            .filter(|l| l.starts_with("FAILED"))
            .collect::<Vec<_>>();
        assert_eq!(failed.len(), 1, "{report}");
        assert!(failed[0].contains("the manifest names"), "{report}");
        assert!(
            letter_lines(&report)
                .iter()
                .any(|l| l.starts_with("skipped") && l.contains("superseded")),
            "{report}"
        );
        // A word signed by another key.
        let mut l = letter();
        l.expert = key();
        let hash = sync_protocol::section_hash(&l.entity, LETTER_SECTION).unwrap();
        let report = verify(std::io::Cursor::new(bundle(&l, &hash)), &Options::default());
        assert!(
            letter_lines(&report).iter().any(|l| l.starts_with("FAILED")
                && l.contains("the word of 王专家 (sign): the signature does not verify")),
            "{report}"
        );
    }
}
