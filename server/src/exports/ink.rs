//! Handwritten signatures in the exports: the strokes blobs (PROTOCOL.md §14) a document's
//! signatures name, loaded from the blob store before rendering, and drawn as pen strokes
//! scaled into a signature box.
//!
//! Vocabulary:
//! - **strokes reference**: `{sha256, size}` in a signature's statement;
//! - [`StrokesBlobs`]: the blobs of a document's references, as the blob store holds them,
//!   loaded by [`load`] (async) so the rendering that follows is a pure function of its input;
//! - [`Ink`]: what a signature box shows — the strokes, or why there are none: 〔笔迹未上传〕 (the
//!   server does not hold the blob), 〔笔迹无法读取〕 (it does not pass
//!   [`parse_strokes`](crate::model::strokes::parse_strokes), or its size is not the one
//!   signed). A missing or broken blob never fails the document.

use std::collections::HashMap;

use bytes::Bytes;
use krilla::geom::Rect;

use super::typeset::{CELL, Layout};
use crate::{
    AppState,
    blobs::{BlobError, BlobHash},
    error::Result,
    model::strokes::{MAX_STROKES_BYTES, Strokes, parse_strokes},
};

/// What the blob store holds of a strokes reference.
#[derive(Debug, Clone)]
enum Held {
    Bytes(Bytes),
    /// Held, but larger than a strokes blob may be: not read.
    TooLarge,
}

/// The strokes blobs a document names, by SHA-256 (lowercase hex); a blob the store does not
/// hold is absent.
#[derive(Debug, Clone, Default)]
pub struct StrokesBlobs(HashMap<String, Held>);

impl StrokesBlobs {
    /// Blobs given as they are (tests, benchmarks).
    pub fn from_bytes(blobs: impl IntoIterator<Item = Bytes>) -> Self {
        StrokesBlobs(
            blobs
                .into_iter()
                .map(|b| (BlobHash::of(&b).hex(), Held::Bytes(b)))
                .collect(),
        )
    }
}

/// `(sha256, size)` of a strokes reference, when it has that shape.
fn reference_of(value: &serde_json::Value) -> Option<(BlobHash, i64)> {
    let hash = value.get("sha256")?.as_str()?.parse().ok()?;
    Some((hash, value.get("size")?.as_i64()?))
}

/// Load the blobs of `references` (`{sha256, size}` values; others are skipped) from the
/// blob store. A reference whose signed size is beyond the limit is not looked up.
pub async fn load(state: &AppState, references: &[&serde_json::Value]) -> Result<StrokesBlobs> {
    let mut out = HashMap::new();
    for value in references {
        let Some((hash, size)) = reference_of(value) else {
            continue;
        };
        if usize::try_from(size).map_or(true, |s| s > MAX_STROKES_BYTES)
            || out.contains_key(&hash.hex())
        {
            continue;
        }
        let held = match state.blobs.size(hash).await? {
            None => continue,
            Some(n) if n > MAX_STROKES_BYTES as u64 => Held::TooLarge,
            Some(_) => match state.blobs.get(hash).await {
                Ok(bytes) => Held::Bytes(bytes),
                Err(BlobError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            },
        };
        out.insert(hash.hex(), held);
    }
    Ok(StrokesBlobs(out))
}

/// What a signature box shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Ink {
    Strokes(Strokes),
    /// 〔笔迹未上传〕: the blob is not on the server.
    NotUploaded,
    /// 〔笔迹无法读取〕: the blob (or the reference to it) is not strokes.
    Unreadable,
}

impl Ink {
    /// The ink of the strokes `reference` of a signature.
    pub fn of(blobs: &StrokesBlobs, reference: &serde_json::Value) -> Ink {
        let Some((hash, size)) = reference_of(reference) else {
            return Ink::Unreadable;
        };
        match blobs.0.get(&hash.hex()) {
            None if usize::try_from(size).map_or(true, |s| s > MAX_STROKES_BYTES) => {
                Ink::Unreadable
            }
            None => Ink::NotUploaded,
            Some(Held::TooLarge) => Ink::Unreadable,
            Some(Held::Bytes(bytes)) if i64::try_from(bytes.len()).ok() != Some(size) => {
                Ink::Unreadable
            }
            Some(Held::Bytes(bytes)) => parse_strokes(bytes).map_or(Ink::Unreadable, Ink::Strokes),
        }
    }

    /// The words shown instead of strokes.
    pub fn placeholder(&self) -> Option<&'static str> {
        match self {
            Ink::Strokes(_) => None,
            Ink::NotUploaded => Some("〔笔迹未上传〕"),
            Ink::Unreadable => Some("〔笔迹无法读取〕"),
        }
    }
}

/// The largest enlargement over fitting the whole pad: a small signature is shown larger, a
/// dot does not fill the box.
const MAX_ZOOM: f32 = 2.5;

