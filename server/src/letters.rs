//! The experts' opinion letter (验收合格意见书, PROTOCOL.md §15): drafted by the county office
//! from a round whose record passed and is fully signed, reviewed and signed (or declined) by
//! its expert panel — offline on their phones, through sync — and issued by the county office
//! once every required specialty has signed the current text. An issued letter whose
//! conclusion is 同意通过 is the workflow's evidence that the experts accepted a 注销 mine.
//!
//! Vocabulary:
//! - **text**: the letter's section `letter` (number, basis, date, organiser, panel, method,
//!   situation, opinions, problems, conclusion, and the hash of the record it was drafted
//!   from); the **letter hash** is that section's hash;
//! - **word**: an expert's signed statement on one letter hash, `sign` or `decline` (with a
//!   reason), an element of `experts/opinions`. A word on an older hash is **superseded**: the
//!   text changed after it, so it no longer counts;
//! - **issuable**: on the current hash, every required specialty has a panel expert's valid
//!   signing word, no panel expert declined, the record still passes, is fully signed and is
//!   the one the letter was drafted from.
//!
//! The server writes the letter as its own ops (`sync::server_ops`), so every phone gets each
//! version through the feed. Checks that depend on the letter as it stands (issued, text
//! changed, opinions arrived) are repeated inside the store's write lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sync_protocol::{EntityId, EntityState, OpBody, Value, signature};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, ErrorCode, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{
        Disposition, Role,
        letter::{
            DRAFT, ISSUED, ISSUED_FIELD, LETTER_TYPE, LetterConclusion, OPINIONS_FIELD,
            RECORD_FIELD, ROUND_FIELD, STATUS_FIELD, TEXT_SECTION, letter_id, text_key,
        },
        record::SCOPE_FIELD,
    },
    records::{self, Keys, to_json},
    store::StoreError,
    sync::server_ops,
};

/// Longest text of one field, characters.
const TEXT_MAX_CHARS: usize = 5000;
/// Most members of a panel, and most lines of the basis.
const LIST_MAX: usize = 30;
/// The fewest experts on a panel (the action plan asks for at least three).
const PANEL_MIN: usize = 3;

/// What the county office writes: the letter's text.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LetterText {
    /// 文号, e.g. `上自然资矿验〔2024〕12号`.
    pub number: String,
    /// Title; by default `<mine name>生态修复验收合格意见书`.
    #[serde(default)]
    pub title: Option<String>,
    /// 验收依据, one line each (the action plan, the approved restoration plan, standards).
    pub basis: Vec<String>,
    /// 验收日期, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// 组织单位.
    pub organiser: String,
    /// The expert panel: at least three experts, at least one of every specialty.
    pub panel: Vec<PanelMemberIn>,
    /// 验收方式.
    pub method: String,
    /// 基本情况.
    pub situation: String,
    /// 主要验收意见.
    pub opinions: String,
    /// 存在问题及建议 (may be empty).
    #[serde(default)]
    pub problems: String,
    /// 验收结论.
    pub conclusion: LetterConclusion,
}

/// A panel member as the county office names them; name and specialty come from the account.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PanelMemberIn {
    /// The expert's user id.
    pub user: Uuid,
    /// 职称, e.g. 高级工程师.
    pub title: String,
    /// 工作单位.
    pub employer: String,
}

/// The letter as one document: what the experts review, what the letter PDF shows and what
/// the archive keeps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssembledLetter {
    pub letter_id: Uuid,
    pub round_id: Uuid,
    pub mine_id: Uuid,
    pub mine_name: String,
    pub licence_no: String,
    /// `draft` or `issued`.
    pub status: String,
    pub issued: Option<IssuedRecord>,
    pub text: LetterTextOut,
    /// The hash of the letter's text section (PROTOCOL.md §3): what a word signs.
    pub letter_hash: String,
    /// Every word given, oldest first.
    pub opinions: Vec<OpinionRecord>,
    /// Per required specialty, who signed the current text.
    pub specialties: Vec<SpecialtyStatus>,
    /// Whether the county office may issue it now.
    pub issuable: bool,
    /// Why not, in Chinese (empty when issuable or issued).
    pub blocking: Vec<String>,
    /// The current content hash of the round's assembled record.
    pub record_hash_now: String,
    /// Lowercase hex SHA-256 of the canonical JSON of this document without this member.
    pub content_hash: String,
}

