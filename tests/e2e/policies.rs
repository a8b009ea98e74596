use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use commerce::policy::{Slot, runner};
use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A user and one product at 1,000 won, for quotes.
async fn shop(app: &Instance) -> (User, Product) {
    let user = app.create_user("kim").await;
    let product = app.create_product("Pen", "office", 1_000, 100).await;
    (user, product)
}

fn quote_request(
    app: &Instance,
    user: &User,
    product: &Product,
    quantity: i64,
) -> reqwest::RequestBuilder {
    app.post("/api/v1/quotes").json(&json!({
        "user_id": user.id,
        "items": [{ "product_id": product.id, "quantity": quantity }],
    }))
}

async fn upload(app: &Instance, slot: &str, name: &str) -> (StatusCode, Value) {
    send(
        app.admin(Method::PUT, &format!("/api/v1/admin/policies/{slot}"))
            .body(component(name)),
    )
    .await
}

async fn rollback(app: &Instance, slot: &str) -> (StatusCode, Value) {
    send(app.admin(
        Method::POST,
        &format!("/api/v1/admin/policies/{slot}/rollback"),
    ))
    .await
}

async fn active(app: &Instance, slot: &str) -> Value {
    let (status, body) = send(app.admin(Method::GET, "/api/v1/admin/policies")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|s| s["slot"] == slot).cloned())
        .unwrap_or_else(|| panic!("no {slot} in {body}"))
}

#[test]
fn every_plugin_case_gives_its_expected_output() {
    let mut ran = 0;
    let plugins = repository().join("plugins");
    for plugin in std::fs::read_dir(&plugins).expect("the plugins folder") {
        let plugin = plugin.expect("an entry").path();
        let Ok(cases) = std::fs::read_dir(plugin.join("cases")) else {
            continue;
        };
        let name = plugin
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let bytes = component(&name);
        for case in cases {
            let path = case.expect("an entry").path();
            let case = runner::Case::read(&path).expect("a case file");
            let run = runner::run(&bytes, case.slot, &case.call, &case.input)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            assert_eq!(
                Some(&run.output),
                case.expected.as_ref(),
                "{}",
                path.display()
            );
            assert!(run.report.fuel > 0);
            ran += 1;
        }
    }
    assert!(ran >= 15, "only {ran} cases found");
}

