//! The assembled record as a PDF (issue #11 item 5): `GET /api/v1/rounds/{id}/record.pdf`. The
//! pages are read back with poppler's `pdftotext`, `pdfinfo` and `pdftoppm` (Debian's
//! poppler-utils, which `.ci/run` installs), so the tests check the text a reader sees and the
//! handwriting a reader sees drawn, not the file's bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, time::Instant};

use axum::http::{Method, StatusCode, header};
use common::{
    Backend, Phone, TestApp,
    pdf::{get_raw, ink_on_page, page_count, pages_text, word_boxes},
};
use sync_protocol::{EntityId, Value};
use uuid::Uuid;
use yanshou_server::{
    blobs::BlobHash,
    model::Role,
    photos::{exif::build::ExifSpec, sample},
};

/// Inside the square.
const INSIDE: (f64, f64) = (28.2354, 114.8133);
const PHOTOS: &str = "forestry/19.photos";

struct County {
    app: TestApp,
    record: EntityId,
    forestry: Phone,
    /// The county office's token (it sees every record).
    office: String,
}

/// A 注销 mine with a licence boundary, an open round, and a forestry inspector's phone that
/// holds the record (the setup of `api_evidence.rs`).
async fn county(app: TestApp) -> County {
    let (office, record) = app.open_round_on_square_mine("C-PDF-1").await;
    app.user("lin", Role::DepartmentInspector).await;
    let mut forestry = Phone::enroll(&app, "lin").await;
    forestry.sync(&app).await;
    forestry.upload_strokes(&app, &record.0.to_string()).await;
    County {
        app,
        record,
        forestry,
        office,
    }
}

/// A real JPEG with an EXIF position inside the boundary, taken today at 10:00 county time.
fn photo(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let spec = ExifSpec {
        lat: Some(INSIDE.0),
        lon: Some(INSIDE.1),
        accuracy_m: Some(5.0),
        date_time_original: Some(now.format("%Y:%m:%d 10:00:00").to_string()),
        make: Some("Huawei".into()),
        model: Some(format!("P{seed}")),
        ..ExifSpec::default()
    };
    sample::sample_jpeg(width + u32::from(seed), height, Some(&spec), 80)
}

fn position(at: (f64, f64)) -> Value {
    Value::Map(BTreeMap::from([
        ("lat".to_owned(), Value::from(format!("{:.6}", at.0))),
        ("lon".to_owned(), Value::from(format!("{:.6}", at.1))),
        ("accuracy_m".to_owned(), Value::from("8")),
        ("altitude_m".to_owned(), Value::Null),
    ]))
}

/// Attest `count` photos of `width` × `height` on the forestry item, answer and sign the
/// forestry section, and upload the photos; returns their bytes.
async fn photographed_and_signed(
    c: &mut County,
    count: u8,
    width: u32,
    height: u32,
) -> Vec<Vec<u8>> {
    c.forestry.now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
    let photos: Vec<Vec<u8>> = (1..=count).map(|s| photo(width, height, s)).collect();
    for bytes in &photos {
        let element = c.forestry.attest(bytes, "image/jpeg", position(INSIDE));
        c.forestry.add(c.record, PHOTOS, element);
    }
    c.forestry.answer_section(c.record, "forestry");
    c.forestry.sign(c.record, "forestry");
    c.forestry.sync(&c.app).await;
    let token = c.forestry.token.clone();
    for bytes in &photos {
        c.app
            .upload_photo(&token, &c.record.0.to_string(), bytes, "image/jpeg")
            .await;
    }
    photos
}

/// The handwriting beside `label` (`林业签字：`): drawn right of it, within the signature box
/// (40 points high, its rule level with the label), and on no other page of the form (the
/// first `form_pages`).
fn assert_handwriting_beside(pdf: &[u8], label: &str, form_pages: usize) {
    let labels = word_boxes(pdf, label);
    let &[(page, _, _, label_right, label_bottom)] = labels.as_slice() else {
        panic!("{label} is not once in the PDF: {labels:?}");
    };
    let (count, (left, top, right, bottom)) = ink_on_page(pdf, page);
    assert!(count > 150, "only {count} pixels of ink on page {page}");
    let (left, top, right, bottom) = (left as f32, top as f32, right as f32, bottom as f32);
    assert!(
        left >= label_right && right <= label_right + 150.0,
        "ink from x {left} to {right}, the label ends at {label_right}"
    );
    assert!(
        top >= label_bottom - 48.0 && bottom <= label_bottom + 6.0,
        "ink from y {top} to {bottom}, the label's line ends at {label_bottom}"
    );
    assert!(
        right - left > 60.0,
        "the signature is squeezed: {left}..{right}"
    );
    for other in (1..=form_pages).filter(|p| *p != page) {
        assert_eq!(ink_on_page(pdf, other).0, 0, "ink on page {other}");
    }
}

