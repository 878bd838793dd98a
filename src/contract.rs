//! The model contract: the one place that knows the ONNX models' input and output names,
//! their tensor layout and the metadata they carry.
//!
//! Both models take and give `float32` tensors in **NCHW** layout with 3 channels (R, G, B),
//! values in **[0, 1]**, and dynamic batch, height and width:
//!
//! | file          | inputs                                   | output                      |
//! |---------------|------------------------------------------|-----------------------------|
//! | `hide.onnx`   | `cover` `[N,3,H,W]`, `secret` `[N,3,H,W]` | `container` `[N,3,H,W]`     |
//! | `reveal.onnx` | `container` `[N,3,H,W]`                  | `revealed` `[N,3,H,W]`      |
//!
//! The training crate writes the files to this contract; the runtime checks every model it
//! loads against it. The container a model produces is rounded to 8 bits by the caller
//! (see [`crate::frame`]); the reveal model is trained to read such rounded containers.

/// Number of colour channels of every tensor (R, G, B).
pub const CHANNELS: usize = 3;

/// File name of the hiding model (preparation + hiding networks).
pub const HIDE_FILE: &str = "hide.onnx";
/// File name of the reveal model.
pub const REVEAL_FILE: &str = "reveal.onnx";
/// File name of the hiding model of the fast variant ([`Variant::Fast`]).
pub const FAST_HIDE_FILE: &str = "hide-fast.onnx";
/// File name of the reveal model of the fast variant.
pub const FAST_REVEAL_FILE: &str = "reveal-fast.onnx";
/// File name of the hiding model of the robust variant ([`Variant::Robust`]).
pub const ROBUST_HIDE_FILE: &str = "hide-robust.onnx";
/// File name of the reveal model of the robust variant.
pub const ROBUST_REVEAL_FILE: &str = "reveal-robust.onnx";

/// Input of the hiding model: the cover frame.
pub const HIDE_COVER: &str = "cover";
/// Input of the hiding model: the secret frame, already at the cover's size.
pub const HIDE_SECRET: &str = "secret";
/// Output of the hiding model: the container frame.
pub const HIDE_CONTAINER: &str = "container";
/// Input of the reveal model: the container frame (after 8-bit rounding).
pub const REVEAL_CONTAINER: &str = "container";
/// Output of the reveal model: the revealed secret.
pub const REVEAL_REVEALED: &str = "revealed";

/// Which of the two models a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `hide.onnx`: (cover, secret) → container.
    Hide,
    /// `reveal.onnx`: container → revealed.
    Reveal,
}

impl Role {
    /// The model's input names, in order.
    pub fn inputs(self) -> &'static [&'static str] {
        match self {
            Role::Hide => &[HIDE_COVER, HIDE_SECRET],
            Role::Reveal => &[REVEAL_CONTAINER],
        }
    }
    /// The model's single output name.
    pub fn output(self) -> &'static str {
        match self {
            Role::Hide => HIDE_CONTAINER,
            Role::Reveal => REVEAL_REVEALED,
        }
    }
    /// The value of the [`meta::ROLE`] metadata entry.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hide => "hide",
            Role::Reveal => "reveal",
        }
    }
    /// The default file name in a model folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Hide => HIDE_FILE,
            Role::Reveal => REVEAL_FILE,
        }
    }
}

/// Which family of nets a model pair belongs to; selects the default file names in a model
/// folder (`stego --variant`, the elements' `variant` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// Baluja's paper nets (`hide.onnx`, `reveal.onnx`): ~0.29 M multiply-accumulates per
    /// pixel to hide.
    Paper,
    /// The real-time nets (`hide-fast.onnx`, `reveal-fast.onnx`): convolutions on 4×4 cells,
    /// ~50× cheaper to run than the paper nets, coding the secret into the cover's pixel
    /// values modulo 9 (lossless recordings only); the better of the shipped pairs. The
    /// default.
    #[default]
    Fast,
    /// Real-time nets on 4×4 cells that hide a residual over the cover, trained to reveal
    /// from lossy recordings (`hide-robust.onnx`, `reveal-robust.onnx`): x264 and JPEG in I420
    /// (4:2:0), simulated during training. A stronger, visible change to the cover buys a
    /// rough likeness of the secret after them (about 19–23 dB PSNR at 640×480).
    Robust,
}

