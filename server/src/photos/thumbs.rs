//! Derivatives: two oriented JPEG thumbnails (long side [`LARGE`] and [`SMALL`] pixels, never
//! upscaled), with no EXIF or other metadata (no GPS leaves the server in a thumbnail).
//!
//! A JPEG is decoded once, DCT-scaled (1/8, 1/4, 1/2 or 1) to the smallest size whose long side
//! is still at least [`LARGE`]: a 12-megapixel photo is decoded at 2000 × 1500, never at full
//! size. The large thumbnail is resized from that with `fast_image_resize` (SIMD Lanczos-3),
//! the small one from the large one; each is then turned upright by the EXIF orientation and
//! encoded. A PNG is decoded in full by `image` (its size was capped before, by the header).

use std::fmt;

use fast_image_resize::{
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image as FirImage,
};
use image::{DynamicImage, ImageDecoder, RgbImage, metadata::Orientation};
use serde::{Deserialize, Serialize};

use super::sniff::{ImageKind, Limits, Sniffed};

/// Long side of the small thumbnail (lists, maps), pixels.
pub const SMALL: u32 = 320;
/// Long side of the large thumbnail (viewing on a phone, the PDF record), pixels.
pub const LARGE: u32 = 1280;
/// JPEG quality of both.
pub const QUALITY: u8 = 80;

/// One derivative: a baseline JPEG without metadata.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// Width as viewed (after orientation).
    pub width: u32,
    /// Height as viewed.
    pub height: u32,
    #[serde(skip)]
    pub jpeg: Vec<u8>,
}

impl fmt::Debug for Thumbnail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thumbnail")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("jpeg_bytes", &self.jpeg.len())
            .finish()
    }
}

/// Both derivatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnails {
    pub small: Thumbnail,
    pub large: Thumbnail,
}

/// Why an image that passed the header checks could not be made into thumbnails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThumbError {
    /// The JPEG ends inside its image data (an upload cut short).
    Truncated,
    /// The decoder refused the data.
    Decode(String),
    /// The decoded size differs from the header's, or a buffer is inconsistent.
    Inconsistent(&'static str),
    /// Encoding a thumbnail failed.
    Encode(String),
}

impl fmt::Display for ThumbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThumbError::Truncated => write!(f, "the image is cut short (incomplete upload?)"),
            ThumbError::Decode(e) => write!(f, "the image cannot be decoded: {e}"),
            ThumbError::Inconsistent(e) => write!(f, "the image is inconsistent: {e}"),
            ThumbError::Encode(e) => write!(f, "a thumbnail could not be encoded: {e}"),
        }
    }
}

impl std::error::Error for ThumbError {}

/// An RGB8 image, row-major, no padding.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

/// Makes both thumbnails of `bytes`, which [`super::sniff::sniff`] described as `sniffed`.
pub fn make(
    bytes: &[u8],
    sniffed: &Sniffed,
    orientation: Option<u16>,
    limits: &Limits,
) -> Result<Thumbnails, ThumbError> {
    let decoded = match sniffed.kind {
        ImageKind::Jpeg => decode_jpeg(bytes, sniffed, limits)?,
        ImageKind::Png => decode_png(bytes, limits)?,
    };
    let orientation = orientation
        .and_then(|o| u8::try_from(o).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    // Target sizes come from the original's proportions, so a DCT-scaled decode (whose sides
    // are rounded up to whole blocks) gives the same thumbnail as a full one.
    let large_size = fit(sniffed.width, sniffed.height, LARGE);
    let small_size = fit(sniffed.width, sniffed.height, SMALL);
    let mut resizer = Resizer::new();
    let large = resize(&mut resizer, decoded, large_size)?;
    let small = resize(&mut resizer, clone_rgb(&large), small_size)?;
    Ok(Thumbnails {
        large: finish(large, orientation)?,
        small: finish(small, orientation)?,
    })
}

/// `width × height` scaled so the long side is at most `long` (never up), each side ≥ 1.
pub fn fit(width: u32, height: u32, long: u32) -> (u32, u32) {
    let max = width.max(height);
    if max <= long {
        return (width, height);
    }
    let scale = |side: u32| {
        let v = (u64::from(side) * u64::from(long) + u64::from(max) / 2) / u64::from(max);
        u32::try_from(v.max(1)).unwrap_or(1)
    };
    (scale(width), scale(height))
}

fn clone_rgb(img: &Rgb) -> Rgb {
    Rgb {
        width: img.width,
        height: img.height,
        pixels: img.pixels.clone(),
    }
}

fn decode_jpeg(bytes: &[u8], sniffed: &Sniffed, limits: &Limits) -> Result<Rgb, ThumbError> {
    if !sniffed.complete {
        return Err(ThumbError::Truncated);
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    // The header was checked against max_pixels; this bounds the decoder's own buffers too
    // (4 bytes a pixel: CMYK).
    let max_buffer = usize::try_from(limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX);
    decoder.set_max_decoding_buffer_size(max_buffer);
    let target = u16::try_from(LARGE).unwrap_or(u16::MAX);
    let (width, height) = decoder
        .scale(target, target)
        .map_err(|e| ThumbError::Decode(e.to_string()))?;
    let data = decoder
        .decode()
        .map_err(|e| ThumbError::Decode(e.to_string()))?;
    let info = decoder
        .info()
        .ok_or(ThumbError::Inconsistent("JPEG without frame information"))?;
    let (width, height) = (u32::from(width), u32::from(height));
    let pixels = usize::try_from(u64::from(width) * u64::from(height))
        .map_err(|_| ThumbError::Inconsistent("JPEG too large"))?;
    use jpeg_decoder::PixelFormat;
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        // 16-bit grey (lossless JPEG), big-endian: keep the high byte.
        PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u16::from(p[3]);
                let ch = |c: u8| u8::try_from(u16::from(c) * k / 255).unwrap_or(u8::MAX);
                [ch(p[0]), ch(p[1]), ch(p[2])]
            })
            .collect(),
    };
    if rgb.len() != pixels * 3 {
        return Err(ThumbError::Inconsistent("JPEG pixel count"));
    }
    Ok(Rgb {
        width,
        height,
        pixels: rgb,
    })
}

