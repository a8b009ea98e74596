//! A server that expects hostile clients: silent, slow and idle connections
//! and too many of them, prices that overflow a total, refunds near the wallet cap,
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

/// How a held connection misbehaves.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request's headers one byte every 100 ms.
    SlowHeaders,
    /// Sends complete headers, then the body one byte every 100 ms.
    SlowBody,
    /// Speaks HTTP/2 (h2c), asks once, then only answers and sends PINGs.
    IdleHttp2,
}

/// Holds one connection the way `hold` says; returns how long it stayed open
/// and what the server answered on it, after 10 s at most.
async fn hold(address: String, hold: Hold) -> (Duration, Option<String>) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.expect("a connection");
    let limit = Duration::from_secs(10);
    match hold {
        Hold::IdleHttp2 => {
            let (mut send, mut connection) = h2::client::handshake(stream).await.expect("h2c");
            let request = axum::http::Request::get("http://localhost/healthz")
                .body(())
                .expect("a request");
            let mut pings = connection.ping_pong().expect("a PING handle");
            let driven = tokio::spawn(async move {
                let _ = tokio::time::timeout(limit, connection).await;
            });
            let (answer, _) = send.send_request(request, true).expect("a stream");
            let status = answer.await.expect("an answer").status().to_string();
            // Only PINGs from here on: the connection carries no request.
            let pinging = tokio::spawn(async move {
                while pings.ping(h2::Ping::opaque()).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let _ = driven.await;
            pinging.abort();
            (started.elapsed(), Some(status))
        }
        Hold::Silent | Hold::SlowHeaders | Hold::SlowBody => {
            let (head, trickle): (&[u8], _) = match hold {
                Hold::Silent => (b"", None),
                Hold::SlowHeaders => (b"", Some(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".as_slice())),
                _ => (
                    b"POST /api/v1/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                    Some(b"{\"name\": \"".as_slice()),
                ),
            };
            stream.write_all(head).await.expect("the head");
            let mut sent = 0;
            let mut answer = Vec::new();
            let mut buffer = [0u8; 1024];
            while started.elapsed() < limit {
                if let Some(trickle) = trickle {
                    let byte = [trickle.get(sent).copied().unwrap_or(b'a')];
                    sent += 1;
                    if stream.write_all(&byte).await.is_err() {
                        break;
                    }
                }
                // A closed connection reads as 0 bytes (or an error) at once.
                let read =
                    tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer));
                match read.await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
                    Err(_) => {}
                }
            }
            let answer =
                (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned());
            (started.elapsed(), answer)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_quiet_connection_is_closed_on_its_timer() {
    const TIMER: Duration = Duration::from_millis(1_000);
    let deployment = Deployment::start_with(1, |settings| {
        settings.header_timeout_ms = TIMER.as_millis() as u64;
        settings.idle_timeout_ms = TIMER.as_millis() as u64;
        settings.body_timeout_ms = TIMER.as_millis() as u64;
        settings.max_connections = 4;
    })
    .await;
    let app = deployment.app();
    let address = app.base.trim_start_matches("http://").to_owned();
    for kind in [
        Hold::Silent,
        Hold::SlowHeaders,
        Hold::SlowBody,
        Hold::IdleHttp2,
    ] {
        let started = Instant::now();
        // Four held connections take every connection the server serves.
        let held: Vec<_> = (0..4)
            .map(|_| tokio::spawn(hold(address.clone(), kind)))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Another client waits in the backlog until the timers free a slot.
        let response = reqwest::Client::new()
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect("an answer once a connection is free");
        assert_eq!(response.status(), StatusCode::OK, "{kind:?}");
        let waited = started.elapsed();
        assert!(
            waited >= TIMER - Duration::from_millis(100),
            "{kind:?}: the cap let a fifth connection in after {waited:?}"
        );
        assert!(
            waited <= TIMER + Duration::from_millis(1_500),
            "{kind:?}: another client waited {waited:?} for /healthz"
        );
        for connection in held {
            let (open, answer) = connection.await.expect("a held connection");
            assert!(
                open < TIMER + Duration::from_millis(2_000),
                "{kind:?}: a connection stayed open {open:?}"
            );
            match kind {
                Hold::SlowBody => {
                    let answer = answer.unwrap_or_default();
                    assert!(
                        answer.starts_with("HTTP/1.1 408") && answer.contains("REQUEST_TIMEOUT"),
                        "a slow body's answer: {answer}"
                    );
                }
                Hold::IdleHttp2 => assert_eq!(answer.as_deref(), Some("200 OK")),
                Hold::Silent | Hold::SlowHeaders => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_carries_a_bounded_number_of_streams() {
    let deployment = Deployment::start_with(1, |settings| settings.http2_max_streams = 3).await;
    let address = deployment
        .app()
        .base
        .trim_start_matches("http://")
        .to_owned();
    let stream = TcpStream::connect(address).await.expect("a connection");
    let (send, connection) = h2::client::handshake(stream).await.expect("h2c");
    tokio::spawn(connection);
    let mut send = send.ready().await.expect("ready to send");
    let request = axum::http::Request::get("http://localhost/healthz")
        .body(())
        .expect("a request");
    let (answer, _) = send.send_request(request, true).expect("a stream");
    assert_eq!(answer.await.expect("an answer").status(), StatusCode::OK);
    // The server's SETTINGS have been read by the time it answered.
    assert_eq!(send.current_max_send_streams(), 3);
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
