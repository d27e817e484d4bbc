//! A stopped mine: its disposition, where its workflow stands, what the workflow remembers, its
//! audit trail and case log.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The disposition (处置) the county approves for a stopped mine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// 注销: restore, pass acceptance (with the expert opinion letter), then cancel the licence.
    Cancel,
    /// 延续: complete the four approval documents and the rectification, then extend.
    Continue,
    /// 未生产: never produced; keep the original landform.
    NeverProduced,
}

impl Disposition {
    /// All dispositions, in the plan's order.
    pub const ALL: [Disposition; 3] = [
        Disposition::Cancel,
        Disposition::Continue,
        Disposition::NeverProduced,
    ];

    /// The code used in data files and the API (`cancel`, `continue`, `never_produced`).
    pub fn code(self) -> &'static str {
        match self {
            Disposition::Cancel => "cancel",
            Disposition::Continue => "continue",
            Disposition::NeverProduced => "never_produced",
        }
    }

    /// The UI word (注销, 延续, 未生产).
    pub fn name_zh(self) -> &'static str {
        match self {
            Disposition::Cancel => "注销",
            Disposition::Continue => "延续",
            Disposition::NeverProduced => "未生产",
        }
    }

    /// Parses a code; the Chinese word is accepted too, since county staff write the files.
    pub fn from_code(code: &str) -> Option<Self> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.code() == code || d.name_zh() == code)
    }
}

/// Where a mine stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Registered,
    DispositionProposed,
    DispositionApproved,
    ClosureDecided,
    PlanCompiled,
    PreliminaryPassed,
    RectificationRequired,
    AcceptancePassed,
    JointReviewPassed,
    LicenceExtended,
    Announced,
    RightAbandoned,
    CancellationApplied,
    LicenceCancelled,
    Protected,
}

impl Stage {
    pub const ALL: [Stage; 15] = [
        Stage::Registered,
        Stage::DispositionProposed,
        Stage::DispositionApproved,
        Stage::ClosureDecided,
        Stage::PlanCompiled,
        Stage::PreliminaryPassed,
        Stage::RectificationRequired,
        Stage::AcceptancePassed,
        Stage::JointReviewPassed,
        Stage::LicenceExtended,
        Stage::Announced,
        Stage::RightAbandoned,
        Stage::CancellationApplied,
        Stage::LicenceCancelled,
        Stage::Protected,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Stage::Registered => "registered",
            Stage::DispositionProposed => "disposition_proposed",
            Stage::DispositionApproved => "disposition_approved",
            Stage::ClosureDecided => "closure_decided",
            Stage::PlanCompiled => "plan_compiled",
            Stage::PreliminaryPassed => "preliminary_passed",
            Stage::RectificationRequired => "rectification_required",
            Stage::AcceptancePassed => "acceptance_passed",
            Stage::JointReviewPassed => "joint_review_passed",
            Stage::LicenceExtended => "licence_extended",
            Stage::Announced => "announced",
            Stage::RightAbandoned => "right_abandoned",
            Stage::CancellationApplied => "cancellation_applied",
            Stage::LicenceCancelled => "licence_cancelled",
            Stage::Protected => "protected",
        }
    }

    pub fn parse(code: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The UI words.
    pub fn name_zh(self) -> &'static str {
        match self {
            Stage::Registered => "已登记",
            Stage::DispositionProposed => "处置意见已提出",
            Stage::DispositionApproved => "处置已批准",
            Stage::ClosureDecided => "已下达关闭决定",
            Stage::PlanCompiled => "已编制生态修复方案",
            Stage::PreliminaryPassed => "初验通过",
            Stage::RectificationRequired => "限期整改",
            Stage::AcceptancePassed => "验收通过",
            Stage::JointReviewPassed => "联审联批通过",
            Stage::LicenceExtended => "已办理延续",
            Stage::Announced => "已发布注销公告",
            Stage::RightAbandoned => "视为自动放弃矿权",
            Stage::CancellationApplied => "已申请注销",
            Stage::LicenceCancelled => "采矿许可证已注销",
            Stage::Protected => "保持原始地貌",
        }
    }

    /// Stages in which the rectification is still to be done (deadlines of rectification apply).
    pub fn before_acceptance(self) -> bool {
        matches!(
            self,
            Stage::DispositionApproved
                | Stage::ClosureDecided
                | Stage::PlanCompiled
                | Stage::PreliminaryPassed
                | Stage::RectificationRequired
        )
    }
}

/// The four approval documents of a 延续 mine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDocument {
    /// 《开发利用方案》
    DevelopmentPlan,
    /// 《二合一方案》
    TwoInOnePlan,
    /// 《环评报告》
    EnvironmentalImpactReport,
    /// 《水土保持方案》
    SoilConservationPlan,
}

impl ApprovalDocument {
    pub const ALL: [ApprovalDocument; 4] = [
        ApprovalDocument::DevelopmentPlan,
        ApprovalDocument::TwoInOnePlan,
        ApprovalDocument::EnvironmentalImpactReport,
        ApprovalDocument::SoilConservationPlan,
    ];
}

/// 关闭决定文书: the county's closure decision for a 注销 mine, with its five named contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClosureDecision {
    /// 文号, e.g. 上府字〔2024〕12号.
    pub document_no: String,
    /// 生态修复的责任主体.
    pub responsible_party: String,
    /// 修复期限.
    #[schema(value_type = String, format = Date)]
    pub restoration_deadline: NaiveDate,
    /// 修复监管主体.
    pub supervisor: String,
    /// 注销申请期限.
    #[schema(value_type = String, format = Date)]
    pub cancellation_application_deadline: NaiveDate,
    /// 后期管护责任主体.
    pub maintenance_party: String,
}

