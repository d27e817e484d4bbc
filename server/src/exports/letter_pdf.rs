//! The experts' opinion letter (验收合格意见书, PROTOCOL.md §15) as a PDF laid out like a Chinese
//! government letter on A4: the title 验收合格意见书 centred with the letter's number (文号)
//! under it, the sections 一、验收依据 二、验收组织 (date, organiser, the panel as a table
//! 姓名/专业/职称/单位) 三、验收方式 四、基本情况 五、主要验收意见 六、存在问题及建议 七、验收结论
//! (同意通过 / 限期整改后通过 / 不予通过), then the panel's signature table (name, specialty, the
//! handwriting drawn from the strokes blob, date, and whether the word counts: 有效 / 已失效 /
//! 拒签 with the reason), and the organiser with the date at the bottom right. Every footer has
//! 第 x 页 共 y 页 and the letter's content hash; a letter not issued carries 草稿 as a
//! watermark and a mark at the top of every page.
//!
//! [`letter_pdf`] reads the letter (as [`letters::assemble`] makes it) and its strokes first;
//! [`render`] is a pure function of them, run on the blocking pool.

use chrono::DateTime;
use krilla::{geom::Rect, metadata::Metadata};
use uuid::Uuid;

use super::{
    ink::{self, Ink, StrokesBlobs},
    typeset::{
        BODY, BOTTOM, CELL, CONTENT_W, CjkFont, Frame, HEADING, LEADING, Layout, MARGIN_X, Metrics,
        Op, PAD, PAGE_H, PAGE_W, TOP, chinese_number, cjk_font, footer, write,
    },
};
use crate::{
    AppState,
    error::{AppError, Result},
    identity::auth::AuthUser,
    letters::{self, AssembledLetter, OpinionRecord, PanelMember},
    photos::geofence::CHINA_STANDARD_TIME,
};

/// A rendered letter.
#[derive(Debug)]
pub struct LetterPdf {
    /// `验收合格意见书-<mine>-<date>.pdf`
    pub filename: String,
    pub bytes: Vec<u8>,
    pub pages: usize,
}

/// The PDF of letter `id`, for a caller who may see it (else "not found").
pub async fn letter_pdf(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<LetterPdf> {
    render_letter(state, letters::assemble(state, caller, id).await?).await
}

/// The PDF of a letter already assembled (for the caller who asked for it).
pub async fn render_letter(state: &AppState, letter: AssembledLetter) -> Result<LetterPdf> {
    let font = cjk_font(state.settings.pdf_font_file.as_deref())?;
    let references: Vec<&serde_json::Value> = letter.opinions.iter().map(|o| &o.strokes).collect();
    let strokes = ink::load(state, &references).await?;
    let filename = format!(
        "验收合格意见书-{}-{}.pdf",
        letter.mine_name, letter.text.date
    );
    let (bytes, pages) = tokio::task::spawn_blocking(move || render(&letter, &strokes, &font))
        .await
        .map_err(|e| AppError::Internal(format!("PDF task: {e}")))?
        .map_err(|e| AppError::Internal(format!("PDF: {e}")))?;
    Ok(LetterPdf {
        filename,
        bytes,
        pages,
    })
}

/// Sizes of the letter: larger than the form's, as a letter is read, not filled in.
const LETTER_TITLE: f32 = 20.0;
const TEXT: f32 = 10.5;
/// Paragraphs begin two characters in.
const INDENT: &str = "\u{3000}\u{3000}";
/// The panel table: 序号, 姓名, 专业, 职称, 单位.
const PANEL: [(&str, f32); 5] = [
    ("序号", 30.0),
    ("姓名", 70.0),
    ("专业", 80.0),
    ("职称", 90.0),
    ("单位", 245.28),
];
/// The signature table: 姓名, 专业, 签名, 日期, 意见.
const SIGNATURES: [(&str, f32); 5] = [
    ("姓名", 78.0),
    ("专业", 60.0),
    ("签名", 136.0),
    ("日期", 62.0),
    ("意见", 179.28),
];
/// The signature cell's least height.
const SIGNATURE_ROW: f32 = 42.0;
/// 草稿, in red at the top of a draft's pages; its watermark in a light grey.
const DRAFT_RED: (u8, u8, u8) = (200, 30, 30);
const WATERMARK_GREY: (u8, u8, u8) = (222, 222, 222);

/// 同意通过 / 限期整改后通过 / 不予通过 (the letter's own name of it when it has one).
fn conclusion_text<'a>(code: &'a str, name: &'a str) -> &'a str {
    match code {
        _ if !name.is_empty() => name,
        "pass" => "同意通过",
        "pass_after_rectification" => "限期整改后通过",
        "fail" => "不予通过",
        other => other,
    }
}

/// `2024-03-02` as `2024年3月2日` (anything else as it is).
fn chinese_date(date: &str) -> String {
    match chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
        Ok(d) => d.format("%Y年%-m月%-d日").to_string(),
        Err(_) => date.to_owned(),
    }
}

