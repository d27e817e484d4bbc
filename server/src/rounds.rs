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

use std::collections::BTreeMap;

use sync_protocol::{AllowAll, EntityId, Hlc, MergeContext, Op, OpBody, OpId, Outcome, Value};
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{
        AcceptanceRound, Disposition, Role, Stage,
        record::{
            DISPOSITION_FIELD, PURPOSE_FIELD, SCOPE_FIELD, SERVER_DEVICE, SPOT_CHECK,
            TEMPLATE_FIELD,
        },
    },
    rules::template::{FailureConclusion, Verdict},
    store::StoreError,
};

/// Open the next round of a mine: creates its record in the sync feed.
pub async fn open(state: &AppState, caller: &AuthUser, mine_id: Uuid) -> Result<AcceptanceRound> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let mine = visible_mine(state, caller, mine_id).await?;
    let Some(disposition) = mine.facts.disposition else {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::NoDisposition,
            message: "the mine has no approved disposition yet".into(),
        });
    };
    // After the licence is cancelled, the restored land is spot-checked during its maintenance
    // period (管护期).
    let spot_check = mine.facts.stage == Stage::LicenceCancelled
        && in_maintenance(state, &mine, state.clock.today()).await?;
    if !spot_check
        && !matches!(
            mine.facts.stage,
            Stage::DispositionApproved
                | Stage::ClosureDecided
                | Stage::PlanCompiled
                | Stage::PreliminaryPassed
                | Stage::RectificationRequired
        )
    {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::NotInspectable,
            message: format!(
                "a mine that is {} is not inspected",
                mine.facts.stage.name_zh()
            ),
        });
    }
    let template =
        crate::sync::templates::template(state, &state.settings.acceptance_template).await?;
    let template_ref = template.reference();
    let template_source = if template_ref == crate::config::DEFAULT_TEMPLATE_REF {
        crate::rules::template::DEFAULT_2023_TOML.to_owned()
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
        if spot_check {
            fields.insert(PURPOSE_FIELD.to_owned(), Value::from(SPOT_CHECK));
        }
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
                entity_type: crate::model::record::ENTITY_TYPES[0].to_owned(),
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
                    entity_type: crate::model::record::ENTITY_TYPES[0].to_owned(),
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

/// Whether a cancelled mine is in its maintenance period on `today`, by its campaign.
async fn in_maintenance(
    state: &AppState,
    mine: &crate::model::Mine,
    today: chrono::NaiveDate,
) -> Result<bool> {
    use crate::rules::campaign::{Campaign, DEFAULT_CAMPAIGN_ID, SHANGGAO_2023_TOML};
    let source = if mine.campaign_id == DEFAULT_CAMPAIGN_ID {
        SHANGGAO_2023_TOML.to_owned()
    } else {
        state.store.get_campaign(&mine.campaign_id).await?.1
    };
    let campaign = Campaign::parse(&source)
        .map_err(|e| AppError::Internal(format!("campaign {}: {e}", mine.campaign_id)))?;
    Ok(crate::rules::workflow::in_maintenance(
        &mine.facts,
        &campaign,
        today,
    ))
}

/// A round with its record's verdict as it stands.
#[derive(Debug, Clone)]
pub struct RoundState {
    pub round: AcceptanceRound,
    /// Sections signed so far.
    pub signed_sections: Vec<String>,
    /// Fields waiting for a conflict resolution.
    pub conflicts: Vec<String>,
    pub verdict: Verdict,
}

pub async fn view(state: &AppState, caller: &AuthUser, round_id: Uuid) -> Result<RoundState> {
    let round = match state.store.get_round(round_id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("round")),
        Err(e) => return Err(e.into()),
    };
    // Visibility follows the mine.
    visible_mine(state, caller, round.mine_id).await?;
    let template = crate::sync::templates::template(state, &round.template_ref).await?;
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
    Ok(RoundState {
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
    visible_mine(state, caller, mine_id).await?;
    Ok(state.store.list_rounds(mine_id).await?)
}
