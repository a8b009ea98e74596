//! The product catalogue: filtered, sorted pages; detail; admin create and patch.
//!
//! Pages are served from a short-lived per-process cache ([`cache`]), so a
//! write must reach every instance's cache: the transaction that changes a
//! product sends a PostgreSQL `NOTIFY` on [`CHANNEL`], delivered when it
//! commits, and every instance's [`Catalog::follow`] clears its cache when
//! one arrives. The writing instance clears its own at once, before it
//! answers. A follower that loses its connection clears its cache when it
//! is back, since it may have missed a change meanwhile.

mod cache;

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::{
    audit::{self, Actor},
    db,
    error::{Error, Result},
    paging::{Page, PageRequest},
    popular,
    redis::Redis,
    validate,
};
use cache::ReadCache;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_CATEGORY_CHARS: usize = 100;
pub const MAX_PRICE: i64 = 1_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: String,
    /// Unit list price in won.
    pub price: i64,
    pub stock: i32,
    pub created_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str = "id, name, category, price, stock, created_at";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
}

impl Sort {
    /// Each order ends on `id` so that equal keys never swap between pages;
    /// every order has an index that serves it (see the migrations).
    fn order_by(self) -> &'static str {
        match self {
            Sort::Newest => " order by created_at desc, id desc",
            Sort::PriceAsc => " order by price asc, id asc",
            Sort::PriceDesc => " order by price desc, id desc",
            Sort::Name => " order by name asc, id asc",
        }
    }
}

/// A validated catalogue query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub name: Option<String>,
    pub category: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
    pub sort: Sort,
}

impl Filter {
    pub fn validate(self) -> Result<Self> {
        if let Some(name) = &self.name {
            validate::search("name", name, MAX_NAME_CHARS)?;
        }
        if let Some(category) = &self.category {
            validate::search("category", category, MAX_CATEGORY_CHARS)?;
        }
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if value.is_some_and(|price| price < 0) {
                return Err(Error::invalid(format!("{field} must not be negative")));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return Err(Error::invalid("min_price must not exceed max_price"));
        }
        Ok(self)
    }

    /// Appends the `where` clause; every value is a bind parameter.
    fn push_where<'a>(&'a self, sql: &mut QueryBuilder<'a, Postgres>) {
        sql.push(" where true");
        if let Some(name) = &self.name {
            sql.push(" and name ilike ").push_bind(like_pattern(name));
        }
        if let Some(category) = &self.category {
            sql.push(" and category = ").push_bind(category);
        }
        if let Some(min) = self.min_price {
            sql.push(" and price >= ").push_bind(min);
        }
        if let Some(max) = self.max_price {
            sql.push(" and price <= ").push_bind(max);
        }
        match self.in_stock {
            Some(true) => sql.push(" and stock > 0"),
            Some(false) => sql.push(" and stock = 0"),
            None => sql,
        };
    }
}

/// `%text%` with the `ilike` wildcards in `text` escaped, so a search for
/// "50%" finds "50%" and not everything that starts with "50".
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
/// The PostgreSQL channel that announces a catalogue change.
const CHANNEL: &str = "catalog_changed";

/// The catalogue: reads through this process's cache, writes that every
/// instance sees within a second.
pub struct Catalog {
    db: PgPool,
    /// A direct connection (not through a transaction pooler) for LISTEN.
    listen_db: PgPool,
    redis: Redis,
    cache: ReadCache,
}

impl Catalog {
    pub(crate) fn new(db: PgPool, listen_db: PgPool, redis: Redis) -> Self {
        Self {
            db,
            listen_db,
            redis,
            cache: ReadCache::default(),
        }
    }

    pub async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Arc<Page<Product>>> {
        self.cache.list(&self.db, filter, page).await
    }

    /// The best sellers of the last `days` days.
    pub async fn popular(&self, days: u32, limit: u32) -> Result<popular::Popular> {
        if !popular::DAYS.contains(&days) || !popular::LIMIT.contains(&limit) {
            return Err(Error::invalid("days must be 1-30 and limit 1-50"));
        }
        popular::top(&self.db, &self.redis, days, limit).await
    }

