//! Device signatures carried by pushed ops, verified before the ops reach the writer.
//!
//! A `sign` op carries a section signature; an `add` to an item's evidence field carries a
//! photo's capture attestation; an `add` to an opinion letter's `experts/opinions` carries an
//! expert's word on the letter (PROTOCOL.md §12–15). Both are ECDSA P-256 signatures by the
//! pushing device's enrolled key. Verifying them needs that key (one store read) and some CPU
//! (about 0.1 ms each), so it happens on the request's side, off the async threads, and the
//! single writer only looks the verdicts up ([`SignatureVerdicts::failure`]) when the policy
//! checks the op in series order — a bad signature rejects its op with
//! [`RejectCode::InvalidSignature`] (or `invalid_op` for a photo the server would refuse),
//! never the whole batch. A signature whose handwritten strokes blob the server does not hold
//! is rejected [`RejectCode::StrokesMissing`]: the phone uploads the strokes first (§14).

use std::collections::HashMap;

use base64::Engine as _;
use p256::{ecdsa::VerifyingKey, pkcs8::DecodePublicKey};
use sync_protocol::{
    Op, OpBody, OpId, Reject, RejectCode, Value,
    signature::{self, SignatureError},
};
use uuid::Uuid;

use crate::{
    AppState,
    blobs::BlobHash,
    error::{AppError, Result},
    identity::auth::Claims,
    model::{
        letter::OPINIONS_FIELD,
        record::{LIMITS, is_evidence_field},
    },
    store::StoreError,
};

/// The verdicts on the signatures a batch carries: only failures are kept.
#[derive(Debug, Clone, Default)]
pub struct SignatureVerdicts {
    failures: HashMap<OpId, Reject>,
}

impl SignatureVerdicts {
    /// Why the signature carried by `op` does not hold, if it does not.
    pub fn failure(&self, op: &OpId) -> Option<&Reject> {
        self.failures.get(op)
    }
}

/// Does `op` carry a device signature to verify?
fn carries_signature(op: &Op) -> bool {
    match &op.body {
        OpBody::Sign { .. } => true,
        OpBody::Add { field, .. } => is_evidence_field(field) || field == OPINIONS_FIELD,
        _ => false,
    }
}

/// Verifies every signature `ops` carry, with the key of `device` (the pushing device), for
/// the user of `claims`. No store read and no work when the batch carries none.
pub async fn verify(
    state: &AppState,
    device: Uuid,
    claims: &Claims,
    ops: &[Op],
) -> Result<SignatureVerdicts> {
    if !ops.iter().any(carries_signature) {
        return Ok(SignatureVerdicts::default());
    }
    let stored = match state.store.get_device(device).await {
        Ok(d) => d,
        Err(StoreError::NotFound) => {
            return Err(AppError::Forbidden("this device is not enrolled".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let key = decode_key(&stored.public_key_spki)?;
    let signed: Vec<Op> = ops
        .iter()
        .filter(|o| carries_signature(o))
        .cloned()
        .collect();
    let claims = claims.clone();
    let (mut failures, strokes) = tokio::task::spawn_blocking(move || {
        let mut failures = HashMap::new();
        let mut strokes = Vec::new();
        for op in &signed {
            match check(op, &key, &claims) {
                Ok(Some(named)) => strokes.push((op.id, named)),
                Ok(None) => {}
                Err(reject) => {
                    failures.insert(op.id, reject);
                }
            }
        }
        (failures, strokes)
    })
    .await
    .map_err(|e| AppError::Internal(format!("signature check task: {e}")))?;
    for (op, (sha256, size)) in strokes {
        let held = match sha256.parse::<BlobHash>() {
            Ok(hash) => state.blobs.size(hash).await? == u64::try_from(size).ok(),
            Err(_) => false,
        };
        if !held {
            failures.insert(
                op,
                Reject::new(
                    RejectCode::StrokesMissing,
                    format!(
                        "the handwritten strokes {}… ({size} bytes) have not been uploaded; \
                         upload them before the signature",
                        &sha256[..12.min(sha256.len())]
                    ),
                ),
            );
        }
    }
    Ok(SignatureVerdicts { failures })
}

/// The enrolled key (SPKI DER, base64).
pub fn decode_key(spki_base64: &str) -> Result<VerifyingKey> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(spki_base64)
        .map_err(|e| AppError::Internal(format!("stored device key: {e}")))?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|e| AppError::Internal(format!("stored device key: {e}")))
}

fn invalid(e: &SignatureError) -> Reject {
    Reject::new(RejectCode::InvalidSignature, e.to_string())
}

/// The strokes blob `(sha256, size)` a signature names and the server must hold.
type NamedStrokes = Option<(String, i64)>;

/// One op's signature; the strokes it names, if any.
fn check(
    op: &Op,
    key: &VerifyingKey,
    claims: &Claims,
) -> std::result::Result<NamedStrokes, Reject> {
    match &op.body {
        OpBody::Sign { .. } => {
            let sig = signature::check_section_signature(op, key).map_err(|e| invalid(&e))?;
            check_signer(&sig, claims)?;
            Ok(signature::strokes_of(&sig))
        }
        OpBody::Add { field, element } if field == OPINIONS_FIELD => {
            let (sig, opinion) =
                signature::check_letter_opinion(element, op.entity, op.device, key)
                    .map_err(|e| invalid(&e))?;
            check_signer(&sig, claims)?;
            if opinion.specialty.as_deref() != claims.spec.as_deref() {
                return Err(Reject::new(
                    RejectCode::InvalidSignature,
                    "the word names another specialty than the signed-in expert's",
                ));
            }
            Ok(opinion.strokes)
        }
        OpBody::Add { element, .. } => {
            let claim = signature::check_photo_attestation(element, op.device, key)
                .map_err(|e| invalid(&e))?;
            if !LIMITS.content_types.contains(&claim.content_type.as_str()) {
                return Err(Reject::new(
                    RejectCode::InvalidOp,
                    format!(
                        "photos of type {} are not accepted (only {})",
                        claim.content_type,
                        LIMITS.content_types.join(", ")
                    ),
                ));
            }
            if u64::try_from(claim.size).unwrap_or(u64::MAX) > LIMITS.file_max_bytes {
                return Err(Reject::new(
                    RejectCode::InvalidOp,
                    format!(
                        "the photo is {} bytes; the largest accepted is {} bytes",
                        claim.size, LIMITS.file_max_bytes
                    ),
                ));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// A section signature names its signer: it must be the user of this session, in the role the
/// session has (a signature cannot be made in someone else's name, even from an enrolled phone).
fn check_signer(
    sig: &signature::DeviceSignature,
    claims: &Claims,
) -> std::result::Result<(), Reject> {
    let signer = match sig.statement.get("signer") {
        Some(Value::Map(m)) => m,
        _ => {
            return Err(Reject::new(
                RejectCode::InvalidSignature,
                "the signature does not name its signer",
            ));
        }
    };
    let user = signer.get("user").and_then(Value::as_str);
    if user != Some(claims.sub.to_string().as_str()) {
        return Err(Reject::new(
            RejectCode::InvalidSignature,
            "the signature names another user than the one signed in on this device",
        ));
    }
    let role = signer.get("role").and_then(Value::as_str);
    if role != Some(claims.role.as_str()) {
        return Err(Reject::new(
            RejectCode::InvalidSignature,
            format!(
                "the signature names the role {}, but the signer is a {}",
                role.unwrap_or("(none)"),
                claims.role.as_str()
            ),
        ));
    }
    Ok(())
}
