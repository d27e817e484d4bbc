//! Reading exported PDFs back as a reader sees them, with poppler (Debian's poppler-utils):
//! the text of each page (`pdftotext`), where words are (`pdftotext -bbox`), the page count
//! (`pdfinfo`) and the handwriting drawn (`pdftoppm`).

use std::process::Command;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use tower::ServiceExt;
use uuid::Uuid;

use super::TestApp;

/// GET `path` as raw bytes with the response's headers.
pub async fn get_raw(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

/// Run a poppler tool on `pdf`; returns its standard output.
pub fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile_dir();
    let file = dir.join("record.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new(tool)
        .args(args)
        .arg(&file)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian's poppler-utils) is needed: {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8(out.stdout).unwrap()
}

pub fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yanshou-pdf-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn page_count(pdf: &[u8]) -> usize {
    let dir = tempfile_dir();
    let file = dir.join("record.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new("pdfinfo").arg(&file).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let info = String::from_utf8(out.stdout).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap_or_else(|| panic!("pdfinfo: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// The text of each page without whitespace (`pdftotext` puts a form feed between pages, and
/// spaces where its layout guesses them, not where the PDF has them).
pub fn pages_text(pdf: &[u8]) -> Vec<String> {
    let text = poppler("pdftotext", &["-layout"], pdf);
    let mut pages: Vec<String> = text
        .split('\u{c}')
        .map(|p| p.chars().filter(|c| !c.is_whitespace()).collect())
        .collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

/// Where handwriting is drawn on page `page` (from 1): the pixels of ink (a clear blue: the
/// rest of the form is black and grey) of the page rendered at 72 dpi, so a pixel is a point;
/// their count and bounds `(left, top, right, bottom)` in points.
pub fn ink_on_page(pdf: &[u8], page: usize) -> (usize, (u32, u32, u32, u32)) {
    let dir = tempfile_dir();
    let file = dir.join("record.pdf");
    std::fs::write(&file, pdf).unwrap();
    let n = page.to_string();
    let out = Command::new("pdftoppm")
        .args(["-r", "72", "-f", &n, "-l", &n, "-singlefile"])
        .arg(&file)
        .arg(dir.join("page"))
        .output()
        .expect("pdftoppm (Debian's poppler-utils) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ppm = std::fs::read(dir.join("page.ppm")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    // P6 <width> <height> <max>\n, then RGB bytes.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while ppm[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !ppm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&ppm[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P6");
    let width: usize = fields[1].parse().unwrap();
    let pixels = &ppm[at + 1..];
    let (mut count, mut bounds) = (0, (u32::MAX, u32::MAX, 0, 0));
    for (i, px) in pixels.chunks_exact(3).enumerate() {
        let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
        if b > r + 40 && b > g + 30 {
            count += 1;
            let (x, y) = (
                u32::try_from(i % width).unwrap(),
                u32::try_from(i / width).unwrap(),
            );
            bounds = (
                bounds.0.min(x),
                bounds.1.min(y),
                bounds.2.max(x),
                bounds.3.max(y),
            );
        }
    }
    (count, bounds)
}

/// The boxes `(page, x_min, y_min, x_max, y_max)` in points of the words containing `text`
/// (`pdftotext -bbox`).
pub fn word_boxes(pdf: &[u8], text: &str) -> Vec<(usize, f32, f32, f32, f32)> {
    let html = poppler("pdftotext", &["-bbox"], pdf);
    let mut page = 0;
    let mut out = Vec::new();
    for line in html.lines() {
        if line.trim_start().starts_with("<page") {
            page += 1;
        }
        let Some(word) = line.trim().strip_prefix("<word ") else {
            continue;
        };
        let Some((attrs, rest)) = word.split_once('>') else {
            continue;
        };
        if !rest.contains(text) {
            continue;
        }
        let attr = |k: &str| -> f32 {
            let v = attrs.split(&format!("{k}=\"")).nth(1).unwrap();
            v[..v.find('"').unwrap()].parse().unwrap()
        };
        out.push((page, attr("xMin"), attr("yMin"), attr("xMax"), attr("yMax")));
    }
    out
}
