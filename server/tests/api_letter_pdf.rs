//! The experts' opinion letter as a PDF: `GET /api/v1/letters/{id}/letter.pdf`, read back with
//! poppler as a reader sees it (text, pages, the handwriting drawn in the signature table),
//! through the letter's life: a draft with words given and declined, an edit that supersedes
//! them, and the issued letter.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use axum::http::{Method, StatusCode, header};
use common::{
    Backend, Phone,
    letters::{EXPERTS, Passed, passed, push_one, text as letter_text, word},
    pdf::{get_raw, ink_on_page, page_count, pages_text, word_boxes},
};
use serde_json::Value;
use sync_protocol::{EntityId, OpResult};
use uuid::Uuid;
use yanshou_server::model::letter::OPINIONS_FIELD;

/// The expert's word pushed from the phone (which first reads the letter as it is now).
async fn give_word(p: &Passed, phone: &mut Phone, letter: EntityId, decision: &str, reason: &str) {
    phone.sync(&p.app).await;
    let element = word(phone, letter, decision, reason);
    phone.add(letter, OPINIONS_FIELD, element);
    let result = push_one(phone, &p.app).await;
    assert!(matches!(result, OpResult::Applied { .. }), "{result:?}");
}

/// The letter's PDF; its text by page (whitespace removed), checked for what every page has.
async fn letter_pdf(p: &Passed, id: &str) -> (Vec<u8>, Vec<String>) {
    let (s, headers, pdf) = get_raw(
        &p.app,
        &format!("/api/v1/letters/{id}/letter.pdf"),
        &p.office,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("inline; filename="),
        "{disposition}"
    );
    let (_, letter) = p
        .call(Method::GET, &format!("/api/v1/letters/{id}"), None)
        .await;
    let hash = letter["content_hash"].as_str().unwrap();
    let text = pages_text(&pdf);
    let pages = page_count(&pdf);
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
    if let Ok(dir) = std::env::var("YANSHOU_PDF_OUT") {
        let name = format!("letter-{}.pdf", letter["status"].as_str().unwrap());
        std::fs::write(std::path::Path::new(&dir).join(name), &pdf).unwrap();
    }
    (pdf, text)
}

/// Pixels of handwriting on the page of the signature table.
fn ink_in_signature_table(pdf: &[u8]) -> usize {
    let heading = word_boxes(pdf, "专家组签字");
    let &[(page, ..)] = heading.as_slice() else {
        panic!("专家组签字 is not once in the PDF: {heading:?}");
    };
    ink_on_page(pdf, page).0
}

