//! The backend-dispatch layer: the SQL of every concern is written once, against these types.
//!
//! Both backends accept the same statements (`$N` placeholders, `on conflict`, `returning`) and
//! sqlx maps `Uuid`, `bool`, `i32`, `i64`, text and bytes to each backend's column types, so the
//! only thing that differs is the sqlx type a value travels in. Here an enum holds either
//! backend's pool, transaction, connection and row, and [`Query`] binds each value straight into
//! the arguments of the backend it will run on:
//!
//! ```text
//! let row = db
//!     .query("select name from users where id = $1")
//!     .bind(id)
//!     .fetch_optional(&db)
//!     .await?;
//! ```
//!
//! Why not `impl<DB: sqlx::Database>` code generic over the backend: sqlx's bounds
//! (`for<'c> &'c mut DB::Connection: Executor<'c>`, `T: Encode<'q, DB> + Type<DB>` for every bound
//! type, `usize: ColumnIndex<DB::Row>`, …) are not implied by `DB: Database` and would have to be
//! repeated on every impl and every helper, and each method would still be compiled twice. Here
//! the requirement is stated once, in [`Arg`] and [`Col`] ("encodes/decodes for both backends"),
//! and each SQL function is compiled once; the price is a `match` per execution, which is
//! nothing next to a round trip to the database.

use std::borrow::Cow;

use sqlx::{
    Arguments, Decode, Encode, Postgres, Sqlite, Type,
    pool::PoolConnection,
    postgres::{PgArguments, PgConnection, PgPool, PgRow},
    sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow},
};

use super::{StoreError, StoreResult};

/// A value that can be bound as a parameter on both backends.
pub trait Arg<'q>:
    'q + Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>
{
}

impl<'q, T> Arg<'q> for T where
    T: 'q + Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>
{
}

/// A column type that can be read on both backends.
pub trait Col:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Col for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A pool of either backend.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// A statement to run on this pool (or on a transaction or connection of it).
    pub fn query<'q>(&self, sql: impl Into<Cow<'q, str>>) -> Query<'q> {
        Query::new(self.args(), sql)
    }

    fn args<'q>(&self) -> Args<'q> {
        match self {
            Pool::Sqlite(_) => Args::Sqlite(SqliteArguments::default()),
            Pool::Postgres(_) => Args::Postgres(PgArguments::default()),
        }
    }

    /// A transaction with the backend's default `BEGIN`.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// One connection for several statements in a row.
    pub async fn acquire(&self) -> StoreResult<Conn> {
        Ok(match self {
            Pool::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Conn::Postgres(p.acquire().await?),
        })
    }
}

/// A transaction of either backend; dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// A statement to run in this transaction.
    pub fn query<'q>(&self, sql: impl Into<Cow<'q, str>>) -> Query<'q> {
        let args = match self {
            Tx::Sqlite(_) => Args::Sqlite(SqliteArguments::default()),
            Tx::Postgres(_) => Args::Postgres(PgArguments::default()),
        };
        Query::new(args, sql)
    }

    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// A pooled connection of either backend.
#[derive(Debug)]
pub enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Where a statement runs: a pool, or one connection (a transaction's or an acquired one).
#[derive(Debug)]
pub enum On<'e> {
    SqlitePool(&'e SqlitePool),
    PgPool(&'e PgPool),
    Sqlite(&'e mut SqliteConnection),
    Postgres(&'e mut PgConnection),
}

impl<'e> From<&'e Pool> for On<'e> {
    fn from(p: &'e Pool) -> Self {
        match p {
            Pool::Sqlite(p) => On::SqlitePool(p),
            Pool::Postgres(p) => On::PgPool(p),
        }
    }
}

impl<'e> From<&'e mut Tx> for On<'e> {
    fn from(t: &'e mut Tx) -> Self {
        match t {
            Tx::Sqlite(t) => On::Sqlite(t),
            Tx::Postgres(t) => On::Postgres(t),
        }
    }
}

impl<'e> From<&'e mut Conn> for On<'e> {
    fn from(c: &'e mut Conn) -> Self {
        match c {
            Conn::Sqlite(c) => On::Sqlite(c),
            Conn::Postgres(c) => On::Postgres(c),
        }
    }
}

/// A result row of either backend.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Sqlite(_) => f.write_str("Row::Sqlite"),
            Row::Postgres(r) => r.fmt(f),
        }
    }
}

