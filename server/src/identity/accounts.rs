//! Accounts and sessions: creating users with role-scope rules, login with rate limiting,
//! refresh-token rotation with reuse detection, logout.
//!
//! Vocabulary:
//! - **scope**: what a role is bound to — a department for `department_inspector`, a township or
//!   forest farm for `township_officer`, a specialty for `expert`; other roles have none.
//! - **session**: one login; its refresh tokens form a **family** (rotated on every use).
//! - **throttle**: login attempts are counted in fixed windows of `login_window_secs` per
//!   (account, client address) — five, then ten over eight windows (a growing delay) — and per
//!   client address over all accounts. Per account from all addresses there is a higher limit
//!   past which the account is **under attack**: only its enrolled devices (login with a
//!   `device_id` of the account) may still try, so a stranger who knows an account name cannot
//!   lock its inspector out. An attempt is **reserved** in the store (counted, atomically, only
//!   below every limit) before the password is checked and taken back if it was right, so
//!   guesses sent in parallel cannot all pass the check.

use std::net::IpAddr;

use serde::Deserialize;
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, Result},
    identity::{password, tokens},
    model::{NewUser, Role, User},
    store::{RefreshToken, Store, StoreError},
};

/// Input for a new account (CLI and admin API).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    /// 2 to 64 letters, digits and `_ - . @` (surrounding blanks are trimmed).
    #[schema(pattern = r"^\s*[\w.@-]{2,64}\s*$")]
    pub username: String,
    /// 1 to 100 characters once trimmed.
    #[schema(max_length = 100, pattern = r"\S")]
    pub display_name: String,
    #[schema(min_length = 8)]
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub township_id: Option<Uuid>,
    #[serde(default)]
    pub specialty: Option<String>,
}

/// Validate the input (username form, password strength, role scope against the organisation
/// data) and create the user.
pub async fn create_user(store: &dyn Store, input: NewUserInput, now: i64) -> Result<User> {
    let username = input.username.trim().to_owned();
    if username.chars().count() < 2 || username.chars().count() > 64 {
        return Err(AppError::invalid_field(
            "username",
            "must have 2 to 64 characters",
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    {
        return Err(AppError::invalid_field(
            "username",
            "may contain letters, digits and _ - . @ only",
        ));
    }
    let display_name = input.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        return Err(AppError::invalid_field(
            "display_name",
            "must have 1 to 100 characters",
        ));
    }
    password::check_strength(&input.password)?;
    check_scope(store, &input).await?;
    let password_hash = password::hash_blocking(input.password).await?;
    let user = store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            username,
            display_name,
            role: input.role,
            department: input.department,
            township_id: input.township_id,
            specialty: input.specialty,
            password_hash,
            created_at: now,
        })
        .await?;
    tracing::info!(user = ?user.username, role = %user.role, "user created");
    Ok(user)
}

