//! Acceptance templates (验收表) as versioned data, the answers filled into them, and the verdict.
//!
//! The official table of the 2023 Shanggao plan is missing from the source, and another county
//! will have its own; so a template is a **TOML file**, never code. The built-in default,
//! `templates/default-2023.toml`, reconstructs the 28 items of `acceptance-items.md`; a county
//! replaces it by loading its own file. A record keeps the `id` + `version` it was filled against.
//!
//! # Vocabulary
//! - **section**: one department's part of the table (责任单位), filled and signed by that
//!   department's inspector; the `township` section is the township's pre-inspection (初验).
//! - **item** (验收项目): a numbered row (序号, unique in the template) with its criterion (验收标准),
//!   inspection methods (验收方式), evidence-photo expectation and applicability by disposition.
//! - **answer part**: one field of an item. Most items have one (`result`, 达标/不达标); some have
//!   several, e.g. item 14 is a measured length in 米 *and* a pass/fail.
//! - **field key**: how an answer part is addressed in the sync protocol:
//!   `"<department>/<item number>.<part key>"`, e.g. `water_resources/14.length`,
//!   `water_resources/14.result`. A number part whose threshold is the design value has a second
//!   field `"<department>/<number>.<part>.design"` where the value from the approved plan is
//!   entered per mine.
//! - **item texts**: every item also has two free-text fields the section's inspector may fill,
//!   `"<department>/<number>.remark"` (备注) and `"<department>/<number>.rectification"`
//!   (整改要求); they are not declared in the file, `remark` and `rectification` cannot be part
//!   keys, and they never decide the verdict ([`ItemText`]).
//! - **verdict**: a section passes when every applicable item passes; the record is 达标 when every
//!   *required* section passes, else 限期整改 (or 不达标 when the acceptance group says so).
//!
//! # File format
//! ```toml
//! [template]
//! id = "shanggao-2023"              # stable identifier: [a-z0-9._-]
//! version = "2023.1"                # any non-empty text; a change of items is a new version
//! title = "上高县停产非煤矿山生态环境整治达标验收表"
//! note = "…"                        # optional
//!
//! [[sections]]
//! department = "water_resources"    # natural_resources, emergency_management,
//!                                   # ecology_environment, water_resources, forestry,
//!                                   # agriculture_rural, industry_it, transport,
//!                                   # power_supply, public_security, township
//! name = "水利"                     # heading shown in the table
//! required = true                   # counts for the record verdict (default true)
//! applies_to = ["cancel", "continue"]   # optional; default: every disposition
//!
//! [[sections.items]]
//! number = 14                       # 序号, unique in the template
//! title = "截排水沟闭合、畅通、无淤堵"  # 验收项目
//! criterion = "…"                   # 验收标准 (optional)
//! methods = ["site_inspection", "measurement"]  # check_records 查资料, site_inspection 现场查看,
//!                                               # measurement 实测 (at least one)
//! photo = "required"                # required | optional | none (default none)
//! applies_to = ["cancel"]           # optional; default: the section's
//! note = "[S]"                      # optional
//!
//! [[sections.items.answer]]         # one or more parts
//! key = "length"                    # [a-z][a-z0-9_]*, unique in the item
//! kind = "number"                   # pass_fail | number | text
//! label = "长度"                    # optional
//! unit = "米"                       # required for number
//! op = "≥"                          # optional for number: ≤ ≥ < > = (or <= >= ==)
//! threshold = "100"                 # with op: a decimal string (or integer) or "design_value"
//!
//! [[sections.items.answer]]
//! key = "result"
//! kind = "pass_fail"
//! not_applicable_allowed = false    # whether 不涉及 may be answered (default false)
//! ```
//! A number part without `op`/`threshold` is recorded but does not decide the verdict; neither
//! does a text part. Parsing reports **every** problem with its path
//! (`sections[3].items[2].answer[0].threshold`) and line; see [`DataFileErrors`].
//!
//! # Answer values (sync protocol)
//! - pass/fail: the strings `"pass"` (达标), `"fail"` (不达标), `"not_applicable"` (不涉及, only
//!   where allowed). Answering 不涉及 to any pass/fail part makes the whole item not applicable.
//! - number: a decimal string such as `"85.5"`, optionally followed by the template's unit
//!   (`"85.5 %"`, `"120米"`); an integer value is accepted too. A different unit, a float, or
//!   anything non-numeric is refused. Thresholds are compared exactly ([`Decimal`]).
//! - text (and the item texts `….remark`, `….rectification`): a string of at most
//!   [`MAX_TEXT_CHARS`] characters.
//! - `null` clears a field.

use std::{collections::BTreeMap, fmt, path::Path};

use serde::{Deserialize, Serialize};
use sync_protocol::Value;
use utoipa::ToSchema;

use crate::model::Disposition;

use super::{
    datafile::{DataErrorKind as K, DataFileErrors, LoadError, Node, Reader, TableCursor},
    decimal::Decimal,
};

/// The built-in default template (reconstructed 2023 Shanggao table), as TOML text.
pub const DEFAULT_2023_TOML: &str = include_str!("../../templates/default-2023.toml");

/// The longest text answer accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// The unit (责任单位) that fills and signs a section.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = DepartmentCode)]
pub enum Department {
    /// 自然资源局
    NaturalResources,
    /// 应急管理局
    EmergencyManagement,
    /// 生态环境局
    EcologyEnvironment,
    /// 水利局
    WaterResources,
    /// 林业局
    Forestry,
    /// 农业农村局
    AgricultureRural,
    /// 工信局
    IndustryIt,
    /// 交通运输局
    Transport,
    /// 供电公司
    PowerSupply,
    /// 公安局
    PublicSecurity,
    /// 乡镇/林场: the township's pre-inspection (初验).
    Township,
}

impl Department {
    /// Every department, in the order of the plan's table.
    pub const ALL: [Department; 11] = [
        Department::NaturalResources,
        Department::EmergencyManagement,
        Department::EcologyEnvironment,
        Department::WaterResources,
        Department::Forestry,
        Department::AgricultureRural,
        Department::IndustryIt,
        Department::Transport,
        Department::PowerSupply,
        Department::PublicSecurity,
        Department::Township,
    ];

