//! Device signatures: one format for every signed statement (a section signature, a photo's
//! capture attestation, an expert's signature of the opinion letter).
//!
//! Vocabulary:
//! - **Statement**: a map of [`Value`]s saying what is signed. It always names its
//!   `purpose` (`"section"`, `"photo"`, `"letter"`) and the `device` whose key signs it; the
//!   other members depend on the purpose ([`PURPOSE_SECTION`], [`PURPOSE_PHOTO`],
//!   [`PURPOSE_LETTER`]).
//! - **Signed bytes**: the UTF-8 of the statement's canonical JSON (PROTOCOL.md §3), so the
//!   PWA (`JSON.stringify` with sorted keys) and Rust sign and verify the same bytes.
//! - **Device signature** ([`DeviceSignature`]): ECDSA P-256 with SHA-256 over the signed bytes,
//!   made with the enrolled device's key, as the 64-byte `r‖s` that WebCrypto produces
//!   (IEEE P1363), in base64url without padding. On the wire it is the value
//!   `{"alg": "ES256", "sig": "…", "statement": {…}}`.
//!
//! The crate only checks what can be checked without I/O: the shape, that the statement says
//! what the op it travels in says ([`check_section_signature`], [`check_photo_attestation`]),
//! and the ECDSA signature against a key the caller looked up (the pushing device's, not
//! revoked). Whoever verifies needs nothing but the statement, the signature and the device's
//! public key: an archive can be checked years later without the server.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey, signature::Signer, signature::Verifier};

use crate::{
    canonical::canonical_json,
    ids::{DeviceId, EntityId},
    op::{Op, OpBody},
    value::Value,
};

/// The one signature algorithm: ECDSA P-256 with SHA-256 (JOSE's name).
pub const ALG: &str = "ES256";

/// A section signature: `entity`, `section`, `content_hash` (the section hash the signer saw),
/// `signer` (`{user, role, department, specialty}`), `signed_at_ms` (device time) and
/// `strokes` (`{sha256, size}` of the handwritten strokes blob).
pub const PURPOSE_SECTION: &str = "section";
/// A photo's capture attestation: `sha256`, `size`, `content_type`, `captured_at_ms` (device
/// time), `position` (`null` or `{lat, lon, accuracy_m, altitude_m}`, decimal strings).
pub const PURPOSE_PHOTO: &str = "photo";
/// An expert's word on an opinion letter: `letter` (its entity id), `content_hash`, `decision`
/// (`"sign"` or `"decline"`), `reason`, `signer`, `signed_at_ms`, `strokes`.
pub const PURPOSE_LETTER: &str = "letter";

/// Why a signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a signature value: a member is missing or has the wrong type.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// Another algorithm than [`ALG`].
    #[error("unsupported signature algorithm {0:?}; ES256 (ECDSA P-256) is required")]
    UnsupportedAlg(String),
    /// The statement says something else than the op or element it travels in.
    #[error("the signed statement's {member} is {signed}, not {expected}")]
    Mismatch {
        /// The statement member.
        member: &'static str,
        /// What the statement says.
        signed: String,
        /// What the op says.
        expected: String,
    },
    /// The ECDSA signature does not verify with the device's key.
    #[error("the signature does not verify with the device's key")]
    Invalid,
}

/// A signed statement and its ECDSA signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSignature {
    /// What is signed (always has `purpose` and `device`).
    pub statement: BTreeMap<String, Value>,
    /// `r‖s`, 64 bytes.
    pub sig: [u8; 64],
}