/// Each role carries exactly the scope it needs, and the scope must exist.
async fn check_scope(store: &dyn Store, input: &NewUserInput) -> Result<()> {
    let (needs_dept, needs_town, needs_spec) = match input.role {
        Role::DepartmentInspector => (true, false, false),
        Role::TownshipOfficer => (false, true, false),
        Role::Expert => (false, false, true),
        Role::Admin | Role::CountyOffice | Role::Operator => (false, false, false),
    };
    let scope_rule = |field: &str, needed: bool, present: bool| -> Result<()> {
        match (needed, present) {
            (true, false) => Err(AppError::invalid_field(
                field,
                format!("is required for role {}", input.role),
            )),
            (false, true) => Err(AppError::invalid_field(
                field,
                format!("does not apply to role {}", input.role),
            )),
            _ => Ok(()),
        }
    };
    scope_rule("department", needs_dept, input.department.is_some())?;
    scope_rule("township_id", needs_town, input.township_id.is_some())?;
    scope_rule("specialty", needs_spec, input.specialty.is_some())?;
    if let Some(code) = &input.department {
        let departments = store.list_departments().await?;
        match departments.iter().find(|d| &d.code == code) {
            None => {
                return Err(AppError::invalid_field(
                    "department",
                    format!("unknown department {code:?}"),
                ));
            }
            Some(d) if d.observer => {
                return Err(AppError::invalid_field(
                    "department",
                    format!("{} is an observer and has no inspectors", d.name),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(id) = input.township_id
        && !store.list_townships().await?.iter().any(|t| t.id == id)
    {
        return Err(AppError::invalid_field("township_id", "unknown township"));
    }
    if let Some(code) = &input.specialty
        && !store
            .list_specialties()
            .await?
            .iter()
            .any(|s| &s.code == code)
    {
        return Err(AppError::invalid_field(
            "specialty",
            format!("unknown specialty {code:?}"),
        ));
    }
    Ok(())
}

/// What a successful login or refresh returns.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; rotate it through `/api/v1/auth/refresh` (each use returns a new one).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    pub user: User,
}

/// The start of the window of `windows` × `login_window_secs` that holds `now`, and the seconds
/// until it ends.
fn window_start(state: &AppState, now: i64, windows: i64) -> (i64, u64) {
    let window_ms = i64::try_from(state.settings.login_window_secs)
        .unwrap_or(i64::MAX / 8000)
        .saturating_mul(1000)
        .saturating_mul(windows);
    let start = now - now.rem_euclid(window_ms);
    let remaining_secs = u64::try_from((start + window_ms - now) / 1000).unwrap_or(1);
    (start, remaining_secs)
}

fn account_key(username: &str) -> String {
    format!("account:{}", username.trim().to_lowercase())
}

fn addr_key(addr: Option<IpAddr>) -> String {
    match addr {
        Some(ip) => format!("addr:{ip}"),
        None => "addr:unknown".into(),
    }
}

/// The longer window of the (account, address) counter, in windows.
const LONG_WINDOWS: i64 = 8;

/// Check the password; on success open a session (optionally bound to one of the user's devices).
pub async fn login(
    state: &AppState,
    username: &str,
    password_attempt: String,
    device_id: Option<Uuid>,
    addr: Option<IpAddr>,
) -> Result<Session> {
    let now = state.clock.now_ms();
    let s = &state.settings;
    let (window, retry_short) = window_start(state, now, 1);
    let (long_window, retry_long) = window_start(state, now, LONG_WINDOWS);
    let account = account_key(username);
    let address = addr_key(addr);
    let pair = format!("pair:{account}|{address}");
    let pair_long = format!("pair-long:{account}|{address}");

    let user = match state.store.get_user_by_username(username.trim()).await {
        Ok(u) => Some(u),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    // An enrolled, unrevoked device of this account is not held back by failures from elsewhere.
    let known_device = match (&user, device_id) {
        (Some(user), Some(device_id)) => match state.store.get_device(device_id).await {
            Ok(d) => d.user_id == user.id && d.revoked_at.is_none(),
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        },
        _ => false,
    };
    let mut counters: Vec<(&str, i64, u32, u64)> = vec![
        (
            &pair,
            window,
            s.login_max_failures_per_account_address,
            retry_short,
        ),
        (
            &pair_long,
            long_window,
            s.login_max_failures_per_account_address.saturating_mul(2),
            retry_long,
        ),
        (
            &address,
            window,
            s.login_max_failures_per_address,
            retry_short,
        ),
    ];
    if !known_device {
        counters.push((
            &account,
            window,
            s.login_max_failures_per_account,
            retry_short,
        ));
    }
    let reserve: Vec<(&str, i64, u32)> = counters.iter().map(|c| (c.0, c.1, c.2)).collect();
    if let Some(full) = state.store.reserve_login_attempt(&reserve, now).await? {
        tracing::info!(account = ?account, address = ?address, counter = ?counters[full].0,
            "login throttled");
        return Err(AppError::RateLimited {
            retry_after_secs: counters[full].3,
        });
    }

    let ok = password::verify_blocking(
        password_attempt,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            // The reserved attempt stays counted as a failure.
            tracing::info!(account = ?account, address = ?address, "failed login");
            return Err(AppError::InvalidCredentials);
        }
    };
    // Right password: the attempt was no failure, and this address starts afresh for the account.
    let mut release: Vec<(&str, i64)> = vec![(&address, window)];
    if !known_device {
        release.push((&account, window));
    }
    state.store.release_login_attempt(&release).await?;
    state.store.clear_login_failures(&pair).await?;
    state.store.clear_login_failures(&pair_long).await?;
    if user.disabled {
        return Err(AppError::Forbidden("account is disabled".into()));
    }
    if let Some(device_id) = device_id {
        check_device_usable(state.store.as_ref(), user.id, device_id).await?;
    }
    open_session(state, user, device_id, Uuid::now_v7(), now).await
}

async fn check_device_usable(store: &dyn Store, user_id: Uuid, device_id: Uuid) -> Result<()> {
    match store.get_device(device_id).await {
        Ok(d) if d.user_id != user_id => Err(AppError::invalid_field(
            "device_id",
            "not one of this user's devices",
        )),
        Ok(d) if d.revoked_at.is_some() => {
            Err(AppError::Forbidden("this device has been revoked".into()))
        }
        Ok(_) => Ok(()),
        Err(StoreError::NotFound) => Err(AppError::invalid_field("device_id", "unknown device")),
        Err(e) => Err(e.into()),
    }
}

async fn open_session(
    state: &AppState,
    user: User,
    device_id: Option<Uuid>,
    family_id: Uuid,
    now: i64,
) -> Result<Session> {
    let refresh_ttl_ms = i64::try_from(state.settings.refresh_token_ttl_days)
        .unwrap_or(30)
        .saturating_mul(86_400_000);
    let (refresh_token, token_hash) = tokens::new_refresh_token();
    state
        .store
        .insert_refresh_token(&RefreshToken {
            id: Uuid::now_v7(),
            family_id,
            user_id: user.id,
            device_id,
            token_hash,
            created_at: now,
            expires_at: now + refresh_ttl_ms,
            used_at: None,
            revoked_at: None,
        })
        .await?;
    let access_token = state.keys.issue(&user, device_id, now / 1000)?;
    Ok(Session {
        access_token,
        token_type: "Bearer",
        expires_in: state.keys.access_ttl_secs(),
        refresh_token,
        refresh_expires_in: refresh_ttl_ms / 1000,
        user,
    })
}

/// Rotate a refresh token. A token presented after it was rotated revokes its whole family.
pub async fn refresh(state: &AppState, presented: &str) -> Result<Session> {
    let now = state.clock.now_ms();
    let stored = match state
        .store
        .get_refresh_token_by_hash(&tokens::hash_refresh_token(presented))
        .await
    {
        Ok(t) => t,
        Err(StoreError::NotFound) => {
            return Err(AppError::Unauthenticated("invalid refresh token"));
        }
        Err(e) => return Err(e.into()),
    };
    if stored.revoked_at.is_some() {
        return Err(AppError::Unauthenticated("refresh token revoked"));
    }
    if stored.used_at.is_some() {
        return Err(reuse_detected(state, &stored, now).await);
    }
    if stored.expires_at <= now {
        return Err(AppError::Unauthenticated("refresh token expired"));
    }
    if !state.store.mark_refresh_token_used(stored.id, now).await? {
        // Lost a race with another use of the same token: treat it as the replay it is.
        return Err(reuse_detected(state, &stored, now).await);
    }
    let user = state.store.get_user(stored.user_id).await?;
    if user.disabled {
        return Err(AppError::Unauthenticated("account is disabled"));
    }
    if let Some(device_id) = stored.device_id {
        let device = state.store.get_device(device_id).await?;
        if device.revoked_at.is_some() {
            return Err(AppError::Unauthenticated("device is revoked"));
        }
    }
    open_session(state, user, stored.device_id, stored.family_id, now).await
}

async fn reuse_detected(state: &AppState, stored: &RefreshToken, now: i64) -> AppError {
    tracing::warn!(family = %stored.family_id, user = %stored.user_id,
        "refresh token reuse: revoking the family");
    match state
        .store
        .revoke_refresh_family(stored.family_id, now)
        .await
    {
        Ok(()) => AppError::RefreshTokenReused,
        Err(e) => e.into(),
    }
}

/// End the session the refresh token belongs to. Unknown tokens are ignored (idempotent).
pub async fn logout(state: &AppState, presented: &str) -> Result<()> {
    match state
        .store
        .get_refresh_token_by_hash(&tokens::hash_refresh_token(presented))
        .await
    {
        Ok(t) => Ok(state
            .store
            .revoke_refresh_family(t.family_id, state.clock.now_ms())
            .await?),
        Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
