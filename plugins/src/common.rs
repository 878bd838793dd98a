// SPDX-License-Identifier: MIT OR Apache-2.0

//! What both elements share: the model properties, the supported caps and the mapping of
//! GStreamer video frames onto the `stego` library's frames. No model code lives here.

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`; a mutex poisoned by a panicking thread still gives its data (no second panic
/// in a streaming thread).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which onnxruntime execution provider runs the model (property `execution-provider`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStegoExecutionProvider")]
#[non_exhaustive]
pub enum ExecutionProvider {
    #[enum_value(name = "CPU: onnxruntime's CPU provider", nick = "cpu")]
    Cpu = 0,
    #[enum_value(
        name = "CUDA: an NVIDIA GPU through onnxruntime-gpu; an error if it cannot be used",
        nick = "cuda"
    )]
    Cuda = 1,
    #[enum_value(name = "Auto: CUDA when it can be used, else the CPU", nick = "auto")]
    Auto = 2,
}

impl From<ExecutionProvider> for stego::runtime::ExecutionProvider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Cpu => stego::runtime::ExecutionProvider::Cpu,
            ExecutionProvider::Cuda => stego::runtime::ExecutionProvider::Cuda,
            ExecutionProvider::Auto => stego::runtime::ExecutionProvider::Auto,
        }
    }
}

/// Which model pair the elements load when `model-file` is not set (property `variant`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStegoVariant")]
#[non_exhaustive]
pub enum Variant {
    #[enum_value(
        name = "Paper: Baluja's nets (hide.onnx, reveal.onnx), ~50x slower",
        nick = "paper"
    )]
    Paper = 0,
    #[enum_value(
        name = "Fast: the real-time nets (hide-fast.onnx, reveal-fast.onnx), the better shipped pair",
        nick = "fast"
    )]
    Fast = 1,
    #[enum_value(
        name = "Robust: real-time nets trained through x264/JPEG recordings in I420, after which a rough likeness of the secret remains (hide-robust.onnx, reveal-robust.onnx)",
        nick = "robust"
    )]
    Robust = 2,
}

impl From<Variant> for stego::Variant {
    fn from(v: Variant) -> Self {
        match v {
            Variant::Paper => stego::Variant::Paper,
            Variant::Fast => stego::Variant::Fast,
            Variant::Robust => stego::Variant::Robust,
        }
    }
}

impl From<stego::Variant> for Variant {
    fn from(v: stego::Variant) -> Self {
        match v {
            stego::Variant::Paper => Variant::Paper,
            stego::Variant::Fast => Variant::Fast,
            stego::Variant::Robust => Variant::Robust,
        }
    }
}

/// The library's default variant: the CLI and the elements default to the same pair.
impl Default for Variant {
    fn default() -> Self {
        stego::Variant::default().into()
    }
}

/// What `stegohide` outputs once the secret stream has ended but the cover goes on
/// (property `secret-eos`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStegoSecretEos")]
#[non_exhaustive]
pub enum SecretEos {
    #[enum_value(name = "Passthrough: output the cover unchanged", nick = "passthrough")]
    Passthrough = 0,
    #[enum_value(name = "Repeat: keep hiding the last secret frame", nick = "repeat")]
    Repeat = 1,
    #[enum_value(name = "EOS: end the output stream", nick = "eos")]
    Eos = 2,
}

/// How `stegohide` brings a secret of another size or aspect to the cover's size (property
/// `secret-fit`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStegoSecretFit")]
#[non_exhaustive]
pub enum SecretFit {
    #[enum_value(name = "Stretch: scaled to the cover's size, aspect not kept", nick = "stretch")]
    Stretch = 0,
    #[enum_value(
        name = "Fit: scaled to fit inside the cover, aspect kept, centred with black bars",
        nick = "fit"
    )]
    Fit = 1,
    #[enum_value(
        name = "Crop: scaled to fill the cover, aspect kept, centre crop",
        nick = "crop"
    )]
    Crop = 2,
}

impl From<SecretFit> for stego::frame::SecretFit {
    fn from(f: SecretFit) -> Self {
        match f {
            SecretFit::Stretch => stego::frame::SecretFit::Stretch,
            SecretFit::Fit => stego::frame::SecretFit::Fit,
            SecretFit::Crop => stego::frame::SecretFit::Crop,
        }
    }
}

/// The library's default fit.
impl Default for SecretFit {
    fn default() -> Self {
        match stego::frame::SecretFit::default() {
            stego::frame::SecretFit::Stretch => SecretFit::Stretch,
            stego::frame::SecretFit::Fit => SecretFit::Fit,
            stego::frame::SecretFit::Crop => SecretFit::Crop,
        }
    }
}

/// What the model property blurbs add: they cannot change while the element runs.
const NOT_WHILE_RUNNING: &str =
    "; set it in the NULL or READY state: refused (with a warning) while PAUSED or PLAYING";

pub const DEFAULT_EXECUTION_PROVIDER: ExecutionProvider = ExecutionProvider::Cpu;
pub const DEFAULT_DEVICE: i32 = 0;
pub const DEFAULT_THREADS: u32 = 0;

/// The model properties both elements have, as a plain value copied out under a short lock.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Whose model: the hiding or the reveal model.
    pub role: stego::contract::Role,
    /// `model-file` as set explicitly; `None`: the variant's file, found by
    /// [`stego::resolve_model`] when the element starts.
    pub explicit_model_file: Option<PathBuf>,
    pub variant: Variant,
    pub execution_provider: ExecutionProvider,
    pub device: i32,
    pub threads: u32,
}

impl ModelSettings {
    pub fn new(role: stego::contract::Role) -> Self {
        ModelSettings {
            role,
            explicit_model_file: None,
            variant: Variant::default(),
            execution_provider: DEFAULT_EXECUTION_PROVIDER,
            device: DEFAULT_DEVICE,
            threads: DEFAULT_THREADS,
        }
    }

    /// The model file to load: the one set explicitly, else the variant's file as
    /// [`stego::resolve_model`] finds it (an error that lists the folders searched).
    pub fn model_file(&self) -> stego::Result<PathBuf> {
        match &self.explicit_model_file {
            Some(f) => Ok(f.clone()),
            None => stego::resolve_model(None, self.variant.into(), self.role),
        }
    }

    /// The library's runtime options for these settings.
    pub fn runtime_options(&self) -> stego::runtime::RuntimeOptions {
        stego::runtime::RuntimeOptions {
            execution_provider: self.execution_provider.into(),
            device_id: self.device,
            threads: (self.threads > 0).then_some(self.threads as usize),
            ..Default::default()
        }
    }

    /// Loads the model in an element's `start()` with `load` (`Hider::new` or
    /// `Revealer::new`): logs what is loaded and where it runs, turns a failure into the
    /// element's start error, and posts `auto`'s fallback to the CPU as a warning.
    pub fn load<T>(
        &self,
        element: &gst::Element,
        cat: gst::DebugCategory,
        load: impl FnOnce(&std::path::Path, &stego::runtime::RuntimeOptions) -> stego::Result<T>,
        model: impl FnOnce(&T) -> &stego::Model,
    ) -> Result<T, gst::ErrorMessage> {
        let options = self.runtime_options();
        let name = element_name(element);
        let file = self.model_file().map_err(|e| start_error(&name, &e))?;
        gst::debug!(
            cat,
            obj = element,
            "Loading {} (variant {:?}, {options:?})",
            file.display(),
            self.variant
        );
        let loaded = load(&file, &options).map_err(|e| start_error(&name, &e))?;
        let m = model(&loaded);
        gst::info!(
            cat,
            obj = element,
            "Loaded {} on {}",
            file.display(),
            m.provider()
        );
        if let Some(note) = m.provider_note() {
            gst::element_warning!(element, gst::LibraryError::Init, ("{note}"));
        }
        Ok(loaded)
    }

    /// The property specs of `model-file`, `variant`, `execution-provider`, `device` and
    /// `threads`.
    pub fn properties(role: stego::contract::Role) -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecString::builder("model-file")
                .nick("Model file")
                .blurb(&format!(
                    "ONNX {role} model (the stego contract); when not set (or set to NULL), the \
                     variant's model, looked for when the element starts in STEGO_MODEL_DIR, else in \
                     models/ of the installed layout (STEGO_HOME, or a folder above the plugin), else \
                     in /usr/local/share/stego/models and /usr/share/stego/models (reading gives the \
                     file that will be loaded){NOT_WHILE_RUNNING}"
                ))
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("variant", Variant::default())
                .nick("Variant")
                .blurb(&format!(
                    "Which {role} model of the models folder to load when model-file is not set: paper ({}), \
                     fast ({}) or robust ({}, a rough likeness of the secret survives x264/JPEG recordings in I420){NOT_WHILE_RUNNING}",
                    stego::Variant::Paper.file_name(role),
                    stego::Variant::Fast.file_name(role),
                    stego::Variant::Robust.file_name(role)
                ))
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default(
                "execution-provider",
                DEFAULT_EXECUTION_PROVIDER,
            )
            .nick("Execution provider")
            .blurb(&format!(
                "onnxruntime execution provider that runs the model{NOT_WHILE_RUNNING}"
            ))
            .mutable_ready()
            .build(),
            glib::ParamSpecInt::builder("device")
                .nick("Device")
                .blurb(&format!(
                    "GPU device id for the cuda execution provider{NOT_WHILE_RUNNING}"
                ))
                .minimum(0)
                .maximum(i32::MAX)
                .default_value(DEFAULT_DEVICE)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb(&format!(
                    "onnxruntime intra-op threads (0 = onnxruntime's default, one per physical core){NOT_WHILE_RUNNING}"
                ))
                .maximum(stego::runtime::MAX_THREADS as u32)
                .default_value(DEFAULT_THREADS)
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets one of the model properties on `element`'s settings; returns false when `pspec` is
    /// not one of them. While `element` is PAUSED or PLAYING the value is refused: the loaded
    /// model would keep running, so a warning on the bus says so and the old value stays.
    pub fn set_on(
        settings: &Mutex<Self>,
        element: &gst::Element,
        cat: gst::DebugCategory,
        value: &glib::Value,
        pspec: &glib::ParamSpec,
    ) -> bool {
        if !MODEL_PROPERTIES.contains(&pspec.name()) {
            return false;
        }
        let state = element.current_state();
        if state > gst::State::Ready {
            gst::warning!(
                cat,
                obj = element,
                "{} cannot change while {state:?}: ignored",
                pspec.name()
            );
            gst::element_warning!(
                element,
                gst::LibraryError::Settings,
                (
                    "{}: {} cannot change while the element is {state:?}: the new value {:?} is \
                     ignored and the loaded model keeps running; set it in the NULL or READY state",
                    element_name(element),
                    pspec.name(),
                    value
                )
            );
            return true;
        }
        lock(settings).set_property(value, pspec);
        gst::info!(cat, obj = element, "{} set to {:?}", pspec.name(), value);
        notify_model_file(element, pspec);
        true
    }

    /// Sets one of the model properties; returns false when `pspec` is not one of them.
    /// Setting `variant` changes the value of `model-file` unless that was set explicitly:
    /// call [`notify_model_file`] after releasing the settings lock.
    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        match pspec.name() {
            "model-file" => {
                let file: Option<String> = value.get().expect("type checked upstream");
                self.explicit_model_file = file.filter(|f| !f.is_empty()).map(PathBuf::from);
            }
            "variant" => self.variant = value.get().expect("type checked upstream"),
            "execution-provider" => {
                self.execution_provider = value.get().expect("type checked upstream");
            }
            "device" => self.device = value.get().expect("type checked upstream"),
            "threads" => self.threads = value.get().expect("type checked upstream"),
            _ => return false,
        }
        true
    }

    /// Reads one of the model properties; `None` when `pspec` is not one of them.
    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "model-file" => self
                .model_file()
                .ok()
                .map(|f| f.to_string_lossy().into_owned())
                .to_value(),
            "variant" => self.variant.to_value(),
            "execution-provider" => self.execution_provider.to_value(),
            "device" => self.device.to_value(),
            "threads" => self.threads.to_value(),
            _ => return None,
        })
    }
}

/// The properties of [`ModelSettings`]: fixed while the element runs.
const MODEL_PROPERTIES: [&str; 5] = ["model-file", "variant", "execution-provider", "device", "threads"];

/// Warms the model up at the negotiated `size` (once per size; `warmed` remembers it) with
/// `warm_up`, after checking the size against the library's pixel limit. A failure (a size
/// above the limit, no memory, a model that cannot run at this size) is posted as an element
/// error with its cause, so that the pipeline stops instead of hanging or reporting a bare
/// not-negotiated.
pub fn warm_up(
    element: &gst::Element,
    cat: gst::DebugCategory,
    warmed: &mut Option<(u32, u32)>,
    size: (u32, u32),
    warm_up: impl FnOnce(usize, usize) -> stego::Result<()>,
) -> Result<(), gst::LoggableError> {
    if *warmed == Some(size) {
        return Ok(());
    }
    let (w, h) = (size.0 as usize, size.1 as usize);
    let t = std::time::Instant::now();
    let name = element_name(element);
    if let Err(e) = stego::frame::check_size(w, h) {
        gst::element_error!(
            element,
            gst::StreamError::Format,
            ("{name}: {e}"),
            ["scale the video down (videoscale) before the element"]
        );
        return Err(gst::loggable_error!(cat, "{e}"));
    }
    if let Err(e) = warm_up(w, h) {
        gst::element_error!(
            element,
            gst::LibraryError::Failed,
            ("{name}: cannot run the model at {w}x{h}: {e}")
        );
        return Err(gst::loggable_error!(cat, "Warm-up at {w}x{h} failed: {e}"));
    }
    *warmed = Some(size);
    gst::info!(cat, obj = element, "Warmed up at {w}x{h} in {:?}", t.elapsed());
    Ok(())
}

/// Posts `what: err` as a stream error of `element` (the pipeline stops with it) and returns
/// the flow error to hand upstream.
pub fn flow_error(element: &gst::Element, what: &str, err: impl std::fmt::Display) -> gst::FlowError {
    gst::element_error!(element, gst::StreamError::Failed, ("{what}: {err}"));
    gst::FlowError::Error
}

/// Why a buffer could not be mapped as a frame of its caps, without dumping the buffer.
pub fn unmappable(what: &str, buffer: &gst::BufferRef, info: Option<&gst_video::VideoInfo>) -> String {
    match info {
        Some(i) => format!(
            "the {what} buffer holds {} bytes, but a {}x{} {} frame of its caps needs {}: the element \
             upstream sent a buffer that does not match its caps",
            buffer.size(),
            i.width(),
            i.height(),
            i.format(),
            i.size()
        ),
        None => format!("the {what} buffer of {} bytes came without caps", buffer.size()),
    }
}

/// After `variant` was set on `obj`: notifies `model-file`, whose value follows the variant
/// (unless set explicitly). Call without holding the settings lock.
pub fn notify_model_file(obj: &impl IsA<glib::Object>, pspec: &glib::ParamSpec) {
    if pspec.name() == "variant" {
        obj.notify("model-file");
    }
}

/// The raw video formats both elements take directly (others through `videoconvert`).
pub const FORMATS: [gst_video::VideoFormat; 6] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Bgrx,
];

/// `video/x-raw` in the packed 8-bit RGB formats, any size and frame rate.
pub fn caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

/// The library's pixel format for a GStreamer video format.
pub fn pixel_format(format: gst_video::VideoFormat) -> Option<stego::frame::PixelFormat> {
    use gst_video::VideoFormat as V;
    use stego::frame::PixelFormat as P;
    Some(match format {
        V::Rgb => P::Rgb,
        V::Rgba => P::Rgba,
        V::Rgbx => P::Rgbx,
        V::Bgr => P::Bgr,
        V::Bgra => P::Bgra,
        V::Bgrx => P::Bgrx,
        _ => return None,
    })
}

/// Geometry of a mapped frame: format, width, height, stride.
fn geometry<T>(
    frame: &gst_video::VideoFrameRef<T>,
) -> Result<(stego::frame::PixelFormat, usize, usize, usize), String> {
    let format = pixel_format(frame.format()).ok_or_else(|| {
        format!(
            "video format {} is not supported: put videoconvert before the element",
            frame.format()
        )
    })?;
    let stride = frame.plane_stride()[0];
    let stride = usize::try_from(stride)
        .map_err(|_| format!("negative row stride {stride} is not supported"))?;
    Ok((
        format,
        frame.width() as usize,
        frame.height() as usize,
        stride,
    ))
}

/// A read-only view of a mapped GStreamer frame as a library frame.
pub fn frame<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
) -> Result<stego::frame::Frame<'a>, String> {
    let (format, width, height, stride) = geometry(frame)?;
    let data = frame
        .plane_data(0)
        .map_err(|e| format!("cannot read the frame's pixels: {e}"))?;
    stego::frame::Frame::new(data, format, width, height, stride).map_err(|e| e.to_string())
}

/// A writable view of a mapped, writable GStreamer frame as a library frame.
pub fn frame_mut<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> Result<stego::frame::FrameMut<'a>, String> {
    let (format, width, height, stride) = geometry(frame)?;
    let data = frame
        .plane_data_mut(0)
        .map_err(|e| format!("cannot write the frame's pixels: {e}"))?;
    stego::frame::FrameMut::new(data, format, width, height, stride).map_err(|e| e.to_string())
}

/// The element's name for its messages: its factory's (`stegohide`), else its own.
pub fn element_name(element: &gst::Element) -> String {
    element
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_else(|| element.name().to_string())
}

/// The element error for a library error raised while finding the model or creating the
/// session in `start()`: the library's message (which names the file or provider and what
/// is wrong) plus the element's own advice: the property to change, the file to install.
pub fn start_error(element: &str, err: &stego::Error) -> gst::ErrorMessage {
    use stego::Error as E;
    match err {
        E::ModelMissing(_) => gst::error_msg!(
            gst::ResourceError::NotFound,
            ("{element}: {err}"),
            ["set the model-file property to an existing model"]
        ),
        E::ModelNotFound { variant, searched, .. } => {
            let dir = searched.first().map_or(std::path::Path::new("models"), |d| d.as_path());
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("{element}: {err}: {}, or set variant={}", variant.missing_hint(dir), variant.other()),
                ["or set the model-file property to an existing model, or STEGO_MODEL_DIR to its folder"]
            )
        }
        E::ModelLoad { .. } | E::ModelContract { .. } => gst::error_msg!(
            gst::ResourceError::OpenRead,
            ("{element}: {err}"),
            ["set the model-file property to a model exported by the training crate"]
        ),
        E::ExecutionProvider { cause, .. } => gst::error_msg!(
            gst::LibraryError::Init,
            ("{element}: {err}"),
            ["element property: execution-provider=cpu, or auto to fall back to the CPU{}", cuda_advice(cause)]
        ),
        E::RuntimeLibrary { .. } => gst::error_msg!(
            gst::LibraryError::Init,
            ("{element}: {err}"),
            ["install onnxruntime 1.31 into .ort/cpu (or onnxruntime-gpu into .ort/gpu) of the installed layout, \
              as scripts/setup.sh does, or set ORT_DYLIB_PATH"]
        ),
        E::RuntimeAlreadyLoaded { .. } => {
            gst::error_msg!(gst::LibraryError::Init, ("{element}: {err}"))
        }
        _ => gst::error_msg!(gst::LibraryError::Settings, ("{element}: {err}")),
    }
}

/// The element's advice for a CUDA failure whose fix is another onnxruntime install.
fn cuda_advice(cause: &stego::runtime::CudaCause) -> &'static str {
    use stego::runtime::CudaCause as C;
    match cause {
        C::CpuOnlyBuild { .. } => {
            "; for CUDA install onnxruntime-gpu into .ort/gpu (STEGO_GPU=1 scripts/setup.sh) or set ORT_DYLIB_PATH to it"
        }
        C::GpuLibraryMissing => "; run STEGO_GPU=1 scripts/setup.sh again to reinstall what .ort/gpu lacks",
        _ => "",
    }
}
