//! What a file is, by its first bytes, and how big it claims to be, before anything is decoded.
//!
//! The kind comes from magic bytes, never from a file name or a `Content-Type`. Dimensions come
//! from the headers (JPEG frame header, PNG `IHDR`), so the caps on bytes and on pixels are
//! checked before a decoder allocates anything: a 30-byte PNG that claims 100 000 × 100 000
//! pixels is refused here, not after trying to allocate 30 GB.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The image kinds ingest processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    Jpeg,
    Png,
}

impl ImageKind {
    /// The media type of files of this kind.
    pub fn media_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
        }
    }
}

/// Caps checked before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest file, bytes.
    pub max_bytes: usize,
    /// Largest width × height, pixels (a decoded RGB image takes three bytes a pixel).
    pub max_pixels: u64,
}

impl Limits {
    /// 30 MB: a phone's JPEG is 2–8 MB, a 50-megapixel one about 20 MB.
    pub const DEFAULT_MAX_BYTES: usize = 30 * 1024 * 1024;
    /// 50 megapixels: the largest phone sensors' full-resolution mode.
    pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_pixels: Self::DEFAULT_MAX_PIXELS,
        }
    }
}

/// Why a file is refused before decoding. `Display` is the English message for the API;
/// [`SniffError::code`] is the stable code clients translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniffError {
    /// No bytes at all.
    Empty,
    /// More bytes than [`Limits::max_bytes`].
    TooManyBytes { bytes: usize, max: usize },
    /// HEIC/HEIF (iPhones' default): recognised, not processed.
    Heif { brand: String },
    /// Neither JPEG nor PNG (nor HEIF).
    UnknownType,
    /// Width × height above [`Limits::max_pixels`] (a decompression bomb, or a panorama too big).
    TooManyPixels { width: u32, height: u32, max: u64 },
    /// A JPEG or PNG whose header is cut short or inconsistent.
    BadHeader(&'static str),
}

impl SniffError {
    /// Stable machine code (the phone shows its own Chinese text for each).
    pub fn code(&self) -> &'static str {
        match self {
            SniffError::Empty => "photo_empty",
            SniffError::TooManyBytes { .. } => "photo_too_large",
            SniffError::Heif { .. } => "photo_heic_unsupported",
            SniffError::UnknownType => "photo_unknown_type",
            SniffError::TooManyPixels { .. } => "photo_too_many_pixels",
            SniffError::BadHeader(_) => "photo_bad_header",
        }
    }
}

impl fmt::Display for SniffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SniffError::Empty => write!(f, "the file is empty"),
            SniffError::TooManyBytes { bytes, max } => {
                write!(f, "the file has {bytes} bytes; at most {max} are accepted")
            }
            SniffError::Heif { brand } => write!(
                f,
                "HEIC/HEIF photos ({brand}) are not accepted: set the camera to \"Most \
                 Compatible\" (JPEG), or take the photo in the Yanshou app"
            ),
            SniffError::UnknownType => write!(f, "not a JPEG or PNG image"),
            SniffError::TooManyPixels { width, height, max } => write!(
                f,
                "the image is {width} × {height} pixels; at most {max} pixels are accepted"
            ),
            SniffError::BadHeader(what) => write!(f, "damaged image header: {what}"),
        }
    }
}

impl std::error::Error for SniffError {}

/// What the headers say about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
    /// Byte range of the EXIF TIFF data (after JPEG's `Exif\0\0`, or PNG's `eXIf` chunk).
    pub exif: Option<(usize, usize)>,
    /// JPEG: the end-of-image marker was found after the scan data. `false` means the file was
    /// cut short. Always `true` for PNG (its decoder checks the end itself).
    pub complete: bool,
}

impl Sniffed {
    /// The EXIF TIFF bytes within `bytes` (the same buffer that was sniffed).
    pub fn exif_bytes<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.exif.and_then(|(start, end)| bytes.get(start..end))
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// HEIF brands (ISO/IEC 23008-12) that phones write: HEVC stills and sequences, and the
/// generic image/sequence brands. AVIF is the same container with another codec.
const HEIF_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1",
    b"avif", b"avis",
];