    /// The code used in files, field keys and the API.
    pub fn code(self) -> &'static str {
        match self {
            Department::NaturalResources => "natural_resources",
            Department::EmergencyManagement => "emergency_management",
            Department::EcologyEnvironment => "ecology_environment",
            Department::WaterResources => "water_resources",
            Department::Forestry => "forestry",
            Department::AgricultureRural => "agriculture_rural",
            Department::IndustryIt => "industry_it",
            Department::Transport => "transport",
            Department::PowerSupply => "power_supply",
            Department::PublicSecurity => "public_security",
            Department::Township => "township",
        }
    }

    /// The body's Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Department::NaturalResources => "自然资源局",
            Department::EmergencyManagement => "应急管理局",
            Department::EcologyEnvironment => "生态环境局",
            Department::WaterResources => "水利局",
            Department::Forestry => "林业局",
            Department::AgricultureRural => "农业农村局",
            Department::IndustryIt => "工信局",
            Department::Transport => "交通运输局",
            Department::PowerSupply => "供电公司",
            Department::PublicSecurity => "公安局",
            Department::Township => "乡镇/林场",
        }
    }

    /// Parses a code.
    pub fn from_code(code: &str) -> Option<Self> {
        Department::ALL.into_iter().find(|d| d.code() == code)
    }
}

impl fmt::Display for Department {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How an item is checked (验收方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// 查资料: review records and documents.
    CheckRecords,
    /// 现场查看: look on site.
    SiteInspection,
    /// 实测: measure.
    Measurement,
}

impl Method {
    const ALL: [Method; 3] = [
        Method::CheckRecords,
        Method::SiteInspection,
        Method::Measurement,
    ];

    /// The code used in files.
    pub fn code(self) -> &'static str {
        match self {
            Method::CheckRecords => "check_records",
            Method::SiteInspection => "site_inspection",
            Method::Measurement => "measurement",
        }
    }

    /// The UI word.
    pub fn name_zh(self) -> &'static str {
        match self {
            Method::CheckRecords => "查资料",
            Method::SiteInspection => "现场查看",
            Method::Measurement => "实测",
        }
    }
}

/// Whether evidence photos are expected for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhotoExpectation {
    /// At least one photo is expected (the UI asks for it; the server may warn).
    Required,
    /// Photos are welcome.
    Optional,
    /// No photo column for this item.
    None,
}

/// A comparison of a measured value against a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// ≤
    Le,
    /// ≥
    Ge,
    /// <
    Lt,
    /// >
    Gt,
    /// =
    Eq,
}

impl CompareOp {
    /// Parses `≤ ≥ < > =` and the ASCII spellings `<= >= ==`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "≤" | "<=" => CompareOp::Le,
            "≥" | ">=" => CompareOp::Ge,
            "<" => CompareOp::Lt,
            ">" => CompareOp::Gt,
            "=" | "==" => CompareOp::Eq,
            _ => return None,
        })
    }

    /// The symbol shown in the table.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Le => "≤",
            CompareOp::Ge => "≥",
            CompareOp::Lt => "<",
            CompareOp::Gt => ">",
            CompareOp::Eq => "=",
        }
    }

    /// Whether `value op threshold` holds (exactly).
    pub fn holds(self, value: Decimal, threshold: Decimal) -> bool {
        match self {
            CompareOp::Le => value <= threshold,
            CompareOp::Ge => value >= threshold,
            CompareOp::Lt => value < threshold,
            CompareOp::Gt => value > threshold,
            CompareOp::Eq => value == threshold,
        }
    }
}

/// The threshold of a number part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Threshold {
    /// A fixed value in the part's unit.
    Value {
        /// The value.
        value: Decimal,
    },
    /// The value of the mine's approved design (e.g. 设计坡角), entered per mine in the
    /// `….design` field.
    DesignValue,
}

/// A pass rule of a number part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NumberRule {
    /// The comparison: the measured value `op` the threshold must hold.
    pub op: CompareOp,
    /// What to compare with.
    pub threshold: Threshold,
}

/// What kind of answer a part takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnswerKind {
    /// 达标/不达标 (and 不涉及 when allowed).
    PassFail {
        /// Whether 不涉及 (not applicable) is an allowed answer.
        not_applicable_allowed: bool,
    },
    /// A measured number with its unit and, optionally, the rule it must meet.
    Number {
        /// The unit (米, %, 公顷, °, 个, …), exactly as shown in the table.
        unit: String,
        /// The pass rule; `None` for a value that is only recorded.
        rule: Option<NumberRule>,
    },
    /// Free text (初验意见, 存在问题, …); never decides the verdict.
    Text,
}

/// One field of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AnswerPart {
    /// Key within the item (`result`, `length`, …): the last segment of the field key.
    pub key: String,
    /// Label shown next to the field, if any.
    pub label: Option<String>,
    /// The answer kind.
    #[serde(flatten)]
    pub kind: AnswerKind,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// 序号, unique in the template.
    pub number: u32,
    /// 验收项目.
    pub title: String,
    /// 验收标准, when the table states one beyond the title.
    pub criterion: Option<String>,
    /// 验收方式, at least one.
    pub methods: Vec<Method>,
    /// Whether evidence photos are expected.
    pub photo: PhotoExpectation,
    /// The dispositions the item applies to (never empty).
    pub applies_to: Vec<Disposition>,
    /// Provenance or remarks.
    pub note: Option<String>,
    /// The answer fields, at least one.
    pub parts: Vec<AnswerPart>,
}

impl Item {
    /// Whether the item applies to a mine of this disposition.
    pub fn applies(&self, disposition: Disposition) -> bool {
        self.applies_to.contains(&disposition)
    }
}

/// One department's part of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Section {
    /// Who fills and signs it.
    pub department: Department,
    /// Heading shown in the table.
    pub name: String,
    /// Whether the record verdict depends on it.
    pub required: bool,
    /// The dispositions the section applies to (never empty).
    pub applies_to: Vec<Disposition>,
    /// The rows, at least one.
    pub items: Vec<Item>,
}

