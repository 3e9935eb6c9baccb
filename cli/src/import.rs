//! `tally import`: NDJSON or CSV files into a data directory, or with
//! `--server URL` into a running `tally serve` (see [`remote`]).
//!
//! A reader thread cuts the input into blocks of whole lines and parses
//! them (NDJSON blocks in parallel) into batches; the main thread takes
//! them in input order and ingests them. Both destinations share this
//! reading, the `--strict` check, the reporting of rejected lines and the
//! summary ([`Session`]); only the ingest differs.
//!
//! Locally, import is a bulk load: batches bypass the WAL (`skip_wal`) and
//! the import ends with `Db::close`, which flushes every event into fsynced
//! chunks named by the manifest. So an import that exits 0 is durable. Each
//! batch carries an idempotency key (the file's identity and the batch's
//! position), remembered on disk by the same flush that stores the batch:
//! re-running an interrupted import of the same file stores each event
//! exactly once. (Stdin has no identity: an interrupted stdin import must
//! be redone into a fresh directory.)
//! With `--strict`, each file is checked completely first and nothing from
//! a file with a bad line is imported.

pub(crate) mod remote;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::process::ExitCode;
use std::rc::Rc;
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
    #[arg(long, default_value = "./tally-data", conflicts_with = "server")]
    data_dir: String,
    /// With `--server URL`, import into a running `tally serve` over gRPC
    /// instead of a local data directory.
    #[command(flatten)]
    remote: crate::client::ServerArgs,
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
    /// Benchmarks only: write no rollups (rollups, billing and usage are
    /// then wrong for this data directory), to measure their ingest cost.
    #[arg(long, hide = true)]
    bench_skip_rollups: bool,
    /// Files to import (`-` for stdin).
    #[arg(required = true)]
    files: Vec<String>,
}

/// Lines per parsed block handed to the engine.
const BLOCK_BYTES: usize = 4 << 20;
/// Longest accepted input line.
const MAX_LINE_BYTES: usize = 64 << 20;
/// CSV records per parsed block.
const CSV_BLOCK_ROWS: usize = 16384;
/// Rejects printed to stderr before the rest are only counted.
const MAX_PRINTED_REJECTS: usize = 20;

/// One parsed block of an input.
struct Parsed {
    /// Position of the block in its input: 0, 1, 2, ...
    index: u64,
    /// The block's idempotency sequence for the local import (NDJSON: first
    /// line number; CSV: block number, from 1).
    seq: u64,
    batch: EventBatch,
    /// Bad lines, in line order.
    errors: Vec<LineError>,
    /// Input bytes of the block.
    bytes: u64,
    /// Where the events of `batch` came from.
    lines: EventLines,
}

/// The input line of each event of a block.
enum EventLines {
    /// Not known (CSV).
    Unknown,
    /// The block's lines from `first` on, less the bad ones (no blank lines).
    Dense { first: u64 },
    /// One line number per event.
    Listed(Vec<u64>),
}

impl Parsed {
    /// The input line of event `event` of the batch, when known.
    fn line_of(&self, event: usize) -> Option<u64> {
        match &self.lines {
            EventLines::Unknown => None,
            EventLines::Listed(v) => v.get(event).copied(),
            EventLines::Dense { first } if event < self.batch.len() => {
                // Skip over the bad lines at or before the candidate.
                let mut line = first + event as u64;
                for e in &self.errors {
                    if e.line <= line {
                        line += 1;
                    } else {
                        break;
                    }
                }
                Some(line)
            }
            EventLines::Dense { .. } => None,
        }
    }
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

/// One run of `tally import`, wherever the events go: rejects, counts,
/// timing and the progress bar of the current file.
struct Session {
    rejects: Rejects,
    /// Events stored by this run.
    imported: u64,
    /// Events an earlier run of the same import had already stored.
    skipped: u64,
    /// Input bytes done.
    bytes: u64,
    start: Instant,
    bar: Option<indicatif::ProgressBar>,
}

/// The input a [`Session::each_file`] callback is given.
struct FileJob<'a> {
    /// As given on the command line (`-` is stdin).
    name: &'a str,
    /// `--strict`: the file was checked and has no bad line.
    strict: bool,
}

