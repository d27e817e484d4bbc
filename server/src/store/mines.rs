//! Mines: the registry, workflow transitions with their events, and case records.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    SqlStore, StoreError, StoreResult,
    sql::{On, Pool, Row, from_json, to_json},
};
use crate::model::{CaseRecord, Mine, MineEvent, MineFacts};

/// The mine registry and its history.
#[async_trait]
pub trait MineStore {
    /// Insert mines atomically (all or none); a duplicate licence number is a `Conflict`.
    async fn create_mines(&self, mines: &[Mine]) -> StoreResult<()>;
    async fn get_mine(&self, id: Uuid) -> StoreResult<Mine>;
    /// All mines, or those of one township.
    async fn list_mines(&self, township: Option<Uuid>) -> StoreResult<Vec<Mine>>;
    /// Mines bound to a mining-right holder's account.
    async fn list_mines_of_holder(&self, user: Uuid) -> StoreResult<Vec<Mine>>;
    /// Bind a mine to its holder's account (`None` unbinds) at `now`; `NotFound` if the mine
    /// is unknown.
    async fn set_mine_holder(&self, mine: Uuid, user: Option<Uuid>, now: i64) -> StoreResult<()>;
    /// Replace a mine's facts if it is still at `expected_version`, and record the event and
    /// the case record the transition produces (the announcement's text), in one transaction:
    /// either all of it is stored or nothing. A stale version is a `Conflict` (someone else
    /// moved the mine meanwhile).
    async fn transition_mine(
        &self,
        id: Uuid,
        expected_version: i64,
        facts: &MineFacts,
        event: &MineEvent,
        record: Option<&CaseRecord>,
    ) -> StoreResult<()>;
    async fn list_mine_events(&self, mine_id: Uuid) -> StoreResult<Vec<MineEvent>>;
    /// The audit trails of all mines, or of one township's, up to the steps dated `until`
    /// (`YYYY-MM-DD`, inclusive), grouped by mine, each in order (the dashboard's snapshot of a
    /// past date replays them).
    async fn list_township_mine_events(
        &self,
        township: Option<Uuid>,
        until: &str,
    ) -> StoreResult<Vec<MineEvent>>;
    async fn add_case_record(&self, record: &CaseRecord) -> StoreResult<()>;
    async fn list_case_records(&self, mine_id: Uuid) -> StoreResult<Vec<CaseRecord>>;
}

/// The columns [`mine_from_row`] reads.
const SELECT_MINES: &str = "select id, name, licence_no, holder, holder_user_id, township_id, \
     mineral, mining_method, area_ha, boundary_json, campaign_id, facts_json, version, \
     created_at, updated_at from mines";

/// Rows per multi-row insert (17 columns: 8,500 parameters).
const CHUNK: usize = 500;

