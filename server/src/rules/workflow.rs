//! The disposition workflow of one mine as an explicit state machine (pure; no I/O).
//!
//! Vocabulary (the plan's words in brackets):
//! - **stage**: where the mine stands (see [`Stage`]); every mine starts `registered`.
//! - **transition**: a named step ([`Transition`]) a role may take from some stages, possibly
//!   only for one disposition and only when a guard holds (a deadline passed, documents complete,
//!   an extension still available). Anything else is refused with a reason ([`Refusal`]).
//! - **facts**: what the workflow remembers about the mine besides its stage ([`MineFacts`]):
//!   disposition, dates of the events deadlines count from, extensions granted, whether the
//!   township took the rectification over, the four approval documents of a 延续 mine (records:
//!   number, issuer, date), the closure decision (关闭决定文书) of a 注销 mine, an open 限期整改
//!   order, the county leader (挂点县领导), the 县政府常务会议's minutes, 工信局's equipment
//!   decision and 市场监督管理局's cancellation of the business licence.
//! - **dates**: every step counts as of a date the caller passes in (the server's day, or the
//!   day it happened on paper); a closure decision's own deadlines override the campaign's for
//!   its mine ([`due_date`]); a past day's facts are rebuilt by replaying the audit trail
//!   ([`facts_as_of`]).
//!
//! Paths, per disposition:
//! - 注销 `cancel`: proposed → approved → closure_decided → plan_compiled → preliminary_passed
//!   (初验) → acceptance_passed (with the expert opinion letter) | rectification_required (限期整改,
//!   then 初验 again) → cancellation_applied (holder, within 30 days) → licence_cancelled. Overdue:
//!   the township takes over the rectification; a lapsed application or rectification leads to an
//!   announcement (公告) → right deemed abandoned → the township applies → licence_cancelled.
//! - 延续 `continue`: proposed → approved (four approval documents within 6 months; one 3-month
//!   extension) → preliminary_passed → acceptance_passed | rectification_required →
//!   joint_review_passed (联审联批) → (县政府常务会议) → licence_extended. Missed after the extension: right deemed
//!   abandoned → the township applies → licence_cancelled.
//! - 未生产 `never_produced`: proposed → approved → protected (keep the original landform).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    model::{
        AcceptanceVerdict, ApprovalDocument, ClosureDecision, Disposition, DocumentRecord,
        EquipmentDecision, Mine, MineEvent, MineFacts, RectificationOrder, Role, Stage,
    },
    rules::campaign::{Anchor, Campaign, Deadline, Due, Responsible, Work},
};

/// A requested step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "transition", rename_all = "snake_case")]
pub enum Transition {
    /// The township proposes a disposition (again, after a refusal).
    Propose { disposition: Disposition },
    /// The county approves the proposed disposition.
    Approve,
    /// The county sends the proposal back.
    RefuseProposal,
    /// The county issues the closure decision (注销).
    IssueClosureDecision { decision: ClosureDecision },
    /// The restoration plan (生态修复方案) is compiled (注销).
    CompilePlan,
    /// One of the four approval documents is complete (延续), with its number, issuer and date.
    RecordApprovalDocument {
        document: ApprovalDocument,
        record: DocumentRecord,
    },
    /// The one 3-month extension after a missed 6-month deadline (延续).
    GrantExtension,
    /// The township takes the overdue rectification over.
    TakeOver,
    /// The township's preliminary inspection (初验) passed.
    PassPreliminary,
    /// The on-site acceptance's outcome.
    RecordAcceptance { verdict: AcceptanceVerdict },
    /// The cancellation application (holder within 30 days, or the township after abandonment).
    ApplyCancellation,
    /// The licence is cancelled.
    CancelLicence,
    /// The cancellation announcement is published on the county website.
    Announce,
    /// The mining right is deemed abandoned (视为自动放弃矿权).
    DeemAbandoned,
    /// The joint review (联审联批) passed (延续).
    PassJointReview,
    /// The licence is extended (延续), after the 县政府常务会议 agreed.
    ExtendLicence,
    /// The county assigns the mine its county leader (挂点县领导); any stage.
    AssignCountyLeader { leader: String },
    /// The 县政府常务会议 agreed to the extension (延续, after the joint review): its minutes.
    RecordExecutiveMeeting { minutes: DocumentRecord },
    /// The 工信局-led decision on the retained production process and equipment.
    RecordEquipmentDecision { decision: EquipmentDecision },
    /// 市场监督管理局 cancelled the business licence (营业执照), after the mining licence.
    RecordBusinessLicenceCancellation { notice: DocumentRecord },
}

impl Transition {
    pub fn name(&self) -> &'static str {
        match self {
            Transition::Propose { .. } => "propose",
            Transition::Approve => "approve",
            Transition::RefuseProposal => "refuse_proposal",
            Transition::IssueClosureDecision { .. } => "issue_closure_decision",
            Transition::CompilePlan => "compile_plan",
            Transition::RecordApprovalDocument { .. } => "record_approval_document",
            Transition::GrantExtension => "grant_extension",
            Transition::TakeOver => "take_over",
            Transition::PassPreliminary => "pass_preliminary",
            Transition::RecordAcceptance { .. } => "record_acceptance",
            Transition::ApplyCancellation => "apply_cancellation",
            Transition::CancelLicence => "cancel_licence",
            Transition::Announce => "announce",
            Transition::DeemAbandoned => "deem_abandoned",
            Transition::PassJointReview => "pass_joint_review",
            Transition::ExtendLicence => "extend_licence",
            Transition::AssignCountyLeader { .. } => "assign_county_leader",
            Transition::RecordExecutiveMeeting { .. } => "record_executive_meeting",
            Transition::RecordEquipmentDecision { .. } => "record_equipment_decision",
            Transition::RecordBusinessLicenceCancellation { .. } => {
                "record_business_licence_cancellation"
            }
        }
    }
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub role: Role,
    /// A township officer's township.
    pub township: Option<Uuid>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    NotAllowedNow(String),
    #[error("{0}")]
    Forbidden(String),
}

fn not_now(msg: impl Into<String>) -> Refusal {
    Refusal::NotAllowedNow(msg.into())
}