fn day_of(ms: Option<i64>) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map_or_else(String::new, |t| {
            t.with_timezone(&CHINA_STANDARD_TIME)
                .format("%Y-%m-%d")
                .to_string()
        })
}

/// Render the letter; returns the PDF and its page count.
pub fn render(
    letter: &AssembledLetter,
    strokes: &StrokesBlobs,
    font: &CjkFont,
) -> std::result::Result<(Vec<u8>, usize), String> {
    let face = font.face()?;
    let metrics = Metrics::new(&face);
    let mut l = Layout::new(&metrics);
    letter_pages(&mut l, letter, strokes);
    let draft = letter.status != "issued";
    let metadata = Metadata::new()
        .title(format!(
            "验收合格意见书 {} — {}",
            letter.text.number, letter.mine_name
        ))
        .description(format!("content hash {}", letter.content_hash))
        .language("zh-CN".to_owned())
        .creator("Yanshou".to_owned());
    let frame = |n: usize, total: usize| {
        let mut frame = Frame::default();
        if draft {
            frame.under.push(Op::Mark {
                x: PAGE_W / 2.0 - 150.0,
                y: PAGE_H / 2.0 + 90.0,
                size: 130.0,
                text: "草稿".to_owned(),
                rgb: WATERMARK_GREY,
                angle: -35.0,
            });
            let mark = "草稿 · 未签发，不作为验收依据";
            frame.over.push(Op::Mark {
                x: PAGE_W - MARGIN_X - metrics.width(mark, BODY),
                y: TOP - 18.0,
                size: BODY,
                text: mark.to_owned(),
                rgb: DRAFT_RED,
                angle: 0.0,
            });
        }
        frame.over.extend(footer(
            &metrics,
            n,
            total,
            format!("意见书内容哈希 SHA-256：{}", letter.content_hash),
            format!(
                "{} · {} · 文本哈希 {}… · {}",
                letter.text.number,
                letter.mine_name,
                letter.letter_hash.get(..16).unwrap_or(&letter.letter_hash),
                match &letter.issued {
                    Some(issued) => format!("{}签发", day_of(Some(issued.at_ms))),
                    None => "草稿".to_owned(),
                }
            ),
        ));
        frame
    };
    let bytes = write(font, &metrics, &l, metadata, frame)?;
    Ok((bytes, l.pages.len()))
}

/// A section heading (`一、验收依据`), kept with at least two lines of what follows.
fn heading(l: &mut Layout<'_, '_>, n: usize, text: &str) {
    l.room(HEADING * LEADING + 2.0 * TEXT * LEADING + 6.0);
    l.y += 6.0;
    l.paragraph(&format!("{}、{text}", chinese_number(n)), HEADING);
    l.y += 1.0;
}

/// Paragraphs of running text, each beginning two characters in (`无。` when empty).
fn body(l: &mut Layout<'_, '_>, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        l.paragraph(&format!("{INDENT}无。"), TEXT);
        return;
    }
    for paragraph in text.lines().map(str::trim).filter(|p| !p.is_empty()) {
        l.paragraph(&format!("{INDENT}{paragraph}"), TEXT);
    }
}

