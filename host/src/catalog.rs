//! The product catalogue: filtered, sorted pages; detail; admin create and patch.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;

use crate::{
    http::error::{ApiError, ApiResult},
    paging::{Page, PageRequest},
    validate,
};

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

const COLUMNS: &str = "id, name, category, price, stock, created_at";

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
    pub fn validate(self) -> ApiResult<Self> {
        if let Some(name) = &self.name {
            validate::search("name", name, MAX_NAME_CHARS)?;
        }
        if let Some(category) = &self.category {
            validate::search("category", category, MAX_CATEGORY_CHARS)?;
        }
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if value.is_some_and(|price| price < 0) {
                return Err(ApiError::invalid(format!("{field} must not be negative")));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return Err(ApiError::invalid("min_price must not exceed max_price"));
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

/// Recently read pages and counted totals. The catalogue is read far more
/// than it changes, and counting a large catalogue costs more than reading a
/// page, so pages and totals are kept a short while; this instance's own
/// catalogue writes clear both at once.
///
/// A page is refreshed ahead: once it is about [`PAGE_FRESH`] old, the next
/// request that reads it starts one read of the database in the background
/// and is served the kept page meanwhile. A page is never served older than
/// [`PAGE_MAX_AGE`]: one nobody asked for that long is read while its
/// request waits. So a page that is read often is never waited for, and is
/// read from the database about once per [`PAGE_FRESH`] per instance.
#[derive(Clone)]
pub struct ReadCache {
    pages: moka::future::Cache<PageKey, Arc<Kept>>,
    totals: moka::future::Cache<Filter, i64>,
    /// Advanced by every [`ReadCache::clear`], so that a refresh that read
    /// before a write does not keep what it read.
    generation: Arc<AtomicU64>,
}

type PageKey = (Filter, u32, u32);

/// A page and when it is due for a refresh.
struct Kept {
    page: Arc<Page<Product>>,
    refresh_at: Instant,
    /// Whether a refresh of this page has started.
    refreshing: AtomicBool,
}

impl Kept {
    /// A page just read, due for a refresh after [`PAGE_FRESH`] give or take
    /// a quarter: pages read together (after a write cleared the cache, or
    /// at start) are refreshed spread out, not all in the same instant.
    fn new(page: Page<Product>) -> Arc<Self> {
        let fresh_for = PAGE_FRESH.mul_f64(rand::random_range(0.75..1.25));
        Arc::new(Self {
            page: Arc::new(page),
            refresh_at: Instant::now() + fresh_for,
            refreshing: AtomicBool::new(false),
        })
    }
}

pub const PAGE_FRESH: Duration = Duration::from_secs(1);
pub const PAGE_MAX_AGE: Duration = Duration::from_secs(3);
pub const TOTAL_TTL: Duration = Duration::from_secs(2);

impl Default for ReadCache {
    fn default() -> Self {
        Self {
            pages: moka::future::Cache::builder()
                .max_capacity(20_000)
                .time_to_live(PAGE_MAX_AGE)
                .build(),
            totals: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TOTAL_TTL)
                .build(),
            generation: Arc::default(),
        }
    }
}

impl ReadCache {
    /// Forgets every page and total, after a write that may change them.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.invalidate_all();
        self.totals.invalidate_all();
    }

    /// A page of the catalogue; concurrent misses of one page wait for a
    /// single read.
    pub async fn list(
        &self,
        db: &PgPool,
        filter: &Filter,
        page: PageRequest,
    ) -> ApiResult<Arc<Page<Product>>> {
        let key = (filter.clone(), page.page, page.size);
        let kept = self
            .pages
            .try_get_with(key.clone(), async {
                list(db, self, filter, page).await.map(Kept::new)
            })
            .await
            .map_err(|err| err.shared())?;
        if Instant::now() >= kept.refresh_at && !kept.refreshing.swap(true, Ordering::AcqRel) {
            self.refresh(db.clone(), key);
        }
        Ok(kept.page.clone())
    }

    /// Reads the page again in the background and keeps it, unless the
    /// catalogue was written meanwhile. A failed refresh keeps the old page
    /// until it is too old to serve.
    fn refresh(&self, db: PgPool, key: PageKey) {
        let cache = self.clone();
        let generation = self.generation.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let (filter, page, size) = &key;
            let request = PageRequest {
                page: *page,
                size: *size,
            };
            match list(&db, &cache, filter, request).await {
                Ok(read) if cache.generation.load(Ordering::SeqCst) == generation => {
                    cache.pages.insert(key, Kept::new(read)).await;
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(%err, "a catalogue page could not be refreshed"),
            }
        });
    }

    async fn count(&self, db: &PgPool, filter: &Filter) -> ApiResult<i64> {
        // Sorting does not change a total, so all sorts share one entry.
        let key = Filter {
            sort: Sort::default(),
            ..filter.clone()
        };
        // Concurrent misses of one filter wait for a single count.
        self.totals
            .try_get_with(key.clone(), async move {
                let mut count = QueryBuilder::new("select count(*) from products");
                key.push_where(&mut count);
                count.build_query_scalar::<i64>().fetch_one(db).await
            })
            .await
            .map_err(|err| match err.as_ref() {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    ApiError::ServiceUnavailable(
                        "the database is unavailable; retry shortly".into(),
                    )
                }
                _ => ApiError::Internal(anyhow::anyhow!(err)),
            })
    }
}

