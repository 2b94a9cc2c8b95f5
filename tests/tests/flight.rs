//! `spar serve` in-process on 127.0.0.1:0, driven by arrow-flight's
//! `FlightSqlServiceClient` (and its raw `FlightServiceClient` where a test
//! checks the exact gRPC status code).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    Any, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelStatus, FlightDescriptor, FlightInfo, Ticket,
};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use spar_tests::flight::{start, start_with, start_with_sources, Server};
use spar_tests::harness::PgServer;
use spar_tests::harness::TestCa;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A raw Flight client to `server`, sending `token`.
async fn connect_raw(server: &Server, token: Option<&str>) -> Raw {
    Raw {
        client: FlightServiceClient::new(ok(server.channel().await)),
        token: token.map(str::to_string),
    }
}

/// The raw Flight client, for exact status codes.
struct Raw {
    client: FlightServiceClient<Channel>,
    token: Option<String>,
}

impl Raw {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            if let Ok(value) = format!("Bearer {token}").parse() {
                request.metadata_mut().insert("authorization", value);
            }
        }
        request
    }

    async fn info(&mut self, command: impl ProstMessageExt) -> Result<FlightInfo, Status> {
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let request = self.request(descriptor);
        Ok(self.client.get_flight_info(request).await?.into_inner())
    }

    async fn fetch(&mut self, ticket: Ticket) -> Result<Vec<RecordBatch>, Status> {
        let request = self.request(ticket);
        let stream = self.client.do_get(request).await?.into_inner();
        FlightRecordBatchStream::new_from_flight_data(stream.map_err(FlightError::from))
            .try_collect()
            .await
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                other => Status::unknown(other.to_string()),
            })
    }

    /// Creates a prepared statement; its handle.
    async fn prepare(&mut self, sql: &str) -> Result<bytes::Bytes, Status> {
        let action = Action::new(
            "CreatePreparedStatement",
            arrow_flight::sql::ActionCreatePreparedStatementRequest {
                query: sql.to_string(),
                transaction_id: None,
            }
            .as_any()
            .encode_to_vec(),
        );
        let request = self.request(action);
        let mut results = self.client.do_action(request).await?.into_inner();
        let body = results
            .message()
            .await?
            .ok_or_else(|| Status::internal("no result"))?;
        let any = Any::decode(body.body).map_err(|e| Status::internal(e.to_string()))?;
        let result: arrow_flight::sql::ActionCreatePreparedStatementResult = any
            .unpack()
            .ok()
            .flatten()
            .ok_or_else(|| Status::internal("not a prepared statement result"))?;
        Ok(result.prepared_statement_handle)
    }

    async fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>, Status> {
        let info = self
            .info(CommandStatementQuery {
                query: sql.to_string(),
                transaction_id: None,
            })
            .await?;
        let ticket = ticket_of(&info);
        self.fetch(ticket).await
    }
}

/// The first error a `DoGet` stream delivers; `None` when it ends without
/// one or stays silent for 30 s.
async fn first_error<T>(
    stream: &mut (impl futures::Stream<Item = Result<T, Status>> + Unpin),
) -> Option<Status> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = stream.next().await {
            if let Err(status) = item {
                return Some(status);
            }
        }
        None
    })
    .await
    .unwrap_or(None)
}

fn ticket_of(info: &FlightInfo) -> Ticket {
    info.endpoint
        .first()
        .and_then(|e| e.ticket.clone())
        .unwrap_or_else(|| panic!("no ticket in {info:?}"))
}

/// Fetches every endpoint of `info` with the SQL client.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint
            .ticket
            .unwrap_or_else(|| panic!("endpoint without a ticket"));
        let stream = ok(client.do_get(ticket).await);
        batches.extend(ok(stream.try_collect::<Vec<_>>().await));
    }
    batches
}

/// Rows as `a|b` lines.
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ok(ArrayFormatter::try_new(c.as_ref(), &options)))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

fn token_of(client: &FlightSqlServiceClient<Channel>) -> String {
    client
        .token()
        .cloned()
        .unwrap_or_else(|| panic!("the handshake returned no token"))
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    match result {
        Ok(v) => panic!("expected {code:?} ({needle}), got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{s}");
            assert!(s.message().contains(needle), "expected {needle:?} in {s}");
        }
    }
}

const JOIN: &str = "SELECT c.name, count(*) AS n, sum(o.amount) AS total \
                    FROM orders o JOIN customers c ON c.id = o.customer \
                    GROUP BY c.name ORDER BY c.name";

