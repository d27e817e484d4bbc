//! The county office's (or a township's) overview as of a date.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use uuid::Uuid;

use super::campaign;
use crate::{
    AppState,
    error::Result,
    identity::auth::AuthUser,
    model::{Disposition, Role, Stage},
    rules::workflow::{self, MineDeadline},
};

use super::registry::visible_mines;
/// A mine as the dashboard lists it.
#[derive(Debug, Clone)]
pub struct DeadlineItem {
    pub mine_id: Uuid,
    pub mine: String,
    pub township: String,
    pub stage: Stage,
    pub deadline: MineDeadline,
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
    pub mines: usize,
    pub by_disposition: BTreeMap<String, usize>,
    pub by_stage: BTreeMap<String, usize>,
    pub overdue: Vec<DeadlineItem>,
    pub due_soon: Vec<DeadlineItem>,
    pub townships: Vec<TownshipProgress>,
}

/// Build the dashboard for the caller's mines as of `as_of` (default: today).
pub async fn dashboard(
    state: &AppState,
    caller: &AuthUser,
    as_of: Option<NaiveDate>,
) -> Result<Dashboard> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let as_of = as_of.unwrap_or_else(|| state.clock.today());
    let mines = visible_mines(state, caller).await?;
    let townships: HashMap<Uuid, String> = state
        .store
        .list_townships()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let mut board = Dashboard {
        as_of,
        mines: mines.len(),
        by_disposition: BTreeMap::new(),
        by_stage: BTreeMap::new(),
        overdue: Vec::new(),
        due_soon: Vec::new(),
        townships: Vec::new(),
    };
    let mut progress: BTreeMap<Uuid, TownshipProgress> = BTreeMap::new();
    for mine in &mines {
        let c = campaign(state, &mine.campaign_id).await?;
        *board
            .by_disposition
            .entry(
                mine.facts
                    .disposition
                    .map_or("undecided", Disposition::code)
                    .to_owned(),
            )
            .or_default() += 1;
        *board
            .by_stage
            .entry(mine.facts.stage.code().to_owned())
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
            mine.facts.stage,
            Stage::LicenceCancelled | Stage::LicenceExtended | Stage::Protected
        ) {
            p.done += 1;
        }
        let mut mine_overdue = false;
        for d in workflow::open_deadlines(&mine.facts, &c, as_of) {
            let item = DeadlineItem {
                mine_id: mine.id,
                mine: mine.name.clone(),
                township: township.clone(),
                stage: mine.facts.stage,
                deadline: d,
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
