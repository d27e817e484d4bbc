//! Login, token refresh and logout.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange username and password for an access token and a refresh token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<Session>> {
    if req.username.trim().is_empty() {
        return Err(AppError::invalid_field("username", "must not be empty"));
    }
    let session = accounts::login(&state, &req.username, req.password, req.device_id, addr).await?;
    Ok(Json(session))
}

/// Rotate a refresh token: returns a new access token and a new refresh token. Presenting a
/// refresh token a second time signs out every session of that login.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<Session>> {
    Ok(Json(accounts::refresh(&state, &req.refresh_token).await?))
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
