//! Column encodings: how a column block of integers, floats or byte strings
//! becomes bytes, and the block compression applied afterwards.
//!
//! Every encoding is self-describing: its first byte is a codec id (the
//! constants below, mirrored byte by byte in `docs/codecs.md`). The value
//! count is not stored; the caller keeps it (the chunk footer does) and
//! passes it back, bounded, to the decoder. Decoders take an in-memory
//! slice, must consume it exactly, never panic, and report bad input as
//! [`StorageError::Corrupt`] with an offset relative to that slice.
//!
//! Encoders choose among their candidates by estimating each encoded size
//! from one histogram pass, like tantivy's `ColumnCodecEstimator`, and
//! write only the smallest.
//!
//! Submodules: `varint` (LEB128), `bitpack` (the bit-packing kernels),
//! `ints` (u64/i64 columns), `floats` (f64 columns, ALP-style), `bytes`
//! (variable-length byte strings), `compress` (lz4/zstd).

mod bitpack;
mod bytes;
mod compress;
mod floats;
mod ints;
mod varint;

pub(crate) use bytes::encode_adjacent_byte_strings;
pub use bytes::{decode_byte_strings, encode_byte_strings};
pub use compress::{compress, decompress, Compression};
pub(crate) use floats::encode_f64s_ranged;
pub use floats::{decode_f64s, encode_f64s};
pub(crate) use ints::min_max_by;
pub use ints::{decode_i64s, decode_u64s, encode_i64s, encode_u64s, encode_u64s_packed};
pub use varint::{get_varint, put_varint};

use crate::{Result, StorageError};

/// Integer codec: every value equals one `u64`.
pub(crate) const INT_CONSTANT: u8 = 0x00;
/// Integer codec: frame of reference + bit-packing with patched exceptions.
pub(crate) const INT_BITPACKED: u8 = 0x01;
/// Integer codec: first value, then zigzag deltas as a bit-packed body.
pub(crate) const INT_DELTA_ZIGZAG: u8 = 0x02;
/// Integer codec: first value, then wrapping deltas as a bit-packed body.
pub(crate) const INT_DELTA: u8 = 0x03;
/// Integer codec: minimum, a unit every value's distance from it is a
/// multiple of, then those multiples as a bit-packed body.
pub(crate) const INT_SCALED: u8 = 0x04;
/// Float codec: raw little-endian IEEE 754 bits.
pub(crate) const FLOAT_RAW: u8 = 0x10;
/// Float codec: decimal scaled integers with exceptions (ALP-style).
pub(crate) const FLOAT_DECIMAL: u8 = 0x11;
/// Byte-string codec: lengths as an integer encoding, then the bytes.
pub(crate) const BYTES_LENGTHS: u8 = 0x20;

/// Reads one byte at `data[*pos]`, naming `what` in the error.
pub(crate) fn read_u8(data: &[u8], pos: &mut usize, what: &str) -> Result<u8> {
    match data.get(*pos) {
        Some(&b) => {
            *pos += 1;
            Ok(b)
        }
        None => Err(StorageError::corrupt(
            *pos,
            format!("expected {what} (1 byte), found end of data"),
        )),
    }
}

/// Reads a little-endian u64 at `data[*pos..]`, naming `what` in the error.
pub(crate) fn read_u64(data: &[u8], pos: &mut usize, what: &str) -> Result<u64> {
    let bytes = pos
        .checked_add(8)
        .and_then(|end| data.get(*pos..end))
        .ok_or_else(|| {
            StorageError::corrupt(
                *pos,
                format!(
                    "expected {what} (8 bytes), found {} bytes",
                    data.len().saturating_sub(*pos)
                ),
            )
        })?;
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    *pos += 8;
    Ok(u64::from_le_bytes(b))
}

/// Errors unless `pos` is the end of `data`.
pub(crate) fn expect_end(data: &[u8], pos: usize, what: &str) -> Result<()> {
    if pos == data.len() {
        Ok(())
    } else {
        Err(StorageError::corrupt(
            pos,
            format!(
                "expected the end of the {what} encoding, found {} trailing bytes",
                data.len().saturating_sub(pos)
            ),
        ))
    }
}
