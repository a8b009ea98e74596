use commerce_tests::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_charge_with_the_same_key_is_replayed_not_charged_again() {
    let deployment = Deployment::start_many(2).await;
    let user = deployment.app().create_user("kim").await;
    let first = deployment
        .app()
        .charge_request(user.id, 5_000)
        .header("Idempotency-Key", "charge-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.expect("a body");

    // The repeat goes to the other instance: the key lives in PostgreSQL.
    let again = deployment
        .instance(1)
        .charge_request(user.id, 5_000)
        .header("Idempotency-Key", "charge-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.expect("a body"), first_body);
    assert_eq!(deployment.app().balance(user.id).await, 5_000);
    assert_eq!(deployment.app().history(user.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_body_is_refused() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("lee").await;
    let (status, _) = send(
        app.charge_request(user.id, 100)
            .header("Idempotency-Key", "k"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    expect_problem(
        app.charge_request(user.id, 200)
            .header("Idempotency-Key", "k"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    )
    .await;
    assert_eq!(app.balance(user.id).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_scoped_per_user() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let kim = app.create_user("kim").await;
    let lee = app.create_user("lee").await;
    for user in [&kim, &lee] {
        let response = app
            .charge_request(user.id, 700)
            .header("Idempotency-Key", "same-key")
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(app.balance(kim.id).await, 700);
    assert_eq!(app.balance(lee.id).await, 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_while_the_first_runs_is_told_it_is_in_progress() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("park").await;
    // Hold the key's lock as a running first request would.
    let mut tx = deployment.db.begin().await.expect("a transaction");
    let held: bool = sqlx::query_scalar(
        "select pg_try_advisory_xact_lock(
            ('x' || substr(encode(sha256(int8send($1) || convert_to($2, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint)",
    )
    .bind(user.id)
    .bind("slow-key")
    .fetch_one(&mut *tx)
    .await
    .expect("the lock query runs");
    assert!(held);
    expect_problem(
        app.charge_request(user.id, 100)
            .header("Idempotency-Key", "slow-key"),
        StatusCode::CONFLICT,
        "IDEMPOTENCY_KEY_IN_PROGRESS",
    )
    .await;
    tx.rollback().await.expect("rollback");
    let (status, _) = send(
        app.charge_request(user.id, 100)
            .header("Idempotency-Key", "slow-key"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_key_charge_once() {
    let deployment = Deployment::start_many(2).await;
    let user = deployment.app().create_user("kim").await;
    let instances = deployment.instances.clone();
    let results = concurrently(20, |n| {
        let instance = instances[n % 2].clone();
        async move {
            send(
                instance
                    .charge_request(user.id, 300)
                    .header("Idempotency-Key", "burst-key"),
            )
            .await
        }
    })
    .await;
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::CONFLICT
                    && body["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"),
            "{status}: {body}"
        );
    }
    assert_eq!(deployment.app().balance(user.id).await, 300);
    assert_eq!(deployment.app().history(user.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_key_is_refused() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    for key in ["has space", &"k".repeat(256), "tab\there"] {
        expect_problem(
            app.charge_request(user.id, 1)
                .header("Idempotency-Key", key),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    assert_eq!(app.balance(user.id).await, 0);
}

/// A user with points holding an issued coupon, and a product in stock:
/// `(user_id, product_id, user_coupon_id)`.
async fn shopper_with_coupon(app: &Instance, stock: i64) -> (i64, i64, i64) {
    let user = app.create_user("kim").await;
    assert_eq!(app.charge(user.id, 500_000).await.0, StatusCode::OK);
    let product = app.create_product("Kettle", "kitchen", 30_000, stock).await;
    let coupon = app.create_coupon(&open_coupon("welcome", 10)).await;
    let (status, issued) = app.issue(coupon.id, user.id).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let held = issued["user_coupon_id"].as_i64().expect("a user coupon");
    (user.id, product.id, held)
}

async fn order_once_then_repeat(
    deployment: &Deployment,
    change_between: impl AsyncFnOnce(&Deployment, i64, i64),
    quantity: i64,
    stock: i64,
) {
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let (user, product, held) = shopper_with_coupon(a, stock).await;
    let order = |app: &Instance| app.order_request(user, &[(product, quantity)], Some(held));
    let first = send_with_key(order(a), "order-1").await;
    let shown = String::from_utf8_lossy(&first.body).into_owned();
    assert_eq!(first.status, StatusCode::CREATED, "{shown}");
    assert!(!first.replayed);
    change_between(deployment, user, product).await;
    // The client never saw the answer and sends it again, to the other
    // instance: the stored 201, byte for byte, whatever changed since.
    let again = send_with_key(order(b), "order-1").await;
    let shown = String::from_utf8_lossy(&again.body).into_owned();
    assert_eq!(again.status, StatusCode::CREATED, "{shown}");
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    let orders: i64 = sqlx::query_scalar("select count(*) from orders where user_id = $1")
        .bind(user)
        .fetch_one(&deployment.db)
        .await
        .expect("a count");
    assert_eq!(orders, 1, "the repeat placed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_a_coupon_repeated_on_the_other_instance_answers_the_stored_order() {
    let deployment = Deployment::start_many(2).await;
    order_once_then_repeat(&deployment, async |_, _, _| {}, 1, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_repeated_after_the_pricing_policy_was_swapped_answers_the_stored_order() {
    let deployment = Deployment::start_many(2).await;
    let swap = async |deployment: &Deployment, _, _| {
        let (status, body) = send(
            deployment
                .app()
                .admin(reqwest::Method::PUT, "/api/v1/admin/policies/pricing")
                .body(component("pricing-bulk")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        deployment.until_active("pricing", &body["sha256"]).await;
    };
    // Ten units: pricing-bulk would take 10% off, the stored order did not.
    order_once_then_repeat(&deployment, swap, 10, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_repeated_after_the_product_sold_out_answers_the_stored_order() {
    let deployment = Deployment::start_many(2).await;
    let sell_out = async |deployment: &Deployment, _, product: i64| {
        let other = deployment.app().create_user("lee").await;
        assert_eq!(
            deployment.app().charge(other.id, 500_000).await.0,
            StatusCode::OK
        );
        let (status, body) = deployment
            .app()
            .place_order(other.id, &[(product, 1)])
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(deployment.app().stock(product).await, 0);
    };
    order_once_then_repeat(&deployment, sell_out, 1, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_repeated_after_the_order_expired_answers_the_stored_payment() {
    let deployment = Deployment::start_with(2, |settings| settings.order_ttl_seconds = 1).await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let user = a.create_user("kim").await;
    assert_eq!(a.charge(user.id, 100_000).await.0, StatusCode::OK);
    let product = a.create_product("Mug", "kitchen", 9_000, 5).await;
    let (status, order) = a.place_order(user.id, &[(product.id, 1)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_i64().expect("an order id");
    let first = send_with_key(a.pay_request(order_id, user.id), "pay-1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The paid order is now cancelled, so it could not be paid again, and
    // past its time.
    assert_eq!(a.cancel(order_id).await.0, StatusCode::OK);
    let expires_at: chrono::DateTime<chrono::Utc> = order["expires_at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("an expiry time");
    if let Ok(left) = (expires_at - chrono::Utc::now()).to_std() {
        tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    }
    let again = send_with_key(b.pay_request(order_id, user.id), "pay-1").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    // A payment never replayed points: paid once, refunded once.
    assert_eq!(a.balance(user.id).await, 100_000);
}
