//! `tally.v1.Metrics`: the seed product's dashboard calls (work in progress).

use std::sync::Arc;

use tally_engine::Db;

use crate::pb;
use crate::ServerOptions;

/// The metrics service.
#[derive(Clone)]
pub struct MetricsService {
    #[allow(dead_code, reason = "used by the calls being added")]
    db: Arc<Db>,
    #[allow(dead_code, reason = "used by the calls being added")]
    options: tally_query::QueryOptions,
}

impl MetricsService {
    /// A service answering from `db`.
    pub fn new(db: Arc<Db>, options: &ServerOptions) -> MetricsService {
        MetricsService {
            db,
            options: options.query.clone(),
        }
    }
}

#[tonic::async_trait]
impl pb::metrics_server::Metrics for MetricsService {}
