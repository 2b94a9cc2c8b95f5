//! `spar serve`: the Arrow Flight SQL endpoint.
//!
//! ```text
//!  client ──gRPC (TLS)──► AuthLayer ──► SparFlightSql ──► Session (user's grants, memory pool)
//!                         token → user    │ GetFlightInfo: plan, ticket
//!                                         │ DoGet: admit (limits), stream batches
//!                                         ▼
//!                              Metrics (/metrics), Running (cancel, shutdown)
//! ```
//!
//! - [`auth`]: handshake, tokens, the layer that checks them.
//! - [`ipc`]: Arrow IPC from clients, checked before it is decoded; the
//!   parameter row of a prepared statement.
//! - [`throttle`]: back-off after failed logins, per user and address.
//! - [`service`]: the `FlightSqlService`: statements, prepared statements,
//!   metadata, cancellation.
//! - [`metadata`]: what the metadata commands return.
//! - [`limits`]: concurrency, timeout, row cap; running queries.
//! - [`status`]: errors to gRPC status codes, in one place.
//! - [`ticket`]: statement tickets, sealed so that only this server's own
//!   bytes are ever decoded.

pub(crate) mod auth;
pub(crate) mod ipc;
pub(crate) mod limits;
pub(crate) mod metadata;
pub mod service;
pub(crate) mod status;
pub(crate) mod throttle;
pub(crate) mod ticket;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use futures::FutureExt;
use spar_engine::{Config, Engine};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use auth::hash_password;
pub use service::SparFlightSql;

use crate::error::CliError;
use crate::metrics::Metrics;

/// Refuses to serve `/metrics` on an address that is not loopback without
/// a token: anyone who reaches it would read the server's metrics.
fn metrics_exposure(addr: std::net::SocketAddr, has_token: bool) -> Result<(), CliError> {
    if addr.ip().is_loopback() || has_token {
        return Ok(());
    }
    Err(CliError::Serve(format!(
        "server.metrics listens on {addr}, which is not a loopback address, and /metrics would be open to anyone who reaches it; \
         set server.metrics_token, or listen on 127.0.0.1"
    )))
}

/// After the grace period, cancelled queries get this long to wind down
/// before the server stops waiting for them.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Runs the Flight SQL server (and, with `metrics_listener`, the HTTP
/// metrics endpoint) until `shutdown` resolves; then stops accepting
/// calls, lets running queries finish within `server.shutdown_grace`, and
/// cancels those still running.
pub async fn run(
    engine: Engine,
    config: &Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let server_config = &config.server;
    let auth =
        Arc::new(auth::Authenticator::new(server_config, &config.users).map_err(CliError::Serve)?);
    let metrics = Arc::new(Metrics::new(engine.clone()));
    let running = Arc::new(limits::Running::default());
    let service = SparFlightSql::new(
        engine,
        Arc::clone(&auth),
        limits::Admission::new(server_config.limits.clone()),
        Arc::clone(&running),
        Arc::clone(&metrics),
    )
    .map_err(CliError::Serve)?;

    let mut builder = Server::builder();
    if let Some(tls) = &server_config.tls {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                CliError::Serve(format!(
                    "cannot read the TLS {what} `{}` (server.tls): {e}",
                    path.display()
                ))
            })
        };
        let mut tls_config = ServerTlsConfig::new().identity(Identity::from_pem(
            read(&tls.cert, "certificate")?,
            read(&tls.key, "key")?,
        ));
        if let Some(ca) = &tls.client_ca {
            tls_config = tls_config.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
        }
        builder = builder
            .tls_config(tls_config)
            .map_err(|e| CliError::Serve(format!("invalid TLS settings (server.tls): {e}")))?;
    }

    let shutdown = shutdown.shared();
    if let Some(listener) = metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            metrics_exposure(addr, server_config.metrics_token.is_some())?;
        }
        let metrics = Arc::clone(&metrics);
        let stop = shutdown.clone();
        let token = server_config.metrics_token.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve_http(listener, metrics, token, stop).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }

    let grace = server_config.shutdown_grace;
    let canceller = {
        let running = Arc::clone(&running);
        let stop = shutdown.clone();
        async move {
            stop.await;
            tracing::info!(
                running = running.len(),
                "shutting down: no new calls; running queries have {grace:?} to finish"
            );
            tokio::time::sleep(grace).await;
            if running.len() > 0 {
                tracing::warn!(
                    running = running.len(),
                    "grace period over: cancelling running queries"
                );
            }
            running.cancel_all();
            tokio::time::sleep(CANCEL_WAIT).await;
        }
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve = builder
        .layer(auth::AuthLayer { auth })
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::select! {
        result = serve => result.map_err(|e| CliError::Serve(format!("the Flight SQL server failed: {e}"))),
        () = canceller => {
            tracing::warn!("connections still open after the grace period; stopping");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_off_loopback_need_a_token() {
        let parse = |a: &str| {
            a.parse::<std::net::SocketAddr>()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(metrics_exposure(parse("127.0.0.1:9187"), false).is_ok());
        assert!(metrics_exposure(parse("[::1]:9187"), false).is_ok());
        let open = metrics_exposure(parse("0.0.0.0:9187"), false).map_err(|e| e.to_string());
        assert!(open.is_err_and(|e| e.contains("set server.metrics_token")));
        assert!(metrics_exposure(parse("0.0.0.0:9187"), true).is_ok());
    }
}
