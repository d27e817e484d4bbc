//! Users: the caller's own account, and account administration (admins only).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, AppError, ErrorBody, Result},
    identity::{
        accounts::{self, NewUserInput},
        auth::AuthUser,
    },
    model::{Role, User},
    store::StoreError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
}

/// The calling user.
#[utoipa::path(get, path = "/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<User>> {
    Ok(Json(state.store.get_user(caller.id()).await?))
}

/// All users (admin).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn list_users(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Vec<User>>> {
    caller.require(&[Role::Admin])?;
    Ok(Json(state.store.list_users().await?))
}

/// Create a user (admin). The role's scope is required: a department for inspectors, a township
/// for township officers, a specialty for experts.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])),
    request_body = NewUserInput,
    responses((status = 201, body = User), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(input): ApiJson<NewUserInput>,
) -> Result<(StatusCode, Json<User>)> {
    caller.require(&[Role::Admin])?;
    let user = accounts::create_user(state.store.as_ref(), input, state.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user (admin, or the user themself).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<User>> {
    if caller.id() != id {
        caller.require(&[Role::Admin])?;
    }
    match state.store.get_user(id).await {
        Ok(u) => Ok(Json(u)),
        Err(StoreError::NotFound) => Err(AppError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}

async fn set_disabled(state: &AppState, caller: &AuthUser, id: Uuid, disabled: bool) -> Result<()> {
    caller.require(&[Role::Admin])?;
    if disabled && caller.id() == id {
        return Err(AppError::Conflict {
            code: crate::error::ErrorCode::CannotDisableSelf,
            message: "an administrator cannot disable their own account".into(),
        });
    }
    match state.store.set_user_disabled(id, disabled).await {
        Ok(()) => {
            tracing::info!(user = %id, by = %caller.id(), disabled, "user status changed");
            Ok(())
        }
        Err(StoreError::NotFound) => Err(AppError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}

/// Disable a user (admin). Their tokens stop working at once.
#[utoipa::path(post, path = "/users/{id}/disable", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn disable_user(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    set_disabled(&state, &caller, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable a disabled user again (admin).
#[utoipa::path(post, path = "/users/{id}/enable", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enable_user(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    set_disabled(&state, &caller, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
