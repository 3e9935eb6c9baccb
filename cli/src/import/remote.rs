//! `tally import --server URL`: the import's parsed blocks go to a running
//! `tally serve` over gRPC instead of into a local data directory.
//!
//! Each block's events are cut into write requests of at most
//! [`BATCH_EVENTS`] events in the columnar form (`EventColumns`), and up to
//! [`WINDOW`] requests are in flight at once, each its own unary `Write`
//! (the server ingests concurrent requests in one group commit). Replies
//! are taken in the order the requests were sent, so counts, rejects and
//! the progress bar advance in input order.
//!
//! Exactly once: every request carries producer `import-server/v1:<file
//! identity>` (the local import's path hash, size and mtime) and sequence
//! the request's position in the file (1, 2, ...). A request that fails
//! transiently (UNAVAILABLE, a broken connection) is sent again with the
//! same sequence after a backoff, and re-running an interrupted import of
//! the same, unchanged file sends the same requests again: the server
//! applies each (producer, sequence) once and answers a repeat as a
//! duplicate, or, for a sequence older than its idempotency window, with an
//! error counted here as skipped. Stdin gets a producer of its own for
//! each run (retries within the run are safe; a re-run imports again).
//! Any other failure (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED,
//! ...) stops the import with the file and request named.

use std::collections::VecDeque;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tally_engine::EventBatch;
use tally_server::pb::{self, ingest_client::IngestClient};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use super::{file_identity, Blocks, FileJob, ImportArgs, Parsed, Session};
use crate::client::{status_message, AuthChannel};
use crate::util::CliResult;

/// Most events in one write request.
const BATCH_EVENTS: usize = 8192;
/// Most estimated bytes in one write request (the server takes 64 MiB).
const BATCH_BYTES: usize = 16 << 20;
/// Write requests in flight at once.
const WINDOW: usize = 4;
/// Tries of a request that fails transiently.
const ATTEMPTS: u32 = 6;
/// Wait before the first retry, doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Producer id prefix of a file; names the batching above, so a file cut
/// into requests differently would be a different producer.
const PRODUCER_PREFIX: &str = "import-server/v1:";

/// The columnar gRPC form of a batch.
pub(crate) fn columns_of(b: &EventBatch) -> pb::EventColumns {
    columns_of_rows(b, 0..b.len())
}

/// The columnar gRPC form of events `rows` of a batch.
fn columns_of_rows(b: &EventBatch, rows: Range<usize>) -> pb::EventColumns {
    let n = rows.len();
    let mut c = pb::EventColumns {
        ts_us: Vec::with_capacity(n),
        api_key: Vec::with_capacity(n),
        endpoint: Vec::with_capacity(n),
        method: Vec::with_capacity(n),
        status_code: Vec::with_capacity(n),
        latency_ms: Vec::with_capacity(n),
        request_bytes: Vec::with_capacity(n),
        response_bytes: Vec::with_capacity(n),
        ip: Vec::with_capacity(n),
        user_agent: Vec::with_capacity(n),
        geo_country: Vec::with_capacity(n),
        request_id: Vec::with_capacity(n),
    };
    for i in rows {
        let e = b.get(i);
        c.ts_us.push(e.ts);
        c.api_key.push(e.api_key.to_string());
        c.endpoint.push(e.endpoint.to_string());
        c.method.push(e.method.to_string());
        c.status_code.push(u32::from(e.status_code));
        c.latency_ms.push(e.latency_ms);
        c.request_bytes.push(e.request_bytes);
        c.response_bytes.push(e.response_bytes);
        c.ip.push(e.ip.to_string());
        c.user_agent.push(e.user_agent.to_string());
        c.geo_country.push(e.geo_country.to_string());
        c.request_id.push(e.request_id.unwrap_or("").to_string());
    }
    c
}

/// Imports every input into the server of `--server`.
pub(super) fn run(a: &ImportArgs) -> CliResult<ExitCode> {
    let conn = a.remote.connect()?;
    let client = IngestClient::new(conn.channel);
    let rt = &conn.rt;
    let mut session = Session::start(a)?;
    session.each_file(a, |job, blocks, session| {
        send_file(rt, &client, job, blocks, session)
    })?;
    session.finish(&format!("; into {}", conn.url))
}

/// The producer id of an input: from the file's identity, or unique to
/// this run for stdin (or a file whose identity cannot be read).
fn producer_id(name: &str) -> String {
    match file_identity(name) {
        Some(id) => format!("{PRODUCER_PREFIX}{id}"),
        None => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("import-stdin:{}:{nanos}", std::process::id())
        }
    }
}

