//! The acceptance record as a sync entity: its type, its header fields, its sections.
//!
//! A field key is `section/name`; the section is the part before the first `/`. An acceptance
//! record has a header (`""`, written by the county office and the township), `township` (初验),
//! one section per inspecting department (its code, e.g. `water_resources`), and `experts`.
//!
//! Photos (PROTOCOL.md §13): an item's evidence is the set field `<section>/<item>.photos`,
//! whose elements are capture attestations; the server writes what it found about each photo
//! into the field `photos/<sha256>` of the [`FINDINGS_SECTION`], which no device writes.

use sync_protocol::DeviceId;
use uuid::Uuid;

/// Entity types a device may create.
pub const ENTITY_TYPES: &[&str] = &["acceptance_record"];

/// The header field naming the township an entity belongs to.
pub const SCOPE_FIELD: &str = "township_id";

/// Sections that are not department codes.
pub const HEADER_SECTION: &str = "";
pub const TOWNSHIP_SECTION: &str = "township";
pub const EXPERT_SECTION: &str = "experts";

/// Header fields of a record made by a round.
pub const TEMPLATE_FIELD: &str = "template";
pub const DISPOSITION_FIELD: &str = "disposition";

/// Header fields set when a round opens; not writable through sync.
pub const RESERVED_HEADER: &[&str] = &[
    "mine_id",
    "licence_no",
    SCOPE_FIELD,
    TEMPLATE_FIELD,
    DISPOSITION_FIELD,
    "round_no",
    "previous_round",
];

/// The device id under which the server itself creates records (no device's series).
pub const SERVER_DEVICE: DeviceId = DeviceId(Uuid::nil());

/// The section of the server's findings about a record's photos (`photos/<sha256>`).
pub const FINDINGS_SECTION: &str = "photos";

/// The last segment of an item's evidence field (`<section>/<item>.photos`).
pub const EVIDENCE_SUFFIX: &str = ".photos";

/// Is `key` an item's evidence field (`<section>/<item>.photos`)?
pub fn is_evidence_field(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(section, name)| !section.is_empty() && name.ends_with(EVIDENCE_SUFFIX))
}

/// The field holding the server's findings about the photo `sha256`.
pub fn findings_field(sha256: &str) -> String {
    format!("{FINDINGS_SECTION}/{sha256}")
}

/// What the server accepts of a photo, announced before a phone relies on one, and checked
/// again when an evidence field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest chunk of one `append`.
    pub chunk_max_bytes: u64,
    /// Largest file.
    pub file_max_bytes: u64,
    /// Accepted media types.
    pub content_types: &'static [&'static str],
}

/// The limits of this server.
pub const LIMITS: Limits = Limits {
    chunk_max_bytes: 1024 * 1024,
    file_max_bytes: 30_000_000,
    content_types: &["image/jpeg", "image/png"],
};
