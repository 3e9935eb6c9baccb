//! Bit-packing kernels: `n` values of `w` bits each stored as one
//! little-endian bit stream (value `i` occupies bits `i*w .. i*w + w`,
//! least significant bit first), `ceil(n*w / 8)` bytes with the unused
//! high bits of the last byte zero.
//!
//! The kernels work on blocks of [`BLOCK_LEN`] = 64 values, which occupy
//! exactly `w` little-endian `u64` words, so a block is packed into and
//! unpacked from whole words by loops specialised for each width (one
//! monomorphised function per width and direction, picked once per column
//! from a table). The last, partial
//! block is copied into a zeroed scratch block first. This layout is an
//! implementation detail: the bytes are the plain bit stream above.

/// Values per packing block.
pub(crate) const BLOCK_LEN: usize = 64;

/// Mask of the low `width` bits (`width` in 0..=64).
pub(crate) fn low_mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Bytes taken by `n` values packed at `width` bits, `None` on overflow.
pub(crate) fn packed_len(n: usize, width: u32) -> Option<usize> {
    Some(n.checked_mul(width as usize)?.div_ceil(8))
}

/// Appends the low `width` bits of `f(x) - base` (wrapping) for each `x`
/// of `xs` to `out` as a bit stream, and pushes `(index, high bits)` onto
/// `exceptions` for every value that does not fit in `width` bits.
pub(crate) fn pack(
    xs: &[u64],
    f: impl Fn(u64) -> u64,
    base: u64,
    width: u32,
    out: &mut Vec<u8>,
    exceptions: &mut Vec<(usize, u64)>,
) {
    let w = width.min(64) as usize;
    if w == 0 {
        for (i, &x) in xs.iter().enumerate() {
            let v = f(x).wrapping_sub(base);
            if v != 0 {
                exceptions.push((i, v));
            }
        }
        return;
    }
    let mask = low_mask(width);
    let Some(&pack_block) = PACKERS.get(w) else {
        return;
    };
    out.reserve(packed_len(xs.len(), width).unwrap_or(0));
    let mut values = [0u64; BLOCK_LEN];
    let mut words = [0u64; BLOCK_LEN];
    for (block, chunk) in xs.chunks(BLOCK_LEN).enumerate() {
        // The high bits of the block's values, ORed: zero unless some value
        // is an exception, so the common case takes no branch per value.
        let mut high = 0u64;
        for (v, &x) in values.iter_mut().zip(chunk) {
            *v = f(x).wrapping_sub(base);
            high |= *v & !mask;
        }
        if chunk.len() < BLOCK_LEN {
            values[chunk.len()..].fill(0);
        }
        if high != 0 {
            for (j, v) in values.iter_mut().enumerate() {
                if *v & !mask != 0 {
                    // Only reachable with w < 64, where the shift is in range.
                    exceptions.push((block * BLOCK_LEN + j, *v >> w));
                    *v &= mask;
                }
            }
        }
        pack_block(&values, &mut words);
        let nbytes = (chunk.len() * w).div_ceil(8);
        let full = nbytes / 8;
        for word in &words[..full] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        let rest = nbytes % 8;
        if rest > 0 {
            out.extend_from_slice(&words[full].to_le_bytes()[..rest]);
        }
    }
}

/// Packs one block of 64 values of one width (each below `2^width`) into
/// the first `width` words of the second argument.
type PackFn = fn(&[u64; BLOCK_LEN], &mut [u64; BLOCK_LEN]);

/// Packs 64 values of `W` bits (already masked) into `dst[..W]`.
fn pack_block<const W: usize>(src: &[u64; BLOCK_LEN], dst: &mut [u64; BLOCK_LEN]) {
    if W == 0 {
        return;
    }
    if W == 64 {
        dst.copy_from_slice(src);
        return;
    }
    let mut words = [0u64; W];
    // Unrolled by hand (the compiler leaves a 64-step loop rolled): with
    // `W` and `i` constant, every word index and shift is resolved, so a
    // value costs a shift and an or (two when it straddles two words).
    macro_rules! put {
        ($($i:literal)*) => {$({
            let bit = $i * W;
            let (wi, sh) = (bit / 64, bit % 64);
            let v = src[$i];
            words[wi] |= v << sh;
            if sh + W > 64 {
                words[wi + 1] |= v >> (64 - sh);
            }
        })*};
    }
    put!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61
        62 63
    );
    dst[..W].copy_from_slice(&words);
}

