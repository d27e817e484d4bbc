//! The archive bundle's format (`yanshou-bundle/1`): the names of its files, its manifest and
//! device keys, and the server's signature of the manifest. Shared by the writer
//! ([`super::bundle`]) and the offline checker ([`super::verify`]); no I/O here.
//!
//! Vocabulary:
//! - **bundle**: one zip file archiving one acceptance round: the assembled record
//!   ([`RECORD`], byte for byte as `GET /rounds/{id}/record` answers), the record's sync entity
//!   ([`ENTITY`], the protocol's wire form of its state, from which every section hash can be
//!   recomputed), its PDF, the photos and handwritten strokes its signatures name, the keys of
//!   the devices that signed ([`KEYS`]), the round's opinion letter when there is one, and the
//!   manifest.
//! - **manifest** ([`Manifest`], [`MANIFEST`]): every other file's path, size and SHA-256, what
//!   the server knew was missing, the signatures with their verdicts at export, and the server's
//!   public key. Signed by that key: [`MANIFEST_SIG`] holds an ES256 signature (`r‖s`,
//!   base64url without padding, as device signatures are, PROTOCOL.md §12) over the exact bytes
//!   of `manifest.json`. The key's id (`kid`) is published at `GET /api/v1/server-key`; a
//!   manifest proves which key made it, the auditor's comparison of the kid proves whose key
//!   that is.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::{
    ecdsa::{Signature, VerifyingKey, signature::Verifier},
    elliptic_curve::JwkEcKey,
    pkcs8::EncodePublicKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The format's name and version, the manifest's `format`.
pub const FORMAT: &str = "yanshou-bundle/1";

pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SIG: &str = "manifest.sig";
pub const RECORD: &str = "record.json";
pub const ENTITY: &str = "entity.json";
pub const RECORD_PDF: &str = "record.pdf";
pub const KEYS: &str = "keys.json";
pub const LETTER: &str = "letter.json";
pub const LETTER_ENTITY: &str = "letter-entity.json";
pub const LETTER_PDF: &str = "letter.pdf";
/// Folder of the original photos, `photos/<sha256>.<jpg|png>`.
pub const PHOTOS_DIR: &str = "photos/";
/// Folder of the handwritten strokes blobs, `strokes/<sha256>.json`.
pub const STROKES_DIR: &str = "strokes/";

/// Where a photo of media type `content_type` is kept in the bundle.
pub fn photo_path(sha256: &str, content_type: &str) -> String {
    let ext = match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        _ => "bin",
    };
    format!("{PHOTOS_DIR}{sha256}.{ext}")
}

/// Where a strokes blob is kept in the bundle.
pub fn strokes_path(sha256: &str) -> String {
    format!("{STROKES_DIR}{sha256}.json")
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The round (and record entity) archived.
    pub round_id: Uuid,
    /// The `content_hash` of `record.json`.
    pub record_content_hash: String,
    /// The round's opinion letter, when the bundle carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter: Option<LetterSummary>,
    /// When the server made the bundle, Unix milliseconds.
    pub exported_at_ms: i64,
    /// The same, RFC 3339 in county time (UTC+8).
    pub exported_at: String,
    /// The key that signed this manifest.
    pub server: ServerKey,
    /// Every file of the bundle but the manifest and its signature, in the order written.
    pub files: Vec<FileEntry>,
    /// Every section signature of the record, with the server's verdict at export.
    pub signatures: Vec<SignatureEntry>,
    /// What the record names that the server did not hold at export.
    pub missing: Missing,
}

/// A file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// A section signature as the server judged it at export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEntry {
    pub section: String,
    /// `{user, name, role, department, specialty}` as signed.
    pub signer: serde_json::Value,
    pub device: Uuid,
    /// The section hash the signer saw.
    pub content_hash: String,
    /// Whether the section still hashed to `content_hash`.
    pub hash_holds: bool,
    /// Whether the ECDSA signature verified with the device's enrolled key.
    pub signature_valid: bool,
}

/// The round's opinion letter (PROTOCOL.md §15), as archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterSummary {
    /// The letter's entity id.
    pub letter_id: Uuid,
    /// The letter's hash (the section hash of `letter`, what the experts sign) at export.
    pub letter_hash: String,
    /// The `content_hash` of `letter.json`.
    pub content_hash: String,
    /// `draft` or `issued`.
    pub status: String,
}

/// What the server knew was missing at export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// Photos (SHA-256) the evidence names whose originals were not uploaded.
    pub photos: Vec<String>,
    /// Strokes blobs (SHA-256) a signature names that the server does not hold.
    pub strokes: Vec<String>,
    /// Devices whose signature appears but which the server does not know.
    #[serde(default)]
    pub device_keys: Vec<Uuid>,
}

/// The server's signing key, as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKey {
    /// `ES256`.
    pub alg: String,
    /// [`kid_of`] the key.
    pub kid: String,
    /// The public key as a JWK (`kty` `EC`, `crv` `P-256`, `x`, `y`).
    pub public_key: serde_json::Value,
}

