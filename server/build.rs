//! Compiles the protos in `proto/` with protox (a pure-Rust protobuf
//! compiler: no system `protoc`) and generates the tonic services.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tally/v1/ingest.proto",
        "proto/tally/v1/query.proto",
        "proto/tally/v1/admin.proto",
        "proto/tally/v1/metrics.proto",
        "proto/tally/v1/usage.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    // The descriptor set, for gRPC server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("tally_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
