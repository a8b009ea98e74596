//! First-come-first-served coupons: exact issuance under bursts on two
//! instances with either strategy, through deleted Redis state, a Redis
//! outage and a lock holder that outlived its lease.

use std::{
    collections::{HashMap, HashSet},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use commerce::{
    coupons::IssueStrategy,
    redis::{Redis, RedisConn},
};
use commerce_tests::*;
use redis::aio::ConnectionManager;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// `count` users made in one statement, with their wallets: their ids.
async fn users(db: &PgPool, count: i64) -> Vec<i64> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "insert into users (name) select 'u' || g from generate_series(1, $1) g returning id",
    )
    .bind(count)
    .fetch_all(db)
    .await
    .expect("users are inserted");
    sqlx::query("insert into point_wallets (user_id) select unnest($1::bigint[])")
        .bind(&ids)
        .execute(db)
        .await
        .expect("wallets are inserted");
    ids
}

/// A connection to `url` with the deployment's key prefix, as the server has.
async fn redis_at(url: &str, prefix: &str) -> Redis {
    let client = redis::Client::open(url).expect("a Redis URL");
    Redis {
        conn: RedisConn::Single(
            ConnectionManager::new(client)
                .await
                .expect("Redis accepts connections"),
        ),
        prefix: prefix.into(),
    }
}

/// The name of one of the coupon's Redis keys.
fn coupon_key(redis: &Redis, coupon_id: i64, name: &str) -> String {
    redis.key(&format!("coupon:{{{coupon_id}}}:{name}"))
}

/// Deletes every Redis key of the coupon, as a flush would: how many it found.
async fn forget_coupon(redis: &Redis, coupon_id: i64) -> usize {
    let mut conn = redis.conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(coupon_key(redis, coupon_id, "*"))
        .query_async(&mut conn)
        .await
        .expect("Redis answers");
    if keys.is_empty() {
        return 0;
    }
    redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("Redis answers")
}

/// How a burst was answered.
#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    issued: Vec<i64>,
    sold_out: usize,
    already_issued: Vec<i64>,
    unexpected: Vec<(StatusCode, Value)>,
}

/// Every user asks once and every tenth asks twice at the same moment (a
/// double click), the requests alternating between the instances.
async fn burst(deployment: &Deployment, coupon_id: i64, users: &[i64]) -> (Tally, HashSet<i64>) {
    let mut requests = Vec::with_capacity(users.len() + users.len() / 10 + 1);
    let mut double_clickers = HashSet::new();
    for (n, &user_id) in users.iter().enumerate() {
        requests.push(user_id);
        if n % 10 == 0 {
            requests.push(user_id);
            double_clickers.insert(user_id);
        }
    }
    let requests = Arc::new(requests);
    let instances = deployment.instances.clone();
    let answers = concurrently(requests.len(), |n| {
        let instance = instances[n % instances.len()].clone();
        let user_id = requests[n];
        async move { (user_id, instance.issue(coupon_id, user_id).await) }
    })
    .await;
    let mut tally = Tally {
        requests: answers.len(),
        ..Tally::default()
    };
    for (user_id, (status, body)) in answers {
        match (status, body["code"].as_str()) {
            (StatusCode::CREATED, _) => tally.issued.push(user_id),
            (StatusCode::CONFLICT, Some("COUPON_SOLD_OUT")) => tally.sold_out += 1,
            (StatusCode::CONFLICT, Some("COUPON_ALREADY_ISSUED")) => {
                tally.already_issued.push(user_id);
            }
            _ => tally.unexpected.push((status, body)),
        }
    }
    (tally, double_clickers)
}

