//! What the CLI adds to the library's errors: the options and the install commands that fix
//! them. The library's messages say what is wrong; these say what to do about it here.

use stego::Error;
use stego::contract::Variant;
use stego::runtime::CudaCause;
use std::path::Path;

/// How to get the models of `variant` into `dir`: the files and the training command.
pub fn train_hint(variant: Variant, dir: &Path) -> String {
    format!("{}, or use --variant {}", variant.missing_hint(dir), variant.other())
}

/// The CLI's advice for a library error, if it has any.
pub fn for_error(err: &Error) -> Option<String> {
    Some(match err {
        Error::RuntimeLibrary { .. } => {
            "run scripts/setup.sh to install it into .ort/, or give --onnxruntime (or ORT_DYLIB_PATH) a libonnxruntime.so".into()
        }
        Error::ModelMissing(_) => "give the path of an existing .onnx model file, or train one with `cargo run -p training`".into(),
        Error::ModelNotFound { variant, searched, .. } => {
            let dir = searched.first().map_or(Path::new("models"), |d| d.as_path());
            format!("give --model-dir (or set {}), or {}", stego::runtime::MODEL_DIR_ENV, train_hint(*variant, dir))
        }
        Error::ModelLoad { .. } => "replace it with a file exported by `cargo run -p training -- export`".into(),
        Error::ModelContract { role, .. } => format!("use the {role} model exported by the training crate"),
        Error::ExecutionProvider { cause, .. } => return cuda(cause).map(str::to_string),
        Error::Codec { .. } => "scripts/setup.sh installs the encoders (gstreamer1.0-plugins-ugly, gstreamer1.0-libav); or use --codec none".into(),
        _ => return None,
    })
}

/// What to run for a CUDA failure whose fix is an install of this project.
fn cuda(cause: &CudaCause) -> Option<&'static str> {
    match cause {
        CudaCause::CpuOnlyBuild { .. } => Some(
            "on a machine with an NVIDIA GPU run `STEGO_GPU=1 scripts/setup.sh`, which installs onnxruntime-gpu into \
             .ort/gpu (loaded in preference to .ort/cpu unless ORT_DYLIB_PATH or --onnxruntime names another library)",
        ),
        CudaCause::GpuLibraryMissing => Some("run `STEGO_GPU=1 scripts/setup.sh` again (it checks .ort/gpu and reinstalls what is missing)"),
        _ => None,
    }
}

/// The CLI's advice for the library error in `err`'s chain, if any.
pub fn for_chain(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|e| e.downcast_ref::<Error>()).and_then(for_error)
}
