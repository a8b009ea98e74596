//! A slot's configuration through the API: declared by the component, set
//! with `PUT .../config` or with a component as a multipart form, shadowed
//! with a candidate's own configuration, promoted and rolled back, on two
//! instances of one deployment.

use commerce_tests::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const POLICIES: &str = "/api/v1/admin/policies";

/// A `multipart/form-data` body with a `component` part and, when given, a
/// `config` part.
pub(crate) fn form(
    request: RequestBuilder,
    component: Vec<u8>,
    config: Option<&Value>,
) -> RequestBuilder {
    const BOUNDARY: &str = "commerce-test-boundary-7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"policy.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&component);
    if let Some(config) = config {
        body.extend_from_slice(
            format!(
                "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"config\"\r\nContent-Type: application/json\r\n\r\n{config}"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    request
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
}

/// The slot's entry in `GET /admin/policies`.
async fn entry(app: &Instance, slot: &str) -> Value {
    let list: Value = expect(app.admin(Method::GET, POLICIES), StatusCode::OK).await;
    list["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|entry| entry["slot"] == slot).cloned())
        .unwrap_or_else(|| panic!("no {slot} in {list}"))
}

/// Waits until `app` serves the slot with `name` and `config`: every
/// instance follows a change within a second.
async fn serves(app: &Instance, slot: &str, name: &str, config: Value) -> Value {
    eventually(PROPAGATION, &format!("{name} with {config}"), || async {
        let entry = entry(app, slot).await;
        if entry["name"] == name && entry["config"] == config {
            Ok(entry)
        } else {
            Err(entry.to_string())
        }
    })
    .await
}

/// The discount a quote of `quantity` pens gets on `app`.
async fn quote_discount(app: &Instance, user: &User, product: &Product, quantity: i64) -> i64 {
    let quote: Value = expect(
        app.post("/api/v1/quotes").json(&json!({
            "user_id": user.id,
            "items": [{ "product_id": product.id, "quantity": quantity }],
        })),
        StatusCode::OK,
    )
    .await;
    quote["items"][0]["discount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no discount in {quote}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_shadowed_with_its_own_configuration_is_promoted_with_it_and_rolled_back() {
    let deployment = Deployment::start_many(2).await;
    let (first, second) = (deployment.instance(0), deployment.instance(1));
    let user = first.create_user("kim").await;
    let pen = first.create_product("Pen", "office", 10_000, 1_000).await;
    let loyalty = component("pricing-loyalty");

    // The listing shows each slot's configuration and the keys its component reads.
    let pricing = entry(first, "pricing").await;
    assert_eq!(
        (&pricing["name"], &pricing["config"]),
        (&json!("pricing-standard"), &json!({}))
    );

    // Shadowed bare, the candidate runs with the active configuration,
    // which lacks its threshold: the report says so, lest "diverged 0"
    // read as "the same".
    let started: Value = expect(
        first
            .admin(Method::PUT, &format!("{POLICIES}/pricing/shadow"))
            .body(loyalty.clone()),
        StatusCode::OK,
    )
    .await;
    assert_eq!(started["own_config"], false, "{started}");
    assert_eq!(
        started["missing_config_keys"],
        json!(["min_lifetime_spend"])
    );
    assert_eq!(
        started["config_keys"][0]["key"], "min_lifetime_spend",
        "{started}"
    );
    deployment
        .until_shadowed("pricing", &started["sha256"])
        .await;
    assert_eq!(quote_discount(second, &user, &pen, 2).await, 0);
    let report = first.shadow_report_after("pricing", 1).await;
    assert_eq!(report["diverged"], 0, "{report}");
    assert_eq!(report["missing_config_keys"], json!(["min_lifetime_spend"]));
    assert!(
        report["note"]
            .as_str()
            .is_some_and(|note| note.contains("min_lifetime_spend (default \"1000000\")")),
        "{report}"
    );

    // With its own configuration (everyone is loyal), it diverges on every
    // evaluation, on both instances, and the report names that configuration.
    let own = json!({ "min_lifetime_spend": "0" });
    let started: Value = expect(
        form(
            first.admin(Method::PUT, &format!("{POLICIES}/pricing/shadow")),
            loyalty.clone(),
            Some(&own),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&started["config"], &started["own_config"]),
        (&own, &json!(true))
    );
    deployment
        .until_every_instance("pricing", "the shadow's own configuration", |entry| {
            entry["shadow"]["config"] == own
        })
        .await;
    for n in 0..4 {
        // Never applied: every answer is at list price.
        let app = deployment.instance(n);
        assert_eq!(quote_discount(app, &user, &pen, 2).await, 0);
    }
    let report = second.shadow_report_after("pricing", 4).await;
    println!("shadow with its own configuration: {report:#}");
    assert_eq!(
        (
            &report["evaluated"],
            &report["diverged"],
            &report["config"],
            &report["own_config"]
        ),
        (&json!(4), &json!(4), &own, &json!(true)),
        "{report}"
    );
    assert_eq!(report["missing_config_keys"], json!([]));
    assert_eq!(report["note"], Value::Null);
    let example = &report["examples"][0];
    assert_eq!(
        example["candidate_output"][0]["discount"], 1_000,
        "{example}"
    );
    assert_eq!(example["active_output"][0]["discount"], 0, "{example}");

    // Promoted with that configuration: both instances serve it within a second.
    let promoted: Value = expect(
        form(
            first.admin(Method::PUT, &format!("{POLICIES}/pricing")),
            loyalty.clone(),
            Some(&own),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&promoted["name"], &promoted["config"]),
        (&json!("pricing-loyalty"), &own)
    );
    serves(second, "pricing", "pricing-loyalty", own.clone()).await;
    assert_eq!(quote_discount(second, &user, &pen, 2).await, 1_000);

    // A new configuration for the active component, through the other instance.
    let strict = json!({ "min_lifetime_spend": "5000000" });
    let changed: Value = expect(
        second
            .admin(Method::PUT, &format!("{POLICIES}/pricing/config"))
            .json(&strict),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&changed["name"], &changed["config"], &changed["sha256"]),
        (&json!("pricing-loyalty"), &strict, &promoted["sha256"])
    );
    serves(first, "pricing", "pricing-loyalty", strict.clone()).await;
    assert_eq!(quote_discount(first, &user, &pen, 2).await, 0);

    // A rollback returns to the previous configuration, then to the
    // previous component with its own.
    let back: Value = expect(
        first.admin(Method::POST, &format!("{POLICIES}/pricing/rollback")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(back["config"], own, "{back}");
    serves(second, "pricing", "pricing-loyalty", own.clone()).await;
    assert_eq!(quote_discount(second, &user, &pen, 2).await, 1_000);
    let (status, back) =
        send(first.admin(Method::POST, &format!("{POLICIES}/pricing/rollback"))).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    serves(second, "pricing", "pricing-standard", json!({})).await;
    assert_eq!(quote_discount(second, &user, &pen, 2).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_is_an_object_of_strings_the_component_declares() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let config = |slot: &str| format!("{POLICIES}/{slot}/config");
    for body in [
        json!({ "days": 7 }),
        json!(["days", "7"]),
        json!("days=7"),
        json!(null),
        // PostgreSQL cannot store NUL: refused where the request is read.
        json!({ "k\u{0}": "x" }),
        json!({ "k": "x\u{0}" }),
        json!({ "days": "7".repeat(1_001) }),
    ] {
        for slot in ["coupon", "order_rules"] {
            expect_problem(
                app.admin(Method::PUT, &config(slot)).json(&body),
                StatusCode::BAD_REQUEST,
                "INVALID_CONFIG",
            )
            .await;
        }
    }
    expect_problem(
        app.admin(Method::PUT, &config("coupon")).body("{not json"),
        StatusCode::BAD_REQUEST,
        "INVALID_CONFIG",
    )
    .await;
    expect_problem(
        app.admin(Method::PUT, &config("shipping")).json(&json!({})),
        StatusCode::NOT_FOUND,
        "UNKNOWN_SLOT",
    )
    .await;
    expect_problem(
        app.put(&config("coupon")).json(&json!({})),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;

    // coupon-new-members reads `days`, and nothing else.
    let members = component("coupon-new-members");
    let refused = expect_problem(
        form(
            app.admin(Method::PUT, &format!("{POLICIES}/coupon")),
            members.clone(),
            Some(&json!({ "dayz": "3" })),
        ),
        StatusCode::BAD_REQUEST,
        "INVALID_CONFIG",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("dayz") && detail.contains("days")),
        "{refused}"
    );
    expect_problem(
        form(
            app.admin(Method::PUT, &format!("{POLICIES}/coupon/shadow")),
            members.clone(),
            Some(&json!({ "days": 3 })),
        ),
        StatusCode::BAD_REQUEST,
        "INVALID_CONFIG",
    )
    .await;
    // Nothing changed meanwhile.
    assert_eq!(entry(app, "coupon").await["name"], "coupon-standard");

    let installed: Value = expect(
        form(
            app.admin(Method::PUT, &format!("{POLICIES}/coupon")),
            members,
            Some(&json!({ "days": "3" })),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(installed["config"], json!({ "days": "3" }));
    assert_eq!(installed["config_keys"][0]["default"], "7", "{installed}");
    expect_problem(
        app.admin(Method::PUT, &config("coupon"))
            .json(&json!({ "days": "3", "weeks": "1" })),
        StatusCode::BAD_REQUEST,
        "INVALID_CONFIG",
    )
    .await;
    let cleared: Value = expect(
        app.admin(Method::PUT, &config("coupon")).json(&json!({})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["config"], json!({}));
    // A bare upload keeps the slot's configuration.
    let kept: Value = expect(
        app.admin(Method::PUT, &format!("{POLICIES}/coupon"))
            .body(component("coupon-new-members")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(kept["config"], json!({}));

    // A form without its component is no component.
    let (status, body) = send(
        app.admin(Method::PUT, &format!("{POLICIES}/pricing"))
            .header("content-type", "multipart/form-data; boundary=b")
            .body("--b\r\nContent-Disposition: form-data; name=\"config\"\r\n\r\n{}\r\n--b--\r\n"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_COMPONENT")),
        "{body}"
    );
}
