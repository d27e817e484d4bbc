//! EXIF reading (TIFF data as found after `Exif\0\0`): never panics, and whatever it keeps is in
//! range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yanshou_server::photos::exif::PhotoExif;

fuzz_target!(|data: &[u8]| {
    let e = PhotoExif::read(Some(data));
    if let (Some(lat), Some(lon)) = (e.lat, e.lon) {
        assert!(lat.abs() <= 90.0 && lon.abs() <= 180.0);
    }
    assert_eq!(e.lat.is_some(), e.lon.is_some());
    if let Some(o) = e.orientation {
        assert!((1..=8).contains(&o));
    }
    if let Some(a) = e.accuracy_m {
        assert!(a.is_finite() && a >= 0.0);
    }
});
