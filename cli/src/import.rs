//! `tally import`: NDJSON or CSV files into a data directory.
//!
//! A reader thread cuts the input into blocks of whole lines and parses
//! them (NDJSON blocks in parallel) into batches; the main thread ingests
//! them. Import is a bulk load: batches bypass the WAL (`skip_wal`) and the
//! import ends with `Db::close`, which flushes every event into fsynced
//! chunks named by the manifest. So an import that exits 0 is durable. Each
//! batch carries an idempotency key (the file's identity and the batch's
//! position), remembered on disk by the same flush that stores the batch:
//! re-running an interrupted import of the same file stores each event
//! exactly once. (Stdin has no identity: an interrupted stdin import must
//! be redone into a fresh directory.)
//! With `--strict`, each file is checked completely first and nothing from
//! a file with a bad line is imported.

use std::io::{BufReader, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use crossbeam_channel::{bounded, Receiver};
use tally_engine::text::{parse_ndjson_chunk_checked, CsvEventReader, LineError};
use tally_engine::{Db, EngineError, EventBatch, Options, SyncPolicy, WriteOptions};

use crate::util::{engine, CliResult, Format};

/// Arguments of `tally import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// Input format (default: from the file extension, .csv → csv, else ndjson).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Import nothing from a file that has any bad line.
    #[arg(long)]
    strict: bool,
    /// Write every rejected line's `FILE:LINE: reason` here.
    #[arg(long)]
    rejects: Option<String>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Files to import (`-` for stdin).
    #[arg(required = true)]
    files: Vec<String>,
}

/// Lines per parsed block handed to the engine.
const BLOCK_BYTES: usize = 4 << 20;
/// Longest accepted input line.
const MAX_LINE_BYTES: usize = 64 << 20;
/// Rejects printed to stderr before the rest are only counted.
const MAX_PRINTED_REJECTS: usize = 20;

struct Parsed {
    /// Position of the batch in its input (NDJSON: first line number; CSV:
    /// block number): with the file's identity, the batch's idempotency key.
    seq: u64,
    batch: EventBatch,
    errors: Vec<LineError>,
    bytes: u64,
}

struct Rejects {
    file: Option<std::io::BufWriter<std::fs::File>>,
    printed: usize,
    total: u64,
}

impl Rejects {
    fn report(&mut self, name: &str, line: Option<u64>, reason: &str) -> CliResult<()> {
        self.total += 1;
        let msg = match line {
            Some(l) => format!("{name}:{l}: {reason}"),
            None => format!("{name}: {reason}"),
        };
        if let Some(f) = &mut self.file {
            writeln!(f, "{msg}").map_err(|e| format!("cannot write rejects file: {e}"))?;
        } else if self.printed < MAX_PRINTED_REJECTS {
            eprintln!("{msg}");
            self.printed += 1;
        }
        Ok(())
    }
}

