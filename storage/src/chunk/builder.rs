//! Writing a chunk from rows that arrive a few blocks at a time.
//!
//! [`crate::chunk::write_chunk`] takes whole columns. A producer that
//! makes its rows as it goes (the rollup pass of a flush makes about a
//! million minute rows) would have to hold them all first: memory the
//! process pages in, fills and reads back once. A [`ChunkBuilder`] takes
//! the rows block by block instead, encodes each block while it is still
//! in cache, and keeps only the encoded bytes, one buffer per column; the
//! buffers are laid out as a chunk file at the end ([`EncodedChunk`]).
//!
//! The file is byte for byte the one `write_chunk` writes for the same
//! rows (a test checks it). Only the column kinds whose blocks do not
//! depend on later rows can stream: the time column (given the chunk's
//! smallest time up front), integers, floats, plain byte strings and
//! byte strings already dictionary coded, without bitmap indexes.

use std::path::Path;

use super::buffers::Pooled;
use super::format::{
    BlockRef, ColumnEncoding, ColumnKind, Footer, FooterBlock, FooterColumn, HEADER_LEN,
    MAX_BLOCK_ROWS, MAX_CHUNK_ROWS,
};
use super::writer::{
    encode_codes_block, encode_f64_block, encode_key_delta_block, encode_plain_block,
    write_dictionary, write_footer, write_header, write_key_directory, ChunkSummary,
    ChunkWriteOptions, ColumnSource, CompressionTrial, Text,
};
use crate::codec::{encode_i64s, encode_u64s, encode_u64s_packed, Compression};
use crate::io::{FileSystem, WritableFile};
use crate::{Result, StorageError};

/// What a streamed column holds; the rows pushed for it must be the
/// matching [`ColumnSource`].
#[derive(Debug, Clone, Copy)]
pub enum StreamKind<'a> {
    /// The time column ([`ColumnSource::I64`]): non-decreasing within each
    /// key, stored as per-key steps from the chunk's smallest time, which
    /// [`ChunkBuilder::new`] is given. At most one.
    Time,
    /// Signed integers ([`ColumnSource::I64`]).
    I64,
    /// Unsigned integers ([`ColumnSource::U64`]).
    U64,
    /// Unsigned integers without order ([`ColumnSource::U64Packed`]).
    U64Packed,
    /// Floats ([`ColumnSource::F64`]).
    F64,
    /// Byte strings stored plain ([`ColumnSource::PlainBytes`]).
    PlainBytes,
    /// Byte strings coded into these distinct values
    /// ([`ColumnSource::Dict`] with the same `values`). The chunk needs at
    /// least as many rows as values ([`ChunkBuilder::finish`] refuses
    /// fewer; `write_chunk` would store such a column plain).
    Dict(&'a [&'a [u8]]),
}

/// One column of a [`ChunkBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct StreamColumn<'a> {
    /// Column name.
    pub name: &'a str,
    /// What it holds.
    pub kind: StreamKind<'a>,
}

/// One column being built: its encoded blocks, placed as if the column
/// started at offset 0.
struct ColumnBuild<'a> {
    name: &'a str,
    kind: StreamKind<'a>,
    bytes: Vec<u8>,
    /// Dictionary columns: where the dictionary block is, its entries, and
    /// each code's code in the sorted dictionary.
    dictionary: Option<((BlockRef, u64), Vec<u32>)>,
    blocks: Vec<FooterBlock>,
    trial: CompressionTrial,
}

/// Builds a chunk from rows pushed a whole number of blocks at a time
/// (see the module docs).
pub struct ChunkBuilder<'a> {
    key_name: &'a str,
    keys: &'a [&'a [u8]],
    columns: Vec<ColumnBuild<'a>>,
    block_rows: usize,
    compression: Compression,
    /// The chunk's smallest time, as given: the base of the time column's
    /// steps.
    time_base: i64,
    /// The smallest and largest time pushed.
    time_range: Option<(i64, i64)>,
    rows: usize,
    /// Key directory: each distinct key and the end row of its rows.
    dir_keys: Vec<&'a [u8]>,
    dir_ends: Vec<u64>,
    last_key_code: Option<u32>,
    /// The last time value pushed, to check the order within a key.
    last_time: Option<i64>,
    /// A push held a partial block: no more rows may follow.
    closed: bool,
    /// A push failed: the builder's state is no longer a chunk's.
    failed: bool,
    /// Rows the caller expects at most ([`ChunkBuilder::expect_rows`]).
    rows_hint: usize,
    raw: Vec<u8>,
    scratch_u64: Vec<u64>,
    starts: Vec<bool>,
}

