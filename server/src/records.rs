//! The assembled acceptance record: one visit (round) as one document — the mine's header, each
//! department's section with its items, answers, verdicts, rectification requirements,
//! photos (with the server's place and time findings) and signature (checked again), the
//! township's pre-inspection, the overall conclusion and the conflicts still open — with its
//! own content hash.
//!
//! It is what the experts review and what every export shows. The document is plain data
//! (strings, integers, booleans; decimals as strings), so its hash is the canonical hash of
//! PROTOCOL.md §3 over the document without its `content_hash` member: anyone can recompute it
//! from the JSON alone.
//!
//! Checks made while assembling, never trusted from the stored state alone:
//! - each section signature: the hash it names against the section as it stands now, and its
//!   ECDSA signature against the signing device's enrolled key;
//! - each photo attestation: against its device's key.

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use serde::Serialize;
use sync_protocol::{EntityId, EntityState, Value, signature};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{
        Disposition,
        record::{FINDINGS_SECTION, TOWNSHIP_SECTION, findings_field},
    },
    photos::geofence::CHINA_STANDARD_TIME,
    rules::template::{AnswerKind, FailureConclusion, FieldRole, ItemText, field_key},
    store::StoreError,
    sync::signatures::decode_key,
};

/// The assembled record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssembledRecord {
    /// The record's (and round's) id.
    pub record_id: Uuid,
    /// 1 for the first visit; re-inspections count on.
    pub round_no: i32,
    pub previous_round_id: Option<Uuid>,
    /// `template-id@version` the record is filled against.
    pub template: String,
    /// `cancel`, `continue` or `not_produced`.
    pub disposition: String,
    /// 注销 / 延续 / 未生产.
    pub disposition_name: String,
    /// The day the visit was opened, county time (`2024-03-02`).
    pub opened_on: String,
    pub mine: MineHeader,
    /// The inspecting departments' sections of the template that apply, in table order.
    pub sections: Vec<SectionRecord>,
    /// The township's pre-inspection (初验): its fields as written.
    pub pre_inspection: BTreeMap<String, serde_json::Value>,
    /// `passed`, `rectify_by_deadline` or `failed` by the template's rule.
    pub conclusion: String,
    /// 达标 / 限期整改 / 不达标.
    pub conclusion_name: String,
    /// Fields waiting for a person to resolve their conflict.
    pub open_conflicts: Vec<String>,
    /// Photos the record names whose bytes have not reached the server.
    pub photos_awaiting_upload: u32,
    /// Whether every required section is signed and every signature holds.
    pub fully_signed: bool,
    /// Lowercase hex SHA-256 of the canonical JSON of this document without this member.
    pub content_hash: String,
}

/// The mine, as the record's header shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MineHeader {
    pub id: Uuid,
    /// 矿山名称
    pub name: String,
    /// 采矿许可证号
    pub licence_no: String,
    /// 采矿权人
    pub holder: String,
    /// 乡镇（林场）
    pub township: String,
    /// 矿种
    pub mineral: String,
    /// 开采方式
    pub mining_method: String,
    /// 矿区面积, hectares (decimal string)
    pub area_ha: Option<String>,
}

/// One department's section.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionRecord {
    /// The department's code (`forestry`).
    pub department: String,
    /// The heading (`林业局`).
    pub name: String,
    /// Whether the record's conclusion depends on it.
    pub required: bool,
    /// Whether every applicable item passes.
    pub passed: bool,
    pub items: Vec<ItemRecord>,
    pub signature: Option<SignatureRecord>,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemRecord {
    /// 序号
    pub number: u32,
    /// 验收项目
    pub title: String,
    /// 验收标准
    pub criterion: Option<String>,
    /// `required`, `optional` or `none`.
    pub photo_expectation: String,
    pub answers: Vec<AnswerRecord>,
    /// 备注
    pub remark: Option<String>,
    /// 整改要求
    pub rectification: Option<String>,
    /// Why the item does not pass (empty when it passes), as the template's rule says.
    pub problems: Vec<String>,
    pub photos: Vec<PhotoRecord>,
}

/// One answer part of an item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerRecord {
    /// The field key (`forestry/19.cover`).
    pub field: String,
    pub label: Option<String>,
    /// The unit of a number.
    pub unit: Option<String>,
    /// As written (`pass`, `"85.5"`, text), or null when unanswered.
    pub value: serde_json::Value,
    /// The design value a rule compares with, when the rule says so.
    pub design_value: Option<serde_json::Value>,
}

/// A photo of an item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PhotoRecord {
    pub sha256: String,
    pub size: i64,
    pub content_type: String,
    /// The device that took it (its key signed the attestation).
    pub device: Uuid,
    /// Device time of capture, ms since the epoch.
    pub captured_at_ms: i64,
    /// The phone's position at capture (decimal strings), if it had one.
    pub position: Option<serde_json::Value>,
    /// Whether the capture attestation verifies with the device's enrolled key.
    pub attestation_valid: bool,
    /// The server's findings (PROTOCOL.md §13), null before the server wrote them.
    pub findings: serde_json::Value,
}

