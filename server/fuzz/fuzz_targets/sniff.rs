//! Type sniffing and caps: never panics; a success is consistent with the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yanshou_server::photos::sniff::{Limits, sniff};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(s) = sniff(data, &limits) {
        assert!(u64::from(s.width) * u64::from(s.height) <= limits.max_pixels);
        assert!(s.width > 0 && s.height > 0);
        if let Some((start, end)) = s.exif {
            assert!(start <= end && end <= data.len());
        }
    }
});