async fn the_pdf_is_the_form_with_one_page_per_photo_and_the_hash_in_every_footer(b: Backend) {
    let mut c = county(TestApp::new(b).await).await;
    let office = c.office.clone();
    let pdf_path = format!("/api/v1/rounds/{}/record.pdf", c.record.0);

    // Before any photo: the form alone.
    let (s, headers, before) = get_raw(&c.app, &pdf_path, &office).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&before));
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("inline; filename="),
        "{disposition}"
    );
    assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");
    assert!(before.starts_with(b"%PDF-"));
    let form_pages = page_count(&before);

    let photos = photographed_and_signed(&mut c, 2, 64, 48).await;
    let (s, record) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}/record", c.record.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{record}");
    let hash = record["content_hash"].as_str().unwrap();
    let mine = record["mine"]["name"].as_str().unwrap();
    assert_eq!(record["photos_awaiting_upload"], 0, "{record}");

    let (s, _, pdf) = get_raw(&c.app, &pdf_path, &office).await;
    assert_eq!(s, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF-"));
    let pages = page_count(&pdf);
    assert_eq!(
        pages,
        form_pages + photos.len(),
        "the form, then one page per photo"
    );

    let text = pages_text(&pdf);
    assert_eq!(text.len(), pages);
    for (n, page) in text.iter().enumerate() {
        assert!(
            page.contains(hash),
            "page {} lacks the content hash:\n{page}",
            n + 1
        );
        let number = format!("第{}页共{pages}页", n + 1);
        assert!(
            page.contains(&number),
            "page {} lacks {number}:\n{page}",
            n + 1
        );
    }
    let all = text.join("\n");
    for expected in [
        &mine.replace(' ', ""),
        "验收表》",
        "矿山名称",
        "采矿许可证号",
        "乡镇（林场）",
        "第1次验收",
        "序号",
        "验收标准",
        "验收结果",
        "林业签字：",
        "签名有效",
        "验收结论：",
        "在矿区范围内",
        "与验收同日",
    ] {
        assert!(all.contains(expected), "no {expected:?} in the PDF:\n{all}");
    }
    // The forestry section's signature line names the signer's section hash, shortened.
    let section_hash = record["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["department"] == "forestry")
        .unwrap()["signature"]["content_hash"]
        .as_str()
        .unwrap();
    assert!(all.contains(&section_hash[..16]), "{all}");
    // …and beside it the signer's handwriting, drawn from the strokes the phone uploaded.
    assert!(!all.contains("笔迹"), "{all}");
    assert_handwriting_beside(&pdf, "林业签字：", form_pages);
    if let Ok(dir) = std::env::var("YANSHOU_PDF_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("signed-record.pdf"), &pdf).unwrap();
    }
    // Each photo has one page (in the record's order, not the upload's), captioned with its
    // hash.
    for bytes in &photos {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        let on = text[form_pages..]
            .iter()
            .filter(|p| p.contains(&sha))
            .count();
        assert_eq!(on, 1, "photo {sha} is on {on} photo pages");
    }

    // The large thumbnails are embedded as they are (JPEG passthrough, no re-encoding).
    for bytes in &photos {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        let (s, _, large) = get_raw(
            &c.app,
            &format!("/api/v1/photos/{sha}/thumb/large"),
            &office,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            pdf.windows(large.len()).any(|w| w == large.as_slice()),
            "the large thumbnail of {sha} is not in the PDF byte for byte"
        );
    }

    // Same visibility as the JSON record: a stranger's round is not found.
    let (s, _, _) = get_raw(
        &c.app,
        &format!("/api/v1/rounds/{}/record.pdf", Uuid::new_v4()),
        &office,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// `words` where the handwriting beside `label` would be: right of it, on its line.
fn assert_said_beside(pdf: &[u8], label: &str, words: &str) {
    let labels = word_boxes(pdf, label);
    let said = word_boxes(pdf, words);
    let (&[(page, _, _, label_right, label_bottom)], &[(on, left, _, _, bottom)]) =
        (labels.as_slice(), said.as_slice())
    else {
        panic!("{label}: {labels:?}, {words}: {said:?}");
    };
    assert_eq!(on, page, "{words} is not on the page of {label}");
    assert!(
        left >= label_right && left <= label_right + 150.0,
        "{words} at x {left}, {label} ends at {label_right}"
    );
    assert!(
        bottom >= label_bottom - 48.0 && bottom <= label_bottom + 6.0,
        "{words} at y {bottom}, {label} at {label_bottom}"
    );
}

/// A signature's strokes blob the server no longer holds (lost with a disk, an old backup
/// restored) or whose bytes are damaged: the PDF is still made, and says so where the
/// handwriting would be.
async fn a_lost_or_damaged_strokes_blob_is_named_on_the_signature_line(b: Backend) {
    let mut c = county(TestApp::new(b).await).await;
    let office = c.office.clone();
    // Strokes of this test alone (others share the test blob directory): a wave, and a
    // stroke of points drawn from a random id.
    let random: Vec<String> = Uuid::new_v4()
        .as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, b)| {
            format!(
                "[{},{},{}]",
                300 + u32::from(b[0]),
                20 + u32::from(b[1] % 200),
                2000 + i
            )
        })
        .collect();
    let wave = String::from_utf8(common::strokes_blob("lost")).unwrap();
    let bytes = wave
        .replacen(
            "]}]}",
            &format!("]}},{{\"points\":[{}]}}]}}", random.join(",")),
            1,
        )
        .into_bytes();
    yanshou_server::model::parse_strokes(&bytes).unwrap();
    c.app
        .upload_photo(
            &c.forestry.token,
            &c.record.0.to_string(),
            &bytes,
            "application/vnd.yanshou.strokes+json",
        )
        .await;
    let hash = BlobHash::of(&bytes);
    c.forestry.strokes = Value::Map(BTreeMap::from([
        ("sha256".to_owned(), Value::from(hash.hex())),
        (
            "size".to_owned(),
            Value::Int(i64::try_from(bytes.len()).unwrap()),
        ),
    ]));
    photographed_and_signed(&mut c, 1, 64, 48).await;
    let pdf_path = format!("/api/v1/rounds/{}/record.pdf", c.record.0);
    let (s, _, pdf) = get_raw(&c.app, &pdf_path, &office).await;
    assert_eq!(s, StatusCode::OK);
    let form_pages = page_count(&pdf) - 1;
    assert_handwriting_beside(&pdf, "林业签字：", form_pages);

    // The local blob store's layout: sha256/ab/cd/<hash>.
    let hex = hash.hex();
    let file =
        c.app
            .state
            .settings
            .blob_dir
            .join(format!("sha256/{}/{}/{hex}", &hex[0..2], &hex[2..4]));
    std::fs::remove_file(&file).unwrap();
    let (s, _, pdf) = get_raw(&c.app, &pdf_path, &office).await;
    assert_eq!(s, StatusCode::OK);
    assert_said_beside(&pdf, "林业签字：", "〔笔迹未上传〕");
    assert!(pages_text(&pdf).join("").contains("签名有效"));
    for page in 1..=form_pages {
        assert_eq!(ink_on_page(&pdf, page).0, 0, "ink on page {page}");
    }

    std::fs::write(&file, vec![b'x'; bytes.len()]).unwrap();
    let (s, _, pdf) = get_raw(&c.app, &pdf_path, &office).await;
    assert_eq!(s, StatusCode::OK);
    assert_said_beside(&pdf, "林业签字：", "〔笔迹无法读取〕");
}

async fn without_a_cjk_font_the_pdf_is_refused_naming_the_font_and_package(b: Backend) {
    let missing = "/nonexistent/fonts/NotoSansCJK-Regular.ttc";
    let app = TestApp::with_settings(b, |s| s.pdf_font_file = Some(missing.into())).await;
    let c = county(app).await;
    let office = c.office.clone();
    let (s, body) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}/record.pdf", c.record.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "font_missing", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for expected in [missing, "fonts-noto-cjk", "CJK", "pdf_font_file"] {
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    // The JSON record does not need a font.
    let (s, _) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}/record", c.record.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

