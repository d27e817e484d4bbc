//! The assembled record as a PDF laid out like the county's paper form: A4 portrait, the title
//! (the template's, e.g. 《上高县停产非煤矿山生态环境整治达标验收表》) with the mine's name, the
//! header block (矿山名称, 采矿许可证号, 采矿权人, 乡镇（林场）, 处置方式, 验收日期, 第N次验收), the
//! acceptance table of each department's section (序号, 验收项目, 验收标准, 验收结果, 问题/整改要求,
//! 照片) with its signature line, the conclusion with the open conflicts and the photos still
//! awaiting upload, then one page per photo (its large thumbnail, embedded as the JPEG it is,
//! with a caption of place and time). Every page's footer has 第 x 页 共 y 页 and the record's
//! content hash, so a printed page names the exact document it comes from.
//!
//! Vocabulary:
//! - **CJK font**: Chinese needs a font with its glyphs; none is bundled. `pdf_font_file` names
//!   one, else the usual Debian paths are searched ([`FONT_CANDIDATES`], `fonts-noto-cjk`
//!   first). Without one the export answers 503 naming the font and the package, never a PDF of
//!   empty boxes. A TrueType collection (`.ttc`) holds several faces; the Simplified Chinese one
//!   (family name with ` SC`) is taken, else the first face that has the glyphs of 验收.
//! - **layout**: a small two-pass typesetter: pages are laid out as lists of drawing operations
//!   (text lines, rules, images), then written with the page count known. Text is set glyph by
//!   glyph from the font's character map and advances (no shaping: Chinese and the Latin digits
//!   of a form need none), lines break at any CJK character and between Latin words.
//!
//! Generation is CPU work (font subsetting, compression): [`record_pdf`] runs it on the
//! blocking pool.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use chrono::DateTime;
use krilla::{
    Document,
    geom::{PathBuilder, Point, Rect, Size},
    image::Image,
    metadata::Metadata,
    page::PageSettings,
    paint::{Fill, Stroke},
    text::{Font, GlyphId, KrillaGlyph},
};
use skrifa::{
    FontRef, MetadataProvider,
    instance::{LocationRef, Size as FontSize},
    raw::FileRef,
    string::StringId,
};
use uuid::Uuid;

use crate::{
    AppState,
    blobs::BlobHash,
    error::{AppError, Result},
    identity::auth::AuthUser,
    photos::geofence::CHINA_STANDARD_TIME,
    records::{self, AssembledRecord, ItemRecord, PhotoRecord, SectionRecord},
    store::StoreError,
};

/// Where a CJK font is looked for when `pdf_font_file` is unset, in order: Debian's
/// `fonts-noto-cjk` (sans, then serif), then the WenQuanYi and Arphic fonts.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
];

/// The characters a usable font must have (a Latin-only font would print boxes).
const PROBE: &str = "验收合格矿山";

/// A CJK font file and the face of it to use.
#[derive(Debug)]
pub struct CjkFont {
    pub path: PathBuf,
    pub index: u32,
    data: Arc<Vec<u8>>,
}

/// Fonts already read, by the setting that found them (a font file is ~20 MB: read once).
static FONTS: Mutex<Option<HashMap<Option<PathBuf>, Arc<CjkFont>>>> = Mutex::new(None);

/// The 503 answer when no usable CJK font is there.
fn font_missing(detail: &str) -> AppError {
    AppError::FontMissing(format!(
        "PDF export needs a CJK (Chinese) font: {detail}. Install Debian's fonts-noto-cjk \
         (apt-get install fonts-noto-cjk, which provides \
         /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc) or set pdf_font_file to a \
         .ttf/.otf/.ttc with Simplified Chinese glyphs"
    ))
}

/// The CJK font of `setting` (a file), or of the first of [`FONT_CANDIDATES`] that exists.
pub fn cjk_font(setting: Option<&Path>) -> Result<Arc<CjkFont>> {
    let key = setting.map(Path::to_path_buf);
    if let Some(font) = FONTS
        .lock()
        .ok()
        .and_then(|f| f.as_ref().and_then(|m| m.get(&key).cloned()))
    {
        return Ok(font);
    }
    let path = match setting {
        Some(p) if p.is_file() => p.to_path_buf(),
        Some(p) => {
            return Err(font_missing(&format!(
                "pdf_font_file {} does not exist",
                p.display()
            )));
        }
        None => FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                font_missing(&format!("none found at {}", FONT_CANDIDATES.join(", ")))
            })?,
    };
    let data = std::fs::read(&path)
        .map_err(|e| font_missing(&format!("{} cannot be read ({e})", path.display())))?;
    let index = cjk_face(&data).ok_or_else(|| {
        font_missing(&format!(
            "{} has no face with Chinese glyphs",
            path.display()
        ))
    })?;
    let font = Arc::new(CjkFont {
        path,
        index,
        data: Arc::new(data),
    });
    if let Ok(mut fonts) = FONTS.lock() {
        fonts
            .get_or_insert_with(HashMap::new)
            .insert(key, font.clone());
    }
    Ok(font)
}