impl Session {
    /// Opens the rejects file and starts the clock.
    fn start(a: &ImportArgs) -> CliResult<Session> {
        let file = match &a.rejects {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| format!("cannot create {p}: {e}"))?,
            )),
            None => None,
        };
        Ok(Session {
            rejects: Rejects {
                file,
                printed: 0,
                total: 0,
            },
            imported: 0,
            skipped: 0,
            bytes: 0,
            start: Instant::now(),
            bar: None,
        })
    }

    /// Reads every input (under `--strict` checking it completely first,
    /// skipping a file with a bad line) and hands its parsed blocks, in
    /// input order, to `ingest`.
    fn each_file(
        &mut self,
        a: &ImportArgs,
        mut ingest: impl FnMut(&FileJob<'_>, &mut Blocks, &mut Session) -> CliResult<()>,
    ) -> CliResult<()> {
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
                let bad = check_file(name, format, stdin_buf.as_deref(), &mut self.rejects)?;
                if bad > 0 {
                    eprintln!("{name}: {bad} bad lines; --strict: nothing imported from it");
                    continue;
                }
            }
            let (input, len) = open_input(name, stdin_buf.as_deref())?;
            self.bar = progress_bar(len, a.quiet);
            let job = FileJob {
                name,
                strict: a.strict,
            };
            std::thread::scope(|s| -> CliResult<()> {
                let mut blocks = Blocks::new(spawn_parser(s, input, format));
                ingest(&job, &mut blocks, self)
            })?;
            if let Some(b) = self.bar.take() {
                b.finish_and_clear();
            }
        }
        Ok(())
    }

    /// Reports a block's bad lines.
    fn report_bad_lines(&mut self, name: &str, p: &Parsed) -> CliResult<()> {
        for e in &p.errors {
            self.rejects.report(name, Some(e.line), &e.reason)?;
        }
        Ok(())
    }

    /// Reports event `event` of a block's batch, rejected at ingest, by its
    /// line when known.
    fn report_event(
        &mut self,
        name: &str,
        p: &Parsed,
        event: usize,
        reason: &str,
    ) -> CliResult<()> {
        match p.line_of(event) {
            Some(line) => self.rejects.report(name, Some(line), reason),
            None => self.rejects.report(
                name,
                None,
                &format!("block {}, event {event}: {reason}", p.index + 1),
            ),
        }
    }

    /// Counts `bytes` of input as done.
    fn advance(&mut self, bytes: u64) {
        self.bytes += bytes;
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    /// Prints the rejects left unshown, the skipped events and the summary
    /// line (`tail` is appended inside its parentheses); exits 1 when any
    /// line or event was rejected.
    fn finish(mut self, tail: &str) -> CliResult<ExitCode> {
        let secs = self.start.elapsed().as_secs_f64();
        let rejects = &mut self.rejects;
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
        if self.skipped > 0 {
            eprintln!(
                "skipped {} events an earlier run of this import had already stored",
                self.skipped
            );
        }
        eprintln!(
            "imported {} events, rejected {}, in {secs:.2} s ({:.0} events/s, {:.1} MB/s{tail})",
            self.imported,
            rejects.total,
            self.imported as f64 / secs.max(1e-9),
            self.bytes as f64 / 1e6 / secs.max(1e-9),
        );
        Ok(if rejects.total > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

pub fn run(a: ImportArgs) -> CliResult<ExitCode> {
    if a.remote.server.is_some() {
        return remote::run(&a);
    }
    let mut options = Options::default();
    options.wal.sync = SyncPolicy::None;
    options.chunk.bench_skip_rollups = a.bench_skip_rollups;
    let db = Db::open(&a.data_dir, options).map_err(engine)?;
    let mut session = Session::start(&a)?;
    session.each_file(&a, |job, blocks, session| {
        ingest_local(&db, job, blocks, session)
    })?;
    let flush_start = Instant::now();
    db.close().map_err(engine)?;
    let flush = flush_start.elapsed().as_secs_f64();
    session.finish(&format!("; final flush {flush:.2} s"))
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
        for p in Blocks::new(spawn_parser(s, input, format)) {
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

/// The identity of an input file: a hash of its canonical path, its size
/// and modification time, as `<hash>:<size>:<mtime in ns>`. A re-run of an
/// interrupted import of the same, unchanged file has the same identity.
/// Stdin has none.
fn file_identity(name: &str) -> Option<String> {
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
    Some(format!("{h:016x}:{}:{mtime}", meta.len()))
}

/// The local ingest: each block is one batch, bypassing the WAL, keyed by
/// producer `import:<file identity>` and the block's sequence, so a re-run
/// skips what the first run made durable.
fn ingest_local(
    db: &Db,
    job: &FileJob<'_>,
    blocks: &mut Blocks,
    session: &mut Session,
) -> CliResult<()> {
    let name = job.name;
    let producer = file_identity(name).map(|id| format!("import:{id}"));
    for p in blocks {
        let mut p = p?;
        session.report_bad_lines(name, &p)?;
        let opts = WriteOptions {
            producer: producer.clone().map(|id| (id, p.seq)),
            skip_wal: true,
            ..WriteOptions::default()
        };
        let batch = std::mem::take(&mut p.batch);
        let events = batch.len() as u64;
        match db.ingest_owned(batch, &opts) {
            Ok(ack) if ack.duplicate => session.skipped += ack.accepted as u64,
            Ok(ack) => {
                for r in &ack.rejected {
                    session.report_event(name, &p, r.index, &r.reason)?;
                }
                session.imported += ack.accepted as u64;
            }
            // Older than the remembered window: an earlier run of this
            // import applied it (blocks are sent in order, give or take
            // the few in flight, far fewer than the window).
            Err(EngineError::SequenceTooOld { .. }) => session.skipped += events,
            Err(e) => return Err(format!("{name}: {e}")),
        }
        session.advance(p.bytes);
    }
    Ok(())
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

/// The parsed blocks of an input in input order (the parser threads finish
/// them out of order). A read error ends the input.
struct Blocks {
    rx: Receiver<CliResult<Parsed>>,
    next: u64,
    early: BTreeMap<u64, Parsed>,
}

impl Blocks {
    fn new(rx: Receiver<CliResult<Parsed>>) -> Blocks {
        Blocks {
            rx,
            next: 0,
            early: BTreeMap::new(),
        }
    }
}

impl Iterator for Blocks {
    type Item = CliResult<Parsed>;

    fn next(&mut self) -> Option<CliResult<Parsed>> {
        loop {
            if let Some(p) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(Ok(p));
            }
            match self.rx.recv() {
                Ok(Ok(p)) => {
                    self.early.insert(p.index, p);
                }
                Ok(Err(e)) => return Some(Err(e)),
                // Every sender is gone: what is left (nothing, unless a
                // block went missing) in order.
                Err(_) => {
                    let (index, p) = self.early.pop_first()?;
                    self.next = index + 1;
                    return Some(Ok(p));
                }
            }
        }
    }
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
            let (btx, brx) = bounded::<RawBlock>(4);
            // Parsed blocks' buffers go back to the reader for reuse, so
            // the reader does not fault in fresh pages for every block.
            let (spare_tx, spare_rx) = bounded::<Vec<u8>>(8);
            let parsers = std::thread::available_parallelism().map_or(2, |n| n.get());
            for _ in 0..parsers {
                let (brx, tx, spare_tx) = (brx.clone(), tx.clone(), spare_tx.clone());
                let _ = std::thread::Builder::new()
                    .name("import-parse".into())
                    .spawn_scoped(s, move || {
                        for mut raw in brx {
                            if tx
                                .send(Ok(parse_block(&raw.text, raw.first_line, raw.index)))
                                .is_err()
                            {
                                return;
                            }
                            raw.text.clear();
                            let _ = spare_tx.try_send(raw.text);
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

/// Whole lines of NDJSON for a parser thread.
struct RawBlock {
    text: Vec<u8>,
    /// Number of the first line.
    first_line: u64,
    /// Position of the block in the input.
    index: u64,
}

/// Cuts the input into blocks of whole lines (with the number of each
/// block's first line) for the parser threads.
fn read_ndjson_blocks(
    mut input: Box<dyn Read + Send + '_>,
    tx: &crossbeam_channel::Sender<RawBlock>,
    spare: &Receiver<Vec<u8>>,
) -> CliResult<()> {
    let mut line_no = 1u64;
    let mut index = 0u64;
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
        let first_line = line_no;
        line_no += count_newlines(&block);
        let raw = RawBlock {
            text: block,
            first_line,
            index,
        };
        index += 1;
        if tx.send(raw).is_err() {
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

/// True for a line the NDJSON parser skips.
fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|&c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
}

fn parse_block(block: &[u8], first_line: u64, index: u64) -> Parsed {
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
    let lines = event_lines(block, first_line, batch.len(), &errors);
    Parsed {
        index,
        seq: first_line,
        batch,
        errors,
        bytes: block.len() as u64,
        lines,
    }
}

/// The line of each of the `events` good events of an NDJSON block: the
/// lines that are neither blank nor bad, in order. Counted without looking
/// at the lines when the block has no blank line (the usual case).
fn event_lines(block: &[u8], first_line: u64, events: usize, errors: &[LineError]) -> EventLines {
    // The parser's lines: one per `\n`, plus an unterminated last one.
    let lines = count_newlines(block) + u64::from(block.last().is_some_and(|&c| c != b'\n'));
    if lines == (events + errors.len()) as u64 {
        return EventLines::Dense { first: first_line };
    }
    let mut out = Vec::with_capacity(events);
    let mut bad = errors.iter().map(|e| e.line).peekable();
    for (line, raw) in (first_line..).zip(block.split(|&b| b == b'\n')) {
        if is_blank(raw) {
            continue;
        }
        if bad.peek() == Some(&line) {
            bad.next();
            continue;
        }
        out.push(line);
    }
    if out.len() == events {
        EventLines::Listed(out)
    } else {
        EventLines::Unknown
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn read_csv(
    input: Box<dyn Read + Send + '_>,
    tx: &crossbeam_channel::Sender<CliResult<Parsed>>,
) -> CliResult<()> {
    let count = Rc::new(Cell::new(0u64));
    let counted = Counted {
        inner: input,
        count: Rc::clone(&count),
    };
    let mut reader =
        CsvEventReader::new(BufReader::with_capacity(1 << 20, counted))?.with_validation(true);
    let mut index = 0u64;
    let mut done = 0u64;
    loop {
        let mut batch = EventBatch::with_capacity(CSV_BLOCK_ROWS);
        let mut errors = Vec::new();
        let n = reader.read_into(&mut batch, CSV_BLOCK_ROWS, &mut errors)?;
        if n == 0 {
            return Ok(());
        }
        // Bytes read since the previous block: the buffer reads ahead, so
        // one block's count is approximate, the sum exact.
        let bytes = count.get() - done;
        done = count.get();
        let parsed = Parsed {
            index,
            seq: index + 1,
            batch,
            errors,
            bytes,
            lines: EventLines::Unknown,
        };
        index += 1;
        if tx.send(Ok(parsed)).is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str, first: u64) -> Parsed {
        parse_block(text.as_bytes(), first, 0)
    }

    fn good(ts: u32) -> String {
        format!(
            r#"{{"ts":"2026-11-24T00:00:{ts:02}Z","api_key":"k","endpoint":"/a","method":"GET","status_code":200,"latency_ms":1.5,"request_bytes":1,"response_bytes":2,"ip":"10.0.0.1","user_agent":"","geo_country":"US"}}"#
        )
    }

    #[test]
    fn event_lines_skip_bad_lines_without_blank_lines() {
        let text = [
            good(0),
            "{bad".into(),
            good(1),
            "{bad".into(),
            "{bad".into(),
            good(2),
        ]
        .join("\n");
        let p = parsed(&text, 10);
        assert!(matches!(p.lines, EventLines::Dense { first: 10 }));
        assert_eq!(p.batch.len(), 3);
        let lines: Vec<_> = (0..4).map(|i| p.line_of(i)).collect();
        assert_eq!(lines, [Some(10), Some(12), Some(15), None]);
    }

    #[test]
    fn event_lines_skip_blank_lines() {
        let text = format!("\n{}\n  \n{{bad\n{}\n\n", good(0), good(1));
        let p = parsed(&text, 1);
        assert!(matches!(p.lines, EventLines::Listed(_)));
        assert_eq!(p.line_of(0), Some(2));
        assert_eq!(p.line_of(1), Some(5));
        assert_eq!(p.line_of(2), None);
    }

    #[test]
    fn blocks_come_back_in_input_order() {
        let (tx, rx) = bounded(8);
        for i in [2u64, 0, 3, 1] {
            let _ = tx.send(Ok(Parsed {
                index: i,
                seq: i,
                batch: EventBatch::new(),
                errors: Vec::new(),
                bytes: 0,
                lines: EventLines::Unknown,
            }));
        }
        drop(tx);
        let order: Vec<u64> = Blocks::new(rx).map(|p| p.map_or(99, |p| p.index)).collect();
        assert_eq!(order, [0, 1, 2, 3]);
    }
}