fn letter_pages(l: &mut Layout<'_, '_>, d: &AssembledLetter, strokes: &StrokesBlobs) {
    let t = &d.text;
    l.new_page();
    l.y += 8.0;
    let title = if t.title.contains("验收合格意见书") {
        t.title.as_str()
    } else {
        "验收合格意见书"
    };
    l.centered(title, LETTER_TITLE);
    l.y += 2.0;
    if !t.number.is_empty() {
        l.centered(&t.number, TEXT);
    }
    if !t.title.is_empty() && t.title != title {
        l.centered(&t.title, HEADING);
    }
    l.y += 10.0;
    l.paragraph(
        &format!("矿山名称：{}　采矿许可证号：{}", d.mine_name, d.licence_no),
        TEXT,
    );
    l.y += 2.0;

    heading(l, 1, "验收依据");
    if t.basis.is_empty() {
        body(l, "");
    }
    for (i, basis) in t.basis.iter().enumerate() {
        l.hanging(&format!("{INDENT}{}．", i + 1), basis, TEXT);
    }

    heading(l, 2, "验收组织");
    l.paragraph(
        &format!("{INDENT}验收日期：{}", chinese_date(&t.date)),
        TEXT,
    );
    l.paragraph(&format!("{INDENT}组织单位：{}", t.organiser), TEXT);
    l.paragraph(&format!("{INDENT}专家组（{} 人）：", t.panel.len()), TEXT);
    l.y += 3.0;
    panel_table(l, d);

    heading(l, 3, "验收方式");
    body(l, &t.method);
    heading(l, 4, "基本情况");
    body(l, &t.situation);
    heading(l, 5, "主要验收意见");
    body(l, &t.opinions);
    heading(l, 6, "存在问题及建议");
    body(l, &t.problems);
    heading(l, 7, "验收结论");
    l.paragraph(
        &format!(
            "{INDENT}{}。",
            conclusion_text(&t.conclusion, &t.conclusion_name)
        ),
        HEADING,
    );

    // The organiser and the date at the bottom right, as a letter is signed off.
    let lines = [t.organiser.clone(), chinese_date(&t.date)];
    let sign_off = 2.0 * TEXT * LEADING + 24.0;
    signature_table(l, d, strokes, sign_off);
    l.room(sign_off);
    l.y += 24.0;
    let right = MARGIN_X + CONTENT_W - 2.0 * TEXT;
    let width = lines.iter().map(|s| l.m.width(s, TEXT)).fold(0.0, f32::max);
    for line in &lines {
        // Centred on each other, the block set against the right margin.
        let x = right - width + (width - l.m.width(line, TEXT)) / 2.0;
        l.text(x, l.y + TEXT, TEXT, line);
        l.y += TEXT * LEADING;
    }
}

fn panel_table(l: &mut Layout<'_, '_>, d: &AssembledLetter) {
    let widths: Vec<f32> = PANEL.iter().map(|c| c.1).collect();
    let head: Vec<String> = PANEL.iter().map(|c| c.0.to_owned()).collect();
    let (head_h, head_wrapped) = l.row_height(&head, &widths, CELL);
    let rows: Vec<(f32, Vec<Vec<String>>)> = d
        .text
        .panel
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let cells = [
                (i + 1).to_string(),
                m.name.clone(),
                specialty_of(m).to_owned(),
                m.title.clone(),
                m.employer.clone(),
            ];
            l.row_height(&cells, &widths, CELL)
        })
        .collect();
    l.room(head_h + rows.first().map_or(0.0, |r| r.0));
    l.row(&head_wrapped, &widths, head_h, CELL, true);
    for (h, wrapped) in rows {
        if l.room(h) {
            l.row(&head_wrapped, &widths, head_h, CELL, true);
        }
        l.row(&wrapped, &widths, h, CELL, false);
    }
}

