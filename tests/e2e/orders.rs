use std::time::Duration;

use commerce_tests::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A user holding `points`.
async fn customer(app: &Instance, name: &str, points: i64) -> User {
    let user = app.create_user(name).await;
    let mut left = points;
    while left > 0 {
        let amount = left.min(1_000_000);
        assert_eq!(app.charge(user.id, amount).await.0, StatusCode::OK);
        left -= amount;
    }
    user
}

/// Orders in the deployment's database.
async fn stored_orders(deployment: &Deployment) -> i64 {
    sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&deployment.db)
        .await
        .expect("count")
}

fn id(body: &Value) -> i64 {
    body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_priced_by_the_policies_and_reserves_stock() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = customer(app, "kim", 100_000).await;
    let pen = app.create_product("Pen", "office", 1_500, 20).await;
    let ink = app.create_product("Ink", "office", 4_000, 5).await;
    let (status, order) = app.place_order(user.id, &[(pen.id, 3), (ink.id, 2)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(
        (
            order["subtotal"].as_i64(),
            order["discount"].as_i64(),
            order["total"].as_i64()
        ),
        (Some(12_500), Some(0), Some(12_500))
    );
    assert_eq!(order["items"][0]["line_total"], 4_500);
    assert_eq!(order["items"][1]["name"], "Ink");
    assert_eq!(order["policies"]["pricing"], "pricing-standard@1.0.0");
    assert_eq!(
        order["policies"]["order_rules"],
        "order-rules-standard@1.0.0"
    );
    assert!(order["expires_at"].as_str() > order["created_at"].as_str());
    assert_eq!((app.stock(pen.id).await, app.stock(ink.id).await), (17, 3));
    assert_eq!(app.order(id(&order)).await, order);
    let (status, page) = send(app.get(&format!("/api/v1/users/{}/orders", user.id))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0], order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_of_forty_units_on_two_instances_never_oversell() {
    let deployment = Deployment::start_many(2).await;
    let hot = deployment
        .app()
        .create_product("Limited Sneakers", "fashion", 1_000, 40)
        .await;
    let buyers: Vec<i64> = sqlx::query_scalar(
        "insert into users (name) select 'buyer ' || g from generate_series(1, 200) g returning id",
    )
    .fetch_all(&deployment.db)
    .await
    .expect("buyers");
    let instances = deployment.instances.clone();
    let results = concurrently(200, |n| {
        let (instance, buyer) = (instances[n % 2].clone(), buyers[n]);
        async move { instance.place_order(buyer, &[(hot.id, 1)]).await }
    })
    .await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let sold_out = results
        .iter()
        .filter(|(s, b)| {
            *s == StatusCode::CONFLICT
                && b["code"] == "OUT_OF_STOCK"
                && b["product_ids"][0] == hot.id
        })
        .count();
    assert_eq!(
        (created, sold_out),
        (40, 160),
        "{:?}",
        results
            .iter()
            .find(|(s, _)| *s != StatusCode::CREATED && *s != StatusCode::CONFLICT)
    );
    assert_eq!(deployment.app().stock(hot.id).await, 0);
    let units: i64 = sqlx::query_scalar(
        "select coalesce(sum(quantity), 0)::bigint from order_lines where product_id = $1",
    )
    .bind(hot.id)
    .fetch_one(&deployment.db)
    .await
    .expect("units");
    assert_eq!(units, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_locking_two_products_in_opposite_orders_never_deadlock() {
    let deployment = Deployment::start_many(2).await;
    let a = deployment
        .app()
        .create_product("A", "test", 100, 1_000)
        .await;
    let b = deployment
        .app()
        .create_product("B", "test", 200, 1_000)
        .await;
    let user = deployment.app().create_user("bulk buyer").await;
    let instances = deployment.instances.clone();
    let results = concurrently(300, |n| {
        let instance = instances[n % 2].clone();
        let lines = if n % 2 == 0 {
            [(a.id, 1), (b.id, 2)]
        } else {
            [(b.id, 2), (a.id, 1)]
        };
        async move { instance.place_order(user.id, &lines).await }
    })
    .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(deployment.app().stock(a.id).await, 1_000 - 300);
    assert_eq!(deployment.app().stock(b.id).await, 1_000 - 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_that_covers_one_order_pays_exactly_one_of_two_paid_at_once() {
    let deployment = Deployment::start_many(2).await;
    let app = deployment.app();
    let user = customer(app, "lee", 10_000).await;
    let product = app.create_product("Lamp", "home", 8_000, 10).await;
    let first = id(&app.place_order(user.id, &[(product.id, 1)]).await.1);
    let second = id(&app.place_order(user.id, &[(product.id, 1)]).await.1);
    let (one, two) = (
        deployment.instance(0).clone(),
        deployment.instance(1).clone(),
    );
    let (a, b) = tokio::join!(one.pay(first, user.id), two.pay(second, user.id));
    let paid: Vec<&(StatusCode, Value)> = [&a, &b]
        .into_iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .collect();
    assert_eq!(paid.len(), 1, "{a:?} {b:?}");
    let refused = if a.0 == StatusCode::CREATED { &b } else { &a };
    assert_eq!(refused.0, StatusCode::CONFLICT);
    assert!(
        ["INSUFFICIENT_POINTS", "CONCURRENT_UPDATE"]
            .contains(&refused.1["code"].as_str().unwrap_or_default()),
        "{refused:?}"
    );
    assert_eq!(paid[0].1["balance_after"], 2_000);
    assert_eq!(app.balance(user.id).await, 2_000);
    let history = app.history(user.id).await;
    assert_eq!(
        history.iter().map(HistoryEntry::signed_amount).sum::<i64>(),
        2_000
    );
    // The refused order is still payable once the wallet covers it.
    let unpaid = if a.0 == StatusCode::CREATED {
        second
    } else {
        first
    };
    assert_eq!(app.order(unpaid).await["status"], "pending_payment");
    assert_eq!(app.charge(user.id, 6_000).await.0, StatusCode::OK);
    assert_eq!(app.pay(unpaid, user.id).await.0, StatusCode::CREATED);
    assert_eq!(app.balance(user.id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_checks_the_owner_and_the_status_and_replays_with_the_same_body() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let kim = customer(app, "kim", 50_000).await;
    let lee = customer(app, "lee", 50_000).await;
    let product = app.create_product("Mug", "home", 9_000, 10).await;
    let order = id(&app.place_order(kim.id, &[(product.id, 2)]).await.1);
    expect_problem(
        app.pay_request(order, lee.id),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    expect_problem(
        app.pay_request(999_999, kim.id),
        StatusCode::NOT_FOUND,
        "ORDER_NOT_FOUND",
    )
    .await;

    let first = app
        .pay_request(order, kim.id)
        .header("Idempotency-Key", "pay-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_body = first.bytes().await.expect("a body");
    let again = app
        .pay_request(order, kim.id)
        .header("Idempotency-Key", "pay-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.expect("a body"), first_body);
    let payment: Value = serde_json::from_slice(&first_body).expect("json");
    assert_eq!(
        (
            payment["amount"].as_i64(),
            payment["balance_after"].as_i64(),
            payment["status"].as_str()
        ),
        (Some(18_000), Some(32_000), Some("paid"))
    );
    expect_problem(
        app.pay_request(order, kim.id),
        StatusCode::CONFLICT,
        "ORDER_NOT_PAYABLE",
    )
    .await;
    assert_eq!(app.balance(kim.id).await, 32_000);
    assert_eq!(app.order(order).await["status"], "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insufficient_balance_leaves_the_order_payable() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = customer(app, "park", 1_000).await;
    let product = app.create_product("Chair", "home", 5_000, 3).await;
    let order = id(&app.place_order(user.id, &[(product.id, 1)]).await.1);
    expect_problem(
        app.pay_request(order, user.id),
        StatusCode::CONFLICT,
        "INSUFFICIENT_POINTS",
    )
    .await;
    assert_eq!(app.order(order).await["status"], "pending_payment");
    assert_eq!(app.balance(user.id).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_cancels_of_ten_orders_restore_stock_once() {
    let deployment = Deployment::start_many(2).await;
    let app = deployment.app();
    let user = customer(app, "kim", 100_000).await;
    let product = app.create_product("Cup", "home", 1_000, 100).await;
    let mut orders = Vec::new();
    for n in 0..10 {
        let order = id(&app.place_order(user.id, &[(product.id, 3)]).await.1);
        // Half of them paid, so cancelling also refunds.
        if n % 2 == 0 {
            assert_eq!(app.pay(order, user.id).await.0, StatusCode::CREATED);
        }
        orders.push(order);
    }
    assert_eq!(app.stock(product.id).await, 70);
    let instances = deployment.instances.clone();
    let results = concurrently(20, |n| {
        let (instance, order) = (instances[n % 2].clone(), orders[n % 10]);
        async move { instance.cancel(order).await }
    })
    .await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "ORDER_NOT_CANCELLABLE")
        .count();
    assert_eq!((ok, refused), (10, 10));
    assert_eq!(app.stock(product.id).await, 100);
    assert_eq!(app.balance(user.id).await, 100_000);
    let refunds = app
        .history(user.id)
        .await
        .iter()
        .filter(|e| e.kind == "refund")
        .count();
    assert_eq!(refunds, 5);
    for order in orders {
        assert_eq!(app.order(order).await["status"], "cancelled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_orders_expire_once_with_stock_and_coupon_restored() {
    let deployment = Deployment::start_with(2, |settings| settings.order_ttl_seconds = 1).await;
    let app = deployment.app();
    let user = customer(app, "kim", 10_000).await;
    let product = app.create_product("Ticket", "events", 1_000, 10).await;
    let held = hold_coupon(&deployment, user.id).await;
    let (status, with_coupon) =
        send(app.order_request(user.id, &[(product.id, 2)], Some(held))).await;
    assert_eq!(status, StatusCode::CREATED, "{with_coupon}");
    assert_eq!(with_coupon["discount"], 500);
    let plain = id(&app.place_order(user.id, &[(product.id, 3)]).await.1);
    assert_eq!(app.stock(product.id).await, 5);
    eventually(Duration::from_secs(10), "the orders expire", || async {
        let statuses = (
            app.order(plain).await["status"].clone(),
            app.order(id(&with_coupon)).await["status"].clone(),
        );
        if statuses == (json!("expired"), json!("expired")) {
            Ok(())
        } else {
            Err(format!("{statuses:?}"))
        }
    })
    .await;
    expect_problem(
        app.pay_request(plain, user.id),
        StatusCode::CONFLICT,
        "ORDER_NOT_PAYABLE",
    )
    .await;
    assert_eq!(app.stock(product.id).await, 10);
    let coupon_status: String = sqlx::query_scalar("select status from user_coupons where id = $1")
        .bind(held)
        .fetch_one(&deployment.db)
        .await
        .expect("the coupon");
    assert_eq!(coupon_status, "available");
    let expired_events: i64 =
        sqlx::query_scalar("select count(*) from outbox where type = 'order.expired'")
            .fetch_one(&deployment.db)
            .await
            .expect("events");
    assert_eq!(expired_events, 2);
}

/// Due orders the expiry job reads per query.
const EXPIRY_PAGE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_that_cannot_be_restored_hold_up_no_other_expiry() {
    let deployment = Deployment::start_with(2, |settings| settings.order_ttl_seconds = 1).await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let poison = app.create_product("Poison", "lab", 1_000, 1_000).await;
    let water = app.create_product("Water", "lab", 1_000, 10).await;
    // From now on the poison cannot be restocked: placing an order takes
    // stock, so only restoring one (an expiry, a cancel) fails.
    sqlx::raw_sql(&format!(
        "create function refuse_restock() returns trigger language plpgsql as $$
         begin raise exception 'restock refused'; end $$;
         create trigger refuse_restock before update on products
            for each row when (old.id = {} and new.stock > old.stock)
            execute function refuse_restock();",
        poison.id
    ))
    .execute(&deployment.db)
    .await
    .expect("the trigger");
    // More orders that cannot be restored than the job reads at once, all
    // due before the others: a job that tried them first, together or one
    // by one, and then stopped would never reach the rest.
    let (user_id, poison_id) = (user.id, poison.id);
    let stuck: Vec<i64> = concurrently(EXPIRY_PAGE + 1, |_| {
        let app = app.clone();
        async move {
            let (status, order) = app.place_order(user_id, &[(poison_id, 1)]).await;
            assert_eq!(status, StatusCode::CREATED, "{order}");
            id(&order)
        }
    })
    .await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(id(&app.place_order(user.id, &[(water.id, 1)]).await.1));
    }
    let statuses = |orders: Vec<i64>| {
        sqlx::query_scalar::<_, String>("select distinct status from orders where id = any($1)")
            .bind(orders)
            .fetch_all(&deployment.db)
    };
    eventually(
        Duration::from_secs(15),
        "the other orders expired",
        || async {
            match statuses(others.clone()).await.expect("statuses") {
                seen if seen == ["expired"] => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        },
    )
    .await;
    assert_eq!(app.stock(water.id).await, 10);
    assert_eq!(
        statuses(stuck.clone()).await.expect("statuses"),
        ["pending_payment"]
    );
    assert_eq!(app.stock(poison.id).await, 1_000 - stuck.len() as i64);

    // Once they can be restored, they expire too, each exactly once though
    // both instances run the job.
    sqlx::raw_sql("drop trigger refuse_restock on products")
        .execute(&deployment.db)
        .await
        .expect("no trigger");
    eventually(
        Duration::from_secs(15),
        "the stuck orders expired",
        || async {
            match statuses(stuck.clone()).await.expect("statuses") {
                seen if seen == ["expired"] => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        },
    )
    .await;
    assert_eq!(app.stock(poison.id).await, 1_000);
    let expired_events: i64 =
        sqlx::query_scalar("select count(*) from outbox where type = 'order.expired'")
            .fetch_one(&deployment.db)
            .await
            .expect("events");
    assert_eq!(expired_events, (stuck.len() + others.len()) as i64);
}

/// Issues the user a 5% coupon (max 5,000 won) directly in the database.
async fn hold_coupon(deployment: &Deployment, user_id: i64) -> i64 {
    let coupon: i64 = sqlx::query_scalar(
        "insert into coupons (name, discount_kind, discount_value, max_amount, total_quantity, issued_quantity, valid_from, valid_until)
         values ('five percent', 'percent', 25, 5000, 10, 1, now() - interval '1 day', now() + interval '1 day')
         returning id",
    )
    .fetch_one(&deployment.db)
    .await
    .expect("a coupon");
    sqlx::query_scalar("insert into user_coupons (coupon_id, user_id) values ($1, $2) returning id")
        .bind(coupon)
        .bind(user_id)
        .fetch_one(&deployment.db)
        .await
        .expect("a user coupon")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_is_used_by_one_order_only_and_returned_by_a_cancel() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let kim = customer(app, "kim", 100_000).await;
    let lee = customer(app, "lee", 100_000).await;
    let product = app
        .create_product("Speaker", "electronics", 30_000, 10)
        .await;
    let held = hold_coupon(&deployment, kim.id).await;
    expect_problem(
        app.order_request(lee.id, &[(product.id, 1)], Some(held)),
        StatusCode::CONFLICT,
        "COUPON_UNAVAILABLE",
    )
    .await;
    let (status, order) = send(app.order_request(kim.id, &[(product.id, 1)], Some(held))).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(
        (
            order["discount"].as_i64(),
            order["total"].as_i64(),
            order["user_coupon_id"].as_i64()
        ),
        (Some(5_000), Some(25_000), Some(held))
    );
    assert_eq!(order["policies"]["coupon"], "coupon-standard@1.0.0");
    expect_problem(
        app.order_request(kim.id, &[(product.id, 1)], Some(held)),
        StatusCode::CONFLICT,
        "COUPON_UNAVAILABLE",
    )
    .await;
    assert_eq!(app.cancel(id(&order)).await.0, StatusCode::OK);
    let (status, again) = send(app.order_request(kim.id, &[(product.id, 1)], Some(held))).await;
    assert_eq!(
        (status, again["discount"].as_i64()),
        (StatusCode::CREATED, Some(5_000)),
        "{again}"
    );
    assert_eq!(app.stock(product.id).await, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_the_policy_refuses_is_not_applicable_and_nothing_is_written() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = customer(app, "kim", 100_000).await;
    let product = app.create_product("Sticker", "office", 100, 10).await;
    let held = hold_coupon(&deployment, user.id).await;
    sqlx::query("update coupons set min_order_amount = 50000")
        .execute(&deployment.db)
        .await
        .expect("update");
    let problem = expect_problem(
        app.order_request(user.id, &[(product.id, 1)], Some(held)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "COUPON_NOT_APPLICABLE",
    )
    .await;
    assert_eq!(problem["reason"], "BELOW_MIN_ORDER_AMOUNT");
    assert_eq!(app.stock(product.id).await, 10);
    assert_eq!(stored_orders(&deployment).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_policy_answers_503_and_writes_nothing() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = customer(app, "kim", 10_000).await;
    let product = app.create_product("Pen", "office", 1_000, 10).await;
    let (status, _) = send(
        app.admin(reqwest::Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("misbehave-loop")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    expect_problem(
        app.order_request(user.id, &[(product.id, 1)], None),
        StatusCode::SERVICE_UNAVAILABLE,
        "POLICY_UNAVAILABLE",
    )
    .await;
    assert_eq!(app.stock(product.id).await, 10);
    assert_eq!(stored_orders(&deployment).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_reaches_the_event_stream_and_the_popular_ranking() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = customer(app, "kim", 1_000_000).await;
    let tea = app.create_product("Tea", "food", 1_000, 100).await;
    let rice = app.create_product("Rice", "food", 2_000, 100).await;
    let kimchi = app.create_product("Kimchi", "food", 3_000, 100).await;
    assert_eq!(
        send(app.get("/api/v1/products/popular")).await.1["items"],
        serde_json::json!([])
    );
    let paid = id(&app
        .place_order(user.id, &[(tea.id, 5), (rice.id, 2)])
        .await
        .1);
    assert_eq!(app.pay(paid, user.id).await.0, StatusCode::CREATED);
    let also_paid = id(&app.place_order(user.id, &[(rice.id, 1)]).await.1);
    assert_eq!(app.pay(also_paid, user.id).await.0, StatusCode::CREATED);
    // Unpaid and cancelled orders do not count.
    app.place_order(user.id, &[(kimchi.id, 50)]).await;
    let cancelled = id(&app.place_order(user.id, &[(kimchi.id, 10)]).await.1);
    assert_eq!(app.pay(cancelled, user.id).await.0, StatusCode::CREATED);
    assert_eq!(app.cancel(cancelled).await.0, StatusCode::OK);

    let (status, popular) = send(app.get("/api/v1/products/popular?days=1&limit=5")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(popular["days"], 1);
    let ranking: Vec<(i64, i64, i64)> = popular["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["rank"].as_i64().unwrap_or(0),
                i["product_id"].as_i64().unwrap_or(0),
                i["sold_quantity"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(ranking, [(1, tea.id, 5), (2, rice.id, 3)]);
    expect_problem(
        app.get("/api/v1/products/popular?days=31"),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.get("/api/v1/products/popular?limit=0"),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;

    let client = redis::Client::open("redis://127.0.0.1:6379").expect("a redis client");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let stream = format!("{}events:orders", deployment.redis_prefix);
    let entries = eventually(
        Duration::from_secs(5),
        "three order.paid events reach the stream",
        || async {
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .query_async::<redis::Value>(&mut conn.clone())
                .await
                .ok()
                .and_then(|value| redis::from_redis_value(&value).ok())
                .unwrap_or_default();
            let paid = entries
                .iter()
                .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "type" && v == "order.paid"))
                .count();
            if paid == 3 {
                Ok(entries)
            } else {
                Err(format!("{entries:?}"))
            }
        },
    )
    .await;
    let paid_events: Vec<&Vec<(String, String)>> = entries
        .iter()
        .map(|(_, fields)| fields)
        .filter(|fields| fields.iter().any(|(k, v)| k == "type" && v == "order.paid"))
        .collect();
    let fields = paid_events[0];
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("order_id"), paid.to_string());
    assert_eq!(field("event_id").len(), 36);
    let payload: Value = serde_json::from_str(&field("payload")).expect("a JSON payload");
    assert_eq!(payload["status"], "paid");
    assert_eq!(payload["total"], 9_000);
    // The order's events in the order they happened: placed, paid.
    let of_order: Vec<Value> = entries
        .iter()
        .map(|(_, fields)| fields)
        .filter(|fields| {
            fields
                .iter()
                .any(|(k, v)| k == "order_id" && *v == paid.to_string())
        })
        .map(|fields| {
            let payload = fields
                .iter()
                .find(|(k, _)| k == "payload")
                .expect("a payload");
            serde_json::from_str(&payload.1).expect("a JSON payload")
        })
        .collect();
    let kinds: Vec<&str> = of_order
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(kinds, ["order.placed", "order.paid"], "{of_order:?}");
    let placed = &of_order[0];
    assert_eq!(placed["status"], "pending_payment", "{placed}");
    assert_eq!(placed["order_id"], paid, "{placed}");
    assert_eq!(placed["total"], 9_000, "{placed}");
    assert_eq!(
        placed["event_id"].as_str().map(str::len),
        Some(36),
        "{placed}"
    );
    assert_ne!(placed["event_id"], of_order[1]["event_id"]);
    assert!(
        placed["occurred_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z')),
        "{placed}"
    );
    assert_eq!(placed["promotions"], json!([]), "{placed}");
    assert_eq!(placed["arms"], json!({}), "{placed}");
    let item = &placed["items"][0];
    assert!(
        item["product_id"].is_i64() && item["adjustments"].is_array(),
        "{placed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_order_with_the_same_key_is_placed_once() {
    let deployment = Deployment::start_many(2).await;
    let user = deployment.app().create_user("kim").await;
    let product = deployment
        .app()
        .create_product("Pen", "office", 1_000, 10)
        .await;
    let mut bodies = Vec::new();
    for n in 0..2 {
        let response = deployment
            .instance(n)
            .order_request(user.id, &[(product.id, 2)], None)
            .header("Idempotency-Key", "order-1")
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::CREATED);
        bodies.push(response.bytes().await.expect("a body"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(deployment.app().stock(product.id).await, 8);
    expect_problem(
        deployment
            .app()
            .order_request(user.id, &[(product.id, 3)], None)
            .header("Idempotency-Key", "order-1"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_orders_are_refused_with_problem_bodies() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let product = app.create_product("Pen", "office", 1_000, 10).await;
    for body in [
        serde_json::json!({ "user_id": user.id, "items": [] }),
        serde_json::json!({ "user_id": user.id, "items": [{ "product_id": product.id, "quantity": 0 }] }),
        serde_json::json!({ "user_id": user.id, "items": [{ "product_id": product.id, "quantity": "two" }] }),
        serde_json::json!({ "user_id": 0, "items": [{ "product_id": product.id, "quantity": 1 }] }),
        serde_json::json!({ "items": [{ "product_id": product.id, "quantity": 1 }] }),
    ] {
        expect_problem(
            app.post("/api/v1/orders").json(&body),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    expect_problem(
        app.order_request(user.id, &[(product.id, 1), (product.id, 2)], None),
        StatusCode::UNPROCESSABLE_ENTITY,
        "ORDER_REJECTED",
    )
    .await;
    expect_problem(
        app.order_request(999_999, &[(product.id, 1)], None),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.order_request(user.id, &[(999_999, 1)], None),
        StatusCode::NOT_FOUND,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.get("/api/v1/orders/999999"),
        StatusCode::NOT_FOUND,
        "ORDER_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.post("/api/v1/orders/999999/cancel"),
        StatusCode::NOT_FOUND,
        "ORDER_NOT_FOUND",
    )
    .await;
    assert_eq!(app.stock(product.id).await, 10);
}
