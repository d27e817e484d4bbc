//! The demo county: a fresh SQLite database seeded with Shanggao's townships and forest farms,
//! one user per role (an inspector for every inspecting department) and fourteen sample mines
//! walked through the default campaign to various stages (some overdue, one with a closure
//! decision of its own later deadline, one announced with its notice, a cancelled one
//! spot-checked in its maintenance years, each with its county leader), so a newcomer can log in
//! and look around. Demo data only; a real county enters its own townships, users and mines.

use rand::{Rng, distributions::Alphanumeric};

use std::collections::BTreeMap;

use sync_protocol::{EntityId, Value};
use uuid::Uuid;

use crate::{
    AppState,
    error::Result,
    identity::{
        accounts::{self, NewUserInput},
        auth::AuthUser,
    },
    model::{CaseRecord, Disposition, Mine, MineEvent, MineFacts, Role, Township, User},
    rules::{
        template::{AnswerKind, FieldRole},
        workflow::{self, Actor, Transition},
    },
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

/// Seed the state's store (freshly migrated), dated by its clock, and return the accounts and
/// their shared password.
pub async fn seed(state: &AppState) -> Result<(Vec<DemoUser>, String)> {
    let store = state.store.as_ref();
    let now = state.clock.now_ms();
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
            created_at: now,
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
        input(
            "holder",
            "采矿权人 王老板（上高县黄家山建材厂）",
            Role::Operator,
        ),
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
    let mut office_id = None;
    let mut holder_id = None;
    for mut u in plan {
        u.password = password.clone();
        let created = accounts::create_user(store, u, now).await?;
        match created.role {
            Role::CountyOffice => office_id = Some(created.id),
            Role::Operator => holder_id = Some(created.id),
            _ => {}
        }
        users.push(DemoUser {
            username: created.username,
            display_name: created.display_name,
            role: created.role,
        });
    }
    seed_mines(state, office_id, holder_id).await?;
    if let Some(holder) = holder_id {
        seed_holder_evidence(state, holder).await?;
    }
    Ok((users, password))
}

/// The demo holder's evidence for their mine: a photo of the restored slope and the
/// restoration plan (a one-page PDF), filed as the holder would after uploading them.
async fn seed_holder_evidence(state: &AppState, holder: uuid::Uuid) -> Result<()> {
    let Some(mine) = state
        .store
        .list_mines_of_holder(holder)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let now = state.clock.now_ms();
    let jpeg = crate::photos::sample::sample_jpeg(640, 480, None, 85);
    let photo = crate::photos::evidence::ingest_off_thread(jpeg.clone().into()).await?;
    crate::photos::evidence::keep_unlinked(state, &photo).await?;
    state.blobs.put(jpeg.clone().into()).await?;
    let pdf = demo_pdf("Huangjiashan quarry: ecological restoration plan (demo)");
    let pdf_hash = state.blobs.put(pdf.clone().into()).await?;
    let entries = [
        (
            "document",
            pdf_hash.hex(),
            crate::photos::upload::DOCUMENT_CONTENT_TYPE,
            pdf.len(),
            "黄家山采石场生态修复方案（经县自然资源局审查）",
            Vec::new(),
            Some("restoration_plan"),
        ),
        (
            "photo",
            photo.sha256.clone(),
            photo.kind.media_type(),
            jpeg.len(),
            "采场边坡削坡后覆土复绿，排水沟已修通",
            vec!["19.1".to_owned()],
            None,
        ),
    ];
    for (i, (kind, sha256, content_type, size, description, items, deadline)) in
        entries.into_iter().enumerate()
    {
        state
            .store
            .add_mine_evidence(&crate::store::MineEvidence {
                id: uuid::Uuid::now_v7(),
                mine_id: mine.id,
                kind: kind.into(),
                sha256,
                content_type: content_type.into(),
                size: size as u64,
                description: description.into(),
                items,
                deadline_key: deadline.map(str::to_owned),
                created_by: holder,
                created_at: now + i as i64,
            })
            .await?;
    }
    Ok(())
}

/// A one-page PDF showing `text` (ASCII), with a correct cross-reference table.
fn demo_pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 14 Tf 60 780 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        out.extend(format!("{o:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}

/// One demo mine: where it is and the steps it has gone through (dates in the 2023 campaign).
struct DemoMine {
    name: &'static str,
    licence: &'static str,
    holder: &'static str,
    township: &'static str,
    mineral: &'static str,
    steps: &'static [(&'static str, &'static str)],
}

const CANCEL_TO_CANCELLED: &[(&str, &str)] = &[
    ("propose_cancel", "2023-10-20"),
    ("approve", "2023-11-01"),
    ("closure", "2023-11-10"),
    ("compile_plan", "2023-12-15"),
    ("pass_preliminary", "2024-02-20"),
    ("accept", "2024-03-15"),
    ("apply_cancellation", "2024-04-01"),
    ("cancel_licence", "2024-04-20"),
    ("business_licence", "2024-05-08"),
];

const DEMO_MINES: &[DemoMine] = &[
    DemoMine {
        name: "泗溪镇大岭石灰岩矿",
        licence: "C3609232009127130051001",
        holder: "上高县大岭石业有限公司",
        township: "泗溪镇",
        mineral: "建筑用石灰岩",
        steps: CANCEL_TO_CANCELLED,
    },
    DemoMine {
        name: "翰堂镇黄家山采石场",
        licence: "C3609232010037130061002",
        holder: "上高县黄家山建材厂",
        township: "翰堂镇",
        mineral: "建筑用花岗岩",
        steps: &[
            ("propose_cancel", "2023-10-25"),
            ("approve", "2023-11-01"),
            ("closure", "2023-11-10"),
            ("compile_plan", "2023-12-28"),
            ("pass_preliminary", "2024-03-01"),
            ("accept", "2024-03-20"),
        ],
    },
    DemoMine {
        name: "南港镇石门砖瓦用页岩矿",
        licence: "C3609232011047130071003",
        holder: "上高县石门新型墙材有限公司",
        township: "南港镇",
        mineral: "砖瓦用页岩",
        steps: &[
            ("propose_cancel", "2023-10-25"),
            ("approve", "2023-11-02"),
            ("closure", "2023-11-15"),
            ("compile_plan", "2023-12-30"),
            ("pass_preliminary", "2024-02-10"),
            ("rectify", "2024-02-25"),
        ],
    },
    DemoMine {
        name: "田心镇岗背瓷土矿",
        licence: "C3609232012057130081004",
        holder: "上高县岗背瓷土有限公司",
        township: "田心镇",
        mineral: "瓷土",
        steps: &[
            ("propose_cancel", "2023-10-28"),
            ("approve", "2023-11-05"),
            ("closure", "2023-11-20"),
        ],
    },
    DemoMine {
        name: "徐家渡镇河口砂石矿",
        licence: "C3609232013067130091005",
        holder: "上高县河口砂石有限公司",
        township: "徐家渡镇",
        mineral: "建筑用砂",
        steps: &[
            ("propose_continue", "2023-10-20"),
            ("approve", "2023-11-01"),
            ("doc_development", "2024-01-15"),
            ("doc_two_in_one", "2024-02-20"),
        ],
    },
    DemoMine {
        name: "蒙山镇万石岭石灰岩矿",
        licence: "C3609232014077130101006",
        holder: "上高县万石岭矿业有限公司",
        township: "蒙山镇",
        mineral: "水泥用石灰岩",
        steps: &[
            ("propose_continue", "2023-10-20"),
            ("approve", "2023-11-01"),
            ("doc_development", "2023-12-01"),
            ("doc_two_in_one", "2024-01-05"),
            ("doc_eia", "2024-02-10"),
            ("doc_soil", "2024-03-01"),
            ("pass_preliminary", "2024-03-20"),
            ("accept", "2024-04-10"),
            ("equipment_decision", "2024-04-25"),
            ("joint_review", "2024-05-10"),
            ("executive_meeting", "2024-05-20"),
            ("extend_licence", "2024-06-01"),
        ],
    },
    DemoMine {
        name: "镇渡乡桥头采石场",
        licence: "C3609232015087130111007",
        holder: "上高县桥头石料厂",
        township: "镇渡乡",
        mineral: "建筑用石料",
        steps: &[
            ("propose_continue", "2023-08-20"),
            ("approve", "2023-08-31"),
            ("grant_extension", "2024-03-05"),
        ],
    },
    DemoMine {
        name: "塔下乡长岭高岭土矿",
        licence: "C3609232016097130121008",
        holder: "上高县长岭高岭土有限公司",
        township: "塔下乡",
        mineral: "高岭土",
        steps: &[
            ("propose_never_produced", "2023-10-30"),
            ("approve", "2023-11-08"),
        ],
    },
    DemoMine {
        name: "锦江镇茶山石灰岩矿",
        licence: "C3609232021027130171013",
        holder: "上高县茶山矿业有限公司",
        township: "锦江镇",
        mineral: "建筑用石灰岩",
        // The closure decision gave this mine until 2024-06-30 (a steep slope to stabilise
        // first): not overdue on the campaign's 2024-03-31.
        steps: &[
            ("propose_cancel", "2023-10-22"),
            ("approve", "2023-11-01"),
            ("closure_late", "2023-11-10"),
            ("compile_plan", "2023-12-26"),
        ],
    },
    DemoMine {
        name: "芦洲乡白沙采砂场",
        licence: "C3609232017107130131009",
        holder: "上高县白沙砂业有限公司",
        township: "芦洲乡",
        mineral: "建筑用砂",
        steps: &[("propose_cancel", "2023-11-01")],
    },
    DemoMine {
        name: "墨山乡龙潭石英矿",
        licence: "C3609232018117130141010",
        holder: "上高县龙潭石英有限公司",
        township: "墨山乡",
        mineral: "石英岩",
        steps: &[],
    },
    DemoMine {
        name: "野市乡新田页岩矿",
        licence: "C3609232019127130151011",
        holder: "上高县新田建材有限公司",
        township: "野市乡",
        mineral: "砖瓦用页岩",
        steps: &[
            ("propose_cancel", "2023-10-22"),
            ("approve", "2023-11-01"),
            ("closure", "2023-11-10"),
            ("compile_plan", "2023-12-20"),
            ("pass_preliminary", "2024-01-20"),
            ("accept", "2024-01-31"),
            // 30 days after the acceptance end on 2024-03-01, but the closure decision gave the
            // holder until 2024-04-30: the announcement follows the later date.
            ("announce", "2024-05-06"),
        ],
    },
    // Its record is filled and signed by every department and its opinion letter drafted, so
    // the experts have a letter to review and sign ([`prepare_letter`]).
    DemoMine {
        name: LETTER_MINE,
        licence: "C3609232021037130181014",
        holder: "上高县石岭背建材有限公司",
        township: "泗溪镇",
        mineral: "建筑用石灰岩",
        steps: &[
            ("propose_cancel", "2023-10-21"),
            ("approve", "2023-11-01"),
            ("closure", "2023-11-12"),
            ("compile_plan", "2023-12-18"),
            ("pass_preliminary", "2024-03-28"),
        ],
    },
    DemoMine {
        name: "上甘山林场坳里花岗岩矿",
        licence: "C3609232020017130161012",
        holder: "上高县坳里石材有限公司",
        township: "上甘山林场",
        mineral: "饰面用花岗岩",
        steps: &[
            ("propose_continue", "2023-10-26"),
            ("approve", "2023-11-06"),
            ("doc_development", "2024-02-01"),
        ],
    },
];

fn date(s: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| crate::error::AppError::Internal(format!("demo date {s}: {e}")))
}

fn demo_transition(step: &str) -> Result<(Role, Transition)> {
    use crate::model::Disposition as D;
    use crate::model::{
        AcceptanceVerdict, ApprovalDocument as A, ClosureDecision, DocumentRecord,
        EquipmentDecision,
    };
    let t = match step {
        "propose_cancel" => Transition::Propose {
            disposition: D::Cancel,
        },
        "propose_continue" => Transition::Propose {
            disposition: D::Continue,
        },
        "propose_never_produced" => Transition::Propose {
            disposition: D::NeverProduced,
        },
        "approve" => Transition::Approve,
        "closure" => Transition::IssueClosureDecision {
            decision: ClosureDecision {
                document_no: "上府字〔2023〕101号".into(),
                responsible_party: "采矿权人".into(),
                restoration_deadline: date("2024-03-31")?,
                supervisor: "所在乡镇人民政府".into(),
                cancellation_application_deadline: date("2024-04-30")?,
                maintenance_party: "所在乡镇人民政府".into(),
            },
        },
        "closure_late" => Transition::IssueClosureDecision {
            decision: ClosureDecision {
                document_no: "上府字〔2023〕102号".into(),
                responsible_party: "采矿权人".into(),
                restoration_deadline: date("2024-06-30")?,
                supervisor: "所在乡镇人民政府".into(),
                cancellation_application_deadline: date("2024-07-31")?,
                maintenance_party: "所在乡镇人民政府".into(),
            },
        },
        "business_licence" => Transition::RecordBusinessLicenceCancellation {
            notice: DocumentRecord {
                number: "（上）登记企销字〔2024〕第12号".into(),
                issuer: "上高县市场监督管理局".into(),
                date: date("2024-05-06")?,
            },
        },
        "equipment_decision" => Transition::RecordEquipmentDecision {
            decision: EquipmentDecision {
                compliant: true,
                findings: "保留的破碎、筛分生产线符合现行产业政策，淘汰颚式破碎机一台".into(),
                document: DocumentRecord {
                    number: "上工信字〔2024〕21号".into(),
                    issuer: "上高县工业和信息化局".into(),
                    date: date("2024-04-22")?,
                },
            },
        },
        "executive_meeting" => Transition::RecordExecutiveMeeting {
            minutes: DocumentRecord {
                number: "县政府常务会议纪要〔2024〕9号".into(),
                issuer: "上高县人民政府".into(),
                date: date("2024-05-18")?,
            },
        },
        "compile_plan" => Transition::CompilePlan,
        "pass_preliminary" => Transition::PassPreliminary,
        "accept" => Transition::RecordAcceptance {
            verdict: AcceptanceVerdict::Passed {
                expert_letter_signed: true,
            },
        },
        "rectify" => Transition::RecordAcceptance {
            verdict: AcceptanceVerdict::Rectify {
                requirements: "截排水沟淤堵需清淤；东侧边坡复绿不足".into(),
                reinspect_by: date("2024-04-30")?,
            },
        },
        "apply_cancellation" => Transition::ApplyCancellation,
        "cancel_licence" => Transition::CancelLicence,
        "announce" => Transition::Announce,
        "grant_extension" => Transition::GrantExtension,
        "joint_review" => Transition::PassJointReview,
        "extend_licence" => Transition::ExtendLicence,
        "doc_development" => Transition::RecordApprovalDocument {
            document: A::DevelopmentPlan,
            record: DocumentRecord {
                number: "宜自然资矿审〔2023〕41号".into(),
                issuer: "宜春市自然资源局".into(),
                date: date("2023-11-28")?,
            },
        },
        "doc_two_in_one" => Transition::RecordApprovalDocument {
            document: A::TwoInOnePlan,
            record: DocumentRecord {
                number: "上自然资字〔2024〕3号".into(),
                issuer: "上高县自然资源局".into(),
                date: date("2024-01-04")?,
            },
        },
        "doc_eia" => Transition::RecordApprovalDocument {
            document: A::EnvironmentalImpactReport,
            record: DocumentRecord {
                number: "宜环评字〔2024〕15号".into(),
                issuer: "宜春市生态环境局".into(),
                date: date("2024-02-06")?,
            },
        },
        "doc_soil" => Transition::RecordApprovalDocument {
            document: A::SoilConservationPlan,
            record: DocumentRecord {
                number: "上水保字〔2024〕7号".into(),
                issuer: "上高县水利局".into(),
                date: date("2024-02-27")?,
            },
        },
        other => {
            return Err(crate::error::AppError::Internal(format!(
                "unknown demo step {other}"
            )));
        }
    };
    // County-office steps are taken by the office; the others by the township.
    let role = match step {
        s if s.starts_with("propose") || s.starts_with("doc_") => Role::TownshipOfficer,
        "compile_plan" | "pass_preliminary" => Role::TownshipOfficer,
        _ => Role::CountyOffice,
    };
    Ok((role, t))
}

/// County leaders assigned to the demo mines (挂点县领导), in turn.
const DEMO_COUNTY_LEADERS: &[&str] = &["刘副县长", "陈副县长", "黄副县长"];

/// The demo holder's company: its mine (accepted, cancellation application due) is bound to the
/// demo `holder` account.
const DEMO_HOLDER_COMPANY: &str = "上高县黄家山建材厂";

async fn seed_mines(
    state: &AppState,
    office: Option<uuid::Uuid>,
    holder: Option<uuid::Uuid>,
) -> Result<()> {
    let store = state.store.as_ref();
    let now = state.clock.now_ms();
    let campaign = crate::rules::campaign::Campaign::shanggao_2023()
        .map_err(|e| crate::error::AppError::Internal(format!("built-in campaign: {e}")))?;
    store
        .ensure_campaign(
            &campaign.id,
            &campaign.title,
            crate::rules::campaign::SHANGGAO_2023_TOML,
            now,
        )
        .await?;
    let townships = store.list_townships().await?;
    let today = state.clock.today();
    for (i, demo) in DEMO_MINES.iter().enumerate() {
        let Some(township) = townships.iter().find(|t| t.name == demo.township) else {
            continue;
        };
        let mut mine = Mine {
            id: uuid::Uuid::now_v7(),
            name: demo.name.into(),
            licence_no: demo.licence.into(),
            holder: demo.holder.into(),
            holder_user_id: holder.filter(|_| demo.holder == DEMO_HOLDER_COMPANY),
            township_id: township.id,
            mineral: demo.mineral.into(),
            mining_method: "露天开采".into(),
            area_ha: Some("2.5".into()),
            boundary: None,
            campaign_id: campaign.id.clone(),
            facts: MineFacts {
                county_leader: Some(DEMO_COUNTY_LEADERS[i % DEMO_COUNTY_LEADERS.len()].into()),
                ..MineFacts::new(township.id)
            },
            version: 0,
            created_at: now,
            updated_at: now,
        };
        store.create_mines(std::slice::from_ref(&mine)).await?;
        for (step, on) in demo.steps {
            let (role, transition) = demo_transition(step)?;
            let actor = Actor {
                role,
                township: Some(township.id),
            };
            let on = date(on)?;
            let next =
                workflow::apply(&mine.facts, &transition, actor, on, &campaign).map_err(|e| {
                    crate::error::AppError::Internal(format!("demo {} {step}: {e}", demo.name))
                })?;
            let event = MineEvent {
                id: uuid::Uuid::now_v7(),
                mine_id: mine.id,
                transition: transition.name().into(),
                from_stage: mine.facts.stage.code().into(),
                to_stage: next.stage.code().into(),
                actor_id: office,
                reason: "演示数据".into(),
                data: serde_json::json!({ "transition": transition }),
                // Entered today from the paper trail: dated as it happened.
                as_of: on.to_string(),
                recorded_on: today.to_string(),
                created_at: now,
            };
            // The announcement is published with its text, as the API does.
            let notice = matches!(transition, Transition::Announce).then(|| CaseRecord {
                id: uuid::Uuid::now_v7(),
                mine_id: mine.id,
                kind: "announcement".into(),
                data: serde_json::json!({
                    "text": crate::mines::announcement_text(&mine, &township.name, &campaign, on),
                    "date": on.to_string(),
                }),
                created_by: office,
                created_at: now,
            });
            store
                .transition_mine(mine.id, mine.version, &next, &event, notice.as_ref())
                .await?;
            mine.facts = next;
            mine.version += 1;
        }
    }
    Ok(())
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

/// Opens an acceptance round, as the county office would over the API, on every demo mine whose
/// stage is one that gets inspected, so the phone app has records to fill. Returns how many.
pub async fn open_rounds(state: &AppState) -> Result<usize> {
    let Some(office) = state
        .store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::CountyOffice)
    else {
        return Ok(0);
    };
    let caller = session(state, &office, None);
    let mut opened = 0;
    for mine in crate::mines::visible_mines(state, &caller).await? {
        match crate::rounds::open(state, &caller, mine.id).await {
            Ok(_) => opened += 1,
            // Mines before approval or after acceptance are not inspected: no round.
            Err(crate::error::AppError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(opened)
}

/// The demo mine whose record is signed by every department and whose opinion letter awaits the
/// experts.
pub const LETTER_MINE: &str = "泗溪镇石岭背采石场";

/// A signed-in session of `user` (on `device`), as the API would make it.
fn session(state: &AppState, user: &User, device: Option<Uuid>) -> AuthUser {
    let now = state.clock.now_ms() / 1000;
    AuthUser {
        claims: crate::identity::tokens::Claims {
            iss: state.settings.token_issuer.clone(),
            aud: state.settings.token_audience.clone(),
            sub: user.id,
            iat: now,
            nbf: now,
            exp: now + 60,
            typ: crate::identity::tokens::ACCESS_TYP.into(),
            role: user.role,
            dept: user.department.clone(),
            town: user.township_id,
            spec: user.specialty.clone(),
            did: device,
        },
    }
}

/// On [`LETTER_MINE`]'s open round: every required section answered (all 达标) and signed by its
/// demo inspector (the township's by `sixi`) from a demo phone of their own — a real device key
/// and handwritten strokes, through sync like a phone — then the opinion letter drafted by the
/// county office with the three demo experts as its panel. Returns whether the letter exists.
pub async fn prepare_letter(state: &AppState) -> Result<bool> {
    let users = state.store.list_users().await?;
    let Some(mine) = state
        .store
        .list_mines(None)
        .await?
        .into_iter()
        .find(|m| m.name == LETTER_MINE)
    else {
        return Ok(false);
    };
    let Some(round) = state.store.list_rounds(mine.id).await?.into_iter().next() else {
        return Ok(false);
    };
    let (Some(office), Some(sixi)) = (
        users.iter().find(|u| u.role == Role::CountyOffice),
        users.iter().find(|u| u.username == "sixi"),
    ) else {
        return Ok(false);
    };
    let template = crate::sync::templates::template(state, &round.template_ref).await?;
    let record = EntityId(round.id);
    for section in template
        .sections
        .iter()
        .filter(|s| s.required && s.applies_to.contains(&Disposition::Cancel))
    {
        let code = section.department.code();
        let signer = if code == crate::model::record::TOWNSHIP_SECTION {
            sixi
        } else {
            match users.iter().find(|u| u.username == format!("insp.{code}")) {
                Some(u) => u,
                None => continue,
            }
        };
        let answers: BTreeMap<String, Value> = template
            .fields(Disposition::Cancel)
            .into_iter()
            .filter(|f| f.section.department.code() == code)
            .map(|f| {
                let value = match (&f.part.kind, f.role) {
                    (_, FieldRole::DesignValue) | (AnswerKind::Number { .. }, _) => "100",
                    (AnswerKind::PassFail { .. }, _) => "pass",
                    (AnswerKind::Text, _) => "已按方案完成，现场核实无误",
                };
                (f.key(), Value::from(value))
            })
            .collect();
        sign_section(state, signer, record, code, answers).await?;
    }
    let experts: Vec<_> = users.iter().filter(|u| u.role == Role::Expert).collect();
    let text = crate::letters::LetterText {
        number: "上自然资矿验〔2024〕15号".into(),
        title: None,
        basis: vec![
            "《上高县非煤矿山生态修复整治行动方案》（上府办发〔2023〕35号）".into(),
            "经批准的矿山地质环境保护与土地复垦方案".into(),
            "《矿山生态修复技术规范》".into(),
        ],
        date: chrono::NaiveDate::from_ymd_opt(2024, 4, 10).unwrap_or_default(),
        organiser: "上高县自然资源局".into(),
        panel: experts
            .iter()
            .map(|e| crate::letters::PanelMemberIn {
                user: e.id,
                title: "高级工程师".into(),
                employer: "宜春市自然资源事务中心".into(),
            })
            .collect(),
        method: "听取矿山企业和泗溪镇人民政府汇报，查阅修复资料，现场踏勘。".into(),
        situation: format!(
            "{}位于上高县泗溪镇，开采建筑用石灰岩，已于2023年停产，按闭坑注销处置。",
            mine.name
        ),
        opinions: "一、采场边坡已削坡减载，稳定，无地质灾害隐患；二、平台及边坡覆土复绿，\
                   植被覆盖率达标；三、设施设备已拆除，电力线路已拆除，民爆物品已清理；\
                   四、资料齐全。"
            .into(),
        problems: "加强后期管护，雨季注意边坡巡查。".into(),
        conclusion: crate::model::letter::LetterConclusion::Pass,
    };
    crate::letters::draft(state, &session(state, office, None), round.id, text).await?;
    Ok(true)
}

/// `signer` answers `code`'s section of `record` and signs it from a new demo phone.
async fn sign_section(
    state: &AppState,
    signer: &User,
    record: EntityId,
    code: &str,
    answers: BTreeMap<String, Value>,
) -> Result<()> {
    use sync_protocol::{DeviceId, Hlc, Op, OpBody, OpId};
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let spki = p256::pkcs8::EncodePublicKey::to_public_key_der(key.verifying_key())
        .map_err(|e| crate::error::AppError::Internal(format!("demo key: {e}")))?;
    let device = crate::model::Device {
        id: Uuid::now_v7(),
        user_id: signer.id,
        name: format!("{} 的演示手机", signer.display_name),
        public_key_spki: base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            spki.as_bytes(),
        ),
        created_at: state.clock.now_ms(),
        revoked_at: None,
    };
    state.store.create_device(&device).await?;
    let caller = session(state, signer, Some(device.id));
    let now = u64::try_from(state.clock.now_ms()).unwrap_or(0);
    let op = |seq: u64, body: OpBody| Op {
        id: OpId(Uuid::now_v7()),
        device: DeviceId(device.id),
        seq,
        hlc: Hlc::new(now + seq, 0),
        entity: record,
        body,
    };
    let ops: Vec<Op> = answers
        .into_iter()
        .zip(1..)
        .map(|((field, value), seq)| {
            op(
                seq,
                OpBody::Set {
                    field,
                    value,
                    base_rev: 0,
                },
            )
        })
        .collect();
    let next = ops.len() as u64 + 1;
    push(state, &caller, device.id, ops).await?;
    // The signature: a pen stroke like a name, uploaded before the op that names it.
    let points: Vec<String> = (0..48u32)
        .map(|i| {
            let wave = [0, 12, 20, 12, 0, -12, -20, -12][(i % 8) as usize];
            format!("[{},{},{}]", 40 + i * 11, 120 + wave, i * 18)
        })
        .collect();
    let strokes = format!(
        r#"{{"format":"yanshou-strokes/1","width":600,"height":240,"strokes":[{{"points":[{}]}}]}}"#,
        points.join(",")
    )
    .into_bytes();
    let hash = crate::blobs::BlobHash::of(&strokes);
    let size = strokes.len() as i64;
    state
        .blobs
        .put_expecting(hash, bytes::Bytes::from(strokes))
        .await?;
    let current = state
        .store
        .sync_entities(&[record])
        .await?
        .pop()
        .ok_or(crate::error::AppError::NotFound("record"))?;
    let content_hash = sync_protocol::section_hash(&current, code)
        .map_err(|e| crate::error::AppError::Internal(format!("demo section hash: {e}")))?;
    let opt = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::from);
    let statement = sync_protocol::signature::section_statement(
        DeviceId(device.id),
        record,
        code,
        &content_hash,
        Value::Map(BTreeMap::from([
            ("user".to_owned(), Value::from(signer.id.to_string())),
            ("name".to_owned(), Value::from(signer.display_name.clone())),
            ("role".to_owned(), Value::from(signer.role.as_str())),
            ("department".to_owned(), opt(&signer.department)),
            ("specialty".to_owned(), opt(&signer.specialty)),
        ])),
        i64::try_from(now).unwrap_or(0),
        Value::Map(BTreeMap::from([
            ("sha256".to_owned(), Value::from(hash.hex())),
            ("size".to_owned(), Value::Int(size)),
        ])),
    );
    let signature = sync_protocol::signature::sign(&key, statement).to_value();
    let sign = op(
        next,
        OpBody::Sign {
            section: code.to_owned(),
            content_hash,
            signature,
        },
    );
    push(state, &caller, device.id, vec![sign]).await
}

/// Pushes `ops` as the demo phone `device`; every op must apply.
async fn push(
    state: &AppState,
    caller: &AuthUser,
    device: Uuid,
    ops: Vec<sync_protocol::Op>,
) -> Result<()> {
    let request = sync_protocol::SyncRequest {
        protocol_version: sync_protocol::PROTOCOL_VERSION,
        device: sync_protocol::DeviceId(device),
        ops,
        cursor: 0,
        pull_limit: Some(1),
    };
    let results = crate::sync::push(state, caller, &request).await?;
    if let Some(bad) = results
        .iter()
        .find(|r| !matches!(r, sync_protocol::OpResult::Applied { .. }))
    {
        return Err(crate::error::AppError::Internal(format!(
            "a demo op did not apply: {bad:?}"
        )));
    }
    Ok(())
}
