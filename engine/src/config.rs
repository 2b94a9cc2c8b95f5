//! `spar.toml`: the configuration file, and the same settings built in code.
//!
//! ```toml
//! search_path = ["sales.main", "catalog.main"]
//!
//! [sources.sales]
//! kind = "sqlite"
//! replicas = ["data/sales.db", "/mnt/copy/sales.db"]   # the first is the primary
//! policy = "primary_first"                            # or "round_robin"
//!
//! [sources.catalog]
//! kind = "files"
//! location = "data/catalog/"                          # or s3://bucket/prefix/
//! format = "parquet"                                  # parquet | csv | json
//!
//! [sources.crm]
//! kind = "postgres"
//! replicas = ["postgres://spar:${CRM_PW}@db1:5432/crm", "postgres://spar:${CRM_PW}@db2:5432/crm"]
//! ```
//!
//! Relative paths are relative to the directory of the config file.
//! `${NAME}` in a string is replaced by the environment variable `NAME`.
//! Every error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spar_connectors::file::{FileFormatKind, S3Options};

use crate::error::{EngineError, Result};
use crate::replica::{Policy, ReplicaSettings};

/// The source kinds this version can read, as config values.
const KINDS: &str = "\"sqlite\", \"postgres\", \"mysql\", \"files\"";

/// Names that sources cannot take: Spar uses them itself.
pub const RESERVED_SOURCE_NAMES: &[&str] = &["spar", "information_schema", "system"];

/// The whole configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `source.schema` entries where unqualified table names are looked up,
    /// in order.
    pub search_path: Vec<SchemaPath>,
    /// The sources, by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[server]`: the Flight SQL endpoint (`spar serve`).
    pub server: ServerConfig,
    /// `[[users]]`: who may connect to the server, and what they may read.
    pub users: Vec<UserConfig>,
}

impl Config {
    /// What is allowed but probably a mistake, one sentence each, for the
    /// log at start-up: grants that name a source this config does not
    /// have (they grant nothing).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let grants = self
            .users
            .iter()
            .map(|u| (format!("users `{}`", u.name), &u.grants))
            .chain(std::iter::once((
                "server.anonymous_grants".to_string(),
                &self.server.anonymous_grants,
            )));
        for (holder, grants) in grants {
            for g in grants {
                if let Some(source) = g.source() {
                    if !self.sources.contains_key(source) && source != "system" {
                        out.push(format!(
                            "{holder}: grant `{g}` names no source (the sources are {}); it grants nothing",
                            list_or_none(&self.sources.keys().map(String::as_str).collect::<Vec<_>>())
                        ));
                    }
                }
            }
        }
        out
    }
}

/// `[server]`: how `spar serve` listens and what it allows.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The Flight SQL address.
    pub listen: String,
    /// The HTTP address of `/metrics` and `/health`; `None` for none.
    pub metrics: Option<String>,
    /// When set, `/metrics` answers only requests that carry
    /// `authorization: Bearer <token>`. Required when `metrics` is not a
    /// loopback address.
    pub metrics_token: Option<MetricsToken>,
    /// TLS for the Flight SQL endpoint; `None` for plain gRPC.
    pub tls: Option<TlsConfig>,
    /// Whether clients may connect without credentials.
    pub allow_anonymous: bool,
    /// What anonymous clients may read (when allowed).
    pub anonymous_grants: Vec<crate::access::Grant>,
    /// How long a handshake's bearer token stays valid.
    pub token_ttl: std::time::Duration,
    /// Per-query and per-user limits.
    pub limits: Limits,
    /// How long running queries may go on after a shutdown signal before
    /// they are cancelled.
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            metrics: None,
            metrics_token: None,
            tls: None,
            allow_anonymous: false,
            anonymous_grants: vec![crate::access::Grant::everything()],
            token_ttl: std::time::Duration::from_secs(8 * 3600),
            limits: Limits::default(),
            shutdown_grace: std::time::Duration::from_secs(30),
        }
    }
}

