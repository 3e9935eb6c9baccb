//! Unsigned LEB128 varints: seven value bits per byte, least significant
//! group first, high bit set on every byte but the last. At most 10 bytes
//! encode a `u64`; the tenth may only hold the value's top bit.

use crate::{Result, StorageError};

/// Longest varint encoding of a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Appends `v` to `out` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint at `data[*pos..]` and advances `pos`
/// past it. Errors, leaving `pos` unchanged, if the data ends inside the
/// varint or if it is longer than 10 bytes or overflows a `u64`.
pub fn get_varint(data: &[u8], pos: &mut usize) -> Result<u64> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..MAX_VARINT_LEN {
        let at = start.saturating_add(i);
        let Some(&byte) = data.get(at) else {
            return Err(StorageError::corrupt(
                at,
                format!("expected byte {} of a varint, found end of data", i + 1),
            ));
        };
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(StorageError::corrupt(
                at,
                format!(
                    "expected the last byte of a 10-byte varint to be 0 or 1, found {byte:#04x}"
                ),
            ));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = at + 1;
            return Ok(value);
        }
    }
    // Unreachable: the tenth byte is at most 1, so it ends the varint.
    Err(StorageError::corrupt(
        start,
        "expected a varint of at most 10 bytes, found a longer one",
    ))
}

/// Number of bytes [`put_varint`] writes for `v`.
pub(crate) fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_put_varint() {
        for shift in 0..64 {
            for v in [
                1u64 << shift,
                (1u64 << shift) - 1,
                (1u64 << shift) + 1,
                0,
                u64::MAX,
            ] {
                let mut out = Vec::new();
                put_varint(&mut out, v);
                assert_eq!(out.len(), varint_len(v), "value {v}");
            }
        }
    }
}
