//! The device signature format, pinned for the PWA (`fixtures/signatures.json`).
//!
//! Do not edit these expectations; a change here is a protocol break. The fixture is written
//! by this test when `SYNC_PROTOCOL_WRITE_FIXTURES=1` (only when the format deliberately
//! changes, with `PROTOCOL_VERSION` and the TypeScript side in the same release).

use std::collections::BTreeMap;

use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;
use sync_protocol::{
    DeviceId, EntityId, Hlc, Op, OpBody, OpId, Value,
    signature::{
        self, DeviceSignature, PURPOSE_LETTER, PURPOSE_PHOTO, PURPOSE_SECTION, SignatureError,
    },
};

const DEVICE: DeviceId = DeviceId::from_u128(0xa1);
const RECORD: EntityId = EntityId::from_u128(0xe1);
const LETTER: EntityId = EntityId::from_u128(0xe2);

fn device_key() -> SigningKey {
    SigningKey::from_slice(&[0x11; 32]).expect("a scalar")
}

fn other_key() -> SigningKey {
    SigningKey::from_slice(&[0x22; 32]).expect("a scalar")
}

fn map(entries: Vec<(&str, Value)>) -> BTreeMap<String, Value> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn signer(role: &str, department: Option<&str>, specialty: Option<&str>) -> Value {
    let opt = |s: Option<&str>| s.map_or(Value::Null, Value::from);
    Value::Map(map(vec![
        ("user", Value::from("00000000-0000-0000-0000-0000000000b1")),
        ("name", Value::from("林业局 李明")),
        ("role", Value::from(role)),
        ("department", opt(department)),
        ("specialty", opt(specialty)),
    ]))
}

fn strokes() -> Value {
    Value::Map(map(vec![
        ("sha256", Value::from("5d".repeat(32))),
        ("size", Value::Int(2_431)),
    ]))
}

const SECTION_HASH: &str = "3a8b8a9a3f0f1c5e8f2d6c0b7a4e9d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6978";

fn section_statement() -> BTreeMap<String, Value> {
    map(vec![
        ("purpose", Value::from(PURPOSE_SECTION)),
        ("device", Value::from(DEVICE.0.to_string())),
        ("entity", Value::from(RECORD.0.to_string())),
        ("section", Value::from("forestry")),
        ("content_hash", Value::from(SECTION_HASH)),
        (
            "signer",
            signer("department_inspector", Some("forestry"), None),
        ),
        ("signed_at_ms", Value::Int(1_711_850_000_000)),
        ("strokes", strokes()),
    ])
}

fn photo_statement() -> BTreeMap<String, Value> {
    map(vec![
        ("purpose", Value::from(PURPOSE_PHOTO)),
        ("device", Value::from(DEVICE.0.to_string())),
        ("sha256", Value::from("9f".repeat(32))),
        ("size", Value::Int(4_718_592)),
        ("content_type", Value::from("image/jpeg")),
        ("captured_at_ms", Value::Int(1_711_849_000_000)),
        (
            "position",
            Value::Map(map(vec![
                ("lat", Value::from("28.234567")),
                ("lon", Value::from("114.876543")),
                ("accuracy_m", Value::from("4.5")),
                ("altitude_m", Value::from("85.2")),
            ])),
        ),
    ])
}

fn letter_statement() -> BTreeMap<String, Value> {
    map(vec![
        ("purpose", Value::from(PURPOSE_LETTER)),
        ("device", Value::from(DEVICE.0.to_string())),
        ("letter", Value::from(LETTER.0.to_string())),
        ("content_hash", Value::from(SECTION_HASH)),
        ("decision", Value::from("sign")),
        ("reason", Value::from("")),
        ("signer", signer("expert", None, Some("forestry"))),
        ("signed_at_ms", Value::Int(1_712_000_000_000)),
        ("strokes", strokes()),
    ])
}

fn jwk(key: &SigningKey) -> serde_json::Value {
    let public = p256::PublicKey::from(key.verifying_key());
    serde_json::from_str(&public.to_jwk_string()).expect("a JWK")
}

/// The same signature with `s` negated: also valid (WebCrypto does not normalise `s`).
fn high_s(sig: &DeviceSignature) -> DeviceSignature {
    let parsed = Signature::from_slice(&sig.sig).expect("a signature");
    let (r, s) = parsed.split_scalars();
    let flipped = Signature::from_scalars(r, -*s).expect("a signature");
    let mut out = sig.clone();
    out.sig = flipped.to_bytes().into();
    if parsed.normalize_s().is_none() {
        // Already the low form: the flip made it high.
        return out;
    }
    // The original was high; keep it high by returning it as is.
    sig.clone()
}

