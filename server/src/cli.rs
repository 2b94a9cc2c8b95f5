//! The command line: `spar query`, `spar shell`, `spar demo`, `spar serve`,
//! `spar hash-password`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use spar_engine::{Engine, Session};
use tokio::runtime::Runtime;

use crate::error::CliError;
use crate::output::{Format, Writer};
use crate::remote::Remote;
use crate::shell::Backend;

/// Spar: one SQL query over many databases and files.
#[derive(Debug, Parser)]
#[command(name = "spar", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log filter for messages on stderr (e.g. `info`, `spar_engine=debug`).
    #[arg(long, global = true, env = "SPAR_LOG", default_value = "warn")]
    log: String,

    /// Log format on stderr: `text`, or `json` (one object per line, with
    /// fields such as `query_id` and `user`).
    #[arg(long, global = true, env = "SPAR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SQL and print the result (SQL as an argument, from -f FILE, or on stdin).
    Query(QueryArgs),
    /// Interactive SQL shell, local or on a Flight SQL server (also reads statements piped to stdin).
    Shell(ShellArgs),
    /// Write the demo dataset (TPC-H in SQLite replicas and Parquet) and open the shell on it.
    Demo(DemoArgs),
    /// Serve SQL over Arrow Flight SQL, with the users, TLS, limits and metrics endpoint of spar.toml's [server].
    Serve(ServeArgs),
    /// Print the argon2id hash of a password (asked for, or read from stdin) for a [[users]] entry.
    HashPassword,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The configuration file.
    #[arg(short = 'c', long, default_value = "spar.toml", env = "SPAR_CONFIG")]
    config: PathBuf,
    /// Listen on this address instead of server.listen.
    #[arg(long)]
    listen: Option<String>,
    /// Serve /metrics and /health on this address instead of server.metrics.
    #[arg(long)]
    metrics: Option<String>,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// The configuration file.
    #[arg(short = 'c', long, default_value = "spar.toml", env = "SPAR_CONFIG")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Read the SQL from this file.
    #[arg(short = 'f', long, conflicts_with = "sql")]
    file: Option<PathBuf>,
    /// Stop a statement that runs longer than this (30s, 2m, 500ms; 0 for no limit).
    #[arg(long, value_name = "DURATION", default_value = "0")]
    statement_timeout: spar_engine::Timeout,
    /// The SQL to run; several statements may be separated by `;`.
    sql: Option<String>,
}

#[derive(Debug, Args)]
struct ShellArgs {
    /// The configuration file (of the embedded engine; unused with --connect).
    #[arg(short = 'c', long, default_value = "spar.toml", env = "SPAR_CONFIG")]
    config: PathBuf,
    /// Run statements on a Flight SQL server: grpc://host:port or grpc+tls://host:port.
    #[arg(long, value_name = "URL")]
    connect: Option<String>,
    /// The user to authenticate as (password from SPAR_PASSWORD, else asked for).
    #[arg(long, requires = "connect")]
    user: Option<String>,
    /// PEM file of the CA that signed the server's certificate (default: the system's roots).
    #[arg(long, requires = "connect", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Stop a statement that runs longer than this (30s, 2m, 500ms; 0 for no limit).
    /// Local engine only: a server applies its own server.limits.query_timeout.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0",
        conflicts_with = "connect"
    )]
    statement_timeout: spar_engine::Timeout,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the demo dataset and its spar.toml are written (reused when present).
    #[arg(long, default_value = "spar-demo")]
    dir: PathBuf,
    /// Run this SQL and exit instead of opening the shell.
    #[arg(long)]
    query: Option<String>,
    /// Output format for --query.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Stop a statement that runs longer than this (30s, 2m, 500ms; 0 for no limit).
    #[arg(long, value_name = "DURATION", default_value = "0")]
    statement_timeout: spar_engine::Timeout,
}

