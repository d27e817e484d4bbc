//! Who may write which section of a record, and what each caller sees of the feed.

use std::collections::HashMap;

use sync_protocol::{EntityId, EntityState, Op, OpBody, Policy, Reject, RejectCode, section_of};
use uuid::Uuid;

use crate::{
    error::Result,
    identity::auth::AuthUser,
    model::{
        Role,
        letter::{self, LETTER_TYPE, OPINIONS_FIELD},
        record::{ENTITY_TYPES, EXPERT_SECTION, HEADER_SECTION, SCOPE_FIELD, TOWNSHIP_SECTION},
    },
    store::Visibility,
};

/// Who may write what, for one caller.
#[derive(Debug, Clone)]
pub struct SyncPolicy<'a> {
    /// The signed-in user (only a signature's own signer may withdraw it).
    pub user: Uuid,
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
            user: caller.id(),
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
            EXPERT_SECTION => {
                return Err(Reject::new(
                    RejectCode::UnknownField,
                    "an acceptance record has no experts section: the experts sign the opinion \
                     letter (验收合格意见书), an entity of its own",
                ));
            }
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

    /// Only the person a section signature names as its signer may withdraw it.
    fn check_withdraw(&self, state: &EntityState, section: &str) -> Result<(), Reject> {
        let signer = state
            .signatures
            .get(section)
            .and_then(|s| sync_protocol::DeviceSignature::from_value(&s.signature).ok())
            .and_then(|sig| match sig.statement.get("signer") {
                Some(sync_protocol::Value::Map(m)) => m
                    .get("user")
                    .and_then(sync_protocol::Value::as_str)
                    .map(str::to_owned),
                _ => None,
            });
        if signer.as_deref() == Some(self.user.to_string().as_str()) {
            Ok(())
        } else {
            Err(Reject::new(
                RejectCode::Forbidden,
                format!(
                    "only the person who signed the {section} section may withdraw the signature"
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

impl SyncPolicy<'_> {
    /// Ops on an opinion letter: the server writes it for the county office; devices only add
    /// experts' words to `experts/opinions` (PROTOCOL.md §15).
    fn check_letter_op(&self, op: &Op) -> Result<(), Reject> {
        match &op.body {
            OpBody::Add { field, .. } if field == OPINIONS_FIELD => {
                if self.role != Role::Expert {
                    return Err(Reject::new(
                        RejectCode::Forbidden,
                        format!(
                            "only experts give their word on a letter, not a {}",
                            self.role
                        ),
                    ));
                }
                self.signature_holds(op)
            }
            OpBody::Create { .. } => Err(Reject::new(
                RejectCode::Forbidden,
                "opinion letters are drafted by the county office over the API, not created by \
                 devices",
            )),
            _ => Err(Reject::new(
                RejectCode::Forbidden,
                "the county office edits the letter over the API; devices only add experts' \
                 words (experts/opinions)",
            )),
        }
    }

    /// An expert's word on a letter, in the light of the letter as it stands.
    fn check_opinion(
        &self,
        state: &EntityState,
        element: &sync_protocol::Value,
    ) -> Result<(), Reject> {
        if state.value(letter::STATUS_FIELD).and_then(|v| v.as_str()) == Some(letter::ISSUED) {
            return Err(Reject::new(
                RejectCode::LetterIssued,
                "the letter is issued; nothing changes it any more",
            ));
        }
        let opinion = sync_protocol::signature::letter_opinion(element)
            .map_err(|e| Reject::new(RejectCode::InvalidSignature, e.to_string()))?;
        let current = sync_protocol::section_hash(state, letter::TEXT_SECTION)
            .map_err(|e| Reject::new(RejectCode::InvalidOp, e.to_string()))?;
        if opinion.content_hash != current {
            return Err(Reject::new(
                RejectCode::HashMismatch,
                format!(
                    "the letter changed since it was read (read {}, now {}); review it again",
                    &opinion.content_hash[..12],
                    &current[..12]
                ),
            ));
        }
        let on_panel = match state.value(&letter::text_key("panel")) {
            Some(sync_protocol::Value::List(members)) => members.iter().any(|m| {
                matches!(m, sync_protocol::Value::Map(m)
                    if m.get("user").and_then(|u| u.as_str()) == Some(opinion.user.as_str()))
            }),
            _ => false,
        };
        if !on_panel {
            return Err(Reject::new(
                RejectCode::Forbidden,
                "you are not on this letter's expert panel",
            ));
        }
        let given = state.sets.get(OPINIONS_FIELD).is_some_and(|set| {
            set.elements.values().any(|e| {
                sync_protocol::signature::letter_opinion(&e.value)
                    .is_ok_and(|o| o.user == opinion.user && o.content_hash == opinion.content_hash)
            })
        });
        if given {
            return Err(Reject::new(
                RejectCode::AlreadySigned,
                "you already gave your word on this version of the letter",
            ));
        }
        Ok(())
    }
}

impl Policy for SyncPolicy<'_> {
    fn check(&self, entity_type: &str, op: &Op) -> Result<(), Reject> {
        if entity_type == LETTER_TYPE {
            return self.check_letter_op(op);
        }
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
            OpBody::Withdraw { section, .. } => self.may_write(section),
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

    fn check_state(&self, state: &EntityState, op: &Op) -> Result<(), Reject> {
        match &op.body {
            OpBody::Add { field, element }
                if state.entity_type == LETTER_TYPE && field == OPINIONS_FIELD =>
            {
                self.check_opinion(state, element)
            }
            _ => Ok(()),
        }
    }

    fn check_sign(&self, state: &EntityState, op: &Op) -> Result<(), Reject> {
        match &op.body {
            OpBody::Withdraw { section, .. } => self.check_withdraw(state, section),
            _ => self.templates.check_sign(state, op),
        }
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