/// A validated acceptance template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    /// Stable identifier.
    pub id: String,
    /// Version; a record keeps the id and version it was filled against.
    pub version: String,
    /// Title of the table.
    pub title: String,
    /// Remarks.
    pub note: Option<String>,
    /// Sections, one per department, in table order.
    pub sections: Vec<Section>,
}

/// Which value of an answer part a field key addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldRole {
    /// The answer itself.
    Answer,
    /// The per-mine design value a `design_value` threshold compares with.
    DesignValue,
}

/// A field key resolved against a template.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    /// The section.
    pub section: &'a Section,
    /// The item.
    pub item: &'a Item,
    /// The answer part.
    pub part: &'a AnswerPart,
    /// Answer or design value.
    pub role: FieldRole,
}

impl FieldRef<'_> {
    /// The field key string.
    pub fn key(&self) -> String {
        field_key(
            self.section.department,
            self.item.number,
            &self.part.key,
            self.role,
        )
    }
}

/// Builds a field key: `"<department>/<number>.<part>"`, plus `".design"` for a design value.
pub fn field_key(department: Department, number: u32, part: &str, role: FieldRole) -> String {
    match role {
        FieldRole::Answer => format!("{}/{number}.{part}", department.code()),
        FieldRole::DesignValue => format!("{}/{number}.{part}.design", department.code()),
    }
}

/// A free text every item carries beside its answers, written by the section's inspector:
/// `"<department>/<number>.remark"` (备注) and `"<department>/<number>.rectification"` (整改要求).
/// Not answer parts (a template does not declare them, and part keys cannot take these names);
/// they never decide the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemText {
    /// 备注: the inspector's remark on the item.
    Remark,
    /// 整改要求: what the mine must rectify for the item to pass.
    Rectification,
}

impl ItemText {
    /// Both texts, in the order the phone shows them.
    pub const ALL: [ItemText; 2] = [ItemText::Remark, ItemText::Rectification];

    /// The last segment of the field key.
    pub fn code(self) -> &'static str {
        match self {
            ItemText::Remark => "remark",
            ItemText::Rectification => "rectification",
        }
    }

    /// The UI word.
    pub fn name_zh(self) -> &'static str {
        match self {
            ItemText::Remark => "备注",
            ItemText::Rectification => "整改要求",
        }
    }

    /// Parses a code.
    pub fn from_code(code: &str) -> Option<Self> {
        ItemText::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// Builds the field key of an item's free text: `"<department>/<number>.remark"` or
/// `".rectification"`.
pub fn item_text_key(department: Department, number: u32, text: ItemText) -> String {
    format!("{}/{number}.{}", department.code(), text.code())
}

/// A pass/fail answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 达标
    Pass,
    /// 不达标
    Fail,
    /// 不涉及
    NotApplicable,
}

impl Outcome {
    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NotApplicable => "not_applicable",
        }
    }
}

/// A validated answer value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Answer {
    /// A pass/fail part.
    PassFail(Outcome),
    /// A number part (or a design value), in the part's unit.
    Number(Decimal),
    /// A text part.
    Text(String),
}

/// Why a submitted field value is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnswerError {
    /// Not of the form `<department>/<number>.<part>[.design]`.
    #[error("{key:?} is not a field key (expected <department>/<item number>.<part>)")]
    MalformedKey {
        /// The key.
        key: String,
    },
    /// The key names no field of this template.
    #[error("{key:?} is not a field of template {template}")]
    UnknownField {
        /// The key.
        key: String,
        /// Template id and version.
        template: String,
    },
    /// The item or section does not apply to the mine's disposition.
    #[error("{key:?} does not apply to a {disposition:?} mine")]
    NotApplicable {
        /// The key.
        key: String,
        /// The mine's disposition.
        disposition: Disposition,
    },
    /// A value of the wrong kind (a number for a pass/fail part, a float, …).
    #[error("{key:?} expects {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What the field takes.
        expected: String,
    },
    /// 不涉及 where the item does not allow it.
    #[error("{key:?} does not allow not_applicable (不涉及)")]
    NotApplicableNotAllowed {
        /// The key.
        key: String,
    },
    /// A number that is not a plain decimal.
    #[error("{key:?}: {text:?} is not a decimal number (send e.g. \"85.5\")")]
    NotANumber {
        /// The key.
        key: String,
        /// The text sent.
        text: String,
    },
    /// A number carrying a unit other than the template's.
    #[error("{key:?} is measured in {expected:?}, not {found:?}")]
    WrongUnit {
        /// The key.
        key: String,
        /// The template's unit.
        expected: String,
        /// The unit sent.
        found: String,
    },
    /// A text over [`MAX_TEXT_CHARS`].
    #[error("{key:?}: text longer than {MAX_TEXT_CHARS} characters")]
    TextTooLong {
        /// The key.
        key: String,
    },
}

/// Units that mean the same, as inspectors type them.
const UNIT_ALIASES: &[&[&str]] = &[
    &["米", "m"],
    &["%", "％"],
    &["公顷", "ha", "hm²", "hm2"],
    &["°", "度"],
    &["平方米", "m²", "m2"],
    &["立方米", "m³", "m3"],
];

fn same_unit(a: &str, b: &str) -> bool {
    a == b
        || UNIT_ALIASES
            .iter()
            .any(|group| group.contains(&a) && group.contains(&b))
}

impl Template {
    /// Parses and validates a template file; on failure returns every error with its location.
    pub fn parse(text: &str) -> Result<Template, DataFileErrors> {
        let (mut r, root) = Reader::parse(text)?;
        let template = read_template(&mut r, &root);
        match template {
            Some(t) => r.finish(t),
            None => r.finish(Template {
                id: String::new(),
                version: String::new(),
                title: String::new(),
                note: None,
                sections: Vec::new(),
            }),
        }
    }