/// Apply `transition` on `as_of` (the server's date), or say why not.
pub fn apply(
    facts: &MineFacts,
    transition: &Transition,
    actor: Actor,
    as_of: NaiveDate,
    campaign: &Campaign,
) -> Result<MineFacts, Refusal> {
    use Stage as S;
    use Transition as T;
    let d = facts.disposition;
    let stage = facts.stage;
    let roles: &[Role] = match transition {
        T::Propose { .. }
        | T::CompilePlan
        | T::RecordApprovalDocument { .. }
        | T::TakeOver
        | T::PassPreliminary => &[Role::TownshipOfficer, Role::CountyOffice],
        T::ApplyCancellation => &[Role::TownshipOfficer, Role::Operator, Role::CountyOffice],
        _ => &[Role::CountyOffice],
    };
    if !roles.contains(&actor.role) && actor.role != Role::Admin {
        return Err(Refusal::Forbidden(format!(
            "a {} may not {}",
            actor.role,
            transition.name()
        )));
    }
    if actor.role == Role::TownshipOfficer && actor.township != Some(facts.township_id) {
        return Err(Refusal::Forbidden(
            "this mine belongs to another township".into(),
        ));
    }
    let wrong_stage = || {
        not_now(format!(
            "{} is not possible while the mine is {} ({})",
            transition.name(),
            stage.code(),
            stage.name_zh()
        ))
    };
    let needs = |wanted: Disposition| -> Result<(), Refusal> {
        if d == Some(wanted) {
            Ok(())
        } else {
            Err(not_now(format!(
                "{} applies to {} mines only",
                transition.name(),
                wanted.name_zh()
            )))
        }
    };
    // Whether a deadline of this mine tracking `work` has passed (the campaign file says which
    // deadlines track what).
    let overdue = |work: Work| {
        d.into_iter()
            .flat_map(|d| campaign.tracking(d, work))
            .filter_map(|dl| due_date(facts, dl, campaign))
            .any(|date| as_of > date)
    };

    let mut next = facts.clone();
    match transition {
        T::Propose { disposition } => {
            if !matches!(stage, S::Registered | S::DispositionProposed) {
                return Err(wrong_stage());
            }
            next.disposition = Some(*disposition);
            next.stage = S::DispositionProposed;
        }
        T::Approve => {
            if stage != S::DispositionProposed {
                return Err(wrong_stage());
            }
            next.approved_on = Some(as_of);
            next.stage = if d == Some(Disposition::NeverProduced) {
                S::Protected
            } else {
                S::DispositionApproved
            };
        }
        T::RefuseProposal => {
            if stage != S::DispositionProposed {
                return Err(wrong_stage());
            }
            next.stage = S::Registered;
        }
        T::IssueClosureDecision { decision } => {
            needs(Disposition::Cancel)?;
            if stage != S::DispositionApproved {
                return Err(wrong_stage());
            }
            if decision.document_no.trim().is_empty()
                || decision.responsible_party.trim().is_empty()
                || decision.supervisor.trim().is_empty()
                || decision.maintenance_party.trim().is_empty()
            {
                return Err(not_now(
                    "the closure decision must name its document number, the responsible party, \
                     the supervisor and the maintenance party",
                ));
            }
            if decision.cancellation_application_deadline < decision.restoration_deadline {
                return Err(not_now(
                    "the cancellation application deadline cannot precede the restoration deadline",
                ));
            }
            if decision.restoration_deadline < as_of {
                return Err(not_now(format!(
                    "a closure decision issued on {as_of} cannot set a restoration deadline                      already past ({})",
                    decision.restoration_deadline
                )));
            }
            next.closure_decision = Some(decision.clone());
            next.closure_decided_on = Some(as_of);
            next.stage = S::ClosureDecided;
        }
        T::CompilePlan => {
            needs(Disposition::Cancel)?;
            if stage != S::ClosureDecided {
                return Err(wrong_stage());
            }
            next.stage = S::PlanCompiled;
        }
        T::RecordApprovalDocument { document, record } => {
            needs(Disposition::Continue)?;
            if stage != S::DispositionApproved {
                return Err(wrong_stage());
            }
            check_record(record, as_of, "the approval document")?;
            if next.documents.contains_key(document) {
                return Err(not_now("this approval document is already recorded"));
            }
            next.documents.insert(*document, record.clone());
        }
        T::GrantExtension => {
            needs(Disposition::Continue)?;
            if !matches!(stage, S::DispositionApproved | S::RectificationRequired) {
                return Err(wrong_stage());
            }
            let allowed = d
                .into_iter()
                .flat_map(|d| campaign.tracking(d, Work::ApprovalDocuments))
                .filter_map(|dl| match dl.due {
                    Due::After {
                        extension: Some(e), ..
                    } => Some(e.max),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            if facts.extensions_granted >= allowed {
                return Err(not_now(
                    "the extensions the campaign allows were already granted; the right may now \
                     be deemed abandoned",
                ));
            }
            if !overdue(Work::ApprovalDocuments) {
                return Err(not_now(
                    "an extension is granted only after the 6-month deadline has passed",
                ));
            }
            next.extensions_granted += 1;
        }
        T::TakeOver => {
            if !stage.before_acceptance() || d == Some(Disposition::NeverProduced) {
                return Err(wrong_stage());
            }
            if facts.township_took_over {
                return Err(not_now("the township already took the rectification over"));
            }
            if !overdue(Work::Rectification) {
                return Err(not_now(
                    "the township takes over only after the holder missed the rectification \
                     deadline",
                ));
            }
            next.township_took_over = true;
        }
        T::PassPreliminary => {
            let ready = match d {
                Some(Disposition::Cancel) => {
                    matches!(stage, S::PlanCompiled | S::RectificationRequired)
                }
                Some(Disposition::Continue) => {
                    matches!(stage, S::DispositionApproved | S::RectificationRequired)
                }
                _ => false,
            };
            if !ready {
                return Err(wrong_stage());
            }
            if d == Some(Disposition::Continue)
                && facts.documents.len() < ApprovalDocument::ALL.len()
            {
                return Err(not_now(
                    "the four approval documents must be complete before the preliminary \
                     inspection",
                ));
            }
            next.stage = S::PreliminaryPassed;
        }
        T::RecordAcceptance { verdict } => {
            if stage != S::PreliminaryPassed {
                return Err(wrong_stage());
            }
            match verdict {
                AcceptanceVerdict::Passed {
                    expert_letter_signed,
                } => {
                    if d == Some(Disposition::Cancel) && !expert_letter_signed {
                        return Err(not_now(
                            "a 注销 mine passes only with the experts' signed 验收合格意见书",
                        ));
                    }
                    next.accepted_on = Some(as_of);
                    next.rectification = None;
                    next.stage = S::AcceptancePassed;
                }
                AcceptanceVerdict::Rectify {
                    requirements,
                    reinspect_by,
                } => {
                    if requirements.trim().is_empty() || *reinspect_by <= as_of {
                        return Err(not_now(
                            "限期整改 needs requirements and a re-inspection date in the future",
                        ));
                    }
                    next.rectification = Some(RectificationOrder {
                        requirements: requirements.trim().to_owned(),
                        reinspect_by: *reinspect_by,
                        ordered_on: as_of,
                    });
                    next.stage = S::RectificationRequired;
                }
                AcceptanceVerdict::Failed { reason } => {
                    if reason.trim().is_empty() {
                        return Err(not_now("不达标 needs a reason"));
                    }
                    next.stage = S::RectificationRequired;
                }
            }
        }
        T::ApplyCancellation => {
            needs_cancel_path(d, stage, actor.role).ok_or_else(wrong_stage)?;
            next.stage = S::CancellationApplied;
        }
        T::CancelLicence => {
            if stage != S::CancellationApplied {
                return Err(wrong_stage());
            }
            next.cancelled_on = Some(as_of);
            next.stage = S::LicenceCancelled;
        }
        T::Announce => {
            needs(Disposition::Cancel)?;
            if facts.closure_decision.is_none() {
                return Err(not_now(
                    "the announcement rests on the closure decision (关闭决定文书); issue it first",
                ));
            }
            let lapsed = (stage == S::AcceptancePassed && overdue(Work::CancellationApplication))
                || (stage.before_acceptance() && overdue(Work::Rectification));
            if !lapsed {
                return Err(not_now(
                    "an announcement is published only when the holder missed the rectification \
                     or the 30-day cancellation application",
                ));
            }
            next.announced_on = Some(as_of);
            next.stage = S::Announced;
        }
        T::DeemAbandoned => {
            let allowed = match d {
                Some(Disposition::Cancel) => stage == S::Announced,
                Some(Disposition::Continue) => {
                    stage.before_acceptance()
                        && facts.extensions_granted >= 1
                        && overdue(Work::ApprovalDocuments)
                }
                _ => false,
            };
            if !allowed {
                return Err(not_now(
                    "a right is deemed abandoned only after the announcement (注销) or after the \
                     extension lapsed (延续)",
                ));
            }
            next.stage = S::RightAbandoned;
        }
        T::PassJointReview => {
            needs(Disposition::Continue)?;
            if stage != S::AcceptancePassed {
                return Err(wrong_stage());
            }
            next.stage = S::JointReviewPassed;
        }
        T::ExtendLicence => {
            needs(Disposition::Continue)?;
            if stage != S::JointReviewPassed {
                return Err(wrong_stage());
            }
            if facts.executive_meeting.is_none() {
                return Err(not_now(
                    "the licence is extended only after the 县政府常务会议 agreed \
                     (record_executive_meeting)",
                ));
            }
            next.stage = S::LicenceExtended;
        }
        T::AssignCountyLeader { leader } => {
            let leader = leader.trim();
            if leader.is_empty() {
                return Err(not_now("name the county leader (挂点县领导)"));
            }
            next.county_leader = Some(leader.to_owned());
        }
        T::RecordExecutiveMeeting { minutes } => {
            needs(Disposition::Continue)?;
            if stage != S::JointReviewPassed {
                return Err(not_now(
                    "the 县政府常务会议 studies the extension after the joint review (联审联批)",
                ));
            }
            check_record(minutes, as_of, "the meeting minutes")?;
            next.executive_meeting = Some(minutes.clone());
        }
        T::RecordEquipmentDecision { decision } => {
            if !matches!(d, Some(Disposition::Cancel | Disposition::Continue))
                || matches!(
                    stage,
                    S::Registered | S::DispositionProposed | S::LicenceCancelled
                )
            {
                return Err(wrong_stage());
            }
            if decision.findings.trim().is_empty() {
                return Err(not_now("the equipment decision needs its findings"));
            }
            check_record(&decision.document, as_of, "the equipment decision")?;
            next.equipment_decision = Some(decision.clone());
        }
        T::RecordBusinessLicenceCancellation { notice } => {
            if stage != S::LicenceCancelled {
                return Err(not_now(
                    "市场监督管理局 cancels the business licence after the mining licence is \
                     cancelled",
                ));
            }
            if facts.business_licence_cancellation.is_some() {
                return Err(not_now(
                    "the business licence cancellation is already recorded",
                ));
            }
            check_record(notice, as_of, "the business licence cancellation")?;
            next.business_licence_cancellation = Some(notice.clone());
        }
    }
    Ok(next)
}

/// A document recorded by a step: number and issuer given, dated no later than the step.
fn check_record(record: &DocumentRecord, as_of: NaiveDate, what: &str) -> Result<(), Refusal> {
    if !record.is_complete() {
        return Err(not_now(format!(
            "{what} needs its document number and issuing body"
        )));
    }
    if record.date > as_of {
        return Err(not_now(format!(
            "{what} is dated {}, after the step ({as_of})",
            record.date
        )));
    }
    Ok(())
}

/// Who may apply for cancellation from where: the holder (or the county for them) after a passed
/// 注销 acceptance; the township once the right is deemed abandoned.
fn needs_cancel_path(d: Option<Disposition>, stage: Stage, role: Role) -> Option<()> {
    match (d, stage, role) {
        (
            Some(Disposition::Cancel),
            Stage::AcceptancePassed,
            Role::Operator | Role::CountyOffice,
        ) => Some(()),
        (_, Stage::RightAbandoned, Role::TownshipOfficer | Role::CountyOffice) => Some(()),
        (_, _, Role::Admin) if matches!(stage, Stage::AcceptancePassed | Stage::RightAbandoned) => {
            Some(())
        }
        _ => None,
    }
}

/// The due date of `deadline` for this mine: fixed, or counted from the mine's event (with the
/// extensions granted, for the approval documents), then adjusted by the mine's closure decision
/// (关闭决定文书), which is the individual act the holder was served:
/// - rectification: the decision's restoration deadline replaces the campaign's date;
/// - cancellation application: the later of the campaign's period (30 days after the acceptance)
///   and the decision's application deadline;
/// - township takeover: when the decision's restoration deadline is later than the campaign's,
///   the takeover deadline moves by as many days.
///
/// `None` while the event has not happened.
pub fn due_date(facts: &MineFacts, deadline: &Deadline, campaign: &Campaign) -> Option<NaiveDate> {
    let due = campaign_due_date(facts, deadline)?;
    let Some(decision) = facts
        .closure_decision
        .as_ref()
        .filter(|_| facts.disposition == Some(Disposition::Cancel))
    else {
        return Some(due);
    };
    Some(match deadline.tracks {
        Work::Rectification => decision.restoration_deadline,
        Work::CancellationApplication => due.max(decision.cancellation_application_deadline),
        Work::TownshipTakeover => {
            let campaign_rectification = campaign
                .tracking(Disposition::Cancel, Work::Rectification)
                .filter_map(|dl| campaign_due_date(facts, dl))
                .max();
            match campaign_rectification {
                Some(c) if decision.restoration_deadline > c => {
                    due + (decision.restoration_deadline - c)
                }
                _ => due,
            }
        }
        _ => due,
    })
}

/// The due date by the campaign file alone.
fn campaign_due_date(facts: &MineFacts, deadline: &Deadline) -> Option<NaiveDate> {
    let anchor = match deadline.due {
        Due::On { .. } => None,
        Due::After { anchor, .. } => match anchor {
            Anchor::DispositionApproved => facts.approved_on,
            Anchor::ClosureDecisionIssued => facts.closure_decided_on,
            Anchor::AcceptancePassed => facts.accepted_on,
            Anchor::LicenceCancelled => facts.cancelled_on,
            Anchor::AnnouncementPublished => facts.announced_on,
        },
    };
    let extensions = if deadline.tracks == Work::ApprovalDocuments {
        facts.extensions_granted
    } else {
        0
    };
    deadline.due_date(anchor, extensions).ok()
}

/// Where a deadline stands on a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineStatus {
    /// The due date has passed with the work not done.
    Overdue,
    /// Due within the campaign's `due_soon_days`.
    DueSoon,
    /// Due later (or the end of a period that is no debt, such as the maintenance years).
    Pending,
}

/// A deadline of one mine as of a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MineDeadline {
    pub key: String,
    pub title: String,
    /// Who must act: `holder`, `township` (also for the holder's work once the township took
    /// the rectification over), `county_office`, `maintenance_body`.
    pub responsible: Responsible,
    #[schema(value_type = String, format = Date)]
    pub due: NaiveDate,
    pub status: DeadlineStatus,
    pub days_left: i64,
}

