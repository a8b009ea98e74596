//! Settings, read from the environment (and a `.env` file) as API.md lists them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

use crate::coupons::IssueStrategy;

/// Everything the server needs to start. Tests build one by hand; `commerce
/// serve` reads it from the environment.
#[derive(Debug, Clone, Args)]
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

    /// Redis connection string.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

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

    /// Most connections this process opens to PostgreSQL.
    #[arg(long, env = "COMMERCE_DB_POOL_SIZE", default_value_t = 32)]
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
