//! Access tokens (JWT, ES256) and refresh tokens (opaque, stored hashed).
//!
//! - The access token is short-lived and self-contained; verification accepts exactly one
//!   algorithm (ES256), so `none`, HS256-with-the-public-key and other algorithm confusions fail.
//!   `iss`, `aud`, `exp`, `nbf`, `sub` and our `typ` claim are all required and checked.
//! - The signing key is generated on first start and kept in the store (shared by all replicas),
//!   never in code or in the repository.
//! - A refresh token is 32 random bytes (base64url); only its SHA-256 is stored. Each use rotates
//!   it; presenting a rotated token again means it leaked, so its whole family is revoked.
//! - The same key signs the manifest of an archive bundle ([`TokenKeys::sign_document`]): ES256
//!   over the document's exact bytes. A JWT's signing input is base64url text joined by `.`, a
//!   signed document is JSON (it starts with `{`), so neither can pass for the other.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::{
    SecretKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding},
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    config::Settings,
    error::{AppError, Result},
    model::{Role, User},
    store::{SigningKey, Store, StoreResult},
};

/// Value of our `typ` claim for access tokens (refresh tokens are not JWTs at all).
pub const ACCESS_TYP: &str = "access";

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub typ: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dept: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub town: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// The enrolled device this session belongs to, if the login named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<Uuid>,
}

/// Keys and policy for issuing and checking access tokens.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl_secs: i64,
    /// The same key, for signing exported documents ([`Self::sign_document`]).
    document_signer: p256::ecdsa::SigningKey,
    /// Tokens whose signature was verified, by their full text. A phone sends the same token for
    /// up to 15 minutes; verifying ES256 every time cost ~10% of a sync request. Only the
    /// signature check is skipped on a hit: the time window is checked again, and the caller
    /// still checks the user and device in the store on every request.
    verified: std::sync::Mutex<std::collections::HashMap<String, Claims>>,
}

/// Verified tokens kept at most (cleared when full; they are re-verified on the next use).
const VERIFIED_CACHE_MAX: usize = 20_000;

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Load the key in force from the store, generating one (dated `now_ms`) on first start.
    pub async fn load_or_create(
        store: &dyn Store,
        settings: &Settings,
        now_ms: i64,
    ) -> StoreResult<Self> {
        let candidate = generate_signing_key(now_ms)
            .map_err(|e| crate::store::StoreError::Other(e.to_string()))?;
        let key = store.get_or_create_signing_key(&candidate).await?;
        Self::from_signing_key(&key, settings)
            .map_err(|e| crate::store::StoreError::Other(e.to_string()))
    }

    pub fn from_signing_key(key: &SigningKey, settings: &Settings) -> Result<Self> {
        let secret = SecretKey::from_pkcs8_pem(&key.private_pkcs8_pem)
            .map_err(|e| AppError::Internal(format!("stored signing key is invalid: {e}")))?;
        let public_pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AppError::Internal(format!("public key encoding: {e}")))?;
        let encoding = EncodingKey::from_ec_pem(key.private_pkcs8_pem.as_bytes())
            .map_err(|e| AppError::Internal(format!("signing key: {e}")))?;
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes())
            .map_err(|e| AppError::Internal(format!("verification key: {e}")))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_issuer(&[&settings.token_issuer]);
        validation.set_audience(&[&settings.token_audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // The time window is checked against the server's clock in `verify`, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 30;
        Ok(Self {
            kid: key.kid.clone(),
            encoding,
            decoding,
            validation,
            issuer: settings.token_issuer.clone(),
            audience: settings.token_audience.clone(),
            access_ttl_secs: i64::try_from(settings.access_token_ttl_secs).unwrap_or(900),
            document_signer: p256::ecdsa::SigningKey::from(secret),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    /// The key's id: the first 8 bytes of the SHA-256 of its SPKI DER, in hex (the JWT `kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half of the key.
    pub fn public_key(&self) -> p256::ecdsa::VerifyingKey {
        *self.document_signer.verifying_key()
    }

    /// An ES256 signature of `bytes` as `r‖s` (RFC 6979 deterministic `k`): what an archive
    /// bundle's `manifest.sig` holds, in base64url.
    pub fn sign_document(&self, bytes: &[u8]) -> [u8; 64] {
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = self.document_signer.sign(bytes);
        sig.to_bytes().into()
    }

    /// Issue an access token for `user` (optionally bound to a device) at `now_secs`.
    pub fn issue(&self, user: &User, device: Option<Uuid>, now_secs: i64) -> Result<String> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.id,
            iat: now_secs,
            nbf: now_secs,
            exp: now_secs + self.access_ttl_secs,
            typ: ACCESS_TYP.into(),
            role: user.role,
            dept: user.department.clone(),
            town: user.township_id,
            spec: user.specialty.clone(),
            did: device,
        };
        self.sign(&claims)
    }

    /// Sign arbitrary claims (tests use this to make expired or odd tokens with the real key).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("jwt encode: {e}")))
    }

    /// Check signature, algorithm, issuer, audience and type, and the time window at
    /// `now_secs` (the server's clock, Unix seconds).
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims> {
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(token).cloned());
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature(token)?;
                if let Ok(mut c) = self.verified.lock() {
                    if c.len() >= VERIFIED_CACHE_MAX {
                        c.clear();
                    }
                    c.insert(token.to_owned(), claims.clone());
                }
                claims
            }
        };
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
        if claims.exp + leeway <= now_secs {
            return Err(AppError::Unauthenticated("access token expired"));
        }
        if claims.nbf - leeway > now_secs {
            return Err(AppError::Unauthenticated("access token not yet valid"));
        }
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AppError::Unauthenticated("invalid access token"))?;
        if data.claims.typ != ACCESS_TYP {
            return Err(AppError::Unauthenticated("invalid access token"));
        }
        Ok(data.claims)
    }

    /// The public key as SPKI PEM (for tests and external verifiers).
    pub fn public_key_pem(key: &SigningKey) -> Result<String> {
        let secret = SecretKey::from_pkcs8_pem(&key.private_pkcs8_pem)
            .map_err(|e| AppError::Internal(format!("stored signing key is invalid: {e}")))?;
        secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AppError::Internal(format!("public key encoding: {e}")))
    }
}

