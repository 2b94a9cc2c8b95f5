//! MariaDB test servers: a primary with a binary log and GTID replicas.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::binaries::find;
use super::process::{free_port, run, ServerProcess};
use super::tls::TestCa;
use super::{io, HarnessError, Result};

const PACKAGE: &str = "mariadb-server";
const ENV_VAR: &str = "SPAR_MARIADB_BIN";
/// The user the harness creates on every server: all privileges, no
/// password, from any host (the server listens on 127.0.0.1 only).
pub const USER: &str = "spar";

/// One MariaDB server (primary or replica) in a temporary directory.
/// Dropping it kills the server and removes the directory.
#[derive(Debug)]
pub struct MariaDbServer {
    // Field order matters: the process is killed before the directory goes.
    process: ServerProcess,
    port: u16,
    server_id: u32,
    bin: PathBuf,
    replica: bool,
    /// Server options beyond the harness's own (TLS files).
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
}

impl MariaDbServer {
    /// Initialises and starts a primary (binary log on) on a free port.
    pub async fn start() -> Result<Self> {
        Self::create(1, false, Vec::new()).await
    }

    /// Like [`MariaDbServer::start`], with TLS: the server presents a
    /// certificate from `ca` for 127.0.0.1 and trusts client certificates
    /// from `ca`. Plain connections stay allowed, except for users created
    /// `REQUIRE SSL` or `REQUIRE X509`.
    pub async fn start_with_tls(ca: &mut TestCa) -> Result<Self> {
        let files = ca.server_cert(&["127.0.0.1"])?;
        let args = vec![
            format!("--ssl-ca={}", ca.ca_file().display()),
            format!("--ssl-cert={}", files.cert.display()),
            format!("--ssl-key={}", files.key.display()),
        ];
        Self::create(1, false, args).await
    }

    async fn create(server_id: u32, replica: bool, extra_args: Vec<String>) -> Result<Self> {
        let bin = find("mariadbd", ENV_VAR, &[PathBuf::from("/usr/sbin")], PACKAGE)?;
        let install = find(
            "mariadb-install-db",
            ENV_VAR,
            &[PathBuf::from("/usr/bin")],
            PACKAGE,
        )?;
        let dir = tempfile::Builder::new()
            .prefix("spar-mariadb-")
            .tempdir()
            .map_err(io("create a temp dir"))?;
        let data = dir.path().join("data");
        let datadir = format!("--datadir={}", data.display());
        // Each server has its own tmpdir: a starting server deletes the
        // temporary-table files it finds in its tmpdir, including another
        // server's (parallel tests would break each other's bootstrap).
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(format!("create {}", tmp.display())))?;
        let tmpdir = format!("--tmpdir={}", tmp.display());
        run(
            "mariadb-install-db",
            &install,
            &[
                "--no-defaults",
                &datadir,
                &tmpdir,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            None,
        )
        .await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let mut process = spawn_mariadb(&bin, dir.path(), port, server_id, &extra_args)?;
            match wait_ready(&mut process, dir.path(), port).await {
                Ok(()) => {
                    let server = Self {
                        process,
                        port,
                        server_id,
                        bin,
                        replica,
                        extra_args,
                        dir,
                    };
                    server.create_user().await?;
                    return Ok(server);
                }
                Err(e) if attempt < 3 && process.log_tail().contains("Address already in use") => {
                    eprintln!("harness: retrying on another port: {e}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The harness user, created outside the binary log so that replicas
    /// (which create their own) do not replay it.
    async fn create_user(&self) -> Result<()> {
        let mut conn = self.root_connection().await?;
        let sql = format!(
            "SET sql_log_bin = 0; CREATE USER '{USER}'@'%' IDENTIFIED BY ''; \
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION; SET sql_log_bin = 1;"
        );
        conn.query_drop(sql).await.map_err(|e| HarnessError::Sql {
            what: "create the harness user".into(),
            detail: e.to_string(),
        })?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    async fn root_connection(&self) -> Result<Conn> {
        let opts = OptsBuilder::default()
            .socket(Some(socket(self.dir.path()).display().to_string()))
            .user(Some("root"));
        Conn::new(opts).await.map_err(|e| HarnessError::Sql {
            what: "connect as root over the socket".into(),
            detail: e.to_string(),
        })
    }

    /// Makes a replica of this primary: a new server replicating with GTID
    /// from the start of the binary log, read-only, caught up.
    pub async fn replica(&self) -> Result<Self> {
        let replica = Self::create(
            self.server_id + 100 + u32::from(self.port % 100),
            true,
            self.extra_args.clone(),
        )
        .await?;
        replica
            .execute(
                "",
                &format!(
                    "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = '{USER}', \
                     MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; \
                     START SLAVE; SET GLOBAL read_only = 1;",
                    self.port
                ),
            )
            .await?;
        self.wait_caught_up(&replica).await?;
        Ok(replica)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this server replicates from a primary.
    pub fn is_replica(&self) -> bool {
        self.replica
    }

    /// A connection URL for database `db` (empty: no default database).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db` (empty: none).
    pub async fn connect(&self, db: &str) -> Result<Conn> {
        let mut opts = OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(USER))
            .pass(Some(""))
            .prefer_socket(false);
        if !db.is_empty() {
            opts = opts.db_name(Some(db));
        }
        Conn::new(opts).await.map_err(|e| HarnessError::Sql {
            what: format!("connect to {}", self.url(db)),
            detail: e.to_string(),
        })
    }

    /// Runs SQL statements (separated by `;`) in database `db`.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<()> {
        let mut conn = self.connect(db).await?;
        let result = conn.query_drop(sql).await;
        let _ = conn.disconnect().await;
        result.map_err(|e| HarnessError::Sql {
            what: format!("run SQL on {}", self.url(db)),
            detail: e.to_string(),
        })
    }

    /// Creates a database.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        self.execute(
            "",
            &format!("CREATE DATABASE `{}`", name.replace('`', "``")),
        )
        .await
    }

    /// Waits (at most 60 s) until `replica` has applied everything this
    /// primary has written so far.
    pub async fn wait_caught_up(&self, replica: &MariaDbServer) -> Result<()> {
        let mut primary = self.connect("").await?;
        let pos: Option<String> = primary
            .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .map_err(|e| HarnessError::Sql {
                what: "read the primary's GTID position".into(),
                detail: e.to_string(),
            })?;
        let _ = primary.disconnect().await;
        let Some(pos) = pos.filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut conn = replica.connect("").await?;
            let waited: Option<i64> = conn
                .exec_first("SELECT MASTER_GTID_WAIT(?, 5)", (pos.clone(),))
                .await
                .map_err(|e| HarnessError::Sql {
                    what: "wait for the replica".into(),
                    detail: e.to_string(),
                })?;
            let _ = conn.disconnect().await;
            if waited == Some(0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Sql {
                    what: format!("wait for replica on port {}", replica.port),
                    detail: format!(
                        "it had not applied GTID {pos} after 60 s; log:\n{}",
                        replica.process.log_tail()
                    ),
                });
            }
        }
    }