#[tokio::test]
async fn statements_stream_the_engines_answer() {
    let server = start("").await;
    let mut client = server.client("ann", "ann-pw").await;
    let info = ok(client.execute(JOIN.to_string(), None).await);
    let schema = ok(info.clone().try_decode_schema());
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["name", "n", "total"]);
    let got = lines(&fetch(&mut client, info).await);
    let engine = server.engine().await;
    let expected = spar_tests::rows(&engine.session(), JOIN).await;
    assert_eq!(got, expected);
    assert_eq!(got.len(), 5);
    // A large result arrives in several batches, all rows present.
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    let big = ok(raw
        .query("SELECT a.id * 1000 + b.id AS k FROM orders a CROSS JOIN orders b CROSS JOIN customers c")
        .await);
    assert_eq!(
        big.iter().map(RecordBatch::num_rows).sum::<usize>(),
        50 * 50 * 5
    );
    server.stop().await;
}

#[tokio::test]
async fn authentication_is_required_and_checked() {
    let server = start("token_ttl = \"2s\"").await;
    // Wrong password, unknown user.
    let mut client = FlightSqlServiceClient::new(ok(server.channel().await));
    for (user, password) in [("ann", "nope"), ("zed", "ann-pw")] {
        let e = client
            .handshake(user, password)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("valid authentication credentials")
                    && e.contains("invalid user name or password")),
            "{user}: {e:?}"
        );
    }
    // No token, a made-up token.
    let mut anonymous = connect_raw(&server, None).await;
    assert_code(
        anonymous.query("SELECT 1").await,
        Code::Unauthenticated,
        "not authenticated",
    );
    let mut forged = connect_raw(&server, Some("forged")).await;
    assert_code(
        forged.query("SELECT 1").await,
        Code::Unauthenticated,
        "unknown token",
    );
    // A good token works until it expires.
    let client = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    assert_eq!(lines(&ok(raw.query("SELECT 1 + 1").await)), ["2"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_code(
        raw.query("SELECT 1").await,
        Code::Unauthenticated,
        "token expired",
    );
    server.stop().await;
}

#[tokio::test]
async fn anonymous_access_only_when_configured() {
    let server = start("allow_anonymous = true\nanonymous_grants = [\"crm\"]").await;
    let mut anonymous = connect_raw(&server, None).await;
    assert_eq!(
        lines(&ok(anonymous.query("SELECT count(*) FROM customers").await)),
        ["5"]
    );
    assert_code(
        anonymous.query("SELECT count(*) FROM orders").await,
        Code::NotFound,
        "table `orders` not found",
    );
    server.stop().await;
}

#[tokio::test]
async fn prepared_statements_bind_parameters() {
    let server = start("").await;
    let mut client = server.client("ann", "ann-pw").await;
    let mut prepared = ok(client
        .prepare(
            "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer \
             WHERE o.amount > $1 AND c.name = $2 ORDER BY o.id"
                .to_string(),
            None,
        )
        .await);
    let params = ok(prepared.parameter_schema()).clone();
    let described: Vec<(String, DataType)> = params
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(
        described,
        [
            ("$1".to_string(), DataType::Int64),
            ("$2".to_string(), DataType::Utf8)
        ]
    );
    let dataset: Vec<String> = ok(prepared.dataset_schema())
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(dataset, ["id", "name"]);
    for (min, name, expected) in [
        (300i64, "bob", vec!["31|bob", "36|bob", "41|bob", "46|bob"]),
        (450, "ann", vec!["50|ann"]),
    ] {
        let batch = ok(RecordBatch::try_new(
            Arc::new(params.clone()),
            vec![
                Arc::new(Int64Array::from(vec![min])),
                Arc::new(arrow::array::StringArray::from(vec![name])),
            ],
        ));
        ok(prepared.set_parameters(batch));
        let info = ok(prepared.execute().await);
        assert_eq!(lines(&fetch(&mut client, info).await), expected);
    }
    // Without parameters: a clear error; after close: unknown.
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    let handle = ok(raw.prepare("SELECT $1 + 1").await);
    let execute = |handle: &bytes::Bytes| arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: handle.clone(),
    };
    assert_code(
        raw.info(execute(&handle)).await,
        Code::InvalidArgument,
        "bind them with DoPut first",
    );
    let close = Action::new(
        "ClosePreparedStatement",
        arrow_flight::sql::ActionClosePreparedStatementRequest {
            prepared_statement_handle: handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let request = raw.request(close);
    ok(raw.client.do_action(request).await);
    assert_code(
        raw.info(execute(&handle)).await,
        Code::NotFound,
        "unknown prepared statement handle",
    );
    // Another user cannot use ann's statement.
    let olly = server.client("olly", "olly-pw").await;
    let mut other = connect_raw(&server, Some(&token_of(&olly))).await;
    let ann_statement = ok(raw.prepare("SELECT 1").await);
    assert_code(
        other.info(execute(&ann_statement)).await,
        Code::NotFound,
        "unknown prepared statement handle",
    );
    server.stop().await;
}

#[tokio::test]
async fn metadata_commands_follow_the_spec_filters() {
    let server = start("").await;
    let mut client = server.client("ann", "ann-pw").await;
    let catalogs = ok(client.get_catalogs().await);
    assert_eq!(lines(&fetch(&mut client, catalogs).await), ["crm", "sales"]);
    let schemas = ok(client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("sales".into()),
            db_schema_filter_pattern: Some("m%".into()),
        })
        .await);
    assert_eq!(lines(&fetch(&mut client, schemas).await), ["sales|main"]);
    let tables = ok(client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("%er%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        })
        .await);
    let batches = fetch(&mut client, tables).await;
    let names: Vec<String> = lines(&batches)
        .iter()
        .map(|l| l.split('|').take(4).collect::<Vec<_>>().join("."))
        .collect();
    assert_eq!(
        names,
        ["crm.main.customers.TABLE", "sales.main.orders.TABLE"]
    );
    let schema_bytes = batches[0].column(4).as_binary::<i32>().value(1).to_vec();
    let orders = ok(Schema::try_from(arrow_flight::IpcMessage(
        schema_bytes.into(),
    )));
    let columns: Vec<&str> = orders.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(columns, ["id", "customer", "amount"]);
    let types = ok(client.get_table_types().await);
    assert_eq!(lines(&fetch(&mut client, types).await), ["TABLE", "VIEW"]);
    let keys = ok(client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: Some("sales".into()),
            db_schema: None,
            table: "orders".into(),
        })
        .await);
    let keys = lines(&fetch(&mut client, keys).await);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("sales|main|orders|id|") && keys[0].ends_with("|1"),
        "{keys:?}"
    );
    let info = ok(client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await);
    let info = fetch(&mut client, info).await;
    assert_eq!(info[0].num_rows(), 2);
    let rendered = lines(&info).join(";");
    assert!(
        rendered.contains("Spar") && rendered.contains("true"),
        "{rendered}"
    );
    let xdbc = ok(client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: Some(4) })
        .await);
    let xdbc = lines(&fetch(&mut client, xdbc).await);
    assert_eq!(xdbc.len(), 1, "{xdbc:?}");
    assert!(xdbc[0].starts_with("INTEGER|4|"), "{xdbc:?}");
    server.stop().await;
}

