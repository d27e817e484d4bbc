//! The whole ingest path (sniff, EXIF, decode, thumbnails) on small inputs: never panics, and a
//! success has thumbnails within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yanshou_server::photos::{ingest, sniff::Limits, thumbs};

fuzz_target!(|data: &[u8]| {
    // Small caps keep each run fast (decoding is the slow part), and test the caps themselves.
    let limits = Limits {
        max_bytes: 1 << 20,
        max_pixels: 2_000_000,
    };
    if let Ok(got) = ingest(data, &limits) {
        for (t, long) in [(&got.small, thumbs::SMALL), (&got.large, thumbs::LARGE)] {
            assert!(t.width.max(t.height) <= long);
            assert!(t.width >= 1 && t.height >= 1);
            assert!(t.jpeg.starts_with(&[0xFF, 0xD8]));
        }
    }
});
