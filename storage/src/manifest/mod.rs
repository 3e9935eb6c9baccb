//! The manifest: the one file that says which chunks make up the database,
//! where WAL replay starts, and what the idempotency memory holds.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "TALLYMAN"
//! 8       4     format version (u32 LE, currently 1)
//! 12      4     body length n (u32 LE, at most MAX_MANIFEST_BYTES)
//! 16      n     body (varint-encoded fields, see docs/format.md)
//! 16+n    4     CRC32C of bytes 0..16+n
//! ```
//!
//! It is replaced atomically by [`write_manifest`]: write `MANIFEST.tmp`,
//! fsync it, rename over `MANIFEST`, fsync the directory. A crash at any
//! point leaves either the old or the new manifest whole.

use std::path::Path;

use crate::codec::{get_varint, put_varint};
use crate::io::FileSystem;
use crate::{Result, StorageError};

/// Magic at the start of the manifest.
pub const MANIFEST_MAGIC: &[u8; 8] = b"TALLYMAN";
/// Current manifest format version.
pub const MANIFEST_VERSION: u32 = 2;
/// Oldest manifest version still read (v1 has no chunk `table` field:
/// every chunk is table 0, raw events).
pub const MIN_MANIFEST_VERSION: u32 = 1;
/// File name of the manifest in the data directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Largest manifest body accepted (256 MiB).
pub const MAX_MANIFEST_BYTES: usize = 256 << 20;
const HEADER_LEN: usize = 16;
/// Longest string field (producer id) accepted.
pub const MAX_NAME_BYTES: usize = 4096;

/// One chunk file named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Chunk id; the file is `chunks/{id:020}.tch`.
    pub id: u64,
    /// Partition day: days since 1970-01-01 (UTC).
    pub day: i32,
    /// Partition key shard.
    pub shard: u32,
    /// Rows in the chunk.
    pub rows: u64,
    /// Smallest event time (µs).
    pub min_ts: i64,
    /// Largest event time (µs).
    pub max_ts: i64,
    /// File size in bytes.
    pub file_bytes: u64,
    /// 0 for a freshly flushed chunk; higher after compaction.
    pub level: u8,
    /// Which table the chunk belongs to: 0 raw events; the engine gives
    /// the other numbers their meaning (rollups). Manifest v2 and later.
    pub table: u8,
}

/// One batch remembered for idempotent retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedBatch {
    /// The producer's sequence number for the batch.
    pub producer_seq: u64,
    /// The first event sequence number the engine gave it.
    pub first_seq: u64,
    /// Events accepted from it.
    pub accepted: u32,
}

/// What the engine remembers about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's id.
    pub id: String,
    /// Highest producer sequence seen.
    pub highest: u64,
    /// The recent batches (a window below `highest`), ascending.
    pub recent: Vec<RememberedBatch>,
}

/// The manifest's contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Incremented on every write.
    pub generation: u64,
    /// Next chunk id to hand out.
    pub next_chunk_id: u64,
    /// Next event sequence number (all events below are in chunks or in
    /// WAL segments ≥ `wal_replay_from`).
    pub next_seq: u64,
    /// First WAL segment recovery must replay.
    pub wal_replay_from: u64,
    /// Number of key shards per day (shapes data on disk; fixed at creation).
    pub key_shards: u32,
    /// The chunks.
    pub chunks: Vec<ChunkEntry>,
    /// Idempotency memory.
    pub producers: Vec<ProducerEntry>,
}

