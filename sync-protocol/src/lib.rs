//! The Yanshou sync protocol: sans-IO op model, clocks, merge rules, canonical hashing and wire
//! types, shared by the server and (through `PROTOCOL.md` and the golden fixtures) the PWA.
//!
//! Inspectors fill in acceptance tables on site, often offline, on several devices at once.
//! Every edit is an **op** ([`Op`]) in its device's append-only **series**; the server is the
//! **authority** that merges ops into **entity states** ([`EntityState`]), assigns a global
//! **commit sequence** and publishes **changes** ([`Change`]) that devices pull after their
//! **cursor**. The rules, in one sentence each:
//!
//! - a `set` based on the field's current revision applies; a `set` concurrent with another
//!   value turns the field into a **conflict** holding every value, with a deterministic
//!   provisional winner, until a person **resolves** it — no value is ever silently dropped;
//! - a device's own sequential offline edits never conflict with each other (the **streak**
//!   rule);
//! - a **signature** covers the canonical hash of its section and freezes it: later edits to it
//!   are rejected with a reason, returned to their device;
//! - retries are **duplicates**, lost ops are **gaps**; nothing is applied twice or skipped;
//! - a sync costs O(changes since the cursor), never O(history).
//!
//! The crate does no I/O and reads no clock or randomness: ids and times are passed in, and
//! every state ([`Replica`], [`Clock`], [`EntityState`]) is serialisable. Modules:
//! [`ids`], [`hlc`], [`value`], [`canonical`], [`op`], [`state`], [`merge`], [`series`],
//! [`change`], [`batch`], [`wire`], [`client`], [`server`], [`signature`]. The full rules are in
//! `PROTOCOL.md`.
//!
//! # A whole exchange
//!
//! Two inspectors edit the same field offline, push, pull, see the conflict and resolve it:
//!
//! ```
//! use std::collections::BTreeMap;
//! use sync_protocol::{Authority, DeviceId, EntityId, OpId, OpResult, Replica, Value};
//!
//! let (a, b) = (DeviceId::from_u128(0xa), DeviceId::from_u128(0xb));
//! let mine = EntityId::from_u128(0x1);
//! let mut server = Authority::default();
//! let mut alice = Replica::new(a);
//! let mut bob = Replica::new(b);
//! let field = "water_resources/item14.result";
//!
//! // Alice creates the acceptance table; both devices sync it.
//! alice.create(OpId::from_u128(1), 1_000, mine, "acceptance_table", BTreeMap::new())?;
//! for device in [&mut alice, &mut bob] {
//!     let response = server.handle(&device.build_request(None))?;
//!     device.handle_response(&response, 1_000)?;
//! }
//!
//! // Offline, both record a result for the same item.
//! alice.set(OpId::from_u128(2), 2_000, mine, field, Value::from("pass"))?;
//! bob.set(OpId::from_u128(3), 2_500, mine, field, Value::from("fail: ditch silted"))?;
//!
//! // Alice pushes first and is applied; Bob's edit was concurrent: a conflict, not an overwrite.
//! let response = server.handle(&alice.build_request(None))?;
//! assert!(matches!(response.results[0], OpResult::Applied { .. }));
//! alice.handle_response(&response, 3_000)?;
//! let response = server.handle(&bob.build_request(None))?;
//! assert!(matches!(response.results[0], OpResult::Conflict { .. }));
//! bob.handle_response(&response, 3_000)?;
//!
//! // Both values are kept; the provisional winner is the later HLC (Bob's).
//! let state = &bob.confirmed()[&mine].fields[field];
//! let conflict = state.conflict.as_ref().expect("conflict");
//! assert!(conflict.holds(&Value::from("pass")));
//! assert_eq!(state.value, Value::from("fail: ditch silted"));
//!
//! // Bob looks again on site and chooses Alice's value, saying why.
//! let chosen = conflict.candidates.iter().find(|c| c.device == a).map(|c| c.op);
//! bob.resolve(OpId::from_u128(4), 4_000, mine, field, Value::from("pass"), chosen,
//!             "re-inspected: ditch cleared this morning")?;
//! let response = server.handle(&bob.build_request(None))?;
//! bob.handle_response(&response, 4_000)?;
//! let response = server.handle(&alice.build_request(None))?;
//! alice.handle_response(&response, 4_000)?;
//!
//! // Everyone converges on the resolved value, with the resolution on record.
//! for device in [&alice, &bob] {
//!     assert_eq!(device.confirmed(), server.entities());
//!     let field = &device.confirmed()[&mine].fields[field];
//!     assert_eq!(field.value, Value::from("pass"));
//!     assert_eq!(field.resolution.as_ref().map(|r| r.device), Some(b));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
pub mod canonical;
pub mod change;
pub mod client;
pub mod hlc;
pub mod ids;
pub mod merge;
pub mod op;
pub mod series;
pub mod server;
pub mod signature;
pub mod state;
pub mod value;
pub mod wire;

pub use batch::{Batch, BatchOutcome, process_batch, touched_entities};
pub use canonical::{HashError, canonical_json, content_hash, section_hash};
pub use change::{Change, ChangeBody, Page, apply_change, page};
pub use client::{ClientError, Pending, Rejection, Replica, SyncReport};
pub use hlc::{Clock, ClockDrift, Hlc, MAX_DRIFT_MS};
pub use ids::{DeviceId, EntityId, OpId};
pub use merge::{
    AllowAll, Effect, InPlace, MergeContext, Outcome, Policy, Reject, RejectCode, merge,
    merge_in_place,
};
pub use op::{Op, OpBody, section_of};
pub use series::{Admission, SeriesState};
pub use server::Authority;
pub use signature::{DeviceSignature, PhotoClaim, SignatureError};
pub use state::{
    Candidate, Conflict, EntityState, FieldState, OrSet, Resolution, SectionSignature, SetElement,
    Withdrawal,
};
pub use value::{MAX_SAFE_INTEGER, Value, ValueError};
pub use wire::{
    OpResult, PROTOCOL_VERSION, ProtocolError, SyncRequest, SyncResponse, check_request,
    decode_request, decode_response,
};
