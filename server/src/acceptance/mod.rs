//! Acceptance domain: templates, coordinates, campaign deadlines (pure code, no I/O).
//!
//! Everything here is data in, data out; the only file access is the explicit `load(path)`
//! functions for template and campaign files. Modules:
//! - [`geo`]: licence corner points (CGCS2000 Gauss-Krüger) ↔ latitude/longitude, boundary
//!   polygons, point-in-polygon and distance for photo geofencing;
//! - [`template`]: acceptance templates as versioned TOML data, field keys, answer validation and
//!   the verdict rule;
//! - [`campaign`]: campaign deadlines as TOML data and the date arithmetic behind them;
//! - [`decimal`]: exact decimals for thresholds and measured values;
//! - [`datafile`]: the error type shared by the data-file readers (every error, with its location).
//!
//! Vocabulary shared by the modules: a mine's **disposition** ([`Disposition`], 处置) decides
//! which template items and which campaign deadlines apply to it.

pub mod campaign;
pub mod datafile;
pub mod decimal;
pub mod geo;
pub mod template;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The disposition (处置) the county approves for a stopped mine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// 注销: restore, pass acceptance (with the expert opinion letter), then cancel the licence.
    Cancel,
    /// 延续: complete the four approval documents and the rectification, then extend.
    Continue,
    /// 未生产: never produced; keep the original landform.
    NeverProduced,
}

impl Disposition {
    /// All dispositions, in the plan's order.
    pub const ALL: [Disposition; 3] = [
        Disposition::Cancel,
        Disposition::Continue,
        Disposition::NeverProduced,
    ];

    /// The code used in data files and the API (`cancel`, `continue`, `never_produced`).
    pub fn code(self) -> &'static str {
        match self {
            Disposition::Cancel => "cancel",
            Disposition::Continue => "continue",
            Disposition::NeverProduced => "never_produced",
        }
    }

    /// The UI word (注销, 延续, 未生产).
    pub fn name_zh(self) -> &'static str {
        match self {
            Disposition::Cancel => "注销",
            Disposition::Continue => "延续",
            Disposition::NeverProduced => "未生产",
        }
    }

    /// Parses a code; the Chinese word is accepted too, since county staff write the files.
    pub fn from_code(code: &str) -> Option<Self> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.code() == code || d.name_zh() == code)
    }
}
