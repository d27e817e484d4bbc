//! Device enrolment: a phone registers the P-256 public key it made with WebCrypto
//! (non-extractable private key). The device id is the writer of one op series in the sync
//! protocol, and the key later verifies the device's signatures over acceptance sections.

use base64::{Engine, engine::general_purpose::STANDARD};
use p256::{
    PublicKey,
    pkcs8::{DecodePublicKey, EncodePublicKey},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    error::{AppError, Result},
    identity::auth::AuthUser,
    model::{Device, Role},
    store::{Store, StoreError},
};

/// A P-256 public key as a JWK object, or a string holding SPKI (PEM, or DER in base64).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PublicKeyInput {
    Jwk(serde_json::Map<String, serde_json::Value>),
    Spki(String),
}

/// Parse and check the key (on the P-256 curve, public only); return SPKI DER in base64.
pub fn normalize_public_key(input: &PublicKeyInput) -> Result<String> {
    let bad = |why: &str| AppError::invalid_field("public_key", why.to_owned());
    let key = match input {
        PublicKeyInput::Jwk(map) => {
            if map.contains_key("d") {
                return Err(bad(
                    "contains a private key ('d'); send only the public part",
                ));
            }
            if map.get("kty").and_then(|v| v.as_str()) != Some("EC")
                || map.get("crv").and_then(|v| v.as_str()) != Some("P-256")
            {
                return Err(bad("must be an EC key on curve P-256"));
            }
            let text = serde_json::to_string(map).map_err(|_| bad("unreadable JWK"))?;
            PublicKey::from_jwk_str(&text).map_err(|_| bad("not a valid P-256 point"))?
        }
        PublicKeyInput::Spki(text) => {
            let text = text.trim();
            if text.starts_with("-----BEGIN") {
                PublicKey::from_public_key_pem(text)
                    .map_err(|_| bad("not a P-256 SubjectPublicKeyInfo PEM"))?
            } else {
                let der = STANDARD
                    .decode(text)
                    .map_err(|_| bad("expected a JWK object, PEM, or base64 SPKI"))?;
                PublicKey::from_public_key_der(&der)
                    .map_err(|_| bad("not a P-256 SubjectPublicKeyInfo"))?
            }
        }
    };
    let der = key
        .to_public_key_der()
        .map_err(|e| AppError::Internal(format!("spki encoding: {e}")))?;
    Ok(STANDARD.encode(der.as_bytes()))
}

/// Enrol a device for the calling user, at `now` (Unix ms).
pub async fn enroll(
    store: &dyn Store,
    caller: &AuthUser,
    name: &str,
    key: &PublicKeyInput,
    now: i64,
) -> Result<Device> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid_field(
            "name",
            "must have 1 to 100 characters",
        ));
    }
    let device = Device {
        id: Uuid::now_v7(),
        user_id: caller.id(),
        name: name.to_owned(),
        public_key_spki: normalize_public_key(key)?,
        created_at: now,
        revoked_at: None,
    };
    store.create_device(&device).await?;
    tracing::info!(device = %device.id, user = %device.user_id, "device enrolled");
    Ok(device)
}

/// Revoke a device at `now` (Unix ms): its owner or an admin may. Its sessions end at once.
pub async fn revoke(store: &dyn Store, caller: &AuthUser, id: Uuid, now: i64) -> Result<()> {
    let device = match store.get_device(id).await {
        Ok(d) => d,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("device")),
        Err(e) => return Err(e.into()),
    };
    if device.user_id != caller.id() && caller.role() != Role::Admin {
        // Same answer as for a missing device: do not reveal other users' device ids.
        return Err(AppError::NotFound("device"));
    }
    store.revoke_device(id, now).await?;
    tracing::info!(device = %id, by = %caller.id(), "device revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::{SecretKey, elliptic_curve::rand_core::OsRng};

    fn public() -> PublicKey {
        SecretKey::random(&mut OsRng).public_key()
    }

    #[test]
    fn jwk_pem_and_base64_spki_normalise_to_the_same_key() {
        let key = public();
        let jwk: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&key.to_jwk_string()).expect("jwk json");
        let pem = key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem");
        let der = STANDARD.encode(key.to_public_key_der().expect("der").as_bytes());
        let a = normalize_public_key(&PublicKeyInput::Jwk(jwk)).expect("jwk");
        let b = normalize_public_key(&PublicKeyInput::Spki(pem)).expect("pem");
        let c = normalize_public_key(&PublicKeyInput::Spki(der.clone())).expect("der");
        assert_eq!(a, der);
        assert_eq!(b, der);
        assert_eq!(c, der);
    }

    #[test]
    fn private_jwk_is_refused() {
        let secret = SecretKey::random(&mut OsRng);
        let jwk: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&secret.to_jwk_string()).expect("jwk");
        let err = normalize_public_key(&PublicKeyInput::Jwk(jwk)).expect_err("private");
        assert!(err.to_string().contains("private"), "{err}");
    }

    #[test]
    fn point_off_the_curve_is_refused() {
        let jwk: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"kty":"EC","crv":"P-256",
                "x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"}"#,
        )
        .expect("json");
        assert!(normalize_public_key(&PublicKeyInput::Jwk(jwk)).is_err());
    }

    #[test]
    fn other_curves_and_garbage_are_refused() {
        let jwk: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#).expect("json");
        assert!(normalize_public_key(&PublicKeyInput::Jwk(jwk)).is_err());
        assert!(normalize_public_key(&PublicKeyInput::Spki("not base64!".into())).is_err());
        assert!(normalize_public_key(&PublicKeyInput::Spki(STANDARD.encode(b"hello"))).is_err());
    }
}
