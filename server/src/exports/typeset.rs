//! The small typesetter behind the PDF exports: the CJK font, measuring and breaking lines,
//! pages laid out as lists of drawing operations, and writing them with `krilla`.
//!
//! Vocabulary:
//! - **CJK font**: Chinese needs a font with its glyphs; none is bundled. `pdf_font_file` names
//!   one, else the usual Debian paths are searched ([`FONT_CANDIDATES`], `fonts-noto-cjk`
//!   first). Without one an export answers 503 naming the font and the package, never a PDF of
//!   empty boxes. A TrueType collection (`.ttc`) holds several faces; the Simplified Chinese one
//!   (family name with ` SC`) is taken, else the first face that has the glyphs of 验收.
//! - **layout** ([`Layout`]): two passes: pages are laid out as lists of [`Op`]s (text lines,
//!   rules, images, handwriting), then written ([`write`]) with the page count known, so every
//!   footer can say 第 x 页 共 y 页. Text is set glyph by glyph from the font's character map and
//!   advances (no shaping: Chinese and the Latin digits of a form need none).
//! - **line breaking** ([`Metrics::wrap`]): at newlines, at any CJK character and between Latin
//!   words, with the Chinese rules (禁则) that no closing punctuation begins a line and no opening
//!   punctuation ends one.
//!
//! Coordinates are PDF points on an A4 page, y growing downwards, text placed at its baseline.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use krilla::{
    Document,
    color::rgb,
    geom::{PathBuilder, Point, Rect, Size, Transform},
    image::Image,
    metadata::Metadata,
    num::NormalizedF32,
    page::PageSettings,
    paint::{Fill, LineCap, LineJoin, Stroke},
    text::{Font, GlyphId, KrillaGlyph},
};
use skrifa::{
    FontRef, MetadataProvider,
    instance::{LocationRef, Size as FontSize},
    raw::FileRef,
    string::StringId,
};

use crate::error::{AppError, Result};

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

impl CjkFont {
    /// The face to measure with.
    pub(super) fn face(&self) -> std::result::Result<FontRef<'_>, String> {
        FontRef::from_index(self.data.as_slice(), self.index)
            .map_err(|e| format!("font {}: {e}", self.path.display()))
    }
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

// ───────────────────────────── layout ─────────────────────────────

pub(super) const PAGE_W: f32 = 595.28;
pub(super) const PAGE_H: f32 = 841.89;
pub(super) const MARGIN_X: f32 = 40.0;
pub(super) const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;
pub(super) const TOP: f32 = 48.0;
/// Content ends here; the footer is below.
pub(super) const BOTTOM: f32 = PAGE_H - 62.0;
/// Text sizes: title, headings, body, table cells, footer.
pub(super) const TITLE: f32 = 15.0;
pub(super) const HEADING: f32 = 11.5;
pub(super) const BODY: f32 = 9.5;
pub(super) const CELL: f32 = 8.5;
pub(super) const FOOT: f32 = 7.5;
/// Line height as a multiple of the text size.
pub(super) const LEADING: f32 = 1.4;
/// Inner padding of a table cell.
pub(super) const PAD: f32 = 3.5;
/// Handwriting ink: a dark blue, as a ballpoint pen's.
const INK: (u8, u8, u8) = (18, 38, 120);

/// One drawing operation of a page (y grows downwards, text at its baseline).
#[derive(Debug)]
pub(super) enum Op {
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
    /// Handwriting: each polyline a stroke of the pen, drawn in [`INK`] with round caps and
    /// joins (a single point is a dot).
    Ink {
        strokes: Vec<Vec<(f32, f32)>>,
        width: f32,
    },
    /// Text in a colour, turned by `angle` degrees (clockwise) about its start: watermarks and
    /// marks such as 草稿.
    Mark {
        x: f32,
        y: f32,
        size: f32,
        text: String,
        rgb: (u8, u8, u8),
        angle: f32,
    },
}

/// Advances of the font's glyphs, for measuring and setting text.
pub(super) struct Metrics<'a> {
    charmap: skrifa::charmap::Charmap<'a>,
    glyphs: skrifa::metrics::GlyphMetrics<'a>,
    upem: f32,
}

