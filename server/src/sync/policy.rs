//! Who may write which section of a record, and what each caller sees of the feed.

use std::collections::HashMap;

use sync_protocol::{EntityId, EntityState, Op, OpBody, Policy, Reject, RejectCode, section_of};
use uuid::Uuid;

use crate::{
    error::Result,
    identity::auth::AuthUser,
    model::{
        Role,
        record::{ENTITY_TYPES, EXPERT_SECTION, HEADER_SECTION, SCOPE_FIELD, TOWNSHIP_SECTION},
    },
    store::Visibility,
};

/// Who may write what, for one caller.
#[derive(Debug, Clone)]
pub struct SyncPolicy<'a> {
    pub role: Role,
    pub department: Option<String>,
    pub township: Option<Uuid>,
    /// Codes of the inspecting departments (each owns the section of the same name).
    pub departments: &'a [String],
    /// Scope of each entity the batch touches, as stored before the batch.
    pub scopes: HashMap<EntityId, Option<Uuid>>,
    /// Templates of the touched acceptance records: answers are checked against them.
    pub templates: super::templates::TemplatePolicy,
    /// Verdicts on the device signatures the ops carry (section signatures, photo
    /// attestations), verified before the writer.
    pub signatures: &'a super::signatures::SignatureVerdicts,
}

static NO_SIGNATURES: std::sync::LazyLock<super::signatures::SignatureVerdicts> =
    std::sync::LazyLock::new(Default::default);

impl<'a> SyncPolicy<'a> {
    /// The caller's section rights alone (no records loaded): for [`Self::may_write`].
    pub fn for_caller(caller: &AuthUser, departments: &'a [String]) -> Self {
        SyncPolicy {
            role: caller.role(),
            department: caller.claims.dept.clone(),
            township: caller.claims.town,
            departments,
            scopes: HashMap::new(),
            templates: super::templates::TemplatePolicy::default(),
            signatures: &NO_SIGNATURES,
        }
    }

    /// May the caller write fields of `section` (and sign it)?
    pub(crate) fn may_write(&self, section: &str) -> Result<(), Reject> {
        let allowed = match section {
            HEADER_SECTION => matches!(
                self.role,
                Role::Admin | Role::CountyOffice | Role::TownshipOfficer
            ),
            TOWNSHIP_SECTION => self.role == Role::TownshipOfficer,
            EXPERT_SECTION => self.role == Role::Expert,
            dept if self.departments.iter().any(|d| d == dept) => {
                self.role == Role::DepartmentInspector && self.department.as_deref() == Some(dept)
            }
            other => {
                return Err(Reject::new(
                    RejectCode::UnknownField,
                    format!("there is no section {other:?} in an acceptance record"),
                ));
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Reject::new(
                RejectCode::Forbidden,
                format!(
                    "a {} may not change the {} section",
                    self.role,
                    if section.is_empty() {
                        "header"
                    } else {
                        section
                    }
                ),
            ))
        }
    }

    /// The verdict on the device signature `op` carries (none: it holds or there is none).
    fn signature_holds(&self, op: &Op) -> Result<(), Reject> {
        match self.signatures.failure(&op.id) {
            Some(reject) => Err(reject.clone()),
            None => Ok(()),
        }
    }

    /// Township officers act only within their township.
    fn check_scope(&self, op: &Op) -> Result<(), Reject> {
        let Some(own) = self.township.filter(|_| self.role == Role::TownshipOfficer) else {
            return Ok(());
        };
        let scope = match &op.body {
            OpBody::Create { fields, .. } => fields
                .get(SCOPE_FIELD)
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok()),
            _ => self.scopes.get(&op.entity).copied().flatten(),
        };
        if scope == Some(own) {
            Ok(())
        } else {
            Err(Reject::new(
                RejectCode::Forbidden,
                "this record belongs to another township",
            ))
        }
    }
}

impl Policy for SyncPolicy<'_> {
    fn check(&self, entity_type: &str, op: &Op) -> Result<(), Reject> {
        if !ENTITY_TYPES.contains(&entity_type) {
            return Err(Reject::new(
                RejectCode::UnknownField,
                format!("unknown entity type {entity_type:?}"),
            ));
        }
        self.check_scope(op)?;
        match &op.body {
            OpBody::Create { fields, .. } => {
                if !matches!(
                    self.role,
                    Role::Admin | Role::CountyOffice | Role::TownshipOfficer
                ) {
                    return Err(Reject::new(
                        RejectCode::Forbidden,
                        format!("a {} may not create acceptance records", self.role),
                    ));
                }
                for key in fields.keys() {
                    self.may_write(section_of(key))?;
                }
                Ok(())
            }
            OpBody::Tombstone => {
                if matches!(self.role, Role::Admin | Role::CountyOffice) {
                    Ok(())
                } else {
                    Err(Reject::new(
                        RejectCode::Forbidden,
                        format!("a {} may not delete acceptance records", self.role),
                    ))
                }
            }
            OpBody::Sign { section, .. } => {
                self.may_write(section)?;
                self.signature_holds(op)
            }
            other => match other.field() {
                Some(field) => {
                    self.may_write(section_of(field))?;
                    self.templates.check(op)?;
                    self.signature_holds(op)
                }
                None => Ok(()),
            },
        }
    }

    fn check_sign(&self, state: &EntityState, op: &Op) -> Result<(), Reject> {
        self.templates.check_sign(state, op)
    }
}

/// What the caller may see.
pub fn visibility(caller: &AuthUser) -> Visibility {
    match caller.role() {
        Role::Admin | Role::CountyOffice | Role::DepartmentInspector | Role::Expert => {
            Visibility::All
        }
        Role::TownshipOfficer => match caller.claims.town {
            Some(t) => Visibility::Township(t),
            None => Visibility::Nothing,
        },
        // Mining-right holders are bound to their mines with the workflow; until then, nothing.
        Role::Operator => Visibility::Nothing,
    }
}

pub(crate) fn scope_of(state: &EntityState) -> Option<Uuid> {
    state
        .value(SCOPE_FIELD)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}