impl DeviceSignature {
    /// Reads the wire value `{"alg", "sig", "statement"}`.
    pub fn from_value(value: &Value) -> Result<Self, SignatureError> {
        let Value::Map(map) = value else {
            return Err(SignatureError::Malformed("not an object".into()));
        };
        if let Some(extra) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "alg" | "sig" | "statement"))
        {
            return Err(SignatureError::Malformed(format!(
                "unknown member {extra:?}"
            )));
        }
        let alg = map
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| SignatureError::Malformed("alg is missing".into()))?;
        if alg != ALG {
            return Err(SignatureError::UnsupportedAlg(alg.to_owned()));
        }
        let sig = map
            .get("sig")
            .and_then(Value::as_str)
            .ok_or_else(|| SignatureError::Malformed("sig is missing".into()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SignatureError::Malformed("sig is not base64url".into()))?;
        let sig: [u8; 64] = bytes.try_into().map_err(|_| {
            SignatureError::Malformed("sig must be 64 bytes (r‖s, as WebCrypto makes it)".into())
        })?;
        let Some(Value::Map(statement)) = map.get("statement") else {
            return Err(SignatureError::Malformed(
                "statement is missing or not an object".into(),
            ));
        };
        let out = Self {
            statement: statement.clone(),
            sig,
        };
        if out.purpose().is_none() {
            return Err(SignatureError::Malformed("statement has no purpose".into()));
        }
        if out.device().is_none() {
            return Err(SignatureError::Malformed(
                "statement has no device id".into(),
            ));
        }
        Ok(out)
    }

    /// The wire value.
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("alg".to_owned(), Value::from(ALG)),
            (
                "sig".to_owned(),
                Value::from(URL_SAFE_NO_PAD.encode(self.sig)),
            ),
            ("statement".to_owned(), Value::Map(self.statement.clone())),
        ]))
    }

    /// The statement's purpose.
    pub fn purpose(&self) -> Option<&str> {
        self.str("purpose")
    }

    /// The device whose key signed.
    pub fn device(&self) -> Option<DeviceId> {
        self.str("device")
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(DeviceId)
    }

    /// A string member of the statement.
    pub fn str(&self, member: &str) -> Option<&str> {
        self.statement.get(member).and_then(Value::as_str)
    }

    /// The bytes that were signed: the canonical JSON of the statement.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, SignatureError> {
        signed_bytes(&self.statement)
    }

    /// Checks the ECDSA signature with `key`. High and low `s` are both accepted: WebCrypto
    /// does not normalise.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        let sig = Signature::from_slice(&self.sig).map_err(|_| SignatureError::Invalid)?;
        key.verify(&self.signed_bytes()?, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// The statement of a section signature (PROTOCOL.md §12): what a phone signs when a person
/// signs `section` of `entity` as shown with `content_hash`. `signer` is
/// `{user, name, role, department, specialty}`; `strokes` is `{sha256, size}`.
pub fn section_statement(
    device: DeviceId,
    entity: EntityId,
    section: &str,
    content_hash: &str,
    signer: Value,
    signed_at_ms: i64,
    strokes: Value,
) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("purpose".to_owned(), Value::from(PURPOSE_SECTION)),
        ("device".to_owned(), Value::from(device.0.to_string())),
        ("entity".to_owned(), Value::from(entity.0.to_string())),
        ("section".to_owned(), Value::from(section)),
        ("content_hash".to_owned(), Value::from(content_hash)),
        ("signer".to_owned(), signer),
        ("signed_at_ms".to_owned(), Value::Int(signed_at_ms)),
        ("strokes".to_owned(), strokes),
    ])
}

/// The statement of a photo's capture attestation (PROTOCOL.md §12): `position` is `null` or
/// `{lat, lon, accuracy_m, altitude_m}` with decimal strings.
pub fn photo_statement(
    device: DeviceId,
    sha256: &str,
    size: i64,
    content_type: &str,
    captured_at_ms: i64,
    position: Value,
) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("purpose".to_owned(), Value::from(PURPOSE_PHOTO)),
        ("device".to_owned(), Value::from(device.0.to_string())),
        ("sha256".to_owned(), Value::from(sha256)),
        ("size".to_owned(), Value::Int(size)),
        ("content_type".to_owned(), Value::from(content_type)),
        ("captured_at_ms".to_owned(), Value::Int(captured_at_ms)),
        ("position".to_owned(), position),
    ])
}

/// The canonical JSON bytes of a statement.
pub fn signed_bytes(statement: &BTreeMap<String, Value>) -> Result<Vec<u8>, SignatureError> {
    canonical_json(&Value::Map(statement.clone()))
        .map(String::into_bytes)
        .map_err(|e| SignatureError::Malformed(e.to_string()))
}

/// Signs a statement (RFC 6979 deterministic `k`): for tests, simulators and fixtures; phones
/// sign with WebCrypto.
pub fn sign(key: &SigningKey, statement: BTreeMap<String, Value>) -> DeviceSignature {
    let bytes = signed_bytes(&statement).unwrap_or_default();
    let sig: Signature = key.sign(&bytes);
    DeviceSignature {
        statement,
        sig: sig.to_bytes().into(),
    }
}