/// The face of a font file to use: the Simplified Chinese one of a collection, else the first
/// with the [`PROBE`] glyphs.
fn cjk_face(data: &[u8]) -> Option<u32> {
    let file = FileRef::new(data).ok()?;
    let faces: Vec<(u32, FontRef<'_>)> = file
        .fonts()
        .enumerate()
        .filter_map(|(i, f)| Some((u32::try_from(i).ok()?, f.ok()?)))
        .filter(|(_, f)| {
            let map = f.charmap();
            PROBE.chars().all(|c| map.map(c).is_some())
        })
        .collect();
    let family = |f: &FontRef<'_>| {
        f.localized_strings(StringId::FAMILY_NAME)
            .english_or_first()
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    faces
        .iter()
        .find(|(_, f)| family(f).contains(" SC"))
        .or(faces.first())
        .map(|(i, _)| *i)
}

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
    let title = template.title.clone();
    let (bytes, pages) =
        tokio::task::spawn_blocking(move || render(&record, &title, &photos, &font))
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

// ───────────────────────────── layout ─────────────────────────────

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 40.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;
const TOP: f32 = 48.0;
/// Content ends here; the footer is below.
const BOTTOM: f32 = PAGE_H - 62.0;
/// Text sizes: title, headings, body, table cells, footer.
const TITLE: f32 = 15.0;
const HEADING: f32 = 11.5;
const BODY: f32 = 9.5;
const CELL: f32 = 8.5;
const FOOT: f32 = 7.5;
/// Line height as a multiple of the text size.
const LEADING: f32 = 1.4;
/// Inner padding of a table cell.
const PAD: f32 = 3.5;
/// The acceptance table's columns: 序号, 验收项目, 验收标准, 验收结果, 问题/整改要求, 照片.
const COLUMNS: [(&str, f32); 6] = [
    ("序号", 26.0),
    ("验收项目", 92.0),
    ("验收标准", 144.0),
    ("验收结果", 96.0),
    ("问题/整改要求", 111.28),
    ("照片", 46.0),
];

/// One drawing operation of a page (y grows downwards, text at its baseline).
#[derive(Debug)]
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
    },
    Image {
        rect: Rect,
        index: usize,
    },
}

/// Advances of the font's glyphs, for measuring and setting text.
struct Metrics<'a> {
    charmap: skrifa::charmap::Charmap<'a>,
    glyphs: skrifa::metrics::GlyphMetrics<'a>,
    upem: f32,
}

impl<'a> Metrics<'a> {
    fn new(font: &FontRef<'a>) -> Self {
        let upem = f32::from(
            font.metrics(FontSize::unscaled(), LocationRef::default())
                .units_per_em,
        );
        Metrics {
            charmap: font.charmap(),
            glyphs: font.glyph_metrics(FontSize::unscaled(), LocationRef::default()),
            upem: upem.max(1.0),
        }
    }

    /// Glyph id and advance (in em) of `c`; `.notdef` for a character the font lacks.
    fn glyph(&self, c: char) -> (u32, f32) {
        let id = self.charmap.map(c).unwrap_or_default();
        let advance = self.glyphs.advance_width(id).unwrap_or(self.upem) / self.upem;
        (id.to_u32(), advance)
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.glyph(c).1).sum::<f32>() * size
    }

    fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let (id, advance) = self.glyph(c);
                KrillaGlyph::new(
                    GlyphId::new(id),
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                )
            })
            .collect()
    }

    /// `text` broken into lines of at most `width` points: at newlines, at any CJK character,
    /// and between Latin words (a word longer than a line is broken too).
    fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            let mut line_w = 0.0;
            for token in tokens(paragraph) {
                let w = self.width(token, size);
                if line_w + w > width && !line.is_empty() {
                    // No closing punctuation at a line's start: the character before it goes
                    // down with it.
                    let carried = if token.chars().all(closing_punctuation) {
                        line.pop()
                    } else {
                        None
                    };
                    lines.push(std::mem::take(&mut line).trim_end().to_owned());
                    line_w = 0.0;
                    if let Some(c) = carried {
                        line.push(c);
                        line_w = self.glyph(c).1 * size;
                    }
                    if token == " " {
                        continue;
                    }
                }
                if w > width {
                    for c in token.chars() {
                        let cw = self.glyph(c).1 * size;
                        if line_w + cw > width && !line.is_empty() {
                            lines.push(std::mem::take(&mut line));
                            line_w = 0.0;
                        }
                        line.push(c);
                        line_w += cw;
                    }
                } else {
                    line.push_str(token);
                    line_w += w;
                }
            }
            lines.push(line.trim_end().to_owned());
        }
        lines
    }
}

