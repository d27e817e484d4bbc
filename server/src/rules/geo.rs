//! Mine boundaries: licence corner points (矿区范围拐点坐标) and their latitude/longitude.
//!
//! # Vocabulary
//! - **Datum** ([`Datum`]): the reference ellipsoid/frame a latitude/longitude is in. Mining
//!   licences use **CGCS2000** (China Geodetic Coordinate System 2000); GPS and phones report
//!   **WGS-84**. The two differ by a few centimetres — far below a phone's GPS error — so they are
//!   treated as the same frame for geofencing, but every coordinate still says which one it is.
//!   **GCJ-02** (the obfuscated offset used by Chinese web maps: AMap/高德, Tencent, and Baidu's
//!   BD-09 on top of it) is deliberately *not* a variant: it is shifted by hundreds of metres, and
//!   mixing it in would put photos outside their mine. Coordinates taken from such a map must be
//!   converted by the client before they reach this module, never stored as they are.
//! - **Gauss-Krüger projection** (高斯-克吕格): the transverse Mercator projection with scale 1 on
//!   the central meridian, used by Chinese licences in **3° zones**: zone *n* has central meridian
//!   3°·*n* (Jiangxi lies in zones 38–40; Shanggao ≈ 114.8° E is zone 38, CM 114° E). A projected
//!   point is `X` = northing in metres from the equator and `Y` = easting in metres with a
//!   **false easting** of 500 000 m, often written with the **zone prefix**: `Y = 38 512 345.67`
//!   means zone 38, easting 512 345.67 m (the EPSG:4513–4533 convention; EPSG:4534–4554 are
//!   the same zones without prefix). Note that surveyors' `X` is north, not east.
//! - **Corner point** (拐点): one row of a licence's boundary table; the polygon is the corners in
//!   order, implicitly closed.
//!
//! # Accuracy
//! The projection uses Krüger's series in the third flattening *n* to order n⁶ (Karney 2011,
//! "Transverse Mercator with an accuracy of a few nanometers"), whose truncation error is a few
//! nanometres within a 3° zone; double precision keeps the result within micrometres. The
//! fixture `tests/fixtures/gauss_kruger.json` (made once with PROJ) checks it to 0.1 m, and in
//! practice it agrees to under a millimetre.
//!
//! # Boundary text
//! [`parse_boundary`] reads the coordinate table as typed from the licence; see its docs for the
//! accepted row shapes and the closure rule. Every problem is reported with the one-based **row**
//! (line of the text) and, once the row is a point, the one-based **point** number.

use std::{f64::consts::PI, fmt};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A geodetic datum a latitude/longitude is expressed in. There is intentionally no GCJ-02.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Datum {
    /// CGCS2000 (EPSG:4490), the datum of mining licences.
    Cgcs2000,
    /// WGS-84 (EPSG:4326), the datum of GPS receivers. Within a few centimetres of CGCS2000.
    Wgs84,
}

/// An ellipsoid: semi-major axis and flattening.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipsoid {
    /// Semi-major axis in metres.
    pub a: f64,
    /// Flattening.
    pub f: f64,
}

/// The CGCS2000 ellipsoid (a = 6 378 137 m, f = 1/298.257222101; GRS 80 to 10⁻¹⁰).
pub const CGCS2000: Ellipsoid = Ellipsoid {
    a: 6_378_137.0,
    f: 1.0 / 298.257_222_101,
};

/// The false easting of Gauss-Krüger zones, in metres.
pub const FALSE_EASTING: f64 = 500_000.0;

/// How far past the zone's half-width (1.5°) a point may lie and still be accepted as in the
/// zone. Licences for a mine straddling a zone edge keep all corners in one zone, so a corner a
/// few kilometres beyond the edge is legitimate; more than this is a typo or a wrong zone.
pub const ZONE_EDGE_TOLERANCE_DEG: f64 = 0.05;

/// A latitude/longitude in degrees, with its datum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeoPoint {
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
    /// The datum the two angles refer to.
    pub datum: Datum,
}

/// A 3° Gauss-Krüger zone number (central meridian = 3° × zone).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
pub struct Zone3(u32);

impl Zone3 {
    /// Zone numbers whose central meridian is in 3°..=180° E (China uses 25–45).
    pub const RANGE: std::ops::RangeInclusive<u32> = 1..=60;

    /// A zone by number.
    pub fn new(zone: u32) -> Option<Self> {
        Self::RANGE.contains(&zone).then_some(Zone3(zone))
    }

    /// The zone whose central meridian is `cm` degrees east (must be a multiple of 3).
    pub fn from_central_meridian(cm: u32) -> Option<Self> {
        if cm.is_multiple_of(3) {
            Self::new(cm / 3)
        } else {
            None
        }
    }

    /// The zone a longitude falls in (nearest central meridian).
    pub fn containing(lon: f64) -> Option<Self> {
        let n = (lon / 3.0).round();
        if (1.0..=60.0).contains(&n) {
            // In range, so the cast is exact.
            Self::new(n as u32)
        } else {
            None
        }
    }

    /// The zone number.
    pub fn number(self) -> u32 {
        self.0
    }

    /// The central meridian in degrees east.
    pub fn central_meridian(self) -> f64 {
        f64::from(self.0) * 3.0
    }
}

impl fmt::Display for Zone3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zone {} (CM {}°E)", self.0, self.0 * 3)
    }
}

/// A projected CGCS2000 Gauss-Krüger point as on a licence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GaussKrugerPoint {
    /// X: northing in metres from the equator.
    pub x_north: f64,
    /// Y: easting in metres **without** the zone prefix (false easting 500 000 m included).
    pub y_east: f64,
    /// The 3° zone, when known (from the prefix of Y or declared with the list).
    pub zone: Option<Zone3>,
}

impl GaussKrugerPoint {
    /// Splits a licence Y that may carry a zone prefix (`38512345.67` → zone 38, 512 345.67).
    /// A Y below 1 000 000 m has no prefix.
    pub fn from_licence(x_north: f64, y: f64) -> Result<Self, GeoErrorKind> {
        if !(x_north.is_finite() && y.is_finite()) {
            return Err(GeoErrorKind::ImplausibleNorthing { x_north });
        }
        if !(0.0..10_002_000.0).contains(&x_north) {
            return Err(GeoErrorKind::ImplausibleNorthing { x_north });
        }
        if y < 0.0 {
            return Err(GeoErrorKind::ImplausibleEasting { y });
        }
        if y < 1_000_000.0 {
            return Ok(GaussKrugerPoint {
                x_north,
                y_east: y,
                zone: None,
            });
        }
        let prefix = (y / 1_000_000.0).floor();
        let zone = Zone3::new(prefix as u32).ok_or(GeoErrorKind::ImplausibleEasting { y })?;
        Ok(GaussKrugerPoint {
            x_north,
            y_east: y - prefix * 1_000_000.0,
            zone: Some(zone),
        })
    }

