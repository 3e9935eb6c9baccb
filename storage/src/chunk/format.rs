//! Chunk file constants, block framing and the footer encoding.
//!
//! ```text
//! file    := header block* footer_block trailer
//! header  := "TALLYCHK" version:u32 flags:u32                     (16 bytes)
//! block   := 0xB1 compression:u8 reserved:u16 raw_len:u32
//!            stored_len:u32 crc:u32 stored[stored_len]            (16 + n)
//!            crc = CRC32C(header bytes 0..12 ++ stored)
//! trailer := footer_offset:u64 footer_len:u32 crc32c(trailer[0..12]):u32
//!            "TALLYEND"                                           (24 bytes)
//! ```
//! The footer block's raw bytes are the [`Footer`], varint encoded.

use crate::codec::{compress, decompress, get_varint, put_varint, Compression};
use crate::{Result, StorageError};

/// Magic at the start of a chunk file.
pub const CHUNK_MAGIC: &[u8; 8] = b"TALLYCHK";
/// Magic at the very end of a chunk file.
pub const TRAILER_MAGIC: &[u8; 8] = b"TALLYEND";
/// Current chunk format version: the one written. Version 2 chunks may
/// hold integer codec 0x04 (Scaled) and, in rollup chunks, single-event
/// rows and sketches stored without what their row implies
/// (docs/format.md); a build that reads only version 1 refuses them
/// instead of misreading them.
pub const CHUNK_VERSION: u32 = 2;
/// Oldest chunk format version still read.
pub const OLDEST_CHUNK_VERSION: u32 = 1;
/// Bytes of the file header.
pub(crate) const HEADER_LEN: usize = 16;
/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 24;
/// Bytes of a block header.
pub const BLOCK_HEADER_LEN: usize = 16;
/// Tag byte that starts every block.
pub(crate) const BLOCK_TAG: u8 = 0xB1;
/// Rows per column block unless configured otherwise.
pub const DEFAULT_BLOCK_ROWS: usize = 8192;
/// Largest block row count a reader accepts.
pub const MAX_BLOCK_ROWS: usize = 1 << 20;
/// Largest decompressed block a reader accepts (256 MiB).
pub(crate) const MAX_BLOCK_RAW_BYTES: usize = 256 << 20;
/// Largest number of rows a chunk may hold.
pub(crate) const MAX_CHUNK_ROWS: u64 = u32::MAX as u64 - 1;

/// The type of a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ColumnKind {
    /// Signed 64-bit integers (timestamps).
    I64 = 1,
    /// Unsigned 64-bit integers.
    U64 = 2,
    /// 64-bit floats, stored bit-exact.
    F64 = 3,
    /// Byte strings (text, IP addresses).
    Bytes = 4,
}

impl ColumnKind {
    /// The kind's code in the file.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// The kind for a code read from a file.
    pub fn try_from_code(code: u8) -> Option<ColumnKind> {
        match code {
            1 => Some(ColumnKind::I64),
            2 => Some(ColumnKind::U64),
            3 => Some(ColumnKind::F64),
            4 => Some(ColumnKind::Bytes),
            _ => None,
        }
    }
}

/// How a column's blocks are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ColumnEncoding {
    /// I64/U64/F64 through the matching integer or float codec; Bytes: plain strings.
    Plain = 0,
    /// I64 sorted within each key: first row of each key and of each block
    /// stores `ts - chunk_min_ts`, other rows the delta from the previous row.
    KeyDelta = 1,
    /// Bytes: codes into a sorted per-column dictionary.
    Dictionary = 2,
}

impl ColumnEncoding {
    pub(crate) fn try_from_code(code: u8) -> Option<ColumnEncoding> {
        match code {
            0 => Some(ColumnEncoding::Plain),
            1 => Some(ColumnEncoding::KeyDelta),
            2 => Some(ColumnEncoding::Dictionary),
            _ => None,
        }
    }
}

/// Where a block is: offset of its header in the file and its total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BlockRef {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Footer entry of one data block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FooterBlock {
    pub(crate) at: BlockRef,
    /// Order-preserving statistic (see [`crate::chunk::BlockMeta`]).
    pub(crate) min: u64,
    pub(crate) max: u64,
}

