//! [`SparFlightSql`]: Spar's `FlightSqlService`.
//!
//! A statement's `GetFlightInfo` plans the query (so syntax, unknown
//! tables and missing grants fail there) and returns one endpoint whose
//! ticket carries the query id, the SQL and any bound parameters. `DoGet`
//! takes the plan made for that ticket when it is still cached, else plans
//! the ticket's SQL again under the caller's grants, and streams the
//! result as it comes.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, CommandGetCatalogs,
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandStatementQuery,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::prelude::DataFrame;
use futures::{Stream, TryStreamExt};
use prost::Message;
use spar_engine::stack::OnDeepStack;
use spar_engine::{Engine, Session, SessionOptions};
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Authenticator, Principal};
use super::ipc::{decode_parameters, encode_parameters, parameter_row};
use super::limits::{Admission, QueryContext, QueryStream, Running};
use super::metadata;
use super::status::{datafusion_status, engine_status};
use super::ticket::{QueryTicket, TicketKey};
use crate::metrics::Metrics;

type DoGetStream = <SparFlightSql as FlightService>::DoGetStream;

/// A prepared statement, owned by the user who made it.
struct Prepared {
    owner: String,
    sql: String,
    parameter_schema: SchemaRef,
    /// The bound parameter row (Arrow IPC), once a client has sent one.
    parameters: Option<Vec<u8>>,
}

/// A plan made by `GetFlightInfo`, waiting for its `DoGet`.
struct Pending {
    owner: String,
    plan: DataFrame,
    made: Instant,
}

/// Plans kept for their `DoGet` at most this long, and this many at most;
/// a ticket whose plan is gone is planned again.
const PENDING_TTL: Duration = Duration::from_secs(60);
const PENDING_MAX: usize = 1024;
/// Prepared statements one user may hold open.
const PREPARED_PER_USER: usize = 256;

/// Spar's Flight SQL service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct SparFlightSql {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    auth: Arc<Authenticator>,
    admission: Admission,
    running: Arc<Running>,
    metrics: Arc<Metrics>,
    /// Prepared statements by handle; a std mutex held only to look up,
    /// insert or remove.
    prepared: Mutex<HashMap<String, Prepared>>,
    /// Plans by query id, between `GetFlightInfo` and `DoGet`.
    pending: Mutex<HashMap<String, Pending>>,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
    /// Seals statement tickets, so that `DoGet` decodes only what this
    /// process encoded.
    tickets: TicketKey,
}

impl SparFlightSql {
    pub(crate) fn new(
        engine: Engine,
        auth: Arc<Authenticator>,
        admission: Admission,
        running: Arc<Running>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                auth,
                admission,
                running,
                metrics,
                prepared: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                sql_info: metadata::sql_info().map_err(|e| e.to_string())?,
                xdbc: metadata::xdbc_types().map_err(|e| e.to_string())?,
                tickets: TicketKey::random(),
            }),
        })
    }

    fn session(&self, principal: &Principal) -> Result<Session, Status> {
        self.inner
            .engine
            .session_with(SessionOptions {
                access: principal.access.clone(),
                memory_limit: self.inner.admission.limits().query_memory,
                // server.limits.query_timeout covers planning as well,
                // and answers DEADLINE_EXCEEDED itself.
                statement_timeout: None,
            })
            .map_err(|e| engine_status(&e, "-"))
    }

    /// Plans `sql` with `parameters` bound, within the query timeout.
    async fn plan(
        &self,
        principal: &Principal,
        query_id: &str,
        sql: &str,
        parameters: &[u8],
    ) -> Result<DataFrame, Status> {
        let session = self.session(principal)?;
        let planning = async {
            let df = session
                .sql(sql)
                .await
                .map_err(|e| engine_status(&e, query_id))?;
            if parameters.is_empty() {
                return Ok(df);
            }
            let values = decode_parameters(parameters)?;
            df.with_param_values(values)
                .map_err(|e| datafusion_status(&e, query_id))
        };
        let result = match self.inner.admission.limits().query_timeout {
            Some(limit) => tokio::time::timeout(limit, planning)
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(format!(
                        "query {query_id}: planning took longer than server.limits.query_timeout ({limit:?})"
                    )))
                }),
            None => planning.await,
        };
        if let Err(status) = &result {
            self.inner.metrics.query_failed_early(status.code());
            tracing::info!(
                query_id,
                user = principal.user,
                error = status.message(),
                "query refused"
            );
        }
        result
    }

    /// Plans a ticket's query and returns its `FlightInfo`; the plan waits
    /// for the `DoGet`.
    async fn statement_info(
        &self,
        principal: &Principal,
        ticket: QueryTicket,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        tracing::debug!(
            query_id = ticket.query_id,
            user = principal.user,
            sql = ticket.sql,
            "planning"
        );
        let plan = self
            .plan(principal, &ticket.query_id, &ticket.sql, &ticket.parameters)
            .await?;
        let schema = plan.schema().as_arrow().clone();
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.retain(|_, p| p.made.elapsed() < PENDING_TTL);
            if pending.len() < PENDING_MAX {
                pending.insert(
                    ticket.query_id.clone(),
                    Pending {
                        owner: principal.user.clone(),
                        plan,
                        made: Instant::now(),
                    },
                );
            }
        }
        let handle = TicketStatementQuery {
            statement_handle: self.inner.tickets.seal(&ticket).into(),
        };
        flight_info(&schema, handle.as_any().encode_to_vec(), descriptor)
    }

    fn take_pending(&self, query_id: &str, user: &str) -> Option<DataFrame> {
        let mut pending = self.inner.pending.lock().ok()?;
        match pending.get(query_id) {
            Some(p) if p.owner == user && p.made.elapsed() < PENDING_TTL => {
                pending.remove(query_id).map(|p| p.plan)
            }
            _ => None,
        }
    }

    fn prepared<T>(
        &self,
        handle: &[u8],
        user: &str,
        f: impl FnOnce(&mut Prepared) -> T,
    ) -> Result<T, Status> {
        let unknown = || {
            Status::not_found(
                "unknown prepared statement handle (closed, or made by another user or another server process); prepare the statement again",
            )
        };
        let key = std::str::from_utf8(handle).map_err(|_| unknown())?;
        let mut prepared = self
            .inner
            .prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements unavailable; try again"))?;
        match prepared.get_mut(key) {
            Some(p) if p.owner == user => Ok(f(p)),
            _ => Err(unknown()),
        }
    }
}

