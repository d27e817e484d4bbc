//! The server side of the sync protocol (`sync-protocol/PROTOCOL.md`).
//!
//! Vocabulary:
//! - **push**: the ops a device sends; processed in one transaction by the crate's
//!   `process_batch` (the same function the reference authority in the crate uses), under
//!   [`SyncPolicy`] — who may write which section.
//! - **pull**: changes after the device's cursor, filtered by [`Visibility`], paginated.
//! - **scope**: the township an entity belongs to (its header field `township_id`); township
//!   officers see and write only their township's entities (and county-wide ones).
//! - **section**: the part of a field key before the first `/`. An acceptance record has a header
//!   (`""`, the county office and township), `township` (初验), one section per inspecting
//!   department (its code, e.g. `water_resources`), and `experts`.
//!
//! Answers are checked against the record's acceptance template ([`templates`]), device
//! signatures against the pushing device's key ([`signatures`]), sections against the
//! caller's rights ([`policy`]).

pub mod conflicts;
pub mod policy;
pub mod server_ops;
pub mod signatures;
pub mod templates;
pub mod writer;

use serde::Serialize;
use sync_protocol::{Op, OpResult, SyncRequest};
use uuid::Uuid;

use self::{policy::visibility, writer::Job};
use crate::{
    AppState,
    error::{AppError, Result},
    identity::auth::AuthUser,
};

/// The wire form of `sync_protocol::SyncResponse` (same fields, same order), with the pulled
/// changes passed through as stored JSON.
#[derive(Debug, Serialize)]
pub struct SyncResponseOut {
    pub protocol_version: u32,
    pub results: Vec<OpResult>,
    pub changes: Vec<Box<serde_json::value::RawValue>>,
    pub cursor: u64,
    pub has_more: bool,
}

/// The push half of a sync, for an authenticated, enrolled device: the results of its ops,
/// committed. (The API answers with [`pull`] after it.)
pub async fn push(
    state: &AppState,
    caller: &AuthUser,
    request: &SyncRequest,
) -> Result<Vec<OpResult>> {
    let device = caller.device().ok_or_else(|| {
        AppError::Forbidden(
            "sync needs a session bound to an enrolled device (log in with device_id)".into(),
        )
    })?;
    if request.device.0 != device {
        return Err(AppError::Forbidden(
            "the request's device is not the device of this session".into(),
        ));
    }
    if request.ops.len() > sync_protocol::wire::MAX_OPS_PER_REQUEST {
        return Err(AppError::invalid_field(
            "ops",
            format!(
                "at most {} ops per request; send the rest in the next",
                sync_protocol::wire::MAX_OPS_PER_REQUEST
            ),
        ));
    }
    if request.ops.is_empty() {
        return Ok(Vec::new());
    }
    submit(state, caller, device, &request.ops).await
}