/// The bearer token `/metrics` asks for; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(pub String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// `[server.tls]`: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// `[server.limits]`: what one query, one user and the whole server may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Queries running at once on the server.
    pub max_concurrent_queries: usize,
    /// Queries running at once for one user.
    pub max_concurrent_queries_per_user: usize,
    /// How long one query may run, from planning to its last row.
    pub query_timeout: Option<std::time::Duration>,
    /// Bytes one query may hold in operators that buffer; `None` for no limit.
    pub query_memory: Option<usize>,
    /// Rows one query may return; `None` for no limit.
    pub max_result_rows: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_queries: 64,
            max_concurrent_queries_per_user: 16,
            query_timeout: None,
            query_memory: None,
            max_result_rows: None,
        }
    }
}

/// One `[[users]]` entry.
#[derive(Clone, PartialEq)]
pub struct UserConfig {
    /// The user name clients send.
    pub name: String,
    /// The password's argon2id hash in PHC form (`$argon2id$v=19$...`), as
    /// `spar hash-password` prints it.
    pub password_hash: String,
    /// What the user may read.
    pub grants: Vec<crate::access::Grant>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password_hash", &"(hidden)")
            .field("grants", &self.grants)
            .finish()
    }
}

/// One `source.schema` entry of the search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaPath {
    /// The source (a catalog in SQL).
    pub source: String,
    /// The schema in that source.
    pub schema: String,
}

impl std::fmt::Display for SchemaPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.source, self.schema)
    }
}

/// One source.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// SQLite database files, each a replica.
    Sqlite(SqliteSourceConfig),
    /// PostgreSQL servers, each a replica.
    Postgres(ServerSourceConfig),
    /// MySQL or MariaDB servers, each a replica.
    MySql(ServerSourceConfig),
    /// A collection of Parquet, CSV or JSON files.
    Files(FileSourceConfig),
}

impl SourceConfig {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::MySql(_) => "mysql",
            Self::Files(_) => "files",
        }
    }
}

/// A source reached over the network (PostgreSQL, MySQL/MariaDB).
#[derive(Clone)]
pub struct ServerSourceConfig {
    /// One connection URL per replica (`postgres://user:password@host:port/db`,
    /// `mysql://user:password@host:port/db`); the first is the primary.
    /// Passwords are never printed.
    pub replicas: Vec<String>,
    /// Which replica a fragment runs on.
    pub policy: Policy,
    /// Rows per record batch.
    pub batch_size: usize,
    /// Deadlines, health checks, circuit breaker, staleness, resume.
    pub settings: ReplicaSettings,
}

impl ServerSourceConfig {
    /// A source with these replica URLs, `primary_first`, default batch size.
    pub fn new(replicas: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            replicas: replicas.into_iter().map(Into::into).collect(),
            policy: Policy::PrimaryFirst,
            batch_size: spar_connectors::postgres::DEFAULT_BATCH_SIZE,
            settings: ReplicaSettings::default(),
        }
    }

    /// Sets the replica policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the deadlines, health checks and resume settings.
    pub fn with_settings(mut self, settings: ReplicaSettings) -> Self {
        self.settings = settings;
        self
    }
}

impl std::fmt::Debug for ServerSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSourceConfig")
            .field(
                "replicas",
                &format!("{} URL(s), hidden", self.replicas.len()),
            )
            .field("policy", &self.policy)
            .field("batch_size", &self.batch_size)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A SQLite source.
#[derive(Debug, Clone)]
pub struct SqliteSourceConfig {
    /// One database file per replica; the first is the primary.
    pub replicas: Vec<PathBuf>,
    /// Which replica a fragment runs on.
    pub policy: Policy,
    /// Rows per record batch read from SQLite.
    pub batch_size: usize,
    /// Deadlines, health checks, circuit breaker, resume.
    pub settings: ReplicaSettings,
}

impl SqliteSourceConfig {
    /// A source with these replica files, `primary_first`, default batch size.
    pub fn new(replicas: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Self {
            replicas: replicas.into_iter().map(Into::into).collect(),
            policy: Policy::PrimaryFirst,
            batch_size: spar_connectors::sqlite::DEFAULT_BATCH_SIZE,
            settings: ReplicaSettings::default(),
        }
    }

