//! The assembled record as a PDF laid out like the county's paper form: A4 portrait, the title
//! (the template's, e.g. 《上高县停产非煤矿山生态环境整治达标验收表》) with the mine's name, the
//! header block (矿山名称, 采矿许可证号, 采矿权人, 乡镇（林场）, 处置方式, 验收日期, 第N次验收), the
//! acceptance table of each department's section (序号, 验收项目, 验收标准, 验收结果, 问题/整改要求,
//! 照片) with its signature line (the signer's handwriting drawn from the strokes blob, beside it
//! whether the signature holds), the conclusion with the open conflicts and the photos still
//! awaiting upload, then one page per photo (its large thumbnail, embedded as the JPEG it is,
//! with a caption of place and time). Every page's footer has 第 x 页 共 y 页 and the record's
//! content hash, so a printed page names the exact document it comes from.
//!
//! The font and the typesetting are [`super::typeset`]'s, the handwriting [`super::ink`]'s.
//! [`record_pdf`] reads everything the pages show (record, template, thumbnails, strokes)
//! first; [`render`] is then a pure function of it, run on the blocking pool (font subsetting
//! and compression are CPU work).

use bytes::Bytes;
use chrono::DateTime;
use krilla::{geom::Rect, image::Image, metadata::Metadata};
use uuid::Uuid;

use super::{
    ink::{self, Ink, StrokesBlobs},
    typeset::{
        BODY, BOTTOM, CELL, CONTENT_W, CjkFont, Frame, HEADING, LEADING, Layout, MARGIN_X, Metrics,
        Op, TITLE, chinese_number, cjk_font, footer, write,
    },
};
use crate::{
    AppState,
    blobs::BlobHash,
    error::{AppError, Result},
    identity::auth::AuthUser,
    photos::geofence::CHINA_STANDARD_TIME,
    records::{self, AssembledRecord, ItemRecord, PhotoRecord, SectionRecord, SignatureRecord},
    store::StoreError,
};

/// The acceptance table's columns: 序号, 验收项目, 验收标准, 验收结果, 问题/整改要求, 照片.
const COLUMNS: [(&str, f32); 6] = [
    ("序号", 26.0),
    ("验收项目", 92.0),
    ("验收标准", 144.0),
    ("验收结果", 96.0),
    ("问题/整改要求", 111.28),
    ("照片", 46.0),
];

/// One photo page: the photo as the record has it, where it belongs, and its large thumbnail.
#[derive(Debug, Clone)]
pub struct PhotoPage {
    pub photo: PhotoRecord,
    /// `林业 · 第19项 …`
    pub belongs_to: String,
    /// The large thumbnail's JPEG (none when its blob is missing).
    pub jpeg: Option<Bytes>,
}

/// A rendered record.
#[derive(Debug)]
pub struct RecordPdf {
    /// `验收表-<mine>-第N次-<date>.pdf`
    pub filename: String,
    pub bytes: Vec<u8>,
    pub pages: usize,
}

/// The PDF of round `round_id`'s record, for a caller who may see it (else "not found").
pub async fn record_pdf(state: &AppState, caller: &AuthUser, round_id: Uuid) -> Result<RecordPdf> {
    render_record(state, records::assemble(state, caller, round_id).await?).await
}

/// The PDF of a record already assembled (for the caller who asked for it).
pub async fn render_record(state: &AppState, record: AssembledRecord) -> Result<RecordPdf> {
    let font = cjk_font(state.settings.pdf_font_file.as_deref())?;
    let template = crate::sync::templates::template(state, &record.template).await?;
    let mut photos = Vec::new();
    for section in &record.sections {
        for item in &section.items {
            for photo in &item.photos {
                if photo.findings.get("status").and_then(|s| s.as_str()) != Some("received") {
                    continue;
                }
                photos.push(PhotoPage {
                    photo: photo.clone(),
                    belongs_to: format!("{} · 第{}项 {}", section.name, item.number, item.title),
                    jpeg: large_thumbnail(state, &photo.sha256).await?,
                });
            }
        }
    }
    let filename = format!(
        "验收表-{}-第{}次-{}.pdf",
        record.mine.name, record.round_no, record.opened_on
    );
    let references: Vec<&serde_json::Value> = record
        .sections
        .iter()
        .filter_map(|s| s.signature.as_ref().map(|sig| &sig.strokes))
        .collect();
    let strokes = ink::load(state, &references).await?;
    let title = template.title.clone();
    let (bytes, pages) =
        tokio::task::spawn_blocking(move || render(&record, &title, &photos, &strokes, &font))
            .await
            .map_err(|e| AppError::Internal(format!("PDF task: {e}")))?
            .map_err(|e| AppError::Internal(format!("PDF: {e}")))?;
    Ok(RecordPdf {
        filename,
        bytes,
        pages,
    })
}

