//! `tally.v1.Admin`: flush, statistics, partitions, and creating,
//! listing and revoking access tokens (admin tokens only: the gate checks).

use std::sync::Arc;

use tally_engine::Db;
use tonic::{Request, Response, Status};

use crate::auth::{Role, TokenInfo, TokenStore};
use crate::error::engine_status;
use crate::pb;
use crate::ServerError;

/// The admin service.
#[derive(Clone)]
pub(crate) struct AdminService {
    db: Arc<Db>,
    tokens: Option<Arc<TokenStore>>,
}

impl AdminService {
    /// A service administering `db` and its tokens (None: authentication
    /// is off, so there are none to manage).
    pub(crate) fn new(db: Arc<Db>, tokens: Option<Arc<TokenStore>>) -> AdminService {
        AdminService { db, tokens }
    }

    fn tokens(&self) -> Result<&TokenStore, Status> {
        self.tokens.as_deref().ok_or_else(|| {
            Status::failed_precondition("authentication is off (--no-auth): there are no tokens")
        })
    }
}

fn role_of(r: i32) -> Result<Role, Status> {
    match pb::TokenRole::try_from(r) {
        Ok(pb::TokenRole::Admin) => Ok(Role::Admin),
        Ok(pb::TokenRole::Ingest) => Ok(Role::Ingest),
        Ok(pb::TokenRole::Read) => Ok(Role::Read),
        _ => Err(Status::invalid_argument(
            "role: give TOKEN_ROLE_ADMIN, TOKEN_ROLE_INGEST or TOKEN_ROLE_READ",
        )),
    }
}

fn info_msg(t: &TokenInfo) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id.clone(),
        role: match t.role {
            Role::Admin => pb::TokenRole::Admin,
            Role::Ingest => pb::TokenRole::Ingest,
            Role::Read => pb::TokenRole::Read,
        } as i32,
        api_keys: t.keys.clone().unwrap_or_default(),
        name: t.name.clone(),
        created_us: t.created_us,
    }
}

fn token_status(e: ServerError) -> Status {
    match e {
        ServerError::Token(m) => Status::invalid_argument(m),
        other => Status::internal(other.to_string()),
    }
}

/// `YYYY-MM-DD` of a day number.
fn day_text(day: i32) -> String {
    let (y, m, d) = tally_engine::text::time::civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
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

    async fn list_partitions(
        &self,
        _request: Request<pb::ListPartitionsRequest>,
    ) -> Result<Response<pb::ListPartitionsReply>, Status> {
        let partitions = self
            .db
            .partitions()
            .into_iter()
            .map(|p| pb::Partition {
                day: day_text(p.day),
                shard: p.shard,
                chunks: p.chunks,
                events: p.events,
                bytes: p.bytes,
                min_ts_us: p.min_ts,
                max_ts_us: p.max_ts,
            })
            .collect();
        Ok(Response::new(pb::ListPartitionsReply { partitions }))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenReply>, Status> {
        let req = request.into_inner();
        let role = role_of(req.role)?;
        let keys = (!req.api_keys.is_empty()).then_some(req.api_keys);
        let new = self
            .tokens()?
            .create(role, keys, &req.name)
            .map_err(token_status)?;
        tracing::info!(
            "created {} token {} ({:?})",
            new.info.role,
            new.info.id,
            new.info.name
        );
        Ok(Response::new(pb::CreateTokenReply {
            info: Some(info_msg(&new.info)),
            token: new.token,
        }))
    }

    async fn list_tokens(
        &self,
        _request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensReply>, Status> {
        let tokens = self.tokens()?.list().map_err(token_status)?;
        Ok(Response::new(pb::ListTokensReply {
            tokens: tokens.iter().map(info_msg).collect(),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenReply>, Status> {
        let id = request.into_inner().id;
        let revoked = self.tokens()?.revoke(&id).map_err(token_status)?;
        if revoked {
            tracing::info!("revoked token {id}");
        }
        Ok(Response::new(pb::RevokeTokenReply { revoked }))
    }
}