    /// Sets the deadlines, health checks and resume settings.
    pub fn with_settings(mut self, settings: ReplicaSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the replica policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the rows per record batch.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
}

/// A file source.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// A local directory or file, or `s3://bucket/prefix/`.
    pub location: String,
    /// More locations holding the same files (directories or `s3://`
    /// prefixes), read when `location` fails, in order.
    pub other_locations: Vec<String>,
    /// The files' format.
    pub format: FileFormatKind,
    /// Settings for `s3://` locations.
    pub s3: S3Options,
}

impl FileSourceConfig {
    /// Files of `format` at `location`.
    pub fn new(location: impl Into<String>, format: FileFormatKind) -> Self {
        Self {
            location: location.into(),
            other_locations: Vec::new(),
            format,
            s3: S3Options::default(),
        }
    }

    /// With more locations holding the same files, read in order when
    /// the ones before fail.
    pub fn with_other_locations<S: Into<String>>(
        mut self,
        locations: impl IntoIterator<Item = S>,
    ) -> Self {
        self.other_locations = locations.into_iter().map(Into::into).collect();
        self
    }

    /// Every location, `location` first.
    pub fn locations(&self) -> Vec<&str> {
        std::iter::once(self.location.as_str())
            .chain(self.other_locations.iter().map(String::as_str))
            .collect()
    }
}

// ---- the file format --------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    search_path: Vec<String>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    server: Option<RawServer>,
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    metrics: Option<String>,
    metrics_token: Option<String>,
    tls: Option<RawTls>,
    #[serde(default)]
    allow_anonymous: bool,
    anonymous_grants: Option<Vec<String>>,
    token_ttl: Option<String>,
    shutdown_grace: Option<String>,
    limits: Option<RawLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_concurrent_queries: Option<i64>,
    max_concurrent_queries_per_user: Option<i64>,
    query_timeout: Option<String>,
    query_memory: Option<toml::Value>,
    max_result_rows: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    grants: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Option<String>,
    replicas: Option<Vec<String>>,
    policy: Option<String>,
    batch_size: Option<i64>,
    location: Option<String>,
    format: Option<String>,
    s3: Option<RawS3>,
    max_staleness: Option<String>,
    connect_timeout: Option<String>,
    first_batch_timeout: Option<String>,
    stall_timeout: Option<String>,
    retry_deadline: Option<String>,
    health_check_interval: Option<String>,
    circuit_failures: Option<i64>,
    circuit_backoff: Option<String>,
    resume_buffer: Option<toml::Value>,
    resume: Option<String>,
    hedge_after: Option<String>,
    statistics_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    #[serde(default)]
    allow_http: bool,
}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &path.display().to_string(), &base)
    }

    /// Parses and validates config text. `origin` names it in errors;
    /// relative paths are taken relative to `base_dir`.
    pub fn from_toml(text: &str, origin: &str, base_dir: &Path) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            EngineError::Config {
                origin: if line > 0 {
                    format!("{origin}:{line}:{col}")
                } else {
                    origin.to_string()
                },
                key: key_of(e.message()).unwrap_or_else(|| "(file)".into()),
                message: e.message().trim().to_string(),
            }
        })?;
        let v = Validator { origin };
        let server = match raw.server {
            None => ServerConfig::default(),
            Some(raw) => v.server(raw, base_dir)?,
        };
        let users = raw
            .users
            .into_iter()
            .enumerate()
            .map(|(i, u)| v.user(i, u))
            .collect::<Result<Vec<_>>>()?;
        let mut sources = BTreeMap::new();
        for (name, raw) in raw.sources {
            let source = v.source(&name, raw, base_dir)?;
            sources.insert(name, source);
        }
        let config = Self {
            search_path: raw
                .search_path
                .iter()
                .enumerate()
                .map(|(i, entry)| v.schema_path(i, entry))
                .collect::<Result<_>>()?,
            sources,
            server,
            users,
        };
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks what can be checked without touching a source: names, the
    /// search path, replica counts.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |key: String, message: String| EngineError::Config {
            origin: origin.to_string(),
            key,
            message,
        };
        for (name, source) in &self.sources {
            if name.is_empty()
                || RESERVED_SOURCE_NAMES.contains(&name.to_ascii_lowercase().as_str())
            {
                return Err(err(
                    format!("sources.{name}"),
                    format!("`{name}` cannot name a source; choose another name"),
                ));
            }
            if let SourceConfig::Sqlite(s) = source {
                if s.replicas.is_empty() {
                    return Err(err(
                        format!("sources.{name}.replicas"),
                        "expected at least one database file".into(),
                    ));
                }
                if s.batch_size == 0 {
                    return Err(err(
                        format!("sources.{name}.batch_size"),
                        "expected a positive number of rows".into(),
                    ));
                }
            }
        }
        for (i, user) in self.users.iter().enumerate() {
            if user.name == "anonymous" {
                return Err(err(
                    format!("users[{i}].name"),
                    "`anonymous` names clients without credentials (server.allow_anonymous); choose another name".into(),
                ));
            }
            if self.users[..i].iter().any(|u| u.name == user.name) {
                return Err(err(
                    format!("users[{i}].name"),
                    format!("user `{}` is defined twice", user.name),
                ));
            }
        }
        for (i, entry) in self.search_path.iter().enumerate() {
            if !self.sources.contains_key(&entry.source) {
                let known: Vec<&str> = self.sources.keys().map(String::as_str).collect();
                return Err(err(
                    format!("search_path[{i}]"),
                    format!(
                        "no source named `{}`; sources: {}",
                        entry.source,
                        list_or_none(&known)
                    ),
                ));
            }
        }
        Ok(())
    }
}

