//! Campaigns (专项行动) and their deadlines, as data, with the date arithmetic behind them.
//!
//! The 2023 Shanggao plan sets absolute deadlines (restoration plans by 2023-12-31, exposed areas
//! rectified by 2024-03-31, township take-over by 2024-05-31) and relative ones (延续 mines: six
//! months from the disposition, one three-month extension; cancellation application within 30
//! days of passing acceptance; three years of maintenance). Another county or year is a new
//! campaign **file**, not code: `campaigns/shanggao-2023.toml` is the default.
//!
//! # Vocabulary
//! - **deadline**: a named due date (`key`) for mines of some dispositions, owed by a
//!   **responsible** party; either a fixed date (`due`) or a **period** after an **anchor** event
//!   in the mine's history (`from` + `days` / `months` / `years`), optionally with **extensions**.
//! - **due soon**: due within the campaign's `due_soon_days` (inclusive) and not yet past;
//!   **overdue**: the as-of date is after the due date (the due date itself is still in time).
//! - **month arithmetic** clamps to the month end: 2023-08-31 + 6 months = 2024-02-29;
//!   2024-02-29 + 12 months = 2025-02-28 (what "within six months" means in Chinese
//!   administrative practice, and what `chrono` does).
//!
//! # File format
//! ```toml
//! [campaign]
//! id = "shanggao-2023"              # [a-z0-9._-]
//! title = "上高县停产非煤矿山生态环境整治专项行动"
//! document = "上府办发〔2023〕35号"   # optional
//! issued = 2023-10-11               # optional; TOML date or "YYYY-MM-DD"
//! due_soon_days = 30                # optional, default 30
//!
//! [[deadlines]]
//! key = "approval_documents"        # [a-z][a-z0-9_]*, unique
//! title = "完善审批手续并完成整治"
//! applies_to = ["continue"]         # dispositions (at least one)
//! responsible = "holder"            # holder | township | county_office | maintenance_body
//! tracks = "approval_documents"     # optional, the work it tracks (see [`Work`]): restoration_plan
//!                                   # | rectification | approval_documents | township_takeover
//!                                   # | cancellation_application | maintenance | other (default)
//! from = "disposition_approved"     # anchor event (see [`Anchor`]) …
//! months = 6                        # … plus exactly one of days / months / years
//! extension_months = 3              # optional: each extension adds this many months
//! max_extensions = 1                # optional (default 1 when extension_months is set)
//! note = "逾期未完成的给予3个月的整改期限"   # optional
//!
//! [[deadlines]]
//! key = "restoration_plan"
//! title = "编制完生态修复方案"
//! applies_to = ["cancel"]
//! responsible = "holder"
//! due = 2023-12-31                  # a fixed date instead of from + period
//! ```

use std::{collections::BTreeMap, path::Path};

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::Disposition;

use super::datafile::{
    DataErrorKind as K, DataFileErrors, LoadError, Node, NodeValue, Reader, TableCursor,
};

/// The id of the built-in campaign ([`SHANGGAO_2023_TOML`]).
pub const DEFAULT_CAMPAIGN_ID: &str = "shanggao-2023";

/// The built-in default campaign (the 2023 Shanggao plan), as TOML text.
pub const SHANGGAO_2023_TOML: &str = include_str!("../../campaigns/shanggao-2023.toml");

/// Default look-ahead for "due soon" lists, in days.
pub const DEFAULT_DUE_SOON_DAYS: u32 = 30;

/// `date` plus `months` calendar months, clamped to the end of the target month
/// (2023-08-31 + 6 = 2024-02-29; 2024-02-29 + 12 = 2025-02-28). Negative `months` go back.
/// `None` only beyond chrono's date range.
pub fn add_months(date: NaiveDate, months: i32) -> Option<NaiveDate> {
    let n = Months::new(months.unsigned_abs());
    if months >= 0 {
        date.checked_add_months(n)
    } else {
        date.checked_sub_months(n)
    }
}

/// `date` plus `days` days (negative goes back). `None` only beyond chrono's date range.
pub fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let n = Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(n)
    } else {
        date.checked_sub_days(n)
    }
}

/// Where a due date stands as of a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DueStatus {
    /// More than the look-ahead away.
    Pending {
        /// Days until the due date.
        days_left: i64,
    },
    /// Due within the look-ahead (0 = due today).
    DueSoon {
        /// Days until the due date.
        days_left: i64,
    },
    /// Past the due date.
    Overdue {
        /// Days since the due date (1 = the day after).
        days_overdue: i64,
    },
}

