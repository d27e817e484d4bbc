//! The EXIF facts a photo's acceptance depends on, read with kamadak-exif.
//!
//! Reading never fails and never panics: a field that is missing stays `None`; a field that is
//! present but impossible (latitude 200°, month 13, orientation 9) is dropped and a
//! [`ExifWarning`] says which and why, so the raw problem is shown rather than hidden.

use std::fmt;

use ::exif::{Exif, Field, In, Reader, Tag, Value};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// When the photo was taken, as the camera wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "snake_case")]
pub enum CaptureTime {
    /// `DateTimeOriginal` with `OffsetTimeOriginal`: an instant.
    Zoned(DateTime<FixedOffset>),
    /// `DateTimeOriginal` alone: the camera's wall clock, time zone unknown.
    Naive(NaiveDateTime),
}

/// A field dropped because its value is impossible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExifWarning {
    /// The EXIF tag (or pair of tags), e.g. `GPSLatitude`.
    pub field: String,
    /// What is wrong, in English.
    pub problem: String,
}

impl fmt::Display for ExifWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// The EXIF facts of one photo. Every field is optional: phones differ, and editors strip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhotoExif {
    /// Latitude, degrees north (WGS-84, as GPS reports). Present only with `lon`.
    pub lat: Option<f64>,
    /// Longitude, degrees east. Present only with `lat`.
    pub lon: Option<f64>,
    /// Altitude above sea level, metres.
    pub altitude_m: Option<f64>,
    /// Horizontal positioning error, metres (`GPSHPositioningError`).
    pub accuracy_m: Option<f64>,
    /// `DateTimeOriginal` (+ `SubSecTimeOriginal`, `OffsetTimeOriginal`).
    pub captured_at: Option<CaptureTime>,
    pub make: Option<String>,
    pub model: Option<String>,
    /// EXIF orientation, 1–8 (1: as stored; 6: rotate 90° clockwise to view).
    pub orientation: Option<u16>,
    /// Fields that were present but dropped.
    pub warnings: Vec<ExifWarning>,
}

impl PhotoExif {
    /// The facts in EXIF TIFF data (a JPEG's APP1 after `Exif\0\0`, or a PNG `eXIf` chunk).
    /// `None` (no EXIF at all) gives the empty value.
    pub fn read(tiff: Option<&[u8]>) -> PhotoExif {
        let Some(tiff) = tiff else {
            return PhotoExif::default();
        };
        let mut out = PhotoExif::default();
        // Keep the fields that parsed even when a later IFD is damaged.
        let mut damage = Vec::new();
        let exif = match Reader::new()
            .continue_on_error(true)
            .read_raw(tiff.to_vec())
            .or_else(|e| e.distill_partial_result(|errors| damage = errors))
        {
            Ok(exif) => exif,
            Err(e) => {
                out.warn("EXIF", format!("unreadable: {e}"));
                return out;
            }
        };
        if let Some(first) = damage.first() {
            let more = damage.len() - 1;
            out.warn(
                "EXIF",
                format!("partly unreadable: {first} (and {more} more)"),
            );
        }
        out.read_position(&exif);
        out.altitude(&exif);
        out.accuracy(&exif);
        out.capture_time(&exif);
        out.make = text(&exif, Tag::Make);
        out.model = text(&exif, Tag::Model);
        if let Some(field) = exif.get_field(Tag::Orientation, In::PRIMARY) {
            match field.value.get_uint(0) {
                Some(o @ 1..=8) => out.orientation = u16::try_from(o).ok(),
                other => out.warn("Orientation", format!("{other:?} is not 1–8")),
            }
        }
        out
    }

    /// Latitude and longitude together, when both are present and valid.
    pub fn position(&self) -> Option<(f64, f64)> {
        self.lat.zip(self.lon)
    }

    fn warn(&mut self, field: &str, problem: String) {
        self.warnings.push(ExifWarning {
            field: field.to_owned(),
            problem,
        });
    }

    fn read_position(&mut self, exif: &Exif) {
        let lat = exif.get_field(Tag::GPSLatitude, In::PRIMARY);
        let lon = exif.get_field(Tag::GPSLongitude, In::PRIMARY);
        if lat.is_none() && lon.is_none() {
            return;
        }
        let lat = signed_dms(exif, lat, Tag::GPSLatitudeRef, b'N', b'S', 90.0);
        let lon = signed_dms(exif, lon, Tag::GPSLongitudeRef, b'E', b'W', 180.0);
        match (lat, lon) {
            (Ok(lat), Ok(lon)) if lat == 0.0 && lon == 0.0 => self.warn(
                "GPSLatitude/GPSLongitude",
                "0°, 0° (a camera without a fix writes this)".into(),
            ),
            (Ok(lat), Ok(lon)) => {
                self.lat = Some(lat);
                self.lon = Some(lon);
            }
            (lat, lon) => {
                // A position is a pair: drop both, say what was wrong with each.
                if let Err(e) = lat {
                    self.warn("GPSLatitude", e);
                }
                if let Err(e) = lon {
                    self.warn("GPSLongitude", e);
                }
            }
        }
    }