#[tokio::test]
async fn grants_hide_and_refuse_what_a_user_may_not_read() {
    let server = start("").await;
    let mut olly = server.client("olly", "olly-pw").await;
    let catalogs = ok(olly.get_catalogs().await);
    assert_eq!(lines(&fetch(&mut olly, catalogs).await), ["sales"]);
    let tables = ok(olly
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: false,
        })
        .await);
    let tables = lines(&fetch(&mut olly, tables).await);
    assert_eq!(tables, ["sales|main|orders|TABLE"]);
    let mut raw = connect_raw(&server, Some(&token_of(&olly))).await;
    assert_eq!(
        lines(&ok(raw.query("SELECT count(*) FROM orders").await)),
        ["50"]
    );
    // A table, schema or source outside the grants answers exactly as one
    // that does not exist: same code, same message but for the name.
    for (denied, missing, name, other) in [
        (
            "SELECT * FROM secrets",
            "SELECT * FROM nosuch",
            "secrets",
            "nosuch",
        ),
        (
            "SELECT * FROM sales.main.secrets",
            "SELECT * FROM sales.main.nosuch",
            "secrets",
            "nosuch",
        ),
        (
            "SELECT * FROM orders JOIN customers ON customers.id = orders.customer",
            "SELECT * FROM orders JOIN nosuch ON nosuch.id = orders.customer",
            "customers",
            "nosuch",
        ),
        (
            "SELECT * FROM crm.main.customers",
            "SELECT * FROM nosrc.main.customers",
            "crm",
            "nosrc",
        ),
    ] {
        let (Some(denied), Some(missing)) = (
            raw.query(denied).await.err(),
            raw.query(missing).await.err(),
        ) else {
            panic!("both should fail: {denied} / {missing}");
        };
        assert_eq!(denied.code(), Code::NotFound, "{denied}");
        assert_eq!(missing.code(), Code::NotFound, "{missing}");
        assert_eq!(
            denied.message().replace(name, other),
            missing.message(),
            "a denied name must look missing"
        );
        assert!(!denied.message().contains("olly"), "{denied}");
    }
    let listed = ok(raw
        .query("SELECT table_catalog, table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1, 2")
        .await);
    assert_eq!(lines(&listed), ["sales|orders"]);
    // Not-found hints do not reveal tables the user may not read.
    let e = raw.query("SELECT * FROM sales.main.nope").await;
    assert_code(e, Code::NotFound, "has tables orders.");
    server.stop().await;
}

