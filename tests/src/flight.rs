//! `spar serve` for tests: started in-process on 127.0.0.1:0 over two
//! SQLite sources (`sales`: orders, secrets; `crm`: customers), with users
//! `ann` (password `ann-pw`, every table), `olly` (`olly-pw`, only
//! `sales.main.orders`) and `ops` (`ops-pw`, only the `system` catalog).

use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use spar_engine::{Config, Engine};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::harness::TestCa;
use crate::sqlite_db;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The `sales` source.
pub const SALES: &str = "
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE secrets (id INTEGER PRIMARY KEY, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO orders SELECT i, i % 5, i * 10 FROM n;
INSERT INTO secrets VALUES (1, 'hidden');
";

/// The `crm` source.
pub const CRM: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO customers VALUES (0, 'ann'), (1, 'bob'), (2, 'cy'), (3, 'di'), (4, 'ed');
";

/// A running server and what a test needs to reach it.
pub struct Server {
    /// The Flight SQL address.
    pub addr: std::net::SocketAddr,
    /// The metrics endpoint's address.
    pub metrics: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
    /// The directory holding the sources' files.
    pub dir: tempfile::TempDir,
    /// What a client needs for TLS, when the server uses it.
    pub tls: Option<ClientTls>,
}

/// A TLS client's trust and (for mTLS) identity.
pub struct ClientTls {
    /// The CA that signed the server's certificate.
    pub ca: Certificate,
    /// The client certificate, when the server requires one.
    pub identity: Option<Identity>,
}

/// Starts a server over two SQLite sources with users `ann` (everything)
/// and `olly` (only `sales.main.orders`); `server` is extra `[server]` TOML.
pub async fn start(server: &str) -> Server {
    start_with(server, None).await
}

/// [`start`], with TLS from `ca` (and client certificates when the flag is set).
pub async fn start_with(server: &str, tls: Option<(&mut TestCa, bool)>) -> Server {
    start_full(server, "", tls).await
}

/// [`start`], with more `[sources.NAME]` tables in `sources` (TOML).
pub async fn start_with_sources(server: &str, sources: &str) -> Server {
    start_full(server, sources, None).await
}

async fn start_full(server: &str, sources: &str, tls: Option<(&mut TestCa, bool)>) -> Server {
    let dir = ok(tempfile::tempdir());
    sqlite_db(dir.path(), "sales.db", SALES);
    sqlite_db(dir.path(), "crm.db", CRM);
    let ann = ok(spar_server::flight::hash_password("ann-pw"));
    let olly = ok(spar_server::flight::hash_password("olly-pw"));
    let ops = ok(spar_server::flight::hash_password("ops-pw"));
    let (tls_toml, client_tls) = match tls {
        None => (String::new(), None),
        Some((ca, mutual)) => {
            let cert = ok(ca.server_cert(&["localhost", "127.0.0.1"]));
            let client_ca = if mutual {
                format!(", client_ca = {:?}", ca.ca_file().display().to_string())
            } else {
                String::new()
            };
            let identity = if mutual {
                let c = ok(ca.client_cert("ann"));
                Some(Identity::from_pem(
                    ok(std::fs::read(&c.cert)),
                    ok(std::fs::read(&c.key)),
                ))
            } else {
                None
            };
            (
                format!(
                    "tls = {{ cert = {:?}, key = {:?}{client_ca} }}\n",
                    cert.cert.display().to_string(),
                    cert.key.display().to_string()
                ),
                Some(ClientTls {
                    ca: Certificate::from_pem(ok(std::fs::read(ca.ca_file()))),
                    identity,
                }),
            )
        }
    };
    let (server_top, server_rest) = match server.split_once("\n[") {
        Some((top, rest)) => (top.to_string(), format!("[{rest}")),
        None => (server.to_string(), String::new()),
    };
    let toml = format!(
        r#"
search_path = ["sales.main", "crm.main"]
[sources.sales]
kind = "sqlite"
replicas = ["sales.db"]
[sources.crm]
kind = "sqlite"
replicas = ["crm.db"]
{sources}
[server]
{tls_toml}{server_top}
{server_rest}
[[users]]
name = "ann"
password_hash = "{ann}"
grants = ["*"]
[[users]]
name = "olly"
password_hash = "{olly}"
grants = ["sales.main.orders"]
[[users]]
name = "ops"
password_hash = "{ops}"
grants = ["system.*"]
"#
    );
    let config = ok(Config::from_toml(&toml, "spar.toml", dir.path()));
    let engine = ok(Engine::from_config(config.clone()).await);
    let listener = ok(TcpListener::bind("127.0.0.1:0").await);
    let metrics_listener = ok(TcpListener::bind("127.0.0.1:0").await);
    let addr = ok(listener.local_addr());
    let metrics = ok(metrics_listener.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        spar_server::flight::run(engine, &config, listener, Some(metrics_listener), async {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    Server {
        addr,
        metrics,
        stop: Some(stop),
        task,
        dir,
        tls: client_tls,
    }
}

impl Server {
    /// A channel to the server (TLS when it uses TLS).
    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        match &self.tls {
            None => {
                Endpoint::new(format!("http://{}", self.addr))?
                    .connect()
                    .await
            }
            Some(tls) => {
                let mut config = ClientTlsConfig::new()
                    .ca_certificate(tls.ca.clone())
                    .domain_name("localhost");
                if let Some(identity) = &tls.identity {
                    config = config.identity(identity.clone());
                }
                Endpoint::new(format!("https://{}", self.addr))?
                    .tls_config(config)?
                    .connect()
                    .await
            }
        }
    }

    /// A client logged in as `user`.
    pub async fn client(&self, user: &str, password: &str) -> FlightSqlServiceClient<Channel> {
        let mut client = FlightSqlServiceClient::new(ok(self.channel().await));
        ok(client.handshake(user, password).await);
        client
    }

    /// The response to `GET path` on the metrics endpoint, headers included.
    pub async fn metrics_text(&self, path: &str) -> String {
        self.metrics_text_with(path, "").await
    }

    /// [`Server::metrics_text`], sending the request header lines `headers`
    /// (each ending in `\r\n`).
    pub async fn metrics_text_with(&self, path: &str, headers: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = ok(tokio::net::TcpStream::connect(self.metrics).await);
        ok(stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await);
        let mut out = String::new();
        ok(stream.read_to_string(&mut out).await);
        out
    }

    /// An embedded engine over the same sources, for expected answers.
    pub async fn engine(&self) -> Engine {
        let path = self.dir.path().join("local.toml");
        ok(std::fs::write(
            &path,
            "search_path = [\"sales.main\", \"crm.main\"]\n\
             [sources.sales]\nkind = \"sqlite\"\nreplicas = [\"sales.db\"]\n\
             [sources.crm]\nkind = \"sqlite\"\nreplicas = [\"crm.db\"]\n",
        ));
        ok(Engine::from_file(path).await)
    }

    /// Stops the server and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "the server did not stop cleanly: {result:?}"
        );
    }
}
