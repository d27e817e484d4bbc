//! Synthetic photos for tests, fuzz seeds and the benchmark: made in code, so no large binary
//! is committed. The content is smooth shading with grain (like a photo of ground and sky),
//! so the JPEG is about as large as a camera's at the same quality, not trivially compressible.

use super::exif::build::ExifSpec;

/// A small deterministic generator (xorshift64*), enough for grain.
struct Grain(u64);

impl Grain {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }
}

/// RGB pixels of a `width × height` scene: sky gradient above, textured ground below, grain.
pub fn scene(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut grain = Grain(0x9E37_79B9_7F4A_7C15 ^ (w as u64) << 20 ^ h as u64);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let fy = y as f32 / h.max(1) as f32;
        for x in 0..w {
            let fx = x as f32 / w.max(1) as f32;
            let n = f32::from(grain.next()) / 255.0 - 0.5;
            let (r, g, b) = if fy < 0.4 {
                (0.55 + 0.2 * fy, 0.7 + 0.1 * fx, 0.95 - 0.3 * fy)
            } else {
                // Ground: bands and ripples, as bare soil and vegetation patches.
                let t = ((fx * 37.0).sin() * (fy * 23.0).cos() + (fx * fy * 91.0).sin()) * 0.25;
                (0.45 + t, 0.38 + 0.6 * t, 0.25 + 0.2 * t)
            };
            let px = |v: f32| ((v + 0.35 * n) * 255.0).clamp(0.0, 255.0) as u8;
            out.extend_from_slice(&[px(r), px(g), px(b)]);
        }
    }
    out
}

fn encode(pixels: &[u8], width: u32, height: u32, exif: Option<&ExifSpec>, quality: u8) -> Vec<u8> {
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, quality);
    if let Some(app1) = exif.and_then(ExifSpec::app1) {
        // An APP1 over 64 KB cannot be written; the specs here are a few hundred bytes.
        let _ = encoder.add_app_segment(1, app1);
    }
    let (w, h) = (
        u16::try_from(width).unwrap_or(u16::MAX),
        u16::try_from(height).unwrap_or(u16::MAX),
    );
    // Encoding a buffer of the right size into a Vec does not fail.
    let _ = encoder.encode(pixels, w, h, jpeg_encoder::ColorType::Rgb);
    jpeg
}

/// A camera-like JPEG of [`scene`] with the given EXIF (width and height at most 65535).
pub fn sample_jpeg(width: u32, height: u32, exif: Option<&ExifSpec>, quality: u8) -> Vec<u8> {
    encode(&scene(width, height), width, height, exif, quality)
}

/// A JPEG whose left half is black and right half white (to test orientation).
pub fn halves_jpeg(width: u32, height: u32, exif: Option<&ExifSpec>) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for _ in 0..height {
        for x in 0..width {
            let v = if x < width / 2 { 0 } else { 255 };
            pixels.extend_from_slice(&[v, v, v]);
        }
    }
    encode(&pixels, width, height, exif, 90)
}