    /// Y with the zone prefix, as a licence prints it (or without, when the zone is unknown).
    pub fn licence_y(&self) -> f64 {
        match self.zone {
            Some(z) => self.y_east + f64::from(z.number()) * 1_000_000.0,
            None => self.y_east,
        }
    }

    /// Latitude/longitude on CGCS2000, in `zone` if the point has none of its own.
    pub fn to_geo(&self, fallback_zone: Option<Zone3>) -> Result<GeoPoint, GeoErrorKind> {
        let zone = self.zone.or(fallback_zone).ok_or(GeoErrorKind::NoZone)?;
        let (lat, lon) = gk_inverse(self.x_north, self.y_east, zone.central_meridian());
        Ok(GeoPoint {
            lat,
            lon,
            datum: Datum::Cgcs2000,
        })
    }

    /// Projects a CGCS2000 (or WGS-84, treated as equal) point into `zone`.
    pub fn from_geo(point: GeoPoint, zone: Zone3) -> Self {
        let (x_north, y_east) = gk_forward(point.lat, point.lon, zone.central_meridian());
        GaussKrugerPoint {
            x_north,
            y_east,
            zone: Some(zone),
        }
    }
}

/// Krüger series coefficients for one ellipsoid.
struct Krueger {
    /// Rectifying radius A (metres).
    big_a: f64,
    /// First eccentricity.
    e: f64,
    alpha: [f64; 6],
    beta: [f64; 6],
}

impl Krueger {
    fn new(ell: Ellipsoid) -> Self {
        let f = ell.f;
        let n = f / (2.0 - f);
        let n2 = n * n;
        let n3 = n2 * n;
        let n4 = n3 * n;
        let n5 = n4 * n;
        let n6 = n5 * n;
        let big_a = ell.a / (1.0 + n) * (1.0 + n2 / 4.0 + n4 / 64.0 + n6 / 256.0);
        // Karney (2011), eqs. (35) and (36).
        let alpha = [
            n / 2.0 - 2.0 / 3.0 * n2 + 5.0 / 16.0 * n3 + 41.0 / 180.0 * n4 - 127.0 / 288.0 * n5
                + 7891.0 / 37800.0 * n6,
            13.0 / 48.0 * n2 - 3.0 / 5.0 * n3 + 557.0 / 1440.0 * n4 + 281.0 / 630.0 * n5
                - 1_983_433.0 / 1_935_360.0 * n6,
            61.0 / 240.0 * n3 - 103.0 / 140.0 * n4
                + 15061.0 / 26880.0 * n5
                + 167_603.0 / 181_440.0 * n6,
            49561.0 / 161_280.0 * n4 - 179.0 / 168.0 * n5 + 6_601_661.0 / 7_257_600.0 * n6,
            34729.0 / 80640.0 * n5 - 3_418_889.0 / 1_995_840.0 * n6,
            212_378_941.0 / 319_334_400.0 * n6,
        ];
        let beta = [
            n / 2.0 - 2.0 / 3.0 * n2 + 37.0 / 96.0 * n3 - 1.0 / 360.0 * n4 - 81.0 / 512.0 * n5
                + 96199.0 / 604_800.0 * n6,
            n2 / 48.0 + n3 / 15.0 - 437.0 / 1440.0 * n4 + 46.0 / 105.0 * n5
                - 1_118_711.0 / 3_870_720.0 * n6,
            17.0 / 480.0 * n3 - 37.0 / 840.0 * n4 - 209.0 / 4480.0 * n5 + 5569.0 / 90720.0 * n6,
            4397.0 / 161_280.0 * n4 - 11.0 / 504.0 * n5 - 830_251.0 / 7_257_600.0 * n6,
            4583.0 / 161_280.0 * n5 - 108_847.0 / 3_991_680.0 * n6,
            20_648_693.0 / 638_668_800.0 * n6,
        ];
        let e = (f * (2.0 - f)).sqrt();
        Krueger {
            big_a,
            e,
            alpha,
            beta,
        }
    }
}

/// Forward Gauss-Krüger projection on CGCS2000 (scale 1 on the central meridian).
///
/// Returns `(x_north, y_east)` in metres, `y_east` with the false easting and without a zone
/// prefix. `lat`, `lon` and `central_meridian` are in degrees.
pub fn gk_forward(lat: f64, lon: f64, central_meridian: f64) -> (f64, f64) {
    let k = Krueger::new(CGCS2000);
    let phi = lat.to_radians();
    let lambda = (lon - central_meridian).to_radians();
    // Conformal latitude, via its tangent.
    let sin_phi = phi.sin();
    let t = (sin_phi.atanh() - k.e * (k.e * sin_phi).atanh()).sinh();
    let xi_p = t.atan2(lambda.cos());
    let eta_p = (lambda.sin() / (1.0 + t * t).sqrt()).atanh();
    let mut xi = xi_p;
    let mut eta = eta_p;
    for (j, a) in k.alpha.iter().enumerate() {
        let m = 2.0 * (j as f64 + 1.0);
        xi += a * (m * xi_p).sin() * (m * eta_p).cosh();
        eta += a * (m * xi_p).cos() * (m * eta_p).sinh();
    }
    (k.big_a * xi, k.big_a * eta + FALSE_EASTING)
}

/// Inverse Gauss-Krüger projection on CGCS2000.
///
/// `y_east` includes the false easting and no zone prefix. Returns `(lat, lon)` in degrees.
pub fn gk_inverse(x_north: f64, y_east: f64, central_meridian: f64) -> (f64, f64) {
    let k = Krueger::new(CGCS2000);
    let xi = x_north / k.big_a;
    let eta = (y_east - FALSE_EASTING) / k.big_a;
    let mut xi_p = xi;
    let mut eta_p = eta;
    for (j, b) in k.beta.iter().enumerate() {
        let m = 2.0 * (j as f64 + 1.0);
        xi_p -= b * (m * xi).sin() * (m * eta).cosh();
        eta_p -= b * (m * xi).cos() * (m * eta).sinh();
    }
    let sinh_eta = eta_p.sinh();
    let tau_p = xi_p.sin() / (sinh_eta * sinh_eta + xi_p.cos().powi(2)).sqrt();
    let lambda = sinh_eta.atan2(xi_p.cos());
    // Conformal → geodetic latitude by Newton's method on the tangent (Karney 2011, eqs. 19–21).
    let e2 = k.e * k.e;
    let mut tau = tau_p;
    for _ in 0..8 {
        let sqrt_tau = (1.0 + tau * tau).sqrt();
        let sigma = (k.e * (k.e * tau / sqrt_tau).atanh()).sinh();
        let tau_i = tau * (1.0 + sigma * sigma).sqrt() - sigma * sqrt_tau;
        let d_tau = (tau_p - tau_i) / (1.0 + tau_i * tau_i).sqrt() * (1.0 + (1.0 - e2) * tau * tau)
            / ((1.0 - e2) * sqrt_tau);
        tau += d_tau;
        if d_tau.abs() < 1e-14 {
            break;
        }
    }
    (
        tau.atan().to_degrees(),
        central_meridian + lambda.to_degrees(),
    )
}