impl<'a> Metrics<'a> {
    pub(super) fn new(font: &FontRef<'a>) -> Self {
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

    pub(super) fn width(&self, text: &str, size: f32) -> f32 {
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

    /// `text` broken into lines of at most `width` points at `size` ([`break_lines`]).
    pub(super) fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
        break_lines(text, width, &|s| self.width(s, size))
    }
}

/// `text` broken into lines of at most `width` (as `measure` measures): at newlines, at any CJK
/// character, and between Latin words (a word longer than a line is broken too). No line
/// begins with closing punctuation (the character or word before it goes down with it) and
/// none ends with opening punctuation (it goes down to what it opens).
fn break_lines(text: &str, width: f32, measure: &dyn Fn(&str) -> f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut line_w = 0.0;
        for token in tokens(paragraph) {
            let w = measure(token);
            if line_w + w > width && !line.is_empty() {
                let mut keep = line.len();
                if token.chars().all(closing_punctuation) {
                    keep = last_token_start(&line);
                }
                while let Some(c) = line[..keep].chars().next_back() {
                    if !opening_punctuation(c) {
                        break;
                    }
                    keep -= c.len_utf8();
                }
                // A line of nothing but what would go down stays as it is.
                if line[..keep].trim().is_empty() {
                    keep = line.len();
                }
                let carried = line.split_off(keep);
                lines.push(std::mem::take(&mut line).trim_end().to_owned());
                line_w = measure(&carried);
                line = carried;
                if token == " " {
                    continue;
                }
            }
            if w > width {
                for (i, c) in token.char_indices() {
                    let cw = measure(&token[i..i + c.len_utf8()]);
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

/// Punctuation that may not begin a line (禁则).
fn closing_punctuation(c: char) -> bool {
    "）)》」』】〕〉”’，。、；：！？,.;:!?%".contains(c)
}

/// Punctuation that may not end a line (禁则).
fn opening_punctuation(c: char) -> bool {
    "（(《「『【〔〈“‘".contains(c)
}

/// Where the last break opportunity of `line` begins (its last CJK character, or its last
/// Latin word).
fn last_token_start(line: &str) -> usize {
    let mut start = line.len();
    for (i, c) in line.char_indices().rev() {
        let word = c.is_ascii() && !c.is_ascii_whitespace();
        if i + c.len_utf8() == line.len() {
            start = i;
            if !word {
                break;
            }
        } else if word {
            start = i;
        } else {
            break;
        }
    }
    start
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

/// Pages being laid out, and the images they show.
pub(super) struct Layout<'m, 'a> {
    pub(super) m: &'m Metrics<'a>,
    pub(super) pages: Vec<Vec<Op>>,
    /// The cursor: the top of what comes next.
    pub(super) y: f32,
    pub(super) images: Vec<Image>,
}

impl<'m, 'a> Layout<'m, 'a> {
    pub(super) fn new(m: &'m Metrics<'a>) -> Self {
        Layout {
            m,
            pages: Vec::new(),
            y: TOP,
            images: Vec::new(),
        }
    }

    pub(super) fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    pub(super) fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.new_page();
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    pub(super) fn text(&mut self, x: f32, y: f32, size: f32, text: &str) {
        if !text.is_empty() {
            self.ops().push(Op::Text {
                x,
                y,
                size,
                text: text.to_owned(),
            });
        }
    }

    pub(super) fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, width: f32) {
        self.ops().push(Op::Line {
            x1,
            y1,
            x2,
            y2,
            width,
        });
    }

    /// Make room for `height` points, on a new page if this one has not got it.
    pub(super) fn room(&mut self, height: f32) -> bool {
        if self.y + height > BOTTOM && self.y > TOP {
            self.new_page();
            return true;
        }
        false
    }

    /// A paragraph across the content width, wrapped.
    pub(super) fn paragraph(&mut self, text: &str, size: f32) {
        self.paragraph_at(MARGIN_X, CONTENT_W, text, size);
    }

    /// A paragraph in the column `x`…`x + width`, wrapped, continued on the next page when it
    /// does not fit.
    pub(super) fn paragraph_at(&mut self, x: f32, width: f32, text: &str, size: f32) {
        for line in self.m.wrap(text, size, width) {
            self.room(size * LEADING);
            self.text(x, self.y + size, size, &line);
            self.y += size * LEADING;
        }
    }

    /// `label` at the margin and `text` wrapped beside it, every line of it indented by the
    /// label's width (a numbered list item: `1．…`).
    pub(super) fn hanging(&mut self, label: &str, text: &str, size: f32) {
        let indent = self.m.width(label, size);
        let lines = self.m.wrap(text, size, CONTENT_W - indent);
        for (i, line) in lines.iter().enumerate() {
            self.room(size * LEADING);
            if i == 0 {
                self.text(MARGIN_X, self.y + size, size, label);
            }
            self.text(MARGIN_X + indent, self.y + size, size, line);
            self.y += size * LEADING;
        }
    }

    pub(super) fn centered(&mut self, text: &str, size: f32) {
        for line in self.m.wrap(text, size, CONTENT_W) {
            let w = self.m.width(&line, size);
            self.text(MARGIN_X + (CONTENT_W - w) / 2.0, self.y + size, size, &line);
            self.y += size * LEADING;
        }
    }

    /// The height of a table row of `cells` in columns of `widths`.
    pub(super) fn row_height(
        &self,
        cells: &[String],
        widths: &[f32],
        size: f32,
    ) -> (f32, Vec<Vec<String>>) {
        let wrapped: Vec<Vec<String>> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| self.m.wrap(c, size, w - 2.0 * PAD))
            .collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        (lines as f32 * size * LEADING + 2.0 * PAD, wrapped)
    }

    /// One table row at the cursor, with its borders (the top one when `top`); returns the
    /// cells' rectangles, for what a cell shows beside text (a signature).
    pub(super) fn row(
        &mut self,
        wrapped: &[Vec<String>],
        widths: &[f32],
        height: f32,
        size: f32,
        top: bool,
    ) -> Vec<Rect> {
        let y0 = self.y;
        let right = MARGIN_X + widths.iter().sum::<f32>();
        if top {
            self.line(MARGIN_X, y0, right, y0, 0.8);
        }
        self.line(MARGIN_X, y0 + height, right, y0 + height, 0.5);
        let mut x = MARGIN_X;
        let mut cells = Vec::with_capacity(widths.len());
        self.line(x, y0, x, y0 + height, 0.8);
        for (lines, w) in wrapped.iter().zip(widths) {
            for (i, line) in lines.iter().enumerate() {
                let baseline = y0 + PAD + size * 0.95 + i as f32 * size * LEADING;
                self.text(x + PAD, baseline, size, line);
            }
            cells.extend(Rect::from_xywh(x, y0, *w, height));
            x += w;
            self.line(x, y0, x, y0 + height, 0.8);
        }
        self.y += height;
        cells
    }

    /// Handwriting on the current page (strokes in page coordinates).
    pub(super) fn ink(&mut self, strokes: Vec<Vec<(f32, f32)>>, width: f32) {
        if !strokes.is_empty() {
            self.ops().push(Op::Ink { strokes, width });
        }
    }
}

/// What every page has around its content: drawn `under` it (a watermark) and `over` it (the
/// footer).
#[derive(Debug, Default)]
pub(super) struct Frame {
    pub(super) under: Vec<Op>,
    pub(super) over: Vec<Op>,
}

/// Write laid-out pages as a PDF, each in the `frame` of its number and the page count (both
/// from 1); returns the file.
pub(super) fn write(
    font: &CjkFont,
    metrics: &Metrics<'_>,
    layout: &Layout<'_, '_>,
    metadata: Metadata,
    frame: impl Fn(usize, usize) -> Frame,
) -> std::result::Result<Vec<u8>, String> {
    let pdf_font = Font::new(krilla::Data::from(font.data.clone()), font.index)
        .ok_or_else(|| format!("font {} face {}", font.path.display(), font.index))?;
    let mut document = Document::new();
    document.set_metadata(metadata);
    let total = layout.pages.len();
    for (n, ops) in layout.pages.iter().enumerate() {
        let settings =
            PageSettings::new(Size::from_wh(PAGE_W, PAGE_H).ok_or("A4 is a valid size")?);
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        let Frame { under, over } = frame(n + 1, total);
        for op in under.iter().chain(ops).chain(&over) {
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
                Op::Mark {
                    x,
                    y,
                    size,
                    text,
                    rgb: (r, g, b),
                    angle,
                } => {
                    surface.push_transform(&Transform::from_rotate_at(*angle, *x, *y));
                    surface.set_fill(Some(Fill {
                        paint: rgb::Color::new(*r, *g, *b).into(),
                        ..Fill::default()
                    }));
                    surface.set_stroke(None);
                    surface.draw_glyphs(
                        Point::from_xy(*x, *y),
                        &metrics.glyphs(text),
                        pdf_font.clone(),
                        text,
                        *size,
                        false,
                    );
                    surface.pop();
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
                Op::Ink { strokes, width } => {
                    if let Some(path) = ink_path(strokes) {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb::Color::new(INK.0, INK.1, INK.2).into(),
                            width: *width,
                            line_cap: LineCap::Round,
                            line_join: LineJoin::Round,
                            opacity: NormalizedF32::ONE,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Image { rect, index } => {
                    let Some(image) = layout.images.get(*index) else {
                        continue;
                    };
                    surface.push_transform(&Transform::from_translate(rect.left(), rect.top()));
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
    document.finish().map_err(|e| format!("{e:?}"))
}

/// One path of all the strokes of a signature: each stroke a smooth curve through the
/// midpoints of its segments (quadratic pieces with the points as control points, the way a
/// pen's samples are usually joined), a lone point a dot.
fn ink_path(strokes: &[Vec<(f32, f32)>]) -> Option<krilla::geom::Path> {
    let mut path = PathBuilder::new();
    for stroke in strokes {
        let Some(&(x0, y0)) = stroke.first() else {
            continue;
        };
        path.move_to(x0, y0);
        match stroke.as_slice() {
            // A dot: round caps on a hair of a line (a path of no length may be dropped).
            [_] => path.line_to(x0 + 0.01, y0),
            [_, (x, y)] => path.line_to(*x, *y),
            points => {
                for pair in points[1..points.len() - 1].windows(2) {
                    let ((cx, cy), (nx, ny)) = (pair[0], pair[1]);
                    path.quad_to(cx, cy, (cx + nx) / 2.0, (cy + ny) / 2.0);
                }
                if let Some(&(x, y)) = points.last() {
                    path.line_to(x, y);
                }
            }
        }
    }
    path.finish()
}

/// 第 x 页 共 y 页
pub(super) fn page_number(n: usize, total: usize) -> String {
    format!("第 {n} 页 共 {total} 页")
}

/// The footer of every page of a document: a rule, the document's hash line with `第 n 页 共 m
/// 页` at the right, and a line saying which document it is.
pub(super) fn footer(
    metrics: &Metrics,
    n: usize,
    total: usize,
    hash_line: String,
    which: String,
) -> [Op; 4] {
    let number = page_number(n, total);
    [
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
            text: hash_line,
        },
        Op::Text {
            x: PAGE_W - MARGIN_X - metrics.width(&number, FOOT),
            y: PAGE_H - 36.0,
            size: FOOT,
            text: number,
        },
        Op::Text {
            x: MARGIN_X,
            y: PAGE_H - 25.0,
            size: FOOT,
            text: which,
        },
    ]
}

/// 一, 二, … for headings.
pub(super) fn chinese_number(n: usize) -> String {
    const DIGITS: [&str; 11] = [
        "〇", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
    ];
    match n {
        0..=10 => DIGITS[n].to_owned(),
        11..=19 => format!("十{}", DIGITS[n - 10]),
        _ => n.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn latin_words_stay_whole_and_cjk_breaks_anywhere() {
        assert_eq!(tokens("ab cd验收"), vec!["ab", " ", "cd", "验", "收"]);
        assert!(closing_punctuation('）') && !closing_punctuation('（'));
        assert!(opening_punctuation('《') && !opening_punctuation('》'));
        assert_eq!(chinese_number(12), "十二");
    }

    #[test]
    fn the_last_break_opportunity_is_a_cjk_character_or_a_latin_word() {
        assert_eq!(last_token_start("验收合格"), "验收合".len());
        assert_eq!(last_token_start("验收 SHA256"), "验收 ".len());
        assert_eq!(last_token_start("ab"), 0);
    }

    /// Every character one unit wide.
    fn wrap(text: &str, width: f32) -> Vec<String> {
        break_lines(text, width, &|s| s.chars().count() as f32)
    }

    #[test]
    fn closing_punctuation_takes_the_character_before_it_down() {
        assert_eq!(wrap("验收合格。好", 4.0), ["验收合", "格。好"]);
        assert_eq!(wrap("面积 12.5%。", 6.0), ["面积", "12.5%。"]);
        assert_eq!(wrap("合格 ab，", 5.0), ["合格", "ab，"]);
    }

    #[test]
    fn opening_punctuation_goes_down_to_what_it_opens() {
        assert_eq!(wrap("验收《合格》", 3.0), ["验收", "《合", "格》"]);
        // Nothing but punctuation to carry: the line stays as it is.
        assert_eq!(wrap("《《《《", 2.0), ["《《", "《《"]);
    }

    #[test]
    fn long_latin_words_break_and_newlines_are_kept() {
        assert_eq!(wrap("abcdefg", 3.0), ["abc", "def", "g"]);
        assert_eq!(wrap("一\n二", 9.0), ["一", "二"]);
    }
}
