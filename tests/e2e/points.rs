use commerce_tests::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_has_an_empty_wallet_and_no_history() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    assert_eq!(user.name, "kim");
    assert_eq!(app.balance(user.id).await, 0);
    assert!(app.history(user.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_add_up_and_history_lists_them_newest_first() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("lee").await;
    for amount in [10_000, 2_500, 1] {
        let (status, body) = app.charge(user.id, amount).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(app.balance(user.id).await, 12_501);
    let history = app.history(user.id).await;
    let amounts: Vec<i64> = history.iter().map(|e| e.amount).collect();
    assert_eq!(amounts, [1, 2_500, 10_000]);
    assert_eq!(history[0].balance_after, 12_501);
    assert!(
        history
            .iter()
            .all(|e| e.kind == "charge" && e.order_id.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_outside_the_limits_is_refused_and_changes_nothing() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("park").await;
    for amount in [0, -5, 1_000_001] {
        expect_problem(
            app.charge_request(user.id, amount),
            StatusCode::BAD_REQUEST,
            "INVALID_AMOUNT",
        )
        .await;
    }
    // Up to the cap of 100,000,000 and not one won more.
    for _ in 0..100 {
        assert_eq!(app.charge(user.id, 1_000_000).await.0, StatusCode::OK);
    }
    expect_problem(
        app.charge_request(user.id, 1),
        StatusCode::BAD_REQUEST,
        "INVALID_AMOUNT",
    )
    .await;
    assert_eq!(app.balance(user.id).await, 100_000_000);
    assert_eq!(app.history(user.id).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_is_not_found() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    expect_problem(
        app.get("/api/v1/users/999/points"),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.get("/api/v1/users/999/points/history"),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.charge_request(999, 10),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.get("/api/v1/users/999"),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_charges_on_two_instances_lose_no_update() {
    let deployment = Deployment::start_many(2).await;
    let user = deployment.app().create_user("burst").await;
    let instances = deployment.instances.clone();
    let results = concurrently(50, |n| {
        let instance = instances[n % 2].clone();
        async move { instance.charge(user.id, 100).await }
    })
    .await;

    let successes = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::CONFLICT && body["code"] == "CONCURRENT_UPDATE"),
            "unexpected answer {status}: {body}"
        );
    }
    assert!(successes > 0, "no charge succeeded");
    let balance = deployment.instance(1).balance(user.id).await;
    assert_eq!(balance, 100 * successes as i64);
    let history = deployment.app().history(user.id).await;
    assert_eq!(history.len(), successes);
    assert_eq!(
        history.iter().map(HistoryEntry::signed_amount).sum::<i64>(),
        balance
    );
    // Every balance_after is distinct: no two charges read the same balance.
    let mut after: Vec<i64> = history.iter().map(|e| e.balance_after).collect();
    after.sort_unstable();
    after.dedup();
    assert_eq!(after.len(), successes);
}
