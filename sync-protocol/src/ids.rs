//! Identifiers.
//!
//! Every id is a UUID made by whoever creates the thing: a device makes its own [`DeviceId`] once,
//! and a fresh [`OpId`] for every op and [`EntityId`] for every entity it creates. The crate never
//! generates ids itself (it is sans-IO: no randomness), so callers pass them in — `Uuid::now_v7()`
//! on a device, or `from_u128` in tests. Ids are distinct types so an op id can never be passed
//! where an entity id is expected. On the wire each id is the hyphenated lowercase UUID string.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// Deterministic id from a number; meant for tests, fixtures and examples.
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A device (tablet, phone, browser profile): the only writer of its own op series.
    ///
    /// Also the last tie-breaker when two ops carry the same HLC, so the ordering of ids matters:
    /// it is the byte order of the UUID, which equals the order of the hyphenated lowercase string.
    DeviceId
);
id_type!(
    /// An entity: one record with fields, e.g. the acceptance table of one mine.
    EntityId
);
id_type!(
    /// One op, made by its device; unique across all devices (the server enforces it).
    OpId
);
