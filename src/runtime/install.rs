//! Where the models and the onnxruntime library are looked for (see the search order in the
//! [module docs](super)). Nothing here depends on where the library was built.

use crate::contract::{Role, Variant};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Environment variable naming the folder of the models; when set, no other folder is searched.
pub const MODEL_DIR_ENV: &str = "STEGO_MODEL_DIR";

/// Environment variable naming the installed layout (a folder holding `models/` and `.ort/`),
/// searched before the folders above the executable and the shared object.
pub const HOME_ENV: &str = "STEGO_HOME";

/// Environment variable naming the onnxruntime library to load.
pub const LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// The system's model folders, searched after the installed layout.
pub const SYSTEM_MODEL_DIRS: [&str; 2] = ["/usr/local/share/stego/models", "/usr/share/stego/models"];

/// The system's library folders, searched for onnxruntime after the installed layout.
const SYSTEM_LIBRARY_DIRS: [&str; 4] = ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];

const LIB_NAMES: &[&str] = &["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.31.1"];

/// The file of the shared object (or executable) this code is linked into, as the dynamic
/// loader knows it: the GStreamer plugin's `.so` when the elements run.
fn linked_object() -> Option<PathBuf> {
    let mut info = libc::Dl_info { dli_fname: std::ptr::null(), dli_fbase: std::ptr::null_mut(), dli_sname: std::ptr::null(), dli_saddr: std::ptr::null_mut() };
    let addr = linked_object as *const libc::c_void;
    // SAFETY: `addr` is the address of a function of this object and `info` is a valid,
    // writable `Dl_info`; dladdr only writes into it.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr succeeded, so `dli_fname` points at a NUL-terminated path owned by the
    // loader for the lifetime of the object.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    // The main program may be named as it was invoked (a bare name): only absolute paths say
    // where a file is; the executable itself is covered by `current_exe`.
    path.is_absolute().then(|| std::fs::canonicalize(path).ok()).flatten()
}

/// The candidate folders of the installed layout, in search order: `STEGO_HOME`, the folders
/// above the running executable, the folders above the shared object this code is linked
/// into. Duplicates are dropped.
pub fn install_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        roots.push(PathBuf::from(home));
    }
    for file in [std::env::current_exe().ok(), linked_object()].into_iter().flatten() {
        for dir in file.ancestors().skip(1) {
            if !roots.iter().any(|r| r == dir) {
                roots.push(dir.to_path_buf());
            }
        }
    }
    roots
}

/// The folders searched for a model when no folder is given: `STEGO_MODEL_DIR` alone when
/// set, else `models/` of each installed-layout root, then the system's.
pub fn model_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs: Vec<PathBuf> = install_roots().into_iter().map(|r| r.join("models")).collect();
    dirs.extend(SYSTEM_MODEL_DIRS.iter().map(PathBuf::from));
    dirs
}

/// The model file of `role` and `variant` (e.g. `hide-fast.onnx`): in `dir` when given, else
/// the first of [`model_dirs`] that has it. The error says which folders were searched.
pub fn resolve_model(dir: Option<&Path>, variant: Variant, role: Role) -> Result<PathBuf> {
    let file = variant.file_name(role);
    let dirs = match dir {
        Some(d) => vec![d.to_path_buf()],
        None => model_dirs(),
    };
    match dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()) {
        Some(path) => Ok(path),
        None => Err(Error::ModelNotFound { variant, role, file, searched: dirs }),
    }
}

/// The first root's `.ort/gpu/libonnxruntime.so` or `.ort/cpu/libonnxruntime.so`. The GPU
/// build comes first whatever the provider: the first model loaded fixes the library for the
/// process, and a CPU element that starts before a CUDA one must not lock CUDA out.
fn installed_library(roots: &[PathBuf]) -> Option<PathBuf> {
    roots.iter().flat_map(|root| ["gpu", "cpu"].map(|sub| root.join(".ort").join(sub).join("libonnxruntime.so"))).find(|p| p.is_file())
}