fn principal<T>(request: &Request<T>) -> Result<Arc<Principal>, Status> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("not authenticated: call Handshake first"))
}

/// A random id (query ids, prepared statement handles).
fn new_id() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor))
}

/// The `FlightInfo` of a metadata command: its result schema, and the
/// command itself as the ticket.
fn metadata_info(
    request: Request<FlightDescriptor>,
    schema: &Schema,
    command: &impl ProstMessageExt,
) -> Result<Response<FlightInfo>, Status> {
    principal(&request)?;
    let info = flight_info(
        schema,
        command.as_any().encode_to_vec(),
        request.into_inner(),
    )?;
    Ok(Response::new(info))
}

/// A schema as the IPC bytes prepared-statement results carry.
fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let options = IpcWriteOptions::default();
    let IpcMessage(bytes) =
        SchemaAsIpc::new(schema, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| {
                Status::internal(format!("cannot encode a schema: {e}"))
            })?;
    Ok(bytes)
}

/// One record batch as a `DoGet` stream.
pub(crate) fn batch_stream(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async { Ok(batch) }))
            .map_err(Status::from),
    )
}

/// The placeholders of a plan (`$1`, `$2`, ...) as a parameter schema, in
/// order; a placeholder whose type cannot be inferred is `Null`-typed.
fn parameter_schema(plan: &DataFrame) -> Result<Schema, Status> {
    let types = plan
        .logical_plan()
        .get_parameter_types()
        .map_err(|e| datafusion_status(&e, "-"))?;
    let mut named: Vec<(usize, String, DataType)> = Vec::new();
    for (name, data_type) in types {
        let position = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "placeholder `{name}` is not positional; use $1, $2, ..."
                ))
            })?;
        named.push((position, name, data_type.unwrap_or(DataType::Null)));
    }
    named.sort();
    for (i, (position, name, _)) in named.iter().enumerate() {
        if *position != i + 1 {
            return Err(Status::invalid_argument(format!(
                "placeholders must be numbered from $1 without gaps; found {name} where ${} was expected",
                i + 1
            )));
        }
    }
    Ok(Schema::new(
        named
            .into_iter()
            .map(|(_, name, t)| Field::new(name, t, true))
            .collect::<Vec<_>>(),
    ))
}

