//! Photo evidence: how a photo arrives, what the file is, what its EXIF says, its thumbnails,
//! and verdicts on where and when it was taken.
//!
//! - [`upload`]: resumable uploads (tus-like) for an acceptance record or for a mine (its
//!   holder's evidence photos and PDF documents): create for a declared SHA-256 and size, send
//!   chunks at an offset, finish; the hash is verified before the blob exists; the state lives
//!   in the store and the received parts in the blob store, so another replica, or a restarted
//!   server, continues an upload;
//! - [`sniff`]: kind by magic bytes (JPEG, PNG; HEIC/HEIF recognised and refused), dimensions
//!   from the headers, caps on bytes and pixels before any decode;
//! - [`exif`]: position, accuracy, altitude, capture time, make, model, orientation, with range
//!   checks (an impossible field is dropped with a warning);
//! - [`thumbs`]: two oriented JPEG thumbnails without metadata, from a DCT-scaled decode;
//! - [`geofence`]: location verdict against the mine's boundary, time verdict against the
//!   visit, and EXIF-versus-phone position disagreement;
//! - [`evidence`]: a record's photos as kept (thumbnails, facts, the records they belong to),
//!   who may see them (through their records, or the mines whose holder evidence they are; an
//!   original never to a holder, but of their own mine's evidence), and their verdicts;
//! - [`findings`]: what the server found about each photo a record's evidence names, written
//!   into the record (`photos/<sha256>`) so phones learn it through sync;
//! - [`sample`]: synthetic JPEGs with EXIF for tests, fuzz seeds and the benchmark.
//!
//! [`ingest`] (pure: no database, no HTTP) runs sniff, EXIF and thumbnails on one file.

pub mod evidence;
pub mod exif;
pub mod findings;
pub mod geofence;
pub mod sample;
pub mod sniff;
pub mod thumbs;
pub mod upload;

use std::fmt;

use sha2::{Digest, Sha256};

use self::{
    exif::PhotoExif,
    sniff::{ImageKind, Limits, SniffError},
    thumbs::{ThumbError, Thumbnail},
};

/// What ingest learns from one photo file.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// SHA-256 of the file, lowercase hex (the blob's content address).
    pub sha256: String,
    pub kind: ImageKind,
    /// File size, bytes.
    pub bytes: usize,
    /// Width and height as stored (before EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// The EXIF facts (empty when the file has none), with warnings for dropped fields.
    pub exif: PhotoExif,
    /// Long side [`thumbs::SMALL`], upright, no metadata.
    pub small: Thumbnail,
    /// Long side [`thumbs::LARGE`], upright, no metadata.
    pub large: Thumbnail,
}

/// Why a file was not ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestError {
    /// Refused from its first bytes: type, size or header.
    Refused(SniffError),
    /// Passed the header checks, but could not be decoded or thumbnailed.
    Undecodable(ThumbError),
}

