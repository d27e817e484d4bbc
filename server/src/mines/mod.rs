//! The mine registry and its workflow operations: create and import mines (with licence
//! boundaries converted from CGCS2000 Gauss-Krüger corner points), export, transitions with an
//! audit trail, the dashboard (counts, overdue and due-soon lists as of a date), and the case log
//! (一事一议, 线索移送, 公告).
//!
//! Dates: the workflow counts in the county's calendar (China Standard Time, UTC+8), from the
//! server's [`Clock`] — never from a device.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, FieldError, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{
        AcceptanceVerdict, CaseRecord, Disposition, Mine, MineEvent, MineFacts, Role, Stage,
        Township,
    },
    rules::{
        campaign::Campaign,
        geo::{CoordinateFormat, Datum, Zone3, parse_boundary},
        workflow::{self, Actor, MineDeadline, Refusal, Transition},
    },
    store::StoreError,
};

/// Parsed campaigns by id, for one server: a stored campaign never changes, so each is read
/// and parsed once instead of on every transition and mine view.
#[derive(Debug, Clone, Default)]
pub struct CampaignCache {
    by_id: Arc<std::sync::RwLock<HashMap<String, Arc<Campaign>>>>,
    /// The built-in default, once it is known to be stored.
    default: Arc<tokio::sync::OnceCell<Arc<Campaign>>>,
}

impl CampaignCache {
    fn get(&self, id: &str) -> Option<Arc<Campaign>> {
        self.by_id.read().ok()?.get(id).cloned()
    }

    fn put(&self, campaign: Campaign) -> Arc<Campaign> {
        let campaign = Arc::new(campaign);
        if let Ok(mut map) = self.by_id.write() {
            map.insert(campaign.id.clone(), campaign.clone());
        }
        campaign
    }
}

/// The built-in default campaign, stored on first use so every mine names its campaign.
pub async fn default_campaign(state: &AppState) -> Result<Arc<Campaign>> {
    let campaign = state
        .campaigns
        .default
        .get_or_try_init(|| async {
            let campaign = Campaign::shanggao_2023()
                .map_err(|e| AppError::Internal(format!("built-in campaign is invalid: {e}")))?;
            state
                .store
                .ensure_campaign(
                    &campaign.id,
                    &campaign.title,
                    crate::rules::campaign::SHANGGAO_2023_TOML,
                    state.clock.now_ms(),
                )
                .await?;
            Ok::<_, AppError>(state.campaigns.put(campaign))
        })
        .await?;
    Ok(campaign.clone())
}

/// A stored campaign (parsed once per server).
pub async fn campaign(state: &AppState, id: &str) -> Result<Arc<Campaign>> {
    if let Some(c) = state.campaigns.get(id) {
        return Ok(c);
    }
    let (_, source) = state.store.get_campaign(id).await?;
    let parsed = Campaign::parse(&source)
        .map_err(|e| AppError::Internal(format!("stored campaign {id}: {e}")))?;
    Ok(state.campaigns.put(parsed))
}

/// How a boundary's corner points arrive.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundaryInput {
    /// `gauss_kruger` (CGCS2000 3° zones, X north / Y east in metres, as on the licence) or
    /// `lat_lon` (decimal degrees).
    pub format: String,
    /// 3° zone number (e.g. 38) for Y values without the zone prefix.
    #[serde(default)]
    pub zone: Option<u32>,
    /// Datum of `lat_lon` input: `wgs84` or `cgcs2000`. (GCJ-02 web-map coordinates are refused.)
    #[serde(default)]
    pub datum: Option<String>,
    /// The corner list, one point per line (`1, 3145678.12, 38512345.67` or `X=…, Y=…`;
    /// `;` also separates points, as in spreadsheet cells).
    pub points: String,
}

/// A new mine.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMine {
    pub name: String,
    pub licence_no: String,
    pub holder: String,
    pub township_id: Uuid,
    pub mineral: String,
    pub mining_method: String,
    /// Hectares, as a decimal string, e.g. "3.2561".
    #[serde(default)]
    pub area_ha: Option<String>,
    #[serde(default)]
    pub boundary: Option<BoundaryInput>,
}