fn expect(
    sig: &DeviceSignature,
    member: &'static str,
    expected: &str,
) -> Result<(), SignatureError> {
    match sig.statement.get(member) {
        Some(Value::String(s)) if s == expected => Ok(()),
        other => Err(SignatureError::Mismatch {
            member,
            signed: other.map_or_else(|| "missing".to_owned(), |v| format!("{v:?}")),
            expected: expected.to_owned(),
        }),
    }
}

/// Checks the signature value of a `sign` op: a [`PURPOSE_SECTION`] statement of this op's
/// device, entity, section and content hash, signed with `key` (the pushing device's).
pub fn check_section_signature(
    op: &Op,
    key: &VerifyingKey,
) -> Result<DeviceSignature, SignatureError> {
    let OpBody::Sign {
        section,
        content_hash,
        signature,
    } = &op.body
    else {
        return Err(SignatureError::Malformed("not a sign op".into()));
    };
    let sig = DeviceSignature::from_value(signature)?;
    expect(&sig, "purpose", PURPOSE_SECTION)?;
    expect(&sig, "device", &op.device.0.to_string())?;
    expect(&sig, "entity", &op.entity.0.to_string())?;
    expect(&sig, "section", section)?;
    expect(&sig, "content_hash", content_hash)?;
    check_strokes(&sig)?;
    sig.verify(key)?;
    Ok(sig)
}

/// The handwritten strokes named by a statement: `{sha256, size}`.
fn check_strokes(sig: &DeviceSignature) -> Result<(), SignatureError> {
    match sig.statement.get("strokes") {
        Some(Value::Map(m))
            if m.get("sha256")
                .and_then(Value::as_str)
                .is_some_and(is_sha256_hex)
                && matches!(m.get("size"), Some(Value::Int(n)) if *n > 0) =>
        {
            Ok(())
        }
        _ => Err(SignatureError::Malformed(
            "strokes must name the handwritten strokes blob as {sha256, size}".into(),
        )),
    }
}

/// 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a photo's attestation says (see [`PURPOSE_PHOTO`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoClaim {
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// File size, bytes.
    pub size: i64,
    /// Media type.
    pub content_type: String,
    /// Device time of capture, ms since the epoch.
    pub captured_at_ms: i64,
    /// The phone's position at capture, if it had one: `lat`, `lon`, `accuracy_m`,
    /// `altitude_m` as decimal strings.
    pub position: Option<BTreeMap<String, Value>>,
    /// The device that took and signed it.
    pub device: DeviceId,
}

/// Checks a photo element of an evidence set (the element *is* the signature value of a
/// [`PURPOSE_PHOTO`] statement) made by `device`, whose key is `key`.
pub fn check_photo_attestation(
    element: &Value,
    device: DeviceId,
    key: &VerifyingKey,
) -> Result<PhotoClaim, SignatureError> {
    let claim = photo_claim(element)?;
    if claim.device != device {
        return Err(SignatureError::Mismatch {
            member: "device",
            signed: claim.device.0.to_string(),
            expected: device.0.to_string(),
        });
    }
    DeviceSignature::from_value(element)?.verify(key)?;
    Ok(claim)
}

/// Reads a photo element's claim without verifying the signature (for display and export;
/// verification needs the device's key).
pub fn photo_claim(element: &Value) -> Result<PhotoClaim, SignatureError> {
    let sig = DeviceSignature::from_value(element)?;
    expect(&sig, "purpose", PURPOSE_PHOTO)?;
    let malformed = |m: &str| SignatureError::Malformed(format!("photo statement: {m}"));
    let sha256 = sig
        .str("sha256")
        .filter(|s| is_sha256_hex(s))
        .ok_or_else(|| malformed("sha256 must be 64 lowercase hex digits"))?
        .to_owned();
    let int = |member: &str| match sig.statement.get(member) {
        Some(Value::Int(n)) if *n >= 0 => Some(*n),
        _ => None,
    };
    let size = int("size")
        .filter(|n| *n > 0)
        .ok_or_else(|| malformed("size must be a positive integer"))?;
    let captured_at_ms =
        int("captured_at_ms").ok_or_else(|| malformed("captured_at_ms must be an integer"))?;
    let content_type = sig
        .str("content_type")
        .ok_or_else(|| malformed("content_type is missing"))?
        .to_owned();
    let position = match sig.statement.get("position") {
        None | Some(Value::Null) => None,
        Some(Value::Map(p)) => {
            for member in ["lat", "lon"] {
                if p.get(member).and_then(Value::as_str).is_none() {
                    return Err(malformed("position needs lat and lon as decimal strings"));
                }
            }
            Some(p.clone())
        }
        Some(_) => return Err(malformed("position must be an object or null")),
    };
    Ok(PhotoClaim {
        sha256,
        size,
        content_type,
        captured_at_ms,
        position,
        device: sig
            .device()
            .ok_or_else(|| malformed("device must be a UUID"))?,
    })
}