/// The open deadlines of a mine as of `as_of`: those of its disposition whose work is not done
/// yet (decided by the stage), with their status.
pub fn open_deadlines(
    facts: &MineFacts,
    campaign: &Campaign,
    as_of: NaiveDate,
) -> Vec<MineDeadline> {
    use Stage as S;
    let Some(d) = facts.disposition else {
        return Vec::new();
    };
    if !matches!(
        facts.stage,
        S::DispositionApproved
            | S::ClosureDecided
            | S::PlanCompiled
            | S::PreliminaryPassed
            | S::RectificationRequired
            | S::AcceptancePassed
            | S::Announced
            | S::RightAbandoned
            | S::CancellationApplied
            | S::LicenceCancelled
    ) {
        return Vec::new();
    }
    let open = |work: Work| -> bool {
        match work {
            Work::RestorationPlan => {
                matches!(facts.stage, S::DispositionApproved | S::ClosureDecided)
            }
            Work::Rectification => facts.stage.before_acceptance(),
            Work::ApprovalDocuments => {
                facts.stage.before_acceptance()
                    && facts.documents.len() < ApprovalDocument::ALL.len()
            }
            Work::TownshipTakeover => facts.township_took_over && facts.stage.before_acceptance(),
            Work::CancellationApplication => facts.stage == S::AcceptancePassed,
            Work::Maintenance => facts.stage == S::LicenceCancelled,
            Work::Other => !matches!(facts.stage, S::LicenceCancelled | S::LicenceExtended),
        }
    };
    let mut out = Vec::new();
    for deadline in campaign.deadlines_for(d) {
        if !open(deadline.tracks) {
            continue;
        }
        let Some(due) = due_date(facts, deadline, campaign) else {
            continue;
        };
        // The holder's rectification is the township's once it took it over.
        let responsible = if facts.township_took_over
            && deadline.responsible == Responsible::Holder
            && matches!(deadline.tracks, Work::Rectification)
        {
            Responsible::Township
        } else {
            deadline.responsible
        };
        out.push(MineDeadline {
            key: deadline.key.clone(),
            title: deadline.title.clone(),
            responsible,
            due,
            status: status(deadline.tracks, due, as_of, campaign),
            days_left: (due - as_of).num_days(),
        });
    }
    // The re-inspection a 限期整改 set is a deadline of its own.
    if let (S::RectificationRequired, Some(order)) = (facts.stage, &facts.rectification) {
        out.push(MineDeadline {
            key: REINSPECTION_KEY.into(),
            title: format!("限期整改后复验：{}", order.requirements),
            responsible: if facts.township_took_over {
                Responsible::Township
            } else {
                Responsible::Holder
            },
            due: order.reinspect_by,
            status: status(Work::Other, order.reinspect_by, as_of, campaign),
            days_left: (order.reinspect_by - as_of).num_days(),
        });
    }
    out
}

