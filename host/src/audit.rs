//! The audit log: every change made through the admin API, written in the
//! change's own transaction, so a change and its record commit or roll back
//! together. The log keeps what changed (a component by its `name@version`
//! and digest, never its bytes), who changed it and when.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;

use crate::{
    error::Result,
    paging::{Page, PageRequest},
    validate,
};

/// Who made a change: `admin-token`, `user:<sub>`, or `system` for what the
/// server did by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn admin_token() -> Self {
        Self("admin-token".to_owned())
    }

    pub fn user(id: i64) -> Self {
        Self(format!("user:{id}"))
    }

    pub fn system() -> Self {
        Self("system".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One change as the log records it.
pub struct Change<'a> {
    pub action: &'a str,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Records `change` by `actor` in the transaction that makes it.
pub async fn record(tx: &mut PgConnection, actor: &Actor, change: Change<'_>) -> Result<()> {
    sqlx::query(
        "insert into audit_log (actor, action, target, before, after) values ($1, $2, $3, $4, $5)",
    )
    .bind(actor.as_str())
    .bind(change.action)
    .bind(&change.target)
    .bind(change.before.map(sqlx::types::Json))
    .bind(change.after.map(sqlx::types::Json))
    .execute(tx)
    .await?;
    Ok(())
}

/// One recorded change.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `admin-token`, `user:<sub>` or `system`.
    pub actor: String,
    /// What was done, e.g. `policy.swap` or `product.update`.
    pub action: String,
    /// What it was done to, e.g. `policy:pricing` or `product:7`.
    pub target: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<sqlx::types::Json<serde_json::Value>>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<sqlx::types::Json<serde_json::Value>>,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only changes to this target, e.g. `policy:pricing`.
    pub target: Option<String>,
    /// Only changes by this actor, e.g. `admin-token`.
    pub actor: Option<String>,
}

/// Longest `target` or `actor` filter accepted.
const MAX_FILTER_CHARS: usize = 200;

impl Filter {
    pub fn validate(self) -> Result<Self> {
        for (field, value) in [("target", &self.target), ("actor", &self.actor)] {
            if let Some(value) = value {
                validate::search(field, value, MAX_FILTER_CHARS)?;
            }
        }
        Ok(self)
    }

    fn push_where<'a>(&'a self, sql: &mut QueryBuilder<'a, Postgres>) {
        sql.push(" where true");
        if let Some(target) = &self.target {
            sql.push(" and target = ").push_bind(target);
        }
        if let Some(actor) = &self.actor {
            sql.push(" and actor = ").push_bind(actor);
        }
    }
}

/// The entries `filter` selects, newest first.
pub async fn list(db: &PgPool, filter: &Filter, page: PageRequest) -> Result<Page<AuditEntry>> {
    let mut items =
        QueryBuilder::new("select id, at, actor, action, target, before, after from audit_log");
    filter.push_where(&mut items);
    items
        .push(" order by id desc limit ")
        .push_bind(page.limit())
        .push(" offset ")
        .push_bind(page.offset());
    let items: Vec<AuditEntry> = items.build_query_as().fetch_all(db).await?;
    let mut total = QueryBuilder::new("select count(*) from audit_log");
    filter.push_where(&mut total);
    let total: i64 = total.build_query_scalar().fetch_one(db).await?;
    Ok(page.with(items, total))
}