/// The large thumbnail's bytes of a received photo (none when its row or blob is missing).
async fn large_thumbnail(state: &AppState, sha256: &str) -> Result<Option<Bytes>> {
    let photo = match state.store.get_photo(sha256).await {
        Ok(p) => p,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Ok(hash) = photo.large.sha256.parse::<BlobHash>() else {
        return Ok(None);
    };
    match state.blobs.get(hash).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(crate::blobs::BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Render the record and its photo pages; returns the PDF and its page count.
pub fn render(
    record: &AssembledRecord,
    title: &str,
    photos: &[PhotoPage],
    strokes: &StrokesBlobs,
    font: &CjkFont,
) -> std::result::Result<(Vec<u8>, usize), String> {
    let face = font.face()?;
    let metrics = Metrics::new(&face);
    let mut layout = Layout::new(&metrics);
    record_pages(&mut layout, record, title, strokes);
    for (n, page) in photos.iter().enumerate() {
        photo_page(&mut layout, page, n + 1, photos.len());
    }
    let metadata = Metadata::new()
        .title(format!("{title} — {}", record.mine.name))
        .description(format!("content hash {}", record.content_hash))
        .language("zh-CN".to_owned())
        .creator("Yanshou".to_owned());
    let frame = |n: usize, total: usize| Frame {
        under: Vec::new(),
        over: footer(
            &metrics,
            n,
            total,
            format!("记录内容哈希 SHA-256：{}", record.content_hash),
            format!(
                "{} · 第{}次验收 · 记录 {}",
                record.mine.name, record.round_no, record.record_id
            ),
        )
        .into(),
    };
    let bytes = write(font, &metrics, &layout, metadata, frame)?;
    Ok((bytes, layout.pages.len()))
}

/// The form: title, header block, the sections' tables and signatures, the conclusion.
fn record_pages(l: &mut Layout<'_, '_>, r: &AssembledRecord, title: &str, strokes: &StrokesBlobs) {
    l.new_page();
    l.centered(&format!("《{title}》"), TITLE);
    l.y += 2.0;
    l.centered(
        &format!("{}（第{}次验收）", r.mine.name, r.round_no),
        HEADING,
    );
    l.y += 6.0;

    let widths = [78.0, 179.64, 78.0, 179.64];
    let header = [
        ["矿山名称", &r.mine.name, "采矿许可证号", &r.mine.licence_no],
        ["采矿权人", &r.mine.holder, "乡镇（林场）", &r.mine.township],
        ["处置方式", &r.disposition_name, "验收日期", &r.opened_on],
        [
            "验收次数",
            &format!("第{}次验收", r.round_no),
            "矿种",
            &r.mine.mineral,
        ],
        [
            "开采方式",
            &r.mine.mining_method,
            "矿区面积",
            &r.mine
                .area_ha
                .as_ref()
                .map_or_else(|| "—".to_owned(), |a| format!("{a} 公顷")),
        ],
    ];
    for (i, row) in header.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| (*c).to_owned()).collect();
        let (h, wrapped) = l.row_height(&cells, &widths, BODY);
        l.row(&wrapped, &widths, h, BODY, i == 0);
    }
    l.y += 10.0;

    for (n, section) in r.sections.iter().enumerate() {
        section_table(l, section, n + 1, strokes);
    }

    l.room(BODY * LEADING * 6.0);
    l.y += 4.0;
    l.paragraph(&format!("验收结论：{}", r.conclusion_name), HEADING);
    l.paragraph(
        &format!(
            "签字情况：{}",
            if r.fully_signed {
                "各必签部门均已签字，签名均有效"
            } else {
                "尚有必签部门未签字或签名无效"
            }
        ),
        BODY,
    );
    let conflicts = if r.open_conflicts.is_empty() {
        "无".to_owned()
    } else {
        format!(
            "{} 处（{}）",
            r.open_conflicts.len(),
            r.open_conflicts.join("、")
        )
    };
    l.paragraph(&format!("待处理的冲突：{conflicts}"), BODY);
    l.paragraph(
        &format!(
            "待上传照片：{}",
            if r.photos_awaiting_upload == 0 {
                "无".to_owned()
            } else {
                format!(
                    "{} 张（照片已登记，原件尚未到达服务器）",
                    r.photos_awaiting_upload
                )
            }
        ),
        BODY,
    );
    l.paragraph(&format!("验收表模板：{}", r.template), BODY);
}

fn section_table(l: &mut Layout<'_, '_>, s: &SectionRecord, n: usize, strokes: &StrokesBlobs) {
    let widths: Vec<f32> = COLUMNS.iter().map(|c| c.1).collect();
    let head: Vec<String> = COLUMNS.iter().map(|c| c.0.to_owned()).collect();
    let heading = format!(
        "{}、{}（{}{}）",
        chinese_number(n),
        s.name,
        if s.passed { "达标" } else { "未达标" },
        if s.required { "" } else { "，不计入结论" }
    );
    let (head_h, head_wrapped) = l.row_height(&head, &widths, CELL);
    let rows: Vec<(f32, Vec<Vec<String>>)> = s
        .items
        .iter()
        .map(|item| l.row_height(&item_cells(item), &widths, CELL))
        .collect();
    // The heading stays with the table's head and first row.
    let first = rows.first().map_or(0.0, |r| r.0);
    l.room(HEADING * LEADING + head_h + first + 4.0);
    l.y += 4.0;
    l.text(MARGIN_X, l.y + HEADING, HEADING, &heading);
    l.y += HEADING * LEADING + 2.0;
    l.row(&head_wrapped, &widths, head_h, CELL, true);
    for (h, wrapped) in rows {
        if l.room(h) {
            let cont = format!("{}（续）", s.name);
            l.text(MARGIN_X, l.y + HEADING, HEADING, &cont);
            l.y += HEADING * LEADING + 2.0;
            l.row(&head_wrapped, &widths, head_h, CELL, true);
        }
        l.row(&wrapped, &widths, h, CELL, false);
    }
    signature_block(l, s, strokes);
}

fn item_cells(item: &ItemRecord) -> [String; 6] {
    let answers: Vec<String> = item
        .answers
        .iter()
        .map(|a| {
            let value = answer_text(&a.value, a.unit.as_deref());
            let mut text = match &a.label {
                Some(label) => format!("{label}：{value}"),
                None => value,
            };
            if let Some(design) = &a.design_value {
                text.push_str(&format!(
                    "（设计值 {}）",
                    answer_text(design, a.unit.as_deref())
                ));
            }
            text
        })
        .collect();
    let mut problems: Vec<String> = item.problems.iter().map(|p| problem_text(p)).collect();
    problems.dedup();
    let mut notes = Vec::new();
    if !problems.is_empty() {
        notes.push(problems.join("；"));
    }
    if let Some(r) = item.rectification.as_deref().filter(|r| !r.is_empty()) {
        notes.push(format!("整改要求：{r}"));
    }
    if let Some(r) = item.remark.as_deref().filter(|r| !r.is_empty()) {
        notes.push(format!("备注：{r}"));
    }
    let photos = match (item.photos.len(), item.photo_expectation.as_str()) {
        (0, "required") => "0 张\n（应附）".to_owned(),
        (0, _) => "—".to_owned(),
        (n, _) => format!("{n} 张"),
    };
    [
        item.number.to_string(),
        item.title.clone(),
        item.criterion.clone().unwrap_or_else(|| "—".to_owned()),
        answers.join("\n"),
        if notes.is_empty() {
            "—".to_owned()
        } else {
            notes.join("\n")
        },
        photos,
    ]
}

/// An answer as the form shows it: 达标/不达标/不涉及, a number with its unit, text.
fn answer_text(value: &serde_json::Value, unit: Option<&str>) -> String {
    match value {
        serde_json::Value::Null => "未填".to_owned(),
        serde_json::Value::String(s) => match s.as_str() {
            "pass" => "达标".to_owned(),
            "fail" => "不达标".to_owned(),
            "not_applicable" => "不涉及".to_owned(),
            s => match unit {
                Some(u) if !s.trim_end().ends_with(u) => format!("{s} {u}"),
                _ => s.to_owned(),
            },
        },
        serde_json::Value::Number(n) => match unit {
            Some(u) => format!("{n} {u}"),
            None => n.to_string(),
        },
        serde_json::Value::Bool(b) => if *b { "是" } else { "否" }.to_owned(),
        other => other.to_string(),
    }
}

fn problem_text(kind: &str) -> String {
    match kind {
        "failed" => "不达标".to_owned(),
        "threshold_not_met" => "实测值未达到标准".to_owned(),
        "unanswered" => "未填写".to_owned(),
        "design_value_missing" => "缺设计值".to_owned(),
        "wrong_answer_type" => "答案类型与模板不符".to_owned(),
        other => other.to_owned(),
    }
}

fn role_text(role: &str) -> &str {
    match role {
        "department_inspector" => "部门验收人",
        "township_officer" => "乡镇（林场）",
        "county_office" => "县整治办",
        "expert" => "专家",
        "admin" => "管理员",
        other => other,
    }
}

/// The signature box's size: about a signature's on paper.
const SIGNATURE_W: f32 = 132.0;
const SIGNATURE_H: f32 = 40.0;

/// The section's signature line: `林业签字：` and the handwriting on a rule, beside it the
/// signer (section · role), the device time, whether the signature holds and the section hash
/// signed, shortened; `林业签字：未签字（必签）` when unsigned.
fn signature_block(l: &mut Layout<'_, '_>, s: &SectionRecord, strokes: &StrokesBlobs) {
    let label = format!("{}签字：", s.name);
    let Some(sig) = &s.signature else {
        let line = format!("{label}未签字{}", if s.required { "（必签）" } else { "" });
        l.room(BODY * LEADING + 12.0);
        l.y += 4.0;
        l.paragraph(&line, BODY);
        l.y += 8.0;
        return;
    };
    let label_w = l.m.width(&label, BODY);
    let box_x = MARGIN_X + label_w + 4.0;
    let text_x = box_x + SIGNATURE_W + 12.0;
    let text_w = MARGIN_X + CONTENT_W - text_x;
    let lines: Vec<String> = signature_text(s, sig)
        .iter()
        .flat_map(|t| l.m.wrap(t, BODY, text_w))
        .collect();
    let text_h = lines.len() as f32 * BODY * LEADING;
    let height = SIGNATURE_H.max(text_h);
    l.room(height + 12.0);
    l.y += 4.0;
    let top = l.y;
    // The handwriting sits on the rule, as on paper; the label on the same line.
    let rule = top + SIGNATURE_H;
    l.text(MARGIN_X, rule - 3.0, BODY, &label);
    l.line(box_x, rule, box_x + SIGNATURE_W, rule, 0.5);
    if let Some(rect) = Rect::from_xywh(box_x, top, SIGNATURE_W, SIGNATURE_H - 1.0) {
        ink::draw(l, rect, &Ink::of(strokes, &sig.strokes));
    }
    let text_top = top + (SIGNATURE_H - text_h).max(0.0) / 2.0;
    for (i, line) in lines.iter().enumerate() {
        let baseline = text_top + BODY + i as f32 * BODY * LEADING;
        l.text(text_x, baseline, BODY, line);
    }
    l.y = top + height + 8.0;
}

/// Beside the handwriting: `李林（林业 · 部门验收人）`, `设备时间 … 签名有效`, `节哈希 …`.
fn signature_text(s: &SectionRecord, sig: &SignatureRecord) -> [String; 3] {
    let member = |k: &str| sig.signer.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let name = Some(member("name"))
        .filter(|n| !n.is_empty())
        .unwrap_or(member("user"));
    let time = sig
        .signed_at_ms
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || "未知".to_owned(),
            |t| {
                t.with_timezone(&CHINA_STANDARD_TIME)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            },
        );
    let validity = match (sig.hash_holds, sig.signature_valid) {
        (true, true) => "签名有效".to_owned(),
        (holds, valid) => {
            let mut why = Vec::new();
            if !holds {
                why.push("签字后内容已改动");
            }
            if !valid {
                why.push("设备签名验证失败");
            }
            format!("签名无效（{}）", why.join("，"))
        }
    };
    let short = sig.content_hash.get(..16).unwrap_or(&sig.content_hash);
    [
        format!("{name}（{} · {}）", s.name, role_text(member("role"))),
        format!("设备时间 {time}　{validity}"),
        format!("节哈希 {short}…"),
    ]
}

