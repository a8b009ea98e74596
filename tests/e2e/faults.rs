//! Faults with real processes: a private PostgreSQL, Redis and `commerce`
//! processes that are killed, stopped and restarted under load. Slow, so
//! ignored by default; they start the built binary:
//! `cargo build --release && cargo test --release --workspace -- --ignored faults --test-threads 1`.

use std::time::{Duration, Instant};

use commerce_tests::{lab::Lab, *};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

/// Products with stock and users with points, written straight to the lab database.
pub(crate) async fn stock_the_shop(
    db: &PgPool,
    products: i64,
    stock: i64,
    users: i64,
) -> (Vec<i64>, Vec<i64>) {
    let product_ids: Vec<i64> = sqlx::query_scalar(
        "insert into products (name, category, price, stock)
         select 'Item ' || g, 'lab', 1000, $2 from generate_series(1, $1) g returning id",
    )
    .bind(products)
    .bind(stock as i32)
    .fetch_all(db)
    .await
    .expect("products");
    let user_ids: Vec<i64> = sqlx::query_scalar(
        "insert into users (name) select 'user ' || g from generate_series(1, $1) g returning id",
    )
    .bind(users)
    .fetch_all(db)
    .await
    .expect("users");
    sqlx::query(
        "with w as (insert into point_wallets (user_id, balance) select id, 1000000 from unnest($1::bigint[]) id returning user_id)
         insert into point_history (user_id, kind, amount, balance_after) select user_id, 'charge', 1000000, 1000000 from w",
    )
    .bind(&user_ids)
    .execute(db)
    .await
    .expect("wallets");
    (product_ids, user_ids)
}

/// Sends, or `None` when the connection fails (a killed or stopping server).
pub(crate) async fn try_send(request: reqwest::RequestBuilder) -> Option<(StatusCode, Value)> {
    match request.send().await {
        Ok(response) => Some(read(response).await),
        Err(_) => None,
    }
}

/// Issue requests for `coupon` from each user, alternating between the
/// instances and spread over a few hundred milliseconds.
pub(crate) async fn coupon_burst(
    instances: &[Instance],
    users: &[i64],
    coupon: i64,
    spacing_ms: u64,
) -> Vec<Option<(StatusCode, Value)>> {
    concurrently(users.len(), |n| {
        let (instance, user) = (instances[n % instances.len()].clone(), users[n]);
        async move {
            tokio::time::sleep(Duration::from_millis((n as u64 % 100) * spacing_ms)).await;
            try_send(
                instance
                    .post(&format!("/api/v1/coupons/{coupon}/issue"))
                    .json(&serde_json::json!({ "user_id": user })),
            )
            .await
        }
    })
    .await
}

