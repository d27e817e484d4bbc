//! The SQL shared by both backends.
//!
//! SQLite and PostgreSQL accept the same statements here (`$N` placeholders, `on conflict`,
//! `returning`), and sqlx maps `Uuid`, `bool`, `i64` and `Vec<u8>` to each backend's column types,
//! so the statements are written once and expanded for each pool type by [`impl_common_store!`].
//! Only connection setup, migrations and backend-specific tuning live in `sqlite.rs` and
//! `postgres.rs`.

/// The columns `mine_from_row` reads, as a literal for `concat!`.
macro_rules! select_mines {
    () => {
        "select id, name, licence_no, holder, holder_user_id, township_id, mineral, \
         mining_method, area_ha, boundary_json, campaign_id, facts_json, version, created_at, \
         updated_at from mines"
    };
}

/// Insert one case record (`$c: &CaseRecord`) through an executor, `?` on error.
macro_rules! insert_case_record {
    ($exec:expr, $c:expr) => {{
        let c: &CaseRecord = $c;
        sqlx::query(
            "insert into case_records (id, mine_id, kind, data_json, created_by, created_at) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.id)
        .bind(c.mine_id)
        .bind(&c.kind)
        .bind(to_json(&c.data)?)
        .bind(c.created_by)
        .bind(c.created_at)
        .execute($exec)
        .await?;
    }};
}

/// Expand `impl Store` for a store type with a `pool` field, in a module that has a static
/// `MIGRATOR` (its backend's migrations) and row decoders from [`impl_row_decoders!`].
macro_rules! impl_common_store {
    ($ty:ty, $db:ty, $backend:literal) => {
        #[async_trait]
        impl Store for $ty {
        async fn migrate(&self) -> StoreResult<()> {
            MIGRATOR.run(&self.pool).await?;
            Ok(())
        }

        async fn ping(&self) -> StoreResult<()> {
            sqlx::query("select 1").execute(&self.pool).await?;
            Ok(())
        }

        fn backend(&self) -> &'static str {
            $backend
        }

        async fn list_departments(&self) -> StoreResult<Vec<Department>> {
            let rows = sqlx::query(
                "select code, name, observer, sort_order from departments order by sort_order",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Department {
                        code: r.try_get("code")?,
                        name: r.try_get("name")?,
                        observer: r.try_get("observer")?,
                        sort_order: r.try_get("sort_order")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        }

        async fn list_specialties(&self) -> StoreResult<Vec<Specialty>> {
            let rows = sqlx::query("select code, name from specialties order by code")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Specialty {
                        code: r.try_get("code")?,
                        name: r.try_get("name")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        }

        async fn list_townships(&self) -> StoreResult<Vec<Township>> {
            let rows =
                sqlx::query("select id, name, kind, created_at from townships order by name")
                    .fetch_all(&self.pool)
                    .await?;
            rows.iter()
                .map(|r| {
                    Ok(Township {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        kind: r.try_get("kind")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        }

        async fn create_township(&self, t: &Township) -> StoreResult<()> {
            sqlx::query("insert into townships (id, name, kind, created_at) values ($1, $2, $3, $4)")
                .bind(t.id)
                .bind(&t.name)
                .bind(&t.kind)
                .bind(t.created_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn create_user(&self, u: &NewUser) -> StoreResult<User> {
            sqlx::query(
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
            .execute(&self.pool)
            .await?;
            self.get_user(u.id).await
        }

        async fn get_user(&self, id: Uuid) -> StoreResult<User> {
            let row = sqlx::query(concat!(
                "select id, username, display_name, role, department, township_id, specialty, ",
                "disabled, password_hash, created_at from users where id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            user_from_row(&row)
        }

        async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
            let row = sqlx::query(concat!(
                "select id, username, display_name, role, department, township_id, specialty, ",
                "disabled, password_hash, created_at from users where username = $1"
            ))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            user_from_row(&row)
        }

        async fn list_users(&self) -> StoreResult<Vec<User>> {
            let rows = sqlx::query(concat!(
                "select id, username, display_name, role, department, township_id, specialty, ",
                "disabled, password_hash, created_at from users order by username"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(user_from_row).collect()
        }

        async fn set_user_disabled(&self, id: Uuid, disabled: bool) -> StoreResult<()> {
            let done = sqlx::query("update users set disabled = $1 where id = $2")
                .bind(disabled)
                .bind(id)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn set_user_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
            let done = sqlx::query("update users set password_hash = $1 where id = $2")
                .bind(password_hash)
                .bind(id)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
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
            let row = sqlx::query(
                "select u.disabled, d.user_id as device_user, d.revoked_at \
                 from users u left join devices d on d.id = $2 where u.id = $1",
            )
            .bind(user_id)
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            let device_user: Option<Uuid> = row.try_get("device_user")?;
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            Ok(PrincipalStatus {
                user_disabled: row.try_get("disabled")?,
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
                sqlx::query("delete from login_failures where key = $1 and window_start < $2")
                    .bind(key)
                    .bind(window_start)
                    .execute(&mut *tx)
                    .await?;
                // Increments only below the limit; a full counter returns no row.
                let row = sqlx::query(
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
                .fetch_optional(&mut *tx)
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
                sqlx::query(
                    "update login_failures set failures = failures - 1 \
                     where key = $1 and window_start = $2 and failures > 0",
                )
                .bind(*key)
                .bind(*window_start)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
            sqlx::query("delete from login_failures where key = $1")
                .bind(key)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn get_or_create_signing_key(&self, candidate: &SigningKey) -> StoreResult<SigningKey> {
            sqlx::query(
                "insert into signing_keys (slot, kid, private_pkcs8_pem, created_at) \
                 values (1, $1, $2, $3) on conflict (slot) do nothing",
            )
            .bind(&candidate.kid)
            .bind(&candidate.private_pkcs8_pem)
            .bind(candidate.created_at)
            .execute(&self.pool)
            .await?;
            let row = sqlx::query(
                "select kid, private_pkcs8_pem, created_at from signing_keys where slot = 1",
            )
            .fetch_one(&self.pool)
            .await?;
            Ok(SigningKey {
                kid: row.try_get("kid")?,
                private_pkcs8_pem: row.try_get("private_pkcs8_pem")?,
                created_at: row.try_get("created_at")?,
            })
        }

        async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
            sqlx::query(
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
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn get_refresh_token_by_hash(&self, hash: &[u8]) -> StoreResult<RefreshToken> {
            let r = sqlx::query(
                "select id, family_id, user_id, device_id, token_hash, created_at, expires_at, \
                 used_at, revoked_at from refresh_tokens where token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            Ok(RefreshToken {
                id: r.try_get("id")?,
                family_id: r.try_get("family_id")?,
                user_id: r.try_get("user_id")?,
                device_id: r.try_get("device_id")?,
                token_hash: r.try_get("token_hash")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        }

        async fn mark_refresh_token_used(&self, id: Uuid, now: i64) -> StoreResult<bool> {
            let done = sqlx::query(
                "update refresh_tokens set used_at = $1 \
                 where id = $2 and used_at is null and revoked_at is null",
            )
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn revoke_refresh_family(&self, family_id: Uuid, now: i64) -> StoreResult<()> {
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 \
                 where family_id = $2 and revoked_at is null",
            )
            .bind(now)
            .bind(family_id)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn create_device(&self, d: &Device) -> StoreResult<()> {
            sqlx::query(
                "insert into devices (id, user_id, name, public_key_spki, created_at, revoked_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(d.id)
            .bind(d.user_id)
            .bind(&d.name)
            .bind(&d.public_key_spki)
            .bind(d.created_at)
            .bind(d.revoked_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn get_device(&self, id: Uuid) -> StoreResult<Device> {
            let row = sqlx::query(
                "select id, user_id, name, public_key_spki, created_at, revoked_at \
                 from devices where id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            device_from_row(&row)
        }

        async fn list_devices(&self, user_id: Option<Uuid>) -> StoreResult<Vec<Device>> {
            let rows = sqlx::query(
                "select id, user_id, name, public_key_spki, created_at, revoked_at from devices \
                 where $1 is null or user_id = $1 order by created_at, id",
            )
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(device_from_row).collect()
        }

        async fn revoke_device(&self, id: Uuid, now: i64) -> StoreResult<()> {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "update devices set revoked_at = coalesce(revoked_at, $1) where id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 \
                 where device_id = $2 and revoked_at is null",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn sync_batch(
            &self,
            batches: &[(Uuid, &[Op])],
            now: i64,
            process: SyncProcess<'_>,
        ) -> StoreResult<SyncWrites> {
            let _gate = self.write_gate.lock().await;
            let mut tx = self.begin_write().await?;
            let mut loaded = SyncLoaded::default();

            let mut devices: Vec<Uuid> = batches.iter().map(|(d, _)| *d).collect();
            devices.sort();
            devices.dedup();
            for chunk in devices.chunks(500) {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("select device_id, last_seq from sync_series where device_id in ");
                push_id_list(&mut qb, chunk.iter().copied());
                for row in qb.build().fetch_all(&mut *tx).await? {
                    loaded.series.insert(
                        row.try_get("device_id")?,
                        to_u64(row.try_get::<i64, _>("last_seq")?),
                    );
                }
            }

            let ids: Vec<EntityId> = batches
                .iter()
                .flat_map(|(_, ops)| sync_protocol::touched_entities(ops))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for chunk in ids.chunks(500) {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("select state_json from sync_entities where id in ");
                push_id_list(&mut qb, chunk.iter().map(|id| id.0));
                for row in qb.build().fetch_all(&mut *tx).await? {
                    let state: EntityState = from_json(&row.try_get::<String, _>("state_json")?)?;
                    loaded.entities.insert(state.id, state);
                }
            }

            // Ops under sequence numbers their device already used: retries (rare).
            for (device, ops) in batches {
                let last_seq = loaded.series.get(device).copied().unwrap_or(0);
                let min_seq = ops.iter().map(|o| o.seq).min().unwrap_or(0);
                if ops.is_empty() || min_seq > last_seq {
                    continue;
                }
                let rows = sqlx::query(
                    "select op_id, op_json, result_json from sync_ops \
                     where device_id = $1 and seq >= $2 and seq <= $3",
                )
                .bind(*device)
                .bind(to_i64(min_seq))
                .bind(to_i64(last_seq))
                .fetch_all(&mut *tx)
                .await?;
                for row in rows {
                    let id = OpId(row.try_get::<Uuid, _>("op_id")?);
                    let op: Op = from_json(&row.try_get::<String, _>("op_json")?)?;
                    let result: OpResult = from_json(&row.try_get::<String, _>("result_json")?)?;
                    loaded
                        .stored_ops
                        .entry(*device)
                        .or_default()
                        .insert(op.seq, op);
                    loaded.prior_results.insert(id, result);
                }
            }

            let row = sqlx::query("select coalesce(max(commit_seq), 0) as last from sync_changes")
                .fetch_one(&mut *tx)
                .await?;
            loaded.next_commit_seq = to_u64(row.try_get::<i64, _>("last")?) + 1;

            let mut writes = process(loaded);
            // The feed's JSON is encoded on another thread while the database takes the op log.
            let changes = std::mem::take(&mut writes.changes);
            let encoding = tokio::task::spawn_blocking(move || {
                let json = changes
                    .iter()
                    .map(|c| to_json(&c.change))
                    .collect::<Result<Vec<String>, _>>();
                (changes, json)
            });

            for chunk in writes.series.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "insert into sync_series (device_id, last_seq, created_at, updated_at) ",
                );
                qb.push_values(chunk, |mut b, (device, last_seq)| {
                    b.push_bind(*device)
                        .push_bind(to_i64(*last_seq))
                        .push_bind(now)
                        .push_bind(now);
                });
                qb.push(
                    " on conflict (device_id) do update set last_seq = excluded.last_seq, \
                     updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut *tx).await?;
            }

            for chunk in writes.ops.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "insert into sync_ops (op_id, device_id, seq, entity_id, kind, op_json, \
                     result_json, commit_seq, received_at, created_at) ",
                );
                let mut encoded = Vec::with_capacity(chunk.len());
                for s in chunk {
                    encoded.push(to_json(&s.result)?);
                }
                qb.push_values(chunk.iter().zip(encoded), |mut b, (s, result_json)| {
                    b.push_bind(s.id.0)
                        .push_bind(s.device)
                        .push_bind(to_i64(s.seq))
                        .push_bind(s.entity.0)
                        .push_bind(s.kind)
                        .push_bind(&*s.op_json)
                        .push_bind(result_json)
                        .push_bind(s.commit_seq.map(to_i64))
                        .push_bind(s.received_at)
                        .push_bind(now);
                });
                qb.build().execute(&mut *tx).await?;
            }

            for chunk in writes.entities.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "insert into sync_entities (id, entity_type, scope, state_json, last_commit, \
                     created_at, updated_at) ",
                );
                let mut encoded = Vec::with_capacity(chunk.len());
                for e in chunk {
                    encoded.push(to_json(&e.state)?);
                }
                qb.push_values(chunk.iter().zip(encoded), |mut b, (e, json)| {
                    b.push_bind(e.state.id.0)
                        .push_bind(e.state.entity_type.clone())
                        .push_bind(e.scope)
                        .push_bind(json)
                        .push_bind(to_i64(e.last_commit))
                        .push_bind(now)
                        .push_bind(now);
                });
                qb.push(
                    " on conflict (id) do update set state_json = excluded.state_json, \
                     scope = excluded.scope, last_commit = excluded.last_commit, \
                     updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut *tx).await?;
            }

            let (changes, encoded) = encoding
                .await
                .map_err(|e| StoreError::Other(format!("encoding changes: {e}")))?;
            writes.changes = changes;
            let encoded = encoded?;
            for (chunk, encoded) in writes.changes.chunks(500).zip(encoded.chunks(500)) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "insert into sync_changes (commit_seq, entity_id, entity_type, scope, \
                     change_json, created_at) ",
                );
                qb.push_values(chunk.iter().zip(encoded), |mut b, (c, json)| {
                    b.push_bind(to_i64(c.change.commit_seq))
                        .push_bind(c.change.entity.0)
                        .push_bind(c.change.entity_type.clone())
                        .push_bind(c.scope)
                        .push_bind(json)
                        .push_bind(now);
                });
                qb.build().execute(&mut *tx).await?;
            }

            for chunk in writes.conflicts_of.chunks(500) {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("delete from sync_conflicts where entity_id in ");
                push_id_list(&mut qb, chunk.iter().map(|id| id.0));
                qb.build().execute(&mut *tx).await?;
            }
            for chunk in writes.conflicts.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "insert into sync_conflicts (entity_id, field, section, entity_type, scope, \
                     candidates, since_commit, created_at) ",
                );
                qb.push_values(chunk, |mut b, c| {
                    b.push_bind(c.entity.0)
                        .push_bind(c.field.clone())
                        .push_bind(c.section.clone())
                        .push_bind(c.entity_type.clone())
                        .push_bind(c.scope)
                        .push_bind(i32::try_from(c.candidates).unwrap_or(i32::MAX))
                        .push_bind(to_i64(c.since_commit))
                        .push_bind(now);
                });
                qb.build().execute(&mut *tx).await?;
            }

            tx.commit().await?;
            Ok(writes)
        }

        async fn sync_pull(
            &self,
            cursor: u64,
            limit: u32,
            visibility: Visibility,
        ) -> StoreResult<FeedPage> {
            let (see_all, township) = match visibility {
                Visibility::All => (true, None),
                Visibility::Township(t) => (false, Some(t)),
                Visibility::Nothing => (false, None),
            };
            let mut conn = self.pool.acquire().await?;
            // Read the feed's end first: commits become visible in order, so every change up to
            // `last` is visible now, and a cursor never skips a change committed meanwhile.
            let row = sqlx::query("select coalesce(max(commit_seq), 0) as last from sync_changes")
                .fetch_one(&mut *conn)
                .await?;
            let last = to_u64(row.try_get::<i64, _>("last")?);
            if visibility == Visibility::Nothing || last <= cursor {
                return Ok(FeedPage {
                    changes: Vec::new(),
                    // Nothing to see (or nothing new): the device may skip to the feed's end.
                    cursor: cursor.max(last),
                    has_more: false,
                });
            }
            let rows = sqlx::query(
                "select commit_seq, change_json from sync_changes \
                 where commit_seq > $1 and commit_seq <= $2 \
                 and ($3 or scope is null or scope = $4) \
                 order by commit_seq limit $5",
            )
            .bind(to_i64(cursor))
            .bind(to_i64(last))
            .bind(see_all)
            .bind(township)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await?;
            let has_more = rows.len() > limit as usize;
            let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
            let mut last_returned = cursor;
            for row in rows.iter().take(limit as usize) {
                let json: String = row.try_get("change_json")?;
                last_returned = to_u64(row.try_get::<i64, _>("commit_seq")?);
                changes.push(serde_json::value::RawValue::from_string(json).map_err(|e| {
                    StoreError::Other(format!("stored change {last_returned}: {e}"))
                })?);
            }
            let cursor = if has_more { last_returned } else { last };
            Ok(FeedPage {
                changes,
                cursor,
                has_more,
            })
        }

        async fn sync_conflicts(
            &self,
            visibility: Visibility,
            limit: u32,
        ) -> StoreResult<Vec<ConflictRow>> {
            let (see_all, township) = match visibility {
                Visibility::All => (true, None),
                Visibility::Township(t) => (false, Some(t)),
                Visibility::Nothing => return Ok(Vec::new()),
            };
            let rows = sqlx::query(
                "select entity_id, field, section, entity_type, scope, candidates, since_commit \
                 from sync_conflicts where ($1 or scope is null or scope = $2) \
                 order by since_commit, entity_id, field limit $3",
            )
            .bind(see_all)
            .bind(township)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ConflictRow {
                        entity: EntityId(r.try_get("entity_id")?),
                        field: r.try_get("field")?,
                        section: r.try_get("section")?,
                        entity_type: r.try_get("entity_type")?,
                        scope: r.try_get("scope")?,
                        candidates: u32::try_from(r.try_get::<i32, _>("candidates")?)
                            .unwrap_or(0),
                        since_commit: to_u64(r.try_get::<i64, _>("since_commit")?),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        }

        async fn ensure_campaign(
            &self,
            id: &str,
            title: &str,
            source: &str,
            now: i64,
        ) -> StoreResult<(String, String)> {
            sqlx::query(
                "insert into campaigns (id, title, source, created_at) values ($1, $2, $3, $4) \
                 on conflict (id) do nothing",
            )
            .bind(id)
            .bind(title)
            .bind(source)
            .bind(now)
            .execute(&self.pool)
            .await?;
            self.get_campaign(id).await
        }

        async fn get_campaign(&self, id: &str) -> StoreResult<(String, String)> {
            let row = sqlx::query("select title, source from campaigns where id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
            Ok((row.try_get("title")?, row.try_get("source")?))
        }

        async fn create_mines(&self, mines: &[Mine]) -> StoreResult<()> {
            let mut tx = self.pool.begin().await?;
            for chunk in mines.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "insert into mines (id, name, licence_no, holder, holder_user_id, \
                     township_id, mineral, mining_method, area_ha, boundary_json, campaign_id, \
                     stage, disposition, facts_json, version, created_at, updated_at) ",
                );
                let mut encoded = Vec::with_capacity(chunk.len());
                for m in chunk {
                    let boundary = match &m.boundary {
                        Some(b) => Some(to_json(b)?),
                        None => None,
                    };
                    encoded.push((boundary, to_json(&m.facts)?));
                }
                qb.push_values(chunk.iter().zip(encoded), |mut b, (m, (boundary, facts))| {
                    b.push_bind(m.id)
                        .push_bind(m.name.clone())
                        .push_bind(m.licence_no.clone())
                        .push_bind(m.holder.clone())
                        .push_bind(m.holder_user_id)
                        .push_bind(m.township_id)
                        .push_bind(m.mineral.clone())
                        .push_bind(m.mining_method.clone())
                        .push_bind(m.area_ha.clone())
                        .push_bind(boundary)
                        .push_bind(m.campaign_id.clone())
                        .push_bind(m.facts.stage.code())
                        .push_bind(m.facts.disposition.map(|d| d.code()))
                        .push_bind(facts)
                        .push_bind(m.version)
                        .push_bind(m.created_at)
                        .push_bind(m.updated_at);
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn get_mine(&self, id: Uuid) -> StoreResult<Mine> {
            let row = sqlx::query(concat!($crate::store::common::select_mines!(), " where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            mine_from_row(&row)
        }

        async fn list_mines(&self, township: Option<Uuid>) -> StoreResult<Vec<Mine>> {
            let rows = sqlx::query(concat!(
                $crate::store::common::select_mines!(),
                " where $1 is null or township_id = $1 order by name, id"
            ))
            .bind(township)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(mine_from_row).collect()
        }

        async fn list_mines_of_holder(&self, user: Uuid) -> StoreResult<Vec<Mine>> {
            let rows = sqlx::query(concat!(
                $crate::store::common::select_mines!(),
                " where holder_user_id = $1 order by name, id"
            ))
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(mine_from_row).collect()
        }

        async fn set_mine_holder(&self, mine: Uuid, user: Option<Uuid>, now: i64) -> StoreResult<()> {
            let done = sqlx::query(
                "update mines set holder_user_id = $1, updated_at = $2 where id = $3",
            )
            .bind(user)
            .bind(now)
            .bind(mine)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn transition_mine(
            &self,
            id: Uuid,
            expected_version: i64,
            facts: &crate::model::MineFacts,
            event: &MineEvent,
            record: Option<&CaseRecord>,
        ) -> StoreResult<()> {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "update mines set facts_json = $1, stage = $2, disposition = $3, \
                 version = version + 1, updated_at = $4 where id = $5 and version = $6",
            )
            .bind(to_json(facts)?)
            .bind(facts.stage.code())
            .bind(facts.disposition.map(|d| d.code()))
            .bind(event.created_at)
            .bind(id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict {
                    constraint: "mines_version".into(),
                });
            }
            sqlx::query(
                "insert into mine_events (id, mine_id, transition, from_stage, to_stage, \
                 actor_id, reason, data_json, as_of, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(event.id)
            .bind(event.mine_id)
            .bind(&event.transition)
            .bind(&event.from_stage)
            .bind(&event.to_stage)
            .bind(event.actor_id)
            .bind(&event.reason)
            .bind(to_json(&event.data)?)
            .bind(&event.as_of)
            .bind(event.created_at)
            .execute(&mut *tx)
            .await?;
            if let Some(c) = record {
                $crate::store::common::insert_case_record!(&mut *tx, c);
            }
            tx.commit().await?;
            Ok(())
        }

        async fn list_mine_events(&self, mine_id: Uuid) -> StoreResult<Vec<MineEvent>> {
            let rows = sqlx::query(
                "select id, mine_id, transition, from_stage, to_stage, actor_id, reason, \
                 data_json, as_of, created_at from mine_events where mine_id = $1 \
                 order by created_at, id",
            )
            .bind(mine_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(MineEvent {
                        id: r.try_get("id")?,
                        mine_id: r.try_get("mine_id")?,
                        transition: r.try_get("transition")?,
                        from_stage: r.try_get("from_stage")?,
                        to_stage: r.try_get("to_stage")?,
                        actor_id: r.try_get("actor_id")?,
                        reason: r.try_get("reason")?,
                        data: from_json(&r.try_get::<String, _>("data_json")?)?,
                        as_of: r.try_get("as_of")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .collect()
        }

        async fn add_case_record(&self, c: &CaseRecord) -> StoreResult<()> {
            $crate::store::common::insert_case_record!(&self.pool, c);
            Ok(())
        }

        async fn list_case_records(&self, mine_id: Uuid) -> StoreResult<Vec<CaseRecord>> {
            let rows = sqlx::query(
                "select id, mine_id, kind, data_json, created_by, created_at from case_records \
                 where mine_id = $1 order by created_at, id",
            )
            .bind(mine_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(CaseRecord {
                        id: r.try_get("id")?,
                        mine_id: r.try_get("mine_id")?,
                        kind: r.try_get("kind")?,
                        data: from_json(&r.try_get::<String, _>("data_json")?)?,
                        created_by: r.try_get("created_by")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .collect()
        }

        async fn create_round(
            &self,
            mut round: AcceptanceRound,
            template_source: &str,
            scope: Option<Uuid>,
            make: RoundEntity<'_>,
        ) -> StoreResult<AcceptanceRound> {
            let _gate = self.write_gate.lock().await;
            let mut tx = self.begin_write().await?;
            let now = round.created_at;
            sqlx::query(
                "insert into templates (ref, source, created_at) values ($1, $2, $3) \
                 on conflict (ref) do nothing",
            )
            .bind(&round.template_ref)
            .bind(template_source)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let previous = sqlx::query(
                "select id, round_no from acceptance_rounds where mine_id = $1 \
                 order by round_no desc limit 1",
            )
            .bind(round.mine_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = previous {
                round.previous_round_id = Some(row.try_get("id")?);
                round.round_no = row.try_get::<i32, _>("round_no")? + 1;
            } else {
                round.previous_round_id = None;
                round.round_no = 1;
            }
            sqlx::query(
                "insert into acceptance_rounds (id, mine_id, round_no, previous_round_id, \
                 template_ref, disposition, created_by, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(round.id)
            .bind(round.mine_id)
            .bind(round.round_no)
            .bind(round.previous_round_id)
            .bind(&round.template_ref)
            .bind(&round.disposition)
            .bind(round.created_by)
            .bind(round.created_at)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query("select coalesce(max(commit_seq), 0) as last from sync_changes")
                .fetch_one(&mut *tx)
                .await?;
            let commit_seq = to_u64(row.try_get::<i64, _>("last")?) + 1;
            let (state, change) = make(&round, commit_seq)?;
            sqlx::query(
                "insert into sync_entities (id, entity_type, scope, state_json, last_commit, \
                 created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(state.id.0)
            .bind(&state.entity_type)
            .bind(scope)
            .bind(to_json(&state)?)
            .bind(to_i64(commit_seq))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "insert into sync_changes (commit_seq, entity_id, entity_type, scope, \
                 change_json, created_at) values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(to_i64(commit_seq))
            .bind(state.id.0)
            .bind(&state.entity_type)
            .bind(scope)
            .bind(to_json(&change)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(round)
        }

        async fn list_rounds(&self, mine_id: Uuid) -> StoreResult<Vec<AcceptanceRound>> {
            let rows = sqlx::query(
                "select id, mine_id, round_no, previous_round_id, template_ref, disposition, \
                 created_by, created_at from acceptance_rounds where mine_id = $1 \
                 order by round_no",
            )
            .bind(mine_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(round_from_row).collect()
        }

        async fn get_round(&self, id: Uuid) -> StoreResult<AcceptanceRound> {
            let row = sqlx::query(
                "select id, mine_id, round_no, previous_round_id, template_ref, disposition, \
                 created_by, created_at from acceptance_rounds where id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            round_from_row(&row)
        }

        async fn get_template_source(&self, template_ref: &str) -> StoreResult<String> {
            let row = sqlx::query("select source from templates where ref = $1")
                .bind(template_ref)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
            Ok(row.try_get("source")?)
        }

        async fn ensure_template(
            &self,
            template_ref: &str,
            source: &str,
            now: i64,
        ) -> StoreResult<String> {
            sqlx::query(
                "insert into templates (ref, source, created_at) values ($1, $2, $3) \
                 on conflict (ref) do nothing",
            )
            .bind(template_ref)
            .bind(source)
            .bind(now)
            .execute(&self.pool)
            .await?;
            self.get_template_source(template_ref).await
        }

        async fn list_templates(&self) -> StoreResult<Vec<(String, String)>> {
            let rows = sqlx::query("select ref, source from templates order by ref")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("ref")?, r.try_get("source")?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        }

        async fn sync_entities(&self, ids: &[EntityId]) -> StoreResult<Vec<EntityState>> {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new("select state_json from sync_entities where id in ");
                push_id_list(&mut qb, chunk.iter().map(|id| id.0));
                for row in qb.build().fetch_all(&self.pool).await? {
                    out.push(from_json(&row.try_get::<String, _>("state_json")?)?);
                }
            }
            Ok(out)
        }
        }
    };
}

/// Expand the row decoders for one backend's row type.
macro_rules! impl_row_decoders {
    ($row:ty) => {
        fn user_from_row(r: &$row) -> StoreResult<User> {
            let role: String = r.try_get("role")?;
            Ok(User {
                id: r.try_get("id")?,
                username: r.try_get("username")?,
                display_name: r.try_get("display_name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Other(format!("unknown role {role:?} in users")))?,
                department: r.try_get("department")?,
                township_id: r.try_get("township_id")?,
                specialty: r.try_get("specialty")?,
                disabled: r.try_get("disabled")?,
                created_at: r.try_get("created_at")?,
                password_hash: r.try_get("password_hash")?,
            })
        }

        fn mine_from_row(r: &$row) -> StoreResult<Mine> {
            let boundary: Option<String> = r.try_get("boundary_json")?;
            Ok(Mine {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                licence_no: r.try_get("licence_no")?,
                holder: r.try_get("holder")?,
                holder_user_id: r.try_get("holder_user_id")?,
                township_id: r.try_get("township_id")?,
                mineral: r.try_get("mineral")?,
                mining_method: r.try_get("mining_method")?,
                area_ha: r.try_get("area_ha")?,
                boundary: match boundary {
                    Some(b) => Some(from_json(&b)?),
                    None => None,
                },
                campaign_id: r.try_get("campaign_id")?,
                facts: from_json(&r.try_get::<String, _>("facts_json")?)?,
                version: r.try_get("version")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn round_from_row(r: &$row) -> StoreResult<AcceptanceRound> {
            Ok(AcceptanceRound {
                id: r.try_get("id")?,
                mine_id: r.try_get("mine_id")?,
                round_no: r.try_get("round_no")?,
                previous_round_id: r.try_get("previous_round_id")?,
                template_ref: r.try_get("template_ref")?,
                disposition: r.try_get("disposition")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn device_from_row(r: &$row) -> StoreResult<Device> {
            Ok(Device {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                name: r.try_get("name")?,
                public_key_spki: r.try_get("public_key_spki")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        }
    };
}

pub(crate) use impl_common_store;
pub(crate) use insert_case_record;
pub(crate) use select_mines;

pub(crate) use impl_row_decoders;

/// Append `(id, id, …)` as bound parameters (callers chunk the ids to stay far below both
/// backends' parameter limits).
pub(crate) fn push_id_list<'a, DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<'a, DB>,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) where
    uuid::Uuid: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push("(");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    list.push_unseparated(")");
}

/// Sequence numbers are `u64` in the protocol and `bigint` in the database; they stay far below
/// 2^63, so these conversions saturate instead of failing.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, super::StoreError> {
    serde_json::to_string(v).map_err(|e| super::StoreError::Other(format!("encode: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, super::StoreError> {
    serde_json::from_str(s).map_err(|e| super::StoreError::Other(format!("stored JSON: {e}")))
}
