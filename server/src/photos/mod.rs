//! Photos of an acceptance record.
//!
//! - [`upload`]: resumable uploads (tus-like): create for a declared SHA-256 and size, send
//!   chunks at an offset, finish; the hash is verified before the blob exists. The limits are
//!   announced up front ([`upload::LIMITS`]); the state lives in the store and the received
//!   parts in the blob store, so another replica, or a restarted server, continues an upload.
//!
//! Content checks (type sniffing, EXIF, thumbnails, geofence) run at one call site in
//! [`upload::finish`] (`ingest`), before the blob is stored.

pub mod upload;
