//! Verdicts on where and when a photo was taken: against the mine's boundary, the visit's day,
//! and between the two positions a photo carries (its EXIF and the phone's own fix).
//!
//! Verdicts are shown beside the raw facts, never instead of them: an `Outside` photo is kept and
//! flagged, not dropped.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::exif::CaptureTime;
use crate::rules::geo::{Datum, GeoPoint, GeoPolygon, gk_forward};

/// A position with its horizontal accuracy (radius, metres), if known.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    pub point: GeoPoint,
    pub accuracy_m: Option<f64>,
}

impl Fix {
    /// A WGS-84 fix (GPS, a phone's geolocation API).
    pub fn wgs84(lat: f64, lon: f64, accuracy_m: Option<f64>) -> Fix {
        Fix {
            point: GeoPoint {
                lat,
                lon,
                datum: Datum::Wgs84,
            },
            accuracy_m,
        }
    }
}

/// Settings of the verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeofenceSettings {
    /// A photo this far outside the boundary (plus its accuracy) is `Near`, not `Outside`:
    /// photos of a pit's edge are often taken from the road beside it.
    pub near_m: f64,
    /// Allowed distance between EXIF and phone positions when neither says its accuracy.
    pub default_accuracy_m: f64,
    /// A photo taken this many days from the visit (either way) is `WithinDays`, not `Outside`.
    pub within_days: u32,
}

impl Default for GeofenceSettings {
    fn default() -> Self {
        GeofenceSettings {
            near_m: 100.0,
            default_accuracy_m: 50.0,
            within_days: 3,
        }
    }
}

/// Where a photo was taken, relative to the mine's boundary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum LocationVerdict {
    /// Inside the boundary or on it.
    Inside,
    /// Outside by `metres`, within the tolerance (`near_m` + the fix's accuracy).
    Near { metres: f64 },
    /// Outside by `metres`, beyond the tolerance.
    Outside { metres: f64 },
    /// No position, or no boundary to compare it with.
    Unknown,
}

/// The mine's boundary polygon from `Mine.boundary` (the parsed licence boundary as JSON, with
/// a `polygon` member), or `None` when it is missing or not of that shape.
pub fn boundary_polygon(boundary: &serde_json::Value) -> Option<GeoPolygon> {
    let polygon = boundary.get("polygon")?;
    let polygon: GeoPolygon = serde_json::from_value(polygon.clone()).ok()?;
    (polygon.vertices.len() >= 3).then_some(polygon)
}

/// Where `fix` lies relative to `boundary`.
pub fn locate(
    fix: Option<&Fix>,
    boundary: Option<&GeoPolygon>,
    settings: &GeofenceSettings,
) -> LocationVerdict {
    let (Some(fix), Some(boundary)) = (fix, boundary) else {
        return LocationVerdict::Unknown;
    };
    let metres = boundary.distance_m(fix.point);
    if !metres.is_finite() {
        return LocationVerdict::Unknown;
    }
    let tolerance = settings.near_m + fix.accuracy_m.filter(|a| a.is_finite()).unwrap_or(0.0);
    if metres == 0.0 {
        LocationVerdict::Inside
    } else if metres <= tolerance {
        LocationVerdict::Near { metres }
    } else {
        LocationVerdict::Outside { metres }
    }
}

/// When a photo was taken, relative to the visit, in whole county days (`days` is the photo's
/// date minus the visit's: negative before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum TimeVerdict {
    /// The same day as the visit, in the county's time zone.
    SameDay,
    /// At most `within_days` days before or after.
    WithinDays { days: i64 },
    /// Further away.
    Outside { days: i64 },
    /// No capture time.
    Unknown,
}

/// The county's date of a capture time. A time without offset is taken as county time (phones
/// sold in China keep Beijing time; the verdict says "same day", not "same instant").
fn county_date(t: &CaptureTime, county: FixedOffset) -> NaiveDate {
    match t {
        CaptureTime::Zoned(z) => z.with_timezone(&county).date_naive(),
        CaptureTime::Naive(n) => n.date(),
    }
}

/// China Standard Time, UTC+8: the county's time zone.
pub const CHINA_STANDARD_TIME: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// `captured` against a visit at `visit_ms` (Unix milliseconds), by the county's calendar.
pub fn judge_time(
    captured: Option<&CaptureTime>,
    visit_ms: i64,
    county: FixedOffset,
    settings: &GeofenceSettings,
) -> TimeVerdict {
    let Some(captured) = captured else {
        return TimeVerdict::Unknown;
    };
    let Some(visit) = DateTime::from_timestamp_millis(visit_ms) else {
        return TimeVerdict::Unknown;
    };
    let visit_day = visit.with_timezone(&county).date_naive();
    let days = (county_date(captured, county) - visit_day).num_days();
    if days == 0 {
        TimeVerdict::SameDay
    } else if days.unsigned_abs() <= u64::from(settings.within_days) {
        TimeVerdict::WithinDays { days }
    } else {
        TimeVerdict::Outside { days }
    }
}

/// The EXIF position against the phone's own, when both exist.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PositionComparison {
    /// Distance between the two, metres.
    pub metres: f64,
    /// The larger of the two accuracies (or the default when neither has one).
    pub allowed_m: f64,
    /// `metres > allowed_m`: the photo's two positions disagree, and the record says so.
    pub disagree: bool,
}

