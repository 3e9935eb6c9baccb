//! Reading chunk files through mmap: footer, key directory, dictionaries,
//! bitmaps, and column blocks decoded whole or gathered for chosen rows.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use roaring::RoaringBitmap;

use super::dictionary::Dictionary;
use super::format::{
    block_bytes, read_block, BlockRef, ColumnEncoding, ColumnKind, Footer, CHUNK_MAGIC,
    CHUNK_VERSION, HEADER_LEN, OLDEST_CHUNK_VERSION, TRAILER_LEN, TRAILER_MAGIC,
};
use super::mmap::MappedFile;
use crate::codec::{decode_byte_strings, decode_f64s, decode_i64s, decode_u64s, get_varint};
use crate::{Result, StorageError};

/// Decoded values of one column for some rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Signed integers.
    I64(Vec<i64>),
    /// Unsigned integers.
    U64(Vec<u64>),
    /// Floats.
    F64(Vec<f64>),
    /// Dictionary codes and the chunk's dictionary.
    Dict {
        /// The column's sorted dictionary.
        dict: Arc<Dictionary>,
        /// One code per row.
        codes: Vec<u32>,
    },
    /// Plain byte strings.
    Bytes {
        /// Concatenated values.
        bytes: Vec<u8>,
        /// End offset of each value.
        ends: Vec<u32>,
    },
}

impl ColumnValues {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::I64(v) => v.len(),
            ColumnValues::U64(v) => v.len(),
            ColumnValues::F64(v) => v.len(),
            ColumnValues::Dict { codes, .. } => codes.len(),
            ColumnValues::Bytes { ends, .. } => ends.len(),
        }
    }
    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One block's place and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// Rows the block covers.
    pub rows: (u32, u32),
    /// Minimum, as an order-preserving u64: I64 with the sign bit flipped,
    /// F64 in IEEE total order, dictionary columns as codes; plain byte
    /// columns carry 0 and u64::MAX (no pruning).
    pub min: u64,
    /// Maximum, same encoding.
    pub max: u64,
    /// Stored bytes (header included).
    pub stored_bytes: u64,
    at: BlockRef,
}

/// A column's description.
#[derive(Debug, Clone)]
pub struct ColumnMeta {
    /// Name.
    pub name: String,
    /// Value type.
    pub kind: ColumnKind,
    /// True when dictionary encoded.
    pub dictionary_encoded: bool,
    /// True when the column has a bitmap per dictionary entry.
    pub has_bitmaps: bool,
    /// True for the time column (per-key delta encoded).
    pub is_time: bool,
    /// Its blocks.
    pub blocks: Vec<BlockMeta>,
    /// Stored bytes of blocks, dictionary and bitmap index together.
    pub stored_bytes: u64,
    bitmaps: Option<BlockRef>,
}

/// The chunk's keys and the row range of each.
#[derive(Debug, Clone, Default)]
pub struct KeyDirectory {
    keys: Arc<Dictionary>,
    row_ends: Vec<u32>,
}

impl KeyDirectory {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// The key at `index` and its rows.
    pub fn entry(&self, index: usize) -> (&[u8], Range<u32>) {
        let start = if index == 0 {
            0
        } else {
            self.row_ends.get(index - 1).copied().unwrap_or(0)
        };
        let end = self.row_ends.get(index).copied().unwrap_or(start);
        (self.keys.get(index as u32), start..end)
    }
    /// The sorted keys; a key's index is its code in the key column.
    pub fn dictionary(&self) -> &Arc<Dictionary> {
        &self.keys
    }
    /// The rows of `key`, if the chunk has it.
    pub fn find(&self, key: &[u8]) -> Option<Range<u32>> {
        self.keys.find(key).map(|i| self.entry(i as usize).1)
    }
    /// The index of the key owning `row`.
    pub fn key_index_of_row(&self, row: u32) -> usize {
        self.row_ends.partition_point(|&e| e <= row)
    }
    /// Iterates over (key, rows).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Range<u32>)> + '_ {
        (0..self.len()).map(move |i| self.entry(i))
    }
}

struct BitmapTable {
    raw: Vec<u8>,
    /// Integer columns: the value of each entry.
    values: Option<Vec<u64>>,
    /// Byte range of each entry's bitmap in `raw`.
    ranges: Vec<(usize, usize)>,
}

