//! A private deployment of real processes for fault tests: its own
//! PostgreSQL cluster, its own Redis server and `commerce serve` processes,
//! each of which a test may kill, restart or stop without disturbing
//! anything else on the machine.

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::PgPool;

use crate::{Instance, repository};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn postgres_bin(tool: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    let mut found: Vec<PathBuf> = versions
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin").join(tool))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no {tool} under /usr/lib/postgresql"))
}

/// PostgreSQL refuses to run as root; the cluster then belongs to `postgres`.
fn as_postgres(tool: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if is_root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(postgres_bin(tool));
        command
    } else {
        Command::new(postgres_bin(tool))
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct Lab {
    dir: PathBuf,
    pub pg_port: u16,
    pub redis_port: u16,
    redis: Option<Child>,
    pub servers: Vec<Server>,
    /// Started by [`Lab::start_scaled`]: a Redis Cluster and a PgBouncer
    /// the servers use instead of the single Redis and direct PostgreSQL.
    pub cluster: Option<RedisCluster>,
    pub pgbouncer: Option<PgBouncer>,
}

/// One `commerce serve` process.
pub struct Server {
    child: Option<Child>,
    pub instance: Instance,
    pub log: PathBuf,
}

impl Lab {
    pub async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("commerce-lab-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a lab folder");
        run(Command::new("chmod").arg("777").arg(&dir));
        let mut lab = Self {
            pg_port: free_port(),
            redis_port: free_port(),
            redis: None,
            servers: Vec::new(),
            cluster: None,
            pgbouncer: None,
            dir,
        };
        run(as_postgres("initdb")
            .arg("-D")
            .arg(lab.dir.join("pg"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]));
        lab.start_postgres();
        lab.start_redis();
        lab
    }

    /// A lab whose servers use a Redis Cluster (three masters, three
    /// replicas) and reach PostgreSQL through PgBouncer in transaction mode.
    pub async fn start_scaled() -> Self {
        let mut lab = Self::start().await;
        lab.cluster = Some(RedisCluster::start(&lab.dir));
        lab.pgbouncer = Some(PgBouncer::start(&lab.dir, lab.pg_port));
        lab
    }

    /// The environment that points a server at the cluster and PgBouncer.
    fn scaled_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(cluster) = &self.cluster {
            env.push(("REDIS_CLUSTER_NODES", cluster.seeds()));
        }
        if let Some(pgbouncer) = &self.pgbouncer {
            env.push(("DATABASE_URL", pgbouncer.database_url()));
            env.push(("DATABASE_DIRECT_URL", self.database_url()));
        }
        env
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/commerce", self.pg_port)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    /// A pool on the lab's database, for assertions.
    pub async fn db(&self) -> PgPool {
        PgPool::connect(&self.database_url())
            .await
            .expect("the lab database")
    }

    pub fn start_postgres(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.pg_port,
            self.dir.display()
        );
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("pg"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("pg.log"))
            .args(["-w", "start"]));
    }

    /// Stops PostgreSQL at once, as a crash or a failover would.
    pub fn stop_postgres(&self) {
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("pg"))
            .args(["-m", "immediate", "-w", "stop"]));
    }

    /// Starts a Redis that keeps nothing on disk: a restart is also a flush.
    pub fn start_redis(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.redis = Some(child);
        wait_for_port(self.redis_port);
    }

    pub fn kill_redis(&mut self) {
        if let Some(mut child) = self.redis.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a `commerce serve` process on the lab's services.
    pub async fn spawn_server(&mut self, env: &[(&str, &str)]) -> Instance {
        let binary = repository().join("target/release/commerce");
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build --release`",
            binary.display()
        );
        let port = free_port();
        let log = self.dir.join(format!("server-{}.log", self.servers.len()));
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .current_dir(repository())
            .env("COMMERCE_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", self.database_url())
            .env("REDIS_URL", self.redis_url())
            .env("COMMERCE_REDIS_PREFIX", "lab:")
            .env("COMMERCE_ENV", "dev")
            .env("ADMIN_TOKEN", crate::ADMIN_TOKEN)
            .env("RUST_LOG", "warn,commerce=info")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("a log file"));
        for (key, value) in self.scaled_env() {
            command.env(key, value);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("commerce starts");
        let instance = Instance {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        };
        let started = Instant::now();
        while instance.get("/healthz").send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.servers.push(Server {
            child: Some(child),
            instance: instance.clone(),
            log,
        });
        instance
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill_server(&mut self, n: usize) {
        if let Some(mut child) = self.servers[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM: the server finishes what it accepted and exits.
    pub fn terminate_server(&mut self, n: usize) -> Child {
        let child = self.servers[n].child.take().expect("a running server");
        run(Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string()));
        child
    }

    pub fn server_log(&self, n: usize) -> String {
        std::fs::read_to_string(&self.servers[n].log).unwrap_or_default()
    }
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in 0..self.servers.len() {
            self.kill_server(n);
        }
        self.kill_redis();
        self.cluster.take();
        self.pgbouncer.take();
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("pg"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}

/// Whether this process runs as root (services that refuse root then run as
/// `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A Redis Cluster of three masters and three replicas on local ports, each
/// node a `redis-server` that keeps nothing on disk.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
}

pub struct ClusterNode {
    pub port: u16,
    child: Option<Child>,
}

impl RedisCluster {
    /// How long a master may be silent before its replica takes over.
    pub const NODE_TIMEOUT: Duration = Duration::from_millis(1_000);

    pub fn start(dir: &Path) -> Self {
        let dir = dir.join("cluster");
        std::fs::create_dir_all(&dir).expect("a cluster folder");
        let nodes: Vec<ClusterNode> = (0..6)
            .map(|_| {
                let port = free_port();
                let child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes"])
                    .arg("--cluster-config-file")
                    .arg(dir.join(format!("nodes-{port}.conf")))
                    .args([
                        "--cluster-node-timeout",
                        &Self::NODE_TIMEOUT.as_millis().to_string(),
                    ])
                    .args(["--save", "", "--appendonly", "no"])
                    // A replica syncs at once rather than after 5 s, so
                    // that it can take over as soon as the test starts.
                    .args(["--repl-diskless-sync-delay", "0"])
                    .arg("--dir")
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server starts");
                ClusterNode {
                    port,
                    child: Some(child),
                }
            })
            .collect();
        for node in &nodes {
            wait_for_port(node.port);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        run(Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"]));
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// `host:port,...` of every node, for `REDIS_CLUSTER_NODES`.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn alive(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.iter().filter(|node| node.child.is_some())
    }

    /// Waits until every live node sees all slots served and every live
    /// replica is in sync with its master.
    pub fn wait_until_ok(&self) {
        let started = Instant::now();
        let ok = |node: &ClusterNode| {
            let replication = redis_cli(node.port, &["info", "replication"]);
            redis_cli(node.port, &["cluster", "info"]).contains("cluster_state:ok")
                && (replication.contains("role:master")
                    || replication.contains("master_link_status:up"))
        };
        while !self.alive().all(ok) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the cluster is not ok: {}",
                redis_cli(self.nodes[0].port, &["cluster", "nodes"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index of the node that is master of `key`'s slot.
    pub fn master_of(&self, key: &str) -> usize {
        let asker = self.alive().next().expect("a live node").port;
        let slot: u16 = redis_cli(asker, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot");
        let nodes = redis_cli(asker, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(low), Ok(high)) if (low..=high).contains(&slot))
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|port| port.parse().ok())
                    .expect("a port");
                return self
                    .nodes
                    .iter()
                    .position(|node| node.port == port)
                    .expect("a lab node");
            }
        }
        panic!("no master serves slot {slot}: {nodes}")
    }

    /// `kill -9` one node.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }
}

/// A PgBouncer in transaction-pooling mode in front of the lab's PostgreSQL.
///
/// Debian 12 ships PgBouncer 1.18, which cannot carry the named prepared
/// statements sqlx uses; `scripts/install-pgbouncer.sh` builds 1.21 or later
/// (`max_prepared_statements`) from Debian's source package.
pub struct PgBouncer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PgBouncer {
    /// Server connections per database and user: what four instances of 32
    /// client connections each share.
    pub const POOL_SIZE: u32 = 20;

    pub fn start(dir: &Path, pg_port: u16) -> Self {
        let dir = dir.join("pgbouncer");
        std::fs::create_dir_all(&dir).expect("a pgbouncer folder");
        run(Command::new("chmod").arg("777").arg(&dir));
        let port = free_port();
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("the user list");
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]
* = host=127.0.0.1 port={pg_port} connect_query='SET statement_timeout = 10000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
max_prepared_statements = 500
default_pool_size = {pool}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
server_login_retry = 1
",
                users = dir.join("users.txt").display(),
                pool = Self::POOL_SIZE,
            ),
        )
        .expect("the configuration");
        let mut bouncer = Self {
            port,
            dir,
            child: None,
        };
        bouncer.resume();
        bouncer
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/commerce", self.port)
    }

    /// Starts PgBouncer (again) on its port.
    pub fn resume(&mut self) {
        let mut command = Command::new(pgbouncer_bin());
        if is_root() {
            // PgBouncer refuses to run as root.
            command.args(["-u", "postgres"]);
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("pgbouncer.log"))
            .expect("a log file");
        let child = command
            .arg(self.dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pgbouncer starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer does not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: every client connection is cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `PGBOUNCER` when set, else the one `scripts/install-pgbouncer.sh`
/// installs, else `pgbouncer` on the path.
fn pgbouncer_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PGBOUNCER") {
        return path.into();
    }
    let installed = PathBuf::from("/usr/local/bin/pgbouncer");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("pgbouncer")
    }
}