/// The key of the re-inspection deadline a 限期整改 sets (not a campaign deadline).
pub const REINSPECTION_KEY: &str = "reinspection";

fn status(work: Work, due: NaiveDate, as_of: NaiveDate, campaign: &Campaign) -> DeadlineStatus {
    let days_left = (due - as_of).num_days();
    if work == Work::Maintenance {
        // The end of the maintenance period is not a debt.
        DeadlineStatus::Pending
    } else if days_left < 0 {
        DeadlineStatus::Overdue
    } else if days_left <= i64::from(campaign.due_soon_days) {
        DeadlineStatus::DueSoon
    } else {
        DeadlineStatus::Pending
    }
}

/// Whether a mine whose licence was cancelled is in its maintenance period (管护期) on `as_of`:
/// the period a campaign deadline tracking `maintenance` sets, counted from the cancellation.
pub fn in_maintenance(facts: &MineFacts, campaign: &Campaign, as_of: NaiveDate) -> bool {
    facts.stage == Stage::LicenceCancelled
        && facts.disposition.is_some_and(|d| {
            campaign
                .tracking(d, Work::Maintenance)
                .filter_map(|dl| due_date(facts, dl, campaign))
                .any(|end| as_of <= end)
        })
}

/// A mine's facts on `as_of`, rebuilt from its audit trail: the steps dated on or before that
/// day, replayed through the workflow. A step the workflow cannot replay (an older trail) keeps
/// the stage the trail recorded.
pub fn facts_as_of(
    mine: &Mine,
    events: &[MineEvent],
    as_of: NaiveDate,
    campaign: &Campaign,
) -> MineFacts {
    let mut facts = MineFacts::new(mine.township_id);
    let replayer = Actor {
        role: Role::Admin,
        township: None,
    };
    for e in events {
        let Ok(on) = NaiveDate::parse_from_str(&e.as_of, "%Y-%m-%d") else {
            continue;
        };
        if on > as_of {
            break;
        }
        let step = e
            .data
            .get("transition")
            .filter(|t| t.is_object())
            .unwrap_or(&e.data);
        let parsed = serde_json::from_value::<Transition>(step.clone()).ok();
        let replayed = parsed
            .as_ref()
            .and_then(|t| apply(&facts, t, replayer, on, campaign).ok());
        match replayed {
            Some(next) => facts = next,
            None => {
                // A step recorded under older rules (or in an older shape): take what it says
                // happened without the guards, and the stage the trail recorded.
                record_unguarded(&mut facts, parsed.as_ref(), step, on);
                facts.stage = Stage::parse(&e.to_stage).unwrap_or(facts.stage);
                if facts.disposition.is_none() && facts.stage != Stage::Registered {
                    facts.disposition = mine.facts.disposition;
                }
            }
        }
    }
    if facts.county_leader.is_none() {
        facts.county_leader.clone_from(&mine.facts.county_leader);
    }
    facts
}