/// The statement of an expert's word on an opinion letter (PROTOCOL.md §15): `decision` is
/// [`DECISION_SIGN`] or [`DECISION_DECLINE`]; `reason` is empty for a signing word; `strokes`
/// is `{sha256, size}` or `null` (a decline needs no handwriting).
#[allow(clippy::too_many_arguments)]
pub fn letter_statement(
    device: DeviceId,
    letter: EntityId,
    content_hash: &str,
    decision: &str,
    reason: &str,
    signer: Value,
    signed_at_ms: i64,
    strokes: Value,
) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("purpose".to_owned(), Value::from(PURPOSE_LETTER)),
        ("device".to_owned(), Value::from(device.0.to_string())),
        ("letter".to_owned(), Value::from(letter.0.to_string())),
        ("content_hash".to_owned(), Value::from(content_hash)),
        ("decision".to_owned(), Value::from(decision)),
        ("reason".to_owned(), Value::from(reason)),
        ("signer".to_owned(), signer),
        ("signed_at_ms".to_owned(), Value::Int(signed_at_ms)),
        ("strokes".to_owned(), strokes),
    ])
}

/// An expert signs the letter.
pub const DECISION_SIGN: &str = "sign";
/// An expert declines to sign, with a reason.
pub const DECISION_DECLINE: &str = "decline";

/// What an expert's word on a letter says (see [`PURPOSE_LETTER`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterOpinion {
    /// The letter's entity.
    pub letter: EntityId,
    /// The letter's hash the expert read.
    pub content_hash: String,
    /// `true` for [`DECISION_SIGN`], `false` for [`DECISION_DECLINE`].
    pub signs: bool,
    /// Why the expert declines (empty when signing).
    pub reason: String,
    /// The signer's user id.
    pub user: String,
    /// The signer's name as signed.
    pub name: String,
    /// The signer's specialty code.
    pub specialty: Option<String>,
    /// Device time of the word, ms since the epoch.
    pub signed_at_ms: i64,
    /// The handwritten strokes `(sha256, size)`, for a signing word.
    pub strokes: Option<(String, i64)>,
    /// The device that signed.
    pub device: DeviceId,
}

/// Reads an expert's word on a letter without verifying the signature (for display, export
/// and the server's state checks).
pub fn letter_opinion(element: &Value) -> Result<LetterOpinion, SignatureError> {
    let sig = DeviceSignature::from_value(element)?;
    expect(&sig, "purpose", PURPOSE_LETTER)?;
    let malformed = |m: &str| SignatureError::Malformed(format!("letter statement: {m}"));
    let letter = sig
        .str("letter")
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(EntityId)
        .ok_or_else(|| malformed("letter must be the letter's entity id"))?;
    let content_hash = sig
        .str("content_hash")
        .filter(|s| is_sha256_hex(s))
        .ok_or_else(|| malformed("content_hash must be 64 lowercase hex digits"))?
        .to_owned();
    let signs = match sig.str("decision") {
        Some(DECISION_SIGN) => true,
        Some(DECISION_DECLINE) => false,
        _ => return Err(malformed("decision must be \"sign\" or \"decline\"")),
    };
    let reason = sig
        .str("reason")
        .ok_or_else(|| malformed("reason must be a string"))?
        .to_owned();
    if !signs && reason.trim().is_empty() {
        return Err(malformed("an expert who declines says why (reason)"));
    }
    let signer = match sig.statement.get("signer") {
        Some(Value::Map(m)) => m,
        _ => {
            return Err(malformed(
                "signer must be {user, name, role, department, specialty}",
            ));
        }
    };
    let user = signer
        .get("user")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("signer.user is missing"))?
        .to_owned();
    let name = signer
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let specialty = signer
        .get("specialty")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let signed_at_ms = match sig.statement.get("signed_at_ms") {
        Some(Value::Int(n)) => *n,
        _ => return Err(malformed("signed_at_ms must be an integer")),
    };
    let strokes = match sig.statement.get("strokes") {
        None | Some(Value::Null) if !signs => None,
        _ => {
            check_strokes(&sig)?;
            strokes_of(&sig)
        }
    };
    Ok(LetterOpinion {
        letter,
        content_hash,
        signs,
        reason,
        user,
        name,
        specialty,
        signed_at_ms,
        strokes,
        device: sig
            .device()
            .ok_or_else(|| malformed("device must be a UUID"))?,
    })
}

