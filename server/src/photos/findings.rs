//! The server's findings about a record's photos, published into the record itself
//! (PROTOCOL.md §13), so that every phone that sees the record learns them at its next sync —
//! offline afterwards too.
//!
//! Vocabulary:
//! - **evidence**: the photos an item's evidence field (`<section>/<item>.photos`) names, each
//!   by its capture attestation (the phone's claim: hash, size, type, device time, position);
//! - **findings**: what the server knows of one photo of the record — whether its bytes have
//!   arrived, their EXIF facts, and the place and time verdicts of the EXIF and of the phone's
//!   claim against the mine's boundary and the visit — written by the server into the record's
//!   field `photos/<sha256>` whenever it changes: when an evidence field first names the photo,
//!   and when its upload completes.

use std::collections::BTreeMap;

use chrono::DateTime;
use sync_protocol::{EntityId, EntityState, Op, OpBody, OpResult, Value, signature::PhotoClaim};

use super::{
    exif::{CaptureTime, PhotoExif},
    geofence::{
        CHINA_STANDARD_TIME, Fix, GeofenceSettings, LocationVerdict, TimeVerdict, boundary_polygon,
        disagreement, judge_time, locate,
    },
};
use crate::{
    AppState,
    error::Result,
    model::record::{findings_field, is_evidence_field},
    rules::geo::GeoPolygon,
    store::{Photo, StoreError},
    sync::server_ops,
};

/// After a push: publish the findings of every record an applied `add` gave a photo.
pub async fn after_push(state: &AppState, ops: &[Op], results: &[OpResult]) -> Result<()> {
    let mut records: Vec<EntityId> = ops
        .iter()
        .zip(results)
        .filter(|(op, result)| {
            matches!(&op.body, OpBody::Add { field, .. } if is_evidence_field(field))
                && matches!(result, OpResult::Applied { .. })
        })
        .map(|(op, _)| op.entity)
        .collect();
    records.sort();
    records.dedup();
    for record in records {
        publish(state, record).await?;
    }
    Ok(())
}

/// After an upload completed: publish the findings of the records it was uploaded for.
pub async fn after_upload(state: &AppState, sha256: &str) -> Result<()> {
    for record in state.store.list_photo_records(sha256).await? {
        publish(state, EntityId(record)).await?;
    }
    Ok(())
}

