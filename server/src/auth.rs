//! Who is calling: access tokens, their roles and key scopes, the token
//! store in the data directory, and the gate in front of every service
//! that checks them.
//!
//! A token reads `tly_<id>_<secret>`: the id is public (it names the token
//! in lists and logs), the secret 32 random bytes. The store keeps only the
//! SHA-256 of the whole token, in `<data-dir>/tokens`, one token a line:
//! `id TAB role TAB keys TAB sha256-hex TAB created-µs TAB name`, where
//! keys is `*` (every key) or a comma-separated list. Changes are written
//! to a temporary file, fsynced and renamed over it, under an exclusive
//! lock of `tokens.lock`, so `tally token` and a running server can both
//! change it; the server rereads it when its modification time or size
//! changes.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ring::rand::SecureRandom as _;
use tonic::{Request, Status};

use crate::limits::Limits;
use crate::ServerError;

/// Name of the token file in the data directory.
pub const TOKENS_FILE: &str = "tokens";
/// Name of the file the first admin token is written to.
pub const FIRST_ADMIN_TOKEN_FILE: &str = "admin-token";
/// Most api keys one token may be scoped to.
pub const MAX_SCOPE_KEYS: usize = 10_000;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including tokens and flush.
    Admin,
    /// Write events (for any key, or only the token's keys).
    Ingest,
    /// Query and metrics (of every key, or only the token's keys).
    Read,
}

impl Role {
    /// The role's name: `admin`, `ingest` or `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Read => "read",
        }
    }

    /// A role by name.
    pub fn parse(s: &str) -> Result<Role, ServerError> {
        match s {
            "admin" => Ok(Role::Admin),
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            other => Err(ServerError::Token(format!(
                "unknown role {other:?}: expected admin, ingest or read"
            ))),
        }
    }

    fn may_call(self, service: Service) -> bool {
        match self {
            Role::Admin => true,
            // tally.v1.Usage checks the role of each call itself.
            Role::Ingest => matches!(service, Service::Ingest | Service::Usage),
            Role::Read => matches!(service, Service::Query | Service::Metrics | Service::Usage),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// The api keys it is limited to (None = every key).
    pub keys: Option<Vec<String>>,
    /// When it was created (µs since the epoch).
    pub created_us: i64,
    /// A name for people ("grafana", "gateway-eu").
    pub name: String,
    sha256: [u8; 32],
}

/// A token just created: the only time its secret text exists.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// What is stored.
    pub info: TokenInfo,
    /// The whole token to give the client (`tly_<id>_<secret>`).
    pub token: String,
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

/// The tokens of a data directory.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    lock_path: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    tokens: Vec<TokenInfo>,
    /// Modification time and size of the file when read (None = absent).
    stamp: Option<(SystemTime, u64)>,
}

impl TokenStore {
    /// The store of `data_dir` (the directory is created if missing; the
    /// file need not exist). A malformed file is an error naming the line.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<TokenStore, ServerError> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "create", &e))?;
        let store = TokenStore {
            path: dir.join(TOKENS_FILE),
            lock_path: dir.join("tokens.lock"),
            cache: Mutex::new(Cache::default()),
        };
        store.refresh()?;
        Ok(store)
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, ServerError> {
        self.refresh()?;
        Ok(self.cache().tokens.clone())
    }

    /// Creates a token. `keys` limits an ingest or read token to those api
    /// keys; admin tokens cannot be limited.
    pub fn create(
        &self,
        role: Role,
        keys: Option<Vec<String>>,
        name: &str,
    ) -> Result<NewToken, ServerError> {
        check_name(name)?;
        let keys = match keys {
            Some(_) if role == Role::Admin => {
                return Err(ServerError::Token(
                    "an admin token cannot be limited to api keys".into(),
                ))
            }
            Some(k) => Some(check_keys(k)?),
            None => None,
        };
        let rng = ring::rand::SystemRandom::new();
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rng.fill(&mut id)
            .and_then(|()| rng.fill(&mut secret))
            .map_err(|_| ServerError::TokenStore("no randomness from the system".into()))?;
        let id = hex(&id);
        let token = format!("tly_{id}_{}", hex(&secret));
        let info = TokenInfo {
            id,
            role,
            keys,
            created_us: now_us(),
            name: name.to_string(),
            sha256: sha256(&token),
        };
        self.modify(|tokens| {
            tokens.push(info.clone());
            Ok(())
        })?;
        Ok(NewToken { info, token })
    }

