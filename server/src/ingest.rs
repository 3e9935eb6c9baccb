//! `tally.v1.Ingest`: unary `Write` and bidirectional `WriteStream`. Each
//! batch is converted, then ingested on the blocking pool (the engine
//! waits for its group-commit fsync there); the reply is the engine's
//! acknowledgement. A retried (producer_id, sequence) is acknowledged again
//! and applied once, by the engine.

use std::pin::Pin;
use std::sync::Arc;

use tally_engine::{Db, WriteOptions};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{batch_of, reply_of};
use crate::error::engine_status;
use crate::pb;
use crate::ServerOptions;

/// The ingest service.
#[derive(Clone)]
pub struct IngestService {
    db: Arc<Db>,
    max_events: usize,
}

impl IngestService {
    /// A service writing into `db`.
    pub fn new(db: Arc<Db>, options: &ServerOptions) -> IngestService {
        IngestService {
            db,
            max_events: options.max_events_per_batch,
        }
    }

    async fn write_one(&self, req: pb::WriteRequest) -> Result<pb::WriteReply, Status> {
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
        self.write_one(request.into_inner())
            .await
            .map(Response::new)
    }

    type WriteStreamStream = ReplyStream;

    async fn write_stream(
        &self,
        request: Request<Streaming<pb::WriteRequest>>,
    ) -> Result<Response<Self::WriteStreamStream>, Status> {
        let mut input = request.into_inner();
        let this = self.clone();
        let output = async_stream_replies(move |tx| async move {
            while let Some(req) = input.next().await {
                let reply = match req {
                    Ok(r) => this.write_one(r).await,
                    Err(e) => Err(e),
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