fn require(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let v = value.trim();
    if v.is_empty() {
        errors.push(FieldError {
            field: field.into(),
            message: "must not be empty".into(),
        });
    }
    v.to_owned()
}

/// Validate one mine; errors name the field (and for the boundary, the row and point).
pub fn validate_mine(
    input: &NewMine,
    townships: &[Township],
    campaign_id: &str,
    now_ms: i64,
) -> std::result::Result<Mine, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = require("name", &input.name, &mut errors);
    let licence_no = require("licence_no", &input.licence_no, &mut errors);
    let holder = require("holder", &input.holder, &mut errors);
    let mineral = require("mineral", &input.mineral, &mut errors);
    let mining_method = require("mining_method", &input.mining_method, &mut errors);
    if !townships.iter().any(|t| t.id == input.township_id) {
        errors.push(FieldError {
            field: "township_id".into(),
            message: "unknown township".into(),
        });
    }
    let area_ha = match input.area_ha.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(a) => match a.parse::<crate::rules::decimal::Decimal>() {
            Ok(_) if !a.starts_with('-') => Some(a.to_owned()),
            _ => {
                errors.push(FieldError {
                    field: "area_ha".into(),
                    message: format!("{a:?} is not a positive decimal number of hectares"),
                });
                None
            }
        },
    };
    let boundary = match &input.boundary {
        None => None,
        Some(b) => match boundary_json(b) {
            Ok(v) => Some(v),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Mine {
        id: Uuid::now_v7(),
        name,
        licence_no,
        holder,
        holder_user_id: None,
        township_id: input.township_id,
        mineral,
        mining_method,
        area_ha,
        boundary,
        campaign_id: campaign_id.to_owned(),
        facts: MineFacts::new(input.township_id),
        version: 0,
        created_at: now_ms,
        updated_at: now_ms,
    })
}

fn boundary_json(b: &BoundaryInput) -> std::result::Result<serde_json::Value, Vec<FieldError>> {
    let field_error = |message: String| {
        vec![FieldError {
            field: "boundary".into(),
            message,
        }]
    };
    let format = match b.format.as_str() {
        "gauss_kruger" => {
            let zone = match b.zone {
                None => None,
                Some(z) => Some(
                    Zone3::new(z)
                        .ok_or_else(|| field_error(format!("{z} is not a 3° zone number")))?,
                ),
            };
            CoordinateFormat::GaussKruger { zone }
        }
        "lat_lon" => {
            let datum = match b.datum.as_deref() {
                Some("wgs84") => Datum::Wgs84,
                Some("cgcs2000") => Datum::Cgcs2000,
                Some("gcj02") => {
                    return Err(field_error(
                        "GCJ-02 (web-map) coordinates are offset on purpose and cannot be used; \
                         give WGS-84 or CGCS2000"
                            .into(),
                    ));
                }
                _ => return Err(field_error("datum must be wgs84 or cgcs2000".into())),
            };
            CoordinateFormat::LatLon { datum }
        }
        other => {
            return Err(field_error(format!(
                "format {other:?}: use gauss_kruger or lat_lon"
            )));
        }
    };
    let text = b.points.replace(';', "\n");
    let boundary = parse_boundary(&text, format).map_err(|e| {
        e.errors
            .iter()
            .map(|err| FieldError {
                field: match (err.row, err.point) {
                    (Some(r), Some(p)) => format!("boundary.points[row {r}, point {p}]"),
                    (Some(r), None) => format!("boundary.points[row {r}]"),
                    (None, Some(p)) => format!("boundary.points[point {p}]"),
                    (None, None) => "boundary.points".into(),
                },
                message: err.to_string(),
            })
            .collect::<Vec<_>>()
    })?;
    let mut value = serde_json::to_value(&boundary).map_err(|e| field_error(e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        // Say which datum the converted coordinates are in: CGCS2000 (≈ WGS-84 at this scale).
        let datum = match format {
            CoordinateFormat::LatLon { datum } => datum,
            CoordinateFormat::GaussKruger { .. } => Datum::Cgcs2000,
        };
        obj.insert(
            "datum".into(),
            serde_json::to_value(datum).unwrap_or_default(),
        );
        obj.insert(
            "source_text".into(),
            serde_json::Value::String(b.points.clone()),
        );
    }
    Ok(value)
}

/// Create one mine.
pub async fn create(state: &AppState, caller: &AuthUser, input: NewMine) -> Result<Mine> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let campaign = default_campaign(state).await?;
    let townships = state.store.list_townships().await?;
    let mine = validate_mine(&input, &townships, &campaign.id, state.clock.now_ms()).map_err(
        |fields| AppError::BadRequest {
            message: format!("{} problem(s) with the mine", fields.len()),
            fields,
        },
    )?;
    state
        .store
        .create_mines(std::slice::from_ref(&mine))
        .await?;
    Ok(mine)
}