/// When and by whom the letter was issued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedRecord {
    pub at_ms: i64,
    pub by: Uuid,
    pub by_name: String,
    /// The letter hash issued.
    pub letter_hash: String,
}

/// The letter's text as written.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LetterTextOut {
    pub number: String,
    pub title: String,
    pub basis: Vec<String>,
    pub date: String,
    pub organiser: String,
    pub panel: Vec<PanelMember>,
    pub method: String,
    pub situation: String,
    pub opinions: String,
    pub problems: String,
    /// `pass`, `pass_after_rectification` or `fail`.
    pub conclusion: String,
    /// 同意通过 / 限期整改后通过 / 不予通过.
    pub conclusion_name: String,
    /// The content hash of the assembled record the letter was drafted from.
    pub record_hash: String,
}

/// A panel member.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PanelMember {
    pub user: Uuid,
    pub name: String,
    pub specialty: String,
    pub specialty_name: String,
    pub title: String,
    pub employer: String,
}

/// One expert's word.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpinionRecord {
    pub user: Uuid,
    pub name: String,
    pub specialty: Option<String>,
    /// `sign` or `decline`.
    pub decision: String,
    pub reason: String,
    /// Device time, ms since the epoch.
    pub signed_at_ms: i64,
    pub device: Uuid,
    /// The letter hash the word is about.
    pub letter_hash: String,
    /// Whether it is about the current text (else superseded).
    pub current: bool,
    /// Whether the ECDSA signature verifies with the device's enrolled key.
    pub signature_valid: bool,
    /// Whether the signer is on the panel.
    pub on_panel: bool,
    /// `{sha256, size}` of the handwritten strokes, null for a decline.
    pub strokes: serde_json::Value,
    /// The element as carried by sync (for offline verification).
    pub value: serde_json::Value,
}

/// A required specialty and who of the panel signed the current text for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpecialtyStatus {
    pub code: String,
    pub name: String,
    pub signed_by: Vec<String>,
}

/// `draft` → the letter of round `round_id`, for the county office.
pub async fn draft(
    state: &AppState,
    caller: &AuthUser,
    round_id: Uuid,
    text: LetterText,
) -> Result<AssembledLetter> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let record = passed_record(state, caller, round_id).await?;
    let round = state.store.get_round(round_id).await?;
    let mine = state.store.get_mine(round.mine_id).await?;
    let values = text_values(state, &text, &mine.name, &record.content_hash).await?;
    let id = EntityId(letter_id(round_id));
    let mut fields: BTreeMap<String, Value> = BTreeMap::from([
        (ROUND_FIELD.to_owned(), Value::from(round_id.to_string())),
        (RECORD_FIELD.to_owned(), Value::from(round_id.to_string())),
        ("mine_id".to_owned(), Value::from(mine.id.to_string())),
        ("mine_name".to_owned(), Value::from(mine.name.clone())),
        (
            "licence_no".to_owned(),
            Value::from(mine.licence_no.clone()),
        ),
        (
            SCOPE_FIELD.to_owned(),
            Value::from(mine.township_id.to_string()),
        ),
        (STATUS_FIELD.to_owned(), Value::from(DRAFT)),
        (ISSUED_FIELD.to_owned(), Value::Null),
        ("edited_by".to_owned(), editor(state, caller).await?),
    ]);
    fields.extend(values);
    let now = state.clock.now_ms();
    let existed = AtomicU8::new(0);
    state
        .store
        .sync_server_write(
            &[id],
            now,
            Box::new(|loaded| {
                if loaded.entities.contains_key(&id) {
                    existed.store(1, Ordering::SeqCst);
                    return Default::default();
                }
                let create = OpBody::Create {
                    entity_type: LETTER_TYPE.to_owned(),
                    fields,
                };
                server_ops::apply(
                    loaded.entities,
                    id,
                    vec![create],
                    loaded.next_commit_seq,
                    now,
                )
            }),
        )
        .await?;
    if existed.load(Ordering::SeqCst) == 1 {
        return Err(AppError::Conflict {
            code: ErrorCode::LetterExists,
            message: format!(
                "round {round_id} already has its opinion letter ({}); edit it instead",
                id.0
            ),
        });
    }
    assemble(state, caller, id.0).await
}