/// For every product: stock + units in live orders = the initial stock; and
/// no order lacks its lines.
pub(crate) async fn assert_stock_conserved(db: &PgPool, initial: i64) {
    let broken: Vec<(i64, i64, i64)> = sqlx::query_as(
        "select p.id, p.stock::bigint,
                coalesce((select sum(l.quantity) from order_lines l join orders o on o.id = l.order_id
                           where l.product_id = p.id and o.status in ('pending_payment', 'paid')), 0)::bigint
           from products p
          where p.stock + coalesce((select sum(l.quantity) from order_lines l join orders o on o.id = l.order_id
                                     where l.product_id = p.id and o.status in ('pending_payment', 'paid')), 0) <> $1",
    )
    .bind(initial)
    .fetch_all(db)
    .await
    .expect("the conservation query");
    assert!(
        broken.is_empty(),
        "stock not conserved (id, stock, live units): {broken:?}"
    );
    let without_lines: i64 = sqlx::query_scalar("select count(*) from orders o where not exists (select 1 from order_lines l where l.order_id = o.id)")
        .fetch_one(db)
        .await
        .expect("count");
    assert_eq!(without_lines, 0, "half-written orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_killing_an_instance_mid_order_burst_loses_no_confirmed_order() {
    let mut lab = Lab::start().await;
    let a = lab.spawn_server(&[]).await;
    let b = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 5, 100, 400).await;
    let instances = [a, b];
    let burst = concurrently(400, |n| {
        let instance = instances[n % 2].clone();
        let (user, product) = (users[n], products[n % 5]);
        async move {
            tokio::time::sleep(Duration::from_millis((n as u64 % 50) * 4)).await;
            try_send(instance.order_request(user, &[(product, 2)], None)).await
        }
    });
    let killer = async {
        tokio::time::sleep(Duration::from_millis(80)).await;
        lab.kill_server(1);
    };
    let (results, ()) = tokio::join!(burst, killer);
    let confirmed: Vec<i64> = results
        .iter()
        .flatten()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body["id"].as_i64().expect("an order id"))
        .collect();
    let unanswered = results.iter().filter(|r| r.is_none()).count();
    let out_of_stock = results
        .iter()
        .flatten()
        .filter(|(_, b)| b["code"] == "OUT_OF_STOCK")
        .count();
    let stored: i64 = sqlx::query_scalar("select count(*) from orders where id = any($1)")
        .bind(&confirmed)
        .fetch_one(&db)
        .await
        .expect("count");
    println!(
        "order burst: 400 sent, {} answered ({} created, {out_of_stock} out of stock), {unanswered} cut off by the kill; {stored} of the created orders stored",
        400 - unanswered,
        confirmed.len()
    );
    assert!(
        unanswered > 0,
        "the kill cut nothing off; the test proved nothing"
    );
    assert_eq!(stored as usize, confirmed.len(), "a 201 without its order");
    assert_stock_conserved(&db, 100).await;
    for (status, body) in results.iter().flatten() {
        assert!(
            status.is_success() || status.is_client_error(),
            "{status}: {body}"
        );
    }
    // A process of its own counts the calls of the policies it loaded at
    // start: their metrics are registered after its recorder is installed.
    assert!(
        instances[0].policy_calls("price").await > 0,
        "no pricing calls counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_postgres_restarted_under_load_gives_bounded_503s_then_service_resumes() {
    let mut lab = Lab::start().await;
    let app = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 2, 100_000, 50).await;
    db.close().await;
    let started = Instant::now();
    // Four clients in a loop, reading and ordering, for the whole test.
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let app = app.clone();
            let (products, users) = (products.clone(), users.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n: usize = client;
                while started.elapsed() < Duration::from_secs(16) {
                    let sent = Instant::now();
                    let result = if n.is_multiple_of(2) {
                        send(app.get(&format!("/api/v1/products/{}", products[n % 2]))).await
                    } else {
                        app.place_order(users[n % users.len()], &[(products[n % 2], 1)])
                            .await
                    };
                    outcomes.push((
                        started.elapsed(),
                        sent.elapsed(),
                        result.0,
                        result.1["code"].as_str().unwrap_or_default().to_owned(),
                    ));
                    n += 4;
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    lab.stop_postgres();
    let stopped_at = started.elapsed();
    // Longer than the pool's 5 s acquire timeout, so waiting clients give up.
    tokio::time::sleep(Duration::from_secs(7)).await;
    lab.start_postgres();
    let restarted_at = started.elapsed();
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("the load completes"));
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.2 != StatusCode::OK && o.2 != StatusCode::CREATED)
        .collect();
    let slowest = outcomes.iter().map(|o| o.1).max().unwrap_or_default();
    let recovered = outcomes
        .iter()
        .filter(|o| o.0 > restarted_at && (o.2 == StatusCode::OK || o.2 == StatusCode::CREATED))
        .map(|o| o.0)
        .min();
    println!(
        "postgres down from {stopped_at:?} to {restarted_at:?}: {} requests, {} failed, slowest answer {slowest:?}, first success after restart at {recovered:?}",
        outcomes.len(),
        failed.len()
    );
    assert!(!failed.is_empty(), "no request saw the outage");
    for (_, _, status, code) in &failed {
        assert_eq!(
            (*status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
        );
    }
    assert!(
        slowest < Duration::from_secs(7),
        "a request waited {slowest:?}"
    );
    let recovered = recovered.expect("service resumed after the restart");
    assert!(
        recovered < restarted_at + Duration::from_secs(5),
        "service resumed only at {recovered:?}"
    );
    // Nothing sent once PostgreSQL was back failed: the pool replaced its
    // dead connections by itself.
    assert!(
        failed.iter().all(|o| o.0 - o.1 < restarted_at),
        "requests sent after the restart failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_events_wait_in_postgres_while_redis_is_down_and_flow_when_it_returns() {
    let mut lab = Lab::start().await;
    let app = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 1, 1_000, 10).await;
    lab.kill_redis();
    let mut paid = Vec::new();
    for user in &users {
        let (status, order) = app.place_order(*user, &[(products[0], 1)]).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        let order = order["id"].as_i64().expect("an id");
        let (status, body) = app.pay(order, *user).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        paid.push(order);
    }
    // Popular products still answer, from PostgreSQL.
    let (status, popular) = send(app.get("/api/v1/products/popular")).await;
    assert_eq!(
        (status, popular["items"][0]["sold_quantity"].as_i64()),
        (StatusCode::OK, Some(10)),
        "{popular}"
    );
    let waiting: i64 = sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(&db)
        .await
        .expect("count");
    // Each order wrote two events: order.placed, then order.paid.
    assert_eq!(waiting, 20);
    lab.start_redis();
    let client = redis::Client::open(lab.redis_url()).expect("a client");
    let started = Instant::now();
    loop {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis is back");
        let length: i64 = redis::cmd("XLEN")
            .arg("lab:events:orders")
            .query_async(&mut conn)
            .await
            .unwrap_or(0);
        if length == 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {length} events reached the stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "20 events published {:?} after Redis returned",
        started.elapsed()
    );
    let waiting: i64 = sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(waiting, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_a_relay_that_fails_after_publishing_publishes_again_with_the_same_event_id() {
    let mut lab = Lab::start().await;
    let app = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 1, 100, 2).await;
    // Marking rows published fails after the XADD, as a crash between the two would.
    sqlx::query("alter table outbox add constraint lab_refuse_marking check (published_at is null) not valid")
        .execute(&db)
        .await
        .expect("the fault");
    let order = app.place_order(users[0], &[(products[0], 1)]).await.1["id"]
        .as_i64()
        .expect("an id");
    assert_eq!(app.pay(order, users[0]).await.0, StatusCode::CREATED);
    // A payment that fails writes no event.
    let poor: i64 = users[1];
    sqlx::query("update point_wallets set balance = 0 where user_id = $1")
        .bind(poor)
        .execute(&db)
        .await
        .expect("update");
    let unpaid = app.place_order(poor, &[(products[0], 1)]).await.1["id"]
        .as_i64()
        .expect("an id");
    assert_eq!(app.pay(unpaid, poor).await.0, StatusCode::CONFLICT);

    let client = redis::Client::open(lab.redis_url()).expect("a client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let paid_events = |entries: Vec<(String, Vec<(String, String)>)>| -> Vec<String> {
        entries
            .into_iter()
            .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "type" && v == "order.paid"))
            .filter_map(|(_, fields)| {
                fields
                    .into_iter()
                    .find(|(k, _)| k == "event_id")
                    .map(|(_, v)| v)
            })
            .collect()
    };
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the relay did not publish: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let value: redis::Value = redis::cmd("XRANGE")
            .arg("lab:events:orders")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("xrange");
        seen = paid_events(redis::from_redis_value(&value).expect("entries"));
    }
    sqlx::query("alter table outbox drop constraint lab_refuse_marking")
        .execute(&db)
        .await
        .expect("heal");
    let started = Instant::now();
    loop {
        let waiting: i64 =
            sqlx::query_scalar("select count(*) from outbox where published_at is null")
                .fetch_one(&db)
                .await
                .expect("count");
        if waiting == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the event was never marked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let value: redis::Value = redis::cmd("XRANGE")
        .arg("lab:events:orders")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("xrange");
    let all = paid_events(redis::from_redis_value(&value).expect("entries"));
    let stored: Vec<uuid::Uuid> =
        sqlx::query_scalar("select event_id from outbox where type = 'order.paid'")
            .fetch_all(&db)
            .await
            .expect("events");
    println!("order.paid published {} times for one event", all.len());
    assert_eq!(stored.len(), 1, "the failed payment wrote an event");
    assert!(all.len() >= 2);
    assert!(
        all.iter().all(|id| *id == stored[0].to_string()),
        "{all:?} vs {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_sigterm_under_load_finishes_accepted_requests_and_refuses_new_ones() {
    let mut lab = Lab::start().await;
    let app = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 1, 10_000, 400).await;
    let coupon = open_coupon(&app, 1_000).await;
    let instance = app.clone();
    let (order_users, coupon_users) = (users[..200].to_vec(), users[200..].to_vec());
    let burst = concurrently(200, move |n| {
        let (instance, user, product) = (instance.clone(), order_users[n], products[0]);
        async move { try_send(instance.order_request(user, &[(product, 1)], None)).await }
    });
    // Issuances queued in the recorder when the signal comes are recorded
    // before the process exits: every 201 is a committed row.
    let coupons = coupon_burst(std::slice::from_ref(&app), &coupon_users, coupon, 0);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let child = lab.terminate_server(0);
        tokio::task::spawn_blocking(move || {
            let mut child = child;
            child.wait().expect("the server exits")
        })
        .await
        .expect("waited")
    };
    let (results, issued, exit) = tokio::join!(burst, coupons, stop);
    assert!(exit.success(), "the server exited with {exit}");
    let answered: Vec<&(StatusCode, Value)> = results.iter().flatten().collect();
    let refused = results.iter().filter(|r| r.is_none()).count();
    let created = answered
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let stored: i64 = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&db)
        .await
        .expect("count");
    println!(
        "SIGTERM: 200 sent, {} answered ({created} created), {refused} refused; {stored} orders stored",
        answered.len()
    );
    for (status, body) in &answered {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    // Every accepted request completed: what is stored is what was answered.
    assert_eq!(stored as usize, created);
    let confirmed = issued_ids(&issued);
    let answered_issues = issued.iter().flatten().count();
    println!(
        "SIGTERM: 200 issue requests, {answered_issues} answered, {} issued",
        confirmed.len()
    );
    for (status, body) in issued.iter().flatten() {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {body}"
        );
    }
    let rows = assert_coupon_exact(&db, coupon, 1_000, &confirmed).await;
    assert!(rows >= confirmed.len() as i64);
    assert!(
        app.get("/healthz").send().await.is_err(),
        "the stopped server still accepts connections"
    );
    assert!(
        lab.server_log(0).contains("stopped"),
        "{}",
        lab.server_log(0)
    );
}

