//! The acceptance templates the sync transaction checks answers against.
//!
//! Templates are immutable per `id@version`, so parsed templates are cached in process memory
//! (a cache of immutable data: every replica fills its own from the store). The sync transaction
//! only reads the cache ([`TemplatePolicy::from_states`]); [`template`] and [`warm_cache`] fill it.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock},
};

use sync_protocol::{EntityId, EntityState, Op, OpBody, Reject, RejectCode, Value};

use crate::{
    AppState,
    error::{AppError, Result},
    model::{
        Disposition,
        record::{DISPOSITION_FIELD, RESERVED_HEADER, TEMPLATE_FIELD},
    },
    rules::template::{self, AnswerError, Template},
    store::StoreError,
};

static CACHE: LazyLock<RwLock<HashMap<String, Arc<Template>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

fn cached(template_ref: &str) -> Option<Arc<Template>> {
    CACHE.read().ok()?.get(template_ref).cloned()
}

fn cache(template: Template) -> Arc<Template> {
    let template = Arc::new(template);
    if let Ok(mut c) = CACHE.write() {
        c.insert(template.reference(), template.clone());
    }
    template
}

/// Parse every stored template into the cache (at start: the sync transaction only reads the
/// cache). A stored template that no longer parses is reported and skipped.
pub async fn warm_cache(store: &dyn crate::store::Store) -> crate::store::StoreResult<usize> {
    let mut n = 0;
    for (tref, source) in store.list_templates().await? {
        match Template::parse(&source) {
            Ok(t) => {
                cache(t);
                n += 1;
            }
            Err(e) => {
                tracing::error!(template = ?tref, error = ?e.to_string(), "stored template is invalid")
            }
        }
    }
    Ok(n)
}

/// The parsed template `template_ref`, from the cache, the built-in default, or the store.
pub async fn template(state: &AppState, template_ref: &str) -> Result<Arc<Template>> {
    if let Some(t) = cached(template_ref) {
        return Ok(t);
    }
    if template_ref == crate::config::DEFAULT_TEMPLATE_REF {
        return default_template();
    }
    let source = match state.store.get_template_source(template_ref).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("template")),
        Err(e) => return Err(e.into()),
    };
    let parsed = Template::parse(&source)
        .map_err(|e| AppError::Internal(format!("stored template {template_ref}: {e}")))?;
    Ok(cache(parsed))
}

/// The built-in default template (`server/templates/default-2023.toml`).
fn default_template() -> Result<Arc<Template>> {
    let t = Template::default_2023()
        .map_err(|e| AppError::Internal(format!("built-in template is invalid: {e}")))?;
    if let Some(c) = cached(&t.reference()) {
        return Ok(c);
    }
    Ok(cache(t))
}

/// Templates of the touched records, for checking answers inside the sync transaction.
#[derive(Debug, Clone, Default)]
pub struct TemplatePolicy {
    by_entity: HashMap<EntityId, (Arc<Template>, Disposition)>,
    missing: Vec<EntityId>,
}