/// Exactly `total` were answered 201, to distinct users, each with one
/// committed row; `issued_quantity` counts the rows; everyone else was told
/// sold out or, if they asked twice, already issued.
async fn assert_exact(
    deployment: &Deployment,
    coupon_id: i64,
    total: usize,
    tally: &Tally,
    double_clickers: &HashSet<i64>,
) {
    assert!(
        tally.unexpected.is_empty(),
        "unexpected answers: {:?}",
        tally.unexpected
    );
    assert_eq!(tally.issued.len(), total, "201s");
    let issued: HashSet<i64> = tally.issued.iter().copied().collect();
    assert_eq!(issued.len(), total, "a user was answered 201 twice");
    let rows: Vec<i64> =
        sqlx::query_scalar("select user_id from user_coupons where coupon_id = $1")
            .bind(coupon_id)
            .fetch_all(&deployment.db)
            .await
            .expect("rows");
    assert_eq!(rows.len(), total, "rows");
    assert_eq!(
        rows.into_iter().collect::<HashSet<_>>(),
        issued,
        "the rows are exactly the users answered 201"
    );
    let coupon = deployment.instance(1).coupon(coupon_id).await;
    assert_eq!(coupon.issued_quantity, total as i64);
    assert_eq!(coupon.remaining, 0);
    for user_id in &tally.already_issued {
        assert!(
            double_clickers.contains(user_id),
            "user {user_id} asked once and was told COUPON_ALREADY_ISSUED"
        );
    }
    assert_eq!(
        tally.issued.len() + tally.sold_out + tally.already_issued.len(),
        tally.requests
    );
}

/// Keeps deleting the coupon's Redis keys every few milliseconds until
/// stopped; how many deletions found state to delete.
fn keep_forgetting(
    redis: Redis,
    coupon_id: i64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut found = 0;
        while !stop.load(Ordering::Relaxed) {
            if forget_coupon(&redis, coupon_id).await > 0 {
                found += 1;
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        found
    })
}