    /// Reads and parses a template file (the only file access of this module).
    pub fn load(path: &Path) -> Result<Template, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Template::parse(&text).map_err(|errors| LoadError::Invalid {
            path: path.display().to_string(),
            errors,
        })
    }

    /// The built-in default template ([`DEFAULT_2023_TOML`]).
    pub fn default_2023() -> Result<Template, DataFileErrors> {
        Template::parse(DEFAULT_2023_TOML)
    }

    /// `"<id>@<version>"`, how records refer to the template.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The section of a department.
    pub fn section(&self, department: Department) -> Option<&Section> {
        self.sections.iter().find(|s| s.department == department)
    }

    /// Every item, in table order.
    pub fn items(&self) -> impl Iterator<Item = (&Section, &Item)> {
        self.sections
            .iter()
            .flat_map(|s| s.items.iter().map(move |i| (s, i)))
    }

    /// Every field a mine of `disposition` fills, in table order.
    pub fn fields(&self, disposition: Disposition) -> Vec<FieldRef<'_>> {
        let mut out = Vec::new();
        for section in &self.sections {
            if !section.applies_to.contains(&disposition) {
                continue;
            }
            for item in section.items.iter().filter(|i| i.applies(disposition)) {
                for part in &item.parts {
                    out.push(FieldRef {
                        section,
                        item,
                        part,
                        role: FieldRole::Answer,
                    });
                    if let AnswerKind::Number {
                        rule:
                            Some(NumberRule {
                                threshold: Threshold::DesignValue,
                                ..
                            }),
                        ..
                    } = part.kind
                    {
                        out.push(FieldRef {
                            section,
                            item,
                            part,
                            role: FieldRole::DesignValue,
                        });
                    }
                }
            }
        }
        out
    }

    /// Every field key a mine of `disposition` fills, in table order.
    pub fn field_keys(&self, disposition: Disposition) -> Vec<String> {
        self.fields(disposition).iter().map(FieldRef::key).collect()
    }

    /// Resolves the key of an item's free text (`<department>/<number>.remark` or
    /// `.rectification`, regardless of disposition): `Ok(None)` when `key` is not of that form.
    pub fn item_text(&self, key: &str) -> Result<Option<(&Section, &Item, ItemText)>, AnswerError> {
        let Some((dept, rest)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(text) = rest
            .split_once('.')
            .and_then(|(_, tail)| ItemText::from_code(tail))
        else {
            return Ok(None);
        };
        let number: u32 = rest
            .split_once('.')
            .and_then(|(n, _)| n.parse().ok())
            .ok_or_else(|| AnswerError::MalformedKey {
                key: key.to_owned(),
            })?;
        let unknown = || AnswerError::UnknownField {
            key: key.to_owned(),
            template: self.reference(),
        };
        let section = Department::from_code(dept)
            .and_then(|d| self.section(d))
            .ok_or_else(unknown)?;
        let item = section
            .items
            .iter()
            .find(|i| i.number == number)
            .ok_or_else(unknown)?;
        Ok(Some((section, item, text)))
    }

    /// Resolves an item's evidence field, `<department>/<number>.photos` (regardless of
    /// disposition; PROTOCOL.md §13): `Ok(None)` when `key` is not of that form.
    pub fn evidence_item(&self, key: &str) -> Result<Option<(&Section, &Item)>, AnswerError> {
        let Some((dept, rest)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(number) = rest.strip_suffix(".photos") else {
            return Ok(None);
        };
        let number: u32 = number.parse().map_err(|_| AnswerError::MalformedKey {
            key: key.to_owned(),
        })?;
        let unknown = || AnswerError::UnknownField {
            key: key.to_owned(),
            template: self.reference(),
        };
        let section = Department::from_code(dept)
            .and_then(|d| self.section(d))
            .ok_or_else(unknown)?;
        let item = section
            .items
            .iter()
            .find(|i| i.number == number)
            .ok_or_else(unknown)?;
        Ok(Some((section, item)))
    }

    /// Resolves a field key (regardless of disposition).
    pub fn field(&self, key: &str) -> Result<FieldRef<'_>, AnswerError> {
        let malformed = || AnswerError::MalformedKey {
            key: key.to_owned(),
        };
        let unknown = || AnswerError::UnknownField {
            key: key.to_owned(),
            template: self.reference(),
        };
        let (dept, rest) = key.split_once('/').ok_or_else(malformed)?;
        let mut pieces = rest.split('.');
        let number: u32 = pieces
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(malformed)?;
        let part_key = pieces.next().ok_or_else(malformed)?;
        let role = match pieces.next() {
            None => FieldRole::Answer,
            Some("design") => FieldRole::DesignValue,
            Some(_) => return Err(malformed()),
        };
        if pieces.next().is_some() {
            return Err(malformed());
        }
        let department = Department::from_code(dept).ok_or_else(unknown)?;
        let section = self.section(department).ok_or_else(unknown)?;
        let item = section
            .items
            .iter()
            .find(|i| i.number == number)
            .ok_or_else(unknown)?;
        let part = item
            .parts
            .iter()
            .find(|p| p.key == part_key)
            .ok_or_else(unknown)?;
        let has_design = matches!(
            part.kind,
            AnswerKind::Number {
                rule: Some(NumberRule {
                    threshold: Threshold::DesignValue,
                    ..
                }),
                ..
            }
        );
        if role == FieldRole::DesignValue && !has_design {
            return Err(unknown());
        }
        Ok(FieldRef {
            section,
            item,
            part,
            role,
        })
    }

    /// Checks a submitted value for a field of a mine of `disposition`.
    ///
    /// Returns the normalised answer, or `None` for `null` (the field is cleared).
    pub fn validate_answer(
        &self,
        disposition: Disposition,
        key: &str,
        value: &Value,
    ) -> Result<Option<Answer>, AnswerError> {
        if let Some((section, item, _)) = self.item_text(key)? {
            if !section.applies_to.contains(&disposition) || !item.applies(disposition) {
                return Err(AnswerError::NotApplicable {
                    key: key.to_owned(),
                    disposition,
                });
            }
            return validate_text(key, value);
        }
        let field = self.field(key)?;
        if !field.section.applies_to.contains(&disposition) || !field.item.applies(disposition) {
            return Err(AnswerError::NotApplicable {
                key: key.to_owned(),
                disposition,
            });
        }
        if *value == Value::Null {
            return Ok(None);
        }
        let wrong = |expected: &str| AnswerError::WrongType {
            key: key.to_owned(),
            expected: expected.to_owned(),
        };
        match (&field.part.kind, field.role) {
            (
                AnswerKind::PassFail {
                    not_applicable_allowed,
                },
                _,
            ) => {
                let expected = if *not_applicable_allowed {
                    "\"pass\" (达标), \"fail\" (不达标) or \"not_applicable\" (不涉及)"
                } else {
                    "\"pass\" (达标) or \"fail\" (不达标)"
                };
                let Value::String(s) = value else {
                    return Err(wrong(expected));
                };
                match s.as_str() {
                    "pass" => Ok(Some(Answer::PassFail(Outcome::Pass))),
                    "fail" => Ok(Some(Answer::PassFail(Outcome::Fail))),
                    "not_applicable" if *not_applicable_allowed => {
                        Ok(Some(Answer::PassFail(Outcome::NotApplicable)))
                    }
                    "not_applicable" => Err(AnswerError::NotApplicableNotAllowed {
                        key: key.to_owned(),
                    }),
                    _ => Err(wrong(expected)),
                }
            }
            (AnswerKind::Number { unit, .. }, _) => {
                let expected = format!("a decimal string in {unit}, e.g. \"12.5\"");
                match value {
                    Value::Int(n) => Ok(Some(Answer::Number(Decimal::from_int(*n)))),
                    Value::String(s) => {
                        parse_measure(key, s, unit).map(|d| Some(Answer::Number(d)))
                    }
                    _ => Err(wrong(&expected)),
                }
            }
            (AnswerKind::Text, _) => validate_text(key, value),
        }
    }

    /// Validates many submitted values: the good answers by field key, and the refused ones.
    pub fn collect_answers<'v>(
        &self,
        disposition: Disposition,
        values: impl IntoIterator<Item = (&'v str, &'v Value)>,
    ) -> (BTreeMap<String, Answer>, Vec<AnswerError>) {
        let mut answers = BTreeMap::new();
        let mut refused = Vec::new();
        for (key, value) in values {
            match self.validate_answer(disposition, key, value) {
                Ok(Some(answer)) => {
                    answers.insert(key.to_owned(), answer);
                }
                Ok(None) => {}
                Err(e) => refused.push(e),
            }
        }
        (answers, refused)
    }

    /// Computes the verdict of a record of a mine of `disposition` from its answers (by field
    /// key; see [`Template::collect_answers`]).
    ///
    /// An item passes when it is not applicable (a pass/fail part answered 不涉及) or when every
    /// pass/fail part is 达标 and every number part with a rule meets it; text parts and numbers
    /// without a rule don't count. Unanswered deciding parts fail the item (reason
    /// [`ProblemReason::Unanswered`]). `on_failure` is the acceptance group's conclusion for a
    /// record that does not pass: 限期整改 or 不达标.
    pub fn verdict(
        &self,
        disposition: Disposition,
        answers: &BTreeMap<String, Answer>,
        on_failure: FailureConclusion,
    ) -> Verdict {
        let mut sections = Vec::new();
        let mut failing = Vec::new();
        let mut advisory = Vec::new();
        for section in &self.sections {
            if !section.applies_to.contains(&disposition) {
                continue;
            }
            let items: Vec<&Item> = section
                .items
                .iter()
                .filter(|i| i.applies(disposition))
                .collect();
            if items.is_empty() {
                continue;
            }
            let problems: Vec<ItemProblem> = items
                .iter()
                .flat_map(|item| item_problems(section, item, answers))
                .collect();
            let passed = problems.is_empty();
            if section.required {
                failing.extend(problems.iter().cloned());
            } else {
                advisory.extend(problems.iter().cloned());
            }
            sections.push(SectionVerdict {
                department: section.department,
                name: section.name.clone(),
                required: section.required,
                applicable_items: items.len(),
                passed,
                problems,
            });
        }
        let conclusion = if failing.is_empty() {
            Conclusion::Passed
        } else {
            match on_failure {
                FailureConclusion::RectifyByDeadline => Conclusion::RectifyByDeadline,
                FailureConclusion::Failed => Conclusion::Failed,
            }
        };
        Verdict {
            template: self.reference(),
            disposition,
            conclusion,
            sections,
            failing,
            advisory,
        }
    }
}