pub fn run(a: ImportArgs) -> CliResult<ExitCode> {
    let mut options = Options::default();
    options.wal.sync = SyncPolicy::None;
    let db = Db::open(&a.data_dir, options).map_err(engine)?;
    let mut rejects = Rejects {
        file: match &a.rejects {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| format!("cannot create {p}: {e}"))?,
            )),
            None => None,
        },
        printed: 0,
        total: 0,
    };
    let start = Instant::now();
    let mut imported = 0u64;
    let mut skipped = 0u64;
    let mut stdin_buf: Option<Vec<u8>> = None;
    for name in &a.files {
        let format = a.format.unwrap_or_else(|| Format::from_path(name));
        if a.strict {
            if name == "-" {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("cannot read stdin: {e}"))?;
                stdin_buf = Some(buf);
            }
            let bad = check_file(name, format, stdin_buf.as_deref(), &mut rejects)?;
            if bad > 0 {
                eprintln!("{name}: {bad} bad lines; --strict: nothing imported from it");
                continue;
            }
        }
        imported += import_file(
            &db,
            name,
            format,
            stdin_buf.as_deref(),
            &mut rejects,
            a.quiet,
            &mut skipped,
        )?;
    }
    let flush_start = Instant::now();
    db.close().map_err(engine)?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(f) = &mut rejects.file {
        f.flush()
            .map_err(|e| format!("cannot write rejects file: {e}"))?;
    }
    if rejects.file.is_none() && rejects.total as usize > rejects.printed {
        eprintln!(
            "... {} more rejected lines not shown (use --rejects FILE to keep them all)",
            rejects.total as usize - rejects.printed
        );
    }
    if skipped > 0 {
        eprintln!("skipped {skipped} events an earlier run of this import had already stored");
    }
    eprintln!(
        "imported {imported} events, rejected {}, in {secs:.2} s ({:.0} events/s; final flush {:.2} s)",
        rejects.total,
        imported as f64 / secs.max(1e-9),
        flush_start.elapsed().as_secs_f64()
    );
    Ok(if rejects.total > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn open_input<'a>(
    name: &str,
    stdin_buf: Option<&'a [u8]>,
) -> CliResult<(Box<dyn Read + Send + 'a>, Option<u64>)> {
    if name == "-" {
        return Ok(match stdin_buf {
            Some(b) => (Box::new(b), Some(b.len() as u64)),
            None => (Box::new(std::io::stdin()), None),
        });
    }
    let f = std::fs::File::open(name).map_err(|e| format!("cannot open {name}: {e}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(f), len))
}

/// Parses a whole file without importing; reports and counts bad lines.
fn check_file(
    name: &str,
    format: Format,
    stdin_buf: Option<&[u8]>,
    rejects: &mut Rejects,
) -> CliResult<u64> {
    let (input, _) = open_input(name, stdin_buf)?;
    let mut bad = 0;
    std::thread::scope(|s| -> CliResult<()> {
        let rx = spawn_parser(s, input, format);
        for p in rx {
            let p = p?;
            for e in &p.errors {
                rejects.report(name, Some(e.line), &e.reason)?;
                bad += 1;
            }
        }
        Ok(())
    })?;
    Ok(bad)
}

/// The idempotency producer id of an input file: its canonical path, size
/// and modification time. A re-run of an interrupted import of the same,
/// unchanged file skips what the first run made durable. Stdin has none.
fn import_identity(name: &str) -> Option<String> {
    if name == "-" {
        return None;
    }
    let path = std::fs::canonicalize(name).ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let h = tally_engine::partition::fnv1a64(path.to_string_lossy().as_bytes());
    Some(format!("import:{h:016x}:{}:{mtime}", meta.len()))
}

fn import_file(
    db: &Db,
    name: &str,
    format: Format,
    stdin_buf: Option<&[u8]>,
    rejects: &mut Rejects,
    quiet: bool,
    skipped: &mut u64,
) -> CliResult<u64> {
    let (input, len) = open_input(name, stdin_buf)?;
    let bar = progress_bar(len, quiet);
    let mut imported = 0u64;
    let producer = import_identity(name);
    std::thread::scope(|s| -> CliResult<()> {
        let rx = spawn_parser(s, input, format);
        for p in rx {
            let p = p?;
            for e in &p.errors {
                rejects.report(name, Some(e.line), &e.reason)?;
            }
            let opts = WriteOptions {
                producer: producer.clone().map(|id| (id, p.seq)),
                skip_wal: true,
                ..WriteOptions::default()
            };
            let (events, bytes) = (p.batch.len() as u64, p.bytes);
            match db.ingest_owned(p.batch, &opts) {
                Ok(ack) if ack.duplicate => *skipped += ack.accepted as u64,
                Ok(ack) => {
                    for r in &ack.rejected {
                        rejects.report(name, None, &format!("event {}: {}", r.index, r.reason))?;
                    }
                    imported += ack.accepted as u64;
                }
                // Older than the remembered window: an earlier run of this
                // import applied it (blocks are sent in order, give or take
                // the few in flight, far fewer than the window).
                Err(EngineError::SequenceTooOld { .. }) => *skipped += events,
                Err(e) => return Err(format!("{name}: {e}")),
            }
            if let Some(b) = &bar {
                b.inc(bytes);
            }
        }
        Ok(())
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(imported)
}

fn progress_bar(len: Option<u64>, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len.unwrap_or(0));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Starts the reader/parser thread; batches arrive on the returned channel.
fn spawn_parser<'scope, 'a: 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    input: Box<dyn Read + Send + 'a>,
    format: Format,
) -> Receiver<CliResult<Parsed>> {
    let (tx, rx) = bounded::<CliResult<Parsed>>(4);
    match format {
        Format::Ndjson => {
            // One reader cuts blocks of whole lines; parser threads (one per
            // core) parse them. Dedicated threads rather than the rayon pool,
            // which a running flush may occupy.
            let (btx, brx) = bounded::<(Vec<u8>, u64)>(4);
            // Parsed blocks' buffers go back to the reader for reuse, so
            // the reader does not fault in fresh pages for every block.
            let (spare_tx, spare_rx) = bounded::<Vec<u8>>(8);
            let parsers = std::thread::available_parallelism().map_or(2, |n| n.get());
            for _ in 0..parsers {
                let (brx, tx, spare_tx) = (brx.clone(), tx.clone(), spare_tx.clone());
                let _ = std::thread::Builder::new()
                    .name("import-parse".into())
                    .spawn_scoped(s, move || {
                        for (mut block, first) in brx {
                            if tx.send(Ok(parse_block(&block, first))).is_err() {
                                return;
                            }
                            block.clear();
                            let _ = spare_tx.try_send(block);
                        }
                    });
            }
            let _ = std::thread::Builder::new()
                .name("import-read".into())
                .spawn_scoped(s, move || {
                    if let Err(e) = read_ndjson_blocks(input, &btx, &spare_rx) {
                        let _ = tx.send(Err(e));
                    }
                });
        }
        Format::Csv => {
            s.spawn(move || {
                if let Err(e) = read_csv(input, &tx) {
                    let _ = tx.send(Err(e));
                }
            });
        }
    }
    rx
}

/// Cuts the input into blocks of whole lines (with the number of each
/// block's first line) for the parser threads.
fn read_ndjson_blocks(
    mut input: Box<dyn Read + Send + '_>,
    tx: &crossbeam_channel::Sender<(Vec<u8>, u64)>,
    spare: &Receiver<Vec<u8>>,
) -> CliResult<()> {
    let mut line_no = 1u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut eof = false;
    while !eof {
        let mut block = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK_BYTES + (64 << 10)));
        block.extend_from_slice(&carry);
        carry.clear();
        // Read straight into the block; a line longer than a block grows it
        // up to MAX_LINE_BYTES.
        let mut target = BLOCK_BYTES;
        loop {
            if block.len() < target {
                let want = (target - block.len()) as u64;
                let n = (&mut input)
                    .take(want)
                    .read_to_end(&mut block)
                    .map_err(|e| format!("read failed: {e}"))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                continue;
            }
            if memrchr_newline(&block).is_some() {
                break;
            }
            target *= 2;
            if target > MAX_LINE_BYTES {
                return Err(format!(
                    "a line at or after line {line_no} is longer than {} MiB",
                    MAX_LINE_BYTES >> 20
                ));
            }
        }
        if !eof {
            // Keep the partial last line for the next block.
            if let Some(p) = memrchr_newline(&block) {
                carry.extend_from_slice(block.get(p + 1..).unwrap_or_default());
                block.truncate(p + 1);
            }
        }
        if block.is_empty() {
            continue;
        }
        let first = line_no;
        line_no += count_newlines(&block);
        if tx.send((block, first)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Position of the last `\n`.
fn memrchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == b'\n')
}

/// Number of `\n` bytes, in a form the compiler vectorises (byte-wide
/// counters summed per 255-byte run).
fn count_newlines(b: &[u8]) -> u64 {
    b.chunks(255)
        .map(|c| u64::from(c.iter().fold(0u8, |n, &x| n + u8::from(x == b'\n'))))
        .sum()
}

fn parse_block(block: &[u8], first_line: u64) -> Parsed {
    let mut batch = EventBatch::with_capacity(block.len() / 200 + 16);
    let mut errors = Vec::new();
    match std::str::from_utf8(block) {
        Ok(text) => parse_ndjson_chunk_checked(text, first_line, &mut batch, &mut errors),
        Err(_) => {
            // Rare: fall back line by line so one bad line names itself.
            for (line, raw) in (first_line..).zip(block.split(|&b| b == b'\n')) {
                match std::str::from_utf8(raw) {
                    Ok(t) => parse_ndjson_chunk_checked(t, line, &mut batch, &mut errors),
                    Err(_) => errors.push(LineError {
                        line,
                        reason: "line is not valid UTF-8".into(),
                    }),
                }
            }
        }
    }
    Parsed {
        seq: first_line,
        batch,
        errors,
        bytes: block.len() as u64,
    }
}

fn read_csv(
    input: Box<dyn Read + Send + '_>,
    tx: &crossbeam_channel::Sender<CliResult<Parsed>>,
) -> CliResult<()> {
    let mut reader =
        CsvEventReader::new(BufReader::with_capacity(1 << 20, input))?.with_validation(true);
    let mut seq = 0u64;
    loop {
        let mut batch = EventBatch::with_capacity(16384);
        let mut errors = Vec::new();
        let n = reader.read_into(&mut batch, 16384, &mut errors)?;
        if n == 0 {
            return Ok(());
        }
        let bytes = (batch.heap_bytes() / 2) as u64;
        seq += 1;
        if tx
            .send(Ok(Parsed {
                seq,
                batch,
                errors,
                bytes,
            }))
            .is_err()
        {
            return Ok(());
        }
    }
}