/// Publishes the findings of every photo the record's evidence names, where they changed.
pub async fn publish(state: &AppState, record: EntityId) -> Result<()> {
    let Some(current) = state.store.sync_entities(&[record]).await?.pop() else {
        return Ok(());
    };
    let claims = evidence(&current);
    if claims.is_empty() || current.tombstoned {
        return Ok(());
    }
    let round = match state.store.get_round(record.0).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let boundary = match state.store.get_mine(round.mine_id).await {
        Ok(mine) => mine.boundary.as_ref().and_then(boundary_polygon),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let mut values = BTreeMap::new();
    for (sha256, claim) in &claims {
        let photo = match state.store.get_photo(sha256).await {
            Ok(p) => Some(p),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let value = findings(
            sha256,
            claim,
            photo.as_ref(),
            boundary.as_ref(),
            round.created_at,
        );
        values.insert(findings_field(sha256), value);
    }
    let now = state.clock.now_ms();
    state
        .store
        .sync_server_write(
            &[record],
            now,
            Box::new(move |loaded| {
                let bodies = server_ops::changed_fields(loaded.entities.get(&record), values);
                server_ops::apply(loaded.entities, record, bodies, loaded.next_commit_seq, now)
            }),
        )
        .await?;
    Ok(())
}

/// The claims of the record's evidence photos, by hash (the first attestation of a hash when
/// several phones attested the same bytes).
pub fn evidence(record: &EntityState) -> BTreeMap<String, PhotoClaim> {
    let mut out = BTreeMap::new();
    for (key, set) in &record.sets {
        if !is_evidence_field(key) {
            continue;
        }
        for element in set.elements.values() {
            if let Ok(claim) = sync_protocol::signature::photo_claim(&element.value) {
                out.entry(claim.sha256.clone()).or_insert(claim);
            }
        }
    }
    out
}

/// Metres as a decimal string with one fraction digit (the protocol has no floats).
fn metres(m: f64) -> Value {
    if m.is_finite() {
        Value::from(format!("{m:.1}"))
    } else {
        Value::Null
    }
}

/// A degree value as a decimal string with seven fraction digits (about 1 cm).
fn degrees(d: Option<f64>) -> Value {
    d.filter(|d| d.is_finite())
        .map_or(Value::Null, |d| Value::from(format!("{d:.7}")))
}

fn opt_metres(m: Option<f64>) -> Value {
    m.map_or(Value::Null, metres)
}

fn map(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn location(v: LocationVerdict) -> Value {
    let (verdict, m) = match v {
        LocationVerdict::Inside => ("inside", Value::from("0.0")),
        LocationVerdict::Near { metres: m } => ("near", metres(m)),
        LocationVerdict::Outside { metres: m } => ("outside", metres(m)),
        LocationVerdict::Unknown => ("unknown", Value::Null),
    };
    map([("verdict", Value::from(verdict)), ("metres", m)])
}

fn time(v: TimeVerdict) -> Value {
    let (verdict, days) = match v {
        TimeVerdict::SameDay => ("same_day", Value::Int(0)),
        TimeVerdict::WithinDays { days } => ("within_days", Value::Int(days)),
        TimeVerdict::Outside { days } => ("outside", Value::Int(days)),
        TimeVerdict::Unknown => ("unknown", Value::Null),
    };
    map([("verdict", Value::from(verdict)), ("days", days)])
}

/// The phone's fix from its claim (decimal strings), if it has a usable one.
fn phone_fix(claim: &PhotoClaim) -> Option<Fix> {
    let p = claim.position.as_ref()?;
    let num = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let (lat, lon) = (num("lat")?, num("lon")?);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    Some(Fix::wgs84(lat, lon, num("accuracy_m")))
}

fn exif_value(e: &PhotoExif) -> Value {
    let (captured_at, has_offset) = match &e.captured_at {
        Some(CaptureTime::Zoned(t)) => (Value::from(t.to_rfc3339()), true),
        Some(CaptureTime::Naive(t)) => (
            Value::from(t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            false,
        ),
        None => (Value::Null, false),
    };
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::from);
    map([
        ("lat", degrees(e.lat)),
        ("lon", degrees(e.lon)),
        ("altitude_m", opt_metres(e.altitude_m)),
        ("accuracy_m", opt_metres(e.accuracy_m)),
        ("captured_at", captured_at),
        ("captured_at_has_offset", Value::Bool(has_offset)),
        ("make", text(&e.make)),
        ("model", text(&e.model)),
        (
            "warnings",
            Value::List(
                e.warnings
                    .iter()
                    .map(|w| {
                        map([
                            ("field", Value::from(w.field.clone())),
                            ("problem", Value::from(w.problem.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// The findings value of one photo (PROTOCOL.md §13).
pub fn findings(
    sha256: &str,
    claim: &PhotoClaim,
    photo: Option<&Photo>,
    boundary: Option<&GeoPolygon>,
    visit_ms: i64,
) -> Value {
    let settings = GeofenceSettings::default();
    let phone = phone_fix(claim);
    let phone_time = DateTime::from_timestamp_millis(claim.captured_at_ms)
        .map(|t| CaptureTime::Zoned(t.with_timezone(&CHINA_STANDARD_TIME)));
    let exif = photo.map(super::evidence::exif_of);
    let exif_fix = exif.as_ref().and_then(|e| {
        e.position()
            .map(|(lat, lon)| Fix::wgs84(lat, lon, e.accuracy_m))
    });
    let judge =
        |t: Option<&CaptureTime>| time(judge_time(t, visit_ms, CHINA_STANDARD_TIME, &settings));
    let positions = match (&exif_fix, &phone) {
        (Some(e), Some(p)) => {
            let c = disagreement(e, p, &settings);
            map([
                ("metres", metres(c.metres)),
                ("allowed_m", metres(c.allowed_m)),
                ("disagree", Value::Bool(c.disagree)),
            ])
        }
        _ => Value::Null,
    };
    let int = |n: Option<u64>| {
        n.map_or(Value::Null, |n| {
            Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
        })
    };
    map([
        ("sha256", Value::from(sha256.to_owned())),
        (
            "status",
            Value::from(if photo.is_some() {
                "received"
            } else {
                "awaiting_upload"
            }),
        ),
        (
            "content_type",
            photo.map_or(Value::Null, |p| Value::from(p.content_type.clone())),
        ),
        ("bytes", int(photo.map(|p| p.bytes))),
        ("width", int(photo.map(|p| u64::from(p.width)))),
        ("height", int(photo.map(|p| u64::from(p.height)))),
        (
            "received_at_ms",
            photo.map_or(Value::Null, |p| Value::Int(p.created_at)),
        ),
        ("exif", exif.as_ref().map_or(Value::Null, exif_value)),
        (
            "location",
            map([
                (
                    "exif",
                    location(locate(exif_fix.as_ref(), boundary, &settings)),
                ),
                (
                    "phone",
                    location(locate(phone.as_ref(), boundary, &settings)),
                ),
            ]),
        ),
        (
            "time",
            map([
                (
                    "exif",
                    judge(exif.as_ref().and_then(|e| e.captured_at.as_ref())),
                ),
                ("phone", judge(phone_time.as_ref())),
            ]),
        ),
        ("positions", positions),
    ])
}
