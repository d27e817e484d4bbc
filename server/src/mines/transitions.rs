//! Workflow steps: a transition checked by the rules, recorded with its audit event, and the
//! cancellation announcement it may publish.

use chrono::NaiveDate;
use serde::Deserialize;
use uuid::Uuid;

use super::campaign;
use crate::{
    AppState,
    error::{AppError, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{AcceptanceVerdict, CaseRecord, Mine, MineEvent, Stage},
    rules::{
        campaign::Campaign,
        workflow::{self, Actor, Refusal, Transition},
    },
    store::StoreError,
};

/// A transition request: the step plus why.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TransitionRequest {
    #[serde(flatten)]
    pub transition: Transition,
    /// Why (kept in the audit trail).
    #[serde(default)]
    pub reason: String,
    /// The mine version the caller saw; a stale one gets 409 instead of acting on old facts.
    #[serde(default)]
    pub version: Option<i64>,
    /// For `record_acceptance`: the round whose record decides it. The verdict must agree with
    /// the template's rule over that record, every required section must be signed, and for a
    /// 注销 mine the experts' letter counts as signed only when the record's `experts` section
    /// is. Without it the outcome is taken as entered (e.g. from a paper record).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid,
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub round_id: Option<Uuid>,
}

/// Apply a workflow transition and record it.
pub async fn transition(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    req: TransitionRequest,
) -> Result<Mine> {
    let mine = visible_mine(state, caller, id).await?;
    if req.version.is_some_and(|v| v != mine.version) {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::StaleVersion,
            message: "the mine changed since you loaded it; reload and try again".into(),
        });
    }
    let campaign = campaign(state, &mine.campaign_id).await?;
    let today = state.clock.today();
    let actor = Actor {
        role: caller.role(),
        township: caller.claims.town,
    };
    let transition = match (&req.transition, req.round_id) {
        (Transition::RecordAcceptance { verdict }, Some(round_id)) => {
            Transition::RecordAcceptance {
                verdict: checked_against_round(state, caller, &mine, round_id, verdict).await?,
            }
        }
        (_, Some(_)) => {
            return Err(AppError::invalid_field(
                "round_id",
                "only record_acceptance refers to a round",
            ));
        }
        (t, None) => t.clone(),
    };
    let next =
        workflow::apply(&mine.facts, &transition, actor, today, &campaign).map_err(
            |r| match r {
                Refusal::Forbidden(m) => AppError::Forbidden(m),
                Refusal::NotAllowedNow(m) => AppError::Conflict {
                    code: crate::error::ErrorCode::TransitionNotAllowed,
                    message: m,
                },
            },
        )?;
    let event = MineEvent {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        transition: transition.name().into(),
        from_stage: mine.facts.stage.code().into(),
        to_stage: next.stage.code().into(),
        actor_id: Some(caller.id()),
        reason: req.reason.trim().to_owned(),
        data: serde_json::json!({ "transition": transition, "round_id": req.round_id }),
        as_of: today.to_string(),
        created_at: state.clock.now_ms(),
    };
    // The announcement's text is part of the transition: stored with it or not at all.
    let announcement = if matches!(req.transition, Transition::Announce) {
        let township = township_name(state, mine.township_id).await?;
        let text = announcement_text(&mine, &township, &campaign, today);
        Some(CaseRecord {
            id: Uuid::now_v7(),
            mine_id: mine.id,
            kind: "announcement".into(),
            data: serde_json::json!({ "text": text, "date": today.to_string() }),
            created_by: Some(caller.id()),
            created_at: state.clock.now_ms(),
        })
    } else {
        None
    };
    match state
        .store
        .transition_mine(mine.id, mine.version, &next, &event, announcement.as_ref())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(AppError::Conflict {
                code: crate::error::ErrorCode::StaleVersion,
                message: "the mine changed meanwhile; reload and try again".into(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok(state.store.get_mine(mine.id).await?)
}

async fn township_name(state: &AppState, id: Uuid) -> Result<String> {
    Ok(state
        .store
        .list_townships()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.name)
        .unwrap_or_default())
}

/// Check an entered acceptance outcome against the round's record: the verdict by the template's
/// rule, the signatures of the required sections, and (注销) the experts' section.
async fn checked_against_round(
    state: &AppState,
    caller: &AuthUser,
    mine: &Mine,
    round_id: Uuid,
    entered: &AcceptanceVerdict,
) -> Result<AcceptanceVerdict> {
    use crate::model::AcceptanceVerdict as V;
    use crate::rules::template::Conclusion;
    let view = crate::rounds::view(state, caller, round_id).await?;
    if view.round.mine_id != mine.id {
        return Err(AppError::invalid_field(
            "round_id",
            "that round belongs to another mine",
        ));
    }
    let unsigned: Vec<String> = view
        .verdict
        .sections
        .iter()
        .filter(|s| {
            s.required
                && !view
                    .signed_sections
                    .contains(&s.department.code().to_owned())
        })
        .map(|s| s.name.clone())
        .collect();
    if !unsigned.is_empty() {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::RecordNotSigned,
            message: format!("sections not signed yet: {}", unsigned.join("、")),
        });
    }
    let experts_signed = view
        .signed_sections
        .iter()
        .any(|s| s == crate::model::record::EXPERT_SECTION);
    match (entered, view.verdict.conclusion) {
        (V::Passed { .. }, Conclusion::Passed) => Ok(V::Passed {
            expert_letter_signed: experts_signed,
        }),
        (V::Passed { .. }, other) => Err(AppError::Conflict {
            code: crate::error::ErrorCode::VerdictMismatch,
            message: format!(
                "the record's verdict is {} ({} failing item(s)), not 达标",
                other.name_zh(),
                view.verdict.failing.len()
            ),
        }),
        (V::Rectify { .. } | V::Failed { .. }, Conclusion::Passed) => Err(AppError::Conflict {
            code: crate::error::ErrorCode::VerdictMismatch,
            message: "the record's verdict is 达标".into(),
        }),
        (other, _) => Ok(other.clone()),
    }
}

/// The text of the cancellation announcement (注销公告) for a mine whose holder let a deadline pass.
pub fn announcement_text(
    mine: &Mine,
    township: &str,
    campaign: &Campaign,
    on: NaiveDate,
) -> String {
    let missed = if mine.facts.stage == Stage::AcceptancePassed {
        "在规定期限内提交采矿权注销申请"
    } else {
        "在规定期限内完成矿山生态环境整治任务"
    };
    let basis = match &campaign.document {
        Some(doc) => format!("《{}》（{}）", campaign.title, doc),
        None => format!("《{}》", campaign.title),
    };
    format!(
        "关于{holder}{name}采矿许可证注销的公告\n\n{holder}：\n\
         你单位{name}（采矿许可证号：{licence}，位于{township}）为停产非煤矿山，经县政府研究决定予以注销关闭。\
         你单位未{missed}。根据{basis}的规定，现予公告：自公告发布之日起，视为你单位自动放弃矿权，\
         由{township}作出注销矿权申请后，依法注销采矿许可证等证照。\n\n特此公告。\n\n{date}",
        holder = mine.holder,
        name = mine.name,
        licence = mine.licence_no,
        township = township,
        missed = missed,
        basis = basis,
        date = on.format("%Y年%m月%d日"),
    )
}
