//! The onnxruntime layer: finding and loading the shared library, the one environment per
//! process, execution providers, and model sessions checked against [`crate::contract`].
//!
//! The library is looked up in this order (the first that exists wins):
//! 1. an explicit path ([`RuntimeOptions::library`]);
//! 2. `ORT_DYLIB_PATH`;
//! 3. the project-local install made by `scripts/setup.sh`, in the first of these folders that
//!    has one: `STEGO_HOME`, beside and above the running executable, above the current
//!    directory, the source tree this crate was built from; there `.ort/gpu/` (onnxruntime-gpu,
//!    which also runs the CPU provider, so one process can mix providers) before `.ort/cpu/`;
//! 4. the system: `libonnxruntime.so` in the usual library folders.
//!
//! Loading goes through `ort::init_from`, which reports a missing or broken library as an
//! error; `ort`'s own fallback (which panics) is never reached.

use crate::contract::{self, Role};
use crate::error::{Error, Result};
use ndarray::{Array4, ArrayView4};
use ort::ep;
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{Tensor, TensorElementType, ValueType};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

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

const LIB_NAMES: &[&str] = &["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.31.1"];

/// Candidate project roots for the `.ort/` install.
fn project_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(home) = std::env::var_os("STEGO_HOME") {
        roots.push(PathBuf::from(home));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    roots
}

/// The project root holding `models/` and `.ort/`: `STEGO_HOME`, or the first folder beside or
/// above the executable or the current folder that has a `models/` folder with `hide.onnx`,
/// or this crate's source tree.
pub fn project_root() -> PathBuf {
    project_roots()
        .into_iter()
        .find(|r| r.join("models").join(contract::HIDE_FILE).is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The first project root's `.ort/gpu/libonnxruntime.so` or `.ort/cpu/libonnxruntime.so`. The GPU
/// build comes first whatever the provider: the first model loaded fixes the library for the
/// process, and a CPU element that starts before a CUDA one must not lock CUDA out.
fn project_install(roots: &[PathBuf]) -> Option<PathBuf> {
    roots.iter().flat_map(|root| ["gpu", "cpu"].map(|sub| root.join(".ort").join(sub).join("libonnxruntime.so"))).find(|p| p.is_file())
}

/// Finds `libonnxruntime.so` (see the module docs for the order).
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::RuntimeLibrary { path: Some(p.to_path_buf()), reason: "no such file".into() })
        };
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::RuntimeLibrary { path: Some(p), reason: "ORT_DYLIB_PATH names a file that does not exist".into() })
        };
    }
    if let Some(p) = project_install(&project_roots()) {
        return Ok(p);
    }
    for dir in ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"] {
        for name in LIB_NAMES {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::RuntimeLibrary { path: None, reason: "libonnxruntime.so was found neither in .ort/ nor in the system library folders".into() })
}

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

/// Shape and type of one model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// `float32`, `uint8`, …
    pub element_type: String,
    /// Dimensions; −1 for dynamic ones.
    pub shape: Vec<i64>,
    /// Names of the dynamic dimensions (empty where fixed or unnamed).
    pub dim_names: Vec<String>,
}

/// What a model file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub producer: Option<String>,
    pub description: Option<String>,
    /// Custom metadata (`metadata_props`), sorted by key.
    pub metadata: BTreeMap<String, String>,
}

fn tensor_info(name: &str, vt: &ValueType) -> TensorInfo {
    match vt {
        ValueType::Tensor { ty, shape, dimension_symbols } => TensorInfo {
            name: name.to_string(),
            element_type: format!("{ty}"),
            shape: shape.to_vec(),
            dim_names: dimension_symbols.iter().map(|s| s.to_string()).collect(),
        },
        other => TensorInfo { name: name.to_string(), element_type: format!("{other}"), shape: vec![], dim_names: vec![] },
    }
}

/// One loaded model, checked against the contract for its [`Role`].
pub struct Model {
    session: Session,
    role: Role,
    path: PathBuf,
    provider: ExecutionProvider,
    note: Option<String>,
    size_multiple: usize,
    info: ModelInfo,
    device_id: i32,
    buffers: Option<IoBuffers>,
}

/// Input and output tensors owned by the model and reused while the shape stays the same.
struct IoBuffers {
    shape: [usize; 4],
    inputs: Vec<Tensor<f32>>,
    output: Tensor<f32>,
    binding: ort::session::IoBinding,
    /// The tensors are in page-locked host memory (CUDA) rather than ordinary memory.
    pinned: bool,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("role", &self.role).field("path", &self.path).field("provider", &self.provider).finish()
    }
}

