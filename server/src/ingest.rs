//! `tally.v1.Ingest`: unary `Write` and bidirectional `WriteStream`. Each
//! batch is converted, then ingested on the blocking pool (the engine
//! waits for its group-commit fsync there); the reply is the engine's
//! acknowledgement. A retried (producer_id, sequence) is acknowledged again
//! and applied once, by the engine.
//!
//! Before the engine sees a batch: an ingest token limited to api keys
//! may only write those keys (else PERMISSION_DENIED for the whole batch);
//! the batch must find room in the server's in-flight ingest budget, and
//! the engine's write buffers must not be full (backpressure: it waits up
//! to `ingest_wait`, then UNAVAILABLE with retry advice).

use std::pin::Pin;
use std::sync::Arc;

use tally_engine::{Db, WriteOptions};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use prost::Message as _;

use crate::auth::{principal, Principal, Role};
use crate::convert::{batch_of, reply_of};
use crate::error::engine_status;
use crate::limits::Limits;
use crate::pb;
use crate::ServerOptions;

/// The ingest service.
#[derive(Clone)]
pub(crate) struct IngestService {
    db: Arc<Db>,
    max_events: usize,
    limits: Arc<Limits>,
}

impl IngestService {
    /// A service writing into `db`.
    pub(crate) fn new(db: Arc<Db>, options: &ServerOptions, limits: Arc<Limits>) -> IngestService {
        IngestService {
            db,
            max_events: options.max_events_per_batch,
            limits,
        }
    }

    async fn write_one(
        &self,
        req: pb::WriteRequest,
        caller: &Principal,
    ) -> Result<pb::WriteReply, Status> {
        check_keys(&req, caller)?;
        let _room = self.limits.ingest_room(req.encoded_len()).await?;
        let db = &self.db;
        crate::limits::wait_while(|| db.write_buffers_full(), self.limits.ingest_wait()).await?;
        let batch = batch_of(&req, self.max_events)?;
        let opts = WriteOptions {
            producer: (!req.producer_id.is_empty())
                .then(|| (req.producer_id.clone(), req.sequence)),
            all_or_nothing: req.all_or_nothing,
            skip_wal: false,
        };
        let db = self.db.clone();
        let ack = tokio::task::spawn_blocking(move || db.ingest_owned(batch, &opts))
            .await
            .map_err(|e| Status::internal(format!("ingest task failed: {e}")))?
            .map_err(engine_status)?;
        Ok(reply_of(&ack))
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<pb::WriteReply, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    async fn write(
        &self,
        request: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        let caller = principal(&request)?;
        self.write_one(request.into_inner(), &caller)
            .await
            .map(Response::new)
    }

    type WriteStreamStream = ReplyStream;

    async fn write_stream(
        &self,
        request: Request<Streaming<pb::WriteRequest>>,
    ) -> Result<Response<Self::WriteStreamStream>, Status> {
        let caller = principal(&request)?;
        let slot = self.limits.stream_slot()?;
        let mut input = request.into_inner();
        let this = self.clone();
        let output = async_stream_replies(move |tx| async move {
            let _slot = slot;
            let mut first = true;
            while let Some(req) = input.next().await {
                // The call was charged once by the gate; each further batch
                // counts against the token's rate too.
                let charged = if first {
                    Ok(())
                } else {
                    this.limits.charge(&caller.token_id)
                };
                first = false;
                let reply = match (charged, req) {
                    (Err(e), _) => Err(e),
                    (Ok(()), Ok(r)) => this.write_one(r, &caller).await,
                    (Ok(()), Err(e)) => Err(oversized_is_exhausted(e)),
                };
                let stop = reply.is_err();
                if tx.send(reply).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(output))
    }
}

/// Refuses a batch with an api key an ingest token is not limited to.
pub(crate) fn check_keys(req: &pb::WriteRequest, caller: &Principal) -> Result<(), Status> {
    let (Role::Ingest, Some(keys)) = (caller.role, &caller.keys) else {
        return Ok(());
    };
    let batch_keys: Box<dyn Iterator<Item = &String>> = match &req.columns {
        Some(c) if req.events.is_empty() => Box::new(c.api_key.iter()),
        _ => Box::new(req.events.iter().map(|e| &e.api_key)),
    };
    match batch_keys
        .enumerate()
        .find(|(_, k)| keys.binary_search(k).is_err())
    {
        None => Ok(()),
        Some((i, key)) => Err(Status::permission_denied(format!(
            "event {i}: token {} may not write api key {key:?}; nothing was applied",
            caller.token_id
        ))),
    }
}

/// A streamed message over the size limit is RESOURCE_EXHAUSTED (tonic's
/// decoder says OUT_OF_RANGE).
fn oversized_is_exhausted(s: Status) -> Status {
    if s.code() == tonic::Code::OutOfRange && s.message().contains("message length too large") {
        Status::resource_exhausted(s.message().to_string())
    } else {
        s
    }
}

/// A reply stream fed by a task through a bounded channel.
fn async_stream_replies<F, Fut>(f: F) -> ReplyStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::WriteReply, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
