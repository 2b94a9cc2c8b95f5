//! PostgreSQL test servers: a primary and streaming replicas.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::binaries::{find, postgres_dirs};
use super::process::{free_port, run, running_as_root, user_ids, ServerProcess};
use super::tls::TestCa;
use super::{io, HarnessError, Result};

const PACKAGE: &str = "postgresql";
const ENV_VAR: &str = "SPAR_PG_BIN";
/// The superuser the harness creates; trust authentication on loopback.
pub const USER: &str = "spar";
/// On servers started with TLS, the group whose members must log in with
/// a client certificate.
pub const CERT_GROUP: &str = "spar_cert";

/// One PostgreSQL server (primary or hot-standby replica) in a temporary
/// directory. Dropping it kills the server and removes the directory.
#[derive(Debug)]
pub struct PgServer {
    // Field order matters: the process is killed before the directory goes.
    process: ServerProcess,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    user: Option<(u32, u32)>,
    replica: bool,
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Initialises and starts a primary on a free port.
    pub async fn start() -> Result<Self> {
        Self::create(None).await
    }

    /// Like [`PgServer::start`], with TLS: a certificate from `ca` for
    /// 127.0.0.1, and TCP connections only over TLS (`hostssl`). Members of
    /// the role [`CERT_GROUP`] log in with a client certificate from `ca`
    /// whose common name is their role (`cert` authentication); everyone
    /// else as usual. The harness itself connects over the Unix socket.
    pub async fn start_with_tls(ca: &mut TestCa) -> Result<Self> {
        let server = Self::create(Some(ca)).await?;
        server
            .execute("postgres", &format!("CREATE ROLE {CERT_GROUP} NOLOGIN"))
            .await?;
        Ok(server)
    }

