//! A model session: loading a model file, checking it against [`crate::contract`], and
//! running it on buffers that are allocated once per shape.

use super::cuda::{cuda_builder, cuda_error, explain_cuda_failure};
use super::{ExecutionProvider, RuntimeOptions, check_options, environment};
use crate::contract::{self, Role};
use crate::error::{Error, Result};
#[cfg(feature = "ndarray")]
use ndarray::{Array4, ArrayView4};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{Tensor, TensorElementType, ValueType};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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

pub(super) fn base_builder(env: &Environment, options: &RuntimeOptions) -> std::result::Result<SessionBuilder, String> {
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
                    let (reason, cause) = explain_cuda_failure(&reason);
                    let note = format!("CUDA is not usable ({reason}: {cause}); running on the CPU");
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
    /// new output array. Convenient for tests and tools; streams use [`Model::run_into`]
    /// (feature `ndarray`).
    #[cfg(feature = "ndarray")]
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

    #[cfg(feature = "ndarray")]
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
        }, |o| {
            out.copy_from_slice(o);
            Ok(())
        })
    }

    fn run_with_checked(&mut self, shape: [usize; 4], inputs: &[&[f32]], out_len: usize, fill: impl FnOnce(&mut [&mut [f32]]) -> Result<()>, read: impl FnOnce(&[f32]) -> Result<()>) -> Result<()> {
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
    /// zero-copy path the frame pipeline uses. An error from `fill` is returned without running;
    /// an error from `read` is returned as it is.
    pub fn run_with(&mut self, shape: [usize; 4], fill: impl FnOnce(&mut [&mut [f32]]) -> Result<()>, read: impl FnOnce(&[f32]) -> Result<()>) -> Result<()> {
        self.ensure_buffers(shape)?;
        let role = self.role;
        let err = |e: ort::Error| Error::Inference { role, reason: format!("cannot reach the tensor buffers: {e}") };
        {
            let bufs = self.buffers.as_mut().expect("buffers exist");
            let mut slices = bufs.inputs.iter_mut().map(|t| t.try_extract_tensor_mut::<f32>().map(|(_, d)| d)).collect::<std::result::Result<Vec<_>, _>>().map_err(err)?;
            fill(&mut slices)?;
        }
        self.run_bound()?;
        read(self.buffers.as_ref().expect("buffers exist").output.try_extract_tensor::<f32>().map_err(err)?.1)
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
