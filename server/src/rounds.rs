//! Acceptance rounds: one visit to a mine = one record.
//!
//! Opening a round creates the record as a sync entity (`acceptance_record`) whose header names
//! the mine, its township (visibility), the template (`id@version`) and the disposition; the
//! departments fill their sections offline through the sync protocol, where every answer is
//! checked against that template version ([`TemplatePolicy`]); the verdict is computed by the
//! template's rule from the record as it stands. A re-inspection is the mine's next round and
//! links to the previous one.
//!
//! Templates are immutable per `id@version`, so parsed templates are cached in process memory
//! (a cache of immutable data: every replica fills its own from the store).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, LazyLock, RwLock},
};

use serde::Serialize;
use sync_protocol::{
    AllowAll, DeviceId, EntityId, EntityState, Hlc, MergeContext, Op, OpBody, OpId, Outcome,
    Reject, RejectCode, Value,
};
use uuid::Uuid;

use crate::{
    AppState,
    acceptance::{
        Disposition,
        template::{self, AnswerError, FailureConclusion, Template, Verdict},
    },
    auth::AuthUser,
    error::{AppError, Result},
    mines,
    store::{AcceptanceRound, Role, StoreError},
    sync::SCOPE_FIELD,
    workflow::Stage,
};

/// Header fields of a record made by a round.
pub const TEMPLATE_FIELD: &str = "template";
pub const DISPOSITION_FIELD: &str = "disposition";

/// Header fields set when a round opens; not writable through sync.
pub const RESERVED_HEADER: &[&str] = &[
    "mine_id",
    "licence_no",
    SCOPE_FIELD,
    TEMPLATE_FIELD,
    DISPOSITION_FIELD,
    "round_no",
    "previous_round",
];

/// The device id under which the server itself creates records (no device's series).
pub const SERVER_DEVICE: DeviceId = DeviceId(Uuid::nil());

static CACHE: LazyLock<RwLock<HashMap<String, Arc<Template>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

fn cached(template_ref: &str) -> Option<Arc<Template>> {
    CACHE.read().ok()?.get(template_ref).cloned()
}

fn cache(template: Template) -> Arc<Template> {
    let template = Arc::new(template);
    if let Ok(mut c) = CACHE.write() {
        c.insert(template.reference(), template.clone());
    }
    template
}

/// Parse every stored template into the cache (at start: the sync transaction only reads the
/// cache). A stored template that no longer parses is reported and skipped.
pub async fn warm_cache(store: &dyn crate::store::Store) -> crate::store::StoreResult<usize> {
    let mut n = 0;
    for (tref, source) in store.list_templates().await? {
        match Template::parse(&source) {
            Ok(t) => {
                cache(t);
                n += 1;
            }
            Err(e) => {
                tracing::error!(template = ?tref, error = ?e.to_string(), "stored template is invalid")
            }
        }
    }
    Ok(n)
}

/// The parsed template `template_ref`, from the cache, the built-in default, or the store.
pub async fn template(state: &AppState, template_ref: &str) -> Result<Arc<Template>> {
    if let Some(t) = cached(template_ref) {
        return Ok(t);
    }
    if template_ref == crate::config::DEFAULT_TEMPLATE_REF {
        return default_template();
    }
    let source = match state.store.get_template_source(template_ref).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("template")),
        Err(e) => return Err(e.into()),
    };
    let parsed = Template::parse(&source)
        .map_err(|e| AppError::Internal(format!("stored template {template_ref}: {e}")))?;
    Ok(cache(parsed))
}

/// The built-in default template (`server/templates/default-2023.toml`).
fn default_template() -> Result<Arc<Template>> {
    let t = Template::default_2023()
        .map_err(|e| AppError::Internal(format!("built-in template is invalid: {e}")))?;
    if let Some(c) = cached(&t.reference()) {
        return Ok(c);
    }
    Ok(cache(t))
}

/// Templates of the touched records, for checking answers inside the sync transaction.
#[derive(Debug, Clone, Default)]
pub struct TemplatePolicy {
    by_entity: HashMap<EntityId, (Arc<Template>, Disposition)>,
    missing: Vec<EntityId>,
}