impl IngestError {
    /// Stable machine code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Refused(e) => e.code(),
            IngestError::Undecodable(ThumbError::Truncated) => "photo_truncated",
            IngestError::Undecodable(_) => "photo_undecodable",
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Refused(e) => e.fmt(f),
            IngestError::Undecodable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for IngestError {}

impl From<SniffError> for IngestError {
    fn from(e: SniffError) -> Self {
        IngestError::Refused(e)
    }
}

impl From<ThumbError> for IngestError {
    fn from(e: ThumbError) -> Self {
        IngestError::Undecodable(e)
    }
}

/// Checks, hashes, reads and thumbnails one photo file.
///
/// This is CPU work (tens of milliseconds for a 12-megapixel JPEG): from async code, run it
/// in `tokio::task::spawn_blocking`, never on the runtime's worker threads.
///
/// EXIF problems never fail ingest (they become [`PhotoExif::warnings`]); a refused or
/// undecodable image does.
pub fn ingest(bytes: &[u8], limits: &Limits) -> Result<Ingested, IngestError> {
    let sniffed = sniff::sniff(bytes, limits)?;
    let exif = PhotoExif::read(sniffed.exif_bytes(bytes));
    let thumbs = thumbs::make(bytes, &sniffed, exif.orientation, limits)?;
    let sha256 = hex::encode(Sha256::digest(bytes));
    Ok(Ingested {
        sha256,
        kind: sniffed.kind,
        bytes: bytes.len(),
        width: sniffed.width,
        height: sniffed.height,
        exif,
        small: thumbs.small,
        large: thumbs.large,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{exif::build::ExifSpec, sample::sample_jpeg, *};

    fn phone_exif() -> ExifSpec {
        ExifSpec {
            lat: Some(28.234_567),
            lon: Some(114.876_543),
            altitude_m: Some(85.5),
            accuracy_m: Some(4.2),
            date_time_original: Some("2025:04:03 10:20:30".into()),
            offset_time_original: Some("+08:00".into()),
            make: Some("Xiaomi".into()),
            model: Some("Redmi Note 13".into()),
            orientation: Some(6),
        }
    }

    /// `(width, height)` of a JPEG, and whether it has an APP1 (EXIF/XMP) segment.
    fn jpeg_facts(jpeg: &[u8]) -> (u32, u32, bool) {
        let s = sniff::sniff(jpeg, &Limits::default()).unwrap();
        let app1 = jpeg.windows(2).any(|w| w == [0xFF, 0xE1]);
        (s.width, s.height, app1 || s.exif.is_some())
    }

    #[test]
    fn phone_jpeg_with_exif() {
        let jpeg = sample_jpeg(1600, 1200, Some(&phone_exif()), 85);
        let got = ingest(&jpeg, &Limits::default()).unwrap();
        assert_eq!(got.kind, ImageKind::Jpeg);
        assert_eq!((got.width, got.height), (1600, 1200));
        assert_eq!(got.sha256, hex::encode(Sha256::digest(&jpeg)));
        assert_eq!(got.sha256.len(), 64);
        assert_eq!(got.exif.orientation, Some(6));
        assert!(got.exif.position().is_some());
        assert!(got.exif.warnings.is_empty());
        // Orientation 6: stored landscape, viewed portrait.
        assert_eq!((got.large.width, got.large.height), (960, 1280));
        assert_eq!((got.small.width, got.small.height), (240, 320));
        // The derivatives are JPEGs of that size, with no EXIF (no GPS) at all.
        assert_eq!(jpeg_facts(&got.large.jpeg), (960, 1280, false));
        assert_eq!(jpeg_facts(&got.small.jpeg), (240, 320, false));
        assert!(!got.large.jpeg.windows(4).any(|w| w == b"Exif"));
    }

    #[test]
    fn orientation_turns_the_pixels() {
        // Left half black, right half white, stored landscape; orientation 6 (rotate 90° CW)
        // puts the black half on top.
        let spec = ExifSpec {
            orientation: Some(6),
            ..ExifSpec::default()
        };
        let jpeg = sample::halves_jpeg(400, 200, Some(&spec));
        let got = ingest(&jpeg, &Limits::default()).unwrap();
        assert_eq!((got.large.width, got.large.height), (200, 400));
        let img = jpeg_decoder::Decoder::new(got.large.jpeg.as_slice())
            .decode()
            .unwrap();
        let at = |x: usize, y: usize| img[(y * 200 + x) * 3];
        assert!(at(100, 50) < 40, "top {}", at(100, 50));
        assert!(at(100, 350) > 215, "bottom {}", at(100, 350));
    }

    #[test]
    fn small_photo_is_not_upscaled() {
        let jpeg = sample_jpeg(300, 200, None, 85);
        let got = ingest(&jpeg, &Limits::default()).unwrap();
        assert_eq!((got.large.width, got.large.height), (300, 200));
        assert_eq!((got.small.width, got.small.height), (300, 200));
    }

    #[test]
    fn no_exif_at_all() {
        let jpeg = sample_jpeg(640, 480, None, 85);
        let got = ingest(&jpeg, &Limits::default()).unwrap();
        assert_eq!(got.exif, PhotoExif::default());
        assert_eq!((got.large.width, got.large.height), (640, 480));
        assert_eq!((got.small.width, got.small.height), (320, 240));
    }

    #[test]
    fn latitude_200_is_a_warning_not_an_error() {
        let spec = ExifSpec {
            lat: Some(200.0),
            ..phone_exif()
        };
        let got = ingest(&sample_jpeg(640, 480, Some(&spec), 85), &Limits::default()).unwrap();
        assert_eq!(got.exif.position(), None);
        assert_eq!(got.exif.warnings[0].field, "GPSLatitude");
        assert_eq!(got.exif.orientation, Some(6));
    }

    #[test]
    fn text_file_named_jpg() {
        let err = ingest(b"IMG_0001.jpg\nthis is not a photo\n", &Limits::default());
        assert_eq!(err, Err(IngestError::Refused(SniffError::UnknownType)));
        assert_eq!(err.unwrap_err().code(), "photo_unknown_type");
    }

    #[test]
    fn truncated_jpeg() {
        let jpeg = sample_jpeg(640, 480, Some(&phone_exif()), 85);
        for cut in [jpeg.len() / 2, jpeg.len() - 2, jpeg.len() * 9 / 10] {
            let err = ingest(&jpeg[..cut], &Limits::default()).unwrap_err();
            assert_eq!(err.code(), "photo_truncated", "cut at {cut}: {err}");
        }
        // Cut inside the headers.
        let err = ingest(&jpeg[..100], &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "photo_bad_header");
    }

    #[test]
    fn data_after_the_end_of_image_is_kept() {
        // Motion photos append a video after the JPEG's end.
        let mut jpeg = sample_jpeg(320, 240, None, 85);
        jpeg.extend_from_slice(b"\0\0\0\x18ftypmp42 trailing video");
        assert!(ingest(&jpeg, &Limits::default()).is_ok());
    }

    #[test]
    fn png_bomb() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0]);
        assert_eq!(png.len(), 30);
        let err = ingest(&png, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "photo_too_many_pixels");
    }

