//! Photo ingest against `vipsthumbnail`, side by side in one run.
//!
//! Makes a 12-megapixel JPEG with EXIF (4000 × 3000, textured, quality 92 like a phone's), or
//! takes JPEG paths as arguments, then times per file:
//! - `ingest`: SHA-256, EXIF, both thumbnails (320 and 1280 px), in process;
//! - `vipsthumbnail` (Debian `libvips-tools`) run twice as a subprocess on the same file, for
//!   the same two sizes (`-s 1280`, `-s 320`, quality 80, auto-rotate as always).
//!
//! Prints both medians and the ratio ingest / vipsthumbnail (the aim is ≤ 0.5, the limit 1.0).
//!
//! `cargo bench -p yanshou-server --bench ingest [-- FILE.jpg …]`; `RUNS=n` sets the runs.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use yanshou_server::photos::{exif::build::ExifSpec, ingest, sample::sample_jpeg, sniff::Limits};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn vips(file: &Path, out_dir: &Path, size: u32) -> Duration {
    let out = out_dir.join(format!("vips_{size}.jpg[Q=80,strip]"));
    let start = Instant::now();
    let status = Command::new("vipsthumbnail")
        .arg(file)
        .args(["-s", &size.to_string(), "-o"])
        .arg(&out)
        .status()
        .expect("vipsthumbnail (apt-get install libvips-tools)");
    let took = start.elapsed();
    assert!(
        status.success(),
        "vipsthumbnail failed on {}",
        file.display()
    );
    took
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    let dir = std::env::temp_dir().join(format!("yanshou-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        let exif = ExifSpec {
            lat: Some(28.234_567),
            lon: Some(114.876_543),
            altitude_m: Some(85.5),
            accuracy_m: Some(4.2),
            date_time_original: Some("2025:04:03 10:20:30".into()),
            offset_time_original: Some("+08:00".into()),
            make: Some("Xiaomi".into()),
            model: Some("Redmi Note 13".into()),
            orientation: Some(6),
        };
        let jpeg = sample_jpeg(4000, 3000, Some(&exif), 92);
        let path = dir.join("sample-12mp.jpg");
        std::fs::write(&path, &jpeg).unwrap();
        files.push(path);
    }
    let limits = Limits::default();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        // Warm up both (page cache, vips' library loading).
        let warm = ingest(&bytes, &limits).unwrap();
        vips(file, &dir, 1280);
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let got = ingest(&bytes, &limits).unwrap();
            ours.push(start.elapsed());
            std::hint::black_box(got);
            theirs.push(vips(file, &dir, 1280) + vips(file, &dir, 320));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{}: {} bytes, {}×{}; thumbnails {}×{} ({} B) and {}×{} ({} B)",
            file.display(),
            bytes.len(),
            warm.width,
            warm.height,
            warm.large.width,
            warm.large.height,
            warm.large.jpeg.len(),
            warm.small.width,
            warm.small.height,
            warm.small.jpeg.len(),
        );
        println!(
            "  ingest median {:.1} ms; vipsthumbnail ×2 median {:.1} ms; ratio {:.2} ({runs} runs)",
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            ours.as_secs_f64() / theirs.as_secs_f64(),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
