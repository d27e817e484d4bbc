//! Wire messages, versioned.
//!
//! One round trip does both directions: the device pushes its pending ops and pulls the changes
//! after its cursor ([`SyncRequest`] → [`SyncResponse`]). Pushed ops are processed first, so the
//! device pulls their effects in the same response. Every message carries
//! [`PROTOCOL_VERSION`]; a peer speaking another version gets [`ProtocolError::UnsupportedVersion`]
//! before anything else is interpreted ([`decode_request`], [`decode_response`]).

use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::ids::{DeviceId, OpId};
use crate::merge::RejectCode;
use crate::op::Op;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Page size when the request does not ask for one.
pub const DEFAULT_PULL_LIMIT: u32 = 500;
/// The largest page a server hands out, whatever the request asks.
pub const MAX_PULL_LIMIT: u32 = 5_000;
/// The most ops a device sends in one request; the rest wait for the next round trip.
pub const MAX_OPS_PER_REQUEST: usize = 500;

/// Push pending ops and pull changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The sending device (the server checks it against the authenticated device).
    pub device: DeviceId,
    /// Pending ops in ascending `seq`, starting at the oldest unacknowledged one.
    pub ops: Vec<Op>,
    /// The last commit sequence number the device has applied; 0 initially.
    pub cursor: u64,
    /// Page size wanted; the server caps it at [`MAX_PULL_LIMIT`].
    pub pull_limit: Option<u32>,
}

/// Results of the pushed ops and a page of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// One result per pushed op, in request order.
    pub results: Vec<OpResult>,
    /// Changes after the request's cursor, oldest first.
    pub changes: Vec<Change>,
    /// The new cursor (the last change's commit sequence, or the request's cursor).
    pub cursor: u64,
    /// More changes are waiting: sync again.
    pub has_more: bool,
}

/// What happened to one pushed op. Tagged by `"status"` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OpResult {
    /// Applied at `commit_seq`.
    Applied {
        /// The op.
        op: OpId,
        /// Its change's commit sequence number.
        commit_seq: u64,
    },
    /// Already processed earlier (a retry); nothing changed now.
    Duplicate {
        /// The op.
        op: OpId,
    },
    /// Accepted as one of several concurrent values of a field, at `commit_seq`.
    Conflict {
        /// The op.
        op: OpId,
        /// Its change's commit sequence number.
        commit_seq: u64,
    },
    /// Not applied, with the reason for the person who made it.
    Rejected {
        /// The op.
        op: OpId,
        /// Machine-readable reason.
        code: RejectCode,
        /// Human-readable explanation.
        message: String,
    },
    /// Held because an earlier op of the device is missing; resend from `expected`.
    Gap {
        /// The op.
        op: OpId,
        /// The sequence number the server expects next.
        expected: u64,
    },
}

impl OpResult {
    /// The op this result is about.
    pub fn op(&self) -> OpId {
        match self {
            OpResult::Applied { op, .. }
            | OpResult::Duplicate { op }
            | OpResult::Conflict { op, .. }
            | OpResult::Rejected { op, .. }
            | OpResult::Gap { op, .. } => *op,
        }
    }
}

/// A message could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The peer speaks another protocol version.
    #[error(
        "unsupported sync protocol version {got}; this side speaks version {supported}; update \
         the app"
    )]
    UnsupportedVersion {
        /// The version received.
        got: u32,
        /// [`PROTOCOL_VERSION`].
        supported: u32,
    },
    /// The message is not valid JSON of the expected shape.
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// A pushed op takes a new sequence number with the id of an op the server already holds
    /// (PROTOCOL.md §7): the whole request is refused and nothing of it is stored.
    #[error("op {0} reuses the id of a change the server already holds; nothing was saved")]
    OpIdReused(OpId),
}

/// Checks a received protocol version.
pub fn check_version(got: u32) -> Result<(), ProtocolError> {
    if got == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedVersion {
            got,
            supported: PROTOCOL_VERSION,
        })
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    protocol_version: u32,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    check_version(version.protocol_version)?;
    serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Parses a request, checking the version first so a future format yields a version error
/// rather than a confusing parse error, then [`check_request`].
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, ProtocolError> {
    let request = decode(bytes)?;
    check_request(&request)?;
    Ok(request)
}

/// Refuses a request holding an integer above 2^53 − 1 (PROTOCOL.md §1): a TypeScript peer could
/// not represent it, and a server storing it in a signed 64-bit column would change it.
pub fn check_request(request: &SyncRequest) -> Result<(), ProtocolError> {
    let bound = crate::value::MAX_SAFE_INTEGER.unsigned_abs();
    let check = |path: &dyn Fn() -> String, n: u64| {
        if n > bound {
            Err(ProtocolError::Malformed(format!(
                "{}: {n} is above 2^53 − 1, the protocol's largest integer",
                path()
            )))
        } else {
            Ok(())
        }
    };
    check(&|| "cursor".to_owned(), request.cursor)?;
    for (i, op) in request.ops.iter().enumerate() {
        check(&|| format!("ops[{i}].seq"), op.seq)?;
        check(&|| format!("ops[{i}].hlc.wall_ms"), op.hlc.wall_ms)?;
        if let crate::op::OpBody::Set { base_rev, .. }
        | crate::op::OpBody::Resolve { base_rev, .. } = &op.body
        {
            check(&|| format!("ops[{i}].base_rev"), *base_rev)?;
        }
    }
    Ok(())
}

/// Parses a response, checking the version first.
pub fn decode_response(bytes: &[u8]) -> Result<SyncResponse, ProtocolError> {
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_protocol_versions_are_rejected_before_parsing() {
        let err =
            decode_request(br#"{"protocol_version":2,"whatever":true}"#).expect_err("version 2");
        assert_eq!(
            err,
            ProtocolError::UnsupportedVersion {
                got: 2,
                supported: 1
            }
        );
        assert!(matches!(
            decode_request(b"{}"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn integers_above_2_pow_53_are_refused_not_capped() {
        let request = |seq: u64| {
            format!(
                r#"{{"protocol_version":1,"device":"00000000-0000-0000-0000-00000000000a",
                "cursor":0,"pull_limit":null,"ops":[{{"id":"00000000-0000-0000-0000-000000000001",
                "device":"00000000-0000-0000-0000-00000000000a","seq":{seq},
                "hlc":{{"wall_ms":1,"counter":0}},"entity":"00000000-0000-0000-0000-0000000000e1",
                "kind":"tombstone"}}]}}"#
            )
        };
        assert!(decode_request(request(9_007_199_254_740_991).as_bytes()).is_ok());
        for seq in [9_007_199_254_740_992, (1 << 63) + 1] {
            match decode_request(request(seq).as_bytes()) {
                Err(ProtocolError::Malformed(m)) => assert!(m.contains("ops[0].seq"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
