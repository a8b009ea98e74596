//! Scaled out: four `commerce serve` processes on a Redis Cluster (three
//! masters, three replicas) and behind PgBouncer in transaction mode, with
//! listeners and migrations on direct connections. Fault tests, ignored by
//! default like those of `faults.rs`:
//! `cargo build --release && cargo test --release --workspace -- --ignored faults --test-threads 1`.
//! PgBouncer 1.21 or later must be installed: `scripts/install-pgbouncer.sh`.

use std::time::{Duration, Instant};

use commerce_tests::{lab::Lab, *};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::faults::{
    assert_coupon_exact, assert_stock_conserved, coupon_burst, issued_ids, open_coupon,
    stock_the_shop, try_send,
};

/// A scaled lab and its four instances.
async fn four_instances() -> (Lab, Vec<Instance>) {
    let mut lab = Lab::start_scaled().await;
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(lab.spawn_server(&[]).await);
    }
    (lab, instances)
}

/// A connection to the lab's cluster through its live nodes.
async fn cluster_connection(
    lab: &Lab,
    dead: Option<usize>,
) -> redis::cluster_async::ClusterConnection {
    let cluster = lab.cluster.as_ref().expect("a cluster");
    let nodes: Vec<String> = cluster
        .seeds()
        .split(',')
        .enumerate()
        .filter(|(n, _)| Some(*n) != dead)
        .map(|(_, node)| format!("redis://{node}"))
        .collect();
    redis::cluster::ClusterClient::new(nodes)
        .expect("a cluster client")
        .get_async_connection()
        .await
        .expect("the cluster")
}