/// An open chunk file.
pub struct ChunkReader {
    path: PathBuf,
    file: MappedFile,
    footer: Footer,
    columns: Vec<ColumnMeta>,
    keys: KeyDirectory,
    dictionaries: Vec<Option<Arc<Dictionary>>>,
    bitmap_tables: Vec<OnceLock<BitmapTable>>,
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("path", &self.path)
            .field("rows", &self.footer.rows)
            .finish()
    }
}

fn le_u32(d: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = d.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

impl ChunkReader {
    /// Opens and checks a chunk file: header, trailer, footer, key
    /// directory and dictionaries. Column blocks are checked when read.
    pub fn open(path: &Path) -> Result<ChunkReader> {
        let file = MappedFile::open(path)?;
        Self::from_mapped(path, file).map_err(|e| e.located(path, 0))
    }

    /// Opens a chunk held in memory, with the same checks as
    /// [`ChunkReader::open`]; `name` stands for the file in errors and
    /// [`ChunkReader::path`].
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<ChunkReader> {
        Self::from_mapped(name, MappedFile::from_vec(bytes)).map_err(|e| e.located(name, 0))
    }

    fn from_mapped(path: &Path, file: MappedFile) -> Result<ChunkReader> {
        let data = file.bytes();
        if data.len() < HEADER_LEN + TRAILER_LEN {
            return Err(StorageError::corrupt(
                0,
                format!(
                    "chunk file needs at least {} bytes, has {}",
                    HEADER_LEN + TRAILER_LEN,
                    data.len()
                ),
            ));
        }
        if data.get(..8) != Some(CHUNK_MAGIC.as_slice()) {
            return Err(StorageError::corrupt(0, "expected magic \"TALLYCHK\""));
        }
        let version = le_u32(data, 8);
        if !(OLDEST_CHUNK_VERSION..=CHUNK_VERSION).contains(&version) {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: CHUNK_VERSION,
            });
        }
        let flags = le_u32(data, 12);
        if flags != 0 {
            return Err(StorageError::corrupt(
                12,
                format!("chunk header flags: expected 0, found {flags:#x}"),
            ));
        }
        let t = data.len() - TRAILER_LEN;
        if data.get(t + 16..) != Some(TRAILER_MAGIC.as_slice()) {
            return Err(StorageError::corrupt(
                t + 16,
                "expected trailer magic \"TALLYEND\" (file truncated?)",
            ));
        }
        let tcrc = le_u32(data, t + 12);
        let actual = crc32c::crc32c(data.get(t..t + 12).unwrap_or_default());
        if tcrc != actual {
            return Err(StorageError::corrupt(
                t + 12,
                format!("trailer checksum: expected {tcrc:#010x}, computed {actual:#010x}"),
            ));
        }
        let mut off = [0u8; 8];
        off.copy_from_slice(data.get(t..t + 8).unwrap_or(&[0; 8]));
        let footer_ref = BlockRef {
            offset: u64::from_le_bytes(off),
            len: u64::from(le_u32(data, t + 8)),
        };
        if footer_ref.offset.saturating_add(footer_ref.len) != t as u64 {
            return Err(StorageError::corrupt(
                t,
                format!(
                    "footer at {}+{} does not end where the trailer starts ({t})",
                    footer_ref.offset, footer_ref.len
                ),
            ));
        }
        let mut raw = Vec::new();
        read_block(data, footer_ref, &mut raw)?;
        let footer = Footer::decode(&raw).map_err(|e| match e {
            StorageError::Corrupt { offset, detail, .. } => StorageError::corrupt(
                (footer_ref.offset + super::format::BLOCK_HEADER_LEN as u64 + offset) as usize,
                detail,
            ),
            other => other,
        })?;
        let rows = footer.rows as u32;
        let keys = read_key_directory(data, &footer)?;
        let br = footer.block_rows as u32;
        let mut columns = Vec::with_capacity(footer.columns.len());
        let mut dictionaries = Vec::with_capacity(footer.columns.len());
        for c in &footer.columns {
            let blocks = c
                .blocks
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let start = i as u32 * br;
                    BlockMeta {
                        rows: (start, start.saturating_add(br).min(rows)),
                        min: b.min,
                        max: b.max,
                        stored_bytes: b.at.len,
                        at: b.at,
                    }
                })
                .collect();
            // Block refs are only checked when read: saturate, not overflow.
            let stored_bytes = c
                .blocks
                .iter()
                .fold(0u64, |sum, b| sum.saturating_add(b.at.len))
                .saturating_add(c.dictionary.map_or(0, |d| d.0.len))
                .saturating_add(c.bitmaps.map_or(0, |b| b.len));
            let dict = match c.dictionary {
                Some((r, n)) => {
                    let mut raw = Vec::new();
                    read_block(data, r, &mut raw)?;
                    // Entries are distinct: all but one take at least a byte.
                    if n > raw.len() as u64 + 1 {
                        return Err(StorageError::corrupt(
                            r.offset as usize,
                            format!(
                                "dictionary of column {}: {n} distinct entries cannot fit in {} bytes",
                                c.name,
                                raw.len()
                            ),
                        ));
                    }
                    let (bytes, ends) = decode_byte_strings(&raw, n as usize).map_err(|e| {
                        relocate(e, r.offset, &format!("dictionary of column {}", c.name))
                    })?;
                    Some(Arc::new(Dictionary::from_parts(bytes, ends)))
                }
                None => None,
            };
            dictionaries.push(dict);
            columns.push(ColumnMeta {
                name: c.name.clone(),
                kind: c.kind,
                dictionary_encoded: c.encoding == ColumnEncoding::Dictionary,
                has_bitmaps: c.bitmaps.is_some(),
                is_time: c.encoding == ColumnEncoding::KeyDelta,
                blocks,
                stored_bytes,
                bitmaps: c.bitmaps,
            });
        }
        let bitmap_tables = columns.iter().map(|_| OnceLock::new()).collect();
        Ok(ChunkReader {
            path: path.to_path_buf(),
            file,
            footer,
            columns,
            keys,
            dictionaries,
            bitmap_tables,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Rows in the chunk.
    pub fn rows(&self) -> u32 {
        self.footer.rows as u32
    }
    /// Rows per block.
    pub fn block_rows(&self) -> u32 {
        self.footer.block_rows as u32
    }
    /// Smallest time value.
    pub fn min_ts(&self) -> i64 {
        self.footer.min_ts
    }
    /// Largest time value.
    pub fn max_ts(&self) -> i64 {
        self.footer.max_ts
    }
    /// File size.
    pub fn file_bytes(&self) -> u64 {
        self.file.bytes().len() as u64
    }
    /// Stored bytes of the key directory.
    pub fn key_directory_bytes(&self) -> u64 {
        self.footer.key_directory.len
    }
    /// The key column's name.
    pub fn key_name(&self) -> &str {
        &self.footer.key_name
    }
    /// The key directory.
    pub fn keys(&self) -> &KeyDirectory {
        &self.keys
    }
    /// The columns.
    pub fn columns(&self) -> &[ColumnMeta] {
        &self.columns
    }
    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
    /// The dictionary of a dictionary-encoded column.
    pub fn dictionary(&self, col: usize) -> Option<&Arc<Dictionary>> {
        self.dictionaries.get(col).and_then(Option::as_ref)
    }

    fn meta(&self, col: usize) -> Result<&ColumnMeta> {
        self.columns.get(col).ok_or_else(|| {
            StorageError::InvalidInput(format!(
                "column index {col} out of range for {}",
                self.path.display()
            ))
        })
    }

    fn err(&self, e: StorageError) -> StorageError {
        e.located(&self.path, 0)
    }

    /// The rows where column `col` holds `key`: for a dictionary column
    /// `key` is a code, for an integer column the value itself. Empty when
    /// the value does not occur; `None` when the value is too common to be
    /// indexed (decode the column to find its rows).
    pub fn bitmap(&self, col: usize, key: u64) -> Result<Option<RoaringBitmap>> {
        let meta = self.meta(col)?;
        let Some(r) = meta.bitmaps else {
            return Err(StorageError::InvalidInput(format!(
                "column {} of {} has no bitmap index",
                meta.name,
                self.path.display()
            )));
        };
        let lock = self
            .bitmap_tables
            .get(col)
            .ok_or_else(|| StorageError::InvalidInput("bitmap table index".into()))?;
        let table = match lock.get() {
            Some(t) => t,
            None => {
                let t = self.load_bitmaps(r).map_err(|e| self.err(e))?;
                lock.get_or_init(|| t)
            }
        };
        let entry = match &table.values {
            Some(values) => match values.binary_search(&key) {
                Ok(i) => i,
                Err(_) => return Ok(Some(RoaringBitmap::new())),
            },
            None => key as usize,
        };
        let Some(&(a, b)) = table.ranges.get(entry) else {
            return Ok(Some(RoaringBitmap::new()));
        };
        if a == b {
            return Ok(None);
        }
        let bytes = table.raw.get(a..b).unwrap_or_default();
        RoaringBitmap::deserialize_from(bytes)
            .map(Some)
            .map_err(|e| {
                self.err(StorageError::corrupt(
                    r.offset as usize,
                    format!("bitmap {key} of column {}: {e}", meta.name),
                ))
            })
    }

    fn load_bitmaps(&self, r: BlockRef) -> Result<BitmapTable> {
        let mut raw = Vec::new();
        read_block(self.file.bytes(), r, &mut raw)?;
        let mut pos = 0;
        let bad = |d: &str| StorageError::corrupt(r.offset as usize, format!("bitmap index: {d}"));
        let entries = get_varint(&raw, &mut pos).map_err(|_| bad("entry count"))? as usize;
        if entries > self.rows() as usize + 1 {
            return Err(bad("more entries than rows"));
        }
        let vlen = get_varint(&raw, &mut pos).map_err(|_| bad("value table length"))? as usize;
        let vbytes = raw
            .get(pos..pos.saturating_add(vlen))
            .ok_or_else(|| bad("value table runs past the block"))?;
        let values = if vlen == 0 {
            None
        } else {
            let mut v = Vec::new();
            decode_u64s(vbytes, entries, &mut v).map_err(|_| bad("value table"))?;
            Some(v)
        };
        pos += vlen;
        let sizes_len = get_varint(&raw, &mut pos).map_err(|_| bad("size table length"))? as usize;
        let sizes_bytes = raw
            .get(pos..pos.saturating_add(sizes_len))
            .ok_or_else(|| bad("size table runs past the block"))?;
        let mut sizes = Vec::new();
        decode_u64s(sizes_bytes, entries, &mut sizes).map_err(|_| bad("size table"))?;
        let mut at = pos + sizes_len;
        let mut ranges = Vec::with_capacity(entries);
        for s in sizes {
            let end = at
                .checked_add(s as usize)
                .filter(|&e| e <= raw.len())
                .ok_or_else(|| bad("bitmap runs past the block"))?;
            ranges.push((at, end));
            at = end;
        }
        Ok(BitmapTable {
            raw,
            values,
            ranges,
        })
    }

    /// Decodes the whole block `block` of column `col`.
    pub fn decode_block(&self, col: usize, block: usize) -> Result<ColumnValues> {
        self.decode_block_inner(col, block).map_err(|e| self.err(e))
    }

    fn decode_block_inner(&self, col: usize, block: usize) -> Result<ColumnValues> {
        let meta = self.meta(col)?;
        let b = meta.blocks.get(block).ok_or_else(|| {
            StorageError::InvalidInput(format!("block {block} out of range for {}", meta.name))
        })?;
        let n = (b.rows.1 - b.rows.0) as usize;
        let raw = block_bytes(self.file.bytes(), b.at)?;
        let raw: &[u8] = &raw;
        let what = |e| {
            relocate(
                e,
                b.at.offset,
                &format!("block {block} of column {}", meta.name),
            )
        };
        Ok(match (meta.kind, meta.is_time, meta.dictionary_encoded) {
            (ColumnKind::I64, true, _) => {
                let mut deltas = Vec::with_capacity(n);
                decode_u64s(raw, n, &mut deltas).map_err(what)?;
                let min = self.footer.min_ts;
                let mut out = Vec::with_capacity(n);
                let first_key = self.keys.key_index_of_row(b.rows.0);
                let mut key_idx = first_key;
                let mut key_end = self.keys.entry(key_idx).1.end;
                let mut prev = min;
                for (j, d) in deltas.into_iter().enumerate() {
                    let row = b.rows.0 + j as u32;
                    let mut reset = j == 0;
                    while row >= key_end && key_idx + 1 < self.keys.len() {
                        key_idx += 1;
                        key_end = self.keys.entry(key_idx).1.end;
                        reset = true;
                    }
                    let base = if reset { min } else { prev };
                    let v = base.wrapping_add(d as i64);
                    out.push(v);
                    prev = v;
                }
                ColumnValues::I64(out)
            }
            (ColumnKind::I64, false, _) => {
                let mut out = Vec::with_capacity(n);
                decode_i64s(raw, n, &mut out).map_err(what)?;
                ColumnValues::I64(out)
            }
            (ColumnKind::U64, _, _) => {
                let mut out = Vec::with_capacity(n);
                decode_u64s(raw, n, &mut out).map_err(what)?;
                ColumnValues::U64(out)
            }
            (ColumnKind::F64, _, _) => {
                let mut out = Vec::with_capacity(n);
                decode_f64s(raw, n, &mut out).map_err(what)?;
                ColumnValues::F64(out)
            }
            (ColumnKind::Bytes, _, true) => {
                let dict = self
                    .dictionary(col)
                    .cloned()
                    .ok_or_else(|| StorageError::corrupt(0, "dictionary missing"))?;
                let mut wide = Vec::with_capacity(n);
                decode_u64s(raw, n, &mut wide).map_err(what)?;
                let limit = dict.len() as u64;
                let mut codes = Vec::with_capacity(n);
                for c in wide {
                    if c >= limit {
                        return Err(StorageError::corrupt(
                            b.at.offset as usize,
                            format!(
                                "block {block} of column {}: code {c} beyond dictionary of {limit}",
                                meta.name
                            ),
                        ));
                    }
                    codes.push(c as u32);
                }
                ColumnValues::Dict { dict, codes }
            }
            (ColumnKind::Bytes, _, false) => {
                let (bytes, ends) = decode_byte_strings(raw, n).map_err(what)?;
                ColumnValues::Bytes { bytes, ends }
            }
        })
    }

    /// Reads and decodes every block of the file (column blocks, bitmaps;
    /// the footer, key directory and dictionaries were checked at open), so
    /// any checksum or decoding error surfaces now. Returns the blocks read.
    pub fn verify(&self) -> Result<u64> {
        let mut blocks = 0u64;
        for (ci, m) in self.columns.iter().enumerate() {
            for bi in 0..m.blocks.len() {
                self.decode_block(ci, bi)?;
                blocks += 1;
            }
            if let Some(r) = m.bitmaps {
                let table = self.load_bitmaps(r).map_err(|e| self.err(e))?;
                for (i, &(a, b)) in table.ranges.iter().enumerate() {
                    if a == b {
                        continue;
                    }
                    RoaringBitmap::deserialize_from(table.raw.get(a..b).unwrap_or_default())
                        .map_err(|e| {
                            self.err(StorageError::corrupt(
                                r.offset as usize,
                                format!("bitmap {i} of column {}: {e}", m.name),
                            ))
                        })?;
                }
                blocks += 1;
            }
        }
        Ok(blocks)
    }

    /// Decodes column `col` for the contiguous rows `start..end`. Blocks
    /// wholly inside the range of plain numeric columns are decoded straight
    /// into the result.
    pub fn read_range(&self, col: usize, start: u32, end: u32) -> Result<ColumnValues> {
        let meta = self.meta(col)?;
        let end = end.min(self.rows());
        let mut out = empty_like(meta.kind, meta.dictionary_encoded, self.dictionary(col));
        reserve(&mut out, end.saturating_sub(start) as usize);
        for (bi, b) in meta.blocks.iter().enumerate() {
            let (s, e) = (b.rows.0.max(start), b.rows.1.min(end));
            if s >= e {
                continue;
            }
            let whole = s == b.rows.0 && e == b.rows.1;
            let direct = whole && !meta.is_time && !meta.dictionary_encoded;
            if direct {
                let raw = block_bytes(self.file.bytes(), b.at).map_err(|e| self.err(e))?;
                let n = (e - s) as usize;
                let what = |err| {
                    self.err(relocate(
                        err,
                        b.at.offset,
                        &format!("block {bi} of column {}", meta.name),
                    ))
                };
                match &mut out {
                    ColumnValues::U64(v) => decode_u64s(&raw, n, v).map_err(what)?,
                    ColumnValues::I64(v) => decode_i64s(&raw, n, v).map_err(what)?,
                    ColumnValues::F64(v) => decode_f64s(&raw, n, v).map_err(what)?,
                    _ => {
                        let vals = self.decode_block(col, bi)?;
                        append_range(&mut out, &vals, 0, vals.len());
                    }
                }
            } else {
                let vals = self.decode_block(col, bi)?;
                append_range(
                    &mut out,
                    &vals,
                    (s - b.rows.0) as usize,
                    (e - b.rows.0) as usize,
                );
            }
        }
        Ok(out)
    }

    /// Decodes column `col` for the given rows (ascending), decoding each
    /// needed block once.
    pub fn gather(&self, col: usize, rows: &[u32]) -> Result<ColumnValues> {
        let meta = self.meta(col)?;
        let br = self.block_rows().max(1);
        let mut out = empty_like(meta.kind, meta.dictionary_encoded, self.dictionary(col));
        reserve(&mut out, rows.len());
        let mut i = 0;
        while i < rows.len() {
            let row = rows.get(i).copied().unwrap_or(0);
            if row >= self.rows() {
                return Err(StorageError::InvalidInput(format!(
                    "row {row} beyond the {} rows of {}",
                    self.rows(),
                    self.path.display()
                )));
            }
            let block = (row / br) as usize;
            let block_start = block as u32 * br;
            let block_end = block_start.saturating_add(br);
            let j = i + rows
                .get(i..)
                .unwrap_or_default()
                .partition_point(|&r| r < block_end);
            let vals = self.decode_block(col, block)?;
            let sel = rows.get(i..j).unwrap_or_default();
            append_selected(&mut out, &vals, sel, block_start);
            i = j;
        }
        Ok(out)
    }
}

fn append_range(out: &mut ColumnValues, vals: &ColumnValues, a: usize, b: usize) {
    let sel: Vec<u32> = (a as u32..b as u32).collect();
    append_selected(out, vals, &sel, 0);
}

fn reserve(out: &mut ColumnValues, n: usize) {
    match out {
        ColumnValues::I64(v) => v.reserve(n),
        ColumnValues::U64(v) => v.reserve(n),
        ColumnValues::F64(v) => v.reserve(n),
        ColumnValues::Dict { codes, .. } => codes.reserve(n),
        ColumnValues::Bytes { ends, .. } => ends.reserve(n),
    }
}

fn empty_like(kind: ColumnKind, dict: bool, d: Option<&Arc<Dictionary>>) -> ColumnValues {
    match (kind, dict) {
        (ColumnKind::I64, _) => ColumnValues::I64(Vec::new()),
        (ColumnKind::U64, _) => ColumnValues::U64(Vec::new()),
        (ColumnKind::F64, _) => ColumnValues::F64(Vec::new()),
        (ColumnKind::Bytes, true) => ColumnValues::Dict {
            dict: d.cloned().unwrap_or_default(),
            codes: Vec::new(),
        },
        (ColumnKind::Bytes, false) => ColumnValues::Bytes {
            bytes: Vec::new(),
            ends: Vec::new(),
        },
    }
}

fn append_selected(out: &mut ColumnValues, vals: &ColumnValues, sel: &[u32], base: u32) {
    // Fast path: a contiguous run of rows is one slice copy.
    if let (Some(&first), Some(&last)) = (sel.first(), sel.last()) {
        if (last - first) as usize + 1 == sel.len() {
            let (a, b) = ((first - base) as usize, (last - base) as usize + 1);
            let done = match (&mut *out, vals) {
                (ColumnValues::I64(o), ColumnValues::I64(v)) => {
                    v.get(a..b).map(|s| o.extend_from_slice(s))
                }
                (ColumnValues::U64(o), ColumnValues::U64(v)) => {
                    v.get(a..b).map(|s| o.extend_from_slice(s))
                }
                (ColumnValues::F64(o), ColumnValues::F64(v)) => {
                    v.get(a..b).map(|s| o.extend_from_slice(s))
                }
                (ColumnValues::Dict { codes: o, .. }, ColumnValues::Dict { codes: v, .. }) => {
                    v.get(a..b).map(|s| o.extend_from_slice(s))
                }
                _ => None,
            };
            if done.is_some() {
                return;
            }
        }
    }
    let idx = sel.iter().map(|&r| (r - base) as usize);
    match (out, vals) {
        (ColumnValues::I64(o), ColumnValues::I64(v)) => o.extend(idx.filter_map(|i| v.get(i))),
        (ColumnValues::U64(o), ColumnValues::U64(v)) => o.extend(idx.filter_map(|i| v.get(i))),
        (ColumnValues::F64(o), ColumnValues::F64(v)) => o.extend(idx.filter_map(|i| v.get(i))),
        (ColumnValues::Dict { codes: o, .. }, ColumnValues::Dict { codes: v, .. }) => {
            o.extend(idx.filter_map(|i| v.get(i)))
        }
        (
            ColumnValues::Bytes {
                bytes: ob,
                ends: oe,
            },
            ColumnValues::Bytes { bytes, ends },
        ) => {
            for i in idx {
                let start = if i == 0 {
                    0
                } else {
                    ends.get(i - 1).copied().unwrap_or(0) as usize
                };
                let end = ends.get(i).copied().unwrap_or(0) as usize;
                ob.extend_from_slice(bytes.get(start..end).unwrap_or_default());
                oe.push(ob.len() as u32);
            }
        }
        _ => {}
    }
}

fn relocate(e: StorageError, base: u64, what: &str) -> StorageError {
    match e {
        StorageError::Corrupt { offset, detail, .. } => StorageError::corrupt(
            (base + super::format::BLOCK_HEADER_LEN as u64) as usize,
            format!("{what}: {detail} (at byte {offset} of the decoded block)"),
        ),
        other => other,
    }
}

fn read_key_directory(data: &[u8], footer: &Footer) -> Result<KeyDirectory> {
    let r = footer.key_directory;
    let mut raw = Vec::new();
    read_block(data, r, &mut raw)?;
    let n = footer.keys as usize;
    let bad = |d: String| StorageError::corrupt(r.offset as usize, format!("key directory: {d}"));
    let mut pos = 0;
    let keys_len = get_varint(&raw, &mut pos).map_err(|e| bad(e.to_string()))? as usize;
    let keys_bytes = raw
        .get(pos..pos.saturating_add(keys_len))
        .ok_or_else(|| bad("keys run past the block".into()))?;
    // Keys are distinct: all but one take at least a byte.
    if n > keys_bytes.len() + 1 {
        return Err(bad(format!(
            "{n} distinct keys cannot fit in {} bytes",
            keys_bytes.len()
        )));
    }
    let (bytes, ends) =
        decode_byte_strings(keys_bytes, n).map_err(|e| bad(format!("keys: {e}")))?;
    let mut row_ends = Vec::with_capacity(n);
    decode_u64s(
        raw.get(pos + keys_len..).unwrap_or_default(),
        n,
        &mut row_ends,
    )
    .map_err(|e| bad(format!("row ends: {e}")))?;
    let mut prev = 0u64;
    for &e in &row_ends {
        if e <= prev || e > footer.rows {
            return Err(bad(format!(
                "row ends must rise strictly up to {} rows, found {e} after {prev}",
                footer.rows
            )));
        }
        prev = e;
    }
    if prev != footer.rows {
        return Err(bad(format!(
            "key ranges cover {prev} rows, chunk has {}",
            footer.rows
        )));
    }
    let dir = KeyDirectory {
        keys: Arc::new(Dictionary::from_parts(bytes, ends)),
        row_ends: row_ends.into_iter().map(|e| e as u32).collect(),
    };
    for i in 1..dir.len() {
        if dir.keys.get(i as u32 - 1) >= dir.keys.get(i as u32) {
            return Err(bad(format!("keys not strictly ascending at entry {i}")));
        }
    }
    Ok(dir)
}
