//! `spar shell`: interactive SQL, on an embedded engine or (with
//! `--connect`) on a Flight SQL server.
//!
//! Statements end with `;` and may span lines. Meta-commands start with a
//! backslash: `\q` quits, `\d` lists tables, `\d NAME` describes one,
//! `\timing` toggles timing, `\?` shows help. Ctrl-C cancels the running
//! query (or clears the line being typed), not the shell. When stdin is not
//! a terminal, statements are read from it without prompts, and the exit
//! status says whether any of them failed.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use datafusion::sql::parser::{DFParserBuilder, Statement};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use spar_engine::Session;
use tokio::runtime::Runtime;

use crate::cli::{run_statement, write_stream};
use crate::error::CliError;
use crate::output::Format;
use crate::remote::Remote;

/// What the shell runs statements on: an embedded engine, or a Flight SQL
/// server (`spar shell --connect`). Both take the same commands.
#[derive(Debug)]
pub enum Backend {
    /// A local session of an embedded engine.
    Local(Session),
    /// A Flight SQL server.
    Remote(Remote),
}

/// One statement to run.
enum Stmt {
    /// Parsed (locally, or to split text for a server).
    Parsed(Statement),
    /// Text that did not parse here: the server reports the error.
    Text(String),
}

impl Backend {
    fn split(&self, sql: &str) -> Result<Vec<Stmt>, CliError> {
        match self {
            Self::Local(session) => Ok(session.parse(sql)?.into_iter().map(Stmt::Parsed).collect()),
            Self::Remote(_) => {
                let parsed = DFParserBuilder::new(sql)
                    .build()
                    .and_then(|mut p| p.parse_statements());
                Ok(match parsed {
                    Ok(statements) => statements.into_iter().map(Stmt::Parsed).collect(),
                    Err(_) => vec![Stmt::Text(sql.trim().trim_end_matches(';').to_string())],
                })
            }
        }
    }

    /// Runs one statement and writes its result as a table; its rows.
    async fn run(&self, statement: Stmt, out: &mut impl Write) -> Result<usize, CliError> {
        match (self, statement) {
            (Self::Local(session), Stmt::Parsed(s)) => {
                run_statement(session, s, Format::Table, out).await
            }
            (Self::Local(session), Stmt::Text(sql)) => {
                let mut rows = 0;
                for s in session.parse(&sql)? {
                    rows = run_statement(session, s, Format::Table, out).await?;
                }
                Ok(rows)
            }
            (Self::Remote(remote), statement) => {
                let sql = match statement {
                    Stmt::Parsed(s) => s.to_string(),
                    Stmt::Text(sql) => sql,
                };
                let (schema, stream) = remote.query(&sql).await?;
                write_stream(stream, schema, Format::Table, out).await
            }
        }
    }
}

const HELP: &str = "\
  \\q            quit
  \\d            list tables
  \\d NAME       describe a table's columns
  \\timing       toggle printing how long each statement took
  \\?            this help
  SQL ending with ;  runs it (statements may span lines)";

/// Where lines come from: a line editor on a terminal, or piped stdin.
enum Input {
    Editor {
        editor: Box<DefaultEditor>,
        history: Option<PathBuf>,
    },
    Piped(std::io::Lines<std::io::StdinLock<'static>>),
}

impl Input {
    fn open() -> Self {
        if !std::io::stdin().is_terminal() {
            return Self::Piped(std::io::stdin().lock().lines());
        }
        match DefaultEditor::new() {
            Ok(mut editor) => {
                let history = history_path();
                if let Some(h) = &history {
                    // No history yet is normal.
                    let _ = editor.load_history(h);
                }
                Self::Editor {
                    editor: Box::new(editor),
                    history,
                }
            }
            Err(_) => Self::Piped(std::io::stdin().lock().lines()),
        }
    }

    /// The next line; `Ok(None)` at end of input; `Err(())` on Ctrl-C.
    fn read(&mut self, prompt: &str) -> Result<Option<String>, ()> {
        match self {
            Self::Editor { editor, .. } => match editor.readline(prompt) {
                Ok(line) => Ok(Some(line)),
                Err(ReadlineError::Interrupted) => Err(()),
                Err(_) => Ok(None),
            },
            Self::Piped(lines) => Ok(lines.next().and_then(Result::ok)),
        }
    }

    fn remember(&mut self, entry: &str) {
        if let Self::Editor { editor, history } = self {
            let _ = editor.add_history_entry(entry);
            if let Some(h) = history {
                if let Some(dir) = h.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = editor.save_history(h);
            }
        }
    }

    fn interactive(&self) -> bool {
        matches!(self, Self::Editor { .. })
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("SPAR_HISTORY")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("spar").join("history")))
}