async fn the_letter_pdf_follows_the_letter_from_draft_to_issued(b: Backend) {
    let p = passed(b).await;
    let panel = p.panel().await;
    let letter = p.draft(&panel).await;
    let id = letter["letter_id"].as_str().unwrap().to_owned();
    let entity = EntityId(Uuid::parse_str(&id).unwrap());
    // The accounts' names (`zhuanjia.shui 专家`) wrap in their cells: their first word.
    let names: Vec<String> = letter["text"]["panel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["name"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();

    // A draft: two experts sign, the third declines with a reason.
    let mut phones = Vec::new();
    for (_, user) in EXPERTS {
        phones.push(p.expert_phone(user).await);
    }
    give_word(&p, &mut phones[0], entity, "sign", "").await;
    give_word(&p, &mut phones[1], entity, "sign", "").await;
    give_word(
        &p,
        &mut phones[2],
        entity,
        "decline",
        "复绿面积与方案不符，需现场复核",
    )
    .await;
    let (pdf, text) = letter_pdf(&p, &id).await;
    let all = text.join("\n");
    for expected in [
        "验收合格意见书",
        "上自然资矿验〔2024〕12号",
        "一、验收依据",
        "上府办发〔2023〕35号",
        "二、验收组织",
        "验收日期：2024年5月20日",
        "组织单位：上高县自然资源局",
        "姓名专业职称单位",
        "宜春市地质调查院",
        "三、验收方式",
        "听取汇报、查阅资料、现场踏勘",
        "四、基本情况",
        "五、主要验收意见",
        "六、存在问题及建议",
        "加强后期管护。",
        "七、验收结论",
        "同意通过。",
        "专家组签字",
        "拒签：复绿面积与方案不符，需现场复核",
        "草稿",
    ] {
        assert!(
            all.contains(expected),
            "no {expected:?} in the letter:\n{all}"
        );
    }
    for name in &names {
        // In the panel table and in the signature table.
        assert!(all.matches(name.as_str()).count() >= 2, "{name}:\n{all}");
    }
    assert_eq!(all.matches("有效").count(), 2, "{all}");
    assert!(!all.contains("笔迹"), "{all}");
    let signed_ink = ink_in_signature_table(&pdf);
    assert!(
        signed_ink > 300,
        "two signatures drawn: {signed_ink} pixels of ink"
    );

    // An edit supersedes every word: shown, drawn, marked 已失效.
    let mut edited = letter_text(&panel);
    edited["problems"] = Value::from("加强后期管护，补植枯死苗木。");
    let (s, body) = p
        .call(Method::PUT, &format!("/api/v1/letters/{id}"), Some(edited))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (pdf, text) = letter_pdf(&p, &id).await;
    let all = text.join("\n");
    assert!(all.contains("补植枯死苗木"), "{all}");
    assert_eq!(all.matches("已失效").count(), 3, "{all}");
    assert_eq!(all.matches("有效").count(), 0, "{all}");
    assert!(ink_in_signature_table(&pdf) > 300);

    // The whole panel signs the new text; issued, the letter loses its draft marks.
    for phone in &mut phones {
        give_word(&p, phone, entity, "sign", "").await;
    }
    let (s, body) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (pdf, text) = letter_pdf(&p, &id).await;
    let all = text.join("\n");
    assert!(!all.contains("草稿"), "{all}");
    assert!(all.contains("签发"), "{all}");
    assert_eq!(all.matches("有效").count(), 3, "{all}");
    assert!(ink_in_signature_table(&pdf) > 450, "three signatures drawn");

    // Same visibility as the JSON letter.
    let (s, _, _) = get_raw(
        &p.app,
        &format!("/api/v1/letters/{}/letter.pdf", Uuid::new_v4()),
        &p.office,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both_backends!(the_letter_pdf_follows_the_letter_from_draft_to_issued);

/// Time per page of the letter PDF, to read, not to assert:
/// `cargo test --release -p yanshou-server --test api_letter_pdf -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn measure_letter_pdf_time_per_page_and_size() {
    let p = passed(Backend::Sqlite).await;
    let panel = p.panel().await;
    let letter = p.draft(&panel).await;
    let id = letter["letter_id"].as_str().unwrap().to_owned();
    let entity = EntityId(Uuid::parse_str(&id).unwrap());
    for (_, user) in EXPERTS {
        let mut phone = p.expert_phone(user).await;
        give_word(&p, &mut phone, entity, "sign", "").await;
    }
    let json = format!("/api/v1/letters/{id}");
    let pdf_path = format!("{json}/letter.pdf");
    measure(&p, &json, &pdf_path, "letter signed by 3 experts").await;
    // A long letter: its running text twelve times over (the words stay, superseded).
    let mut long = letter_text(&panel);
    for field in ["situation", "opinions", "problems"] {
        long[field] = Value::from(long[field].as_str().unwrap().repeat(12));
    }
    let (s, body) = p.call(Method::PUT, &json, Some(long)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    measure(&p, &json, &pdf_path, "long letter").await;
}

async fn measure(p: &Passed, json: &str, pdf_path: &str, what: &str) {
    let (_, _, pdf) = get_raw(&p.app, pdf_path, &p.office).await; // warm: the font is read once
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        get_raw(&p.app, json, &p.office).await;
    }
    let json_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let started = Instant::now();
    for _ in 0..runs {
        get_raw(&p.app, pdf_path, &p.office).await;
    }
    let pdf_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let pages = page_count(&pdf);
    println!(
        "{what}: {pages} pages, {} bytes; GET letter.pdf {pdf_ms:.1} ms, GET letter (JSON, \
         assembly alone) {json_ms:.1} ms, PDF work {:.2} ms/page",
        pdf.len(),
        (pdf_ms - json_ms) / pages as f64
    );
    if let Ok(dir) = std::env::var("YANSHOU_PDF_OUT") {
        let name = format!("{}.pdf", what.replace(' ', "-"));
        std::fs::write(std::path::Path::new(&dir).join(name), &pdf).unwrap();
    }
}
