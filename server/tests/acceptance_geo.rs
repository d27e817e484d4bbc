//! Gauss-Krüger ↔ latitude/longitude against an independent reference.
//!
//! `fixtures/gauss_kruger.json` was produced once with pyproj/PROJ (see the file's header and
//! `fixtures/gauss_kruger.py`); pyproj is not needed to run this test. Agreement is required to
//! 0.1 m on the ground in both directions, for points across zones 38–40 including zone edges,
//! and through the licence-text parser with and without the zone prefix.
#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use yanshou_server::rules::geo::{
    CoordinateFormat, Datum, GaussKrugerPoint, GeoPoint, Zone3, gk_forward, gk_inverse,
    metres_per_degree, parse_boundary,
};

#[derive(Deserialize)]
struct Fixture {
    generated_by: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    label: String,
    zone: u32,
    central_meridian: u32,
    x_north: String,
    y_east: String,
    y_east_prefixed: String,
    lat: String,
    lon: String,
}

const TOLERANCE_M: f64 = 0.1;

fn fixture() -> Fixture {
    let text = include_str!("fixtures/gauss_kruger.json");
    serde_json::from_str(text).unwrap()
}

fn f(s: &str) -> f64 {
    s.parse().unwrap()
}

/// Ground distance of an angular difference, in metres.
fn ground_error(lat: f64, dlat: f64, dlon: f64) -> f64 {
    let (m_lat, m_lon) = metres_per_degree(lat);
    ((dlat * m_lat).powi(2) + (dlon * m_lon).powi(2)).sqrt()
}

#[test]
fn fixture_covers_zones_38_to_40_and_their_edges() {
    let fx = fixture();
    assert!(fx.generated_by.contains("PROJ"));
    assert!(fx.cases.len() >= 20);
    for zone in [38, 39, 40] {
        assert!(fx.cases.iter().any(|c| c.zone == zone));
    }
    let edge = fx
        .cases
        .iter()
        .filter(|c| (f(&c.lon) - f64::from(c.central_meridian)).abs() > 1.49)
        .count();
    assert!(edge >= 6, "{edge} edge cases");
}

#[test]
fn inverse_matches_proj_within_a_decimetre() {
    let mut worst: f64 = 0.0;
    for c in fixture().cases {
        let (lat, lon) = gk_inverse(f(&c.x_north), f(&c.y_east), f64::from(c.central_meridian));
        let err = ground_error(lat, lat - f(&c.lat), lon - f(&c.lon));
        assert!(err < TOLERANCE_M, "{}: {err} m", c.label);
        worst = worst.max(err);
    }
    // The series is far better than the requirement; keep it that way.
    assert!(worst < 0.001, "worst inverse error {worst} m");
}

#[test]
fn forward_matches_proj_within_a_decimetre() {
    let mut worst: f64 = 0.0;
    for c in fixture().cases {
        let zone = Zone3::new(c.zone).unwrap();
        let p = GaussKrugerPoint::from_geo(
            GeoPoint {
                lat: f(&c.lat),
                lon: f(&c.lon),
                datum: Datum::Cgcs2000,
            },
            zone,
        );
        let (x, y) = gk_forward(f(&c.lat), f(&c.lon), zone.central_meridian());
        assert_eq!((x, y), (p.x_north, p.y_east));
        let err = ((x - f(&c.x_north)).powi(2) + (y - f(&c.y_east)).powi(2)).sqrt();
        assert!(err < TOLERANCE_M, "{}: {err} m", c.label);
        assert!((p.licence_y() - f(&c.y_east_prefixed)).abs() < TOLERANCE_M);
        worst = worst.max(err);
    }
    assert!(worst < 0.001, "worst forward error {worst} m");
}

#[test]
fn licence_parser_agrees_with_prefixed_and_declared_zones() {
    for c in fixture().cases {
        let expected = (f(&c.lat), f(&c.lon));
        // A small triangle whose first corner is the fixture point.
        let (x, y) = (f(&c.x_north), f(&c.y_east));
        let sign = if f(&c.lon) > f64::from(c.central_meridian) {
            -1.0
        } else {
            1.0
        };
        let prefix = f64::from(c.zone) * 1_000_000.0;
        let prefixed = format!(
            "1, {}, {}\n2, {x:.2}, {:.2}\n3, {:.2}, {:.2}\n",
            c.x_north,
            c.y_east_prefixed,
            prefix + y + sign * 50.0,
            x + 50.0,
            prefix + y
        );
        let plain = format!(
            "X={} Y={}\nX={x:.2} Y={:.2}\nX={:.2} Y={y:.2}\n",
            c.x_north,
            c.y_east,
            y + sign * 50.0,
            x + 50.0
        );
        for (text, format) in [
            (prefixed, CoordinateFormat::GaussKruger { zone: None }),
            (
                plain,
                CoordinateFormat::GaussKruger {
                    zone: Zone3::from_central_meridian(c.central_meridian),
                },
            ),
        ] {
            let b = parse_boundary(&text, format).unwrap_or_else(|e| panic!("{}: {e}", c.label));
            let v = b.polygon.vertices[0];
            let err = ground_error(v.lat, v.lat - expected.0, v.lon - expected.1);
            assert!(err < TOLERANCE_M, "{}: {err} m", c.label);
            assert_eq!(b.zone, Zone3::new(c.zone));
        }
    }
}

/// Three points on one line enclose no area: refused with a message that says so, in both
/// coordinate forms.
#[test]
fn a_boundary_of_collinear_points_is_refused() {
    use yanshou_server::rules::geo::{CoordinateFormat, Datum, parse_boundary};
    let gk = "1, 3124600, 38579600\n2, 3124700, 38579700\n3, 3124800, 38579800\n";
    let e = parse_boundary(gk, CoordinateFormat::GaussKruger { zone: None })
        .expect_err("collinear Gauss-Krüger points");
    assert!(e.to_string().contains("one line"), "{e}");
    let latlon = "1, 28.20, 114.70\n2, 28.21, 114.70\n3, 28.22, 114.70\n";
    let e = parse_boundary(
        latlon,
        CoordinateFormat::LatLon {
            datum: Datum::Cgcs2000,
        },
    )
    .expect_err("collinear lat/lon points");
    assert!(e.to_string().contains("one line"), "{e}");
}
