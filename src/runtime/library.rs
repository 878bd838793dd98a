//! Loading the onnxruntime shared library: one library and one environment per process.

use super::{RuntimeOptions, find_library};
use crate::error::{Error, Result};
use ort::environment::Environment;
use std::path::PathBuf;
use std::sync::Mutex;

static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// The process's onnxruntime environment, loading the library on first use.
pub fn environment(options: &RuntimeOptions) -> Result<Environment> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((loaded, env)) = guard.as_ref() {
        if let Some(requested) = &options.library
            && std::fs::canonicalize(requested).ok() != std::fs::canonicalize(loaded).ok()
        {
            return Err(Error::RuntimeAlreadyLoaded { loaded: loaded.clone(), requested: requested.clone() });
        }
        return Ok(env.clone());
    }
    let path = find_library(options.library.as_deref())?;
    let builder = ort::init_from(&path).map_err(|e| Error::RuntimeLibrary { path: Some(path.clone()), reason: e.to_string() })?;
    let env = builder
        .with_name("stego")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::RuntimeLibrary { path: Some(path.clone()), reason: e.to_string() })?;
    *guard = Some((path, env.clone()));
    Ok(env)
}

/// The path of the loaded onnxruntime library, if loaded.
pub fn loaded_library() -> Option<PathBuf> {
    RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(p, _)| p.clone())
}
