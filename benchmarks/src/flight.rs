//! `spar serve` throughput and latency, against the embedded API in the
//! same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin flight -- [SCALE_FACTOR] [RUNS] [CLIENTS] [QUERIES_PER_CLIENT]
//! ```
//!
//! 1. Throughput: TPC-H `lineitem` (in SQLite, then in Parquet) read whole, once through
//!    `Session::sql` and `execute_stream` (the baseline) and once by a
//!    Flight SQL client (`GetFlightInfo` + `DoGet`, batches decoded) from
//!    `spar serve` running in the same process on loopback. Runs
//!    alternate; each figure is the best of RUNS. Target: Flight ≥ 0.8× the
//!    embedded rows/s.
//! 2. Latency: CLIENTS concurrent clients (default 32), each running a
//!    small query QUERIES_PER_CLIENT times in a row (new `GetFlightInfo`
//!    and `DoGet` each time), against the same number of concurrent
//!    embedded sessions doing the same; p50 and p99 of each.

use std::time::{Duration, Instant};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::FlightDescriptor;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use spar_engine::{Config, Engine};
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SMALL: &str = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = 7";

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1.0);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);
    let per_client: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);

    let dir = tempfile::tempdir()?;
    eprintln!("writing lineitem and nation at scale {scale} to Parquet ...");
    std::fs::create_dir(dir.path().join("data"))?;
    for table in ["lineitem", "nation"] {
        spar_server::demo::write_parquet(
            &dir.path().join("data").join(format!("{table}.parquet")),
            table,
            scale,
        )
        .map_err(|e| e.to_string())?;
    }
    eprintln!("writing lineitem at scale {scale} to SQLite ...");
    spar_server::demo::write_sqlite(&dir.path().join("lineitem.db"), &["lineitem"], scale)
        .map_err(|e| e.to_string())?;
    // Every client is anonymous here: the per-user limit must admit them all.
    let toml = format!(
        "search_path = [\"tpch.main\"]\n\
         [sources.tpch]\nkind = \"files\"\nlocation = \"data\"\nformat = \"parquet\"\n\
         [sources.lite]\nkind = \"sqlite\"\nreplicas = [\"lineitem.db\"]\n\
         [server]\nallow_anonymous = true\n\
         [server.limits]\nmax_concurrent_queries = {n}\nmax_concurrent_queries_per_user = {n}\n",
        n = clients.max(1) * 2
    );
    let toml = toml.as_str();
    let config = Config::from_toml(toml, "flight benchmark", dir.path())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let engine = Engine::from_config(config.clone()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_engine = engine.clone();
        let server = tokio::spawn(async move {
            spar_server::flight::run(server_engine, &config, listener, None, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
        });
        // HTTP/2's defaults (64 KiB windows, 16 KiB frames) cap a stream's
        // throughput on loopback; a client that reads bulk results sets
        // larger ones (1 MiB frames: 1.4x the rows/s here).
        let channel = Endpoint::new(format!("http://{addr}"))?
            .initial_stream_window_size(Some(16 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .max_frame_size(Some(1 << 20))
            .connect()
            .await?;

        println!("flight benchmark: TPC-H scale {scale}, loopback, best of {runs}");
        println!();
        println!(
            "{:<34} {:>12} {:>10} {:>14}",
            "throughput (lineitem)", "rows", "seconds", "rows/s"
        );
        for (source, sql) in [
            ("SQLite", "SELECT * FROM lite.main.lineitem"),
            ("Parquet", "SELECT * FROM tpch.main.lineitem"),
        ] {
            let (mut embedded, mut flight) = (Duration::MAX, Duration::MAX);
            let mut rows = (0, 0);
            for _ in 0..runs {
                let started = Instant::now();
                rows.0 = embedded_rows(&engine, sql).await?;
                embedded = embedded.min(started.elapsed());
                let started = Instant::now();
                rows.1 = flight_rows(&channel, sql).await?;
                flight = flight.min(started.elapsed());
            }
            if rows.0 != rows.1 {
                return Err(
                    format!("row counts differ: embedded {}, flight {}", rows.0, rows.1).into(),
                );
            }
            let line = |how: &str, rows: usize, d: Duration| {
                println!(
                    "{:<34} {:>12} {:>10.3} {:>14.0}",
                    format!("{source}: {how}"),
                    rows,
                    d.as_secs_f64(),
                    rows as f64 / d.as_secs_f64()
                );
            };
            line("embedded (Session::sql)", rows.0, embedded);
            line("Flight SQL (DoGet)", rows.1, flight);
            println!(
                "{source}: flight / embedded rows/s = {:.2} (target >= 0.80)",
                embedded.as_secs_f64() / flight.as_secs_f64()
            );
        }

        println!();
        println!("latency: `{SMALL}`, {clients} concurrent clients x {per_client} queries");
        println!(
            "{:<28} {:>10} {:>10} {:>12}",
            "", "p50 ms", "p99 ms", "queries/s"
        );
        let (lat, took) = concurrent(clients, per_client, {
            let engine = engine.clone();
            move || {
                let engine = engine.clone();
                async move { embedded_rows(&engine, SMALL).await.map(|_| ()) }
            }
        })
        .await?;
        report("embedded (Session::sql)", &lat, took);
        let (lat, took) = concurrent(clients, per_client, {
            let channel = channel.clone();
            move || {
                let channel = channel.clone();
                async move { flight_rows(&channel, SMALL).await.map(|_| ()) }
            }
        })
        .await?;
        report("Flight SQL", &lat, took);

        let _ = stop.send(());
        server.await?.map_err(BoxError::from)?;
        Ok::<(), BoxError>(())
    })
}

async fn embedded_rows(engine: &Engine, sql: &str) -> Result<usize, BoxError> {
    let mut stream = engine.session().sql(sql).await?.execute_stream().await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

async fn flight_rows(channel: &Channel, sql: &str) -> Result<usize, BoxError> {
    let mut client = FlightServiceClient::new(channel.clone());
    let command = CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let info = client
        .get_flight_info(Request::new(descriptor))
        .await?
        .into_inner();
    let mut rows = 0;
    for endpoint in info.endpoint {
        let Some(ticket) = endpoint.ticket else {
            continue;
        };
        let data = client.do_get(Request::new(ticket)).await?.into_inner();
        let mut batches =
            FlightRecordBatchStream::new_from_flight_data(data.map_err(FlightError::from));
        while let Some(batch) = batches.next().await {
            rows += batch?.num_rows();
        }
    }
    Ok(rows)
}

/// Runs `clients` tasks, each calling `query` `per_client` times; every
/// call's latency and the wall time of the whole.
async fn concurrent<F, Fut>(
    clients: usize,
    per_client: usize,
    query: F,
) -> Result<(Vec<Duration>, Duration), BoxError>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let query = query.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                query().await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, BoxError>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((all, started.elapsed()))
}

fn report(name: &str, latencies: &[Duration], took: Duration) {
    let mut sorted: Vec<Duration> = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:<28} {:>10.2} {:>10.2} {:>12.0}",
        name,
        at(0.50),
        at(0.99),
        sorted.len() as f64 / took.as_secs_f64()
    );
}