/// `PUT` → a new version of the text. Every word given so far stops counting.
pub async fn update(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    text: LetterText,
) -> Result<AssembledLetter> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let current = load(state, caller, id).await?;
    refuse_issued(&current)?;
    let round_id = round_of(&current)?;
    let record = passed_record(state, caller, round_id).await?;
    let mine_name = current
        .value("mine_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut values = text_values(state, &text, &mine_name, &record.content_hash).await?;
    let editor = editor(state, caller).await?;
    let now = state.clock.now_ms();
    let issued = AtomicU8::new(0);
    let entity = EntityId(id);
    state
        .store
        .sync_server_write(
            &[entity],
            now,
            Box::new(|loaded| {
                let Some(letter) = loaded.entities.get(&entity) else {
                    return Default::default();
                };
                if is_issued(letter) {
                    issued.store(1, Ordering::SeqCst);
                    return Default::default();
                }
                let mut bodies = server_ops::changed_fields(Some(letter), values.clone());
                if !bodies.is_empty() {
                    values.clear();
                    values.insert("edited_by".to_owned(), editor);
                    bodies.extend(server_ops::changed_fields(Some(letter), values));
                }
                server_ops::apply(loaded.entities, entity, bodies, loaded.next_commit_seq, now)
            }),
        )
        .await?;
    if issued.load(Ordering::SeqCst) == 1 {
        return Err(issued_error());
    }
    assemble(state, caller, id).await
}

/// `issue` → the letter is final: its text and words never change again.
pub async fn issue(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<AssembledLetter> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let doc = assemble(state, caller, id).await?;
    if doc.status == ISSUED {
        return Err(issued_error());
    }
    if !doc.issuable {
        return Err(AppError::Conflict {
            code: ErrorCode::LetterIncomplete,
            message: format!(
                "the letter cannot be issued yet: {}",
                doc.blocking.join("；")
            ),
        });
    }
    let now = state.clock.now_ms();
    let issued = Value::Map(BTreeMap::from([
        ("at_ms".to_owned(), Value::Int(now)),
        ("by".to_owned(), Value::from(caller.id().to_string())),
        (
            "letter_hash".to_owned(),
            Value::from(doc.letter_hash.clone()),
        ),
    ]));
    let values = BTreeMap::from([
        (STATUS_FIELD.to_owned(), Value::from(ISSUED)),
        (ISSUED_FIELD.to_owned(), issued),
    ]);
    // The words and text the decision was made on must still be the letter's.
    let seen_hash = doc.letter_hash.clone();
    let seen_words = doc.opinions.len();
    let changed = AtomicU8::new(0);
    let entity = EntityId(id);
    state
        .store
        .sync_server_write(
            &[entity],
            now,
            Box::new(|loaded| {
                let Some(letter) = loaded.entities.get(&entity) else {
                    return Default::default();
                };
                let words = letter
                    .sets
                    .get(OPINIONS_FIELD)
                    .map_or(0, |s| s.elements.len());
                let hash = sync_protocol::section_hash(letter, TEXT_SECTION).ok();
                if is_issued(letter) || words != seen_words || hash.as_deref() != Some(&seen_hash) {
                    changed.store(1, Ordering::SeqCst);
                    return Default::default();
                }
                let bodies = server_ops::changed_fields(Some(letter), values);
                server_ops::apply(loaded.entities, entity, bodies, loaded.next_commit_seq, now)
            }),
        )
        .await?;
    if changed.load(Ordering::SeqCst) == 1 {
        return Err(AppError::Conflict {
            code: ErrorCode::LetterIncomplete,
            message: "the letter changed while it was being issued (a word arrived or it was \
                      edited or issued); review it and issue again"
                .into(),
        });
    }
    assemble(state, caller, id).await
}

