//! The registry: creating a mine (with its boundary converted from the licence's corner
//! points), binding it to its holder, the mines a caller sees, one mine's timeline.

use chrono::NaiveDate;
use serde::Deserialize;
use uuid::Uuid;

use super::{campaign, default_campaign};
use crate::{
    AppState,
    error::{AppError, FieldError, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{CaseRecord, Mine, MineEvent, MineFacts, Role, Township},
    rules::{
        geo::{CoordinateFormat, Datum, Zone3, parse_boundary},
        workflow::{self, MineDeadline},
    },
    store::StoreError,
};

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
    /// The campaign the mine follows (one stored with `yanshou campaign import`); default: the
    /// built-in campaign.
    #[serde(default)]
    pub campaign_id: Option<String>,
    /// The county leader assigned to the mine (挂点县领导).
    #[serde(default)]
    pub county_leader: Option<String>,
}

/// A created mine with what deserves a second look but does not stop it (the declared area
/// far from the boundary's).
#[derive(Debug, Clone)]
pub struct CreatedMine {
    pub mine: Mine,
    pub warnings: Vec<FieldError>,
}

/// How far (relative) the declared 矿区面积 may be from the area the corner points enclose
/// before a warning: licences state both, so more than rounding is a typo or the wrong list.
const AREA_TOLERANCE: f64 = 0.05;

/// Warnings about a valid mine: the declared area against the boundary's.
pub fn mine_warnings(mine: &Mine) -> Vec<FieldError> {
    let mut out = Vec::new();
    let declared = mine.area_ha.as_deref().and_then(|a| a.parse::<f64>().ok());
    let boundary = mine
        .boundary
        .as_ref()
        .and_then(|b| serde_json::from_value::<crate::rules::geo::Boundary>(b.clone()).ok());
    if let (Some(declared), Some(boundary)) = (declared, boundary) {
        let enclosed = boundary.area_m2() / 10_000.0;
        if enclosed > 0.0 && ((declared - enclosed) / enclosed).abs() > AREA_TOLERANCE {
            out.push(FieldError {
                field: "area_ha".into(),
                message: format!(
                    "the declared area is {declared} ha but the boundary's corner points enclose \
                     {} ha; check the area and the corner list",
                    hectares(enclosed)
                ),
            });
        }
    }
    out
}

/// Hectares with up to four decimals, trailing zeros dropped (101.8, 3.2561).
fn hectares(ha: f64) -> String {
    let s = format!("{ha:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
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
    let county_leader = input
        .county_leader
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut facts = MineFacts::new(input.township_id);
    facts.county_leader = county_leader;
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
        facts,
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

/// Create one mine, following the campaign it names (default: the built-in one).
pub async fn create(state: &AppState, caller: &AuthUser, input: NewMine) -> Result<CreatedMine> {
    caller.require(&[Role::Admin, Role::CountyOffice])?;
    let campaign = match input.campaign_id.as_deref().map(str::trim) {
        None | Some("") => default_campaign(state).await?,
        Some(id) => match campaign(state, id).await {
            Ok(c) => c,
            Err(AppError::NotFound(_)) => {
                return Err(AppError::invalid_field(
                    "campaign_id",
                    format!(
                        "there is no campaign {id:?}; import its file with `yanshou campaign \
                         import` first"
                    ),
                ));
            }
            Err(e) => return Err(e),
        },
    };
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
    Ok(CreatedMine {
        warnings: mine_warnings(&mine),
        mine,
    })
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

/// One mine with its open deadlines, transitions and case records: its timeline.
#[derive(Debug, Clone)]
pub struct MineDetail {
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
    let events = state.store.list_mine_events(id).await?;
    let today = state.clock.today();
    let as_of = as_of.unwrap_or(today);
    // A past date shows the deadlines as they stood that day (the facts rebuilt from the trail).
    let deadlines = if as_of < today {
        let facts = workflow::facts_as_of(&mine, &events, as_of, &c);
        workflow::open_deadlines(&facts, &c, as_of)
    } else {
        workflow::open_deadlines(&mine.facts, &c, as_of)
    };
    Ok(MineDetail {
        events,
        cases: state.store.list_case_records(id).await?,
        deadlines,
        mine,
    })
}
