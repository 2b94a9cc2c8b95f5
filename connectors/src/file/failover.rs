//! Several locations holding the same files, read as one object store.
//!
//! A file source with more than one location reads through a
//! [`FailoverStore`]: every read goes to the first location that answers,
//! in order, passing over for a while (a back-off doubling from one second
//! to a minute) a location that just failed; a location that failed is
//! still tried when every other fails too, so a read never fails on that
//! state alone. A download that fails midway continues from the next byte
//! on the next location, which must hold a file of the same size. The
//! store is read-only: writes are refused.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The first back-off of a location that failed; it doubles up to
/// [`MAX_BACKOFF`] while it keeps failing.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One location: its store, the prefix its files are under, and how it
/// is doing.
#[derive(Debug)]
pub(crate) struct Location {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    /// As users wrote it, for messages.
    pub(crate) target: String,
    /// The directory of a local location.
    local_root: Option<std::path::PathBuf>,
    state: Mutex<LocationState>,
}

#[derive(Debug, Default)]
struct LocationState {
    /// Passed over until then.
    down_until: Option<Instant>,
    /// Consecutive failures (the back-off's exponent).
    failures: u32,
}

impl Location {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        target: String,
        local_root: Option<std::path::PathBuf>,
    ) -> Self {
        Self {
            store,
            prefix,
            target,
            local_root,
            state: Mutex::new(LocationState::default()),
        }
    }

    fn is_down(&self, now: Instant) -> bool {
        self.state
            .lock()
            .map(|s| s.down_until.is_some_and(|t| now < t))
            .unwrap_or(false)
    }

    fn failed(&self) {
        if let Ok(mut s) = self.state.lock() {
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << s.failures.min(6))
                .min(MAX_BACKOFF);
            s.down_until = Some(Instant::now() + backoff);
            s.failures = s.failures.saturating_add(1);
        }
    }

    fn succeeded(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.down_until = None;
            s.failures = 0;
        }
    }

    /// A local location must exist: an empty listing of a missing (say,
    /// unmounted) directory is no answer.
    fn check(&self) -> Result<()> {
        match &self.local_root {
            Some(root) if !root.is_dir() => Err(object_store::Error::NotFound {
                path: root.display().to_string(),
                source: "no such directory".into(),
            }),
            _ => Ok(()),
        }
    }

    /// `path` (relative to the store's root) under this location.
    fn full(&self, path: &Path) -> Path {
        Path::from_iter(self.prefix.parts().chain(path.parts()))
    }

    /// `path` under this location, relative again to the store's root.
    fn relative(&self, path: &Path) -> Path {
        match path.prefix_match(&self.prefix) {
            Some(rest) => Path::from_iter(rest),
            None => path.clone(),
        }
    }
}

/// The locations of one file source, read as one store. Cheap to clone;
/// clones share the locations' state.
#[derive(Debug, Clone)]
pub struct FailoverStore {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    locations: Vec<Location>,
    /// Reads that failed on one location and moved to the next.
    failovers: AtomicU64,
}

impl fmt::Display for FailoverStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailoverStore({})", self.inner.name)
    }
}

impl FailoverStore {
    pub(crate) fn new(name: String, locations: Vec<Location>) -> Self {
        Self {
            inner: Arc::new(Shared {
                name,
                locations,
                failovers: AtomicU64::new(0),
            }),
        }
    }

    /// Reads that failed on a location and moved on to the next.
    pub fn failovers(&self) -> u64 {
        self.inner.failovers.load(Ordering::Relaxed)
    }
}

impl Shared {
    /// The locations in the order to try them: those not passed over
    /// first, then the others.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let (up, down): (Vec<usize>, Vec<usize>) =
            (0..self.locations.len()).partition(|&i| !self.locations[i].is_down(now));
        up.into_iter().chain(down).collect()
    }

    /// Runs `call` on each location in turn until one succeeds; the error
    /// names every location when none does.
    async fn first_that_answers<'a, T, F, Fut>(&'a self, call: F) -> Result<(usize, T)>
    where
        F: Fn(&'a Location) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut errors = Vec::new();
        let order = self.order();
        for (n, &i) in order.iter().enumerate() {
            let location = &self.locations[i];
            let result = match location.check() {
                Ok(()) => call(location).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(value) => {
                    location.succeeded();
                    return Ok((i, value));
                }
                Err(e) => {
                    tracing::warn!(store = %self.name, location = %location.target, error = %e, "file location failed; trying the next");
                    location.failed();
                    if n + 1 < order.len() {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                    errors.push(format!("{}: {e}", location.target));
                }
            }
        }
        Err(object_store::Error::Generic {
            store: "files",
            source: format!(
                "no location of `{}` answered: {}",
                self.name,
                errors.join("; ")
            )
            .into(),
        })
    }
}