/// A section's signature, as checked while assembling.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignatureRecord {
    /// `{user, name, role, department, specialty}` as signed.
    pub signer: serde_json::Value,
    pub device: Uuid,
    /// Device time of signing, ms since the epoch.
    pub signed_at_ms: Option<i64>,
    /// The server's commit that accepted it.
    pub signed_at_commit: u64,
    /// The section hash the signer saw.
    pub content_hash: String,
    /// Whether the section still hashes to it.
    pub hash_holds: bool,
    /// Whether the ECDSA signature verifies with the device's enrolled key.
    pub signature_valid: bool,
    /// `{sha256, size}` of the handwritten strokes.
    pub strokes: serde_json::Value,
    /// The signature value as carried by the `sign` op (for offline verification).
    pub value: serde_json::Value,
}

pub(crate) fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Device keys looked up once per device while assembling.
pub(crate) struct Keys<'a> {
    state: &'a AppState,
    cache: HashMap<Uuid, Option<p256::ecdsa::VerifyingKey>>,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(state: &'a AppState) -> Self {
        Keys {
            state,
            cache: HashMap::new(),
        }
    }

    /// The enrolled key of `device` (none for an unknown device).
    pub(crate) async fn get(&mut self, device: Uuid) -> Result<Option<p256::ecdsa::VerifyingKey>> {
        if let Some(k) = self.cache.get(&device) {
            return Ok(*k);
        }
        let key = match self.state.store.get_device(device).await {
            Ok(d) => Some(decode_key(&d.public_key_spki)?),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        self.cache.insert(device, key);
        Ok(key)
    }
}