/// A vertex of a polygon, in degrees (the datum is the polygon's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatLon {
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
}

/// A simple polygon (a mine boundary) in latitude/longitude. The ring is **open**: the first
/// vertex is not repeated at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeoPolygon {
    /// The datum of every vertex.
    pub datum: Datum,
    /// At least three distinct vertices, in order, not repeating the first.
    pub vertices: Vec<LatLon>,
}

impl GeoPolygon {
    /// The polygon and `point` on a local plane: a transverse Mercator centred on the polygon's
    /// mean longitude. Over a mine (a few km) its scale error is below 10⁻⁶, so planar distances
    /// are metres on the ground to well under a millimetre per kilometre.
    fn local_plane(&self, point: GeoPoint) -> (Vec<(f64, f64)>, (f64, f64)) {
        let cm =
            self.vertices.iter().map(|v| v.lon).sum::<f64>() / self.vertices.len().max(1) as f64;
        let ring = self
            .vertices
            .iter()
            .map(|v| gk_forward(v.lat, v.lon, cm))
            .collect();
        (ring, gk_forward(point.lat, point.lon, cm))
    }

    /// The enclosed area in square metres, on the polygon's local plane (shoelace formula).
    pub fn area_m2(&self) -> f64 {
        let Some(first) = self.vertices.first() else {
            return 0.0;
        };
        let (ring, _) = self.local_plane(GeoPoint {
            lat: first.lat,
            lon: first.lon,
            datum: self.datum,
        });
        let n = ring.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let (a, b) = (ring[i], ring[(i + 1) % n]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        (twice / 2.0).abs()
    }

    /// Whether `point` lies inside the polygon or on its boundary.
    ///
    /// CGCS2000 and WGS-84 are treated as the same frame (centimetres apart), so a phone's WGS-84
    /// fix may be tested against a licence's CGCS2000 boundary.
    pub fn contains(&self, point: GeoPoint) -> bool {
        self.distance_m(point) == 0.0
    }

    /// Distance in metres from `point` to the polygon: 0 inside or on the boundary, else the
    /// distance to the nearest edge. Meant for geofencing photos near a mine (up to tens of km).
    pub fn distance_m(&self, point: GeoPoint) -> f64 {
        if self.vertices.is_empty() {
            return f64::INFINITY;
        }
        let (ring, p) = self.local_plane(point);
        let n = ring.len();
        let mut inside = false;
        let mut nearest = f64::INFINITY;
        for i in 0..n {
            let a = ring[i];
            let b = ring[(i + 1) % n];
            nearest = nearest.min(segment_distance(p, a, b));
            // Ray casting towards +y (easting), counting edges that straddle p's northing.
            if (a.0 > p.0) != (b.0 > p.0) {
                let y_cross = a.1 + (p.0 - a.0) / (b.0 - a.0) * (b.1 - a.1);
                if p.1 < y_cross {
                    inside = !inside;
                }
            }
        }
        if inside || nearest < 1e-9 {
            0.0
        } else {
            nearest
        }
    }
}

/// Planar distance from `p` to the segment `a`–`b`.
fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// Whether the open segments `p1`–`p2` and `p3`–`p4` touch or cross.
fn segments_intersect(p1: (f64, f64), p2: (f64, f64), p3: (f64, f64), p4: (f64, f64)) -> bool {
    fn orient(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> f64 {
        (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
    }
    fn on_segment(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> bool {
        c.0 >= a.0.min(b.0) && c.0 <= a.0.max(b.0) && c.1 >= a.1.min(b.1) && c.1 <= a.1.max(b.1)
    }
    let d1 = orient(p3, p4, p1);
    let d2 = orient(p3, p4, p2);
    let d3 = orient(p1, p2, p3);
    let d4 = orient(p1, p2, p4);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(p3, p4, p1))
        || (d2 == 0.0 && on_segment(p3, p4, p2))
        || (d3 == 0.0 && on_segment(p1, p2, p3))
        || (d4 == 0.0 && on_segment(p1, p2, p4))
}

/// How a licence coordinate list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CoordinateFormat {
    /// CGCS2000 Gauss-Krüger X (north), Y (east) in 3° zones. `zone` is the zone for rows whose
    /// Y has no prefix; when given, prefixed rows must agree with it.
    GaussKruger {
        /// The declared zone, if any.
        zone: Option<Zone3>,
    },
    /// Latitude, longitude in decimal degrees (in that order), in the declared datum.
    LatLon {
        /// The datum the list is in.
        datum: Datum,
    },
}

/// One corner as read from the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Corner {
    /// One-based row (line) of the text it came from.
    pub row: usize,
    /// The licence's point label (`1`, `J1`, …), if the row had one.
    pub label: Option<String>,
    /// The projected coordinates, for Gauss-Krüger input.
    pub projected: Option<GaussKrugerPoint>,
    /// The position in the boundary's datum.
    pub position: LatLon,
}

/// A parsed, validated licence boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Boundary {
    /// The polygon (open ring).
    pub polygon: GeoPolygon,
    /// The corners in licence order (without the explicit closing repeat, if there was one).
    pub corners: Vec<Corner>,
    /// The zone of Gauss-Krüger input.
    pub zone: Option<Zone3>,
}

impl Boundary {
    /// The enclosed area in square metres: on the licence's Gauss-Krüger plane when the corners
    /// came as licence coordinates (the plane the licence's 矿区面积 is computed on), else on the
    /// polygon's local plane.
    pub fn area_m2(&self) -> f64 {
        let plane: Option<Vec<(f64, f64)>> = self
            .corners
            .iter()
            .map(|c| c.projected.map(|p| (p.x_north, p.y_east)))
            .collect();
        match plane {
            Some(ring) if ring.len() >= 3 => {
                let n = ring.len();
                let twice: f64 = (0..n)
                    .map(|i| {
                        let (a, b) = (ring[i], ring[(i + 1) % n]);
                        a.0 * b.1 - b.0 * a.1
                    })
                    .sum();
                (twice / 2.0).abs()
            }
            _ => self.polygon.area_m2(),
        }
    }
}

/// The smallest area a boundary may enclose, m²: less is points on one line (or a typo).
pub const MIN_AREA_M2: f64 = 1.0;

