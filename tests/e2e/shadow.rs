use std::time::{Duration, Instant};

use commerce::policy::{Slot, replay, runner};
use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn shadow_path(slot: &str) -> String {
    format!("/api/v1/admin/policies/{slot}/shadow")
}

async fn start_shadow(app: &Instance, slot: &str, component_name: &str) -> Value {
    expect(
        app.admin(Method::PUT, &shadow_path(slot))
            .body(component(component_name)),
        StatusCode::OK,
    )
    .await
}

/// What `pricing-bulk` takes off a cart: 10% of each line of 10 units or more.
fn bulk_discount(lines: &[(i64, i64)], price: i64) -> i64 {
    lines
        .iter()
        .filter(|(_, quantity)| *quantity >= 10)
        .map(|(_, quantity)| price * quantity / 10)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pricing_bulk_in_shadow_and_in_replay_differs_exactly_on_lines_of_ten_or_more() {
    let deployment = Deployment::start_many(2).await;
    let app = deployment.app();
    let products = [
        app.create_product("Pen", "office", 1_000, 100_000).await,
        app.create_product("Ink", "office", 2_500, 100_000).await,
    ];
    let users: Vec<User> = futures::future::join_all((0..4).map(|n| {
        let app = app.clone();
        async move { app.create_user(&format!("buyer {n}")).await }
    }))
    .await;
    let since = replay::parse_since("1s").expect("a time");
    let started = start_shadow(app, "pricing", "pricing-bulk").await;
    assert_eq!(
        (started["slot"].as_str(), started["name"].as_str()),
        (Some("pricing"), Some("pricing-bulk"))
    );
    assert!(started["sha256"].is_string() && started["started_at"].is_string());
    // A shadow reaches every instance within a second, as swaps do.
    deployment
        .until_shadowed("pricing", &started["sha256"])
        .await;

    // Carts of one or two lines, around the bulk threshold.
    let quantities = [1, 9, 10, 11, 3, 25, 5, 10];
    let carts: Vec<Vec<(i64, i64)>> = (0..64)
        .map(|n| {
            let first = (products[n % 2].id, quantities[n % quantities.len()]);
            if n % 3 == 0 {
                let second = (
                    products[(n + 1) % 2].id,
                    quantities[(n / 3) % quantities.len()],
                );
                vec![first, second]
            } else {
                vec![first]
            }
        })
        .collect();
    let instances = deployment.instances.clone();
    let placed = concurrently(carts.len(), |n| {
        let (instance, user, cart) = (
            instances[n % 2].clone(),
            users[n % users.len()].id,
            carts[n].clone(),
        );
        async move { instance.place_order(user, &cart).await }
    })
    .await;
    let mut expected_diverged = 0;
    let mut expected_money = 0;
    for ((status, order), cart) in placed.iter().zip(&carts) {
        assert_eq!(*status, StatusCode::CREATED, "{order}");
        // The candidate is never applied: every order is at list price.
        assert_eq!(order["discount"], 0, "{order}");
        assert!(
            order["items"]
                .as_array()
                .is_some_and(|items| items.iter().all(|item| item["discount"] == 0)),
            "{order}"
        );
        assert_eq!(order["policies"]["pricing"], "pricing-standard@1.0.0");
        let price_of = |id: i64| {
            products
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.price)
                .unwrap_or_default()
        };
        let discount: i64 = cart
            .iter()
            .map(|line| bulk_discount(&[*line], price_of(line.0)))
            .sum();
        if discount > 0 {
            expected_diverged += 1;
            expected_money += discount;
        }
    }
    assert!(expected_diverged > 10 && expected_diverged < carts.len() as i64);

    // Both instances' evaluations, read through the second one.
    let report = deployment
        .instance(1)
        .shadow_report_after("pricing", carts.len() as i64)
        .await;
    println!(
        "shadow of pricing-bulk over {} orders: {report:#}",
        carts.len()
    );
    assert_eq!(report["candidate"], "pricing-bulk@1.0.0");
    assert_eq!(report["evaluated"], carts.len() as i64, "{report}");
    assert_eq!(report["diverged"], expected_diverged, "{report}");
    assert_eq!(
        (report["failed"].as_i64(), report["dropped"].as_i64()),
        (Some(0), Some(0))
    );
    let examples = report["examples"].as_array().expect("examples");
    assert_eq!(examples.len(), 20.min(expected_diverged as usize));
    for example in examples {
        assert_eq!(example["call"], "price");
        let lines = example["input"]["lines"].as_array().expect("lines");
        let active = example["active_output"].as_array().expect("prices");
        let candidate = example["candidate_output"].as_array().expect("prices");
        assert!(
            lines
                .iter()
                .any(|line| line["quantity"].as_i64() >= Some(10)),
            "{example}"
        );
        for ((line, active), candidate) in lines.iter().zip(active).zip(candidate) {
            let quantity = line["quantity"].as_i64().unwrap_or_default();
            let list = line["unit_price"].as_i64().unwrap_or_default() * quantity;
            assert_eq!(active["discount"], 0, "{example}");
            let bulk = if quantity >= 10 { list / 10 } else { 0 };
            assert_eq!(candidate["discount"], bulk, "{example}");
        }
    }

    // The same orders replayed through the same candidate: the same orders differ.
    let candidate = runner::load(&component("pricing-bulk"), Slot::Pricing).expect("a component");
    let replayed = replay::replay(&deployment.db, candidate, since)
        .await
        .expect("a replay");
    println!("{replayed}");
    assert_eq!(replayed.replayed, carts.len() as u64);
    assert_eq!(replayed.differ as i64, expected_diverged);
    assert_eq!(replayed.money, expected_money);
    assert_eq!((replayed.failed, replayed.flips), (0, 0));
    assert_eq!(replayed.examples.len(), replay::EXAMPLES);
    for example in &replayed.examples {
        assert!(example.difference < 0, "{example:?}");
    }

    // The active version replayed through itself changes nothing.
    let same = runner::load(&component("pricing-standard"), Slot::Pricing).expect("a component");
    let replayed = replay::replay(&deployment.db, same, since)
        .await
        .expect("a replay");
    assert_eq!(
        (replayed.replayed, replayed.differ, replayed.money),
        (carts.len() as u64, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_endpoints_answer_as_the_contract_says() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    for method in [Method::GET, Method::DELETE] {
        expect_problem(
            app.admin(method, &shadow_path("pricing")),
            StatusCode::NOT_FOUND,
            "NO_SHADOW",
        )
        .await;
    }
    expect_problem(
        app.admin(Method::PUT, &shadow_path("pricing"))
            .body("not a component"),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    expect_problem(
        app.admin(Method::PUT, &shadow_path("pricing"))
            .body(component("coupon-standard")),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    expect_problem(
        app.admin(Method::PUT, &shadow_path("shipping"))
            .body(component("pricing-bulk")),
        StatusCode::NOT_FOUND,
        "UNKNOWN_SLOT",
    )
    .await;
    expect_problem(
        app.put(&shadow_path("pricing"))
            .body(component("pricing-bulk")),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;

    let started = start_shadow(app, "order_rules", "order-rules-max-five").await;
    assert_eq!(started["name"], "order-rules-max-five");
    let report: Value = expect(
        app.admin(Method::GET, &shadow_path("order_rules")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            report["evaluated"].as_i64(),
            report["diverged"].as_i64(),
            report["failed"].as_i64()
        ),
        (Some(0), Some(0), Some(0)),
        "{report}"
    );
    assert_eq!(report["examples"], Value::Array(Vec::new()));
    // A shadow changes nothing that serves: the slot keeps its active version.
    let (_, policies) = send(app.admin(Method::GET, "/api/v1/admin/policies")).await;
    assert_eq!(policies["slots"][2]["name"], "order-rules-standard");

    let (status, body) = send(app.admin(Method::DELETE, &shadow_path("order_rules"))).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    expect_problem(
        app.admin(Method::GET, &shadow_path("order_rules")),
        StatusCode::NOT_FOUND,
        "NO_SHADOW",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_traps_or_loops_is_counted_and_never_fails_or_slows_a_request() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let pen = app.create_product("Pen", "office", 1_000, 1_000).await;
    let quote = || {
        app.post("/api/v1/quotes").json(&serde_json::json!({
            "user_id": user.id,
            "items": [{ "product_id": pen.id, "quantity": 2 }],
        }))
    };
    for (candidate, reason) in [
        ("misbehave-trap", "trapped"),
        ("misbehave-loop", "ran out of"),
    ] {
        start_shadow(app, "pricing", candidate).await;
        let started = Instant::now();
        for _ in 0..5 {
            let answer: Value = expect(quote(), StatusCode::OK).await;
            assert_eq!(answer["total"], 2_000);
        }
        let took = started.elapsed();
        println!("5 quotes beside a shadow of {candidate}: {took:?}");
        // A looping candidate runs out of time after 50 ms, after the answer;
        // five answers never wait for it.
        assert!(took < Duration::from_millis(250 * 5), "{took:?}");
        let report = app.shadow_report_after("pricing", 5).await;
        assert_eq!(
            (report["failed"].as_i64(), report["diverged"].as_i64()),
            (Some(5), Some(0)),
            "{report}"
        );
        let example = &report["examples"][0];
        assert_eq!(example["candidate_output"], Value::Null, "{example}");
        assert!(
            example["candidate_error"]
                .as_str()
                .is_some_and(|error| error.contains(reason)),
            "{example}"
        );
        assert_eq!(example["active_output"][0]["unit_price"], 1_000);
    }
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("a body");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("policy_shadow_evaluations_total")
                && line.contains("outcome=\"failed\"")
                && line.contains("misbehave-trap")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_shadow_runs_on_issuance_and_on_orders() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let pen = app.create_product("Pen", "office", 10_000, 1_000).await;
    let coupon = app.create_coupon(&open_coupon("ten percent", 10)).await;
    start_shadow(app, "coupon", "coupon-new-members").await;
    for n in 0..3 {
        let user = app.create_user(&format!("new member {n}")).await;
        let (status, issued) = app.issue(coupon.id, user.id).await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        let (status, order) =
            send(app.order_request(user.id, &[(pen.id, 2)], issued["user_coupon_id"].as_i64()))
                .await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(order["discount"], 2_000);
    }
    // Three `can_issue` and three `apply`; members who joined today are
    // eligible under both policies, which agree.
    let report = app.shadow_report_after("coupon", 6).await;
    assert_eq!(
        (report["evaluated"].as_i64(), report["diverged"].as_i64()),
        (Some(6), Some(0)),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_order_rules_counts_the_accepted_orders_a_candidate_would_reject() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let pen = app.create_product("Pen", "office", 1_000, 1_000).await;
    let user = app.create_user("kim").await;
    for quantity in [1, 5, 6, 7, 2] {
        let (status, order) = app.place_order(user.id, &[(pen.id, quantity)]).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
    }
    let recorded: Value =
        sqlx::query_scalar("select inputs from order_policy_inputs order by order_id limit 1")
            .fetch_one(&deployment.db)
            .await
            .expect("recorded inputs");
    assert_eq!(recorded["contract"], "1.1.0");
    assert_eq!(recorded["pricing"]["lines"][0]["quantity"], 1);
    assert_eq!(recorded["order_rules"]["total"], 1_000);
    assert_eq!(recorded["pricing"]["user"]["lifetime_spend"], 0);
    assert_eq!(recorded["coupon"], Value::Null);

    let candidate =
        runner::load(&component("order-rules-max-five"), Slot::OrderRules).expect("a component");
    let since = replay::parse_since("1h").expect("a time");
    let replayed = replay::replay(&deployment.db, candidate, since)
        .await
        .expect("a replay");
    println!("{replayed}");
    assert_eq!(
        (
            replayed.replayed,
            replayed.differ,
            replayed.flips,
            replayed.money
        ),
        (5, 2, 2, 0)
    );
    assert!(
        replayed.examples[0].candidate[0]["code"] == "MAX_QUANTITY_PER_PRODUCT",
        "{:?}",
        replayed.examples
    );
    // Nothing placed after `since` is nothing replayed.
    let candidate =
        runner::load(&component("order-rules-max-five"), Slot::OrderRules).expect("a component");
    let now = replay::parse_since("0s").expect("a time");
    let later = replay::replay(&deployment.db, candidate, now)
        .await
        .expect("a replay");
    assert_eq!(later.replayed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_inputs_older_than_the_retention_are_pruned() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let pen = app.create_product("Pen", "office", 1_000, 1_000).await;
    let user = app.create_user("kim").await;
    for _ in 0..3 {
        assert_eq!(
            app.place_order(user.id, &[(pen.id, 1)]).await.0,
            StatusCode::CREATED
        );
    }
    sqlx::query(
        "update order_policy_inputs set created_at = now() - interval '31 days'
          where order_id = (select min(order_id) from order_policy_inputs)",
    )
    .execute(&deployment.db)
    .await
    .expect("an old record");
    let pruned = commerce::policy::recorded::prune(&deployment.db, 30)
        .await
        .expect("a prune");
    assert_eq!(pruned, 1);
    let left: i64 = sqlx::query_scalar("select count(*) from order_policy_inputs")
        .fetch_one(&deployment.db)
        .await
        .expect("a count");
    assert_eq!(left, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_whose_candidate_answers_out_of_bounds_fails_no_request_and_stops_itself() {
    let deployment = Deployment::start_many(2).await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let pen = app.create_product("Pen", "office", 1_000, 1_000).await;
    let started = start_shadow(app, "pricing", "misbehave-aliased-reasons").await;
    // Both instances run the candidate; every answer is the active version's.
    deployment
        .until_shadowed("pricing", &started["sha256"])
        .await;
    for n in 0..120 {
        let answer: Value = expect(
            deployment
                .instance(n % 2)
                .post("/api/v1/quotes")
                .json(&serde_json::json!({
                    "user_id": user.id,
                    "items": [{ "product_id": pen.id, "quantity": 2 }],
                })),
            StatusCode::OK,
        )
        .await;
        assert_eq!(answer["total"], 2_000);
    }
    let (status, order) = deployment
        .instance(1)
        .place_order(user.id, &[(pen.id, 1)])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let report = eventually(
        Duration::from_secs(5),
        "the shadow stops itself",
        || async {
            let (_, report) = send(app.admin(Method::GET, &shadow_path("pricing"))).await;
            if report["stopped_at"].is_string() {
                Ok(report)
            } else {
                Err(report.to_string())
            }
        },
    )
    .await;
    let (failed, evaluated) = (
        report["failed"].as_i64().unwrap_or_default(),
        report["evaluated"].as_i64().unwrap_or_default(),
    );
    assert!(evaluated >= 100 && failed == evaluated, "{report}");
    assert!(
        report["stopped_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("stopped itself")),
        "{report}"
    );
    assert!(
        report["examples"][0]["candidate_error"]
            .as_str()
            .is_some_and(|error| error.contains("out of bounds")),
        "{report}"
    );
    // A stopped shadow runs on no instance any more: the counts stay put.
    for n in 0..10 {
        let (status, _) = send(deployment.instance(n % 2).post("/api/v1/quotes").json(
            &serde_json::json!({
                "user_id": user.id,
                "items": [{ "product_id": pen.id, "quantity": 1 }],
            }),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Three flushes later (the harness flushes every 100 ms), nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, after) = send(app.admin(Method::GET, &shadow_path("pricing"))).await;
    assert_eq!(after["evaluated"], report["evaluated"], "{after}");
    // Deleting it clears the slot for the next candidate.
    let (status, _) = send(app.admin(Method::DELETE, &shadow_path("pricing"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