    pub async fn find(&self, id: i64) -> Result<Product> {
        sqlx::query_as(&format!("select {COLUMNS} from products where id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or(Error::ProductNotFound(id))
    }

    pub async fn create(&self, actor: &Actor, new: NewProduct) -> Result<Product> {
        let patch = ProductPatch {
            name: Some(new.name),
            category: Some(new.category),
            price: Some(new.price),
            stock: Some(new.stock),
        };
        patch.validate()?;
        let mut tx = self.db.begin().await?;
        let product = sqlx::query_as(&format!(
            "insert into products (name, category, price, stock)
             values ($1, $2, $3, $4)
             returning {COLUMNS}"
        ))
        .bind(patch.name.as_deref().map(str::trim))
        .bind(patch.category.as_deref().map(str::trim))
        .bind(patch.price)
        .bind(patch.stock.map(|s| s as i32))
        .fetch_one(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            product_change("product.create", None, &product),
        )
        .await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed().await;
        Ok(product)
    }

    pub async fn update(&self, actor: &Actor, id: i64, patch: ProductPatch) -> Result<Product> {
        patch.validate()?;
        if patch.name.is_none()
            && patch.category.is_none()
            && patch.price.is_none()
            && patch.stock.is_none()
        {
            return Err(Error::invalid(
                "give at least one of name, category, price, stock",
            ));
        }
        let mut tx = self.db.begin().await?;
        let before: Product = sqlx::query_as(&format!(
            "select {COLUMNS} from products where id = $1 for update"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::ProductNotFound(id))?;
        let product = sqlx::query_as(&format!(
            "update products
                set name = coalesce($2, name),
                    category = coalesce($3, category),
                    price = coalesce($4, price),
                    stock = coalesce($5, stock)
              where id = $1
          returning {COLUMNS}"
        ))
        .bind(id)
        .bind(patch.name.as_deref().map(str::trim))
        .bind(patch.category.as_deref().map(str::trim))
        .bind(patch.price)
        .bind(patch.stock.map(|s| s as i32))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::ProductNotFound(id))?;
        audit::record(
            &mut tx,
            actor,
            product_change("product.update", Some(&before), &product),
        )
        .await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed().await;
        Ok(product)
    }

    /// After a committed write: this instance's pages and the shared
    /// popular-products rankings (which show names and prices) go.
    async fn changed(&self) {
        self.cache.clear();
        popular::evict(&self.redis).await;
    }

    /// Clears this instance's cache whenever any instance changes the
    /// catalogue, until `stop`.
    pub(crate) async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let cache = self.cache.clone();
        db::follow(&self.listen_db, CHANNEL, stop, move |_| cache.clear()).await;
    }
}

/// A product's creation or change as the audit log records it.
fn product_change<'a>(
    action: &'a str,
    before: Option<&Product>,
    after: &Product,
) -> audit::Change<'a> {
    audit::Change {
        action,
        target: format!("product:{}", after.id),
        before: before.and_then(|before| serde_json::to_value(before).ok()),
        after: serde_json::to_value(after).ok(),
    }
}

/// Announces a change to every instance when `tx` commits.
async fn announce(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("select pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}

/// A new product, as the admin API receives it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub name: String,
    pub category: String,
    pub price: i64,
    pub stock: i64,
}

/// Changes to a product; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub category: Option<String>,
    pub price: Option<i64>,
    pub stock: Option<i64>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    validate::text(field, value, max).map(drop)
}

fn check_range(field: &str, value: i64, max: i64) -> Result<()> {
    if !(0..=max).contains(&value) {
        return Err(Error::invalid(format!("{field} must be 0-{max}")));
    }
    Ok(())
}

impl ProductPatch {
    fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            check_text("name", name, MAX_NAME_CHARS)?;
        }
        if let Some(category) = &self.category {
            check_text("category", category, MAX_CATEGORY_CHARS)?;
        }
        if let Some(price) = self.price {
            check_range("price", price, MAX_PRICE)?;
        }
        if let Some(stock) = self.stock {
            check_range("stock", stock, MAX_STOCK)?;
        }
        Ok(())
    }
}

/// A product as the policies see it when they price a cart.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PricedProduct {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) category: String,
    pub(crate) price: i64,
}

/// The products among `ids` that exist, by id, with their current prices.
/// Read without locks: an order checks the prices again under its locks.
pub(crate) async fn priced(db: &PgPool, ids: &[i64]) -> Result<HashMap<i64, PricedProduct>> {
    let products: Vec<PricedProduct> =
        sqlx::query_as("select id, name, category, price from products where id = any($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(products.into_iter().map(|p| (p.id, p)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_pattern("tea"), "%tea%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn a_price_range_must_be_ordered_and_not_negative() {
        let range = |min, max| Filter {
            min_price: min,
            max_price: max,
            ..Filter::default()
        };
        assert!(range(Some(10), Some(10)).validate().is_ok());
        assert!(range(Some(11), Some(10)).validate().is_err());
        assert!(range(Some(-1), None).validate().is_err());
    }
}
