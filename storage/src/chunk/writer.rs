//! Writing a chunk file from rows already sorted by (key, ts).

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use roaring::RoaringBitmap;

use super::format::{
    write_block, BlockRef, ColumnEncoding, ColumnKind, Footer, FooterBlock, FooterColumn,
    BLOCK_HEADER_LEN, CHUNK_MAGIC, CHUNK_VERSION, HEADER_LEN, MAX_BLOCK_ROWS, MAX_CHUNK_ROWS,
    TRAILER_MAGIC,
};
use crate::codec::{
    encode_adjacent_byte_strings, encode_byte_strings, encode_i64s, encode_u64s,
    encode_u64s_packed, min_max_by, put_varint, Compression,
};
use crate::hash::{dictionary_code, BytesKey};
use crate::io::FileSystem;
use crate::{Result, StorageError};

/// The conventional name of the key column (the api_key).
pub const KEY_COLUMN_NAME: &str = "api_key";

/// The values of one column, one per row, in sorted row order.
#[derive(Debug, Clone, Copy)]
pub enum ColumnSource<'a> {
    /// Signed integers.
    I64(&'a [i64]),
    /// Unsigned integers.
    U64(&'a [u64]),
    /// Floats.
    F64(&'a [f64]),
    /// Byte strings: concatenated bytes and the end offset of each value.
    Bytes {
        /// All values' bytes.
        bytes: &'a [u8],
        /// End offset of each value in `bytes`.
        ends: &'a [u32],
    },
    /// Unsigned integers with no order to exploit (counts, sums): stored
    /// as [`ColumnSource::U64`] is, but without trying the delta
    /// encodings, which is cheaper to choose. Reads the same.
    U64Packed(&'a [u64]),
    /// Byte strings that rarely repeat and compress little (sketches):
    /// stored plain, without first trying a dictionary, and with
    /// uncompressed blocks (lz4 takes a fifth off rollup sketches for
    /// half the column's encoding time). Reads as a plain
    /// [`ColumnSource::Bytes`].
    PlainBytes {
        /// All values' bytes.
        bytes: &'a [u8],
        /// End offset of each value in `bytes`.
        ends: &'a [u32],
    },
    /// Byte strings already dictionary coded: row `i` holds
    /// `values[codes[i]]`. The values must be distinct (in any order) and
    /// each should be used by some row (an unused one is stored anyway).
    /// The chunk is the same as from the equivalent [`ColumnSource::Bytes`].
    Dict {
        /// The distinct values.
        values: &'a [&'a [u8]],
        /// Each row's index into `values`.
        codes: &'a [u32],
    },
}

impl ColumnSource<'_> {
    fn len(&self) -> usize {
        match self {
            ColumnSource::I64(v) => v.len(),
            ColumnSource::U64(v) | ColumnSource::U64Packed(v) => v.len(),
            ColumnSource::F64(v) => v.len(),
            ColumnSource::Bytes { ends, .. } | ColumnSource::PlainBytes { ends, .. } => ends.len(),
            ColumnSource::Dict { codes, .. } => codes.len(),
        }
    }

    /// A byte-string column's values, or `None` for a numeric one.
    fn text(&self) -> Option<Text<'_>> {
        match *self {
            ColumnSource::Bytes { bytes, ends } | ColumnSource::PlainBytes { bytes, ends } => {
                Some(Text::Bytes { bytes, ends })
            }
            ColumnSource::Dict { values, codes } => Some(Text::Dict { values, codes }),
            _ => None,
        }
    }
}

/// A byte-string column, either form.
#[derive(Clone, Copy)]
pub(super) enum Text<'a> {
    Bytes {
        bytes: &'a [u8],
        ends: &'a [u32],
    },
    Dict {
        values: &'a [&'a [u8]],
        codes: &'a [u32],
    },
}

