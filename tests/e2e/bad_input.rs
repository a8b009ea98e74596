//! Malformed requests are answered with 4xx problem bodies and change nothing.

use commerce_tests::*;
use reqwest::{Method, StatusCode, header::HeaderValue};
use serde_json::{Value, json};

use crate::config::form;

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

/// Rows of `table`, to show a refused request wrote nothing.
async fn rows(deployment: &Deployment, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(&deployment.db)
        .await
        .expect("a count")
}

/// PostgreSQL refuses NUL in text and in JSON; a request carrying one must be
/// refused as the request is read, with its own code, never reach the
/// database as a 500. Other control characters are refused wherever text is
/// stored, since they only hide what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_and_control_characters_are_refused_where_the_request_is_read() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let bad_texts = [
        "nu\u{0}l",
        "\u{0}",
        "bell\u{7}",
        "esc\u{1b}[2J",
        "c\u{85}1",
        "line\nbreak",
    ];

    // Names of users, products and coupons, and the catalogue's search.
    let users = rows(&deployment, "users").await;
    let product = app.create_product("Mug", "home", 1_000, 1).await;
    for text in bad_texts {
        let refused = [
            app.post("/api/v1/users").json(&json!({ "name": text })),
            app.admin(Method::POST, "/api/v1/admin/products")
                .json(&json!({ "name": text, "category": "c", "price": 1, "stock": 1 })),
            app.admin(Method::POST, "/api/v1/admin/products")
                .json(&json!({ "name": "n", "category": text, "price": 1, "stock": 1 })),
            app.admin(
                Method::PATCH,
                &format!("/api/v1/admin/products/{}", product.id),
            )
            .json(&json!({ "name": text })),
            app.admin(
                Method::PATCH,
                &format!("/api/v1/admin/products/{}", product.id),
            )
            .json(&json!({ "category": text })),
            app.admin(Method::POST, "/api/v1/admin/coupons")
                .json(&open_coupon(text, 10)),
            app.get("/api/v1/products").query(&[("name", text)]),
            app.get("/api/v1/products").query(&[("category", text)]),
        ];
        for request in refused {
            expect_problem(request, StatusCode::BAD_REQUEST, "INVALID_REQUEST").await;
        }
    }
    assert_eq!(rows(&deployment, "users").await, users);
    assert_eq!(rows(&deployment, "products").await, 1);
    assert_eq!(rows(&deployment, "coupons").await, 0);
    let mug: Value = expect(
        app.get(&format!("/api/v1/products/{}", product.id)),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (mug["name"].as_str(), mug["category"].as_str()),
        (Some("Mug"), Some("home"))
    );

    // A field name or an enumerated value with a NUL is no field or value.
    let user = app.create_user("kim").await;
    expect_problem(
        app.post(&format!("/api/v1/users/{}/points/charge", user.id))
            .json(&json!({ "amount\u{0}": 100 })),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.get(&format!("/api/v1/users/{}/coupons", user.id))
            .query(&[("status", "used\u{0}")]),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.get("/api/v1/products").query(&[("sort", "name\u{0}")]),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing%00/config")
            .json(&json!({})),
        StatusCode::NOT_FOUND,
        "UNKNOWN_SLOT",
    )
    .await;

    // The Idempotency-Key header: HTTP itself refuses NUL in a header, so
    // what reaches the server is a tab or a byte past ASCII at worst.
    for key in [&b"key\twith-tab"[..], b"key-\xff"] {
        expect_problem(
            app.charge_request(user.id, 100).header(
                "idempotency-key",
                HeaderValue::from_bytes(key).expect("a header value"),
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    assert_eq!(app.balance(user.id).await, 0);

    // A slot's configuration, set alone or with a component, active or
    // shadowed.
    let policies = rows(&deployment, "policy_versions").await;
    let members = component("coupon-new-members");
    for text in bad_texts {
        for config in [json!({ text: "x" }), json!({ "days": text })] {
            for slot in ["pricing", "coupon", "order_rules"] {
                expect_problem(
                    app.admin(
                        Method::PUT,
                        &format!("/api/v1/admin/policies/{slot}/config"),
                    )
                    .json(&config),
                    StatusCode::BAD_REQUEST,
                    "INVALID_CONFIG",
                )
                .await;
            }
            for path in [
                "/api/v1/admin/policies/coupon",
                "/api/v1/admin/policies/coupon/shadow",
            ] {
                expect_problem(
                    form(app.admin(Method::PUT, path), members.clone(), Some(&config)),
                    StatusCode::BAD_REQUEST,
                    "INVALID_CONFIG",
                )
                .await;
            }
        }
    }
    assert_eq!(rows(&deployment, "policy_versions").await, policies);
    expect_problem(
        app.admin(Method::GET, "/api/v1/admin/policies/coupon/shadow"),
        StatusCode::NOT_FOUND,
        "NO_SHADOW",
    )
    .await;
}
