//! Device enrolment, listing and revocation.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, ErrorBody, Result},
    identity::{
        auth::AuthUser,
        devices::{self, PublicKeyInput},
    },
    model::{Device, Role},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, enroll_device))
        .routes(routes!(revoke_device))
        .routes(routes!(device_owner))
}

/// Who writes through a device: shown beside the values of a conflict ("张三, 水利局").
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceOwner {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub role: Role,
    /// Department code, for department inspectors.
    pub department: Option<String>,
    /// Specialty code, for experts.
    pub specialty: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// A name the user recognises, e.g. "李工的手机".
    pub name: String,
    /// The device's P-256 public key: a JWK object, SPKI PEM, or SPKI DER in base64.
    #[schema(value_type = Object)]
    pub public_key: PublicKeyInput,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Admins only: list this user's devices (`all=true` lists every device).
    pub user_id: Option<Uuid>,
    #[serde(default)]
    pub all: bool,
}

/// Enrol a phone for the calling user.
#[utoipa::path(post, path = "/devices", tag = "devices", security(("bearer" = [])),
    request_body = EnrollRequest,
    responses((status = 201, body = Device), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
async fn enroll_device(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<Device>)> {
    let device = devices::enroll(
        state.store.as_ref(),
        &caller,
        &req.name,
        &req.public_key,
        state.clock.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(device)))
}

/// The caller's devices; admins may list another user's or all.
#[utoipa::path(get, path = "/devices", tag = "devices", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = [Device]), (status = 403, body = ErrorBody)))]
async fn list_devices(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Device>>> {
    let filter = if q.all || q.user_id.is_some_and(|u| u != caller.id()) {
        caller.require(&[Role::Admin])?;
        if q.all { None } else { q.user_id }
    } else {
        Some(caller.id())
    };
    Ok(Json(state.store.list_devices(filter).await?))
}

/// The person a device belongs to, for anyone who works on acceptance records (not holders):
/// conflicts name each value's writer by device, and the phone shows who that is.
#[utoipa::path(get, path = "/devices/{id}/owner", tag = "devices", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DeviceOwner), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn device_owner(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<DeviceOwner>> {
    caller.require(&[
        Role::Admin,
        Role::CountyOffice,
        Role::DepartmentInspector,
        Role::TownshipOfficer,
        Role::Expert,
    ])?;
    let device = match state.store.get_device(id).await {
        Ok(d) => d,
        Err(crate::store::StoreError::NotFound) => {
            return Err(crate::error::AppError::NotFound("device"));
        }
        Err(e) => return Err(e.into()),
    };
    let user = state.store.get_user(device.user_id).await?;
    Ok(Json(DeviceOwner {
        device_id: device.id,
        user_id: user.id,
        display_name: user.display_name,
        role: user.role,
        department: user.department,
        specialty: user.specialty,
    }))
}

/// Revoke a device (its owner or an admin). Its sessions and tokens stop working at once.
#[utoipa::path(post, path = "/devices/{id}/revoke", tag = "devices", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_device(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    devices::revoke(state.store.as_ref(), &caller, id, state.clock.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}