/// Cuts a batch into the rows of its write requests: at most
/// [`BATCH_EVENTS`] events each, evenly, and at most about [`BATCH_BYTES`].
fn split(b: &EventBatch) -> Vec<Range<usize>> {
    let n = b.len();
    if n == 0 {
        return Vec::new();
    }
    let target = n.div_ceil(n.div_ceil(BATCH_EVENTS));
    let mut out = Vec::new();
    if b.heap_bytes().saturating_mul(2) < BATCH_BYTES {
        // Small enough as a whole: only the count matters.
        let mut start = 0;
        while start < n {
            let end = (start + target).min(n);
            out.push(start..end);
            start = end;
        }
        return out;
    }
    let (mut start, mut bytes) = (0, 0usize);
    for i in 0..n {
        let e = b.get(i);
        // Strings plus room for the numbers, the IP text and field tags.
        let size = 96
            + e.api_key.len()
            + e.endpoint.len()
            + e.method.len()
            + e.user_agent.len()
            + e.geo_country.len()
            + e.request_id.map_or(0, str::len);
        if i > start && (i - start == target || bytes + size > BATCH_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    out.push(start..n);
    out
}

/// What became of a write request.
enum Written {
    /// The server's reply (possibly: a duplicate of an earlier run's).
    Reply(pb::WriteReply),
    /// Older than the server's idempotency window for this producer: an
    /// earlier run of this import stored it.
    TooOld,
}

/// A failed write request and how often it was tried.
struct Failed {
    status: Status,
    attempts: u32,
}

/// One write request in flight.
struct InFlight {
    task: JoinHandle<Result<Written, Failed>>,
    block: Arc<Parsed>,
    rows: Range<usize>,
    sequence: u64,
    /// Input bytes done once it is answered.
    bytes: u64,
}

/// What a request needs besides its rows.
struct Request {
    producer: Arc<str>,
    sequence: u64,
    all_or_nothing: bool,
}

/// Sends events `rows` of a block, again after a backoff while the
/// failure is transient (the sequence makes a repeat harmless).
async fn write(
    mut client: IngestClient<AuthChannel>,
    r: Request,
    block: Arc<Parsed>,
    rows: Range<usize>,
) -> Result<Written, Failed> {
    let mut wait = FIRST_BACKOFF;
    let mut attempts = 1;
    loop {
        // Built per attempt, from the block, rather than kept for a retry.
        let req = pb::WriteRequest {
            columns: Some(columns_of_rows(&block.batch, rows.clone())),
            producer_id: r.producer.to_string(),
            sequence: r.sequence,
            all_or_nothing: r.all_or_nothing,
            ..pb::WriteRequest::default()
        };
        match client.write(req).await {
            Ok(reply) => return Ok(Written::Reply(reply.into_inner())),
            Err(s) if too_old(&s) => return Ok(Written::TooOld),
            Err(s) if transient(&s) && attempts < ATTEMPTS => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempts += 1;
            }
            Err(status) => return Err(Failed { status, attempts }),
        }
    }
}

/// The engine's refusal of a sequence older than its idempotency window.
fn too_old(s: &Status) -> bool {
    s.code() == Code::InvalidArgument && s.message().contains("older than the idempotency window")
}

/// A failure worth retrying: the server is busy or restarting, or the
/// connection broke.
fn transient(s: &Status) -> bool {
    match s.code() {
        Code::Unavailable | Code::Cancelled => true,
        Code::Unknown | Code::Internal => {
            let m = s.message().to_ascii_lowercase();
            [
                "connection reset",
                "broken pipe",
                "connection closed",
                "connection refused",
                "error trying to connect",
                "transport error",
                // A server shutting down (GOAWAY) or a dropped stream.
                "h2 protocol error",
            ]
            .iter()
            .any(|w| m.contains(w))
        }
        _ => false,
    }
}

/// Sends one input's blocks, [`WINDOW`] requests in flight.
fn send_file(
    rt: &Runtime,
    client: &IngestClient<AuthChannel>,
    job: &FileJob<'_>,
    blocks: &mut Blocks,
    session: &mut Session,
) -> CliResult<()> {
    let producer: Arc<str> = producer_id(job.name).into();
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(WINDOW);
    let mut sequence = 0u64;
    for p in blocks {
        let p = p?;
        session.report_bad_lines(job.name, &p)?;
        let parts = split(&p.batch);
        let block = Arc::new(p);
        let Some(last) = parts.len().checked_sub(1) else {
            // Nothing but bad lines.
            session.advance(block.bytes);
            continue;
        };
        for (i, rows) in parts.into_iter().enumerate() {
            if in_flight.len() >= WINDOW {
                if let Some(w) = in_flight.pop_front() {
                    settle(rt, w, job, session)?;
                }
            }
            sequence += 1;
            let req = Request {
                producer: Arc::clone(&producer),
                sequence,
                all_or_nothing: job.strict,
            };
            let task = rt.spawn(write(client.clone(), req, Arc::clone(&block), rows.clone()));
            in_flight.push_back(InFlight {
                task,
                block: Arc::clone(&block),
                rows,
                sequence,
                bytes: if i == last { block.bytes } else { 0 },
            });
        }
    }
    while let Some(w) = in_flight.pop_front() {
        settle(rt, w, job, session)?;
    }
    Ok(())
}

/// Waits for a request's answer and counts and reports it.
fn settle(rt: &Runtime, w: InFlight, job: &FileJob<'_>, session: &mut Session) -> CliResult<()> {
    let InFlight {
        task,
        block,
        rows,
        sequence,
        bytes,
    } = w;
    let written = rt
        .block_on(task)
        .map_err(|e| format!("internal: a write task failed: {e}"))?;
    match written {
        Ok(Written::Reply(r)) if r.duplicate => session.skipped += r.accepted,
        Ok(Written::Reply(r)) => {
            session.imported += r.accepted;
            for rej in &r.rejected {
                let event = rows.start + rej.index as usize;
                session.report_event(job.name, &block, event, &rej.reason)?;
            }
        }
        Ok(Written::TooOld) => session.skipped += rows.len() as u64,
        Err(f) => return Err(failure(&block, &rows, sequence, &f, job, session)),
    }
    session.advance(bytes);
    Ok(())
}

/// The error that stops the import: which file and request, why, and what
/// was stored before.
fn failure(
    block: &Parsed,
    rows: &Range<usize>,
    sequence: u64,
    f: &Failed,
    job: &FileJob<'_>,
    session: &Session,
) -> String {
    let (first, last) = (rows.start, rows.end.saturating_sub(1));
    let what = match (block.line_of(first), block.line_of(last)) {
        (Some(a), Some(b)) => format!("lines {a}-{b}"),
        _ => format!("block {}, events {first}-{last}", block.index + 1),
    };
    let tries = if f.attempts > 1 {
        format!(" after {} attempts", f.attempts)
    } else {
        String::new()
    };
    let hint = match f.status.code() {
        Code::Unauthenticated | Code::PermissionDenied => {
            "; check --token (or TALLY_TOKEN) and what the token may write"
        }
        _ => "",
    };
    let resume = if job.name == "-" {
        ""
    } else {
        "; re-running the same import skips what the server already stored"
    };
    format!(
        "{}: batch {} ({what}) failed{tries}: {}{hint} ({} events of this run were stored before{resume})",
        job.name,
        sequence,
        status_message(&f.status),
        session.imported
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_engine::gen::{GenConfig, Generator};

    fn batch(n: u64) -> EventBatch {
        let mut g = Generator::new(GenConfig {
            events: n,
            ..GenConfig::default()
        });
        let mut b = EventBatch::new();
        g.fill(&mut b, n as usize);
        b
    }

    #[test]
    fn split_cuts_evenly_and_covers_every_event() {
        assert!(split(&EventBatch::new()).is_empty());
        let b = batch(20_000);
        let parts = split(&b);
        assert_eq!(parts.len(), 3);
        assert!(parts
            .iter()
            .all(|r| r.len() <= BATCH_EVENTS && r.len() >= 6666));
        assert_eq!(parts.first().map(|r| r.start), Some(0));
        assert_eq!(parts.last().map(|r| r.end), Some(20_000));
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn columns_hold_the_rows_asked_for() {
        let b = batch(10);
        let c = columns_of_rows(&b, 3..7);
        assert_eq!(c.ts_us.len(), 4);
        assert_eq!(c.ip.len(), 4);
        assert_eq!(c.ts_us.first().copied(), Some(b.get(3).ts));
        assert_eq!(columns_of(&b).api_key.len(), 10);
    }

    #[test]
    fn retry_only_what_may_succeed_later() {
        assert!(transient(&Status::unavailable("busy")));
        assert!(transient(&Status::unknown(
            "transport error: connection reset"
        )));
        assert!(transient(&Status::internal(
            "h2 protocol error: http2 error"
        )));
        assert!(!transient(&Status::invalid_argument("bad")));
        assert!(!transient(&Status::unauthenticated("no token")));
        assert!(!transient(&Status::permission_denied("key")));
        assert!(too_old(&Status::invalid_argument(
            "producer p sequence 1 is older than the idempotency window (lowest remembered: 9); the batch was not applied"
        )));
    }
}
