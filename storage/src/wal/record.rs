//! One WAL record frame.
//!
//! ```text
//! offset  size  field
//! 0       4     payload_len   u32 LE, at most MAX_RECORD_BYTES
//! 4       4     payload_crc   CRC32C of the payload
//! 8       4     header_crc    CRC32C of bytes 0..8 (so a torn or flipped
//!                             length is detected before it is trusted)
//! 12      n     payload
//! ```

/// Bytes before the payload.
pub const FRAME_HEADER_LEN: usize = 12;
/// Largest payload a frame may carry (64 MiB); a larger length is corrupt.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Appends one frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let hcrc = crc32c::crc32c(&header[0..8]);
    header[8..12].copy_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes remain than a header needs.
    ShortHeader {
        /// Bytes remaining.
        remaining: usize,
    },
    /// The header checksum does not match.
    BadHeaderChecksum,
    /// The header says more than MAX_RECORD_BYTES.
    TooLong {
        /// The length found.
        len: usize,
    },
    /// The payload runs past the end of the data.
    ShortPayload {
        /// Payload length from the header.
        len: usize,
        /// Bytes remaining after the header.
        remaining: usize,
    },
    /// The payload checksum does not match.
    BadPayloadChecksum {
        /// Payload length from the header.
        len: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::ShortHeader { remaining } => write!(
                f,
                "record header needs {FRAME_HEADER_LEN} bytes, only {remaining} remain"
            ),
            FrameError::BadHeaderChecksum => write!(f, "record header checksum mismatch"),
            FrameError::TooLong { len } => write!(
                f,
                "record length {len} exceeds the maximum of {MAX_RECORD_BYTES} bytes"
            ),
            FrameError::ShortPayload { len, remaining } => write!(
                f,
                "record payload of {len} bytes runs past the end of the segment ({remaining} bytes remain)"
            ),
            FrameError::BadPayloadChecksum { len } => {
                write!(f, "record payload checksum mismatch ({len}-byte payload)")
            }
        }
    }
}

fn le_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = data.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

/// Decodes the frame at the start of `data`: returns the payload and the
/// frame's total length.
pub fn decode_frame(data: &[u8]) -> Result<(&[u8], usize), FrameError> {
    if data.len() < FRAME_HEADER_LEN {
        return Err(FrameError::ShortHeader {
            remaining: data.len(),
        });
    }
    let len = le_u32(data, 0) as usize;
    let payload_crc = le_u32(data, 4);
    let header_crc = le_u32(data, 8);
    if crc32c::crc32c(data.get(0..8).unwrap_or_default()) != header_crc {
        return Err(FrameError::BadHeaderChecksum);
    }
    if len > MAX_RECORD_BYTES {
        return Err(FrameError::TooLong { len });
    }
    let rest = data.get(FRAME_HEADER_LEN..).unwrap_or_default();
    let Some(payload) = rest.get(..len) else {
        return Err(FrameError::ShortPayload {
            len,
            remaining: rest.len(),
        });
    };
    if crc32c::crc32c(payload) != payload_crc {
        return Err(FrameError::BadPayloadChecksum { len });
    }
    Ok((payload, FRAME_HEADER_LEN + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_every_flip_is_detected() {
        let mut buf = Vec::new();
        encode_frame(b"hello wal", &mut buf);
        let (p, n) = decode_frame(&buf).unwrap();
        assert_eq!(p, b"hello wal");
        assert_eq!(n, buf.len());
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(decode_frame(&bad).is_err(), "flip at {i} not detected");
        }
        for cut in 0..buf.len() {
            assert!(decode_frame(&buf[..cut]).is_err());
        }
    }
}