    /// Revokes the token `id`; false when there is none.
    pub fn revoke(&self, id: &str) -> Result<bool, ServerError> {
        let mut found = false;
        self.modify(|tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != id);
            found = tokens.len() != before;
            Ok(())
        })?;
        Ok(found)
    }

    /// The caller a bearer token stands for, or None when it is unknown
    /// or revoked.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, ServerError> {
        self.refresh()?;
        let Some(id) = token
            .strip_prefix("tly_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
        else {
            return Ok(None);
        };
        let digest = sha256(token);
        let cache = self.cache();
        Ok(cache
            .tokens
            .iter()
            .find(|t| t.id == id && constant_time_eq(&t.sha256, &digest))
            .map(|t| Principal {
                token_id: t.id.clone(),
                role: t.role,
                keys: t.keys.clone(),
            }))
    }

    /// On a store with no token at all, creates an admin token and writes
    /// it to `<data-dir>/admin-token` (readable by the owner only); returns
    /// that file's path. Does nothing otherwise.
    pub fn ensure_first_admin(&self) -> Result<Option<PathBuf>, ServerError> {
        if !self.list()?.is_empty() {
            return Ok(None);
        }
        let new = self.create(Role::Admin, None, "first admin")?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let file = dir.join(FIRST_ADMIN_TOKEN_FILE);
        write_private(&file, format!("{}\n", new.token).as_bytes())?;
        Ok(Some(file))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rereads the file when its time or size changed.
    fn refresh(&self) -> Result<(), ServerError> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&self.path, "stat", &e)),
        };
        let mut cache = self.cache();
        if cache.stamp == stamp && stamp.is_some() {
            return Ok(());
        }
        cache.tokens = self.read()?;
        cache.stamp = stamp;
        Ok(())
    }

    fn read(&self) -> Result<Vec<TokenInfo>, ServerError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.path, "read", &e)),
        };
        parse_tokens(&text, &self.path.display().to_string())
    }

    /// Read, change and replace the file under the lock.
    fn modify(
        &self,
        change: impl FnOnce(&mut Vec<TokenInfo>) -> Result<(), ServerError>,
    ) -> Result<(), ServerError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| io_err(&self.lock_path, "open", &e))?;
        lock.lock()
            .map_err(|e| io_err(&self.lock_path, "lock", &e))?;
        let mut tokens = self.read()?;
        change(&mut tokens)?;
        let mut text = String::from(
            "# Tally access tokens: id, role, keys, sha256 of the token, created (µs), name\n",
        );
        for t in &tokens {
            let keys = t
                .keys
                .as_ref()
                .map_or_else(|| "*".to_string(), |k| k.join(","));
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                t.id,
                t.role,
                keys,
                hex(&t.sha256),
                t.created_us,
                t.name
            ));
        }
        let tmp = self.path.with_extension("tmp");
        write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, "replace", &e))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        drop(lock);
        // Force a reread: a rename within the same second may keep the size.
        self.cache().stamp = None;
        self.refresh()
    }
}

/// The tokens of a token file's text; errors name `file` and the line.
pub(crate) fn parse_tokens(text: &str, file: &str) -> Result<Vec<TokenInfo>, ServerError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            parse_line(l).map_err(|why| ServerError::TokenStore(format!("{file}:{}: {why}", i + 1)))
        })
        .collect()
}