impl Row {
    /// The value of column `name`.
    pub fn get<T: Col>(&self, name: &str) -> StoreResult<T> {
        use sqlx::Row as _;
        Ok(match self {
            Row::Sqlite(r) => r.try_get(name)?,
            Row::Postgres(r) => r.try_get(name)?,
        })
    }
}

#[derive(Debug)]
enum Args<'q> {
    Sqlite(SqliteArguments<'q>),
    Postgres(PgArguments),
}

/// A statement with its bound parameters, for the backend it was made for.
///
/// Parameters are `$1`, `$2`, … in hand-written SQL on both backends (sqlx's SQLite driver
/// binds `$N` by number). [`Query::push`], [`Query::push_bind`], [`Query::push_values`] and
/// [`Query::push_id_list`] build multi-row statements, adding each backend's cheapest
/// placeholder (see [`Query::push_bind`]).
#[derive(Debug)]
#[must_use = "a query does nothing until it is executed"]
pub struct Query<'q> {
    sql: Cow<'q, str>,
    args: Args<'q>,
    /// The first parameter that failed to encode (reported when the query runs, like sqlx).
    error: Option<String>,
}

impl<'q> Query<'q> {
    fn new(args: Args<'q>, sql: impl Into<Cow<'q, str>>) -> Self {
        Self {
            sql: sql.into(),
            args,
            error: None,
        }
    }

    fn len(&self) -> usize {
        match &self.args {
            Args::Sqlite(a) => a.len(),
            Args::Postgres(a) => a.len(),
        }
    }