impl<'a> ChunkBuilder<'a> {
    /// A builder of a chunk whose key column `key_name` holds codes into
    /// the distinct `keys`, with `columns`. `time_base` must be the
    /// smallest value the time column will hold (checked by
    /// [`ChunkBuilder::finish`]; ignored without a time column).
    pub fn new(
        key_name: &'a str,
        keys: &'a [&'a [u8]],
        columns: &[StreamColumn<'a>],
        time_base: i64,
        opts: &ChunkWriteOptions,
    ) -> Result<ChunkBuilder<'a>> {
        if columns
            .iter()
            .filter(|c| matches!(c.kind, StreamKind::Time))
            .count()
            > 1
        {
            return Err(StorageError::InvalidInput(
                "at most one time column per chunk".into(),
            ));
        }
        let mut raw = Vec::new();
        let mut built = Vec::with_capacity(columns.len());
        for c in columns {
            let mut bytes = super::buffers::take();
            let dictionary = match c.kind {
                StreamKind::Dict(values) => Some(write_dictionary(
                    c.name,
                    values,
                    opts.compression,
                    &mut raw,
                    &mut bytes,
                )?),
                _ => None,
            };
            built.push(ColumnBuild {
                name: c.name,
                kind: c.kind,
                bytes,
                dictionary,
                blocks: Vec::new(),
                trial: CompressionTrial::new(match c.kind {
                    // As write_chunk stores them.
                    StreamKind::PlainBytes => Compression::None,
                    _ => opts.compression,
                }),
            });
        }
        Ok(ChunkBuilder {
            key_name,
            keys,
            columns: built,
            block_rows: opts.block_rows.clamp(1, MAX_BLOCK_ROWS),
            compression: opts.compression,
            time_base,
            time_range: None,
            rows: 0,
            dir_keys: Vec::new(),
            dir_ends: Vec::new(),
            last_key_code: None,
            last_time: None,
            closed: false,
            failed: false,
            rows_hint: 0,
            raw,
            scratch_u64: Vec::new(),
            starts: Vec::new(),
        })
    }

    /// Rows per block.
    pub fn block_rows(&self) -> usize {
        self.block_rows
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Says how many rows the chunk will have at most. After the first
    /// push, each column then reserves room for that many rows at the
    /// size its first rows took, so that its buffer is not copied as it
    /// grows (room never written costs no memory).
    pub fn expect_rows(&mut self, rows: usize) {
        self.rows_hint = rows;
    }

    /// Appends rows: each row's key code (into the builder's keys, sorted
    /// by key) and one source per column, in the builder's column order.
    /// Every push but the last must hold a whole number of blocks. After
    /// an error the builder takes no more rows.
    pub fn push(&mut self, key_codes: &[u32], sources: &[ColumnSource<'_>]) -> Result<()> {
        if self.failed {
            return Err(StorageError::InvalidInput(
                "rows pushed to a chunk builder after an error".into(),
            ));
        }
        let result = self.push_rows(key_codes, sources);
        self.failed = result.is_err();
        result
    }

    fn push_rows(&mut self, key_codes: &[u32], sources: &[ColumnSource<'_>]) -> Result<()> {
        let n = key_codes.len();
        if n == 0 {
            return Ok(());
        }
        if self.closed {
            return Err(StorageError::InvalidInput(format!(
                "rows pushed after a partial block (blocks hold {} rows)",
                self.block_rows
            )));
        }
        if (self.rows + n) as u64 > MAX_CHUNK_ROWS {
            return Err(StorageError::InvalidInput(format!(
                "a chunk holds at most {MAX_CHUNK_ROWS} rows, got {}",
                self.rows + n
            )));
        }
        if sources.len() != self.columns.len() {
            return Err(StorageError::InvalidInput(format!(
                "{} column sources for {} columns",
                sources.len(),
                self.columns.len()
            )));
        }
        for (c, s) in self.columns.iter().zip(sources) {
            check_source(c, s, n)?;
        }
        self.push_keys(key_codes)?;
        for (c, s) in self.columns.iter_mut().zip(sources) {
            if let (StreamKind::Time, ColumnSource::I64(values)) = (c.kind, s) {
                check_time(
                    c.name,
                    values,
                    &self.starts,
                    self.rows,
                    &mut self.last_time,
                    &mut self.time_range,
                )?;
            }
        }
        let br = self.block_rows;
        for (c, s) in self.columns.iter_mut().zip(sources) {
            let mut at = 0;
            while at < n {
                let end = (at + br).min(n);
                self.raw.clear();
                let raw = &mut self.raw;
                let (lo, hi) = match (c.kind, *s) {
                    (StreamKind::Time, ColumnSource::I64(v)) => encode_key_delta_block(
                        v.get(at..end).unwrap_or_default(),
                        self.starts.get(at..end).unwrap_or_default(),
                        self.time_base,
                        &mut self.scratch_u64,
                        raw,
                    ),
                    (_, ColumnSource::I64(v)) => {
                        encode_i64s(v.get(at..end).unwrap_or_default(), raw)
                    }
                    (_, ColumnSource::U64(v)) => {
                        encode_u64s(v.get(at..end).unwrap_or_default(), raw)
                    }
                    (_, ColumnSource::U64Packed(v)) => {
                        encode_u64s_packed(v.get(at..end).unwrap_or_default(), raw)
                    }
                    (_, ColumnSource::F64(v)) => {
                        encode_f64_block(v.get(at..end).unwrap_or_default(), raw)
                    }
                    (_, ColumnSource::PlainBytes { bytes, ends }) => {
                        let mut lengths = std::mem::take(&mut self.scratch_u64);
                        encode_plain_block(Text::Bytes { bytes, ends }, at..end, &mut lengths, raw);
                        self.scratch_u64 = lengths;
                        (0, u64::MAX)
                    }
                    (_, ColumnSource::Dict { codes, .. }) => {
                        let remap = c.dictionary.as_ref().map_or(&[][..], |d| d.1.as_slice());
                        encode_codes_block(
                            codes.get(at..end).unwrap_or_default(),
                            remap,
                            &mut self.scratch_u64,
                            raw,
                        )
                    }
                    // check_source refused the other pairs.
                    (_, ColumnSource::Bytes { .. }) => (0, 0),
                };
                c.blocks.push(c.trial.push(&mut c.bytes, raw, lo, hi)?);
                at = end;
            }
        }
        if self.rows == 0 && self.rows_hint > n {
            let more = self.rows_hint - n;
            for c in &mut self.columns {
                // A quarter more than the first rows' size, in case the
                // later ones take more. Only a hint: room that cannot be
                // had is not reserved.
                let want = c.bytes.len().div_ceil(n).saturating_mul(more);
                let _ = c.bytes.try_reserve(want.saturating_add(want / 4));
            }
        }
        self.rows += n;
        self.closed = !n.is_multiple_of(br);
        Ok(())
    }

    /// Extends the key directory by `key_codes` and marks in `self.starts`
    /// which of them begin a key.
    fn push_keys(&mut self, key_codes: &[u32]) -> Result<()> {
        self.starts.clear();
        for (i, &code) in key_codes.iter().enumerate() {
            let row = self.rows + i;
            if self.last_key_code == Some(code) {
                if let Some(e) = self.dir_ends.last_mut() {
                    *e = row as u64 + 1;
                }
                self.starts.push(false);
                continue;
            }
            self.last_key_code = Some(code);
            let Some(&k) = self.keys.get(code as usize) else {
                return Err(StorageError::InvalidInput(format!(
                    "column {}: row {row} has dictionary code {code} of {} values",
                    self.key_name,
                    self.keys.len()
                )));
            };
            match self.dir_keys.last() {
                Some(&last) if last == k => {
                    if let Some(e) = self.dir_ends.last_mut() {
                        *e = row as u64 + 1;
                    }
                    self.starts.push(false);
                }
                Some(&last) if last > k => {
                    return Err(StorageError::InvalidInput(format!(
                        "rows are not sorted by key at row {row}"
                    )));
                }
                _ => {
                    self.dir_keys.push(k);
                    self.dir_ends.push(row as u64 + 1);
                    self.starts.push(true);
                }
            }
        }
        Ok(())
    }

    /// Lays the chunk out: checks that the time base was the smallest
    /// time, then places the columns after the header and key directory.
    pub fn finish(mut self) -> Result<EncodedChunk> {
        if self.failed {
            return Err(StorageError::InvalidInput(
                "a chunk builder finished after an error".into(),
            ));
        }
        let (min_ts, max_ts) = match self.time_range {
            Some((lo, hi)) => {
                if lo != self.time_base {
                    return Err(StorageError::InvalidInput(format!(
                        "time base {} is not the smallest time, {lo}",
                        self.time_base
                    )));
                }
                (lo, hi)
            }
            None => (0, 0),
        };
        for c in &self.columns {
            if let Some(((_, values), _)) = c.dictionary {
                if values > self.rows as u64 {
                    return Err(StorageError::InvalidInput(format!(
                        "column {}: {values} dictionary values for {} rows (a chunk's dictionary holds at most one value per row)",
                        c.name, self.rows
                    )));
                }
            }
        }
        let mut head = Vec::with_capacity(HEADER_LEN + 4096);
        write_header(&mut head);
        let key_directory = write_key_directory(
            &self.dir_keys,
            &self.dir_ends,
            self.compression,
            &mut self.raw,
            &mut head,
        )?;
        let mut column_bytes = vec![(self.key_name.to_string(), key_directory.len)];
        let mut offset = head.len() as u64;
        let mut footer_columns = Vec::with_capacity(self.columns.len());
        let mut bodies = Pooled(Vec::with_capacity(self.columns.len()));
        for c in self.columns {
            let shift = |r: BlockRef| BlockRef {
                offset: r.offset + offset,
                len: r.len,
            };
            let (kind, encoding) = match c.kind {
                StreamKind::Time => (ColumnKind::I64, ColumnEncoding::KeyDelta),
                StreamKind::I64 => (ColumnKind::I64, ColumnEncoding::Plain),
                StreamKind::U64 | StreamKind::U64Packed => (ColumnKind::U64, ColumnEncoding::Plain),
                StreamKind::F64 => (ColumnKind::F64, ColumnEncoding::Plain),
                StreamKind::PlainBytes => (ColumnKind::Bytes, ColumnEncoding::Plain),
                StreamKind::Dict(_) => (ColumnKind::Bytes, ColumnEncoding::Dictionary),
            };
            footer_columns.push(FooterColumn {
                name: c.name.to_string(),
                kind,
                encoding,
                dictionary: c.dictionary.map(|((at, n), _)| (shift(at), n)),
                bitmaps: None,
                blocks: c
                    .blocks
                    .iter()
                    .map(|b| FooterBlock {
                        at: shift(b.at),
                        ..*b
                    })
                    .collect(),
            });
            column_bytes.push((c.name.to_string(), c.bytes.len() as u64));
            offset += c.bytes.len() as u64;
            bodies.0.push(c.bytes);
        }
        let footer = Footer {
            rows: self.rows as u64,
            block_rows: self.block_rows as u64,
            min_ts,
            max_ts,
            key_name: self.key_name.to_string(),
            keys: self.dir_keys.len() as u64,
            key_directory,
            columns: footer_columns,
        };
        let mut tail = Vec::new();
        write_footer(&footer, offset, &mut tail)?;
        let summary = ChunkSummary {
            rows: self.rows as u64,
            keys: self.dir_keys.len() as u64,
            min_ts,
            max_ts,
            file_bytes: offset + tail.len() as u64,
            column_bytes,
        };
        Ok(EncodedChunk {
            head,
            bodies,
            tail,
            summary,
        })
    }
}

/// Checks that `s` holds `n` rows of what column `c` takes.
fn check_source(c: &ColumnBuild<'_>, s: &ColumnSource<'_>, n: usize) -> Result<()> {
    let (fits, len) = match (c.kind, *s) {
        (StreamKind::Time | StreamKind::I64, ColumnSource::I64(v)) => (true, v.len()),
        (StreamKind::U64, ColumnSource::U64(v)) => (true, v.len()),
        (StreamKind::U64Packed, ColumnSource::U64Packed(v)) => (true, v.len()),
        (StreamKind::F64, ColumnSource::F64(v)) => (true, v.len()),
        (StreamKind::PlainBytes, ColumnSource::PlainBytes { bytes, ends }) => {
            if let Some(i) = ends
                .iter()
                .zip(std::iter::once(&0).chain(ends))
                .position(|(&e, &prev)| e < prev || e as usize > bytes.len())
            {
                return Err(StorageError::InvalidInput(format!(
                    "column {}: value {i} ends outside its bytes",
                    c.name
                )));
            }
            (true, ends.len())
        }
        (StreamKind::Dict(given), ColumnSource::Dict { values, codes }) => {
            if !std::ptr::eq(given, values) {
                return Err(StorageError::InvalidInput(format!(
                    "column {}: codes into other values than the builder's",
                    c.name
                )));
            }
            Text::Dict { values, codes }.check_codes(c.name)?;
            (true, codes.len())
        }
        _ => (false, 0),
    };
    if !fits {
        return Err(StorageError::InvalidInput(format!(
            "column {}: a {} column cannot take {} values",
            c.name,
            kind_name(c.kind),
            source_name(s)
        )));
    }
    if len != n {
        return Err(StorageError::InvalidInput(format!(
            "column {} has {len} values for {n} rows",
            c.name
        )));
    }
    Ok(())
}

fn kind_name(k: StreamKind<'_>) -> &'static str {
    match k {
        StreamKind::Time => "time",
        StreamKind::I64 => "i64",
        StreamKind::U64 => "u64",
        StreamKind::U64Packed => "packed u64",
        StreamKind::F64 => "f64",
        StreamKind::PlainBytes => "plain bytes",
        StreamKind::Dict(_) => "dictionary",
    }
}

fn source_name(s: &ColumnSource<'_>) -> &'static str {
    match s {
        ColumnSource::I64(_) => "i64",
        ColumnSource::U64(_) => "u64",
        ColumnSource::U64Packed(_) => "packed u64",
        ColumnSource::F64(_) => "f64",
        ColumnSource::Bytes { .. } => "byte string",
        ColumnSource::PlainBytes { .. } => "plain byte string",
        ColumnSource::Dict { .. } => "dictionary coded",
    }
}

/// Checks that the time column never decreases within a key (`starts`:
/// which rows begin one; `first_row` the first row's number) and widens
/// `range` by its values.
fn check_time(
    name: &str,
    values: &[i64],
    starts: &[bool],
    first_row: usize,
    last: &mut Option<i64>,
    range: &mut Option<(i64, i64)>,
) -> Result<()> {
    let (mut lo, mut hi) = range.unwrap_or((i64::MAX, i64::MIN));
    for (i, (&v, &start)) in values.iter().zip(starts).enumerate() {
        if !start && last.is_some_and(|l| v < l) {
            return Err(StorageError::InvalidInput(format!(
                "time column {name} decreases within a key at row {}",
                first_row + i
            )));
        }
        *last = Some(v);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    *range = Some((lo, hi));
    Ok(())
}

/// A chunk file laid out in parts (header and key directory, each
/// column's blocks, footer and trailer), to be written in order.
#[derive(Debug)]
pub struct EncodedChunk {
    head: Vec<u8>,
    /// The columns' buffers, which go back to the pool when dropped.
    bodies: Pooled,
    tail: Vec<u8>,
    summary: ChunkSummary,
}

impl EncodedChunk {
    /// What the file holds.
    pub fn summary(&self) -> &ChunkSummary {
        &self.summary
    }

    /// The file's parts, in order.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.head.as_slice())
            .chain(self.bodies.0.iter().map(Vec::as_slice))
            .chain(std::iter::once(self.tail.as_slice()))
    }

    /// Creates `path` and writes the chunk into it, without the fsync (as
    /// [`crate::chunk::write_chunk_unsynced`]); returns the summary and
    /// the file, which the caller must sync before anything durable names
    /// the chunk.
    pub fn write_unsynced(
        self,
        fs: &dyn FileSystem,
        path: &Path,
    ) -> Result<(ChunkSummary, Box<dyn WritableFile>)> {
        let mut f = fs.create(path)?;
        for part in self.parts() {
            f.write_all(part)?;
        }
        Ok((self.summary, f))
    }
}
