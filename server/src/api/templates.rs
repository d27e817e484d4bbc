//! Acceptance templates as the phone renders them.
//!
//! A template is immutable per `id@version`, so its view is cached by the browser for a year
//! (`immutable`) and carries an ETag (a hash of the body) for conditional requests.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    model::Disposition,
    rules::template::{
        AnswerKind, Department, FieldRole, Item, ItemText, Method, NumberRule, PhotoExpectation,
        Section, Template, Threshold, field_key, item_text_key,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates))
        .routes(routes!(get_template))
}

/// `Cache-Control` of a template view: it never changes for its `id@version`.
pub const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// A stored template version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateRef {
    /// `id@version`, how records name the template.
    pub reference: String,
    pub id: String,
    pub version: String,
    /// Title of the table.
    pub title: String,
    /// Whether new rounds are opened with this version (`acceptance_template`).
    pub current: bool,
}

/// An acceptance template as the phone renders it: sections, items and their answer fields,
/// with the sync field key of every value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateView {
    /// `id@version`.
    pub reference: String,
    pub id: String,
    pub version: String,
    pub title: String,
    pub note: Option<String>,
    /// One per department, in table order.
    pub sections: Vec<SectionView>,
}

/// One department's part of the table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionView {
    /// Who fills and signs it; also the section name in field keys.
    pub department: Department,
    /// The department's Chinese name (e.g. 水利局).
    pub department_name: String,
    /// Heading shown in the table.
    pub name: String,
    /// Whether the record verdict depends on it.
    pub required: bool,
    /// Dispositions the section applies to.
    pub applies_to: Vec<Disposition>,
    pub items: Vec<ItemView>,
}

/// One row of the table (验收项目).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemView {
    /// 序号, unique in the template.
    pub number: u32,
    /// 验收项目.
    pub title: String,
    /// 验收标准.
    pub criterion: Option<String>,
    /// 验收方式.
    pub methods: Vec<MethodView>,
    /// Whether evidence photos are expected.
    pub photo: PhotoExpectation,
    /// Dispositions the item applies to.
    pub applies_to: Vec<Disposition>,
    pub note: Option<String>,
    /// The answer fields, at least one.
    pub parts: Vec<PartView>,
    /// The field of the inspector's remark (备注) on the item, e.g. `forestry/19.remark`:
    /// text (at most 4000 characters) or null; never decides the verdict.
    pub remark_field: String,
    /// The field of the rectification requirement (整改要求), e.g. `forestry/19.rectification`:
    /// text (at most 4000 characters) or null; never decides the verdict.
    pub rectification_field: String,
}

/// An inspection method with its UI word.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MethodView {
    pub code: Method,
    /// 查资料, 现场查看, 实测.
    pub name: String,
}

/// The kind of an answer part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// `"pass"` / `"fail"` (and `"not_applicable"` where allowed).
    PassFail,
    /// A decimal string in `unit`.
    Number,
    /// Free text (at most 4000 characters); never decides the verdict.
    Text,
}

/// One answer field of an item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartView {
    /// Key within the item (`result`, `length`, …).
    pub key: String,
    /// The sync field key of the answer, e.g. `water_resources/14.length`.
    pub field: String,
    pub label: Option<String>,
    pub kind: PartKind,
    /// Pass/fail parts: whether 不涉及 may be answered.
    pub not_applicable_allowed: bool,
    /// Number parts: the unit (米, %, 公顷, °, …).
    pub unit: Option<String>,
    /// Number parts: the pass rule; absent for a value that is only recorded.
    pub rule: Option<NumberRule>,
    /// The rule's comparison as shown in the table (≤ ≥ < > =).
    pub rule_symbol: Option<String>,
    /// Number parts compared with the mine's design value: the field where it is entered.
    pub design_field: Option<String>,
}

impl TemplateView {
    pub fn new(t: &Template) -> Self {
        TemplateView {
            reference: t.reference(),
            id: t.id.clone(),
            version: t.version.clone(),
            title: t.title.clone(),
            note: t.note.clone(),
            sections: t.sections.iter().map(SectionView::new).collect(),
        }
    }
}

