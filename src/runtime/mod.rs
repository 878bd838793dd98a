//! The onnxruntime layer: finding the installed files, loading the shared library (one
//! environment per process), diagnosing CUDA, and model sessions checked against
//! [`crate::contract`].
//!
//! - [`install`]: where the models and onnxruntime are looked for ([`resolve_model`], [`find_library`]);
//! - [`library`]: loading onnxruntime once per process ([`environment`], [`loaded_library`]);
//! - [`cuda`]: why the CUDA provider is not usable ([`CudaCause`]);
//! - [`model`]: a [`Model`] session, its buffers and its contract check.
//!
//! # Search order
//!
//! Nothing is looked for in the tree the library was built from: only what the running
//! process says about itself. The *installed layout* is a folder holding `models/` and
//! `.ort/`; the library looks for it in `STEGO_HOME`, then in every folder above the running
//! executable, then in every folder above the shared object this code is linked into (the
//! GStreamer plugin; for the CLI the executable again). A checkout therefore finds its own
//! `models/` and `.ort/` from `target/release/stego`, from test binaries in
//! `target/release/deps/` and from `target/release/libgststego.so`.
//!
//! A model file (`role`'s file of `variant`, e.g. `hide-fast.onnx`, see
//! [`crate::Variant::file_name`]), by [`resolve_model`]; the first that exists wins:
//! 1. an explicit folder (the caller's option, e.g. the CLI's model folder), and then no other;
//! 2. `STEGO_MODEL_DIR`, and then no other;
//! 3. `models/` of the installed layout (in the order above);
//! 4. the system: `/usr/local/share/stego/models`, `/usr/share/stego/models`.
//!
//! The onnxruntime library (`libonnxruntime.so`, version 1.31), by [`find_library`]:
//! 1. an explicit path ([`RuntimeOptions::library`]);
//! 2. `ORT_DYLIB_PATH`;
//! 3. `.ort/gpu/` then `.ort/cpu/` of the installed layout (in the order above; the GPU build,
//!    which also runs the CPU provider, comes first so that one process can mix providers);
//! 4. the system: `libonnxruntime.so` in the usual library folders.
//!
//! Loading goes through `ort::init_from`, which reports a missing or broken library as an
//! error; `ort`'s own fallback (which panics) is never reached.

pub mod cuda;
pub mod install;
pub mod library;
pub mod model;

pub use cuda::CudaCause;
pub use install::{MODEL_DIR_ENV, find_library, install_roots, resolve_model};
pub use library::{environment, loaded_library};
pub use model::{Model, ModelInfo, TensorInfo};

use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ExecutionProvider {
    /// onnxruntime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA; an error if it cannot be used.
    Cuda,
    /// CUDA when it can be used, else the CPU (saying why in [`Model::provider_note`]).
    Auto,
}

impl ExecutionProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::Auto => "auto",
        }
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionProvider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "auto" => Ok(Self::Auto),
            _ => Err(Error::InvalidValue { what: "execution provider", value: s.into(), expected: "one of cpu, cuda, auto".into() }),
        }
    }
}

/// How to load onnxruntime and run models.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Path of `libonnxruntime.so`; `None` searches (see the module docs).
    pub library: Option<PathBuf>,
    /// Execution provider.
    pub execution_provider: ExecutionProvider,
    /// CUDA device id.
    pub device_id: i32,
    /// Intra-op threads; `None` (or `Some(0)`) lets onnxruntime choose (one per physical core).
    pub threads: Option<usize>,
}

/// The most intra-op threads a model may be given ([`RuntimeOptions::threads`]): far more
/// than any machine's cores, far fewer than would take minutes to start.
pub const MAX_THREADS: usize = 256;

/// Refuses option values that cannot work: a negative device id, a thread count of 0 or above
/// [`MAX_THREADS`].
pub(crate) fn check_options(options: &RuntimeOptions) -> Result<()> {
    if options.device_id < 0 {
        return Err(Error::InvalidValue { what: "device id", value: options.device_id.to_string(), expected: "a GPU index ≥ 0".into() });
    }
    if let Some(t) = options.threads {
        check_threads(t)?;
    }
    Ok(())
}

/// Refuses a thread count of 0 or above [`MAX_THREADS`], naming the value and the range.
pub fn check_threads(threads: usize) -> Result<()> {
    if !(1..=MAX_THREADS).contains(&threads) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Err(Error::InvalidValue {
            what: "thread count",
            value: threads.to_string(),
            expected: format!("from 1 to {MAX_THREADS} (this machine has {cores} cores; leave it unset for one thread per physical core)"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_parses_and_names_bad_values() {
        assert_eq!("CUDA".parse::<ExecutionProvider>().unwrap(), ExecutionProvider::Cuda);
        let e = "tpu".parse::<ExecutionProvider>().unwrap_err().to_string();
        assert!(e.contains("\"tpu\"") && e.contains("cpu, cuda, auto"), "{e}");
    }
}
