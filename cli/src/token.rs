//! `tally token create|list|revoke`: access tokens of a data directory
//! (changed in place, also while a server runs on it: the server rereads
//! the file) or of a running server (`--server URL` with an admin token).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use tally_server::pb::{self, admin_client::AdminClient};
use tally_server::{Role, TokenStore};

use crate::client::{status_message, ServerArgs};
use crate::util::CliResult;

/// `tally token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is stored).
    Create(CreateArgs),
    /// List tokens (ids, roles, keys, names; never the tokens).
    List(Where),
    /// Revoke a token by id; it stops working at once.
    Revoke(RevokeArgs),
}

/// Where the tokens are.
#[derive(Args, Debug)]
pub struct Where {
    /// Data directory (when no --server is given).
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    #[command(flatten)]
    remote: ServerArgs,
}

/// Arguments of `tally token create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// What the token may do.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Limit an ingest or read token to this api key (repeat for more).
    #[arg(long = "key", value_name = "API_KEY")]
    keys: Vec<String>,
    /// A name for people ("grafana", "gateway-eu").
    #[arg(long, default_value = "")]
    name: String,
    #[command(flatten)]
    at: Where,
}

/// Arguments of `tally token revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The token's id (from `tally token list`).
    id: String,
    #[command(flatten)]
    at: Where,
}

/// A token's role.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything.
    Admin,
    /// Write events.
    Ingest,
    /// Query and metrics.
    Read,
}

/// A token as listed: id, role, keys (empty = all), name, created (µs).
type Listed = (String, String, Vec<String>, String, i64);

pub fn run(c: TokenCommand) -> CliResult<ExitCode> {
    match c {
        TokenCommand::Create(a) => create(a),
        TokenCommand::List(w) => list(&w),
        TokenCommand::Revoke(a) => revoke(a),
    }
}

fn create(a: CreateArgs) -> CliResult<ExitCode> {
    let keys = (!a.keys.is_empty()).then(|| a.keys.clone());
    let (id, token) = if a.at.remote.server.is_some() {
        let role = match a.role {
            RoleArg::Admin => pb::TokenRole::Admin,
            RoleArg::Ingest => pb::TokenRole::Ingest,
            RoleArg::Read => pb::TokenRole::Read,
        };
        let c = a.at.remote.connect()?;
        let reply =
            c.rt.block_on(
                AdminClient::new(c.channel).create_token(pb::CreateTokenRequest {
                    role: role as i32,
                    api_keys: a.keys.clone(),
                    name: a.name.clone(),
                }),
            )
            .map_err(|s| status_message(&s))?
            .into_inner();
        let id = reply.info.map(|i| i.id).unwrap_or_default();
        (id, reply.token)
    } else {
        let role = match a.role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Ingest => Role::Ingest,
            RoleArg::Read => Role::Read,
        };
        let new = store(&a.at)?
            .create(role, keys, &a.name)
            .map_err(|e| e.to_string())?;
        (new.info.id, new.token)
    };
    eprintln!("created token {id}; it is shown only now:");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn list(w: &Where) -> CliResult<ExitCode> {
    let tokens: Vec<Listed> = if w.remote.server.is_some() {
        let c = w.remote.connect()?;
        c.rt.block_on(AdminClient::new(c.channel).list_tokens(pb::ListTokensRequest {}))
            .map_err(|s| status_message(&s))?
            .into_inner()
            .tokens
            .into_iter()
            .map(|t| {
                let role = match pb::TokenRole::try_from(t.role) {
                    Ok(pb::TokenRole::Admin) => "admin",
                    Ok(pb::TokenRole::Ingest) => "ingest",
                    Ok(pb::TokenRole::Read) => "read",
                    _ => "?",
                };
                (t.id, role.to_string(), t.api_keys, t.name, t.created_us)
            })
            .collect()
    } else {
        store(w)?
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| {
                (
                    t.id,
                    t.role.to_string(),
                    t.keys.unwrap_or_default(),
                    t.name,
                    t.created_us,
                )
            })
            .collect()
    };
    println!(
        "{:<12}  {:<6}  {:<20}  {:<30}  name",
        "id", "role", "created", "keys"
    );
    for (id, role, keys, name, created) in tokens {
        let keys = if keys.is_empty() {
            "*".to_string()
        } else {
            keys.join(",")
        };
        let created = tally_engine::text::format_ts(created);
        let created = created.get(..19).unwrap_or(&created);
        println!("{id:<12}  {role:<6}  {created:<20}  {keys:<30}  {name}");
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(a: RevokeArgs) -> CliResult<ExitCode> {
    let revoked = if a.at.remote.server.is_some() {
        let c = a.at.remote.connect()?;
        c.rt.block_on(
            AdminClient::new(c.channel).revoke_token(pb::RevokeTokenRequest { id: a.id.clone() }),
        )
        .map_err(|s| status_message(&s))?
        .into_inner()
        .revoked
    } else {
        store(&a.at)?.revoke(&a.id).map_err(|e| e.to_string())?
    };
    if revoked {
        eprintln!("revoked token {}", a.id);
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!("no token has id {:?}", a.id))
    }
}

fn store(w: &Where) -> CliResult<TokenStore> {
    if !std::path::Path::new(&w.data_dir).is_dir() {
        return Err(format!(
            "{} is not a directory (give --data-dir, or --server URL)",
            w.data_dir
        ));
    }
    TokenStore::open(&w.data_dir).map_err(|e| e.to_string())
}
