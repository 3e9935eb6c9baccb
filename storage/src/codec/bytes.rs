//! Variable-length byte-string columns: the lengths as an integer encoding
//! (so short strings of similar length pack into a few bits each), then
//! every string's bytes concatenated. See `docs/codecs.md`.

use super::ints::{decode_ints, encode_u64s};
use super::varint::{get_varint, put_varint};
use super::{read_u8, BYTES_LENGTHS};
use crate::{Result, StorageError};

/// Appends an encoding of `values` (first byte = codec id) to `out`: the
/// string lengths through the integer codec ([`encode_u64s`]), then the
/// concatenated bytes. A block's strings must total less than 4 GiB, the
/// limit of the `u32` end offsets [`decode_byte_strings`] returns.
pub fn encode_byte_strings<'a>(values: impl ExactSizeIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    let values: Vec<&[u8]> = values.collect();
    let lengths: Vec<u64> = values.iter().map(|v| v.len() as u64).collect();
    put_lengths(&lengths, out);
    out.reserve(lengths.iter().sum::<u64>() as usize);
    for v in values {
        out.extend_from_slice(v);
    }
}

/// [`encode_byte_strings`] of strings that lie back to back in `bytes`,
/// string `i` taking the next `lengths[i]` bytes (which must add up to
/// `bytes.len()`): the same bytes, without gathering the strings.
pub(crate) fn encode_adjacent_byte_strings(lengths: &[u64], bytes: &[u8], out: &mut Vec<u8>) {
    debug_assert_eq!(lengths.iter().sum::<u64>(), bytes.len() as u64);
    put_lengths(lengths, out);
    out.extend_from_slice(bytes);
}

/// The codec id and the length section.
fn put_lengths(lengths: &[u64], out: &mut Vec<u8>) {
    let mut lengths_encoded = Vec::new();
    encode_u64s(lengths, &mut lengths_encoded);
    out.push(BYTES_LENGTHS);
    put_varint(out, lengths_encoded.len() as u64);
    out.extend_from_slice(&lengths_encoded);
}

/// Decodes `count` strings from an [`encode_byte_strings`] encoding,
/// returning all their bytes concatenated and the end offset of each
/// string in those bytes (string `i` is `bytes[ends[i-1]..ends[i]]`, with
/// `ends[-1] = 0`). `data` must be consumed exactly. Never panics and
/// allocates only `count` lengths and the bytes present in `data`.
pub fn decode_byte_strings(data: &[u8], count: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let mut pos = 0;
    let codec = read_u8(data, &mut pos, "a byte-string codec id")?;
    if codec != BYTES_LENGTHS {
        return Err(StorageError::corrupt(
            0,
            format!("expected byte-string codec id {BYTES_LENGTHS:#04x}, found {codec:#04x}"),
        ));
    }
    let len_pos = pos;
    let lengths_len = get_varint(data, &mut pos)?;
    let available = data.len().saturating_sub(pos);
    let lengths_end = match usize::try_from(lengths_len) {
        Ok(l) if l <= available => pos + l,
        _ => {
            return Err(StorageError::corrupt(
                len_pos,
                format!(
                    "expected a length section of at most {available} bytes, found {lengths_len}"
                ),
            ))
        }
    };
    let mut lengths: Vec<u64> = Vec::new();
    decode_ints(&data[..lengths_end], pos, count, &mut lengths, |x| x)?;

    let bytes = &data[lengths_end..];
    let mut ends = Vec::with_capacity(count);
    let mut end = 0u64;
    for (i, &len) in lengths.iter().enumerate() {
        end = end.saturating_add(len);
        if end > bytes.len() as u64 || end > u64::from(u32::MAX) {
            return Err(StorageError::corrupt(
                lengths_end,
                format!(
                    "expected string {i} to end within the {} bytes of string data, found end {end}",
                    bytes.len()
                ),
            ));
        }
        ends.push(end as u32);
    }
    if end != bytes.len() as u64 {
        return Err(StorageError::corrupt(
            lengths_end + end as usize,
            format!(
                "expected the end of the string data, found {} trailing bytes",
                bytes.len() as u64 - end
            ),
        ));
    }
    Ok((bytes.to_vec(), ends))
}
