//! Block compression applied to encoded column blocks: none, lz4 (the
//! block format, for fresh chunks) or zstd (level 3, for compacted ones).
//! The compressed bytes carry no length: the caller stores the raw length
//! and passes it, bounded, back to [`decompress`].

use crate::{Result, StorageError};

/// zstd level used by [`compress`].
const ZSTD_LEVEL: i32 = 3;

/// Block compression applied after encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    /// Bytes stored as they are.
    None = 0,
    /// The lz4 block format (no frame, no length prefix).
    Lz4 = 1,
    /// One zstd frame, level 3.
    Zstd = 2,
}

impl Compression {
    /// The byte stored on disk for this compression.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The compression stored as `code`, or `None` for an unknown byte.
    pub fn try_from_code(code: u8) -> Option<Compression> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Appends the compressed form of `raw` to `out` (zstd level 3 for Zstd).
/// Errors only if the compressor itself fails; `out` is then unchanged.
pub fn compress(kind: Compression, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let written = match kind {
        Compression::None => {
            out.extend_from_slice(raw);
            return Ok(());
        }
        Compression::Lz4 => {
            out.resize(
                start + lz4_flex::block::get_maximum_output_size(raw.len()),
                0,
            );
            lz4_flex::block::compress_into(raw, &mut out[start..])
                .map_err(|e| format!("lz4 compression of {} bytes failed: {e}", raw.len()))
        }
        Compression::Zstd => {
            out.resize(start + zstd::zstd_safe::compress_bound(raw.len()), 0);
            zstd::bulk::compress_to_buffer(raw, &mut out[start..], ZSTD_LEVEL)
                .map_err(|e| format!("zstd compression of {} bytes failed: {e}", raw.len()))
        }
    };
    match written {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(message) => {
            out.truncate(start);
            Err(StorageError::InvalidInput(message))
        }
    }
}

/// Appends exactly `raw_len` decompressed bytes to `out`; errors if `data`
/// does not decompress to exactly `raw_len` bytes. The caller bounds
/// `raw_len` (it is allocated up front). On error `out` is unchanged.
pub fn decompress(kind: Compression, data: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    if out.try_reserve(raw_len).is_err() {
        return Err(StorageError::InvalidInput(format!(
            "cannot allocate {raw_len} decompressed bytes"
        )));
    }
    let result = match kind {
        Compression::None => {
            if data.len() != raw_len {
                return Err(StorageError::corrupt(
                    0,
                    format!(
                        "expected {raw_len} uncompressed bytes, found {} bytes",
                        data.len()
                    ),
                ));
            }
            out.extend_from_slice(data);
            return Ok(());
        }
        // Neither format has an empty encoding, not even of zero bytes.
        Compression::Lz4 | Compression::Zstd if data.is_empty() => {
            return Err(StorageError::corrupt(
                0,
                format!("expected a {kind:?} block of {raw_len} bytes, found no data"),
            ));
        }
        Compression::Lz4 => {
            out.resize(start + raw_len, 0);
            lz4_flex::block::decompress_into(data, &mut out[start..])
                .map_err(|e| format!("lz4 block does not decompress: {e}"))
        }
        Compression::Zstd => {
            out.resize(start + raw_len, 0);
            zstd::bulk::decompress_to_buffer(data, &mut out[start..])
                .map_err(|e| format!("zstd frame does not decompress: {e}"))
        }
    };
    let detail = match result {
        Ok(n) if n == raw_len => return Ok(()),
        Ok(n) => format!("expected {raw_len} bytes after decompression, found {n}"),
        Err(e) => format!("expected {raw_len} bytes after decompression, but the {e}"),
    };
    out.truncate(start);
    Err(StorageError::corrupt(0, detail))
}
