//! The small file-system trait that all of Tally's file writes go through.
//!
//! Production uses [`StdFs`]. Tests wrap it in [`FaultyFs`] to fail the Nth
//! write or sync and check that nothing acknowledged is lost and that
//! recovery copes. Chunk files are read through `mmap` directly: reads do
//! not need fault injection, since a failed read is simply an error.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Result, StorageError};

/// A file open for appending.
pub trait WritableFile: Send + Debug {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync_data(&mut self) -> Result<()>;
    /// The file's path.
    fn path(&self) -> &Path;
}

/// The file operations Tally's writers need.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> Result<Vec<u8>>;
    /// Atomically renames `from` to `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Makes a directory's entries (creates, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Cuts a file to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Lists the entries of a directory (file names only), sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// True when `path` exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile {
    file: File,
    path: PathBuf,
}

impl WritableFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .write_all(buf)
            .map_err(|e| StorageError::io(&self.path, "write", e))
    }
    fn sync_data(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.path, "fsync", e))
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

impl FileSystem for StdFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| StorageError::io(path, "create", e))?;
        Ok(Box::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| StorageError::io(path, "open", e))?;
        Ok(Box::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| StorageError::io(path, "read", e))?;
        Ok(buf)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| StorageError::io(from, "rename", e))
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(dir, "fsync directory", e))
    }
    fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| StorageError::io(path, "remove", e))
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io(path, "open", e))?;
        f.set_len(len)
            .and_then(|()| f.sync_all())
            .map_err(|e| StorageError::io(path, "truncate", e))
    }
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, "create directory", e))
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, "list", e))?;
        for entry in rd {
            let entry = entry.map_err(|e| StorageError::io(dir, "list", e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// A [`FileSystem`] that fails on command: after a countdown of writes or
/// syncs, every write and sync returns an injected I/O error. For tests.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    inner: StdFs,
    state: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    /// Operations (writes + syncs + renames) left before failing; u64::MAX = never.
    countdown: AtomicU64,
}

impl FaultyFs {
    /// A file system that works until [`FaultyFs::fail_after`] is called.
    pub fn new() -> Self {
        FaultyFs {
            inner: StdFs,
            state: Arc::new(FaultState {
                countdown: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// Lets `ops` more writes/syncs/renames succeed, then fails all of them.
    pub fn fail_after(&self, ops: u64) {
        self.state.countdown.store(ops, Ordering::SeqCst);
    }

    /// Stops failing.
    pub fn heal(&self) {
        self.state.countdown.store(u64::MAX, Ordering::SeqCst);
    }

    fn tick(&self, path: &Path, op: &'static str) -> Result<()> {
        let left = self.state.countdown.load(Ordering::SeqCst);
        if left == u64::MAX {
            return Ok(());
        }
        if left == 0 {
            return Err(StorageError::io(
                path,
                op,
                std::io::Error::other("injected fault"),
            ));
        }
        self.state.countdown.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

impl Default for FaultyFs {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn WritableFile>,
    fs: FaultyFs,
}

impl WritableFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.fs.tick(self.inner.path(), "write")?;
        self.inner.write_all(buf)
    }
    fn sync_data(&mut self) -> Result<()> {
        self.fs.tick(self.inner.path(), "fsync")?;
        self.inner.sync_data()
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
}

impl FileSystem for FaultyFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        self.tick(path, "create")?;
        Ok(Box::new(FaultyFile {
            inner: self.inner.create(path)?,
            fs: self.clone(),
        }))
    }
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.open_append(path)?,
            fs: self.clone(),
        }))
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.tick(from, "rename")?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.tick(dir, "fsync directory")?;
        self.inner.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.tick(path, "truncate")?;
        self.inner.truncate(path, len)
    }
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}
