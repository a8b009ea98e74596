//! Malformed requests are answered with 4xx problem bodies and change nothing.

use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_wrong_types_are_invalid_requests() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let charge = format!("/api/v1/users/{}/points/charge", user.id);
    let json_body = |body: &'static str| {
        app.post(&charge)
            .header("content-type", "application/json")
            .body(body)
    };
    for body in [
        "{",
        "not json",
        "[]",
        "{}",
        r#"{"amount": "100"}"#,
        r#"{"amount": 1.5}"#,
        r#"{"amount": null}"#,
        r#"{"amount": 99999999999999999999999}"#,
        r#"{"amount": 100, "extra": true}"#,
    ] {
        expect_problem(json_body(body), StatusCode::BAD_REQUEST, "INVALID_REQUEST").await;
    }
    // No JSON content type at all.
    expect_problem(
        app.post(&charge).body(r#"{"amount": 1}"#),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.post("/api/v1/users").json(&json!({ "name": 7 })),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    for name in ["", "   ", &"x".repeat(101)] {
        expect_problem(
            app.post("/api/v1/users").json(&json!({ "name": name })),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    assert_eq!(app.balance(user.id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_in_the_path_are_invalid_requests() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    for id in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        expect_problem(
            app.get(&format!("/api/v1/users/{id}/points")),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
        expect_problem(
            app.get(&format!("/api/v1/products/{id}")),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalogue_queries_are_invalid_requests() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    for query in [
        "size=0",
        "size=101",
        "page=-1",
        "page=x",
        "sort=cheapest",
        "in_stock=yes",
        "min_price=-1",
        "min_price=10&max_price=5",
        "max_price=abc",
    ] {
        expect_problem(
            app.get(&format!("/api/v1/products?{query}")),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    let user = app.create_user("lee").await;
    expect_problem(
        app.get(&format!(
            "/api/v1/users/{}/points/history?size=1000",
            user.id
        )),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_products_are_refused_and_not_written() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    for body in [
        json!({ "name": "", "category": "c", "price": 1, "stock": 1 }),
        json!({ "name": "n", "category": "", "price": 1, "stock": 1 }),
        json!({ "name": "n", "category": "c", "price": -1, "stock": 1 }),
        json!({ "name": "n", "category": "c", "price": 1, "stock": -1 }),
        json!({ "name": "n", "category": "c", "price": 1, "stock": 10_000_000_000_i64 }),
        json!({ "name": "n", "category": "c", "price": 1 }),
    ] {
        expect_problem(
            app.admin(Method::POST, "/api/v1/admin/products")
                .json(&body),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    let product = app.create_product("Mug", "home", 1_000, 1).await;
    for body in [
        json!({}),
        json!({ "price": -5 }),
        json!({ "stock": "many" }),
    ] {
        expect_problem(
            app.admin(
                Method::PATCH,
                &format!("/api/v1/admin/products/{}", product.id),
            )
            .json(&body),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    assert_eq!(app.products("").await.total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let name = "x".repeat(2 * 1024 * 1024);
    expect_problem(
        app.post("/api/v1/users").json(&json!({ "name": name })),
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_problem_bodies() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    expect_problem(
        app.get("/api/v1/nothing-here"),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_problem(
        app.request(Method::DELETE, "/api/v1/products"),
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
}
