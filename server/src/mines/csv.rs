//! The county's spreadsheet: CSV import (all rows checked, all or nothing) and export, with
//! formula cells neutralised.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::default_campaign;
use crate::{
    AppState,
    error::{AppError, FieldError, Result},
    identity::auth::AuthUser,
    model::{Disposition, Role},
};

use super::registry::{BoundaryInput, NewMine, mine_warnings, validate_mine, visible_mines};
/// Row-level problems of an import.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Mines imported (0 when any row has a problem: an import is all or nothing).
    pub imported: usize,
    pub rows: usize,
    pub errors: Vec<RowError>,
    /// Rows imported with something worth a second look (the declared area against the
    /// boundary's).
    pub warnings: Vec<RowError>,
}

#[derive(Debug, Clone)]
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
            warnings: Vec::new(),
        });
    }
    let now = state.clock.now_ms();
    let mut mines = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut warnings = Vec::new();
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
            campaign_id: None,
            county_leader: None,
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
            Ok(m) if row_errors.is_empty() => {
                warnings.extend(mine_warnings(&m).into_iter().map(|w| RowError {
                    row,
                    field: w.field,
                    message: w.message,
                }));
                mines.push(m);
            }
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
            warnings: Vec::new(),
        });
    }
    state.store.create_mines(&mines).await?;
    Ok(ImportReport {
        imported: mines.len(),
        rows,
        errors,
        warnings,
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