/// Unpacks one block of 64 values of one width from `8 * width` bytes.
pub(crate) type UnpackFn = fn(&[u8], &mut [u64; BLOCK_LEN]);

/// The unpacking kernel for `width` (0..=64), `None` for wider.
pub(crate) fn unpacker(width: u32) -> Option<UnpackFn> {
    UNPACKERS.get(width as usize).copied()
}

/// Unpacks 64 values of `W` bits from the `8 * W` bytes of `src` (missing
/// bytes read as zero; the caller passes exactly `8 * W`).
fn unpack<const W: usize>(src: &[u8], dst: &mut [u64; BLOCK_LEN]) {
    if W == 0 {
        *dst = [0; BLOCK_LEN];
        return;
    }
    let mut words = [0u64; W];
    for (word, bytes) in words.iter_mut().zip(src.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_le_bytes(b);
    }
    if W == 64 {
        dst.copy_from_slice(&words[..BLOCK_LEN]);
        return;
    }
    let mask = low_mask(W as u32);
    // Unrolled by hand, as in `pack_block`: every word index and shift
    // is a constant.
    macro_rules! get {
        ($($i:literal)*) => {$({
            let bit = $i * W;
            let (wi, sh) = (bit / 64, bit % 64);
            let mut v = words[wi] >> sh;
            if sh + W > 64 {
                v |= words[wi + 1] << (64 - sh);
            }
            dst[$i] = v & mask;
        })*};
    }
    get!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61
        62 63
    );
}

macro_rules! unpackers {
    ($($w:literal)*) => { [$(unpack::<$w> as UnpackFn),*] };
}

macro_rules! packers {
    ($($w:literal)*) => { [$(pack_block::<$w> as PackFn),*] };
}

static PACKERS: [PackFn; 65] = packers!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
    33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    64
);

static UNPACKERS: [UnpackFn; 65] = unpackers!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
    33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    64
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: bit `k` of the stream is bit `k % 8` of byte `k / 8`.
    fn reference_bit(bytes: &[u8], k: usize) -> u64 {
        u64::from((bytes[k / 8] >> (k % 8)) & 1)
    }

    #[test]
    fn pack_writes_the_plain_lsb_first_bit_stream_for_every_width() {
        for width in 0..=64u32 {
            for n in [0usize, 1, 7, 63, 64, 65, 130] {
                let xs: Vec<u64> = (0..n as u64)
                    .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & low_mask(width))
                    .collect();
                let mut out = Vec::new();
                let mut exc = Vec::new();
                pack(&xs, |x| x, 0, width, &mut out, &mut exc);
                assert!(exc.is_empty());
                assert_eq!(out.len(), packed_len(n, width).unwrap());
                for (i, &x) in xs.iter().enumerate() {
                    let mut v = 0u64;
                    for b in 0..width as usize {
                        v |= reference_bit(&out, i * width as usize + b) << b;
                    }
                    assert_eq!(v, x, "width {width} index {i}");
                }
                // Unpack block by block, as the decoder does.
                let unpack = unpacker(width).unwrap();
                let bw = 8 * width as usize;
                for (block, chunk) in xs.chunks(BLOCK_LEN).enumerate() {
                    let start = block * bw;
                    let mut src = vec![0u8; bw];
                    let avail = out.len().saturating_sub(start).min(bw);
                    src[..avail].copy_from_slice(&out[start..start + avail]);
                    let mut dst = [0u64; BLOCK_LEN];
                    unpack(&src, &mut dst);
                    assert_eq!(&dst[..chunk.len()], chunk, "width {width} block {block}");
                }
            }
        }
    }

    #[test]
    fn pack_sets_aside_values_wider_than_the_width() {
        let xs = [5u64, 100, 6, 1 << 40];
        let mut out = Vec::new();
        let mut exc = Vec::new();
        pack(&xs, |x| x, 5, 3, &mut out, &mut exc);
        assert_eq!(exc, vec![(1, 95 >> 3), (3, ((1u64 << 40) - 5) >> 3)]);
        assert!(unpacker(65).is_none());
    }
}