#[tokio::test]
async fn errors_map_to_status_codes_and_the_server_keeps_serving() {
    let server = start("").await;
    let client = server.client("ann", "ann-pw").await;
    let token = token_of(&client);
    let mut raw = connect_raw(&server, Some(&token)).await;
    assert_code(
        raw.query("SELEC 1").await,
        Code::InvalidArgument,
        "syntax error",
    );
    assert_code(
        raw.query("SELECT * FROM nowhere").await,
        Code::NotFound,
        "table `nowhere` not found",
    );
    assert_code(
        raw.query("SELECT nope FROM orders").await,
        Code::InvalidArgument,
        "nope",
    );
    assert_code(
        raw.query("DROP TABLE orders").await,
        Code::InvalidArgument,
        "Spar is read-only",
    );
    // Garbage tickets: not protobuf; a statement ticket with garbage inside.
    assert_code(
        raw.fetch(Ticket::new(vec![0xff, 0x00, 0x13])).await,
        Code::InvalidArgument,
        "",
    );
    let garbage = TicketStatementQuery {
        statement_handle: vec![0xff; 7].into(),
    };
    assert_code(
        raw.fetch(Ticket::new(garbage.as_any().encode_to_vec()))
            .await,
        Code::InvalidArgument,
        "invalid statement ticket",
    );
    // Invalid UTF-8 in the SQL.
    let mut bad_sql = CommandStatementQuery {
        query: "SELECT 1".into(),
        transaction_id: None,
    }
    .encode_to_vec();
    let at = bad_sql.len() - 1;
    bad_sql[at] = 0xff;
    let any = Any {
        type_url: CommandStatementQuery::type_url().to_string(),
        value: bad_sql.into(),
    };
    let request = raw.request(FlightDescriptor::new_cmd(any.encode_to_vec()));
    assert_code(
        raw.client.get_flight_info(request).await.map(|_| ()),
        Code::InvalidArgument,
        "malformed request",
    );
    // Unknown prepared-statement handle; an oversized parameter batch.
    let close = Action::new(
        "ClosePreparedStatement",
        arrow_flight::sql::ActionClosePreparedStatementRequest {
            prepared_statement_handle: b"no-such-handle".to_vec().into(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let request = raw.request(close);
    assert_code(
        raw.client.do_action(request).await.map(|_| ()),
        Code::NotFound,
        "unknown prepared statement handle",
    );
    let mut sql_client = server.client("ann", "ann-pw").await;
    let mut prepared = ok(sql_client
        .prepare("SELECT $1 + 1 AS x".to_string(), None)
        .await);
    let many = ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
    ));
    ok(prepared.set_parameters(many));
    let e = prepared.execute().await.err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("expected one row of parameters")),
        "{e:?}"
    );
    // A source that went away: Unavailable, naming the source.
    ok(std::fs::remove_file(server.dir.path().join("crm.db")));
    assert_code(
        raw.query("SELECT * FROM customers").await,
        Code::Unavailable,
        "crm",
    );
    // And after all that, the server still answers.
    assert_eq!(
        lines(&ok(raw.query("SELECT count(*) FROM orders").await)),
        ["50"]
    );
    server.stop().await;
}

/// A query that runs for minutes unless stopped.
const ENDLESS: &str = "SELECT count(*) FROM generate_series(1, 100000000000)";

#[tokio::test]
async fn limits_give_clear_errors_and_free_their_slots() {
    let server = start(
        "[server.limits]\nmax_concurrent_queries_per_user = 1\nquery_timeout = \"1s\"\nquery_memory = \"1MiB\"\nmax_result_rows = 20",
    )
    .await;
    let client = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    assert_code(
        raw.query("SELECT id FROM orders").await,
        Code::ResourceExhausted,
        "more than 20 rows (server.limits.max_result_rows)",
    );
    assert_eq!(
        ok(raw.query("SELECT id FROM orders LIMIT 20").await)
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        20
    );
    assert_code(
        raw.query(ENDLESS).await,
        Code::DeadlineExceeded,
        "server.limits.query_timeout",
    );
    assert_code(
        raw.query(
            "SELECT count(*) FROM generate_series(1, 300000) a JOIN generate_series(1, 300000) b ON a.value = b.value",
        )
        .await,
        Code::ResourceExhausted,
        "server.limits.query_memory",
    );
    server.stop().await;
}

