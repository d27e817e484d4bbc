//! Exports of an assembled acceptance record ([`crate::records`]): documents made from the
//! record as the server assembles it now, so they carry its content hash and the signatures as
//! checked at export time.
//!
//! - [`pdf`]: the record as a Chinese government form (A4, the acceptance table per department,
//!   signatures, conclusion, one page per photo), made in process with `krilla`;
//! - [`bundle`]: the archive bundle of a round (a zip of the record, its sync entity, the PDF,
//!   the original photos, strokes and device keys, with a manifest the server signs), whose
//!   format is [`manifest`]'s;
//! - [`verify`]: the offline check of a bundle (`yanshou verify`), pure and synchronous.

pub mod bundle;
pub mod manifest;
pub mod pdf;
pub mod verify;