/// A text answer or item text: a string of at most [`MAX_TEXT_CHARS`] characters, or `null`.
fn validate_text(key: &str, value: &Value) -> Result<Option<Answer>, AnswerError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() > MAX_TEXT_CHARS => Err(AnswerError::TextTooLong {
            key: key.to_owned(),
        }),
        Value::String(s) => Ok(Some(Answer::Text(s.clone()))),
        _ => Err(AnswerError::WrongType {
            key: key.to_owned(),
            expected: "a text string".to_owned(),
        }),
    }
}

/// Parses `"85.5"`, `"85.5 %"`, `"120米"` against the part's unit.
fn parse_measure(key: &str, text: &str, unit: &str) -> Result<Decimal, AnswerError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
        .unwrap_or(t.len());
    let (number, found_unit) = (t[..split].trim(), t[split..].trim());
    if !found_unit.is_empty() && !same_unit(found_unit, unit) {
        // Something after the number: a unit if it has no digits and the number part is a
        // number, else garbage ("8,5", "约85").
        let looks_like_unit = !found_unit.contains(|c: char| c.is_ascii_digit() || c == ',');
        if looks_like_unit && number.parse::<Decimal>().is_ok() {
            return Err(AnswerError::WrongUnit {
                key: key.to_owned(),
                expected: unit.to_owned(),
                found: found_unit.to_owned(),
            });
        }
        return Err(AnswerError::NotANumber {
            key: key.to_owned(),
            text: text.to_owned(),
        });
    }
    number.parse().map_err(|_| AnswerError::NotANumber {
        key: key.to_owned(),
        text: text.to_owned(),
    })
}

