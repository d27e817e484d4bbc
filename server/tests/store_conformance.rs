//! The store conformance suite: every test runs against SQLite and PostgreSQL.
//!
//! Every method of the `Store` trait is exercised here, on its promises (order, not-found,
//! named conflicts, all-or-nothing, idempotence), not just on returning `Ok`;
//! `every_store_method_is_covered` fails when a method of a `*Store` trait in `server/src/store/`
//! appears in no call below. Methods by test:
//!
//! - migrate, ping, backend: `migrating_twice_is_harmless`, `ping_answers`
//! - list_departments, list_specialties: `migrations_seed_departments_and_specialties`,
//!   `departments_and_specialties_are_listed_in_order`
//! - list_townships, create_township: `townships_are_listed_by_name_and_names_are_unique`,
//!   `user_round_trips_with_scope`
//! - create_user, get_user, get_user_by_username, list_users, set_user_disabled,
//!   set_user_password, principal_status: `user_round_trips_with_scope`,
//!   `duplicate_username_is_a_named_conflict`, `unknown_department_is_refused_by_foreign_key`,
//!   `missing_user_is_not_found`, `users_are_listed_by_username_and_passwords_change`,
//!   `disabling_a_user_shows_in_principal_status`,
//!   `principal_status_flags_revoked_and_foreign_devices`
//! - reserve_login_attempt, release_login_attempt, clear_login_failures:
//!   `login_attempts_are_reserved_up_to_each_limit`, `parallel_reservations_never_pass_the_limit`,
//!   `releasing_an_attempt_never_goes_below_zero`
//! - get_or_create_signing_key: `first_signing_key_wins`,
//!   `parallel_first_starts_agree_on_one_signing_key`
//! - insert_refresh_token, get_refresh_token_by_hash, mark_refresh_token_used,
//!   revoke_refresh_family: `refresh_token_is_used_once`,
//!   `revoking_a_family_revokes_all_its_tokens_only`, `refresh_token_hashes_are_unique`
//! - create_device, get_device, list_devices, revoke_device: `devices_are_listed_per_user`,
//!   `revoking_a_device_revokes_its_refresh_tokens`, `devices_keep_their_first_revocation`
//! - sync_batch, sync_pull, sync_entities, sync_conflicts:
//!   `sync_batch_stores_what_process_decides`, `sync_batch_loads_retries_and_series`,
//!   `sync_pull_pages_in_commit_order`, `sync_pull_filters_by_visibility`,
//!   `sync_conflicts_follow_each_batch_and_visibility`, `a_failing_sync_batch_stores_nothing`,
//!   `a_reused_op_id_is_a_named_conflict`, `replicas_converge_through_the_store`,
//!   `large_sync_groups_are_written_in_chunks`
//! - sync_server_write: `server_writes_join_the_feed_after_device_pushes`
//! - ensure_campaign, get_campaign: `ensure_campaign_keeps_the_first_version`
//! - create_mines, get_mine, list_mines: `mines_round_trip_and_are_listed_by_name`,
//!   `create_mines_is_all_or_nothing`
//! - list_mines_of_holder, set_mine_holder: `mines_are_bound_to_their_holder`
//! - list_township_mine_events: `audit_trails_are_listed_per_mine_and_township`,
//!   `legacy_document_flags_migrate_to_records`
//! - transition_mine, list_mine_events: `transition_mine_applies_only_at_the_expected_version`,
//!   `concurrent_transitions_from_one_version_let_exactly_one_through`,
//!   `a_transition_and_its_case_record_are_one_transaction`
//! - add_case_record, list_case_records: `case_records_are_listed_in_time_order`
//! - create_round, list_rounds, get_round: `rounds_are_numbered_per_mine_and_chained`,
//!   `a_round_record_joins_the_sync_feed_in_its_scope`, `a_failing_round_stores_nothing`,
//!   `parallel_rounds_get_distinct_numbers`
//! - ensure_template, get_template_source, list_templates:
//!   `ensure_template_keeps_the_first_source`, `rounds_are_numbered_per_mine_and_chained`
//! - create_upload, get_upload, advance_upload, complete_upload:
//!   `uploads_advance_only_from_the_expected_offset`,
//!   `parallel_chunks_at_one_offset_let_exactly_one_through`
//! - add_photo, link_photo, get_photo, list_photo_records, list_record_photos:
//!   `photos_are_kept_once_and_linked_to_each_record`, `parallel_adds_of_one_photo_keep_one_row`
//! - find_mine_upload: `uploads_for_a_mine_are_found_by_mine_and_hash`
//! - keep_photo, add_mine_evidence, list_mine_evidence, get_mine_evidence, list_evidence_mines:
//!   `holder_evidence_is_listed_per_mine_and_found_by_blob`
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use common::{Backend, TestDb};
use sync_protocol::{
    AllowAll, Batch, Change, ChangeBody, DeviceId, EntityId, EntityState, Hlc, MergeContext, Op,
    OpBody, OpId, OpResult, Outcome, PROTOCOL_VERSION, Replica, SeriesState, SyncResponse, Value,
    merge, process_batch, touched_entities,
};
use uuid::Uuid;
use yanshou_server::{
    model::{
        AcceptanceRound, CaseRecord, Device, Disposition, Mine, MineEvent, MineFacts, NewUser,
        Role, Stage, Township,
    },
    store::{
        ChangeRow, ConflictRow, EntityRow, MineEvidence, Photo, RefreshToken, RoundEntity,
        SigningKey, StoreError, StoreResult, StoredOp, StoredThumb, SyncLoaded, SyncWrites, Upload,
        Visibility,
    },
};

fn new_user(username: &str, role: Role) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        username: username.into(),
        display_name: "王五".into(),
        role,
        department: None,
        township_id: None,
        specialty: None,
        password_hash: "$argon2id$fake".into(),
        created_at: 1_700_000_000_000,
    }
}

fn device(user_id: Uuid) -> Device {
    Device {
        id: Uuid::now_v7(),
        user_id,
        name: "手机".into(),
        public_key_spki: "AAAA".into(),
        created_at: 1,
        revoked_at: None,
    }
}

fn token(user_id: Uuid, family_id: Uuid, device_id: Option<Uuid>, hash: u8) -> RefreshToken {
    RefreshToken {
        id: Uuid::now_v7(),
        family_id,
        user_id,
        device_id,
        token_hash: vec![hash; 32],
        created_at: 10,
        expires_at: 1_000,
        used_at: None,
        revoked_at: None,
    }
}

async fn migrations_seed_departments_and_specialties(b: Backend) {
    let db = TestDb::new(b).await;
    let departments = db.store.list_departments().await.unwrap();
    let names: Vec<&str> = departments.iter().map(|d| d.name.as_str()).collect();
    for expected in [
        "自然资源局",
        "生态环境局",
        "水利局",
        "林业局",
        "应急管理局",
        "农业农村局",
        "工信局",
        "交通运输局",
        "供电公司",
        "公安局",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let observers: Vec<&str> = departments
        .iter()
        .filter(|d| d.observer)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        observers,
        [
            "国资办",
            "财政局",
            "检察院",
            "法院",
            "纪委监委",
            "市场监督管理局"
        ]
    );
    let specialties: Vec<String> = db
        .store
        .list_specialties()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(specialties.len(), 3);
    for s in ["水工环", "环境保护", "林业"] {
        assert!(specialties.iter().any(|x| x == s), "{s}");
    }
}

async fn migrating_twice_is_harmless(b: Backend) {
    let db = TestDb::new(b).await;
    db.store.migrate().await.unwrap();
    assert_eq!(db.store.list_departments().await.unwrap().len(), 16);
}

async fn user_round_trips_with_scope(b: Backend) {
    let db = TestDb::new(b).await;
    let town = Township {
        id: Uuid::now_v7(),
        name: "上甘山林场".into(),
        kind: "forest_farm".into(),
        created_at: 5,
    };
    db.store.create_township(&town).await.unwrap();
    let mut input = new_user("township.li", Role::TownshipOfficer);
    input.township_id = Some(town.id);
    let created = db.store.create_user(&input).await.unwrap();
    assert_eq!(created.township_id, Some(town.id));
    assert_eq!(created.role, Role::TownshipOfficer);
    assert!(!created.disabled);
    let by_name = db.store.get_user_by_username("township.li").await.unwrap();
    assert_eq!(by_name, created);
    assert_eq!(db.store.get_user(created.id).await.unwrap(), created);
    assert_eq!(db.store.list_townships().await.unwrap(), vec![town]);
}