/// The letter of round `round_id`.
pub async fn of_round(
    state: &AppState,
    caller: &AuthUser,
    round_id: Uuid,
) -> Result<AssembledLetter> {
    assemble(state, caller, letter_id(round_id)).await
}

/// Whether round `round_id` has an issued letter with the conclusion 同意通过 (the workflow's
/// evidence that the experts accepted the mine).
pub async fn experts_accepted(state: &AppState, round_id: Uuid) -> Result<bool> {
    let id = EntityId(letter_id(round_id));
    let Some(letter) = state.store.sync_entities(&[id]).await?.pop() else {
        return Ok(false);
    };
    Ok(is_issued(&letter)
        && !letter.tombstoned
        && letter
            .value(&text_key("conclusion"))
            .and_then(Value::as_str)
            == Some(LetterConclusion::Pass.code()))
}

/// The letter as one document, for a caller who may see the mine.
pub async fn assemble(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<AssembledLetter> {
    Ok(assemble_with_entity(state, caller, id).await?.0)
}

/// [`assemble`], with the letter's sync entity as it was read for the document (an archive
/// keeps both, so they must be the same read).
pub async fn assemble_with_entity(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> Result<(AssembledLetter, EntityState)> {
    let letter = load(state, caller, id).await?;
    let round_id = round_of(&letter)?;
    let record = records::assemble(state, caller, round_id).await?;
    let str_of = |key: &str| {
        letter
            .value(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let text_str = |name: &str| str_of(&text_key(name));
    let specialties = state.store.list_specialties().await?;
    let specialty_name = |code: &str| {
        specialties
            .iter()
            .find(|s| s.code == code)
            .map_or_else(|| code.to_owned(), |s| s.name.clone())
    };
    let panel: Vec<PanelMember> = match letter.value(&text_key("panel")) {
        Some(Value::List(members)) => members
            .iter()
            .filter_map(|m| match m {
                Value::Map(m) => {
                    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
                    Some(PanelMember {
                        user: Uuid::parse_str(s("user")).ok()?,
                        name: s("name").to_owned(),
                        specialty: s("specialty").to_owned(),
                        specialty_name: specialty_name(s("specialty")),
                        title: s("title").to_owned(),
                        employer: s("employer").to_owned(),
                    })
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let letter_hash = sync_protocol::section_hash(&letter, TEXT_SECTION)
        .map_err(|e| AppError::Internal(format!("letter {id} hash: {e}")))?;
    let mut keys = Keys::new(state);
    let mut opinions = Vec::new();
    let mut tagged: Vec<(u64, &sync_protocol::SetElement)> = letter
        .sets
        .get(OPINIONS_FIELD)
        .map(|s| {
            s.elements
                .values()
                .map(|e| (first_tag(e), e))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    tagged.sort_by_key(|(t, _)| *t);
    for (_, element) in tagged {
        let Ok(word) = signature::letter_opinion(&element.value) else {
            continue;
        };
        let signature_valid = match keys.get(word.device.0).await? {
            Some(key) => signature::DeviceSignature::from_value(&element.value)
                .and_then(|s| s.verify(&key))
                .is_ok(),
            None => false,
        };
        let user = Uuid::parse_str(&word.user).unwrap_or_default();
        opinions.push(OpinionRecord {
            user,
            name: word.name.clone(),
            specialty: word.specialty.clone(),
            decision: if word.signs { "sign" } else { "decline" }.to_owned(),
            reason: word.reason.clone(),
            signed_at_ms: word.signed_at_ms,
            device: word.device.0,
            current: word.content_hash == letter_hash,
            letter_hash: word.content_hash.clone(),
            signature_valid,
            on_panel: panel.iter().any(|p| p.user == user),
            strokes: word.strokes.as_ref().map_or(
                serde_json::Value::Null,
                |(h, n)| serde_json::json!({"sha256": h, "size": n}),
            ),
            value: to_json(&element.value),
        });
    }
    let counting = |o: &&OpinionRecord| o.current && o.signature_valid && o.on_panel;
    let specialty_status: Vec<SpecialtyStatus> = specialties
        .iter()
        .map(|s| SpecialtyStatus {
            code: s.code.clone(),
            name: s.name.clone(),
            signed_by: opinions
                .iter()
                .filter(counting)
                .filter(|o| o.decision == "sign" && o.specialty.as_deref() == Some(&s.code))
                .map(|o| o.name.clone())
                .collect(),
        })
        .collect();
    let status = str_of(STATUS_FIELD);
    let issued = match letter.value(ISSUED_FIELD) {
        Some(Value::Map(m)) => {
            let by = m
                .get("by")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .unwrap_or_default();
            let by_name = match state.store.get_user(by).await {
                Ok(u) => u.display_name,
                Err(StoreError::NotFound) => String::new(),
                Err(e) => return Err(e.into()),
            };
            Some(IssuedRecord {
                at_ms: match m.get("at_ms") {
                    Some(Value::Int(n)) => *n,
                    _ => 0,
                },
                by,
                by_name,
                letter_hash: m
                    .get("letter_hash")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        }
        _ => None,
    };
    let record_hash = text_str("record_hash");
    let mut blocking = Vec::new();
    if status != ISSUED {
        for s in specialty_status.iter().filter(|s| s.signed_by.is_empty()) {
            blocking.push(format!("{}专业尚无专家签字", s.name));
        }
        for o in opinions
            .iter()
            .filter(counting)
            .filter(|o| o.decision == "decline")
        {
            blocking.push(format!("{}拒签：{}", o.name, o.reason));
        }
        if record.conclusion != "passed" || !record.fully_signed {
            blocking.push(format!(
                "验收记录{}，未全部有效签字或未达标",
                record.conclusion_name
            ));
        }
        if record.content_hash != record_hash {
            blocking.push("验收记录在起草意见书后有变化，请更新意见书后重新签字".to_owned());
        }
    }
    let conclusion = text_str("conclusion");
    let mut doc = AssembledLetter {
        letter_id: id,
        round_id,
        mine_id: Uuid::parse_str(&str_of("mine_id")).unwrap_or_default(),
        mine_name: str_of("mine_name"),
        licence_no: str_of("licence_no"),
        issuable: status != ISSUED && blocking.is_empty(),
        status,
        issued,
        text: LetterTextOut {
            number: text_str("number"),
            title: text_str("title"),
            basis: match letter.value(&text_key("basis")) {
                Some(Value::List(lines)) => lines
                    .iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            },
            date: text_str("date"),
            organiser: text_str("organiser"),
            panel,
            method: text_str("method"),
            situation: text_str("situation"),
            opinions: text_str("opinions"),
            problems: text_str("problems"),
            conclusion_name: LetterConclusion::from_code(&conclusion)
                .map_or("", LetterConclusion::name_zh)
                .to_owned(),
            conclusion,
            record_hash,
        },
        letter_hash,
        opinions,
        specialties: specialty_status,
        blocking,
        record_hash_now: record.content_hash,
        content_hash: String::new(),
    };
    doc.content_hash = records::content_hash(&doc)?;
    Ok((doc, letter))
}

/// The commit order of an element: its first add's op id (UUID v7 from the device, so roughly
/// the device's time) stands in; the words are few.
fn first_tag(element: &sync_protocol::SetElement) -> u64 {
    element
        .tags
        .iter()
        .next()
        .map_or(0, |t| (t.0.as_u128() >> 64) as u64)
}

/// The letter entity, for a caller who may see its mine.
async fn load(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<EntityState> {
    let letter = state
        .store
        .sync_entities(&[EntityId(id)])
        .await?
        .pop()
        .filter(|l| l.entity_type == LETTER_TYPE && !l.tombstoned)
        .ok_or(AppError::NotFound("letter"))?;
    let mine = letter
        .value("mine_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| AppError::Internal(format!("letter {id} names no mine")))?;
    visible_mine(state, caller, mine)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("letter"),
            e => e,
        })?;
    Ok(letter)
}

fn round_of(letter: &EntityState) -> Result<Uuid> {
    letter
        .value(ROUND_FIELD)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| AppError::Internal(format!("letter {} names no round", letter.id.0)))
}

fn is_issued(letter: &EntityState) -> bool {
    letter.value(STATUS_FIELD).and_then(Value::as_str) == Some(ISSUED)
}

fn refuse_issued(letter: &EntityState) -> Result<()> {
    if is_issued(letter) {
        Err(issued_error())
    } else {
        Ok(())
    }
}

fn issued_error() -> AppError {
    AppError::Conflict {
        code: ErrorCode::LetterIssued,
        message: "the letter is issued; nothing changes it any more".into(),
    }
}

/// The assembled record of a 注销 round that passed and is fully signed: what a letter is
/// drafted from.
async fn passed_record(
    state: &AppState,
    caller: &AuthUser,
    round_id: Uuid,
) -> Result<records::AssembledRecord> {
    let record = records::assemble(state, caller, round_id).await?;
    if record.disposition != Disposition::Cancel.code() {
        return Err(AppError::Conflict {
            code: ErrorCode::RecordNotPassed,
            message: format!(
                "an opinion letter is written for a 注销 mine; this round's disposition is {}",
                record.disposition_name
            ),
        });
    }
    if record.conclusion != "passed" || !record.fully_signed {
        return Err(AppError::Conflict {
            code: ErrorCode::RecordNotPassed,
            message: format!(
                "the record is {}{}; a letter is drafted from a record that passed with every \
                 required section validly signed",
                record.conclusion_name,
                if record.fully_signed {
                    ""
                } else {
                    " and not fully signed"
                }
            ),
        });
    }
    Ok(record)
}

/// `{user, name, at_ms}` of the person writing the letter (header, outside the signed text).
async fn editor(state: &AppState, caller: &AuthUser) -> Result<Value> {
    let name = match state.store.get_user(caller.id()).await {
        Ok(u) => u.display_name,
        Err(StoreError::NotFound) => String::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(Value::Map(BTreeMap::from([
        ("user".to_owned(), Value::from(caller.id().to_string())),
        ("name".to_owned(), Value::from(name)),
        ("at_ms".to_owned(), Value::Int(state.clock.now_ms())),
    ])))
}

fn check_text(field: &str, text: &str, required: bool) -> Result<()> {
    if required && text.trim().is_empty() {
        return Err(AppError::invalid_field(field, "must not be empty"));
    }
    if text.chars().count() > TEXT_MAX_CHARS {
        return Err(AppError::invalid_field(
            field,
            format!("at most {TEXT_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The text section's fields for `text`, checked: the panel members are enabled experts with a
/// specialty, each once, at least [`PANEL_MIN`], covering every specialty.
async fn text_values(
    state: &AppState,
    text: &LetterText,
    mine_name: &str,
    record_hash: &str,
) -> Result<BTreeMap<String, Value>> {
    check_text("number", &text.number, true)?;
    if let Some(title) = &text.title {
        check_text("title", title, true)?;
    }
    if text.basis.is_empty() || text.basis.len() > LIST_MAX {
        return Err(AppError::invalid_field(
            "basis",
            format!("one to {LIST_MAX} lines"),
        ));
    }
    for (i, line) in text.basis.iter().enumerate() {
        check_text(&format!("basis[{i}]"), line, true)?;
    }
    check_text("organiser", &text.organiser, true)?;
    check_text("method", &text.method, true)?;
    check_text("situation", &text.situation, true)?;
    check_text("opinions", &text.opinions, true)?;
    check_text("problems", &text.problems, false)?;
    if text.date > state.clock.today() {
        return Err(AppError::invalid_field(
            "date",
            "the acceptance date may not lie in the future",
        ));
    }
    if text.panel.len() < PANEL_MIN || text.panel.len() > LIST_MAX {
        return Err(AppError::invalid_field(
            "panel",
            format!("{PANEL_MIN} to {LIST_MAX} experts"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut covered = BTreeSet::new();
    let mut panel = Vec::new();
    for (i, member) in text.panel.iter().enumerate() {
        let field = format!("panel[{i}]");
        if !seen.insert(member.user) {
            return Err(AppError::invalid_field(
                &field,
                "this expert is named twice",
            ));
        }
        check_text(&format!("{field}.title"), &member.title, true)?;
        check_text(&format!("{field}.employer"), &member.employer, true)?;
        let user = match state.store.get_user(member.user).await {
            Ok(u) => u,
            Err(StoreError::NotFound) => {
                return Err(AppError::invalid_field(&field, "no such user"));
            }
            Err(e) => return Err(e.into()),
        };
        let specialty = match (&user.role, &user.specialty, user.disabled) {
            (Role::Expert, Some(s), false) => s.clone(),
            (_, _, true) => {
                return Err(AppError::invalid_field(&field, "this account is disabled"));
            }
            _ => {
                return Err(AppError::invalid_field(
                    &field,
                    format!("{} is not an expert with a specialty", user.display_name),
                ));
            }
        };
        covered.insert(specialty.clone());
        panel.push(Value::Map(BTreeMap::from([
            ("user".to_owned(), Value::from(user.id.to_string())),
            ("name".to_owned(), Value::from(user.display_name)),
            ("specialty".to_owned(), Value::from(specialty)),
            ("title".to_owned(), Value::from(member.title.trim())),
            ("employer".to_owned(), Value::from(member.employer.trim())),
        ])));
    }
    let missing: Vec<String> = state
        .store
        .list_specialties()
        .await?
        .into_iter()
        .filter(|s| !covered.contains(&s.code))
        .map(|s| s.name)
        .collect();
    if !missing.is_empty() {
        return Err(AppError::invalid_field(
            "panel",
            format!("the panel has no expert of {}", missing.join("、")),
        ));
    }
    let title = text
        .title
        .clone()
        .unwrap_or_else(|| format!("{mine_name}生态修复验收合格意见书"));
    let s = |v: &str| Value::from(v.trim());
    Ok(BTreeMap::from([
        (text_key("number"), s(&text.number)),
        (text_key("title"), s(&title)),
        (
            text_key("basis"),
            Value::List(text.basis.iter().map(|l| s(l)).collect()),
        ),
        (
            text_key("date"),
            Value::from(text.date.format("%Y-%m-%d").to_string()),
        ),
        (text_key("organiser"), s(&text.organiser)),
        (text_key("panel"), Value::List(panel)),
        (text_key("method"), s(&text.method)),
        (text_key("situation"), s(&text.situation)),
        (text_key("opinions"), s(&text.opinions)),
        (text_key("problems"), s(&text.problems)),
        (text_key("conclusion"), Value::from(text.conclusion.code())),
        (text_key("record_hash"), Value::from(record_hash)),
    ]))
}