fn base_builder(env: &Environment, options: &RuntimeOptions) -> std::result::Result<SessionBuilder, String> {
    let mut b = Session::builder(env)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| e.to_string())?
        // onnxruntime's default, kept explicit: its workers spin briefly between parallel ops.
        // Turning it off cost the fast nets ~1 ms per frame in a tight loop and made a live
        // 640x480 stegohide + FFV1 pipeline slower, not faster (15.2 s vs 13.4 s for 10 s of
        // input on 2 cores), so it stays on.
        .with_intra_op_spinning(true)
        .map_err(|e| e.to_string())?;
    if let Some(n) = options.threads.filter(|&n| n > 0) {
        b = b.with_intra_threads(n).map_err(|e| e.to_string())?;
    }
    Ok(b)
}

/// With the project's GPU install, CUDA and cuDNN live beside the onnxruntime library: load
/// them (once per process, when CUDA is first asked for) so that the CUDA provider finds them
/// without LD_LIBRARY_PATH. CPU-only use of that library never loads them (~300 MB).
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

fn cuda_builder(env: &Environment, options: &RuntimeOptions) -> std::result::Result<SessionBuilder, String> {
    preload_cuda_libraries();
    let cuda = ep::CUDA::default()
        .with_device_id(options.device_id)
        .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Exhaustive)
        .build()
        .error_on_failure();
    base_builder(env, options)?.with_execution_providers([cuda]).map_err(|e| e.to_string())
}

fn cuda_error(device_id: i32, reason: &str) -> Error {
    let (reason, advice) = explain_cuda_failure(reason);
    Error::ExecutionProvider { provider: format!("cuda (device {device_id})"), reason, advice }
}

/// onnxruntime's message for a CUDA failure (see [`ort_message`]) and what to do about it (see
/// [`cuda_advice`]), for the error of `cuda` and the warning of `auto`.
fn explain_cuda_failure(reason: &str) -> (String, String) {
    (ort_message(reason), cuda_advice(reason, loaded_library().as_deref()))
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

/// What a CUDA provider failure means and what to do, from onnxruntime's `reason` and the
/// loaded onnxruntime `library`.
pub fn cuda_advice(reason: &str, library: Option<&Path>) -> String {
    let gpu_build = library.and_then(gpu_build_dir).is_some();
    let lib = library.map(|p| format!(" {}", p.display())).unwrap_or_default();
    if reason.contains("libcuda.so") {
        "no NVIDIA driver was found (libcuda.so.1 is missing): this machine has no NVIDIA GPU or its driver is not \
         installed; install the NVIDIA driver for CUDA 13 (`nvidia-smi -L` lists the GPUs)"
            .into()
    } else if !gpu_build || reason.contains("not enabled in this build") {
        format!(
            "the loaded onnxruntime{lib} is a CPU-only build: on a machine with an NVIDIA GPU run `STEGO_GPU=1 \
             scripts/setup.sh`, which installs onnxruntime-gpu into .ort/gpu (loaded in preference to .ort/cpu \
             unless ORT_DYLIB_PATH or --onnxruntime names another library)"
        )
    } else if reason.contains("cannot open shared object file") {
        "a CUDA or cuDNN library of the GPU install is missing: run `STEGO_GPU=1 scripts/setup.sh` again (it checks \
         .ort/gpu and reinstalls what is missing)"
            .into()
    } else {
        "check that the device index is one `nvidia-smi -L` lists and that the driver supports CUDA 13".into()
    }
}

/// The most intra-op threads a model may be given ([`RuntimeOptions::threads`]): far more
/// than any machine's cores, far fewer than would take minutes to start.
pub const MAX_THREADS: usize = 256;

/// Refuses option values that cannot work: a negative device id, a thread count of 0 or above
/// [`MAX_THREADS`].
fn check_options(options: &RuntimeOptions) -> Result<()> {
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

/// A model path must name an existing regular file (following links); a folder, a FIFO or a
/// device gets its own message rather than "does not exist".
fn check_model_file(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::ModelMissing(path.to_path_buf())),
        Err(e) => return Err(Error::ModelLoad { path: path.into(), reason: format!("cannot read it ({e})") }),
    };
    if meta.is_file() {
        return Ok(());
    }
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(Error::ModelLoad { path: path.into(), reason: format!("it is {kind}, not a model file") })
}