/// Row-level problems of an import.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Mines imported (0 when any row has a problem: an import is all or nothing).
    pub imported: usize,
    pub rows: usize,
    pub errors: Vec<RowError>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based CSV line of the record (the header is line 1).
    pub row: usize,
    pub field: String,
    pub message: String,
}

/// CSV columns: Chinese headers as in the county's spreadsheets (English keys also accepted).
const COLUMNS: &[(&str, &str)] = &[
    ("矿山名称", "name"),
    ("采矿许可证号", "licence_no"),
    ("采矿权人", "holder"),
    ("所在乡镇", "township"),
    ("矿种", "mineral"),
    ("开采方式", "mining_method"),
    ("矿区面积(公顷)", "area_ha"),
    ("坐标系", "coordinate_system"),
    ("带号", "zone"),
    ("拐点坐标", "points"),
];

fn column_key(header: &str) -> Option<&'static str> {
    let h = header.trim().trim_start_matches('\u{feff}');
    COLUMNS
        .iter()
        .find(|(zh, en)| *zh == h || *en == h || h.replace('（', "(").replace('）', ")") == *zh)
        .map(|(_, en)| *en)
}

/// Import mines from CSV text; validates every row first and imports all or nothing.
pub async fn import_csv(state: &AppState, caller: &AuthUser, text: &str) -> Result<ImportReport> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let campaign = default_campaign(state).await?;
    let townships = state.store.list_townships().await?;
    let existing: Vec<String> = state
        .store
        .list_mines(None)
        .await?
        .into_iter()
        .map(|m| m.licence_no)
        .collect();
    // Excel's "CSV UTF-8" (and our export) starts with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| AppError::bad_request(format!("cannot read the CSV header: {e}")))?
        .clone();
    let keys: Vec<Option<&str>> = headers.iter().map(column_key).collect();
    let mut errors = Vec::new();
    for required in [
        "name",
        "licence_no",
        "holder",
        "township",
        "mineral",
        "mining_method",
    ] {
        if !keys.contains(&Some(required)) {
            let zh = COLUMNS
                .iter()
                .find(|(_, en)| *en == required)
                .map_or(required, |(zh, _)| zh);
            errors.push(RowError {
                row: 1,
                field: required.into(),
                message: format!("missing column {zh}"),
            });
        }
    }
    if !errors.is_empty() {
        return Ok(ImportReport {
            imported: 0,
            rows: 0,
            errors,
        });
    }
    let now = state.clock.now_ms();
    let mut mines = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows = 0;
    for record in reader.records() {
        rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    row: e.position().map_or(rows + 1, |p| p.line() as usize),
                    field: String::new(),
                    message: format!("unreadable CSV record: {e}"),
                });
                continue;
            }
        };
        let row = record.position().map_or(rows + 1, |p| p.line() as usize);
        let mut cells: BTreeMap<&str, String> = BTreeMap::new();
        for (key, cell) in keys.iter().zip(record.iter()) {
            if let Some(k) = key {
                cells.insert(k, restore_cell(cell).trim().to_owned());
            }
        }
        let cell = |k: &str| cells.get(k).cloned().unwrap_or_default();
        let mut row_errors = Vec::new();
        let township_name = cell("township");
        let township_id = townships
            .iter()
            .find(|t| t.name == township_name)
            .map(|t| t.id);
        if township_id.is_none() {
            row_errors.push(FieldError {
                field: "township".into(),
                message: format!("unknown township {township_name:?}"),
            });
        }
        let points = cell("points");
        let boundary = if points.is_empty() {
            None
        } else {
            let system = cell("coordinate_system").to_lowercase();
            let zone = cell("zone");
            let zone = if zone.is_empty() {
                None
            } else {
                match zone.parse::<u32>() {
                    Ok(z) => Some(z),
                    Err(_) => {
                        row_errors.push(FieldError {
                            field: "zone".into(),
                            message: format!("{zone:?} is not a zone number"),
                        });
                        None
                    }
                }
            };
            let (format, datum) = if system.contains("wgs") {
                ("lat_lon", Some("wgs84"))
            } else if system.contains("gcj") {
                ("lat_lon", Some("gcj02"))
            } else if system.contains("经纬") {
                ("lat_lon", Some("cgcs2000"))
            } else {
                ("gauss_kruger", None)
            };
            Some(BoundaryInput {
                format: format.into(),
                zone,
                datum: datum.map(str::to_owned),
                points,
            })
        };
        let input = NewMine {
            name: cell("name"),
            licence_no: cell("licence_no"),
            holder: cell("holder"),
            township_id: township_id.unwrap_or_default(),
            mineral: cell("mineral"),
            mining_method: cell("mining_method"),
            area_ha: Some(cell("area_ha")),
            boundary,
        };
        if let Some(first) = seen.insert(input.licence_no.clone(), row)
            && !input.licence_no.is_empty()
        {
            row_errors.push(FieldError {
                field: "licence_no".into(),
                message: format!("also on line {first}"),
            });
        }
        if existing.contains(&input.licence_no) {
            row_errors.push(FieldError {
                field: "licence_no".into(),
                message: "a mine with this licence number is already registered".into(),
            });
        }
        match validate_mine(&input, &townships, &campaign.id, now) {
            Ok(m) if row_errors.is_empty() => mines.push(m),
            Ok(_) => {}
            Err(mut e) => row_errors.append(&mut e),
        }
        // An unknown township is reported once, not again as `township_id`.
        errors.extend(
            row_errors
                .into_iter()
                .filter(|e| e.field != "township_id")
                .map(|e| RowError {
                    row,
                    field: e.field,
                    message: e.message,
                }),
        );
    }
    if !errors.is_empty() {
        return Ok(ImportReport {
            imported: 0,
            rows,
            errors,
        });
    }
    state.store.create_mines(&mines).await?;
    Ok(ImportReport {
        imported: mines.len(),
        rows,
        errors,
    })
}

