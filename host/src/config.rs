//! Settings, read from the environment (and a `.env` file) as API.md lists them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

/// Everything the server needs to start. Tests build one by hand; `commerce
/// serve` reads it from the environment.
#[derive(Clone, Args)]
pub struct Settings {
    /// Address to serve on.
    #[arg(long, env = "COMMERCE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL connection string; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/commerce"
    )]
    pub database_url: String,

    /// Direct PostgreSQL connection string for migrations and LISTEN, when
    /// `DATABASE_URL` goes through a pooler in transaction mode (PgBouncer),
    /// which cannot carry them. Default: `DATABASE_URL`.
    #[arg(long, env = "DATABASE_DIRECT_URL")]
    pub database_direct_url: Option<String>,

    /// Redis connection string.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Redis Cluster seed nodes, comma-separated `host:port`; when set, used
    /// instead of `REDIS_URL`.
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,

    /// Prefix of every Redis key and stream, so several deployments share one Redis.
    #[arg(long, env = "COMMERCE_REDIS_PREFIX", default_value = "commerce:")]
    pub redis_prefix: String,

    /// Which policy manifest to load: `plugins/environments/<env>.toml`.
    #[arg(long = "env", env = "COMMERCE_ENV", default_value = "dev")]
    pub environment: String,

    /// Folder of the per-environment policy manifests.
    #[arg(
        long,
        env = "COMMERCE_MANIFEST_DIR",
        default_value = "plugins/environments"
    )]
    pub manifest_dir: PathBuf,

    /// Folder of the built components that manifests name.
    #[arg(long, env = "COMMERCE_COMPONENT_DIR", default_value = "target/plugins")]
    pub component_dir: PathBuf,

    /// Bearer token of the admin API. Without one the admin API is closed,
    /// except in `dev`, where one is generated and printed.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long an order waits for payment, in seconds.
    #[arg(long, env = "ORDER_TTL_SECONDS", default_value_t = 600)]
    pub order_ttl_seconds: u64,

    /// Most connections this process opens to PostgreSQL. Four processes of
    /// the default fit PostgreSQL's default `max_connections` (100, of which
    /// 3 are reserved for superusers).
    #[arg(long, env = "COMMERCE_DB_POOL_SIZE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub db_pool_size: u32,

    /// Days the policy inputs of each order are kept, for `commerce policy replay`.
    #[arg(long, env = "POLICY_INPUT_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub policy_input_retention_days: u32,

    /// Follow edits to the environment's manifest and the components it names,
    /// as `POST /api/v1/admin/policies/reload` would. Default: on in `dev` only.
    #[arg(long, env = "COMMERCE_WATCH_POLICIES")]
    pub watch_policies: Option<bool>,

    /// How coupons are issued: `reserve` (a Redis script takes one, then
    /// PostgreSQL records it) or `lock` (a fenced Redis lock per coupon around
    /// the PostgreSQL transaction; the older design, kept for comparison).
    #[arg(
        long,
        env = "COUPON_ISSUE_STRATEGY",
        value_enum,
        default_value_t = IssueStrategy::Reserve
    )]
    pub coupon_issue_strategy: IssueStrategy,

    /// HS256 secret of user tokens (at least 32 bytes). With neither this
    /// nor `JWT_JWKS`, user authentication is off (`dev` only).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// JWKS of user tokens (RS256, ES256, EdDSA): a file path or an
    /// `http(s)://` address, fetched at start, every 5 minutes and when a
    /// token names an unknown key.
    #[arg(long, env = "JWT_JWKS")]
    pub jwt_jwks: Option<String>,

    /// Seconds between fetches of the JWKS.
    #[arg(long, env = "JWT_JWKS_REFRESH_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub jwt_jwks_refresh_secs: u64,

    /// Milliseconds a token with an unknown `kid` waits, after the last
    /// fetch, before it may fetch the JWKS again.
    #[arg(long, env = "JWT_JWKS_REFETCH_COOLDOWN_MS", default_value_t = 5_000)]
    pub jwt_jwks_refetch_cooldown_ms: u64,

    /// When set, a token's `iss` must equal it (a token without one is
    /// refused).
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// When set, a token's `aud` (a string or an array) must hold it (a
    /// token without one is refused).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Most connections served at once; more wait in the kernel's backlog.
    #[arg(long, env = "COMMERCE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a client may take to send a request's headers, in
    /// milliseconds, before its connection is closed: from accept for a
    /// connection's first request (a connection that sends nothing is
    /// closed too), from the first byte for later ones.
    #[arg(long, env = "COMMERCE_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,

    /// How long a connection may stay open with no request in flight, in
    /// milliseconds (HTTP/1 keep-alive, HTTP/2 with only PINGs).
    #[arg(long, env = "COMMERCE_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_ms: u64,

    /// How long a request's body may take to arrive, in milliseconds from
    /// the request's start, before it answers `408 REQUEST_TIMEOUT`.
    #[arg(long, env = "COMMERCE_BODY_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,

    /// Most requests in flight at once on one HTTP/2 connection.
    #[arg(long, env = "COMMERCE_HTTP2_MAX_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_streams: u32,

    /// How often each instance adds its shadow outcomes to the deployment's
    /// report, in milliseconds.
    #[arg(long, env = "COMMERCE_SHADOW_FLUSH_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub shadow_flush_ms: u64,

    /// Days a published outbox event is kept in PostgreSQL.
    #[arg(long, env = "OUTBOX_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub outbox_retention_days: u32,

    /// About how many events the Redis stream keeps (`XADD MAXLEN ~`).
    #[arg(long, env = "OUTBOX_STREAM_MAXLEN", default_value_t = 100_000)]
    pub outbox_stream_maxlen: u64,
}

