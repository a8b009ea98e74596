use std::time::Duration;

use commerce::policy::{
    Slot,
    bindings::{Contract, Line, PricingInput, UserFacts},
    call::{Call, Output},
    runner,
};
use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn active(app: &Instance, slot: &str) -> Value {
    let (status, body) = send(app.admin(Method::GET, "/api/v1/admin/policies")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|s| s["slot"] == slot).cloned())
        .unwrap_or_else(|| panic!("no {slot} in {body}"))
}

fn cart(lifetime_spend: i64) -> PricingInput {
    PricingInput {
        lines: vec![Line {
            product_id: 1,
            name: "pen".into(),
            category: "office".into(),
            unit_price: 2_000,
            quantity: 10,
        }],
        user: UserFacts {
            id: 7,
            created_at: 1_767_225_600,
            paid_orders: 3,
            lifetime_spend,
        },
        now: 1_768_435_200,
        config: Vec::new(),
    }
}

fn discounts(output: Output) -> Vec<i64> {
    match output {
        Output::Prices(prices) => prices.iter().map(|price| price.discount).collect(),
        other => panic!("not prices: {other:?}"),
    }
}

#[test]
fn the_contract_version_is_read_from_the_interface_a_component_exports() {
    let bulk = runner::load(&component("pricing-bulk"), Slot::Pricing).expect("a 1.0.0 component");
    let loyalty =
        runner::load(&component("pricing-loyalty"), Slot::Pricing).expect("a 1.1.0 component");
    assert_eq!(
        (bulk.contract(), loyalty.contract()),
        (Contract::V1_0, Contract::V1_1)
    );
    assert_eq!(
        (bulk.info.contract.as_str(), loyalty.info.contract.as_str()),
        ("1.0.0", "1.1.0")
    );
    let refused = runner::load(&component("pricing-loyalty"), Slot::Coupon)
        .err()
        .expect("a pricing component in the coupon slot");
    let reason = refused.to_string();
    assert!(
        reason.contains("coupon-policy") && reason.contains("1.1.0") && reason.contains("1.0.0"),
        "{reason}"
    );
}

#[test]
fn every_component_imports_the_host_of_its_own_version_only() {
    let engine = &commerce::policy::engine::PolicyEngine::get().engine;
    let built = repository().join("target/plugins");
    let mut checked = 0;
    for entry in std::fs::read_dir(&built).expect("the built components") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let slot = match name.split('-').next() {
            Some("pricing") => Slot::Pricing,
            Some("coupon") => Slot::Coupon,
            Some("order") => Slot::OrderRules,
            // Test components; misbehave-wasi imports WASI on purpose.
            _ => continue,
        };
        let policy = runner::load(&component(&name), slot).expect("a component");
        let version = policy.info.contract.clone();
        let imports: Vec<String> = policy
            .component
            .as_ref()
            .expect("a component")
            .component_type()
            .imports(engine)
            .map(|(import, _)| import.to_owned())
            .collect();
        assert_eq!(
            imports,
            [
                format!("commerce:policy/types@{version}"),
                format!("commerce:policy/host@{version}")
            ],
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} components");
}

