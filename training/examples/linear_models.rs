//! Writes the two linear test models the plugin tests check exact pixel values with
//! ([`training::onnx::linear_test_models`]: `container = 0.75·cover + 0.25·secret`,
//! `revealed = 1 − container`), as `hide.onnx` and `reveal.onnx`:
//!
//! ```text
//! cargo run --release -p training --example linear_models -- --out plugins/tests/models
//! ```

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

/// Write the linear test models (hide.onnx, reveal.onnx).
#[derive(Parser, Debug)]
struct Args {
    /// Folder to write the models into (created if needed).
    #[arg(long, short, value_name = "DIR", default_value = "plugins/tests/models")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let written = training::onnx::write_linear_test_models(&args.out)?;
    println!("{}\n{}", written.hide.display(), written.reveal.display());
    Ok(())
}