impl SectionView {
    fn new(s: &Section) -> Self {
        SectionView {
            department: s.department,
            department_name: s.department.name_zh().to_owned(),
            name: s.name.clone(),
            required: s.required,
            applies_to: s.applies_to.clone(),
            items: s.items.iter().map(|i| ItemView::new(s, i)).collect(),
        }
    }
}

impl ItemView {
    fn new(s: &Section, i: &Item) -> Self {
        let parts = i
            .parts
            .iter()
            .map(|p| {
                let key = |role| field_key(s.department, i.number, &p.key, role);
                let (kind, not_applicable_allowed, unit, rule) = match &p.kind {
                    AnswerKind::PassFail {
                        not_applicable_allowed,
                    } => (PartKind::PassFail, *not_applicable_allowed, None, None),
                    AnswerKind::Number { unit, rule } => {
                        (PartKind::Number, false, Some(unit.clone()), *rule)
                    }
                    AnswerKind::Text => (PartKind::Text, false, None, None),
                };
                let design_field = rule
                    .filter(|r| r.threshold == Threshold::DesignValue)
                    .map(|_| key(FieldRole::DesignValue));
                PartView {
                    key: p.key.clone(),
                    field: key(FieldRole::Answer),
                    label: p.label.clone(),
                    kind,
                    not_applicable_allowed,
                    unit,
                    rule_symbol: rule.map(|r| r.op.symbol().to_owned()),
                    rule,
                    design_field,
                }
            })
            .collect();
        ItemView {
            number: i.number,
            title: i.title.clone(),
            criterion: i.criterion.clone(),
            methods: i
                .methods
                .iter()
                .map(|m| MethodView {
                    code: *m,
                    name: m.name_zh().to_owned(),
                })
                .collect(),
            photo: i.photo,
            applies_to: i.applies_to.clone(),
            note: i.note.clone(),
            parts,
            remark_field: item_text_key(s.department, i.number, ItemText::Remark),
            rectification_field: item_text_key(s.department, i.number, ItemText::Rectification),
        }
    }
}

/// Stored template versions (and the built-in default), with the one new rounds use.
#[utoipa::path(get, path = "/templates", tag = "acceptance", security(("bearer" = [])),
    responses((status = 200, body = [TemplateRef]), (status = 401, body = ErrorBody)))]
async fn list_templates(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<TemplateRef>>> {
    let mut refs: Vec<String> = state
        .store
        .list_templates()
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    if !refs
        .iter()
        .any(|r| r == crate::config::DEFAULT_TEMPLATE_REF)
    {
        refs.push(crate::config::DEFAULT_TEMPLATE_REF.to_owned());
    }
    refs.sort();
    let mut out = Vec::with_capacity(refs.len());
    for reference in refs {
        // A stored template that no longer parses is logged at start and left out here.
        let Ok(t) = crate::sync::templates::template(&state, &reference).await else {
            continue;
        };
        out.push(TemplateRef {
            current: reference == state.settings.acceptance_template,
            reference,
            id: t.id.clone(),
            version: t.version.clone(),
            title: t.title.clone(),
        });
    }
    Ok(Json(out))
}

/// One template version as the phone renders it. Immutable per `id@version`: cached for a year,
/// with an ETag (`If-None-Match` → 304).
#[utoipa::path(get, path = "/templates/{id}/{version}", tag = "acceptance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "template id, e.g. shanggao-2023"),
           ("version" = String, Path, description = "template version, e.g. 2023.1")),
    responses(
        (status = 200, body = TemplateView,
         headers(("Cache-Control" = String), ("ETag" = String))),
        (status = 304, description = "the ETag in If-None-Match is current"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_template(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let template = crate::sync::templates::template(&state, &format!("{id}@{version}")).await?;
    let body = serde_json::to_vec(&TemplateView::new(&template))
        .map_err(|e| AppError::Internal(format!("template view: {e}")))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.to_string()))?,
        ),
    ];
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
