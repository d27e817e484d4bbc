//! Identity: users, the login throttle, the token signing key, refresh tokens and devices.

use async_trait::async_trait;
use uuid::Uuid;

use super::{SqlStore, StoreError, StoreResult, sql::Row};
use crate::model::{Device, NewUser, Role, User};

/// A stored refresh token (only its SHA-256 hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub id: Uuid,
    /// All tokens rotated from one login share a family; reuse of a rotated token revokes it.
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<Uuid>,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The token signing key (ES256), generated on first start and shared by all replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    pub kid: String,
    pub private_pkcs8_pem: String,
    pub created_at: i64,
}

/// Whether a token's subject may still act: checked on every authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalStatus {
    pub user_disabled: bool,
    /// `None` when the token names no device or the device does not exist.
    pub device_revoked: Option<bool>,
}

/// Accounts, login throttling, signing keys, refresh tokens and devices.
#[async_trait]
pub trait IdentityStore {
    // Users
    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn get_user(&self, id: Uuid) -> StoreResult<User>;
    async fn get_user_by_username(&self, username: &str) -> StoreResult<User>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn set_user_disabled(&self, id: Uuid, disabled: bool) -> StoreResult<()>;
    async fn set_user_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()>;
    /// Is the user disabled, and (if given) is the device revoked or not this user's?
    async fn principal_status(
        &self,
        user_id: Uuid,
        device_id: Option<Uuid>,
    ) -> StoreResult<PrincipalStatus>;

    // Login throttling (fixed windows keyed by `account:NAME`, `addr:IP`, …)
    /// Forget every window of `key` (a correct password clears its account-and-address pair).
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;
    /// Reserve one login attempt against every counter in `counters` (key, window start, limit)
    /// in one transaction, before the password is checked: each counter is incremented only if
    /// it is below its limit, else nothing is incremented and the index of the first full
    /// counter is returned. Parallel attempts therefore cannot all pass the check. A reserved
    /// attempt counts as a failure until [`IdentityStore::release_login_attempt`] takes it
    /// back. A new counter row is stamped `now`.
    async fn reserve_login_attempt(
        &self,
        counters: &[(&str, i64, u32)],
        now: i64,
    ) -> StoreResult<Option<usize>>;
    /// Take back a reserved attempt (the password was right): decrement each (key, window start).
    async fn release_login_attempt(&self, counters: &[(&str, i64)]) -> StoreResult<()>;

    // Signing keys
    /// Insert `candidate` unless a key already exists; return the key in force (the oldest).
    /// Safe when several replicas start at once: all end up with the same key.
    async fn get_or_create_signing_key(&self, candidate: &SigningKey) -> StoreResult<SigningKey>;

    // Refresh tokens
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    async fn get_refresh_token_by_hash(&self, hash: &[u8]) -> StoreResult<RefreshToken>;
    /// Mark a token used, atomically: `false` if it was already used (a replay or a race).
    async fn mark_refresh_token_used(&self, id: Uuid, now: i64) -> StoreResult<bool>;
    async fn revoke_refresh_family(&self, family_id: Uuid, now: i64) -> StoreResult<()>;

    // Devices
    async fn create_device(&self, device: &Device) -> StoreResult<()>;
    async fn get_device(&self, id: Uuid) -> StoreResult<Device>;
    async fn list_devices(&self, user_id: Option<Uuid>) -> StoreResult<Vec<Device>>;
    /// Revoke a device and every refresh-token family bound to it.
    async fn revoke_device(&self, id: Uuid, now: i64) -> StoreResult<()>;
}

const SELECT_USERS: &str = "select id, username, display_name, role, department, township_id, \
     specialty, disabled, password_hash, created_at from users";