/// The record of round `round_id` as one document, for a caller who may see the mine.
pub async fn assemble(
    state: &AppState,
    caller: &AuthUser,
    round_id: Uuid,
) -> Result<AssembledRecord> {
    let round = match state.store.get_round(round_id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("record")),
        Err(e) => return Err(e.into()),
    };
    let mine = visible_mine(state, caller, round.mine_id)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("record"),
            e => e,
        })?;
    let template = crate::sync::templates::template(state, &round.template_ref).await?;
    let disposition = Disposition::from_code(&round.disposition)
        .ok_or_else(|| AppError::Internal(format!("round {} disposition", round.id)))?;
    let record: EntityState = state
        .store
        .sync_entities(&[EntityId(round.id)])
        .await?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound("record"))?;
    let township = state
        .store
        .list_townships()
        .await?
        .into_iter()
        .find(|t| t.id == mine.township_id)
        .map_or_else(String::new, |t| t.name);

    let values = record
        .fields
        .iter()
        .filter(|(k, _)| k.contains('/'))
        .map(|(k, f)| (k.as_str(), &f.value));
    let (answers, _) = template.collect_answers(disposition, values);
    let verdict = template.verdict(disposition, &answers, FailureConclusion::RectifyByDeadline);
    let problems = verdict.failing.iter().chain(&verdict.advisory);

    let mut keys = Keys::new(state);
    let field = |key: &str| {
        record
            .fields
            .get(key)
            .map_or(serde_json::Value::Null, |f| to_json(&f.value))
    };
    let text = |key: &str| record.value(key).and_then(Value::as_str).map(str::to_owned);
    let mut awaiting = 0u32;
    let mut sections = Vec::new();
    let mut fully_signed = true;
    for section in &template.sections {
        if !section.applies_to.contains(&disposition) {
            continue;
        }
        let dept = section.department;
        let mut items = Vec::new();
        for item in section.items.iter().filter(|i| i.applies(disposition)) {
            let answers = item
                .parts
                .iter()
                .map(|part| {
                    let key = field_key(dept, item.number, &part.key, FieldRole::Answer);
                    let (unit, design) = match &part.kind {
                        AnswerKind::Number { unit, rule } => (
                            Some(unit.clone()),
                            rule.as_ref()
                                .filter(|r| {
                                    matches!(
                                        r.threshold,
                                        crate::rules::template::Threshold::DesignValue
                                    )
                                })
                                .map(|_| {
                                    field(&field_key(
                                        dept,
                                        item.number,
                                        &part.key,
                                        FieldRole::DesignValue,
                                    ))
                                }),
                        ),
                        _ => (None, None),
                    };
                    AnswerRecord {
                        value: field(&key),
                        field: key,
                        label: part.label.clone(),
                        unit,
                        design_value: design,
                    }
                })
                .collect();
            let mut photos = Vec::new();
            let evidence_key = format!("{}/{}.photos", dept.code(), item.number);
            if let Some(set) = record.sets.get(&evidence_key) {
                for element in set.elements.values() {
                    let Ok(claim) = signature::photo_claim(&element.value) else {
                        continue;
                    };
                    let attestation_valid = match keys.get(claim.device.0).await? {
                        Some(key) => signature::DeviceSignature::from_value(&element.value)
                            .and_then(|s| s.verify(&key))
                            .is_ok(),
                        None => false,
                    };
                    let findings = field(&findings_field(&claim.sha256));
                    if findings.get("status").and_then(|s| s.as_str()) != Some("received") {
                        awaiting += 1;
                    }
                    photos.push(PhotoRecord {
                        sha256: claim.sha256.clone(),
                        size: claim.size,
                        content_type: claim.content_type.clone(),
                        device: claim.device.0,
                        captured_at_ms: claim.captured_at_ms,
                        position: claim
                            .position
                            .as_ref()
                            .map(|p| to_json(&Value::Map(p.clone()))),
                        attestation_valid,
                        findings,
                    });
                }
            }
            items.push(ItemRecord {
                number: item.number,
                title: item.title.clone(),
                criterion: item.criterion.clone(),
                photo_expectation: serde_json::to_value(item.photo)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                answers,
                remark: text(&crate::rules::template::item_text_key(
                    dept,
                    item.number,
                    ItemText::Remark,
                )),
                rectification: text(&crate::rules::template::item_text_key(
                    dept,
                    item.number,
                    ItemText::Rectification,
                )),
                problems: problems
                    .clone()
                    .filter(|p| p.department == dept && p.number == item.number)
                    .map(|p| {
                        serde_json::to_value(&p.reason)
                            .ok()
                            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                            .unwrap_or_default()
                    })
                    .collect(),
                photos,
            });
        }
        let signature = match record.signatures.get(dept.code()) {
            Some(sig) => {
                let current = sync_protocol::section_hash(&record, dept.code()).ok();
                let parsed = signature::DeviceSignature::from_value(&sig.signature).ok();
                let signature_valid = match (&parsed, keys.get(sig.device.0).await?) {
                    (Some(p), Some(key)) => p.verify(&key).is_ok(),
                    _ => false,
                };
                let member = |m: &str| {
                    parsed
                        .as_ref()
                        .and_then(|p| p.statement.get(m))
                        .map_or(serde_json::Value::Null, to_json)
                };
                let hash_holds = current.as_deref() == Some(sig.content_hash.as_str());
                if !(hash_holds && signature_valid) {
                    fully_signed = false;
                }
                Some(SignatureRecord {
                    signer: member("signer"),
                    device: sig.device.0,
                    signed_at_ms: member("signed_at_ms").as_i64(),
                    signed_at_commit: sig.signed_at_commit,
                    content_hash: sig.content_hash.clone(),
                    hash_holds,
                    signature_valid,
                    strokes: member("strokes"),
                    value: to_json(&sig.signature),
                })
            }
            None => {
                if section.required {
                    fully_signed = false;
                }
                None
            }
        };
        let passed = verdict
            .sections
            .iter()
            .find(|s| s.department == dept)
            .is_some_and(|s| s.passed);
        sections.push(SectionRecord {
            department: dept.code().to_owned(),
            name: section.name.clone(),
            required: section.required,
            passed,
            items,
            signature,
        });
    }
    let pre_inspection = record
        .fields
        .iter()
        .filter(|(k, _)| sync_protocol::section_of(k) == TOWNSHIP_SECTION)
        .map(|(k, f)| (k.clone(), to_json(&f.value)))
        .collect();
    let open_conflicts = record
        .fields
        .iter()
        .filter(|(k, f)| f.conflict.is_some() && sync_protocol::section_of(k) != FINDINGS_SECTION)
        .map(|(k, _)| k.clone())
        .collect();
    let opened_on = DateTime::from_timestamp_millis(round.created_at)
        .map(|t| {
            t.with_timezone(&CHINA_STANDARD_TIME)
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default();
    let mut doc = AssembledRecord {
        record_id: round.id,
        round_no: round.round_no,
        previous_round_id: round.previous_round_id,
        template: round.template_ref.clone(),
        disposition: disposition.code().to_owned(),
        disposition_name: disposition.name_zh().to_owned(),
        opened_on,
        mine: MineHeader {
            id: mine.id,
            name: mine.name.clone(),
            licence_no: mine.licence_no.clone(),
            holder: mine.holder.clone(),
            township,
            mineral: mine.mineral.clone(),
            mining_method: mine.mining_method.clone(),
            area_ha: mine.area_ha.clone(),
        },
        sections,
        pre_inspection,
        conclusion: serde_json::to_value(verdict.conclusion)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        conclusion_name: verdict.conclusion.name_zh().to_owned(),
        open_conflicts,
        photos_awaiting_upload: awaiting,
        fully_signed,
        content_hash: String::new(),
    };
    doc.content_hash = content_hash(&doc)?;
    Ok(doc)
}

/// The canonical hash of `doc` (an assembled record or letter) without its `content_hash`
/// member (PROTOCOL.md §3).
pub fn content_hash(doc: &impl Serialize) -> Result<String> {
    let mut json =
        serde_json::to_value(doc).map_err(|e| AppError::Internal(format!("document: {e}")))?;
    if let Some(map) = json.as_object_mut() {
        map.remove("content_hash");
    }
    let value: Value = serde_json::from_value(json)
        .map_err(|e| AppError::Internal(format!("document is not plain data: {e}")))?;
    sync_protocol::content_hash(&value)
        .map_err(|e| AppError::Internal(format!("record document hash: {e}")))
}