#[async_trait]
impl MineStore for SqlStore {
    async fn create_mines(&self, mines: &[Mine]) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        for chunk in mines.chunks(CHUNK) {
            let encoded = chunk
                .iter()
                .map(|m| {
                    let boundary = m.boundary.as_ref().map(to_json).transpose()?;
                    Ok((boundary, to_json(&m.facts)?))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut q = tx.query(
                "insert into mines (id, name, licence_no, holder, holder_user_id, township_id, \
                 mineral, mining_method, area_ha, boundary_json, campaign_id, stage, \
                 disposition, facts_json, version, created_at, updated_at) ",
            );
            q.push_values(chunk.iter().zip(encoded), |row, (m, (boundary, facts))| {
                row.bind(m.id)
                    .bind(m.name.as_str())
                    .bind(m.licence_no.as_str())
                    .bind(m.holder.as_str())
                    .bind(m.holder_user_id)
                    .bind(m.township_id)
                    .bind(m.mineral.as_str())
                    .bind(m.mining_method.as_str())
                    .bind(m.area_ha.as_deref())
                    .bind(boundary)
                    .bind(m.campaign_id.as_str())
                    .bind(m.facts.stage.code())
                    .bind(m.facts.disposition.map(|d| d.code()))
                    .bind(facts)
                    .bind(m.version)
                    .bind(m.created_at)
                    .bind(m.updated_at);
            });
            q.execute(&mut tx).await?;
        }
        tx.commit().await
    }

    async fn get_mine(&self, id: Uuid) -> StoreResult<Mine> {
        let row = self
            .db
            .query(format!("{SELECT_MINES} where id = $1"))
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        mine_from_row(&row)
    }

    async fn list_mines(&self, township: Option<Uuid>) -> StoreResult<Vec<Mine>> {
        let rows = self
            .db
            .query(format!(
                "{SELECT_MINES} where $1 is null or township_id = $1 order by name, id"
            ))
            .bind(township)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(mine_from_row).collect()
    }

    async fn list_mines_of_holder(&self, user: Uuid) -> StoreResult<Vec<Mine>> {
        let rows = self
            .db
            .query(format!(
                "{SELECT_MINES} where holder_user_id = $1 order by name, id"
            ))
            .bind(user)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(mine_from_row).collect()
    }

    async fn set_mine_holder(&self, mine: Uuid, user: Option<Uuid>, now: i64) -> StoreResult<()> {
        let n = self
            .db
            .query("update mines set holder_user_id = $1, updated_at = $2 where id = $3")
            .bind(user)
            .bind(now)
            .bind(mine)
            .execute(&self.db)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn transition_mine(
        &self,
        id: Uuid,
        expected_version: i64,
        facts: &MineFacts,
        event: &MineEvent,
        record: Option<&CaseRecord>,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .query(
                "update mines set facts_json = $1, stage = $2, disposition = $3, \
                 version = version + 1, updated_at = $4 where id = $5 and version = $6",
            )
            .bind(to_json(facts)?)
            .bind(facts.stage.code())
            .bind(facts.disposition.map(|d| d.code()))
            .bind(event.created_at)
            .bind(id)
            .bind(expected_version)
            .execute(&mut tx)
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict {
                constraint: "mines_version".into(),
            });
        }
        tx.query(
            "insert into mine_events (id, mine_id, transition, from_stage, to_stage, \
             actor_id, reason, data_json, as_of, recorded_on, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(&event.recorded_on)
        .bind(event.created_at)
        .execute(&mut tx)
        .await?;
        if let Some(c) = record {
            insert_case_record(&self.db, c, &mut tx).await?;
        }
        tx.commit().await
    }

    async fn list_mine_events(&self, mine_id: Uuid) -> StoreResult<Vec<MineEvent>> {
        let rows = self
            .db
            .query(
                "select id, mine_id, transition, from_stage, to_stage, actor_id, reason, \
                 data_json, as_of, recorded_on, created_at from mine_events where mine_id = $1 \
                 order by created_at, id",
            )
            .bind(mine_id)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn list_township_mine_events(
        &self,
        township: Option<Uuid>,
        until: &str,
    ) -> StoreResult<Vec<MineEvent>> {
        let rows = self
            .db
            .query(
                "select e.id, e.mine_id, e.transition, e.from_stage, e.to_stage, e.actor_id, \
                 e.reason, e.data_json, e.as_of, e.recorded_on, e.created_at \
                 from mine_events e join mines m on m.id = e.mine_id \
                 where ($1 is null or m.township_id = $1) and e.as_of <= $2 \
                 order by e.mine_id, e.created_at, e.id",
            )
            .bind(township)
            .bind(until)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn add_case_record(&self, c: &CaseRecord) -> StoreResult<()> {
        insert_case_record(&self.db, c, &self.db).await
    }

    async fn list_case_records(&self, mine_id: Uuid) -> StoreResult<Vec<CaseRecord>> {
        let rows = self
            .db
            .query(
                "select id, mine_id, kind, data_json, created_by, created_at from case_records \
                 where mine_id = $1 order by created_at, id",
            )
            .bind(mine_id)
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CaseRecord {
                    id: r.get("id")?,
                    mine_id: r.get("mine_id")?,
                    kind: r.get("kind")?,
                    data: from_json(&r.get::<String>("data_json")?)?,
                    created_by: r.get("created_by")?,
                    created_at: r.get("created_at")?,
                })
            })
            .collect()
    }
}

/// Insert one case record, on the pool or in a transaction.
async fn insert_case_record<'e>(
    db: &Pool,
    c: &CaseRecord,
    on: impl Into<On<'e>>,
) -> StoreResult<()> {
    db.query(
        "insert into case_records (id, mine_id, kind, data_json, created_by, created_at) \
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.id)
    .bind(c.mine_id)
    .bind(&c.kind)
    .bind(to_json(&c.data)?)
    .bind(c.created_by)
    .bind(c.created_at)
    .execute(on)
    .await?;
    Ok(())
}

fn mine_from_row(r: &Row) -> StoreResult<Mine> {
    let boundary: Option<String> = r.get("boundary_json")?;
    Ok(Mine {
        id: r.get("id")?,
        name: r.get("name")?,
        licence_no: r.get("licence_no")?,
        holder: r.get("holder")?,
        holder_user_id: r.get("holder_user_id")?,
        township_id: r.get("township_id")?,
        mineral: r.get("mineral")?,
        mining_method: r.get("mining_method")?,
        area_ha: r.get("area_ha")?,
        boundary: boundary.as_deref().map(from_json).transpose()?,
        campaign_id: r.get("campaign_id")?,
        facts: from_json(&r.get::<String>("facts_json")?)?,
        version: r.get("version")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn event_from_row(r: &Row) -> StoreResult<MineEvent> {
    Ok(MineEvent {
        id: r.get("id")?,
        mine_id: r.get("mine_id")?,
        transition: r.get("transition")?,
        from_stage: r.get("from_stage")?,
        to_stage: r.get("to_stage")?,
        actor_id: r.get("actor_id")?,
        reason: r.get("reason")?,
        data: from_json(&r.get::<String>("data_json")?)?,
        as_of: r.get("as_of")?,
        recorded_on: r.get("recorded_on")?,
        created_at: r.get("created_at")?,
    })
}