struct Validator<'a> {
    origin: &'a str,
}

impl Validator<'_> {
    fn err(&self, key: String, message: String) -> EngineError {
        EngineError::Config {
            origin: self.origin.to_string(),
            key,
            message,
        }
    }

    fn server(&self, raw: RawServer, base: &Path) -> Result<ServerConfig> {
        let defaults = ServerConfig::default();
        let path = |key: &str, value: String| -> Result<PathBuf> {
            Ok(base.join(self.string(key, &value)?))
        };
        let tls = match raw.tls {
            None => None,
            Some(t) => {
                let (Some(cert), Some(key)) = (t.cert, t.key) else {
                    return Err(self.err(
                        "server.tls".into(),
                        "expected both `cert` and `key` (PEM file paths)".into(),
                    ));
                };
                Some(TlsConfig {
                    cert: path("server.tls.cert", cert)?,
                    key: path("server.tls.key", key)?,
                    client_ca: t
                        .client_ca
                        .map(|c| path("server.tls.client_ca", c))
                        .transpose()?,
                })
            }
        };
        let anonymous_grants = match raw.anonymous_grants {
            Some(grants) => self.grants("server.anonymous_grants", &grants)?,
            None => defaults.anonymous_grants.clone(),
        };
        let limits = match raw.limits {
            None => Limits::default(),
            Some(l) => {
                let d = Limits::default();
                Limits {
                    max_concurrent_queries: self
                        .count(
                            "server.limits.max_concurrent_queries",
                            l.max_concurrent_queries,
                            MAX_CONCURRENCY,
                        )?
                        .unwrap_or(d.max_concurrent_queries),
                    max_concurrent_queries_per_user: self
                        .count(
                            "server.limits.max_concurrent_queries_per_user",
                            l.max_concurrent_queries_per_user,
                            MAX_CONCURRENCY,
                        )?
                        .unwrap_or(d.max_concurrent_queries_per_user),
                    query_timeout: l
                        .query_timeout
                        .map(|t| self.duration("server.limits.query_timeout", &t))
                        .transpose()?,
                    query_memory: l
                        .query_memory
                        .map(|m| self.bytes("server.limits.query_memory", &m))
                        .transpose()?,
                    max_result_rows: self
                        .positive("server.limits.max_result_rows", l.max_result_rows)?,
                }
            }
        };
        Ok(ServerConfig {
            listen: match raw.listen {
                Some(l) => self.string("server.listen", &l)?,
                None => defaults.listen,
            },
            metrics: raw
                .metrics
                .map(|m| self.string("server.metrics", &m))
                .transpose()?,
            metrics_token: match raw.metrics_token {
                Some(t) => {
                    let t = self.string("server.metrics_token", &t)?;
                    if t.len() < 16 || t.chars().any(|c| !c.is_ascii_graphic()) {
                        return Err(self.err(
                            "server.metrics_token".into(),
                            "expected at least 16 printable ASCII characters without spaces".into(),
                        ));
                    }
                    Some(MetricsToken(t))
                }
                None => None,
            },
            tls,
            allow_anonymous: raw.allow_anonymous,
            anonymous_grants,
            token_ttl: match raw.token_ttl {
                Some(t) => self.duration("server.token_ttl", &t)?,
                None => defaults.token_ttl,
            },
            limits,
            shutdown_grace: match raw.shutdown_grace {
                Some(t) => self.duration("server.shutdown_grace", &t)?,
                None => defaults.shutdown_grace,
            },
        })
    }

    fn user(&self, i: usize, raw: RawUser) -> Result<UserConfig> {
        let key = |k: &str| format!("users[{i}].{k}");
        let Some(name) = raw.name.filter(|n| !n.is_empty()) else {
            return Err(self.err(key("name"), "missing; expected the user's name".into()));
        };
        let Some(password_hash) = raw.password_hash else {
            return Err(self.err(
                key("password_hash"),
                "missing; make one with `spar hash-password`".into(),
            ));
        };
        let password_hash = self.string(&key("password_hash"), &password_hash)?;
        if !password_hash.starts_with("$argon2id$") {
            return Err(self.err(
                key("password_hash"),
                "expected an argon2id hash (`$argon2id$...`); make one with `spar hash-password`"
                    .into(),
            ));
        }
        Ok(UserConfig {
            name,
            password_hash,
            grants: self.grants(&key("grants"), &raw.grants)?,
        })
    }

    fn grants(&self, key: &str, grants: &[String]) -> Result<Vec<crate::access::Grant>> {
        grants
            .iter()
            .enumerate()
            .map(|(i, g)| {
                crate::access::Grant::parse(g).map_err(|m| self.err(format!("{key}[{i}]"), m))
            })
            .collect()
    }

    /// A positive count of at most `max` (where larger ones could not be
    /// honoured, or would overflow).
    fn count(&self, key: &str, value: Option<i64>, max: usize) -> Result<Option<usize>> {
        match self.positive(key, value)? {
            None => Ok(None),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(self.err(
                    key.to_string(),
                    format!("expected at most {max}, found {n}"),
                )),
            },
        }
    }

    fn positive(&self, key: &str, value: Option<i64>) -> Result<Option<u64>> {
        match value {
            None => Ok(None),
            Some(n) if n > 0 => Ok(Some(n.unsigned_abs())),
            Some(n) => Err(self.err(
                key.to_string(),
                format!("expected a positive number, found {n}"),
            )),
        }
    }

    fn duration(&self, key: &str, value: &str) -> Result<std::time::Duration> {
        match humantime::parse_duration(value) {
            Ok(d) if d > MAX_DURATION => Err(self.err(
                key.to_string(),
                format!("expected a duration of at most 365 days, found \"{value}\""),
            )),
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(self.err(key.to_string(), "expected a positive duration".into())),
            Err(e) => Err(self.err(
                key.to_string(),
                format!("expected a duration such as \"30s\", \"5m\" or \"8h\", found \"{value}\" ({e})"),
            )),
        }
    }

    /// A size in bytes: a number, or a string such as `"512MiB"`, `"2GB"`.
    fn bytes(&self, key: &str, value: &toml::Value) -> Result<usize> {
        let err = || {
            self.err(
                key.to_string(),
                format!("expected a positive size such as \"512MiB\" or \"2GiB\" (or bytes), found {value}"),
            )
        };
        let bytes = match value {
            toml::Value::Integer(n) if *n > 0 => n.unsigned_abs(),
            toml::Value::String(s) => parse_size(s).ok_or_else(err)?,
            _ => return Err(err()),
        };
        usize::try_from(bytes).map_err(|_| err())
    }

    fn schema_path(&self, i: usize, entry: &str) -> Result<SchemaPath> {
        match entry.split_once('.') {
            Some((source, schema))
                if !source.is_empty() && !schema.is_empty() && !schema.contains('.') =>
            {
                Ok(SchemaPath {
                    source: source.to_string(),
                    schema: schema.to_string(),
                })
            }
            _ => Err(self.err(
                format!("search_path[{i}]"),
                format!("expected \"source.schema\", found \"{entry}\""),
            )),
        }
    }

    fn string(&self, key: &str, value: &str) -> Result<String> {
        expand_env(value).map_err(|e| {
            let message = match e {
                EnvError::Unset(var) => {
                    format!("environment variable `{var}` is not set (it is used as ${{{var}}})")
                }
                EnvError::Unterminated => {
                    "`${` without a closing `}`: write ${NAME} for the environment variable NAME"
                        .to_string()
                }
                EnvError::Empty => "`${}` names no environment variable: write ${NAME}".to_string(),
            };
            self.err(key.to_string(), message)
        })
    }

    fn batch_size(&self, key: &str, value: Option<i64>, default: usize) -> Result<usize> {
        match value {
            None => Ok(default),
            Some(n) if n > 0 && n.unsigned_abs() <= spar_connectors::MAX_BATCH_SIZE as u64 => {
                Ok(usize::try_from(n).unwrap_or(spar_connectors::MAX_BATCH_SIZE))
            }
            Some(n) => Err(self.err(
                key.to_string(),
                format!(
                    "expected a number of rows from 1 to {}, found {n}",
                    spar_connectors::MAX_BATCH_SIZE
                ),
            )),
        }
    }

    fn source(&self, name: &str, raw: RawSource, base: &Path) -> Result<SourceConfig> {
        let key = |k: &str| format!("sources.{name}.{k}");
        let Some(kind) = raw.kind.as_deref() else {
            return Err(self.err(
                key("kind"),
                "missing; expected one of \"sqlite\", \"files\"".into(),
            ));
        };
        let forbid = |field: &str, present: bool| -> Result<()> {
            if present {
                Err(self.err(
                    key(field),
                    format!("not used by sources of kind \"{kind}\"; remove it"),
                ))
            } else {
                Ok(())
            }
        };
        match kind {
            "sqlite" => {
                forbid("location", raw.location.is_some())?;
                forbid("format", raw.format.is_some())?;
                forbid("s3", raw.s3.is_some())?;
                let Some(replicas) = raw.replicas.clone() else {
                    return Err(self.err(key("replicas"), "missing; expected a list of database file paths".into()));
                };
                let replicas = replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| Ok(base.join(self.string(&format!("{}[{i}]", key("replicas")), r)?)))
                    .collect::<Result<Vec<PathBuf>>>()?;
                let policy = match raw.policy.as_deref() {
                    None => Policy::PrimaryFirst,
                    Some(p) => p.parse().map_err(|m| self.err(key("policy"), m))?,
                };
                let batch_size = self.batch_size(&key("batch_size"), raw.batch_size, spar_connectors::sqlite::DEFAULT_BATCH_SIZE)?;
                let settings = self.replica_settings(name, &raw)?;
                Ok(SourceConfig::Sqlite(SqliteSourceConfig { replicas, policy, batch_size, settings }))
            }
            "files" => {
                forbid("policy", raw.policy.is_some())?;
                forbid("batch_size", raw.batch_size.is_some())?;
                for (field, present) in raw.replica_keys() {
                    forbid(field, present)?;
                }
                let place = |k: &str, location: &str| -> Result<String> {
                    let location = self.string(k, location)?;
                    Ok(if location.starts_with("s3://") {
                        location
                    } else {
                        base.join(location).display().to_string()
                    })
                };
                let (location, other_locations) = match (raw.location, raw.replicas) {
                    (Some(_), Some(_)) => {
                        return Err(self.err(key("replicas"), "give `location` (one) or `replicas` (several holding the same files), not both".into()));
                    }
                    (None, None) => {
                        return Err(self.err(key("location"), "missing; expected a directory, a file or s3://bucket/prefix/ (or `replicas`, a list of them)".into()));
                    }
                    (Some(location), None) => (place(&key("location"), &location)?, Vec::new()),
                    (None, Some(list)) => {
                        let mut list = list
                            .iter()
                            .enumerate()
                            .map(|(i, l)| place(&format!("{}[{i}]", key("replicas")), l))
                            .collect::<Result<Vec<_>>>()?;
                        if list.is_empty() {
                            return Err(self.err(key("replicas"), "expected at least one location".into()));
                        }
                        let first = list.remove(0);
                        (first, list)
                    }
                };
                let format = match raw.format.as_deref() {
                    Some("parquet") | None => FileFormatKind::Parquet,
                    Some("csv") => FileFormatKind::Csv,
                    Some("json") => FileFormatKind::Json,
                    Some(other) => {
                        return Err(self.err(key("format"), format!("expected one of \"parquet\", \"csv\", \"json\"; found \"{other}\"")))
                    }
                };
                let s3 = match raw.s3 {
                    None => S3Options::default(),
                    Some(s) => {
                        let opt = |field: &str, v: Option<String>| -> Result<Option<String>> {
                            v.map(|v| self.string(&format!("{}.{field}", key("s3")), &v)).transpose()
                        };
                        S3Options {
                            endpoint: opt("endpoint", s.endpoint)?,
                            region: opt("region", s.region)?,
                            access_key_id: opt("access_key_id", s.access_key_id)?,
                            secret_access_key: opt("secret_access_key", s.secret_access_key)?,
                            session_token: opt("session_token", s.session_token)?,
                            allow_http: s.allow_http,
                        }
                    }
                };
                Ok(SourceConfig::Files(FileSourceConfig { location, other_locations, format, s3 }))
            }
            "postgres" | "mysql" => {
                forbid("location", raw.location.is_some())?;
                forbid("format", raw.format.is_some())?;
                forbid("s3", raw.s3.is_some())?;
                let Some(replicas) = raw.replicas.clone() else {
                    return Err(self.err(key("replicas"), format!("missing; expected a list of {kind}:// URLs")));
                };
                let replicas = replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| self.string(&format!("{}[{i}]", key("replicas")), r))
                    .collect::<Result<Vec<String>>>()?;
                let policy = match raw.policy.as_deref() {
                    None => Policy::PrimaryFirst,
                    Some(p) => p.parse().map_err(|m| self.err(key("policy"), m))?,
                };
                let batch_size = self.batch_size(&key("batch_size"), raw.batch_size, spar_connectors::postgres::DEFAULT_BATCH_SIZE)?;
                let settings = self.replica_settings(name, &raw)?;
                let server = ServerSourceConfig { replicas, policy, batch_size, settings };
                Ok(if kind == "mysql" { SourceConfig::MySql(server) } else { SourceConfig::Postgres(server) })
            }
            "flightsql" => Err(self.err(
                key("kind"),
                format!("sources of kind \"{kind}\" are not available in this version of Spar; available: {KINDS}"),
            )),
            other => Err(self.err(key("kind"), format!("expected one of {KINDS}; found \"{other}\""))),
        }
    }
}

