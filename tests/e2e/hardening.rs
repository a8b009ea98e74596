//! A server that expects hostile clients: slow headers and too many
//! connections, prices that overflow a total, refunds near the wallet cap,
//! deep pages, made-up methods in metrics labels, readiness that leaks
//! nothing.

use std::time::{Duration, Instant};

use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Opens a connection that sends a request's headers one byte every 100 ms
/// and never finishes them; returns when the server closes it, or after 10 s.
async fn slow_client(address: String) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.expect("a connection");
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let mut sent = 0;
    let mut buffer = [0u8; 256];
    while started.elapsed() < Duration::from_secs(10) {
        let byte = [head.get(sent).copied().unwrap_or(b'a')];
        if stream.write_all(&byte).await.is_err() {
            return started.elapsed();
        }
        sent += 1;
        // A closed connection reads as 0 bytes (or an error) at once.
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await
        {
            match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_open_connections_are_capped() {
    let deployment = Deployment::start_with(1, |settings| {
        settings.header_timeout_ms = 1_000;
        settings.max_connections = 4;
    })
    .await;
    let app = deployment.app();
    let address = app.base.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    // Four slow clients take every connection the server serves at once.
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(slow_client(address.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fifth client waits in the backlog until the slow ones are closed.
    let fresh = reqwest::Client::new();
    let response = fresh
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("an answer once a connection is free");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the cap let a fifth connection in at once"
    );
    for client in slow {
        let held = client.await.expect("a slow client");
        assert!(
            held < Duration::from_secs(3),
            "a slow client held its connection for {held:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_whose_sum_overflows_are_the_policys_failure_never_an_order() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let pen = app.create_product("Pen", "office", 1_000, 5).await;
    let ink = app.create_product("Ink", "office", 2_000, 5).await;
    let (status, body) = send(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("misbehave-huge-prices")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for request in [
        app.order_request(user.id, &[(pen.id, 1), (ink.id, 1)], None),
        app.post("/api/v1/quotes").json(&json!({
            "user_id": user.id,
            "items": [{ "product_id": pen.id, "quantity": 1 }, { "product_id": ink.id, "quantity": 1 }],
        })),
    ] {
        expect_problem(request, StatusCode::SERVICE_UNAVAILABLE, "POLICY_UNAVAILABLE").await;
    }
    let orders: i64 = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&deployment.db)
        .await
        .expect("a count");
    assert_eq!(orders, 0);
    assert_eq!(app.stock(pen.id).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_may_pass_the_wallet_cap_that_charges_keep() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    for _ in 0..100 {
        assert_eq!(app.charge(user.id, 1_000_000).await.0, StatusCode::OK);
    }
    let tv = app.create_product("TV", "electronics", 500_000, 1).await;
    let (status, order) = app.place_order(user.id, &[(tv.id, 1)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_i64().expect("an order id");
    assert_eq!(app.pay(order_id, user.id).await.0, StatusCode::CREATED);
    // Charged back up to the cap, then the paid order is cancelled.
    assert_eq!(app.charge(user.id, 500_000).await.0, StatusCode::OK);
    assert_eq!(app.balance(user.id).await, 100_000_000);
    let (status, body) = app.cancel(order_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.balance(user.id).await, 100_500_000);
    let history = app.history(user.id).await;
    let sum: i64 = history.iter().map(|entry| entry.signed_amount()).sum();
    assert_eq!(sum, 100_500_000, "the balance is the sum of the history");
    // Above the cap, a charge is refused clearly.
    expect_problem(
        app.charge_request(user.id, 1),
        StatusCode::BAD_REQUEST,
        "INVALID_AMOUNT",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_pages_are_refused_before_they_reach_the_database() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let (status, _) = send(app.get("/api/v1/products?page=100&size=100")).await;
    assert_eq!(status, StatusCode::OK);
    expect_problem(
        app.get("/api/v1/products?page=101&size=100"),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    let user = app.create_user("kim").await;
    expect_problem(
        app.get(&format!(
            "/api/v1/users/{}/points/history?page=5000&size=20",
            user.id
        )),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_metrics_label_and_readiness_names_no_driver_message() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let method = Method::from_bytes(b"BREW").expect("a method");
    let _ = app.request(method, "/api/v1/products").send().await;
    let (status, text) = send(app.admin(Method::GET, "/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("a text body");
    assert!(text.contains(r#"method="OTHER""#), "{text}");
    assert!(!text.contains("BREW"));
    assert!(!text.contains(r#"coupon=""#), "no label per coupon");

    let (status, body) = send(app.get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "status": "ready", "postgres": "ok", "redis": "ok" })
    );
}