async fn list(
    db: &PgPool,
    cache: &ReadCache,
    filter: &Filter,
    page: PageRequest,
) -> ApiResult<Page<Product>> {
    let mut select = QueryBuilder::new(format!("select {COLUMNS} from products"));
    filter.push_where(&mut select);
    select.push(filter.sort.order_by());
    select.push(" limit ").push_bind(page.limit());
    select.push(" offset ").push_bind(page.offset());
    let items = select.build_query_as::<Product>().fetch_all(db).await?;

    // A short last page already tells the total; only count when it cannot.
    let seen = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let total = if (seen > 0 || page.page == 0) && seen < page.limit() {
        page.offset() + seen
    } else {
        cache.count(db, filter).await?
    };
    Ok(page.with(items, total))
}

pub async fn find(db: &PgPool, id: i64) -> ApiResult<Product> {
    sqlx::query_as(&format!("select {COLUMNS} from products where id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::ProductNotFound(id))
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

fn check_text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    validate::text(field, value, max).map(drop)
}

fn check_range(field: &str, value: i64, max: i64) -> ApiResult<()> {
    if !(0..=max).contains(&value) {
        return Err(ApiError::invalid(format!("{field} must be 0-{max}")));
    }
    Ok(())
}

impl ProductPatch {
    fn validate(&self) -> ApiResult<()> {
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

pub async fn create(db: &PgPool, new: NewProduct) -> ApiResult<Product> {
    let patch = ProductPatch {
        name: Some(new.name),
        category: Some(new.category),
        price: Some(new.price),
        stock: Some(new.stock),
    };
    patch.validate()?;
    let product = sqlx::query_as(&format!(
        "insert into products (name, category, price, stock)
         values ($1, $2, $3, $4)
         returning {COLUMNS}"
    ))
    .bind(patch.name.as_deref().map(str::trim))
    .bind(patch.category.as_deref().map(str::trim))
    .bind(patch.price)
    .bind(patch.stock.map(|s| s as i32))
    .fetch_one(db)
    .await?;
    Ok(product)
}

pub async fn update(db: &PgPool, id: i64, patch: ProductPatch) -> ApiResult<Product> {
    patch.validate()?;
    if patch.name.is_none()
        && patch.category.is_none()
        && patch.price.is_none()
        && patch.stock.is_none()
    {
        return Err(ApiError::invalid(
            "give at least one of name, category, price, stock",
        ));
    }
    sqlx::query_as(&format!(
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
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::ProductNotFound(id))
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