/// Compares the EXIF and phone positions of one photo.
pub fn disagreement(exif: &Fix, phone: &Fix, settings: &GeofenceSettings) -> PositionComparison {
    let metres = distance_m(exif.point, phone.point);
    let allowed_m = match (exif.accuracy_m, phone.accuracy_m) {
        (None, None) => settings.default_accuracy_m,
        (a, b) => a.unwrap_or(0.0).max(b.unwrap_or(0.0)),
    };
    PositionComparison {
        metres,
        allowed_m,
        disagree: metres.is_nan() || metres > allowed_m,
    }
}

/// Ground distance between two points, metres (transverse Mercator on their mean meridian:
/// exact to well under a metre over tens of kilometres).
pub fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let cm = (a.lon + b.lon) / 2.0;
    let (ax, ay) = gk_forward(a.lat, a.lon, cm);
    let (bx, by) = gk_forward(b.lat, b.lon, cm);
    ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::NaiveDateTime;

    use super::*;
    use crate::rules::geo::LatLon;

    /// A square of about 1.1 km × 1 km near Shanggao.
    fn square() -> GeoPolygon {
        let v = |lat, lon| LatLon { lat, lon };
        GeoPolygon {
            datum: Datum::Cgcs2000,
            vertices: vec![
                v(28.23, 114.87),
                v(28.23, 114.88),
                v(28.24, 114.88),
                v(28.24, 114.87),
            ],
        }
    }

    #[test]
    fn location_verdicts() {
        let s = GeofenceSettings::default();
        let b = square();
        let inside = Fix::wgs84(28.235, 114.875, Some(5.0));
        assert_eq!(locate(Some(&inside), Some(&b), &s), LocationVerdict::Inside);
        // ~98 m east of the east edge: within 100 m.
        let near = Fix::wgs84(28.235, 114.881, Some(5.0));
        let LocationVerdict::Near { metres } = locate(Some(&near), Some(&b), &s) else {
            panic!()
        };
        assert!((90.0..110.0).contains(&metres), "{metres}");
        // ~196 m: outside with a 5 m fix, near with a 120 m one.
        let far = Fix::wgs84(28.235, 114.882, Some(5.0));
        assert!(matches!(
            locate(Some(&far), Some(&b), &s),
            LocationVerdict::Outside { .. }
        ));
        let vague = Fix::wgs84(28.235, 114.882, Some(120.0));
        assert!(matches!(
            locate(Some(&vague), Some(&b), &s),
            LocationVerdict::Near { .. }
        ));
        assert_eq!(locate(None, Some(&b), &s), LocationVerdict::Unknown);
        assert_eq!(locate(Some(&inside), None, &s), LocationVerdict::Unknown);
    }

    #[test]
    fn boundary_from_mine_json() {
        let b = crate::rules::geo::parse_boundary(
            "28.23,114.87\n28.23,114.88\n28.24,114.88\n28.24,114.87",
            crate::rules::geo::CoordinateFormat::LatLon {
                datum: Datum::Cgcs2000,
            },
        )
        .unwrap();
        let mut json = serde_json::to_value(&b).unwrap();
        json["datum"] = "cgcs2000".into();
        json["source_text"] = "…".into();
        assert_eq!(boundary_polygon(&json), Some(square()));
        assert_eq!(boundary_polygon(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn time_verdicts_by_county_day() {
        let s = GeofenceSettings::default();
        let cst = CHINA_STANDARD_TIME;
        // Visit: 2025-04-03 09:00 Beijing time.
        let visit = DateTime::parse_from_rfc3339("2025-04-03T09:00:00+08:00")
            .unwrap()
            .timestamp_millis();
        let zoned = |s: &str| CaptureTime::Zoned(DateTime::parse_from_rfc3339(s).unwrap());
        // 23:30 the day before in UTC is 07:30 the same day in Beijing.
        let t = zoned("2025-04-02T23:30:00+00:00");
        assert_eq!(judge_time(Some(&t), visit, cst, &s), TimeVerdict::SameDay);
        let t = zoned("2025-04-01T12:00:00+08:00");
        assert_eq!(
            judge_time(Some(&t), visit, cst, &s),
            TimeVerdict::WithinDays { days: -2 }
        );
        let naive = NaiveDateTime::parse_from_str("2025-04-13 08:00:00", "%Y-%m-%d %H:%M:%S");
        let t = CaptureTime::Naive(naive.unwrap());
        assert_eq!(
            judge_time(Some(&t), visit, cst, &s),
            TimeVerdict::Outside { days: 10 }
        );
        assert_eq!(judge_time(None, visit, cst, &s), TimeVerdict::Unknown);
    }

    #[test]
    fn exif_and_phone_positions() {
        let s = GeofenceSettings::default();
        let a = Fix::wgs84(28.235, 114.875, Some(5.0));
        // ~98 m east.
        let b = Fix::wgs84(28.235, 114.876, Some(30.0));
        let c = disagreement(&a, &b, &s);
        assert!((95.0..101.0).contains(&c.metres), "{c:?}");
        assert_eq!(c.allowed_m, 30.0);
        assert!(c.disagree);
        let b = Fix::wgs84(28.235, 114.876, Some(150.0));
        assert!(!disagreement(&a, &b, &s).disagree);
        // Neither has an accuracy: the default 50 m.
        let a = Fix::wgs84(28.235, 114.875, None);
        let b = Fix::wgs84(28.2353, 114.875, None);
        let c = disagreement(&a, &b, &s);
        assert_eq!(c.allowed_m, 50.0);
        assert!(!c.disagree, "{c:?}");
    }
}