/// Runs the shell until `\q` or end of input.
pub fn run(runtime: &Runtime, session: &Backend) -> Result<(), CliError> {
    let mut input = Input::open();
    let mut buffer = String::new();
    let mut timing = false;
    let mut failures = 0usize;
    loop {
        let prompt = if buffer.is_empty() {
            "spar> "
        } else {
            "  ...> "
        };
        let line = match input.read(prompt) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(()) => {
                buffer.clear();
                continue;
            }
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            input.remember(trimmed);
            match meta(runtime, session, trimmed, &mut timing) {
                Meta::Quit => break,
                Meta::Done => {}
                Meta::Failed(e) => {
                    failures += 1;
                    eprintln!("ERROR: {e}");
                }
            }
            continue;
        }
        if buffer.is_empty() && trimmed.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !ends_statement(&buffer) {
            continue;
        }
        let sql = std::mem::take(&mut buffer);
        input.remember(sql.trim());
        if let Err(e) = execute(runtime, session, &sql, timing) {
            failures += 1;
            eprintln!("ERROR: {e}");
        }
    }
    if !buffer.trim().is_empty() {
        // Input ended inside a statement: run it, as psql does.
        if let Err(e) = execute(runtime, session, &buffer, timing) {
            failures += 1;
            eprintln!("ERROR: {e}");
        }
    }
    if failures > 0 && !input.interactive() {
        return Err(CliError::Usage(format!("{failures} statement(s) failed")));
    }
    Ok(())
}

enum Meta {
    Quit,
    Done,
    Failed(CliError),
}

fn meta(runtime: &Runtime, session: &Backend, command: &str, timing: &mut bool) -> Meta {
    let mut parts = command.splitn(2, char::is_whitespace);
    let name = parts.next().unwrap_or_default();
    let arg = parts.next().map(str::trim).filter(|a| !a.is_empty());
    let sql = match (name, arg) {
        ("\\q" | "\\quit", _) => return Meta::Quit,
        ("\\?" | "\\h" | "\\help", _) => {
            println!("{HELP}");
            return Meta::Done;
        }
        ("\\timing", _) => {
            *timing = !*timing;
            println!("Timing is {}.", if *timing { "on" } else { "off" });
            return Meta::Done;
        }
        ("\\d", None) => "SELECT table_catalog AS source, table_schema AS schema, table_name AS name, table_type AS type \
             FROM information_schema.tables \
             WHERE table_catalog <> 'spar' AND table_schema <> 'information_schema' \
             ORDER BY 1, 2, 3;"
            .to_string(),
        ("\\d", Some(table)) => format!("DESCRIBE {table};"),
        _ => return Meta::Failed(CliError::Usage(format!("unknown command `{name}`; \\? lists the commands"))),
    };
    match execute(runtime, session, &sql, *timing) {
        Ok(()) => Meta::Done,
        Err(e) => Meta::Failed(e),
    }
}

/// Whether `sql` ends with a `;` outside quotes and comments.
fn ends_statement(sql: &str) -> bool {
    let mut last = None;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                last = Some(c);
            }
            None if c == '-' && chars.peek() == Some(&'-') => {
                // A line comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            None if !c.is_whitespace() => last = Some(c),
            None => {}
        }
    }
    quote.is_none() && last == Some(';')
}

/// Runs every statement in `sql`, printing results as tables; Ctrl-C
/// cancels the running statement (dropping it stops its fragments).
fn execute(runtime: &Runtime, session: &Backend, sql: &str, timing: bool) -> Result<(), CliError> {
    for statement in session.split(sql)? {
        let started = Instant::now();
        let mut out = std::io::stdout().lock();
        let rows = runtime.block_on(async {
            tokio::select! {
                rows = session.run(statement, &mut out) => rows,
                _ = tokio::signal::ctrl_c() => Err(CliError::Cancelled),
            }
        })?;
        writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })
            .map_err(CliError::io("cannot write to stdout"))?;
        if timing {
            writeln!(
                out,
                "Time: {:.3} ms",
                started.elapsed().as_secs_f64() * 1000.0
            )
            .map_err(CliError::io("cannot write to stdout"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ends_statement;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes() {
        assert!(ends_statement("SELECT 1;"));
        assert!(ends_statement("SELECT 1;  \n"));
        assert!(!ends_statement("SELECT ';"));
        assert!(ends_statement("SELECT ';';"));
        assert!(!ends_statement("SELECT 1 -- done;"));
        assert!(ends_statement("SELECT 1; -- done"));
        assert!(!ends_statement("SELECT\n  1"));
    }
}