impl RawSource {
    /// The replica-set keys and whether each is present.
    fn replica_keys(&self) -> [(&'static str, bool); 12] {
        [
            ("max_staleness", self.max_staleness.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("first_batch_timeout", self.first_batch_timeout.is_some()),
            ("stall_timeout", self.stall_timeout.is_some()),
            ("retry_deadline", self.retry_deadline.is_some()),
            (
                "health_check_interval",
                self.health_check_interval.is_some(),
            ),
            ("circuit_failures", self.circuit_failures.is_some()),
            ("circuit_backoff", self.circuit_backoff.is_some()),
            ("resume_buffer", self.resume_buffer.is_some()),
            ("hedge_after", self.hedge_after.is_some()),
            ("resume", self.resume.is_some()),
            ("statistics_ttl", self.statistics_ttl.is_some()),
        ]
    }
}

impl Validator<'_> {
    /// A source's deadlines, health checks, circuit breaker, staleness
    /// and resume buffer; defaults where absent.
    fn replica_settings(&self, name: &str, raw: &RawSource) -> Result<ReplicaSettings> {
        let key = |k: &str| format!("sources.{name}.{k}");
        let d = ReplicaSettings::default();
        let duration = |k: &str, v: &Option<String>, default: std::time::Duration| match v {
            None => Ok(default),
            Some(v) => self.duration(&key(k), v),
        };
        let circuit_failures = match raw.circuit_failures {
            None => d.circuit_failures,
            Some(n) if (1..=1000).contains(&n) => u32::try_from(n).unwrap_or(d.circuit_failures),
            Some(n) => {
                return Err(self.err(
                    key("circuit_failures"),
                    format!("expected a number of consecutive failures from 1 to 1000, found {n}"),
                ))
            }
        };
        Ok(ReplicaSettings {
            connect_timeout: duration("connect_timeout", &raw.connect_timeout, d.connect_timeout)?,
            first_batch_timeout: duration(
                "first_batch_timeout",
                &raw.first_batch_timeout,
                d.first_batch_timeout,
            )?,
            stall_timeout: duration("stall_timeout", &raw.stall_timeout, d.stall_timeout)?,
            retry_deadline: duration("retry_deadline", &raw.retry_deadline, d.retry_deadline)?,
            health_check_interval: duration(
                "health_check_interval",
                &raw.health_check_interval,
                d.health_check_interval,
            )?,
            circuit_failures,
            circuit_backoff: duration("circuit_backoff", &raw.circuit_backoff, d.circuit_backoff)?,
            max_staleness: raw
                .max_staleness
                .as_ref()
                .map(|v| self.duration(&key("max_staleness"), v))
                .transpose()?,
            resume_buffer: match &raw.resume_buffer {
                None => d.resume_buffer,
                Some(v) => self.bytes(&key("resume_buffer"), v)?,
            },
            resume: raw
                .resume
                .as_ref()
                .map(|v| v.parse().map_err(|e| self.err(key("resume"), e)))
                .transpose()?
                .unwrap_or(d.resume),
            hedge_after: raw
                .hedge_after
                .as_ref()
                .map(|v| v.parse().map_err(|e| self.err(key("hedge_after"), e)))
                .transpose()?,
            statistics_ttl: duration("statistics_ttl", &raw.statistics_ttl, d.statistics_ttl)?,
        })
    }
}

/// Why `${...}` in a config string could not be expanded.
#[derive(Debug, PartialEq, Eq)]
enum EnvError {
    /// The variable is not set.
    Unset(String),
    /// `${` without `}`.
    Unterminated,
    /// `${}`.
    Empty,
}

/// Replaces each `${NAME}` by the environment variable `NAME`.
fn expand_env(value: &str) -> std::result::Result<String, EnvError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(EnvError::Unterminated)?;
        let name = &after[..end];
        if name.is_empty() {
            return Err(EnvError::Empty);
        }
        out.push_str(&std::env::var(name).map_err(|_| EnvError::Unset(name.to_string()))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The longest duration a setting accepts (longer ones overflow clocks).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// The most concurrent queries a limit may allow.
const MAX_CONCURRENCY: usize = 1_000_000;

/// `"512MiB"`, `"2 GB"`, `"1048576"`: bytes, or `None` when malformed or 0.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(scale).filter(|b| *b > 0)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The key named in a TOML/serde message such as "unknown field `polcy`".
fn key_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

pub(crate) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests;