/// One photo's page: where it belongs, the image fitted to the page, its caption.
fn photo_page(l: &mut Layout<'_, '_>, p: &PhotoPage, n: usize, total: usize) {
    l.new_page();
    l.paragraph(&format!("照片 {n} / {total}　{}", p.belongs_to), HEADING);
    l.y += 4.0;
    let caption = photo_caption(&p.photo);
    let caption_h: f32 = caption
        .iter()
        .map(|c| l.m.wrap(c, BODY, CONTENT_W).len() as f32 * BODY * LEADING)
        .sum();
    let image = p
        .jpeg
        .as_ref()
        .and_then(|j| Image::from_jpeg(krilla::Data::from(j.to_vec()), true).ok());
    match image {
        Some(image) => {
            let (w, h) = image.size();
            let (w, h) = (w.max(1) as f32, h.max(1) as f32);
            let box_h = BOTTOM - l.y - caption_h - 12.0;
            let scale = (CONTENT_W / w).min(box_h / h);
            let (dw, dh) = (w * scale, h * scale);
            if let Some(rect) = Rect::from_xywh(MARGIN_X + (CONTENT_W - dw) / 2.0, l.y, dw, dh) {
                l.images.push(image);
                let index = l.images.len() - 1;
                l.ops().push(Op::Image { rect, index });
            }
            l.y += dh + 10.0;
        }
        None => {
            l.paragraph("（缩略图缺失或无法读取）", BODY);
            l.y += 6.0;
        }
    }
    for line in caption {
        l.paragraph(&line, BODY);
    }
}