impl Model {
    /// Loads `path` as a model of `role` and checks it against the contract.
    pub fn load(path: &Path, role: Role, options: &RuntimeOptions) -> Result<Model> {
        check_options(options)?;
        check_model_file(path)?;
        // Read once ourselves: unreadable files get an I/O error that names them.
        let bytes = std::fs::read(path).map_err(|e| Error::ModelLoad { path: path.into(), reason: e.to_string() })?;
        if bytes.is_empty() {
            return Err(Error::ModelLoad { path: path.into(), reason: "the file is empty".into() });
        }
        let env = environment(options)?;
        let load_err = |e: String| Error::ModelLoad { path: path.into(), reason: e };
        let (mut builder, provider, note) = match options.execution_provider {
            ExecutionProvider::Cpu => (base_builder(&env, options).map_err(load_err)?, ExecutionProvider::Cpu, None),
            ExecutionProvider::Cuda => {
                let b = cuda_builder(&env, options).map_err(|reason| cuda_error(options.device_id, &reason))?;
                (b, ExecutionProvider::Cuda, None)
            }
            ExecutionProvider::Auto => match cuda_builder(&env, options) {
                Ok(b) => (b, ExecutionProvider::Cuda, None),
                Err(reason) => {
                    let (reason, advice) = explain_cuda_failure(&reason);
                    let note = format!("CUDA is not usable ({reason}: {advice}); running on the CPU");
                    (base_builder(&env, options).map_err(load_err)?, ExecutionProvider::Cpu, Some(note))
                }
            },
        };
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            let reason = e.to_string();
            if provider == ExecutionProvider::Cuda && reason.to_ascii_lowercase().contains("cuda") {
                cuda_error(options.device_id, &reason)
            } else {
                Error::ModelLoad { path: path.into(), reason }
            }
        })?;
        let info = Self::describe(&session, path)?;
        let size_multiple = check_contract(&info, role)?;
        Ok(Model { session, role, path: path.into(), provider, note, size_multiple, info, device_id: options.device_id, buffers: None })
    }

    fn describe(session: &Session, path: &Path) -> Result<ModelInfo> {
        let meta = session.metadata().map_err(|e| Error::ModelLoad { path: path.into(), reason: e.to_string() })?;
        let mut metadata = BTreeMap::new();
        for key in meta.custom_keys().unwrap_or_default() {
            if let Some(v) = meta.custom(&key) {
                metadata.insert(key, v);
            }
        }
        Ok(ModelInfo {
            path: path.into(),
            inputs: session.inputs().iter().map(|o| tensor_info(o.name(), o.dtype())).collect(),
            outputs: session.outputs().iter().map(|o| tensor_info(o.name(), o.dtype())).collect(),
            producer: meta.producer().filter(|s| !s.is_empty()),
            description: meta.description().filter(|s| !s.is_empty()),
            metadata,
        })
    }

    /// Reads a model's names, shapes and metadata without checking its role.
    pub fn inspect(path: &Path, options: &RuntimeOptions) -> Result<ModelInfo> {
        check_options(options)?;
        check_model_file(path)?;
        let bytes = std::fs::read(path).map_err(|e| Error::ModelLoad { path: path.into(), reason: e.to_string() })?;
        let env = environment(options)?;
        let session = base_builder(&env, &RuntimeOptions { threads: Some(1), ..options.clone() })
            .and_then(|mut b| b.commit_from_memory(&bytes).map_err(|e| e.to_string()))
            .map_err(|reason| Error::ModelLoad { path: path.into(), reason })?;
        Self::describe(&session, path)
    }

    pub fn role(&self) -> Role {
        self.role
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The provider the session actually runs on.
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }
    /// Why `auto` fell back to the CPU, if it did.
    pub fn provider_note(&self) -> Option<&str> {
        self.note.as_deref()
    }
    /// Height and width of the tensors must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        self.size_multiple
    }
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
    /// Whether the input and output tensors live in page-locked (pinned) host memory, which
    /// the CUDA provider copies to and from the GPU without staging; `None` before the first run.
    pub fn pinned_buffers(&self) -> Option<bool> {
        self.buffers.as_ref().map(|b| b.pinned)
    }

    /// Runs the model on `[N, 3, H, W]` inputs given in the role's input order, returning a
    /// new output array. Convenient for tests and tools; streams use [`Model::run_into`].
    pub fn run(&mut self, inputs: &[ArrayView4<f32>]) -> Result<Array4<f32>> {
        let shape = self.check_inputs(inputs.iter().map(|a| a.shape()))?;
        let mut out = Array4::<f32>::zeros(shape);
        let contiguous: Vec<std::borrow::Cow<'_, [f32]>> = inputs
            .iter()
            .map(|a| match a.as_slice() {
                Some(s) => std::borrow::Cow::Borrowed(s),
                None => std::borrow::Cow::Owned(a.iter().copied().collect()),
            })
            .collect();
        let slices: Vec<&[f32]> = contiguous.iter().map(|c| c.as_ref()).collect();
        self.run_into(&slices, [shape.0, shape.1, shape.2, shape.3], out.as_slice_mut().expect("standard layout"))?;
        Ok(out)
    }

    fn check_inputs<'a>(&self, shapes: impl Iterator<Item = &'a [usize]>) -> Result<(usize, usize, usize, usize)> {
        let shapes: Vec<&[usize]> = shapes.collect();
        let n = self.role.inputs().len();
        if shapes.len() != n {
            return Err(Error::InvalidValue { what: "number of inputs", value: shapes.len().to_string(), expected: format!("{n} for the {} model", self.role) });
        }
        let s = shapes[0];
        if s.len() != 4 || s[1] != contract::CHANNELS || shapes.iter().any(|t| *t != s) {
            return Err(Error::InvalidValue { what: "input shape", value: format!("{shapes:?}"), expected: "[N, 3, H, W], the same for every input".into() });
        }
        Ok((s[0], s[1], s[2], s[3]))
    }

    /// Runs the model on contiguous NCHW inputs of `shape` (in the role's input order) and
    /// writes the output into `out`. Input and output tensors are allocated once per shape
    /// and reused.
    pub fn run_into(&mut self, inputs: &[&[f32]], shape: [usize; 4], out: &mut [f32]) -> Result<()> {
        self.run_with_checked(shape, inputs, out.len(), |slices| {
            for (dst, src) in slices.iter_mut().zip(inputs) {
                dst.copy_from_slice(src);
            }
            Ok(())
        }, |o| out.copy_from_slice(o))
    }

    fn run_with_checked(&mut self, shape: [usize; 4], inputs: &[&[f32]], out_len: usize, fill: impl FnOnce(&mut [&mut [f32]]) -> Result<()>, read: impl FnOnce(&[f32])) -> Result<()> {
        let n = self.role.inputs().len();
        let len: usize = shape.iter().product();
        if inputs.len() != n || inputs.iter().any(|i| i.len() != len) || out_len != len || shape[1] != contract::CHANNELS {
            return Err(Error::InvalidValue {
                what: "tensor buffers",
                value: format!("{} inputs of lengths {:?}, output {out_len}, shape {shape:?}", inputs.len(), inputs.iter().map(|i| i.len()).collect::<Vec<_>>()),
                expected: format!("{n} inputs and an output of N*3*H*W = {len} values"),
            });
        }
        self.run_with(shape, fill, read)
    }

    /// Gives mutable access to the model's own input tensors of `shape` (allocated on the first
    /// call for that shape), runs the model, and hands the output to `read`. This is the
    /// zero-copy path the frame pipeline uses. An error from `fill` is returned without running.
    pub fn run_with(&mut self, shape: [usize; 4], fill: impl FnOnce(&mut [&mut [f32]]) -> Result<()>, read: impl FnOnce(&[f32])) -> Result<()> {
        self.ensure_buffers(shape)?;
        let role = self.role;
        let err = |e: ort::Error| Error::Inference { role, reason: format!("cannot reach the tensor buffers: {e}") };
        {
            let bufs = self.buffers.as_mut().expect("buffers exist");
            let mut slices = bufs.inputs.iter_mut().map(|t| t.try_extract_tensor_mut::<f32>().map(|(_, d)| d)).collect::<std::result::Result<Vec<_>, _>>().map_err(err)?;
            fill(&mut slices)?;
        }
        self.run_bound()?;
        read(self.buffers.as_ref().expect("buffers exist").output.try_extract_tensor::<f32>().map_err(err)?.1);
        Ok(())
    }

    fn ensure_buffers(&mut self, shape: [usize; 4]) -> Result<()> {
        if shape[1] != contract::CHANNELS || shape.contains(&0) {
            return Err(Error::InvalidValue { what: "tensor shape", value: format!("{shape:?}"), expected: "[N ≥ 1, 3, H ≥ 1, W ≥ 1]".into() });
        }
        let m = self.size_multiple;
        if !shape[2].is_multiple_of(m) || !shape[3].is_multiple_of(m) {
            return Err(Error::FrameSize { width: shape[3], height: shape[2], reason: format!("this model needs multiples of {m}") });
        }
        if self.buffers.as_ref().is_some_and(|b| b.shape == shape) {
            return Ok(());
        }
        self.buffers = None;
        let role = self.role;
        let err = |e: ort::Error| Error::Inference { role, reason: e.to_string() };
        let dims = shape.map(|d| d as i64);
        let (inputs, mut output, pinned) = match self.pinned_tensors(dims) {
            Some((inputs, output)) => (inputs, output, true),
            None => {
                let alloc = self.session.allocator();
                let (inputs, output) = io_tensors(role, alloc, alloc, dims).map_err(err)?;
                (inputs, output, false)
            }
        };
        // The inputs are bound before each run (`run_bound`); the output once: onnxruntime
        // writes each run's result into it.
        let mut binding = self.session.create_binding().map_err(err)?;
        binding.bind_output(role.output(), &mut output).map_err(err)?;
        self.buffers = Some(IoBuffers { shape, inputs, output, binding, pinned });
        Ok(())
    }

    /// On CUDA: input and output tensors in page-locked host memory from the provider's pinned
    /// allocator, so the copies to and from the GPU need no staging through a driver buffer.
    /// `None` (ordinary memory serves) on other providers, or when the allocator or the
    /// tensors cannot be made or read from the CPU.
    fn pinned_tensors(&self, dims: [i64; 4]) -> Option<(Vec<Tensor<f32>>, Tensor<f32>)> {
        use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
        if self.provider != ExecutionProvider::Cuda {
            return None;
        }
        let allocator = |mem| MemoryInfo::new(AllocationDevice::CUDA_PINNED, self.device_id, AllocatorType::Device, mem).and_then(|info| Allocator::new(&self.session, info)).ok();
        let (in_alloc, out_alloc) = (allocator(MemoryType::CPUInput)?, allocator(MemoryType::CPUOutput)?);
        let (mut inputs, mut output) = io_tensors(self.role, &in_alloc, &out_alloc, dims).ok()?;
        let readable = inputs.iter_mut().chain(std::iter::once(&mut output)).all(|t| t.try_extract_tensor_mut::<f32>().is_ok());
        readable.then_some((inputs, output))
    }

    fn run_bound(&mut self) -> Result<()> {
        let role = self.role;
        let err = |e: ort::Error| Error::Inference { role, reason: e.to_string() };
        let bufs = self.buffers.as_mut().expect("buffers exist");
        // onnxruntime copies an input to the provider's device when it is bound (IOBinding::BindInput),
        // not when the session runs: the refilled inputs are bound again before every run, or a
        // CUDA session would see the first frame forever. On the CPU this only registers the
        // same buffers again.
        for (name, t) in role.inputs().iter().zip(&bufs.inputs) {
            bufs.binding.bind_input(*name, t).map_err(err)?;
        }
        self.session.run_binding(&bufs.binding).map_err(err)?;
        Ok(())
    }
}

