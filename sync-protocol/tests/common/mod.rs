//! Shared helpers: compact op builders, the fixture policy and the merge-case runner for
//! `fixtures/merge_cases.json`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_protocol::{
    AllowAll, DeviceId, EntityId, Hlc, MergeContext, Op, OpBody, OpId, Outcome, Policy, Reject,
    RejectCode, Value, merge,
};

pub const E: EntityId = EntityId::from_u128(0xe);
pub const A: DeviceId = DeviceId::from_u128(0xa);
pub const B: DeviceId = DeviceId::from_u128(0xb);
pub const C: DeviceId = DeviceId::from_u128(0xc);

/// An op numbered `n`: id `n`, HLC wall time `1000 + n`, so later-numbered ops have later HLCs.
pub fn op(device: DeviceId, n: u64, body: OpBody) -> Op {
    Op {
        id: OpId::from_u128(u128::from(n)),
        device,
        seq: n,
        hlc: Hlc::new(1_000 + n, 0),
        entity: E,
        body,
    }
}

pub fn create(fields: &[(&str, &str)]) -> OpBody {
    OpBody::Create {
        entity_type: "acceptance_table".to_owned(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect(),
    }
}

pub fn set(field: &str, value: &str, base_rev: u64) -> OpBody {
    OpBody::Set {
        field: field.to_owned(),
        value: Value::from(value),
        base_rev,
    }
}

pub fn resolve(field: &str, value: &str, base_rev: u64, chosen: Option<u64>) -> OpBody {
    OpBody::Resolve {
        field: field.to_owned(),
        value: Value::from(value),
        base_rev,
        chosen_op: chosen.map(|n| OpId::from_u128(u128::from(n))),
        reason: "re-inspected on site".to_owned(),
    }
}

pub fn add(field: &str, element: &str) -> OpBody {
    OpBody::Add {
        field: field.to_owned(),
        element: Value::from(element),
    }
}

pub fn remove(field: &str, element: &str, observed: &[u64]) -> OpBody {
    OpBody::Remove {
        field: field.to_owned(),
        element: Value::from(element),
        observed: observed
            .iter()
            .map(|n| OpId::from_u128(u128::from(*n)))
            .collect(),
    }
}

pub fn sign(section: &str, content_hash: &str) -> OpBody {
    OpBody::Sign {
        section: section.to_owned(),
        content_hash: content_hash.to_owned(),
        signature: Value::Map(BTreeMap::from([
            ("signer".to_owned(), Value::from("Li Wei, 水利局")),
            ("strokes".to_owned(), Value::from("blob:sha256:ab12")),
        ])),
    }
}

/// The policy used by fixtures: ops touching `forbidden_sections` are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SectionPolicy {
    pub forbidden_sections: Vec<String>,
}

impl Policy for SectionPolicy {
    fn check(&self, _entity_type: &str, op: &Op) -> Result<(), Reject> {
        match op.body.section() {
            Some(s) if self.forbidden_sections.iter().any(|f| f == s) => Err(Reject::new(
                RejectCode::Forbidden,
                format!("this inspector may not change section {s:?}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Merges `given` one by one (each must be accepted), then `op`; returns the state before
/// `op` and the outcome.
pub fn run(
    policy: Option<&SectionPolicy>,
    given: &[Op],
    op: &Op,
) -> (Option<sync_protocol::EntityState>, Outcome) {
    let allow = AllowAll;
    let policy: &dyn Policy = match policy {
        Some(p) => p,
        None => &allow,
    };
    let mut state = None;
    for (i, g) in given.iter().enumerate() {
        let ctx = MergeContext {
            policy: &AllowAll,
            commit_seq: i as u64 + 1,
        };
        match merge(state.as_ref(), g, &ctx) {
            Outcome::Applied(e) | Outcome::Conflict(e) => state = Some(e.state),
            other => panic!("given op {} not accepted: {other:?}", g.id),
        }
    }
    let ctx = MergeContext {
        policy,
        commit_seq: given.len() as u64 + 1,
    };
    let outcome = merge(state.as_ref(), op, &ctx);
    (state, outcome)
}

/// One merge scenario, as stored in `fixtures/merge_cases.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub policy: Option<SectionPolicy>,
    pub given: Vec<Op>,
    pub op: Op,
    pub expect: Expect,
}

impl PartialEq for SectionPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.forbidden_sections == other.forbidden_sections
    }
}

/// The expected outcome: `"applied" | "conflict" | "duplicate" | "rejected"`, the reject code,
/// and the change snapshot the op produces (null when nothing changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expect {
    pub outcome: String,
    pub code: Option<RejectCode>,
    pub change: Option<serde_json::Value>,
}

pub fn describe(outcome: &Outcome) -> Expect {
    let (name, code, change) = match outcome {
        Outcome::Applied(e) => ("applied", None, Some(&e.change)),
        Outcome::Conflict(e) => ("conflict", None, Some(&e.change)),
        Outcome::Duplicate => ("duplicate", None, None),
        Outcome::Rejected(r) => ("rejected", Some(r.code), None),
    };
    Expect {
        outcome: name.to_owned(),
        code,
        change: change.map(|c| serde_json::to_value(c).expect("serialisable")),
    }
}
