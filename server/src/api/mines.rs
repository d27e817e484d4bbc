//! Mines, the disposition workflow, the dashboard and the case log.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::auth::AuthUser,
    mines::{
        self, Dashboard, HolderBinding, ImportReport, MineDetail, NewCase, NewMine,
        TransitionRequest,
    },
    model::{AcceptanceRound, CaseRecord, Mine},
    rounds::{self, RoundView},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_mines, create_mine))
        .routes(routes!(import_mines))
        .routes(routes!(export_mines))
        .routes(routes!(get_mine))
        .routes(routes!(transition_mine))
        .routes(routes!(bind_holder))
        .routes(routes!(add_case))
        .routes(routes!(dashboard))
        .routes(routes!(list_rounds, open_round))
        .routes(routes!(get_round))
}

/// Open the mine's next acceptance round (初验 or department acceptance): its record appears in
/// the sync feed for the inspectors' phones, filled against the template version it names.
#[utoipa::path(post, path = "/mines/{id}/rounds", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 201, body = AcceptanceRound), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn open_round(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<AcceptanceRound>)> {
    Ok((
        StatusCode::CREATED,
        Json(rounds::open(&state, &caller, id).await?),
    ))
}

/// The mine's rounds, oldest first (each re-inspection links to the previous round).
#[utoipa::path(get, path = "/mines/{id}/rounds", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = [AcceptanceRound]), (status = 404, body = ErrorBody)))]
async fn list_rounds(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<AcceptanceRound>>> {
    Ok(Json(rounds::list(&state, &caller, id).await?))
}

/// A round with the verdict of its record as it stands (section results, failing items).
#[utoipa::path(get, path = "/rounds/{id}", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RoundView), (status = 404, body = ErrorBody)))]
async fn get_round(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<RoundView>> {
    Ok(Json(rounds::view(&state, &caller, id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AsOf {
    /// Date to evaluate deadlines at (YYYY-MM-DD); default: today in the county.
    #[param(value_type = Option<String>, format = Date)]
    pub as_of: Option<NaiveDate>,
}

/// Mines the caller may see (township officers: their township's).
#[utoipa::path(get, path = "/mines", tag = "mines", security(("bearer" = [])),
    responses((status = 200, body = [Mine]), (status = 403, body = ErrorBody)))]
async fn list_mines(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Vec<Mine>>> {
    Ok(Json(mines::visible_mines(&state, &caller).await?))
}

/// Register a mine (county office, admin). Boundary corner points may be CGCS2000 Gauss-Krüger
/// (as on the licence) or latitude/longitude with a declared datum.
#[utoipa::path(post, path = "/mines", tag = "mines", security(("bearer" = [])),
    request_body = NewMine,
    responses((status = 201, body = Mine), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_mine(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(input): ApiJson<NewMine>,
) -> Result<(StatusCode, Json<Mine>)> {
    Ok((
        StatusCode::CREATED,
        Json(mines::create(&state, &caller, input).await?),
    ))
}

/// Import mines from the county's CSV (Chinese headers 矿山名称, 采矿许可证号, 采矿权人, 所在乡镇, 矿种,
/// 开采方式, 矿区面积(公顷), 坐标系, 带号, 拐点坐标). All rows are checked; any problem → nothing is
/// imported and every problem is reported with its line.
#[utoipa::path(post, path = "/mines/import", tag = "mines", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 400, body = ImportReport),
              (status = 403, body = ErrorBody)))]
async fn import_mines(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ImportReport>)> {
    let csv_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv") || v.starts_with("text/plain"));
    if !csv_type {
        return Err(AppError::UnsupportedMediaType("text/csv"));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::bad_request("the CSV must be UTF-8 (save it as CSV UTF-8)"))?;
    let report = mines::import_csv(&state, &caller, text).await?;
    let status = if report.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(report)))
}

/// Export the caller's mines as CSV (the import columns plus disposition and stage).
#[utoipa::path(get, path = "/mines/export", tag = "mines", security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String)))]
async fn export_mines(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<impl IntoResponse> {
    let csv = mines::export_csv(&state, &caller).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// One mine with its open deadlines, transitions (audit trail) and case records.
#[utoipa::path(get, path = "/mines/{id}", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path), AsOf),
    responses((status = 200, body = MineDetail), (status = 404, body = ErrorBody)))]
async fn get_mine(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<AsOf>,
) -> Result<Json<MineDetail>> {
    Ok(Json(mines::detail(&state, &caller, id, q.as_of).await?))
}

/// Bind the mine to its mining-right holder's account (`{"user_id": "…"}`, an `operator`
/// account), or unbind it (`{"user_id": null}`). County office and admins.
#[utoipa::path(put, path = "/mines/{id}/holder", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = HolderBinding,
    responses((status = 200, body = Mine), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn bind_holder(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(binding): ApiJson<HolderBinding>,
) -> Result<Json<Mine>> {
    Ok(Json(
        mines::bind_holder(&state, &caller, id, binding).await?,
    ))
}

/// Take a workflow step (`{"transition": "approve", "reason": "…"}`); refused steps get 409 with
/// the reason, steps of another role 403.
#[utoipa::path(post, path = "/mines/{id}/transitions", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TransitionRequest,
    responses((status = 200, body = Mine), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn transition_mine(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(raw): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<Mine>> {
    // serde reads an internal tag given as a number as the variant's index (`"transition": 0`
    // would be `propose`): the step is named, never numbered.
    if !raw
        .get("transition")
        .is_some_and(serde_json::Value::is_string)
    {
        return Err(AppError::invalid_field(
            "transition",
            "must be the name of a step, e.g. \"approve\"",
        ));
    }
    let req: TransitionRequest = crate::error::parse_json(
        &serde_json::to_vec(&raw).map_err(|e| AppError::Internal(e.to_string()))?,
    )?;
    Ok(Json(mines::transition(&state, &caller, id, req).await?))
}

/// Add a case record: 一事一议 (`collective_study`) or 线索移送 (`referral`).
#[utoipa::path(post, path = "/mines/{id}/cases", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewCase,
    responses((status = 201, body = CaseRecord), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_case(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(case): ApiJson<NewCase>,
) -> Result<(StatusCode, Json<CaseRecord>)> {
    Ok((
        StatusCode::CREATED,
        Json(mines::add_case(&state, &caller, id, case).await?),
    ))
}

/// Counts by disposition and stage, overdue and due-soon deadlines, per-township progress.
#[utoipa::path(get, path = "/dashboard", tag = "mines", security(("bearer" = [])),
    params(AsOf),
    responses((status = 200, body = Dashboard), (status = 403, body = ErrorBody)))]
async fn dashboard(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(q): Query<AsOf>,
) -> Result<Json<Dashboard>> {
    Ok(Json(mines::dashboard(&state, &caller, q.as_of).await?))
}