impl<'a> Text<'a> {
    fn len(&self) -> usize {
        match self {
            Text::Bytes { ends, .. } => ends.len(),
            Text::Dict { codes, .. } => codes.len(),
        }
    }

    /// Row `i`'s value (empty when out of range; callers check codes first).
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        match *self {
            Text::Bytes { bytes, ends } => bytes_at(bytes, ends, i),
            Text::Dict { values, codes } => codes
                .get(i)
                .and_then(|&c| values.get(c as usize))
                .copied()
                .unwrap_or(&[]),
        }
    }

    /// Checks that every code names a value.
    pub(super) fn check_codes(&self, column: &str) -> Result<()> {
        if let Text::Dict { values, codes } = self {
            if let Some(i) = codes.iter().position(|&c| c as usize >= values.len()) {
                return Err(StorageError::InvalidInput(format!(
                    "column {column}: row {i} has dictionary code {} of {} values",
                    codes.get(i).copied().unwrap_or(0),
                    values.len()
                )));
            }
        }
        Ok(())
    }
}

/// When rows `range` of `text` are plain byte strings lying back to back
/// (end offsets that never decrease, within the bytes: as writers build
/// them), their bytes, with their lengths put in `lengths`.
fn adjacent<'a>(text: Text<'a>, range: Range<usize>, lengths: &mut Vec<u64>) -> Option<&'a [u8]> {
    let Text::Bytes { bytes, ends } = text else {
        return None;
    };
    let first = match range.start {
        0 => 0,
        s => *ends.get(s - 1)?,
    };
    let ends = ends.get(range)?;
    lengths.clear();
    let mut prev = first;
    for &e in ends {
        lengths.push(u64::from(e.checked_sub(prev)?));
        prev = e;
    }
    bytes.get(first as usize..prev as usize)
}

fn bytes_at<'a>(bytes: &'a [u8], ends: &[u32], i: usize) -> &'a [u8] {
    let start = if i == 0 {
        0
    } else {
        ends.get(i - 1).copied().unwrap_or(0) as usize
    };
    let end = ends.get(i).copied().unwrap_or(0) as usize;
    bytes.get(start..end).unwrap_or(&[])
}

/// One column to write.
#[derive(Debug, Clone, Copy)]
pub struct ChunkColumn<'a> {
    /// Column name.
    pub name: &'a str,
    /// Values, one per row.
    pub source: ColumnSource<'a>,
    /// Build a roaring bitmap per distinct value (byte columns that end up
    /// dictionary encoded only).
    pub bitmap_index: bool,
    /// This is the time column: sorted within each key, stored as per-key
    /// deltas, and its min/max become the chunk's time range. At most one.
    pub time_column: bool,
}

/// Chunk writing settings.
#[derive(Debug, Clone, Copy)]
pub struct ChunkWriteOptions {
    /// Block compression (lz4 for fresh chunks).
    pub compression: Compression,
    /// Rows per column block.
    pub block_rows: usize,
}