impl Variant {
    /// All variants, in the order of their names in [`Variant::NAMES`].
    pub const ALL: [Variant; 3] = [Variant::Paper, Variant::Fast, Variant::Robust];
    /// The names accepted by [`Variant::from_name`].
    pub const NAMES: [&'static str; 3] = ["paper", "fast", "robust"];

    /// `paper`, `fast` or `robust`.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Paper => "paper",
            Variant::Fast => "fast",
            Variant::Robust => "robust",
        }
    }
    /// Parses `paper`, `fast` or `robust` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(name))
    }
    /// The file name of `role`'s model of this variant in a model folder.
    pub fn file_name(self, role: Role) -> &'static str {
        match (self, role) {
            (Variant::Paper, Role::Hide) => HIDE_FILE,
            (Variant::Paper, Role::Reveal) => REVEAL_FILE,
            (Variant::Fast, Role::Hide) => FAST_HIDE_FILE,
            (Variant::Fast, Role::Reveal) => FAST_REVEAL_FILE,
            (Variant::Robust, Role::Hide) => ROBUST_HIDE_FILE,
            (Variant::Robust, Role::Reveal) => ROBUST_REVEAL_FILE,
        }
    }
    /// The other variant (what a front end offers when this one's models are missing).
    pub fn other(self) -> Variant {
        match self {
            Variant::Paper => Variant::Fast,
            Variant::Fast => Variant::Paper,
            Variant::Robust => Variant::Fast,
        }
    }
    /// What to do when this variant's models are missing from the model folder `dir`: the
    /// files it needs and the training command that writes them there. Front ends add their
    /// own way to pick another variant.
    pub fn missing_hint(self, dir: &std::path::Path) -> String {
        format!(
            "the {v} variant needs {} and {} in {d}; train them with `cargo run --release -p training -- {args} --export-to {d}`",
            self.file_name(Role::Hide),
            self.file_name(Role::Reveal),
            v = self.as_str(),
            args = match self {
                Variant::Robust => "--arch fast --robust".to_string(),
                v => format!("--arch {v}"),
            },
            d = dir.display()
        )
    }
    /// The file name of `role`'s float16 export of this variant (`hide-fp16.onnx`,
    /// `reveal-fast-fp16.onnx`, …; see [`meta::PRECISION`]).
    pub fn fp16_file_name(self, role: Role) -> String {
        self.file_name(role).replace(".onnx", "-fp16.onnx")
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keys of the custom metadata (`metadata_props`) every stego ONNX file carries.
pub mod meta {
    /// Contract version; files of another version are refused.
    pub const CONTRACT: &str = "stego.contract";
    /// `hide` or `reveal`.
    pub const ROLE: &str = "stego.role";
    /// Model variant, e.g. `paper` (Baluja 2017 nets) or `fast`.
    pub const VARIANT: &str = "stego.variant";
    /// Human-readable architecture description.
    pub const ARCHITECTURE: &str = "stego.architecture";
    /// What the model was trained on.
    pub const DATA: &str = "stego.data";
    /// Training steps, batch size, crop size, β and the like (free text or `key=value; …`).
    pub const TRAINING: &str = "stego.training";
    /// Validation metrics at export time (`key=value; …`).
    pub const METRICS: &str = "stego.metrics";
    /// Multiply-accumulates per pixel of the whole model (for GFLOP/s figures).
    pub const MACS_PER_PIXEL: &str = "stego.macs_per_pixel";
    /// Height and width must be multiples of this (default 1); the runtime pads to it.
    pub const SIZE_MULTIPLE: &str = "stego.size_multiple";
    /// `fp32` or `fp16`: the type of the weights and the convolutions (inputs and outputs
    /// are float32 either way).
    pub const PRECISION: &str = "stego.precision";
}

/// The contract version these constants describe.
pub const CONTRACT_VERSION: &str = "1";