    fn altitude(&mut self, exif: &Exif) {
        let Some(field) = exif.get_field(Tag::GPSAltitude, In::PRIMARY) else {
            return;
        };
        let below = exif
            .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
            .and_then(|f| f.value.get_uint(0))
            == Some(1);
        match rational(field, 0) {
            Some(m) if (0.0..=20_000.0).contains(&m) => {
                self.altitude_m = Some(if below { -m } else { m })
            }
            other => self.warn("GPSAltitude", format!("{other:?} m is out of range")),
        }
    }

    fn accuracy(&mut self, exif: &Exif) {
        let Some(field) = exif.get_field(Tag::GPSHPositioningError, In::PRIMARY) else {
            return;
        };
        match rational(field, 0) {
            Some(m) if (0.0..=1_000_000.0).contains(&m) => self.accuracy_m = Some(m),
            other => self.warn(
                "GPSHPositioningError",
                format!("{other:?} m is out of range"),
            ),
        }
    }

    fn capture_time(&mut self, exif: &Exif) {
        let Some(field) = exif.get_field(Tag::DateTimeOriginal, In::PRIMARY) else {
            return;
        };
        let Some(ascii) = ascii_of(field) else {
            self.warn("DateTimeOriginal", "not text".into());
            return;
        };
        let mut dt = match ::exif::DateTime::from_ascii(ascii) {
            Ok(dt) => dt,
            Err(e) => {
                self.warn("DateTimeOriginal", format!("{e}"));
                return;
            }
        };
        if let Some(sub) = exif.get_field(Tag::SubSecTimeOriginal, In::PRIMARY) {
            // A bad subsecond is not worth a warning: the second is what matters.
            if let Some(a) = ascii_of(sub) {
                let _ = dt.parse_subsec(a);
            }
        }
        let naive = NaiveDate::from_ymd_opt(i32::from(dt.year), dt.month.into(), dt.day.into())
            .and_then(|d| {
                d.and_hms_nano_opt(
                    dt.hour.into(),
                    dt.minute.into(),
                    dt.second.into(),
                    dt.nanosecond.unwrap_or(0),
                )
            });
        let Some(naive) = naive else {
            self.warn(
                "DateTimeOriginal",
                format!(
                    "{:?} is not a date and time",
                    String::from_utf8_lossy(ascii)
                ),
            );
            return;
        };
        let offset = match exif.get_field(Tag::OffsetTimeOriginal, In::PRIMARY) {
            None => None,
            Some(f) => {
                let parsed = ascii_of(f)
                    .and_then(|a| dt.parse_offset(a).ok())
                    .and(dt.offset)
                    .and_then(|minutes| FixedOffset::east_opt(i32::from(minutes) * 60));
                if parsed.is_none() {
                    self.warn(
                        "OffsetTimeOriginal",
                        "not a time zone offset (±HH:MM, at most 14 h)".into(),
                    );
                }
                parsed
            }
        };
        self.captured_at = Some(match offset {
            Some(offset) => match naive.and_local_timezone(offset).single() {
                Some(zoned) => CaptureTime::Zoned(zoned),
                None => CaptureTime::Naive(naive),
            },
            None => CaptureTime::Naive(naive),
        });
    }
}

fn ascii_of(field: &Field) -> Option<&[u8]> {
    match &field.value {
        Value::Ascii(v) => v.first().map(Vec::as_slice),
        _ => None,
    }
}

/// A text field: trimmed of NULs and spaces, at most 100 characters, `None` when blank.
fn text(exif: &Exif, tag: Tag) -> Option<String> {
    let raw = ascii_of(exif.get_field(tag, In::PRIMARY)?)?;
    let s = String::from_utf8_lossy(raw);
    let s: String = s
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    (!s.is_empty()).then_some(s)
}

/// The `i`-th value of a rational field, as a finite number.
fn rational(field: &Field, i: usize) -> Option<f64> {
    let v = match &field.value {
        Value::Rational(v) => v.get(i)?.to_f64(),
        Value::SRational(v) => v.get(i)?.to_f64(),
        _ => return None,
    };
    v.is_finite().then_some(v)
}

