//! `tally.v1.Admin`: flush and statistics (access tokens come with
//! authentication).

use std::sync::Arc;

use tally_engine::Db;
use tonic::{Request, Response, Status};

use crate::error::engine_status;
use crate::pb;

/// The admin service.
#[derive(Clone)]
pub struct AdminService {
    db: Arc<Db>,
}

impl AdminService {
    /// A service administering `db`.
    pub fn new(db: Arc<Db>) -> AdminService {
        AdminService { db }
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn flush(
        &self,
        _request: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushReply>, Status> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| Status::internal(format!("flush task failed: {e}")))?
            .map_err(engine_status)?;
        Ok(Response::new(pb::FlushReply {}))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsReply>, Status> {
        let s = self.db.stats();
        let (min, max) = s.time_range.unwrap_or((0, 0));
        Ok(Response::new(pb::StatsReply {
            events: s.events,
            memtable_events: s.memtable_events,
            memtable_bytes: s.memtable_bytes,
            partitions: s.partitions,
            chunks: s.chunks,
            chunk_bytes: s.chunk_bytes,
            column_bytes: s
                .column_bytes
                .into_iter()
                .map(|(column, bytes)| pb::ColumnBytes { column, bytes })
                .collect(),
            min_ts_us: min,
            max_ts_us: max,
        }))
    }
}