/// One tensor of `dims` per input of `role` from `inputs`, and the output tensor from `output`.
fn io_tensors(role: Role, inputs: &ort::memory::Allocator, output: &ort::memory::Allocator, dims: [i64; 4]) -> ort::Result<(Vec<Tensor<f32>>, Tensor<f32>)> {
    let ins = role.inputs().iter().map(|_| Tensor::<f32>::new(inputs, dims)).collect::<ort::Result<Vec<_>>>()?;
    Ok((ins, Tensor::<f32>::new(output, dims)?))
}

/// Checks a model's inputs, outputs and metadata against the contract for `role`; returns the
/// size multiple.
fn check_contract(info: &ModelInfo, role: Role) -> Result<usize> {
    let bad = |reason: String| Error::ModelContract { path: info.path.clone(), role, reason };
    if let Some(r) = info.metadata.get(contract::meta::ROLE)
        && r != role.as_str()
    {
        return Err(bad(format!("its metadata says it is a {r} model")));
    }
    if let Some(v) = info.metadata.get(contract::meta::CONTRACT)
        && v != contract::CONTRACT_VERSION
    {
        return Err(bad(format!("it follows contract version {v}, this build reads version {}", contract::CONTRACT_VERSION)));
    }
    let names: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut want: Vec<&str> = role.inputs().to_vec();
    let mut have = names.clone();
    want.sort_unstable();
    have.sort_unstable();
    if want != have {
        return Err(bad(format!("its inputs are {names:?}, expected {:?}", role.inputs())));
    }
    let outs: Vec<&str> = info.outputs.iter().map(|o| o.name.as_str()).collect();
    if !outs.contains(&role.output()) {
        return Err(bad(format!("its outputs are {outs:?}, expected {:?}", role.output())));
    }
    let float = format!("{}", TensorElementType::Float32);
    for t in info.inputs.iter().chain(info.outputs.iter().filter(|o| o.name == role.output())) {
        if t.element_type != float {
            return Err(bad(format!("{} is {}, expected {float}", t.name, t.element_type)));
        }
        if t.shape.len() != 4 || (t.shape[1] != contract::CHANNELS as i64 && t.shape[1] != -1) {
            return Err(bad(format!("{} has shape {:?}, expected [N, 3, H, W]", t.name, t.shape)));
        }
    }
    match info.metadata.get(contract::meta::SIZE_MULTIPLE) {
        None => Ok(1),
        Some(v) => v.parse::<usize>().ok().filter(|&m| m >= 1).ok_or_else(|| bad(format!("{} = {v:?} is not a positive integer", contract::meta::SIZE_MULTIPLE))),
    }
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

    #[test]
    fn project_install_prefers_the_nearest_root_and_its_gpu_build() {
        let d = tempfile::tempdir().unwrap();
        let (near, far) = (d.path().join("near"), d.path().join("far"));
        let lib = |root: &Path, sub: &str| {
            let dir = root.join(".ort").join(sub);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("libonnxruntime.so"), b"").unwrap();
            dir.join("libonnxruntime.so")
        };
        let roots = [near.clone(), far.clone()];
        assert_eq!(project_install(&roots), None);
        let far_gpu = lib(&far, "gpu");
        assert_eq!(project_install(&roots), Some(far_gpu));
        let near_cpu = lib(&near, "cpu");
        assert_eq!(project_install(&roots), Some(near_cpu));
        let near_gpu = lib(&near, "gpu");
        assert_eq!(project_install(&roots), Some(near_gpu));
    }

    #[test]
    fn ort_message_drops_the_header() {
        let raw = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file: No such file or directory\n";
        assert_eq!(ort_message(raw), "Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file: No such file or directory");
        assert_eq!(ort_message("CUDA execution provider is not enabled in this build. "), "CUDA execution provider is not enabled in this build");
    }

    #[test]
    fn cuda_advice_names_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let gpu = dir.path().join("gpu");
        std::fs::create_dir(&gpu).unwrap();
        std::fs::write(gpu.join("libonnxruntime_providers_cuda.so"), b"").unwrap();
        let gpu_lib = gpu.join("libonnxruntime.so");
        let cpu_lib = dir.path().join("libonnxruntime.so");
        let open_failed = |lib: &str| format!("Failed to load library libonnxruntime_providers_cuda.so with error: {lib}: cannot open shared object file: No such file or directory");
        let a = cuda_advice(&open_failed("libcuda.so.1"), Some(&gpu_lib));
        assert!(a.contains("no NVIDIA driver") && a.contains("libcuda.so.1"), "{a}");
        let a = cuda_advice(&open_failed("libcublasLt.so.13"), Some(&gpu_lib));
        assert!(a.contains("CUDA or cuDNN library") && a.contains("STEGO_GPU=1 scripts/setup.sh"), "{a}");
        let a = cuda_advice("CUDA execution provider is not enabled in this build", Some(&cpu_lib));
        assert!(a.contains("CPU-only build") && a.contains(&cpu_lib.display().to_string()) && a.contains("STEGO_GPU=1"), "{a}");
        let a = cuda_advice("CUDA failure 101: invalid device ordinal", Some(&gpu_lib));
        assert!(a.contains("nvidia-smi -L"), "{a}");
    }

    #[test]
    fn explicit_missing_library_is_an_error() {
        let e = find_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/libonnxruntime.so") && e.contains("scripts/setup.sh"), "{e}");
    }
}