fn item_problems(
    section: &Section,
    item: &Item,
    answers: &BTreeMap<String, Answer>,
) -> Vec<ItemProblem> {
    let get = |part: &AnswerPart, role| {
        answers.get(&field_key(section.department, item.number, &part.key, role))
    };
    let not_applicable = item.parts.iter().any(|p| {
        matches!(p.kind, AnswerKind::PassFail { .. })
            && get(p, FieldRole::Answer) == Some(&Answer::PassFail(Outcome::NotApplicable))
    });
    if not_applicable {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for part in &item.parts {
        let key = field_key(
            section.department,
            item.number,
            &part.key,
            FieldRole::Answer,
        );
        let reason = match (&part.kind, get(part, FieldRole::Answer)) {
            (AnswerKind::Text, _) | (AnswerKind::Number { rule: None, .. }, _) => None,
            (_, None) => Some(ProblemReason::Unanswered),
            (AnswerKind::PassFail { .. }, Some(Answer::PassFail(Outcome::Pass))) => None,
            (AnswerKind::PassFail { .. }, Some(Answer::PassFail(Outcome::Fail))) => {
                Some(ProblemReason::Failed)
            }
            (
                AnswerKind::Number {
                    rule: Some(rule), ..
                },
                Some(Answer::Number(value)),
            ) => {
                let threshold = match rule.threshold {
                    Threshold::Value { value } => Some(value),
                    Threshold::DesignValue => match get(part, FieldRole::DesignValue) {
                        Some(Answer::Number(d)) => Some(*d),
                        _ => None,
                    },
                };
                match threshold {
                    None => Some(ProblemReason::DesignValueMissing),
                    Some(t) if rule.op.holds(*value, t) => None,
                    Some(t) => Some(ProblemReason::ThresholdNotMet {
                        value: *value,
                        op: rule.op,
                        threshold: t,
                    }),
                }
            }
            (_, Some(_)) => Some(ProblemReason::WrongAnswerType),
        };
        if let Some(reason) = reason {
            problems.push(ItemProblem {
                department: section.department,
                number: item.number,
                title: item.title.clone(),
                field_key: key,
                reason,
            });
        }
    }
    problems
}

/// The conclusion the acceptance group draws for a record that does not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureConclusion {
    /// 限期整改: rectify by a deadline, then re-inspect (the default).
    RectifyByDeadline,
    /// 不达标.
    Failed,
}

/// The record's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// 达标: every required section passes.
    Passed,
    /// 限期整改.
    RectifyByDeadline,
    /// 不达标.
    Failed,
}

impl Conclusion {
    /// The UI word.
    pub fn name_zh(self) -> &'static str {
        match self {
            Conclusion::Passed => "达标",
            Conclusion::RectifyByDeadline => "限期整改",
            Conclusion::Failed => "不达标",
        }
    }
}

/// Why an item does not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProblemReason {
    /// Answered 不达标.
    Failed,
    /// The measured value misses the threshold.
    ThresholdNotMet {
        /// Measured.
        value: Decimal,
        /// Rule operator.
        op: CompareOp,
        /// Threshold (the design value where the rule says so).
        threshold: Decimal,
    },
    /// A deciding part has no answer yet.
    Unanswered,
    /// The threshold is the design value and none was entered.
    DesignValueMissing,
    /// The stored answer is of another kind than the part (a template changed under it).
    WrongAnswerType,
}

/// One failing part of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemProblem {
    /// Section.
    pub department: Department,
    /// 序号.
    pub number: u32,
    /// 验收项目.
    pub title: String,
    /// The field that fails.
    pub field_key: String,
    /// Why.
    pub reason: ProblemReason,
}

/// The verdict of one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SectionVerdict {
    /// Section.
    pub department: Department,
    /// Heading.
    pub name: String,
    /// Whether it counts for the record.
    pub required: bool,
    /// Items applicable to the disposition.
    pub applicable_items: usize,
    /// Whether every applicable item passes.
    pub passed: bool,
    /// The failing parts.
    pub problems: Vec<ItemProblem>,
}

/// The verdict of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    /// `id@version` of the template used.
    pub template: String,
    /// The mine's disposition.
    pub disposition: Disposition,
    /// 达标 / 限期整改 / 不达标.
    pub conclusion: Conclusion,
    /// Sections that apply to the disposition, in table order.
    pub sections: Vec<SectionVerdict>,
    /// Failing parts of required sections: the rectification list.
    pub failing: Vec<ItemProblem>,
    /// Failing parts of sections that are not required (reported, not deciding).
    pub advisory: Vec<ItemProblem>,
}

// ---------------------------------------------------------------------------------------------
// Reading the file.

const TEMPLATE_KEYS: &[&str] = &["id", "version", "title", "note"];
const SECTION_KEYS: &[&str] = &["department", "name", "required", "applies_to", "items"];
const ITEM_KEYS: &[&str] = &[
    "number",
    "title",
    "criterion",
    "methods",
    "photo",
    "applies_to",
    "note",
    "answer",
];
const PART_KEYS: &[&str] = &[
    "key",
    "kind",
    "label",
    "not_applicable_allowed",
    "unit",
    "op",
    "threshold",
];

