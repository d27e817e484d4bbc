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
//!   rendering, drawn as pen strokes (or 〔笔迹未上传〕 / 〔笔迹无法读取〕).

pub mod ink;
pub mod letter_pdf;
pub mod pdf;
pub mod typeset;