/// Make a fresh P-256 signing key; `kid` is derived from the public key.
pub fn generate_signing_key(now_ms: i64) -> anyhow::Result<SigningKey> {
    let secret = SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF)?;
    let spki = secret.public_key().to_public_key_der()?;
    let kid = hex::encode(&Sha256::digest(spki.as_bytes())[..8]);
    Ok(SigningKey {
        kid,
        private_pkcs8_pem: pem.to_string(),
        created_at: now_ms,
    })
}

/// A new opaque refresh token and the hash to store.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (TokenKeys, SigningKey) {
        let key = generate_signing_key(0).expect("key");
        (
            TokenKeys::from_signing_key(&key, &Settings::default()).expect("keys"),
            key,
        )
    }

    fn user() -> User {
        User {
            id: Uuid::new_v4(),
            username: "li".into(),
            display_name: "李".into(),
            role: Role::DepartmentInspector,
            department: Some("forestry".into()),
            township_id: None,
            specialty: None,
            disabled: false,
            created_at: 0,
            password_hash: String::new(),
        }
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let (k, _) = keys();
        let u = user();
        let now = chrono::Utc::now().timestamp();
        let t = k.issue(&u, None, now).expect("issue");
        let c = k.verify(&t, now).expect("verify");
        assert_eq!(c.sub, u.id);
        assert_eq!(c.role, Role::DepartmentInspector);
        assert_eq!(c.dept.as_deref(), Some("forestry"));
    }

    #[test]
    fn token_from_another_key_is_refused() {
        let (k1, _) = keys();
        let (k2, _) = keys();
        let now = chrono::Utc::now().timestamp();
        let t = k1.issue(&user(), None, now).expect("issue");
        assert!(k2.verify(&t, now).is_err());
    }

    #[test]
    fn a_cached_token_still_expires_and_a_tampered_one_misses_the_cache() {
        let (k, _) = keys();
        let now = chrono::Utc::now().timestamp();
        let mut claims = k
            .verify(&k.issue(&user(), None, now).expect("issue"), now)
            .expect("ok");
        claims.exp = now + 1;
        claims.nbf = now - 10;
        let short = k.sign(&claims).expect("sign");
        assert!(k.verify(&short, now).is_ok(), "verified and cached");
        // Tamper with the payload: a different string, so no cache hit, and a bad signature.
        let mut parts: Vec<String> = short.split('.').map(str::to_owned).collect();
        parts[1].push('A');
        assert!(k.verify(&parts.join("."), now).is_err());
        // Past exp + leeway the cached entry is refused too.
        let mut stale = claims.clone();
        stale.exp = now - 31;
        stale.nbf = now - 100;
        let stale_token = k.sign(&stale).expect("sign");
        k.verified
            .lock()
            .expect("lock")
            .insert(stale_token.clone(), stale);
        assert!(k.verify(&stale_token, now).is_err());
        // The window is the caller's clock: the same token at its own time is fine.
        assert!(k.verify(&stale_token, now - 40).is_ok());
        assert!(
            k.verify(&short, now + 40).is_err(),
            "expired on the server's clock"
        );
    }

    #[test]
    fn documents_are_signed_with_the_token_key_under_its_kid() {
        use p256::{ecdsa::signature::Verifier, pkcs8::EncodePublicKey};
        let (k, key) = keys();
        let sig = k.sign_document(b"{\"a\":1}");
        let sig = p256::ecdsa::Signature::from_slice(&sig).expect("r||s");
        assert!(k.public_key().verify(b"{\"a\":1}", &sig).is_ok());
        assert!(k.public_key().verify(b"{\"a\":2}", &sig).is_err());
        let spki = k.public_key().to_public_key_der().expect("spki");
        assert_eq!(k.kid(), hex::encode(&Sha256::digest(spki.as_bytes())[..8]));
        assert_eq!(k.kid(), key.kid);
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(ha, hash_refresh_token(&a));
        assert_eq!(ha.len(), 32);
    }
}
