//! A Flight SQL client for `spar shell --connect`: handshake with user and
//! password, then statements whose results stream back as record batches.

use std::path::Path;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, HandshakeRequest};
use base64::Engine as _;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::error::CliError;

/// A connection to a Flight SQL server (Spar's or another).
#[derive(Clone)]
pub struct Remote {
    client: FlightServiceClient<Channel>,
    /// The bearer token from the handshake (none for anonymous access).
    token: Option<String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

/// A status as the shell shows it: the server's message.
fn remote_error(status: &Status) -> CliError {
    CliError::Remote {
        code: status.code(),
        message: status.message().to_string(),
    }
}

impl Remote {
    /// Connects to `url` (`grpc://host:port` or `grpc+tls://host:port`) and,
    /// with a user, authenticates with the handshake. `ca` is a PEM file of
    /// the CA that signed the server's certificate (default: the system's
    /// roots).
    pub async fn connect(
        url: &str,
        user: Option<&str>,
        password: Option<&str>,
        ca: Option<&Path>,
    ) -> Result<Self, CliError> {
        let (tls, address) = if let Some(rest) = url.strip_prefix("grpc+tls://") {
            (true, format!("https://{rest}"))
        } else if let Some(rest) = url.strip_prefix("grpc://") {
            (false, format!("http://{rest}"))
        } else {
            return Err(CliError::Usage(format!(
                "--connect expects grpc://host:port or grpc+tls://host:port, found `{url}`"
            )));
        };
        let bad_url = |e: tonic::transport::Error| {
            CliError::Usage(format!("invalid --connect URL `{url}`: {e}"))
        };
        // HTTP/2's defaults (64 KiB windows, 16 KiB frames) would cap large
        // results.
        let mut endpoint = Endpoint::from_shared(address)
            .map_err(bad_url)?
            .connect_timeout(Duration::from_secs(10))
            .initial_stream_window_size(Some(16 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .max_frame_size(Some(1 << 20));
        if tls {
            let mut config = ClientTlsConfig::new();
            config = match ca {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(CliError::io(format!(
                        "cannot read the CA certificate `{}`",
                        path.display()
                    )))?;
                    config.ca_certificate(Certificate::from_pem(pem))
                }
                None => config.with_native_roots(),
            };
            endpoint = endpoint.tls_config(config).map_err(bad_url)?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            CliError::Serve(format!(
                "cannot connect to {url}: {e}; is `spar serve` running there?"
            ))
        })?;
        let mut remote = Self {
            client: FlightServiceClient::new(channel),
            token: None,
        };
        if let Some(user) = user {
            remote.token = Some(remote.handshake(user, password.unwrap_or("")).await?);
        }
        Ok(remote)
    }

    async fn handshake(&mut self, user: &str, password: &str) -> Result<String, CliError> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut request = Request::new(futures::stream::iter([HandshakeRequest::default()]));
        let header = format!("Basic {basic}").parse().map_err(|_| {
            CliError::Usage("the user name or password cannot be sent in a header".into())
        })?;
        request.metadata_mut().insert("authorization", header);
        let response = self
            .client
            .handshake(request)
            .await
            .map_err(|s| remote_error(&s))?;
        response
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
            .ok_or_else(|| {
                CliError::Serve("the server's handshake returned no bearer token".into())
            })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = self
            .token
            .as_ref()
            .and_then(|t| format!("Bearer {t}").parse().ok())
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Runs one statement; its result schema and a stream of its record
    /// batches, read from every endpoint in turn. Dropping the stream
    /// cancels the query.
    pub async fn query(
        &self,
        sql: &str,
    ) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch, CliError>>), CliError> {
        let command = CommandStatementQuery {
            query: sql.to_string(),
            transaction_id: None,
        };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let mut client = self.client.clone();
        let info = client
            .get_flight_info(self.request(descriptor))
            .await
            .map_err(|s| remote_error(&s))?
            .into_inner();
        let schema = info.clone().try_decode_schema().map_err(|e| {
            CliError::Serve(format!("the server sent a malformed result schema: {e}"))
        })?;
        let mut streams = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let data = client
                .do_get(self.request(ticket))
                .await
                .map_err(|s| remote_error(&s))?
                .into_inner();
            let batches =
                FlightRecordBatchStream::new_from_flight_data(data.map_err(FlightError::from))
                    .map_err(|e| match e {
                        FlightError::Tonic(status) => remote_error(&status),
                        other => CliError::Serve(format!("cannot read the result: {other}")),
                    });
            streams.push(batches);
        }
        Ok((
            std::sync::Arc::new(schema),
            futures::stream::iter(streams).flatten().boxed(),
        ))
    }
}