impl TemplatePolicy {
    /// The templates of the loaded records (by their header), from the cache. Runs inside the
    /// sync transaction, so it must not wait on the store: the built-in template is always
    /// available, and every other template is cached when its first round opens on this replica
    /// or when [`template`] loads it. A record whose template is not at hand is refused with a
    /// reason rather than left unchecked.
    pub fn from_states<'a>(entities: impl IntoIterator<Item = &'a EntityState>) -> Self {
        let mut by_entity = HashMap::new();
        let mut missing = Vec::new();
        for e in entities {
            let (Some(tref), Some(disposition)) = (
                e.value(TEMPLATE_FIELD).and_then(Value::as_str),
                e.value(DISPOSITION_FIELD)
                    .and_then(Value::as_str)
                    .and_then(Disposition::from_code),
            ) else {
                continue;
            };
            let template =
                cached(tref).or_else(|| default_template().ok().filter(|t| t.reference() == tref));
            match template {
                Some(t) => {
                    by_entity.insert(e.id, (t, disposition));
                }
                None => missing.push(e.id),
            }
        }
        Self { by_entity, missing }
    }

    /// Check a set/resolve of `field` against the record's template; header and non-template
    /// sections (e.g. `experts`) are left to the section rights.
    pub fn check(&self, op: &Op) -> std::result::Result<(), Reject> {
        if self.missing.contains(&op.entity) {
            return Err(Reject::new(
                RejectCode::InvalidOp,
                "this record's template is not loaded on the server; try again later",
            ));
        }
        let Some((template, disposition)) = self.by_entity.get(&op.entity) else {
            return Ok(());
        };
        // The header fields a round wrote identify the record; nobody changes them.
        if let Some(field) = op.body.field()
            && RESERVED_HEADER.contains(&field)
        {
            return Err(Reject::new(
                RejectCode::Forbidden,
                format!("{field} identifies this acceptance record and cannot be changed"),
            ));
        }
        let (field, value) = match &op.body {
            OpBody::Set { field, value, .. } | OpBody::Resolve { field, value, .. } => {
                (field, value)
            }
            _ => return Ok(()),
        };
        let section = sync_protocol::section_of(field);
        if template::Department::from_code(section).is_none() {
            return Ok(());
        }
        match template.validate_answer(*disposition, field, value) {
            Ok(_) => Ok(()),
            Err(
                e @ (AnswerError::MalformedKey { .. }
                | AnswerError::UnknownField { .. }
                | AnswerError::NotApplicable { .. }),
            ) => Err(Reject::new(RejectCode::UnknownField, e.to_string())),
            Err(e) => Err(Reject::new(RejectCode::InvalidOp, e.to_string())),
        }
    }
}