/// Where `due` stands as of `as_of` with a look-ahead of `due_soon_days`.
pub fn due_status(due: NaiveDate, as_of: NaiveDate, due_soon_days: u32) -> DueStatus {
    let days_left = (due - as_of).num_days();
    if days_left < 0 {
        DueStatus::Overdue {
            days_overdue: -days_left,
        }
    } else if days_left <= i64::from(due_soon_days) {
        DueStatus::DueSoon { days_left }
    } else {
        DueStatus::Pending { days_left }
    }
}

/// Whether `due` has passed as of `as_of` (the due day itself is still in time).
pub fn is_overdue(due: NaiveDate, as_of: NaiveDate) -> bool {
    as_of > due
}

/// Whether `due` is today or within the next `due_soon_days` days as of `as_of`.
pub fn is_due_soon(due: NaiveDate, as_of: NaiveDate, due_soon_days: u32) -> bool {
    matches!(
        due_status(due, as_of, due_soon_days),
        DueStatus::DueSoon { .. }
    )
}

/// The event of a mine's history a relative deadline counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The county approved the disposition (处置意见经县政府研究同意).
    DispositionApproved,
    /// The county issued the closure decision (关闭决定文书).
    ClosureDecisionIssued,
    /// The acceptance passed (验收合格; for 注销 mines including the expert opinion letter).
    AcceptancePassed,
    /// The licence was cancelled (采矿许可证注销).
    LicenceCancelled,
    /// The cancellation announcement was published on the county website (注销公告).
    AnnouncementPublished,
}

impl Anchor {
    const ALL: [Anchor; 5] = [
        Anchor::DispositionApproved,
        Anchor::ClosureDecisionIssued,
        Anchor::AcceptancePassed,
        Anchor::LicenceCancelled,
        Anchor::AnnouncementPublished,
    ];

    /// The code used in files.
    pub fn code(self) -> &'static str {
        match self {
            Anchor::DispositionApproved => "disposition_approved",
            Anchor::ClosureDecisionIssued => "closure_decision_issued",
            Anchor::AcceptancePassed => "acceptance_passed",
            Anchor::LicenceCancelled => "licence_cancelled",
            Anchor::AnnouncementPublished => "announcement_published",
        }
    }
}

/// Who owes a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Responsible {
    /// 采矿权人, the mining-right holder.
    Holder,
    /// 乡镇/林场, the township or forest farm.
    Township,
    /// 县政府办, the county office.
    CountyOffice,
    /// 后期管护责任主体, the maintenance body named in the closure decision.
    MaintenanceBody,
}

impl Responsible {
    const ALL: [Responsible; 4] = [
        Responsible::Holder,
        Responsible::Township,
        Responsible::CountyOffice,
        Responsible::MaintenanceBody,
    ];

    /// The code used in files.
    pub fn code(self) -> &'static str {
        match self {
            Responsible::Holder => "holder",
            Responsible::Township => "township",
            Responsible::CountyOffice => "county_office",
            Responsible::MaintenanceBody => "maintenance_body",
        }
    }
}

/// The work a deadline tracks: decides while which stages of a mine it stays open and which
/// workflow guards read it. Keys are the file's own names; this closed list is the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// 生态修复方案: open until the plan is compiled.
    RestorationPlan,
    /// The rectification itself (整治, 验收): open until the acceptance passes; when it lapses the
    /// township may take over, and for a 注销 mine the right may be announced as abandoned.
    Rectification,
    /// The four approval documents of a 延续 mine; its extensions are the mine's extensions.
    ApprovalDocuments,
    /// The township's takeover of an overdue rectification: open once taken over.
    TownshipTakeover,
    /// The holder's cancellation application after the acceptance; when it lapses the
    /// cancellation is announced.
    CancellationApplication,
    /// 管护期 after the licence is cancelled: a period, not a debt (never overdue).
    Maintenance,
    /// Anything else: shown until the licence question is settled.
    Other,
}

impl Work {
    const ALL: [Work; 7] = [
        Work::RestorationPlan,
        Work::Rectification,
        Work::ApprovalDocuments,
        Work::TownshipTakeover,
        Work::CancellationApplication,
        Work::Maintenance,
        Work::Other,
    ];

    /// The code used in files.
    pub fn code(self) -> &'static str {
        match self {
            Work::RestorationPlan => "restoration_plan",
            Work::Rectification => "rectification",
            Work::ApprovalDocuments => "approval_documents",
            Work::TownshipTakeover => "township_takeover",
            Work::CancellationApplication => "cancellation_application",
            Work::Maintenance => "maintenance",
            Work::Other => "other",
        }
    }
}

