//! The end-to-end test harness: real `commerce` servers on port 0, each test
//! with a fresh PostgreSQL database and its own Redis key prefix.

pub mod api;
pub mod lab;
pub mod orders;

use std::{future::Future, sync::Arc, time::Duration};

use commerce::{Application, Settings};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;

pub use api::*;

/// Server without the database name; `TEST_DATABASE_URL` overrides it.
pub fn database_server() -> String {
    server_url()
}

/// Drops a database the test created outside a [`Deployment`].
pub async fn drop_database(url: &str) {
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    if let Ok(mut conn) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
        let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut conn)
            .await;
    }
}

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The Redis the deployments use; `TEST_REDIS_URL` overrides it.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The repository's root folder.
pub fn repository() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lies in the repository")
        .to_path_buf()
}

/// A built component's bytes: `target/plugins/<name>.wasm`. The Rust
/// plugins are built by this crate's build script; a TypeScript or Python
/// plugin (`plugins/<name>/package.json` or `pyproject.toml`) is built here
/// when it is missing or older than its source, as `commerce policy build`.
pub fn component(name: &str) -> Vec<u8> {
    let dir = repository().join("plugins").join(name);
    if dir.join("package.json").is_file() || dir.join("pyproject.toml").is_file() {
        // One build at a time: they share the tools folder and the work folders.
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = BUILDING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        commerce::cli::authoring::build_if_stale(&dir)
            .unwrap_or_else(|err| panic!("building plugins/{name}: {err:#}"));
    }
    let path = repository().join(format!("target/plugins/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; build with `cargo build --release`",
            path.display()
        )
    })
}

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The HS256 secret of the deployments that check user tokens.
pub const JWT_SECRET: &str = "the-e2e-tests-hs256-secret-of-40-bytes!!";

/// An HS256 token for `user_id` signed with [`JWT_SECRET`], valid an hour.
pub fn user_token(user_id: i64, admin: bool) -> String {
    let mut claims = serde_json::json!({
        "sub": user_id.to_string(),
        "exp": chrono::Utc::now().timestamp() + 3600,
    });
    if admin {
        claims["roles"] = serde_json::json!(["admin"]);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("an HMAC key"),
    )
    .expect("a token")
}

/// Whether every deployment checks user tokens (`COMMERCE_E2E_AUTH=1`): the
/// suite then runs with authentication on, every request carrying an
/// admin-role user token unless it sets its own.
pub fn authentication_everywhere() -> bool {
    std::env::var("COMMERCE_E2E_AUTH").is_ok_and(|value| value == "1")
}

/// Several server instances sharing one fresh database and one Redis prefix:
/// one deployment, as in production.
pub struct Deployment {
    pub instances: Vec<Instance>,
    /// A direct connection pool, for assertions on the stored state.
    pub db: PgPool,
    pub redis_prefix: String,
    database: String,
    stop: Arc<Notify>,
}

/// One running server.
#[derive(Clone)]
pub struct Instance {
    pub base: String,
    pub client: reqwest::Client,
}

impl Deployment {
    /// One instance on a fresh database.
    pub async fn start() -> Self {
        Self::start_many(1).await
    }

    /// `count` instances on one fresh database.
    pub async fn start_many(count: usize) -> Self {
        Self::start_with(count, |_| {}).await
    }