/// Footer entry of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FooterColumn {
    pub(crate) name: String,
    pub(crate) kind: ColumnKind,
    pub(crate) encoding: ColumnEncoding,
    pub(crate) dictionary: Option<(BlockRef, u64)>,
    pub(crate) bitmaps: Option<BlockRef>,
    pub(crate) blocks: Vec<FooterBlock>,
}

/// Everything the reader needs to find its way in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) rows: u64,
    pub(crate) block_rows: u64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) key_name: String,
    pub(crate) keys: u64,
    pub(crate) key_directory: BlockRef,
    pub(crate) columns: Vec<FooterColumn>,
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_ref(out: &mut Vec<u8>, r: BlockRef) {
    put_varint(out, r.offset);
    put_varint(out, r.len);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Longest column or key name accepted.
const MAX_NAME_LEN: u64 = 1024;

impl Footer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, self.rows);
        put_varint(&mut out, self.block_rows);
        put_varint(&mut out, zigzag(self.min_ts));
        put_varint(&mut out, zigzag(self.max_ts));
        put_str(&mut out, &self.key_name);
        put_varint(&mut out, self.keys);
        put_ref(&mut out, self.key_directory);
        put_varint(&mut out, self.columns.len() as u64);
        for c in &self.columns {
            put_str(&mut out, &c.name);
            out.push(c.kind.code());
            out.push(c.encoding as u8);
            match c.dictionary {
                Some((r, n)) => {
                    out.push(1);
                    put_ref(&mut out, r);
                    put_varint(&mut out, n);
                }
                None => out.push(0),
            }
            match c.bitmaps {
                Some(r) => {
                    out.push(1);
                    put_ref(&mut out, r);
                }
                None => out.push(0),
            }
            put_varint(&mut out, c.blocks.len() as u64);
            for b in &c.blocks {
                put_ref(&mut out, b.at);
                put_varint(&mut out, b.min);
                put_varint(&mut out, b.max);
            }
        }
        out
    }

    /// Decodes a footer; offsets in errors are relative to `data`.
    pub(crate) fn decode(data: &[u8]) -> Result<Footer> {
        let mut c = Cursor { data, pos: 0 };
        let rows = c.varint("rows")?;
        if rows > MAX_CHUNK_ROWS {
            return Err(c.err(format!("row count {rows} exceeds {MAX_CHUNK_ROWS}")));
        }
        let block_rows = c.varint("block_rows")?;
        if block_rows == 0 || block_rows > MAX_BLOCK_ROWS as u64 {
            return Err(c.err(format!(
                "block_rows {block_rows} outside 1..={MAX_BLOCK_ROWS}"
            )));
        }
        let min_ts = unzigzag(c.varint("min_ts")?);
        let max_ts = unzigzag(c.varint("max_ts")?);
        let key_name = c.string("key column name")?;
        let keys = c.varint("key count")?;
        if keys > rows {
            return Err(c.err(format!("{keys} keys for {rows} rows")));
        }
        let key_directory = c.block_ref("key directory")?;
        let n_cols = c.varint("column count")?;
        if n_cols > 4096 {
            return Err(c.err(format!("column count {n_cols} exceeds 4096")));
        }
        let expected_blocks = rows.div_ceil(block_rows);
        let mut columns = Vec::with_capacity(n_cols as usize);
        for _ in 0..n_cols {
            let name = c.string("column name")?;
            let kind_code = c.byte("column kind")?;
            let kind = ColumnKind::try_from_code(kind_code)
                .ok_or_else(|| c.err(format!("column {name}: unknown kind code {kind_code}")))?;
            let enc_code = c.byte("column encoding")?;
            let encoding = ColumnEncoding::try_from_code(enc_code)
                .ok_or_else(|| c.err(format!("column {name}: unknown encoding code {enc_code}")))?;
            let dictionary = match c.byte("dictionary flag")? {
                0 => None,
                1 => {
                    let r = c.block_ref("dictionary")?;
                    let n = c.varint("dictionary size")?;
                    if n > rows {
                        return Err(c.err(format!(
                            "column {name}: dictionary of {n} entries for {rows} rows"
                        )));
                    }
                    Some((r, n))
                }
                f => return Err(c.err(format!("column {name}: dictionary flag {f}"))),
            };
            let bitmaps = match c.byte("bitmap flag")? {
                0 => None,
                1 => Some(c.block_ref("bitmaps")?),
                f => return Err(c.err(format!("column {name}: bitmap flag {f}"))),
            };
            if (encoding == ColumnEncoding::Dictionary) != dictionary.is_some() {
                return Err(c.err(format!(
                    "column {name}: dictionary presence does not match its encoding"
                )));
            }
            let n_blocks = c.varint("block count")?;
            if n_blocks != expected_blocks {
                return Err(c.err(format!(
                    "column {name}: expected {expected_blocks} blocks for {rows} rows, found {n_blocks}"
                )));
            }
            // Each entry is four varints of at least one byte: bound the
            // count by the bytes left before allocating for it.
            let left = data.len().saturating_sub(c.pos) as u64;
            if n_blocks > left / 4 {
                return Err(c.err(format!(
                    "column {name}: {n_blocks} block entries cannot fit in the {left} bytes left"
                )));
            }
            let mut blocks = Vec::with_capacity(n_blocks as usize);
            for _ in 0..n_blocks {
                let at = c.block_ref("block")?;
                let min = c.varint("block min")?;
                let max = c.varint("block max")?;
                blocks.push(FooterBlock { at, min, max });
            }
            columns.push(FooterColumn {
                name,
                kind,
                encoding,
                dictionary,
                bitmaps,
                blocks,
            });
        }
        if c.pos != data.len() {
            return Err(c.err(format!(
                "{} unexpected bytes after the footer",
                data.len() - c.pos
            )));
        }
        Ok(Footer {
            rows,
            block_rows,
            min_ts,
            max_ts,
            key_name,
            keys,
            key_directory,
            columns,
        })
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn err(&self, detail: String) -> StorageError {
        StorageError::corrupt(self.pos, format!("chunk footer: {detail}"))
    }
    fn varint(&mut self, what: &str) -> Result<u64> {
        get_varint(self.data, &mut self.pos).map_err(|e| self.err(format!("field {what}: {e}")))
    }
    fn byte(&mut self, what: &str) -> Result<u8> {
        let b = self
            .data
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err(format!("field {what}: unexpected end")))?;
        self.pos += 1;
        Ok(b)
    }
    fn block_ref(&mut self, what: &str) -> Result<BlockRef> {
        Ok(BlockRef {
            offset: self.varint(what)?,
            len: self.varint(what)?,
        })
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.varint(what)?;
        if len > MAX_NAME_LEN {
            return Err(self.err(format!("{what} of {len} bytes exceeds {MAX_NAME_LEN}")));
        }
        let end = self.pos + len as usize;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| self.err(format!("{what} runs past the end")))?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| self.err(format!("{what} is not UTF-8")))?
            .to_string();
        self.pos = end;
        Ok(s)
    }
}