async fn duplicate_username_is_a_named_conflict(b: Backend) {
    let db = TestDb::new(b).await;
    db.store
        .create_user(&new_user("zhang", Role::Admin))
        .await
        .unwrap();
    let err = db
        .store
        .create_user(&new_user("zhang", Role::Expert))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict { constraint } => {
            assert!(constraint.contains("username"), "{constraint}")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

async fn unknown_department_is_refused_by_foreign_key(b: Backend) {
    let db = TestDb::new(b).await;
    let mut u = new_user("ghost", Role::DepartmentInspector);
    u.department = Some("no_such_department".into());
    assert!(matches!(
        db.store.create_user(&u).await,
        Err(StoreError::Conflict { .. })
    ));
}

async fn missing_user_is_not_found(b: Backend) {
    let db = TestDb::new(b).await;
    assert!(matches!(
        db.store.get_user(Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.store.get_user_by_username("nobody").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.store.set_user_disabled(Uuid::now_v7(), true).await,
        Err(StoreError::NotFound)
    ));
}

async fn disabling_a_user_shows_in_principal_status(b: Backend) {
    let db = TestDb::new(b).await;
    let u = db
        .store
        .create_user(&new_user("chen", Role::Expert))
        .await
        .unwrap();
    let s = db.store.principal_status(u.id, None).await.unwrap();
    assert!(!s.user_disabled);
    assert_eq!(s.device_revoked, None);
    db.store.set_user_disabled(u.id, true).await.unwrap();
    assert!(
        db.store
            .principal_status(u.id, None)
            .await
            .unwrap()
            .user_disabled
    );
    assert!(db.store.list_users().await.unwrap()[0].disabled);
}

async fn principal_status_flags_revoked_and_foreign_devices(b: Backend) {
    let db = TestDb::new(b).await;
    let a = db
        .store
        .create_user(&new_user("a", Role::Operator))
        .await
        .unwrap();
    let other = db
        .store
        .create_user(&new_user("b", Role::Operator))
        .await
        .unwrap();
    let d = device(a.id);
    db.store.create_device(&d).await.unwrap();
    let s = db.store.principal_status(a.id, Some(d.id)).await.unwrap();
    assert_eq!(s.device_revoked, Some(false));
    // Someone else's device counts as revoked for this user.
    let s = db
        .store
        .principal_status(other.id, Some(d.id))
        .await
        .unwrap();
    assert_eq!(s.device_revoked, Some(true));
    // An unknown device is reported as absent.
    let s = db
        .store
        .principal_status(a.id, Some(Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!(s.device_revoked, None);
    db.store.revoke_device(d.id, 99).await.unwrap();
    let s = db.store.principal_status(a.id, Some(d.id)).await.unwrap();
    assert_eq!(s.device_revoked, Some(true));
    assert_eq!(
        db.store.get_device(d.id).await.unwrap().revoked_at,
        Some(99)
    );
}

async fn devices_are_listed_per_user(b: Backend) {
    let db = TestDb::new(b).await;
    let a = db
        .store
        .create_user(&new_user("a", Role::Operator))
        .await
        .unwrap();
    let c = db
        .store
        .create_user(&new_user("c", Role::Operator))
        .await
        .unwrap();
    let (d1, d2, d3) = (device(a.id), device(a.id), device(c.id));
    for d in [&d1, &d2, &d3] {
        db.store.create_device(d).await.unwrap();
    }
    assert_eq!(
        db.store.list_devices(Some(a.id)).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(db.store.list_devices(None).await.unwrap().len(), 3);
    assert!(matches!(
        db.store.revoke_device(Uuid::now_v7(), 1).await,
        Err(StoreError::NotFound)
    ));
}

async fn refresh_token_is_used_once(b: Backend) {
    let db = TestDb::new(b).await;
    let u = db
        .store
        .create_user(&new_user("u", Role::Admin))
        .await
        .unwrap();
    let t = token(u.id, Uuid::now_v7(), None, 7);
    db.store.insert_refresh_token(&t).await.unwrap();
    assert_eq!(
        db.store.get_refresh_token_by_hash(&[7; 32]).await.unwrap(),
        t
    );
    assert!(db.store.mark_refresh_token_used(t.id, 20).await.unwrap());
    assert!(
        !db.store.mark_refresh_token_used(t.id, 21).await.unwrap(),
        "second use must fail"
    );
    assert_eq!(
        db.store
            .get_refresh_token_by_hash(&[7; 32])
            .await
            .unwrap()
            .used_at,
        Some(20)
    );
    assert!(matches!(
        db.store.get_refresh_token_by_hash(&[8; 32]).await,
        Err(StoreError::NotFound)
    ));
}

async fn revoking_a_family_revokes_all_its_tokens_only(b: Backend) {
    let db = TestDb::new(b).await;
    let u = db
        .store
        .create_user(&new_user("u", Role::Admin))
        .await
        .unwrap();
    let (f1, f2) = (Uuid::now_v7(), Uuid::now_v7());
    for (f, h) in [(f1, 1), (f1, 2), (f2, 3)] {
        db.store
            .insert_refresh_token(&token(u.id, f, None, h))
            .await
            .unwrap();
    }
    db.store.revoke_refresh_family(f1, 50).await.unwrap();
    for (h, revoked) in [(1u8, true), (2, true), (3, false)] {
        let t = db.store.get_refresh_token_by_hash(&[h; 32]).await.unwrap();
        assert_eq!(t.revoked_at.is_some(), revoked, "token {h}");
    }
    // A revoked token cannot be marked used.
    let t1 = db.store.get_refresh_token_by_hash(&[1; 32]).await.unwrap();
    assert!(!db.store.mark_refresh_token_used(t1.id, 60).await.unwrap());
}

async fn revoking_a_device_revokes_its_refresh_tokens(b: Backend) {
    let db = TestDb::new(b).await;
    let u = db
        .store
        .create_user(&new_user("u", Role::Admin))
        .await
        .unwrap();
    let d = device(u.id);
    db.store.create_device(&d).await.unwrap();
    db.store
        .insert_refresh_token(&token(u.id, Uuid::now_v7(), Some(d.id), 1))
        .await
        .unwrap();
    db.store
        .insert_refresh_token(&token(u.id, Uuid::now_v7(), None, 2))
        .await
        .unwrap();
    db.store.revoke_device(d.id, 77).await.unwrap();
    let bound = db.store.get_refresh_token_by_hash(&[1; 32]).await.unwrap();
    let unbound = db.store.get_refresh_token_by_hash(&[2; 32]).await.unwrap();
    assert_eq!(bound.revoked_at, Some(77));
    assert_eq!(unbound.revoked_at, None);
}

async fn login_attempts_are_reserved_up_to_each_limit(b: Backend) {
    let db = TestDb::new(b).await;
    let s = &db.store;
    let both = [("account:a", 1000, 2), ("addr:x", 1000, 3)];
    assert_eq!(s.reserve_login_attempt(&both, NOW).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&both, NOW).await.unwrap(), None);
    // The account's counter is full: refused, naming it, and nothing else counted.
    assert_eq!(s.reserve_login_attempt(&both, NOW).await.unwrap(), Some(0));
    let addr = [("addr:x", 1000, 3)];
    assert_eq!(s.reserve_login_attempt(&addr, NOW).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&addr, NOW).await.unwrap(), Some(0));
    // A correct password gives its reservation back.
    s.release_login_attempt(&[("account:a", 1000)])
        .await
        .unwrap();
    let account = [("account:a", 1000, 2)];
    assert_eq!(s.reserve_login_attempt(&account, NOW).await.unwrap(), None);
    assert_eq!(
        s.reserve_login_attempt(&account, NOW).await.unwrap(),
        Some(0)
    );
    // A new window starts from zero; keys are independent; clearing forgets every window.
    let later = [("account:a", 2000, 1)];
    assert_eq!(s.reserve_login_attempt(&later, NOW).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&later, NOW).await.unwrap(), Some(0));
    assert_eq!(
        s.reserve_login_attempt(&[("account:b", 2000, 1)], NOW)
            .await
            .unwrap(),
        None
    );
    s.clear_login_failures("account:a").await.unwrap();
    assert_eq!(s.reserve_login_attempt(&later, NOW).await.unwrap(), None);
    // A limit of zero refuses at once.
    assert_eq!(
        s.reserve_login_attempt(&[("account:c", 0, 0)], NOW)
            .await
            .unwrap(),
        Some(0)
    );
}

async fn parallel_reservations_never_pass_the_limit(b: Backend) {
    let db = TestDb::new(b).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .reserve_login_attempt(&[("addr:1.2.3.4", 0, 5)], NOW)
                .await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_none() {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
}

async fn first_signing_key_wins(b: Backend) {
    let db = TestDb::new(b).await;
    let k1 = SigningKey {
        kid: "k1".into(),
        private_pkcs8_pem: "pem1".into(),
        created_at: 1,
    };
    let k2 = SigningKey {
        kid: "k2".into(),
        private_pkcs8_pem: "pem2".into(),
        created_at: 2,
    };
    assert_eq!(db.store.get_or_create_signing_key(&k1).await.unwrap(), k1);
    assert_eq!(db.store.get_or_create_signing_key(&k2).await.unwrap(), k1);
}

/// Replicas starting at once each offer their own key; all end up with the same one.
async fn parallel_first_starts_agree_on_one_signing_key(b: Backend) {
    let db = TestDb::new(b).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let candidate = SigningKey {
                kid: format!("k{i}"),
                private_pkcs8_pem: format!("pem{i}"),
                created_at: i,
            };
            store.get_or_create_signing_key(&candidate).await.unwrap()
        }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.unwrap());
    }
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(
        keys[0].private_pkcs8_pem,
        format!("pem{}", &keys[0].kid[1..])
    );
}

async fn ping_answers(b: Backend) {
    let db = TestDb::new(b).await;
    db.store.ping().await.unwrap();
    assert_eq!(
        db.store.backend(),
        match b {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
}

/// A transition, its event and the case record it produces (the announcement) are stored
/// together or not at all: a failing record leaves the mine where it was, so a retry works.
async fn a_transition_and_its_case_record_are_one_transaction(b: Backend) {
    let db = TestDb::new(b).await;
    let town = Township {
        id: Uuid::now_v7(),
        name: "翰堂镇".into(),
        kind: "town".into(),
        created_at: 1,
    };
    db.store.create_township(&town).await.unwrap();
    db.store
        .ensure_campaign("c", "campaign", "source", NOW)
        .await
        .unwrap();
    let facts = MineFacts::new(town.id);
    let mine = Mine {
        id: Uuid::now_v7(),
        name: "黄家山采石场".into(),
        licence_no: "C001".into(),
        holder: "某公司".into(),
        holder_user_id: None,
        township_id: town.id,
        mineral: "石灰岩".into(),
        mining_method: "露天".into(),
        area_ha: None,
        boundary: None,
        campaign_id: "c".into(),
        facts: facts.clone(),
        version: 1,
        created_at: 1,
        updated_at: 1,
    };
    db.store
        .create_mines(std::slice::from_ref(&mine))
        .await
        .unwrap();
    let stored = db.store.get_mine(mine.id).await.unwrap();
    let event = MineEvent {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        transition: "announce".into(),
        from_stage: "registered".into(),
        to_stage: "registered".into(),
        actor_id: None,
        reason: String::new(),
        data: serde_json::json!({}),
        as_of: "2024-03-10".into(),
        recorded_on: "2024-03-12".into(),
        created_at: 5,
    };
    let record = |kind: &str| CaseRecord {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        kind: kind.into(),
        data: serde_json::json!({"text": "公告"}),
        created_by: None,
        created_at: 5,
    };
    // The case record violates a constraint: nothing of the transition is stored.
    assert!(
        db.store
            .transition_mine(
                mine.id,
                stored.version,
                &facts,
                &event,
                Some(&record("not_a_kind"))
            )
            .await
            .is_err()
    );
    assert_eq!(
        db.store.get_mine(mine.id).await.unwrap().version,
        stored.version
    );
    assert!(db.store.list_mine_events(mine.id).await.unwrap().is_empty());
    assert!(
        db.store
            .list_case_records(mine.id)
            .await
            .unwrap()
            .is_empty()
    );
    // The retry goes through, with both.
    db.store
        .transition_mine(
            mine.id,
            stored.version,
            &facts,
            &event,
            Some(&record("announcement")),
        )
        .await
        .unwrap();
    assert_eq!(
        db.store.get_mine(mine.id).await.unwrap().version,
        stored.version + 1
    );
    assert_eq!(db.store.list_mine_events(mine.id).await.unwrap().len(), 1);
    assert_eq!(db.store.list_case_records(mine.id).await.unwrap().len(), 1);
}

fn conflict_on(err: StoreError) -> String {
    match err {
        StoreError::Conflict { constraint } => constraint,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Organisation, users, devices, tokens, login throttle

async fn departments_and_specialties_are_listed_in_order(b: Backend) {
    let db = TestDb::new(b).await;
    let departments = db.store.list_departments().await.unwrap();
    let orders: Vec<i32> = departments.iter().map(|d| d.sort_order).collect();
    assert_eq!(orders, (1..=16).collect::<Vec<_>>());
    assert_eq!(departments[0].code, "natural_resources");
    assert_eq!(departments[14].code, "discipline_inspection");
    assert_eq!(
        (departments[15].code.as_str(), departments[15].observer),
        ("market_regulation", true)
    );
    let codes: Vec<String> = db
        .store
        .list_specialties()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.code)
        .collect();
    assert_eq!(
        codes,
        [
            "environmental_protection",
            "forestry",
            "hydro_engineering_environmental_geology"
        ]
    );
}

fn township(name: &str, kind: &str) -> Township {
    Township {
        id: Uuid::now_v7(),
        name: name.into(),
        kind: kind.into(),
        created_at: 3,
    }
}

async fn town(db: &TestDb, name: &str) -> Township {
    let t = township(name, "town");
    db.store.create_township(&t).await.unwrap();
    t
}

async fn townships_are_listed_by_name_and_names_are_unique(b: Backend) {
    let db = TestDb::new(b).await;
    assert!(db.store.list_townships().await.unwrap().is_empty());
    // Created out of name order (code point order: 上 < 泗 < 翰).
    let (c, a, b2) = (
        township("翰堂镇", "town"),
        township("上甘山林场", "forest_farm"),
        township("泗溪镇", "town"),
    );
    for t in [&c, &a, &b2] {
        db.store.create_township(t).await.unwrap();
    }
    assert_eq!(
        db.store.list_townships().await.unwrap(),
        vec![a.clone(), b2.clone(), c.clone()]
    );
    // Names are unique (a named constraint), ids too; kinds are a closed list.
    let constraint = conflict_on(
        db.store
            .create_township(&township("泗溪镇", "township"))
            .await
            .unwrap_err(),
    );
    assert!(constraint.contains("name"), "{constraint}");
    let mut same_id = township("新田乡", "township");
    same_id.id = a.id;
    conflict_on(db.store.create_township(&same_id).await.unwrap_err());
    assert!(
        db.store
            .create_township(&township("某地", "village"))
            .await
            .is_err()
    );
    assert_eq!(db.store.list_townships().await.unwrap().len(), 3);
}

async fn users_are_listed_by_username_and_passwords_change(b: Backend) {
    let db = TestDb::new(b).await;
    let mut ids = BTreeMap::new();
    for name in ["zhao", "li", "wang"] {
        let u = db
            .store
            .create_user(&new_user(name, Role::Expert))
            .await
            .unwrap();
        assert_eq!(u.password_hash, "$argon2id$fake");
        ids.insert(name, u.id);
    }
    let names: Vec<String> = db
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["li", "wang", "zhao"]);

    db.store
        .set_user_password(ids["li"], "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(
        db.store.get_user(ids["li"]).await.unwrap().password_hash,
        "$argon2id$new"
    );
    // Only that user's.
    assert_eq!(
        db.store
            .get_user_by_username("wang")
            .await
            .unwrap()
            .password_hash,
        "$argon2id$fake"
    );
    assert!(matches!(
        db.store.set_user_password(Uuid::now_v7(), "x").await,
        Err(StoreError::NotFound)
    ));
    // Disabling is reversible.
    db.store.set_user_disabled(ids["zhao"], true).await.unwrap();
    db.store
        .set_user_disabled(ids["zhao"], false)
        .await
        .unwrap();
    assert!(!db.store.get_user(ids["zhao"]).await.unwrap().disabled);
    assert!(
        !db.store
            .principal_status(ids["zhao"], None)
            .await
            .unwrap()
            .user_disabled
    );
    assert!(matches!(
        db.store.principal_status(Uuid::now_v7(), None).await,
        Err(StoreError::NotFound)
    ));
}

async fn devices_keep_their_first_revocation(b: Backend) {
    let db = TestDb::new(b).await;
    let u = db
        .store
        .create_user(&new_user("u", Role::Operator))
        .await
        .unwrap();
    // Listed by creation time, whatever the insertion order.
    let mut late = device(u.id);
    late.created_at = 20;
    let mut early = device(u.id);
    early.created_at = 10;
    db.store.create_device(&late).await.unwrap();
    db.store.create_device(&early).await.unwrap();
    assert_eq!(
        db.store.list_devices(Some(u.id)).await.unwrap(),
        vec![early.clone(), late.clone()]
    );
    assert_eq!(db.store.get_device(late.id).await.unwrap(), late);
    assert!(matches!(
        db.store.get_device(Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        db.store
            .list_devices(Some(Uuid::now_v7()))
            .await
            .unwrap()
            .is_empty()
    );
    // Ids are unique; a device needs an existing user.
    conflict_on(db.store.create_device(&early).await.unwrap_err());
    conflict_on(
        db.store
            .create_device(&device(Uuid::now_v7()))
            .await
            .unwrap_err(),
    );
    // A second revocation keeps the first time.
    db.store.revoke_device(early.id, 100).await.unwrap();
    db.store.revoke_device(early.id, 200).await.unwrap();
    assert_eq!(
        db.store.get_device(early.id).await.unwrap().revoked_at,
        Some(100)
    );
    assert_eq!(db.store.get_device(late.id).await.unwrap().revoked_at, None);
}

async fn refresh_token_hashes_are_unique(b: Backend) {
    let db = TestDb::new(b).await;
    let u = db
        .store
        .create_user(&new_user("u", Role::Admin))
        .await
        .unwrap();
    db.store
        .insert_refresh_token(&token(u.id, Uuid::now_v7(), None, 9))
        .await
        .unwrap();
    let constraint = conflict_on(
        db.store
            .insert_refresh_token(&token(u.id, Uuid::now_v7(), None, 9))
            .await
            .unwrap_err(),
    );
    assert!(constraint.contains("token_hash"), "{constraint}");
    // A token of an unknown user or device is refused.
    conflict_on(
        db.store
            .insert_refresh_token(&token(Uuid::now_v7(), Uuid::now_v7(), None, 10))
            .await
            .unwrap_err(),
    );
    conflict_on(
        db.store
            .insert_refresh_token(&token(u.id, Uuid::now_v7(), Some(Uuid::now_v7()), 11))
            .await
            .unwrap_err(),
    );
    // An unknown token cannot be marked used; revoking an unknown family is harmless.
    assert!(
        !db.store
            .mark_refresh_token_used(Uuid::now_v7(), 1)
            .await
            .unwrap()
    );
    db.store
        .revoke_refresh_family(Uuid::now_v7(), 1)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .get_refresh_token_by_hash(&[9; 32])
            .await
            .unwrap()
            .revoked_at,
        None
    );
}

async fn releasing_an_attempt_never_goes_below_zero(b: Backend) {
    let db = TestDb::new(b).await;
    let s = &db.store;
    let key = [("account:z", 500, 2)];
    assert_eq!(s.reserve_login_attempt(&key, NOW).await.unwrap(), None);
    // Two releases for one reservation, and one for a counter that does not exist.
    s.release_login_attempt(&[("account:z", 500), ("account:z", 500)])
        .await
        .unwrap();
    s.release_login_attempt(&[("account:none", 500)])
        .await
        .unwrap();
    // The counter is at zero, not below: exactly the limit is granted again.
    assert_eq!(s.reserve_login_attempt(&key, NOW).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&key, NOW).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&key, NOW).await.unwrap(), Some(0));
    // Only the full counter is named, whatever its position.
    assert_eq!(
        s.reserve_login_attempt(&[("addr:q", 500, 5), ("account:z", 500, 2)], NOW)
            .await
            .unwrap(),
        Some(1)
    );
    // Clearing another key leaves this one full.
    s.clear_login_failures("account:other").await.unwrap();
    assert_eq!(s.reserve_login_attempt(&key, NOW).await.unwrap(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Sync

/// The header field that scopes an entity to a township (as in `sync.rs`).
const SCOPE_FIELD: &str = "township_id";
const RECEIVED_AT: i64 = 1_700_000_000_000;
/// The time the store's caller passes in (the store never reads the clock).
const NOW: i64 = 1_700_000_000_000;

/// A user with an enrolled device: the writer of one op series.
async fn enrolled_device(db: &TestDb, username: &str) -> Uuid {
    let u = db
        .store
        .create_user(&new_user(username, Role::CountyOffice))
        .await
        .unwrap();
    let d = device(u.id);
    db.store.create_device(&d).await.unwrap();
    d.id
}

fn op(device: Uuid, seq: u64, entity: EntityId, body: OpBody) -> Op {
    Op {
        id: OpId(Uuid::now_v7()),
        device: DeviceId(device),
        seq,
        hlc: Hlc::new(1_700_000_000_000 + seq, 0),
        entity,
        body,
    }
}

fn create_body(scope: Option<Uuid>) -> OpBody {
    let mut fields = BTreeMap::new();
    fields.insert("mine_name".to_owned(), Value::from("黄家山采石场"));
    if let Some(t) = scope {
        fields.insert(SCOPE_FIELD.to_owned(), Value::from(t.to_string()));
    }
    OpBody::Create {
        entity_type: "acceptance_record".into(),
        fields,
    }
}

fn set_body(field: &str, value: &str, base_rev: u64) -> OpBody {
    OpBody::Set {
        field: field.into(),
        value: Value::from(value),
        base_rev,
    }
}

fn scope_of(state: &EntityState) -> Option<Uuid> {
    state
        .value(SCOPE_FIELD)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// What the server's batch processor (`sync::process_group`) hands the store, without its
/// policy: `process_batch` over each device's ops in turn, entity rows for the changed
/// entities (scoped by their `township_id` header), their conflict rows, and the changes.
fn process(loaded: SyncLoaded, batches: &[(Uuid, &[Op])]) -> SyncWrites {
    let SyncLoaded {
        mut series,
        mut entities,
        prior_results,
        stored_ops,
        next_commit_seq,
    } = loaded;
    let mut next = next_commit_seq;
    let none = BTreeMap::new();
    let mut writes = SyncWrites::default();
    let mut changed = BTreeSet::new();
    let mut changes = Vec::new();
    for (device, ops) in batches {
        let touched = touched_entities(ops)
            .into_iter()
            .filter_map(|id| entities.remove(&id).map(|s| (id, s)))
            .collect();
        let outcome = process_batch(Batch {
            device: DeviceId(*device),
            series: SeriesState {
                last_seq: series.get(device).copied().unwrap_or(0),
            },
            entities: touched,
            ops,
            policy: &AllowAll,
            next_commit_seq: next,
            prior_results: &prior_results,
            stored_ops: stored_ops.get(device).unwrap_or(&none),
        });
        next = outcome.next_commit_seq;
        series.insert(*device, outcome.series.last_seq);
        writes.series.retain(|(d, _)| d != device);
        writes.series.push((*device, outcome.series.last_seq));
        for ((op, result), keep) in ops.iter().zip(&outcome.results).zip(&outcome.stored) {
            if !keep {
                continue;
            }
            let commit_seq = match result {
                OpResult::Applied { commit_seq, .. } | OpResult::Conflict { commit_seq, .. } => {
                    Some(*commit_seq)
                }
                _ => None,
            };
            writes.ops.push(StoredOp {
                id: op.id,
                device: *device,
                seq: op.seq,
                entity: op.entity,
                kind: op.body.kind(),
                op_json: Arc::from(serde_json::to_string(op).unwrap()),
                result: result.clone(),
                commit_seq,
                received_at: RECEIVED_AT,
            });
        }
        changed.extend(outcome.changed);
        changes.extend(outcome.changes);
        entities.extend(outcome.entities);
        writes.results.push(outcome.results);
    }
    let last_commit: BTreeMap<EntityId, u64> =
        changes.iter().map(|c| (c.entity, c.commit_seq)).collect();
    for id in &changed {
        let state = &entities[id];
        let scope = scope_of(state);
        writes.conflicts_of.push(*id);
        for (field, f) in &state.fields {
            if let Some(c) = &f.conflict {
                writes.conflicts.push(ConflictRow {
                    entity: *id,
                    field: field.clone(),
                    section: sync_protocol::section_of(field).to_owned(),
                    entity_type: state.entity_type.clone(),
                    scope,
                    candidates: u32::try_from(c.candidates.len()).unwrap(),
                    since_commit: last_commit[id],
                });
            }
        }
        writes.entities.push(EntityRow {
            state: state.clone(),
            scope,
            last_commit: last_commit[id],
        });
    }
    writes.changes = changes
        .into_iter()
        .map(|change| ChangeRow {
            scope: scope_of(&entities[&change.entity]),
            change,
        })
        .collect();
    writes
}

/// Run one sync transaction with [`process`], then `tamper` with its writes; returns what the
/// store loaded (if it got that far) and the outcome.
async fn try_push(
    db: &TestDb,
    batches: &[(Uuid, &[Op])],
    tamper: impl FnOnce(&mut SyncWrites) + Send,
) -> (Option<SyncLoaded>, StoreResult<SyncWrites>) {
    let mut seen = None;
    let seen_ref = &mut seen;
    let result = db
        .store
        .sync_batch(
            batches,
            NOW,
            Box::new(move |loaded: SyncLoaded| {
                *seen_ref = Some(loaded.clone());
                let mut writes = process(loaded, batches);
                tamper(&mut writes);
                writes
            }),
        )
        .await;
    (seen, result)
}

async fn push(db: &TestDb, batches: &[(Uuid, &[Op])]) -> (SyncLoaded, SyncWrites) {
    let (loaded, result) = try_push(db, batches, |_| {}).await;
    (loaded.unwrap(), result.unwrap())
}

fn parse_changes(page: &yanshou_server::store::FeedPage) -> Vec<Change> {
    page.changes
        .iter()
        .map(|raw| serde_json::from_str(raw.get()).unwrap())
        .collect()
}

/// Every change visible to `visibility` after `cursor`, page by page; returns them and the end
/// cursor.
async fn pull_all(
    db: &TestDb,
    cursor: u64,
    limit: u32,
    visibility: Visibility,
) -> (Vec<Change>, u64) {
    let mut cursor = cursor;
    let mut all = Vec::new();
    for _ in 0..100 {
        let page = db.store.sync_pull(cursor, limit, visibility).await.unwrap();
        assert!(page.changes.len() <= limit as usize);
        assert!(page.cursor >= cursor, "a cursor never goes back");
        all.extend(parse_changes(&page));
        cursor = page.cursor;
        if !page.has_more {
            return (all, cursor);
        }
    }
    panic!("the feed did not end in 100 pages");
}

fn commit_seqs(changes: &[Change]) -> Vec<u64> {
    changes.iter().map(|c| c.commit_seq).collect()
}

async fn sync_batch_stores_what_process_decides(b: Backend) {
    let db = TestDb::new(b).await;
    let t = town(&db, "泗溪镇").await;
    let dev = enrolled_device(&db, "office").await;
    let (e1, e2) = (EntityId(Uuid::now_v7()), EntityId(Uuid::now_v7()));
    let ops = [
        op(dev, 1, e1, create_body(Some(t.id))),
        op(
            dev,
            2,
            e1,
            set_body("water_resources/item14.result", "pass", 0),
        ),
        op(dev, 3, e2, create_body(None)),
        // Not applied (no such entity), yet it takes its place in the series.
        op(dev, 4, EntityId(Uuid::now_v7()), set_body("x/y", "z", 0)),
    ];
    let (loaded, writes) = push(&db, &[(dev, &ops)]).await;
    // A fresh store: no series, no entities, no retries, the feed starts at 1.
    assert!(loaded.series.is_empty());
    assert!(loaded.entities.is_empty());
    assert!(loaded.prior_results.is_empty() && loaded.stored_ops.is_empty());
    assert_eq!(loaded.next_commit_seq, 1);
    // The store hands back what the processor decided.
    assert_eq!(writes.results.len(), 1);
    let results = &writes.results[0];
    assert!(matches!(
        results[0],
        OpResult::Applied { commit_seq: 1, .. }
    ));
    assert!(matches!(
        results[1],
        OpResult::Applied { commit_seq: 2, .. }
    ));
    assert!(matches!(
        results[2],
        OpResult::Applied { commit_seq: 3, .. }
    ));
    assert!(matches!(results[3], OpResult::Rejected { .. }));
    assert_eq!(writes.ops.len(), 4);

    // The entities are stored as processed; an unknown id is simply absent.
    let mut stored = db
        .store
        .sync_entities(&[e2, EntityId(Uuid::now_v7()), e1])
        .await
        .unwrap();
    stored.sort_by_key(|s| s.id);
    let mut expected: Vec<EntityState> = writes.entities.iter().map(|e| e.state.clone()).collect();
    expected.sort_by_key(|s| s.id);
    assert_eq!(stored, expected);
    let e1_state = stored.iter().find(|s| s.id == e1).unwrap();
    assert_eq!(
        e1_state.value("water_resources/item14.result"),
        Some(&Value::from("pass"))
    );
    assert!(db.store.sync_entities(&[]).await.unwrap().is_empty());

    // The feed holds the changes, byte for byte the processor's, in commit order.
    let page = db.store.sync_pull(0, 100, Visibility::All).await.unwrap();
    assert!(!page.has_more);
    assert_eq!(page.cursor, 3);
    let expected: Vec<Change> = writes.changes.iter().map(|c| c.change.clone()).collect();
    assert_eq!(parse_changes(&page), expected);

    // The next transaction sees the series, the touched entities and the feed's end.
    let more = [op(
        dev,
        5,
        e1,
        set_body("water_resources/item14.result", "fail", 1),
    )];
    let (loaded, writes) = push(&db, &[(dev, &more)]).await;
    assert_eq!(loaded.series.get(&dev), Some(&4));
    assert_eq!(loaded.entities.keys().copied().collect::<Vec<_>>(), [e1]);
    assert_eq!(loaded.entities[&e1], *e1_state);
    assert_eq!(loaded.next_commit_seq, 4);
    assert!(matches!(
        writes.results[0][0],
        OpResult::Applied { commit_seq: 4, .. }
    ));
    let state = db.store.sync_entities(&[e1]).await.unwrap().remove(0);
    assert_eq!(
        state.value("water_resources/item14.result"),
        Some(&Value::from("fail"))
    );
}

async fn sync_batch_loads_retries_and_series(b: Backend) {
    let db = TestDb::new(b).await;
    let (a, bdev) = (
        enrolled_device(&db, "a").await,
        enrolled_device(&db, "b").await,
    );
    let e = EntityId(Uuid::now_v7());
    let first = [
        op(a, 1, e, create_body(None)),
        op(a, 2, e, set_body("s/f", "1", 0)),
        op(a, 3, EntityId(Uuid::now_v7()), set_body("s/f", "x", 0)),
    ];
    push(&db, &[(a, &first)]).await;
    // Both devices in one group: `a` retries its batch, `b` starts its series.
    let second = [op(bdev, 1, e, set_body("s/g", "2", 0))];
    let (loaded, writes) = push(&db, &[(a, &first), (bdev, &second)]).await;
    assert_eq!(loaded.series.get(&a), Some(&3));
    assert_eq!(loaded.series.get(&bdev), None, "a new device has no series");
    // The stored ops come back exactly as pushed, with their results.
    let stored: Vec<Op> = loaded.stored_ops[&a].values().cloned().collect();
    assert_eq!(stored, first);
    assert!(!loaded.stored_ops.contains_key(&bdev));
    assert!(matches!(
        loaded.prior_results[&first[1].id],
        OpResult::Applied { commit_seq: 2, .. }
    ));
    assert!(matches!(
        loaded.prior_results[&first[2].id],
        OpResult::Rejected { .. }
    ));
    assert_eq!(loaded.next_commit_seq, 3);
    // So the retry is answered from the log: duplicates and the same rejection, nothing new.
    assert!(matches!(writes.results[0][0], OpResult::Duplicate { .. }));
    assert!(matches!(writes.results[0][1], OpResult::Duplicate { .. }));
    assert!(matches!(writes.results[0][2], OpResult::Rejected { .. }));
    assert!(matches!(
        writes.results[1][0],
        OpResult::Applied { commit_seq: 3, .. }
    ));
    let (changes, end) = pull_all(&db, 0, 10, Visibility::All).await;
    assert_eq!(commit_seqs(&changes), [1, 2, 3]);
    assert_eq!(end, 3);
    // Only ops under already used numbers are loaded: a batch of new ops loads none.
    let third = [op(a, 4, e, set_body("s/f", "3", 1))];
    let (loaded, _) = push(&db, &[(a, &third), (bdev, &[])]).await;
    assert!(loaded.stored_ops.is_empty() && loaded.prior_results.is_empty());
    assert_eq!(loaded.series.get(&bdev), Some(&1));
}

async fn sync_pull_pages_in_commit_order(b: Backend) {
    let db = TestDb::new(b).await;
    let dev = enrolled_device(&db, "office").await;
    let e = EntityId(Uuid::now_v7());
    let mut ops = vec![op(dev, 1, e, create_body(None))];
    for seq in 2..=7 {
        ops.push(op(dev, seq, e, set_body("s/f", &seq.to_string(), seq - 2)));
    }
    let (_, writes) = push(&db, &[(dev, &ops)]).await;
    assert!(
        writes.results[0]
            .iter()
            .all(|r| matches!(r, OpResult::Applied { .. }))
    );
    let page = db.store.sync_pull(0, 3, Visibility::All).await.unwrap();
    assert_eq!(parse_changes(&page).len(), 3);
    assert_eq!((page.cursor, page.has_more), (3, true));
    let page = db.store.sync_pull(3, 3, Visibility::All).await.unwrap();
    assert_eq!(commit_seqs(&parse_changes(&page)), [4, 5, 6]);
    assert_eq!((page.cursor, page.has_more), (6, true));
    let page = db.store.sync_pull(6, 3, Visibility::All).await.unwrap();
    assert_eq!(commit_seqs(&parse_changes(&page)), [7]);
    assert_eq!((page.cursor, page.has_more), (7, false));
    // A page exactly as long as the rest says there is no more.
    let page = db.store.sync_pull(4, 3, Visibility::All).await.unwrap();
    assert_eq!(commit_seqs(&parse_changes(&page)), [5, 6, 7]);
    assert_eq!((page.cursor, page.has_more), (7, false));
    // At (or past) the end: nothing, and the cursor is not moved back.
    let page = db.store.sync_pull(7, 3, Visibility::All).await.unwrap();
    assert!(page.changes.is_empty());
    assert_eq!((page.cursor, page.has_more), (7, false));
    let page = db.store.sync_pull(50, 3, Visibility::All).await.unwrap();
    assert!(page.changes.is_empty());
    assert_eq!((page.cursor, page.has_more), (50, false));
    // Pages concatenate to the whole feed, each change once.
    let (all, end) = pull_all(&db, 0, 2, Visibility::All).await;
    assert_eq!(commit_seqs(&all), (1..=7).collect::<Vec<_>>());
    assert_eq!(end, 7);
    assert_eq!(
        all,
        writes
            .changes
            .iter()
            .map(|c| c.change.clone())
            .collect::<Vec<_>>()
    );
}

async fn sync_pull_filters_by_visibility(b: Backend) {
    let db = TestDb::new(b).await;
    let (t1, t2) = (town(&db, "泗溪镇").await, town(&db, "翰堂镇").await);
    let dev = enrolled_device(&db, "office").await;
    let (county, in_t1, in_t2) = (
        EntityId(Uuid::now_v7()),
        EntityId(Uuid::now_v7()),
        EntityId(Uuid::now_v7()),
    );
    let ops = [
        op(dev, 1, in_t1, create_body(Some(t1.id))), // 1
        op(dev, 2, county, create_body(None)),       // 2
        op(dev, 3, in_t2, create_body(Some(t2.id))), // 3
        op(dev, 4, in_t1, set_body("s/f", "a", 0)),  // 4
        op(dev, 5, in_t2, set_body("s/f", "b", 0)),  // 5
        op(dev, 6, in_t2, set_body("s/f", "c", 1)),  // 6
    ];
    push(&db, &[(dev, &ops)]).await;
    let entities_of = |changes: &[Change]| changes.iter().map(|c| c.entity).collect::<Vec<_>>();

    let (all, end) = pull_all(&db, 0, 100, Visibility::All).await;
    assert_eq!(commit_seqs(&all), [1, 2, 3, 4, 5, 6]);
    assert_eq!(end, 6);

    // A township sees its own and county-wide entities, never another township's; its cursor
    // still reaches the feed's end, past the hidden changes.
    let (seen, end) = pull_all(&db, 0, 100, Visibility::Township(t1.id)).await;
    assert_eq!(commit_seqs(&seen), [1, 2, 4]);
    assert_eq!(entities_of(&seen), [in_t1, county, in_t1]);
    assert_eq!(end, 6);
    let (seen, end) = pull_all(&db, 0, 1, Visibility::Township(t1.id)).await;
    assert_eq!(commit_seqs(&seen), [1, 2, 4]);
    assert_eq!(end, 6);
    let page = db
        .store
        .sync_pull(0, 2, Visibility::Township(t1.id))
        .await
        .unwrap();
    assert_eq!(commit_seqs(&parse_changes(&page)), [1, 2]);
    assert_eq!((page.cursor, page.has_more), (2, true));
    let page = db
        .store
        .sync_pull(2, 2, Visibility::Township(t1.id))
        .await
        .unwrap();
    assert_eq!(commit_seqs(&parse_changes(&page)), [4]);
    assert_eq!((page.cursor, page.has_more), (6, false));

    let (seen, _) = pull_all(&db, 0, 100, Visibility::Township(t2.id)).await;
    assert_eq!(commit_seqs(&seen), [2, 3, 5, 6]);
    let (seen, _) = pull_all(&db, 0, 100, Visibility::Township(Uuid::now_v7())).await;
    assert_eq!(commit_seqs(&seen), [2]);

    // Nothing: no change, and the device may skip to the end.
    let page = db
        .store
        .sync_pull(0, 100, Visibility::Nothing)
        .await
        .unwrap();
    assert!(page.changes.is_empty());
    assert_eq!((page.cursor, page.has_more), (6, false));
}

async fn sync_conflicts_follow_each_batch_and_visibility(b: Backend) {
    let db = TestDb::new(b).await;
    let (t1, t2) = (town(&db, "泗溪镇").await, town(&db, "翰堂镇").await);
    let (a, bdev) = (
        enrolled_device(&db, "a").await,
        enrolled_device(&db, "b").await,
    );
    let (x, y) = (EntityId(Uuid::now_v7()), EntityId(Uuid::now_v7()));
    let first = [
        op(a, 1, x, create_body(Some(t1.id))),
        op(a, 2, y, create_body(Some(t2.id))),
        op(a, 3, x, set_body("forestry/19.cover", "a", 0)),
        op(a, 4, y, set_body("water_resources/14.length", "a", 0)),
    ];
    push(&db, &[(a, &first)]).await;
    assert!(
        db.store
            .sync_conflicts(Visibility::All, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Device b had not seen a's values: concurrent sets, kept as conflicts (y's first).
    let second = [
        op(bdev, 1, y, set_body("water_resources/14.length", "b", 0)),
        op(bdev, 2, x, set_body("forestry/19.cover", "b", 0)),
        op(bdev, 3, x, set_body("forestry/20.cover", "b", 0)),
    ];
    let (_, writes) = push(&db, &[(bdev, &second)]).await;
    assert!(matches!(
        writes.results[0][0],
        OpResult::Conflict { commit_seq: 5, .. }
    ));
    assert!(matches!(
        writes.results[0][1],
        OpResult::Conflict { commit_seq: 6, .. }
    ));
    let y_row = ConflictRow {
        entity: y,
        field: "water_resources/14.length".into(),
        section: "water_resources".into(),
        entity_type: "acceptance_record".into(),
        scope: Some(t2.id),
        candidates: 2,
        since_commit: 5,
    };
    let x_row = ConflictRow {
        entity: x,
        field: "forestry/19.cover".into(),
        section: "forestry".into(),
        entity_type: "acceptance_record".into(),
        scope: Some(t1.id),
        candidates: 2,
        // The entity's last commit in the batch (7, the set of another field).
        since_commit: 7,
    };
    // Oldest first; limited; filtered like the feed.
    assert_eq!(
        db.store.sync_conflicts(Visibility::All, 100).await.unwrap(),
        vec![y_row.clone(), x_row.clone()]
    );
    assert_eq!(
        db.store.sync_conflicts(Visibility::All, 1).await.unwrap(),
        vec![y_row.clone()]
    );
    assert_eq!(
        db.store
            .sync_conflicts(Visibility::Township(t1.id), 100)
            .await
            .unwrap(),
        vec![x_row.clone()]
    );
    assert_eq!(
        db.store
            .sync_conflicts(Visibility::Township(t2.id), 100)
            .await
            .unwrap(),
        vec![y_row.clone()]
    );
    assert!(
        db.store
            .sync_conflicts(Visibility::Nothing, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Resolving x's field replaces x's rows (now none) and leaves y's.
    let field = &db.store.sync_entities(&[x]).await.unwrap()[0].fields["forestry/19.cover"];
    let resolve = [op(
        a,
        5,
        x,
        OpBody::Resolve {
            field: "forestry/19.cover".into(),
            value: Value::from("a"),
            base_rev: field.rev,
            chosen_op: Some(first[2].id),
            reason: "re-inspected on site".into(),
        },
    )];
    let (_, writes) = push(&db, &[(a, &resolve)]).await;
    assert!(matches!(writes.results[0][0], OpResult::Applied { .. }));
    assert_eq!(
        db.store.sync_conflicts(Visibility::All, 100).await.unwrap(),
        vec![y_row]
    );
}

/// Groups larger than one statement (500 rows) are written whole: ops, series, entities and
/// changes of two devices, read back with `sync_entities` over more than 500 ids.
async fn large_sync_groups_are_written_in_chunks(b: Backend) {
    let db = TestDb::new(b).await;
    let (a, bdev) = (
        enrolled_device(&db, "a").await,
        enrolled_device(&db, "b").await,
    );
    let creates = |device: Uuid| -> Vec<Op> {
        (1..=300)
            .map(|seq| op(device, seq, EntityId(Uuid::now_v7()), create_body(None)))
            .collect()
    };
    let (ops_a, ops_b) = (creates(a), creates(bdev));
    let (_, writes) = push(&db, &[(a, &ops_a), (bdev, &ops_b)]).await;
    assert_eq!((writes.ops.len(), writes.entities.len()), (600, 600));
    let mut ids: Vec<EntityId> = ops_a.iter().chain(&ops_b).map(|o| o.entity).collect();
    // Unknown ids among them are skipped.
    ids.extend((0..500).map(|_| EntityId(Uuid::now_v7())));
    let mut stored: Vec<EntityId> = db
        .store
        .sync_entities(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    stored.sort();
    let mut expected = ids[..600].to_vec();
    expected.sort();
    assert_eq!(stored, expected);
    let (changes, end) = pull_all(&db, 0, 250, Visibility::All).await;
    assert_eq!(commit_seqs(&changes), (1..=600).collect::<Vec<_>>());
    assert_eq!(end, 600);
    // Both series were stored: the next ops of each device are their 301st.
    let next = [op(a, 301, ops_a[0].entity, set_body("s/f", "x", 0))];
    let (loaded, writes) = push(&db, &[(a, &next), (bdev, &[])]).await;
    assert_eq!(loaded.series.get(&a), Some(&300));
    assert_eq!(loaded.series.get(&bdev), Some(&300));
    assert!(matches!(
        writes.results[0][0],
        OpResult::Applied {
            commit_seq: 601,
            ..
        }
    ));
}

/// A sync transaction is all or nothing: when its last statement fails, the series, op log,
/// entities and feed written before it are rolled back.
async fn a_failing_sync_batch_stores_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    let dev = enrolled_device(&db, "office").await;
    let e = EntityId(Uuid::now_v7());
    let first = [op(dev, 1, e, create_body(None))];
    push(&db, &[(dev, &first)]).await;
    let before = db.store.sync_entities(&[e]).await.unwrap();

    let (f, g) = (EntityId(Uuid::now_v7()), EntityId(Uuid::now_v7()));
    let second = [
        op(dev, 2, e, set_body("s/f", "lost", 0)),
        op(dev, 3, f, create_body(None)),
    ];
    // The feed already holds commit 1: the change insert fails after everything else.
    let (loaded, result) = try_push(&db, &[(dev, &second)], |w| {
        w.changes[1].change.commit_seq = 1;
        // And a conflict row, which must not reach the queue either.
        w.conflicts.push(ConflictRow {
            entity: g,
            field: "s/f".into(),
            section: "s".into(),
            entity_type: "acceptance_record".into(),
            scope: None,
            candidates: 2,
            since_commit: 3,
        });
    })
    .await;
    assert!(loaded.is_some(), "the processor ran");
    let constraint = conflict_on(result.unwrap_err());
    assert!(constraint.contains("sync_changes"), "{constraint}");
    // Nothing of it is stored.
    assert_eq!(db.store.sync_entities(&[e]).await.unwrap(), before);
    assert!(db.store.sync_entities(&[f]).await.unwrap().is_empty());
    let (changes, end) = pull_all(&db, 0, 100, Visibility::All).await;
    assert_eq!((commit_seqs(&changes), end), (vec![1], 1));
    assert!(
        db.store
            .sync_conflicts(Visibility::All, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // The series did not advance and the ops were not logged: the same batch goes through.
    let (loaded, writes) = push(&db, &[(dev, &second)]).await;
    assert_eq!(loaded.series.get(&dev), Some(&1));
    assert!(loaded.stored_ops.is_empty() && loaded.prior_results.is_empty());
    assert!(matches!(
        writes.results[0][0],
        OpResult::Applied { commit_seq: 2, .. }
    ));
    assert!(matches!(
        writes.results[0][1],
        OpResult::Applied { commit_seq: 3, .. }
    ));
}

/// The op log's key is what `sync::job_error` recognises: an op id already stored under
/// another device or number fails the transaction with a conflict naming it.
async fn a_reused_op_id_is_a_named_conflict(b: Backend) {
    let db = TestDb::new(b).await;
    let (a, bdev) = (
        enrolled_device(&db, "a").await,
        enrolled_device(&db, "b").await,
    );
    let e = EntityId(Uuid::now_v7());
    let first = [op(a, 1, e, create_body(None))];
    push(&db, &[(a, &first)]).await;
    let mut copy = op(bdev, 1, EntityId(Uuid::now_v7()), create_body(None));
    copy.id = first[0].id;
    let other = [op(a, 2, e, set_body("s/f", "kept?", 0))];
    let (_, result) = try_push(&db, &[(a, &other), (bdev, &[copy])], |_| {}).await;
    let constraint = conflict_on(result.unwrap_err());
    assert!(
        constraint.contains("sync_ops_pkey") || constraint.contains("sync_ops.op_id"),
        "{constraint}"
    );
    // The whole group failed: a's op too.
    let (changes, _) = pull_all(&db, 0, 100, Visibility::All).await;
    assert_eq!(commit_seqs(&changes), [1]);
    // A series of a device that does not exist is refused (foreign key).
    let ghost = Uuid::now_v7();
    let (_, result) = try_push(
        &db,
        &[(ghost, &[op(ghost, 1, e, set_body("s/g", "x", 0))])],
        |_| {},
    )
    .await;
    conflict_on(result.unwrap_err());
}

/// Two devices edit through the store and pull its feed with small pages: their confirmed
/// states end equal to the stored entities (the feed's JSON is the protocol's changes).
async fn replicas_converge_through_the_store(b: Backend) {
    let db = TestDb::new(b).await;
    let t = town(&db, "泗溪镇").await;
    let (da, dbv) = (
        enrolled_device(&db, "a").await,
        enrolled_device(&db, "b").await,
    );
    let (mut ra, mut rb) = (Replica::new(DeviceId(da)), Replica::new(DeviceId(dbv)));
    let e = EntityId(Uuid::now_v7());
    let mut fields = BTreeMap::new();
    fields.insert(SCOPE_FIELD.to_owned(), Value::from(t.id.to_string()));
    ra.create(OpId(Uuid::now_v7()), 1_000, e, "acceptance_record", fields)
        .unwrap();
    ra.add(
        OpId(Uuid::now_v7()),
        1_001,
        e,
        "forestry/photos",
        Value::from("p1"),
    )
    .unwrap();

    async fn round_trip(db: &TestDb, r: &mut Replica, now: u64) {
        let request = r.build_request(Some(2));
        let results = if request.ops.is_empty() {
            Vec::new()
        } else {
            let device = request.device.0;
            let (_, mut writes) = push(db, &[(device, request.ops.as_slice())]).await;
            writes.results.pop().unwrap()
        };
        let page = db
            .store
            .sync_pull(request.cursor, 2, Visibility::All)
            .await
            .unwrap();
        let response = SyncResponse {
            protocol_version: PROTOCOL_VERSION,
            results,
            changes: parse_changes(&page),
            cursor: page.cursor,
            has_more: page.has_more,
        };
        r.handle_response(&response, now).unwrap();
    }
    async fn settle(db: &TestDb, r: &mut Replica, now: u64) {
        for _ in 0..20 {
            round_trip(db, r, now).await;
            let request = r.build_request(Some(2));
            if request.ops.is_empty() {
                let page = db
                    .store
                    .sync_pull(r.cursor(), 2, Visibility::All)
                    .await
                    .unwrap();
                if page.changes.is_empty() {
                    return;
                }
            }
        }
        panic!("the replica did not settle");
    }

    settle(&db, &mut ra, 2_000).await;
    settle(&db, &mut rb, 2_000).await;
    // Concurrent edits of one field, and more.
    ra.set(
        OpId(Uuid::now_v7()),
        3_000,
        e,
        "forestry/19.cover",
        Value::from("a"),
    )
    .unwrap();
    rb.set(
        OpId(Uuid::now_v7()),
        3_001,
        e,
        "forestry/19.cover",
        Value::from("b"),
    )
    .unwrap();
    rb.add(
        OpId(Uuid::now_v7()),
        3_002,
        e,
        "forestry/photos",
        Value::from("p2"),
    )
    .unwrap();
    settle(&db, &mut ra, 4_000).await;
    settle(&db, &mut rb, 4_000).await;
    settle(&db, &mut ra, 4_000).await;
    let stored = db.store.sync_entities(&[e]).await.unwrap().remove(0);
    assert!(stored.fields["forestry/19.cover"].conflict.is_some());
    assert_eq!(stored.elements("forestry/photos").len(), 2);
    for r in [&ra, &rb] {
        assert!(r.is_quiet());
        assert_eq!(r.confirmed().get(&e), Some(&stored));
    }
    assert_eq!(
        db.store
            .sync_conflicts(Visibility::Township(t.id), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Campaigns and mines

const CAMPAIGN: &str = "shanggao-2023";

async fn ensure_campaign_keeps_the_first_version(b: Backend) {
    let db = TestDb::new(b).await;
    assert!(matches!(
        db.store.get_campaign(CAMPAIGN).await,
        Err(StoreError::NotFound)
    ));
    let first = (
        String::from("专项整治"),
        String::from("[deadlines]\na = 1\n"),
    );
    assert_eq!(
        db.store
            .ensure_campaign(CAMPAIGN, &first.0, &first.1, NOW)
            .await
            .unwrap(),
        first
    );
    // Again, identical or different: the stored version is returned, never replaced.
    assert_eq!(
        db.store
            .ensure_campaign(CAMPAIGN, &first.0, &first.1, NOW)
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        db.store
            .ensure_campaign(CAMPAIGN, "另一个标题", "[deadlines]\na = 2\n", NOW)
            .await
            .unwrap(),
        first
    );
    assert_eq!(db.store.get_campaign(CAMPAIGN).await.unwrap(), first);
    // Another id is another campaign.
    let other = (String::from("T2"), String::from("S2"));
    assert_eq!(
        db.store
            .ensure_campaign("other", &other.0, &other.1, NOW)
            .await
            .unwrap(),
        other
    );
    assert_eq!(db.store.get_campaign("other").await.unwrap(), other);
    assert_eq!(db.store.get_campaign(CAMPAIGN).await.unwrap(), first);
}

fn mine(township: Uuid, name: &str, licence: &str) -> Mine {
    Mine {
        id: Uuid::now_v7(),
        name: name.into(),
        licence_no: licence.into(),
        holder: "某矿业有限公司".into(),
        holder_user_id: None,
        township_id: township,
        mineral: "石灰岩".into(),
        mining_method: "露天".into(),
        area_ha: None,
        boundary: None,
        campaign_id: CAMPAIGN.into(),
        facts: MineFacts::new(township),
        version: 1,
        created_at: 1,
        updated_at: 1,
    }
}

/// A township and the campaign, ready for mines.
async fn mine_setup(db: &TestDb) -> Township {
    db.store
        .ensure_campaign(CAMPAIGN, "专项整治", "source", NOW)
        .await
        .unwrap();
    town(db, "翰堂镇").await
}

async fn all_mine_ids(db: &TestDb) -> Vec<Uuid> {
    ids(&db.store.list_mines(None).await.unwrap())
}

fn ids(mines: &[Mine]) -> Vec<Uuid> {
    mines.iter().map(|m| m.id).collect()
}

async fn mines_round_trip_and_are_listed_by_name(b: Backend) {
    let db = TestDb::new(b).await;
    let t1 = mine_setup(&db).await;
    let t2 = town(&db, "泗溪镇").await;
    let mut c = mine(t1.id, "c 采石场", "C-3");
    c.area_ha = Some("12.3456".into());
    c.boundary = Some(serde_json::json!({
        "format": "gauss_kruger", "zone": 39,
        "points": [[3_140_000.5, 39_500_000.25], [3_140_100.0, 39_500_100.0]],
        "wgs84": [[28.36, 114.62]]
    }));
    c.facts.stage = Stage::DispositionApproved;
    c.facts.disposition = Some(Disposition::Cancel);
    c.facts.approved_on = chrono::NaiveDate::from_ymd_opt(2024, 3, 1);
    c.version = 4;
    c.created_at = 11;
    c.updated_at = 12;
    let a = mine(t2.id, "a 砖厂", "A-1");
    let b1 = mine(t1.id, "b 砂场", "B-2");
    // Same name: ordered by id, whatever the insertion order.
    let (d1, d2) = (mine(t1.id, "d 同名", "D-1"), mine(t1.id, "d 同名", "D-2"));
    db.store
        .create_mines(&[c.clone(), d2.clone(), a.clone(), b1.clone(), d1.clone()])
        .await
        .unwrap();
    db.store.create_mines(&[]).await.unwrap();
    for m in [&a, &b1, &c, &d1, &d2] {
        assert_eq!(&db.store.get_mine(m.id).await.unwrap(), m);
    }
    assert_eq!(
        ids(&db.store.list_mines(None).await.unwrap()),
        [a.id, b1.id, c.id, d1.id, d2.id]
    );
    assert_eq!(
        db.store.list_mines(Some(t1.id)).await.unwrap(),
        vec![b1.clone(), c.clone(), d1.clone(), d2.clone()]
    );
    assert_eq!(db.store.list_mines(Some(t2.id)).await.unwrap(), vec![a]);
    assert!(
        db.store
            .list_mines(Some(Uuid::now_v7()))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.store.get_mine(Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
}

async fn create_mines_is_all_or_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let existing = mine(t.id, "x", "L-1");
    db.store
        .create_mines(std::slice::from_ref(&existing))
        .await
        .unwrap();

    // A licence number already registered: a named conflict, and the batch's other mine is not
    // stored either.
    let constraint = conflict_on(
        db.store
            .create_mines(&[mine(t.id, "y", "L-2"), mine(t.id, "z", "L-1")])
            .await
            .unwrap_err(),
    );
    assert!(constraint.contains("licence_no"), "{constraint}");
    assert_eq!(all_mine_ids(&db).await, [existing.id]);
    // Twice in one batch.
    let constraint = conflict_on(
        db.store
            .create_mines(&[mine(t.id, "y", "L-3"), mine(t.id, "z", "L-3")])
            .await
            .unwrap_err(),
    );
    assert!(constraint.contains("licence_no"), "{constraint}");
    // An unknown township or campaign.
    conflict_on(
        db.store
            .create_mines(&[mine(t.id, "y", "L-4"), mine(Uuid::now_v7(), "z", "L-5")])
            .await
            .unwrap_err(),
    );
    let mut stray = mine(t.id, "z", "L-6");
    stray.campaign_id = "no-such-campaign".into();
    conflict_on(db.store.create_mines(&[stray]).await.unwrap_err());
    // A batch larger than one statement fails as a whole too.
    let mut many: Vec<Mine> = (0..600)
        .map(|i| mine(t.id, &format!("m{i:03}"), &format!("M-{i}")))
        .collect();
    many[599].licence_no = "M-0".into();
    conflict_on(db.store.create_mines(&many).await.unwrap_err());
    assert_eq!(all_mine_ids(&db).await, [existing.id]);
    many[599].licence_no = "M-599".into();
    db.store.create_mines(&many).await.unwrap();
    assert_eq!(db.store.list_mines(Some(t.id)).await.unwrap().len(), 601);
}

async fn mines_are_bound_to_their_holder(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let holder = db
        .store
        .create_user(&new_user("holder", Role::Operator))
        .await
        .unwrap();
    let other = db
        .store
        .create_user(&new_user("other", Role::Operator))
        .await
        .unwrap();
    let (m1, m2, m3) = (
        mine(t.id, "b", "L-1"),
        mine(t.id, "a", "L-2"),
        mine(t.id, "c", "L-3"),
    );
    db.store
        .create_mines(&[m1.clone(), m2.clone(), m3.clone()])
        .await
        .unwrap();
    assert!(
        db.store
            .list_mines_of_holder(holder.id)
            .await
            .unwrap()
            .is_empty()
    );
    db.store
        .set_mine_holder(m1.id, Some(holder.id), NOW)
        .await
        .unwrap();
    db.store
        .set_mine_holder(m2.id, Some(holder.id), NOW)
        .await
        .unwrap();
    db.store
        .set_mine_holder(m3.id, Some(other.id), NOW)
        .await
        .unwrap();
    // By name.
    assert_eq!(
        ids(&db.store.list_mines_of_holder(holder.id).await.unwrap()),
        [m2.id, m1.id]
    );
    assert_eq!(
        ids(&db.store.list_mines_of_holder(other.id).await.unwrap()),
        [m3.id]
    );
    let bound = db.store.get_mine(m1.id).await.unwrap();
    assert_eq!(bound.holder_user_id, Some(holder.id));
    assert!(bound.updated_at > m1.updated_at, "binding touches the mine");
    assert_eq!(bound.version, m1.version, "binding is no workflow step");
    // Rebinding and unbinding.
    db.store
        .set_mine_holder(m3.id, Some(holder.id), NOW)
        .await
        .unwrap();
    db.store.set_mine_holder(m1.id, None, NOW).await.unwrap();
    assert_eq!(
        ids(&db.store.list_mines_of_holder(holder.id).await.unwrap()),
        [m2.id, m3.id]
    );
    assert!(
        db.store
            .list_mines_of_holder(other.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.store.get_mine(m1.id).await.unwrap().holder_user_id, None);
    // An unknown mine is not found; an unknown account is refused.
    assert!(matches!(
        db.store
            .set_mine_holder(Uuid::now_v7(), Some(holder.id), NOW)
            .await,
        Err(StoreError::NotFound)
    ));
    conflict_on(
        db.store
            .set_mine_holder(m1.id, Some(Uuid::now_v7()), NOW)
            .await
            .unwrap_err(),
    );
    assert_eq!(db.store.get_mine(m1.id).await.unwrap().holder_user_id, None);
}

fn event(mine: Uuid, transition: &str, from: Stage, to: Stage, created_at: i64) -> MineEvent {
    MineEvent {
        id: Uuid::now_v7(),
        mine_id: mine,
        transition: transition.into(),
        from_stage: from.code().into(),
        to_stage: to.code().into(),
        actor_id: None,
        reason: "依据方案".into(),
        data: serde_json::json!({"transition": {"transition": transition}}),
        as_of: "2024-03-10".into(),
        recorded_on: "2024-03-10".into(),
        created_at,
    }
}

async fn audit_trails_are_listed_per_mine_and_township(b: Backend) {
    let db = TestDb::new(b).await;
    let t1 = mine_setup(&db).await;
    let t2 = town(&db, "泗溪镇").await;
    let a = mine(t1.id, "黄家山采石场", "C101");
    let z = mine(t2.id, "大岭石灰岩矿", "C102");
    db.store
        .create_mines(&[a.clone(), z.clone()])
        .await
        .unwrap();
    let mut facts = a.facts.clone();
    facts.stage = Stage::DispositionProposed;
    let steps = [
        (
            z.id,
            1,
            event(
                z.id,
                "propose",
                Stage::Registered,
                Stage::DispositionProposed,
                10,
            ),
        ),
        (
            a.id,
            1,
            event(
                a.id,
                "propose",
                Stage::Registered,
                Stage::DispositionProposed,
                20,
            ),
        ),
        (
            z.id,
            2,
            event(
                z.id,
                "refuse_proposal",
                Stage::DispositionProposed,
                Stage::Registered,
                30,
            ),
        ),
    ];
    for (mine, version, e) in &steps {
        db.store
            .transition_mine(*mine, *version, &facts, e, None)
            .await
            .unwrap();
    }
    let all = db
        .store
        .list_township_mine_events(None, "2099-12-31")
        .await
        .unwrap();
    let mut by_mine: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for e in &all {
        by_mine.entry(e.mine_id).or_default().push(e.id);
    }
    assert_eq!(all.len(), 3);
    assert_eq!(
        by_mine[&z.id],
        [steps[0].2.id, steps[2].2.id],
        "in order per mine"
    );
    let grouped: Vec<Uuid> = all.iter().map(|e| e.mine_id).collect();
    assert!(
        grouped.windows(3).all(|w| w[0] != w[2] || w[0] == w[1]),
        "grouped by mine: {grouped:?}"
    );
    let one = db
        .store
        .list_township_mine_events(Some(t1.id), "2099-12-31")
        .await
        .unwrap();
    assert_eq!(one, vec![steps[1].2.clone()]);
    // Steps dated after `until` are left out (the events here are dated 2024-03-10).
    let until = |d: &'static str| {
        let store = db.store.clone();
        async move {
            store
                .list_township_mine_events(None, d)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(until("2024-03-10").await, 3);
    assert_eq!(until("2024-03-09").await, 0);
}

/// The migration that made approval documents records: each flag becomes a record dated by
/// the audit trail (or by the approval), with number and issuer left empty.
async fn legacy_document_flags_migrate_to_records(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let m = mine(t.id, "河口砂石矿", "C201");
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();
    let mut e = event(
        m.id,
        "record_approval_document",
        Stage::DispositionApproved,
        Stage::DispositionApproved,
        10,
    );
    e.data = serde_json::json!({"transition": {"transition": "record_approval_document",
                                               "document": "development_plan"}});
    e.as_of = "2023-12-01".into();
    db.store
        .transition_mine(m.id, 1, &m.facts, &e, None)
        .await
        .unwrap();
    let mut legacy = serde_json::to_value(&m.facts).unwrap();
    legacy["documents"] = serde_json::json!(["development_plan", "two_in_one_plan"]);
    legacy["approved_on"] = serde_json::json!("2023-11-01");
    let legacy = legacy.to_string();
    let (dir, sql) = match b {
        Backend::Sqlite => ("sqlite", "update mines set facts_json = $1"),
        Backend::Postgres => ("postgres", "update mines set facts_json = $1"),
    };
    let path = format!(
        "{}/migrations/{dir}/20261206100000_plan_calendar.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    let migration = std::fs::read_to_string(path).unwrap();
    let documents_part =
        &migration[migration.find("-- 2.").unwrap()..migration.find("-- 3.").unwrap()];
    let url = db.settings.database_url.clone();
    match b {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(sql).bind(&legacy).execute(&pool).await.unwrap();
            sqlx::raw_sql(documents_part).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(sql).bind(&legacy).execute(&pool).await.unwrap();
            sqlx::raw_sql(documents_part).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let migrated = db.store.get_mine(m.id).await.unwrap().facts.documents;
    let dates: Vec<(String, String, String)> = migrated
        .iter()
        .map(|(k, r)| {
            (
                serde_json::to_value(k)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r.number.clone(),
                r.date.to_string(),
            )
        })
        .collect();
    assert_eq!(
        dates,
        [
            (
                "development_plan".into(),
                String::new(),
                "2023-12-01".into()
            ),
            ("two_in_one_plan".into(), String::new(), "2023-11-01".into()),
        ]
    );
    assert!(
        db.store
            .list_township_mine_events(None, "2099-12-31")
            .await
            .unwrap()
            .len()
            == 1
    );
}

async fn transition_mine_applies_only_at_the_expected_version(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let actor = db
        .store
        .create_user(&new_user("town", Role::TownshipOfficer))
        .await
        .unwrap();
    let m = mine(t.id, "黄家山采石场", "C001");
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();

    let mut proposed = m.facts.clone();
    proposed.stage = Stage::DispositionProposed;
    proposed.disposition = Some(Disposition::Continue);
    let mut e1 = event(
        m.id,
        "propose",
        Stage::Registered,
        Stage::DispositionProposed,
        500,
    );
    e1.actor_id = Some(actor.id);
    db.store
        .transition_mine(m.id, 1, &proposed, &e1, None)
        .await
        .unwrap();
    let after = Mine {
        facts: proposed.clone(),
        version: 2,
        updated_at: 500,
        ..m.clone()
    };
    assert_eq!(db.store.get_mine(m.id).await.unwrap(), after);
    assert_eq!(
        db.store.list_mine_events(m.id).await.unwrap(),
        vec![e1.clone()]
    );

    // Computed from the old version: refused, and nothing of it is stored.
    let mut approved = proposed.clone();
    approved.stage = Stage::DispositionApproved;
    let stale = event(
        m.id,
        "approve",
        Stage::DispositionProposed,
        Stage::DispositionApproved,
        600,
    );
    let constraint = conflict_on(
        db.store
            .transition_mine(m.id, 1, &approved, &stale, None)
            .await
            .unwrap_err(),
    );
    assert!(constraint.contains("version"), "{constraint}");
    assert_eq!(db.store.get_mine(m.id).await.unwrap(), after);
    assert_eq!(
        db.store.list_mine_events(m.id).await.unwrap(),
        vec![e1.clone()]
    );
    // A version from the future is as stale.
    conflict_on(
        db.store
            .transition_mine(m.id, 3, &approved, &stale, None)
            .await
            .unwrap_err(),
    );

    // At the current version it applies; events are listed by time (this one's clock was
    // behind), not by insertion.
    let e2 = event(
        m.id,
        "approve",
        Stage::DispositionProposed,
        Stage::DispositionApproved,
        450,
    );
    db.store
        .transition_mine(m.id, 2, &approved, &e2, None)
        .await
        .unwrap();
    let now = db.store.get_mine(m.id).await.unwrap();
    assert_eq!(
        (now.version, &now.facts, now.updated_at),
        (3, &approved, 450)
    );
    assert_eq!(db.store.list_mine_events(m.id).await.unwrap(), vec![e2, e1]);

    // An unknown mine: refused, nothing recorded.
    let ghost = Uuid::now_v7();
    assert!(
        db.store
            .transition_mine(
                ghost,
                1,
                &approved,
                &event(ghost, "approve", Stage::Registered, Stage::Registered, 1),
                None
            )
            .await
            .is_err()
    );
    assert!(db.store.list_mine_events(ghost).await.unwrap().is_empty());
}

async fn concurrent_transitions_from_one_version_let_exactly_one_through(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let m = mine(t.id, "黄家山采石场", "C001");
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();
    let id = m.id;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = db.store.clone();
        let mut facts = m.facts.clone();
        facts.stage = Stage::DispositionProposed;
        facts.extensions_granted = i;
        let e = event(
            m.id,
            "propose",
            Stage::Registered,
            Stage::DispositionProposed,
            100 + i64::from(i),
        );
        tasks.push(tokio::spawn(async move {
            let r = store.transition_mine(id, 1, &facts, &e, None).await;
            (r, facts, e)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (Ok(()), facts, e) => winners.push((facts, e)),
            (Err(StoreError::Conflict { .. }), _, _) => {}
            (Err(other), _, _) => panic!("a lost race must be a Conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let (facts, e) = winners.pop().unwrap();
    let now = db.store.get_mine(m.id).await.unwrap();
    assert_eq!((now.version, now.facts), (2, facts));
    assert_eq!(db.store.list_mine_events(m.id).await.unwrap(), vec![e]);
}

fn case_record(mine: Uuid, kind: &str, created_at: i64) -> CaseRecord {
    CaseRecord {
        id: Uuid::now_v7(),
        mine_id: mine,
        kind: kind.into(),
        data: serde_json::json!({"text": format!("{kind} 记录"), "n": created_at}),
        created_by: None,
        created_at,
    }
}

async fn case_records_are_listed_in_time_order(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let office = db
        .store
        .create_user(&new_user("office", Role::CountyOffice))
        .await
        .unwrap();
    let (m1, m2) = (mine(t.id, "a", "L-1"), mine(t.id, "b", "L-2"));
    db.store
        .create_mines(&[m1.clone(), m2.clone()])
        .await
        .unwrap();
    let mut study = case_record(m1.id, "collective_study", 300);
    study.created_by = Some(office.id);
    let referral = case_record(m1.id, "referral", 100);
    let announcement = case_record(m1.id, "announcement", 200);
    let elsewhere = case_record(m2.id, "referral", 50);
    for r in [&study, &referral, &announcement, &elsewhere] {
        db.store.add_case_record(r).await.unwrap();
    }
    assert_eq!(
        db.store.list_case_records(m1.id).await.unwrap(),
        vec![referral.clone(), announcement.clone(), study.clone()]
    );
    assert_eq!(
        db.store.list_case_records(m2.id).await.unwrap(),
        vec![elsewhere]
    );
    assert!(
        db.store
            .list_case_records(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
    // Refused: an unknown kind, an unknown mine, an unknown author, a reused id.
    assert!(
        db.store
            .add_case_record(&case_record(m1.id, "rumour", 400))
            .await
            .is_err()
    );
    conflict_on(
        db.store
            .add_case_record(&case_record(Uuid::now_v7(), "referral", 400))
            .await
            .unwrap_err(),
    );
    let mut anonymous = case_record(m1.id, "referral", 400);
    anonymous.created_by = Some(Uuid::now_v7());
    conflict_on(db.store.add_case_record(&anonymous).await.unwrap_err());
    conflict_on(db.store.add_case_record(&study).await.unwrap_err());
    assert_eq!(db.store.list_case_records(m1.id).await.unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Acceptance rounds and templates

fn new_round(mine: Uuid, template_ref: &str) -> AcceptanceRound {
    AcceptanceRound {
        id: Uuid::now_v7(),
        mine_id: mine,
        // Numbering is the store's job: whatever the caller passes is replaced.
        round_no: 9,
        previous_round_id: Some(Uuid::now_v7()),
        template_ref: template_ref.into(),
        disposition: "cancel".into(),
        created_by: None,
        created_at: 42,
    }
}

/// The record entity of a round, as `rounds::open` makes it: a server-made create op merged at
/// the commit sequence number the store gives.
fn round_record(scope: Option<Uuid>) -> RoundEntity<'static> {
    Box::new(move |round: &AcceptanceRound, commit_seq: u64| {
        let mut fields = BTreeMap::new();
        fields.insert("round_no".to_owned(), Value::from(round.round_no));
        fields.insert(
            "previous_round".to_owned(),
            round
                .previous_round_id
                .map_or(Value::Null, |p| Value::from(p.to_string())),
        );
        if let Some(t) = scope {
            fields.insert(SCOPE_FIELD.to_owned(), Value::from(t.to_string()));
        }
        let op = Op {
            id: OpId(Uuid::now_v7()),
            device: DeviceId(Uuid::nil()),
            seq: 0,
            hlc: Hlc::new(1, 0),
            entity: EntityId(round.id),
            body: OpBody::Create {
                entity_type: "acceptance_record".into(),
                fields,
            },
        };
        let ctx = MergeContext {
            policy: &AllowAll,
            commit_seq,
        };
        match merge(None, &op, &ctx) {
            Outcome::Applied(effect) => Ok((
                effect.state,
                Change {
                    commit_seq,
                    entity: op.entity,
                    entity_type: "acceptance_record".into(),
                    op: op.id,
                    device: op.device,
                    hlc: op.hlc,
                    body: effect.change,
                },
            )),
            other => Err(StoreError::Other(format!("{other:?}"))),
        }
    })
}

async fn rounds_are_numbered_per_mine_and_chained(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let (m1, m2) = (mine(t.id, "a", "L-1"), mine(t.id, "b", "L-2"));
    db.store
        .create_mines(&[m1.clone(), m2.clone()])
        .await
        .unwrap();
    let (store0, tid) = (db.store.clone(), t.id);
    let open = move |mine: Uuid, source: &'static str| {
        let round = new_round(mine, "county-2024@1");
        let store = store0.clone();
        async move {
            let input = round.clone();
            let got = store
                .create_round(round, source, Some(tid), round_record(Some(tid)))
                .await
                .unwrap();
            // Everything but the numbering is the caller's.
            assert_eq!(
                AcceptanceRound {
                    round_no: input.round_no,
                    previous_round_id: input.previous_round_id,
                    ..got.clone()
                },
                input
            );
            got
        }
    };
    let r1 = open(m1.id, "source one").await;
    let q1 = open(m2.id, "source two").await;
    let r2 = open(m1.id, "source two").await;
    let r3 = open(m1.id, "source two").await;
    assert_eq!((r1.round_no, r1.previous_round_id), (1, None));
    assert_eq!((r2.round_no, r2.previous_round_id), (2, Some(r1.id)));
    assert_eq!((r3.round_no, r3.previous_round_id), (3, Some(r2.id)));
    assert_eq!((q1.round_no, q1.previous_round_id), (1, None));
    assert_eq!(
        db.store.list_rounds(m1.id).await.unwrap(),
        vec![r1.clone(), r2.clone(), r3.clone()]
    );
    assert_eq!(db.store.list_rounds(m2.id).await.unwrap(), vec![q1]);
    assert!(
        db.store
            .list_rounds(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.store.get_round(r2.id).await.unwrap(), r2);
    assert!(matches!(
        db.store.get_round(Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
    // The record was made from the numbered round.
    let record = db
        .store
        .sync_entities(&[EntityId(r3.id)])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.value("round_no"), Some(&Value::from(3)));
    assert_eq!(
        record.value("previous_round"),
        Some(&Value::from(r2.id.to_string()))
    );
    // The template source is stored with the first round and kept.
    assert_eq!(
        db.store.get_template_source("county-2024@1").await.unwrap(),
        "source one"
    );
    assert_eq!(
        db.store.list_templates().await.unwrap(),
        vec![("county-2024@1".to_owned(), "source one".to_owned())]
    );
}

async fn a_round_record_joins_the_sync_feed_in_its_scope(b: Backend) {
    let db = TestDb::new(b).await;
    let t1 = mine_setup(&db).await;
    let t2 = town(&db, "泗溪镇").await;
    let m = mine(t1.id, "a", "L-1");
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();
    let dev = enrolled_device(&db, "office").await;
    let county = EntityId(Uuid::now_v7());
    push(&db, &[(dev, &[op(dev, 1, county, create_body(None))])]).await;

    let round = db
        .store
        .create_round(
            new_round(m.id, "t@1"),
            "S",
            Some(t1.id),
            round_record(Some(t1.id)),
        )
        .await
        .unwrap();
    let record = EntityId(round.id);
    // Next in the feed, visible where its scope says.
    let (all, end) = pull_all(&db, 0, 10, Visibility::All).await;
    assert_eq!(commit_seqs(&all), [1, 2]);
    assert_eq!(end, 2);
    assert_eq!(all[1].entity, record);
    assert!(matches!(all[1].body, ChangeBody::Created { .. }));
    let stored = db.store.sync_entities(&[record]).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].entity_type, "acceptance_record");
    let (seen, _) = pull_all(&db, 0, 10, Visibility::Township(t1.id)).await;
    assert_eq!(commit_seqs(&seen), [1, 2]);
    let (seen, end) = pull_all(&db, 0, 10, Visibility::Township(t2.id)).await;
    assert_eq!((commit_seqs(&seen), end), (vec![1], 2));

    // Sync continues after it and edits the record like any entity.
    let edit = [op(dev, 2, record, set_body("forestry/19.cover", "pass", 0))];
    let (loaded, writes) = push(&db, &[(dev, &edit)]).await;
    assert_eq!(loaded.next_commit_seq, 3);
    assert_eq!(loaded.entities.get(&record), Some(&stored[0]));
    assert!(matches!(
        writes.results[0][0],
        OpResult::Applied { commit_seq: 3, .. }
    ));
    let (seen, end) = pull_all(&db, 2, 10, Visibility::Township(t2.id)).await;
    assert_eq!((seen.len(), end), (0, 3));
    // And the next round comes after the sync's commit.
    let next = db
        .store
        .create_round(
            new_round(m.id, "t@1"),
            "S",
            Some(t1.id),
            round_record(Some(t1.id)),
        )
        .await
        .unwrap();
    let (seen, _) = pull_all(&db, 3, 10, Visibility::Township(t1.id)).await;
    assert_eq!(commit_seqs(&seen), [4]);
    assert_eq!(seen[0].entity, EntityId(next.id));
}

async fn a_failing_round_stores_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let m = mine(t.id, "a", "L-1");
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();
    let failing: RoundEntity<'static> =
        Box::new(|_: &AcceptanceRound, _: u64| Err(StoreError::Other("record refused".into())));
    let err = db
        .store
        .create_round(new_round(m.id, "t@1"), "S", Some(t.id), failing)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Other(ref m) if m == "record refused"),
        "{err:?}"
    );
    // Neither the round, nor its template, nor a record.
    assert!(db.store.list_rounds(m.id).await.unwrap().is_empty());
    assert!(matches!(
        db.store.get_template_source("t@1").await,
        Err(StoreError::NotFound)
    ));
    let page = db.store.sync_pull(0, 10, Visibility::All).await.unwrap();
    assert!(page.changes.is_empty());
    assert_eq!(page.cursor, 0);
    // A round of an unknown mine is refused (foreign key), without its template either.
    conflict_on(
        db.store
            .create_round(
                new_round(Uuid::now_v7(), "t@2"),
                "S",
                None,
                round_record(None),
            )
            .await
            .unwrap_err(),
    );
    assert!(db.store.list_templates().await.unwrap().is_empty());
    // The failures used no number.
    let round = db
        .store
        .create_round(
            new_round(m.id, "t@1"),
            "S",
            Some(t.id),
            round_record(Some(t.id)),
        )
        .await
        .unwrap();
    assert_eq!(round.round_no, 1);
    let (all, _) = pull_all(&db, 0, 10, Visibility::All).await;
    assert_eq!(commit_seqs(&all), [1]);
}

async fn parallel_rounds_get_distinct_numbers(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let m = mine(t.id, "a", "L-1");
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();
    let (id, tid) = (m.id, t.id);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_round(
                    new_round(id, "t@1"),
                    "S",
                    Some(tid),
                    round_record(Some(tid)),
                )
                .await
        }));
    }
    let mut rounds = Vec::new();
    for task in tasks {
        rounds.push(task.await.unwrap().unwrap());
    }
    rounds.sort_by_key(|r| r.round_no);
    assert_eq!(
        rounds.iter().map(|r| r.round_no).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    for pair in rounds.windows(2) {
        assert_eq!(pair[1].previous_round_id, Some(pair[0].id));
    }
    assert_eq!(db.store.list_rounds(m.id).await.unwrap(), rounds);
    let (all, _) = pull_all(&db, 0, 100, Visibility::All).await;
    assert_eq!(commit_seqs(&all), (1..=6).collect::<Vec<_>>());
}

async fn ensure_template_keeps_the_first_source(b: Backend) {
    let db = TestDb::new(b).await;
    assert!(db.store.list_templates().await.unwrap().is_empty());
    assert!(matches!(
        db.store.get_template_source("b@1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        db.store.ensure_template("b@1", "B one", NOW).await.unwrap(),
        "B one"
    );
    // Versions are immutable: the stored source is returned, so the caller sees the clash.
    assert_eq!(
        db.store
            .ensure_template("b@1", "B changed", NOW)
            .await
            .unwrap(),
        "B one"
    );
    assert_eq!(
        db.store.ensure_template("b@1", "B one", NOW).await.unwrap(),
        "B one"
    );
    assert_eq!(
        db.store.ensure_template("b@2", "B two", NOW).await.unwrap(),
        "B two"
    );
    assert_eq!(
        db.store.ensure_template("a@1", "A one", NOW).await.unwrap(),
        "A one"
    );
    assert_eq!(db.store.get_template_source("b@1").await.unwrap(), "B one");
    assert!(matches!(
        db.store.get_template_source("b@3").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        db.store.list_templates().await.unwrap(),
        vec![
            ("a@1".to_owned(), "A one".to_owned()),
            ("b@1".to_owned(), "B one".to_owned()),
            ("b@2".to_owned(), "B two".to_owned()),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Coverage

/// Method names declared in the `pub trait …Store` blocks of one source file.
fn store_trait_methods(source: &str) -> Vec<String> {
    // Comments may hold braces or `fn`; drop them first.
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("pub trait ") {
        let after = &rest[at + "pub trait ".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = after.find('{') else { break };
        // The trait's body, up to its matching brace.
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        if name.ends_with("Store") {
            let body = &after[open..end];
            for (i, _) in body.match_indices("fn ") {
                let preceded = body[..i]
                    .chars()
                    .last()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                if !preceded {
                    continue;
                }
                let method: String = body[i + 3..]
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !method.is_empty() {
                    names.push(method);
                }
            }
        }
        rest = &after[end..];
    }
    names
}

/// An upload of a fresh user's device for a fresh round.
async fn new_upload(db: &TestDb) -> Upload {
    let t = mine_setup(db).await;
    let m = mine(t.id, "upload", &format!("L-{}", Uuid::now_v7()));
    db.store
        .create_mines(std::slice::from_ref(&m))
        .await
        .unwrap();
    let round = db
        .store
        .create_round(
            new_round(m.id, "county-2024@1"),
            "source",
            Some(t.id),
            round_record(Some(t.id)),
        )
        .await
        .unwrap();
    let user = db
        .store
        .create_user(&new_user(
            &format!("u{}", Uuid::now_v7().simple()),
            Role::Expert,
        ))
        .await
        .unwrap();
    let d = device(user.id);
    db.store.create_device(&d).await.unwrap();
    Upload {
        id: Uuid::now_v7(),
        user_id: user.id,
        device_id: d.id,
        record_id: Some(round.id),
        mine_id: None,
        sha256: "ab".repeat(32),
        size: 100,
        content_type: "image/jpeg".into(),
        received: 0,
        created_at: NOW,
        updated_at: NOW,
        completed_at: None,
    }
}

async fn uploads_advance_only_from_the_expected_offset(b: Backend) {
    let db = TestDb::new(b).await;
    let up = new_upload(&db).await;
    db.store.create_upload(&up).await.unwrap();
    assert_eq!(db.store.get_upload(up.id).await.unwrap(), up);
    assert!(
        db.store
            .advance_upload(up.id, 0, 40, NOW + 1)
            .await
            .unwrap()
    );
    // A duplicate of that chunk, and a chunk at a stale offset, change nothing.
    assert!(
        !db.store
            .advance_upload(up.id, 0, 40, NOW + 2)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .advance_upload(up.id, 10, 50, NOW + 2)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .advance_upload(up.id, 40, 100, NOW + 3)
            .await
            .unwrap()
    );
    let got = db.store.get_upload(up.id).await.unwrap();
    assert_eq!((got.received, got.updated_at), (100, NOW + 3));
    assert!(db.store.complete_upload(up.id, NOW + 4).await.unwrap());
    // Completing again keeps the first time; a complete upload takes no more bytes.
    assert!(db.store.complete_upload(up.id, NOW + 5).await.unwrap());
    assert!(
        !db.store
            .advance_upload(up.id, 100, 110, NOW + 6)
            .await
            .unwrap()
    );
    let got = db.store.get_upload(up.id).await.unwrap();
    assert_eq!((got.received, got.completed_at), (100, Some(NOW + 4)));
    assert!(matches!(
        db.store.get_upload(Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
    assert!(!db.store.complete_upload(Uuid::now_v7(), NOW).await.unwrap());
    assert!(
        !db.store
            .advance_upload(Uuid::now_v7(), 0, 1, NOW)
            .await
            .unwrap()
    );
    // An upload names an existing record.
    let orphan = Upload {
        id: Uuid::now_v7(),
        record_id: Some(Uuid::now_v7()),
        ..up
    };
    assert!(matches!(
        db.store.create_upload(&orphan).await,
        Err(StoreError::Conflict { .. })
    ));
}

async fn parallel_chunks_at_one_offset_let_exactly_one_through(b: Backend) {
    let db = TestDb::new(b).await;
    let up = new_upload(&db).await;
    db.store.create_upload(&up).await.unwrap();
    let tasks: Vec<_> = (1..=8u64)
        .map(|n| {
            let store = db.store.clone();
            tokio::spawn(async move { store.advance_upload(up.id, 0, n * 10, NOW).await })
        })
        .collect();
    let mut through = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            through += 1;
        }
    }
    assert_eq!(through, 1);
    let got = db.store.get_upload(up.id).await.unwrap();
    assert!(got.received > 0 && got.received % 10 == 0);
}

fn photo_row(sha: &str) -> Photo {
    let thumb = |c: char, w: u32, h: u32| StoredThumb {
        sha256: c.to_string().repeat(64),
        bytes: u64::from(w),
        width: w,
        height: h,
    };
    Photo {
        sha256: sha.into(),
        content_type: "image/jpeg".into(),
        bytes: 3_456_789,
        width: 4000,
        height: 3000,
        exif: r#"{"lat":28.2,"lon":114.8,"warnings":[]}"#.into(),
        small: thumb('1', 320, 240),
        large: thumb('2', 1280, 960),
        created_at: NOW,
    }
}

/// Another round of the mine of round `of`.
async fn next_round(db: &TestDb, of: Uuid) -> Uuid {
    let mine = db.store.get_round(of).await.unwrap().mine_id;
    let town = db.store.get_mine(mine).await.unwrap().township_id;
    db.store
        .create_round(
            new_round(mine, "county-2024@1"),
            "source",
            Some(town),
            round_record(Some(town)),
        )
        .await
        .unwrap()
        .id
}

async fn photos_are_kept_once_and_linked_to_each_record(b: Backend) {
    let db = TestDb::new(b).await;
    let first = new_upload(&db).await.record_id.unwrap();
    let second = next_round(&db, first).await;
    let p = photo_row(&"c".repeat(64));
    assert!(matches!(
        db.store.get_photo(&p.sha256).await,
        Err(StoreError::NotFound)
    ));
    db.store.add_photo(&p, first, NOW).await.unwrap();
    assert_eq!(db.store.get_photo(&p.sha256).await.unwrap(), p);
    // Again (a retried finish), with other facts: the first row stays, one link.
    let mut later = p.clone();
    later.created_at = NOW + 9;
    later.exif = "{}".into();
    db.store.add_photo(&later, first, NOW + 9).await.unwrap();
    assert_eq!(db.store.get_photo(&p.sha256).await.unwrap(), p);
    assert_eq!(
        db.store.list_photo_records(&p.sha256).await.unwrap(),
        vec![first]
    );
    // Another record links the held photo.
    assert!(
        db.store
            .link_photo(&p.sha256, second, NOW + 1)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .link_photo(&p.sha256, second, NOW + 2)
            .await
            .unwrap()
    );
    assert_eq!(
        db.store.list_photo_records(&p.sha256).await.unwrap(),
        vec![first, second]
    );
    // A hash not held links nothing.
    assert!(
        !db.store
            .link_photo(&"d".repeat(64), second, NOW)
            .await
            .unwrap()
    );
    // A record lists its photos in the order they were linked.
    let q = photo_row(&"e".repeat(64));
    db.store.add_photo(&q, second, NOW + 5).await.unwrap();
    assert_eq!(
        db.store.list_record_photos(second).await.unwrap(),
        vec![p.clone(), q.clone()]
    );
    assert_eq!(db.store.list_record_photos(first).await.unwrap(), vec![p]);
    assert!(
        db.store
            .list_record_photos(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
    // A link names an existing record.
    assert!(matches!(
        db.store.add_photo(&q, Uuid::now_v7(), NOW).await,
        Err(StoreError::Conflict { .. })
    ));
}

async fn parallel_adds_of_one_photo_keep_one_row(b: Backend) {
    let db = TestDb::new(b).await;
    let record = new_upload(&db).await.record_id.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let store = Arc::clone(&db.store);
            let mut p = photo_row(&"f".repeat(64));
            p.created_at = NOW + n;
            tokio::spawn(async move { store.add_photo(&p, record, NOW + n).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        db.store.list_photo_records(&"f".repeat(64)).await.unwrap(),
        vec![record]
    );
    assert_eq!(db.store.list_record_photos(record).await.unwrap().len(), 1);
}

/// An upload for a mine of the user and device of `up` (a record's upload).
async fn mine_upload(db: &TestDb, up: &Upload, mine: Uuid, sha: &str, at: i64) -> Upload {
    let u = Upload {
        id: Uuid::now_v7(),
        record_id: None,
        mine_id: Some(mine),
        sha256: sha.into(),
        content_type: "application/pdf".into(),
        created_at: at,
        updated_at: at,
        ..up.clone()
    };
    db.store.create_upload(&u).await.unwrap();
    u
}

async fn uploads_for_a_mine_are_found_by_mine_and_hash(b: Backend) {
    let db = TestDb::new(b).await;
    let up = new_upload(&db).await;
    let mine = db
        .store
        .get_round(up.record_id.unwrap())
        .await
        .unwrap()
        .mine_id;
    let sha = "9".repeat(64);
    assert_eq!(db.store.find_mine_upload(mine, &sha).await.unwrap(), None);
    // A record's upload of that hash is not the mine's.
    db.store
        .create_upload(&Upload {
            sha256: sha.clone(),
            ..up.clone()
        })
        .await
        .unwrap();
    assert_eq!(db.store.find_mine_upload(mine, &sha).await.unwrap(), None);
    // Two attempts: the one that got furthest is found, the complete one before all others.
    let first = mine_upload(&db, &up, mine, &sha, NOW).await;
    let second = mine_upload(&db, &up, mine, &sha, NOW + 1).await;
    assert_eq!(
        db.store.find_mine_upload(mine, &sha).await.unwrap(),
        Some(second.clone())
    );
    assert!(
        db.store
            .advance_upload(first.id, 0, 100, NOW + 2)
            .await
            .unwrap()
    );
    assert_eq!(
        db.store
            .find_mine_upload(mine, &sha)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(first.id)
    );
    assert!(
        db.store
            .advance_upload(second.id, 0, 100, NOW + 3)
            .await
            .unwrap()
    );
    assert!(db.store.complete_upload(second.id, NOW + 4).await.unwrap());
    let found = db
        .store
        .find_mine_upload(mine, &sha)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.completed_at), (second.id, Some(NOW + 4)));
    assert_eq!(found.mine_id, Some(mine));
    assert_eq!(found.record_id, None);
    // Another mine, another hash: nothing.
    assert_eq!(
        db.store
            .find_mine_upload(Uuid::now_v7(), &sha)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.store
            .find_mine_upload(mine, &"8".repeat(64))
            .await
            .unwrap(),
        None
    );
    // An upload is for a record or a mine, never both, never neither.
    for (record_id, mine_id) in [(up.record_id, Some(mine)), (None, None)] {
        let bad = Upload {
            id: Uuid::now_v7(),
            record_id,
            mine_id,
            ..up.clone()
        };
        assert!(db.store.create_upload(&bad).await.is_err());
    }
    // A mine's upload names an existing mine.
    let orphan = Upload {
        id: Uuid::now_v7(),
        record_id: None,
        mine_id: Some(Uuid::now_v7()),
        ..up
    };
    assert!(matches!(
        db.store.create_upload(&orphan).await,
        Err(StoreError::Conflict { .. })
    ));
}

fn evidence_entry(mine: Uuid, user: Uuid, sha: &str, at: i64) -> MineEvidence {
    MineEvidence {
        id: Uuid::now_v7(),
        mine_id: mine,
        kind: "photo".into(),
        sha256: sha.into(),
        content_type: "image/jpeg".into(),
        size: 3_456_789,
        description: "边坡已削坡并覆土复绿".into(),
        items: vec!["3.1".into(), "3.4".into()],
        deadline_key: Some("reinspection".into()),
        created_by: user,
        created_at: at,
    }
}

async fn holder_evidence_is_listed_per_mine_and_found_by_blob(b: Backend) {
    let db = TestDb::new(b).await;
    let t = mine_setup(&db).await;
    let (m1, m2) = (mine(t.id, "一矿", "EV-1"), mine(t.id, "二矿", "EV-2"));
    db.store
        .create_mines(&[m1.clone(), m2.clone()])
        .await
        .unwrap();
    let holder = db
        .store
        .create_user(&new_user("holder", Role::Operator))
        .await
        .unwrap();
    // A holder's photo is kept without a record: no links, and kept once.
    let p = photo_row(&"7".repeat(64));
    db.store.keep_photo(&p).await.unwrap();
    let mut again = p.clone();
    again.exif = "{}".into();
    db.store.keep_photo(&again).await.unwrap();
    assert_eq!(db.store.get_photo(&p.sha256).await.unwrap(), p);
    assert!(
        db.store
            .list_photo_records(&p.sha256)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.store
            .list_evidence_mines(&p.sha256)
            .await
            .unwrap()
            .is_empty()
    );

    let a = evidence_entry(m1.id, holder.id, &p.sha256, NOW + 2);
    let mut doc = evidence_entry(m1.id, holder.id, &"6".repeat(64), NOW + 1);
    doc.kind = "document".into();
    doc.content_type = "application/pdf".into();
    doc.items = Vec::new();
    doc.deadline_key = None;
    let c = evidence_entry(m2.id, holder.id, &p.sha256, NOW);
    for e in [&a, &doc, &c] {
        db.store.add_mine_evidence(e).await.unwrap();
    }
    // Filing order per mine; an entry round-trips (items, no deadline).
    assert_eq!(
        db.store.list_mine_evidence(m1.id).await.unwrap(),
        vec![doc.clone(), a.clone()]
    );
    assert_eq!(
        db.store.list_mine_evidence(m2.id).await.unwrap(),
        vec![c.clone()]
    );
    assert!(
        db.store
            .list_mine_evidence(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.store.get_mine_evidence(m1.id, doc.id).await.unwrap(),
        doc
    );
    // Another mine's entry is not found under this one.
    assert!(matches!(
        db.store.get_mine_evidence(m1.id, c.id).await,
        Err(StoreError::NotFound)
    ));
    // The mines a blob is evidence of, each once, by first filing.
    assert_eq!(
        db.store.list_evidence_mines(&p.sha256).await.unwrap(),
        vec![m2.id, m1.id]
    );
    db.store
        .add_mine_evidence(&evidence_entry(m2.id, holder.id, &p.sha256, NOW + 9))
        .await
        .unwrap();
    assert_eq!(
        db.store.list_evidence_mines(&p.sha256).await.unwrap(),
        vec![m2.id, m1.id]
    );
    // An entry names an existing mine and user.
    for bad in [
        evidence_entry(Uuid::now_v7(), holder.id, &p.sha256, NOW),
        evidence_entry(m1.id, Uuid::now_v7(), &p.sha256, NOW),
    ] {
        assert!(matches!(
            db.store.add_mine_evidence(&bad).await,
            Err(StoreError::Conflict { .. })
        ));
    }
}

#[test]
fn every_store_method_is_covered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut methods = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            methods.extend(store_trait_methods(
                &std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    // The parser must see the trait at all.
    for known in ["migrate", "create_user", "sync_batch", "list_templates"] {
        assert!(
            methods.iter().any(|m| m == known),
            "no `{known}` found in the Store trait(s): {methods:?}"
        );
    }
    let this = include_str!("store_conformance.rs");
    let code: String = this
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<&String> = methods
        .iter()
        .filter(|m| !code.contains(&format!(".{m}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "Store methods without a conformance test: {missing:?}"
    );
}

async fn server_writes_join_the_feed_after_device_pushes(b: Backend) {
    let db = TestDb::new(b).await;
    let dev = enrolled_device(&db, "office").await;
    let township = Uuid::now_v7();
    let e = EntityId(Uuid::now_v7());
    push(&db, &[(dev, &[op(dev, 1, e, create_body(Some(township)))])]).await;
    let missing = EntityId(Uuid::now_v7());
    let field = "photos/".to_owned() + &"ab".repeat(32);
    let f = field.clone();
    let writes = db
        .store
        .sync_server_write(
            &[e, missing],
            7,
            Box::new(move |loaded: SyncLoaded| {
                assert_eq!(loaded.entities.keys().copied().collect::<Vec<_>>(), [e]);
                assert_eq!(loaded.next_commit_seq, 2);
                let server = Op {
                    id: OpId(Uuid::now_v7()),
                    device: DeviceId(Uuid::nil()),
                    seq: 0,
                    hlc: Hlc::new(1_700_000_000_500, 0),
                    entity: e,
                    body: set_body(&f, "received", 0),
                };
                let ctx = MergeContext {
                    policy: &AllowAll,
                    commit_seq: 2,
                };
                let Outcome::Applied(effect) = merge(loaded.entities.get(&e), &server, &ctx) else {
                    panic!("the server's set applies");
                };
                SyncWrites {
                    entities: vec![EntityRow {
                        state: effect.state,
                        scope: Some(township),
                        last_commit: 2,
                    }],
                    changes: vec![ChangeRow {
                        change: Change {
                            commit_seq: 2,
                            entity: e,
                            entity_type: "acceptance_record".into(),
                            op: server.id,
                            device: server.device,
                            hlc: server.hlc,
                            body: effect.change,
                        },
                        scope: Some(township),
                    }],
                    ..SyncWrites::default()
                }
            }),
        )
        .await
        .unwrap();
    assert_eq!(writes.changes.len(), 1);
    let state = db.store.sync_entities(&[e]).await.unwrap().remove(0);
    assert_eq!(state.value(&field), Some(&Value::from("received")));
    // In the feed after the device's change, visible in the entity's township only.
    let page = db
        .store
        .sync_pull(1, 10, Visibility::Township(township))
        .await
        .unwrap();
    let changes = parse_changes(&page);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].commit_seq, 2);
    let other = db
        .store
        .sync_pull(1, 10, Visibility::Township(Uuid::now_v7()))
        .await
        .unwrap();
    assert!(parse_changes(&other).is_empty());
    // A device's next push continues the sequence after the server's change.
    let (loaded, _) = push(
        &db,
        &[(dev, &[op(dev, 2, e, set_body("mine_name", "改", 1))])],
    )
    .await;
    assert_eq!(loaded.next_commit_seq, 3);
    assert_eq!(
        loaded.entities[&e].value(&field),
        Some(&Value::from("received"))
    );
    // Writing nothing stores nothing.
    db.store
        .sync_server_write(&[e], 8, Box::new(|_| SyncWrites::default()))
        .await
        .unwrap();
    assert_eq!(
        db.store
            .sync_pull(0, 10, Visibility::All)
            .await
            .unwrap()
            .cursor,
        3
    );
}

both_backends!(
    audit_trails_are_listed_per_mine_and_township,
    legacy_document_flags_migrate_to_records,
    a_transition_and_its_case_record_are_one_transaction,
    migrations_seed_departments_and_specialties,
    migrating_twice_is_harmless,
    user_round_trips_with_scope,
    duplicate_username_is_a_named_conflict,
    unknown_department_is_refused_by_foreign_key,
    missing_user_is_not_found,
    disabling_a_user_shows_in_principal_status,
    principal_status_flags_revoked_and_foreign_devices,
    devices_are_listed_per_user,
    refresh_token_is_used_once,
    revoking_a_family_revokes_all_its_tokens_only,
    revoking_a_device_revokes_its_refresh_tokens,
    login_attempts_are_reserved_up_to_each_limit,
    parallel_reservations_never_pass_the_limit,
    first_signing_key_wins,
    parallel_first_starts_agree_on_one_signing_key,
    ping_answers,
    departments_and_specialties_are_listed_in_order,
    townships_are_listed_by_name_and_names_are_unique,
    users_are_listed_by_username_and_passwords_change,
    devices_keep_their_first_revocation,
    refresh_token_hashes_are_unique,
    releasing_an_attempt_never_goes_below_zero,
    sync_batch_stores_what_process_decides,
    sync_batch_loads_retries_and_series,
    sync_pull_pages_in_commit_order,
    server_writes_join_the_feed_after_device_pushes,
    sync_pull_filters_by_visibility,
    sync_conflicts_follow_each_batch_and_visibility,
    large_sync_groups_are_written_in_chunks,
    a_failing_sync_batch_stores_nothing,
    a_reused_op_id_is_a_named_conflict,
    replicas_converge_through_the_store,
    ensure_campaign_keeps_the_first_version,
    mines_round_trip_and_are_listed_by_name,
    create_mines_is_all_or_nothing,
    mines_are_bound_to_their_holder,
    transition_mine_applies_only_at_the_expected_version,
    concurrent_transitions_from_one_version_let_exactly_one_through,
    case_records_are_listed_in_time_order,
    rounds_are_numbered_per_mine_and_chained,
    a_round_record_joins_the_sync_feed_in_its_scope,
    a_failing_round_stores_nothing,
    parallel_rounds_get_distinct_numbers,
    ensure_template_keeps_the_first_source,
    uploads_advance_only_from_the_expected_offset,
    parallel_chunks_at_one_offset_let_exactly_one_through,
    photos_are_kept_once_and_linked_to_each_record,
    parallel_adds_of_one_photo_keep_one_row,
    uploads_for_a_mine_are_found_by_mine_and_hash,
    holder_evidence_is_listed_per_mine_and_found_by_blob,
);
