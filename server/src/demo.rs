//! The demo county: a fresh SQLite database seeded with Shanggao's townships and forest farms and
//! one user per role (an inspector for every inspecting department), so a newcomer can log in and
//! look around. Demo data only; a real county enters its own townships and users.

use rand::{Rng, distributions::Alphanumeric};

use crate::{
    accounts::{self, NewUserInput},
    error::Result,
    store::{Role, Store, Township, now_ms},
};

/// Shanggao County (上高县, Yichun, Jiangxi): sub-district, towns, townships and forest farms
/// (demo data; the real list is configurable through the API).
pub const SHANGGAO_TOWNSHIPS: &[(&str, &str)] = &[
    ("敖阳街道", "subdistrict"),
    ("锦江镇", "town"),
    ("泗溪镇", "town"),
    ("翰堂镇", "town"),
    ("南港镇", "town"),
    ("田心镇", "town"),
    ("徐家渡镇", "town"),
    ("蒙山镇", "town"),
    ("新界埠镇", "town"),
    ("芦洲乡", "township"),
    ("塔下乡", "township"),
    ("镇渡乡", "township"),
    ("墨山乡", "township"),
    ("野市乡", "township"),
    ("上甘山林场", "forest_farm"),
    ("五里岭林场", "forest_farm"),
    ("蒙山林场", "forest_farm"),
];

/// A demo account, as printed at start.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// Seed `store` (freshly migrated) and return the accounts and their shared password.
pub async fn seed(store: &dyn Store) -> Result<(Vec<DemoUser>, String)> {
    let password: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    let mut first_township = None;
    for (name, kind) in SHANGGAO_TOWNSHIPS {
        let t = Township {
            id: uuid::Uuid::now_v7(),
            name: (*name).into(),
            kind: (*kind).into(),
            created_at: now_ms(),
        };
        store.create_township(&t).await?;
        first_township.get_or_insert(t.id);
    }
    let township = store
        .list_townships()
        .await?
        .into_iter()
        .find(|t| t.name == "泗溪镇")
        .map(|t| t.id)
        .or(first_township);

    let mut plan: Vec<NewUserInput> = vec![
        input("admin", "系统管理员", Role::Admin),
        input("office", "县政府办 张主任", Role::CountyOffice),
        NewUserInput {
            township_id: township,
            ..input("sixi", "泗溪镇 李镇长", Role::TownshipOfficer)
        },
        input("holder", "采矿权人 王老板", Role::Operator),
    ];
    for d in store.list_departments().await? {
        if !d.observer {
            plan.push(NewUserInput {
                department: Some(d.code.clone()),
                ..input(
                    &format!("insp.{}", d.code),
                    &format!("{} 检查员", d.name),
                    Role::DepartmentInspector,
                )
            });
        }
    }
    for s in store.list_specialties().await? {
        plan.push(NewUserInput {
            specialty: Some(s.code.clone()),
            ..input(
                &format!("expert.{}", s.code),
                &format!("{}专家", s.name),
                Role::Expert,
            )
        });
    }
    let mut users = Vec::new();
    for mut u in plan {
        u.password = password.clone();
        let created = accounts::create_user(store, u).await?;
        users.push(DemoUser {
            username: created.username,
            display_name: created.display_name,
            role: created.role,
        });
    }
    Ok((users, password))
}

fn input(username: &str, display_name: &str, role: Role) -> NewUserInput {
    NewUserInput {
        username: username.into(),
        display_name: display_name.into(),
        password: String::new(),
        role,
        department: None,
        township_id: None,
        specialty: None,
    }
}