/// Punctuation that may not begin a line (禁则).
fn closing_punctuation(c: char) -> bool {
    "）)》」』】〕，。、；：！？,.;:!?%".contains(c)
}

/// Break opportunities: a run of non-space ASCII is one token, anything else one character.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let word = c.is_ascii() && !c.is_ascii_whitespace();
        match (word, start) {
            (true, None) => start = Some(i),
            (true, Some(_)) => {}
            (false, s) => {
                if let Some(s) = s {
                    out.push(&text[s..i]);
                    start = None;
                }
                out.push(&text[i..i + c.len_utf8()]);
            }
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// Pages being laid out.
struct Layout<'m, 'a> {
    m: &'m Metrics<'a>,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout<'_, '_> {
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.new_page();
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn text(&mut self, x: f32, y: f32, size: f32, text: &str) {
        if !text.is_empty() {
            self.ops().push(Op::Text {
                x,
                y,
                size,
                text: text.to_owned(),
            });
        }
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, width: f32) {
        self.ops().push(Op::Line {
            x1,
            y1,
            x2,
            y2,
            width,
        });
    }

    /// Make room for `height` points, on a new page if this one has not got it.
    fn room(&mut self, height: f32) -> bool {
        if self.y + height > BOTTOM && self.y > TOP {
            self.new_page();
            return true;
        }
        false
    }

    /// A paragraph across the content width, wrapped.
    fn paragraph(&mut self, text: &str, size: f32) {
        for line in self.m.wrap(text, size, CONTENT_W) {
            self.room(size * LEADING);
            self.text(MARGIN_X, self.y + size, size, &line);
            self.y += size * LEADING;
        }
    }

    fn centered(&mut self, text: &str, size: f32) {
        for line in self.m.wrap(text, size, CONTENT_W) {
            let w = self.m.width(&line, size);
            self.text(MARGIN_X + (CONTENT_W - w) / 2.0, self.y + size, size, &line);
            self.y += size * LEADING;
        }
    }

    /// The height of a table row of `cells` in columns of `widths`.
    fn row_height(&self, cells: &[String], widths: &[f32], size: f32) -> (f32, Vec<Vec<String>>) {
        let wrapped: Vec<Vec<String>> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| self.m.wrap(c, size, w - 2.0 * PAD))
            .collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        (lines as f32 * size * LEADING + 2.0 * PAD, wrapped)
    }

    /// One table row at the cursor, with its borders (the top one when `top`).
    fn row(&mut self, wrapped: &[Vec<String>], widths: &[f32], height: f32, size: f32, top: bool) {
        let y0 = self.y;
        let right = MARGIN_X + widths.iter().sum::<f32>();
        if top {
            self.line(MARGIN_X, y0, right, y0, 0.8);
        }
        self.line(MARGIN_X, y0 + height, right, y0 + height, 0.5);
        let mut x = MARGIN_X;
        self.line(x, y0, x, y0 + height, 0.8);
        for (lines, w) in wrapped.iter().zip(widths) {
            for (i, line) in lines.iter().enumerate() {
                let baseline = y0 + PAD + size * 0.95 + i as f32 * size * LEADING;
                self.text(x + PAD, baseline, size, line);
            }
            x += w;
            self.line(x, y0, x, y0 + height, 0.8);
        }
        self.y += height;
    }
}

/// Render the record and its photo pages; returns the PDF and its page count.
pub fn render(
    record: &AssembledRecord,
    title: &str,
    photos: &[PhotoPage],
    font: &CjkFont,
) -> std::result::Result<(Vec<u8>, usize), String> {
    let face = FontRef::from_index(font.data.as_slice(), font.index)
        .map_err(|e| format!("font {}: {e}", font.path.display()))?;
    let metrics = Metrics::new(&face);
    let mut images = Vec::new();
    let mut layout = Layout {
        m: &metrics,
        pages: Vec::new(),
        y: TOP,
    };
    record_pages(&mut layout, record, title);
    for (n, page) in photos.iter().enumerate() {
        photo_page(&mut layout, page, n + 1, photos.len(), &mut images);
    }

    let pdf_font = Font::new(krilla::Data::from(font.data.clone()), font.index)
        .ok_or_else(|| format!("font {} face {}", font.path.display(), font.index))?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(format!("{title} — {}", record.mine.name))
            .description(format!("content hash {}", record.content_hash))
            .language("zh-CN".to_owned())
            .creator("Yanshou".to_owned()),
    );
    let total = layout.pages.len();
    for (n, ops) in layout.pages.iter().enumerate() {
        let settings =
            PageSettings::new(Size::from_wh(PAGE_W, PAGE_H).ok_or("A4 is a valid size")?);
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        let footer = [
            Op::Line {
                x1: MARGIN_X,
                y1: PAGE_H - 48.0,
                x2: PAGE_W - MARGIN_X,
                y2: PAGE_H - 48.0,
                width: 0.4,
            },
            Op::Text {
                x: MARGIN_X,
                y: PAGE_H - 36.0,
                size: FOOT,
                text: format!("记录内容哈希 SHA-256：{}", record.content_hash),
            },
            Op::Text {
                x: PAGE_W - MARGIN_X - metrics.width(&page_number(n + 1, total), FOOT),
                y: PAGE_H - 36.0,
                size: FOOT,
                text: page_number(n + 1, total),
            },
            Op::Text {
                x: MARGIN_X,
                y: PAGE_H - 25.0,
                size: FOOT,
                text: format!(
                    "{} · 第{}次验收 · 记录 {}",
                    record.mine.name, record.round_no, record.record_id
                ),
            },
        ];
        for op in ops.iter().chain(&footer) {
            match op {
                Op::Text { x, y, size, text } => {
                    surface.set_fill(Some(Fill::default()));
                    surface.set_stroke(None);
                    surface.draw_glyphs(
                        Point::from_xy(*x, *y),
                        &metrics.glyphs(text),
                        pdf_font.clone(),
                        text,
                        *size,
                        false,
                    );
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    width,
                } => {
                    let mut path = PathBuilder::new();
                    path.move_to(*x1, *y1);
                    path.line_to(*x2, *y2);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: *width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Image { rect, index } => {
                    let image: &Image = &images[*index];
                    surface.push_transform(&krilla::geom::Transform::from_translate(
                        rect.left(),
                        rect.top(),
                    ));
                    if let Some(size) = Size::from_wh(rect.width(), rect.height()) {
                        surface.draw_image(image.clone(), size);
                    }
                    surface.pop();
                }
            }
        }
        surface.finish();
        page.finish();
    }
    let bytes = document.finish().map_err(|e| format!("{e:?}"))?;
    Ok((bytes, total))
}

fn page_number(n: usize, total: usize) -> String {
    format!("第 {n} 页 共 {total} 页")
}

/// The form: title, header block, the sections' tables and signatures, the conclusion.
fn record_pages(l: &mut Layout<'_, '_>, r: &AssembledRecord, title: &str) {
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
        section_table(l, section, n + 1);
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

fn section_table(l: &mut Layout<'_, '_>, s: &SectionRecord, n: usize) {
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
    let signature = signature_line(s);
    let lines = l.m.wrap(&signature, BODY, CONTENT_W);
    l.room(lines.len() as f32 * BODY * LEADING + 8.0);
    l.y += 4.0;
    l.paragraph(&signature, BODY);
    l.y += 8.0;
}

/// 一, 二, … for the section headings (the form has at most a dozen sections).
fn chinese_number(n: usize) -> String {
    const DIGITS: [&str; 11] = [
        "〇", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
    ];
    match n {
        0..=10 => DIGITS[n].to_owned(),
        11..=19 => format!("十{}", DIGITS[n - 10]),
        _ => n.to_string(),
    }
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

/// `签字：…（部门 · 角色） 设备时间 … 签名有效 · 节哈希 …`
fn signature_line(s: &SectionRecord) -> String {
    let Some(sig) = &s.signature else {
        return format!(
            "{}签字：未签字{}",
            s.name,
            if s.required { "（必签）" } else { "" }
        );
    };
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
    format!(
        "{}签字：{}（{} · {}）　设备时间 {}　{}　节哈希 {}…",
        s.name,
        name,
        s.name,
        role_text(member("role")),
        time,
        validity,
        short
    )
}

/// One photo's page: where it belongs, the image fitted to the page, its caption.
fn photo_page(
    l: &mut Layout<'_, '_>,
    p: &PhotoPage,
    n: usize,
    total: usize,
    images: &mut Vec<Image>,
) {
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
                images.push(image);
                let index = images.len() - 1;
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
    fn latin_words_stay_whole_and_cjk_breaks_anywhere() {
        assert_eq!(tokens("ab cd验收"), vec!["ab", " ", "cd", "验", "收"]);
        assert!(closing_punctuation('）') && !closing_punctuation('（'));
    }

    #[test]
    fn answers_read_as_the_form_writes_them() {
        assert_eq!(answer_text(&serde_json::json!("pass"), None), "达标");
        assert_eq!(answer_text(&serde_json::json!("85.5"), Some("%")), "85.5 %");
        assert_eq!(
            answer_text(&serde_json::json!("120米"), Some("米")),
            "120米"
        );
        assert_eq!(answer_text(&serde_json::Value::Null, Some("米")), "未填");
        assert_eq!(chinese_number(12), "十二");
    }
}
