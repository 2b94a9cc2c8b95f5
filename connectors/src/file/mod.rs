//! File sources: Parquet, CSV and JSON through DataFusion listing tables
//! over object_store, on local paths or `s3://`.
//!
//! Each file directly under the location is one table named after the file
//! (without its extension); each directory under it is one table made of
//! all the files inside it with the format's extension. A location that is
//! a single file is one table. Projection, filters (Parquet row-group and
//! page pruning) and limits are DataFusion's own.
//!
//! A source may have several locations holding the same files (two
//! folders, a folder and a bucket): it reads them through a
//! [`failover::FailoverStore`], which moves a read that fails to the next
//! location.

pub mod failover;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, RetryConfig};
use url::Url;

use crate::error::{ConnectorError, Result};

/// The format of a file source's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormatKind {
    /// Apache Parquet (`.parquet`).
    Parquet,
    /// CSV with a header line (`.csv`).
    Csv,
    /// Newline-delimited JSON (`.json`).
    Json,
}

impl FileFormatKind {
    /// The file extension, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
            Self::Json => ".json",
        }
    }

    fn format(self) -> Arc<dyn FileFormat> {
        match self {
            Self::Parquet => Arc::new(ParquetFormat::default()),
            Self::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
            Self::Json => Arc::new(JsonFormat::default()),
        }
    }
}

impl fmt::Display for FileFormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.extension()[1..])
    }
}

/// Settings for `s3://` locations. Anything left `None` comes from the
/// standard `AWS_*` environment variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// A custom endpoint (MinIO, Ceph, LocalStack), e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key (never printed).
    pub secret_access_key: Option<String>,
    /// A session token (never printed).
    pub session_token: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "***");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// A file source: where its files are and how to read them.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// One or more locations holding the same files; the first is read
    /// first.
    locations: Vec<Location>,
    format: FileFormatKind,
}

/// Tells the failover stores of different sources apart in the runtime's
/// object store registry.
static NEXT_STORE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Debug, Clone)]
enum Location {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        options: S3Options,
    },
}

/// One table found under a file source's location.
#[derive(Debug)]
pub struct FileTable {
    /// The table's name (the file or directory name, without extension).
    pub name: String,
    /// The listing table that reads it.
    pub provider: Arc<dyn TableProvider>,
}

impl FileSource {
    /// A file source at `location`: a local path (absolute, or relative to
    /// the working directory) or an `s3://bucket/prefix/` URL.
    pub fn new(location: &str, format: FileFormatKind, s3: S3Options) -> Result<Self> {
        Self::with_locations(&[location], format, s3)
    }

