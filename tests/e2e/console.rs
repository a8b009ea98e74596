//! The operator console's page and the admin endpoints only it uses:
//! each slot's state, the activation history, promoting a shadow, replay
//! jobs and live counters. The page itself is driven in a browser by
//! `tests/browser` (scripts/console-test.sh).

use std::time::{Duration, Instant};

use commerce_tests::*;
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

/// What `GET /api/v1/admin/console/slots` says of one slot, through `app`.
async fn slot(app: &Instance, name: &str) -> Value {
    let overview: Value = expect(
        app.admin(Method::GET, "/api/v1/admin/console/slots"),
        StatusCode::OK,
    )
    .await;
    overview["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|s| s["slot"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} slot in {overview}"))
}

/// The slot as `app` sees it once `ready` holds: instances follow changes
/// made through another within a second.
async fn slot_when(app: &Instance, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let seen = slot(app, name).await;
        if ready(&seen) {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never became ready: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(name, source, state)` of each activation of pricing, newest first.
async fn history(app: &Instance) -> Vec<(String, String, String)> {
    let page: Value = expect(
        app.admin(Method::GET, "/api/v1/admin/policies/pricing/history"),
        StatusCode::OK,
    )
    .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
            (text("name"), text("source"), text("state"))
        })
        .collect()
}

fn entry(name: &str, source: &str, state: &str) -> (String, String, String) {
    (name.to_owned(), source.to_owned(), state.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_is_served_from_the_binary_with_a_strict_policy() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let response = app.get("/console").send().await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let policy = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let page = response.text().await.expect("a page");
    assert!(page.contains("/console/app.js"), "{page}");
    for (asset, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let response = app
            .get(&format!("/console/{asset}"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(content_type.starts_with(kind), "{asset}: {content_type}");
    }
    expect_problem(
        app.get("/console/secrets"),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_problem(
        app.get("/api/v1/admin/console/slots"),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_promotion_and_rollback_as_every_instance_sees_them() {
    let deployment = Deployment::start_many(2).await;
    let (first, second) = (deployment.instance(0), deployment.instance(1));
    let pricing = slot(second, "pricing").await;
    assert_eq!(pricing["active"]["name"], "pricing-standard");
    assert!(pricing["previous"].is_null() && pricing["shadow"].is_null());

    expect::<Value>(
        first
            .admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("pricing-bulk")),
        StatusCode::OK,
    )
    .await;
    let pricing = slot_when(second, "pricing", |s| s["active"]["name"] == "pricing-bulk").await;
    assert_eq!(pricing["previous"]["name"], "pricing-standard");
    assert_eq!(pricing["active"]["contract"], "1.0.0");

    expect::<Value>(
        first
            .admin(Method::PUT, "/api/v1/admin/policies/pricing/shadow")
            .body(component("pricing-loyalty")),
        StatusCode::OK,
    )
    .await;
    slot_when(second, "pricing", |s| {
        s["shadow"]["name"] == "pricing-loyalty"
    })
    .await;

    // The candidate becomes the active version, recorded as a promoted shadow.
    let promoted: Value = expect(
        second.admin(
            Method::POST,
            "/api/v1/admin/policies/pricing/shadow/promote",
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (promoted["name"].as_str(), promoted["source"].as_str()),
        (Some("pricing-loyalty"), Some("shadow"))
    );
    expect_problem(
        first.admin(Method::GET, "/api/v1/admin/policies/pricing/shadow"),
        StatusCode::NOT_FOUND,
        "NO_SHADOW",
    )
    .await;
    expect_problem(
        first.admin(
            Method::POST,
            "/api/v1/admin/policies/pricing/shadow/promote",
        ),
        StatusCode::NOT_FOUND,
        "NO_SHADOW",
    )
    .await;
    slot_when(first, "pricing", |s| {
        s["active"]["name"] == "pricing-loyalty" && s["shadow"].is_null()
    })
    .await;
    assert_eq!(
        history(first).await,
        [
            entry("pricing-loyalty", "shadow", "active"),
            entry("pricing-bulk", "upload", "previous"),
            entry("pricing-standard", "manifest:dev.toml", "standby"),
        ]
    );

    expect::<Value>(
        first.admin(Method::POST, "/api/v1/admin/policies/pricing/rollback"),
        StatusCode::OK,
    )
    .await;
    slot_when(second, "pricing", |s| s["active"]["name"] == "pricing-bulk").await;
    assert_eq!(
        history(second).await,
        [
            entry("pricing-loyalty", "shadow", "rolled_back"),
            entry("pricing-bulk", "upload", "active"),
            entry("pricing-standard", "manifest:dev.toml", "previous"),
        ]
    );
    expect_problem(
        first.admin(Method::GET, "/api/v1/admin/policies/nope/history"),
        StatusCode::NOT_FOUND,
        "UNKNOWN_SLOT",
    )
    .await;
    expect_problem(
        first.admin(Method::GET, "/api/v1/admin/policies/pricing/history?size=0"),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_job_reports_progress_and_what_the_cli_prints() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let pen = app.create_product("Pen", "office", 1_000, 100_000).await;
    let user = app.create_user("buyer").await;
    // Five orders of ten pens at list price: pricing-bulk would take 1,000 won off each.
    for _ in 0..5 {
        let (status, order) = app.place_order(user.id, &[(pen.id, 10)]).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
    }
    let replays = "/api/v1/admin/policies/pricing/replays";
    let job: Value = expect(
        app.admin(Method::POST, &format!("{replays}?since=1h"))
            .body(component("pricing-bulk")),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(job["candidate"], "pricing-bulk@1.0.0");
    let id = job["id"].as_str().expect("an id").to_owned();
    let started = Instant::now();
    let done = loop {
        let job: Value = expect(
            app.admin(Method::GET, &format!("/api/v1/admin/replays/{id}")),
            StatusCode::OK,
        )
        .await;
        if job["status"] == "done" {
            break job;
        }
        assert_ne!(job["status"], "failed", "{job}");
        assert!(started.elapsed() < Duration::from_secs(20), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (done["total"].as_i64(), done["read"].as_i64()),
        (Some(5), Some(5)),
        "{done}"
    );
    let report = &done["report"];
    assert_eq!(
        (
            report["replayed"].as_i64(),
            report["differ"].as_i64(),
            report["money"].as_i64()
        ),
        (Some(5), Some(5), Some(5_000)),
        "{done}"
    );
    let text = done["text"].as_str().expect("the printed report");
    assert!(text.starts_with("replayed 5 orders placed since"), "{text}");
    assert!(text.contains("by 5000 won in total"), "{text}");
    let listed: Vec<Value> = expect(
        app.admin(Method::GET, "/api/v1/admin/replays"),
        StatusCode::OK,
    )
    .await;
    assert!(listed.iter().any(|job| job["id"] == id.as_str()));

    expect_problem(
        app.admin(Method::POST, &format!("{replays}?since=yesterday"))
            .body(component("pricing-bulk")),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.admin(Method::POST, replays)
            .body(component("coupon-standard")),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    expect_problem(
        app.admin(Method::GET, "/api/v1/admin/replays/not-an-id"),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        app.admin(
            Method::GET,
            &format!("/api/v1/admin/replays/{}", "0".repeat(32)),
        ),
        StatusCode::NOT_FOUND,
        "REPLAY_NOT_FOUND",
    )
    .await;

    // The live counters include those orders and their policy calls.
    let stats: Value = expect(
        app.admin(Method::GET, "/api/v1/admin/console/stats"),
        StatusCode::OK,
    )
    .await;
    assert!(stats["orders"]["placed"].as_u64() >= Some(5), "{stats}");
    let pricing = stats["policy_calls"]
        .as_array()
        .and_then(|calls| {
            calls
                .iter()
                .find(|c| c["slot"] == "pricing" && c["policy"] == "pricing-standard@1.0.0")
        })
        .unwrap_or_else(|| panic!("no pricing calls in {stats}"));
    assert!(pricing["calls"].as_u64() >= Some(5), "{stats}");
    assert!(pricing["seconds"].as_f64() > Some(0.0), "{stats}");
    assert!(
        pricing["buckets"].as_array().is_some_and(|b| !b.is_empty()),
        "{stats}"
    );
}