    fn add<T: Arg<'q>>(&mut self, value: T) {
        let n = self.len() + 1;
        let added = match &mut self.args {
            Args::Sqlite(a) => a.add(value),
            Args::Postgres(a) => a.add(value),
        };
        if let Err(e) = added
            && self.error.is_none()
        {
            self.error = Some(format!("encoding parameter ${n} failed: {e}"));
        }
    }

    /// Bind the next parameter (`$1` first).
    pub fn bind<T: Arg<'q>>(mut self, value: T) -> Self {
        self.add(value);
        self
    }

    /// Append SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Append a placeholder for the next parameter and bind `value` to it.
    ///
    /// On SQLite the placeholder is a bare `?`, not `$N`: SQLite looks a named parameter up by
    /// a linear scan (when it parses and when sqlx binds), so a 5,000-parameter insert with
    /// `$N` cost quadratic time, five times the whole sync write path. A statement built with
    /// `push_bind` must therefore have no hand-written `$N` of its own.
    pub fn push_bind<T: Arg<'q>>(&mut self, value: T) -> &mut Self {
        self.add(value);
        let n = self.len();
        let sql = self.sql.to_mut();
        match self.args {
            Args::Sqlite(_) => sql.push('?'),
            Args::Postgres(_) => {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
        self
    }

    /// Append `values (…), (…)` with one tuple per item; `row` binds one item's columns
    /// through [`Values::bind`].
    pub fn push_values<I: IntoIterator>(
        &mut self,
        items: I,
        mut row: impl FnMut(&mut Values<'_, 'q>, I::Item),
    ) -> &mut Self {
        self.push("values ");
        for (i, item) in items.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            row(
                &mut Values {
                    query: self,
                    first: true,
                },
                item,
            );
            self.push(")");
        }
        self
    }

    /// Append `($a, $b, …)` binding each id (callers chunk the ids to stay far below both
    /// backends' parameter limits).
    pub fn push_id_list(&mut self, ids: impl IntoIterator<Item = uuid::Uuid>) -> &mut Self {
        self.push("(");
        for (i, id) in ids.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(id);
        }
        self.push(")")
    }

    fn check(&mut self) -> StoreResult<()> {
        match self.error.take() {
            Some(e) => Err(StoreError::Other(e)),
            None => Ok(()),
        }
    }

    /// Run the statement; returns the number of rows it affected.
    pub async fn execute<'e>(mut self, on: impl Into<On<'e>>) -> StoreResult<u64> {
        self.check()?;
        let sql = &*self.sql;
        Ok(match (self.args, on.into()) {
            (Args::Sqlite(a), On::SqlitePool(p)) => {
                sqlx::query_with(sql, a).execute(p).await?.rows_affected()
            }
            (Args::Sqlite(a), On::Sqlite(c)) => {
                sqlx::query_with(sql, a).execute(c).await?.rows_affected()
            }
            (Args::Postgres(a), On::PgPool(p)) => {
                sqlx::query_with(sql, a).execute(p).await?.rows_affected()
            }
            (Args::Postgres(a), On::Postgres(c)) => {
                sqlx::query_with(sql, a).execute(c).await?.rows_affected()
            }
            _ => return Err(mismatch()),
        })
    }

    /// Every result row.
    pub async fn fetch_all<'e>(mut self, on: impl Into<On<'e>>) -> StoreResult<Vec<Row>> {
        self.check()?;
        let sql = &*self.sql;
        Ok(match (self.args, on.into()) {
            (Args::Sqlite(a), On::SqlitePool(p)) => {
                wrap(sqlx::query_with(sql, a).fetch_all(p).await?, Row::Sqlite)
            }
            (Args::Sqlite(a), On::Sqlite(c)) => {
                wrap(sqlx::query_with(sql, a).fetch_all(c).await?, Row::Sqlite)
            }
            (Args::Postgres(a), On::PgPool(p)) => {
                wrap(sqlx::query_with(sql, a).fetch_all(p).await?, Row::Postgres)
            }
            (Args::Postgres(a), On::Postgres(c)) => {
                wrap(sqlx::query_with(sql, a).fetch_all(c).await?, Row::Postgres)
            }
            _ => return Err(mismatch()),
        })
    }

    /// The first result row, if any.
    pub async fn fetch_optional<'e>(mut self, on: impl Into<On<'e>>) -> StoreResult<Option<Row>> {
        self.check()?;
        let sql = &*self.sql;
        Ok(match (self.args, on.into()) {
            (Args::Sqlite(a), On::SqlitePool(p)) => sqlx::query_with(sql, a)
                .fetch_optional(p)
                .await?
                .map(Row::Sqlite),
            (Args::Sqlite(a), On::Sqlite(c)) => sqlx::query_with(sql, a)
                .fetch_optional(c)
                .await?
                .map(Row::Sqlite),
            (Args::Postgres(a), On::PgPool(p)) => sqlx::query_with(sql, a)
                .fetch_optional(p)
                .await?
                .map(Row::Postgres),
            (Args::Postgres(a), On::Postgres(c)) => sqlx::query_with(sql, a)
                .fetch_optional(c)
                .await?
                .map(Row::Postgres),
            _ => return Err(mismatch()),
        })
    }

    /// The first result row; [`StoreError::NotFound`] if there is none.
    pub async fn fetch_one<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Row> {
        self.fetch_optional(on).await?.ok_or(StoreError::NotFound)
    }
}

/// The columns of one tuple in [`Query::push_values`].
#[derive(Debug)]
pub struct Values<'a, 'q> {
    query: &'a mut Query<'q>,
    first: bool,
}

impl<'q> Values<'_, 'q> {
    /// Bind the next column of the tuple.
    pub fn bind<T: Arg<'q>>(&mut self, value: T) -> &mut Self {
        if !self.first {
            self.query.push(", ");
        }
        self.first = false;
        self.query.push_bind(value);
        self
    }
}

fn wrap<R>(rows: Vec<R>, f: fn(R) -> Row) -> Vec<Row> {
    rows.into_iter().map(f).collect()
}

fn mismatch() -> StoreError {
    StoreError::Other("a statement of one backend was run on the other".into())
}

/// Sequence numbers are `u64` in the protocol and `bigint` in the database. A sync request
/// holding an integer above 2^53 − 1 is refused before it reaches the store
/// (`sync_protocol::check_request`) and commit sequence numbers count up from 1, so these
/// conversions never saturate in practice; they saturate rather than fail.
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(format!("encode: {e}")))
}

pub fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("stored JSON: {e}")))
}
