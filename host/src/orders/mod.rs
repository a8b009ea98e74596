//! Orders: placed from a cart priced by the policies, paid with points,
//! cancelled or expired with their stock and coupon restored exactly once.
//!
//! Row locks are always taken in one order — the order row, then product
//! rows in id order, then the coupon, then the wallet — so two transactions
//! never wait on each other in a cycle.

mod close;
mod pay;
mod place;
mod stock;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

pub use pay::Payment;
pub use place::Cart;

use crate::{
    error::{Error, Result},
    idempotency::{IdempotentRequest, Outcome},
    identity::{Acting, OrderScope},
    outbox,
    paging::{Page, PageRequest},
    policy::Registry,
    popular,
    quote::{self, Adjustment, PolicyVersions, Quote},
    redis::Redis,
};

/// The order service: quotes, placing, paying, cancelling and expiring
/// orders. Each write wakes this instance's outbox relay when it wrote an
/// event, and drops the popular-products rankings when paid orders changed.
pub struct Orders {
    db: PgPool,
    redis: Redis,
    /// The versions orders and quotes are priced with.
    policies: Arc<Registry>,
    /// Wakes this instance's outbox relay after a commit that wrote events.
    outbox_wake: Arc<Notify>,
    ttl: Duration,
}

impl Orders {
    pub(crate) fn new(
        db: PgPool,
        redis: Redis,
        policies: Arc<Registry>,
        outbox_wake: Arc<Notify>,
        ttl: Duration,
    ) -> Self {
        Self {
            db,
            redis,
            policies,
            outbox_wake,
            ttl,
        }
    }

    /// What the cart would cost, by the active policies; nothing is written.
    pub async fn quote(&self, acting: Acting, cart: Cart) -> Result<Quote> {
        let inputs =
            quote::gather(&self.db, acting.user_id(), &cart.items, cart.user_coupon_id).await?;
        quote::evaluate(self.policies.snapshot(), inputs).await
    }

    pub async fn place(
        &self,
        acting: Acting,
        cart: Cart,
        key: Option<&IdempotentRequest>,
    ) -> Result<Outcome<Order>> {
        let policies = self.policies.snapshot();
        let outcome = place::place(&self.db, policies, self.ttl, acting, cart, key).await?;
        if matches!(outcome, Outcome::Fresh(_)) {
            self.outbox_wake.notify_one();
        }
        Ok(outcome)
    }

    pub async fn pay(
        &self,
        acting: Acting,
        order_id: i64,
        key: Option<&IdempotentRequest>,
    ) -> Result<Outcome<Payment>> {
        let outcome = pay::pay(&self.db, order_id, acting.user_id(), key).await?;
        if matches!(outcome, Outcome::Fresh(_)) {
            self.outbox_wake.notify_one();
            popular::evict(&self.redis).await;
        }
        Ok(outcome)
    }

    /// Cancels the order; another user's order is `ORDER_NOT_FOUND`.
    pub async fn cancel(&self, scope: OrderScope, order_id: i64) -> Result<Order> {
        let cancelled = close::cancel(&self.db, scope, order_id).await?;
        self.outbox_wake.notify_one();
        if cancelled.was_paid {
            popular::evict(&self.redis).await;
        }
        Ok(cancelled.order)
    }

    /// One order; another user's is `ORDER_NOT_FOUND`.
    pub async fn find(&self, scope: OrderScope, id: i64) -> Result<Order> {
        let order = read(&mut *self.db.acquire().await?, id).await?;
        if scope.allows(order.user_id) {
            Ok(order)
        } else {
            Err(Error::OrderNotFound(id))
        }
    }

    /// The user's orders, newest first.
    pub async fn of_user(&self, acting: Acting, page: PageRequest) -> Result<Page<Order>> {
        of_user(&self.db, acting.user_id(), page).await
    }