impl Manifest {
    /// Encodes the whole file (current version).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(MANIFEST_VERSION)
    }

    /// Encodes as `version` (1 leaves out the chunk tables; tests write
    /// old manifests this way).
    fn encode_as(&self, version: u32) -> Vec<u8> {
        let mut body = Vec::new();
        put_varint(&mut body, self.generation);
        put_varint(&mut body, self.next_chunk_id);
        put_varint(&mut body, self.next_seq);
        put_varint(&mut body, self.wal_replay_from);
        put_varint(&mut body, u64::from(self.key_shards));
        put_varint(&mut body, self.chunks.len() as u64);
        for c in &self.chunks {
            put_varint(&mut body, c.id);
            put_varint(&mut body, zigzag(i64::from(c.day)));
            put_varint(&mut body, u64::from(c.shard));
            put_varint(&mut body, c.rows);
            put_varint(&mut body, zigzag(c.min_ts));
            put_varint(&mut body, zigzag(c.max_ts));
            put_varint(&mut body, c.file_bytes);
            put_varint(&mut body, u64::from(c.level));
            if version >= 2 {
                put_varint(&mut body, u64::from(c.table));
            }
        }
        put_varint(&mut body, self.producers.len() as u64);
        for p in &self.producers {
            put_varint(&mut body, p.id.len() as u64);
            body.extend_from_slice(p.id.as_bytes());
            put_varint(&mut body, p.highest);
            put_varint(&mut body, p.recent.len() as u64);
            for r in &p.recent {
                put_varint(&mut body, r.producer_seq);
                put_varint(&mut body, r.first_seq);
                put_varint(&mut body, u64::from(r.accepted));
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + 4);
        out.extend_from_slice(MANIFEST_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a manifest file's bytes; `path` is used in errors.
    pub fn decode(data: &[u8], path: &Path) -> Result<Manifest> {
        Manifest::decode_versioned(data, path).map(|(m, _)| m)
    }

    /// Like [`Manifest::decode`], also returning the format version the
    /// bytes were written in (older versions lack what later ones record,
    /// which the engine may have to make up for).
    pub fn decode_versioned(data: &[u8], path: &Path) -> Result<(Manifest, u32)> {
        decode_inner(data, path).map_err(|e| e.located(path, 0))
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    let s = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn decode_inner(data: &[u8], path: &Path) -> Result<(Manifest, u32)> {
    if data.len() < HEADER_LEN + 4 {
        return Err(StorageError::corrupt(
            0,
            format!(
                "manifest needs at least {} bytes, file has {}",
                HEADER_LEN + 4,
                data.len()
            ),
        ));
    }
    if data.get(..8) != Some(MANIFEST_MAGIC.as_slice()) {
        return Err(StorageError::corrupt(0, "expected magic \"TALLYMAN\""));
    }
    let version = le_u32(data, 8).unwrap_or(0);
    let body_len = le_u32(data, 12).unwrap_or(0) as usize;
    if body_len > MAX_MANIFEST_BYTES || HEADER_LEN + body_len + 4 != data.len() {
        return Err(StorageError::corrupt(
            12,
            format!(
                "manifest body length {body_len} does not match file size {}",
                data.len()
            ),
        ));
    }
    let crc_at = HEADER_LEN + body_len;
    let stored = le_u32(data, crc_at).unwrap_or(0);
    let actual = crc32c::crc32c(data.get(..crc_at).unwrap_or_default());
    if stored != actual {
        return Err(StorageError::corrupt(
            crc_at,
            format!("manifest checksum: expected {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    if !(MIN_MANIFEST_VERSION..=MANIFEST_VERSION).contains(&version) {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: MANIFEST_VERSION,
        });
    }
    let body = data.get(HEADER_LEN..crc_at).unwrap_or_default();
    let mut c = Cursor { body, pos: 0 };
    let mut m = Manifest {
        generation: c.varint("generation")?,
        next_chunk_id: c.varint("next_chunk_id")?,
        next_seq: c.varint("next_seq")?,
        wal_replay_from: c.varint("wal_replay_from")?,
        key_shards: u32::try_from(c.varint("key_shards")?)
            .map_err(|_| c.err("key_shards out of range"))?,
        ..Manifest::default()
    };
    // Each chunk entry takes at least 8 bytes: a count above that is corrupt.
    let n_chunks = c.count("chunk count", 8)?;
    for _ in 0..n_chunks {
        let id = c.varint("chunk id")?;
        let day = unzigzag(c.varint("chunk day")?);
        let shard = c.varint("chunk shard")?;
        let rows = c.varint("chunk rows")?;
        let min_ts = unzigzag(c.varint("chunk min_ts")?);
        let max_ts = unzigzag(c.varint("chunk max_ts")?);
        let file_bytes = c.varint("chunk file_bytes")?;
        let level = c.varint("chunk level")?;
        let table = if version >= 2 {
            c.varint("chunk table")?
        } else {
            0
        };
        let (Ok(day), Ok(shard), Ok(level), Ok(table)) = (
            i32::try_from(day),
            u32::try_from(shard),
            u8::try_from(level),
            u8::try_from(table),
        ) else {
            return Err(c.err(&format!(
                "chunk {id}: day, shard, level or table out of range"
            )));
        };
        m.chunks.push(ChunkEntry {
            id,
            day,
            shard,
            rows,
            min_ts,
            max_ts,
            file_bytes,
            level,
            table,
        });
    }
    let n_producers = c.count("producer count", 3)?;
    for _ in 0..n_producers {
        let len = c.varint("producer id length")? as usize;
        if len > MAX_NAME_BYTES {
            return Err(c.err(&format!(
                "producer id length {len} exceeds {MAX_NAME_BYTES}"
            )));
        }
        let Some(bytes) = body.get(c.pos..c.pos + len) else {
            return Err(c.err("producer id runs past the end of the manifest"));
        };
        let id =
            String::from_utf8(bytes.to_vec()).map_err(|_| c.err("producer id is not UTF-8"))?;
        c.pos += len;
        let highest = c.varint("producer highest")?;
        let n_recent = c.count("recent batch count", 3)?;
        let mut recent = Vec::with_capacity(n_recent);
        for _ in 0..n_recent {
            let producer_seq = c.varint("producer_seq")?;
            let first_seq = c.varint("first_seq")?;
            let accepted = u32::try_from(c.varint("accepted")?)
                .map_err(|_| c.err("accepted count out of range"))?;
            recent.push(RememberedBatch {
                producer_seq,
                first_seq,
                accepted,
            });
        }
        m.producers.push(ProducerEntry {
            id,
            highest,
            recent,
        });
    }
    if c.pos != body.len() {
        return Err(c.err(&format!(
            "{} unexpected bytes after the manifest body",
            body.len() - c.pos
        )));
    }
    Ok((m, version))
}

struct Cursor<'a> {
    body: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn err(&self, detail: &str) -> StorageError {
        StorageError::corrupt(HEADER_LEN + self.pos, format!("manifest: {detail}"))
    }
    fn varint(&mut self, what: &str) -> Result<u64> {
        get_varint(self.body, &mut self.pos).map_err(|e| self.err(&format!("field {what}: {e}")))
    }
    /// A count of items each at least `min_bytes` long, bounded by what is left.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize> {
        let n = self.varint(what)?;
        let left = self.body.len().saturating_sub(self.pos) as u64;
        if n.saturating_mul(min_bytes as u64) > left {
            return Err(self.err(&format!("{what} {n} cannot fit in the {left} bytes left")));
        }
        Ok(n as usize)
    }
}

/// Reads the manifest of data directory `dir`, or `None` when there is none.
pub fn read_manifest(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Manifest>> {
    Ok(read_manifest_versioned(fs, dir)?.map(|(m, _)| m))
}

/// Like [`read_manifest`], also returning the file's format version.
pub fn read_manifest_versioned(fs: &dyn FileSystem, dir: &Path) -> Result<Option<(Manifest, u32)>> {
    let path = dir.join(MANIFEST_FILE);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let data = fs.read(&path)?;
    Manifest::decode_versioned(&data, &path).map(Some)
}

/// Atomically replaces the manifest of `dir` with `m`.
pub fn write_manifest(fs: &dyn FileSystem, dir: &Path, m: &Manifest) -> Result<()> {
    let tmp = dir.join("MANIFEST.tmp");
    let path = dir.join(MANIFEST_FILE);
    let mut f = fs.create(&tmp)?;
    f.write_all(&m.encode())?;
    f.sync_data()?;
    drop(f);
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 7,
            next_chunk_id: 12,
            next_seq: 1_000_000,
            wal_replay_from: 3,
            key_shards: 4,
            chunks: vec![ChunkEntry {
                id: 11,
                day: 20_000,
                shard: 2,
                rows: 5000,
                min_ts: 1_700_000_000_000_000,
                max_ts: 1_700_000_086_000_000,
                file_bytes: 77_777,
                level: 0,
                table: 3,
            }],
            producers: vec![ProducerEntry {
                id: "gw-1".into(),
                highest: 9,
                recent: vec![RememberedBatch {
                    producer_seq: 9,
                    first_seq: 999_000,
                    accepted: 1000,
                }],
            }],
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes, Path::new("M")).unwrap(), m);
    }

    #[test]
    fn version_1_is_read_with_every_chunk_in_table_0() {
        let mut m = sample();
        let v1 = m.encode_as(1);
        assert_eq!(v1.get(8..12), Some(1u32.to_le_bytes().as_slice()));
        m.chunks[0].table = 0;
        assert_eq!(Manifest::decode(&v1, Path::new("M")).unwrap(), m);
        assert_eq!(
            Manifest::decode_versioned(&v1, Path::new("M")).unwrap().1,
            1
        );
        let mut v3 = m.encode();
        v3[8] = 3;
        let e = Manifest::decode(&v3, Path::new("M"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum") || e.contains("version"), "{e}");
    }

    #[test]
    fn manifest_corruption_is_an_error_not_a_panic() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let err = Manifest::decode(&bad, Path::new("M")).unwrap_err();
            assert!(err.to_string().contains('M'), "{err}");
        }
        for cut in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..cut], Path::new("M")).is_err());
        }
    }
}
