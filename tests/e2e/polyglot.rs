//! Policies in TypeScript and Python: authored with `policy new`, built with
//! `policy build`, swapped in under load, and restarted from compiled code
//! cached on disk.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use commerce::{
    cli::authoring::{self, Lang, NewPlugin},
    policy::{Slot, runner},
};
use commerce_tests::{lab::free_port, *};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[test]
fn policy_new_makes_plugins_that_build_and_pass_their_case_in_every_language() {
    let scratch =
        std::env::temp_dir().join(format!("policy-new-{}", uuid::Uuid::new_v4().simple()));
    for lang in [Lang::Rust, Lang::Ts, Lang::Py] {
        let name = format!(
            "new-{}-{}",
            format!("{lang:?}").to_lowercase(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let dir = scratch.join(&name);
        authoring::new(&NewPlugin {
            name: &name,
            slot: Slot::Pricing,
            lang,
            dir: &dir,
        })
        .unwrap_or_else(|err| panic!("policy new --lang {lang:?}: {err:#}"));
        let generated = match lang {
            Lang::Rust => dir.join("src/lib.rs"),
            Lang::Ts => dir.join("types/pricing-policy.d.ts"),
            Lang::Py => dir.join("bindings/wit_world/exports/pricing.py"),
        };
        assert!(generated.is_file(), "{} is missing", generated.display());
        let built =
            authoring::build(&dir).unwrap_or_else(|err| panic!("policy build {name}: {err:#}"));
        let bytes = std::fs::read(&built.path).expect("the built component");
        let case = runner::Case::read(&dir.join("cases/example.json")).expect("the case file");
        let policy = runner::load(&bytes, Slot::Pricing).expect("a pricing component");
        assert_eq!(
            policy.label(),
            format!("{name}@0.1.0"),
            "the label orders record"
        );
        let run = runner::run(&bytes, case.slot, &case.call, &case.input)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(Some(&run.output), case.expected.as_ref(), "{lang:?}");
        let _ = std::fs::remove_file(&built.path);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Uploads `name`, retrying while the server says it is still compiling it.
async fn upload_compiled(app: &Instance, name: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = send(
            app.admin(Method::PUT, "/api/v1/admin/policies/pricing")
                .body(component(name)),
        )
        .await;
        match status {
            StatusCode::OK => return body,
            StatusCode::SERVICE_UNAVAILABLE
                if body.to_string().contains("still compiling")
                    && started.elapsed() < Duration::from_secs(300) =>
            {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            _ => panic!("uploading {name}: {status} {body}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pricing_swaps_to_typescript_then_python_under_order_load_on_two_instances() {
    // Built (and compiled once, into the cache) before the clock starts.
    for name in ["pricing-bulk-ts", "pricing-bulk-py"] {
        runner::check(&component(name), Slot::Pricing).expect("a pricing component");
    }
    let deployment = Deployment::start_many(2).await;
    let app = deployment.app();
    let pen = app.create_product("Pen", "office", 1_000, 1_000_000).await;
    let mut users = Vec::new();
    for n in 0..4 {
        users.push(app.create_user(&format!("buyer{n}")).await);
    }
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for n in 0..8 {
        let instance = deployment.instance(n).clone();
        let (user, pen, running) = (users[n % users.len()].clone(), pen.clone(), running.clone());
        workers.push(tokio::spawn(async move {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            while running.load(Ordering::Relaxed) {
                let (status, order) = instance.place_order(user.id, &[(pen.id, 10)]).await;
                assert_eq!(status, StatusCode::CREATED, "{order}");
                let policy = order["policies"]["pricing"]
                    .as_str()
                    .expect("the order records its pricing policy")
                    .to_owned();
                // Each total is the one the policy it recorded gives.
                let expected = match policy.as_str() {
                    "pricing-standard@1.0.0" => 10_000,
                    "pricing-bulk-ts@1.0.0" | "pricing-bulk-py@1.0.0" => 9_000,
                    other => panic!("unexpected pricing policy {other}"),
                };
                assert_eq!(order["total"], expected, "{order}");
                *seen.entry(policy).or_default() += 1;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ts = upload_compiled(app, "pricing-bulk-ts").await;
    assert_eq!(ts["name"], "pricing-bulk-ts", "{ts}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let py = upload_compiled(app, "pricing-bulk-py").await;
    assert_eq!(py["name"], "pricing-bulk-py", "{py}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for worker in workers {
        for (policy, count) in worker.await.expect("no order failed") {
            *seen.entry(policy).or_default() += count;
        }
    }
    println!("orders per pricing policy: {seen:?}");
    for policy in [
        "pricing-standard@1.0.0",
        "pricing-bulk-ts@1.0.0",
        "pricing-bulk-py@1.0.0",
    ] {
        assert!(
            seen.get(policy).is_some_and(|&n| n > 0),
            "no order priced by {policy}: {seen:?}"
        );
    }
    // What the orders' rows recorded agrees with what they answered.
    let wrong: i64 = sqlx::query_scalar(
        "select count(*) from orders where (pricing_policy = 'pricing-standard@1.0.0') <> (total = 10000)",
    )
    .fetch_one(&deployment.db)
    .await
    .expect("a count");
    assert_eq!(
        wrong, 0,
        "orders whose total does not match their recorded policy"
    );
}

/// `commerce serve` with `env`, answering `/healthz`; its start-up time.
async fn start_server(env: &[(&str, String)]) -> (Child, Instance, Duration) {
    let binary = repository().join("target/release/commerce");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release`",
        binary.display()
    );
    let port = free_port();
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .current_dir(repository())
        .env("COMMERCE_LISTEN", format!("127.0.0.1:{port}"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("commerce starts");
    let instance = Instance {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    };
    while instance.get("/healthz").send().await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, instance, started.elapsed())
}

/// With real server processes, as the fault tests run them (the built binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts real server processes; run with --ignored faults"]
async fn faults_a_restart_with_typescript_and_python_policies_reads_compiled_code_from_the_cache() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let scratch = std::env::temp_dir().join(format!("compile-cache-{id}"));
    let manifests = scratch.join("environments");
    std::fs::create_dir_all(&manifests).expect("a manifest folder");
    let wasm = |name: &str| {
        component(name);
        repository()
            .join(format!("target/plugins/{name}.wasm"))
            .display()
            .to_string()
    };
    std::fs::write(
        manifests.join("polyglot.toml"),
        format!(
            "[slots.pricing]\ncomponent = \"{}\"\n\n[slots.coupon]\ncomponent = \"{}\"\n\n\
             [slots.order_rules]\ncomponent = \"native:order-rules-standard\"\n",
            wasm("pricing-bulk-ts"),
            wasm("coupon-new-members-py"),
        ),
    )
    .expect("a manifest");
    let database = format!("{}/commerce_cache_{id}", database_server());
    let env = [
        ("DATABASE_URL", database.clone()),
        ("REDIS_URL", redis_url()),
        ("COMMERCE_REDIS_PREFIX", format!("test:{id}:")),
        ("COMMERCE_ENV", "polyglot".to_owned()),
        // Outside dev the server needs user keys to start.
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("COMMERCE_MANIFEST_DIR", manifests.display().to_string()),
        (
            "COMMERCE_COMPILE_CACHE",
            scratch.join("cache").display().to_string(),
        ),
    ];
    let (mut first, _, cold) = start_server(&env).await;
    stop(&mut first);
    let (mut second, instance, warm) = start_server(&env).await;
    let (status, body) = send(instance.admin(Method::GET, "/api/v1/admin/policies")).await;
    stop(&mut second);
    drop_database(&database).await;
    let _ = std::fs::remove_dir_all(&scratch);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains("pricing-bulk-ts"), "{body}");
    println!(
        "start with a 12 MB TypeScript and an 18 MB Python policy: cold {cold:?}, from the cache {warm:?}"
    );
    assert!(
        warm < Duration::from_secs(10),
        "the second start took {warm:?}"
    );
    assert!(
        warm * 3 < cold,
        "the cache did not help: cold {cold:?}, warm {warm:?}"
    );
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn manifest_limits_are_checked_and_reach_the_slots_calls() {
    let dir = std::env::temp_dir().join(format!("limits-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a folder");
    let write = |limits: &str| {
        std::fs::write(
            dir.join("limits.toml"),
            format!(
                "[slots.pricing]\ncomponent = \"native:pricing-standard\"\n{limits}\n\
                 [slots.coupon]\ncomponent = \"native:coupon-standard\"\n\
                 [slots.order_rules]\ncomponent = \"native:order-rules-standard\"\n"
            ),
        )
        .expect("a manifest");
    };
    let load = || commerce::policy::manifest::load(&dir, Path::new("."), "limits");
    write("[slots.pricing.limits]\nmemory_mb = 96\nfuel = 5000000\ntime_ms = 250\n");
    let manifest = load().expect("a manifest with limits");
    let limits = manifest.slot(Slot::Pricing).limits;
    assert_eq!(
        (limits.memory, limits.fuel, limits.time_ms),
        (96 << 20, 5_000_000, 250)
    );
    assert_eq!(
        manifest.slot(Slot::Coupon).limits,
        commerce::policy::engine::Limits::default()
    );
    for bad in [
        "memory_mb = 0",
        "memory_mb = 100000",
        "fuel = 0",
        "time_ms = 5000",
        "cpu = 3",
    ] {
        write(&format!("[slots.pricing.limits]\n{bad}\n"));
        let err = load().expect_err(bad);
        assert!(
            err.contains("slot pricing") || err.contains("cpu"),
            "{bad}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