impl TemplatePolicy {
    /// The templates of the loaded records (by their header), from the cache. Runs inside the
    /// sync transaction, so it must not wait on the store: the built-in template is always
    /// available, and every other template is cached when its first round opens on this replica
    /// or when [`template`] loads it. A record whose template is not at hand is refused with a
    /// reason rather than left unchecked.
    pub fn from_states<'a>(entities: impl IntoIterator<Item = &'a EntityState>) -> Self {
        let mut by_entity = HashMap::new();
        let mut missing = Vec::new();
        for e in entities {
            let (Some(tref), Some(disposition)) = (
                e.value(TEMPLATE_FIELD).and_then(Value::as_str),
                e.value(DISPOSITION_FIELD)
                    .and_then(Value::as_str)
                    .and_then(Disposition::from_code),
            ) else {
                continue;
            };
            let template =
                cached(tref).or_else(|| default_template().ok().filter(|t| t.reference() == tref));
            match template {
                Some(t) => {
                    by_entity.insert(e.id, (t, disposition));
                }
                None => missing.push(e.id),
            }
        }
        Self { by_entity, missing }
    }

    /// Check a set/resolve of `field` against the record's template; header and non-template
    /// sections (e.g. `experts`) are left to the section rights.
    pub fn check(&self, op: &Op) -> std::result::Result<(), Reject> {
        if self.missing.contains(&op.entity) {
            return Err(Reject::new(
                RejectCode::InvalidOp,
                "this record's template is not loaded on the server; try again later",
            ));
        }
        let Some((template, disposition)) = self.by_entity.get(&op.entity) else {
            return Ok(());
        };
        // The header fields a round wrote identify the record; nobody changes them.
        if let Some(field) = op.body.field()
            && RESERVED_HEADER.contains(&field)
        {
            return Err(Reject::new(
                RejectCode::Forbidden,
                format!("{field} identifies this acceptance record and cannot be changed"),
            ));
        }
        let (field, value) = match &op.body {
            OpBody::Set { field, value, .. } | OpBody::Resolve { field, value, .. } => {
                (field, value)
            }
            OpBody::Add { field, .. } | OpBody::Remove { field, .. } => {
                return check_evidence(template, *disposition, field);
            }
            _ => return Ok(()),
        };
        let section = sync_protocol::section_of(field);
        if template::Department::from_code(section).is_none() {
            return Ok(());
        }
        match template.validate_answer(*disposition, field, value) {
            Ok(_) => Ok(()),
            Err(
                e @ (AnswerError::MalformedKey { .. }
                | AnswerError::UnknownField { .. }
                | AnswerError::NotApplicable { .. }),
            ) => Err(Reject::new(RejectCode::UnknownField, e.to_string())),
            Err(e) => Err(Reject::new(RejectCode::InvalidOp, e.to_string())),
        }
    }
}

impl TemplatePolicy {
    /// A department's section is signed only when every deciding answer of its applicable
    /// items is there (a failing answer is a finding and may be signed; a missing one is not).
    pub fn check_sign(&self, state: &EntityState, op: &Op) -> std::result::Result<(), Reject> {
        let OpBody::Sign { section, .. } = &op.body else {
            return Ok(());
        };
        let Some((template, disposition)) = self.by_entity.get(&op.entity) else {
            return Ok(());
        };
        let Some(department) = template::Department::from_code(section) else {
            return Ok(());
        };
        let values = state
            .fields
            .iter()
            .filter(|(k, _)| sync_protocol::section_of(k) == section)
            .map(|(k, f)| (k.as_str(), &f.value));
        let (answers, _) = template.collect_answers(*disposition, values);
        let verdict = template.verdict(
            *disposition,
            &answers,
            template::FailureConclusion::RectifyByDeadline,
        );
        let mut missing: Vec<u32> = verdict
            .failing
            .iter()
            .chain(&verdict.advisory)
            .filter(|p| {
                p.department == department
                    && matches!(
                        p.reason,
                        template::ProblemReason::Unanswered
                            | template::ProblemReason::DesignValueMissing
                    )
            })
            .map(|p| p.number)
            .collect();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        Err(Reject::new(
            RejectCode::IncompleteSection,
            format!(
                "items {} of the {section} section are not answered yet; answer them before \
                 signing",
                list.join(", ")
            ),
        ))
    }
}

/// A department section's only set fields are its items' evidence photos
/// (`<department>/<item>.photos`, PROTOCOL.md §13), for items that apply to the record.
fn check_evidence(
    template: &Template,
    disposition: Disposition,
    field: &str,
) -> std::result::Result<(), Reject> {
    if template::Department::from_code(sync_protocol::section_of(field)).is_none() {
        return Ok(());
    }
    let unknown = |message: String| Err(Reject::new(RejectCode::UnknownField, message));
    match template.evidence_item(field) {
        Ok(Some((section, item))) => {
            if section.applies_to.contains(&disposition) && item.applies(disposition) {
                Ok(())
            } else {
                unknown(format!(
                    "item {} of {} does not apply to a {} mine",
                    item.number,
                    section.department.code(),
                    disposition.code()
                ))
            }
        }
        Ok(None) => unknown(format!(
            "{field} is not an item's evidence photos; a section's set fields are \
             <section>/<item>.photos"
        )),
        Err(e) => unknown(e.to_string()),
    }
}