    /// A file source whose files are at each of `locations` alike (local
    /// directories or `s3://` prefixes; with one location, also a single
    /// file). Reads go to the first that answers.
    pub fn with_locations<S: AsRef<str>>(
        locations: &[S],
        format: FileFormatKind,
        s3: S3Options,
    ) -> Result<Self> {
        if locations.is_empty() {
            return Err(ConnectorError::Config {
                target: "files".into(),
                message: "expected at least one location".into(),
            });
        }
        let locations = locations
            .iter()
            .map(|l| Self::location(l.as_ref(), &s3))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { locations, format })
    }

    fn location(location: &str, s3: &S3Options) -> Result<Location> {
        let location = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ConnectorError::Config {
                    target: location.to_string(),
                    message: "expected s3://BUCKET/PREFIX".into(),
                });
            }
            Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
                options: s3.clone(),
            }
        } else if location.contains("://") {
            return Err(ConnectorError::Config {
                target: location.to_string(),
                message: "expected a local path or an s3:// URL".into(),
            });
        } else {
            let path = std::path::absolute(location).map_err(|e| ConnectorError::Config {
                target: location.to_string(),
                message: e.to_string(),
            })?;
            Location::Local(path)
        };
        Ok(location)
    }

    /// The first location as users wrote it (an absolute path or an
    /// `s3://` URL).
    pub fn target(&self) -> String {
        self.locations
            .first()
            .map(Location::target)
            .unwrap_or_default()
    }

    /// Every location, as users wrote them.
    pub fn targets(&self) -> Vec<String> {
        self.locations.iter().map(Location::target).collect()
    }

    /// Finds the tables under the location and builds a listing table for
    /// each, registering the object store with `session`'s runtime.
    pub async fn discover(&self, session: &dyn Session) -> Result<Vec<FileTable>> {
        match self.locations.as_slice() {
            [one] => self.discover_at(one, session).await,
            _ => self.discover_replicated(session).await,
        }
    }

    /// Discovery over several locations, through one failover store.
    async fn discover_replicated(&self, session: &dyn Session) -> Result<Vec<FileTable>> {
        let targets = self.targets().join(", ");
        let mut places = Vec::new();
        for location in &self.locations {
            let target = location.target();
            let (store, prefix, local_root) = match location {
                Location::Local(path) => {
                    if path.is_file() {
                        return Err(ConnectorError::Config {
                            target,
                            message: "a file source with several locations reads directories (or s3:// prefixes), each holding the same files; this is a file".into(),
                        });
                    }
                    // A directory missing now (unmounted) may come back: the
                    // store passes over it while it is missing.
                    let prefix = StorePath::from_absolute_path(path).map_err(|e| {
                        ConnectorError::Config {
                            target: target.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    (
                        Arc::new(LocalFileSystem::new()) as Arc<dyn ObjectStore>,
                        prefix,
                        Some(path.clone()),
                    )
                }
                Location::S3 {
                    bucket,
                    prefix,
                    options,
                } => (
                    s3_store(bucket, options, &target)?,
                    StorePath::from(prefix.as_str()),
                    None,
                ),
            };
            places.push(failover::Location::new(store, prefix, target, local_root));
        }
        let store = failover::FailoverStore::new(targets.clone(), places);
        let id = NEXT_STORE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base_url = format!("sparfiles://store{id}/");
        let url = Url::parse(&base_url).map_err(|e| ConnectorError::Config {
            target: targets.clone(),
            message: e.to_string(),
        })?;
        session
            .runtime_env()
            .register_object_store(&url, Arc::new(store.clone()));
        let listing =
            store
                .list_with_delimiter(None)
                .await
                .map_err(|e| ConnectorError::Unavailable {
                    target: targets.clone(),
                    message: e.to_string(),
                })?;
        self.tables_of(session, &listing, &base_url).await
    }

    /// Discovery at one location.
    async fn discover_at(
        &self,
        location: &Location,
        session: &dyn Session,
    ) -> Result<Vec<FileTable>> {
        let target = location.target();
        let unavailable = |message: String| ConnectorError::Unavailable {
            target: target.clone(),
            message,
        };
        let (store, base_url, prefix): (Arc<dyn ObjectStore>, String, StorePath) = match location {
            Location::Local(path) => {
                if !path.exists() {
                    return Err(unavailable(format!(
                        "no such file or directory `{}`; check `location` in the config",
                        path.display()
                    )));
                }
                if path.is_file() {
                    let name = table_name(
                        path.file_name().and_then(|n| n.to_str()).unwrap_or("table"),
                        self.format,
                    );
                    let provider = self
                        .listing_table(session, &path.display().to_string())
                        .await?;
                    return Ok(vec![FileTable { name, provider }]);
                }
                let prefix =
                    StorePath::from_absolute_path(path).map_err(|e| unavailable(e.to_string()))?;
                (
                    Arc::new(LocalFileSystem::new()),
                    "file:///".to_string(),
                    prefix,
                )
            }
            Location::S3 {
                bucket,
                prefix,
                options,
            } => {
                let store = s3_store(bucket, options, &target)?;
                let url =
                    Url::parse(&format!("s3://{bucket}")).map_err(|e| ConnectorError::Config {
                        target: target.clone(),
                        message: e.to_string(),
                    })?;
                session
                    .runtime_env()
                    .register_object_store(&url, Arc::clone(&store));
                (
                    store,
                    format!("s3://{bucket}/"),
                    StorePath::from(prefix.as_str()),
                )
            }
        };
        let listing = store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        self.tables_of(session, &listing, &base_url).await
    }

    /// A table for each directory of `listing` and each file of the
    /// format's extension, under `base_url`.
    async fn tables_of(
        &self,
        session: &dyn Session,
        listing: &object_store::ListResult,
        base_url: &str,
    ) -> Result<Vec<FileTable>> {
        let mut tables = Vec::new();
        for dir in &listing.common_prefixes {
            let Some(name) = dir.filename() else { continue };
            let url = format!("{base_url}{dir}/");
            tables.push(FileTable {
                name: name.to_string(),
                provider: self.listing_table(session, &url).await?,
            });
        }
        for object in &listing.objects {
            let Some(file) = object.location.filename() else {
                continue;
            };
            if !file.ends_with(self.format.extension()) {
                continue;
            }
            let url = format!("{base_url}{}", object.location);
            tables.push(FileTable {
                name: table_name(file, self.format),
                provider: self.listing_table(session, &url).await?,
            });
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tables)
    }

    async fn listing_table(
        &self,
        session: &dyn Session,
        url: &str,
    ) -> Result<Arc<dyn TableProvider>> {
        let table_url = ListingTableUrl::parse(url)?;
        let options =
            ListingOptions::new(self.format.format()).with_file_extension(self.format.extension());
        let schema = options
            .infer_schema(session, &table_url)
            .await
            .map_err(|e| ConnectorError::Unavailable {
                target: url.to_string(),
                message: format!("cannot read {} files: {e}", self.format),
            })?;
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

impl Location {
    /// As users wrote it (an absolute path or an `s3://` URL).
    fn target(&self) -> String {
        match self {
            Self::Local(p) => p.display().to_string(),
            Self::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// The object store of an `s3://` location's bucket.
fn s3_store(bucket: &str, options: &S3Options, target: &str) -> Result<Arc<dyn ObjectStore>> {
    // A wrong endpoint should fail start-up in seconds, not after
    // object_store's default three minutes of retries.
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(options.allow_http)
        .with_retry(retry);
    if let Some(v) = &options.endpoint {
        builder = builder.with_endpoint(v);
    }
    if let Some(v) = &options.region {
        builder = builder.with_region(v);
    }
    if let Some(v) = &options.access_key_id {
        builder = builder.with_access_key_id(v);
    }
    if let Some(v) = &options.secret_access_key {
        builder = builder.with_secret_access_key(v);
    }
    if let Some(v) = &options.session_token {
        builder = builder.with_token(v);
    }
    let store = builder.build().map_err(|e| ConnectorError::Config {
        target: target.to_string(),
        message: e.to_string(),
    })?;
    Ok(Arc::new(store))
}

fn table_name(file: &str, format: FileFormatKind) -> String {
    file.strip_suffix(format.extension())
        .unwrap_or(file)
        .to_string()
}
