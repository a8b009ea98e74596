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