impl ServerKey {
    pub fn of(key: &VerifyingKey) -> Self {
        ServerKey {
            alg: sync_protocol::signature::ALG.to_owned(),
            kid: kid_of(key),
            public_key: jwk_of(key),
        }
    }
}

/// `keys.json`: the keys of every device whose signature the bundle carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysFile {
    pub devices: Vec<DeviceKey>,
}

/// One enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKey {
    pub device: Uuid,
    /// The device's name (`李 的手机`).
    pub name: String,
    /// The user it is enrolled for, and their name.
    pub user: Uuid,
    pub user_name: String,
    /// The public key as a JWK.
    pub public_key: serde_json::Value,
    /// Enrolment and revocation, Unix milliseconds.
    pub enrolled_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A key's id: the first 8 bytes of the SHA-256 of its SPKI DER, hex (as the server names its
/// token key).
pub fn kid_of(key: &VerifyingKey) -> String {
    match key.to_public_key_der() {
        Ok(der) => hex::encode(&Sha256::digest(der.as_bytes())[..8]),
        Err(_) => String::new(),
    }
}

/// A public key as a JWK.
pub fn jwk_of(key: &VerifyingKey) -> serde_json::Value {
    let jwk = p256::PublicKey::from(key).to_jwk_string();
    serde_json::from_str(&jwk).unwrap_or(serde_json::Value::Null)
}

/// A P-256 public key from its JWK.
pub fn key_from_jwk(jwk: &serde_json::Value) -> Result<VerifyingKey, String> {
    let jwk: JwkEcKey =
        serde_json::from_value(jwk.clone()).map_err(|e| format!("not an EC JWK: {e}"))?;
    let key = p256::PublicKey::from_jwk(&jwk).map_err(|_| "not a P-256 public key".to_owned())?;
    Ok(VerifyingKey::from(key))
}

/// `manifest.sig`'s text for a signature.
pub fn encode_signature(sig: &[u8; 64]) -> String {
    URL_SAFE_NO_PAD.encode(sig)
}

/// Why a manifest signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestSigError {
    #[error("manifest.sig is not a base64url ES256 signature (64 bytes r‖s)")]
    Malformed,
    #[error("the signature does not verify over the manifest's bytes")]
    Invalid,
}

/// Checks `manifest.sig`'s text (surrounding whitespace ignored) over `manifest` with `key`.
pub fn verify_signature(
    key: &VerifyingKey,
    manifest: &[u8],
    sig_text: &[u8],
) -> Result<(), ManifestSigError> {
    let text = std::str::from_utf8(sig_text).map_err(|_| ManifestSigError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| ManifestSigError::Malformed)?;
    let sig = Signature::from_slice(&bytes).map_err(|_| ManifestSigError::Malformed)?;
    key.verify(manifest, &sig)
        .map_err(|_| ManifestSigError::Invalid)
}

/// The `{sha256, size}` a signed statement names as its handwritten strokes, if well-formed.
pub fn strokes_of(statement: &BTreeMap<String, sync_protocol::Value>) -> Option<(String, i64)> {
    let sync_protocol::Value::Map(m) = statement.get("strokes")? else {
        return None;
    };
    let sha = m
        .get("sha256")
        .and_then(sync_protocol::Value::as_str)
        .filter(|s| sync_protocol::signature::is_sha256_hex(s))?;
    match m.get("size") {
        Some(sync_protocol::Value::Int(n)) => Some((sha.to_owned(), *n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_manifest_verifies_and_a_changed_byte_does_not() {
        use p256::ecdsa::{SigningKey, signature::Signer};
        let key = SigningKey::from(p256::SecretKey::random(
            &mut p256::elliptic_curve::rand_core::OsRng,
        ));
        let manifest = br#"{"format":"yanshou-bundle/1"}"#;
        let sig: Signature = key.sign(manifest);
        let text = encode_signature(&sig.to_bytes().into());
        let public = *key.verifying_key();
        assert_eq!(
            verify_signature(&public, manifest, format!("{text}\n").as_bytes()),
            Ok(())
        );
        let mut changed = manifest.to_vec();
        changed[3] ^= 1;
        assert_eq!(
            verify_signature(&public, &changed, text.as_bytes()),
            Err(ManifestSigError::Invalid)
        );
        assert_eq!(
            verify_signature(&public, manifest, b"not base64!"),
            Err(ManifestSigError::Malformed)
        );
        let jwk = jwk_of(&public);
        assert_eq!(key_from_jwk(&jwk).ok(), Some(public));
        assert_eq!(ServerKey::of(&public).kid.len(), 16);
    }

    #[test]
    fn files_are_named_by_their_hash() {
        let h = "ab".repeat(32);
        assert_eq!(photo_path(&h, "image/jpeg"), format!("photos/{h}.jpg"));
        assert_eq!(photo_path(&h, "image/png"), format!("photos/{h}.png"));
        assert_eq!(strokes_path(&h), format!("strokes/{h}.json"));
    }
}