/// Finds `libonnxruntime.so` (see the [module docs](super) for the order).
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::RuntimeLibrary { path: Some(p.to_path_buf()), reason: "no such file".into() })
        };
    }
    if let Some(p) = std::env::var_os(LIBRARY_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::RuntimeLibrary { path: Some(p), reason: format!("{LIBRARY_ENV} names a file that does not exist") })
        };
    }
    if let Some(p) = installed_library(&install_roots()) {
        return Ok(p);
    }
    let system = SYSTEM_LIBRARY_DIRS.iter().flat_map(|dir| LIB_NAMES.iter().map(move |name| Path::new(dir).join(name)));
    system.into_iter().find(|p| p.is_file()).ok_or_else(|| Error::RuntimeLibrary {
        path: None,
        reason: "libonnxruntime.so was found neither in .ort/ of the installed layout nor in the system library folders".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_library_prefers_the_nearest_root_and_its_gpu_build() {
        let d = tempfile::tempdir().unwrap();
        let (near, far) = (d.path().join("near"), d.path().join("far"));
        let lib = |root: &Path, sub: &str| {
            let dir = root.join(".ort").join(sub);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("libonnxruntime.so"), b"").unwrap();
            dir.join("libonnxruntime.so")
        };
        let roots = [near.clone(), far.clone()];
        assert_eq!(installed_library(&roots), None);
        let far_gpu = lib(&far, "gpu");
        assert_eq!(installed_library(&roots), Some(far_gpu));
        let near_cpu = lib(&near, "cpu");
        assert_eq!(installed_library(&roots), Some(near_cpu));
        let near_gpu = lib(&near, "gpu");
        assert_eq!(installed_library(&roots), Some(near_gpu));
    }

    #[test]
    fn explicit_missing_library_is_an_error_that_names_it() {
        let e = find_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/libonnxruntime.so") && e.contains("no such file"), "{e}");
    }

    #[test]
    fn the_roots_are_the_folders_above_the_test_binary() {
        // Test binaries live in target/<profile>/deps/: the checkout is among the roots.
        let exe = std::env::current_exe().unwrap();
        let roots = install_roots();
        for dir in exe.ancestors().skip(1) {
            assert!(roots.iter().any(|r| r == dir), "{} is not searched: {roots:?}", dir.display());
        }
        if let Some(object) = linked_object() {
            assert!(object.is_absolute() && object.is_file(), "{}", object.display());
        }
    }

    #[test]
    fn a_model_is_taken_from_the_given_folder_only() {
        let d = tempfile::tempdir().unwrap();
        let e = resolve_model(Some(d.path()), Variant::Fast, Role::Hide).unwrap_err();
        assert!(matches!(&e, Error::ModelNotFound { file: "hide-fast.onnx", searched, .. } if searched == &[d.path().to_path_buf()]), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("hide-fast.onnx") && msg.contains(&d.path().display().to_string()), "{msg}");
        // The paper file does not stand in for the fast one.
        std::fs::write(d.path().join("hide.onnx"), b"").unwrap();
        assert!(resolve_model(Some(d.path()), Variant::Fast, Role::Hide).is_err());
        std::fs::write(d.path().join("reveal-fast.onnx"), b"").unwrap();
        assert_eq!(resolve_model(Some(d.path()), Variant::Fast, Role::Reveal).unwrap(), d.path().join("reveal-fast.onnx"));
        assert_eq!(resolve_model(Some(d.path()), Variant::Paper, Role::Hide).unwrap(), d.path().join("hide.onnx"));
    }

    #[test]
    fn the_checkout_models_are_found_from_the_test_binary() {
        let found = resolve_model(None, Variant::Fast, Role::Hide).unwrap();
        match std::env::var_os(MODEL_DIR_ENV) {
            Some(dir) => assert_eq!(found, Path::new(&dir).join("hide-fast.onnx")),
            None => assert!(found.ends_with("models/hide-fast.onnx"), "{}", found.display()),
        }
    }
}
