//! Bounded fuzzing in CI: every input of the checked-in corpus
//! (`fuzz/corpus/<target>/`), then random mutations of it for a bounded
//! time, through the same entry points the coverage-guided targets in
//! `fuzz/` use (`spar_server::fuzzing`). A panic fails the test and prints
//! the input, as hex, to add to the corpus.
//!
//! `SPAR_FUZZ_SECONDS` (default 10) is the time per target;
//! `SPAR_FUZZ_SEED` fixes the mutations (each run prints its seed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("ticket", spar_server::fuzzing::ticket),
    ("command", spar_server::fuzzing::command),
    ("flight_data", spar_server::fuzzing::flight_data),
    ("config", spar_server::fuzzing::config),
    ("sql", spar_server::fuzzing::sql),
];

/// Words mutations insert into text targets.
const WORDS: &[&str] = &[
    "SELECT ",
    " FROM ",
    " WHERE ",
    " AND ",
    " OR ",
    " + ",
    " || ",
    "(",
    ")",
    "'",
    "''",
    "\\",
    "\"",
    "`",
    "--",
    "/*",
    "*/",
    ";",
    "$1",
    "${",
    "}",
    "[",
    "]",
    "=",
    "\n",
    "\0",
    " NULL",
    " IN (1, 2)",
    " CASE WHEN ",
    " END",
    "lite.main.t",
    "t",
    "id",
    "name",
    "\u{1F600}",
    "[sources.a]\n",
    "kind = ",
    "replicas = [",
    "1e308",
    "-9223372036854775808",
    "99999999999999999999",
];

/// A small xorshift generator: fast, and repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = [0u8, 0xff, 0x7f, 0x80, b'\'', b'\\'][rng.below(6)];
            }
            2 => {
                let n = rng.below(8) + 1;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if !input.is_empty() => {
                let end = (at + rng.below(16) + 1).min(input.len());
                let start = at.min(end);
                input.drain(start..end);
            }
            4 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + rng.below(64) + 1).min(input.len());
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let start = rng.below(other.len() + 1);
                let end = (start + rng.below(64)).min(other.len());
                input.splice(at..at, other[start..end].iter().copied());
            }
            6 => {
                let word = WORDS[rng.below(WORDS.len())].as_bytes();
                input.splice(at..at, word.iter().copied());
            }
            _ => {
                // A length or count field pushed to an extreme.
                if input.len() >= 8 {
                    let i = rng.below(input.len() - 7);
                    let value = [u64::MAX, 1 << 40, i64::MAX as u64, 0][rng.below(4)];
                    input[i..i + 8].copy_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
    input.truncate(1 << 16);
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

fn run(target: Target, name: &str, input: &[u8], last_panic: &std::sync::Mutex<String>) {
    let result = std::panic::catch_unwind(|| target(input));
    if result.is_err() {
        let _ = std::panic::take_hook();
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        let message = last_panic.lock().map(|m| m.clone()).unwrap_or_default();
        panic!("fuzz target `{name}` panicked ({message}) on input (hex) {hex}");
    }
}

#[test]
fn fuzz_targets_survive_the_corpus_and_its_mutations() {
    let seconds = std::env::var("SPAR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    let seed = std::env::var("SPAR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("fuzz: seed {seed} (SPAR_FUZZ_SEED), {seconds} s per target (SPAR_FUZZ_SECONDS)");
    // Panics that the code under test catches (arrow's IPC decoder panics
    // on some malformed schemas) would flood the log: only the last
    // message is kept, for a panic that escapes.
    let last_panic = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = std::sync::Arc::clone(&last_panic);
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut last) = keep.lock() {
            *last = info.to_string();
        }
    }));
    for (name, target) in TARGETS {
        let corpus = corpus(name);
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
        for input in &corpus {
            run(target, name, input, &last_panic);
        }
        let mut rng = Rng(seed);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut runs = corpus.len();
        while Instant::now() < deadline {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            run(target, name, &input, &last_panic);
            runs += 1;
        }
        println!(
            "fuzz: {name}: {runs} inputs ({} from the corpus)",
            corpus.len()
        );
    }
}

/// Writes the binary seeds of the corpus (run by hand:
/// `cargo test -p spar-server --test fuzz -- --ignored`).
#[test]
#[ignore]
fn write_binary_seeds() {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_flight::sql::{
        CommandGetTables, CommandStatementQuery, ProstMessageExt, TicketStatementQuery,
    };
    use arrow_flight::{CancelFlightInfoRequest, FlightEndpoint, FlightInfo, Ticket};
    use futures::StreamExt;
    use prost::Message;
    use std::sync::Arc;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: Vec<u8>| {
        let path = root.join(target).join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    let statement_ticket = TicketStatementQuery {
        statement_handle: vec![7u8; 48].into(),
    }
    .as_any()
    .encode_to_vec();
    write("ticket", "statement", statement_ticket.clone());
    write(
        "ticket",
        "get_tables",
        CommandGetTables::default().as_any().encode_to_vec(),
    );
    write("ticket", "empty", Vec::new());
    write(
        "command",
        "statement",
        CommandStatementQuery {
            query: "SELECT 1".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    );
    let info = FlightInfo::new()
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(statement_ticket)));
    write(
        "command",
        "cancel",
        CancelFlightInfoRequest::new(info).encode_to_vec(),
    );
    // A parameter row, as a client's DoPut sends it.
    let schema = Arc::new(Schema::new(vec![
        Field::new("$1", DataType::Int64, true),
        Field::new("$2", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![Some(3)])),
            Arc::new(StringArray::from(vec![Some("x'\\")])),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let frames = |options: arrow::ipc::writer::IpcWriteOptions| {
        let stream = FlightDataEncoderBuilder::new()
            .with_options(options)
            .build(futures::stream::iter([Ok(batch.clone())]));
        let frames: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
        let mut out = Vec::new();
        for f in frames {
            let bytes = f.unwrap_or_else(|e| panic!("{e}")).encode_to_vec();
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    };
    write("flight_data", "row", frames(Default::default()));
    let lz4 = arrow::ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))
        .unwrap_or_else(|e| panic!("{e}"));
    write("flight_data", "row_lz4", frames(lz4));
}