impl Default for ChunkWriteOptions {
    fn default() -> Self {
        ChunkWriteOptions {
            compression: Compression::Lz4,
            block_rows: super::format::DEFAULT_BLOCK_ROWS,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkSummary {
    /// Rows.
    pub rows: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Smallest time-column value (0 without a time column).
    pub min_ts: i64,
    /// Largest time-column value.
    pub max_ts: i64,
    /// File size.
    pub file_bytes: u64,
    /// Stored bytes per column (blocks, dictionary and bitmaps), key
    /// directory under the key column's name.
    pub column_bytes: Vec<(String, u64)>,
}

/// Writes a chunk to `path` (created, written in one call, fsynced).
///
/// `keys` are the rows' keys (a byte-string source: [`ColumnSource::Bytes`]
/// or [`ColumnSource::Dict`]), which must be sorted; within a key, the time
/// column must be non-decreasing.
pub fn write_chunk(
    fs: &dyn FileSystem,
    path: &Path,
    key_name: &str,
    keys: ColumnSource<'_>,
    columns: &[ChunkColumn<'_>],
    opts: &ChunkWriteOptions,
) -> Result<ChunkSummary> {
    let (summary, mut f) = write_chunk_unsynced(fs, path, key_name, keys, columns, opts)?;
    f.sync_data()?;
    Ok(summary)
}

/// [`write_chunk`] without the fsync: returns the written file, which the
/// caller must `sync_data` before anything durable names the chunk. Lets a
/// writer of many chunks sync them on other threads while it encodes the
/// next ones.
pub fn write_chunk_unsynced(
    fs: &dyn FileSystem,
    path: &Path,
    key_name: &str,
    keys: ColumnSource<'_>,
    columns: &[ChunkColumn<'_>],
    opts: &ChunkWriteOptions,
) -> Result<(ChunkSummary, Box<dyn crate::io::WritableFile>)> {
    let bytes = encode_chunk(key_name, keys, columns, opts)?;
    let mut f = fs.create(path)?;
    f.write_all(&bytes.0)?;
    Ok((bytes.1, f))
}

/// Encodes a whole chunk file in memory.
pub(crate) fn encode_chunk(
    key_name: &str,
    keys: ColumnSource<'_>,
    columns: &[ChunkColumn<'_>],
    opts: &ChunkWriteOptions,
) -> Result<(Vec<u8>, ChunkSummary)> {
    let Some(keys) = keys.text() else {
        return Err(StorageError::InvalidInput(format!(
            "key column {key_name} must be byte strings"
        )));
    };
    keys.check_codes(key_name)?;
    let rows = keys.len();
    if rows as u64 > MAX_CHUNK_ROWS {
        return Err(StorageError::InvalidInput(format!(
            "a chunk holds at most {MAX_CHUNK_ROWS} rows, got {rows}"
        )));
    }
    let block_rows = opts.block_rows.clamp(1, MAX_BLOCK_ROWS);
    for c in columns {
        if let Some(t) = c.source.text() {
            t.check_codes(c.name)?;
        }
        if c.source.len() != rows {
            return Err(StorageError::InvalidInput(format!(
                "column {} has {} values for {rows} rows",
                c.name,
                c.source.len()
            )));
        }
    }
    if columns.iter().filter(|c| c.time_column).count() > 1 {
        return Err(StorageError::InvalidInput(
            "at most one time column per chunk".into(),
        ));
    }

    // Key directory: distinct keys (sorted) and the end row of each.
    let mut dir_keys: Vec<&[u8]> = Vec::new();
    let mut dir_ends: Vec<u64> = Vec::new();
    let mut key_starts = vec![false; rows];
    let mut prev_code = None;
    for i in 0..rows {
        // A dictionary-coded key column compares codes, not bytes, within
        // a run of one key.
        if let Text::Dict { codes, .. } = keys {
            let code = codes.get(i).copied();
            if code == prev_code {
                if let Some(e) = dir_ends.last_mut() {
                    *e = i as u64 + 1;
                }
                continue;
            }
            prev_code = code;
        }
        let k = keys.get(i);
        match dir_keys.last() {
            Some(&last) if last == k => {
                if let Some(e) = dir_ends.last_mut() {
                    *e = i as u64 + 1;
                }
            }
            Some(&last) if last > k => {
                return Err(StorageError::InvalidInput(format!(
                    "rows are not sorted by key at row {i}"
                )));
            }
            _ => {
                dir_keys.push(k);
                dir_ends.push(i as u64 + 1);
                if let Some(s) = key_starts.get_mut(i) {
                    *s = true;
                }
            }
        }
    }

    let mut file = Vec::with_capacity(rows * 16 + 4096);
    write_header(&mut file);

    let mut raw = Vec::new();
    let mut column_bytes = Vec::new();

    // Key directory block: varint(len of encoded keys) keys ends.
    let key_directory =
        write_key_directory(&dir_keys, &dir_ends, opts.compression, &mut raw, &mut file)?;
    column_bytes.push((key_name.to_string(), key_directory.len));

    let (mut min_ts, mut max_ts) = (0i64, 0i64);
    let mut footer_columns = Vec::with_capacity(columns.len());
    for c in columns {
        let col_start = file.len() as u64;
        let fc = match c.source {
            ColumnSource::I64(values) => {
                if c.time_column {
                    let decrease = values
                        .windows(2)
                        .zip(key_starts.get(1..).unwrap_or_default())
                        .position(|(w, &start)| !start && w[1] < w[0]);
                    if let Some(i) = decrease {
                        return Err(StorageError::InvalidInput(format!(
                            "time column {} decreases within a key at row {}",
                            c.name,
                            i + 1
                        )));
                    }
                    (min_ts, max_ts) = values
                        .iter()
                        .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    if values.is_empty() {
                        (min_ts, max_ts) = (0, 0);
                    }
                }
                let mut blocks = Vec::new();
                let mut trial = CompressionTrial::new(opts.compression);
                let mut tmp: Vec<u64> = Vec::with_capacity(block_rows);
                for (chunk, starts) in values.chunks(block_rows).zip(key_starts.chunks(block_rows))
                {
                    raw.clear();
                    let (lo, hi) = if c.time_column {
                        encode_key_delta_block(chunk, starts, min_ts, &mut tmp, &mut raw)
                    } else {
                        // The encoder's min and max are of i64_key images.
                        encode_i64s(chunk, &mut raw)
                    };
                    blocks.push(trial.push(&mut file, &raw, lo, hi)?);
                }
                FooterColumn {
                    name: c.name.to_string(),
                    kind: ColumnKind::I64,
                    encoding: if c.time_column {
                        ColumnEncoding::KeyDelta
                    } else {
                        ColumnEncoding::Plain
                    },
                    dictionary: None,
                    bitmaps: None,
                    blocks,
                }
            }
            ColumnSource::U64(values) | ColumnSource::U64Packed(values) => {
                let packed_only = matches!(c.source, ColumnSource::U64Packed(_));
                let mut blocks = Vec::new();
                let mut trial = CompressionTrial::new(opts.compression);
                for chunk in values.chunks(block_rows) {
                    raw.clear();
                    let (lo, hi) = if packed_only {
                        encode_u64s_packed(chunk, &mut raw)
                    } else {
                        encode_u64s(chunk, &mut raw)
                    };
                    blocks.push(trial.push(&mut file, &raw, lo, hi)?);
                }
                let bitmaps = if c.bitmap_index {
                    let mut distinct: Vec<u64> = values.to_vec();
                    distinct.sort_unstable();
                    distinct.dedup();
                    if distinct.len() <= MAX_U64_BITMAP_VALUES {
                        let idx: Vec<u32> = values
                            .iter()
                            .map(|v| distinct.partition_point(|d| d < v) as u32)
                            .collect();
                        Some(write_bitmap_block(
                            &mut file,
                            Some(&distinct),
                            &idx,
                            distinct.len(),
                            opts,
                            &mut raw,
                        )?)
                    } else {
                        None
                    }
                } else {
                    None
                };
                FooterColumn {
                    name: c.name.to_string(),
                    kind: ColumnKind::U64,
                    encoding: ColumnEncoding::Plain,
                    dictionary: None,
                    bitmaps,
                    blocks,
                }
            }
            ColumnSource::F64(values) => {
                let mut blocks = Vec::new();
                let mut trial = CompressionTrial::new(opts.compression);
                for chunk in values.chunks(block_rows) {
                    raw.clear();
                    let (lo, hi) = encode_f64_block(chunk, &mut raw);
                    blocks.push(trial.push(&mut file, &raw, lo, hi)?);
                }
                FooterColumn {
                    name: c.name.to_string(),
                    kind: ColumnKind::F64,
                    encoding: ColumnEncoding::Plain,
                    dictionary: None,
                    bitmaps: None,
                    blocks,
                }
            }
            ColumnSource::Bytes { bytes, ends } => write_bytes_column(
                &mut file,
                c,
                Text::Bytes { bytes, ends },
                block_rows,
                opts,
                &mut raw,
            )?,
            ColumnSource::PlainBytes { bytes, ends } => write_plain_bytes_column(
                &mut file,
                c,
                Text::Bytes { bytes, ends },
                block_rows,
                Compression::None,
                &mut raw,
            )?,
            ColumnSource::Dict { values, codes } => write_bytes_column(
                &mut file,
                c,
                Text::Dict { values, codes },
                block_rows,
                opts,
                &mut raw,
            )?,
        };
        column_bytes.push((c.name.to_string(), file.len() as u64 - col_start));
        footer_columns.push(fc);
    }

    let footer = Footer {
        rows: rows as u64,
        block_rows: block_rows as u64,
        min_ts,
        max_ts,
        key_name: key_name.to_string(),
        keys: dir_keys.len() as u64,
        key_directory,
        columns: footer_columns,
    };
    let footer_offset = file.len() as u64;
    write_footer(&footer, footer_offset, &mut file)?;
    let summary = ChunkSummary {
        rows: rows as u64,
        keys: dir_keys.len() as u64,
        min_ts,
        max_ts,
        file_bytes: file.len() as u64,
        column_bytes,
    };
    Ok((file, summary))
}

/// Order-preserving u64 image of an i64 (flip the sign bit).
pub(crate) fn i64_key(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// Order-preserving u64 image of an f64 (IEEE total order).
pub(crate) fn f64_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Blocks of a column tried with compression before deciding whether the
/// rest are worth it.
const TRIAL_BLOCKS: u64 = 4;

/// A column whose trial blocks shrank by less than 1/MIN_GAIN of their
/// size stores the rest of its blocks uncompressed.
const MIN_GAIN: u64 = 32;

/// Whether a column's blocks are worth compressing. Bit-packed integers
/// and floats rarely shrink under lz4, and every try costs a hash-table
/// fill and a pass over the block: a column whose first blocks did not
/// shrink stores the rest raw (as `write_block` stores any block that does
/// not shrink). Readers see only per-block compression codes.
pub(super) struct CompressionTrial {
    compression: Compression,
    tried: u64,
    raw: u64,
    saved: u64,
}

impl CompressionTrial {
    pub(super) fn new(compression: Compression) -> CompressionTrial {
        CompressionTrial {
            compression,
            tried: 0,
            raw: 0,
            saved: 0,
        }
    }

    /// Appends `raw` as the column's next block with statistics `min`
    /// and `max`.
    pub(super) fn push(
        &mut self,
        file: &mut Vec<u8>,
        raw: &[u8],
        min: u64,
        max: u64,
    ) -> Result<FooterBlock> {
        let worth = self.tried < TRIAL_BLOCKS || self.saved * MIN_GAIN >= self.raw;
        let compression = if worth {
            self.compression
        } else {
            Compression::None
        };
        let block = push_block(file, raw, compression, min, max)?;
        if self.tried < TRIAL_BLOCKS {
            self.tried += 1;
            let stored = block.at.len.saturating_sub(BLOCK_HEADER_LEN as u64);
            self.raw += raw.len() as u64;
            self.saved += (raw.len() as u64).saturating_sub(stored);
        }
        Ok(block)
    }
}

fn push_block(
    file: &mut Vec<u8>,
    raw: &[u8],
    compression: Compression,
    min: u64,
    max: u64,
) -> Result<FooterBlock> {
    let offset = file.len() as u64;
    write_block(raw, compression, file)?;
    Ok(FooterBlock {
        at: BlockRef {
            offset,
            len: file.len() as u64 - offset,
        },
        min,
        max,
    })
}

/// A byte-string column stored plain: each block the values' lengths and
/// bytes, compressed with `compression` where that pays.
fn write_plain_bytes_column(
    file: &mut Vec<u8>,
    c: &ChunkColumn<'_>,
    text: Text<'_>,
    block_rows: usize,
    compression: Compression,
    raw: &mut Vec<u8>,
) -> Result<FooterColumn> {
    let rows = text.len();
    let mut blocks = Vec::new();
    let mut trial = CompressionTrial::new(compression);
    let mut lengths = Vec::new();
    let mut start = 0;
    while start < rows {
        let end = (start + block_rows).min(rows);
        raw.clear();
        encode_plain_block(text, start..end, &mut lengths, raw);
        blocks.push(trial.push(file, raw, 0, u64::MAX)?);
        start = end;
    }
    Ok(FooterColumn {
        name: c.name.to_string(),
        kind: ColumnKind::Bytes,
        encoding: ColumnEncoding::Plain,
        dictionary: None,
        bitmaps: None,
        blocks,
    })
}

fn write_bytes_column(
    file: &mut Vec<u8>,
    c: &ChunkColumn<'_>,
    text: Text<'_>,
    block_rows: usize,
    opts: &ChunkWriteOptions,
    raw: &mut Vec<u8>,
) -> Result<FooterColumn> {
    let rows = text.len();
    let plain_limit = (rows / 2).max(64);
    // Dictionary by first appearance (or the caller's), then sorted so
    // codes preserve order.
    let (distinct, first_codes): (Vec<&[u8]>, Cow<'_, [u32]>) = match text {
        Text::Dict { values, codes } => (values.to_vec(), Cow::Borrowed(codes)),
        Text::Bytes { .. } => {
            let (distinct, first_codes) =
                dictionary_code((0..rows).map(|i| BytesKey(text.get(i))), rows, plain_limit);
            let distinct = distinct.into_iter().map(|k| k.0).collect();
            (distinct, Cow::Owned(first_codes))
        }
    };
    // A dictionary never holds more values than the chunk has rows
    // (readers refuse it): a dictionary source with unused values and few
    // rows is stored plain.
    if distinct.len() > plain_limit || distinct.len() > rows {
        return write_plain_bytes_column(file, c, text, block_rows, opts.compression, raw);
    }
    let (dictionary, remap) = write_dictionary(c.name, &distinct, opts.compression, raw, file)?;
    let code = |c: u32| remap.get(c as usize).copied().unwrap_or(0);

    let mut blocks = Vec::new();
    let mut trial = CompressionTrial::new(opts.compression);
    let mut codes: Vec<u64> = Vec::with_capacity(block_rows.min(rows));
    for chunk in first_codes.chunks(block_rows) {
        raw.clear();
        let (lo, hi) = encode_codes_block(chunk, &remap, &mut codes, raw);
        blocks.push(trial.push(file, raw, lo, hi)?);
    }

    let bitmaps = if c.bitmap_index {
        let codes32: Vec<u32> = first_codes.iter().map(|&c| code(c)).collect();
        Some(write_bitmap_block(
            file,
            None,
            &codes32,
            distinct.len(),
            opts,
            raw,
        )?)
    } else {
        None
    };
    Ok(FooterColumn {
        name: c.name.to_string(),
        kind: ColumnKind::Bytes,
        encoding: ColumnEncoding::Dictionary,
        dictionary: Some(dictionary),
        bitmaps,
        blocks,
    })
}

/// Appends the chunk file header.
pub(super) fn write_header(file: &mut Vec<u8>) {
    file.extend_from_slice(CHUNK_MAGIC);
    file.extend_from_slice(&CHUNK_VERSION.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(file.len(), HEADER_LEN);
}

/// Appends the key directory block (varint length of the encoded keys,
/// the keys, then the end row of each) to `file`.
pub(super) fn write_key_directory(
    keys: &[&[u8]],
    ends: &[u64],
    compression: Compression,
    raw: &mut Vec<u8>,
    file: &mut Vec<u8>,
) -> Result<BlockRef> {
    let mut keys_enc = Vec::new();
    encode_byte_strings(keys.iter().copied(), &mut keys_enc);
    raw.clear();
    put_varint(raw, keys_enc.len() as u64);
    raw.extend_from_slice(&keys_enc);
    encode_u64s(ends, raw);
    let offset = file.len() as u64;
    write_block(raw, compression, file)?;
    Ok(BlockRef {
        offset,
        len: file.len() as u64 - offset,
    })
}

/// Appends the footer block and the trailer to `file`, whose footer
/// starts at `footer_offset` of the whole file (`file` may be its tail).
pub(super) fn write_footer(footer: &Footer, footer_offset: u64, file: &mut Vec<u8>) -> Result<()> {
    let start = file.len();
    write_block(&footer.encode(), Compression::None, file)?;
    let footer_len = (file.len() - start) as u32;
    let mut trailer = Vec::with_capacity(24);
    trailer.extend_from_slice(&footer_offset.to_le_bytes());
    trailer.extend_from_slice(&footer_len.to_le_bytes());
    let tcrc = crc32c::crc32c(&trailer);
    trailer.extend_from_slice(&tcrc.to_le_bytes());
    trailer.extend_from_slice(TRAILER_MAGIC);
    file.extend_from_slice(&trailer);
    Ok(())
}

/// Encodes one block of a time column (`starts`: which rows begin a key):
/// each value as the step from the previous one of its key in this block,
/// or from the chunk's minimum `base` at a key's or the block's first row.
/// Returns the block's statistics.
pub(super) fn encode_key_delta_block(
    values: &[i64],
    starts: &[bool],
    base: i64,
    tmp: &mut Vec<u64>,
    raw: &mut Vec<u8>,
) -> (u64, u64) {
    tmp.clear();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut prev = base;
    for (&v, &start) in values.iter().zip(starts) {
        let from = if start { base } else { prev };
        tmp.push(v.wrapping_sub(from) as u64);
        prev = v;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    encode_u64s(tmp, raw);
    (i64_key(lo), i64_key(hi))
}

/// Encodes one block of floats; returns its statistics.
pub(super) fn encode_f64_block(values: &[f64], raw: &mut Vec<u8>) -> (u64, u64) {
    match crate::codec::encode_f64s_ranged(values, raw) {
        Some((lo, hi)) => (f64_key(lo), f64_key(hi)),
        None => min_max_by(values, f64_key).unwrap_or((0, 0)),
    }
}

/// Encodes rows `range` of a plain byte-string column as one block.
pub(super) fn encode_plain_block(
    text: Text<'_>,
    range: Range<usize>,
    lengths: &mut Vec<u64>,
    raw: &mut Vec<u8>,
) {
    match adjacent(text, range.clone(), lengths) {
        Some(bytes) => encode_adjacent_byte_strings(lengths, bytes, raw),
        None => encode_byte_strings(range.map(|i| text.get(i)), raw),
    }
}

/// Appends the dictionary block of the distinct values `distinct`
/// (sorted, so codes preserve order) to `file`; returns where it is, its
/// size, and the sorted code of each of `distinct`'s codes.
pub(super) fn write_dictionary(
    column: &str,
    distinct: &[&[u8]],
    compression: Compression,
    raw: &mut Vec<u8>,
    file: &mut Vec<u8>,
) -> Result<((BlockRef, u64), Vec<u32>)> {
    let mut order: Vec<u32> = (0..distinct.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| distinct.get(a as usize).cmp(&distinct.get(b as usize)));
    if let Some(w) = order
        .windows(2)
        .find(|w| distinct.get(w[0] as usize) == distinct.get(w[1] as usize))
    {
        return Err(StorageError::InvalidInput(format!(
            "column {column}: dictionary value {:?} given twice",
            String::from_utf8_lossy(distinct.get(w[0] as usize).copied().unwrap_or(&[]))
        )));
    }
    let mut remap = vec![0u32; distinct.len()];
    for (new, &old) in order.iter().enumerate() {
        if let Some(r) = remap.get_mut(old as usize) {
            *r = new as u32;
        }
    }
    raw.clear();
    encode_byte_strings(
        order
            .iter()
            .map(|&o| distinct.get(o as usize).copied().unwrap_or(&[])),
        raw,
    );
    let offset = file.len() as u64;
    write_block(raw, compression, file)?;
    let at = BlockRef {
        offset,
        len: file.len() as u64 - offset,
    };
    Ok(((at, distinct.len() as u64), remap))
}

/// Encodes one block of dictionary codes, each mapped through `remap`
/// (`codes` is scratch); returns the block's statistics.
pub(super) fn encode_codes_block(
    block: &[u32],
    remap: &[u32],
    codes: &mut Vec<u64>,
    raw: &mut Vec<u8>,
) -> (u64, u64) {
    codes.clear();
    codes.extend(
        block
            .iter()
            .map(|&c| u64::from(remap.get(c as usize).copied().unwrap_or(0))),
    );
    encode_u64s(codes, raw)
}

/// A value found in more than 1/DENSE_VALUE_FRACTION of a chunk's rows gets
/// no bitmap: a predicate on it selects so much that decoding the column
/// costs no more, and its bitmap would be the largest of all.
pub(crate) const DENSE_VALUE_FRACTION: usize = 8;

/// Most distinct values of an integer column that get a bitmap index.
pub(crate) const MAX_U64_BITMAP_VALUES: usize = 4096;

/// Writes a bitmap index block: one roaring bitmap of rows per entry.
///
/// Raw layout: varint n_entries; varint len, encode_u64s(values) (integer
/// columns: the distinct values, ascending; empty for dictionary columns,
/// whose entry i is code i); varint len, encode_u64s(serialized size of each
/// bitmap); the bitmaps in portable roaring format, back to back.
fn write_bitmap_block(
    file: &mut Vec<u8>,
    values: Option<&[u64]>,
    entry_of_row: &[u32],
    entries: usize,
    opts: &ChunkWriteOptions,
    raw: &mut Vec<u8>,
) -> Result<BlockRef> {
    let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); entries];
    for (row, &e) in entry_of_row.iter().enumerate() {
        if let Some(v) = rows_of.get_mut(e as usize) {
            v.push(row as u32);
        }
    }
    let mut sizes = Vec::with_capacity(entries);
    let mut body = Vec::new();
    let rows = entry_of_row.len();
    for r in rows_of {
        if r.len() * DENSE_VALUE_FRACTION > rows {
            // Too common to be worth an index: size 0 marks "not indexed",
            // and readers evaluate the value by decoding the column.
            sizes.push(0);
            continue;
        }
        let bm = RoaringBitmap::from_sorted_iter(r)
            .map_err(|e| StorageError::InvalidInput(format!("bitmap rows not sorted: {e}")))?;
        let before = body.len();
        bm.serialize_into(&mut body)
            .map_err(|e| StorageError::InvalidInput(format!("bitmap serialize: {e}")))?;
        sizes.push((body.len() - before) as u64);
    }
    raw.clear();
    put_varint(raw, entries as u64);
    let mut enc = Vec::new();
    if let Some(v) = values {
        encode_u64s(v, &mut enc);
    }
    put_varint(raw, enc.len() as u64);
    raw.extend_from_slice(&enc);
    enc.clear();
    encode_u64s(&sizes, &mut enc);
    put_varint(raw, enc.len() as u64);
    raw.extend_from_slice(&enc);
    raw.extend_from_slice(&body);
    let offset = file.len() as u64;
    write_block(raw, opts.compression, file)?;
    Ok(BlockRef {
        offset,
        len: file.len() as u64 - offset,
    })
}