/// A length of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "unit", content = "count", rename_all = "snake_case")]
pub enum Period {
    /// Calendar days.
    Days(u32),
    /// Calendar months, clamped to the month end ([`add_months`]); `years` are stored as 12·n.
    Months(u32),
}

impl Period {
    /// `date` + this period.
    pub fn after(self, date: NaiveDate) -> Option<NaiveDate> {
        match self {
            Period::Days(d) => add_days(date, i64::from(d)),
            Period::Months(m) => add_months(date, i32::try_from(m).ok()?),
        }
    }
}

/// When a deadline falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Due {
    /// On a fixed date.
    On {
        /// The date.
        #[schema(value_type = String, format = Date)]
        date: NaiveDate,
    },
    /// A period after an event of the mine's history.
    After {
        /// The event.
        anchor: Anchor,
        /// The period.
        period: Period,
        /// Extensions that may be granted, if any.
        extension: Option<Extension>,
    },
}

/// Extensions of a relative deadline ("逾期未完成的给予3个月的整改期限").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Extension {
    /// Months each extension adds (counted from the previous due date).
    pub months: u32,
    /// How many extensions may be granted.
    pub max: u32,
}

/// One deadline of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deadline {
    /// Unique key (`approval_documents`, …), used by the workflow and dashboard.
    pub key: String,
    /// What must be done, in the plan's words.
    pub title: String,
    /// Dispositions the deadline applies to.
    pub applies_to: Vec<Disposition>,
    /// Who owes it.
    pub responsible: Responsible,
    /// The work it tracks (`tracks` in the file; `other` when absent).
    pub tracks: Work,
    /// When it falls due.
    pub due: Due,
    /// Remarks.
    pub note: Option<String>,
}

/// Why a due date cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadlineError {
    /// The deadline counts from an event that has not happened (no date given).
    #[error("deadline {key} counts from {anchor:?}, which has no date yet")]
    AnchorMissing {
        /// Deadline key.
        key: String,
        /// The event.
        anchor: Anchor,
    },
    /// More extensions than the campaign allows.
    #[error("deadline {key} allows {max} extension(s), {granted} requested")]
    TooManyExtensions {
        /// Deadline key.
        key: String,
        /// Requested.
        granted: u32,
        /// Allowed.
        max: u32,
    },
    /// The date falls outside the representable range.
    #[error("deadline {key}: date out of range")]
    OutOfRange {
        /// Deadline key.
        key: String,
    },
}

impl Deadline {
    /// Whether the deadline applies to a mine of this disposition.
    pub fn applies(&self, disposition: Disposition) -> bool {
        self.applies_to.contains(&disposition)
    }

    /// The due date, given the date of the anchor event (ignored for fixed dates) and the number
    /// of extensions granted so far (must be 0 for a deadline without extensions).
    pub fn due_date(
        &self,
        anchor_date: Option<NaiveDate>,
        extensions_granted: u32,
    ) -> Result<NaiveDate, DeadlineError> {
        let (max, extension_months) = match self.due {
            Due::After {
                extension: Some(e), ..
            } => (e.max, e.months),
            _ => (0, 0),
        };
        if extensions_granted > max {
            return Err(DeadlineError::TooManyExtensions {
                key: self.key.clone(),
                granted: extensions_granted,
                max,
            });
        }
        let out_of_range = || DeadlineError::OutOfRange {
            key: self.key.clone(),
        };
        match self.due {
            Due::On { date } => Ok(date),
            Due::After { anchor, period, .. } => {
                let start = anchor_date.ok_or_else(|| DeadlineError::AnchorMissing {
                    key: self.key.clone(),
                    anchor,
                })?;
                let mut due = period.after(start).ok_or_else(out_of_range)?;
                // Each extension counts from the previous due date, so month-end clamping
                // compounds exactly as a clerk counting on a calendar would.
                for _ in 0..extensions_granted {
                    due = Period::Months(extension_months)
                        .after(due)
                        .ok_or_else(out_of_range)?;
                }
                Ok(due)
            }
        }
    }
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    /// Stable identifier.
    pub id: String,
    /// Title.
    pub title: String,
    /// The government document it implements.
    pub document: Option<String>,
    /// Issue date of the document.
    #[schema(value_type = Option<String>, format = Date)]
    pub issued: Option<NaiveDate>,
    /// The plan's full title as published (《…方案》 without the brackets), cited by notices.
    pub plan_title: Option<String>,
    /// The county (e.g. 上高县): written before township names in notices.
    pub county: Option<String>,
    /// The government that issues closure decisions and notices (e.g. 上高县人民政府).
    pub government: Option<String>,
    /// Look-ahead for "due soon", in days.
    pub due_soon_days: u32,
    /// The deadlines, in file order.
    pub deadlines: Vec<Deadline>,
}