fn fixture_json() -> serde_json::Value {
    let key = device_key();
    let section = signature::sign(&key, section_statement());
    let photo = signature::sign(&key, photo_statement());
    let letter = signature::sign(&key, letter_statement());
    let mut tampered = section.clone();
    tampered
        .statement
        .insert("section".into(), Value::from("water_resources"));
    let by_other = signature::sign(&other_key(), section_statement());
    let case = |name: &str, sig: &DeviceSignature, valid: bool, note: &str| {
        json!({
            "name": name,
            "note": note,
            "signature": sig.to_value().to_json(),
            "signed_bytes": String::from_utf8(sig.signed_bytes().expect("bytes")).expect("utf-8"),
            "valid": valid,
        })
    };
    json!({
        "device": DEVICE.0.to_string(),
        "device_public_key": jwk(&key),
        "cases": [
            case("section", &section, true, "a department inspector signs the forestry section"),
            case("photo", &photo, true, "a photo's capture attestation (the evidence set's element)"),
            case("letter", &letter, true, "an expert signs the opinion letter"),
            case("section_high_s", &high_s(&section), true, "s not normalised, as WebCrypto may produce"),
            case("section_tampered", &tampered, false, "the statement was changed after signing (signed_bytes is the changed statement)"),
            case("section_other_key", &by_other, false, "signed by a key that is not the device's"),
        ],
    })
}

#[test]
fn signature_fixture_is_stable() {
    let expected = serde_json::to_string_pretty(&fixture_json()).expect("json") + "\n";
    let path = format!("{}/fixtures/signatures.json", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("SYNC_PROTOCOL_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &expected).expect("write the fixture");
    }
    let actual = std::fs::read_to_string(&path).expect("read the fixture");
    assert_eq!(
        actual, expected,
        "fixtures/signatures.json changed: a protocol break"
    );
}

#[test]
fn fixture_cases_verify_as_labelled() {
    let key = *device_key().verifying_key();
    let fixture = fixture_json();
    for case in fixture["cases"].as_array().expect("cases") {
        let value = Value::from_json(case["signature"].clone()).expect("a value");
        let sig = DeviceSignature::from_value(&value).expect("well-formed");
        assert_eq!(
            sig.verify(&key).is_ok(),
            case["valid"].as_bool().expect("valid"),
            "{}",
            case["name"]
        );
        assert_eq!(
            String::from_utf8(sig.signed_bytes().expect("bytes")).expect("utf-8"),
            case["signed_bytes"].as_str().expect("signed_bytes")
        );
    }
}

fn sign_op(signature: Value, section: &str, content_hash: &str) -> Op {
    Op {
        id: OpId::from_u128(7),
        device: DEVICE,
        seq: 3,
        hlc: Hlc::new(1_711_850_000_000, 0),
        entity: RECORD,
        body: OpBody::Sign {
            section: section.into(),
            content_hash: content_hash.into(),
            signature,
        },
    }
}

#[test]
fn a_sign_op_must_carry_a_statement_of_exactly_that_op() {
    let key = *device_key().verifying_key();
    let sig = signature::sign(&device_key(), section_statement()).to_value();
    assert!(
        signature::check_section_signature(&sign_op(sig.clone(), "forestry", SECTION_HASH), &key)
            .is_ok()
    );
    // The op signs another hash than the statement (a stale statement reused).
    let stale = signature::check_section_signature(
        &sign_op(sig.clone(), "forestry", &"0".repeat(64)),
        &key,
    );
    assert!(
        matches!(
            stale,
            Err(SignatureError::Mismatch {
                member: "content_hash",
                ..
            })
        ),
        "{stale:?}"
    );
    // Pushed by another device than the statement's.
    let mut other_device = sign_op(sig, "forestry", SECTION_HASH);
    other_device.device = DeviceId::from_u128(0xa2);
    assert!(matches!(
        signature::check_section_signature(&other_device, &key),
        Err(SignatureError::Mismatch {
            member: "device",
            ..
        })
    ));
    // The old opaque payload is refused with a reason.
    let opaque = signature::check_section_signature(
        &sign_op(Value::from("签名: 林业局 A"), "forestry", SECTION_HASH),
        &key,
    );
    assert!(
        matches!(opaque, Err(SignatureError::Malformed(_))),
        "{opaque:?}"
    );
}

#[test]
fn a_photo_element_is_its_attestation() {
    let key = *device_key().verifying_key();
    let element = signature::sign(&device_key(), photo_statement()).to_value();
    let claim = signature::check_photo_attestation(&element, DEVICE, &key).expect("holds");
    assert_eq!(claim.sha256, "9f".repeat(32));
    assert_eq!(claim.size, 4_718_592);
    assert_eq!(
        claim
            .position
            .as_ref()
            .and_then(|p| p.get("lat"))
            .and_then(Value::as_str),
        Some("28.234567")
    );
    // Another device adds a photo attested by this one.
    assert!(matches!(
        signature::check_photo_attestation(&element, DeviceId::from_u128(0xa2), &key),
        Err(SignatureError::Mismatch {
            member: "device",
            ..
        })
    ));
    // A position without a longitude.
    let mut st = photo_statement();
    st.insert(
        "position".into(),
        Value::Map(map(vec![("lat", Value::from("28.2"))])),
    );
    let bad = signature::sign(&device_key(), st).to_value();
    assert!(matches!(
        signature::check_photo_attestation(&bad, DEVICE, &key),
        Err(SignatureError::Malformed(_))
    ));
}