/// Runs the command line; errors are printed to stderr.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli.log, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(spar_engine::STACK_SIZE)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Query(args) => query(&runtime, args),
        Command::Shell(args) => shell(&runtime, args),
        Command::Demo(args) => demo(&runtime, args),
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::HashPassword => hash_password(),
    };
    // Work still running (a cancelled query's last poll) is not waited for.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn shell(runtime: &Runtime, args: ShellArgs) -> Result<(), CliError> {
    let Some(url) = args.connect else {
        let session = open_engine(runtime, &args.config, args.statement_timeout)?;
        return crate::shell::run(runtime, &Backend::Local(session));
    };
    let password = match &args.user {
        None => None,
        Some(user) => Some(match std::env::var("SPAR_PASSWORD") {
            Ok(p) => p,
            Err(_) => rpassword::prompt_password(format!("Password for {user}: ")).map_err(
                CliError::io(
                    "cannot read the password (set SPAR_PASSWORD when there is no terminal)",
                ),
            )?,
        }),
    };
    let remote = runtime.block_on(Remote::connect(
        &url,
        args.user.as_deref(),
        password.as_deref(),
        args.ca.as_deref(),
    ))?;
    crate::shell::run(runtime, &Backend::Remote(remote))
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut config = spar_engine::Config::from_file(&args.config)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(metrics) = args.metrics {
        config.server.metrics = Some(metrics);
    }
    for warning in config.warnings() {
        eprintln!("spar: warning: {warning}");
    }
    let engine = Engine::from_config(config.clone()).await?;
    let bind = |addr: String, what: &'static str| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(CliError::io(format!("cannot listen on {addr} ({what})")))
    };
    let listener = bind(config.server.listen.clone(), "server.listen").await?;
    let metrics = match config.server.metrics.clone() {
        Some(addr) => Some(bind(addr, "server.metrics").await?),
        None => None,
    };
    let scheme = if config.server.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    if let Ok(addr) = listener.local_addr() {
        eprintln!("spar: serving Flight SQL on {scheme}://{addr}");
    }
    if let Some(addr) = metrics.as_ref().and_then(|l| l.local_addr().ok()) {
        eprintln!("spar: metrics on http://{addr}/metrics");
    }
    crate::flight::run(engine, &config, listener, metrics, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("spar: shutting down");
}

fn hash_password() -> Result<(), CliError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(CliError::io("cannot read the password"))?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(CliError::io("cannot read the password"))?;
        if first != again {
            return Err(CliError::Usage("the passwords differ; try again".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(CliError::io("cannot read the password from stdin"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }
    let hash = crate::flight::hash_password(&password)
        .map_err(|e| CliError::Serve(format!("cannot hash the password: {e}")))?;
    println!("{hash}");
    Ok(())
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (in tests) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn open_engine(
    runtime: &Runtime,
    config: &std::path::Path,
    statement_timeout: spar_engine::Timeout,
) -> Result<Session, CliError> {
    let engine = runtime.block_on(Engine::from_file(config))?;
    let session = engine.session();
    session.set_statement_timeout(statement_timeout.0);
    Ok(session)
}

fn query(runtime: &Runtime, args: QueryArgs) -> Result<(), CliError> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => std::fs::read_to_string(file).map_err(CliError::io(format!(
            "cannot read SQL file `{}`",
            file.display()
        )))?,
        (None, None) => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(CliError::Usage(
                    "no SQL given: pass it as an argument, with -f FILE, or on stdin".into(),
                ));
            }
            let mut sql = String::new();
            stdin
                .read_to_string(&mut sql)
                .map_err(CliError::io("cannot read SQL from stdin"))?;
            sql
        }
    };
    let session = open_engine(runtime, &args.config, args.statement_timeout)?;
    runtime.block_on(run_sql(
        &session,
        &sql,
        args.format,
        &mut std::io::stdout().lock(),
    ))
}

fn demo(runtime: &Runtime, args: DemoArgs) -> Result<(), CliError> {
    let config = crate::demo::prepare(&args.dir)?;
    let session = open_engine(runtime, &config, args.statement_timeout)?;
    match args.query {
        Some(sql) => runtime.block_on(run_sql(
            &session,
            &sql,
            args.format,
            &mut std::io::stdout().lock(),
        )),
        None => {
            eprintln!("Demo data in {}; try: SELECT * FROM orders LIMIT 5;  (\\d lists tables, \\q quits)", args.dir.display());
            crate::shell::run(runtime, &Backend::Local(session))
        }
    }
}

/// Runs each statement of `sql` and writes its result to `out` in `format`.
/// Returns the number of rows of the last statement.
pub async fn run_sql(
    session: &Session,
    sql: &str,
    format: Format,
    out: &mut impl Write,
) -> Result<(), CliError> {
    for statement in session.parse(sql)? {
        run_statement(session, statement, format, out).await?;
    }
    Ok(())
}

/// Runs one statement and streams its result to `out`; returns its rows.
pub async fn run_statement(
    session: &Session,
    statement: datafusion::sql::parser::Statement,
    format: Format,
    out: &mut impl Write,
) -> Result<usize, CliError> {
    let df = session.statement(statement).await?;
    let stream = df.execute_stream().await?;
    let schema = stream.schema();
    write_stream(stream, schema, format, out).await
}

/// Writes a stream of record batches to `out` in `format`; its rows.
pub(crate) async fn write_stream<E>(
    mut stream: impl futures::Stream<Item = Result<arrow::record_batch::RecordBatch, E>> + Unpin,
    schema: arrow::datatypes::SchemaRef,
    format: Format,
    out: &mut impl Write,
) -> Result<usize, CliError>
where
    CliError: From<E>,
{
    let mut writer = Writer::new(format, out, schema);
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.finish()?;
    Ok(rows)
}