/// A document on record (an approval, minutes, a notice): its number (文号), the body that
/// issued it, and its date. Approvals are records, never flags: a clerk can find the paper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DocumentRecord {
    /// 文号, e.g. 上自然资审〔2024〕5号. Empty only for documents recorded before numbers were
    /// kept (migrated data).
    pub number: String,
    /// 发文机关, e.g. 上高县自然资源局.
    pub issuer: String,
    /// The document's date (成文日期).
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
}

impl DocumentRecord {
    /// Whether number and issuer are filled in.
    pub fn is_complete(&self) -> bool {
        !self.number.trim().is_empty() && !self.issuer.trim().is_empty()
    }
}

/// 限期整改: what an acceptance required and when the mine is re-inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RectificationOrder {
    pub requirements: String,
    /// The re-inspection date the acceptance set.
    #[schema(value_type = String, format = Date)]
    pub reinspect_by: NaiveDate,
    /// The day the order was given.
    #[schema(value_type = String, format = Date)]
    pub ordered_on: NaiveDate,
}

/// The decision on the production process and equipment a mine keeps (保留的生产工艺、生产设备):
/// led by 工信局, approved jointly with 自然资源、生态环境、应急管理, reported to the county.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EquipmentDecision {
    /// Whether the retained process and equipment comply with current policy.
    pub compliant: bool,
    /// What was found and what follows (e.g. which equipment is removed).
    pub findings: String,
    /// The decision document (issuer normally 上高县工业和信息化局).
    pub document: DocumentRecord,
}

/// Outcome of an on-site acceptance as recorded in the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum AcceptanceVerdict {
    /// 达标 (for 注销 mines: with the signed 验收合格意见书).
    Passed { expert_letter_signed: bool },
    /// 限期整改: requirements and the re-inspection date.
    Rectify {
        requirements: String,
        #[schema(value_type = String, format = Date)]
        reinspect_by: NaiveDate,
    },
    /// 不达标.
    Failed { reason: String },
}

/// What the workflow remembers about a mine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MineFacts {
    pub stage: Stage,
    pub disposition: Option<Disposition>,
    pub township_id: Uuid,
    #[schema(value_type = Option<String>, format = Date)]
    pub approved_on: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub closure_decided_on: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub accepted_on: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub announced_on: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub cancelled_on: Option<NaiveDate>,
    pub extensions_granted: u32,
    pub township_took_over: bool,
    /// The approval documents of a 延续 mine recorded so far, each with its number, issuer and
    /// date.
    #[serde(default)]
    pub documents: BTreeMap<ApprovalDocument, DocumentRecord>,
    pub closure_decision: Option<ClosureDecision>,
    /// The county leader assigned to the mine (挂点县领导), who urges the holder on.
    #[serde(default)]
    pub county_leader: Option<String>,
    /// The open 限期整改 order (cleared when the acceptance passes).
    #[serde(default)]
    pub rectification: Option<RectificationOrder>,
    /// The 县政府常务会议's approval a 延续 licence extension needs (its minutes).
    #[serde(default)]
    pub executive_meeting: Option<DocumentRecord>,
    /// The 工信局-led decision on retained production process and equipment.
    #[serde(default)]
    pub equipment_decision: Option<EquipmentDecision>,
    /// The business licence (营业执照) cancelled by 市场监督管理局 after the mining licence.
    #[serde(default)]
    pub business_licence_cancellation: Option<DocumentRecord>,
}

impl MineFacts {
    pub fn new(township_id: Uuid) -> Self {
        MineFacts {
            stage: Stage::Registered,
            disposition: None,
            township_id,
            approved_on: None,
            closure_decided_on: None,
            accepted_on: None,
            announced_on: None,
            cancelled_on: None,
            extensions_granted: 0,
            township_took_over: false,
            documents: BTreeMap::new(),
            closure_decision: None,
            county_leader: None,
            rectification: None,
            executive_meeting: None,
            equipment_decision: None,
            business_licence_cancellation: None,
        }
    }
}

/// A stopped mine in the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Mine {
    pub id: Uuid,
    /// 矿山名称
    pub name: String,
    /// 采矿许可证号
    pub licence_no: String,
    /// 采矿权人
    pub holder: String,
    /// The holder's account, once the county office has bound it (see `set_mine_holder`).
    pub holder_user_id: Option<Uuid>,
    pub township_id: Uuid,
    /// 矿种
    pub mineral: String,
    /// 开采方式
    pub mining_method: String,
    /// 矿区面积 in hectares, an exact decimal string.
    pub area_ha: Option<String>,
    /// Boundary corner points as given and converted (see `acceptance::geo`).
    pub boundary: Option<serde_json::Value>,
    pub campaign_id: String,
    pub facts: crate::model::MineFacts,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One workflow transition of a mine (the audit trail).
#[derive(Debug, Clone, PartialEq)]
pub struct MineEvent {
    pub id: Uuid,
    pub mine_id: Uuid,
    pub transition: String,
    pub from_stage: String,
    pub to_stage: String,
    pub actor_id: Option<Uuid>,
    pub reason: String,
    pub data: serde_json::Value,
    /// The date the transition counts as of: the date it happened on paper when the request
    /// gave one (`effective_date`), else the server's date.
    pub as_of: String,
    /// The server's date when it received the transition (county calendar).
    pub recorded_on: String,
    pub created_at: i64,
}

/// A case record on a mine's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    pub id: Uuid,
    pub mine_id: Uuid,
    /// `collective_study` (一事一议), `referral` (线索移送) or `announcement` (公告).
    pub kind: String,
    pub data: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
}
