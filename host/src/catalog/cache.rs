//! Recently read catalogue pages and counted totals, per process.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{PgPool, QueryBuilder};

use super::{COLUMNS, Filter, Product, Sort};
use crate::{
    error::{Error, Result},
    paging::{Page, PageRequest},
};

/// Recently read pages and counted totals. The catalogue is read far more
/// than it changes, and counting a large catalogue costs more than reading a
/// page, so pages and totals are kept a short while; every catalogue write,
/// through any instance, clears both (see [`super::Catalog`]).
///
/// A page is refreshed ahead: once it is about [`PAGE_FRESH`] old, the next
/// request that reads it starts one read of the database in the background
/// and is served the kept page meanwhile. A page is never served older than
/// [`PAGE_MAX_AGE`]: one nobody asked for that long is read while its
/// request waits. So a page that is read often is never waited for, and is
/// read from the database about once per [`PAGE_FRESH`] per instance.
#[derive(Clone)]
pub(crate) struct ReadCache {
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
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.invalidate_all();
        self.totals.invalidate_all();
    }

    /// A page of the catalogue; concurrent misses of one page wait for a
    /// single read.
    pub(crate) async fn list(
        &self,
        db: &PgPool,
        filter: &Filter,
        page: PageRequest,
    ) -> Result<Arc<Page<Product>>> {
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

    async fn count(&self, db: &PgPool, filter: &Filter) -> Result<i64> {
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
                    Error::ServiceUnavailable("the database is unavailable; retry shortly".into())
                }
                _ => Error::Internal(anyhow::anyhow!(err)),
            })
    }
}

async fn list(
    db: &PgPool,
    cache: &ReadCache,
    filter: &Filter,
    page: PageRequest,
) -> Result<Page<Product>> {
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