#[tokio::test]
async fn concurrency_limits_refuse_and_free_their_slots() {
    let server = start(
        "allow_anonymous = true\n[server.limits]\nmax_concurrent_queries_per_user = 1\nmax_concurrent_queries = 2",
    )
    .await;
    let ann = server.client("ann", "ann-pw").await;
    let olly = server.client("olly", "olly-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&ann))).await;
    let mut other = connect_raw(&server, Some(&token_of(&olly))).await;
    // One query at a time per user: a second is refused while the first
    // runs, and admitted once the first is gone.
    let info = ok(raw
        .info(CommandStatementQuery {
            query: "SELECT value FROM generate_series(1, 100000000)".into(),
            transaction_id: None,
        })
        .await);
    let first = {
        let request = raw.request(ticket_of(&info));
        ok(raw.client.do_get(request).await).into_inner()
    };
    assert_code(
        raw.query("SELECT 1").await,
        Code::ResourceExhausted,
        "max_concurrent_queries_per_user",
    );
    // Two queries on the server at most: olly's second one is refused.
    let info_olly = ok(other
        .info(CommandStatementQuery {
            query: ENDLESS.into(),
            transaction_id: None,
        })
        .await);
    let olly_first = {
        let request = other.request(ticket_of(&info_olly));
        ok(other.client.do_get(request).await).into_inner()
    };
    let mut anonymous = connect_raw(&server, None).await;
    assert_code(
        anonymous.query("SELECT 1").await,
        Code::ResourceExhausted,
        "the server already runs 2 queries (server.limits.max_concurrent_queries)",
    );
    drop(olly_first);
    drop(first);
    let mut admitted = false;
    for _ in 0..50 {
        if raw.query("SELECT 1").await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "the first query's slot was not freed");
    let metrics = server.metrics_text("/metrics").await;
    assert!(metrics.contains("spar_queries_running 0"), "{metrics}");
    server.stop().await;
}

/// Starts the endless query as `client`'s user; its `FlightInfo` and its
/// result stream, once it runs.
async fn start_endless(
    server: &Server,
    client: &FlightSqlServiceClient<Channel>,
) -> (FlightInfo, tonic::Streaming<arrow_flight::FlightData>) {
    let mut raw = connect_raw(server, Some(&token_of(client))).await;
    let info = ok(raw
        .info(CommandStatementQuery {
            query: ENDLESS.into(),
            transaction_id: None,
        })
        .await);
    let request = raw.request(ticket_of(&info));
    let stream = ok(raw.client.do_get(request).await).into_inner();
    // Let it start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (info, stream)
}

#[tokio::test]
async fn cancel_flight_info_stops_a_running_query() {
    let server = start("").await;
    let client = server.client("ann", "ann-pw").await;
    let (info, mut stream) = start_endless(&server, &client).await;
    // Cancel through the action.
    let mut other = connect_raw(&server, Some(&token_of(&client))).await;
    let result = ok(cancel(&mut other, info.clone()).await);
    assert_eq!(result, CancelStatus::Cancelled);
    let error = first_error(&mut stream)
        .await
        .unwrap_or_else(|| panic!("the cancelled query ended without an error"));
    assert_eq!(error.code(), Code::Cancelled, "{error}");
    // Cancelling again: nothing runs under that id any more.
    let again = ok(cancel(&mut other, info).await);
    assert_eq!(again, CancelStatus::NotCancellable);
    server.stop().await;
}

/// `CancelFlightInfo` through the plain Flight client, with the token.
async fn cancel(raw: &mut Raw, info: FlightInfo) -> Result<CancelStatus, Status> {
    let action = Action::new(
        "CancelFlightInfo",
        CancelFlightInfoRequest::new(info).encode_to_vec(),
    );
    let request = raw.request(action);
    let mut results = raw.client.do_action(request).await?.into_inner();
    let body = results
        .message()
        .await?
        .ok_or_else(|| Status::internal("no result"))?;
    let result = arrow_flight::CancelFlightInfoResult::decode(body.body)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(result.status())
}

#[tokio::test]
async fn cancelling_stops_the_query_on_the_source() {
    let pg = ok(PgServer::start().await);
    ok(pg.create_database("cancel").await);
    ok(pg
        .execute(
            "cancel",
            "CREATE TABLE t AS SELECT g AS x FROM generate_series(1, 2000) g; ANALYZE t;",
        )
        .await);
    let server = start_with_sources(
        "",
        &format!(
            "[sources.pg]\nkind = \"postgres\"\nreplicas = [\"{}\"]\n",
            pg.url("cancel")
        ),
    )
    .await;
    let client = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    // Pushed whole to PostgreSQL: 8e9 combinations, minutes of work there.
    let sql =
        "SELECT count(*) FROM pg.public.t a CROSS JOIN pg.public.t b CROSS JOIN pg.public.t c";
    let info = ok(raw
        .info(CommandStatementQuery {
            query: sql.into(),
            transaction_id: None,
        })
        .await);
    let request = raw.request(ticket_of(&info));
    let mut stream = ok(raw.client.do_get(request).await).into_inner();
    let pg_client = ok(pg.connect("cancel").await);
    let running = || async {
        let rows = ok(pg_client
            .query(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%CROSS JOIN%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await);
        rows[0].get::<_, i64>(0)
    };
    let mut started = false;
    for _ in 0..100 {
        if running().await > 0 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the fragment never showed up on PostgreSQL");
    let mut other = connect_raw(&server, Some(&token_of(&client))).await;
    assert_eq!(ok(cancel(&mut other, info).await), CancelStatus::Cancelled);
    let ended = first_error(&mut stream).await;
    assert!(
        matches!(&ended, Some(s) if s.code() == Code::Cancelled),
        "{ended:?}"
    );
    let mut stopped = false;
    for _ in 0..100 {
        if running().await == 0 {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !stopped {
        let rows = ok(pg_client
            .query("SELECT pid, state, backend_type, wait_event, query FROM pg_stat_activity WHERE query LIKE '%CROSS JOIN%' AND pid <> pg_backend_pid()", &[])
            .await);
        let described: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{:?} {:?} {:?} {:?} {:?}",
                    r.get::<_, i32>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, Option<String>>(2),
                    r.get::<_, Option<String>>(3),
                    r.get::<_, Option<String>>(4)
                )
            })
            .collect();
        panic!("PostgreSQL still runs the cancelled fragment: {described:#?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let server = start("").await;
    let client = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    ok(raw.query(JOIN).await);
    let _ = raw.query("SELECT * FROM nowhere").await;
    let health = server.metrics_text("/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let text = server.metrics_text("/metrics").await;
    for needle in [
        "spar_queries_total{outcome=\"ok\"} 1",
        "spar_query_errors_total{code=\"NotFound\"} 1",
        "spar_query_duration_seconds_count 1",
        "spar_rows_out_total 5",
        "spar_fragments_total{source=\"sales\"}",
        "spar_fragments_total{source=\"crm\"}",
        "spar_replica_up{source=\"sales\",replica=",
        "spar_fragment_hedges_total{source=\"sales\"} 0",
        "spar_fragment_hedges_won_total{source=\"sales\"} 0",
        "spar_replica_first_batch_seconds_count{source=\"sales\",replica=",
        "spar_replica_first_batch_seconds_bucket{",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let mut ca = ok(TestCa::new("spar-test-ca"));
    let server = start_with("", Some((&mut ca, false))).await;
    let mut client = server.client("ann", "ann-pw").await;
    let info = ok(client
        .execute("SELECT count(*) FROM orders".into(), None)
        .await);
    assert_eq!(lines(&fetch(&mut client, info).await), ["50"]);
    // Plain gRPC to a TLS port fails.
    let plain = Endpoint::new(format!("http://{}", server.addr))
        .map(|e| e.connect_timeout(Duration::from_secs(5)));
    let plain = ok(plain).connect().await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => FlightSqlServiceClient::new(channel)
            .handshake("ann", "ann-pw")
            .await
            .is_err(),
    };
    assert!(refused, "a plain-text client got through to a TLS server");
    server.stop().await;

    // mTLS: a client certificate from the CA is required.
    let server = start_with("", Some((&mut ca, true))).await;
    let mut client = server.client("ann", "ann-pw").await;
    let info = ok(client.execute("SELECT 1".into(), None).await);
    assert_eq!(lines(&fetch(&mut client, info).await), ["1"]);
    let without_cert = {
        let tls = server.tls.as_ref().map(|t| {
            ClientTlsConfig::new()
                .ca_certificate(t.ca.clone())
                .domain_name("localhost")
        });
        let endpoint = ok(Endpoint::new(format!("https://{}", server.addr)));
        let endpoint = ok(endpoint.tls_config(tls.unwrap_or_default()));
        match endpoint.connect().await {
            Err(_) => true,
            Ok(channel) => FlightSqlServiceClient::new(channel)
                .handshake("ann", "ann-pw")
                .await
                .is_err(),
        }
    };
    assert!(
        without_cert,
        "a client without a certificate got through with mTLS on"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_queries_finish_then_cancels_them() {
    let server = start("shutdown_grace = \"1s\"").await;
    let client = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    let info = ok(raw
        .info(CommandStatementQuery {
            query: ENDLESS.into(),
            transaction_id: None,
        })
        .await);
    let request = raw.request(ticket_of(&info));
    let mut stream = ok(raw.client.do_get(request).await).into_inner();
    let started = std::time::Instant::now();
    let addr = server.addr;
    server.stop().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "the running query got no grace period ({elapsed:?})"
    );
    let status = first_error(&mut stream)
        .await
        .unwrap_or_else(|| panic!("the query ended without an error after shutdown"));
    assert!(
        matches!(
            status.code(),
            Code::Cancelled | Code::Unavailable | Code::Unknown
        ),
        "{status}"
    );
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// `n` terms joined by `op`.
fn chain(term: impl Fn(usize) -> String, op: &str, n: usize) -> String {
    (0..n).map(term).collect::<Vec<_>>().join(op)
}

/// Deep expressions, on a runtime whose threads have the stacks the `spar`
/// binary gives its own.
#[test]
fn deep_expressions_are_answered_or_refused_and_the_server_keeps_serving() {
    let runtime = ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(spar_engine::STACK_SIZE)
        .enable_all()
        .build());
    runtime.block_on(deep_expressions());
}

async fn deep_expressions() {
    let server = start("").await;
    let client = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&client))).await;
    // Each of these aborted the server (a thread's stack overflowed).
    let and = format!(
        "SELECT count(*) FROM orders WHERE {}",
        chain(|i| format!("id <> {}", i + 100), " AND ", 1500)
    );
    assert_eq!(lines(&ok(raw.query(&and).await)), ["50"]);
    let or = format!(
        "SELECT count(*) FROM orders WHERE {}",
        chain(|i| format!("amount = {}", i * 10), " OR ", 2000)
    );
    assert_eq!(lines(&ok(raw.query(&or).await)), ["50"]);
    let plus = format!(
        "SELECT {} FROM orders WHERE id = 1",
        chain(|_| "id".into(), " + ", 1500)
    );
    assert_eq!(lines(&ok(raw.query(&plus).await)), ["1500"]);
    let concat = format!(
        "SELECT length({}) FROM orders WHERE id = 1",
        chain(|_| "CAST(id AS VARCHAR)".into(), " || ", 1500)
    );
    assert_eq!(lines(&ok(raw.query(&concat).await)), ["1500"]);
    // Deeper than the documented limit: a clear refusal.
    let too_deep = format!(
        "SELECT count(*) FROM orders WHERE {}",
        chain(
            |i| format!("id <> {i}"),
            " AND ",
            spar_engine::MAX_EXPR_DEPTH + 1
        )
    );
    assert_code(
        raw.query(&too_deep).await,
        Code::InvalidArgument,
        "levels deep",
    );
    assert_eq!(
        lines(&ok(raw.query("SELECT count(*) FROM orders").await)),
        ["50"]
    );
    server.stop().await;
}

#[tokio::test]
async fn forged_tickets_are_refused_without_decoding_and_the_server_keeps_serving() {
    let server = start("").await;
    let ann = server.client("ann", "ann-pw").await;
    let mut raw = connect_raw(&server, Some(&token_of(&ann))).await;
    let handle = ok(raw.prepare("SELECT id FROM orders WHERE id < $1").await);
    let cmd = CommandPreparedStatementQuery {
        prepared_statement_handle: handle,
    };
    // Bind $1 = 3 (one row of Arrow IPC through DoPut).
    let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)]));
    let row = ok(RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(arrow::array::Int64Array::from(vec![3]))],
    ));
    let flight = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(
            cmd.as_any().encode_to_vec(),
        )))
        .build(futures::stream::iter([Ok(row)]))
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")));
    let request = raw.request(flight);
    let mut put = ok(raw.client.do_put(request).await).into_inner();
    while let Some(r) = put.next().await {
        ok(r);
    }
    let info = ok(raw.info(cmd).await);
    let ticket = ticket_of(&info);
    // Every byte changed, and every cut: refused, never decoded.
    let bytes = ticket.ticket.to_vec();
    for i in 0..bytes.len() {
        let mut forged = bytes.clone();
        forged[i] ^= 0x5a;
        let e = raw.fetch(Ticket::new(forged)).await;
        assert!(e.is_err(), "byte {i} changed was accepted");
    }
    for len in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(raw.fetch(Ticket::new(bytes[..len].to_vec())).await.is_err());
    }
    // Another user cannot redeem it, and cannot cancel through it.
    let olly = server.client("olly", "olly-pw").await;
    let mut other = connect_raw(&server, Some(&token_of(&olly))).await;
    assert_code(
        other.fetch(ticket.clone()).await,
        Code::InvalidArgument,
        "invalid statement ticket",
    );
    // Its owner can, twice (the second time from the ticket alone).
    assert_eq!(lines(&ok(raw.fetch(ticket.clone()).await)), ["1", "2"]);
    assert_eq!(lines(&ok(raw.fetch(ticket).await)), ["1", "2"]);
    server.stop().await;
}

