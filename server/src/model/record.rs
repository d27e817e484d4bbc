//! The acceptance record as a sync entity: its type, its header fields, its sections.
//!
//! A field key is `section/name`; the section is the part before the first `/`. An acceptance
//! record has a header (`""`, written by the county office and the township), `township` (初验),
//! one section per inspecting department (its code, e.g. `water_resources`), and `experts`.

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
    PURPOSE_FIELD,
];

/// Header field of a round opened as a spot check during the maintenance period (管护期抽查):
/// [`SPOT_CHECK`]. Absent on acceptance rounds.
pub const PURPOSE_FIELD: &str = "purpose";
pub const SPOT_CHECK: &str = "maintenance_spot_check";

/// The device id under which the server itself creates records (no device's series).
pub const SERVER_DEVICE: DeviceId = DeviceId(Uuid::nil());