/// Degrees/minutes/seconds with their hemisphere reference, checked against `±max`.
fn signed_dms(
    exif: &Exif,
    field: Option<&Field>,
    ref_tag: Tag,
    positive: u8,
    negative: u8,
    max: f64,
) -> Result<f64, String> {
    let field = field.ok_or("missing")?;
    let (Some(d), m, s) = (
        rational(field, 0),
        rational(field, 1).unwrap_or(0.0),
        rational(field, 2).unwrap_or(0.0),
    ) else {
        return Err("not degrees, minutes, seconds".into());
    };
    if !(0.0..60.0).contains(&m) || !(0.0..60.0).contains(&s) || d < 0.0 {
        return Err(format!("{d}° {m}′ {s}″ is not an angle"));
    }
    let deg = d + m / 60.0 + s / 3600.0;
    if deg > max {
        return Err(format!("{deg}° is beyond ±{max}°"));
    }
    let reference = exif
        .get_field(ref_tag, In::PRIMARY)
        .and_then(ascii_of)
        .and_then(|a| a.first().copied());
    match reference {
        Some(r) if r == positive => Ok(deg),
        Some(r) if r == negative => Ok(-deg),
        _ => Err(format!(
            "hemisphere reference is not {} or {}",
            positive as char, negative as char
        )),
    }
}

/// Builds EXIF TIFF data (what follows `Exif\0\0` in APP1), for tests, fuzz seeds and the
/// benchmark.
pub mod build {
    use ::exif::{Field, In, Rational, Tag, Value, experimental::Writer};

    /// What to write; `None` fields are left out.
    #[derive(Debug, Clone, Default)]
    pub struct ExifSpec {
        /// Degrees, signed (south and west negative); written as given, even when impossible.
        pub lat: Option<f64>,
        pub lon: Option<f64>,
        pub altitude_m: Option<f64>,
        pub accuracy_m: Option<f64>,
        /// `YYYY:MM:DD HH:MM:SS`.
        pub date_time_original: Option<String>,
        /// `±HH:MM`.
        pub offset_time_original: Option<String>,
        pub make: Option<String>,
        pub model: Option<String>,
        pub orientation: Option<u16>,
    }

    fn dms(deg: f64) -> Vec<Rational> {
        let deg = deg.abs();
        let d = deg.trunc();
        let m = ((deg - d) * 60.0).trunc();
        let s = ((deg - d) * 60.0 - m) * 60.0;
        vec![
            Rational::from((d as u32, 1)),
            Rational::from((m as u32, 1)),
            Rational::from(((s * 10_000.0).round() as u32, 10_000)),
        ]
    }