impl Campaign {
    /// Parses and validates a campaign file; on failure returns every error with its location.
    pub fn parse(text: &str) -> Result<Campaign, DataFileErrors> {
        let (mut r, root) = Reader::parse(text)?;
        let campaign = read_campaign(&mut r, &root);
        let fallback = Campaign {
            id: String::new(),
            title: String::new(),
            document: None,
            issued: None,
            plan_title: None,
            county: None,
            government: None,
            due_soon_days: DEFAULT_DUE_SOON_DAYS,
            deadlines: Vec::new(),
        };
        r.finish(campaign.unwrap_or(fallback))
    }

    /// Reads and parses a campaign file (the only file access of this module).
    pub fn load(path: &Path) -> Result<Campaign, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Campaign::parse(&text).map_err(|errors| LoadError::Invalid {
            path: path.display().to_string(),
            errors,
        })
    }

    /// The built-in default campaign ([`SHANGGAO_2023_TOML`]).
    pub fn shanggao_2023() -> Result<Campaign, DataFileErrors> {
        Campaign::parse(SHANGGAO_2023_TOML)
    }

    /// A deadline by key.
    pub fn deadline(&self, key: &str) -> Option<&Deadline> {
        self.deadlines.iter().find(|d| d.key == key)
    }

    /// The deadlines of a mine of this disposition that track `work`.
    pub fn tracking(
        &self,
        disposition: Disposition,
        work: Work,
    ) -> impl Iterator<Item = &Deadline> {
        self.deadlines_for(disposition)
            .filter(move |d| d.tracks == work)
    }

    /// The deadlines that apply to a mine of this disposition.
    pub fn deadlines_for(&self, disposition: Disposition) -> impl Iterator<Item = &Deadline> {
        self.deadlines
            .iter()
            .filter(move |d| d.applies(disposition))
    }

    /// Where `due` stands as of `as_of`, with this campaign's look-ahead.
    pub fn status(&self, due: NaiveDate, as_of: NaiveDate) -> DueStatus {
        due_status(due, as_of, self.due_soon_days)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the file.

const CAMPAIGN_KEYS: &[&str] = &[
    "id",
    "title",
    "document",
    "issued",
    "plan_title",
    "county",
    "government",
    "due_soon_days",
];
const DEADLINE_KEYS: &[&str] = &[
    "key",
    "title",
    "applies_to",
    "responsible",
    "tracks",
    "due",
    "from",
    "days",
    "months",
    "years",
    "extension_months",
    "max_extensions",
    "note",
];

fn read_date(r: &mut Reader, node: &Node, path: &str) -> Option<NaiveDate> {
    let text = match &node.value {
        NodeValue::Leaf(toml::Value::Datetime(dt)) => match (dt.date, dt.time) {
            (Some(d), None) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
            _ => {
                r.error_at(
                    node,
                    path,
                    K::BadDate,
                    format!("{dt} is not a plain date (YYYY-MM-DD)"),
                );
                return None;
            }
        },
        NodeValue::Leaf(toml::Value::String(s)) => s.clone(),
        _ => {
            r.error_at(node, path, K::WrongType, "expected a date (YYYY-MM-DD)");
            return None;
        }
    };
    match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        Ok(d) if d.year() >= 1900 => Some(d),
        _ => {
            r.error_at(
                node,
                path,
                K::BadDate,
                format!("{text:?} is not a valid date (YYYY-MM-DD)"),
            );
            None
        }
    }
}

fn read_count(r: &mut Reader, t: &TableCursor<'_>, key: &str, max: u32) -> Option<u32> {
    let node = t.get(key)?;
    let path = t.child(key);
    let v = r.integer(node, &path)?;
    match u32::try_from(v) {
        Ok(v) if (1..=max).contains(&v) => Some(v),
        _ => {
            r.error_at(
                node,
                &path,
                K::OutOfRange,
                format!("{v} is not in 1..={max}"),
            );
            None
        }
    }
}