async fn active_pricing(app: &Instance) -> String {
    let (status, body) = send(app.admin(Method::GET, "/api/v1/admin/policies")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|slot| slot["slot"] == "pricing"))
        .and_then(|slot| slot["name"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_scaled_out_coupons_are_exact_orders_never_oversell_and_a_swap_reaches_all() {
    let (lab, instances) = four_instances().await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 2, 50, 1_000).await;

    // A coupon of 300 and 1,000 users asking through the four instances.
    let coupon = open_coupon(&instances[0], 300).await;
    let results = coupon_burst(&instances, &users, coupon, 2).await;
    let confirmed = issued_ids(&results);
    for result in &results {
        let (status, body) = result.as_ref().expect("every request is answered");
        assert!(
            *status == StatusCode::CREATED || body["code"] == "COUPON_SOLD_OUT",
            "{status}: {body}"
        );
    }
    let rows = assert_coupon_exact(&db, coupon, 300, &confirmed).await;
    assert_eq!((rows, confirmed.len()), (300, 300), "not exactly sold out");
    // The instances took them through the cluster.
    let remaining: i64 = redis::cmd("GET")
        .arg(format!("lab:coupon:{{{coupon}}}:remaining"))
        .query_async(&mut cluster_connection(&lab, None).await)
        .await
        .expect("the coupon's state is on the cluster");
    assert_eq!(remaining, 0);

    // 400 orders of one unit for 100 units in stock.
    let orders = concurrently(400, |n| {
        let (instance, user, product) = (instances[n % 4].clone(), users[n], products[n % 2]);
        async move { send(instance.order_request(user, &[(product, 1)], None)).await }
    })
    .await;
    let created = orders
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    for (status, body) in &orders {
        assert!(
            *status == StatusCode::CREATED || body["code"] == "OUT_OF_STOCK",
            "{status}: {body}"
        );
    }
    assert_eq!(created, 100, "orders for 100 units in stock");
    assert_stock_conserved(&db, 50).await;

    // A swap through one instance reaches the other three within a second.
    assert_eq!(active_pricing(&instances[3]).await, "pricing-standard");
    let (status, body) = send(
        instances[0]
            .admin(Method::PUT, "/api/v1/admin/policies/pricing")
            .body(component("pricing-bulk")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = Instant::now();
    for (n, instance) in instances.iter().enumerate().skip(1) {
        while active_pricing(instance).await != "pricing-bulk" {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "instance {n} still serves the old version"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!(
        "scaled out: {rows} of 1000 coupon requests issued for 300, {created} of 400 orders for 100 units, the swap reached all four in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_scaled_out_a_redis_master_killed_mid_burst_loses_nothing_and_the_fast_path_returns()
{
    let (mut lab, instances) = four_instances().await;
    let db = lab.db().await;
    let (_, users) = stock_the_shop(&db, 1, 1, 1_200).await;
    let coupon = open_coupon(&instances[0], 1_000).await;
    let state_key = format!("lab:coupon:{{{coupon}}}:remaining");
    let cluster = lab.cluster.as_mut().expect("a cluster");
    let master = cluster.master_of(&state_key);
    // 1,200 requests over three seconds; the coupon's master dies after half
    // a second and its replica takes over about a second and a half later.
    let burst = coupon_burst(&instances, &users, coupon, 30);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.kill(master);
    };
    let (results, ()) = tokio::join!(burst, killer);
    let confirmed = issued_ids(&results);
    let unavailable = results
        .iter()
        .flatten()
        .filter(|(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    for result in &results {
        let (status, body) = result.as_ref().expect("every request is answered");
        assert!(
            *status == StatusCode::CREATED
                || *status == StatusCode::SERVICE_UNAVAILABLE
                || body["code"] == "COUPON_SOLD_OUT",
            "{status}: {body}"
        );
    }
    // Nothing lost (every 201 has its row), nothing issued twice (one row
    // per holder), never past the quantity.
    let rows = assert_coupon_exact(&db, coupon, 1_000, &confirmed).await;
    let cluster = lab.cluster.as_ref().expect("a cluster");
    cluster.wait_until_ok();
    let new_master = cluster.master_of(&state_key);
    assert_ne!(new_master, master, "no replica took over");

    // The fast path returns: once the circuit tries Redis again, a second
    // coupon's state is built on the cluster.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let second = open_coupon(&instances[0], 10).await;
    for (n, instance) in instances.iter().enumerate() {
        let (status, body) = send(
            instance
                .post(&format!("/api/v1/coupons/{second}/issue"))
                .json(&serde_json::json!({ "user_id": users[n] })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut conn = cluster_connection(&lab, Some(master)).await;
    let holders: Vec<i64> = redis::cmd("SMEMBERS")
        .arg(format!("lab:coupon:{{{second}}}:holders"))
        .query_async(&mut conn)
        .await
        .expect("the holders");
    println!(
        "Redis master killed mid-burst: 1200 sent, {} issued, {unavailable} answered 503, {rows} rows for 1000; the second coupon's holders in Redis: {holders:?}",
        confirmed.len()
    );
    assert_eq!(
        holders.len(),
        5,
        "the fast path did not return: {holders:?}"
    );
    // The kill did reach the issuance path: some instance's circuit opened,
    // and every instance that opened one closed it again.
    let logs: Vec<String> = (0..4).map(|n| lab.server_log(n)).collect();
    let opened: Vec<&String> = logs
        .iter()
        .filter(|log| log.contains("Redis is unavailable"))
        .collect();
    assert!(!opened.is_empty(), "no instance noticed the dead master");
    for log in &opened {
        assert!(
            log.contains("Redis answers again"),
            "a circuit stayed open: {log}"
        );
    }
    println!(
        "{} of 4 instances opened their circuit, and closed it again",
        opened.len()
    );
    // Readiness pings every master: the dead one is no longer among them.
    for instance in &instances {
        let (status, body) = send(instance.get("/readyz")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// When a request was sent and answered (since the test started), and the
/// answer, if any.
type Outcome = (Duration, Duration, Option<(StatusCode, Value)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test with real processes; run with --ignored faults"]
async fn faults_scaled_out_pgbouncer_restarted_under_load_fails_in_flight_requests_cleanly() {
    let (mut lab, instances) = four_instances().await;
    let db = lab.db().await;
    let (products, users) = stock_the_shop(&db, 2, 100_000, 400).await;
    let started = Instant::now();
    // Eight clients ordering in a loop for eight seconds.
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let instance = instances[client % 4].clone();
            let (products, users) = (products.clone(), users.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = client;
                while started.elapsed() < Duration::from_secs(8) {
                    let sent = started.elapsed();
                    let answer = try_send(instance.order_request(
                        users[n % users.len()],
                        &[(products[n % 2], 1)],
                        None,
                    ))
                    .await;
                    outcomes.push((sent, started.elapsed(), answer));
                    n += 8;
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pgbouncer = lab.pgbouncer.as_mut().expect("a pgbouncer");
    pgbouncer.kill();
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pgbouncer.resume();
    let resumed_at = started.elapsed();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("the load completes"));
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, answer)| !matches!(answer, Some((StatusCode::CREATED, _))))
        .collect();
    let created: Vec<i64> = outcomes
        .iter()
        .filter_map(|(_, _, answer)| match answer {
            Some((StatusCode::CREATED, body)) => body["id"].as_i64(),
            _ => None,
        })
        .collect();
    println!(
        "PgBouncer killed at {killed_at:?}, back at {resumed_at:?}: {} orders sent, {} created, {} failed: {:?}",
        outcomes.len(),
        created.len(),
        failed.len(),
        failed
            .iter()
            .map(|(sent, answered, answer)| (
                *sent,
                *answered,
                answer.as_ref().map(|(status, _)| *status)
            ))
            .collect::<Vec<_>>()
    );
    assert!(!failed.is_empty(), "no request was in flight at the kill");
    for (sent, _, answer) in &failed {
        let (status, body) = answer.as_ref().expect("every request is answered");
        assert_eq!(
            (*status, body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE")),
            "{body}"
        );
        assert!(
            *sent < resumed_at + Duration::from_secs(1),
            "a request sent at {sent:?}, after PgBouncer was back, failed"
        );
    }
    assert!(
        outcomes.iter().any(|(sent, _, answer)| *sent > resumed_at
            && matches!(answer, Some((StatusCode::CREATED, _)))),
        "nothing passed after the restart"
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from orders where id = any($1)")
        .bind(&created)
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(stored as usize, created.len(), "a 201 without its order");
    assert_stock_conserved(&db, 100_000).await;
}