/// CRC32C over the header's first 12 bytes, then the stored bytes: a flip
/// anywhere in a block, header included, is caught.
fn block_crc(header: &[u8], stored: &[u8]) -> u32 {
    let h = crc32c::crc32c(header.get(..12).unwrap_or_default());
    crc32c::crc32c_append(h, stored)
}

/// Appends a block (header + stored bytes) holding `raw` to `out`,
/// compressed with `compression` when that makes it smaller.
pub(crate) fn write_block(raw: &[u8], compression: Compression, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0u8; BLOCK_HEADER_LEN]);
    let mut used = Compression::None;
    if compression != Compression::None && raw.len() > 64 {
        compress(compression, raw, out)?;
        if out.len() - start - BLOCK_HEADER_LEN < raw.len() {
            used = compression;
        } else {
            out.truncate(start + BLOCK_HEADER_LEN);
        }
    }
    if used == Compression::None {
        out.extend_from_slice(raw);
    }
    let stored_len = out.len() - start - BLOCK_HEADER_LEN;
    let raw_len = u32::try_from(raw.len())
        .map_err(|_| StorageError::InvalidInput("block larger than 4 GiB".into()))?;
    let mut h = [0u8; BLOCK_HEADER_LEN];
    h[0] = BLOCK_TAG;
    h[1] = used.code();
    h[4..8].copy_from_slice(&raw_len.to_le_bytes());
    h[8..12].copy_from_slice(&(stored_len as u32).to_le_bytes());
    let crc = block_crc(&h, out.get(start + BLOCK_HEADER_LEN..).unwrap_or_default());
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    if let Some(dst) = out.get_mut(start..start + BLOCK_HEADER_LEN) {
        dst.copy_from_slice(&h);
    }
    Ok(())
}

