//! Shared helpers for the integration tests. They need what `scripts/setup.sh` installs
//! (onnxruntime in .ort/, the default data in data/) and the models in models/.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn data_image(name: &str) -> PathBuf {
    let p = root().join("data/images").join(name);
    assert!(p.is_file(), "{} is missing: run scripts/setup.sh first", p.display());
    p
}

pub fn model(name: &str) -> PathBuf {
    let p = root().join("models").join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// Runs the `stego` binary with `args` (and extra environment), returning its output.
pub fn stego(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stego"));
    c.args(args).current_dir(root());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run stego")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed run: exit code 1, one error line containing every `needle`, no panic.
pub fn assert_fails_with(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit code 1, got {:?}; stderr: {err}", o.status.code());
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("stego: error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks {n:?}: {}", lines[0]);
    }
}

pub fn assert_absent(p: &Path) {
    assert!(!p.exists(), "{} was left behind", p.display());
    if let Some(dir) = p.parent() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.ends_with(".tmp"), "temporary file {n} left behind");
        }
    }
}