/// What is wrong with a coordinate list or one of its points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GeoErrorKind {
    /// A value that is not a plain decimal number.
    NonNumeric {
        /// Which value (`X`, `Y`, `lat`, `lon`).
        field: String,
        /// The text found.
        text: String,
    },
    /// A row that is neither `[label,] a, b` nor `[label] X=…, Y=…`.
    RowShape {
        /// What was wrong.
        detail: String,
    },
    /// A northing outside 0…10 002 km.
    ImplausibleNorthing {
        /// The X value.
        x_north: f64,
    },
    /// An easting that is negative, or whose prefix is not a zone number, or that without its
    /// prefix is not within a zone (100 km … 900 km).
    ImplausibleEasting {
        /// The Y value as written.
        y: f64,
    },
    /// The row's zone prefix differs from the declared zone or the list's first prefixed row.
    ZoneMismatch {
        /// The zone of this row.
        found: u32,
        /// The zone expected.
        expected: u32,
    },
    /// Some rows carry a zone prefix and this one does not (or the other way round).
    MixedPrefix,
    /// No row has a zone prefix and no zone was declared: the central meridian is unknown.
    NoZone,
    /// The point lies further than 1.5° (+ tolerance) from its zone's central meridian.
    OutsideZone {
        /// The zone claimed.
        zone: u32,
        /// The point's longitude.
        lon: f64,
    },
    /// A latitude/longitude out of range (a swapped pair shows up here).
    LatLonOutOfRange {
        /// Latitude read.
        lat: f64,
        /// Longitude read.
        lon: f64,
    },
    /// Fewer than three distinct points.
    TooFewPoints {
        /// Distinct points found.
        distinct: usize,
    },
    /// The last row repeats the first point (same label, or within 1 m) but not exactly: a
    /// closure with a typo.
    NotClosed {
        /// Distance in metres between the last and first point.
        gap_m: f64,
    },
    /// A point repeats an earlier one (other than an exact closing repeat of the first).
    DuplicatePoint {
        /// The earlier point number.
        same_as: usize,
    },
    /// Two edges of the ring cross or touch.
    SelfIntersection {
        /// Edge from this point to the next.
        edge_a: usize,
        /// Another edge from this point to the next.
        edge_b: usize,
    },
    /// The points enclose (almost) no area: they lie on one line.
    Degenerate {
        /// The enclosed area on the plane, in square metres.
        area_m2: f64,
    },
}

impl fmt::Display for GeoErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeoErrorKind::NonNumeric { field, text } => {
                write!(f, "{field} value {text:?} is not a number")
            }
            GeoErrorKind::RowShape { detail } => write!(f, "cannot read the row: {detail}"),
            GeoErrorKind::ImplausibleNorthing { x_north } => {
                write!(f, "X (northing) {x_north} m is not a plausible northing")
            }
            GeoErrorKind::ImplausibleEasting { y } => write!(
                f,
                "Y (easting) {y} m is not a plausible easting (expected 100 000–900 000 m, \
                 optionally prefixed with the zone number)"
            ),
            GeoErrorKind::ZoneMismatch { found, expected } => {
                write!(f, "zone prefix {found} disagrees with zone {expected}")
            }
            GeoErrorKind::MixedPrefix => write!(
                f,
                "this Y has no zone prefix but other rows do (or the other way round)"
            ),
            GeoErrorKind::NoZone => write!(
                f,
                "no Y carries a zone prefix and no zone was given; state the zone or central \
                 meridian"
            ),
            GeoErrorKind::OutsideZone { zone, lon } => write!(
                f,
                "longitude {lon:.5}° is outside zone {zone} (central meridian {}°E ± 1.5°)",
                zone * 3
            ),
            GeoErrorKind::LatLonOutOfRange { lat, lon } => write!(
                f,
                "latitude {lat} / longitude {lon} out of range (is the pair swapped? expected lat,lon)"
            ),
            GeoErrorKind::TooFewPoints { distinct } => {
                write!(
                    f,
                    "a boundary needs at least 3 distinct points, found {distinct}"
                )
            }
            GeoErrorKind::NotClosed { gap_m } => write!(
                f,
                "the last point repeats the first but differs from it by {gap_m:.3} m; repeat it \
                 exactly or leave it out"
            ),
            GeoErrorKind::DuplicatePoint { same_as } => {
                write!(f, "the point repeats point {same_as}")
            }
            GeoErrorKind::Degenerate { area_m2 } => write!(
                f,
                "the points enclose {area_m2:.3} m² — they lie on one line; a boundary needs an \
                 area of at least {MIN_AREA_M2} m²"
            ),
            GeoErrorKind::SelfIntersection { edge_a, edge_b } => write!(
                f,
                "the boundary crosses itself: edge from point {edge_a} meets edge from point \
                 {edge_b}"
            ),
        }
    }
}

/// One problem with a coordinate list, with its location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeoError {
    /// One-based row (line) of the text, when the problem belongs to a row.
    pub row: Option<usize>,
    /// One-based point number (corner order), when the problem belongs to a point.
    pub point: Option<usize>,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: GeoErrorKind,
}

impl fmt::Display for GeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.row, self.point) {
            (Some(r), Some(p)) => write!(f, "row {r} (point {p}): {}", self.kind),
            (Some(r), None) => write!(f, "row {r}: {}", self.kind),
            (None, Some(p)) => write!(f, "point {p}: {}", self.kind),
            (None, None) => write!(f, "{}", self.kind),
        }
    }
}

/// Every problem with a coordinate list (never empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, thiserror::Error)]
pub struct GeoErrors {
    /// The problems, in row order, list-level problems last.
    pub errors: Vec<GeoError>,
}

impl fmt::Display for GeoErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the coordinate list", self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// A row split into its label and two numbers (as text).
struct RawRow<'a> {
    /// Whether values were given as `key=value`.
    keyed: bool,
    label: Option<String>,
    first: (&'static str, &'a str),
    second: (&'static str, &'a str),
}

fn is_separator(c: char) -> bool {
    matches!(c, ',' | '，' | ';' | '；' | '、') || c.is_whitespace()
}

/// Splits a row into tokens, turning `key = value` / `key：value` pairs into `(Some(key), value)`.
fn tokens(row: &str) -> Vec<(Option<String>, &str)> {
    let mut out: Vec<(Option<String>, &str)> = Vec::new();
    let mut pending_key: Option<String> = None;
    for piece in row.split(is_separator).filter(|p| !p.is_empty()) {
        let mut rest = piece;
        while let Some(pos) = rest.find(['=', ':', '：']) {
            let (key, after) = rest.split_at(pos);
            let sep_len = after.chars().next().map_or(1, char::len_utf8);
            rest = &after[sep_len..];
            if !key.is_empty() {
                if let Some(k) = pending_key.take() {
                    out.push((Some(k), ""));
                }
                pending_key = Some(key.to_owned());
            } else if pending_key.is_none() {
                // "X =" written with a space: the key is the previous bare token.
                if let Some((None, prev)) = out.last() {
                    pending_key = Some((*prev).to_owned());
                    out.pop();
                }
            }
        }
        if rest.is_empty() {
            continue;
        }
        out.push((pending_key.take(), rest));
    }
    if let Some(k) = pending_key {
        out.push((Some(k), ""));
    }
    out
}

fn key_role(key: &str, format: CoordinateFormat) -> Option<&'static str> {
    let k = key.trim().to_lowercase();
    match format {
        CoordinateFormat::GaussKruger { .. } => match k.as_str() {
            "x" => Some("X"),
            "y" => Some("Y"),
            _ => None,
        },
        CoordinateFormat::LatLon { .. } => match k.as_str() {
            "lat" | "latitude" | "b" | "纬度" => Some("lat"),
            "lon" | "lng" | "long" | "longitude" | "l" | "经度" => Some("lon"),
            _ => None,
        },
    }
}

