//! Exports of an assembled acceptance record ([`crate::records`]): documents made from the
//! record as the server assembles it now, so they carry its content hash and the signatures as
//! checked at export time.
//!
//! - [`pdf`]: the record as a Chinese government form (A4, the acceptance table per department,
//!   signatures, conclusion, one page per photo), made in process with `krilla`.

pub mod pdf;
