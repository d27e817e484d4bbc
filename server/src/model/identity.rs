//! Who acts: roles, accounts, departments, specialties, townships, devices.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a user may do. Scope (department, township, specialty) lives beside the role on [`User`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the installation: users, townships, templates.
    Admin,
    /// 县政府办 / 领导小组办公室: runs the campaign, approves dispositions, sees the dashboard.
    CountyOffice,
    /// A department's inspector (bound to one department); fills and signs its section.
    DepartmentInspector,
    /// 乡镇/林场 officer (bound to one township or forest farm); proposes dispositions, 初验.
    TownshipOfficer,
    /// 专家 from the provincial pool (with a specialty); signs the 验收合格意见书.
    Expert,
    /// 采矿权人 (mining-right holder); bound to its mines later.
    Operator,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::CountyOffice,
        Role::DepartmentInspector,
        Role::TownshipOfficer,
        Role::Expert,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::CountyOffice => "county_office",
            Role::DepartmentInspector => "department_inspector",
            Role::TownshipOfficer => "township_officer",
            Role::Expert => "expert",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Department code, for `department_inspector`.
    pub department: Option<String>,
    /// Township or forest farm, for `township_officer`.
    pub township_id: Option<Uuid>,
    /// Expert specialty code, for `expert`.
    pub specialty: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub password_hash: String,
}

/// Input for [`Store::create_user`]; the scope rules are checked by the caller (`accounts`).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub department: Option<String>,
    pub township_id: Option<Uuid>,
    pub specialty: Option<String>,
    pub password_hash: String,
    pub created_at: i64,
}

/// A department (责任单位). Inspecting departments own acceptance-table sections; observers
/// (国资办, 财政局, 检察院, 法院, 纪委监委) attend but fill no section.
#[derive(Debug, Clone, PartialEq)]
pub struct Department {
    pub code: String,
    pub name: String,
    pub observer: bool,
    pub sort_order: i32,
}

/// Expert specialty (水工环, 环境保护, 林业).
#[derive(Debug, Clone, PartialEq)]
pub struct Specialty {
    pub code: String,
    pub name: String,
}

/// A township, town, sub-district or forest farm: configurable data, not code.
#[derive(Debug, Clone, PartialEq)]
pub struct Township {
    pub id: Uuid,
    pub name: String,
    /// `township` (乡), `town` (镇), `subdistrict` (街道), or `forest_farm` (林场).
    pub kind: String,
    pub created_at: i64,
}

/// An enrolled phone. Its id is the writer of one op series in the sync protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The device's P-256 public key as SPKI DER, base64 (standard alphabet).
    pub public_key_spki: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}