/// The pull half of a sync: the changes after the request's cursor the caller may see, with
/// the results of the push before it.
pub async fn pull(
    state: &AppState,
    caller: &AuthUser,
    request: &SyncRequest,
    results: Vec<OpResult>,
) -> Result<SyncResponseOut> {
    let limit = request
        .pull_limit
        .unwrap_or(sync_protocol::wire::DEFAULT_PULL_LIMIT)
        .clamp(1, sync_protocol::wire::MAX_PULL_LIMIT);
    let page = match state
        .store
        .sync_pull(request.cursor, limit, visibility(caller))
        .await
    {
        Ok(page) => page,
        // The push is committed: answer its results (a retry would only get `duplicate`) and
        // let the device pull again.
        Err(e) if !results.is_empty() => {
            tracing::warn!(error = ?e.to_string(), "pull failed after a committed push");
            crate::store::FeedPage {
                changes: Vec::new(),
                cursor: request.cursor,
                has_more: true,
            }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(SyncResponseOut {
        protocol_version: sync_protocol::PROTOCOL_VERSION,
        results,
        changes: page.changes,
        cursor: page.cursor,
        has_more: page.has_more,
    })
}

async fn submit(
    state: &AppState,
    caller: &AuthUser,
    device: Uuid,
    ops: &[Op],
) -> Result<Vec<OpResult>> {
    let signatures = signatures::verify(state, device, &caller.claims, ops).await?;
    state
        .sync_writer
        .submit(Job::new(device, ops.to_vec(), caller.claims.clone())?.with_signatures(signatures))
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use sync_protocol::{EntityId, OpBody, RejectCode};

    use super::{writer::process_group, *};
    use crate::model::Role;

    fn claims(dept: &str) -> crate::identity::auth::Claims {
        crate::identity::auth::Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: Uuid::nil(),
            iat: 0,
            nbf: 0,
            exp: 0,
            typ: "access".into(),
            role: Role::DepartmentInspector,
            dept: Some(dept.into()),
            town: None,
            spec: None,
            did: None,
        }
    }

    /// A request sent twice lands as two jobs of one group: the second copy must get the
    /// first's rejection again, not `duplicate` (the phone would drop the value).
    #[test]
    fn a_job_repeated_in_one_group_gets_the_rejection_again() {
        let device = Uuid::from_u128(5);
        let entity = EntityId(Uuid::from_u128(9));
        let office = sync_protocol::DeviceId(Uuid::from_u128(1));
        let create = Op {
            id: sync_protocol::OpId(Uuid::from_u128(100)),
            device: office,
            seq: 1,
            hlc: sync_protocol::Hlc::new(1, 0),
            entity,
            body: OpBody::Create {
                entity_type: "acceptance_record".into(),
                fields: BTreeMap::new(),
            },
        };
        let state = match sync_protocol::merge(
            None,
            &create,
            &sync_protocol::MergeContext {
                policy: &sync_protocol::AllowAll,
                commit_seq: 1,
            },
        ) {
            sync_protocol::Outcome::Applied(e) => e.state,
            other => panic!("{other:?}"),
        };
        let op = |n: u128, seq: u64, field: &str| Op {
            id: sync_protocol::OpId(Uuid::from_u128(n)),
            device: sync_protocol::DeviceId(device),
            seq,
            hlc: sync_protocol::Hlc::new(10 + seq, 0),
            entity,
            body: OpBody::Set {
                field: field.into(),
                value: sync_protocol::Value::from("1"),
                base_rev: 0,
            },
        };
        let ops = vec![
            op(201, 1, "forestry/19.cover"),
            op(202, 2, "water_resources/14.length"),
        ];
        let job = || Job::new(device, ops.clone(), claims("forestry")).unwrap();
        let loaded = crate::store::SyncLoaded {
            entities: BTreeMap::from([(entity, state)]),
            next_commit_seq: 2,
            ..Default::default()
        };
        let writes = process_group(
            loaded,
            &["forestry".into(), "water_resources".into()],
            &[job(), job()],
            0,
        );
        assert!(matches!(writes.results[0][0], OpResult::Applied { .. }));
        assert!(matches!(
            writes.results[0][1],
            OpResult::Rejected {
                code: RejectCode::Forbidden,
                ..
            }
        ));
        assert!(matches!(writes.results[1][0], OpResult::Duplicate { .. }));
        assert!(
            matches!(
                writes.results[1][1],
                OpResult::Rejected {
                    code: RejectCode::Forbidden,
                    ..
                }
            ),
            "{:?}",
            writes.results[1][1]
        );
        assert_eq!(writes.ops.len(), 2, "each op stored once");
        assert_eq!(writes.series, vec![(device, 2)]);
    }

    /// The pass-through response must be byte for byte what the protocol crate would encode.
    #[test]
    fn response_out_encodes_like_the_protocol_response() {
        let fixture: sync_protocol::SyncResponse = serde_json::from_str(include_str!(
            "../../../sync-protocol/fixtures/sync_response.json"
        ))
        .unwrap();
        let out = SyncResponseOut {
            protocol_version: fixture.protocol_version,
            results: fixture.results.clone(),
            changes: fixture
                .changes
                .iter()
                .map(|c| serde_json::value::to_raw_value(c).unwrap())
                .collect(),
            cursor: fixture.cursor,
            has_more: fixture.has_more,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            serde_json::to_string(&fixture).unwrap()
        );
    }
}
