//! Organisation data: departments, expert specialties, townships and forest farms.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    model::{Department, Role, Specialty, Township},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_departments))
        .routes(routes!(list_specialties))
        .routes(routes!(list_townships, create_township))
}

/// Departments (责任单位), inspecting ones first, observers last.
#[utoipa::path(get, path = "/departments", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = [Department]), (status = 401, body = ErrorBody)))]
async fn list_departments(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<Department>>> {
    Ok(Json(state.store.list_departments().await?))
}

/// Expert specialties.
#[utoipa::path(get, path = "/specialties", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = [Specialty]), (status = 401, body = ErrorBody)))]
async fn list_specialties(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<Specialty>>> {
    Ok(Json(state.store.list_specialties().await?))
}

/// Townships, towns, sub-districts and forest farms.
#[utoipa::path(get, path = "/townships", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = [Township]), (status = 401, body = ErrorBody)))]
async fn list_townships(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Vec<Township>>> {
    Ok(Json(state.store.list_townships().await?))
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
    responses((status = 201, body = Township), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_township(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<NewTownship>,
) -> Result<(StatusCode, Json<Township>)> {
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
    Ok((StatusCode::CREATED, Json(township)))
}