#[test]
fn the_runner_checks_components_against_the_slot_world() {
    assert!(runner::check(&component("pricing-bulk"), Slot::Pricing).is_ok());
    assert!(runner::check(&component("coupon-standard"), Slot::Coupon).is_ok());
    assert!(runner::check(&component("order-rules-max-five"), Slot::OrderRules).is_ok());
    let wrong =
        runner::check(&component("pricing-bulk"), Slot::Coupon).expect_err("a pricing component");
    assert!(wrong.to_string().contains("coupon"), "{wrong}");
    assert!(runner::check(b"not wasm", Slot::Pricing).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_starts_with_the_manifest_policies() {
    let deployment = Deployment::start().await;
    let (status, body) = send(
        deployment
            .app()
            .admin(Method::GET, "/api/v1/admin/policies"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["environment"], "dev");
    let slots: Vec<(String, String)> = body["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| {
            (
                s["slot"].as_str().unwrap_or_default().to_owned(),
                s["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        slots,
        [
            ("pricing".to_owned(), "pricing-standard".to_owned()),
            ("coupon".to_owned(), "coupon-standard".to_owned()),
            ("order_rules".to_owned(), "order-rules-standard".to_owned()),
        ]
    );
    for slot in body["slots"].as_array().expect("slots") {
        assert_eq!(slot["source"], "manifest:dev.toml");
        assert_eq!(slot["sha256"].as_str().map(str::len), Some(64));
        assert!(slot["version"].is_string() && slot["loaded_at"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_is_priced_by_the_active_policies() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let (user, pen) = shop(app).await;
    let quote: Value = expect(quote_request(app, &user, &pen, 10), StatusCode::OK).await;
    assert_eq!(
        (quote["subtotal"].as_i64(), quote["total"].as_i64()),
        (Some(10_000), Some(10_000))
    );
    assert_eq!(quote["policies"]["pricing"], "pricing-standard@1.0.0");
    assert_eq!(quote["items"][0]["line_total"], 10_000);

    let (status, body) = upload(app, "pricing", "pricing-bulk").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["slot"].as_str(),
            body["name"].as_str(),
            body["source"].as_str()
        ),
        (Some("pricing"), Some("pricing-bulk"), Some("upload"))
    );
    let quote: Value = expect(quote_request(app, &user, &pen, 10), StatusCode::OK).await;
    assert_eq!(quote["total"], 9_000);
    assert_eq!(quote["items"][0]["discount"], 1_000);
    assert_eq!(quote["items"][0]["reason"], "bulk 10% off");
    assert_eq!(quote["policies"]["pricing"], "pricing-bulk@1.0.0");

    let (status, body) = rollback(app, "pricing").await;
    assert_eq!(
        (status, body["name"].as_str()),
        (StatusCode::OK, Some("pricing-standard"))
    );
    let quote: Value = expect(quote_request(app, &user, &pen, 10), StatusCode::OK).await;
    assert_eq!(quote["total"], 10_000);
    let (status, body) = rollback(app, "pricing").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("NO_PREVIOUS_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_rules_can_refuse_a_quote_with_their_violations() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let (user, pen) = shop(app).await;
    let problem = expect_problem(
        quote_request(app, &user, &pen, 1_001),
        StatusCode::UNPROCESSABLE_ENTITY,
        "ORDER_REJECTED",
    )
    .await;
    assert_eq!(
        problem["violations"][0]["code"], "INVALID_QUANTITY",
        "{problem}"
    );

    assert_eq!(
        upload(app, "order_rules", "order-rules-max-five").await.0,
        StatusCode::OK
    );
    let problem = expect_problem(
        quote_request(app, &user, &pen, 6),
        StatusCode::UNPROCESSABLE_ENTITY,
        "ORDER_REJECTED",
    )
    .await;
    assert_eq!(
        problem["violations"][0]["code"], "MAX_QUANTITY_PER_PRODUCT",
        "{problem}"
    );
    let _: Value = expect(quote_request(app, &user, &pen, 5), StatusCode::OK).await;

    expect_problem(
        app.post("/api/v1/quotes")
            .json(&json!({ "user_id": user.id, "items": [{ "product_id": 999, "quantity": 1 }] })),
        StatusCode::NOT_FOUND,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.post("/api/v1/quotes")
            .json(&json!({ "user_id": user.id, "items": [] })),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_do_not_fit_the_slot_are_refused_and_change_nothing() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let put = |slot: &str| app.admin(Method::PUT, &format!("/api/v1/admin/policies/{slot}"));
    let problem = expect_problem(
        put("pricing").body(component("coupon-standard")),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("pricing"),
        "{problem}"
    );
    expect_problem(
        put("pricing").body("definitely not wasm"),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    expect_problem(put("pricing"), StatusCode::BAD_REQUEST, "INVALID_COMPONENT").await;
    expect_problem(
        put("shipping").body(component("pricing-bulk")),
        StatusCode::NOT_FOUND,
        "UNKNOWN_SLOT",
    )
    .await;
    expect_problem(
        app.put("/api/v1/admin/policies/pricing")
            .body(component("pricing-bulk")),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    expect_problem(
        app.admin(Method::POST, "/api/v1/admin/policies/shipping/rollback"),
        StatusCode::NOT_FOUND,
        "UNKNOWN_SLOT",
    )
    .await;
    assert_eq!(active(app, "pricing").await["name"], "pricing-standard");
    expect_problem(
        app.admin(Method::POST, "/api/v1/admin/policies/pricing/rollback"),
        StatusCode::CONFLICT,
        "NO_PREVIOUS_VERSION",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_policies_answer_503_quickly_and_a_rollback_restores_service() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let (user, pen) = shop(app).await;
    for (name, reason) in [
        ("misbehave-trap", "trapped"),
        ("misbehave-loop", "ran out of"),
        ("misbehave-memory", "memory"),
    ] {
        let (status, body) = upload(app, "pricing", name).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let started = Instant::now();
        let problem = expect_problem(
            quote_request(app, &user, &pen, 1),
            StatusCode::SERVICE_UNAVAILABLE,
            "POLICY_UNAVAILABLE",
        )
        .await;
        let took = started.elapsed();
        println!("{name}: 503 after {took:?}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{problem}"
        );
        // Generous against a loaded machine; the budgets stop it in tens of ms.
        assert!(took < Duration::from_secs(1), "{name} took {took:?}");
        let (status, _) = rollback(app, "pricing").await;
        assert_eq!(status, StatusCode::OK);
        let quote: Value = expect(quote_request(app, &user, &pen, 2), StatusCode::OK).await;
        assert_eq!(quote["total"], 2_000);
    }
    assert_eq!(send(app.get("/healthz")).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_through_one_instance_reaches_the_other_within_a_second() {
    let deployment = Deployment::start_many(2).await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    assert_eq!(active(b, "pricing").await["name"], "pricing-standard");
    assert_eq!(upload(a, "pricing", "pricing-bulk").await.0, StatusCode::OK);
    let took = serves_within(b, "pricing", "pricing-bulk", Duration::from_secs(1)).await;
    println!("instance B saw the swap after {took:?}");
    assert_eq!(rollback(b, "pricing").await.0, StatusCode::OK);
    serves_within(a, "pricing", "pricing-standard", Duration::from_secs(1)).await;
}

/// Waits until `app` serves `name` in `slot`, at most `within`; how long it took.
async fn serves_within(app: &Instance, slot: &str, name: &str, within: Duration) -> Duration {
    let started = Instant::now();
    eventually(
        within,
        &format!("{} serves {name} in {slot}", app.base),
        || async {
            let active = active(app, slot).await;
            if active["name"] == name {
                Ok(())
            } else {
                Err(active.to_string())
            }
        },
    )
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_gets_a_fresh_instance_on_every_instance_under_load() {
    // `isolation-counter` prices each unit at the number of calls its
    // instance has answered: anything but 1 is state surviving a call.
    let deployment = Deployment::start_many(2).await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let (user, pen) = shop(a).await;
    assert_eq!(
        upload(a, "pricing", "isolation-counter").await.0,
        StatusCode::OK
    );
    serves_within(b, "pricing", "isolation-counter", Duration::from_secs(5)).await;
    let totals = concurrently(32, |task| {
        let app = deployment.instance(task % 2).clone();
        let (user, pen) = (user.clone(), pen.clone());
        async move {
            let mut totals = Vec::new();
            for n in 0..25 {
                let quantity = 1 + (task + n) as i64 % 3;
                let quote: Value =
                    expect(quote_request(&app, &user, &pen, quantity), StatusCode::OK).await;
                totals.push((quantity, quote["total"].clone()));
            }
            totals
        }
    })
    .await;
    let totals: Vec<(i64, Value)> = totals.into_iter().flatten().collect();
    assert_eq!(totals.len(), 800);
    for (quantity, total) in totals {
        assert_eq!(total, json!(quantity), "a call saw an earlier call's state");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_swaps_under_load_on_two_instances_fail_no_request() {
    let deployment = Deployment::start_many(2).await;
    let (user, pen) = shop(deployment.app()).await;
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for n in 0..8 {
        let instance = deployment.instance(n).clone();
        let (user, pen, running) = (user.clone(), pen.clone(), running.clone());
        workers.push(tokio::spawn(async move {
            let mut answered = 0;
            while running.load(Ordering::Relaxed) {
                let (status, quote) = send(quote_request(&instance, &user, &pen, 10)).await;
                assert_eq!(status, StatusCode::OK, "{quote}");
                // Each total is the one the policy it names gives.
                let expected = match quote["policies"]["pricing"].as_str() {
                    Some("pricing-standard@1.0.0") => 10_000,
                    Some("pricing-bulk@1.0.0") => 9_000,
                    other => panic!("unexpected pricing policy {other:?}"),
                };
                assert_eq!(quote["total"], expected, "{quote}");
                answered += 1;
            }
            answered
        }));
    }
    let admin = deployment.instance(0);
    for swap in 0..30 {
        let (status, body) = if swap % 2 == 0 {
            upload(admin, "pricing", "pricing-bulk").await
        } else {
            rollback(admin, "pricing").await
        };
        assert_eq!(status, StatusCode::OK, "swap {swap}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.store(false, Ordering::Relaxed);
    let mut answered = 0;
    for worker in workers {
        answered += worker.await.expect("a worker completes");
    }
    println!("{answered} quotes answered during 30 swaps, none failed");
    assert!(
        answered > 100,
        "only {answered} quotes ran during the swaps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_returns_changed_slots_to_the_manifest() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    assert_eq!(
        upload(app, "pricing", "pricing-bulk").await.0,
        StatusCode::OK
    );
    let (status, body) = send(app.admin(Method::POST, "/api/v1/admin/policies/reload")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["slots"][0]["name"], "pricing-standard");
    assert_eq!(body["slots"][0]["source"], "manifest:dev.toml");
    // The upload is still the version before, for a rollback.
    assert_eq!(rollback(app, "pricing").await.1["name"], "pricing-bulk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_stops_start_up_naming_the_file_and_slot() {
    let folder = std::env::temp_dir().join(format!(
        "commerce-manifest-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&folder).expect("a temporary folder");
    std::fs::write(
        folder.join("broken.toml"),
        "[slots.pricing]\ncomponent = \"pricing-standard\"\n[slots.coupon]\ncomponent = \"no-such-plugin\"\n[slots.order_rules]\ncomponent = \"order-rules-standard\"\n",
    )
    .expect("a manifest");
    let mut settings = commerce::Settings::defaults();
    settings.listen = "127.0.0.1:0".parse().expect("an address");
    settings.database_url = format!(
        "{}/commerce_manifest_{}",
        database_server(),
        uuid::Uuid::new_v4().simple()
    );
    settings.environment = "broken".to_owned();
    settings.jwt_secret = Some(JWT_SECRET.to_owned());
    settings.manifest_dir = folder.clone();
    settings.component_dir = repository().join("target/plugins");
    settings.admin_token = Some(ADMIN_TOKEN.to_owned());
    let err = commerce::Application::build(settings.clone())
        .await
        .err()
        .expect("start-up fails");
    let message = format!("{err:#}");
    assert!(
        message.contains("broken.toml")
            && message.contains("slot coupon")
            && message.contains("no-such-plugin"),
        "{message}"
    );

    settings.environment = "missing".to_owned();
    let err = commerce::Application::build(settings.clone())
        .await
        .err()
        .expect("start-up fails");
    assert!(format!("{err:#}").contains("missing.toml"), "{err:#}");
    drop_database(&settings.database_url).await;
    let _ = std::fs::remove_dir_all(folder);
}

/// The `native` environment serves the standard policies compiled into the
/// server: the same numbers as their components, recorded as `@native`.
/// A native policy comes only from a manifest; an upload must be a component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_environment_prices_as_the_standard_components_do() {
    let components = Deployment::start().await;
    let native = Deployment::start_with(1, |settings| {
        settings.environment = "native".to_owned();
    })
    .await;
    let mut answers = Vec::new();
    for deployment in [&components, &native] {
        let app = deployment.app();
        let (user, pen) = shop(app).await;
        let coupon = app
            .create_coupon(&json!({
                "name": "ten percent",
                "discount": { "kind": "percent", "value": 10, "max_amount": 500 },
                "total_quantity": 5,
                "min_order_amount": 0,
                "valid_from": "2020-01-01T00:00:00Z",
                "valid_until": "2100-01-01T00:00:00Z",
            }))
            .await;
        let issued: Value =
            expect(app.issue_request(coupon.id, user.id), StatusCode::CREATED).await;
        let order: Value = expect(
            app.post("/api/v1/orders").json(&json!({
                "user_id": user.id,
                "items": [{ "product_id": pen.id, "quantity": 7 }],
                "user_coupon_id": issued["user_coupon_id"],
            })),
            StatusCode::CREATED,
        )
        .await;
        let rejected = expect_problem(
            quote_request(app, &user, &pen, 1_001),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ORDER_REJECTED",
        )
        .await;
        answers.push((order, rejected["violations"].clone()));
    }
    let [
        (by_components, refused_by_components),
        (by_native, refused_by_native),
    ] = &answers[..]
    else {
        unreachable!("two deployments")
    };
    for field in ["subtotal", "discount", "total"] {
        assert_eq!(by_components[field], by_native[field], "{field}");
    }
    assert_eq!(
        (
            by_native["subtotal"].as_i64(),
            by_native["discount"].as_i64()
        ),
        (Some(7_000), Some(500))
    );
    assert_eq!(refused_by_components, refused_by_native);
    assert_eq!(
        by_native["policies"],
        json!({
            "pricing": "pricing-standard@native",
            "coupon": "coupon-standard@native",
            "order_rules": "order-rules-standard@native",
        })
    );
    let app = native.app();
    assert_eq!(
        active(app, "pricing").await["source"],
        "manifest:native.toml"
    );
    let problem = expect_problem(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body("native:pricing-standard"),
        StatusCode::BAD_REQUEST,
        "INVALID_COMPONENT",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("manifest"),
        "{problem}"
    );
}

#[test]
fn a_folder_of_cases_runs_them_all_and_names_the_ones_that_fail() {
    let loyalty = component("pricing-loyalty");
    let cases = repository().join("plugins/pricing-loyalty/cases");
    let paths = commerce_policy_cases::files(&cases).expect("cases");
    let policy = runner::load(&loyalty, Slot::Pricing).expect("a component");
    let summary = runner::run_cases(&policy, &paths, None);
    println!("{summary}");
    assert_eq!((summary.passed(), summary.failed()), (paths.len(), 0));
    assert!(
        summary
            .rows
            .iter()
            .all(|row| row.fuel.is_some_and(|fuel| fuel > 0))
    );

    // With a configuration of its own, every customer is loyal: the cases
    // that expect list price fail, and the table says which.
    let generous = runner::load_with(
        &loyalty,
        Slot::Pricing,
        vec![("min_lifetime_spend".to_owned(), "0".to_owned())],
    )
    .expect("a component");
    let summary = runner::run_cases(&generous, &paths, None);
    let table = summary.to_string();
    println!("{table}");
    assert!(summary.failed() >= 2, "{table}");
    assert!(
        table.contains("FAIL  a-new-customer-pays-list-price.json"),
        "{table}"
    );
    assert!(
        table.ends_with(&format!(
            "{} cases: {} passed, {} failed",
            paths.len(),
            summary.passed(),
            summary.failed()
        )),
        "{table}"
    );

    // A case of another slot is a failure of its own, not a crash.
    let coupon = runner::load(&component("coupon-standard"), Slot::Coupon).expect("a component");
    let summary = runner::run_cases(&coupon, &paths, None);
    assert_eq!(summary.failed(), paths.len());
}