/// Secrets and passwords never reach a log through `{:?}`.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |set: bool| if set { "<hidden>" } else { "<none>" };
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "database_direct_url",
                &self.database_direct_url.as_deref().map(redact_url),
            )
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_cluster_nodes", &self.redis_cluster_nodes)
            .field("redis_prefix", &self.redis_prefix)
            .field("environment", &self.environment)
            .field("manifest_dir", &self.manifest_dir)
            .field("component_dir", &self.component_dir)
            .field("admin_token", &hidden(self.admin_token.is_some()))
            .field("order_ttl_seconds", &self.order_ttl_seconds)
            .field("db_pool_size", &self.db_pool_size)
            .field("coupon_issue_strategy", &self.coupon_issue_strategy)
            .field("jwt_secret", &hidden(self.jwt_secret.is_some()))
            .field("jwt_jwks", &self.jwt_jwks.as_deref().map(redact_url))
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_jwks_refresh_secs", &self.jwt_jwks_refresh_secs)
            .field(
                "jwt_jwks_refetch_cooldown_ms",
                &self.jwt_jwks_refetch_cooldown_ms,
            )
            .field("max_connections", &self.max_connections)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("http2_max_streams", &self.http2_max_streams)
            .field("shadow_flush_ms", &self.shadow_flush_ms)
            .finish_non_exhaustive()
    }
}

/// The URL with its password, if any, replaced: for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// How issuance uses Redis (`COUPON_ISSUE_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum IssueStrategy {
    /// A Redis script takes one from the remaining count, then PostgreSQL
    /// records it.
    Reserve,
    /// A fenced Redis lock per coupon around the PostgreSQL transaction: the
    /// older design, kept for comparison.
    Lock,
}

impl IssueStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStrategy::Reserve => "reserve",
            IssueStrategy::Lock => "lock",
        }
    }
}

impl Settings {
    /// The settings `commerce serve` would use with no environment at all.
    pub fn defaults() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        Only::parse_from(["commerce"]).settings
    }

    /// Where migrations and listeners connect: `DATABASE_DIRECT_URL`, else
    /// `DATABASE_URL`.
    pub fn database_direct_url(&self) -> &str {
        self.database_direct_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .unwrap_or(&self.database_url)
    }

    pub fn order_ttl(&self) -> Duration {
        Duration::from_secs(self.order_ttl_seconds)
    }

    pub fn is_prod(&self) -> bool {
        self.environment == "prod"
    }

    /// Whether this process follows edits to the policy manifest and components.
    pub fn watches_policies(&self) -> bool {
        self.watch_policies.unwrap_or(self.environment == "dev")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/commerce"),
            "postgres://app:***@db:5432/commerce"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let settings = Settings {
            admin_token: Some("admin-secret".into()),
            jwt_secret: Some("jwt-secret-jwt-secret-jwt-secret!".into()),
            database_url: "postgres://app:s3cret@db/commerce".into(),
            ..Settings::defaults()
        };
        let shown = format!("{settings:?}");
        for secret in ["admin-secret", "jwt-secret", "s3cret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
