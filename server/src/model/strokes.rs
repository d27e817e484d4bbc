//! Handwritten strokes (PROTOCOL.md §14): the person's handwritten signature as the pen drew it,
//! a small JSON blob that a section signature or an expert's opinion names by SHA-256 and size.
//!
//! ```json
//! {"format": "yanshou-strokes/1", "width": 600, "height": 240,
//!  "strokes": [{"points": [[12, 80, 0], [14, 82, 16]]}]}
//! ```
//!
//! Vocabulary:
//! - **pad**: the drawing area on the phone, `width` × `height` CSS pixels (integers 1–4096);
//! - **stroke**: one touch of the pen, from down to up, as its **points** `[x, y, t]`: integer
//!   pixels inside the pad (`0 ≤ x ≤ width`, `0 ≤ y ≤ height`, y down) and `t` milliseconds since
//!   the signature's first point, never decreasing through the strokes in order.
//!
//! [`parse_strokes`] is the one check of the format: the upload refuses a blob it rejects (422
//! `strokes_refused`, with the error's text as the reason), and the exports draw only what it
//! accepts. It is strict — an unknown or repeated member, a fraction, a point of two or four
//! numbers are refused — because the blob's exact bytes are what a signature covers: a reader
//! must not have to guess what they mean.

use serde::Deserialize;
use serde_json::Number;

/// The `format` of the strokes this module reads.
pub const STROKES_FORMAT: &str = "yanshou-strokes/1";
/// The media type of a strokes blob in an upload.
pub const STROKES_CONTENT_TYPE: &str = "application/vnd.yanshou.strokes+json";
/// The largest strokes blob, in bytes.
pub const MAX_STROKES_BYTES: usize = 262_144;
/// The largest pad side, in CSS pixels.
pub const MAX_PAD_SIDE: u32 = 4096;
/// The most points a signature may have, over all its strokes.
pub const MAX_POINTS: usize = 20_000;

/// A handwritten signature that passed [`parse_strokes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strokes {
    /// The pad's width in CSS pixels (1–4096).
    pub width: u32,
    /// The pad's height in CSS pixels (1–4096).
    pub height: u32,
    /// At least one stroke, each with at least one point.
    pub strokes: Vec<Stroke>,
}

/// One touch of the pen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stroke {
    pub points: Vec<StrokePoint>,
}

/// A point of a stroke: pixels from the pad's top left corner, and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrokePoint {
    pub x: u32,
    pub y: u32,
    /// Milliseconds since the signature's first point.
    pub t: u64,
}

impl Strokes {
    /// The number of points over all strokes.
    pub fn point_count(&self) -> usize {
        self.strokes.iter().map(|s| s.points.len()).sum()
    }

    /// The smallest rectangle holding every point: `(min_x, min_y, max_x, max_y)` in pad
    /// pixels (a single dot gives a rectangle of no area).
    pub fn ink_bounds(&self) -> (u32, u32, u32, u32) {
        let points = self.strokes.iter().flat_map(|s| &s.points);
        points.fold((u32::MAX, u32::MAX, 0, 0), |(x0, y0, x1, y1), p| {
            (x0.min(p.x), y0.min(p.y), x1.max(p.x), y1.max(p.y))
        })
    }
}

