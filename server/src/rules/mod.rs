//! Pure domain rules: templates, coordinates, campaign deadlines, the disposition workflow (no
//! I/O; they use only [`crate::model`]).
//!
//! Everything here is data in, data out; the only file access is the explicit `load(path)`
//! functions for template and campaign files. Modules:
//! - [`geo`]: licence corner points (CGCS2000 Gauss-Krüger) ↔ latitude/longitude, boundary
//!   polygons, point-in-polygon and distance for photo geofencing;
//! - [`template`]: acceptance templates as versioned TOML data, field keys, answer validation and
//!   the verdict rule;
//! - [`campaign`]: campaign deadlines as TOML data and the date arithmetic behind them;
//! - [`decimal`]: exact decimals for thresholds and measured values;
//! - [`datafile`]: the error type shared by the data-file readers (every error, with its location);
//! - [`workflow`]: the disposition workflow as a state machine, and the open deadlines of a mine.
//!
//! Vocabulary shared by the modules: a mine's **disposition** ([`crate::model::Disposition`],
//! 处置) decides which template items and which campaign deadlines apply to it.

pub mod campaign;
pub mod datafile;
pub mod decimal;
pub mod geo;
pub mod template;
pub mod workflow;