    /// Expires unpaid orders past their time every second, until `stop`.
    pub(crate) async fn expire_periodically(self: Arc<Self>, stop: CancellationToken) {
        close::expire_periodically(&self.db, &self.outbox_wake, stop).await;
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct OrderLine {
    pub product_id: i64,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub discount: i64,
    pub line_total: i64,
    /// Why the pricing policy took something off this line; empty when it did not.
    pub reason: String,
    /// Who took what off this line; they add up to `discount`.
    #[sqlx(skip)]
    pub adjustments: Vec<Adjustment>,
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub user_coupon_id: Option<i64>,
    pub policies: PolicyVersions,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    /// When it was cancelled or expired.
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
struct OrderRow {
    id: i64,
    user_id: i64,
    status: OrderStatus,
    subtotal: i64,
    discount: i64,
    total: i64,
    user_coupon_id: Option<i64>,
    pricing_policy: String,
    coupon_policy: String,
    order_rules_policy: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

const ORDER_COLUMNS: &str = "id, user_id, status, subtotal, discount, total, user_coupon_id,
    pricing_policy, coupon_policy, order_rules_policy, created_at, expires_at, paid_at, closed_at";

impl OrderRow {
    fn with_lines(self, mut items: Vec<OrderLine>) -> Order {
        for line in &mut items {
            line.adjustments =
                Adjustment::of_base(&self.pricing_policy, line.discount, &line.reason);
        }
        Order {
            id: self.id,
            user_id: self.user_id,
            status: self.status,
            items,
            subtotal: self.subtotal,
            discount: self.discount,
            total: self.total,
            user_coupon_id: self.user_coupon_id,
            policies: PolicyVersions {
                pricing: self.pricing_policy,
                coupon: self.coupon_policy,
                order_rules: self.order_rules_policy,
            },
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at: self.paid_at,
            closed_at: self.closed_at,
        }
    }
}

/// An order's event as the outbox publishes it (`order.placed`,
/// `order.paid`, `order.cancelled`, `order.expired`); the relay adds
/// `event_id`, `type` and `occurred_at`.
#[derive(Serialize)]
struct OrderEvent<'a> {
    order_id: i64,
    user_id: i64,
    status: OrderStatus,
    total: i64,
    items: &'a [OrderLine],
    /// The promotions that took something off; a slot runs its base
    /// policy alone, so none.
    promotions: [(); 0],
    /// The experiment arm the order was in, by slot; none runs.
    arms: std::collections::BTreeMap<String, String>,
}

/// Writes `kind` about `order` in the transaction that changed it.
async fn record_event(tx: &mut PgConnection, kind: &str, order: &Order) -> Result<()> {
    let event = OrderEvent {
        order_id: order.id,
        user_id: order.user_id,
        status: order.status,
        total: order.total,
        items: &order.items,
        promotions: [],
        arms: Default::default(),
    };
    outbox::record(tx, kind, order.id, &event).await
}

/// Reads one order with its lines.
async fn read(conn: &mut PgConnection, id: i64) -> Result<Order> {
    let row: OrderRow =
        sqlx::query_as(&format!("select {ORDER_COLUMNS} from orders where id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(Error::OrderNotFound(id))?;
    let mut lines = lines_of(conn, &[id]).await?;
    Ok(row.with_lines(lines.remove(&id).unwrap_or_default()))
}

/// The lines of several orders, by order id.
async fn lines_of(conn: &mut PgConnection, ids: &[i64]) -> Result<HashMap<i64, Vec<OrderLine>>> {
    let rows: Vec<(i64, OrderLine)> = sqlx::query_as::<_, LineRow>(
        "select order_id, product_id, name, quantity, unit_price, discount, line_total, reason
           from order_lines
          where order_id = any($1)
          order by order_id, line_no",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| (row.order_id, row.line))
    .collect();
    let mut by_order: HashMap<i64, Vec<OrderLine>> = HashMap::new();
    for (order_id, line) in rows {
        by_order.entry(order_id).or_default().push(line);
    }
    Ok(by_order)
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: i64,
    #[sqlx(flatten)]
    line: OrderLine,
}

async fn of_user(db: &PgPool, user_id: i64, page: PageRequest) -> Result<Page<Order>> {
    let mut conn = db.acquire().await?;
    crate::users::ensure_exists(&mut conn, user_id).await?;
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "select {ORDER_COLUMNS} from orders where user_id = $1 order by id desc limit $2 offset $3"
    ))
    .bind(user_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar("select count(*) from orders where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let mut lines = lines_of(&mut conn, &ids).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let own = lines.remove(&row.id).unwrap_or_default();
            row.with_lines(own)
        })
        .collect();
    Ok(page.with(items, total))
}