#[tonic::async_trait]
impl FlightSqlService for SparFlightSql {
    type FlightService = SparFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = match request.metadata().get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Status::invalid_argument("the authorization header is not ASCII text")
            })?),
        };
        let address = request.remote_addr().map(|a| a.ip());
        let (token, _) = self.inner.auth.login(header, address).await?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("cannot encode the token"))?;
        let output = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        })]);
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(output));
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let p = principal(&request)?;
        let ticket = QueryTicket {
            query_id: new_id(),
            sql: query.query,
            parameters: Vec::new(),
            owner: p.user.clone(),
        };
        let info = self
            .statement_info(&p, ticket, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let p = principal(&request)?;
        let (sql, parameters, expected) =
            self.prepared(&cmd.prepared_statement_handle, &p.user, |s| {
                (
                    s.sql.clone(),
                    s.parameters.clone(),
                    s.parameter_schema.fields().len(),
                )
            })?;
        let parameters = match parameters {
            Some(bytes) => bytes,
            None if expected == 0 => Vec::new(),
            None => {
                return Err(Status::invalid_argument(format!(
                    "the statement has {expected} parameter(s) and none are bound; bind them with DoPut first"
                )))
            }
        };
        let ticket = QueryTicket {
            query_id: new_id(),
            sql,
            parameters,
            owner: p.user.clone(),
        };
        let info = self
            .statement_info(&p, ticket, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let p = principal(&request)?;
        let ticket = self
            .inner
            .tickets
            .open(ticket.statement_handle.as_ref(), &p.user)?;
        let limits = self.inner.admission.limits();
        let permits = match self.inner.admission.admit(&p.user) {
            Ok(permits) => permits,
            Err(status) => {
                self.inner.metrics.query_failed_early(status.code());
                return Err(status);
            }
        };
        let started = Instant::now();
        let deadline = limits
            .query_timeout
            .map(|t| tokio::time::Instant::now() + t);
        let plan = match self.take_pending(&ticket.query_id, &p.user) {
            Some(plan) => plan,
            None => {
                self.plan(&p, &ticket.query_id, &ticket.sql, &ticket.parameters)
                    .await?
            }
        };
        let query_id = ticket.query_id.clone();
        // Optimizing and planning walk deep expressions recursively.
        let stream = OnDeepStack::new(plan.execute_stream()).await.map_err(|e| {
            let status = datafusion_status(&e, &query_id);
            self.inner.metrics.query_failed_early(status.code());
            status
        })?;
        let schema = stream.schema();
        tracing::info!(query_id, user = p.user, "query started");
        let stream = QueryStream::new(
            stream,
            QueryContext {
                id: ticket.query_id,
                user: p.user.clone(),
                started,
                deadline,
                max_rows: limits.max_result_rows,
                permits: Some(permits),
                running: Arc::clone(&self.inner.running),
                metrics: Arc::clone(&self.inner.metrics),
            },
        );
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(stream)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<DoGetStream>, Status> {
        Err(Status::invalid_argument(format!(
            "unsupported ticket type `{}`; use the ticket GetFlightInfo returned",
            message.type_url
        )))
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let p = principal(&request)?;
        let expected = self.prepared(&cmd.prepared_statement_handle, &p.user, |s| {
            Arc::clone(&s.parameter_schema)
        })?;
        let row = parameter_row(request.into_inner().map_err(FlightError::from)).await?;
        if row.num_columns() != expected.fields().len() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameter(s), the batch has {} column(s)",
                expected.fields().len(),
                row.num_columns()
            )));
        }
        let bytes = encode_parameters(&row)?;
        self.prepared(&cmd.prepared_statement_handle, &p.user, |s| {
            s.parameters = Some(bytes)
        })?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(cmd.prepared_statement_handle),
        })
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let p = principal(&request)?;
        let query_id = new_id();
        let plan = self.plan(&p, &query_id, &query.query, &[]).await?;
        let parameter_schema = parameter_schema(&plan)?;
        let dataset_schema = plan.schema().as_arrow().clone();
        let handle = new_id();
        {
            let mut prepared = self
                .inner
                .prepared
                .lock()
                .map_err(|_| Status::internal("prepared statements unavailable; try again"))?;
            let held = prepared.values().filter(|s| s.owner == p.user).count();
            if held >= PREPARED_PER_USER {
                return Err(Status::resource_exhausted(format!(
                    "user `{}` holds {held} open prepared statements; close some first",
                    p.user
                )));
            }
            prepared.insert(
                handle.clone(),
                Prepared {
                    owner: p.user.clone(),
                    sql: query.query,
                    parameter_schema: Arc::new(parameter_schema.clone()),
                    parameters: None,
                },
            );
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_bytes(&dataset_schema)?,
            parameter_schema: schema_bytes(&parameter_schema)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let p = principal(&request)?;
        self.prepared(&query.prepared_statement_handle, &p.user, |_| ())?;
        if let (Ok(key), Ok(mut prepared)) = (
            std::str::from_utf8(&query.prepared_statement_handle),
            self.inner.prepared.lock(),
        ) {
            prepared.remove(key);
        }
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let p = principal(&request)?;
        let info = FlightInfo::decode(query.info.as_ref())
            .map_err(|_| Status::invalid_argument("malformed FlightInfo in the cancel request"))?;
        Ok(ActionCancelQueryResult {
            result: self.cancel(&info, &p.user) as i32,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let p = principal(&request)?;
        let action = request.into_inner();
        if action.r#type != "CancelFlightInfo" {
            return Err(Status::invalid_argument(format!(
                "unsupported action `{}`",
                action.r#type
            )));
        }
        let cancel = CancelFlightInfoRequest::decode(action.body.as_ref())
            .map_err(|_| Status::invalid_argument("malformed CancelFlightInfoRequest"))?;
        let info = cancel.info.ok_or_else(|| {
            Status::invalid_argument("CancelFlightInfoRequest without a FlightInfo")
        })?;
        let result = CancelFlightInfoResult::new(self.cancel(&info, &p.user));
        let body = arrow_flight::Result::new(result.encode_to_vec());
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(body)]))))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, &query.into_builder().schema(), &query)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, &query.clone().into_builder().schema(), &query)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, &query.clone().into_builder().schema(), &query)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, &query.into_builder().schema(), &query)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            request,
            &query.clone().into_builder(&self.inner.sql_info).schema(),
            &query,
        )
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, &metadata::primary_keys_schema(), &query)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            request,
            &query.into_builder(&self.inner.xdbc).schema(),
            &query,
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let p = principal(&request)?;
        let session = self.session(&p)?;
        let mut builder = query.into_builder();
        for catalog in metadata::catalogs(&session) {
            builder.append(catalog);
        }
        built(builder.build())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let p = principal(&request)?;
        let session = self.session(&p)?;
        let mut builder = query.into_builder();
        for (catalog, schema) in metadata::schemas(&session) {
            builder.append(catalog, schema);
        }
        built(builder.build())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let p = principal(&request)?;
        let session = self.session(&p)?;
        let mut builder = query.into_builder();
        for t in metadata::tables(&session).await? {
            builder
                .append(t.catalog, t.schema, t.name, t.kind, &t.arrow_schema)
                .map_err(arrow_status)?;
        }
        built(builder.build())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        principal(&request)?;
        let mut builder = query.into_builder();
        for kind in metadata::TABLE_TYPES {
            builder.append(kind);
        }
        built(builder.build())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        principal(&request)?;
        let batch = query
            .into_builder(&self.inner.sql_info)
            .build()
            .map_err(arrow_status)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let p = principal(&request)?;
        let session = self.session(&p)?;
        let mut rows: Vec<(String, String, String, String, String, i32)> = Vec::new();
        for (catalog, schema) in metadata::schemas(&session) {
            if query.catalog.as_ref().is_some_and(|c| c != &catalog)
                || query.db_schema.as_ref().is_some_and(|s| s != &schema)
            {
                continue;
            }
            let key = session
                .primary_key(&catalog, &schema, &query.table)
                .await
                .map_err(|e| engine_status(&e, "-"))?;
            if let Some((name, columns)) = key {
                for (i, column) in columns.into_iter().enumerate() {
                    let sequence = i32::try_from(i + 1).unwrap_or(i32::MAX);
                    rows.push((
                        catalog.clone(),
                        schema.clone(),
                        query.table.clone(),
                        column,
                        name.clone(),
                        sequence,
                    ));
                }
            }
        }
        let column = |f: fn(&(String, String, String, String, String, i32)) -> &str| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
        };
        let batch = RecordBatch::try_new(
            Arc::new(metadata::primary_keys_schema()),
            vec![
                column(|r| &r.0),
                column(|r| &r.1),
                column(|r| &r.2),
                column(|r| &r.3),
                column(|r| &r.4),
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.5))),
            ],
        )
        .map_err(arrow_status)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        principal(&request)?;
        let batch = query
            .into_builder(&self.inner.xdbc)
            .build()
            .map_err(arrow_status)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl SparFlightSql {
    /// Cancels the query behind a `FlightInfo` this server returned to
    /// `user`. Another user's query (whose ticket does not open for
    /// `user`) is not cancellable, as if it did not exist.
    fn cancel(&self, info: &FlightInfo, user: &str) -> CancelStatus {
        let mut status = CancelStatus::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Some(query_id) = arrow_flight::sql::Any::decode(ticket.ticket.as_ref())
                .ok()
                .and_then(|any| any.unpack::<TicketStatementQuery>().ok().flatten())
                .and_then(|t| self.inner.tickets.open(&t.statement_handle, user).ok())
                .map(|t| t.query_id)
            else {
                continue;
            };
            // A plan still waiting for its DoGet is dropped (a later DoGet
            // plans again); only a running query counts as cancelled.
            if let Ok(mut pending) = self.inner.pending.lock() {
                if pending.get(&query_id).is_some_and(|p| p.owner == user) {
                    pending.remove(&query_id);
                }
            }
            if self.inner.running.cancel(&query_id, user) {
                tracing::info!(query_id, "query cancelled");
                status = CancelStatus::Cancelled;
            }
        }
        status
    }
}

/// A metadata result batch as a `DoGet` response.
fn built(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    Ok(Response::new(batch_stream(batch.map_err(arrow_status)?)))
}

fn arrow_status(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("cannot build a metadata result: {e}"))
}