/// Creates a coupon of `quantity` through the admin API, valid for a day.
pub(crate) async fn open_coupon(app: &Instance, quantity: i64) -> i64 {
    let now = chrono::Utc::now();
    let (status, coupon) = send(
        app.admin(reqwest::Method::POST, "/api/v1/admin/coupons")
            .json(&serde_json::json!({
                "name": "lab burst",
                "discount": { "kind": "fixed", "value": 1000 },
                "total_quantity": quantity,
                "min_order_amount": 0,
                "valid_from": now - chrono::Duration::hours(1),
                "valid_until": now + chrono::Duration::days(1),
            })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");
    coupon["id"].as_i64().expect("a coupon id")
}

/// After a burst: at most `quantity` issued, every 201 the client saw has its
/// row, and `issued_quantity` equals the rows.
pub(crate) async fn assert_coupon_exact(
    db: &PgPool,
    coupon: i64,
    quantity: i64,
    confirmed: &[i64],
) -> i64 {
    let (issued, rows, holders): (i32, i64, i64) = sqlx::query_as(
        "select c.issued_quantity, count(uc.id), count(distinct uc.user_id)
           from coupons c left join user_coupons uc on uc.coupon_id = c.id
          where c.id = $1 group by c.id",
    )
    .bind(coupon)
    .fetch_one(db)
    .await
    .expect("the coupon");
    assert!(rows <= quantity, "{rows} issued of {quantity}");
    assert_eq!(
        (i64::from(issued), holders),
        (rows, rows),
        "issued_quantity or holders differ from rows"
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from user_coupons where id = any($1)")
        .bind(confirmed)
        .fetch_one(db)
        .await
        .expect("count");
    assert_eq!(stored as usize, confirmed.len(), "a 201 without its row");
    rows
}

pub(crate) fn issued_ids(results: &[Option<(StatusCode, Value)>]) -> Vec<i64> {
    results
        .iter()
        .flatten()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body["user_coupon_id"].as_i64().expect("a user coupon id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_killing_an_instance_mid_coupon_burst_never_issues_past_the_quantity() {
    let mut lab = Lab::start().await;
    let a = lab.spawn_server(&[]).await;
    let b = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (_, users) = stock_the_shop(&db, 1, 1, 1_000).await;
    let coupon = open_coupon(&a, 100).await;
    let instances = [a, b];
    let burst = coupon_burst(&instances, &users, coupon, 2);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        lab.kill_server(1);
    };
    let (results, ()) = tokio::join!(burst, killer);
    let confirmed = issued_ids(&results);
    let unanswered = results.iter().filter(|r| r.is_none()).count();
    let rows = assert_coupon_exact(&db, coupon, 100, &confirmed).await;
    println!(
        "coupon burst: 1000 sent, {} answered ({} issued), {unanswered} cut off by the kill; {rows} rows for a coupon of 100",
        1_000 - unanswered,
        confirmed.len()
    );
    assert!(
        unanswered > 0,
        "the kill cut nothing off; the test proved nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_redis_restarted_mid_coupon_burst_keeps_the_count_exact_and_the_fast_path_returns() {
    let mut lab = Lab::start().await;
    let a = lab.spawn_server(&[]).await;
    let b = lab.spawn_server(&[]).await;
    let db = lab.db().await;
    let (_, users) = stock_the_shop(&db, 1, 1, 1_200).await;
    let coupon = open_coupon(&a, 100).await;
    let instances = [a.clone(), b];
    let burst = coupon_burst(&instances, &users, coupon, 3);
    let restart = async {
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Redis keeps nothing on disk here: the restart is also a flush.
        lab.kill_redis();
        tokio::time::sleep(Duration::from_millis(150)).await;
        lab.start_redis();
    };
    let (results, ()) = tokio::join!(burst, restart);
    let confirmed = issued_ids(&results);
    for (status, body) in results.iter().flatten() {
        assert!(
            *status == StatusCode::CREATED || body["code"] == "COUPON_SOLD_OUT",
            "{status}: {body}"
        );
    }
    let rows = assert_coupon_exact(&db, coupon, 100, &confirmed).await;
    assert_eq!(rows, 100, "the coupon was not sold out");
    // The fast path returns by itself: once the circuit lets Redis be tried
    // again, an issue rebuilds its coupon's state there. (The sold-out coupon
    // is answered without it from now on, so a second coupon shows it.)
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, body) = send(
        a.post(&format!("/api/v1/coupons/{coupon}/issue"))
            .json(&serde_json::json!({ "user_id": users[0] })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let second = open_coupon(&a, 10).await;
    let (status, body) = send(
        a.post(&format!("/api/v1/coupons/{second}/issue"))
            .json(&serde_json::json!({ "user_id": users[0] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = redis::Client::open(lab.redis_url()).expect("a client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("lab:coupon:{{{second}}}:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    println!(
        "coupon burst with a Redis restart: 1200 sent, {} issued, {rows} rows; Redis state rebuilt: {keys:?}",
        confirmed.len()
    );
    assert!(!keys.is_empty(), "the fast path did not come back");
}