/// `strokes` in page coordinates, scaled (aspect ratio kept) so that their ink fits `rect`
/// less `inset` on each side, centred; and the pen's width there.
pub fn fit(strokes: &Strokes, rect: Rect, inset: f32) -> (Vec<Vec<(f32, f32)>>, f32) {
    let (x0, y0, x1, y1) = strokes.ink_bounds();
    let (bw, bh) = ((x1 - x0).max(1) as f32, (y1 - y0).max(1) as f32);
    let (w, h) = (
        (rect.width() - 2.0 * inset).max(1.0),
        (rect.height() - 2.0 * inset).max(1.0),
    );
    let whole_pad = (w / strokes.width as f32).min(h / strokes.height as f32);
    let scale = (w / bw).min(h / bh).min(whole_pad * MAX_ZOOM);
    let left = rect.left() + (rect.width() - bw * scale) / 2.0;
    let top = rect.top() + (rect.height() - bh * scale) / 2.0;
    let paths = strokes
        .strokes
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|p| {
                    (
                        left + (p.x - x0) as f32 * scale,
                        top + (p.y - y0) as f32 * scale,
                    )
                })
                .collect()
        })
        .collect();
    // A pen of about 2.5 CSS pixels, kept legible when small and not blotted when large.
    (paths, (2.5 * scale).clamp(0.7, 1.4))
}

/// Draw `ink` in `rect` on the current page: the strokes, or the placeholder centred.
pub(super) fn draw(l: &mut Layout<'_, '_>, rect: Rect, ink: &Ink) {
    match ink {
        Ink::Strokes(strokes) => {
            let (paths, width) = fit(strokes, rect, 2.0);
            l.ink(paths, width);
        }
        other => {
            let text = other.placeholder().unwrap_or_default();
            let w = l.m.width(text, CELL);
            let x = rect.left() + ((rect.width() - w) / 2.0).max(0.0);
            let y = rect.top() + rect.height() / 2.0 + CELL * 0.35;
            l.text(x, y, CELL, text);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blob(v: serde_json::Value) -> Bytes {
        Bytes::from(v.to_string())
    }

    fn naming(b: &Bytes) -> serde_json::Value {
        json!({"sha256": BlobHash::of(b).hex(), "size": b.len()})
    }

    #[test]
    fn held_strokes_are_drawn_and_missing_or_broken_ones_say_why() {
        let good = blob(
            json!({"format": "yanshou-strokes/1", "width": 100, "height": 50,
                               "strokes": [{"points": [[10, 10, 0], [90, 40, 30]]}]}),
        );
        let broken = blob(
            json!({"format": "yanshou-strokes/1", "width": 100, "height": 50,
                                 "strokes": []}),
        );
        let blobs = StrokesBlobs::from_bytes([good.clone(), broken.clone()]);
        assert!(matches!(Ink::of(&blobs, &naming(&good)), Ink::Strokes(_)));
        assert_eq!(Ink::of(&blobs, &naming(&broken)), Ink::Unreadable);
        let elsewhere = Bytes::from_static(b"not here");
        assert_eq!(Ink::of(&blobs, &naming(&elsewhere)), Ink::NotUploaded);
        assert_eq!(Ink::NotUploaded.placeholder(), Some("〔笔迹未上传〕"));
        // The size signed must be the blob's.
        let lying = json!({"sha256": BlobHash::of(&good).hex(), "size": good.len() + 1});
        assert_eq!(Ink::of(&blobs, &lying), Ink::Unreadable);
        for reference in [json!(null), json!({"sha256": "x", "size": 1}), json!("a")] {
            assert_eq!(Ink::of(&blobs, &reference), Ink::Unreadable);
        }
    }

    #[test]
    fn strokes_fit_the_box_keeping_their_aspect_ratio_centred() {
        let strokes = parse_strokes(
            json!({"format": "yanshou-strokes/1", "width": 600, "height": 240,
                   "strokes": [{"points": [[100, 100, 0], [500, 200, 10]]}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let rect = Rect::from_xywh(10.0, 20.0, 120.0, 40.0).unwrap();
        let (paths, width) = fit(&strokes, rect, 0.0);
        let [(ax, ay), (bx, by)] = paths[0][..] else {
            panic!("{paths:?}")
        };
        // 400 × 100 of ink into 120 × 40: width-bound, scale 0.3, 30 high, centred.
        assert!(
            (ax - 10.0).abs() < 1e-3 && (bx - 130.0).abs() < 1e-3,
            "{ax} {bx}"
        );
        assert!(
            (ay - 25.0).abs() < 1e-3 && (by - 55.0).abs() < 1e-3,
            "{ay} {by}"
        );
        assert!((0.7..=1.4).contains(&width));
    }

    #[test]
    fn a_dot_is_not_blown_up_to_the_box() {
        let dot = parse_strokes(
            br#"{"format": "yanshou-strokes/1", "width": 600, "height": 240,
                 "strokes": [{"points": [[300, 120, 0]]}]}"#,
        )
        .unwrap();
        let rect = Rect::from_xywh(0.0, 0.0, 120.0, 40.0).unwrap();
        let (paths, _) = fit(&dot, rect, 0.0);
        let scale = (120.0_f32 / 600.0).min(40.0 / 240.0) * MAX_ZOOM;
        let (x, y) = paths[0][0];
        assert!((x - (60.0 - 0.5 * scale)).abs() < 1e-4, "{x}");
        assert!((y - (20.0 - 0.5 * scale)).abs() < 1e-4, "{y}");
    }
}
