//! Organisation data: departments, expert specialties, townships and forest farms.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    model::{Department, Role, Specialty, Township},
};

/// A department (责任单位). Inspecting departments own acceptance-table sections; observers
/// (国资办, 财政局, 检察院, 法院, 纪委监委) attend but fill no section.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Department)]
pub struct DepartmentView {
    pub code: String,
    pub name: String,
    pub observer: bool,
    pub sort_order: i32,
}

impl From<&Department> for DepartmentView {
    fn from(d: &Department) -> Self {
        DepartmentView {
            code: d.code.clone(),
            name: d.name.clone(),
            observer: d.observer,
            sort_order: d.sort_order,
        }
    }
}

/// An expert specialty (水工环, 环境保护, 林业).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Specialty)]
pub struct SpecialtyView {
    pub code: String,
    pub name: String,
}

impl From<&Specialty> for SpecialtyView {
    fn from(s: &Specialty) -> Self {
        SpecialtyView {
            code: s.code.clone(),
            name: s.name.clone(),
        }
    }
}

/// A township, town, sub-district or forest farm.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Township)]
pub struct TownshipView {
    pub id: Uuid,
    pub name: String,
    /// `township` (乡), `town` (镇), `subdistrict` (街道), or `forest_farm` (林场).
    #[schema(value_type = TownshipKind)]
    pub kind: String,
    pub created_at: i64,
}

impl From<&Township> for TownshipView {
    fn from(t: &Township) -> Self {
        TownshipView {
            id: t.id,
            name: t.name.clone(),
            kind: t.kind.clone(),
            created_at: t.created_at,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_departments))
        .routes(routes!(list_specialties))
        .routes(routes!(list_townships, create_township))
}

/// Departments (责任单位), inspecting ones first, observers last.
#[utoipa::path(get, path = "/departments", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = [DepartmentView]), (status = 401, body = ErrorBody)))]
async fn list_departments(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<DepartmentView>>> {
    Ok(Json(
        state
            .store
            .list_departments()
            .await?
            .iter()
            .map(DepartmentView::from)
            .collect(),
    ))
}

/// Expert specialties.
#[utoipa::path(get, path = "/specialties", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = [SpecialtyView]), (status = 401, body = ErrorBody)))]
async fn list_specialties(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<SpecialtyView>>> {
    Ok(Json(
        state
            .store
            .list_specialties()
            .await?
            .iter()
            .map(SpecialtyView::from)
            .collect(),
    ))
}

/// Townships, towns, sub-districts and forest farms.
#[utoipa::path(get, path = "/townships", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = [TownshipView]), (status = 401, body = ErrorBody)))]
async fn list_townships(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<TownshipView>>> {
    Ok(Json(
        state
            .store
            .list_townships()
            .await?
            .iter()
            .map(TownshipView::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTownship {
    /// e.g. 泗溪镇, 上甘山林场: 1 to 50 characters once trimmed.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub name: String,
    /// `township` (乡), `town` (镇), `subdistrict` (街道) or `forest_farm` (林场).
    #[schema(value_type = TownshipKind)]
    pub kind: String,
}

/// The kinds of township (the document's enum of [`TOWNSHIP_KINDS`]).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum TownshipKind {
    Township,
    Town,
    Subdistrict,
    ForestFarm,
}

pub const TOWNSHIP_KINDS: [&str; 4] = ["township", "town", "subdistrict", "forest_farm"];

/// Add a township or forest farm (admin or county office).
#[utoipa::path(post, path = "/townships", tag = "organisation", security(("bearer" = [])),
    request_body = NewTownship,
    responses((status = 201, body = TownshipView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_township(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<NewTownship>,
) -> Result<(StatusCode, Json<TownshipView>)> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 50 {
        return Err(AppError::invalid_field(
            "name",
            "must have 1 to 50 characters",
        ));
    }
    if !TOWNSHIP_KINDS.contains(&req.kind.as_str()) {
        return Err(AppError::invalid_field(
            "kind",
            format!("must be one of {}", TOWNSHIP_KINDS.join(", ")),
        ));
    }
    let township = Township {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        kind: req.kind,
        created_at: state.clock.now_ms(),
    };
    state.store.create_township(&township).await?;
    Ok((StatusCode::CREATED, Json(TownshipView::from(&township))))
}