    #[test]
    fn png_is_thumbnailed() {
        let mut img = image::RgbImage::new(2000, 1000);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]);
        }
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let got = ingest(&png, &Limits::default()).unwrap();
        assert_eq!(got.kind, ImageKind::Png);
        assert_eq!((got.large.width, got.large.height), (1280, 640));
        assert_eq!((got.small.width, got.small.height), (320, 160));
        // A pixel cap below its size refuses it before decoding.
        let limits = Limits {
            max_pixels: 1_000_000,
            ..Limits::default()
        };
        assert_eq!(
            ingest(&png, &limits).unwrap_err().code(),
            "photo_too_many_pixels"
        );
        // Cut short: the decoder fails cleanly.
        let err = ingest(&png[..png.len() / 2], &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "photo_undecodable");
    }

    /// Writes the synthetic part of the fuzz seed corpus (`server/fuzz/seeds/common`):
    /// `cargo test -p yanshou-server --lib photos::tests::write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes files into server/fuzz/seeds"]
    fn write_fuzz_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/common");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
        let bad_lat = ExifSpec {
            lat: Some(200.0),
            ..phone_exif()
        };
        write(
            "phone-exif.jpg",
            &sample_jpeg(96, 64, Some(&phone_exif()), 80),
        );
        write("lat-200.jpg", &sample_jpeg(40, 30, Some(&bad_lat), 70));
        write("no-exif.jpg", &sample_jpeg(33, 17, None, 60));
        write("phone-exif.tiff", &phone_exif().tiff().unwrap());
        let jpeg = sample_jpeg(64, 48, None, 80);
        write("truncated.jpg", &jpeg[..jpeg.len() / 2]);
        let mut png = Vec::new();
        image::RgbImage::from_raw(33, 17, sample::scene(33, 17))
            .unwrap()
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        write("scene.png", &png);
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0]);
        write("bomb.png", &bomb);
        write("text.jpg", b"not a photo\n");
    }

    #[test]
    fn heic_is_refused_with_a_message() {
        let mut heic = 24u32.to_be_bytes().to_vec();
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        heic.resize(2000, 0);
        let err = ingest(&heic, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "photo_heic_unsupported");
        assert!(err.to_string().contains("JPEG"), "{err}");
    }
}