#[async_trait]
impl ObjectStore for FailoverStore {
    async fn put_opts(&self, location: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(read_only(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only(location))
    }

    async fn get_opts(&self, path: &Path, options: GetOptions) -> Result<GetResult> {
        let (i, result) = self
            .inner
            .first_that_answers(|l| {
                let full = l.full(path);
                let options = options.clone();
                async move { l.store.get_opts(&full, options).await }
            })
            .await?;
        let location = &self.inner.locations[i];
        let meta = ObjectMeta {
            location: location.relative(&result.meta.location),
            ..result.meta.clone()
        };
        if options.head {
            return Ok(GetResult { meta, ..result });
        }
        let range = result.range.clone();
        let attributes = result.attributes.clone();
        let size = result.meta.size;
        let first = result.into_stream();
        let locations = self
            .inner
            .locations
            .iter()
            .map(|l| (Arc::clone(&l.store), l.full(path), l.target.clone()))
            .collect();
        let read = Read {
            name: path.to_string(),
            range: range.clone(),
            size,
            serving: i,
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(resuming(first, read, locations)),
            meta,
            range,
            attributes,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations.map(|path| Err(read_only(&path?))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let prefix = prefix.cloned();
        let store = self.clone();
        futures::stream::once(async move {
            let (i, objects) = store
                .inner
                .first_that_answers(|l| {
                    let full = l.full(prefix.as_ref().unwrap_or(&Path::default()));
                    async move { l.store.list(Some(&full)).try_collect::<Vec<_>>().await }
                })
                .await?;
            let location = &store.inner.locations[i];
            let objects: Vec<Result<ObjectMeta>> = objects
                .into_iter()
                .map(|o| {
                    Ok(ObjectMeta {
                        location: location.relative(&o.location),
                        ..o
                    })
                })
                .collect();
            Ok::<_, object_store::Error>(futures::stream::iter(objects))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let (i, listing) = self
            .inner
            .first_that_answers(|l| {
                let full = l.full(prefix.unwrap_or(&Path::default()));
                async move { l.store.list_with_delimiter(Some(&full)).await }
            })
            .await?;
        let location = &self.inner.locations[i];
        Ok(ListResult {
            common_prefixes: listing
                .common_prefixes
                .iter()
                .map(|p| location.relative(p))
                .collect(),
            objects: listing
                .objects
                .into_iter()
                .map(|o| ObjectMeta {
                    location: location.relative(&o.location),
                    ..o
                })
                .collect(),
        })
    }

    async fn copy_opts(&self, _from: &Path, to: &Path, _: CopyOptions) -> Result<()> {
        Err(read_only(to))
    }
}

fn read_only(path: &Path) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("file sources are read-only: cannot write `{path}`").into(),
    }
}

/// One read: the file (relative to the store), the bytes asked for, the
/// file's size, and the location that serves it first.
struct Read {
    name: String,
    range: Range<u64>,
    size: u64,
    serving: usize,
}

/// The bytes of `read`, starting with `first` (from the location serving
/// it); after a failure, the rest from each other location in turn.
fn resuming(
    first: BoxStream<'static, Result<Bytes>>,
    read: Read,
    locations: Vec<(Arc<dyn ObjectStore>, Path, String)>,
) -> BoxStream<'static, Result<Bytes>> {
    struct State {
        current: BoxStream<'static, Result<Bytes>>,
        next_byte: u64,
        end: u64,
        size: u64,
        /// Locations not yet tried for this read.
        untried: Vec<usize>,
        locations: Vec<(Arc<dyn ObjectStore>, Path, String)>,
        errors: Vec<String>,
        name: String,
        done: bool,
    }
    let untried = (0..locations.len())
        .filter(|&i| i != read.serving)
        .collect();
    let state = State {
        current: first,
        next_byte: read.range.start,
        end: read.range.end,
        size: read.size,
        name: read.name,
        untried,
        errors: Vec::new(),
        locations,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            match s.current.next().await {
                Some(Ok(bytes)) => {
                    s.next_byte += bytes.len() as u64;
                    return Some((Ok(bytes), s));
                }
                None => return None,
                Some(Err(e)) => {
                    s.errors.push(e.to_string());
                    // The rest, from the next location with the same file.
                    let mut resumed = None;
                    while let Some(i) = (!s.untried.is_empty()).then(|| s.untried.remove(0)) {
                        let (store, path, target) = &s.locations[i];
                        let options = GetOptions {
                            range: Some(GetRange::Bounded(s.next_byte..s.end)),
                            ..GetOptions::default()
                        };
                        match store.get_opts(path, options).await {
                            Ok(r) if r.meta.size == s.size => {
                                tracing::warn!(location = %target, from = s.next_byte, "file read failed midway; continuing on another location");
                                resumed = Some(r.into_stream());
                                break;
                            }
                            Ok(r) => s.errors.push(format!(
                                "{target}: the file has {} bytes, not {}: the locations do not hold the same files",
                                r.meta.size, s.size
                            )),
                            Err(e) => s.errors.push(format!("{target}: {e}")),
                        }
                    }
                    match resumed {
                        Some(stream) => s.current = stream,
                        None => {
                            s.done = true;
                            let error = object_store::Error::Generic {
                                store: "files",
                                source: format!(
                                    "reading `{}` failed at byte {} and no other location could continue: {}",
                                    s.name,
                                    s.next_byte,
                                    s.errors.join("; ")
                                )
                                .into(),
                            };
                            return Some((Err(error), s));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    fn read_of(size: u64) -> Read {
        Read {
            name: "t/f.parquet".into(),
            range: 0..size,
            size,
            serving: 0,
        }
    }

    fn bytes_of(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    async fn store_with(path: &str, data: &[u8]) -> Arc<dyn ObjectStore> {
        let store = InMemory::new();
        store
            .put(&Path::from(path), PutPayload::from(data.to_vec()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(store)
    }

    #[tokio::test]
    async fn a_read_that_fails_midway_continues_on_the_next_location() {
        let data = bytes_of(10_000);
        let second = store_with("copy/t/f.parquet", &data).await;
        // The first location sends 3,000 bytes, then fails.
        let head = Bytes::from(data[..3_000].to_vec());
        let first: BoxStream<'static, Result<Bytes>> = futures::stream::iter(vec![
            Ok(head),
            Err(object_store::Error::Generic {
                store: "test",
                source: "connection reset".into(),
            }),
        ])
        .boxed();
        let locations = vec![
            (
                Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
                Path::from("a/t/f.parquet"),
                "a".to_string(),
            ),
            (second, Path::from("copy/t/f.parquet"), "b".to_string()),
        ];
        let read: Vec<Bytes> = resuming(first, read_of(10_000), locations)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let read: Vec<u8> = read.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(read, data);
    }

    #[tokio::test]
    async fn a_copy_of_another_size_is_not_used_to_continue() {
        let data = bytes_of(10_000);
        let other = store_with("b/f", &bytes_of(9_000)).await;
        let first: BoxStream<'static, Result<Bytes>> = futures::stream::iter(vec![
            Ok(Bytes::from(data[..100].to_vec())),
            Err(object_store::Error::Generic {
                store: "test",
                source: "reset".into(),
            }),
        ])
        .boxed();
        let locations = vec![
            (
                Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
                Path::from("a/f"),
                "a".to_string(),
            ),
            (other, Path::from("b/f"), "b".to_string()),
        ];
        let e = resuming(first, read_of(10_000), locations)
            .try_collect::<Vec<_>>()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("do not hold the same files") && e.contains("reset"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn reads_and_listings_pass_over_a_location_that_fails() {
        let data = bytes_of(5_000);
        let good = store_with("copy/orders/part-0.parquet", &data).await;
        let store = FailoverStore::new(
            "test".into(),
            vec![
                // A local directory that is gone: every call fails.
                Location::new(
                    Arc::new(InMemory::new()),
                    Path::from("gone"),
                    "gone".into(),
                    Some(std::path::PathBuf::from("/nonexistent/spar/gone")),
                ),
                Location::new(good, Path::from("copy"), "copy".into(), None),
            ],
        );
        let listing = store
            .list_with_delimiter(None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listing.common_prefixes, [Path::from("orders")]);
        let listed: Vec<ObjectMeta> = store
            .list(None)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, Path::from("orders/part-0.parquet"));
        let path = Path::from("orders/part-0.parquet");
        let got = store
            .get(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.as_ref(), data.as_slice());
        let meta = store.head(&path).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.location, path);
        // The failed location is passed over for its back-off after the
        // first failure: only that one moved on.
        assert_eq!(store.failovers(), 1);
        let ranged = store
            .get_range(&path, 100..200)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ranged.as_ref(), &data[100..200]);
        assert!(store.put(&path, PutPayload::from(vec![1u8])).await.is_err());
    }
}
