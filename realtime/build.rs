//! Compiles the official `gtfs-realtime.proto` (proto/, from google/transit) into Rust
//! types with prost; protox parses it, so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/gtfs-realtime.proto");
    let descriptors = protox::compile(["gtfs-realtime.proto"], ["proto"])?;
    prost_build::Config::new()
        // `?format=json` serves the same feed as readable JSON.
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .compile_fds(descriptors)?;
    Ok(())
}