fn read_campaign(r: &mut Reader, root: &BTreeMap<String, Node>) -> Option<Campaign> {
    let root = r.root(root);
    r.deny_unknown(&root, &["campaign", "deadlines"]);
    let header = r
        .required(&root, "campaign")
        .and_then(|n| r.table(n, "campaign"));
    let (mut id, mut title, mut document, mut issued) = (None, None, None, None);
    let (mut plan_title, mut county, mut government) = (None, None, None);
    let mut due_soon_days = Some(DEFAULT_DUE_SOON_DAYS);
    if let Some(h) = &header {
        r.deny_unknown(h, CAMPAIGN_KEYS);
        id = r.req_text(h, "id");
        if let (Some(i), Some(node)) = (&id, h.get("id"))
            && !i
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        {
            r.error_at(
                node,
                &h.child("id"),
                K::BadKey,
                "use lowercase ASCII letters, digits, '.', '_' and '-'",
            );
        }
        title = r.req_text(h, "title");
        document = r.opt_text(h, "document");
        plan_title = r.opt_text(h, "plan_title");
        county = r.opt_text(h, "county");
        government = r.opt_text(h, "government");
        issued = h
            .get("issued")
            .and_then(|n| read_date(r, n, &h.child("issued")));
        if h.get("due_soon_days").is_some() {
            due_soon_days = read_count(r, h, "due_soon_days", 366);
        }
    }
    let mut deadlines: Vec<Deadline> = Vec::new();
    if let Some(list) = r
        .required(&root, "deadlines")
        .and_then(|n| r.array(n, "deadlines"))
    {
        if list.is_empty() {
            r.error(
                "deadlines",
                None,
                K::Empty,
                "a campaign needs at least one deadline",
            );
        }
        for (i, node) in list.iter().enumerate() {
            let path = format!("deadlines[{i}]");
            if let Some(d) = read_deadline(r, node, &path) {
                if deadlines.iter().any(|x| x.key == d.key) {
                    let line = r.line(node);
                    r.error(
                        format!("{path}.key"),
                        line,
                        K::Duplicate,
                        format!("deadline key {:?} is already used", d.key),
                    );
                }
                deadlines.push(d);
            }
        }
    }
    Some(Campaign {
        id: id?,
        title: title?,
        document,
        issued,
        plan_title,
        county,
        government,
        due_soon_days: due_soon_days?,
        deadlines,
    })
}

