//! Login, token refresh and logout.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    api::users::UserView,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::{
        accounts::{self, Session},
        auth::ClientAddr,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[schema(min_length = 1, pattern = r"\S")]
    pub username: String,
    pub password: String,
    /// Bind the session to one of the user's enrolled devices (required for sync).
    #[serde(default)]
    pub device_id: Option<Uuid>,
}

/// A session as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; rotate it through `/api/v1/auth/refresh` (each use returns a new one).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    pub user: UserView,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        SessionView {
            user: UserView::from(&s.user),
            access_token: s.access_token,
            token_type: s.token_type,
            expires_in: s.expires_in,
            refresh_token: s.refresh_token,
            refresh_expires_in: s.refresh_expires_in,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange username and password for an access token and a refresh token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionView),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<SessionView>> {
    if req.username.trim().is_empty() {
        return Err(AppError::invalid_field("username", "must not be empty"));
    }
    let session = accounts::login(&state, &req.username, req.password, req.device_id, addr).await?;
    Ok(Json(session.into()))
}

/// Rotate a refresh token: returns a new access token and a new refresh token. Presenting a
/// refresh token a second time signs out every session of that login.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<SessionView>> {
    Ok(Json(
        accounts::refresh(&state, &req.refresh_token).await?.into(),
    ))
}

/// End the session the refresh token belongs to (idempotent).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 400, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode> {
    accounts::logout(&state, &req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