fn read_template(r: &mut Reader, root: &BTreeMap<String, Node>) -> Option<Template> {
    let root = r.root(root);
    r.deny_unknown(&root, &["template", "sections"]);
    let header = r
        .required(&root, "template")
        .and_then(|n| r.table(n, "template"));
    let (mut id, mut version, mut title, mut note) = (None, None, None, None);
    if let Some(h) = &header {
        r.deny_unknown(h, TEMPLATE_KEYS);
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
        version = r.req_text(h, "version");
        title = r.req_text(h, "title");
        note = r.opt_text(h, "note");
    }
    let mut sections = Vec::new();
    let mut seen_numbers: BTreeMap<u32, String> = BTreeMap::new();
    let mut seen_departments: BTreeMap<Department, String> = BTreeMap::new();
    if let Some(list) = r
        .required(&root, "sections")
        .and_then(|n| r.array(n, "sections"))
    {
        if list.is_empty() {
            r.error(
                "sections",
                None,
                K::Empty,
                "a template needs at least one section",
            );
        }
        for (i, node) in list.iter().enumerate() {
            let path = format!("sections[{i}]");
            if let Some(s) = read_section(r, node, &path, &mut seen_numbers) {
                if let Some(first) = seen_departments.get(&s.department) {
                    let msg = format!(
                        "department {} already has a section at {first}",
                        s.department
                    );
                    let line = r.line(node);
                    r.error(format!("{path}.department"), line, K::Duplicate, msg);
                } else {
                    seen_departments.insert(s.department, path.clone());
                }
                sections.push(s);
            }
        }
    }
    Some(Template {
        id: id?,
        version: version?,
        title: title?,
        note,
        sections,
    })
}

fn read_dispositions(r: &mut Reader, t: &TableCursor<'_>) -> Option<Vec<Disposition>> {
    let node = t.get("applies_to")?;
    let path = t.child("applies_to");
    let list = r.array(node, &path)?;
    if list.is_empty() {
        r.error_at(
            node,
            &path,
            K::Empty,
            "list at least one disposition, or leave the key out",
        );
        return None;
    }
    let mut out = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(code) = r.string(n, &p) {
            match Disposition::from_code(&code) {
                Some(d) if !out.contains(&d) => out.push(d),
                Some(_) => r.error_at(n, &p, K::Duplicate, format!("{code:?} listed twice")),
                None => r.error_at(
                    n,
                    &p,
                    K::UnknownDisposition,
                    format!(
                        "unknown disposition {code:?}; expected cancel, continue or never_produced"
                    ),
                ),
            }
        }
    }
    Some(out)
}

fn read_section(
    r: &mut Reader,
    node: &Node,
    path: &str,
    seen_numbers: &mut BTreeMap<u32, String>,
) -> Option<Section> {
    let t = r.table(node, path)?;
    r.deny_unknown(&t, SECTION_KEYS);
    let department = r.required(&t, "department").and_then(|n| {
        let p = t.child("department");
        let code = r.string(n, &p)?;
        let d = Department::from_code(&code);
        if d.is_none() {
            let known: Vec<&str> = Department::ALL.iter().map(|d| d.code()).collect();
            r.error_at(
                n,
                &p,
                K::UnknownDepartment,
                format!(
                    "unknown department {code:?}; expected one of: {}",
                    known.join(", ")
                ),
            );
        }
        d
    });
    let name = r.req_text(&t, "name");
    let required = r.opt_bool(&t, "required", true);
    let applies_to = read_dispositions(r, &t).unwrap_or_else(|| Disposition::ALL.to_vec());
    let mut items = Vec::new();
    if let Some(list) = r
        .required(&t, "items")
        .and_then(|n| r.array(n, &t.child("items")))
    {
        if list.is_empty() {
            r.error(
                t.child("items"),
                t.line(),
                K::Empty,
                "a section needs at least one item",
            );
        }
        for (i, n) in list.iter().enumerate() {
            let p = format!("{path}.items[{i}]");
            if let Some(item) = read_item(r, n, &p, &applies_to) {
                if let Some(first) = seen_numbers.get(&item.number) {
                    let msg = format!("item number {} is already used at {first}", item.number);
                    let line = r.line(n);
                    r.error(format!("{p}.number"), line, K::Duplicate, msg);
                } else {
                    seen_numbers.insert(item.number, p.clone());
                }
                items.push(item);
            }
        }
    }
    Some(Section {
        department: department?,
        name: name?,
        required,
        applies_to,
        items,
    })
}

fn read_item(
    r: &mut Reader,
    node: &Node,
    path: &str,
    section_applies: &[Disposition],
) -> Option<Item> {
    let t = r.table(node, path)?;
    r.deny_unknown(&t, ITEM_KEYS);
    let number = r.required(&t, "number").and_then(|n| {
        let p = t.child("number");
        let v = r.integer(n, &p)?;
        match u32::try_from(v) {
            Ok(v) if (1..=9999).contains(&v) => Some(v),
            _ => {
                r.error_at(
                    n,
                    &p,
                    K::OutOfRange,
                    format!("item number {v} is not in 1..=9999"),
                );
                None
            }
        }
    });
    let title = r.req_text(&t, "title");
    let criterion = r.opt_text(&t, "criterion");
    let note = r.opt_text(&t, "note");
    let mut methods = Vec::new();
    if let Some(n) = r.required(&t, "methods") {
        let p = t.child("methods");
        if let Some(list) = r.array(n, &p) {
            if list.is_empty() {
                r.error_at(n, &p, K::Empty, "list at least one method");
            }
            for (i, m) in list.iter().enumerate() {
                let mp = format!("{p}[{i}]");
                if let Some(code) = r.string(m, &mp) {
                    match Method::ALL.into_iter().find(|x| x.code() == code) {
                        Some(x) if !methods.contains(&x) => methods.push(x),
                        Some(_) => {
                            r.error_at(m, &mp, K::Duplicate, format!("{code:?} listed twice"))
                        }
                        None => r.error_at(
                            m,
                            &mp,
                            K::UnknownMethod,
                            format!(
                                "unknown method {code:?}; expected check_records (查资料), \
                                 site_inspection (现场查看) or measurement (实测)"
                            ),
                        ),
                    }
                }
            }
        }
    }
    let photo = match t.get("photo") {
        None => Some(PhotoExpectation::None),
        Some(n) => {
            let p = t.child("photo");
            r.string(n, &p).and_then(|s| match s.as_str() {
                "required" => Some(PhotoExpectation::Required),
                "optional" => Some(PhotoExpectation::Optional),
                "none" => Some(PhotoExpectation::None),
                _ => {
                    r.error_at(
                        n,
                        &p,
                        K::UnknownPhotoExpectation,
                        format!(
                            "unknown photo expectation {s:?}; expected required, optional or none"
                        ),
                    );
                    None
                }
            })
        }
    };
    let applies_to = read_dispositions(r, &t).unwrap_or_else(|| section_applies.to_vec());
    if let Some(n) = t.get("applies_to") {
        for d in &applies_to {
            if !section_applies.contains(d) {
                r.error_at(
                    n,
                    &t.child("applies_to"),
                    K::Conflict,
                    format!("{} is not among the section's dispositions", d.code()),
                );
            }
        }
    }
    let mut parts = Vec::new();
    if let Some(list) = r
        .required(&t, "answer")
        .and_then(|n| r.array(n, &t.child("answer")))
    {
        if list.is_empty() {
            r.error(
                t.child("answer"),
                t.line(),
                K::Empty,
                "an item needs at least one answer part",
            );
        }
        for (i, n) in list.iter().enumerate() {
            let p = format!("{path}.answer[{i}]");
            if let Some(part) = read_part(r, n, &p) {
                if parts.iter().any(|x: &AnswerPart| x.key == part.key) {
                    let line = r.line(n);
                    r.error(
                        format!("{p}.key"),
                        line,
                        K::Duplicate,
                        format!("part key {:?} is already used in this item", part.key),
                    );
                }
                parts.push(part);
            }
        }
    }
    Some(Item {
        number: number?,
        title: title?,
        criterion,
        methods,
        photo: photo?,
        applies_to,
        note,
        parts,
    })
}

