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
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("pg"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}