/// K = 100 and 1,000 users (plus double clicks) on two instances.
async fn exactly_k_of_a_burst(strategy: IssueStrategy, forget_during_the_burst: bool) {
    let deployment = Deployment::start_with(2, |settings| {
        settings.coupon_issue_strategy = strategy;
    })
    .await;
    let coupon = deployment
        .app()
        .create_coupon(&open_coupon("burst", 100))
        .await;
    let users = users(&deployment.db, 1_000).await;
    let redis = redis_at(&redis_url(), &deployment.redis_prefix).await;
    let stop = Arc::new(AtomicBool::new(false));
    let forgetting =
        forget_during_the_burst.then(|| keep_forgetting(redis.clone(), coupon.id, stop.clone()));
    let (tally, double_clickers) = burst(&deployment, coupon.id, &users).await;
    stop.store(true, Ordering::Relaxed);
    if let Some(forgetting) = forgetting {
        let found = forgetting.await.expect("the deleting task ends");
        println!("the coupon's Redis state was deleted {found} times during the burst");
        assert!(found > 0, "the burst ended before any state was deleted");
    }
    println!(
        "{strategy:?}: {} requests, {} issued, {} sold out, {} already issued",
        tally.requests,
        tally.issued.len(),
        tally.sold_out,
        tally.already_issued.len()
    );
    assert_exact(&deployment, coupon.id, 100, &tally, &double_clickers).await;
    // Late comers are refused as well, whatever Redis holds by now.
    let late = users[0];
    let (status, body) = deployment.instance(1).issue(coupon.id, late).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_k_of_a_burst_of_a_thousand_users_on_two_instances_get_the_coupon() {
    exactly_k_of_a_burst(IssueStrategy::Reserve, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_coupons_redis_state_during_a_burst_still_issues_exactly_k() {
    exactly_k_of_a_burst(IssueStrategy::Reserve, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_strategy_issues_exactly_k_of_a_burst_too() {
    exactly_k_of_a_burst(IssueStrategy::Lock, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_strategy_issues_exactly_k_when_its_redis_state_is_deleted_during_a_burst() {
    exactly_k_of_a_burst(IssueStrategy::Lock, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_state_is_rebuilt_from_postgresql_and_matches_it() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let coupon = app.create_coupon(&open_coupon("rebuilt", 5)).await;
    let users = users(&deployment.db, 3).await;
    for &user_id in &users[..2] {
        assert_eq!(app.issue(coupon.id, user_id).await.0, StatusCode::CREATED);
    }
    let redis = redis_at(&redis_url(), &deployment.redis_prefix).await;
    assert!(
        forget_coupon(&redis, coupon.id).await >= 2,
        "the state was in Redis"
    );
    // The next request finds no state, rebuilds it and is answered from it.
    assert_eq!(app.issue(coupon.id, users[2]).await.0, StatusCode::CREATED);
    let mut conn = redis.conn.clone();
    let remaining: i64 = redis::cmd("GET")
        .arg(coupon_key(&redis, coupon.id, "remaining"))
        .query_async(&mut conn)
        .await
        .expect("a remaining count");
    let mut holders: Vec<i64> = redis::cmd("SMEMBERS")
        .arg(coupon_key(&redis, coupon.id, "holders"))
        .query_async(&mut conn)
        .await
        .expect("a holders set");
    holders.sort_unstable();
    assert_eq!(remaining, 2);
    // 0 is the sentinel that keeps an empty set in existence.
    assert_eq!(holders, [0, users[0], users[1], users[2]]);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(coupon_key(&redis, coupon.id, "remaining"))
        .query_async(&mut conn)
        .await
        .expect("a TTL");
    assert!(
        ttl > 0,
        "the state expires, so a leaked reservation returns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_fencing_counter_restarts_above_the_last_written_token() {
    let deployment = Deployment::start_with(1, |settings| {
        settings.coupon_issue_strategy = IssueStrategy::Lock;
    })
    .await;
    let app = deployment.app();
    let coupon = app.create_coupon(&open_coupon("fenced", 10)).await;
    let users = users(&deployment.db, 2).await;
    assert_eq!(app.issue(coupon.id, users[0]).await.0, StatusCode::CREATED);
    // Stored fence 1000: every token the Redis counter hands out next is stale.
    sqlx::query("update coupons set fence = 1000 where id = $1")
        .bind(coupon.id)
        .execute(&deployment.db)
        .await
        .expect("the fence is set");
    let redis = redis_at(&redis_url(), &deployment.redis_prefix).await;
    forget_coupon(&redis, coupon.id).await;
    assert_eq!(app.issue(coupon.id, users[1]).await.0, StatusCode::CREATED);
    let fence: i64 = sqlx::query_scalar("select fence from coupons where id = $1")
        .bind(coupon.id)
        .fetch_one(&deployment.db)
        .await
        .expect("the fence");
    assert_eq!(fence, 1001);
}

/// A `redis-server` of the test's own, to stop and start again.
struct PrivateRedis {
    port: u16,
    server: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, server: None };
        redis.resume().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server, empty, and waits until it answers.
    async fn resume(&mut self) {
        let server = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.server = Some(server);
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        eventually(Duration::from_secs(10), "redis-server answers", || async {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|err| err.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        })
        .await;
    }

    /// Kills the server, as a crash would.
    fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn readiness(app: &Instance) -> (StatusCode, Value) {
    send(app.get("/readyz")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_postgresql_issues_exactly_k_and_redis_is_used_again_once_back() {
    let mut private = PrivateRedis::start().await;
    let url = private.url();
    let deployment = Deployment::start_with(2, |settings| settings.redis_url = url.clone()).await;
    let app = deployment.app();
    let first = app.create_coupon(&open_coupon("outage", 50)).await;
    let users = users(&deployment.db, 500).await;

    private.kill();
    let (status, body) = readiness(app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["postgres"], "ok", "{body}");
    assert_ne!(body["redis"], "ok", "{body}");

    let (tally, double_clickers) = burst(&deployment, first.id, &users[..400]).await;
    assert_exact(&deployment, first.id, 50, &tally, &double_clickers).await;

    private.resume().await;
    eventually(Duration::from_secs(10), "readiness recovers", || async {
        let (_, body) = readiness(app).await;
        if body["status"] == "ready" {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
    // A coupon's state comes back, rebuilt from PostgreSQL, as soon as a
    // request finds Redis answering again: no restart. (The first coupon is
    // sold out for good and needs no state any more; a second one does.)
    let second = app.create_coupon(&open_coupon("after", 50)).await;
    let redis = redis_at(&private.url(), &deployment.redis_prefix).await;
    let mut conn = redis.conn.clone();
    let remaining_key = coupon_key(&redis, second.id, "remaining");
    // Each try issues one more coupon, until one finds the state rebuilt.
    let issued = std::sync::atomic::AtomicI64::new(0);
    let remaining = eventually(
        Duration::from_secs(10),
        "issuance returns to Redis",
        || async {
            let user_id = users[400 + issued.fetch_add(1, Ordering::Relaxed) as usize];
            let (status, body) = deployment
                .instance(user_id as usize)
                .issue(second.id, user_id)
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let remaining: Option<i64> = redis::cmd("GET")
                .arg(&remaining_key)
                .query_async(&mut conn.clone())
                .await
                .expect("Redis answers");
            remaining.ok_or_else(|| "no state yet".to_owned())
        },
    )
    .await;
    let issued = issued.load(Ordering::Relaxed);
    assert_eq!(
        remaining,
        50 - issued,
        "the rebuilt state counts every issue"
    );
    let holders: i64 = redis::cmd("SCARD")
        .arg(coupon_key(&redis, second.id, "holders"))
        .query_async(&mut conn)
        .await
        .expect("Redis answers");
    assert_eq!(holders, issued + 1, "the holders and the sentinel");
}

/// Once PostgreSQL counts a coupon sold out, its requests are answered
/// without the user's facts or the coupon policy: a holder is still told
/// `COUPON_ALREADY_ISSUED` (from Redis, or PostgreSQL when Redis has lost the
/// state), anyone else `COUPON_SOLD_OUT`, and the policy is not called.
async fn a_sold_out_coupon_answers_without_the_policy(strategy: IssueStrategy) {
    let deployment = Deployment::start_with(2, |settings| {
        settings.coupon_issue_strategy = strategy;
    })
    .await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let coupon = a.create_coupon(&open_coupon("two", 2)).await;
    let users = users(&deployment.db, 3).await;
    let (kim, lee, park) = (users[0], users[1], users[2]);
    assert_eq!(a.issue(coupon.id, kim).await.0, StatusCode::CREATED);
    assert_eq!(b.issue(coupon.id, lee).await.0, StatusCode::CREATED);
    for app in [a, b] {
        expect_problem(
            app.issue_request(coupon.id, park),
            StatusCode::CONFLICT,
            "COUPON_SOLD_OUT",
        )
        .await;
    }

    let asked = [
        a.policy_calls("can_issue").await,
        b.policy_calls("can_issue").await,
    ];
    assert!(
        asked[0] + asked[1] >= 3,
        "kim, lee and park were checked: {asked:?}"
    );

    let redis = redis_at(&redis_url(), &deployment.redis_prefix).await;
    for forgotten in [false, true] {
        if forgotten {
            forget_coupon(&redis, coupon.id).await;
        }
        for app in [a, b] {
            for holder in [kim, lee] {
                expect_problem(
                    app.issue_request(coupon.id, holder),
                    StatusCode::CONFLICT,
                    "COUPON_ALREADY_ISSUED",
                )
                .await;
            }
            // A coupon-wide answer comes first: sold out for anyone, a user
            // that does not exist included.
            for other in [park, 999_999] {
                expect_problem(
                    app.issue_request(coupon.id, other),
                    StatusCode::CONFLICT,
                    "COUPON_SOLD_OUT",
                )
                .await;
            }
        }
    }
    expect_problem(
        a.issue_request(999_999, park),
        StatusCode::NOT_FOUND,
        "COUPON_NOT_FOUND",
    )
    .await;
    let coupon = a.coupon(coupon.id).await;
    assert_eq!((coupon.issued_quantity, coupon.remaining), (2, 0));
    assert_eq!(a.user_coupons(park, "").await.total, 0);
    assert_eq!(
        [
            a.policy_calls("can_issue").await,
            b.policy_calls("can_issue").await
        ],
        asked,
        "the coupon policy was asked about a sold-out coupon"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sold_out_coupon_answers_holders_and_others_without_the_policy() {
    a_sold_out_coupon_answers_without_the_policy(IssueStrategy::Reserve).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sold_out_coupon_answers_without_the_policy_with_the_lock_strategy_too() {
    a_sold_out_coupon_answers_without_the_policy(IssueStrategy::Lock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_coupon_and_users_are_issued_it_once_until_it_is_gone() {
    let deployment = Deployment::start_many(2).await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let coupon = a
        .create_coupon(&json!({
            "name": "  Two left  ",
            "discount": { "kind": "fixed", "value": 3000 },
            "total_quantity": 2,
            "min_order_amount": 20000,
            "valid_from": "2020-01-01T09:00:00+09:00",
            "valid_until": "2100-01-01T00:00:00Z",
        }))
        .await;
    assert_eq!(coupon.name, "Two left");
    assert_eq!(coupon.discount, json!({ "kind": "fixed", "value": 3000 }));
    assert_eq!(
        (
            coupon.total_quantity,
            coupon.issued_quantity,
            coupon.remaining
        ),
        (2, 0, 2)
    );
    assert_eq!(coupon.min_order_amount, 20_000);
    assert_eq!(coupon.valid_from, "2020-01-01T00:00:00Z");
    assert_eq!(b.coupon(coupon.id).await, coupon);

    let kim = a.create_user("kim").await;
    let lee = a.create_user("lee").await;
    let park = a.create_user("park").await;
    let issued: IssuedCoupon =
        expect(a.issue_request(coupon.id, kim.id), StatusCode::CREATED).await;
    assert_eq!(
        (issued.coupon_id, issued.user_id, issued.status.as_str()),
        (coupon.id, kim.id, "available")
    );
    expect_problem(
        b.issue_request(coupon.id, kim.id),
        StatusCode::CONFLICT,
        "COUPON_ALREADY_ISSUED",
    )
    .await;
    assert_eq!(b.issue(coupon.id, lee.id).await.0, StatusCode::CREATED);
    expect_problem(
        a.issue_request(coupon.id, park.id),
        StatusCode::CONFLICT,
        "COUPON_SOLD_OUT",
    )
    .await;
    let coupon = a.coupon(coupon.id).await;
    assert_eq!((coupon.issued_quantity, coupon.remaining), (2, 0));

    let metrics = a.get("/metrics").send().await.expect("an answer");
    let text = metrics.text().await.expect("text");
    for outcome in ["issued", "already_issued", "sold_out"] {
        let line = format!(r#"coupon_issue_total{{strategy="reserve",outcome="{outcome}"}}"#);
        assert!(text.contains(&line), "no {line} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_coupon_or_user_is_not_found() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let coupon = app.create_coupon(&open_coupon("open", 10)).await;
    let user = app.create_user("kim").await;
    expect_problem(
        app.get("/api/v1/coupons/999"),
        StatusCode::NOT_FOUND,
        "COUPON_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.issue_request(999, user.id),
        StatusCode::NOT_FOUND,
        "COUPON_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.issue_request(coupon.id, 999),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.get("/api/v1/users/999/coupons"),
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_is_issued_only_within_its_validity() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    for (from, until) in [
        ("2099-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
        ("2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),
    ] {
        let mut body = open_coupon("not now", 10);
        body["valid_from"] = json!(from);
        body["valid_until"] = json!(until);
        let coupon = app.create_coupon(&body).await;
        expect_problem(
            app.issue_request(coupon.id, user.id),
            StatusCode::CONFLICT,
            "COUPON_NOT_ACTIVE",
        )
        .await;
        assert_eq!(app.coupon(coupon.id).await.issued_quantity, 0);
    }
    assert_eq!(app.user_coupons(user.id, "").await.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coupon_policy_can_refuse_a_user_with_its_reason() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let coupon = app.create_coupon(&open_coupon("new members", 10)).await;
    let (status, body) = send(
        app.admin(Method::PUT, "/api/v1/admin/policies/coupon")
            .body(component("coupon-new-members")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let veteran = app.create_user("veteran").await;
    sqlx::query("update users set created_at = now() - interval '30 days' where id = $1")
        .bind(veteran.id)
        .execute(&deployment.db)
        .await
        .expect("the user is backdated");
    let newcomer = app.create_user("newcomer").await;

    let problem = expect_problem(
        app.issue_request(coupon.id, veteran.id),
        StatusCode::UNPROCESSABLE_ENTITY,
        "COUPON_NOT_ELIGIBLE",
    )
    .await;
    assert_eq!(problem["reason"], "NEW_MEMBERS_ONLY", "{problem}");
    assert_eq!(
        app.issue(coupon.id, newcomer.id).await.0,
        StatusCode::CREATED
    );
    assert_eq!(app.coupon(coupon.id).await.issued_quantity, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_coupons_are_listed_newest_first_by_status() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let user = app.create_user("kim").await;
    let mut held = HashMap::new();
    for name in ["to use", "to expire", "to keep"] {
        let coupon = app.create_coupon(&open_coupon(name, 10)).await;
        let issued: IssuedCoupon =
            expect(app.issue_request(coupon.id, user.id), StatusCode::CREATED).await;
        held.insert(name, (coupon.id, issued.user_coupon_id));
    }
    sqlx::query("update user_coupons set status = 'used', used_at = now() where id = $1")
        .bind(held["to use"].1)
        .execute(&deployment.db)
        .await
        .expect("the coupon is used");
    sqlx::query(
        "update coupons set valid_from = now() - interval '2 days',
                            valid_until = now() - interval '1 day'
          where id = $1",
    )
    .bind(held["to expire"].0)
    .execute(&deployment.db)
    .await
    .expect("the coupon is over");

    let all = app.user_coupons(user.id, "").await;
    assert_eq!(all.total, 3);
    let listed: Vec<(&str, &str)> = all
        .items
        .iter()
        .map(|c| (c.name.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("to keep", "available"),
            ("to expire", "expired"),
            ("to use", "used")
        ]
    );
    assert_eq!(
        all.items[0].discount,
        json!({ "kind": "percent", "value": 10, "max_amount": 5000 })
    );
    for (status, name) in [
        ("available", "to keep"),
        ("used", "to use"),
        ("expired", "to expire"),
    ] {
        let page = app.user_coupons(user.id, &format!("status={status}")).await;
        assert_eq!(page.total, 1, "{status}");
        assert_eq!(page.items[0].name, name);
        assert_eq!(page.items[0].user_coupon_id, held[name].1);
        assert_eq!(page.items[0].used_at.is_some(), status == "used");
    }
    let second = app.user_coupons(user.id, "size=2&page=1").await;
    assert_eq!((second.items.len(), second.total), (1, 3));
    for query in ["status=lost", "size=0", "page=-1"] {
        expect_problem(
            app.get(&format!("/api/v1/users/{}/coupons?{query}", user.id)),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_coupons_and_issue_requests_are_invalid_requests() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let mut bad = Vec::new();
    let change = |field: &str, value: Value| {
        let mut body = open_coupon("bad", 10);
        body[field] = value;
        body
    };
    bad.push(change("name", json!("")));
    bad.push(change("name", json!("x".repeat(101))));
    bad.push(change("discount", json!({ "kind": "percent", "value": 0 })));
    bad.push(change(
        "discount",
        json!({ "kind": "percent", "value": 101 }),
    ));
    bad.push(change(
        "discount",
        json!({ "kind": "percent", "value": 10, "max_amount": 0 }),
    ));
    bad.push(change("discount", json!({ "kind": "fixed", "value": 0 })));
    bad.push(change(
        "discount",
        json!({ "kind": "fixed", "value": 3000, "max_amount": 100 }),
    ));
    bad.push(change("discount", json!({ "kind": "bogo", "value": 1 })));
    bad.push(change("total_quantity", json!(0)));
    bad.push(change("total_quantity", json!(10_000_001)));
    bad.push(change("min_order_amount", json!(-1)));
    bad.push(change("valid_from", json!("2100-01-01T00:00:00Z")));
    bad.push(change("valid_until", json!("2020-01-01T00:00:00Z")));
    bad.push(change("valid_until", json!("next tuesday")));
    bad.push(change("color", json!("red")));
    for body in bad {
        expect_problem(
            app.admin(Method::POST, "/api/v1/admin/coupons").json(&body),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    expect_problem(
        app.post("/api/v1/admin/coupons")
            .json(&open_coupon("no token", 10)),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;

    let coupon = app.create_coupon(&open_coupon("good", 10)).await;
    let issue = format!("/api/v1/coupons/{}/issue", coupon.id);
    for body in [
        "{",
        r#"{"user_id": 0}"#,
        r#"{"user_id": "7"}"#,
        r#"{"user_id": 7, "extra": 1}"#,
        "{}",
    ] {
        expect_problem(
            app.post(&issue)
                .header("content-type", "application/json")
                .body(body),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        )
        .await;
    }
    for path in [
        "/api/v1/coupons/abc",
        "/api/v1/coupons/0",
        "/api/v1/users/-1/coupons",
    ] {
        expect_problem(app.get(path), StatusCode::BAD_REQUEST, "INVALID_REQUEST").await;
    }
    expect_problem(
        app.post("/api/v1/coupons/abc/issue")
            .json(&json!({ "user_id": 1 })),
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    )
    .await;
    assert_eq!(app.coupon(coupon.id).await.issued_quantity, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_coupon_endpoints() {
    let deployment = Deployment::start().await;
    let (status, doc) = send(deployment.app().get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/admin/coupons", "post"),
        ("/api/v1/coupons/{coupon_id}", "get"),
        ("/api/v1/coupons/{coupon_id}/issue", "post"),
        ("/api/v1/users/{user_id}/coupons", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is undocumented"
        );
    }
    let issue = &paths["/api/v1/coupons/{coupon_id}/issue"]["post"]["responses"];
    for status in ["201", "404", "409", "422"] {
        assert!(
            issue.get(status).is_some(),
            "issue does not document {status}"
        );
    }
}
