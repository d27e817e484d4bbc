//! The county office's (or a township's) overview as of a date.
//!
//! A date in the past is a **snapshot**: every mine's facts are rebuilt from its audit trail
//! (the steps dated on or before that day, replayed through the workflow), so the stage counts,
//! the lists and the deadlines are those of that day. Today and later dates use the current
//! facts (deadlines then count to the date asked for).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use uuid::Uuid;

use super::campaign;
use crate::{
    AppState,
    error::Result,
    identity::auth::AuthUser,
    model::{Disposition, MineEvent, Role, Stage},
    rules::{
        campaign::Responsible,
        workflow::{self, MineDeadline, facts_as_of},
    },
};

use super::registry::visible_mines;
/// A mine's deadline as the dashboard lists it, with who must act.
#[derive(Debug, Clone)]
pub struct DeadlineItem {
    pub mine_id: Uuid,
    pub mine: String,
    pub township: String,
    pub stage: Stage,
    pub deadline: MineDeadline,
    /// Who must act, by name: the holder's company, the township, 县政府办, or the maintenance
    /// body the closure decision names.
    pub responsible_name: String,
    /// The county leader assigned to the mine (挂点县领导), who urges it on.
    pub county_leader: Option<String>,
}

/// A mine waiting for something that is not a deadline: a disposition, or the next step after
/// its cancellation announcement.
#[derive(Debug, Clone)]
pub struct WaitingMine {
    pub mine_id: Uuid,
    pub mine: String,
    pub township: String,
    pub stage: Stage,
    /// The step it waits for (`propose`, `approve`, `deem_abandoned`, `apply_cancellation`,
    /// `cancel_licence`).
    pub next_step: &'static str,
    pub responsible: Responsible,
    /// The day of the announcement, for announced mines.
    pub announced_on: Option<NaiveDate>,
    pub county_leader: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TownshipProgress {
    pub township_id: Uuid,
    pub township: String,
    pub mines: usize,
    /// Mines whose licence question is settled (cancelled, extended, protected).
    pub done: usize,
    pub overdue: usize,
}

/// The county office's (or a township's) overview as of a date.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub as_of: NaiveDate,
    /// Whether the figures were rebuilt from the audit trail (a date before today).
    pub snapshot: bool,
    pub mines: usize,
    pub by_disposition: BTreeMap<String, usize>,
    pub by_stage: BTreeMap<String, usize>,
    pub overdue: Vec<DeadlineItem>,
    pub due_soon: Vec<DeadlineItem>,
    /// Mines without an approved disposition yet (registered, or proposed and waiting for the
    /// county).
    pub awaiting_disposition: Vec<WaitingMine>,
    /// Announced mines waiting for their next step (deemed abandoned, the township's
    /// application, the licence's cancellation).
    pub announced: Vec<WaitingMine>,
    pub townships: Vec<TownshipProgress>,
}

/// Build the dashboard for the caller's mines as of `as_of` (default: today).
pub async fn dashboard(
    state: &AppState,
    caller: &AuthUser,
    as_of: Option<NaiveDate>,
) -> Result<Dashboard> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let today = state.clock.today();
    let as_of = as_of.unwrap_or(today);
    let snapshot = as_of < today;
    let mines = visible_mines(state, caller).await?;
    let mut trails: HashMap<Uuid, Vec<MineEvent>> = HashMap::new();
    if snapshot {
        let township = match caller.role() {
            Role::TownshipOfficer => caller.claims.town,
            _ => None,
        };
        let until = as_of.to_string();
        for e in state
            .store
            .list_township_mine_events(township, &until)
            .await?
        {
            trails.entry(e.mine_id).or_default().push(e);
        }
    }
    let townships: HashMap<Uuid, String> = state
        .store
        .list_townships()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let mut board = Dashboard {
        as_of,
        snapshot,
        mines: mines.len(),
        by_disposition: BTreeMap::new(),
        by_stage: BTreeMap::new(),
        overdue: Vec::new(),
        due_soon: Vec::new(),
        awaiting_disposition: Vec::new(),
        announced: Vec::new(),
        townships: Vec::new(),
    };
    let mut progress: BTreeMap<Uuid, TownshipProgress> = BTreeMap::new();
    for mine in &mines {
        let c = campaign(state, &mine.campaign_id).await?;
        let facts = if snapshot {
            facts_as_of(
                mine,
                trails.get(&mine.id).map_or(&[][..], Vec::as_slice),
                as_of,
                &c,
            )
        } else {
            mine.facts.clone()
        };
        *board
            .by_disposition
            .entry(
                facts
                    .disposition
                    .map_or("undecided", Disposition::code)
                    .to_owned(),
            )
            .or_default() += 1;
        *board
            .by_stage
            .entry(facts.stage.code().to_owned())
            .or_default() += 1;
        let township = townships
            .get(&mine.township_id)
            .cloned()
            .unwrap_or_default();
        let p = progress
            .entry(mine.township_id)
            .or_insert_with(|| TownshipProgress {
                township_id: mine.township_id,
                township: township.clone(),
                mines: 0,
                done: 0,
                overdue: 0,
            });
        p.mines += 1;
        if matches!(
            facts.stage,
            Stage::LicenceCancelled | Stage::LicenceExtended | Stage::Protected
        ) {
            p.done += 1;
        }
        let waiting = |next_step: &'static str, responsible: Responsible| WaitingMine {
            mine_id: mine.id,
            mine: mine.name.clone(),
            township: township.clone(),
            stage: facts.stage,
            next_step,
            responsible,
            announced_on: facts.announced_on,
            county_leader: facts.county_leader.clone(),
        };
        match facts.stage {
            Stage::Registered => board
                .awaiting_disposition
                .push(waiting("propose", Responsible::Township)),
            Stage::DispositionProposed => board
                .awaiting_disposition
                .push(waiting("approve", Responsible::CountyOffice)),
            Stage::Announced => board
                .announced
                .push(waiting("deem_abandoned", Responsible::CountyOffice)),
            Stage::RightAbandoned if facts.announced_on.is_some() => board
                .announced
                .push(waiting("apply_cancellation", Responsible::Township)),
            Stage::CancellationApplied if facts.announced_on.is_some() => board
                .announced
                .push(waiting("cancel_licence", Responsible::CountyOffice)),
            _ => {}
        }
        let mut mine_overdue = false;
        for d in workflow::open_deadlines(&facts, &c, as_of) {
            let responsible_name = match d.responsible {
                Responsible::Holder => mine.holder.clone(),
                Responsible::Township => township.clone(),
                Responsible::CountyOffice => "县政府办".to_owned(),
                Responsible::MaintenanceBody => facts
                    .closure_decision
                    .as_ref()
                    .map_or_else(|| township.clone(), |d| d.maintenance_party.clone()),
            };
            let item = DeadlineItem {
                mine_id: mine.id,
                mine: mine.name.clone(),
                township: township.clone(),
                stage: facts.stage,
                deadline: d,
                responsible_name,
                county_leader: facts.county_leader.clone(),
            };
            match item.deadline.status {
                workflow::DeadlineStatus::Overdue => {
                    mine_overdue = true;
                    board.overdue.push(item);
                }
                workflow::DeadlineStatus::DueSoon => board.due_soon.push(item),
                workflow::DeadlineStatus::Pending => {}
            }
        }
        if mine_overdue {
            p.overdue += 1;
        }
    }
    board
        .overdue
        .sort_by_key(|i| (i.deadline.due, i.mine.clone()));
    board
        .due_soon
        .sort_by_key(|i| (i.deadline.due, i.mine.clone()));
    board.townships = progress.into_values().collect();
    Ok(board)
}
