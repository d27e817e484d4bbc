//! Acceptance rounds: opening the next round of a mine, with its record entity in the sync feed.

use async_trait::async_trait;
use sync_protocol::{Change, EntityState};
use uuid::Uuid;

use super::{
    SqlStore, StoreResult,
    catalog::INSERT_TEMPLATE,
    sql::{Row, to_i64, to_json, to_u64},
    sync::LAST_COMMIT,
};
use crate::model::AcceptanceRound;

/// Builds the record entity of a new round once its number and commit sequence are known.
pub type RoundEntity<'a> =
    Box<dyn FnOnce(&AcceptanceRound, u64) -> StoreResult<(EntityState, Change)> + Send + 'a>;

/// Acceptance rounds.
#[async_trait]
pub trait RoundStore {
    /// Open the next round of a mine in one write transaction: number it (previous = the
    /// latest round), store the template source if new, and create its record entity in the
    /// sync feed (`make` receives the round and the commit sequence number to use). The rows
    /// it writes are stamped with the round's `created_at`.
    async fn create_round(
        &self,
        round: AcceptanceRound,
        template_source: &str,
        scope: Option<Uuid>,
        make: RoundEntity<'_>,
    ) -> StoreResult<AcceptanceRound>;
    async fn list_rounds(&self, mine_id: Uuid) -> StoreResult<Vec<AcceptanceRound>>;
    async fn get_round(&self, id: Uuid) -> StoreResult<AcceptanceRound>;
}

const SELECT_ROUNDS: &str = "select id, mine_id, round_no, previous_round_id, template_ref, \
     disposition, created_by, created_at from acceptance_rounds";

#[async_trait]
impl RoundStore for SqlStore {
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
        tx.query(INSERT_TEMPLATE)
            .bind(&round.template_ref)
            .bind(template_source)
            .bind(now)
            .execute(&mut tx)
            .await?;
        let previous = tx
            .query(
                "select id, round_no from acceptance_rounds where mine_id = $1 \
                 order by round_no desc limit 1",
            )
            .bind(round.mine_id)
            .fetch_optional(&mut tx)
            .await?;
        if let Some(row) = previous {
            round.previous_round_id = Some(row.get("id")?);
            round.round_no = row.get::<i32>("round_no")? + 1;
        } else {
            round.previous_round_id = None;
            round.round_no = 1;
        }
        tx.query(
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
        .execute(&mut tx)
        .await?;
        let row = tx.query(LAST_COMMIT).fetch_one(&mut tx).await?;
        let commit_seq = to_u64(row.get("last")?) + 1;
        let (state, change) = make(&round, commit_seq)?;
        tx.query(
            "insert into sync_entities (id, entity_type, scope, state_json, last_commit, \
             created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(state.id.0)
        .bind(&state.entity_type)
        .bind(scope)
        .bind(to_json(&state)?)
        .bind(to_i64(commit_seq))
        .bind(now)
        .execute(&mut tx)
        .await?;
        tx.query(
            "insert into sync_changes (commit_seq, entity_id, entity_type, scope, \
             change_json, created_at) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(to_i64(commit_seq))
        .bind(state.id.0)
        .bind(&state.entity_type)
        .bind(scope)
        .bind(to_json(&change)?)
        .bind(now)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(round)
    }

    async fn list_rounds(&self, mine_id: Uuid) -> StoreResult<Vec<AcceptanceRound>> {
        let rows = self
            .db
            .query(format!(
                "{SELECT_ROUNDS} where mine_id = $1 order by round_no"
            ))
            .bind(mine_id)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(round_from_row).collect()
    }

    async fn get_round(&self, id: Uuid) -> StoreResult<AcceptanceRound> {
        let row = self
            .db
            .query(format!("{SELECT_ROUNDS} where id = $1"))
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        round_from_row(&row)
    }
}

fn round_from_row(r: &Row) -> StoreResult<AcceptanceRound> {
    Ok(AcceptanceRound {
        id: r.get("id")?,
        mine_id: r.get("mine_id")?,
        round_no: r.get("round_no")?,
        previous_round_id: r.get("previous_round_id")?,
        template_ref: r.get("template_ref")?,
        disposition: r.get("disposition")?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
    })
}
