//! Mines, the disposition workflow, the dashboard and the case log.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, FieldError, Result},
    identity::auth::AuthUser,
    mines::{
        self, CreatedMine, Dashboard, DeadlineItem, HolderBinding, ImportReport, MineDetail,
        NewCase, NewMine, RowError, TownshipProgress, TransitionRequest, WaitingMine,
    },
    model::{AcceptanceRound, CaseRecord, Mine, MineEvent, MineFacts, Stage},
    rounds::{self, RoundState},
    rules::{template::Verdict, workflow::MineDeadline},
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
    responses((status = 201, body = AcceptanceRoundView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn open_round(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<AcceptanceRoundView>)> {
    Ok((
        StatusCode::CREATED,
        Json(AcceptanceRoundView::from(
            &rounds::open(&state, &caller, id).await?,
        )),
    ))
}

/// The mine's rounds, oldest first (each re-inspection links to the previous round).
#[utoipa::path(get, path = "/mines/{id}/rounds", tag = "acceptance", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = [AcceptanceRoundView]), (status = 404, body = ErrorBody)))]
async fn list_rounds(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<AcceptanceRoundView>>> {
    Ok(Json(
        rounds::list(&state, &caller, id)
            .await?
            .iter()
            .map(AcceptanceRoundView::from)
            .collect(),
    ))
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
    Ok(Json(rounds::view(&state, &caller, id).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AsOf {
    /// Date to evaluate deadlines at (YYYY-MM-DD); default: today in the county.
    #[param(value_type = Option<String>, format = Date)]
    pub as_of: Option<NaiveDate>,
}

/// Mines the caller may see (township officers: their township's).
#[utoipa::path(get, path = "/mines", tag = "mines", security(("bearer" = [])),
    responses((status = 200, body = [MineView]), (status = 403, body = ErrorBody)))]
async fn list_mines(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<MineView>>> {
    Ok(Json(
        mines::visible_mines(&state, &caller)
            .await?
            .iter()
            .map(MineView::from)
            .collect(),
    ))
}

/// Register a mine (county office, admin). Boundary corner points may be CGCS2000 Gauss-Krüger
/// (as on the licence) or latitude/longitude with a declared datum. `campaign_id` chooses a
/// stored campaign (unknown: 400 naming the field). `warnings` lists what was accepted but
/// deserves a look (the declared area far from the boundary's).
#[utoipa::path(post, path = "/mines", tag = "mines", security(("bearer" = [])),
    request_body = NewMine,
    responses((status = 201, body = CreatedMineView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_mine(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(input): ApiJson<NewMine>,
) -> Result<(StatusCode, Json<CreatedMineView>)> {
    Ok((
        StatusCode::CREATED,
        Json(CreatedMineView::from(
            mines::create(&state, &caller, input).await?,
        )),
    ))
}

/// Import mines from the county's CSV (Chinese headers 矿山名称, 采矿许可证号, 采矿权人, 所在乡镇, 矿种,
/// 开采方式, 矿区面积(公顷), 坐标系, 带号, 拐点坐标). All rows are checked; any problem → nothing is
/// imported and every problem is reported with its line.
#[utoipa::path(post, path = "/mines/import", tag = "mines", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReportView), (status = 400, body = ImportReportView),
              (status = 403, body = ErrorBody)))]
async fn import_mines(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ImportReportView>)> {
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
    Ok((status, Json(report.into())))
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
    responses((status = 200, body = MineDetailView), (status = 404, body = ErrorBody)))]
async fn get_mine(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<AsOf>,
) -> Result<Json<MineDetailView>> {
    Ok(Json(
        mines::detail(&state, &caller, id, q.as_of).await?.into(),
    ))
}

/// Bind the mine to its mining-right holder's account (`{"user_id": "…"}`, an `operator`
/// account), or unbind it (`{"user_id": null}`). County office and admins.
#[utoipa::path(put, path = "/mines/{id}/holder", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = HolderBinding,
    responses((status = 200, body = MineView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn bind_holder(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(binding): ApiJson<HolderBinding>,
) -> Result<Json<MineView>> {
    Ok(Json(MineView::from(
        &mines::bind_holder(&state, &caller, id, binding).await?,
    )))
}

/// Take a workflow step (`{"transition": "approve", "reason": "…"}`); refused steps get 409 with
/// the reason, steps of another role 403.
#[utoipa::path(post, path = "/mines/{id}/transitions", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TransitionRequest,
    responses((status = 200, body = MineView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn transition_mine(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(raw): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<MineView>> {
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
    Ok(Json(MineView::from(
        &mines::transition(&state, &caller, id, req).await?,
    )))
}

/// Add a case record: 一事一议 (`collective_study`) or 线索移送 (`referral`).
#[utoipa::path(post, path = "/mines/{id}/cases", tag = "mines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewCase,
    responses((status = 201, body = CaseRecordView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_case(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(case): ApiJson<NewCase>,
) -> Result<(StatusCode, Json<CaseRecordView>)> {
    Ok((
        StatusCode::CREATED,
        Json(CaseRecordView::from(
            &mines::add_case(&state, &caller, id, case).await?,
        )),
    ))
}

/// Counts by disposition and stage, overdue and due-soon deadlines, per-township progress.
#[utoipa::path(get, path = "/dashboard", tag = "mines", security(("bearer" = [])),
    params(AsOf),
    responses((status = 200, body = DashboardView), (status = 403, body = ErrorBody)))]
async fn dashboard(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(q): Query<AsOf>,
) -> Result<Json<DashboardView>> {
    Ok(Json(
        mines::dashboard(&state, &caller, q.as_of).await?.into(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Views: what the API shows of mines and rounds, built from the domain values.

/// A stopped mine in the registry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Mine)]
pub struct MineView {
    pub id: Uuid,
    /// 矿山名称
    pub name: String,
    /// 采矿许可证号
    pub licence_no: String,
    /// 采矿权人
    pub holder: String,
    /// The holder's account, once the county office has bound it.
    pub holder_user_id: Option<Uuid>,
    pub township_id: Uuid,
    /// 矿种
    pub mineral: String,
    /// 开采方式
    pub mining_method: String,
    /// 矿区面积 in hectares, an exact decimal string.
    pub area_ha: Option<String>,
    /// Boundary corner points as given and converted to latitude/longitude.
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<serde_json::Value>,
    pub campaign_id: String,
    pub facts: MineFacts,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Mine> for MineView {
    fn from(m: &Mine) -> Self {
        MineView {
            id: m.id,
            name: m.name.clone(),
            licence_no: m.licence_no.clone(),
            holder: m.holder.clone(),
            holder_user_id: m.holder_user_id,
            township_id: m.township_id,
            mineral: m.mineral.clone(),
            mining_method: m.mining_method.clone(),
            area_ha: m.area_ha.clone(),
            boundary: m.boundary.clone(),
            campaign_id: m.campaign_id.clone(),
            facts: m.facts.clone(),
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A registered mine with the warnings its data raised.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CreatedMine)]
pub struct CreatedMineView {
    #[serde(flatten)]
    pub mine: MineView,
    /// Accepted, but worth a second look (e.g. `area_ha` against the boundary).
    pub warnings: Vec<FieldError>,
}

impl From<CreatedMine> for CreatedMineView {
    fn from(c: CreatedMine) -> Self {
        CreatedMineView {
            mine: MineView::from(&c.mine),
            warnings: c.warnings,
        }
    }
}

/// One workflow transition of a mine (the audit trail).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MineEvent)]
pub struct MineEventView {
    pub id: Uuid,
    pub mine_id: Uuid,
    pub transition: String,
    pub from_stage: String,
    pub to_stage: String,
    pub actor_id: Option<Uuid>,
    pub reason: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The date the transition counts as of: the date it happened on paper
    /// (`effective_date`) or, without one, the day the server received it.
    pub as_of: String,
    /// The county date on which the server received the transition.
    pub recorded_on: String,
    pub created_at: i64,
}

impl From<&MineEvent> for MineEventView {
    fn from(e: &MineEvent) -> Self {
        MineEventView {
            id: e.id,
            mine_id: e.mine_id,
            transition: e.transition.clone(),
            from_stage: e.from_stage.clone(),
            to_stage: e.to_stage.clone(),
            actor_id: e.actor_id,
            reason: e.reason.clone(),
            data: e.data.clone(),
            as_of: e.as_of.clone(),
            recorded_on: e.recorded_on.clone(),
            created_at: e.created_at,
        }
    }
}

/// A case record on a mine's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CaseRecord)]
pub struct CaseRecordView {
    pub id: Uuid,
    pub mine_id: Uuid,
    /// `collective_study` (一事一议), `referral` (线索移送) or `announcement` (公告).
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
}

impl From<&CaseRecord> for CaseRecordView {
    fn from(c: &CaseRecord) -> Self {
        CaseRecordView {
            id: c.id,
            mine_id: c.mine_id,
            kind: c.kind.clone(),
            data: c.data.clone(),
            created_by: c.created_by,
            created_at: c.created_at,
        }
    }
}

/// One mine with its open deadlines, transitions and case records: its timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MineDetail)]
pub struct MineDetailView {
    #[serde(flatten)]
    pub mine: MineView,
    pub deadlines: Vec<MineDeadline>,
    pub events: Vec<MineEventView>,
    pub cases: Vec<CaseRecordView>,
}

impl From<MineDetail> for MineDetailView {
    fn from(d: MineDetail) -> Self {
        MineDetailView {
            mine: MineView::from(&d.mine),
            deadlines: d.deadlines,
            events: d.events.iter().map(MineEventView::from).collect(),
            cases: d.cases.iter().map(CaseRecordView::from).collect(),
        }
    }
}

/// One acceptance visit of a mine: one record, filled through sync as the entity with the
/// same id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AcceptanceRound)]
pub struct AcceptanceRoundView {
    pub id: Uuid,
    pub mine_id: Uuid,
    /// 1 for the first visit; re-inspections count on.
    pub round_no: i32,
    /// The round this one re-inspects.
    pub previous_round_id: Option<Uuid>,
    /// `template-id@version` the record is filled against.
    pub template_ref: String,
    /// The mine's disposition when the round was opened (decides which items apply).
    pub disposition: String,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
}

impl From<&AcceptanceRound> for AcceptanceRoundView {
    fn from(r: &AcceptanceRound) -> Self {
        AcceptanceRoundView {
            id: r.id,
            mine_id: r.mine_id,
            round_no: r.round_no,
            previous_round_id: r.previous_round_id,
            template_ref: r.template_ref.clone(),
            disposition: r.disposition.clone(),
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// A round with the verdict of its record as it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoundView {
    #[serde(flatten)]
    pub round: AcceptanceRoundView,
    /// Sections signed so far.
    pub signed_sections: Vec<String>,
    /// Fields waiting for a conflict resolution.
    pub conflicts: Vec<String>,
    #[schema(value_type = Object)]
    pub verdict: Verdict,
}

impl From<RoundState> for RoundView {
    fn from(r: RoundState) -> Self {
        RoundView {
            round: AcceptanceRoundView::from(&r.round),
            signed_sections: r.signed_sections,
            conflicts: r.conflicts,
            verdict: r.verdict,
        }
    }
}

/// Row-level problems of an import.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ImportReport)]
pub struct ImportReportView {
    /// Mines imported (0 when any row has a problem: an import is all or nothing).
    pub imported: usize,
    pub rows: usize,
    pub errors: Vec<RowErrorView>,
    /// Imported rows worth a second look (a declared area far from the boundary's).
    pub warnings: Vec<RowErrorView>,
}

/// One problem of one CSV row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RowError)]
pub struct RowErrorView {
    /// 1-based CSV line of the record (the header is line 1).
    pub row: usize,
    pub field: String,
    pub message: String,
}

impl From<ImportReport> for ImportReportView {
    fn from(r: ImportReport) -> Self {
        ImportReportView {
            imported: r.imported,
            rows: r.rows,
            warnings: r.warnings.into_iter().map(row_error_view).collect(),
            errors: r
                .errors
                .into_iter()
                .map(
                    |RowError {
                         row,
                         field,
                         message,
                     }| RowErrorView {
                        row,
                        field,
                        message,
                    },
                )
                .collect(),
        }
    }
}

fn row_error_view(e: RowError) -> RowErrorView {
    RowErrorView {
        row: e.row,
        field: e.field,
        message: e.message,
    }
}

/// A mine's deadline as the dashboard lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeadlineItem)]
pub struct DeadlineItemView {
    pub mine_id: Uuid,
    pub mine: String,
    pub township: String,
    pub stage: Stage,
    #[serde(flatten)]
    pub deadline: MineDeadline,
    /// Who must act, by name (the holder's company, the township, 县政府办, the maintenance
    /// body).
    pub responsible_name: String,
    /// 挂点县领导.
    pub county_leader: Option<String>,
}

/// A mine waiting for a step that is not a deadline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = WaitingMine)]
pub struct WaitingMineView {
    pub mine_id: Uuid,
    pub mine: String,
    pub township: String,
    pub stage: Stage,
    /// The transition it waits for.
    pub next_step: String,
    pub responsible: crate::rules::campaign::Responsible,
    #[schema(value_type = Option<String>, format = Date)]
    pub announced_on: Option<NaiveDate>,
    /// 挂点县领导.
    pub county_leader: Option<String>,
}

impl From<WaitingMine> for WaitingMineView {
    fn from(w: WaitingMine) -> Self {
        WaitingMineView {
            mine_id: w.mine_id,
            mine: w.mine,
            township: w.township,
            stage: w.stage,
            next_step: w.next_step.to_owned(),
            responsible: w.responsible,
            announced_on: w.announced_on,
            county_leader: w.county_leader,
        }
    }
}

/// One township's progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TownshipProgress)]
pub struct TownshipProgressView {
    pub township_id: Uuid,
    pub township: String,
    pub mines: usize,
    /// Mines whose licence question is settled (cancelled, extended, protected).
    pub done: usize,
    pub overdue: usize,
}

/// The county office's (or a township's) overview as of a date.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Dashboard)]
pub struct DashboardView {
    #[schema(value_type = String, format = Date)]
    pub as_of: NaiveDate,
    /// True for a date before today: every figure is rebuilt from the audit trail as of that
    /// day (mines registered later count as registered).
    pub snapshot: bool,
    pub mines: usize,
    pub by_disposition: std::collections::BTreeMap<String, usize>,
    pub by_stage: std::collections::BTreeMap<String, usize>,
    /// Overdue deadlines, with who must act; a 限期整改's re-inspection date is one
    /// (`key: "reinspection"`).
    pub overdue: Vec<DeadlineItemView>,
    pub due_soon: Vec<DeadlineItemView>,
    /// Mines with no approved disposition yet.
    pub awaiting_disposition: Vec<WaitingMineView>,
    /// Announced mines waiting for their next step.
    pub announced: Vec<WaitingMineView>,
    pub townships: Vec<TownshipProgressView>,
}

impl From<DeadlineItem> for DeadlineItemView {
    fn from(d: DeadlineItem) -> Self {
        DeadlineItemView {
            mine_id: d.mine_id,
            mine: d.mine,
            township: d.township,
            stage: d.stage,
            deadline: d.deadline,
            responsible_name: d.responsible_name,
            county_leader: d.county_leader,
        }
    }
}

impl From<Dashboard> for DashboardView {
    fn from(d: Dashboard) -> Self {
        DashboardView {
            as_of: d.as_of,
            snapshot: d.snapshot,
            mines: d.mines,
            by_disposition: d.by_disposition,
            by_stage: d.by_stage,
            overdue: d.overdue.into_iter().map(Into::into).collect(),
            due_soon: d.due_soon.into_iter().map(Into::into).collect(),
            awaiting_disposition: d.awaiting_disposition.into_iter().map(Into::into).collect(),
            announced: d.announced.into_iter().map(Into::into).collect(),
            townships: d
                .townships
                .into_iter()
                .map(|t: TownshipProgress| TownshipProgressView {
                    township_id: t.township_id,
                    township: t.township,
                    mines: t.mines,
                    done: t.done,
                    overdue: t.overdue,
                })
                .collect(),
        }
    }
}