/// Why a strokes blob is refused; its text is the reason an upload gives back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrokesError {
    #[error("the strokes blob is {size} bytes, more than the {MAX_STROKES_BYTES} allowed")]
    TooLarge { size: usize },
    #[error("not JSON of the strokes format: {0}")]
    Malformed(String),
    #[error("format is {found}, not \"{STROKES_FORMAT}\"")]
    Format { found: String },
    #[error("{side} is {value}, not an integer from 1 to {MAX_PAD_SIDE}")]
    PadSize { side: &'static str, value: String },
    #[error("a signature needs at least one stroke")]
    NoStrokes,
    #[error("strokes[{stroke}] has no points")]
    EmptyStroke { stroke: usize },
    #[error("{points} points, more than the {MAX_POINTS} allowed")]
    TooManyPoints { points: usize },
    #[error("strokes[{stroke}].points[{point}] is not [x, y, t] of three integers ≥ 0")]
    PointShape { stroke: usize, point: usize },
    #[error(
        "strokes[{stroke}].points[{point}] at ({x}, {y}) is outside the {width} × {height} pad"
    )]
    Outside {
        stroke: usize,
        point: usize,
        x: u64,
        y: u64,
        width: u32,
        height: u32,
    },
    #[error(
        "strokes[{stroke}].points[{point}] has t = {t}, earlier than the point before it \
         ({previous}): t never decreases through the strokes"
    )]
    TimeGoesBack {
        stroke: usize,
        point: usize,
        t: u64,
        previous: u64,
    },
}

