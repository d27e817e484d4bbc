//! The catalog: organisation data (departments, specialties, townships), campaign files and
//! template versions.

use async_trait::async_trait;

use super::{SqlStore, StoreResult, sql::Row};
use crate::model::{Department, Specialty, Township};

/// Organisation data, campaigns and templates.
#[async_trait]
pub trait CatalogStore {
    async fn list_departments(&self) -> StoreResult<Vec<Department>>;
    async fn list_specialties(&self) -> StoreResult<Vec<Specialty>>;
    async fn list_townships(&self) -> StoreResult<Vec<Township>>;
    async fn create_township(&self, township: &Township) -> StoreResult<()>;

    /// Store a campaign file unless one with this id exists (stamped `now`); returns the stored
    /// (title, source).
    async fn ensure_campaign(
        &self,
        id: &str,
        title: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<(String, String)>;
    async fn get_campaign(&self, id: &str) -> StoreResult<(String, String)>;

    async fn get_template_source(&self, template_ref: &str) -> StoreResult<String>;
    /// Store a template version unless one with this `id@version` exists (versions are
    /// immutable: a changed template is a new version), stamped `now`. Returns the stored
    /// source.
    async fn ensure_template(
        &self,
        template_ref: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<String>;
    /// Every stored template version as (ref, source).
    async fn list_templates(&self) -> StoreResult<Vec<(String, String)>>;
}

/// Insert a template version unless it exists (also used when a round is opened).
pub(super) const INSERT_TEMPLATE: &str = "insert into templates (ref, source, created_at) \
     values ($1, $2, $3) on conflict (ref) do nothing";

#[async_trait]
impl CatalogStore for SqlStore {
    async fn list_departments(&self) -> StoreResult<Vec<Department>> {
        let rows = self
            .db
            .query("select code, name, observer, sort_order from departments order by sort_order")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Department {
                    code: r.get("code")?,
                    name: r.get("name")?,
                    observer: r.get("observer")?,
                    sort_order: r.get("sort_order")?,
                })
            })
            .collect()
    }

    async fn list_specialties(&self) -> StoreResult<Vec<Specialty>> {
        let rows = self
            .db
            .query("select code, name from specialties order by code")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Specialty {
                    code: r.get("code")?,
                    name: r.get("name")?,
                })
            })
            .collect()
    }

    async fn list_townships(&self) -> StoreResult<Vec<Township>> {
        let rows = self
            .db
            .query("select id, name, kind, created_at from townships order by name")
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(township_from_row).collect()
    }

    async fn create_township(&self, t: &Township) -> StoreResult<()> {
        self.db
            .query("insert into townships (id, name, kind, created_at) values ($1, $2, $3, $4)")
            .bind(t.id)
            .bind(&t.name)
            .bind(&t.kind)
            .bind(t.created_at)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn ensure_campaign(
        &self,
        id: &str,
        title: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<(String, String)> {
        self.db
            .query(
                "insert into campaigns (id, title, source, created_at) values ($1, $2, $3, $4) \
                 on conflict (id) do nothing",
            )
            .bind(id)
            .bind(title)
            .bind(source)
            .bind(now)
            .execute(&self.db)
            .await?;
        self.get_campaign(id).await
    }

    async fn get_campaign(&self, id: &str) -> StoreResult<(String, String)> {
        let row = self
            .db
            .query("select title, source from campaigns where id = $1")
            .bind(id)
            .fetch_one(&self.db)
            .await?;
        Ok((row.get("title")?, row.get("source")?))
    }

    async fn get_template_source(&self, template_ref: &str) -> StoreResult<String> {
        let row = self
            .db
            .query("select source from templates where ref = $1")
            .bind(template_ref)
            .fetch_one(&self.db)
            .await?;
        row.get("source")
    }

    async fn ensure_template(
        &self,
        template_ref: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<String> {
        self.db
            .query(INSERT_TEMPLATE)
            .bind(template_ref)
            .bind(source)
            .bind(now)
            .execute(&self.db)
            .await?;
        self.get_template_source(template_ref).await
    }

    async fn list_templates(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = self
            .db
            .query("select ref, source from templates order by ref")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| Ok((r.get("ref")?, r.get("source")?)))
            .collect()
    }
}

fn township_from_row(r: &Row) -> StoreResult<Township> {
    Ok(Township {
        id: r.get("id")?,
        name: r.get("name")?,
        kind: r.get("kind")?,
        created_at: r.get("created_at")?,
    })
}
