//! The audit log: every change through the admin API, recorded in the
//! change's own transaction with who made it, read from any instance.

use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const AUDIT: &str = "/api/v1/admin/audit";

/// The log's entries `query` selects, through `app`, newest first.
async fn audit(app: &Instance, query: &str) -> Vec<Value> {
    let page: Value = expect(
        app.admin(Method::GET, &format!("{AUDIT}?{query}")),
        StatusCode::OK,
    )
    .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// `(action, actor, target)` of each entry.
fn rows(entries: &[Value]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
            (text("action"), text("actor"), text("target"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_change_is_recorded_with_its_actor_before_and_after() {
    let deployment = Deployment::start_with(2, |settings| {
        settings.jwt_secret = Some(JWT_SECRET.to_owned());
    })
    .await;
    let (first, second) = (deployment.instance(0), deployment.instance(1));
    let operator = user_token(42, true);

    // Through the admin token, then an admin user's token.
    let pen = first.create_product("Pen", "office", 1_000, 10).await;
    let (status, patched) = send(
        first
            .patch(&format!("/api/v1/admin/products/{}", pen.id))
            .bearer_auth(&operator)
            .json(&json!({ "price": 1_200 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let coupon = first.create_coupon(&open_coupon("welcome", 10)).await;
    let (status, swapped) = send(
        first
            .admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("pricing-bulk")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{swapped}");
    let (status, _) =
        send(first.admin(Method::POST, "/api/v1/admin/policies/pricing/rollback")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, shadow) = send(
        first
            .admin(Method::PUT, "/api/v1/admin/policies/order_rules/shadow")
            .body(component("order-rules-max-five")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shadow}");
    let (status, _) =
        send(first.admin(Method::DELETE, "/api/v1/admin/policies/order_rules/shadow")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A refused change records nothing.
    let (status, _) = send(
        first
            .admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(b"not a component".to_vec()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Read through the other instance: the log lives in PostgreSQL.
    let all = audit(second, "size=100").await;
    let product = format!("product:{}", pen.id);
    assert_eq!(
        rows(&all),
        [
            ("shadow.stop", "admin-token", "policy:order_rules"),
            ("shadow.start", "admin-token", "policy:order_rules"),
            ("policy.rollback", "admin-token", "policy:pricing"),
            ("policy.swap", "admin-token", "policy:pricing"),
            (
                "coupon.create",
                "admin-token",
                &*format!("coupon:{}", coupon.id)
            ),
            ("product.update", "user:42", &*product),
            ("product.create", "admin-token", &*product),
        ]
        .map(|(action, actor, target)| (
            action.to_owned(),
            actor.to_owned(),
            target.to_owned()
        ))
    );
    let ids: Vec<i64> = all
        .iter()
        .filter_map(|entry| entry["id"].as_i64())
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first: {ids:?}"
    );
    assert!(
        all.iter()
            .all(|entry| entry["at"].as_str().is_some_and(|at| at.ends_with('Z')))
    );

    // What changed, before and after; a component by name and digest only.
    let update = &all[5];
    assert_eq!(
        (&update["before"]["price"], &update["after"]["price"]),
        (&json!(1_000), &json!(1_200)),
        "{update}"
    );
    assert_eq!(all[6]["before"], Value::Null);
    assert_eq!(all[6]["after"]["name"], "Pen");
    let swap = &all[3];
    assert_eq!(swap["before"]["policy"], "pricing-standard@1.0.0", "{swap}");
    assert_eq!(swap["after"]["policy"], "pricing-bulk@1.0.0", "{swap}");
    assert_eq!(swap["after"]["sha256"], swapped["sha256"], "{swap}");
    assert!(swap.to_string().len() < 2_000, "no component bytes: {swap}");
    let rollback = &all[2];
    assert_eq!(
        (&rollback["before"]["policy"], &rollback["after"]["policy"]),
        (
            &json!("pricing-bulk@1.0.0"),
            &json!("pricing-standard@1.0.0")
        )
    );
    assert_eq!(all[1]["after"]["candidate"], "order-rules-max-five@1.0.0");

    // Filters and paging.
    assert_eq!(
        rows(&audit(second, "target=policy:pricing").await)
            .iter()
            .map(|(action, ..)| action.as_str())
            .collect::<Vec<_>>(),
        ["policy.rollback", "policy.swap"]
    );
    assert_eq!(rows(&audit(first, "actor=user:42").await).len(), 1);
    let page: Value = expect(
        first.admin(Method::GET, &format!("{AUDIT}?size=2&page=1")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().map(Vec::len)
        ),
        (Some(7), Some(2))
    );
    assert_eq!(page["items"][0]["id"], all[2]["id"]);
    expect_problem(
        first.admin(Method::GET, &format!("{AUDIT}?target=a%00b")),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    expect_problem(
        first.admin(Method::GET, &format!("{AUDIT}?size=0")),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    // Users without the admin role cannot read it.
    let (status, _) = send(first.get(AUDIT).bearer_auth(user_token(7, false))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
