//! Replays the committed fuzz seed corpus of tally-storage's targets
//! (`fuzz/corpus/<target>/`) through the same bodies the fuzz targets run
//! (`tally_storage::fuzzing`), so every `cargo test` checks that no seed
//! panics or breaks a decoder promise, and that no corpus directory has gone
//! missing or empty (which would let this test pass on nothing).
//!
//! The seeds are valid encodings from the real encoders plus truncated and
//! bit-flipped variants. `TALLY_REGEN_CORPUS=1 cargo test -p tally-storage
//! --test fuzz_corpus` rewrites them (deterministically) before replaying.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tally_storage::chunk::{write_chunk, ChunkColumn, ChunkWriteOptions, ColumnSource};
use tally_storage::codec::{
    compress, encode_byte_strings, encode_f64s, encode_i64s, encode_u64s, Compression,
};
use tally_storage::fuzzing::{
    self, codec_decompress_input, codec_ints_input, seed_variants, INTS_BYTES, INTS_F64, INTS_I64,
    INTS_U64,
};
use tally_storage::io::StdFs;
use tally_storage::manifest::{ChunkEntry, Manifest, ProducerEntry, RememberedBatch};
use tally_storage::wal::{encode_frame, SegmentHeader};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs `body` over every file of the target's corpus directory, after
/// regenerating the corpus once if `TALLY_REGEN_CORPUS=1`.
fn replay(target: &str, body: fn(&[u8])) {
    static REGENERATED: OnceLock<()> = OnceLock::new();
    REGENERATED.get_or_init(|| {
        if std::env::var("TALLY_REGEN_CORPUS").as_deref() == Ok("1") {
            regenerate();
        }
    });
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} unreadable: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} holds no seed",
        dir.display()
    );
    for file in &files {
        let data = fs::read(file).expect("read seed");
        let run = std::panic::catch_unwind(|| body(&data));
        assert!(
            run.is_ok(),
            "target {target} panicked on {}",
            file.display()
        );
    }
}

#[test]
fn wal_frame_corpus_never_panics() {
    replay("wal_frame", fuzzing::wal_frame);
}

#[test]
fn codec_ints_corpus_never_panics() {
    replay("codec_ints", fuzzing::codec_ints);
}

#[test]
fn codec_decompress_corpus_never_panics() {
    replay("codec_decompress", fuzzing::codec_decompress);
}

#[test]
fn chunk_file_corpus_never_panics() {
    replay("chunk_file", fuzzing::chunk_file);
}

#[test]
fn manifest_corpus_never_panics() {
    replay("manifest", fuzzing::manifest);
}

// ------------------------------------------------------------ generation

/// Rewrites the corpus directory of every storage target.
fn regenerate() {
    write_target("wal_frame", wal_frame_seeds());
    write_target("codec_ints", codec_ints_seeds());
    write_target("codec_decompress", codec_decompress_seeds());
    write_target("chunk_file", chunk_file_seeds());
    let dir = corpus_root().join("chunk_file");
    for (name, bytes) in chunk_file_regressions() {
        fs::write(dir.join(name), bytes).expect("write seed");
    }
    write_target("manifest", manifest_seeds());
}

/// Replaces the files of `fuzz/corpus/<target>/` with the variants of each
/// valid seed.
fn write_target(target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = corpus_root().join(target);
    fs::create_dir_all(&dir).expect("create corpus directory");
    for entry in fs::read_dir(&dir).expect("list corpus directory") {
        let path = entry.expect("directory entry").path();
        if path.is_file() {
            fs::remove_file(&path).expect("remove old seed");
        }
    }
    for (name, valid) in seeds {
        for (file, bytes) in seed_variants(name, &valid) {
            fs::write(dir.join(file), bytes).expect("write seed");
        }
    }
}

