//! Golden fixtures shared with the PWA's TypeScript implementation.
//!
//! Do not edit these expectations; a change here is a protocol break. If a fixture must change,
//! bump `PROTOCOL_VERSION`, and change the TypeScript side in the same release.

mod common;

use std::collections::BTreeMap;

use common::{A, B, E, Scenario, describe, run};
use sync_protocol::{
    Candidate, Change, ChangeBody, Conflict, DeviceId, EntityState, FieldState, HashError, Hlc, Op,
    OpBody, OpId, OpResult, OrSet, PROTOCOL_VERSION, RejectCode, SectionSignature, SetElement,
    SyncRequest, SyncResponse, Value, canonical_json, content_hash, decode_request,
    decode_response, section_hash,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn id(n: u128) -> OpId {
    OpId::from_u128(n)
}

fn hlc(wall_ms: u64, counter: u32) -> Hlc {
    Hlc::new(wall_ms, counter)
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

/// A request carrying one op of every kind.
pub fn example_request() -> SyncRequest {
    let op = |n: u64, body: OpBody| Op {
        id: id(u128::from(n)),
        device: A,
        seq: n,
        hlc: hlc(1_717_000_000_000 + n, 0),
        entity: E,
        body,
    };
    SyncRequest {
        protocol_version: PROTOCOL_VERSION,
        device: A,
        ops: vec![
            op(
                1,
                OpBody::Create {
                    entity_type: "acceptance_table".to_owned(),
                    fields: BTreeMap::from([
                        ("mine_name".to_owned(), Value::from("上高县某采石场")),
                        (
                            "water_resources/item14.result".to_owned(),
                            Value::from("pending"),
                        ),
                    ]),
                },
            ),
            op(
                2,
                OpBody::Set {
                    field: "water_resources/item14.result".to_owned(),
                    value: Value::from("pass"),
                    base_rev: 1,
                },
            ),
            op(
                3,
                OpBody::Set {
                    field: "water_resources/item14.measure".to_owned(),
                    value: map(&[("depth_m", Value::from("1.25")), ("basins", Value::from(3))]),
                    base_rev: 0,
                },
            ),
            op(
                4,
                OpBody::Add {
                    field: "water_resources/item14.photos".to_owned(),
                    element: Value::from("sha256:9f86d081884c7d65"),
                },
            ),
            op(
                5,
                OpBody::Remove {
                    field: "water_resources/item14.photos".to_owned(),
                    element: Value::from("sha256:9f86d081884c7d65"),
                    observed: vec![id(4)],
                },
            ),
            op(
                6,
                OpBody::Resolve {
                    field: "forestry/item20.result".to_owned(),
                    value: Value::from("pass"),
                    base_rev: 3,
                    chosen_op: Some(id(0xb2)),
                    reason: "复核：补植已完成".to_owned(),
                },
            ),
            op(
                7,
                OpBody::Sign {
                    section: "water_resources".to_owned(),
                    content_hash:
                        "5d9a7a3b3e0c2f4b1d8e6f7a9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c"
                            .to_owned(),
                    signature: map(&[
                        ("signer", Value::from("李伟")),
                        ("strokes", Value::from("sha256:e3b0c44298fc1c14")),
                    ]),
                },
            ),
            op(8, OpBody::Tombstone),
        ],
        cursor: 41,
        pull_limit: Some(100),
    }
}

/// A response with every result kind and every change kind.
pub fn example_response() -> SyncResponse {
    let field = FieldState {
        value: Value::from("pass"),
        rev: 4,
        last_writer: B,
        op: id(0xb3),
        hlc: hlc(1_717_000_000_300, 0),
        streak_base: 2,
        conflict: Some(Conflict::new(vec![
            Candidate {
                value: Value::from("fail"),
                op: id(2),
                device: A,
                hlc: hlc(1_717_000_000_002, 0),
            },
            Candidate {
                value: Value::from("pass"),
                op: id(0xb3),
                device: B,
                hlc: hlc(1_717_000_000_300, 0),
            },
        ])),
        resolution: None,
    };
    let created = EntityState {
        id: E,
        entity_type: "acceptance_table".to_owned(),
        created_by: id(0xc1),
        tombstoned: false,
        fields: BTreeMap::from([(
            "mine_name".to_owned(),
            FieldState {
                value: Value::from("上高县某采石场"),
                rev: 1,
                last_writer: B,
                op: id(0xc1),
                hlc: hlc(1_717_000_000_100, 0),
                streak_base: 0,
                conflict: None,
                resolution: None,
            },
        )]),
        sets: BTreeMap::new(),
        signatures: BTreeMap::new(),
        withdrawals: Vec::new(),
    };
    let photos = OrSet {
        elements: BTreeMap::from([(
            "\"sha256:9f86d081884c7d65\"".to_owned(),
            SetElement {
                value: Value::from("sha256:9f86d081884c7d65"),
                tags: [id(4)].into(),
            },
        )]),
    };
    let change = |commit_seq: u64, op: u128, device: DeviceId, body: ChangeBody| Change {
        commit_seq,
        entity: E,
        entity_type: "acceptance_table".to_owned(),
        op: id(op),
        device,
        hlc: hlc(1_717_000_000_000 + commit_seq, 0),
        body,
    };
    SyncResponse {
        protocol_version: PROTOCOL_VERSION,
        results: vec![
            OpResult::Duplicate { op: id(1) },
            OpResult::Applied { op: id(2), commit_seq: 42 },
            OpResult::Conflict { op: id(3), commit_seq: 43 },
            OpResult::Rejected {
                op: id(4),
                code: RejectCode::SectionSigned,
                message: "section \"water_resources\" was signed (commit 40) after this edit was made; field \"water_resources/item14.photos\" can no longer change".to_owned(),
            },
            OpResult::Gap { op: id(6), expected: 5 },
        ],
        changes: vec![
            change(42, 0xc1, B, ChangeBody::Created { state: created }),
            change(43, 0xb3, B, ChangeBody::Field { field: "water_resources/item14.result".to_owned(), state: field }),
            change(44, 4, A, ChangeBody::SetField { field: "water_resources/item14.photos".to_owned(), state: photos }),
            change(45, 7, A, ChangeBody::Signed {
                section: "forestry".to_owned(),
                signature: SectionSignature {
                    content_hash: "0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c5d9a7a3b3e0c2f4b1d8e6f7a9c".to_owned(),
                    signed_at_commit: 45,
                    op: id(7),
                    device: A,
                    hlc: hlc(1_717_000_000_007, 0),
                    signature: map(&[("signer", Value::from("王芳"))]),
                },
            }),
            change(46, 8, A, ChangeBody::Tombstoned),
        ],
        cursor: 46,
        has_more: true,
    }
}

/// Do not edit this expectation; a change here is a protocol break.
#[test]
fn sync_request_wire_format_is_stable() {
    let text = fixture("sync_request.json");
    let parsed = decode_request(text.as_bytes()).expect("fixture parses");
    assert_eq!(parsed, example_request(), "fixture and Rust types disagree");
    let reserialised = serde_json::to_string_pretty(&parsed).expect("serialises") + "\n";
    assert_eq!(reserialised, text, "re-serialisation differs byte for byte");
}

/// Do not edit this expectation; a change here is a protocol break.
#[test]
fn sync_response_wire_format_is_stable() {
    let text = fixture("sync_response.json");
    let parsed = decode_response(text.as_bytes()).expect("fixture parses");
    assert_eq!(
        parsed,
        example_response(),
        "fixture and Rust types disagree"
    );
    let reserialised = serde_json::to_string_pretty(&parsed).expect("serialises") + "\n";
    assert_eq!(reserialised, text, "re-serialisation differs byte for byte");
}

/// Do not edit these expectations; a change here is a protocol break.
#[test]
fn merge_cases_fixture_matches_the_rules() {
    #[derive(serde::Deserialize)]
    struct File {
        cases: Vec<Scenario>,
    }
    let file: File = serde_json::from_str(&fixture("merge_cases.json")).expect("fixture parses");
    assert!(file.cases.len() >= 30);
    for case in &file.cases {
        let (_, outcome) = run(case.policy.as_ref(), &case.given, &case.op);
        assert_eq!(describe(&outcome), case.expect, "case {:?}", case.name);
    }
}

/// `merge_in_place` (the server's path) is the same rules as `merge`: on every fixture case it
/// leaves the state `merge` returns, and a rejected or duplicate op leaves the state untouched.
#[test]
fn merging_in_place_agrees_with_merge_on_every_case() {
    #[derive(serde::Deserialize)]
    struct File {
        cases: Vec<Scenario>,
    }
    let file: File = serde_json::from_str(&fixture("merge_cases.json")).expect("fixture parses");
    for case in &file.cases {
        let (before, outcome) = run(case.policy.as_ref(), &case.given, &case.op);
        let allow = sync_protocol::AllowAll;
        let ctx = sync_protocol::MergeContext {
            policy: match &case.policy {
                Some(p) => p,
                None => &allow,
            },
            commit_seq: case.given.len() as u64 + 1,
        };
        let mut slot = before.clone();
        let done = sync_protocol::merge_in_place(&mut slot, &case.op, &ctx);
        match (&outcome, done) {
            (sync_protocol::Outcome::Applied(e), sync_protocol::InPlace::Applied(change))
            | (sync_protocol::Outcome::Conflict(e), sync_protocol::InPlace::Conflict(change)) => {
                assert_eq!(slot.as_ref(), Some(&e.state), "case {:?}", case.name);
                assert_eq!(change, e.change, "case {:?}", case.name);
            }
            (sync_protocol::Outcome::Duplicate, sync_protocol::InPlace::Duplicate) => {
                assert_eq!(slot, before, "case {:?}", case.name);
            }
            (sync_protocol::Outcome::Rejected(a), sync_protocol::InPlace::Rejected(b)) => {
                assert_eq!(*a, b, "case {:?}", case.name);
                assert_eq!(
                    slot, before,
                    "case {:?}: a rejection changed the state",
                    case.name
                );
            }
            (a, b) => panic!("case {:?}: merge {a:?}, in place {b:?}", case.name),
        }
    }
}

#[derive(serde::Deserialize)]
struct CanonicalFile {
    values: Vec<ValueCase>,
    invalid: Vec<InvalidCase>,
    sections: Vec<SectionCase>,
}

#[derive(serde::Deserialize)]
struct ValueCase {
    name: String,
    value: Value,
    canonical: String,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct InvalidCase {
    name: String,
    json: String,
    error: String,
}

#[derive(serde::Deserialize)]
struct SectionCase {
    name: String,
    state: EntityState,
    section: String,
    document: Option<String>,
    sha256: Option<String>,
    error: Option<String>,
}

/// Do not edit these expectations; a change here is a protocol break (every signature ever
/// made would stop verifying).
#[test]
fn canonical_encoding_and_hashes_are_pinned() {
    let file: CanonicalFile =
        serde_json::from_str(&fixture("canonical.json")).expect("fixture parses");
    for case in &file.values {
        let canonical = canonical_json(&case.value).expect("encodable");
        assert_eq!(
            canonical, case.canonical,
            "canonical bytes of {:?}",
            case.name
        );
        assert_eq!(
            content_hash(&case.value).expect("hashable"),
            case.sha256,
            "{}",
            case.name
        );
    }
    for case in &file.invalid {
        let err = serde_json::from_str::<Value>(&case.json).expect_err(&case.name);
        let kind = if err.to_string().contains("floating-point") {
            "float"
        } else {
            "int_out_of_range"
        };
        assert_eq!(kind, case.error, "{}", case.name);
    }
    for case in &file.sections {
        match (&case.document, &case.sha256, &case.error) {
            (Some(document), Some(sha256), None) => {
                let doc = sync_protocol::canonical::section_document(&case.state, &case.section)
                    .expect("hashable");
                assert_eq!(
                    &canonical_json(&doc).expect("encodable"),
                    document,
                    "{}",
                    case.name
                );
                assert_eq!(
                    &section_hash(&case.state, &case.section).expect("hashable"),
                    sha256
                );
            }
            (None, None, Some(error)) => {
                // The expectation is derived from the fixture's raw JSON, not from the types
                // under test: the section's fields whose `conflict` is not null.
                let conflicted = conflicted_fields(&case.name, &case.section);
                let got = match section_hash(&case.state, &case.section) {
                    Ok(hash) => panic!("{}: hashed to {hash}", case.name),
                    Err(HashError::Conflicted { field }) => {
                        assert!(
                            conflicted.contains(&field),
                            "{}: {field} is not conflicted in the fixture ({conflicted:?})",
                            case.name
                        );
                        "conflicted"
                    }
                    Err(HashError::Value(_)) => "value",
                };
                assert_eq!(got, error, "{}", case.name);
                assert!(
                    sync_protocol::canonical::section_document(&case.state, &case.section).is_err(),
                    "{}",
                    case.name
                );
            }
            _ => panic!("malformed case {}", case.name),
        }
    }
}

/// The fields of `section` whose `conflict` is not null in the raw JSON of the named section
/// case of `canonical.json` (read without the protocol's types).
fn conflicted_fields(name: &str, section: &str) -> Vec<String> {
    let file: serde_json::Value =
        serde_json::from_str(&fixture("canonical.json")).expect("fixture parses");
    let case = file["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|c| c["name"] == name)
        .expect("the case");
    let fields: Vec<String> = case["state"]["fields"]
        .as_object()
        .expect("fields")
        .iter()
        .filter(|(key, field)| {
            let in_section = match key.split_once('/') {
                Some((s, _)) => s == section,
                None => section.is_empty(),
            };
            in_section && !field["conflict"].is_null()
        })
        .map(|(key, _)| key.clone())
        .collect();
    assert!(
        !fields.is_empty(),
        "{name}: no conflicted field in {section:?}"
    );
    fields
}
