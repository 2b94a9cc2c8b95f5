//! Entry points for fuzzers: each takes arbitrary bytes, feeds them to the
//! code that reads that kind of client input, and must return without
//! panicking, aborting or hanging, whatever the bytes.
//!
//! - [`ticket`]: a `DoGet` ticket (the Flight SQL `Any` wrapper, the
//!   statement ticket, its seal).
//! - [`command`]: a `GetFlightInfo` command and the actions' bodies
//!   (cancel requests carry whole `FlightInfo`s with tickets).
//! - [`flight_data`]: a `DoPut` stream of Flight data (length-prefixed
//!   messages), read as a prepared statement's parameter row.
//! - [`config`]: a `spar.toml`.
//! - [`sql`]: SQL text, parsed, planned and optimized (pushdown and the
//!   SQL sent to a SQLite source), not run.
//!
//! The coverage-guided targets in `fuzz/` call these; the test
//! `server/tests/fuzz.rs` replays the checked-in corpus and mutates it for
//! a bounded time in CI.

use std::sync::OnceLock;

use arrow_flight::sql::{
    ActionCancelQueryRequest, Any, Command, ProstMessageExt, TicketStatementQuery,
};
use arrow_flight::{CancelFlightInfoRequest, FlightData, FlightInfo};
use prost::Message;

use crate::flight::ticket::TicketKey;

fn key() -> &'static TicketKey {
    static KEY: OnceLock<TicketKey> = OnceLock::new();
    KEY.get_or_init(TicketKey::random)
}

/// Reads `data` as a `DoGet` ticket, as the server does.
pub fn ticket(data: &[u8]) {
    let Ok(any) = Any::decode(data) else {
        return;
    };
    if let Ok(Some(t)) = any.unpack::<TicketStatementQuery>() {
        let _ = key().open(&t.statement_handle, "fuzz");
    }
    let _ = Command::try_from(any);
}

/// Reads `data` as a `GetFlightInfo` command and as the bodies of the
/// actions the server takes.
pub fn command(data: &[u8]) {
    if let Ok(any) = Any::decode(data) {
        let _ = Command::try_from(any);
    }
    let infos = [
        CancelFlightInfoRequest::decode(data)
            .ok()
            .and_then(|r| r.info),
        Any::decode(data)
            .ok()
            .and_then(|a| a.unpack::<ActionCancelQueryRequest>().ok().flatten())
            .and_then(|r| FlightInfo::decode(r.info.as_ref()).ok()),
        FlightInfo::decode(data).ok(),
    ];
    for info in infos.into_iter().flatten() {
        for endpoint in &info.endpoint {
            if let Some(t) = &endpoint.ticket {
                ticket(&t.ticket);
            }
        }
        let _ = info.try_decode_schema();
    }
    let _ = TicketStatementQuery::decode(data).map(|t| t.as_any());
}

/// Reads `data` as a `DoPut` stream: Flight data messages, each prefixed
/// by its length in two bytes (little-endian), then the parameter row.
pub fn flight_data(data: &[u8]) {
    let mut messages = Vec::new();
    let mut rest = data;
    while let [a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
        let (message, after) = tail.split_at(len);
        if let Ok(m) = FlightData::decode(message) {
            messages.push(Ok(m));
        }
        rest = after;
    }
    let _ = futures::executor::block_on(crate::flight::ipc::parameter_row(futures::stream::iter(
        messages,
    )));
}

/// Reads `data` as a `spar.toml`.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = spar_engine::Config::from_toml(text, "fuzz.toml", std::path::Path::new("/"));
    }
}

/// Plans and optimizes `data` as SQL over a SQLite source (made once, in
/// the temporary directory).
pub fn sql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((runtime, session)) = sql_session() else {
        return;
    };
    runtime.block_on(async {
        if let Ok(df) = session.sql(text).await {
            let _ = df.into_optimized_plan();
        }
    });
}

/// The runtime and session [`sql`] plans with; `None` when the SQLite
/// file cannot be made.
fn sql_session() -> Option<&'static (tokio::runtime::Runtime, spar_engine::Session)> {
    static SESSION: OnceLock<Option<(tokio::runtime::Runtime, spar_engine::Session)>> =
        OnceLock::new();
    SESSION
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("spar-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            let path = dir.join("fuzz.db");
            let conn = rusqlite::Connection::open(&path).ok()?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT, amount REAL, day DATE);
                 CREATE TABLE IF NOT EXISTS `we'ird \"t\"` (`c\\` TEXT);",
            )
            .ok()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_stack_size(spar_engine::STACK_SIZE)
                .enable_all()
                .build()
                .ok()?;
            let engine = runtime
                .block_on(
                    spar_engine::Engine::builder()
                        .with_source(
                            "lite",
                            spar_engine::SourceConfig::Sqlite(
                                spar_engine::SqliteSourceConfig::new([path]),
                            ),
                        )
                        .with_search_path(["lite.main"])
                        .build(),
                )
                .ok()?;
            let session = engine.session();
            Some((runtime, session))
        })
        .as_ref()
}