/// The facts a step records, without its guards (for replaying an older audit trail).
fn record_unguarded(
    facts: &mut MineFacts,
    step: Option<&Transition>,
    raw: &serde_json::Value,
    on: NaiveDate,
) {
    use Transition as T;
    match step {
        Some(T::Propose { disposition }) => facts.disposition = Some(*disposition),
        Some(T::Approve) => facts.approved_on = Some(on),
        Some(T::IssueClosureDecision { decision }) => {
            facts.closure_decision = Some(decision.clone());
            facts.closure_decided_on = Some(on);
        }
        Some(T::GrantExtension) => facts.extensions_granted += 1,
        Some(T::TakeOver) => facts.township_took_over = true,
        Some(T::RecordAcceptance {
            verdict: AcceptanceVerdict::Passed { .. },
        }) => {
            facts.accepted_on = Some(on);
            facts.rectification = None;
        }
        Some(T::RecordAcceptance {
            verdict:
                AcceptanceVerdict::Rectify {
                    requirements,
                    reinspect_by,
                },
        }) => {
            facts.rectification = Some(RectificationOrder {
                requirements: requirements.clone(),
                reinspect_by: *reinspect_by,
                ordered_on: on,
            });
        }
        Some(T::Announce) => facts.announced_on = Some(on),
        Some(T::CancelLicence) => facts.cancelled_on = Some(on),
        Some(T::RecordExecutiveMeeting { minutes }) => {
            facts.executive_meeting = Some(minutes.clone());
        }
        Some(T::RecordApprovalDocument { document, record }) => {
            facts.documents.insert(*document, record.clone());
        }
        None if raw.get("transition").and_then(|t| t.as_str())
            == Some("record_approval_document") =>
        {
            // Recorded as a flag, before documents were records.
            if let Some(document) = raw
                .get("document")
                .and_then(|d| serde_json::from_value::<ApprovalDocument>(d.clone()).ok())
            {
                facts.documents.insert(
                    document,
                    DocumentRecord {
                        number: String::new(),
                        issuer: String::new(),
                        date: on,
                    },
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    const TOWN: Uuid = Uuid::from_u128(7);
    const OFFICE: Actor = Actor {
        role: Role::CountyOffice,
        township: None,
    };
    const TOWNSHIP: Actor = Actor {
        role: Role::TownshipOfficer,
        township: Some(TOWN),
    };
    const HOLDER: Actor = Actor {
        role: Role::Operator,
        township: None,
    };

    fn campaign() -> Campaign {
        Campaign::shanggao_2023().unwrap()
    }

    /// Run steps `(actor, transition, date, expected stage or Err(substring))`.
    fn run(steps: &[(Actor, Transition, &str, Result<Stage, &str>)]) -> MineFacts {
        let c = campaign();
        let mut facts = MineFacts::new(TOWN);
        for (i, (actor, t, on, expect)) in steps.iter().enumerate() {
            match (apply(&facts, t, *actor, date(on), &c), expect) {
                (Ok(next), Ok(stage)) => {
                    assert_eq!(next.stage, *stage, "step {i} {}", t.name());
                    facts = next;
                }
                (Err(e), Err(needle)) => {
                    assert!(e.to_string().contains(needle), "step {i}: {e}");
                }
                (got, want) => panic!("step {i} {}: got {got:?}, want {want:?}", t.name()),
            }
        }
        facts
    }

    fn decision() -> ClosureDecision {
        ClosureDecision {
            document_no: "上府字〔2023〕88号".into(),
            responsible_party: "上高县某石业有限公司".into(),
            restoration_deadline: date("2024-03-31"),
            supervisor: "泗溪镇人民政府".into(),
            cancellation_application_deadline: date("2024-04-30"),
            maintenance_party: "泗溪镇人民政府".into(),
        }
    }

    fn doc(on: &str) -> DocumentRecord {
        DocumentRecord {
            number: "宜自然资审〔2023〕17号".into(),
            issuer: "宜春市自然资源局".into(),
            date: date(on),
        }
    }

    use Stage as S;
    use Transition as T;

    #[test]
    fn a_cancel_mine_goes_from_disposition_to_licence_cancellation() {
        let facts = run(&[
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (OFFICE, T::Approve, "2023-11-10", Ok(S::DispositionApproved)),
            (
                OFFICE,
                T::IssueClosureDecision {
                    decision: decision(),
                },
                "2023-11-20",
                Ok(S::ClosureDecided),
            ),
            (TOWNSHIP, T::CompilePlan, "2023-12-20", Ok(S::PlanCompiled)),
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2024-03-01",
                Ok(S::PreliminaryPassed),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Passed {
                        expert_letter_signed: false,
                    },
                },
                "2024-03-20",
                Err("验收合格意见书"),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Passed {
                        expert_letter_signed: true,
                    },
                },
                "2024-03-20",
                Ok(S::AcceptancePassed),
            ),
            (
                HOLDER,
                T::ApplyCancellation,
                "2024-04-10",
                Ok(S::CancellationApplied),
            ),
            (
                OFFICE,
                T::CancelLicence,
                "2024-04-20",
                Ok(S::LicenceCancelled),
            ),
        ]);
        assert_eq!(facts.closure_decision, Some(decision()));
        assert_eq!(facts.cancelled_on, Some(date("2024-04-20")));
        // Afterwards only the maintenance period remains, three years from the cancellation.
        let open = open_deadlines(&facts, &campaign(), date("2024-05-01"));
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].key, "maintenance_period");
        assert_eq!(open[0].due, date("2027-04-20"));
    }

    #[test]
    fn deadline_keys_are_the_campaign_files_own_names() {
        // The same plan with every key renamed and two extensions allowed: the workflow follows
        // `tracks`, never a key.
        let mut source = crate::rules::campaign::SHANGGAO_2023_TOML.to_owned();
        for key in [
            "restoration_plan",
            "cancel_rectification",
            "continue_unused_areas",
            "approval_documents",
            "township_takeover",
            "cancellation_application",
            "maintenance_period",
        ] {
            source = source.replace(&format!("key = \"{key}\""), &format!("key = \"x_{key}\""));
        }
        source = source.replace("max_extensions = 1", "max_extensions = 2");
        let c = Campaign::parse(&source).unwrap();
        assert!(c.deadline("approval_documents").is_none());
        let mut facts = MineFacts::new(TOWN);
        facts.disposition = Some(Disposition::Continue);
        facts.stage = S::DispositionApproved;
        facts.approved_on = Some(date("2023-08-31"));
        let open = open_deadlines(&facts, &c, date("2024-03-01"));
        let keys: Vec<&str> = open.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["x_continue_unused_areas", "x_approval_documents"]);
        assert_eq!(open[1].status, DeadlineStatus::Overdue);
        // Not yet overdue on the due date itself.
        assert!(apply(&facts, &T::GrantExtension, OFFICE, date("2024-02-29"), &c).is_err());
        let once = apply(&facts, &T::GrantExtension, OFFICE, date("2024-03-01"), &c).unwrap();
        // The second extension counts from the first one's due date (2024-05-29).
        assert!(apply(&once, &T::GrantExtension, OFFICE, date("2024-05-29"), &c).is_err());
        let twice = apply(&once, &T::GrantExtension, OFFICE, date("2024-05-30"), &c).unwrap();
        assert_eq!(twice.extensions_granted, 2);
        let refused = apply(&twice, &T::GrantExtension, OFFICE, date("2024-12-01"), &c);
        assert!(refused.unwrap_err().to_string().contains("already granted"));
        // With the one extension of the real plan, the second is refused.
        let real = apply(
            &once,
            &T::GrantExtension,
            OFFICE,
            date("2024-06-01"),
            &campaign(),
        );
        assert!(real.unwrap_err().to_string().contains("already granted"));
    }

    #[test]
    fn a_continue_mine_gets_one_extension_then_lapses() {
        let facts = run(&[
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Continue,
                },
                "2023-08-20",
                Ok(S::DispositionProposed),
            ),
            // Approved on a month end: 6 months later is the end of February in a leap year.
            (OFFICE, T::Approve, "2023-08-31", Ok(S::DispositionApproved)),
            (
                TOWNSHIP,
                T::RecordApprovalDocument {
                    document: ApprovalDocument::DevelopmentPlan,
                    record: doc("2023-09-28"),
                },
                "2023-10-01",
                Ok(S::DispositionApproved),
            ),
            (
                TOWNSHIP,
                T::RecordApprovalDocument {
                    document: ApprovalDocument::DevelopmentPlan,
                    record: doc("2023-09-28"),
                },
                "2023-10-02",
                Err("already recorded"),
            ),
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2023-12-01",
                Err("four approval documents"),
            ),
            (
                OFFICE,
                T::GrantExtension,
                "2024-02-29",
                Err("only after the 6-month deadline"),
            ),
            (
                OFFICE,
                T::GrantExtension,
                "2024-03-01",
                Ok(S::DispositionApproved),
            ),
            (
                OFFICE,
                T::GrantExtension,
                "2024-03-02",
                Err("already granted"),
            ),
            // 2024-02-29 + 3 months = 2024-05-29.
            (
                OFFICE,
                T::DeemAbandoned,
                "2024-05-29",
                Err("deemed abandoned only"),
            ),
            (
                OFFICE,
                T::DeemAbandoned,
                "2024-05-30",
                Ok(S::RightAbandoned),
            ),
            (
                HOLDER,
                T::ApplyCancellation,
                "2024-06-01",
                Err("not possible"),
            ),
            (
                TOWNSHIP,
                T::ApplyCancellation,
                "2024-06-01",
                Ok(S::CancellationApplied),
            ),
            (
                OFFICE,
                T::CancelLicence,
                "2024-06-10",
                Ok(S::LicenceCancelled),
            ),
        ]);
        assert_eq!(facts.extensions_granted, 1);
    }

    #[test]
    fn a_continue_mine_with_documents_is_extended_after_joint_review() {
        let mut steps = vec![
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Continue,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (OFFICE, T::Approve, "2023-11-10", Ok(S::DispositionApproved)),
        ];
        for document in ApprovalDocument::ALL {
            steps.push((
                TOWNSHIP,
                T::RecordApprovalDocument {
                    document,
                    record: doc("2024-01-05"),
                },
                "2024-01-10",
                Ok(S::DispositionApproved),
            ));
        }
        steps.extend([
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2024-02-01",
                Ok(S::PreliminaryPassed),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Passed {
                        expert_letter_signed: false,
                    },
                },
                "2024-02-10",
                Ok(S::AcceptancePassed),
            ),
            (OFFICE, T::ExtendLicence, "2024-02-11", Err("not possible")),
            (
                OFFICE,
                T::PassJointReview,
                "2024-02-20",
                Ok(S::JointReviewPassed),
            ),
            (
                OFFICE,
                T::ExtendLicence,
                "2024-02-25",
                Err("县政府常务会议"),
            ),
            (
                OFFICE,
                T::RecordExecutiveMeeting {
                    minutes: DocumentRecord {
                        number: "县政府常务会议纪要〔2024〕3号".into(),
                        issuer: "上高县人民政府".into(),
                        date: date("2024-02-27"),
                    },
                },
                "2024-02-28",
                Ok(S::JointReviewPassed),
            ),
            (
                OFFICE,
                T::ExtendLicence,
                "2024-03-01",
                Ok(S::LicenceExtended),
            ),
        ]);
        run(&steps);
    }

    #[test]
    fn a_failed_acceptance_is_followed_by_a_passing_reinspection() {
        run(&[
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (OFFICE, T::Approve, "2023-11-10", Ok(S::DispositionApproved)),
            (
                OFFICE,
                T::IssueClosureDecision {
                    decision: decision(),
                },
                "2023-11-20",
                Ok(S::ClosureDecided),
            ),
            (TOWNSHIP, T::CompilePlan, "2023-12-20", Ok(S::PlanCompiled)),
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2024-02-01",
                Ok(S::PreliminaryPassed),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Rectify {
                        requirements: "截排水沟淤堵，需清淤".into(),
                        reinspect_by: date("2024-01-01"),
                    },
                },
                "2024-02-10",
                Err("in the future"),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Rectify {
                        requirements: "截排水沟淤堵，需清淤".into(),
                        reinspect_by: date("2024-03-10"),
                    },
                },
                "2024-02-10",
                Ok(S::RectificationRequired),
            ),
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2024-03-05",
                Ok(S::PreliminaryPassed),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Passed {
                        expert_letter_signed: true,
                    },
                },
                "2024-03-10",
                Ok(S::AcceptancePassed),
            ),
        ]);
    }

    #[test]
    fn lapsed_cancellation_application_leads_to_announcement_and_township_application() {
        let facts = run(&[
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (OFFICE, T::Approve, "2023-11-10", Ok(S::DispositionApproved)),
            (
                OFFICE,
                T::IssueClosureDecision {
                    decision: decision(),
                },
                "2023-11-20",
                Ok(S::ClosureDecided),
            ),
            (TOWNSHIP, T::CompilePlan, "2023-12-20", Ok(S::PlanCompiled)),
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2024-01-15",
                Ok(S::PreliminaryPassed),
            ),
            (
                OFFICE,
                T::RecordAcceptance {
                    verdict: AcceptanceVerdict::Passed {
                        expert_letter_signed: true,
                    },
                },
                "2024-01-31",
                Ok(S::AcceptancePassed),
            ),
            // 30 days after 2024-01-31 is 2024-03-01 (leap February), but the closure decision
            // gave the holder until 2024-04-30: the later date holds.
            (
                OFFICE,
                T::Announce,
                "2024-03-02",
                Err("announcement is published only"),
            ),
            (
                OFFICE,
                T::Announce,
                "2024-04-30",
                Err("announcement is published only"),
            ),
            (OFFICE, T::Announce, "2024-05-01", Ok(S::Announced)),
            (
                OFFICE,
                T::DeemAbandoned,
                "2024-06-01",
                Ok(S::RightAbandoned),
            ),
            (
                TOWNSHIP,
                T::ApplyCancellation,
                "2024-06-05",
                Ok(S::CancellationApplied),
            ),
        ]);
        assert_eq!(facts.announced_on, Some(date("2024-05-01")));
    }

    #[test]
    fn the_thirty_days_count_when_they_end_after_the_decisions_application_deadline() {
        let mut facts = MineFacts::new(TOWN);
        facts.disposition = Some(Disposition::Cancel);
        facts.stage = S::AcceptancePassed;
        facts.closure_decision = Some(decision());
        facts.accepted_on = Some(date("2024-04-20"));
        // 2024-04-20 + 30 days = 2024-05-20, later than the decision's 2024-04-30.
        let c = campaign();
        assert!(apply(&facts, &T::Announce, OFFICE, date("2024-05-20"), &c).is_err());
        assert!(apply(&facts, &T::Announce, OFFICE, date("2024-05-21"), &c).is_ok());
    }

    #[test]
    fn a_closure_decision_with_a_later_deadline_moves_the_mines_deadlines() {
        let c = campaign();
        let later = ClosureDecision {
            restoration_deadline: date("2024-06-30"),
            cancellation_application_deadline: date("2024-07-31"),
            ..decision()
        };
        let facts = run(&[
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (OFFICE, T::Approve, "2023-11-10", Ok(S::DispositionApproved)),
            (
                OFFICE,
                T::IssueClosureDecision {
                    decision: later.clone(),
                },
                "2023-11-20",
                Ok(S::ClosureDecided),
            ),
        ]);
        let open = |on: &str| {
            open_deadlines(&facts, &c, date(on))
                .into_iter()
                .map(|d| (d.key, d.due.to_string(), d.status))
                .collect::<Vec<_>>()
        };
        // Not overdue on the campaign's 2024-03-31, nor on 2024-04-01.
        assert!(open("2024-04-01").contains(&(
            "cancel_rectification".into(),
            "2024-06-30".into(),
            DeadlineStatus::Pending
        )));
        for on in ["2024-04-01", "2024-06-30"] {
            for t in [T::TakeOver, T::Announce] {
                let refused = apply(&facts, &t, OFFICE, date(on), &c);
                assert!(refused.is_err(), "{} on {on}", t.name());
            }
        }
        assert!(apply(&facts, &T::TakeOver, TOWNSHIP, date("2024-07-01"), &c).is_ok());
        assert!(apply(&facts, &T::Announce, OFFICE, date("2024-07-01"), &c).is_ok());
        // The township's two months after the holder's deadline move with it: 2024-05-31 +
        // (2024-06-30 − 2024-03-31 = 91 days) = 2024-08-30.
        let mut taken = apply(&facts, &T::TakeOver, TOWNSHIP, date("2024-07-01"), &c).unwrap();
        taken.stage = S::PlanCompiled;
        let takeover = open_deadlines(&taken, &c, date("2024-07-01"))
            .into_iter()
            .find(|d| d.key == "township_takeover")
            .unwrap();
        assert_eq!(takeover.due, date("2024-08-30"));
        let rectification = open_deadlines(&taken, &c, date("2024-07-01"))
            .into_iter()
            .find(|d| d.key == "cancel_rectification")
            .unwrap();
        assert_eq!(rectification.responsible, Responsible::Township);
    }

    #[test]
    fn a_decision_issued_today_cannot_be_announced_as_lapsed_today() {
        let c = campaign();
        let mut facts = MineFacts::new(TOWN);
        facts.disposition = Some(Disposition::Cancel);
        facts.stage = S::DispositionApproved;
        facts.approved_on = Some(date("2023-11-10"));
        let late = ClosureDecision {
            restoration_deadline: date("2027-06-30"),
            cancellation_application_deadline: date("2027-07-31"),
            ..decision()
        };
        let issued = apply(
            &facts,
            &T::IssueClosureDecision { decision: late },
            OFFICE,
            date("2024-04-05"),
            &c,
        )
        .unwrap();
        let refused = apply(&issued, &T::Announce, OFFICE, date("2024-04-05"), &c);
        assert!(refused.unwrap_err().to_string().contains("only when"));
        // A decision cannot give a deadline that has already passed.
        let past = apply(
            &facts,
            &T::IssueClosureDecision {
                decision: decision(),
            },
            OFFICE,
            date("2024-04-05"),
            &c,
        );
        assert!(past.unwrap_err().to_string().contains("already past"));
        // Without a decision there is nothing to announce on.
        let bare = apply(&facts, &T::Announce, OFFICE, date("2024-04-05"), &c);
        assert!(bare.unwrap_err().to_string().contains("关闭决定文书"));
    }

    #[test]
    fn a_rectification_order_sets_a_reinspection_deadline() {
        let c = campaign();
        let mut facts = MineFacts::new(TOWN);
        facts.disposition = Some(Disposition::Cancel);
        facts.stage = S::PreliminaryPassed;
        facts.closure_decision = Some(decision());
        let rectify = T::RecordAcceptance {
            verdict: AcceptanceVerdict::Rectify {
                requirements: "截排水沟淤堵".into(),
                reinspect_by: date("2024-03-10"),
            },
        };
        let ordered = apply(&facts, &rectify, OFFICE, date("2024-02-10"), &c).unwrap();
        let reinspection = open_deadlines(&ordered, &c, date("2024-03-11"))
            .into_iter()
            .find(|d| d.key == REINSPECTION_KEY)
            .unwrap();
        assert_eq!(reinspection.due, date("2024-03-10"));
        assert_eq!(reinspection.status, DeadlineStatus::Overdue);
        assert_eq!(reinspection.responsible, Responsible::Holder);
    }

    #[test]
    fn a_past_days_facts_are_replayed_from_the_trail_old_shapes_included() {
        let c = campaign();
        let mine = Mine {
            id: Uuid::from_u128(1),
            name: "河口砂石矿".into(),
            licence_no: "C1".into(),
            holder: "某公司".into(),
            holder_user_id: None,
            township_id: TOWN,
            mineral: "建筑用砂".into(),
            mining_method: "露天开采".into(),
            area_ha: None,
            boundary: None,
            campaign_id: c.id.clone(),
            facts: MineFacts::new(TOWN),
            version: 0,
            created_at: 0,
            updated_at: 0,
        };
        let event = |transition: serde_json::Value, to: Stage, on: &str| MineEvent {
            id: Uuid::now_v7(),
            mine_id: mine.id,
            transition: String::new(),
            from_stage: String::new(),
            to_stage: to.code().into(),
            actor_id: None,
            reason: String::new(),
            data: serde_json::json!({ "transition": transition }),
            as_of: on.into(),
            recorded_on: on.into(),
            created_at: 0,
        };
        let trail = [
            event(
                serde_json::json!({"transition": "propose", "disposition": "continue"}),
                S::DispositionProposed,
                "2023-08-20",
            ),
            event(
                serde_json::json!({"transition": "approve"}),
                S::DispositionApproved,
                "2023-08-31",
            ),
            // The shape before documents were records.
            event(
                serde_json::json!({"transition": "record_approval_document",
                                   "document": "development_plan"}),
                S::DispositionApproved,
                "2023-10-01",
            ),
            event(
                serde_json::json!({"transition": "grant_extension"}),
                S::DispositionApproved,
                "2024-03-01",
            ),
        ];
        let before = facts_as_of(&mine, &trail, date("2023-08-25"), &c);
        assert_eq!(before.stage, S::DispositionProposed);
        let autumn = facts_as_of(&mine, &trail, date("2023-12-01"), &c);
        assert_eq!(autumn.approved_on, Some(date("2023-08-31")));
        assert_eq!(
            autumn.documents[&ApprovalDocument::DevelopmentPlan].date,
            date("2023-10-01")
        );
        assert_eq!(autumn.extensions_granted, 0);
        let spring = facts_as_of(&mine, &trail, date("2024-03-01"), &c);
        assert_eq!(spring.extensions_granted, 1);
    }

    #[test]
    fn documents_are_records_with_number_issuer_and_date() {
        let c = campaign();
        let mut facts = MineFacts::new(TOWN);
        facts.disposition = Some(Disposition::Continue);
        facts.stage = S::DispositionApproved;
        facts.approved_on = Some(date("2023-11-10"));
        let with = |record: DocumentRecord| T::RecordApprovalDocument {
            document: ApprovalDocument::EnvironmentalImpactReport,
            record,
        };
        let unnumbered = DocumentRecord {
            number: " ".into(),
            ..doc("2024-01-05")
        };
        let e = apply(&facts, &with(unnumbered), TOWNSHIP, date("2024-01-10"), &c);
        assert!(e.unwrap_err().to_string().contains("document number"));
        let e = apply(
            &facts,
            &with(doc("2024-01-11")),
            TOWNSHIP,
            date("2024-01-10"),
            &c,
        );
        assert!(e.unwrap_err().to_string().contains("after the step"));
        let ok = apply(
            &facts,
            &with(doc("2024-01-05")),
            TOWNSHIP,
            date("2024-01-10"),
            &c,
        )
        .unwrap();
        assert_eq!(
            ok.documents[&ApprovalDocument::EnvironmentalImpactReport].issuer,
            "宜春市自然资源局"
        );
        let leader = T::AssignCountyLeader {
            leader: "刘副县长".into(),
        };
        assert!(apply(&ok, &leader, TOWNSHIP, date("2024-01-11"), &c).is_err());
        let led = apply(&ok, &leader, OFFICE, date("2024-01-11"), &c).unwrap();
        assert_eq!(led.county_leader.as_deref(), Some("刘副县长"));
        let mut cancelled = led.clone();
        cancelled.stage = S::LicenceCancelled;
        let notice = T::RecordBusinessLicenceCancellation {
            notice: DocumentRecord {
                number: "（上）登记企销字〔2024〕第88号".into(),
                issuer: "上高县市场监督管理局".into(),
                date: date("2024-06-20"),
            },
        };
        assert!(apply(&led, &notice, OFFICE, date("2024-06-21"), &c).is_err());
        let done = apply(&cancelled, &notice, OFFICE, date("2024-06-21"), &c).unwrap();
        assert!(done.business_licence_cancellation.is_some());
        assert!(apply(&done, &notice, OFFICE, date("2024-06-22"), &c).is_err());
    }

    #[test]
    fn illegal_transitions_are_refused_with_a_reason() {
        let other_township = Actor {
            role: Role::TownshipOfficer,
            township: Some(Uuid::from_u128(8)),
        };
        let inspector = Actor {
            role: Role::DepartmentInspector,
            township: None,
        };
        run(&[
            (
                OFFICE,
                T::Approve,
                "2023-11-01",
                Err("not possible while the mine is registered"),
            ),
            (
                other_township,
                T::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-01",
                Err("another township"),
            ),
            (
                inspector,
                T::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-01",
                Err("may not propose"),
            ),
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::Continue,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (TOWNSHIP, T::Approve, "2023-11-02", Err("may not approve")),
            (OFFICE, T::Approve, "2023-11-02", Ok(S::DispositionApproved)),
            (
                OFFICE,
                T::IssueClosureDecision {
                    decision: decision(),
                },
                "2023-11-03",
                Err("注销 mines only"),
            ),
            (
                inspector,
                T::TakeOver,
                "2024-03-31",
                Err("may not take_over"),
            ),
            (
                TOWNSHIP,
                T::TakeOver,
                "2024-03-31",
                Err("missed the rectification deadline"),
            ),
            (
                TOWNSHIP,
                T::TakeOver,
                "2024-04-01",
                Ok(S::DispositionApproved),
            ),
            (TOWNSHIP, T::TakeOver, "2024-04-02", Err("already took")),
            (OFFICE, T::CancelLicence, "2024-04-02", Err("not possible")),
        ]);
    }

    #[test]
    fn a_never_produced_mine_is_protected_on_approval() {
        let facts = run(&[
            (
                TOWNSHIP,
                T::Propose {
                    disposition: Disposition::NeverProduced,
                },
                "2023-11-01",
                Ok(S::DispositionProposed),
            ),
            (OFFICE, T::Approve, "2023-11-10", Ok(S::Protected)),
            (
                TOWNSHIP,
                T::PassPreliminary,
                "2023-12-01",
                Err("not possible"),
            ),
        ]);
        assert!(open_deadlines(&facts, &campaign(), date("2030-01-01")).is_empty());
    }

    #[test]
    fn open_deadlines_are_overdue_or_due_soon_as_of_a_date() {
        let c = campaign();
        let mut facts = MineFacts::new(TOWN);
        facts.disposition = Some(Disposition::Continue);
        facts.stage = S::DispositionApproved;
        facts.approved_on = Some(date("2023-08-31"));
        let as_of = |facts: &MineFacts, s: &str| {
            open_deadlines(facts, &c, date(s))
                .into_iter()
                .map(|d| (d.key, d.status, d.due.to_string()))
                .collect::<Vec<_>>()
        };
        let on_feb_10 = as_of(&facts, "2024-02-10");
        assert!(on_feb_10.contains(&(
            "approval_documents".into(),
            DeadlineStatus::DueSoon,
            "2024-02-29".into()
        )));
        assert!(on_feb_10.contains(&(
            "continue_unused_areas".into(),
            DeadlineStatus::Pending,
            "2024-03-31".into()
        )));
        let on_mar_1 = as_of(&facts, "2024-03-01");
        assert!(on_mar_1.contains(&(
            "approval_documents".into(),
            DeadlineStatus::Overdue,
            "2024-02-29".into()
        )));
        assert!(on_mar_1.contains(&(
            "continue_unused_areas".into(),
            DeadlineStatus::DueSoon,
            "2024-03-31".into()
        )));
        facts.extensions_granted = 1;
        let extended = as_of(&facts, "2024-03-01");
        assert!(extended.contains(&(
            "approval_documents".into(),
            DeadlineStatus::Pending,
            "2024-05-29".into()
        )));
    }
}