    fn field(tag: Tag, value: Value) -> Field {
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value,
        }
    }

    fn ascii(s: &str) -> Value {
        Value::Ascii(vec![s.as_bytes().to_vec()])
    }

    impl ExifSpec {
        /// Little-endian TIFF data, or `None` if the writer refuses the fields.
        pub fn tiff(&self) -> Option<Vec<u8>> {
            let mut fields = Vec::new();
            if let Some(lat) = self.lat {
                let r = if lat < 0.0 { "S" } else { "N" };
                fields.push(field(Tag::GPSLatitudeRef, ascii(r)));
                fields.push(field(Tag::GPSLatitude, Value::Rational(dms(lat))));
            }
            if let Some(lon) = self.lon {
                let r = if lon < 0.0 { "W" } else { "E" };
                fields.push(field(Tag::GPSLongitudeRef, ascii(r)));
                fields.push(field(Tag::GPSLongitude, Value::Rational(dms(lon))));
            }
            if let Some(alt) = self.altitude_m {
                fields.push(field(
                    Tag::GPSAltitudeRef,
                    Value::Byte(vec![u8::from(alt < 0.0)]),
                ));
                let cm = (alt.abs() * 100.0).round() as u32;
                fields.push(field(
                    Tag::GPSAltitude,
                    Value::Rational(vec![(cm, 100).into()]),
                ));
            }
            if let Some(acc) = self.accuracy_m {
                let cm = (acc * 100.0).round() as u32;
                fields.push(field(
                    Tag::GPSHPositioningError,
                    Value::Rational(vec![(cm, 100).into()]),
                ));
            }
            if let Some(s) = &self.date_time_original {
                fields.push(field(Tag::DateTimeOriginal, ascii(s)));
            }
            if let Some(s) = &self.offset_time_original {
                fields.push(field(Tag::OffsetTimeOriginal, ascii(s)));
            }
            if let Some(s) = &self.make {
                fields.push(field(Tag::Make, ascii(s)));
            }
            if let Some(s) = &self.model {
                fields.push(field(Tag::Model, ascii(s)));
            }
            if let Some(o) = self.orientation {
                fields.push(field(Tag::Orientation, Value::Short(vec![o])));
            }
            let mut writer = Writer::new();
            for f in &fields {
                writer.push_field(f);
            }
            let mut out = std::io::Cursor::new(Vec::new());
            writer.write(&mut out, true).ok()?;
            Some(out.into_inner())
        }

        /// A JPEG APP1 payload: `Exif\0\0` and the TIFF data.
        pub fn app1(&self) -> Option<Vec<u8>> {
            let mut v = b"Exif\0\0".to_vec();
            v.extend(self.tiff()?);
            Some(v)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{build::ExifSpec, *};

    fn phone() -> ExifSpec {
        ExifSpec {
            lat: Some(28.234_567),
            lon: Some(114.876_543),
            altitude_m: Some(85.5),
            accuracy_m: Some(4.2),
            date_time_original: Some("2025:04:03 10:20:30".into()),
            offset_time_original: Some("+08:00".into()),
            make: Some("HUAWEI".into()),
            model: Some("Mate 60\0".into()),
            orientation: Some(6),
        }
    }

    #[test]
    fn phone_exif_round_trip() {
        let e = PhotoExif::read(Some(&phone().tiff().unwrap()));
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
        let (lat, lon) = e.position().unwrap();
        assert!((lat - 28.234_567).abs() < 1e-6 && (lon - 114.876_543).abs() < 1e-6);
        assert_eq!(e.altitude_m, Some(85.5));
        assert_eq!(e.accuracy_m, Some(4.2));
        let want = DateTime::parse_from_rfc3339("2025-04-03T10:20:30+08:00").unwrap();
        assert_eq!(e.captured_at, Some(CaptureTime::Zoned(want)));
        assert_eq!(e.make.as_deref(), Some("HUAWEI"));
        assert_eq!(e.model.as_deref(), Some("Mate 60"));
        assert_eq!(e.orientation, Some(6));
    }

    #[test]
    fn south_west_and_below_sea_level() {
        let spec = ExifSpec {
            lat: Some(-33.5),
            lon: Some(-70.25),
            altitude_m: Some(-12.0),
            ..ExifSpec::default()
        };
        let e = PhotoExif::read(Some(&spec.tiff().unwrap()));
        assert_eq!(e.position(), Some((-33.5, -70.25)));
        assert_eq!(e.altitude_m, Some(-12.0));
    }

    #[test]
    fn latitude_200_is_dropped_with_a_warning() {
        let spec = ExifSpec {
            lat: Some(200.0),
            ..phone()
        };
        let e = PhotoExif::read(Some(&spec.tiff().unwrap()));
        assert_eq!(e.position(), None);
        assert_eq!((e.lat, e.lon), (None, None));
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert_eq!(e.warnings[0].field, "GPSLatitude");
        assert!(e.warnings[0].problem.contains("200"), "{}", e.warnings[0]);
        // The rest survives.
        assert_eq!(e.orientation, Some(6));
        assert!(e.captured_at.is_some());
    }

    #[test]
    fn no_exif_at_all() {
        assert_eq!(PhotoExif::read(None), PhotoExif::default());
    }

    #[test]
    fn garbage_exif_is_a_warning() {
        let e = PhotoExif::read(Some(b"II*\0garbage"));
        assert_eq!(e.position(), None);
        assert_eq!(e.warnings.len(), 1);
        let e = PhotoExif::read(Some(b""));
        assert_eq!(e.warnings.len(), 1);
    }

    #[test]
    fn time_without_offset_is_naive_and_bad_values_warn() {
        let spec = ExifSpec {
            offset_time_original: None,
            ..phone()
        };
        let e = PhotoExif::read(Some(&spec.tiff().unwrap()));
        let want = NaiveDateTime::parse_from_str("2025-04-03 10:20:30", "%Y-%m-%d %H:%M:%S");
        assert_eq!(e.captured_at, Some(CaptureTime::Naive(want.unwrap())));

        let spec = ExifSpec {
            date_time_original: Some("2025:13:40 25:00:00".into()),
            offset_time_original: Some("+99:00".into()),
            orientation: Some(9),
            ..ExifSpec::default()
        };
        let e = PhotoExif::read(Some(&spec.tiff().unwrap()));
        assert_eq!(e.captured_at, None);
        assert_eq!(e.orientation, None);
        let fields: Vec<_> = e.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["DateTimeOriginal", "Orientation"]);
    }

    #[test]
    fn zero_zero_is_no_fix() {
        let spec = ExifSpec {
            lat: Some(0.0),
            lon: Some(0.0),
            ..ExifSpec::default()
        };
        let e = PhotoExif::read(Some(&spec.tiff().unwrap()));
        assert_eq!(e.position(), None);
        assert_eq!(e.warnings.len(), 1);
    }
}