/// 水工环 (the code when the name is unknown).
fn specialty_of(m: &PanelMember) -> &str {
    if m.specialty_name.is_empty() {
        &m.specialty
    } else {
        &m.specialty_name
    }
}

/// The word a row shows for an expert: the latest on the current text, else the latest one.
fn word_of(d: &AssembledLetter, user: Uuid) -> Option<&OpinionRecord> {
    let theirs = || d.opinions.iter().filter(move |o| o.user == user);
    theirs()
        .filter(|o| o.current)
        .max_by_key(|o| o.signed_at_ms)
        .or_else(|| theirs().max_by_key(|o| o.signed_at_ms))
}

/// `同意` or `拒签：理由`, then 有效 (not for a decline) / 无效（签名验证失败） / 已失效（…）;
/// 未签 without a word.
fn word_text(o: Option<&OpinionRecord>) -> String {
    let Some(o) = o else {
        return "未签".to_owned();
    };
    let reason = o.reason.trim();
    let word = match (o.decision.as_str(), reason.is_empty()) {
        ("decline", true) => "拒签".to_owned(),
        ("decline", false) => format!("拒签：{reason}"),
        _ => "同意".to_owned(),
    };
    let status = match (o.current, o.signature_valid) {
        // A decline that stands needs no 有效 beside it (it reads as approval).
        (true, true) if o.decision == "decline" => return word,
        (true, true) => "有效",
        (true, false) => "无效（签名验证失败）",
        (false, _) => "已失效（签字后意见书已修改）",
    };
    format!("{word}\n{status}")
}

/// One row of the signature table: who, and the word shown.
struct SignatureRow<'a> {
    name: String,
    specialty: String,
    word: Option<&'a OpinionRecord>,
}