/// Kind, dimensions and EXIF location of `bytes`, with the caps checked. Reads headers only.
pub fn sniff(bytes: &[u8], limits: &Limits) -> Result<Sniffed, SniffError> {
    if bytes.is_empty() {
        return Err(SniffError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(SniffError::TooManyBytes {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let sniffed = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg(bytes)?
    } else if bytes.starts_with(PNG_SIGNATURE) {
        png(bytes)?
    } else if let Some(brand) = heif_brand(bytes) {
        return Err(SniffError::Heif { brand });
    } else {
        return Err(SniffError::UnknownType);
    };
    let pixels = u64::from(sniffed.width) * u64::from(sniffed.height);
    if pixels > limits.max_pixels {
        return Err(SniffError::TooManyPixels {
            width: sniffed.width,
            height: sniffed.height,
            max: limits.max_pixels,
        });
    }
    Ok(sniffed)
}

/// The major or a compatible brand of an ISO-BMFF `ftyp` box, if it is a HEIF one.
fn heif_brand(bytes: &[u8]) -> Option<String> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let size = usize::try_from(u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?)).ok()?;
    let end = size.clamp(16, 256).min(bytes.len());
    let brands = bytes.get(8..end)?;
    // Major brand at 8..12, minor version at 12..16, compatible brands after.
    let candidates = brands
        .chunks_exact(4)
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, b)| b);
    for b in candidates {
        if HEIF_BRANDS.iter().any(|h| h.as_slice() == b) {
            return Some(String::from_utf8_lossy(b).into_owned());
        }
    }
    None
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the JPEG marker segments up to the first scan: frame header (size) and APP1 EXIF.
fn jpeg(bytes: &[u8]) -> Result<Sniffed, SniffError> {
    const CUT: SniffError = SniffError::BadHeader("JPEG ends before its first scan");
    let mut pos = 2;
    let mut size = None;
    let mut exif = None;
    loop {
        // A marker is 0xFF (possibly repeated as fill) and a code.
        if bytes.get(pos) != Some(&0xFF) {
            return Err(SniffError::BadHeader("JPEG marker expected"));
        }
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *bytes.get(pos).ok_or(CUT)?;
        pos += 1;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 | 0xD9 => return Err(SniffError::BadHeader("JPEG image marker out of place")),
            _ => {}
        }
        let len = usize::from(be16(bytes, pos).ok_or(CUT)?);
        if len < 2 {
            return Err(SniffError::BadHeader("JPEG segment length below 2"));
        }
        let body = bytes.get(pos + 2..pos + len).ok_or(CUT)?;
        match marker {
            // Start of frame: every SOFn except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if body.len() < 6 {
                    return Err(SniffError::BadHeader("JPEG frame header too short"));
                }
                if size.is_some() {
                    return Err(SniffError::BadHeader("JPEG has two frame headers"));
                }
                let height = be16(body, 1).unwrap_or(0);
                let width = be16(body, 3).unwrap_or(0);
                if width == 0 || height == 0 {
                    return Err(SniffError::BadHeader("JPEG width or height is 0"));
                }
                size = Some((u32::from(width), u32::from(height)));
            }
            0xE1 if exif.is_none() && body.starts_with(b"Exif\0\0") => {
                exif = Some((pos + 2 + 6, pos + len));
            }
            0xDA => {
                let (width, height) =
                    size.ok_or(SniffError::BadHeader("JPEG scan before its frame header"))?;
                // The scan data runs to EOI. Search from the end: phones may append data after
                // EOI (motion photos), and a cut file has no EOI at all.
                let scan = bytes.get(pos + len..).unwrap_or_default();
                let complete = scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]);
                return Ok(Sniffed {
                    kind: ImageKind::Jpeg,
                    width,
                    height,
                    exif,
                    complete,
                });
            }
            _ => {}
        }
        pos += len;
    }
}

/// Reads `IHDR` for the size (first, before anything can be cut short), then the chunk headers
/// for an `eXIf` chunk.
fn png(bytes: &[u8]) -> Result<Sniffed, SniffError> {
    if bytes.get(12..16) != Some(b"IHDR") {
        return Err(SniffError::BadHeader("PNG without IHDR"));
    }
    let (Some(width), Some(height)) = (be32(bytes, 16), be32(bytes, 20)) else {
        return Err(SniffError::BadHeader("PNG IHDR cut short"));
    };
    // PNG limits each side to 2³¹ − 1.
    if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(SniffError::BadHeader("PNG width or height out of range"));
    }
    let mut exif = None;
    let mut pos = 8;
    while let (Some(len), Some(kind)) = (be32(bytes, pos), bytes.get(pos + 4..pos + 8)) {
        let start = pos + 8;
        let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
            break;
        };
        if kind == b"eXIf" && end <= bytes.len() {
            exif = Some((start, end));
        }
        if kind == b"IEND" {
            break;
        }
        // Data, then a 4-byte CRC.
        pos = end.saturating_add(4);
    }
    Ok(Sniffed {
        kind: ImageKind::Png,
        width,
        height,
        exif,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut v = PNG_SIGNATURE.to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0]);
        v.extend_from_slice(&[0; 4]); // CRC (not checked here)
        v
    }

    #[test]
    fn text_named_jpg_is_unknown() {
        let err = sniff(b"just some notes, saved as photo.jpg\n", &Limits::default());
        assert_eq!(err, Err(SniffError::UnknownType));
    }

    #[test]
    fn empty_file_is_refused() {
        assert_eq!(sniff(b"", &Limits::default()), Err(SniffError::Empty));
    }

    #[test]
    fn png_bomb_is_refused_from_its_header() {
        // 30 bytes: the IHDR is cut before its CRC, and claims 100 000 × 100 000 pixels.
        let bytes = &png_header(100_000, 100_000)[..30];
        assert_eq!(bytes.len(), 30);
        let err = sniff(bytes, &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            SniffError::TooManyPixels {
                width: 100_000,
                height: 100_000,
                max: Limits::DEFAULT_MAX_PIXELS
            }
        );
        assert_eq!(err.code(), "photo_too_many_pixels");
    }

    #[test]
    fn png_header_size() {
        let s = sniff(&png_header(640, 480), &Limits::default()).unwrap();
        assert_eq!((s.kind, s.width, s.height), (ImageKind::Png, 640, 480));
    }

    #[test]
    fn too_many_bytes() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = sniff(&png_header(1, 1), &limits).unwrap_err();
        assert_eq!(err.code(), "photo_too_large");
    }

    #[test]
    fn heic_is_recognised_and_refused() {
        let mut v = 24u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        let err = sniff(&v, &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            SniffError::Heif {
                brand: "heic".into()
            }
        );
        assert!(err.to_string().contains("HEIC"));
        // An MP4 is an ISO-BMFF file too, but not an image.
        let mut mp4 = 20u32.to_be_bytes().to_vec();
        mp4.extend_from_slice(b"ftypisom\0\0\0\0isom");
        assert_eq!(
            sniff(&mp4, &Limits::default()),
            Err(SniffError::UnknownType)
        );
    }

    #[test]
    fn jpeg_cut_in_its_headers() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F'];
        let err = sniff(&jpeg, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "photo_bad_header");
        // Only the SOI.
        assert!(sniff(&[0xFF, 0xD8, 0xFF], &Limits::default()).is_err());
    }
}