    async fn create(tls: Option<&mut TestCa>) -> Result<Self> {
        let bin = find("postgres", ENV_VAR, &postgres_dirs(), PACKAGE)?;
        let bin_dir = bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let (dir, user) = server_dir()?;
        let data = dir.path().join("data");
        let data_arg = data.display().to_string();
        let initdb = bin_dir.join("initdb");
        run(
            "initdb",
            &initdb,
            &[
                "-D",
                &data_arg,
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            user,
        )
        .await?;
        if let Some(ca) = tls {
            configure_tls(&data, ca, user)?;
        }
        Self::launch(bin, dir, data, user, false).await
    }

    /// Makes a streaming replica of this primary (`pg_basebackup -R`),
    /// starts it as a hot standby and waits until it has caught up.
    pub async fn replica(&self) -> Result<Self> {
        let bin_dir = self.bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let (dir, user) = server_dir()?;
        let data = dir.path().join("data");
        let data_arg = data.display().to_string();
        let port = self.port.to_string();
        run(
            "pg_basebackup",
            &bin_dir.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                USER,
                "-D",
                &data_arg,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            user,
        )
        .await?;
        let replica = Self::launch(self.bin.clone(), dir, data, user, true).await?;
        self.wait_caught_up(&replica).await?;
        Ok(replica)
    }

    async fn launch(
        bin: PathBuf,
        dir: tempfile::TempDir,
        data: PathBuf,
        user: Option<(u32, u32)>,
        replica: bool,
    ) -> Result<Self> {
        // A port found free may be taken by another test before the server
        // binds it: try a few.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let mut process = spawn_postgres(&bin, dir.path(), &data, port, user)?;
            match wait_ready(&mut process, dir.path(), port).await {
                Ok(()) => {
                    return Ok(Self {
                        process,
                        port,
                        bin,
                        data,
                        user,
                        replica,
                        dir,
                    })
                }
                Err(e) if attempt < 3 && process.log_tail().contains("could not bind") => {
                    eprintln!("harness: retrying on another port: {e}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this server is a hot-standby replica.
    pub fn is_replica(&self) -> bool {
        self.replica
    }

    /// A connection URL for database `db` (no password: trust auth).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A client connected to database `db`, over the server's Unix socket
    /// (so it works whatever TCP demands, e.g. TLS).
    pub async fn connect(&self, db: &str) -> Result<Client> {
        let config = format!(
            "host={} port={} user={USER} dbname={db} connect_timeout=5",
            self.dir.path().display(),
            self.port
        );
        let (client, connection) =
            tokio_postgres::connect(&config, NoTls)
                .await
                .map_err(|e| HarnessError::Sql {
                    what: format!("connect to {}", self.url(db)),
                    detail: e.to_string(),
                })?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped or the server
            // goes away; both are normal in tests.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs SQL statements (separated by `;`) in database `db`.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<()> {
        let client = self.connect(db).await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| HarnessError::Sql {
                what: format!("run SQL on {}", self.url(db)),
                detail: pg_error(&e),
            })
    }

    /// Creates a database.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        self.execute(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
        )
        .await
    }

    /// Waits (at most 60 s) until `replica` has replayed everything this
    /// primary has written so far.
    pub async fn wait_caught_up(&self, replica: &PgServer) -> Result<()> {
        let primary = self.connect("postgres").await?;
        let lsn: String = primary
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| HarnessError::Sql {
                what: "read the primary's WAL position".into(),
                detail: pg_error(&e),
            })?
            .get(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let caught_up = match replica.connect("postgres").await {
                Ok(c) => c
                    .query_one(
                        "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                        &[&lsn],
                    )
                    .await
                    .map(|r| r.get::<_, bool>(0))
                    .unwrap_or(false),
                Err(_) => false,
            };
            if caught_up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Sql {
                    what: format!("wait for replica on port {}", replica.port),
                    detail: format!("it had not replayed up to {lsn} after 60 s"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server cleanly (fast shutdown) and waits for it.
    pub fn stop(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.process.signal_leader("INT")?;
        }
        self.process.wait_exit(Duration::from_secs(30))
    }

    /// Kills the server and all its processes at once (SIGKILL).
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Freezes every process of the server (SIGSTOP): connections hang.
    pub fn pause(&self) -> Result<()> {
        self.process.signal_group("STOP")
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.process.signal_group("CONT")
    }

    /// Starts the server again on the same port and data directory, after
    /// [`PgServer::stop`] or [`PgServer::kill`].
    pub async fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.stop()?;
        }
        // Kill leftovers of a killed server before a new one takes the port.
        let _ = self.process.kill();
        self.process =
            spawn_postgres(&self.bin, self.dir.path(), &self.data, self.port, self.user)?;
        wait_ready(&mut self.process, self.dir.path(), self.port).await
    }

    /// Pauses WAL replay on a replica: it keeps serving, with older data.
    pub async fn pause_replay(&self) -> Result<()> {
        self.execute("postgres", "SELECT pg_wal_replay_pause()")
            .await
    }

    /// Resumes WAL replay on a replica.
    pub async fn resume_replay(&self) -> Result<()> {
        self.execute("postgres", "SELECT pg_wal_replay_resume()")
            .await
    }
}

/// Waits until the server on `port` accepts connections on its socket in
/// `dir` (at most 60 s).
async fn wait_ready(process: &mut ServerProcess, dir: &Path, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let config = format!(
        "host={} port={port} user={USER} dbname=postgres connect_timeout=2",
        dir.display()
    );
    let startup_error = |process: &ServerProcess, detail: &str| HarnessError::Startup {
        what: format!("postgres on port {port}"),
        detail: detail.to_string(),
        log: process.log_tail(),
    };
    loop {
        if !process.is_running() {
            return Err(startup_error(process, "the server exited"));
        }
        if tokio_postgres::connect(&config, NoTls).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(startup_error(
                process,
                "not accepting connections after 60 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A temporary directory the server's OS user owns: `postgres` when we are
/// root (PostgreSQL refuses to run as root).
fn server_dir() -> Result<(tempfile::TempDir, Option<(u32, u32)>)> {
    let dir = tempfile::Builder::new()
        .prefix("spar-pg-")
        .tempdir()
        .map_err(io("create a temp dir"))?;
    if !running_as_root() {
        return Ok((dir, None));
    }
    let Some(ids) = user_ids("postgres") else {
        return Err(HarnessError::Command {
            what: "run PostgreSQL as root".into(),
            detail: "PostgreSQL refuses to run as root and there is no `postgres` user; install the `postgresql` package, which creates it".into(),
        });
    };
    std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1))
        .map_err(io(format!("chown {}", dir.path().display())))?;
    Ok((dir, Some(ids)))
}

/// Puts a server certificate from `ca` and `ca`'s certificate into the data
/// directory, turns TLS on and allows TCP only over TLS.
fn configure_tls(data: &Path, ca: &mut TestCa, user: Option<(u32, u32)>) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    let files = ca.server_cert(&["127.0.0.1"])?;
    for (from, to) in [
        (files.cert.as_path(), "server.crt"),
        (files.key.as_path(), "server.key"),
        (ca.ca_file(), "root.crt"),
    ] {
        let to = data.join(to);
        std::fs::copy(from, &to).map_err(io(format!(
            "copy {} to {}",
            from.display(),
            to.display()
        )))?;
        // PostgreSQL refuses a key others can read.
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("chmod {}", to.display())))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&to, Some(uid), Some(gid))
                .map_err(io(format!("chown {}", to.display())))?;
        }
    }
    let conf = data.join("postgresql.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(io(format!("open {}", conf.display())))?;
    file.write_all(
        b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n",
    )
    .map_err(io(format!("write {}", conf.display())))?;
    let hba = data.join("pg_hba.conf");
    std::fs::write(
        &hba,
        format!(
            "local all all trust\nlocal replication all trust\n\
             hostssl all +{CERT_GROUP} 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl replication all 127.0.0.1/32 trust\n"
        ),
    )
    .map_err(io(format!("write {}", hba.display())))
}

fn spawn_postgres(
    bin: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    user: Option<(u32, u32)>,
) -> Result<ServerProcess> {
    let mut command = Command::new(bin);
    command.arg("-D").arg(data).arg("-p").arg(port.to_string());
    for setting in [
        "listen_addresses=127.0.0.1".to_string(),
        format!("unix_socket_directories={}", dir.display()),
        "fsync=off".into(),
        "full_page_writes=off".into(),
        "wal_level=replica".into(),
        "max_wal_senders=10".into(),
        "hot_standby=on".into(),
        "shared_buffers=64MB".into(),
        "max_connections=100".into(),
        "wal_receiver_status_interval=1s".into(),
    ] {
        command.arg("-c").arg(setting);
    }
    ServerProcess::spawn("postgres", command, &dir.join("server.log"), user)
}

/// A tokio-postgres error with the server's message and SQLSTATE.
pub(crate) fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