fn wal_frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frames = |payloads: &[&[u8]]| {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(p, &mut out);
        }
        out
    };
    let mut segment = SegmentHeader { id: 7 }.encode().to_vec();
    segment.extend(frames(&[b"first record", b"", &[0xAB; 40]]));
    vec![
        ("segment_three_records", segment),
        (
            "segment_header_only",
            SegmentHeader { id: 1 }.encode().to_vec(),
        ),
        ("frame_one", frames(&[b"hello wal"])),
        ("frame_empty_payload", frames(&[b""])),
    ]
}

fn codec_ints_seeds() -> Vec<(&'static str, Vec<u8>)> {
    fn ints(decoder: u8, count: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut enc = Vec::new();
        encode(&mut enc);
        codec_ints_input(decoder, count as u16, &enc)
    }
    let constant = vec![42u64; 10];
    // 150 small values and a few outliers: bit-packing with exceptions.
    let packed: Vec<u64> = (0..150u64)
        .map(|i| if i % 50 == 7 { 1 << 40 } else { i * 7 % 97 })
        .collect();
    let ramp: Vec<u64> = (0..130u64).map(|i| 1_700_000_000 + i * 1000).collect();
    let signed: Vec<i64> = (0..70i64).map(|i| (i - 35) * 3).collect();
    let decimals: Vec<f64> = (0..80).map(|i| f64::from(i) * 0.125 + 12.345).collect();
    let mut specials = decimals.clone();
    specials.extend([f64::NAN, -0.0, f64::INFINITY]);
    let raw: Vec<f64> = (0..5u64)
        .map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let strings: Vec<&[u8]> = vec![b"GET", b"", b"/v1/users/:id", b"curl/8.5.0", b"US"];
    vec![
        (
            "u64_constant",
            ints(INTS_U64, constant.len(), |o| {
                encode_u64s(&constant, o);
            }),
        ),
        (
            "u64_bitpacked_exceptions",
            ints(INTS_U64, packed.len(), |o| {
                encode_u64s(&packed, o);
            }),
        ),
        (
            "u64_delta",
            ints(INTS_U64, ramp.len(), |o| {
                encode_u64s(&ramp, o);
            }),
        ),
        (
            "i64_signed",
            ints(INTS_I64, signed.len(), |o| {
                encode_i64s(&signed, o);
            }),
        ),
        (
            "f64_decimal_exceptions",
            ints(INTS_F64, specials.len(), |o| encode_f64s(&specials, o)),
        ),
        (
            "f64_raw",
            ints(INTS_F64, raw.len(), |o| encode_f64s(&raw, o)),
        ),
        (
            "bytes_strings",
            ints(INTS_BYTES, strings.len(), |o| {
                encode_byte_strings(strings.iter().copied(), o)
            }),
        ),
    ]
}

fn codec_decompress_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let text = b"GET /v1/users/:id 200 GET /v1/users/:id 404 POST /v1/orders 201 "
        .repeat(4)
        .to_vec();
    let mut ints = Vec::new();
    encode_u64s(&(0..300u64).map(|i| i * i).collect::<Vec<_>>(), &mut ints);
    let packed = |kind: Compression, raw: &[u8]| {
        let mut out = Vec::new();
        compress(kind, raw, &mut out).expect("compress");
        codec_decompress_input(kind, raw.len(), &out)
    };
    vec![
        ("lz4_text", packed(Compression::Lz4, &text)),
        ("lz4_ints", packed(Compression::Lz4, &ints)),
        ("zstd_text", packed(Compression::Zstd, &text)),
        ("zstd_empty", packed(Compression::Zstd, b"")),
        ("none_text", packed(Compression::None, &text[..40])),
    ]
}