    /// Stops the server cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.process.signal_leader("TERM")?;
        }
        self.process.wait_exit(Duration::from_secs(60))
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Freezes the server (SIGSTOP): connections hang.
    pub fn pause(&self) -> Result<()> {
        self.process.signal_group("STOP")
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.process.signal_group("CONT")
    }

    /// Starts the server again on the same port and data directory.
    pub async fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.stop()?;
        }
        let _ = self.process.kill();
        self.process = spawn_mariadb(
            &self.bin,
            self.dir.path(),
            self.port,
            self.server_id,
            &self.extra_args,
        )?;
        wait_ready(&mut self.process, self.dir.path(), self.port).await
    }
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("mysqld.sock")
}

fn spawn_mariadb(
    bin: &Path,
    dir: &Path,
    port: u16,
    server_id: u32,
    extra_args: &[String],
) -> Result<ServerProcess> {
    let mut command = Command::new(bin);
    command.arg("--no-defaults");
    let data = dir.join("data");
    for arg in [
        format!("--datadir={}", data.display()),
        format!("--tmpdir={}", dir.join("tmp").display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--socket={}", socket(dir).display()),
        format!("--pid-file={}", dir.join("mysqld.pid").display()),
        format!("--server-id={server_id}"),
        format!("--log-bin={}", data.join("binlog").display()),
        "--binlog-format=ROW".into(),
        "--log-slave-updates=ON".into(),
        "--skip-name-resolve".into(),
        "--innodb-buffer-pool-size=64M".into(),
        "--innodb-flush-log-at-trx-commit=2".into(),
        "--sync-binlog=0".into(),
        "--user=root".into(),
    ] {
        command.arg(arg);
    }
    command.args(extra_args);
    ServerProcess::spawn("mariadbd", command, &dir.join("server.log"), None)
}

/// Waits until the server answers over TCP (at most 60 s).
async fn wait_ready(process: &mut ServerProcess, dir: &Path, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let opts = OptsBuilder::default()
        .socket(Some(socket(dir).display().to_string()))
        .user(Some("root"));
    loop {
        if !process.is_running() {
            return Err(HarnessError::Startup {
                what: format!("mariadbd on port {port}"),
                detail: "the server exited".into(),
                log: process.log_tail(),
            });
        }
        if let Ok(conn) = Conn::new(opts.clone()).await {
            let _ = conn.disconnect().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(HarnessError::Startup {
                what: format!("mariadbd on port {port}"),
                detail: "not accepting connections after 60 s".into(),
                log: process.log_tail(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