fn split_row(row: &str, format: CoordinateFormat) -> Result<RawRow<'_>, GeoErrorKind> {
    let toks = tokens(row);
    let names = match format {
        CoordinateFormat::GaussKruger { .. } => ("X", "Y"),
        CoordinateFormat::LatLon { .. } => ("lat", "lon"),
    };
    let shape = |detail: String| GeoErrorKind::RowShape { detail };
    if toks.iter().any(|(k, _)| k.is_some()) {
        let mut label = None;
        let (mut first, mut second) = (None, None);
        for (i, (key, value)) in toks.iter().enumerate() {
            match key {
                None if i == 0 => label = Some((*value).to_owned()),
                None => return Err(shape(format!("unexpected {value:?} after a key"))),
                Some(k) => match key_role(k, format) {
                    Some(r) if r == names.0 && first.is_none() => first = Some(*value),
                    Some(r) if r == names.1 && second.is_none() => second = Some(*value),
                    Some(r) => return Err(shape(format!("{r} given twice"))),
                    None => {
                        // A label written as `点号=1` / `point: 1`.
                        if i == 0 {
                            label = Some((*value).to_owned());
                        } else {
                            return Err(shape(format!("unknown key {k:?}")));
                        }
                    }
                },
            }
        }
        return match (first, second) {
            (Some(a), Some(b)) => Ok(RawRow {
                keyed: true,
                label,
                first: (names.0, a),
                second: (names.1, b),
            }),
            _ => Err(shape(format!("expected both {} and {}", names.0, names.1))),
        };
    }
    let values: Vec<&str> = toks.iter().map(|(_, v)| *v).collect();
    match values.as_slice() {
        [a, b] => Ok(RawRow {
            keyed: false,
            label: None,
            first: (names.0, a),
            second: (names.1, b),
        }),
        [l, a, b] => Ok(RawRow {
            keyed: false,
            label: Some((*l).to_owned()),
            first: (names.0, a),
            second: (names.1, b),
        }),
        _ => Err(shape(format!(
            "expected `[point], {}, {}` but found {} value(s)",
            names.0,
            names.1,
            values.len()
        ))),
    }
}

