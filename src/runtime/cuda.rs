//! The CUDA execution provider: making its session builder, and saying why it is not usable
//! as data ([`CudaCause`]) that front ends turn into their own advice.

use super::model::base_builder;
use super::{RuntimeOptions, loaded_library};
use crate::error::Error;
use ort::environment::Environment;
use ort::ep;
use ort::session::builder::SessionBuilder;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the CUDA provider could not be used, read from onnxruntime's message and the loaded
/// library. Its text says what the cause is and, where the fix is the machine's, what to do;
/// how to install another onnxruntime is left to the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CudaCause {
    /// No NVIDIA driver: `libcuda.so.1` cannot be opened.
    NoDriver,
    /// The loaded onnxruntime (its path, when loaded) is a CPU-only build.
    CpuOnlyBuild { library: Option<PathBuf> },
    /// A CUDA or cuDNN library of the GPU build of onnxruntime cannot be opened.
    GpuLibraryMissing,
    /// Something else: a bad device index, a driver too old.
    Other,
}

impl CudaCause {
    /// The cause of a CUDA provider failure, from onnxruntime's `reason` and the loaded
    /// onnxruntime `library`.
    pub fn diagnose(reason: &str, library: Option<&Path>) -> CudaCause {
        let gpu_build = library.and_then(gpu_build_dir).is_some();
        if reason.contains("libcuda.so") {
            CudaCause::NoDriver
        } else if !gpu_build || reason.contains("not enabled in this build") {
            CudaCause::CpuOnlyBuild { library: library.map(Path::to_path_buf) }
        } else if reason.contains("cannot open shared object file") {
            CudaCause::GpuLibraryMissing
        } else {
            CudaCause::Other
        }
    }
}

impl fmt::Display for CudaCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaCause::NoDriver => f.write_str(
                "no NVIDIA driver was found (libcuda.so.1 is missing): this machine has no NVIDIA GPU or its driver is not \
                 installed; install the NVIDIA driver for CUDA 13 (`nvidia-smi -L` lists the GPUs)",
            ),
            CudaCause::CpuOnlyBuild { library } => {
                let lib = library.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default();
                write!(f, "the loaded onnxruntime{lib} is a CPU-only build: CUDA needs onnxruntime-gpu 1.31 (libonnxruntime_providers_cuda.so beside libonnxruntime.so)")
            }
            CudaCause::GpuLibraryMissing => f.write_str("a CUDA or cuDNN library of the GPU build of onnxruntime is missing"),
            CudaCause::Other => f.write_str("check that the device index is one `nvidia-smi -L` lists and that the driver supports CUDA 13"),
        }
    }
}

/// With a GPU build of onnxruntime, CUDA and cuDNN may live beside the onnxruntime library:
/// load them (once per process, when CUDA is first asked for) so that the CUDA provider finds
/// them without LD_LIBRARY_PATH. CPU-only use of that library never loads them (~300 MB).
fn preload_cuda_libraries() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        if let Some(dir) = loaded_library().as_deref().and_then(gpu_build_dir) {
            // A library that fails to load here fails again, with its name, when the provider
            // loads; that error is the one reported.
            let _ = ep::cuda::preload_dylibs(Some(dir), Some(dir));
        }
    });
}

/// The folder of `library` when it is a GPU build (its CUDA provider beside it).
fn gpu_build_dir(library: &Path) -> Option<&Path> {
    library.parent().filter(|d| d.join("libonnxruntime_providers_cuda.so").is_file())
}

/// A session builder with the CUDA provider, which must load (no silent fallback).
pub(super) fn cuda_builder(env: &Environment, options: &RuntimeOptions) -> std::result::Result<SessionBuilder, String> {
    preload_cuda_libraries();
    let cuda = ep::CUDA::default()
        .with_device_id(options.device_id)
        .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Exhaustive)
        .build()
        .error_on_failure();
    base_builder(env, options)?.with_execution_providers([cuda]).map_err(|e| e.to_string())
}

/// The error for CUDA on `device_id` failing with onnxruntime's `reason`.
pub(super) fn cuda_error(device_id: i32, reason: &str) -> Error {
    let (reason, cause) = explain_cuda_failure(reason);
    Error::ExecutionProvider { provider: format!("cuda (device {device_id})"), reason, cause }
}

/// onnxruntime's message for a CUDA failure (see [`ort_message`]) and its cause, for the
/// error of `cuda` and the warning of `auto`.
pub(super) fn explain_cuda_failure(reason: &str) -> (String, CudaCause) {
    (ort_message(reason), CudaCause::diagnose(reason, loaded_library().as_deref()))
}

/// onnxruntime's message without its source location and status header
/// (`/onnxruntime_src/….cc:2043 … [ONNXRuntimeError] : 1 : FAIL : Failed to load …` becomes
/// `Failed to load …`), trimmed.
fn ort_message(reason: &str) -> String {
    const HEADER: &str = "[ONNXRuntimeError] : ";
    let msg = match reason.find(HEADER) {
        // After the header: "<code> : <STATUS> : <message>".
        Some(i) => reason[i + HEADER.len()..].splitn(3, " : ").nth(2).unwrap_or(reason),
        None => reason,
    };
    // Without a final full stop: the message goes on after it ("…; the loaded …").
    msg.trim().trim_end_matches('.').trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ort_message_drops_the_header() {
        let raw = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file: No such file or directory\n";
        assert_eq!(ort_message(raw), "Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file: No such file or directory");
        assert_eq!(ort_message("CUDA execution provider is not enabled in this build. "), "CUDA execution provider is not enabled in this build");
    }

    #[test]
    fn diagnose_names_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let gpu = dir.path().join("gpu");
        std::fs::create_dir(&gpu).unwrap();
        std::fs::write(gpu.join("libonnxruntime_providers_cuda.so"), b"").unwrap();
        let gpu_lib = gpu.join("libonnxruntime.so");
        let cpu_lib = dir.path().join("libonnxruntime.so");
        let open_failed = |lib: &str| format!("Failed to load library libonnxruntime_providers_cuda.so with error: {lib}: cannot open shared object file: No such file or directory");
        let c = CudaCause::diagnose(&open_failed("libcuda.so.1"), Some(&gpu_lib));
        assert_eq!(c, CudaCause::NoDriver);
        assert!(c.to_string().contains("no NVIDIA driver") && c.to_string().contains("libcuda.so.1"), "{c}");
        let c = CudaCause::diagnose(&open_failed("libcublasLt.so.13"), Some(&gpu_lib));
        assert_eq!(c, CudaCause::GpuLibraryMissing);
        assert!(c.to_string().contains("CUDA or cuDNN library"), "{c}");
        let c = CudaCause::diagnose("CUDA execution provider is not enabled in this build", Some(&cpu_lib));
        assert_eq!(c, CudaCause::CpuOnlyBuild { library: Some(cpu_lib.clone()) });
        assert!(c.to_string().contains("CPU-only build") && c.to_string().contains(&cpu_lib.display().to_string()), "{c}");
        let c = CudaCause::diagnose("CUDA failure 101: invalid device ordinal", Some(&gpu_lib));
        assert_eq!(c, CudaCause::Other);
        assert!(c.to_string().contains("nvidia-smi -L"), "{c}");
    }
}