const SELECT_DEVICES: &str =
    "select id, user_id, name, public_key_spki, created_at, revoked_at from devices";

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_user(&self, u: &NewUser) -> StoreResult<User> {
        self.db
            .query(
                "insert into users (id, username, display_name, role, department, township_id, \
                 specialty, disabled, password_hash, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(u.id)
            .bind(&u.username)
            .bind(&u.display_name)
            .bind(u.role.as_str())
            .bind(&u.department)
            .bind(u.township_id)
            .bind(&u.specialty)
            .bind(false)
            .bind(&u.password_hash)
            .bind(u.created_at)
            .execute(&self.db)
            .await?;
        self.get_user(u.id).await
    }

    async fn get_user(&self, id: Uuid) -> StoreResult<User> {
        let row = self
            .db
            .query(format!("{SELECT_USERS} where id = $1"))
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        user_from_row(&row)
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
        let row = self
            .db
            .query(format!("{SELECT_USERS} where username = $1"))
            .bind(username)
            .fetch_one(&self.db)
            .await?;
        user_from_row(&row)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = self
            .db
            .query(format!("{SELECT_USERS} order by username"))
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_disabled(&self, id: Uuid, disabled: bool) -> StoreResult<()> {
        let n = self
            .db
            .query("update users set disabled = $1 where id = $2")
            .bind(disabled)
            .bind(id)
            .execute(&self.db)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_user_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        let n = self
            .db
            .query("update users set password_hash = $1 where id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.db)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn principal_status(
        &self,
        user_id: Uuid,
        device_id: Option<Uuid>,
    ) -> StoreResult<PrincipalStatus> {
        // One round trip: the user row, left-joined with the device if one is named.
        let row = self
            .db
            .query(
                "select u.disabled, d.user_id as device_user, d.revoked_at \
                 from users u left join devices d on d.id = $2 where u.id = $1",
            )
            .bind(user_id)
            .bind(device_id)
            .fetch_one(&self.db)
            .await?;
        let device_user: Option<Uuid> = row.get("device_user")?;
        let revoked_at: Option<i64> = row.get("revoked_at")?;
        Ok(PrincipalStatus {
            user_disabled: row.get("disabled")?,
            device_revoked: device_user.map(|owner| owner != user_id || revoked_at.is_some()),
        })
    }

    async fn reserve_login_attempt(
        &self,
        counters: &[(&str, i64, u32)],
        now: i64,
    ) -> StoreResult<Option<usize>> {
        // One order for every attempt, so concurrent transactions lock rows alike.
        let mut order: Vec<usize> = (0..counters.len()).collect();
        order.sort_by_key(|&i| (counters[i].0, counters[i].1));
        let mut tx = self.begin_login().await?;
        for i in order {
            let (key, window_start, limit) = counters[i];
            tx.query("delete from login_failures where key = $1 and window_start < $2")
                .bind(key)
                .bind(window_start)
                .execute(&mut tx)
                .await?;
            // Increments only below the limit; a full counter returns no row.
            let row = tx
                .query(
                    "insert into login_failures (key, window_start, failures, created_at) \
                     select $1, $2, 1, $3 where $4 > 0 \
                     on conflict (key, window_start) \
                     do update set failures = login_failures.failures + 1 \
                     where login_failures.failures < $4 \
                     returning failures",
                )
                .bind(key)
                .bind(window_start)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_optional(&mut tx)
                .await?;
            if row.is_none() {
                tx.rollback().await?;
                return Ok(Some(i));
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    async fn release_login_attempt(&self, counters: &[(&str, i64)]) -> StoreResult<()> {
        let mut tx = self.begin_login().await?;
        for (key, window_start) in counters {
            tx.query(
                "update login_failures set failures = failures - 1 \
                 where key = $1 and window_start = $2 and failures > 0",
            )
            .bind(*key)
            .bind(*window_start)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        self.db
            .query("delete from login_failures where key = $1")
            .bind(key)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn get_or_create_signing_key(&self, candidate: &SigningKey) -> StoreResult<SigningKey> {
        self.db
            .query(
                "insert into signing_keys (slot, kid, private_pkcs8_pem, created_at) \
                 values (1, $1, $2, $3) on conflict (slot) do nothing",
            )
            .bind(&candidate.kid)
            .bind(&candidate.private_pkcs8_pem)
            .bind(candidate.created_at)
            .execute(&self.db)
            .await?;
        let row = self
            .db
            .query("select kid, private_pkcs8_pem, created_at from signing_keys where slot = 1")
            .fetch_one(&self.db)
            .await?;
        Ok(SigningKey {
            kid: row.get("kid")?,
            private_pkcs8_pem: row.get("private_pkcs8_pem")?,
            created_at: row.get("created_at")?,
        })
    }

    async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
        self.db
            .query(
                "insert into refresh_tokens (id, family_id, user_id, device_id, token_hash, \
                 created_at, expires_at, used_at, revoked_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(t.id)
            .bind(t.family_id)
            .bind(t.user_id)
            .bind(t.device_id)
            .bind(&t.token_hash)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.used_at)
            .bind(t.revoked_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn get_refresh_token_by_hash(&self, hash: &[u8]) -> StoreResult<RefreshToken> {
        let r = self
            .db
            .query(
                "select id, family_id, user_id, device_id, token_hash, created_at, expires_at, \
                 used_at, revoked_at from refresh_tokens where token_hash = $1",
            )
            .bind(hash)
            .fetch_one(&self.db)
            .await?;
        Ok(RefreshToken {
            id: r.get("id")?,
            family_id: r.get("family_id")?,
            user_id: r.get("user_id")?,
            device_id: r.get("device_id")?,
            token_hash: r.get("token_hash")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
            used_at: r.get("used_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    }

    async fn mark_refresh_token_used(&self, id: Uuid, now: i64) -> StoreResult<bool> {
        let n = self
            .db
            .query(
                "update refresh_tokens set used_at = $1 \
                 where id = $2 and used_at is null and revoked_at is null",
            )
            .bind(now)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(n == 1)
    }

    async fn revoke_refresh_family(&self, family_id: Uuid, now: i64) -> StoreResult<()> {
        self.db
            .query(
                "update refresh_tokens set revoked_at = $1 \
                 where family_id = $2 and revoked_at is null",
            )
            .bind(now)
            .bind(family_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn create_device(&self, d: &Device) -> StoreResult<()> {
        self.db
            .query(
                "insert into devices (id, user_id, name, public_key_spki, created_at, revoked_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(d.id)
            .bind(d.user_id)
            .bind(&d.name)
            .bind(&d.public_key_spki)
            .bind(d.created_at)
            .bind(d.revoked_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn get_device(&self, id: Uuid) -> StoreResult<Device> {
        let row = self
            .db
            .query(format!("{SELECT_DEVICES} where id = $1"))
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        device_from_row(&row)
    }

    async fn list_devices(&self, user_id: Option<Uuid>) -> StoreResult<Vec<Device>> {
        let rows = self
            .db
            .query(format!(
                "{SELECT_DEVICES} where $1 is null or user_id = $1 order by created_at, id"
            ))
            .bind(user_id)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(device_from_row).collect()
    }

    async fn revoke_device(&self, id: Uuid, now: i64) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .query("update devices set revoked_at = coalesce(revoked_at, $1) where id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut tx)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.query(
            "update refresh_tokens set revoked_at = $1 \
             where device_id = $2 and revoked_at is null",
        )
        .bind(now)
        .bind(id)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }
}

fn user_from_row(r: &Row) -> StoreResult<User> {
    let role: String = r.get("role")?;
    Ok(User {
        id: r.get("id")?,
        username: r.get("username")?,
        display_name: r.get("display_name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Other(format!("unknown role {role:?} in users")))?,
        department: r.get("department")?,
        township_id: r.get("township_id")?,
        specialty: r.get("specialty")?,
        disabled: r.get("disabled")?,
        created_at: r.get("created_at")?,
        password_hash: r.get("password_hash")?,
    })
}

fn device_from_row(r: &Row) -> StoreResult<Device> {
    Ok(Device {
        id: r.get("id")?,
        user_id: r.get("user_id")?,
        name: r.get("name")?,
        public_key_spki: r.get("public_key_spki")?,
        created_at: r.get("created_at")?,
        revoked_at: r.get("revoked_at")?,
    })
}
