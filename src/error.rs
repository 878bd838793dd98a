//! The library's error type. Every message names the bad value, and its fields carry the data
//! (paths, causes) so that each front end can add its own advice: the library's messages name
//! no command-line option, property or install script.

use std::path::PathBuf;

/// Errors of the `stego` library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The onnxruntime shared library could not be found or loaded.
    #[error("cannot load the onnxruntime library{}: {reason}; it needs onnxruntime 1.31 (libonnxruntime.so), which ORT_DYLIB_PATH can name", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    RuntimeLibrary { path: Option<PathBuf>, reason: String },

    /// onnxruntime was already loaded from another file in this process.
    #[error("onnxruntime is already loaded from {loaded} in this process; it cannot also be loaded from {requested}: use one library per process")]
    RuntimeAlreadyLoaded { loaded: PathBuf, requested: PathBuf },

    /// A model file does not exist.
    #[error("model file {0} does not exist")]
    ModelMissing(PathBuf),

    /// The model file of a variant and role is in none of the folders searched
    /// (see [`crate::runtime::resolve_model`]).
    #[error("model file {file} (the {variant} variant's {role} model) does not exist in {}", searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    ModelNotFound { variant: crate::contract::Variant, role: crate::contract::Role, file: &'static str, searched: Vec<PathBuf> },

    /// A model file could not be read or parsed by onnxruntime.
    #[error("cannot load model {path}: {reason}; the file is unreadable or not a valid ONNX model")]
    ModelLoad { path: PathBuf, reason: String },

    /// A model does not follow the stego contract (names, shapes, types, metadata).
    #[error("model {path} is not a stego {role} model: {reason}")]
    ModelContract { path: PathBuf, role: crate::contract::Role, reason: String },

    /// The requested execution provider cannot be used: onnxruntime's `reason` and what it
    /// points to (`cause`).
    #[error("execution provider {provider} is not usable: {reason}; {cause}; or use execution provider cpu (or auto to fall back to the CPU)")]
    ExecutionProvider { provider: String, reason: String, cause: crate::runtime::CudaCause },

    /// An option value is not valid.
    #[error("invalid {what} {value:?}: {expected}")]
    InvalidValue { what: &'static str, value: String, expected: String },

    /// A frame's buffer does not match its declared size, format and stride.
    #[error("frame {width}x{height} {format} with stride {stride} needs {needed} bytes but the buffer has {actual}: pass a buffer that matches its layout")]
    FrameBuffer { width: usize, height: usize, format: crate::frame::PixelFormat, stride: usize, needed: usize, actual: usize },

    /// A frame's size is not usable.
    #[error("frame size {width}x{height} is not usable: {reason}")]
    FrameSize { width: usize, height: usize, reason: String },

    /// Image file problems.
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    /// onnxruntime failed while running a model.
    #[error("onnxruntime failed running the {role} model: {reason}")]
    Inference { role: crate::contract::Role, reason: String },

    /// An I/O error on a named file (the message includes the system's, once).
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    /// A recording through a real encoder (feature `codec`) failed.
    #[error("recording a {width}x{height} image with {codec} failed: {reason}")]
    Codec { codec: String, width: u32, height: u32, reason: String },

    /// Memory for a frame, tensor or image could not be allocated.
    #[error("cannot allocate {bytes} bytes for {what}: not enough memory; use smaller frames or free memory")]
    OutOfMemory { what: String, bytes: usize },
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