/// A small chunk of `rows` rows over three keys: a time column, a status
/// column with a bitmap index, a latency column, a dictionary-encoded
/// endpoint column with bitmaps and a request id column (plain once it has
/// more than 64 distinct values).
fn chunk_bytes(rows: usize, opts: ChunkWriteOptions) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seed.tch");
    let strings = |f: &dyn Fn(usize) -> String| {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for i in 0..rows {
            bytes.extend_from_slice(f(i).as_bytes());
            ends.push(bytes.len() as u32);
        }
        (bytes, ends)
    };
    let keys = strings(&|i| format!("key_{:03}", i * 3 / rows.max(1)));
    let ts: Vec<i64> = (0..rows as i64)
        .map(|i| {
            // Rising within each key, jumping back at each new key.
            let key = i * 3 / rows.max(1) as i64;
            1_764_000_000_000_000 + i * 1_000_003 - key * 40_000_000
        })
        .collect();
    let status: Vec<u64> = (0..rows as u64)
        .map(|i| [200, 200, 201, 404, 500][i as usize % 5])
        .collect();
    let latency: Vec<f64> = (0..rows).map(|i| (i % 17) as f64 * 1.25 + 3.5).collect();
    let endpoint = strings(&|i| ["/v1/users", "/v1/orders", "/health"][i % 3].to_string());
    let request = strings(&|i| format!("req_{:016x}", i * 7919));
    let columns = [
        ChunkColumn {
            name: "ts",
            source: ColumnSource::I64(&ts),
            bitmap_index: false,
            time_column: true,
        },
        ChunkColumn {
            name: "status_code",
            source: ColumnSource::U64(&status),
            bitmap_index: true,
            time_column: false,
        },
        ChunkColumn {
            name: "latency_ms",
            source: ColumnSource::F64(&latency),
            bitmap_index: false,
            time_column: false,
        },
        ChunkColumn {
            name: "endpoint",
            source: ColumnSource::Bytes {
                bytes: &endpoint.0,
                ends: &endpoint.1,
            },
            bitmap_index: true,
            time_column: false,
        },
        ChunkColumn {
            name: "request_id",
            source: ColumnSource::Bytes {
                bytes: &request.0,
                ends: &request.1,
            },
            bitmap_index: false,
            time_column: false,
        },
    ];
    write_chunk(
        &StdFs,
        &path,
        "api_key",
        ColumnSource::Bytes {
            bytes: &keys.0,
            ends: &keys.1,
        },
        &columns,
        &opts,
    )
    .expect("write chunk");
    fs::read(&path).expect("read chunk")
}

fn chunk_file_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let opts = |compression, block_rows| ChunkWriteOptions {
        compression,
        block_rows,
    };
    vec![
        ("lz4_100rows", chunk_bytes(100, opts(Compression::Lz4, 32))),
        (
            "zstd_100rows",
            chunk_bytes(100, opts(Compression::Zstd, 64)),
        ),
        (
            "none_40rows",
            chunk_bytes(40, opts(Compression::None, 8192)),
        ),
        ("one_row", chunk_bytes(1, opts(Compression::Lz4, 8192))),
        ("empty", chunk_bytes(0, opts(Compression::Lz4, 8192))),
    ]
}

/// Hand-built chunk files (valid checksums) that once panicked the reader
/// or made it allocate gigabytes.
fn chunk_file_regressions() -> Vec<(&'static str, Vec<u8>)> {
    let rows = u64::from(u32::MAX) - 1;
    let block_rows = 1 << 20;
    let blocks = |n: u64| vec![(16, 16); n as usize];
    vec![
        // Footer block lengths summing past u64::MAX (overflow at open).
        (
            "regress_block_lengths_overflow",
            crafted_chunk(2, 1, 1, 2, &[(16, u64::MAX), (16, 5)]),
        ),
        // 2^32 - 2 rows in blocks of 2^20: the last block's end overflowed u32.
        (
            "regress_last_block_end_overflow",
            crafted_chunk(rows, 1, block_rows, 4096, &blocks(4096)),
        ),
        // A footer claiming 2^32 - 2 block entries, none present (the entry
        // vector was allocated for all of them: 128 GiB).
        (
            "regress_block_count_allocation",
            crafted_chunk(rows, 1, 1, rows, &[]),
        ),
        // 2^28 keys claimed, one stored (3 GiB allocated before the check).
        (
            "regress_key_count_allocation",
            crafted_chunk(1 << 28, 1 << 28, block_rows, 256, &blocks(256)),
        ),
    ]
}