#[tokio::test]
async fn only_the_owner_of_a_query_can_cancel_it() {
    let server = start("").await;
    let ann = server.client("ann", "ann-pw").await;
    let (info, mut stream) = start_endless(&server, &ann).await;
    let olly = server.client("olly", "olly-pw").await;
    let mut other = connect_raw(&server, Some(&token_of(&olly))).await;
    assert_eq!(
        ok(cancel(&mut other, info.clone()).await),
        CancelStatus::NotCancellable
    );
    // Still running: a batch arrives after the refused cancel.
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    assert!(matches!(next, Ok(Some(Ok(_)))), "{next:?}");
    let mut owner = connect_raw(&server, Some(&token_of(&ann))).await;
    assert_eq!(ok(cancel(&mut owner, info).await), CancelStatus::Cancelled);
    server.stop().await;
}

/// This process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_stays_in_bounded_memory_and_backs_off() {
    let server = start("").await;
    let before = resident_bytes();
    // 4 rounds of 50 parallel wrong passwords took a server from 39 MiB to
    // 3.8 GiB when every attempt ran argon2 at once.
    let mut refused = 0;
    for _ in 0..4 {
        let attempts = (0..50).map(|i| {
            let channel = server.channel();
            async move {
                let mut c = FlightSqlServiceClient::new(ok(channel.await));
                let user = if i % 2 == 0 { "ann" } else { "nobody" };
                c.handshake(user, "wrong").await
            }
        });
        for result in futures::future::join_all(attempts).await {
            let e = result
                .err()
                .unwrap_or_else(|| panic!("a wrong password was accepted"));
            if e.to_string().contains("too many") {
                refused += 1;
            }
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    println!(
        "handshake flood: 200 attempts, {refused} refused by back-off, memory grew {} MiB",
        grown >> 20
    );
    assert!(grown < 256 << 20, "memory grew by {} MiB", grown >> 20);
    assert!(refused > 0, "no attempt was refused by the back-off");
    // The right password is refused while the name is locked, and
    // accepted once the lock has passed.
    let mut c = FlightSqlServiceClient::new(ok(server.channel().await));
    let started = std::time::Instant::now();
    loop {
        match c.handshake("ann", "ann-pw").await {
            Ok(_) => break,
            Err(e) => {
                assert!(e.to_string().contains("too many failed logins"), "{e}");
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "still locked: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let server = start("metrics_token = \"0123456789abcdef-metrics\"").await;
    let open = server.metrics_text("/metrics").await;
    assert!(open.starts_with("HTTP/1.1 401"), "{open}");
    assert!(!open.contains("spar_queries"), "{open}");
    let wrong = server
        .metrics_text_with(
            "/metrics",
            "Authorization: Bearer 0123456789abcdef-metricz\r\n",
        )
        .await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let right = server
        .metrics_text_with(
            "/metrics",
            "Authorization: Bearer 0123456789abcdef-metrics\r\n",
        )
        .await;
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    assert!(server
        .metrics_text("/health")
        .await
        .starts_with("HTTP/1.1 200"));
    server.stop().await;
}

#[tokio::test]
async fn system_replicas_needs_a_grant_that_names_it() {
    let server = start("").await;
    // `ann` may read every source (`*`), but not Spar's own state.
    let mut ann = server.client("ann", "ann-pw").await;
    let catalogs = ok(ann.get_catalogs().await);
    assert_eq!(lines(&fetch(&mut ann, catalogs).await), ["crm", "sales"]);
    let mut raw = connect_raw(&server, Some(&token_of(&ann))).await;
    assert_code(
        raw.query("SELECT * FROM system.replicas").await,
        Code::NotFound,
        "not found",
    );
    // `ops` holds `system.*`.
    let mut ops = server.client("ops", "ops-pw").await;
    let catalogs = ok(ops.get_catalogs().await);
    assert_eq!(lines(&fetch(&mut ops, catalogs).await), ["system"]);
    let mut raw = connect_raw(&server, Some(&token_of(&ops))).await;
    let replicas = ok(raw
        .query("SELECT source, state, replica LIKE 'sqlite:%' FROM system.replicas ORDER BY source")
        .await);
    assert_eq!(lines(&replicas), ["crm|healthy|true", "sales|healthy|true"]);
    server.stop().await;
}
