//! Metrics (Prometheus text format) and the HTTP endpoint that serves
//! them: `GET /metrics`, `GET /health`.
//!
//! Query metrics are recorded by the Flight SQL server as queries end;
//! source metrics (fragments, failovers, replica health) are read from the
//! engine's replica sets at each scrape.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use spar_engine::Engine;
use tonic::Code;

type Labels = Vec<(String, String)>;
/// Reads one counter of a source's replica set.
type StatOf = fn(&spar_engine::ReplicaSetStats) -> u64;

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// All rows delivered.
    Ok,
    /// Failed with an error (the code is counted separately).
    Error(Code),
    /// Cancelled by the client, a cancel request, or shutdown.
    Cancelled,
}

impl Outcome {
    pub(crate) fn from_code(code: Code) -> Self {
        if code == Code::Cancelled {
            Self::Cancelled
        } else {
            Self::Error(code)
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error(_) => "error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queries: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Histogram,
    running: Gauge,
    rows_out: Counter,
    bytes_out: Counter,
}

impl Metrics {
    /// Metrics for a server over `engine` (whose sources are read at each
    /// scrape).
    pub fn new(engine: Engine) -> Self {
        let mut registry = Registry::default();
        let queries = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        // 1 ms to ~9 minutes.
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        let running = Gauge::default();
        let rows_out = Counter::default();
        let bytes_out = Counter::default();
        registry.register(
            "spar_queries",
            "Queries finished, by outcome (ok, error, cancelled)",
            queries.clone(),
        );
        registry.register(
            "spar_query_errors",
            "Queries that failed, by gRPC status code",
            errors.clone(),
        );
        registry.register(
            "spar_query_duration_seconds",
            "Time from a query's start to its last row or error",
            latency.clone(),
        );
        registry.register(
            "spar_queries_running",
            "Queries running now",
            running.clone(),
        );
        registry.register(
            "spar_rows_out",
            "Rows sent to Flight SQL clients",
            rows_out.clone(),
        );
        registry.register(
            "spar_bytes_out",
            "Bytes of Arrow data sent to Flight SQL clients",
            bytes_out.clone(),
        );
        registry.register_collector(Box::new(SourceCollector { engine }));
        Self {
            registry,
            queries,
            errors,
            latency,
            running,
            rows_out,
            bytes_out,
        }
    }

    pub(crate) fn query_started(&self) {
        self.running.inc();
    }

    pub(crate) fn query_finished(&self, outcome: Outcome, took: Duration, rows: u64, bytes: u64) {
        self.running.dec();
        self.queries
            .get_or_create(&vec![("outcome".into(), outcome.label().into())])
            .inc();
        if let Outcome::Error(code) = outcome {
            self.query_failed_early(code);
        }
        self.latency.observe(took.as_secs_f64());
        self.rows_out.inc_by(rows);
        self.bytes_out.inc_by(bytes);
    }

    /// A query refused or failed before it started streaming.
    pub(crate) fn query_failed_early(&self, code: Code) {
        self.errors
            .get_or_create(&vec![("code".into(), format!("{code:?}"))])
            .inc();
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Per-source metrics, read from the engine's replica sets.
#[derive(Debug)]
struct SourceCollector {
    engine: Engine,
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<_> = self
            .engine
            .sources()
            .into_iter()
            .filter_map(|s| s.replica_set.map(|r| (s.name, r.stats())))
            .collect();
        let counters: [(&str, &str, StatOf); 8] = [
            ("spar_fragments", "Fragments run, by source", |s| s.fragments),
            (
                "spar_fragment_attempts",
                "Attempts to open a fragment on a replica, by source",
                |s| s.attempts,
            ),
            (
                "spar_fragment_resumes",
                "Fragments continued on another replica after rows were delivered, by source",
                |s| s.resumes,
            ),
            (
                "spar_fragment_failovers",
                "Fragment attempts that failed on a replica with a retryable error and moved on, by source",
                |s| s.failovers,
            ),
            (
                "spar_fragment_errors",
                "Fragments that failed on every replica or with an error no replica would fix, by source",
                |s| s.failed,
            ),
            (
                "spar_fragment_hedges",
                "Second attempts started because a fragment had no first batch after hedge_after, by source",
                |s| s.hedges,
            ),
            (
                "spar_fragment_hedges_won",
                "Fragments served by their hedge (it delivered first), by source",
                |s| s.hedges_won,
            ),
            (
                "spar_fragment_hedges_lost",
                "Hedges cancelled because the attempt they hedged delivered first, by source",
                |s| s.hedges_lost,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (source, s) in &stats {
                let labels: Labels = vec![("source".into(), source.clone())];
                ConstCounter::new(value(s)).encode(family.encode_family(&labels)?)?;
            }
        }
        let up = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "spar_replica_up",
            "1 when the replica takes fragments (circuit closed, not lagging), 0 otherwise",
            None,
            up.metric_type(),
        )?;
        for (source, s) in &stats {
            for replica in &s.replicas {
                let labels = replica_labels(source, &replica.target);
                let up = i64::from(replica.state == "healthy");
                ConstGauge::new(up).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "spar_replica_first_batch_seconds",
            "Time from sending a fragment to its first batch (or its end), by replica",
            None,
            MetricType::Histogram,
        )?;
        for (source, s) in &stats {
            for replica in &s.replicas {
                let labels = replica_labels(source, &replica.target);
                FixedHistogram(&replica.first_batch).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The labels of one replica's series.
fn replica_labels(source: &str, replica: &str) -> Labels {
    vec![
        ("source".into(), source.to_string()),
        ("replica".into(), replica.to_string()),
    ]
}

/// A histogram read from the engine at scrape time.
struct FixedHistogram<'a>(&'a spar_engine::replica::HistogramSnapshot);

impl EncodeMetric for FixedHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum, self.0.count, &self.0.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Serves `/metrics` and `/health` on `listener` until `shutdown` resolves.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    token: Option<spar_engine::MetricsToken>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let for_metrics = std::sync::Arc::clone(&metrics);
    let expected = token.map(|t| format!("Bearer {}", t.0));
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let m = std::sync::Arc::clone(&for_metrics);
                let authorized = match &expected {
                    None => true,
                    Some(expected) => headers
                        .get(header::AUTHORIZATION)
                        .is_some_and(|v| constant_time_eq(v.as_bytes(), expected.as_bytes())),
                };
                async move {
                    if !authorized {
                        return (
                            StatusCode::UNAUTHORIZED,
                            "send `authorization: Bearer <server.metrics_token>`\n",
                        )
                            .into_response();
                    }
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/health", get(|| async { (StatusCode::OK, "ok\n") }))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, "try /metrics or /health\n").into_response()
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether `a` equals `b`, in a time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