/// Reads and checks the block at `r` in `file` and returns its raw bytes:
/// borrowed from `file` when stored uncompressed, decompressed otherwise.
pub(crate) fn block_bytes(file: &[u8], r: BlockRef) -> Result<std::borrow::Cow<'_, [u8]>> {
    let at = r.offset as usize;
    if let Some(h) = file.get(at..at + BLOCK_HEADER_LEN) {
        if h.get(1) == Some(&Compression::None.code()) && r.len as usize >= BLOCK_HEADER_LEN {
            // Checks everything read_block checks, then borrows.
            let mut probe = Vec::new();
            check_block(file, r, &mut probe, false)?;
            return Ok(std::borrow::Cow::Borrowed(
                file.get(at + BLOCK_HEADER_LEN..at + r.len as usize)
                    .unwrap_or_default(),
            ));
        }
    }
    let mut out = Vec::new();
    read_block(file, r, &mut out)?;
    Ok(std::borrow::Cow::Owned(out))
}

/// Reads and checks the block at `r` in `file`, appending its raw
/// (decompressed) bytes to `out`. Offsets in errors are file offsets.
pub(crate) fn read_block(file: &[u8], r: BlockRef, out: &mut Vec<u8>) -> Result<()> {
    check_block(file, r, out, true)
}

fn check_block(file: &[u8], r: BlockRef, out: &mut Vec<u8>, copy: bool) -> Result<()> {
    let at = r.offset as usize;
    let err = |off: usize, d: String| StorageError::corrupt(off, d);
    let end = at
        .checked_add(r.len as usize)
        .filter(|&e| e <= file.len() && r.len as usize >= BLOCK_HEADER_LEN)
        .ok_or_else(|| {
            err(
                at,
                format!(
                    "block of {} bytes at offset {at} does not fit in the {}-byte file",
                    r.len,
                    file.len()
                ),
            )
        })?;
    let block = file.get(at..end).unwrap_or_default();
    let h = block.get(..BLOCK_HEADER_LEN).unwrap_or_default();
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if h.first() != Some(&BLOCK_TAG) {
        return Err(err(
            at,
            format!(
                "block tag: expected {BLOCK_TAG:#04x}, found {:#04x}",
                h.first().copied().unwrap_or(0)
            ),
        ));
    }
    let comp_code = h.get(1).copied().unwrap_or(0xff);
    let raw_len = u32_at(4) as usize;
    let stored_len = u32_at(8) as usize;
    let stored_crc = u32_at(12);
    if stored_len != block.len() - BLOCK_HEADER_LEN {
        return Err(err(
            at + 8,
            format!(
                "block stored length {stored_len} does not match its extent of {} bytes",
                block.len() - BLOCK_HEADER_LEN
            ),
        ));
    }
    let stored = block.get(BLOCK_HEADER_LEN..).unwrap_or_default();
    let crc = block_crc(h, stored);
    if crc != stored_crc {
        return Err(err(
            at + 12,
            format!("block checksum: expected {stored_crc:#010x}, computed {crc:#010x}"),
        ));
    }
    let compression = Compression::try_from_code(comp_code)
        .ok_or_else(|| err(at + 1, format!("unknown compression code {comp_code}")))?;
    if raw_len > MAX_BLOCK_RAW_BYTES {
        return Err(err(
            at + 4,
            format!("block raw length {raw_len} exceeds {MAX_BLOCK_RAW_BYTES}"),
        ));
    }
    match compression {
        Compression::None => {
            if raw_len != stored_len {
                return Err(err(
                    at + 4,
                    format!(
                        "uncompressed block: raw length {raw_len} != stored length {stored_len}"
                    ),
                ));
            }
            if copy {
                out.extend_from_slice(stored);
            }
            Ok(())
        }
        c => decompress(c, stored, raw_len, out).map_err(|e| match e {
            StorageError::Corrupt { detail, .. } => err(
                at + BLOCK_HEADER_LEN,
                format!("block does not decompress: {detail}"),
            ),
            other => other,
        }),
    }
}