/// The caption: the place and time verdicts in Chinese, the EXIF and device times, the
/// phone's position, whether the two positions agree, whether the attestation holds.
fn photo_caption(p: &PhotoRecord) -> Vec<String> {
    let f = &p.findings;
    let s = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let exif_time = s(&f["exif"]["captured_at"]).map_or_else(
        || "无".to_owned(),
        |t| {
            if f["exif"]["captured_at_has_offset"].as_bool() == Some(true) {
                t
            } else {
                format!("{t}（无时区，按北京时间）")
            }
        },
    );
    let device_time = DateTime::from_timestamp_millis(p.captured_at_ms).map_or_else(
        || "未知".to_owned(),
        |t| {
            t.with_timezone(&CHINA_STANDARD_TIME)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    );
    let position = p.position.as_ref().map_or_else(
        || "手机未定位".to_owned(),
        |pos| {
            let g = |k: &str| {
                pos.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_owned()
            };
            let accuracy = pos
                .get("accuracy_m")
                .and_then(|v| v.as_str())
                .map_or_else(String::new, |a| format!("，精度 ±{a} 米"));
            format!("北纬 {}°，东经 {}°{accuracy}", g("lat"), g("lon"))
        },
    );
    let exif_position = match (s(&f["exif"]["lat"]), s(&f["exif"]["lon"])) {
        (Some(lat), Some(lon)) => format!("北纬 {lat}°，东经 {lon}°"),
        _ => "无".to_owned(),
    };
    let agree = match f["positions"]["disagree"].as_bool() {
        Some(true) => format!(
            "不一致（相距 {} 米，允许 {} 米）",
            s(&f["positions"]["metres"]).unwrap_or_default(),
            s(&f["positions"]["allowed_m"]).unwrap_or_default()
        ),
        Some(false) => format!(
            "一致（相距 {} 米）",
            s(&f["positions"]["metres"]).unwrap_or_default()
        ),
        None => "无法比较".to_owned(),
    };
    vec![
        format!(
            "地点（照片EXIF）：{}；地点（手机定位）：{}",
            location_text(&f["location"]["exif"]),
            location_text(&f["location"]["phone"])
        ),
        format!(
            "时间（照片EXIF）：{}；时间（手机）：{}",
            time_text(&f["time"]["exif"]),
            time_text(&f["time"]["phone"])
        ),
        format!("拍摄时间（EXIF）：{exif_time}；设备时间：{device_time}"),
        format!("手机位置：{position}；EXIF 位置：{exif_position}"),
        format!("两处位置：{agree}"),
        format!(
            "拍摄证明：{}；照片 SHA-256：{}",
            if p.attestation_valid {
                "设备签名有效"
            } else {
                "设备签名无效"
            },
            p.sha256
        ),
    ]
}

fn location_text(v: &serde_json::Value) -> String {
    let metres = v["metres"].as_str().unwrap_or("?");
    match v["verdict"].as_str() {
        Some("inside") => "在矿区范围内".to_owned(),
        Some("near") => format!("矿区边界外 {metres} 米（在容差内）"),
        Some("outside") => format!("矿区范围外 {metres} 米"),
        _ => "无法判断（无位置或无矿区范围）".to_owned(),
    }
}

fn time_text(v: &serde_json::Value) -> String {
    let days = v["days"].as_i64().unwrap_or_default();
    match v["verdict"].as_str() {
        Some("same_day") => "与验收同日".to_owned(),
        Some("within_days") => format!("与验收相差 {days} 天（允许范围内）"),
        Some("outside") => format!("与验收相差 {days} 天（超出允许范围）"),
        _ => "无拍摄时间".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_the_form_writes_them() {
        assert_eq!(answer_text(&serde_json::json!("pass"), None), "达标");
        assert_eq!(answer_text(&serde_json::json!("85.5"), Some("%")), "85.5 %");
        assert_eq!(
            answer_text(&serde_json::json!("120米"), Some("米")),
            "120米"
        );
        assert_eq!(answer_text(&serde_json::Value::Null, Some("米")), "未填");
    }
}