/// Open the next round of a mine: creates its record in the sync feed.
pub async fn open(state: &AppState, caller: &AuthUser, mine_id: Uuid) -> Result<AcceptanceRound> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let mine = mines::get_visible(state, caller, mine_id).await?;
    let Some(disposition) = mine.facts.disposition else {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::NoDisposition,
            message: "the mine has no approved disposition yet".into(),
        });
    };
    if !matches!(
        mine.facts.stage,
        Stage::DispositionApproved
            | Stage::ClosureDecided
            | Stage::PlanCompiled
            | Stage::PreliminaryPassed
            | Stage::RectificationRequired
    ) {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::NotInspectable,
            message: format!(
                "a mine that is {} is not inspected",
                mine.facts.stage.name_zh()
            ),
        });
    }
    let template = template(state, &state.settings.acceptance_template).await?;
    let template_ref = template.reference();
    let template_source = if template_ref == crate::config::DEFAULT_TEMPLATE_REF {
        crate::acceptance::template::DEFAULT_2023_TOML.to_owned()
    } else {
        state.store.get_template_source(&template_ref).await?
    };
    let now = state.clock.now_ms();
    let round = AcceptanceRound {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        round_no: 0,
        previous_round_id: None,
        template_ref: template_ref.clone(),
        disposition: disposition.code().into(),
        created_by: Some(caller.id()),
        created_at: now,
    };
    let mine_name = mine.name.clone();
    let licence = mine.licence_no.clone();
    let township = mine.township_id;
    let make = Box::new(move |round: &AcceptanceRound, commit_seq: u64| {
        let mut fields = BTreeMap::new();
        fields.insert("mine_id".to_owned(), Value::from(round.mine_id.to_string()));
        fields.insert("mine_name".to_owned(), Value::from(mine_name));
        fields.insert("licence_no".to_owned(), Value::from(licence));
        fields.insert(SCOPE_FIELD.to_owned(), Value::from(township.to_string()));
        fields.insert(TEMPLATE_FIELD.to_owned(), Value::from(template_ref));
        fields.insert(
            DISPOSITION_FIELD.to_owned(),
            Value::from(round.disposition.clone()),
        );
        fields.insert("round_no".to_owned(), Value::from(round.round_no));
        fields.insert(
            "previous_round".to_owned(),
            round
                .previous_round_id
                .map_or(Value::Null, |p| Value::from(p.to_string())),
        );
        let op = Op {
            id: OpId(Uuid::now_v7()),
            device: SERVER_DEVICE,
            seq: 0,
            hlc: Hlc::new(u64::try_from(now).unwrap_or(0), 0),
            entity: EntityId(round.id),
            body: OpBody::Create {
                entity_type: crate::sync::ENTITY_TYPES[0].to_owned(),
                fields,
            },
        };
        match sync_protocol::merge(
            None,
            &op,
            &MergeContext {
                policy: &AllowAll,
                commit_seq,
            },
        ) {
            Outcome::Applied(effect) => Ok((
                effect.state,
                sync_protocol::Change {
                    commit_seq,
                    entity: op.entity,
                    entity_type: crate::sync::ENTITY_TYPES[0].to_owned(),
                    op: op.id,
                    device: op.device,
                    hlc: op.hlc,
                    body: effect.change,
                },
            )),
            other => Err(StoreError::Other(format!(
                "creating a round record did not apply: {other:?}"
            ))),
        }
    });
    let round = state
        .store
        .create_round(round, &template_source, Some(township), make)
        .await?;
    Ok(round)
}

/// A round with its record's verdict as it stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoundView {
    #[serde(flatten)]
    pub round: AcceptanceRound,
    /// Sections signed so far.
    pub signed_sections: Vec<String>,
    /// Fields waiting for a conflict resolution.
    pub conflicts: Vec<String>,
    #[schema(value_type = Object)]
    pub verdict: Verdict,
}

pub async fn view(state: &AppState, caller: &AuthUser, round_id: Uuid) -> Result<RoundView> {
    let round = match state.store.get_round(round_id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("round")),
        Err(e) => return Err(e.into()),
    };
    // Visibility follows the mine.
    mines::get_visible(state, caller, round.mine_id).await?;
    let template = template(state, &round.template_ref).await?;
    let disposition = Disposition::from_code(&round.disposition)
        .ok_or_else(|| AppError::Internal(format!("round {} disposition", round.id)))?;
    let record = state
        .store
        .sync_entities(&[EntityId(round.id)])
        .await?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound("record"))?;
    let values = record
        .fields
        .iter()
        .filter(|(k, _)| k.contains('/'))
        .map(|(k, f)| (k.as_str(), &f.value));
    let (answers, _refused) = template.collect_answers(disposition, values);
    let verdict = template.verdict(disposition, &answers, FailureConclusion::RectifyByDeadline);
    Ok(RoundView {
        signed_sections: record.signatures.keys().cloned().collect(),
        conflicts: record
            .fields
            .iter()
            .filter(|(_, f)| f.conflict.is_some())
            .map(|(k, _)| k.clone())
            .collect(),
        round,
        verdict,
    })
}

pub async fn list(
    state: &AppState,
    caller: &AuthUser,
    mine_id: Uuid,
) -> Result<Vec<AcceptanceRound>> {
    mines::get_visible(state, caller, mine_id).await?;
    Ok(state.store.list_rounds(mine_id).await?)
}