fn decode_png(bytes: &[u8], limits: &Limits) -> Result<Rgb, ThumbError> {
    let mut png_limits = image::Limits::default();
    // At most 8 bytes a pixel (16-bit RGBA) for the decoder, and the result as RGB.
    png_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    let decoder =
        image::codecs::png::PngDecoder::with_limits(std::io::Cursor::new(bytes), png_limits)
            .map_err(|e| ThumbError::Decode(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(ThumbError::Inconsistent("PNG larger than its header said"));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| ThumbError::Decode(e.to_string()))?;
    let rgb = img.into_rgb8();
    Ok(Rgb {
        width: rgb.width(),
        height: rgb.height(),
        pixels: rgb.into_raw(),
    })
}

fn resize(resizer: &mut Resizer, src: Rgb, (width, height): (u32, u32)) -> Result<Rgb, ThumbError> {
    if (src.width, src.height) == (width, height) {
        return Ok(src);
    }
    let src = FirImage::from_vec_u8(src.width, src.height, src.pixels, PixelType::U8x3)
        .map_err(|_| ThumbError::Inconsistent("decoded buffer size"))?;
    let mut dst = FirImage::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(|e| ThumbError::Decode(format!("resize: {e}")))?;
    Ok(Rgb {
        width,
        height,
        pixels: dst.into_vec(),
    })
}

/// Turns the image upright and encodes it (no metadata segments: only JFIF).
fn finish(img: Rgb, orientation: Orientation) -> Result<Thumbnail, ThumbError> {
    let img = if orientation == Orientation::NoTransforms {
        img
    } else {
        let buf = RgbImage::from_raw(img.width, img.height, img.pixels)
            .ok_or(ThumbError::Inconsistent("thumbnail buffer size"))?;
        let mut dynamic = DynamicImage::ImageRgb8(buf);
        dynamic.apply_orientation(orientation);
        let rgb = dynamic.into_rgb8();
        Rgb {
            width: rgb.width(),
            height: rgb.height(),
            pixels: rgb.into_raw(),
        }
    };
    let (Ok(w), Ok(h)) = (u16::try_from(img.width), u16::try_from(img.height)) else {
        return Err(ThumbError::Inconsistent("thumbnail larger than 65535"));
    };
    let mut jpeg = Vec::with_capacity(img.pixels.len() / 8);
    jpeg_encoder::Encoder::new(&mut jpeg, QUALITY)
        .encode(&img.pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| ThumbError::Encode(e.to_string()))?;
    Ok(Thumbnail {
        width: img.width,
        height: img.height,
        jpeg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_never_upscales_and_keeps_proportions() {
        assert_eq!(fit(4000, 3000, 1280), (1280, 960));
        assert_eq!(fit(3000, 4000, 320), (240, 320));
        assert_eq!(fit(800, 600, 1280), (800, 600));
        assert_eq!(fit(20_000, 1, 320), (320, 1));
    }
}