/// Only `format`, read first: a blob of another format is refused for that, whatever else it
/// has.
#[derive(Deserialize)]
struct Head {
    format: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    /// Checked through [`Head`].
    #[serde(rename = "format")]
    _format: serde::de::IgnoredAny,
    width: Number,
    height: Number,
    strokes: Vec<WireStroke>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireStroke {
    points: Vec<Vec<Number>>,
}

/// Read and check a strokes blob (PROTOCOL.md §14): at most [`MAX_STROKES_BYTES`], format
/// [`STROKES_FORMAT`], a pad of 1–[`MAX_PAD_SIDE`] pixels each way, at least one stroke, each
/// with at least one point, at most [`MAX_POINTS`] points, every point three integers inside
/// the pad, times never decreasing.
pub fn parse_strokes(bytes: &[u8]) -> Result<Strokes, StrokesError> {
    if bytes.len() > MAX_STROKES_BYTES {
        return Err(StrokesError::TooLarge { size: bytes.len() });
    }
    let malformed = |e: &dyn std::fmt::Display| StrokesError::Malformed(e.to_string());
    let head: Head = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    match head.format {
        Some(serde_json::Value::String(f)) if f == STROKES_FORMAT => {}
        Some(other) => {
            return Err(StrokesError::Format {
                found: other.to_string(),
            });
        }
        None => {
            return Err(StrokesError::Format {
                found: "missing".to_owned(),
            });
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let wire: Wire = serde_path_to_error::deserialize(&mut de).map_err(|e| malformed(&e))?;
    let side = |side: &'static str, n: &Number| {
        n.as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| (1..=MAX_PAD_SIDE).contains(v))
            .ok_or_else(|| StrokesError::PadSize {
                side,
                value: n.to_string(),
            })
    };
    let width = side("width", &wire.width)?;
    let height = side("height", &wire.height)?;
    if wire.strokes.is_empty() {
        return Err(StrokesError::NoStrokes);
    }
    if let Some(stroke) = wire.strokes.iter().position(|s| s.points.is_empty()) {
        return Err(StrokesError::EmptyStroke { stroke });
    }
    let points: usize = wire.strokes.iter().map(|s| s.points.len()).sum();
    if points > MAX_POINTS {
        return Err(StrokesError::TooManyPoints { points });
    }
    let mut previous = 0;
    let mut strokes = Vec::with_capacity(wire.strokes.len());
    for (stroke, s) in wire.strokes.iter().enumerate() {
        let mut out = Vec::with_capacity(s.points.len());
        for (point, p) in s.points.iter().enumerate() {
            let [x, y, t] = p.as_slice() else {
                return Err(StrokesError::PointShape { stroke, point });
            };
            let (Some(x), Some(y), Some(t)) = (x.as_u64(), y.as_u64(), t.as_u64()) else {
                return Err(StrokesError::PointShape { stroke, point });
            };
            let (Ok(px), Ok(py)) = (u32::try_from(x), u32::try_from(y)) else {
                return Err(StrokesError::Outside {
                    stroke,
                    point,
                    x,
                    y,
                    width,
                    height,
                });
            };
            if px > width || py > height {
                return Err(StrokesError::Outside {
                    stroke,
                    point,
                    x,
                    y,
                    width,
                    height,
                });
            }
            if t < previous {
                return Err(StrokesError::TimeGoesBack {
                    stroke,
                    point,
                    t,
                    previous,
                });
            }
            previous = t;
            out.push(StrokePoint { x: px, y: py, t });
        }
        strokes.push(Stroke { points: out });
    }
    Ok(Strokes {
        width,
        height,
        strokes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Strokes, StrokesError> {
        parse_strokes(v.to_string().as_bytes())
    }

    fn signature(strokes: serde_json::Value) -> serde_json::Value {
        json!({"format": STROKES_FORMAT, "width": 600, "height": 240, "strokes": strokes})
    }

    #[test]
    fn a_signature_of_two_strokes_is_read_point_by_point() {
        let s = parse(signature(json!([
            {"points": [[12, 80, 0], [14, 82, 16]]},
            {"points": [[600, 240, 16]]}
        ])))
        .unwrap();
        assert_eq!((s.width, s.height), (600, 240));
        assert_eq!(s.strokes.len(), 2);
        assert_eq!(
            s.strokes[0].points[1],
            StrokePoint {
                x: 14,
                y: 82,
                t: 16
            }
        );
        assert_eq!(s.point_count(), 3);
        assert_eq!(s.ink_bounds(), (12, 80, 600, 240));
    }

    #[test]
    fn points_on_the_pad_edges_and_pads_of_one_and_4096_pixels_are_accepted() {
        for (w, h) in [(1, 1), (4096, 4096), (1, 4096)] {
            let doc = json!({"format": STROKES_FORMAT, "width": w, "height": h,
                             "strokes": [{"points": [[0, 0, 0], [w, h, 5]]}]});
            assert!(parse(doc).is_ok(), "{w} × {h}");
        }
    }

    #[test]
    fn pad_sizes_outside_1_to_4096_or_not_integers_are_refused() {
        for (w, h) in [
            (json!(0), json!(240)),
            (json!(4097), json!(240)),
            (json!(600), json!(-1)),
            (json!(600.5), json!(240)),
            (json!(600), json!("240")),
        ] {
            let doc = json!({"format": STROKES_FORMAT, "width": w, "height": h,
                             "strokes": [{"points": [[0, 0, 0]]}]});
            assert!(
                matches!(
                    parse(doc),
                    Err(StrokesError::PadSize { .. } | StrokesError::Malformed(_))
                ),
                "{w} × {h}"
            );
        }
        let err = parse(json!({"format": STROKES_FORMAT, "width": 4097, "height": 1,
                               "strokes": [{"points": [[0, 0, 0]]}]}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "width is 4097, not an integer from 1 to 4096"
        );
    }

    #[test]
    fn another_or_a_missing_format_is_refused_before_anything_else() {
        let err = parse(json!({"format": "yanshou-strokes/2", "extra": true})).unwrap_err();
        assert_eq!(
            err,
            StrokesError::Format {
                found: "\"yanshou-strokes/2\"".into()
            }
        );
        assert!(matches!(
            parse(json!({"width": 1, "height": 1, "strokes": []})),
            Err(StrokesError::Format { .. })
        ));
        assert!(matches!(
            parse(json!({"format": 1})),
            Err(StrokesError::Format { .. })
        ));
    }

    #[test]
    fn no_strokes_or_an_empty_stroke_is_refused() {
        assert_eq!(parse(signature(json!([]))), Err(StrokesError::NoStrokes));
        assert_eq!(
            parse(signature(json!([{"points": [[1, 1, 0]]}, {"points": []}]))),
            Err(StrokesError::EmptyStroke { stroke: 1 })
        );
    }

    #[test]
    fn twenty_thousand_points_are_accepted_and_one_more_is_refused() {
        // Small numbers: 20,000 points of three-digit pixels and five-digit times would not fit
        // in the byte limit.
        let points = |n: usize| {
            let stroke: Vec<serde_json::Value> =
                (0..n).map(|i| json!([i % 10, 1, i / 100])).collect();
            signature(json!([{ "points": stroke }]))
        };
        assert_eq!(parse(points(MAX_POINTS)).unwrap().point_count(), MAX_POINTS);
        assert_eq!(
            parse(points(MAX_POINTS + 1)),
            Err(StrokesError::TooManyPoints {
                points: MAX_POINTS + 1
            })
        );
    }

    #[test]
    fn points_that_are_not_three_integers_are_refused() {
        for point in [
            json!([1, 2]),
            json!([1, 2, 3, 4]),
            json!([1.5, 2, 3]),
            json!([1, 2.0, 3]),
            json!([1, 2, -3]),
            json!([-1, 2, 3]),
            json!([1, 2, 1e3]),
        ] {
            let err = parse(signature(json!([{"points": [[0, 0, 0], point]}]))).unwrap_err();
            assert!(
                matches!(
                    err,
                    StrokesError::PointShape {
                        stroke: 0,
                        point: 1
                    }
                ),
                "{point}: {err}"
            );
        }
        let err = parse(signature(json!([{"points": [[0, "0", 0]]}]))).unwrap_err();
        assert!(
            matches!(&err, StrokesError::Malformed(m) if m.contains("strokes[0].points[0]")),
            "{err}"
        );
    }

    #[test]
    fn points_outside_the_pad_are_refused() {
        for point in [
            json!([601, 0, 0]),
            json!([0, 241, 0]),
            json!([5_000_000_000_u64, 0, 0]),
        ] {
            let err = parse(signature(json!([{"points": [point]}]))).unwrap_err();
            assert!(matches!(err, StrokesError::Outside { .. }), "{err}");
        }
        assert_eq!(
            parse(signature(json!([{"points": [[601, 3, 0]]}])))
                .unwrap_err()
                .to_string(),
            "strokes[0].points[0] at (601, 3) is outside the 600 × 240 pad"
        );
    }

    #[test]
    fn time_may_stand_still_but_never_goes_back_even_from_one_stroke_to_the_next() {
        assert!(parse(signature(json!([{"points": [[0, 0, 5], [1, 1, 5]]}]))).is_ok());
        assert_eq!(
            parse(signature(json!([{"points": [[0, 0, 0], [1, 1, 9]]},
                                    {"points": [[2, 2, 8]]}]))),
            Err(StrokesError::TimeGoesBack {
                stroke: 1,
                point: 0,
                t: 8,
                previous: 9
            })
        );
    }

    #[test]
    fn unknown_and_repeated_members_are_refused() {
        let extra = json!({"format": STROKES_FORMAT, "width": 10, "height": 10, "pen": "blue",
                           "strokes": [{"points": [[0, 0, 0]]}]});
        assert!(matches!(parse(extra), Err(StrokesError::Malformed(_))));
        let in_stroke = signature(json!([{"points": [[0, 0, 0]], "pressure": []}]));
        assert!(matches!(parse(in_stroke), Err(StrokesError::Malformed(_))));
        let repeated = format!(
            r#"{{"format":"{STROKES_FORMAT}","width":10,"width":20,"height":10,
               "strokes":[{{"points":[[0,0,0]]}}]}}"#
        );
        assert!(matches!(
            parse_strokes(repeated.as_bytes()),
            Err(StrokesError::Malformed(_))
        ));
        assert!(matches!(
            parse_strokes(b"not json"),
            Err(StrokesError::Malformed(_))
        ));
    }

    #[test]
    fn a_blob_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
        let mut doc = signature(json!([{"points": [[0, 0, 0]]}]))
            .to_string()
            .into_bytes();
        doc.resize(MAX_STROKES_BYTES, b' ');
        assert!(parse_strokes(&doc).is_ok());
        doc.push(b' ');
        assert_eq!(
            parse_strokes(&doc),
            Err(StrokesError::TooLarge {
                size: MAX_STROKES_BYTES + 1
            })
        );
    }
}