both_backends!(
    the_pdf_is_the_form_with_one_page_per_photo_and_the_hash_in_every_footer,
    a_lost_or_damaged_strokes_blob_is_named_on_the_signature_line,
    without_a_cjk_font_the_pdf_is_refused_naming_the_font_and_package,
);

/// Time per page and file size of a record with several camera-sized photos (their large
/// thumbnails are 1280 px wide). Not a timed assertion: run it and read the numbers, e.g.
/// `cargo test --release -p yanshou-server --test api_record_pdf -- --ignored --nocapture`.
/// `YANSHOU_PDF_OUT=dir` keeps the PDF there (to look at it: `pdftoppm -r 60 -png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn measure_pdf_time_per_page_and_size() {
    let photos = 8;
    let mut c = county(TestApp::new(Backend::Sqlite).await).await;
    let office = c.office.clone();
    photographed_and_signed(&mut c, photos, 1500, 1125).await;
    let record = format!("/api/v1/rounds/{}/record", c.record.0);
    let pdf_path = format!("{record}.pdf");
    let (_, _, pdf) = get_raw(&c.app, &pdf_path, &office).await; // warm: the font is read once
    let runs = 10;
    let started = Instant::now();
    for _ in 0..runs {
        get_raw(&c.app, &record, &office).await;
    }
    let json_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let started = Instant::now();
    for _ in 0..runs {
        get_raw(&c.app, &pdf_path, &office).await;
    }
    let pdf_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let pages = page_count(&pdf);
    println!(
        "record with {photos} photos: {pages} pages, {} bytes ({:.1} KiB/photo page incl. form); \
         GET record.pdf {pdf_ms:.1} ms, GET record (JSON, assembly alone) {json_ms:.1} ms, \
         PDF work {:.2} ms/page",
        pdf.len(),
        pdf.len() as f64 / 1024.0 / f64::from(photos),
        (pdf_ms - json_ms) / pages as f64
    );
    if let Ok(dir) = std::env::var("YANSHOU_PDF_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("record.pdf"), &pdf).unwrap();
    }
}
