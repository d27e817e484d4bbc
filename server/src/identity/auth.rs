//! The caller of a request: the extractors handlers use to learn who is calling (access token,
//! device binding, client address).

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, Result},
    model::{Mine, Role},
    store::StoreError,
};

pub use super::tokens::Claims;

/// The authenticated caller: a valid access token whose user is active and whose device (if the
/// token names one) is not revoked. Both are checked against the store on every request, so
/// disabling a user or revoking a phone takes effect at once, not when the token expires.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub claims: Claims,
}

impl AuthUser {
    pub fn id(&self) -> Uuid {
        self.claims.sub
    }

    pub fn role(&self) -> Role {
        self.claims.role
    }

    pub fn device(&self) -> Option<Uuid> {
        self.claims.did
    }

    /// Whether the caller may see `mine`: a township officer sees its township's mines, a
    /// holder the mines bound to it, every other role all mines.
    pub fn sees_mine(&self, mine: &Mine) -> bool {
        match self.role() {
            Role::TownshipOfficer => self.claims.town == Some(mine.township_id),
            Role::Operator => mine.holder_user_id == Some(self.claims.sub),
            _ => true,
        }
    }

    /// Refuse unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<()> {
        if roles.contains(&self.claims.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "role {} may not do this",
                self.claims.role
            )))
        }
    }
}

/// The mine `id` if the caller may see it ([`AuthUser::sees_mine`]); a mine the caller may not
/// see is "not found", as if it did not exist.
pub async fn visible_mine(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<Mine> {
    match state.store.get_mine(id).await {
        Ok(mine) if caller.sees_mine(&mine) => Ok(mine),
        Ok(_) | Err(StoreError::NotFound) => Err(AppError::NotFound("mine")),
        Err(e) => Err(e.into()),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(AppError::Unauthenticated("missing Authorization header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::Unauthenticated(
                "Authorization must be 'Bearer <token>'",
            ))?;
        let claims = state.keys.verify(token, state.clock.now_ms() / 1000)?;
        let status = match state.store.principal_status(claims.sub, claims.did).await {
            Ok(s) => s,
            Err(StoreError::NotFound) => {
                return Err(AppError::Unauthenticated("user no longer exists"));
            }
            Err(e) => return Err(e.into()),
        };
        if status.user_disabled {
            return Err(AppError::Unauthenticated("account is disabled"));
        }
        if claims.did.is_some() && status.device_revoked != Some(false) {
            return Err(AppError::Unauthenticated("device is revoked"));
        }
        Ok(AuthUser { claims })
    }
}

/// The client's address, for per-address rate limiting. Taken from the last `X-Forwarded-For`
/// entry only when `trust_forwarded_for` is set (behind a trusted proxy): that entry is the one
/// the proxy appended; everything left of it was written by the client and proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        if state.settings.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Ok(ClientAddr(Some(ip)));
        }
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ci| ci.0.ip()),
        ))
    }
}