/// All visible mines as CSV (the import columns plus disposition and stage).
pub async fn export_csv(state: &AppState, caller: &AuthUser) -> Result<String> {
    let mines = visible_mines(state, caller).await?;
    let townships: HashMap<Uuid, String> = state
        .store
        .list_townships()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    // A byte order mark first: Excel on a Chinese Windows reads a CSV without one as GBK.
    let mut w = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
    let mut header: Vec<&str> = COLUMNS.iter().map(|(zh, _)| *zh).collect();
    header.extend(["处置类别", "阶段"]);
    let fail = |e: csv::Error| AppError::Internal(format!("csv: {e}"));
    w.write_record(&header).map_err(fail)?;
    for m in mines {
        let source = m
            .boundary
            .as_ref()
            .and_then(|b| b.get("source_text"))
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned();
        let zone = m
            .boundary
            .as_ref()
            .and_then(|b| b.get("zone"))
            .and_then(|z| z.as_u64())
            .map(|z| z.to_string())
            .unwrap_or_default();
        let system = match m
            .boundary
            .as_ref()
            .and_then(|b| b.get("datum"))
            .and_then(|d| d.as_str())
        {
            Some("wgs84") => "WGS84经纬度",
            Some(_) if zone.is_empty() => "CGCS2000经纬度",
            Some(_) => "CGCS2000",
            None => "",
        };
        w.write_record(
            [
                m.name.as_str(),
                &m.licence_no,
                &m.holder,
                townships.get(&m.township_id).map_or("", String::as_str),
                &m.mineral,
                &m.mining_method,
                m.area_ha.as_deref().unwrap_or_default(),
                system,
                &zone,
                &source,
                m.facts.disposition.map_or("", Disposition::name_zh),
                m.facts.stage.name_zh(),
            ]
            .map(|cell| neutralise_cell(cell).into_owned()),
        )
        .map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| AppError::Internal(format!("csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| AppError::Internal(format!("csv: {e}")))
}

/// Characters that make a spreadsheet read a cell as a formula (or, tab and CR, that some
/// spreadsheets strip before doing so).
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// Whether a cell is a formula character after zero or more `'`: the cells the export prefixes
/// with one more `'` and the import takes one `'` off, so values round-trip exactly (a name that
/// really starts with `'=` is exported as `''=`).
fn looks_like_formula(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A cell as exported: one that a spreadsheet would take for a formula (`=HYPERLINK(…)` as a
/// mine name) gets a leading `'`, which makes Excel and LibreOffice show it as text.
fn neutralise_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if looks_like_formula(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// A cell as imported: the `'` that [`neutralise_cell`] put before a formula character is taken
/// off again, so an exported file imports to the same values.
fn restore_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if looks_like_formula(rest) => rest,
        _ => cell,
    }
}

/// Mines the caller may see: county-wide roles all, township officers their township's,
/// mining-right holders the mines the county office bound to their account.
pub async fn visible_mines(state: &AppState, caller: &AuthUser) -> Result<Vec<Mine>> {
    match caller.role() {
        Role::TownshipOfficer => Ok(state.store.list_mines(caller.claims.town).await?),
        Role::Operator => Ok(state.store.list_mines_of_holder(caller.claims.sub).await?),
        _ => Ok(state.store.list_mines(None).await?),
    }
}

/// Bind a mine to its mining-right holder's account, or unbind it (`user_id: null`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct HolderBinding {
    /// An account with role `operator`; `null` unbinds.
    pub user_id: Option<Uuid>,
}

/// The county office binds a mine to the account of its mining-right holder (采矿权人), who then
/// sees the mine, its rounds and deadlines, and applies for cancellation on it.
pub async fn bind_holder(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    binding: HolderBinding,
) -> Result<Mine> {
    if !matches!(caller.role(), Role::Admin | Role::CountyOffice) {
        return Err(AppError::Forbidden(
            "only the county office binds mines to their holders".into(),
        ));
    }
    if let Some(user_id) = binding.user_id {
        let user = match state.store.get_user(user_id).await {
            Ok(u) => u,
            Err(StoreError::NotFound) => {
                return Err(AppError::invalid_field(
                    "user_id",
                    "there is no such account",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if user.role != Role::Operator {
            return Err(AppError::invalid_field(
                "user_id",
                format!(
                    "{} is a {} account; a mine is bound to a mining-right holder (role operator)",
                    user.username, user.role
                ),
            ));
        }
    }
    match state
        .store
        .set_mine_holder(id, binding.user_id, state.clock.now_ms())
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(AppError::NotFound("mine")),
        Err(e) => return Err(e.into()),
    }
    Ok(state.store.get_mine(id).await?)
}

/// A transition request: the step plus why.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TransitionRequest {
    #[serde(flatten)]
    pub transition: Transition,
    /// Why (kept in the audit trail).
    #[serde(default)]
    pub reason: String,
    /// The mine version the caller saw; a stale one gets 409 instead of acting on old facts.
    #[serde(default)]
    pub version: Option<i64>,
    /// For `record_acceptance`: the round whose record decides it. The verdict must agree with
    /// the template's rule over that record, every required section must be signed, and for a
    /// 注销 mine the experts' letter counts as signed only when the record's `experts` section
    /// is. Without it the outcome is taken as entered (e.g. from a paper record).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid,
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub round_id: Option<Uuid>,
}

/// Apply a workflow transition and record it.
pub async fn transition(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    req: TransitionRequest,
) -> Result<Mine> {
    let mine = visible_mine(state, caller, id).await?;
    if req.version.is_some_and(|v| v != mine.version) {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::StaleVersion,
            message: "the mine changed since you loaded it; reload and try again".into(),
        });
    }
    let campaign = campaign(state, &mine.campaign_id).await?;
    let today = state.clock.today();
    let actor = Actor {
        role: caller.role(),
        township: caller.claims.town,
    };
    let transition = match (&req.transition, req.round_id) {
        (Transition::RecordAcceptance { verdict }, Some(round_id)) => {
            Transition::RecordAcceptance {
                verdict: checked_against_round(state, caller, &mine, round_id, verdict).await?,
            }
        }
        (_, Some(_)) => {
            return Err(AppError::invalid_field(
                "round_id",
                "only record_acceptance refers to a round",
            ));
        }
        (t, None) => t.clone(),
    };
    let next =
        workflow::apply(&mine.facts, &transition, actor, today, &campaign).map_err(
            |r| match r {
                Refusal::Forbidden(m) => AppError::Forbidden(m),
                Refusal::NotAllowedNow(m) => AppError::Conflict {
                    code: crate::error::ErrorCode::TransitionNotAllowed,
                    message: m,
                },
            },
        )?;
    let event = MineEvent {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        transition: transition.name().into(),
        from_stage: mine.facts.stage.code().into(),
        to_stage: next.stage.code().into(),
        actor_id: Some(caller.id()),
        reason: req.reason.trim().to_owned(),
        data: serde_json::json!({ "transition": transition, "round_id": req.round_id }),
        as_of: today.to_string(),
        created_at: state.clock.now_ms(),
    };
    // The announcement's text is part of the transition: stored with it or not at all.
    let announcement = if matches!(req.transition, Transition::Announce) {
        let township = township_name(state, mine.township_id).await?;
        let text = announcement_text(&mine, &township, &campaign, today);
        Some(CaseRecord {
            id: Uuid::now_v7(),
            mine_id: mine.id,
            kind: "announcement".into(),
            data: serde_json::json!({ "text": text, "date": today.to_string() }),
            created_by: Some(caller.id()),
            created_at: state.clock.now_ms(),
        })
    } else {
        None
    };
    match state
        .store
        .transition_mine(mine.id, mine.version, &next, &event, announcement.as_ref())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(AppError::Conflict {
                code: crate::error::ErrorCode::StaleVersion,
                message: "the mine changed meanwhile; reload and try again".into(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok(state.store.get_mine(mine.id).await?)
}

async fn township_name(state: &AppState, id: Uuid) -> Result<String> {
    Ok(state
        .store
        .list_townships()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.name)
        .unwrap_or_default())
}

/// Check an entered acceptance outcome against the round's record: the verdict by the template's
/// rule, the signatures of the required sections, and (注销) the experts' section.
async fn checked_against_round(
    state: &AppState,
    caller: &AuthUser,
    mine: &Mine,
    round_id: Uuid,
    entered: &AcceptanceVerdict,
) -> Result<AcceptanceVerdict> {
    use crate::model::AcceptanceVerdict as V;
    use crate::rules::template::Conclusion;
    let view = crate::rounds::view(state, caller, round_id).await?;
    if view.round.mine_id != mine.id {
        return Err(AppError::invalid_field(
            "round_id",
            "that round belongs to another mine",
        ));
    }
    let unsigned: Vec<String> = view
        .verdict
        .sections
        .iter()
        .filter(|s| {
            s.required
                && !view
                    .signed_sections
                    .contains(&s.department.code().to_owned())
        })
        .map(|s| s.name.clone())
        .collect();
    if !unsigned.is_empty() {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::RecordNotSigned,
            message: format!("sections not signed yet: {}", unsigned.join("、")),
        });
    }
    let experts_signed = view
        .signed_sections
        .iter()
        .any(|s| s == crate::model::record::EXPERT_SECTION);
    match (entered, view.verdict.conclusion) {
        (V::Passed { .. }, Conclusion::Passed) => Ok(V::Passed {
            expert_letter_signed: experts_signed,
        }),
        (V::Passed { .. }, other) => Err(AppError::Conflict {
            code: crate::error::ErrorCode::VerdictMismatch,
            message: format!(
                "the record's verdict is {} ({} failing item(s)), not 达标",
                other.name_zh(),
                view.verdict.failing.len()
            ),
        }),
        (V::Rectify { .. } | V::Failed { .. }, Conclusion::Passed) => Err(AppError::Conflict {
            code: crate::error::ErrorCode::VerdictMismatch,
            message: "the record's verdict is 达标".into(),
        }),
        (other, _) => Ok(other.clone()),
    }
}

/// The text of the cancellation announcement (注销公告) for a mine whose holder let a deadline pass.
pub fn announcement_text(
    mine: &Mine,
    township: &str,
    campaign: &Campaign,
    on: NaiveDate,
) -> String {
    let missed = if mine.facts.stage == Stage::AcceptancePassed {
        "在规定期限内提交采矿权注销申请"
    } else {
        "在规定期限内完成矿山生态环境整治任务"
    };
    let basis = match &campaign.document {
        Some(doc) => format!("《{}》（{}）", campaign.title, doc),
        None => format!("《{}》", campaign.title),
    };
    format!(
        "关于{holder}{name}采矿许可证注销的公告\n\n{holder}：\n\
         你单位{name}（采矿许可证号：{licence}，位于{township}）为停产非煤矿山，经县政府研究决定予以注销关闭。\
         你单位未{missed}。根据{basis}的规定，现予公告：自公告发布之日起，视为你单位自动放弃矿权，\
         由{township}作出注销矿权申请后，依法注销采矿许可证等证照。\n\n特此公告。\n\n{date}",
        holder = mine.holder,
        name = mine.name,
        licence = mine.licence_no,
        township = township,
        missed = missed,
        basis = basis,
        date = on.format("%Y年%m月%d日"),
    )
}

/// A mine as the dashboard lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadlineItem {
    pub mine_id: Uuid,
    pub mine: String,
    pub township: String,
    pub stage: Stage,
    #[serde(flatten)]
    pub deadline: MineDeadline,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TownshipProgress {
    pub township_id: Uuid,
    pub township: String,
    pub mines: usize,
    /// Mines whose licence question is settled (cancelled, extended, protected).
    pub done: usize,
    pub overdue: usize,
}

/// The county office's (or a township's) overview as of a date.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    #[schema(value_type = String, format = Date)]
    pub as_of: NaiveDate,
    pub mines: usize,
    pub by_disposition: BTreeMap<String, usize>,
    pub by_stage: BTreeMap<String, usize>,
    pub overdue: Vec<DeadlineItem>,
    pub due_soon: Vec<DeadlineItem>,
    pub townships: Vec<TownshipProgress>,
}

/// Build the dashboard for the caller's mines as of `as_of` (default: today).
pub async fn dashboard(
    state: &AppState,
    caller: &AuthUser,
    as_of: Option<NaiveDate>,
) -> Result<Dashboard> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let as_of = as_of.unwrap_or_else(|| state.clock.today());
    let mines = visible_mines(state, caller).await?;
    let townships: HashMap<Uuid, String> = state
        .store
        .list_townships()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let mut board = Dashboard {
        as_of,
        mines: mines.len(),
        by_disposition: BTreeMap::new(),
        by_stage: BTreeMap::new(),
        overdue: Vec::new(),
        due_soon: Vec::new(),
        townships: Vec::new(),
    };
    let mut progress: BTreeMap<Uuid, TownshipProgress> = BTreeMap::new();
    for mine in &mines {
        let c = campaign(state, &mine.campaign_id).await?;
        *board
            .by_disposition
            .entry(
                mine.facts
                    .disposition
                    .map_or("undecided", Disposition::code)
                    .to_owned(),
            )
            .or_default() += 1;
        *board
            .by_stage
            .entry(mine.facts.stage.code().to_owned())
            .or_default() += 1;
        let township = townships
            .get(&mine.township_id)
            .cloned()
            .unwrap_or_default();
        let p = progress
            .entry(mine.township_id)
            .or_insert_with(|| TownshipProgress {
                township_id: mine.township_id,
                township: township.clone(),
                mines: 0,
                done: 0,
                overdue: 0,
            });
        p.mines += 1;
        if matches!(
            mine.facts.stage,
            Stage::LicenceCancelled | Stage::LicenceExtended | Stage::Protected
        ) {
            p.done += 1;
        }
        let mut mine_overdue = false;
        for d in workflow::open_deadlines(&mine.facts, &c, as_of) {
            let item = DeadlineItem {
                mine_id: mine.id,
                mine: mine.name.clone(),
                township: township.clone(),
                stage: mine.facts.stage,
                deadline: d,
            };
            match item.deadline.status {
                workflow::DeadlineStatus::Overdue => {
                    mine_overdue = true;
                    board.overdue.push(item);
                }
                workflow::DeadlineStatus::DueSoon => board.due_soon.push(item),
                workflow::DeadlineStatus::Pending => {}
            }
        }
        if mine_overdue {
            p.overdue += 1;
        }
    }
    board
        .overdue
        .sort_by_key(|i| (i.deadline.due, i.mine.clone()));
    board
        .due_soon
        .sort_by_key(|i| (i.deadline.due, i.mine.clone()));
    board.townships = progress.into_values().collect();
    Ok(board)
}

/// One mine with its open deadlines, transitions and case records: its timeline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MineDetail {
    #[serde(flatten)]
    pub mine: Mine,
    pub deadlines: Vec<MineDeadline>,
    pub events: Vec<MineEvent>,
    pub cases: Vec<CaseRecord>,
}