/// Checks an expert's word on `letter` (the element of `experts/opinions` *is* the signature
/// value of a [`PURPOSE_LETTER`] statement), made by `device`, whose key is `key`.
pub fn check_letter_opinion(
    element: &Value,
    letter: EntityId,
    device: DeviceId,
    key: &VerifyingKey,
) -> Result<(DeviceSignature, LetterOpinion), SignatureError> {
    let opinion = letter_opinion(element)?;
    if opinion.device != device {
        return Err(SignatureError::Mismatch {
            member: "device",
            signed: opinion.device.0.to_string(),
            expected: device.0.to_string(),
        });
    }
    if opinion.letter != letter {
        return Err(SignatureError::Mismatch {
            member: "letter",
            signed: opinion.letter.0.to_string(),
            expected: letter.0.to_string(),
        });
    }
    let sig = DeviceSignature::from_value(element)?;
    sig.verify(key)?;
    Ok((sig, opinion))
}

/// The `(sha256, size)` of the strokes a statement names, when it names them well.
pub fn strokes_of(sig: &DeviceSignature) -> Option<(String, i64)> {
    match sig.statement.get("strokes") {
        Some(Value::Map(m)) => match (m.get("sha256").and_then(Value::as_str), m.get("size")) {
            (Some(h), Some(Value::Int(n))) if is_sha256_hex(h) && *n > 0 => {
                Some((h.to_owned(), *n))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The entity a statement is about, when it names one (`entity` or `letter`).
pub fn statement_entity(sig: &DeviceSignature) -> Option<EntityId> {
    sig.str("entity")
        .or_else(|| sig.str("letter"))
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(EntityId)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{hlc::Hlc, ids::OpId};

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn section_op(signature: Value) -> Op {
        Op {
            id: OpId::from_u128(1),
            device: DeviceId::from_u128(0xa),
            seq: 1,
            hlc: Hlc::new(1, 0),
            entity: EntityId::from_u128(0xe),
            body: OpBody::Sign {
                section: "forestry".into(),
                content_hash: "ab".repeat(32),
                signature,
            },
        }
    }

    fn statement(op: &Op) -> BTreeMap<String, Value> {
        let OpBody::Sign {
            section,
            content_hash,
            ..
        } = &op.body
        else {
            unreachable!()
        };
        BTreeMap::from([
            ("purpose".into(), Value::from(PURPOSE_SECTION)),
            ("device".into(), Value::from(op.device.0.to_string())),
            ("entity".into(), Value::from(op.entity.0.to_string())),
            ("section".into(), Value::from(section.clone())),
            ("content_hash".into(), Value::from(content_hash.clone())),
            ("signed_at_ms".into(), Value::Int(1_717_000_000_000)),
            (
                "strokes".into(),
                Value::Map(BTreeMap::from([
                    ("sha256".into(), Value::from("cd".repeat(32))),
                    ("size".into(), Value::Int(812)),
                ])),
            ),
        ])
    }

    #[test]
    fn a_section_signature_holds_and_its_tampered_copies_do_not() {
        let op = section_op(Value::Null);
        let signed = sign(&key(), statement(&op));
        let op = section_op(signed.to_value());
        let vk = *key().verifying_key();
        assert!(check_section_signature(&op, &vk).is_ok());

        // Another key.
        let other = *SigningKey::from_slice(&[9u8; 32]).unwrap().verifying_key();
        assert_eq!(
            check_section_signature(&op, &other),
            Err(SignatureError::Invalid)
        );
        // A statement changed after signing.
        let mut changed = signed.clone();
        changed
            .statement
            .insert("signed_at_ms".into(), Value::Int(1));
        assert_eq!(
            check_section_signature(&section_op(changed.to_value()), &vk),
            Err(SignatureError::Invalid)
        );
        // A statement about another section (a signature replayed onto another op).
        let mut elsewhere = section_op(signed.to_value());
        if let OpBody::Sign { section, .. } = &mut elsewhere.body {
            *section = "water_resources".into();
        }
        assert!(matches!(
            check_section_signature(&elsewhere, &vk),
            Err(SignatureError::Mismatch {
                member: "section",
                ..
            })
        ));
        // No strokes.
        let mut st = statement(&op);
        st.remove("strokes");
        assert!(matches!(
            check_section_signature(&section_op(sign(&key(), st).to_value()), &vk),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn high_s_signatures_verify_too() {
        // WebCrypto does not normalise s; p256 must accept both forms.
        let op = section_op(Value::Null);
        let signed = sign(&key(), statement(&op));
        let sig = Signature::from_slice(&signed.sig).unwrap();
        let (r, s) = sig.split_scalars();
        let flipped = Signature::from_scalars(r, -*s).unwrap();
        let high = DeviceSignature {
            sig: flipped.to_bytes().into(),
            ..signed
        };
        assert_ne!(high.sig, sign(&key(), statement(&op)).sig);
        assert!(high.verify(key().verifying_key()).is_ok());
    }

    #[test]
    fn malformed_values_say_what_is_wrong() {
        let cases = [
            (Value::from("signed by A"), "not an object"),
            (
                Value::Map(BTreeMap::from([("alg".into(), Value::from("RS256"))])),
                "RS256",
            ),
            (
                Value::Map(BTreeMap::from([
                    ("alg".into(), Value::from(ALG)),
                    ("sig".into(), Value::from("AAAA")),
                    ("statement".into(), Value::Map(BTreeMap::new())),
                ])),
                "64 bytes",
            ),
        ];
        for (value, needle) in cases {
            let err = DeviceSignature::from_value(&value).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    fn letter(decision: &str, reason: &str, strokes: Value) -> BTreeMap<String, Value> {
        letter_statement(
            DeviceId::from_u128(0xa),
            EntityId::from_u128(0x1e),
            &"cd".repeat(32),
            decision,
            reason,
            Value::Map(BTreeMap::from([
                (
                    "user".into(),
                    Value::from("00000000-0000-0000-0000-0000000000b1"),
                ),
                ("name".into(), Value::from("林业专家")),
                ("role".into(), Value::from("expert")),
                ("department".into(), Value::Null),
                ("specialty".into(), Value::from("forestry")),
            ])),
            1_712_000_000_000,
            strokes,
        )
    }

    fn strokes_value() -> Value {
        Value::Map(BTreeMap::from([
            ("sha256".into(), Value::from("5d".repeat(32))),
            ("size".into(), Value::Int(2_431)),
        ]))
    }

    #[test]
    fn an_experts_word_reads_back_and_holds_only_for_its_letter_and_device() {
        let element = sign(&key(), letter("sign", "", strokes_value())).to_value();
        let word = letter_opinion(&element).unwrap();
        assert!(word.signs);
        assert_eq!(word.specialty.as_deref(), Some("forestry"));
        assert_eq!(word.strokes, Some(("5d".repeat(32), 2_431)));
        let (letter_id, device) = (EntityId::from_u128(0x1e), DeviceId::from_u128(0xa));
        assert!(check_letter_opinion(&element, letter_id, device, key().verifying_key()).is_ok());
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        assert_eq!(
            check_letter_opinion(&element, letter_id, device, other.verifying_key()).unwrap_err(),
            SignatureError::Invalid
        );
        assert!(matches!(
            check_letter_opinion(
                &element,
                EntityId::from_u128(0x2e),
                device,
                key().verifying_key()
            ),
            Err(SignatureError::Mismatch {
                member: "letter",
                ..
            })
        ));
        assert!(matches!(
            check_letter_opinion(
                &element,
                letter_id,
                DeviceId::from_u128(0xb),
                key().verifying_key()
            ),
            Err(SignatureError::Mismatch {
                member: "device",
                ..
            })
        ));
    }

    #[test]
    fn a_word_must_say_what_it_decides_and_why_a_decline() {
        let decline = sign(&key(), letter("decline", "数据不全", Value::Null)).to_value();
        let word = letter_opinion(&decline).unwrap();
        assert!(!word.signs);
        assert_eq!(word.strokes, None);
        for (statement, needle) in [
            (letter("decline", "  ", Value::Null), "reason"),
            (letter("maybe", "", strokes_value()), "decision"),
            (letter("sign", "", Value::Null), "strokes"),
        ] {
            let err = letter_opinion(&sign(&key(), statement).to_value())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
