//! Exports of an assembled acceptance record ([`crate::records`]): documents made from the
//! record as the server assembles it now, so they carry its content hash and the signatures as
//! checked at export time.
//!
//! - [`pdf`]: the record as a Chinese government form (A4, the acceptance table per department,
//!   signatures with the signers' handwriting, conclusion, one page per photo);
//! - [`letter_pdf`]: the experts' opinion letter (验收合格意见书) as a Chinese government letter,
//!   with the panel's handwritten signatures;
//! - [`typeset`]: what the PDFs share: the CJK font, line breaking (with 禁则), pages as lists of
//!   drawing operations, writing them with `krilla`;
//! - [`ink`]: handwritten signatures: the strokes blobs a document names, loaded before
//!   rendering, drawn as pen strokes (or 〔笔迹未上传〕 / 〔笔迹无法读取〕);
//! - [`bundle`]: the archive bundle of a round (a zip of the record, its sync entity, the PDFs,
//!   the original photos, strokes and device keys, the opinion letter, with a manifest the
//!   server signs), whose format is [`manifest`]'s;
//! - [`verify`]: the offline check of a bundle (`yanshou verify`), pure and synchronous.

pub mod bundle;
pub mod ink;
pub mod letter_pdf;
pub mod manifest;
pub mod pdf;
pub mod typeset;
pub mod verify;