#[test]
fn each_version_sees_the_input_it_was_built_for() {
    let bulk = runner::load(&component("pricing-bulk"), Slot::Pricing).expect("a component");
    let loyalty = runner::load(&component("pricing-loyalty"), Slot::Pricing).expect("a component");
    // The host's input is 1.1.0's; the 1.0.0 component is handed it without
    // the lifetime spend and answers as it always did.
    for spend in [0, 5_000_000] {
        let (output, _) = bulk.evaluate(&Call::Price(cart(spend))).expect("an answer");
        assert_eq!(discounts(output), [2_000]);
    }
    // The 1.1.0 component sees it: 5% off from 1,000,000 won spent.
    let (output, _) = loyalty
        .evaluate(&Call::Price(cart(999_999)))
        .expect("an answer");
    assert_eq!(discounts(output), [0]);
    let (output, _) = loyalty
        .evaluate(&Call::Price(cart(1_000_000)))
        .expect("an answer");
    assert_eq!(discounts(output), [1_000]);
    // The runner's JSON path adapts the same way.
    let input = Call::Price(cart(1_000_000)).input_json();
    let run = runner::run(&component("pricing-bulk"), Slot::Pricing, "price", &input)
        .expect("a 1.0.0 run");
    assert_eq!(run.output[0]["discount"], 2_000);
    let run = runner::run(
        &component("pricing-loyalty"),
        Slot::Pricing,
        "price",
        &input,
    )
    .expect("a 1.1.0 run");
    assert_eq!(run.output[0]["discount"], 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_0_component_and_a_1_1_0_component_both_serve_orders_on_one_server() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let ring = app.create_product("Ring", "jewellery", 1_000_000, 10).await;
    let pen = app.create_product("Pen", "office", 2_000, 1_000).await;

    // A regular who has spent 1,000,000 won, and a newcomer.
    let regular = app.create_user("regular").await;
    assert_eq!(app.charge(regular.id, 1_000_000).await.0, StatusCode::OK);
    let (status, order) = app.place_order(regular.id, &[(ring.id, 1)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (status, paid) = app
        .pay(order["id"].as_i64().expect("an id"), regular.id)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    let newcomer = app.create_user("newcomer").await;

    let (status, body) = send(
        app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("pricing-loyalty")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["contract"].as_str()),
        (Some("pricing-loyalty"), Some("1.1.0"))
    );
    assert_eq!(active(app, "order_rules").await["contract"], "1.0.0");
    assert_eq!(active(app, "coupon").await["contract"], "1.0.0");

    // Priced by the 1.1.0 policy, checked by the 1.0.0 order rules.
    let (status, order) = app.place_order(regular.id, &[(pen.id, 10)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(
        (
            order["subtotal"].as_i64(),
            order["items"][0]["discount"].as_i64()
        ),
        (Some(19_000), Some(1_000)),
        "{order}"
    );
    assert_eq!(order["policies"]["pricing"], "pricing-loyalty@1.0.0");
    assert_eq!(
        order["policies"]["order_rules"],
        "order-rules-standard@1.0.0"
    );
    let (status, order) = app.place_order(newcomer.id, &[(pen.id, 10)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["total"], 20_000, "{order}");
    // The 1.0.0 order rules still refuse what they refused.
    let (status, refused) = app.place_order(newcomer.id, &[(pen.id, 1_001)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["violations"][0]["code"], "INVALID_QUANTITY");

    // The order records the lifetime spend its policy saw.
    let recorded: Value =
        sqlx::query_scalar("select inputs from order_policy_inputs where order_id = $1")
            .bind(order["id"].as_i64())
            .fetch_one(&deployment.db)
            .await
            .expect("recorded inputs");
    assert_eq!(recorded["pricing"]["user"]["lifetime_spend"], 0);

    // And back to a 1.0.0 policy in the same slot.
    let (status, body) =
        send(app.admin(Method::POST, "/api/v1/admin/policies/pricing/rollback")).await;
    assert_eq!(
        (status, body["contract"].as_str()),
        (StatusCode::OK, Some("1.0.0"))
    );
    let (status, order) = app.place_order(regular.id, &[(pen.id, 10)]).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["total"], 20_000, "{order}");
}

/// Waits until the active pricing policy is `name`.
async fn pricing_becomes(app: &Instance, name: &str) -> Value {
    eventually(
        Duration::from_secs(10),
        &format!("pricing becomes {name}"),
        || async {
            let pricing = active(app, "pricing").await;
            if pricing["name"] == name {
                Ok(pricing)
            } else {
                Err(pricing.to_string())
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_follows_edits_to_its_manifest_and_to_the_components_it_names() {
    let folder =
        std::env::temp_dir().join(format!("commerce-watch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).expect("a temporary folder");
    let manifest = folder.join("dev.toml");
    let write_manifest = |pricing: &str| {
        std::fs::write(
            &manifest,
            format!(
                "[slots.pricing]\n{pricing}\n[slots.coupon]\ncomponent = \"coupon-standard\"\n[slots.order_rules]\ncomponent = \"order-rules-standard\"\n"
            ),
        )
        .expect("a manifest");
    };
    std::fs::write(folder.join("pricing.wasm"), component("pricing-standard")).expect("a copy");
    write_manifest("component = \"pricing.wasm\"");
    let watched = folder.clone();
    let deployment = Deployment::start_with(1, move |settings| {
        settings.manifest_dir = watched.clone();
        settings.watch_policies = Some(true);
    })
    .await;
    let app = deployment.app();
    assert_eq!(active(app, "pricing").await["name"], "pricing-standard");

    // A component file the manifest names is rebuilt.
    std::fs::write(folder.join("pricing.wasm"), component("pricing-bulk")).expect("a rebuild");
    let pricing = pricing_becomes(app, "pricing-bulk").await;
    assert_eq!(pricing["source"], "manifest:dev.toml");

    // A manifest that does not load is logged; the running policies stay.
    write_manifest("component = \"no-such-plugin\"");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(active(app, "pricing").await["name"], "pricing-bulk");

    // The manifest is fixed to name another component, with a configuration.
    write_manifest(
        "component = \"pricing-loyalty\"\n[slots.pricing.config]\nmin_lifetime_spend = \"0\"",
    );
    let pricing = pricing_becomes(app, "pricing-loyalty").await;
    assert_eq!(pricing["contract"], "1.1.0");
    let user = app.create_user("kim").await;
    let pen = app.create_product("Pen", "office", 2_000, 100).await;
    let quote: Value = expect(
        app.post("/api/v1/quotes").json(&json!({
            "user_id": user.id,
            "items": [{ "product_id": pen.id, "quantity": 1 }],
        })),
        StatusCode::OK,
    )
    .await;
    // Everyone has spent at least nothing.
    assert_eq!(quote["total"], 1_900, "{quote}");
    drop(deployment);
    let _ = std::fs::remove_dir_all(folder);
}