/// The panel's signatures; `keep_with`: the height of what must not be parted from the table.
fn signature_table(
    l: &mut Layout<'_, '_>,
    d: &AssembledLetter,
    strokes: &StrokesBlobs,
    keep_with: f32,
) {
    let widths: Vec<f32> = SIGNATURES.iter().map(|c| c.1).collect();
    let head: Vec<String> = SIGNATURES.iter().map(|c| c.0.to_owned()).collect();
    let (head_h, head_wrapped) = l.row_height(&head, &widths, CELL);
    // The panel, then anyone else who gave a word (taken off the panel since).
    let mut rows: Vec<SignatureRow<'_>> = d
        .text
        .panel
        .iter()
        .map(|m| SignatureRow {
            name: m.name.clone(),
            specialty: specialty_of(m).to_owned(),
            word: word_of(d, m.user),
        })
        .collect();
    for o in &d.opinions {
        let listed = d.text.panel.iter().any(|m| m.user == o.user)
            || rows
                .iter()
                .any(|r| r.word.is_some_and(|w| w.user == o.user));
        if !listed {
            rows.push(SignatureRow {
                name: o.name.clone(),
                specialty: o.specialty.clone().unwrap_or_default(),
                word: word_of(d, o.user),
            });
        }
    }
    let laid: Vec<(f32, Vec<Vec<String>>, SignatureRow<'_>)> = rows
        .into_iter()
        .map(|row| {
            let cells = [
                row.name.clone(),
                row.specialty.clone(),
                String::new(),
                day_of(row.word.map(|w| w.signed_at_ms)),
                word_text(row.word),
            ];
            let (h, wrapped) = l.row_height(&cells, &widths, CELL);
            (h.max(SIGNATURE_ROW), wrapped, row)
        })
        .collect();
    // The table stays whole with what follows it (the organiser and date) when a page can
    // hold them; else it starts with its first row at least.
    let heading_h = 10.0 + HEADING * LEADING + 2.0;
    let whole = heading_h + head_h + laid.iter().map(|r| r.0).sum::<f32>() + keep_with;
    if whole <= BOTTOM - TOP {
        l.room(whole);
    } else {
        l.room(heading_h + head_h + laid.first().map_or(0.0, |r| r.0));
    }
    l.y += 10.0;
    l.paragraph("专家组签字", HEADING);
    l.y += 2.0;
    l.row(&head_wrapped, &widths, head_h, CELL, true);
    for (h, wrapped, row) in laid {
        if l.room(h) {
            l.row(&head_wrapped, &widths, head_h, CELL, true);
        }
        let cells = l.row(&wrapped, &widths, h, CELL, false);
        // A decline may come without handwriting.
        let Some(word) = row.word.filter(|w| !w.strokes.is_null()) else {
            continue;
        };
        if let Some(cell) = cells.get(2).and_then(|c| {
            Rect::from_xywh(
                c.left() + PAD,
                c.top() + 1.0,
                c.width() - 2.0 * PAD,
                c.height() - 2.0,
            )
        }) {
            ink::draw(l, cell, &Ink::of(strokes, &word.strokes));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::letters::LetterTextOut;
    use bytes::Bytes;
    use serde_json::json;

    fn strokes_blob(seed: u32) -> Bytes {
        let points: Vec<serde_json::Value> = (0..80)
            .map(|i| {
                let y = 120.0 + 60.0 * (f64::from(i) / (5.0 + f64::from(seed))).sin();
                json!([40 + i * 6, y.round() as i64, i * 10])
            })
            .collect();
        Bytes::from(
            json!({"format": "yanshou-strokes/1", "width": 600, "height": 240,
                   "strokes": [{"points": points}, {"points": [[300, 200, 900], [420, 190, 950]]}]})
            .to_string(),
        )
    }

    fn reference(b: &Bytes) -> serde_json::Value {
        json!({"sha256": crate::blobs::BlobHash::of(b).hex(), "size": b.len()})
    }

    fn panel_member(name: &str, specialty: &str, title: &str, employer: &str) -> PanelMember {
        PanelMember {
            user: Uuid::new_v4(),
            name: name.into(),
            specialty: specialty.into(),
            specialty_name: specialty.into(),
            title: title.into(),
            employer: employer.into(),
        }
    }

    fn word(m: &PanelMember, decision: &str, strokes: serde_json::Value) -> OpinionRecord {
        OpinionRecord {
            user: m.user,
            name: m.name.clone(),
            specialty: Some(m.specialty.clone()),
            decision: decision.into(),
            reason: if decision == "decline" {
                "复绿面积与方案不符，需现场复核".into()
            } else {
                String::new()
            },
            signed_at_ms: 1_709_346_000_000,
            device: Uuid::new_v4(),
            letter_hash: "4be1".repeat(16),
            current: true,
            signature_valid: true,
            on_panel: true,
            strokes,
            value: serde_json::Value::Null,
        }
    }

    /// A letter as a county office would write it, signed by two of three experts.
    pub(crate) fn sample() -> (AssembledLetter, StrokesBlobs) {
        let blobs = [strokes_blob(1), strokes_blob(3)];
        let panel = vec![
            panel_member("张建国", "水工环", "高级工程师", "江西省地质局第九地质大队"),
            panel_member(
                "李秀英",
                "环境保护",
                "正高级工程师",
                "宜春市生态环境局上高分局环境监测站",
            ),
            panel_member("王林", "林业", "林业工程师", "上高县林业局"),
        ];
        let opinions = vec![
            word(&panel[0], "sign", reference(&blobs[0])),
            word(&panel[1], "sign", reference(&blobs[1])),
        ];
        let text = LetterTextOut {
            number: "上矿整验〔2024〕12号".into(),
            title: "验收合格意见书".into(),
            basis: vec![
                "《上高县停产非煤矿山生态环境整治工作方案》（上府办发〔2023〕35号）".into(),
                "经批准的《上高县泗溪镇石灰石矿矿山地质环境保护与土地复垦方案》".into(),
                "《非煤矿山关闭（注销）生态环境整治验收标准》及相关技术规范".into(),
            ],
            date: "2024-03-02".into(),
            organiser: "上高县停产非煤矿山生态环境整治工作领导小组办公室".into(),
            panel,
            method: "专家组听取了采矿权人关于矿山生态环境整治情况的汇报，查阅了相关资料，\
                     并对矿区进行了现场踏勘。"
                .into(),
            situation: "该矿位于上高县泗溪镇，矿区面积 12.35 公顷，开采矿种为石灰石，露天开采。\
                        矿山已于 2022 年停产，按经批准的方案实施了削坡分台阶、场地平整、复垦复绿、\
                        截排水沟及沉砂池建设等整治工程。"
                .into(),
            opinions: "1．矿区边坡稳定，无崩塌、滑坡、危岩浮石等地质灾害隐患；终了坡角符合设计要求。\n\
                       2．土地复垦率 100%，复垦方向符合方案（宜林则林）。\n\
                       3．复绿面积 9.8 公顷，可绿化区域植被覆盖率 86%，苗木成活率 90%，管护责任已落实。\n\
                       4．截排水沟闭合畅通，沉砂池已清淤，挡土墙完好，无明显水土流失。\n\
                       5．生产设施设备已拆除，供电线路和变压器已拆除，民爆物品已清理收缴。\n\
                       6．整治资料齐全。"
                .into(),
            problems: "部分台阶苗木长势较弱，建议采矿权人加强三年管护期内的抚育管理，及时补植补种。"
                .into(),
            conclusion: "pass".into(),
            conclusion_name: "同意通过".into(),
            record_hash: "77aa".repeat(16),
        };
        let letter = AssembledLetter {
            letter_id: Uuid::new_v4(),
            round_id: Uuid::new_v4(),
            mine_id: Uuid::new_v4(),
            mine_name: "上高县泗溪镇石灰石矿".into(),
            licence_no: "C3609232009127130050234".into(),
            status: "draft".into(),
            issued: None,
            text,
            letter_hash: "4be1".repeat(16),
            opinions,
            specialties: Vec::new(),
            issuable: false,
            blocking: Vec::new(),
            record_hash_now: "77aa".repeat(16),
            content_hash: "9f2c".repeat(16),
        };
        (letter, StrokesBlobs::from_bytes(blobs))
    }

    #[test]
    fn conclusions_and_dates_read_as_the_letter_writes_them() {
        assert_eq!(
            conclusion_text("pass_after_rectification", ""),
            "限期整改后通过"
        );
        assert_eq!(chinese_date("2024-03-02"), "2024年3月2日");
        assert_eq!(chinese_date("三月"), "三月");
    }

    #[test]
    fn a_word_on_the_current_text_is_shown_before_a_later_superseded_one() {
        let (mut d, _) = sample();
        let mut old = d.opinions[0].clone();
        old.current = false;
        old.signed_at_ms += 1000;
        d.opinions.push(old);
        let user = d.text.panel[0].user;
        assert!(word_of(&d, user).unwrap().current);
        assert_eq!(word_text(word_of(&d, user)), "同意\n有效");
        d.opinions.retain(|o| !o.current || o.user != user);
        assert_eq!(
            word_text(word_of(&d, user)),
            "同意\n已失效（签字后意见书已修改）"
        );
        assert_eq!(word_text(None), "未签");
    }

    /// Renders the sample letter (with the installed CJK font) and keeps it where
    /// `YANSHOU_PDF_OUT` says, to look at: `pdftoppm -r 80 -png`.
    #[test]
    #[ignore = "needs a CJK font; writes a file to look at"]
    fn sample_letter_to_look_at() {
        let font = super::super::typeset::cjk_font(None).unwrap();
        let (d, blobs) = sample();
        let (pdf, pages) = render(&d, &blobs, &font).unwrap();
        let dir = std::env::var("YANSHOU_PDF_OUT").unwrap_or_else(|_| "/tmp".into());
        std::fs::write(std::path::Path::new(&dir).join("letter.pdf"), &pdf).unwrap();
        println!("{pages} pages, {} bytes", pdf.len());
    }
}