    /// `count` instances whose settings `adjust` may change first.
    pub async fn start_with(count: usize, adjust: impl Fn(&mut Settings)) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("commerce_test_{id}");
        let redis_prefix = format!("test:{id}:");
        let stop = Arc::new(Notify::new());
        let mut instances = Vec::with_capacity(count);
        for _ in 0..count {
            let mut settings = Settings::defaults();
            settings.listen = "127.0.0.1:0".parse().expect("a socket address");
            settings.database_url = format!("{}/{database}", server_url());
            settings.redis_url = redis_url();
            settings.redis_prefix = redis_prefix.clone();
            settings.environment = "dev".to_owned();
            settings.manifest_dir = repository().join("plugins/environments");
            settings.component_dir = repository().join("target/plugins");
            settings.admin_token = Some(ADMIN_TOKEN.to_owned());
            settings.db_pool_size = 16;
            // Shadow reports settle in a tenth of the default second.
            settings.shadow_flush_ms = 100;
            adjust(&mut settings);
            // Outside `dev` the server needs user keys to start: the harness
            // gives it its own, and its requests a token, unless the test
            // chose keys itself.
            let harness_keys = settings.jwt_secret.is_none()
                && settings.jwt_jwks.is_none()
                && (authentication_everywhere() || settings.environment != "dev");
            if harness_keys {
                settings.jwt_secret = Some(JWT_SECRET.to_owned());
            }
            let app = Application::build(settings)
                .await
                .expect("the application starts");
            let base = format!("http://{}", app.local_addr());
            let stop = stop.clone();
            tokio::spawn(app.run_until(async move { stop.notified().await }));
            let mut client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(256);
            if harness_keys {
                let mut headers = reqwest::header::HeaderMap::new();
                let bearer = format!("Bearer {}", user_token(1, true));
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    bearer.parse().expect("a header value"),
                );
                client = client.default_headers(headers);
            }
            instances.push(Instance {
                base,
                client: client.build().expect("an HTTP client"),
            });
        }
        let db = PgPool::connect(&format!("{}/{database}", server_url()))
            .await
            .expect("the test database accepts connections");
        Self {
            instances,
            db,
            redis_prefix,
            database,
            stop,
        }
    }

    /// The first instance.
    pub fn app(&self) -> &Instance {
        &self.instances[0]
    }

    /// Instance `n % count`, to spread requests over all of them.
    pub fn instance(&self, n: usize) -> &Instance {
        &self.instances[n % self.instances.len()]
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop.notify_waiters();
        let database = self.database.clone();
        let prefix = self.redis_prefix.clone();
        // Drop runs inside the test's runtime, which must not block on async
        // work; a short-lived thread with its own runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                {
                    let _ =
                        sqlx::query(&format!("drop database if exists {database} with (force)"))
                            .execute(&mut conn)
                            .await;
                }
                if let Ok(client) = redis::Client::open(redis_url())
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{prefix}*"))
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<(), _> =
                            redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl Instance {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    /// An admin request with the test deployment's bearer token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(ADMIN_TOKEN)
    }

    /// How many calls of the policy function `function` (`price`,
    /// `can_issue`, ...) this instance's /metrics counts, every version and
    /// outcome together.
    pub async fn policy_calls(&self, function: &str) -> u64 {
        let text = self
            .get("/metrics")
            .send()
            .await
            .expect("an answer")
            .text()
            .await
            .expect("text");
        let label = format!(r#"function="{function}""#);
        text.lines()
            .filter(|line| line.starts_with("policy_calls_total{") && line.contains(&label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// How long a change made through one instance may take to reach every
/// other: the contract's one second.
pub const PROPAGATION: std::time::Duration = std::time::Duration::from_secs(1);

impl Instance {
    /// What this instance serves in `slot`, as the console reads it: the
    /// active version and its configuration, the previous one, the shadow.
    pub async fn slot(&self, slot: &str) -> Value {
        let (status, slots) = send(self.admin(Method::GET, "/api/v1/admin/console/slots")).await;
        assert_eq!(status, StatusCode::OK, "{slots}");
        slots["slots"]
            .as_array()
            .and_then(|slots| slots.iter().find(|entry| entry["slot"] == slot).cloned())
            .unwrap_or_else(|| panic!("no {slot} in {slots}"))
    }

    /// The slot's shadow report once it has counted at least `evaluated`
    /// evaluations: candidates run after the answer, and instances add
    /// their counts every second.
    pub async fn shadow_report_after(&self, slot: &str, evaluated: i64) -> Value {
        let path = format!("/api/v1/admin/policies/{slot}/shadow");
        eventually(
            std::time::Duration::from_secs(10),
            &format!("{evaluated} shadow evaluations counted"),
            || async {
                let (status, report) = send(self.admin(Method::GET, &path)).await;
                if status == StatusCode::OK && report["evaluated"].as_i64() >= Some(evaluated) {
                    Ok(report)
                } else {
                    Err(report.to_string())
                }
            },
        )
        .await
    }
}

impl Deployment {
    /// Waits until every instance serves `slot` as `serves` accepts (it gets
    /// the console's entry of the slot), within [`PROPAGATION`]; answers
    /// the first instance's entry.
    pub async fn until_every_instance(
        &self,
        slot: &str,
        what: &str,
        serves: impl Fn(&Value) -> bool,
    ) -> Value {
        for instance in &self.instances {
            eventually(PROPAGATION, what, || async {
                let entry = instance.slot(slot).await;
                if serves(&entry) {
                    Ok(())
                } else {
                    Err(entry.to_string())
                }
            })
            .await;
        }
        self.app().slot(slot).await
    }

    /// Waits until every instance runs the candidate `sha256` as `slot`'s
    /// shadow.
    pub async fn until_shadowed(&self, slot: &str, sha256: &Value) {
        self.until_every_instance(slot, "the shadow reaches every instance", |entry| {
            &entry["shadow"]["sha256"] == sha256
        })
        .await;
    }

    /// Waits until every instance serves the version `sha256` in `slot`.
    pub async fn until_active(&self, slot: &str, sha256: &Value) {
        self.until_every_instance(slot, "the version reaches every instance", |entry| {
            &entry["active"]["sha256"] == sha256
        })
        .await;
    }
}

/// Sends and reads the answer's status and JSON body (`Null` when empty).
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the server answers");
    read(response).await
}

pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("a complete body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// An idempotent request's answer: its status, whether it was replayed,
/// and its body's bytes.
pub struct Keyed {
    pub status: StatusCode,
    pub replayed: bool,
    pub body: Vec<u8>,
}

/// Sends `request` with an `Idempotency-Key`.
pub async fn send_with_key(request: RequestBuilder, key: &str) -> Keyed {
    let response = request
        .header("Idempotency-Key", key)
        .send()
        .await
        .expect("the server answers");
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true");
    Keyed {
        status: response.status(),
        replayed,
        body: response.bytes().await.expect("a body").to_vec(),
    }
}

/// Sends, checks the status and decodes the body as `T`.
pub async fn expect<T: DeserializeOwned>(request: RequestBuilder, status: StatusCode) -> T {
    let (got, body) = send(request).await;
    assert_eq!(got, status, "unexpected answer: {body}");
    serde_json::from_value(body.clone())
        .unwrap_or_else(|err| panic!("the body does not decode ({err}): {body}"))
}

/// Checks that a response is a problem+json document with this status and code.
pub async fn expect_problem(request: RequestBuilder, status: StatusCode, code: &str) -> Value {
    let response = request.send().await.expect("the server answers");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (got, body) = read(response).await;
    assert_eq!(got, status, "unexpected answer: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status.as_u16(), "body: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "body: {body}"
    );
    body
}

/// Runs `count` tasks at once and collects their results in order.
pub async fn concurrently<T, F>(count: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..count).map(|n| tokio::spawn(task(n))).collect();
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(handle.await.expect("a task completes"));
    }
    results
}

/// Waits for a condition the deployment reaches by itself (a change that
/// propagates, a tally that is flushed, a timer that fires): `check` is
/// asked every 50 ms until it answers `Ok`, for at most `within`. Its last
/// `Err` says what was seen instead, for the failure message.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = std::time::Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if started.elapsed() >= within => {
                panic!("{what}: not within {within:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}