pub async fn detail(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    as_of: Option<NaiveDate>,
) -> Result<MineDetail> {
    let mine = visible_mine(state, caller, id).await?;
    let c = campaign(state, &mine.campaign_id).await?;
    let deadlines = workflow::open_deadlines(
        &mine.facts,
        &c,
        as_of.unwrap_or_else(|| state.clock.today()),
    );
    Ok(MineDetail {
        events: state.store.list_mine_events(id).await?,
        cases: state.store.list_case_records(id).await?,
        deadlines,
        mine,
    })
}

/// A case record to add: 一事一议 or 线索移送 (announcements come from the `announce` transition).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewCase {
    /// 一事一议: a hard case studied collectively.
    CollectiveStudy {
        question: String,
        decision: String,
        #[schema(value_type = String, format = Date)]
        date: NaiveDate,
        /// Departments and people present.
        participants: Vec<String>,
    },
    /// 线索移送: a holder who failed their duties, referred to prosecutors or courts.
    Referral {
        what: String,
        /// e.g. 县检察院.
        to: String,
        /// Evidence list (photo ids, documents).
        evidence: Vec<String>,
    },
}

pub async fn add_case(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    case: NewCase,
) -> Result<CaseRecord> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let mine = visible_mine(state, caller, id).await?;
    let (kind, empty) = match &case {
        NewCase::CollectiveStudy {
            question, decision, ..
        } => (
            "collective_study",
            question.trim().is_empty() || decision.trim().is_empty(),
        ),
        NewCase::Referral { what, to, .. } => {
            ("referral", what.trim().is_empty() || to.trim().is_empty())
        }
    };
    if empty {
        return Err(AppError::bad_request(
            "a case record needs its question and decision (一事一议) or what and to whom (线索移送)",
        ));
    }
    let mut data =
        serde_json::to_value(&case).map_err(|e| AppError::Internal(format!("case encode: {e}")))?;
    if let Some(obj) = data.as_object_mut() {
        obj.remove("kind");
    }
    let record = CaseRecord {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        kind: kind.into(),
        data,
        created_by: Some(caller.id()),
        created_at: state.clock.now_ms(),
    };
    state.store.add_case_record(&record).await?;
    Ok(record)
}