fn read_deadline(r: &mut Reader, node: &Node, path: &str) -> Option<Deadline> {
    let t = r.table(node, path)?;
    r.deny_unknown(&t, DEADLINE_KEYS);
    let key = r.req_identifier(&t, "key");
    let title = r.req_text(&t, "title");
    let note = r.opt_text(&t, "note");
    let applies_to = r.required(&t, "applies_to").and_then(|n| {
        let p = t.child("applies_to");
        let list = r.array(n, &p)?;
        if list.is_empty() {
            r.error_at(n, &p, K::Empty, "list at least one disposition");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in list.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            match r.string(item, &ip) {
                Some(code) => match Disposition::from_code(&code) {
                    Some(d) if !out.contains(&d) => out.push(d),
                    Some(_) => {
                        r.error_at(item, &ip, K::Duplicate, format!("{code:?} listed twice"));
                        ok = false;
                    }
                    None => {
                        r.error_at(
                            item,
                            &ip,
                            K::UnknownDisposition,
                            format!(
                                "unknown disposition {code:?}; expected cancel, continue or \
                                 never_produced"
                            ),
                        );
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        ok.then_some(out)
    });
    let responsible = r.required(&t, "responsible").and_then(|n| {
        let p = t.child("responsible");
        let code = r.string(n, &p)?;
        let found = Responsible::ALL.into_iter().find(|x| x.code() == code);
        if found.is_none() {
            r.error_at(
                n,
                &p,
                K::UnknownResponsible,
                format!(
                    "unknown responsible party {code:?}; expected holder, township, \
                     county_office or maintenance_body"
                ),
            );
        }
        found
    });
    let tracks = match t.get("tracks") {
        None => Some(Work::Other),
        Some(n) => {
            let p = t.child("tracks");
            r.string(n, &p).and_then(|code| {
                let found = Work::ALL.into_iter().find(|x| x.code() == code);
                if found.is_none() {
                    let known: Vec<&str> = Work::ALL.iter().map(|w| w.code()).collect();
                    r.error_at(
                        n,
                        &p,
                        K::UnknownWork,
                        format!(
                            "unknown work {code:?}; expected one of {}",
                            known.join(", ")
                        ),
                    );
                }
                found
            })
        }
    };
    let due = read_due(r, &t);
    Some(Deadline {
        key: key?,
        title: title?,
        applies_to: applies_to?,
        responsible: responsible?,
        tracks: tracks?,
        due: due?,
        note,
    })
}

fn read_due(r: &mut Reader, t: &TableCursor<'_>) -> Option<Due> {
    let periods: Vec<&str> = ["days", "months", "years"]
        .into_iter()
        .filter(|k| t.get(k).is_some())
        .collect();
    let relative_keys = [
        "from",
        "days",
        "months",
        "years",
        "extension_months",
        "max_extensions",
    ];
    if let Some(n) = t.get("due") {
        for k in relative_keys {
            if let Some(other) = t.get(k) {
                r.error_at(
                    other,
                    &t.child(k),
                    K::Conflict,
                    format!("`{k}` cannot be combined with a fixed `due` date"),
                );
            }
        }
        let date = read_date(r, n, &t.child("due"))?;
        return Some(Due::On { date });
    }
    let Some(from) = t.get("from") else {
        r.error(
            t.child("due"),
            t.line(),
            K::MissingKey,
            "give either a fixed `due` date or `from` with days, months or years",
        );
        return None;
    };
    let anchor = {
        let p = t.child("from");
        r.string(from, &p).and_then(|code| {
            let a = Anchor::ALL.into_iter().find(|a| a.code() == code);
            if a.is_none() {
                let known: Vec<&str> = Anchor::ALL.iter().map(|a| a.code()).collect();
                r.error_at(
                    from,
                    &p,
                    K::UnknownAnchor,
                    format!(
                        "unknown event {code:?}; expected one of: {}",
                        known.join(", ")
                    ),
                );
            }
            a
        })
    };
    let period = match periods.as_slice() {
        [] => {
            r.error(
                t.child("months"),
                t.line(),
                K::MissingKey,
                "a relative deadline needs one of days, months or years",
            );
            None
        }
        ["days"] => read_count(r, t, "days", 36_600).map(Period::Days),
        ["months"] => read_count(r, t, "months", 1200).map(Period::Months),
        [_single] => read_count(r, t, "years", 100).map(|y| Period::Months(y * 12)),
        [_, second, ..] => {
            if let Some(n) = t.get(second) {
                r.error_at(
                    n,
                    &t.child(second),
                    K::Conflict,
                    "give only one of days, months or years",
                );
            }
            None
        }
    };
    let extension = match (t.get("extension_months"), t.get("max_extensions")) {
        (None, None) => Some(None),
        (None, Some(n)) => {
            r.error_at(
                n,
                &t.child("max_extensions"),
                K::MissingKey,
                "max_extensions needs extension_months",
            );
            None
        }
        (Some(_), max_node) => {
            let months = read_count(r, t, "extension_months", 1200);
            let max = if max_node.is_some() {
                read_count(r, t, "max_extensions", 12)
            } else {
                Some(1)
            };
            months
                .zip(max)
                .map(|(months, max)| Some(Extension { months, max }))
        }
    };
    Some(Due::After {
        anchor: anchor?,
        period: period?,
        extension: extension?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn default() -> Campaign {
        Campaign::shanggao_2023().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn add_months_clamps_to_month_end() {
        for (start, months, expected) in [
            ("2023-08-31", 6, "2024-02-29"),  // into a leap February
            ("2024-02-29", 12, "2025-02-28"), // from a leap day
            ("2024-02-29", 48, "2028-02-29"),
            ("2023-10-31", 1, "2023-11-30"),
            ("2023-01-31", 1, "2023-02-28"),
            ("2023-12-31", 3, "2024-03-31"),
            ("2024-03-31", -1, "2024-02-29"),
            ("2023-09-15", 6, "2024-03-15"),
            ("2024-02-29", 0, "2024-02-29"),
        ] {
            assert_eq!(
                add_months(date(start), months),
                Some(date(expected)),
                "{start} + {months}"
            );
        }
    }

    #[test]
    fn add_days_crosses_month_and_leap_day() {
        assert_eq!(add_days(date("2024-02-28"), 1), Some(date("2024-02-29")));
        assert_eq!(add_days(date("2024-02-29"), 1), Some(date("2024-03-01")));
        assert_eq!(add_days(date("2023-02-28"), 1), Some(date("2023-03-01")));
        assert_eq!(add_days(date("2024-02-15"), 30), Some(date("2024-03-16")));
        assert_eq!(add_days(date("2023-12-15"), 30), Some(date("2024-01-14")));
        assert_eq!(add_days(date("2024-03-01"), -1), Some(date("2024-02-29")));
        assert_eq!(add_days(NaiveDate::MAX, 1), None);
    }

    #[test]
    fn due_status_boundaries() {
        let due = date("2024-03-31");
        assert_eq!(
            due_status(due, date("2024-02-29"), 30),
            DueStatus::Pending { days_left: 31 }
        );
        assert_eq!(
            due_status(due, date("2024-03-01"), 30),
            DueStatus::DueSoon { days_left: 30 }
        );
        assert_eq!(
            due_status(due, date("2024-03-31"), 30),
            DueStatus::DueSoon { days_left: 0 }
        );
        assert_eq!(
            due_status(due, date("2024-04-01"), 30),
            DueStatus::Overdue { days_overdue: 1 }
        );
        assert!(!is_overdue(due, due));
        assert!(is_overdue(due, date("2024-04-01")));
        assert!(is_due_soon(due, date("2024-03-15"), 30));
        assert!(!is_due_soon(due, date("2024-04-15"), 30));
    }

    #[test]
    fn default_campaign_has_the_2023_deadlines() {
        let c = default();
        assert_eq!(c.id, "shanggao-2023");
        assert_eq!(c.document.as_deref(), Some("上府办发〔2023〕35号"));
        assert_eq!(c.issued, Some(date("2023-10-11")));
        assert_eq!(
            c.plan_title.as_deref(),
            Some("上高县停产非煤矿山生态环境整治专项行动方案")
        );
        assert_eq!(c.county.as_deref(), Some("上高县"));
        assert_eq!(c.government.as_deref(), Some("上高县人民政府"));
        let fixed = |key: &str| c.deadline(key).unwrap().due_date(None, 0).unwrap();
        assert_eq!(fixed("restoration_plan"), date("2023-12-31"));
        assert_eq!(fixed("cancel_rectification"), date("2024-03-31"));
        assert_eq!(fixed("continue_unused_areas"), date("2024-03-31"));
        assert_eq!(fixed("township_takeover"), date("2024-05-31"));
        let keys: Vec<&str> = c
            .deadlines_for(Disposition::Continue)
            .map(|d| d.key.as_str())
            .collect();
        assert_eq!(
            keys,
            vec![
                "continue_unused_areas",
                "approval_documents",
                "township_takeover"
            ]
        );
        assert_eq!(c.deadlines_for(Disposition::NeverProduced).count(), 0);
        assert_eq!(
            c.deadline("restoration_plan").unwrap().responsible,
            Responsible::Holder
        );
        assert_eq!(
            c.deadline("township_takeover").unwrap().responsible,
            Responsible::Township
        );
    }

    #[test]
    fn continue_mines_get_six_months_and_one_extension() {
        let c = default();
        let d = c.deadline("approval_documents").unwrap();
        let approved = date("2023-08-31");
        assert_eq!(d.due_date(Some(approved), 0), Ok(date("2024-02-29")));
        // The extension counts from the clamped due date: 2024-02-29 + 3 months.
        assert_eq!(d.due_date(Some(approved), 1), Ok(date("2024-05-29")));
        assert_eq!(
            d.due_date(Some(approved), 2),
            Err(DeadlineError::TooManyExtensions {
                key: "approval_documents".into(),
                granted: 2,
                max: 1
            })
        );
        assert_eq!(
            d.due_date(None, 0),
            Err(DeadlineError::AnchorMissing {
                key: "approval_documents".into(),
                anchor: Anchor::DispositionApproved
            })
        );
        let due = d.due_date(Some(date("2023-11-15")), 0).unwrap();
        assert_eq!(due, date("2024-05-15"));
        assert_eq!(
            c.status(due, date("2024-05-16")),
            DueStatus::Overdue { days_overdue: 1 }
        );
        assert_eq!(
            c.status(due, date("2024-04-20")),
            DueStatus::DueSoon { days_left: 25 }
        );
        // Fixed deadlines take no extension.
        assert!(matches!(
            c.deadline("restoration_plan").unwrap().due_date(None, 1),
            Err(DeadlineError::TooManyExtensions { max: 0, .. })
        ));
    }

    #[test]
    fn cancellation_application_and_maintenance() {
        let c = default();
        let app = c.deadline("cancellation_application").unwrap();
        assert_eq!(
            app.due_date(Some(date("2024-02-15")), 0),
            Ok(date("2024-03-16"))
        );
        assert_eq!(
            app.due_date(Some(date("2024-03-31")), 0),
            Ok(date("2024-04-30"))
        );
        let care = c.deadline("maintenance_period").unwrap();
        assert_eq!(
            care.due_date(Some(date("2024-02-29")), 0),
            Ok(date("2027-02-28"))
        );
        assert_eq!(
            care.due_date(Some(date("2024-05-20")), 0),
            Ok(date("2027-05-20"))
        );
    }

    #[test]
    fn every_error_is_reported_with_its_location() {
        let text = r#"[campaign]
id = "Shanggao 2023"
title = "t"
issued = "2023-02-30"
due_soon_days = 0
colour = "red"

[[deadlines]]
key = "a"
title = ""
applies_to = ["cancel", "closed"]
responsible = "mayor"
due = 2023-12-31
months = 6

[[deadlines]]
key = "a"
title = "dup"
applies_to = ["cancel"]
responsible = "holder"
from = "approved"
days = 30
months = 1

[[deadlines]]
key = "b"
title = "no due"
applies_to = []
responsible = "holder"

[[deadlines]]
key = "c"
title = "ext"
applies_to = ["continue"]
responsible = "holder"
from = "disposition_approved"
months = 6
max_extensions = 1
due_time = 2024-01-01T10:00:00
"#;
        let errs = Campaign::parse(text).unwrap_err();
        let got: Vec<(K, &str, Option<usize>)> = errs
            .errors
            .iter()
            .map(|e| (e.kind, e.path.as_str(), e.line))
            .collect();
        let expected = [
            (K::UnknownKey, "campaign.colour", Some(6)),
            (K::BadKey, "campaign.id", Some(2)),
            (K::BadDate, "campaign.issued", Some(4)),
            (K::OutOfRange, "campaign.due_soon_days", Some(5)),
            (K::Empty, "deadlines[0].title", Some(10)),
            (
                K::UnknownDisposition,
                "deadlines[0].applies_to[1]",
                Some(11),
            ),
            (K::UnknownResponsible, "deadlines[0].responsible", Some(12)),
            (K::Conflict, "deadlines[0].months", Some(14)),
            (K::UnknownAnchor, "deadlines[1].from", Some(21)),
            (K::Conflict, "deadlines[1].months", Some(23)),
            (K::Empty, "deadlines[2].applies_to", Some(28)),
            (K::MissingKey, "deadlines[2].due", Some(25)),
            (K::UnknownKey, "deadlines[3].due_time", Some(39)),
            (K::MissingKey, "deadlines[3].max_extensions", Some(38)),
        ];
        for e in &expected {
            assert!(got.contains(e), "missing {e:?}\n got: {got:#?}");
        }
        assert_eq!(
            got.len(),
            expected.len(),
            "unexpected extra errors: {got:#?}"
        );
    }

    #[test]
    fn a_deadline_key_that_is_not_an_identifier_is_reported_where_it_is() {
        let text = r#"[campaign]
id = "x"
title = "t"
[[deadlines]]
key = "Plan-2023"
title = "one"
applies_to = ["cancel"]
responsible = "holder"
due = 2024-02-29
"#;
        let errs = Campaign::parse(text).unwrap_err();
        assert_eq!(errs.errors.len(), 1, "{errs}");
        let e = &errs.errors[0];
        assert_eq!(
            (e.kind, e.path.as_str(), e.line),
            (K::BadKey, "deadlines[0].key", Some(5))
        );
        assert!(
            e.message.contains("\"Plan-2023\" is not [a-z][a-z0-9_]*"),
            "{}",
            e.message
        );
    }

    #[test]
    fn duplicate_keys_and_string_dates() {
        let text = r#"[campaign]
id = "x"
title = "t"
issued = "2023-10-11"
[[deadlines]]
key = "a"
title = "one"
applies_to = ["cancel"]
responsible = "holder"
due = "2024-02-29"
[[deadlines]]
key = "a"
title = "two"
applies_to = ["cancel"]
responsible = "holder"
from = "acceptance_passed"
years = 3
"#;
        let errs = Campaign::parse(text).unwrap_err();
        assert_eq!(errs.errors.len(), 1);
        assert!(errs.has(K::Duplicate, "deadlines[1].key"));
        let ok = Campaign::parse(&text.replace(
            "key = \"a\"\ntitle = \"two\"",
            "key = \"b\"\ntitle = \"two\"",
        ))
        .unwrap();
        assert_eq!(ok.issued, Some(date("2023-10-11")));
        assert_eq!(
            ok.deadlines[0].due,
            Due::On {
                date: date("2024-02-29")
            }
        );
        assert_eq!(
            ok.deadlines[1].due,
            Due::After {
                anchor: Anchor::AcceptancePassed,
                period: Period::Months(36),
                extension: None
            }
        );
        assert_eq!(ok.due_soon_days, DEFAULT_DUE_SOON_DAYS);
    }
}
