//! Identity: who may call, from which device.
//!
//! - [`accounts`]: users with their role scope, login with its throttle, refresh-token rotation;
//! - [`devices`]: device enrolment (a P-256 public key per phone), revocation, owners;
//! - [`auth`]: the request extractors ([`auth::AuthUser`], the client address);
//! - [`tokens`]: access tokens (JWT) and the signing key;
//! - [`password`]: argon2id hashing off the async threads.

pub mod accounts;
pub mod auth;
pub mod devices;
pub mod password;
pub mod tokens;