/// A chunk whose footer claims `rows` rows and `keys` keys, with a key
/// directory of one key owning all rows, and one U64 column whose footer
/// claims `block_count` blocks and lists `blocks` (offset, length), which
/// need not exist.
fn crafted_chunk(
    rows: u64,
    keys: u64,
    block_rows: u64,
    block_count: u64,
    blocks: &[(u64, u64)],
) -> Vec<u8> {
    use tally_storage::codec::put_varint;
    fn block(raw: &[u8], out: &mut Vec<u8>) -> (u64, u64) {
        let at = out.len();
        let mut header = vec![0xB1, 0, 0, 0];
        header.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        header.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header), raw);
        out.extend_from_slice(&header);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(raw);
        (at as u64, (out.len() - at) as u64)
    }
    let mut file = b"TALLYCHK".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    let mut key_bytes = Vec::new();
    encode_byte_strings([b"a".as_slice()].into_iter(), &mut key_bytes);
    let mut directory = Vec::new();
    put_varint(&mut directory, key_bytes.len() as u64);
    directory.extend_from_slice(&key_bytes);
    encode_u64s(&[rows], &mut directory);
    let (dir_at, dir_len) = block(&directory, &mut file);
    let mut footer = Vec::new();
    for v in [rows, block_rows, 0, 0, 1] {
        put_varint(&mut footer, v);
    }
    footer.push(b'k');
    for v in [keys, dir_at, dir_len, 1, 1] {
        put_varint(&mut footer, v);
    }
    footer.extend_from_slice(&[b'c', 2, 0, 0, 0]);
    put_varint(&mut footer, block_count);
    for &(at, len) in blocks {
        for v in [at, len, 0, 0] {
            put_varint(&mut footer, v);
        }
    }
    let (footer_at, footer_len) = block(&footer, &mut file);
    let mut trailer = footer_at.to_le_bytes().to_vec();
    trailer.extend_from_slice(&(footer_len as u32).to_le_bytes());
    let crc = crc32c::crc32c(&trailer);
    trailer.extend_from_slice(&crc.to_le_bytes());
    trailer.extend_from_slice(b"TALLYEND");
    file.extend_from_slice(&trailer);
    file
}

fn manifest_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let full = Manifest {
        generation: 7,
        next_chunk_id: 12,
        next_seq: 1_000_000,
        wal_replay_from: 3,
        key_shards: 4,
        chunks: (0..3)
            .map(|i| ChunkEntry {
                id: 9 + i,
                day: 20_417 + i as i32,
                shard: i as u32,
                rows: 5000 * (i + 1),
                min_ts: 1_764_000_000_000_000,
                max_ts: 1_764_086_000_000_000,
                file_bytes: 77_777,
                level: (i % 2) as u8,
                table: (i % 4) as u8,
            })
            .collect(),
        producers: vec![
            ProducerEntry {
                id: "gw-1".into(),
                highest: 9,
                recent: vec![
                    RememberedBatch {
                        producer_seq: 8,
                        first_seq: 998_000,
                        accepted: 1000,
                    },
                    RememberedBatch {
                        producer_seq: 9,
                        first_seq: 999_000,
                        accepted: 1000,
                    },
                ],
            },
            ProducerEntry {
                id: "ingest-é".into(),
                highest: 1,
                recent: Vec::new(),
            },
        ],
    };
    let chunks_only = Manifest {
        producers: Vec::new(),
        ..full.clone()
    };
    vec![
        ("full", full.encode()),
        ("chunks_only", chunks_only.encode()),
        ("empty", Manifest::default().encode()),
    ]
}

#[test]
fn valid_seeds_from_the_encoders_decode() {
    use tally_storage::chunk::ChunkReader;
    for (name, bytes) in chunk_file_seeds() {
        let reader = ChunkReader::from_bytes(Path::new(name), bytes).expect(name);
        for (col, meta) in reader.columns().iter().enumerate() {
            for block in 0..meta.blocks.len() {
                reader.decode_block(col, block).expect(name);
            }
        }
    }
    for (name, bytes) in manifest_seeds() {
        Manifest::decode(&bytes, Path::new(name)).expect(name);
    }
}
