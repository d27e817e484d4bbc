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
    model::{AcceptanceVerdict, CaseRecord, Mine, MineEvent, Role, Stage},
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
    /// The date the step happened on paper (a meeting's or a document's date, a step entered
    /// late), when not today: the workflow's deadlines and guards count from it. It may not lie
    /// in the future nor before the mine's previous step; the audit trail keeps it (`as_of`)
    /// beside the server's receive date (`recorded_on`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_date: Option<NaiveDate>,
    /// For `record_acceptance`: the round whose record decides it. The verdict must agree with
    /// the template's rule over that record, every required section must be signed, and for a
    /// 注销 mine the experts' letter counts as signed only when the round's opinion letter is
    /// issued with the conclusion 同意通过 (or, for records from before the letter, their
    /// `experts` section is signed). Without it the outcome is taken as entered (e.g. from a
    /// paper record).
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
    if caller.role() == Role::Operator && req.effective_date.is_some_and(|d| d != today) {
        // Officials enter steps from the paper trail; a holder acts in the app, on the day.
        return Err(AppError::Forbidden(
            "a holder's steps are dated the day the server receives them (no effective_date)"
                .into(),
        ));
    }
    let on = step_date(state, &mine, req.effective_date, today).await?;
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
        workflow::apply(&mine.facts, &transition, actor, on, &campaign).map_err(|r| match r {
            Refusal::Forbidden(m) => AppError::Forbidden(m),
            Refusal::NotAllowedNow(m) => AppError::Conflict {
                code: crate::error::ErrorCode::TransitionNotAllowed,
                message: m,
            },
        })?;
    let event = MineEvent {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        transition: transition.name().into(),
        from_stage: mine.facts.stage.code().into(),
        to_stage: next.stage.code().into(),
        actor_id: Some(caller.id()),
        reason: req.reason.trim().to_owned(),
        data: serde_json::json!({ "transition": transition, "round_id": req.round_id }),
        as_of: on.to_string(),
        recorded_on: today.to_string(),
        created_at: state.clock.now_ms(),
    };
    // The announcement's text is part of the transition: stored with it or not at all.
    let announcement = if matches!(req.transition, Transition::Announce) {
        let township = township_name(state, mine.township_id).await?;
        let text = announcement_text(&mine, &township, &campaign, on);
        Some(CaseRecord {
            id: Uuid::now_v7(),
            mine_id: mine.id,
            kind: "announcement".into(),
            data: serde_json::json!({ "text": text, "date": on.to_string() }),
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

/// The date a step counts as of: today, or the date it happened on paper; never in the future
/// and never before the mine's previous step (the audit trail stays in calendar order).
async fn step_date(
    state: &AppState,
    mine: &Mine,
    effective: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<NaiveDate> {
    let on = effective.unwrap_or(today);
    if on > today {
        return Err(AppError::invalid_field(
            "effective_date",
            format!("{on} is in the future (today is {today} in the county)"),
        ));
    }
    let previous = state
        .store
        .list_mine_events(mine.id)
        .await?
        .iter()
        .filter_map(|e| NaiveDate::parse_from_str(&e.as_of, "%Y-%m-%d").ok())
        .max();
    if let Some(previous) = previous
        && on < previous
    {
        let message = format!("{on} is before the mine's previous step ({previous})");
        return Err(if effective.is_some() {
            AppError::invalid_field("effective_date", message)
        } else {
            // Only a clock set back (a drill) gets here: the trail stays in calendar order.
            AppError::Conflict {
                code: crate::error::ErrorCode::TransitionNotAllowed,
                message,
            }
        });
    }
    Ok(on)
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
    // The experts accept a 注销 mine with their issued opinion letter (PROTOCOL.md §15). A
    // record whose `experts` section was signed before the letter existed (the section it
    // replaces) still counts.
    let experts_signed = crate::letters::experts_accepted(state, round_id).await?
        || view
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

/// A date as official documents write it (GB/T 9704): `2024年3月2日`, no zero padding.
pub fn official_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

/// The text of the cancellation announcement (注销公告) for a mine whose holder let a deadline
/// pass, as the county government publishes it on its website: issued by the government, naming
/// the closure decision, the date that was missed and the plan's rule, dated as GB/T 9704 writes
/// dates. `mine` is the mine before the announcement.
pub fn announcement_text(
    mine: &Mine,
    township: &str,
    campaign: &Campaign,
    on: NaiveDate,
) -> String {
    use crate::rules::campaign::Work;
    let county = campaign.county.clone().unwrap_or_default();
    let government = campaign
        .government
        .clone()
        .unwrap_or_else(|| format!("{county}人民政府"));
    let place = format!("{county}{township}");
    let plan = campaign.plan_title.as_deref().unwrap_or(&campaign.title);
    let basis = match &campaign.document {
        Some(doc) => format!("《{plan}》（{doc}）"),
        None => format!("《{plan}》"),
    };
    let decision = mine.facts.closure_decision.as_ref();
    let decision_no = decision.map_or_else(String::new, |d| format!("（{}）", d.document_no));
    let due = |work: Work| {
        mine.facts
            .disposition
            .into_iter()
            .flat_map(|d| campaign.tracking(d, work))
            .filter_map(|dl| workflow::due_date(&mine.facts, dl, campaign))
            .max()
    };
    let missed = if mine.facts.stage == Stage::AcceptancePassed {
        let accepted = mine
            .facts
            .accepted_on
            .map(official_date)
            .unwrap_or_default();
        let until = due(Work::CancellationApplication)
            .map(official_date)
            .unwrap_or_default();
        format!(
            "你单位矿山生态环境整治任务已于{accepted}通过验收，应在30日内向相关部门提交采矿权注销申请\
             （申请期限至{until}），逾期未提交。"
        )
    } else {
        let until = due(Work::Rectification)
            .map(official_date)
            .unwrap_or_default();
        format!("你单位应于{until}前完成矿山生态环境整治任务并通过验收，逾期未完成。")
    };
    format!(
        "{government}关于{holder}{name}采矿许可证注销的公告\n\n\
         {holder}：\n\
         \u{3000}\u{3000}你单位{name}（采矿许可证号：{licence}）位于{place}，为停产非煤矿山。\
         {government}已下达关闭决定{decision_no}，决定予以注销关闭。{missed}\
         根据{basis}关于“完成矿山生态环境整治任务后，原采矿权人在30日内向相关部门提交注销申请”\
         和“逾期未完成矿山生态环境整治任务的或者完成整治任务未按时申请注销的，在县政府网站上发布注销公告后，\
         视为采矿权人自动放弃矿权”的规定，现予公告：自本公告发布之日起，视为你单位自动放弃矿权，\
         由{place}作出注销矿权申请后，依法注销采矿许可证、营业执照等证照。\n\
         \u{3000}\u{3000}特此公告。\n\n\
         {government}\n\
         {date}",
        holder = mine.holder,
        name = mine.name,
        licence = mine.licence_no,
        date = official_date(on),
    )
}
