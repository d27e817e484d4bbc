//! The mine registry and its workflow operations: create and import mines (with licence
//! boundaries converted from CGCS2000 Gauss-Krüger corner points), export, transitions with an
//! audit trail, the dashboard (counts, overdue and due-soon lists as of a date), and the case log
//! (一事一议, 线索移送, 公告), and the holder's rectification evidence. Files: [`registry`], [`csv`],
//! [`transitions`], [`dashboard`], [`cases`], [`evidence`]; the campaigns mines follow are here.
//!
//! Dates: the workflow counts in the county's calendar (China Standard Time, UTC+8), from the
//! server's [`Clock`] — never from a device.

mod cases;
mod csv;
mod dashboard;
mod evidence;
mod registry;
mod transitions;

use std::{collections::HashMap, sync::Arc};

pub use cases::{NewCase, add_case};
pub use csv::{ImportReport, RowError, export_csv, import_csv};
pub use dashboard::{Dashboard, DeadlineItem, TownshipProgress, WaitingMine, dashboard};
pub use evidence::{EvidenceKind, NewEvidence, file_evidence, get_evidence, list_evidence};
pub use registry::{
    BoundaryInput, CreatedMine, HolderBinding, MineDetail, NewMine, bind_holder, create, detail,
    mine_warnings, validate_mine, visible_mines,
};
pub use transitions::{TransitionRequest, announcement_text, official_date, transition};

use crate::{
    AppState,
    error::{AppError, Result},
    rules::campaign::Campaign,
};

/// Parsed campaigns by id, for one server: a stored campaign never changes, so each is read
/// and parsed once instead of on every transition and mine view.
#[derive(Debug, Clone, Default)]
pub struct CampaignCache {
    by_id: Arc<std::sync::RwLock<HashMap<String, Arc<Campaign>>>>,
    /// The built-in default, once it is known to be stored.
    default: Arc<tokio::sync::OnceCell<Arc<Campaign>>>,
}

impl CampaignCache {
    fn get(&self, id: &str) -> Option<Arc<Campaign>> {
        self.by_id.read().ok()?.get(id).cloned()
    }

    fn put(&self, campaign: Campaign) -> Arc<Campaign> {
        let campaign = Arc::new(campaign);
        if let Ok(mut map) = self.by_id.write() {
            map.insert(campaign.id.clone(), campaign.clone());
        }
        campaign
    }
}

/// The built-in default campaign, stored on first use so every mine names its campaign.
pub async fn default_campaign(state: &AppState) -> Result<Arc<Campaign>> {
    let campaign = state
        .campaigns
        .default
        .get_or_try_init(|| async {
            let campaign = Campaign::shanggao_2023()
                .map_err(|e| AppError::Internal(format!("built-in campaign is invalid: {e}")))?;
            state
                .store
                .ensure_campaign(
                    &campaign.id,
                    &campaign.title,
                    crate::rules::campaign::SHANGGAO_2023_TOML,
                    state.clock.now_ms(),
                )
                .await?;
            Ok::<_, AppError>(state.campaigns.put(campaign))
        })
        .await?;
    Ok(campaign.clone())
}

/// A stored campaign (parsed once per server).
pub async fn campaign(state: &AppState, id: &str) -> Result<Arc<Campaign>> {
    if let Some(c) = state.campaigns.get(id) {
        return Ok(c);
    }
    if id == crate::rules::campaign::DEFAULT_CAMPAIGN_ID {
        // The built-in campaign as this server knows it (its deadlines never change; a server
        // may know more about it than an older stored copy, such as the notice's wording).
        return default_campaign(state).await;
    }
    let (_, source) = state.store.get_campaign(id).await?;
    let parsed = Campaign::parse(&source)
        .map_err(|e| AppError::Internal(format!("stored campaign {id}: {e}")))?;
    Ok(state.campaigns.put(parsed))
}