/// Parses a coordinate as a plain decimal (no exponent, no thousands separators, no units).
fn number(field: &'static str, text: &str) -> Result<f64, GeoErrorKind> {
    let bad = || GeoErrorKind::NonNumeric {
        field: field.to_owned(),
        text: text.to_owned(),
    };
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !(digits(int) && digits(frac)) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// A row before zone resolution.
struct ReadRow {
    row: usize,
    label: Option<String>,
    a: f64,
    b: f64,
}

/// Distance within which a final row is taken to be an (attempted) closing repeat of the first.
const CLOSURE_PROXIMITY_M: f64 = 1.0;

/// Parses a licence's corner-point list into a validated boundary.
///
/// # Rows
/// One point per line; blank lines and lines starting with `#` are skipped, and so are header
/// lines (no digit, no `=`) before the first point. Values may be separated by commas (`,` `，`),
/// semicolons, `、`, spaces or tabs. Accepted shapes, for Gauss-Krüger input:
/// `3145678.12, 38512345.67` · `1, 3145678.12, 38512345.67` · `J1 X=3145678.12 Y=38512345.67` ·
/// `X：3145678.12，Y：38512345.67`; for latitude/longitude input the same with `lat`, `lon` (or
/// `纬度`, `经度`), latitude first. Numbers are plain decimals: no degrees-minutes-seconds, no
/// exponents.
///
/// # Closure rule
/// Licences list corners without repeating the first, so the ring is closed **implicitly**. An
/// explicit closing repeat is accepted when it is *exactly* the first point (same numbers) and
/// dropped. A last row that looks like a closing repeat — the same label as the first row, or
/// within 1 m of the first point — but is not exactly equal is an error
/// ([`GeoErrorKind::NotClosed`]): it is a typo in one of the two. A ring whose edges cross or
/// touch is an error too ([`GeoErrorKind::SelfIntersection`]), as is any other repeated point.
///
/// # Zones
/// A Y of 1 000 000 m or more carries its zone as prefix. All rows must agree: with the declared
/// zone if any, else with each other; a list mixing prefixed and unprefixed Y is refused. Each
/// point must lie within 1.5° + [`ZONE_EDGE_TOLERANCE_DEG`] of the zone's central meridian, and
/// its easting (without prefix) within 100–900 km.
pub fn parse_boundary(text: &str, format: CoordinateFormat) -> Result<Boundary, GeoErrors> {
    let mut errors = Vec::new();
    let mut rows: Vec<ReadRow> = Vec::new();
    let mut positional_labelled: Option<bool> = None;
    for (i, line) in text.lines().enumerate() {
        let row = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let point = rows.len() + 1;
        let is_header =
            !trimmed.chars().any(|c| c.is_ascii_digit()) && !trimmed.contains(['=', ':', '：']);
        if is_header && rows.is_empty() && errors.is_empty() {
            continue;
        }
        let split = split_row(trimmed, format).and_then(|raw| {
            // Positional rows must all have the shape of the first one: a missing value in a
            // labelled list would otherwise read the label as X.
            if raw.keyed {
                return Ok(raw);
            }
            let labelled = raw.label.is_some();
            match positional_labelled {
                Some(expected) if expected != labelled => Err(GeoErrorKind::RowShape {
                    detail: format!(
                        "{} values, but the list's rows have {}",
                        if labelled { 3 } else { 2 },
                        if expected { 3 } else { 2 }
                    ),
                }),
                _ => {
                    positional_labelled = Some(labelled);
                    Ok(raw)
                }
            }
        });
        let raw = match split {
            Ok(raw) => raw,
            Err(kind) => {
                errors.push(GeoError {
                    row: Some(row),
                    point: Some(point),
                    kind,
                });
                // Keep numbering points so later messages match the licence's order.
                rows.push(ReadRow {
                    row,
                    label: None,
                    a: f64::NAN,
                    b: f64::NAN,
                });
                continue;
            }
        };
        let a = number(raw.first.0, raw.first.1);
        let b = number(raw.second.0, raw.second.1);
        for r in [&a, &b] {
            if let Err(kind) = r {
                errors.push(GeoError {
                    row: Some(row),
                    point: Some(point),
                    kind: kind.clone(),
                });
            }
        }
        rows.push(ReadRow {
            row,
            label: raw.label,
            a: a.unwrap_or(f64::NAN),
            b: b.unwrap_or(f64::NAN),
        });
    }

    let (datum, zone) = match format {
        CoordinateFormat::GaussKruger { zone } => (Datum::Cgcs2000, zone),
        CoordinateFormat::LatLon { datum } => (datum, None),
    };
    let mut corners: Vec<Option<Corner>> = Vec::with_capacity(rows.len());
    let mut list_zone = zone;
    match format {
        CoordinateFormat::GaussKruger { zone: declared } => {
            let projected: Vec<Option<GaussKrugerPoint>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    if r.a.is_nan() || r.b.is_nan() {
                        return None;
                    }
                    match GaussKrugerPoint::from_licence(r.a, r.b) {
                        Ok(p) => Some(p),
                        Err(kind) => {
                            errors.push(GeoError {
                                row: Some(r.row),
                                point: Some(i + 1),
                                kind,
                            });
                            None
                        }
                    }
                })
                .collect();
            let first_prefixed = projected.iter().flatten().find_map(|p| p.zone);
            let any_unprefixed = projected.iter().flatten().any(|p| p.zone.is_none());
            list_zone = declared.or(first_prefixed);
            if list_zone.is_none() && projected.iter().flatten().next().is_some() {
                errors.push(GeoError {
                    row: None,
                    point: None,
                    kind: GeoErrorKind::NoZone,
                });
            }
            for (i, (r, p)) in rows.iter().zip(&projected).enumerate() {
                let err = |kind| GeoError {
                    row: Some(r.row),
                    point: Some(i + 1),
                    kind,
                };
                let Some(p) = p else {
                    corners.push(None);
                    continue;
                };
                if let (Some(found), Some(expected)) = (p.zone, list_zone)
                    && found != expected
                {
                    errors.push(err(GeoErrorKind::ZoneMismatch {
                        found: found.number(),
                        expected: expected.number(),
                    }));
                    corners.push(None);
                    continue;
                }
                if first_prefixed.is_some() && any_unprefixed && p.zone.is_none() {
                    errors.push(err(GeoErrorKind::MixedPrefix));
                    corners.push(None);
                    continue;
                }
                if !(100_000.0..=900_000.0).contains(&p.y_east) {
                    errors.push(err(GeoErrorKind::ImplausibleEasting { y: r.b }));
                    corners.push(None);
                    continue;
                }
                let Some(z) = list_zone else {
                    corners.push(None);
                    continue;
                };
                let (lat, lon) = gk_inverse(p.x_north, p.y_east, z.central_meridian());
                if (lon - z.central_meridian()).abs() > 1.5 + ZONE_EDGE_TOLERANCE_DEG {
                    errors.push(err(GeoErrorKind::OutsideZone {
                        zone: z.number(),
                        lon,
                    }));
                    corners.push(None);
                    continue;
                }
                corners.push(Some(Corner {
                    row: r.row,
                    label: r.label.clone(),
                    projected: Some(GaussKrugerPoint {
                        zone: Some(z),
                        ..*p
                    }),
                    position: LatLon { lat, lon },
                }));
            }
        }
        CoordinateFormat::LatLon { .. } => {
            for (i, r) in rows.iter().enumerate() {
                if r.a.is_nan() || r.b.is_nan() {
                    corners.push(None);
                    continue;
                }
                if !((-90.0..=90.0).contains(&r.a) && (-180.0..=180.0).contains(&r.b)) {
                    errors.push(GeoError {
                        row: Some(r.row),
                        point: Some(i + 1),
                        kind: GeoErrorKind::LatLonOutOfRange { lat: r.a, lon: r.b },
                    });
                    corners.push(None);
                    continue;
                }
                corners.push(Some(Corner {
                    row: r.row,
                    label: r.label.clone(),
                    projected: None,
                    position: LatLon { lat: r.a, lon: r.b },
                }));
            }
        }
    }
    if !errors.is_empty() {
        // Row order, list-level problems last (the sort is stable).
        errors.sort_by_key(|e| e.row.unwrap_or(usize::MAX));
        return Err(GeoErrors { errors });
    }
    let mut corners: Vec<Corner> = corners.into_iter().flatten().collect();
    let exact = |a: &Corner, b: &Corner| match (a.projected, b.projected) {
        (Some(p), Some(q)) => p.x_north == q.x_north && p.y_east == q.y_east,
        _ => a.position == b.position,
    };

    // Closure: an explicit exact repeat of the first point is dropped; a near-repeat is an error.
    if corners.len() >= 2 {
        let first = &corners[0];
        let last = &corners[corners.len() - 1];
        let n = corners.len();
        if exact(first, last) {
            corners.pop();
        } else {
            let gap_m = ground_distance(first, last);
            let same_label = first.label.is_some() && first.label == last.label;
            if same_label || gap_m <= CLOSURE_PROXIMITY_M {
                errors.push(GeoError {
                    row: Some(last.row),
                    point: Some(n),
                    kind: GeoErrorKind::NotClosed { gap_m },
                });
            }
        }
    }
    // Repeated points.
    let mut distinct = 0;
    for i in 0..corners.len() {
        match (0..i).find(|&j| exact(&corners[j], &corners[i])) {
            Some(j) => errors.push(GeoError {
                row: Some(corners[i].row),
                point: Some(i + 1),
                kind: GeoErrorKind::DuplicatePoint { same_as: j + 1 },
            }),
            None => distinct += 1,
        }
    }
    if distinct < 3 {
        errors.push(GeoError {
            row: None,
            point: None,
            kind: GeoErrorKind::TooFewPoints { distinct },
        });
    }
    if !errors.is_empty() {
        return Err(GeoErrors { errors });
    }

    let polygon = GeoPolygon {
        datum,
        vertices: corners.iter().map(|c| c.position).collect(),
    };
    // Self-intersection on the plane: the licence's own projection, or a local one for lat/lon.
    let plane: Vec<(f64, f64)> = match list_zone {
        Some(_) => corners
            .iter()
            .filter_map(|c| c.projected.map(|p| (p.x_north, p.y_east)))
            .collect(),
        None => {
            let cm =
                polygon.vertices.iter().map(|v| v.lon).sum::<f64>() / polygon.vertices.len() as f64;
            polygon
                .vertices
                .iter()
                .map(|v| gk_forward(v.lat, v.lon, cm))
                .collect()
        }
    };
    let n = plane.len();
    for i in 0..n {
        for j in (i + 1)..n {
            // Adjacent edges share a vertex by construction; skip them.
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue;
            }
            if segments_intersect(plane[i], plane[(i + 1) % n], plane[j], plane[(j + 1) % n]) {
                errors.push(GeoError {
                    row: Some(corners[j].row),
                    point: Some(j + 1),
                    kind: GeoErrorKind::SelfIntersection {
                        edge_a: i + 1,
                        edge_b: j + 1,
                    },
                });
            }
        }
    }
    if errors.is_empty() {
        // Shoelace area on the same plane (metres): collinear points enclose none.
        let twice: f64 = (0..n)
            .map(|i| {
                let (a, b) = (plane[i], plane[(i + 1) % n]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        let area_m2 = (twice / 2.0).abs();
        if area_m2 < MIN_AREA_M2 {
            errors.push(GeoError {
                row: None,
                point: None,
                kind: GeoErrorKind::Degenerate { area_m2 },
            });
        }
    }
    if !errors.is_empty() {
        return Err(GeoErrors { errors });
    }
    Ok(Boundary {
        polygon,
        corners,
        zone: list_zone,
    })
}

/// Ground distance between two corners in metres (planar; they are close to each other).
fn ground_distance(a: &Corner, b: &Corner) -> f64 {
    if let (Some(p), Some(q)) = (a.projected, b.projected) {
        return ((p.x_north - q.x_north).powi(2) + (p.y_east - q.y_east).powi(2)).sqrt();
    }
    let cm = (a.position.lon + b.position.lon) / 2.0;
    let p = gk_forward(a.position.lat, a.position.lon, cm);
    let q = gk_forward(b.position.lat, b.position.lon, cm);
    ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt()
}

/// Metres per degree of latitude/longitude at `lat` on CGCS2000 (meridional and parallel radii),
/// to express angular differences as ground distances in tests and reports.
pub fn metres_per_degree(lat: f64) -> (f64, f64) {
    let Ellipsoid { a, f } = CGCS2000;
    let e2 = f * (2.0 - f);
    let phi = lat.to_radians();
    let w = (1.0 - e2 * phi.sin().powi(2)).sqrt();
    let m = a * (1.0 - e2) / (w * w * w);
    let n = a / w;
    (m * PI / 180.0, n * phi.cos() * PI / 180.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GK: CoordinateFormat = CoordinateFormat::GaussKruger { zone: None };

    fn zone38() -> CoordinateFormat {
        CoordinateFormat::GaussKruger {
            zone: Zone3::new(38),
        }
    }

    /// A ~200 m square near Shanggao in zone 38 (prefixed Y).
    const SQUARE: &str = "点号 X Y\n\
        1, 3124600.00, 38579600.00\n\
        2, 3124600.00, 38579800.00\n\
        3, 3124800.00, 38579800.00\n\
        4, 3124800.00, 38579600.00\n";

    fn kinds(e: &GeoErrors) -> Vec<(Option<usize>, Option<usize>, GeoErrorKind)> {
        e.errors
            .iter()
            .map(|e| (e.row, e.point, e.kind.clone()))
            .collect()
    }

    #[test]
    fn forward_inverse_round_trip_across_the_zone() {
        for lat in [24.5, 26.0, 28.2345, 30.0] {
            for dlon in [-1.55, -1.0, -0.3, 0.0, 0.7, 1.5] {
                let (x, y) = gk_forward(lat, 114.0 + dlon, 114.0);
                let (lat2, lon2) = gk_inverse(x, y, 114.0);
                let (my, mx) = metres_per_degree(lat);
                assert!(((lat2 - lat) * my).abs() < 1e-6, "{lat} {dlon}");
                assert!(((lon2 - 114.0 - dlon) * mx).abs() < 1e-6, "{lat} {dlon}");
            }
        }
    }

    #[test]
    fn central_meridian_maps_to_false_easting_and_meridian_arc() {
        let (x, y) = gk_forward(0.0, 117.0, 117.0);
        assert!(x.abs() < 1e-9 && (y - FALSE_EASTING).abs() < 1e-9);
        // Quarter meridian of GRS80/CGCS2000: 10 001 965.729 m.
        let (x, _) = gk_forward(90.0, 117.0, 117.0);
        assert!((x - 10_001_965.729).abs() < 0.001, "{x}");
    }

    #[test]
    fn zone_prefix_is_split() {
        let p = GaussKrugerPoint::from_licence(3_145_678.12, 38_512_345.67).unwrap();
        assert_eq!(p.zone, Zone3::new(38));
        assert!((p.y_east - 512_345.67).abs() < 1e-6);
        assert!((p.licence_y() - 38_512_345.67).abs() < 1e-6);
        let q = GaussKrugerPoint::from_licence(3_145_678.12, 512_345.67).unwrap();
        assert_eq!(q.zone, None);
        assert_eq!(q.to_geo(None), Err(GeoErrorKind::NoZone));
        assert!(q.to_geo(Zone3::new(38)).is_ok());
        assert_eq!(Zone3::containing(114.8), Zone3::new(38));
        assert_eq!(Zone3::from_central_meridian(117), Zone3::new(39));
        assert_eq!(Zone3::from_central_meridian(118), None);
    }

    #[test]
    fn parses_an_implicitly_closed_square() {
        let b = parse_boundary(SQUARE, GK).unwrap();
        assert_eq!(b.corners.len(), 4);
        assert_eq!(b.zone, Zone3::new(38));
        assert_eq!(b.polygon.datum, Datum::Cgcs2000);
        assert_eq!(b.corners[0].label.as_deref(), Some("1"));
        assert_eq!(b.corners[0].row, 2);
        let v = b.polygon.vertices[0];
        assert!(
            (v.lat - 28.2336).abs() < 0.001 && (v.lon - 114.8115).abs() < 0.001,
            "{v:?}"
        );
    }

    #[test]
    fn accepts_key_value_rows_and_an_exact_explicit_closure() {
        let text = "J1 X=3124600.00 Y=38579600.00\n\
                    J2 X = 3124600.00, Y = 38579800.00\n\
                    J3 X：3124800.00，Y：38579800.00\n\
                    J4\tx=3124800.00\ty=38579600.00\n\
                    J1 X=3124600.00 Y=38579600.00\n";
        let b = parse_boundary(text, GK).unwrap();
        assert_eq!(b.corners.len(), 4);
        assert_eq!(b.corners[3].label.as_deref(), Some("J4"));
    }

    #[test]
    fn unprefixed_rows_use_the_declared_zone() {
        let text = SQUARE.replace("38579", "579");
        let b = parse_boundary(&text, zone38()).unwrap();
        assert_eq!(b.zone, Zone3::new(38));
        let e = parse_boundary(&text, GK).unwrap_err();
        assert_eq!(kinds(&e), vec![(None, None, GeoErrorKind::NoZone)]);
    }

    #[test]
    fn closing_repeat_with_a_typo_is_not_closed() {
        let text = format!("{SQUARE}5, 3124600.40, 38579600.00\n");
        let e = parse_boundary(&text, GK).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert_eq!((e.errors[0].row, e.errors[0].point), (Some(6), Some(5)));
        assert!(
            matches!(e.errors[0].kind, GeoErrorKind::NotClosed { gap_m } if (gap_m - 0.4).abs() < 1e-6)
        );
        // Same label as the first, far away: also a failed closure.
        let text = format!("{SQUARE}1, 3124650.00, 38579600.00\n");
        let e = parse_boundary(&text, GK).unwrap_err();
        assert!(matches!(e.errors[0].kind, GeoErrorKind::NotClosed { .. }));
    }

    #[test]
    fn too_few_points_and_duplicates() {
        let e = parse_boundary("1, 3124600, 38579600\n2, 3124600, 38579800\n", GK).unwrap_err();
        assert_eq!(
            kinds(&e),
            vec![(None, None, GeoErrorKind::TooFewPoints { distinct: 2 })]
        );
        let text = "1, 3124600, 38579600\n2, 3124600, 38579800\n3, 3124600, 38579800\n4, 3124800, 38579800\n";
        let e = parse_boundary(text, GK).unwrap_err();
        assert_eq!(
            kinds(&e),
            vec![(
                Some(3),
                Some(3),
                GeoErrorKind::DuplicatePoint { same_as: 2 }
            )]
        );
        let e = parse_boundary("", GK).unwrap_err();
        assert_eq!(
            kinds(&e),
            vec![(None, None, GeoErrorKind::TooFewPoints { distinct: 0 })]
        );
    }

    #[test]
    fn collinear_points_are_refused_as_degenerate() {
        let text = "1, 3124600, 38579600\n2, 3124700, 38579700\n3, 3124800, 38579800\n";
        let e = parse_boundary(text, GK).unwrap_err();
        assert!(
            matches!(
                kinds(&e).as_slice(),
                [(None, None, GeoErrorKind::Degenerate { area_m2 })] if *area_m2 < 1e-3
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("one line"), "{e}");
    }

    #[test]
    fn self_intersection_is_reported_with_edges() {
        // A bow tie: 1-2-3-4 where edges 1→2 and 3→4 cross.
        let text = "1, 3124600, 38579600\n2, 3124800, 38579800\n3, 3124600, 38579800\n4, 3124800, 38579600\n";
        let e = parse_boundary(text, GK).unwrap_err();
        assert_eq!(
            kinds(&e),
            vec![(
                Some(3),
                Some(3),
                GeoErrorKind::SelfIntersection {
                    edge_a: 1,
                    edge_b: 3
                }
            )]
        );
    }

    #[test]
    fn every_row_error_is_reported_with_row_and_point() {
        let text = "# licence 采矿许可证 C3609232010127130089999\n\
                    1, 3124600.00, 38579600.00\n\
                    2, 3124600.0O, 38579800.00\n\
                    \n\
                    3, 3124800.00, 39579800.00\n\
                    4, 3124800.00, 579600.00\n\
                    5, 3124800.00\n\
                    6, 3124700.00, 38979600.00\n\
                    7, 3124700.00, 38300000.00\n";
        let e = parse_boundary(text, GK).unwrap_err();
        assert_eq!(
            kinds(&e),
            vec![
                (
                    Some(3),
                    Some(2),
                    GeoErrorKind::NonNumeric {
                        field: "X".into(),
                        text: "3124600.0O".into()
                    }
                ),
                (
                    Some(5),
                    Some(3),
                    GeoErrorKind::ZoneMismatch {
                        found: 39,
                        expected: 38
                    }
                ),
                (Some(6), Some(4), GeoErrorKind::MixedPrefix),
                (
                    Some(7),
                    Some(5),
                    GeoErrorKind::RowShape {
                        detail: "2 values, but the list's rows have 3".into()
                    }
                ),
                (
                    Some(8),
                    Some(6),
                    GeoErrorKind::ImplausibleEasting { y: 38_979_600.0 }
                ),
                (
                    Some(9),
                    Some(7),
                    GeoErrorKind::OutsideZone {
                        zone: 38,
                        lon: match &e.errors[5].kind {
                            GeoErrorKind::OutsideZone { lon, .. } => *lon,
                            _ => 0.0,
                        }
                    }
                ),
            ]
        );
        let lon = match &e.errors[5].kind {
            GeoErrorKind::OutsideZone { lon, .. } => *lon,
            _ => 0.0,
        };
        assert!(lon < 112.45, "{lon}");
        assert!(
            e.to_string()
                .contains("row 3 (point 2): X value \"3124600.0O\"")
        );
    }

    #[test]
    fn declared_zone_must_match_prefix() {
        let e = parse_boundary(
            SQUARE,
            CoordinateFormat::GaussKruger {
                zone: Zone3::new(39),
            },
        )
        .unwrap_err();
        assert_eq!(e.errors.len(), 4);
        assert!(e.errors.iter().all(|e| matches!(
            e.kind,
            GeoErrorKind::ZoneMismatch {
                found: 38,
                expected: 39
            }
        )));
    }

    #[test]
    fn lat_lon_lists_with_declared_datum() {
        let fmt = CoordinateFormat::LatLon {
            datum: Datum::Wgs84,
        };
        let b = parse_boundary(
            "28.23, 114.81\n28.23, 114.82\n纬度=28.24 经度=114.82\nlat: 28.24, lon: 114.81\n",
            fmt,
        )
        .unwrap();
        assert_eq!(b.polygon.datum, Datum::Wgs84);
        assert_eq!(b.corners.len(), 4);
        assert!(b.corners[0].projected.is_none());
        let e = parse_boundary("114.81, 28.23\n114.82, 28.23\n114.82, 28.24\n", fmt).unwrap_err();
        assert_eq!(e.errors.len(), 3);
        assert!(matches!(
            e.errors[0].kind,
            GeoErrorKind::LatLonOutOfRange { .. }
        ));
    }

    #[test]
    fn point_in_polygon_and_distance() {
        let b = parse_boundary(SQUARE, GK).unwrap();
        let poly = &b.polygon;
        let at = |x: f64, y: f64| {
            let p = GaussKrugerPoint::from_licence(x, y)
                .unwrap()
                .to_geo(None)
                .unwrap();
            GeoPoint {
                datum: Datum::Wgs84,
                ..p
            }
        };
        assert!(poly.contains(at(3_124_700.0, 38_579_700.0)));
        assert_eq!(poly.distance_m(at(3_124_700.0, 38_579_700.0)), 0.0);
        // On an edge counts as inside.
        assert!(poly.contains(at(3_124_600.0, 38_579_700.0)));
        // 50 m east of the east edge.
        let d = poly.distance_m(at(3_124_700.0, 38_579_850.0));
        assert!((d - 50.0).abs() < 0.01, "{d}");
        // Diagonal from the north-east corner: 30-40-50.
        let d = poly.distance_m(at(3_124_830.0, 38_579_840.0));
        assert!((d - 50.0).abs() < 0.01, "{d}");
        assert!(!poly.contains(at(3_124_830.0, 38_579_840.0)));
    }

    #[test]
    fn concave_polygon_contains() {
        // An L shape: the notch is outside.
        let text = "3124600, 38579600\n3124600, 38579800\n3124700, 38579800\n3124700, 38579700\n3124800, 38579700\n3124800, 38579600\n";
        let b = parse_boundary(text, GK).unwrap();
        let at = |x: f64, y: f64| {
            GaussKrugerPoint::from_licence(x, y)
                .unwrap()
                .to_geo(None)
                .unwrap()
        };
        assert!(b.polygon.contains(at(3_124_650.0, 38_579_750.0)));
        assert!(!b.polygon.contains(at(3_124_750.0, 38_579_750.0)));
        let d = b.polygon.distance_m(at(3_124_750.0, 38_579_750.0));
        assert!((d - 50.0).abs() < 0.01, "{d}");
    }
}