fn read_part(r: &mut Reader, node: &Node, path: &str) -> Option<AnswerPart> {
    let t = r.table(node, path)?;
    r.deny_unknown(&t, PART_KEYS);
    let mut key = r.req_identifier(&t, "key");
    if let (Some(k), Some(node)) = (&key, t.get("key"))
        && ItemText::from_code(k).is_some()
    {
        r.error_at(
            node,
            &t.child("key"),
            K::BadKey,
            format!("{k:?} is reserved: every item has a {k} field of its own"),
        );
        key = None;
    }
    let label = r.opt_text(&t, "label");
    let kind_code = r
        .required(&t, "kind")
        .and_then(|n| r.string(n, &t.child("kind")).map(|s| (n, s)));
    let forbid = |r: &mut Reader, keys: &[&str], kind: &str| {
        for k in keys {
            if let Some(n) = t.get(k) {
                r.error_at(
                    n,
                    &t.child(k),
                    K::Conflict,
                    format!("`{k}` does not apply to a {kind} part"),
                );
            }
        }
    };
    let kind = match kind_code {
        None => None,
        Some((_, code)) if code == "pass_fail" => {
            forbid(r, &["unit", "op", "threshold"], "pass_fail");
            Some(AnswerKind::PassFail {
                not_applicable_allowed: r.opt_bool(&t, "not_applicable_allowed", false),
            })
        }
        Some((_, code)) if code == "text" => {
            forbid(
                r,
                &["unit", "op", "threshold", "not_applicable_allowed"],
                "text",
            );
            Some(AnswerKind::Text)
        }
        Some((_, code)) if code == "number" => {
            forbid(r, &["not_applicable_allowed"], "number");
            read_number(r, &t)
        }
        Some((n, code)) => {
            r.error_at(
                n,
                &t.child("kind"),
                K::UnknownAnswerKind,
                format!("unknown answer kind {code:?}; expected pass_fail, number or text"),
            );
            None
        }
    };
    Some(AnswerPart {
        key: key?,
        label,
        kind: kind?,
    })
}

fn read_number(r: &mut Reader, t: &TableCursor<'_>) -> Option<AnswerKind> {
    let unit = match t.get("unit") {
        None => {
            r.error(
                t.child("unit"),
                t.line(),
                K::MissingUnit,
                "a number part needs a unit",
            );
            None
        }
        Some(n) => r.text(n, &t.child("unit")),
    };
    let op = t.get("op").and_then(|n| {
        let p = t.child("op");
        let s = r.string(n, &p)?;
        let op = CompareOp::parse(&s);
        if op.is_none() {
            r.error_at(
                n,
                &p,
                K::UnknownOperator,
                format!("unknown operator {s:?}; expected one of ≤ ≥ < > = (or <= >= ==)"),
            );
        }
        op
    });
    let threshold = t.get("threshold").and_then(|n| {
        let p = t.child("threshold");
        match &n.value {
            super::datafile::NodeValue::Leaf(toml::Value::String(s)) => {
                let s = s.trim();
                if s == "design_value" {
                    Some(Threshold::DesignValue)
                } else {
                    match s.parse::<Decimal>() {
                        Ok(value) => Some(Threshold::Value { value }),
                        Err(e) => {
                            r.error_at(
                                n,
                                &p,
                                K::NotADecimal,
                                format!("{e}; or write \"design_value\""),
                            );
                            None
                        }
                    }
                }
            }
            super::datafile::NodeValue::Leaf(toml::Value::Integer(i)) => Some(Threshold::Value {
                value: Decimal::from_int(*i),
            }),
            super::datafile::NodeValue::Leaf(toml::Value::Float(f)) => {
                r.error_at(
                    n,
                    &p,
                    K::NotADecimal,
                    format!("write the threshold {f} as a string (e.g. \"{f}\") so it stays exact"),
                );
                None
            }
            _ => {
                r.error_at(
                    n,
                    &p,
                    K::NotADecimal,
                    "expected a decimal string or \"design_value\"",
                );
                None
            }
        }
    });
    let rule = match (t.get("op"), t.get("threshold")) {
        (None, None) => None,
        (Some(_), Some(_)) => Some(NumberRule {
            op: op?,
            threshold: threshold?,
        }),
        (Some(n), None) | (None, Some(n)) => {
            r.error_at(
                n,
                &t.path,
                K::IncompleteRule,
                "give both `op` and `threshold`, or neither",
            );
            return None;
        }
    };
    Some(AnswerKind::Number { unit: unit?, rule })
}

#[cfg(test)]
mod tests;
