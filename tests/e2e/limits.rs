//! Every limit on hostile input answers a 4xx problem body and writes nothing.

use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_imports_wasi_is_refused_at_load() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let problem = expect_problem(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("misbehave-wasi")),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("wasi"),
        "{problem}"
    );
    let (_, policies) = send(app.admin(Method::GET, "/api/v1/admin/policies")).await;
    assert_eq!(policies["slots"][0]["name"], "pricing-standard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_component_is_refused() {
    let deployment = Deployment::start().await;
    let huge = vec![0u8; 25 * 1024 * 1024];
    expect_problem(
        deployment
            .app()
            .admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_too_many_lines_is_refused_before_any_policy_runs() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let product = app.create_product("Pen", "office", 100, 1_000).await;
    let items: Vec<_> = (0..101)
        .map(|_| json!({ "product_id": product.id, "quantity": 1 }))
        .collect();
    expect_problem(
        app.post("/api/v1/orders")
            .json(&json!({ "user_id": user.id, "items": items })),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.order_request(user.id, &[(product.id, 1_000_001)], None),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    assert_eq!(app.stock(product.id).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_sizes_and_idempotency_keys_are_bounded_everywhere() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    for path in [
        "/api/v1/products?size=101".to_owned(),
        format!("/api/v1/users/{}/points/history?size=101", user.id),
        format!("/api/v1/users/{}/orders?size=101", user.id),
        format!("/api/v1/users/{}/orders?page=100001", user.id),
    ] {
        expect_problem(app.get(&path), StatusCode::BAD_REQUEST, "INVALID_REQUEST").await;
    }
    let product = app.create_product("Pen", "office", 100, 10).await;
    expect_problem(
        app.order_request(user.id, &[(product.id, 1)], None)
            .header("Idempotency-Key", "k".repeat(256)),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.pay_request(1, user.id)
            .header("Idempotency-Key", "has space"),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    assert_eq!(app.stock(product.id).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_reasons_alias_one_buffer_is_refused_before_it_is_copied() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let mut lines = Vec::new();
    for n in 0..10 {
        let product = app
            .create_product(&format!("Item {n}"), "office", 100, 10)
            .await;
        lines.push((product.id, 1));
    }
    expect::<Value>(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("misbehave-aliased-reasons")),
        StatusCode::OK,
    )
    .await;
    for request in [
        app.order_request(user.id, &lines, None),
        app.post("/api/v1/quotes").json(&json!({
            "user_id": user.id,
            "items": [{ "product_id": lines[0].0, "quantity": 1 }],
        })),
    ] {
        let problem = expect_problem(
            request,
            StatusCode::SERVICE_UNAVAILABLE,
            "POLICY_UNAVAILABLE",
        )
        .await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("out of bounds") && detail.contains("8388608 bytes"),
            "{problem}"
        );
        // A bounded detail: the answer's text is not echoed back.
        assert!(detail.len() < 1_000, "{} bytes of detail", detail.len());
    }
    for (product_id, _) in &lines {
        assert_eq!(app.stock(*product_id).await, 10);
    }
    let (_, orders) = send(app.get(&format!("/api/v1/users/{}/orders", user.id))).await;
    assert_eq!(orders["total"], 0, "{orders}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_holding_a_nul_is_the_policys_failure_and_writes_nothing() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let product = app.create_product("Pen", "office", 100, 10).await;
    expect::<Value>(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("misbehave-nul-reason")),
        StatusCode::OK,
    )
    .await;
    for request in [
        app.order_request(user.id, &[(product.id, 1)], None),
        app.post("/api/v1/quotes").json(&json!({
            "user_id": user.id,
            "items": [{ "product_id": product.id, "quantity": 1 }],
        })),
    ] {
        let problem = expect_problem(
            request,
            StatusCode::SERVICE_UNAVAILABLE,
            "POLICY_UNAVAILABLE",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("NUL")),
            "{problem}"
        );
    }
    assert_eq!(app.stock(product.id).await, 10);
    let (_, orders) = send(app.get(&format!("/api/v1/users/{}/orders", user.id))).await;
    assert_eq!(orders["total"], 0, "{orders}");
}
