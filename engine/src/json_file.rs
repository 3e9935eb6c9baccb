//! The engine's small JSON metadata files (the key registry, closed
//! billing months, `retention.json`): read with errors naming the file,
//! line and column; replaced durably (temporary file, fsync, rename,
//! directory fsync); changed under an exclusive lock file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{EngineError, Result};

fn io(p: &Path, op: &'static str, e: std::io::Error) -> EngineError {
    tally_storage::StorageError::io(p, op, e).into()
}

/// Parses `text`, the contents of `path`.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| EngineError::BadFile {
        path: path.to_path_buf(),
        reason: format!("line {} column {}: {e}", e.line(), e.column()),
    })
}

/// Reads and parses `path`; None when it does not exist.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, "read", e)),
    }
}

/// Replaces `path` with `value` as pretty JSON: `<path>.tmp`, fsync,
/// rename, directory fsync.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| {
        EngineError::InvalidRequest(format!("cannot encode {}: {e}", path.display()))
    })?;
    text.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, "create", e))?;
    f.write_all(&text).map_err(|e| io(&tmp, "write", e))?;
    f.sync_all().map_err(|e| io(&tmp, "sync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io(path, "replace", e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, "sync", e))
}

/// Takes an exclusive lock of `path` (created if absent), held until the
/// returned file is dropped.
pub(crate) fn lock(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io(path, "open", e))?;
    f.lock().map_err(|e| io(path, "lock", e))?;
    Ok(f)
}
