//! The store conformance suite: every test runs against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestDb};
use uuid::Uuid;
use yanshou_server::{
    model::{Device, NewUser, Role, Township},
    store::{RefreshToken, SigningKey, StoreError},
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
        ["国资办", "财政局", "检察院", "法院", "纪委监委"]
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
    assert_eq!(db.store.list_departments().await.unwrap().len(), 15);
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
    assert_eq!(s.reserve_login_attempt(&both).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&both).await.unwrap(), None);
    // The account's counter is full: refused, naming it, and nothing else counted.
    assert_eq!(s.reserve_login_attempt(&both).await.unwrap(), Some(0));
    let addr = [("addr:x", 1000, 3)];
    assert_eq!(s.reserve_login_attempt(&addr).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&addr).await.unwrap(), Some(0));
    // A correct password gives its reservation back.
    s.release_login_attempt(&[("account:a", 1000)])
        .await
        .unwrap();
    let account = [("account:a", 1000, 2)];
    assert_eq!(s.reserve_login_attempt(&account).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&account).await.unwrap(), Some(0));
    // A new window starts from zero; keys are independent; clearing forgets every window.
    let later = [("account:a", 2000, 1)];
    assert_eq!(s.reserve_login_attempt(&later).await.unwrap(), None);
    assert_eq!(s.reserve_login_attempt(&later).await.unwrap(), Some(0));
    assert_eq!(
        s.reserve_login_attempt(&[("account:b", 2000, 1)])
            .await
            .unwrap(),
        None
    );
    s.clear_login_failures("account:a").await.unwrap();
    assert_eq!(s.reserve_login_attempt(&later).await.unwrap(), None);
    // A limit of zero refuses at once.
    assert_eq!(
        s.reserve_login_attempt(&[("account:c", 0, 0)])
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
            store.reserve_login_attempt(&[("addr:1.2.3.4", 0, 5)]).await
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
    use yanshou_server::model::{CaseRecord, Mine, MineEvent};
    let db = TestDb::new(b).await;
    let town = Township {
        id: Uuid::now_v7(),
        name: "翰堂镇".into(),
        kind: "town".into(),
        created_at: 1,
    };
    db.store.create_township(&town).await.unwrap();
    db.store
        .ensure_campaign("c", "campaign", "source")
        .await
        .unwrap();
    let facts = yanshou_server::model::MineFacts::new(town.id);
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

both_backends!(
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
    ping_answers,
);