fn parse_line(line: &str) -> Result<TokenInfo, String> {
    let f: Vec<&str> = line.split('\t').collect();
    let [id, role, keys, digest, created, name] = f.as_slice() else {
        return Err(format!(
            "expected 6 tab-separated fields, found {}",
            f.len()
        ));
    };
    let role = Role::parse(role).map_err(|e| e.to_string())?;
    let keys = match *keys {
        "*" => None,
        k => {
            let mut keys: Vec<String> = k.split(',').map(str::to_string).collect();
            keys.sort();
            Some(keys)
        }
    };
    let mut sha256 = [0u8; 32];
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the sha256 field must be 64 hex digits".into());
    }
    for (i, b) in sha256.iter_mut().enumerate() {
        *b = u8::from_str_radix(digest.get(2 * i..2 * i + 2).unwrap_or(""), 16)
            .map_err(|_| "the sha256 field must be 64 hex digits".to_string())?;
    }
    Ok(TokenInfo {
        id: (*id).to_string(),
        role,
        keys,
        created_us: created
            .parse()
            .map_err(|_| format!("bad creation time {created:?}"))?,
        name: (*name).to_string(),
        sha256,
    })
}

fn check_name(name: &str) -> Result<(), ServerError> {
    if name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ServerError::Token(
            "a token name must be at most 200 bytes without control characters".into(),
        ));
    }
    Ok(())
}

fn check_keys(mut keys: Vec<String>) -> Result<Vec<String>, ServerError> {
    if keys.is_empty() || keys.len() > MAX_SCOPE_KEYS {
        return Err(ServerError::Token(format!(
            "a token is limited to 1..={MAX_SCOPE_KEYS} api keys, not {}",
            keys.len()
        )));
    }
    for k in &keys {
        if k.is_empty() || k == "*" || k.contains(',') || k.chars().any(char::is_control) {
            return Err(ServerError::Token(format!(
                "api key {k:?} cannot scope a token (empty, `*`, a comma or a control character)"
            )));
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    let mut o = OpenOptions::new();
    o.create(true).truncate(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| io_err(path, "create", &e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(path, "write", &e))
}

fn io_err(path: &Path, what: &str, e: &std::io::Error) -> ServerError {
    ServerError::TokenStore(format!("cannot {what} {}: {e}", path.display()))
}

fn sha256(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
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
    Usage,
}

/// The interceptor in front of a service: authenticates the bearer token
/// (unless authentication is off), checks its role may call the service,
/// charges the token's rate limit, and records the [`Principal`] in the
/// request.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) service: Service,
    /// None: authentication is off (`--no-auth`); every caller is an admin.
    pub(crate) tokens: Option<Arc<TokenStore>>,
    pub(crate) limits: Arc<Limits>,
}

impl Gate {
    fn caller(&self, request: &Request<()>) -> Result<Principal, Status> {
        let Some(store) = &self.tokens else {
            return Ok(Principal::anonymous());
        };
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no access token: send metadata `authorization: Bearer <token>`",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must read `Bearer <token>`")
            })?
            .trim();
        match store.authenticate(token) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Status::unauthenticated("unknown or revoked access token")),
            Err(e) => {
                tracing::error!("token store unreadable: {e}");
                Err(Status::unavailable(
                    "the server cannot read its token store; try again later",
                ))
            }
        }
    }
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.caller(&request)?;
        if !caller.role.may_call(self.service) {
            let needs = match self.service {
                Service::Ingest => "ingest or admin",
                Service::Query | Service::Metrics => "read or admin",
                Service::Admin => "admin",
                Service::Usage => "ingest, read or admin",
            };
            return Err(Status::permission_denied(format!(
                "token {} has role {}; tally.v1.{:?} needs role {needs}",
                caller.token_id, caller.role, self.service
            )));
        }
        self.limits.charge(&caller.token_id)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}
