//! The training loop: batches, loss, AdamW, checkpoints and resume, validation, sample
//! figures, metrics CSV, loss plot, ONNX export.
//!
//! Files in the output folder (`--out`, default `runs/default`):
//!
//! | file                      | content                                                        |
//! |---------------------------|----------------------------------------------------------------|
//! | `checkpoint.safetensors`  | the weights (names in [`crate::nets`])                         |
//! | `optimizer.safetensors`   | AdamW moments `m.<name>`, `v.<name>`                            |
//! | `state.json`              | step, AdamW update count, the run's configuration, last metrics |
//! | `metrics.csv`             | one row per step: lr, loss, cover/secret MSE and PSNR          |
//! | `validation.csv`          | one row per validation: APD (0–255), PSNR, SSIM, cover/secret  |
//! | `samples/step_NNNNNN.png` | cover, container, secret, revealed, differences ×10 (rows)     |
//! | `loss.png`                | loss curves (see [`crate::plot`])                              |
//! | `hide-fast.onnx`, …       | the exported models (end of training; paper nets: `hide.onnx`) |

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use image::{Rgb, RgbImage};
use indicatif::{ProgressBar, ProgressStyle};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use stego::Variant;
use stego::eval::PairMeans;

use crate::codec;
use crate::csvlog;
use crate::data::{self, DataOptions, Dataset};
use crate::nets::{self, Nets, VariantNets};
use crate::onnx::{self, ExportInfo, Exported};
use crate::optim::{AdamW, AdamWParams, Schedule};
use crate::plot;

/// File names in the output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const METRICS_CSV: &str = "metrics.csv";
pub const VALIDATION_CSV: &str = "validation.csv";
/// A `--robust` run's validation through simulated recordings: a row per step and recording.
pub const VALIDATION_RECORDED_CSV: &str = "validation-recorded.csv";
pub const LOSS_PLOT: &str = "loss.png";
pub const SAMPLES_DIR: &str = "samples";

/// Everything that defines a training run (saved in `state.json`), and the command line's
/// options for it: their defaults are [`TrainConfig::default`]'s. A few settings are not
/// options of their own (the front end sets them: `--steps`, `--robust`, `--arch`,
/// `--hide-output`, `--init-from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct TrainConfig {
    /// Data folder: Tiny ImageNet layout (train/<wnid>/images, val/images +
    /// val_annotations.txt) or any folder of .png/.jpg images (searched recursively; a
    /// --val-fraction of it is held out). Repeat to combine folders, e.g. extracted video frames.
    #[arg(long, value_name = "DIR", default_values_os_t = d().data)]
    pub data: Vec<PathBuf>,
    /// Output folder of the run (checkpoints, metrics.csv, validation.csv, loss.png,
    /// samples/ and, at the end, the ONNX models: hide-fast.onnx, reveal-fast.onnx, or
    /// hide.onnx, reveal.onnx for the paper nets).
    #[arg(long, short, value_name = "DIR", default_value_os_t = d().out)]
    pub out: PathBuf,
    /// Total optimizer steps.
    #[arg(skip = d().steps)]
    pub steps: u64,
    /// Cover/secret pairs per step.
    #[arg(long, short, default_value_t = d().batch_size)]
    pub batch_size: usize,
    /// Side of the square training crops, in pixels.
    #[arg(long, default_value_t = d().crop)]
    pub crop: u32,
    /// Peak learning rate of AdamW (reached after --warmup steps, then cosine decay).
    #[arg(long, default_value_t = d().lr)]
    pub lr: f64,
    /// Linear learning-rate warmup, in steps (a warm-up not shorter than --steps becomes a
    /// tenth of the run, with a message).
    #[arg(long, default_value_t = d().warmup)]
    pub warmup: u64,
    /// Learning rate at the last step, as a fraction of --lr.
    #[arg(long, default_value_t = d().final_lr_fraction)]
    pub final_lr_fraction: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = d().weight_decay)]
    pub weight_decay: f64,
    /// Weight of the secret error in the loss ‖C−C'‖² + β‖S−S'‖² (0.75 as in the paper's
    /// reference implementation: the cover error counts a little more, keeping the container
    /// close to the cover).
    #[arg(long, default_value_t = d().beta)]
    pub beta: f64,
    /// How the loss measures the errors: `l2` = squared, the paper's ‖C−C'‖² + β‖S−S'‖²; `l1` =
    /// absolute, |C−C'| + β|S−S'|, the quantity APD reports (under L1 every pixel's error pulls
    /// with the same strength, so the secret needs a larger --beta than under L2 to keep the
    /// same balance).
    // Runs saved before this option read as `l2`.
    #[serde(default)]
    #[arg(long, value_enum, default_value_t = d().distance)]
    pub distance: Distance,
    /// Standard deviation of the Gaussian noise added to the (8-bit rounded) container before
    /// the reveal net during training, on the [0, 1] scale (0.01 ≈ 2.5 levels of 255).
    #[arg(long, default_value_t = d().noise_std)]
    pub noise_std: f64,
    /// Exposure augmentation: scale each crop's brightness by a random gain in
    /// [1/(1+X), 1+X] (log-uniform), clipping at 255, so the nets also learn covers with
    /// blown-out highlights. 0 turns it off.
    // Runs saved before this option read as 0.
    #[serde(default)]
    #[arg(long, value_name = "X", default_value_t = d().exposure)]
    pub exposure: f64,
    /// Colour augmentation: scale each channel of a crop by its own random gain in
    /// [1/(1+X), 1+X] (log-uniform), on top of --exposure: white balance and saturation vary.
    /// 0 turns it off.
    // Runs saved before this option read as 0.
    #[serde(default)]
    #[arg(long, value_name = "X", default_value_t = d().colour)]
    pub colour: f64,
    /// Show the photos as video frames: each crop is cut from the photo downscaled
    /// (antialiased) to a shorter side drawn log-uniformly from LO..HI pixels (e.g. 240:1080,
    /// the sizes people stream), instead of at any scale between the crop and the whole photo.
    // Runs saved before this option read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "LO:HI", value_parser = parse_range)]
    pub frame_side: Option<(u32, u32)>,
    /// Reveal from a simulated recording of the container, drawn per batch from this mix
    /// ([`crate::codec`]): the `robust` training. `None`: from the lossless container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(skip)]
    pub recordings: Option<codec::RecordingMix>,
    /// Seed of the initial weights, the validation split, the batches and the noise.
    #[arg(long, default_value_t = d().seed)]
    pub seed: u64,
    /// Save a checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = d().checkpoint_every, value_name = "N")]
    pub checkpoint_every: u64,
    /// Validate every N steps (and at the end): APD/PSNR/SSIM, sample figure, loss plot.
    #[arg(long, default_value_t = d().val_every, value_name = "N")]
    pub val_every: u64,
    /// Number of fixed validation (cover, secret) pairs.
    #[arg(long, default_value_t = d().val_pairs)]
    pub val_pairs: usize,
    /// Fraction of a plain image folder held out for validation (chosen by --seed).
    #[arg(long, default_value_t = d().val_fraction)]
    pub val_fraction: f64,
    /// Longest side of the images kept in memory (larger photos are downscaled once on load).
    #[arg(long, default_value_t = d().max_side)]
    pub max_side: u32,
    /// Use at most N training images per data folder.
    #[arg(long, value_name = "N")]
    pub max_images: Option<usize>,
    /// How the hide net forms the container (runs saved before this option read as `sigmoid`).
    #[serde(default = "nets::HideOutput::before_option")]
    #[arg(skip = d().hide_output)]
    pub hide_output: nets::HideOutput,
    /// Which nets: `paper` or `fast` (a `--robust` run trains fast nets; runs saved before
    /// this option read as `paper`).
    #[serde(with = "nets::arch_serde", default = "nets::arch_serde::before_option")]
    #[arg(skip = d().arch)]
    pub arch: Variant,
    /// Fast nets with a context branch: a small U-Net over 8×8 and 16×16 cells added after the
    /// first convolution of each net (receptive field over 100 pixels instead of 20–28; 750
    /// more multiply-accumulates per pixel each). --crop must be a multiple of 16. From
    /// --init-from nets without it, the branch starts with its last convolution at zero, so
    /// the nets compute what they did. Kept from an --init-from run that has it.
    #[serde(default)]
    #[arg(long)]
    pub context: bool,
    /// With context branches (--context, or an --init-from run that has them): the learning
    /// rate of the weights outside the branches, as a fraction of --lr (0 keeps them as
    /// --init-from left them, so only the branches learn).
    #[serde(default = "one")]
    #[arg(long, value_name = "F", default_value_t = d().trunk_lr_scale)]
    pub trunk_lr_scale: f64,
    /// Slim digit-code nets (with --hide-output modular): the hide net reads the secret alone
    /// and the reveal net's middle convolution is 1×1, about 30 % fewer multiply-accumulates
    /// (5,910 / 5,590 per pixel instead of 8,070 / 8,790). From --init-from full digit-code
    /// nets, the hide net keeps its secret weights (the cover's, at mid-grey, go into the bias)
    /// and the 1×1 convolution starts from the sum of the 3×3 one's taps. Kept from an
    /// --init-from run that has it.
    #[serde(default)]
    #[arg(long)]
    pub slim: bool,
    /// The hide net reads the secret averaged over N×N blocks (1, 2 or 4; 1 = every pixel):
    /// its first convolution's secret weights are kept equal within each block (projected
    /// after every step), so the exported graph is unchanged. It hides a quarter (N 2) or a
    /// sixteenth (N 4) of the values per 4×4 cell, with more room for each; the reveal net is
    /// still scored against the full secret. For `--robust`, where recordings leave too little
    /// room for every pixel. Kept from an --init-from run that has it.
    #[serde(default = "one_usize")]
    #[arg(long, value_name = "N", default_value_t = d().secret_pool)]
    pub secret_pool: usize,
    /// The hide net changes a pixel's red, green and blue alike (its output convolution's
    /// three colour weights are kept equal, projected after every step; the exported graph is
    /// unchanged): 4:2:0 recordings halve the chroma's resolution and quantise it coarser, so
    /// a colour change is mostly lost there, and the cover's budget goes to the luma that
    /// survives. For `--robust`. Kept from an --init-from run that has it.
    #[serde(default)]
    #[arg(long)]
    pub grey_residual: bool,
    /// Steps at which a resume lengthened the run. The stretched cosine jumps the learning
    /// rate up there (from its final value to a mid-schedule one); after each such step the
    /// rate ramps up again linearly over `warmup` steps, so Adam's small second moments do not
    /// turn the jump into a loss spike.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub rewarm_at: Vec<u64>,
    /// The run whose weights this one started from (`--init-from`); `None` for nets drawn
    /// from `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(skip)]
    pub init_from: Option<InitFrom>,
}

/// The defaults of the options.
fn d() -> TrainConfig {
    TrainConfig::default()
}

/// `LO:HI` as a pair of whole numbers (sizes, quantizers).
pub fn parse_range(s: &str) -> std::result::Result<(u32, u32), String> {
    let (lo, hi) = s.split_once(':').ok_or_else(|| format!("'{s}' is not LO:HI (e.g. 240:1080)"))?;
    let n = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("'{v}' in '{s}' is not a whole number"));
    Ok((n(lo)?, n(hi)?))
}

/// The per-pixel distance in the loss `d(C, C') + β·d(S, S')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Mean squared error, the paper's loss ‖C−C'‖² + β‖S−S'‖².
    #[default]
    L2,
    /// Mean absolute error: the quantity APD reports, so it optimises that metric directly and
    /// weighs small errors more than L2 does (which mostly chases the rare large ones).
    L1,
}

impl Distance {
    pub fn as_str(self) -> &'static str {
        match self {
            Distance::L2 => "l2",
            Distance::L1 => "l1",
        }
    }

    /// The mean distance of the differences `d` from zero.
    fn mean(self, d: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Distance::L2 => d.sqr()?.mean_all(),
            Distance::L1 => d.abs()?.mean_all(),
        }
    }
}

/// Where a run's starting weights came from: another run's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitFrom {
    /// That run's folder.
    pub dir: PathBuf,
    /// Its completed steps when the weights were taken.
    pub step: u64,
    /// Its training wall time, in seconds (this run's `train_seconds` add to it).
    pub train_seconds: f64,
    /// Where that run's own weights came from, if it was itself a fine-tune: the whole
    /// lineage back to random weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Box<InitFrom>>,
}

impl InitFrom {
    /// This run and the runs it came from, nearest first.
    pub fn lineage(&self) -> impl Iterator<Item = &InitFrom> {
        std::iter::successors(Some(self), |i| i.from.as_deref())
    }
    /// Training wall time of the whole lineage, in seconds.
    pub fn total_seconds(&self) -> f64 {
        self.lineage().map(|i| i.train_seconds).sum()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("data/images")],
            out: PathBuf::from("runs/default"),
            steps: 4000,
            batch_size: 8,
            crop: 64,
            lr: 1e-3,
            warmup: 200,
            final_lr_fraction: 0.01,
            weight_decay: 1e-4,
            beta: 0.75,
            noise_std: 0.01,
            exposure: 0.0,
            colour: 0.0,
            recordings: None,
            frame_side: None,
            distance: Distance::L2,
            seed: 0,
            checkpoint_every: 250,
            val_every: 250,
            val_pairs: 8,
            val_fraction: 0.15,
            max_side: 512,
            max_images: None,
            init_from: None,
            hide_output: nets::HideOutput::default(),
            // The runtime's default variant.
            arch: Variant::default(),
            context: false,
            slim: false,
            secret_pool: 1,
            grey_residual: false,
            trunk_lr_scale: 1.0,
            rewarm_at: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// The learning rate schedule of this run.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            peak: self.lr,
            warmup: self.warmup,
            total: self.steps,
            final_fraction: self.final_lr_fraction,
            rewarm_at: self.rewarm_at.clone(),
        }
    }

    /// How this run draws and alters its crops.
    /// The runtime variant the run's models are.
    pub fn variant(&self) -> Variant {
        self.arch.trained(self.recordings.is_some())
    }

    /// The shapes of the run's fast nets.
    pub fn layout(&self) -> nets::FastLayout {
        nets::FastLayout { context: self.context, slim: self.slim }
    }

    pub fn augment(&self) -> data::Augment {
        data::Augment { exposure: self.exposure, colour: self.colour, frame_side: self.frame_side }
    }

    fn optimizer_params(&self) -> AdamWParams {
        AdamWParams { weight_decay: self.weight_decay, ..Default::default() }
    }

    /// `key=value; …` summary for the ONNX metadata.
    pub fn summary(&self, step: u64) -> String {
        format!(
            "steps={step}; planned_steps={}; batch={}; crop={}; optimizer=AdamW; lr={}; warmup={}; \
             final_lr_fraction={}; weight_decay={}; beta={}; distance={}; noise_std={}; exposure={}; colour={}; frame_side={}; recordings={}; max_side={}; rounding=8bit-straight-through; seed={}; hide_output={}; arch={}{}{}",
            self.steps,
            self.batch_size,
            self.crop,
            self.lr,
            self.warmup,
            self.final_lr_fraction,
            self.weight_decay,
            self.beta,
            self.distance.as_str(),
            self.noise_std,
            self.exposure,
            self.colour,
            self.frame_side.map(|(a, b)| format!("{a}-{b}")).unwrap_or_else(|| "any".into()),
            self.recordings.map_or_else(
                || "lossless".into(),
                |m| format!(
                    "lossless {:.2} / 4:2:0 {:.2} / x264-like qp {}-{} aq {} {:.2} / JPEG q{}-{} (rest); real encoders for {:.2} of x264 and JPEG",
                    m.lossless, m.yuv420, m.qp.0, m.qp.1, m.aq, m.x264, m.jpeg_quality.0, m.jpeg_quality.1, m.real
                )
            ),
            self.max_side,
            self.seed,
            self.hide_output.as_str(),
            self.arch.as_str(),
            if self.context { format!("; context=8x8+16x16 cells; trunk_lr_scale={}", self.trunk_lr_scale) } else { String::new() },
            if self.slim { "; slim" } else { "" }
        ) + &if self.secret_pool > 1 { format!("; secret_pool={0}x{0}", self.secret_pool) } else { String::new() }
            + if self.grey_residual { "; grey_residual" } else { "" }
            + &self
            .init_from
            .as_ref()
            .map(|i| {
                let chain: Vec<String> = i
                    .lineage()
                    .map(|f| format!("{} at step {} ({:.0} s)", f.dir.display(), f.step, f.train_seconds))
                    .collect();
                format!("; init_from={}", chain.join(" <- "))
            })
            .unwrap_or_default()
    }

    fn check(&self) -> Result<()> {
        if self.batch_size == 0 || self.crop == 0 || self.steps == 0 {
            bail!("--steps, --batch-size and --crop must be positive");
        }
        if self.context && self.arch.nets() != Variant::Fast {
            bail!("--context adds a branch to the fast nets; the {} nets have none: drop --context or pass --arch fast", self.arch.as_str());
        }
        let m = self.arch.size_multiple(self.layout()) as u32;
        if !self.crop.is_multiple_of(m) {
            let with = if self.context { " with --context" } else { "" };
            bail!("--crop {} is not a multiple of {m}, which the {} nets{with} need", self.crop, self.arch.as_str());
        }
        if self.hide_output == nets::HideOutput::Modular {
            if self.arch.nets() != Variant::Fast || self.recordings.is_some() {
                bail!("--hide-output modular is for the fast nets without --robust: its code lives in the exact pixel values, which a lossy recording changes");
            }
            if self.noise_std != 0.0 {
                bail!("--hide-output modular needs --noise-std 0: the reveal net reads the container's exact 8-bit values, which noise would change");
            }
        }
        if self.slim && self.hide_output != nets::HideOutput::Modular {
            bail!("--slim is for the digit-code nets (--hide-output modular), whose hide net needs only the secret; the {} output reads the cover", self.hide_output.as_str());
        }
        if ![1, 2, 4].contains(&self.secret_pool) || (self.secret_pool > 1 && self.arch.nets() != Variant::Fast) {
            bail!("--secret-pool {} is not one of 1, 2, 4 with the fast nets: the blocks must tile their 4x4 cells", self.secret_pool);
        }
        if self.trunk_lr_scale != 1.0 && !self.context {
            bail!("--trunk-lr-scale {} is for nets with context branches: add --context (or start --init-from a run that has them)", self.trunk_lr_scale);
        }
        if self.grey_residual && (self.arch.nets() != Variant::Fast || self.hide_output == nets::HideOutput::Modular) {
            bail!("--grey-residual is for the fast nets' residual output (--hide-output residual or sigmoid); the digit code writes every subpixel's own digit");
        }
        if !(0.0..=1.0).contains(&self.trunk_lr_scale) {
            bail!("--trunk-lr-scale {} is outside [0, 1]: it is the fraction of --lr the weights outside the context branches learn at", self.trunk_lr_scale);
        }
        if self.beta < 0.0 || self.noise_std < 0.0 || self.lr <= 0.0 {
            bail!("--beta and --noise-std must be ≥ 0 and --lr > 0");
        }
        if !(0.0..=4.0).contains(&self.exposure) {
            bail!("--exposure {} is outside [0, 4]: it is the largest relative change of brightness (0.5: gains 0.67–1.5)", self.exposure);
        }
        if !(0.0..=1.0).contains(&self.colour) {
            bail!("--colour {} is outside [0, 1]: it is the largest relative change of each channel (0.2: gains 0.83–1.2)", self.colour);
        }
        if let Some((lo, hi)) = self.frame_side
            && (lo < self.crop || lo > hi)
        {
            bail!("--frame-side {lo}:{hi}: give LO:HI with {} (the crop) ≤ LO ≤ HI", self.crop);
        }
        if let Some(m) = &self.recordings {
            m.check().map_err(|e| anyhow::anyhow!("--robust: {e}"))?;
            if !self.crop.is_multiple_of(16) {
                bail!("--robust simulates 8x8 DCT blocks of 4:2:0 chroma: --crop {} must be a multiple of 16", self.crop);
            }
        }
        if self.val_pairs == 0 {
            bail!("--val-pairs must be at least 1");
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            bail!("--val-fraction must be in [0, 1)");
        }
        Ok(())
    }
}

/// Mean validation metrics.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Validation {
    pub cover_apd: f64,
    pub cover_psnr: f64,
    pub cover_ssim: f64,
    pub secret_apd: f64,
    pub secret_psnr: f64,
    pub secret_ssim: f64,
    /// MSE on [0, 1] (for the loss plot).
    pub cover_mse: f64,
    pub secret_mse: f64,
}

impl Validation {
    /// `key=value; …` for the ONNX metadata.
    pub fn summary(&self, pairs: usize, size: u32) -> String {
        format!(
            "validation_pairs={pairs}; size={size}x{size}; container=8bit; cover_apd={:.3}; cover_psnr={:.2}; \
             cover_ssim={:.4}; secret_apd={:.3}; secret_psnr={:.2}; secret_ssim={:.4}",
            self.cover_apd, self.cover_psnr, self.cover_ssim, self.secret_apd, self.secret_psnr, self.secret_ssim
        )
    }
}

/// The nets (architecture, hide output) of the training run in `dir`, for `--init-from`.
pub fn run_nets(dir: &Path) -> Result<(Variant, nets::HideOutput)> {
    let c = read_init_from(dir)?.config;
    Ok((c.arch, c.hide_output))
}

fn read_init_from(dir: &Path) -> Result<RunState> {
    RunState::read(&dir.join(STATE_FILE))
        .with_context(|| format!("--init-from {} needs a training run folder (state.json, checkpoint.safetensors)", dir.display()))
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Completed optimizer steps.
    pub step: u64,
    /// AdamW update count (equals `step`).
    pub optimizer_t: u64,
    pub config: TrainConfig,
    /// Description of the data read.
    pub data: String,
    pub last_validation: Option<Validation>,
    /// Wall-clock seconds spent training, over all sessions.
    pub train_seconds: f64,
}

impl RunState {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub out: PathBuf,
    pub step: u64,
    pub validation: Option<Validation>,
    pub exported: Vec<Exported>,
}

/// How to run: progress display and extra export folder.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue the run in `config.out` from its checkpoint.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Also export the models here at the end.
    pub export_to: Option<PathBuf>,
    /// Skip the ONNX export at the end.
    pub no_export: bool,
    /// Let `export_to` replace model files already there (see [`check_export_target`]).
    pub force: bool,
    /// Stop after this many steps in this session (the run continues with `resume`).
    pub max_session_steps: Option<u64>,
    /// With `resume`: change the run's total steps (otherwise the saved value holds; every
    /// other setting always comes from the saved run).
    pub resume_steps: Option<u64>,
    /// A new run (not `resume`) starts from the weights of the run in this folder (its
    /// `checkpoint.safetensors`, which must hold the same nets) instead of random ones: a
    /// fine-tune with its own settings, schedule and fresh AdamW moments.
    pub init_from: Option<PathBuf>,
}

fn write_atomic(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    stego::fsio::replace_file(path, f).with_context(|| format!("writing {}", path.display()))
}

fn save_checkpoint(out: &Path, varmap: &VarMap, opt: &AdamW, state: &RunState) -> Result<()> {
    write_atomic(&out.join(CHECKPOINT_FILE), |p| Ok(varmap.save(p)?))?;
    write_atomic(&out.join(OPTIMIZER_FILE), |p| Ok(opt.save(p)?))?;
    write_atomic(&out.join(STATE_FILE), |p| Ok(std::fs::write(p, serde_json::to_string_pretty(state)?)?))?;
    Ok(())
}

/// Loads `checkpoint.safetensors` into the (already created) variables of `varmap`; every
/// variable must be there, with its shape.
pub fn load_weights(varmap: &VarMap, path: &Path) -> Result<()> {
    // A VarMap is a shared handle: loading through a clone sets the variables of `varmap`.
    varmap.clone().load(path).with_context(|| format!("loading the weights of {}", path.display()))
}

/// Like [`load_weights`], but a checkpoint tensor may be smaller than the variable in its
/// first two dimensions (output and input channels): the nets were made wider since. The old
/// values go to the leading block; the new input channels of the old units get zero weights,
/// so the old units compute exactly what they did, while the new units keep their random
/// initial weights (their outgoing weights, in the next layer, start at zero). Training then
/// grows them from the old function ("Net2Net"-style widening). Returns the names widened.
///
/// Slim nets ([`nets::FastLayout::slim`]) take full digit-code nets' weights through
/// [`nets::slim_weights`].
pub fn load_weights_grown(varmap: &VarMap, path: &Path, device: &Device) -> Result<Vec<String>> {
    let mut tensors = candle_core::safetensors::load(path, device).with_context(|| format!("reading {}", path.display()))?;
    let data = varmap.data().lock().expect("varmap lock");
    if data.get("hide.conv0.weight").is_some_and(|v| nets::reads_secret_alone(v.dims())) {
        tensors = nets::slim_weights(tensors).with_context(|| format!("making {} into slim nets", path.display()))?;
    }
    let mut grown = Vec::new();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        if name.contains(".ctx.") && !tensors.contains_key(nets::CONTEXT_MARKER) {
            // A context branch added to nets without one: it keeps its initialisation, whose
            // last convolution is zero.
            continue;
        }
        let t = tensors.get(name).with_context(|| format!("{} lacks {name}", path.display()))?.to_dtype(DType::F32)?;
        if t.dims() == var.dims() {
            var.set(&t)?;
            continue;
        }
        let (old, new) = (t.dims().to_vec(), var.dims().to_vec());
        let fits = old.len() == new.len() && old.iter().zip(&new).enumerate().all(|(i, (o, n))| if i < 2 { o <= n } else { o == n });
        if !fits {
            bail!("{}: {name} has shape {old:?}, the nets need {new:?} (only more channels can be added)", path.display());
        }
        let mut v = var.as_tensor().to_dtype(DType::F32)?;
        if new.len() > 1 && new[1] > old[1] {
            // Old units ignore the new input channels.
            let zeros = v.narrow(0, 0, old[0])?.narrow(1, old[1], new[1] - old[1])?.zeros_like()?;
            v = v.slice_assign(&slice_ranges(&[0..old[0], old[1]..new[1]], &new), &zeros)?;
        }
        v = v.slice_assign(&slice_ranges(&old.iter().map(|&o| 0..o).collect::<Vec<_>>(), &new), &t)?;
        var.set(&v)?;
        grown.push(name.clone());
    }
    Ok(grown)
}

/// Full ranges over `dims`, with the leading ones replaced by `lead`.
fn slice_ranges(lead: &[std::ops::Range<usize>], dims: &[usize]) -> Vec<std::ops::Range<usize>> {
    dims.iter().enumerate().map(|(i, &d)| lead.get(i).cloned().unwrap_or(0..d)).collect()
}

const METRICS_HEADER: [&str; 8] = ["step", "lr", "loss", "cover_mse", "secret_mse", "cover_psnr", "secret_psnr", "seconds"];
const VALIDATION_RECORDED_HEADER: [&str; 5] = ["step", "recording", "secret_apd", "secret_psnr", "secret_ssim"];
const VALIDATION_HEADER: [&str; 9] =
    ["step", "cover_apd", "cover_psnr", "cover_ssim", "secret_apd", "secret_psnr", "secret_ssim", "cover_mse", "secret_mse"];

fn one() -> f64 {
    1.0
}

fn one_usize() -> usize {
    1
}

fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 { f64::INFINITY } else { -10.0 * mse.log10() }
}

/// The training forward pass: returns (loss, cover MSE, secret MSE). With `recording`, the
/// secret is revealed from a simulated recording of the container (`--robust`).
pub fn training_loss(
    nets: &Nets,
    cover: &Tensor,
    secret: &Tensor,
    beta: f64,
    distance: Distance,
    noise: Option<&Tensor>,
    recording: Option<(&codec::CodecProxy, codec::Recording)>,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let container = nets.hide(cover, secret)?;
    // 8-bit rounding with a straight-through gradient.
    let container = (codec::round_ste(&(&container * 255.0)?)? / 255.0)?;
    let recorded = match recording {
        Some((proxy, r)) => proxy.apply(&container, r)?,
        None => container.clone(),
    };
    let reveal_in = match noise {
        Some(n) => (&recorded + n)?,
        None => recorded,
    };
    let revealed = nets.reveal(&reveal_in)?;
    // A modular container is the cover moved by a fixed amount whatever the symbols: no
    // gradient from the cover term (it would only pull the symbols toward the cover's).
    let container = if nets.hide_output() == nets::HideOutput::Modular { container.detach() } else { container };
    let (cover_diff, secret_diff) = ((&container - cover)?, (&revealed - secret)?);
    let cover_mse = Distance::L2.mean(&cover_diff)?;
    let secret_mse = Distance::L2.mean(&secret_diff)?;
    let loss = match distance {
        Distance::L2 => (&cover_mse + (&secret_mse * beta)?)?,
        Distance::L1 => (distance.mean(&cover_diff)? + (distance.mean(&secret_diff)? * beta)?)?,
    };
    Ok((loss, cover_mse, secret_mse))
}

/// Validation on fixed pairs with the deployment path: container rounded to 8 bits, no noise.
/// Returns the metrics and the images (covers, containers, secrets, revealed).
pub fn validate(
    nets: &Nets,
    covers: &[RgbImage],
    secrets: &[RgbImage],
    chunk: usize,
    device: &Device,
) -> Result<(Validation, [Vec<RgbImage>; 4])> {
    let mut containers = Vec::new();
    let mut revealed = Vec::new();
    for (c, s) in covers.chunks(chunk.max(1)).zip(secrets.chunks(chunk.max(1))) {
        let ct = data::to_tensor(c, device)?;
        let st = data::to_tensor(s, device)?;
        let cont = data::to_images(&nets.hide(&ct, &st)?)?;
        let rev = data::to_images(&nets.reveal(&data::to_tensor(&cont, device)?)?)?;
        containers.extend(cont);
        revealed.extend(rev);
    }
    let (mut cover, mut secret) = (PairMeans::default(), PairMeans::default());
    for k in 0..covers.len() {
        let (w, h) = covers[k].dimensions();
        let (w, h) = (w as usize, h as usize);
        cover.add_rgb8(covers[k].as_raw(), containers[k].as_raw(), w, h);
        secret.add_rgb8(secrets[k].as_raw(), revealed[k].as_raw(), w, h);
    }
    let (c, s) = (cover.mean(), secret.mean());
    let v = Validation {
        cover_apd: c.apd,
        cover_ssim: c.ssim,
        secret_apd: s.apd,
        secret_ssim: s.ssim,
        // PSNR of the mean MSE (finite even when one image is reproduced exactly).
        cover_psnr: cover.psnr_of_mean_mse(),
        secret_psnr: secret.psnr_of_mean_mse(),
        cover_mse: cover.mean_mse(),
        secret_mse: secret.mean_mse(),
    };
    Ok((v, [covers.to_vec(), containers, secrets.to_vec(), revealed]))
}

/// The recordings a `--robust` run is validated through, beside the lossless path: the ones the
/// variant's aims are set at, with the real encoders (the validation containers tiled into one
/// frame): x264enc `pass=qual quantizer=23` (a rate factor; a lone frame comes out near QP 29),
/// x264 at a constant QP 29 and JPEG quality 90; and the proxies of the last two.
pub fn validation_recordings() -> [(&'static str, codec::Recording); 5] {
    use stego::codec::Codec;
    [
        ("x264qp:29", codec::Recording::x264(29.0)),
        ("jpeg:90", codec::Recording::Jpeg { quality: 90 }),
        ("real x264:23", codec::Recording::Real(Codec::X264 { quantizer: Some(23) })),
        ("real x264qp:29", codec::Recording::Real(Codec::X264Qp { quantizer: 29 })),
        ("real jpeg:90", codec::Recording::Real(Codec::Jpeg { quality: 90 })),
    ]
}

/// The revealed secrets' figures (means over the pairs) when the 8-bit `containers` go through `recording` (a
/// proxy or a real encoder, without noise) before the reveal net.
pub fn validate_recorded(
    nets: &Nets,
    containers: &[RgbImage],
    secrets: &[RgbImage],
    proxy: &codec::CodecProxy,
    recording: codec::Recording,
    chunk: usize,
    device: &Device,
) -> Result<stego::metrics::Metrics> {
    let mut secret = PairMeans::default();
    for (c, s) in containers.chunks(chunk.max(1)).zip(secrets.chunks(chunk.max(1))) {
        let recorded = proxy.apply(&data::to_tensor(c, device)?, recording)?;
        for (s, r) in s.iter().zip(data::to_images(&nets.reveal(&recorded)?)?) {
            let (w, h) = s.dimensions();
            secret.add_rgb8(s.as_raw(), r.as_raw(), w as usize, h as usize);
        }
    }
    Ok(secret.mean())
}

/// Redraws `loss.png` from the two CSV files: the training curves smoothed (exponential
/// moving average), the validation MSEs with markers.
pub fn draw_loss_plot(out: &Path) -> Result<()> {
    let tr = csvlog::read_columns(&out.join(METRICS_CSV), &[2, 3, 4]);
    let va = csvlog::read_columns(&out.join(VALIDATION_CSV), &[7, 8]);
    let alpha = (10.0 / tr[0].len().max(1) as f64).clamp(0.02, 1.0);
    let line = |name: &str, points: Vec<(f64, f64)>, color: [u8; 3], width: u32, markers: bool| plot::Series {
        name: name.into(),
        points,
        color: Rgb(color),
        width,
        markers,
    };
    let series = vec![
        line("training loss (cover + β·secret)", plot::smooth(&tr[0], alpha), [150, 150, 150], 1, false),
        line("training cover MSE", plot::smooth(&tr[1], alpha), [60, 110, 230], 2, false),
        line("training secret MSE", plot::smooth(&tr[2], alpha), [230, 60, 60], 2, false),
        line("validation cover MSE", va[0].clone(), [0, 0, 140], 3, true),
        line("validation secret MSE", va[1].clone(), [140, 0, 0], 3, true),
    ];
    let title = format!("Training of {}", out.display());
    let labels = plot::Labels { title: &title, x: "step", y: "loss, MSE on [0, 1] (log scale)" };
    let img = plot::loss_plot(&series, &labels, 900, 500)?;
    let path = out.join(LOSS_PLOT);
    write_atomic(&path, |p| Ok(img.save_with_format(p, image::ImageFormat::Png)?))
}

/// Training information for the ONNX metadata from a run state.
pub fn export_info(state: &RunState) -> ExportInfo {
    ExportInfo {
        data: state.data.clone(),
        training: format!("{}; seconds={:.0}", state.config.summary(state.step), state.train_seconds),
        metrics: state
            .last_validation
            .map(|v| v.summary(state.config.val_pairs, state.config.crop))
            .unwrap_or_else(|| "none".into()),
        hide_output: state.config.hide_output,
        arch: state.config.arch,
        layout: state.config.layout(),
        fp16: false,
        robust: state.config.recordings.is_some(),
    }
}

/// Trains (or continues) a run; see the module docs for the files written.
pub fn train(config: TrainConfig, opts: &RunOptions) -> Result<TrainOutcome> {
    let (config, prior, init_weights) = prepare_config(config, opts)?;
    if config.recordings.is_some() {
        codec::check_real_encoders().context(
            "a --robust run is validated (and with --real-codec trained) through the real x264 and JPEG encoders; \
             scripts/setup.sh installs them (gstreamer1.0-plugins-ugly, gstreamer1.0-libav, gstreamer1.0-plugins-good)",
        )?;
    }
    let mut trainer = Trainer::new(config, prior.as_ref(), init_weights.as_deref(), opts)?;
    let (start, end) = (trainer.start, trainer.end);
    for step in (start + 1)..=end {
        trainer.step(step)?;
        let last = step == end;
        if step.is_multiple_of(trainer.config.val_every.max(1)) || last {
            trainer.validate(step)?;
        }
        if step.is_multiple_of(trainer.config.checkpoint_every.max(1)) || last {
            trainer.save()?;
        }
    }
    trainer.pb.finish_and_clear();
    if start == end && prior.is_some() && opts.progress {
        eprintln!("nothing to do: the run is at step {start} of {}", trainer.config.steps);
    }
    trainer.finish(opts)
}

/// The configuration of the run to train: the saved one with `resume` (only its length may
/// change), else `config` checked against the output folder. Also the run it continues, and
/// the weights it starts from with `init_from`.
fn prepare_config(config: TrainConfig, opts: &RunOptions) -> Result<(TrainConfig, Option<RunState>, Option<PathBuf>)> {
    let out = config.out.clone();
    let state_path = out.join(STATE_FILE);
    let (mut config, prior) = if opts.resume {
        let prior = RunState::read(&state_path).context("--resume needs a previous run in the output folder")?;
        (resumed_config(&prior, &out, opts.resume_steps), Some(prior))
    } else {
        if state_path.exists() {
            bail!("{} already holds a run; pass --resume to continue it or choose another --out", out.display());
        }
        (fit_warmup(config), None)
    };
    if let Some(dir) = &opts.export_to
        && !opts.no_export
    {
        check_export_target(dir, &out, config.variant(), false, opts.force)?;
    }
    let mut init_weights = None;
    if let Some(dir) = &opts.init_from {
        if prior.is_some() {
            bail!("--init-from starts a new run; a resumed run continues from its own checkpoint (drop --init-from)");
        }
        config.init_from = Some(init_from(dir, &mut config)?);
        init_weights = Some(dir.join(CHECKPOINT_FILE));
    }
    config.check()?;
    Ok((config, prior, init_weights))
}

/// The saved configuration of `prior`, in folder `out`, lengthened or shortened to `steps`.
fn resumed_config(prior: &RunState, out: &Path, steps: Option<u64>) -> TrainConfig {
    let mut c = prior.config.clone();
    c.out = out.to_path_buf();
    if let Some(steps) = steps.filter(|&s| s != c.steps) {
        // The only setting a resume may change: the length of the run (the cosine
        // schedule stretches to the new end; lengthening re-warms from the resume step).
        eprintln!("resume: total steps {} → {steps}", c.steps);
        if steps > c.steps && prior.step < steps {
            c.rewarm_at.push(prior.step);
        }
        c.steps = steps;
    }
    c
}

/// The lineage of a run that starts from the weights of the run in `dir`, which must hold the
/// nets `config` asks for; `config` keeps their context branch, if they have one.
fn init_from(dir: &Path, config: &mut TrainConfig) -> Result<InitFrom> {
    let parent = read_init_from(dir)?;
    let p = &parent.config;
    if (p.arch, p.hide_output) != (config.arch, config.hide_output) {
        bail!(
            "--init-from {} holds {} nets with hide output {}, this run asks for {} / {}: pass --arch {} --hide-output {}",
            dir.display(),
            p.arch.as_str(),
            p.hide_output.as_str(),
            config.arch.as_str(),
            config.hide_output.as_str(),
            p.arch.as_str(),
            p.hide_output.as_str()
        );
    }
    config.context |= p.context;
    config.slim |= p.slim;
    config.secret_pool = config.secret_pool.max(p.secret_pool);
    config.grey_residual |= p.grey_residual;
    Ok(InitFrom {
        dir: dir.to_path_buf(),
        step: parent.step,
        train_seconds: parent.train_seconds,
        from: p.init_from.clone().map(Box::new),
    })
}

/// A training session: the nets, optimizer and data of a run, and its progress display.
struct Trainer {
    config: TrainConfig,
    device: Device,
    varmap: VarMap,
    nets: Nets,
    opt: AdamW,
    dataset: Dataset,
    val_covers: Vec<RgbImage>,
    val_secrets: Vec<RgbImage>,
    schedule: Schedule,
    noise: Normal<f32>,
    proxy: Option<codec::CodecProxy>,
    /// The first and last step of this session.
    start: u64,
    end: u64,
    /// What `state.json` gets at the next checkpoint.
    state: RunState,
    /// Training seconds of the earlier sessions.
    train_seconds: f64,
    session_start: Instant,
    progress: bool,
    pb: ProgressBar,
    last_line: Instant,
    rate: StepRate,
    plot_warned: bool,
}

impl Trainer {
    /// Builds the nets and optimizer (with the run's checkpoint on resume, or the weights of
    /// `init_weights`), and loads the data.
    fn new(config: TrainConfig, prior: Option<&RunState>, init_weights: Option<&Path>, opts: &RunOptions) -> Result<Self> {
        let device = crate::default_device();
        let out = config.out.clone();
        std::fs::create_dir_all(out.join(SAMPLES_DIR)).with_context(|| format!("creating {}", out.display()))?;
        let (varmap, nets) = nets::init_nets_with(config.arch, config.layout(), config.hide_output, &device, config.seed)?;
        let mut opt = AdamW::new(&varmap, config.optimizer_params())?;
        let trunk = config.trunk_lr_scale;
        opt.set_lr_scale(|name| if name.contains(".ctx.") { 1.0 } else { trunk });
        let (start, train_seconds, last_validation) = match prior {
            Some(prior) => {
                load_weights(&varmap, &out.join(CHECKPOINT_FILE))?;
                opt.load(&out.join(OPTIMIZER_FILE), prior.optimizer_t, &device)?;
                csvlog::truncate_after(&out.join(METRICS_CSV), prior.step)?;
                csvlog::truncate_after(&out.join(VALIDATION_CSV), prior.step)?;
                csvlog::truncate_after(&out.join(VALIDATION_RECORDED_CSV), prior.step)?;
                (prior.step, prior.train_seconds, prior.last_validation)
            }
            None => {
                if let Some(path) = init_weights {
                    init_weights_from(&varmap, path, &device, opts.progress)?;
                }
                (0, 0.0, None)
            }
        };
        let dataset = load_data(&config, opts.progress)?;
        if opts.progress {
            eprintln!(
                "device: {device:?}; nets: {} parameters; run: {}",
                nets::parameter_count(&nets::varmap_tensors(&varmap)),
                out.display()
            );
        }
        let (val_covers, val_secrets) = data::validation_pairs(&dataset.val, config.val_pairs, config.crop, config.frame_side, config.seed);
        let end = opts.max_session_steps.map_or(config.steps, |n| (start + n).min(config.steps));
        let state = RunState {
            step: start,
            optimizer_t: opt.t,
            config: config.clone(),
            data: dataset.description.clone(),
            last_validation,
            train_seconds,
        };
        let trainer = Self {
            schedule: config.schedule(),
            noise: Normal::new(0.0f32, config.noise_std as f32).context("noise std")?,
            proxy: config.recordings.map(|_| codec::CodecProxy::new(&device)).transpose()?,
            pb: progress_bar(opts.progress, config.steps, start),
            config,
            device,
            varmap,
            nets,
            opt,
            dataset,
            val_covers,
            val_secrets,
            start,
            end,
            state,
            train_seconds,
            session_start: Instant::now(),
            progress: opts.progress,
            last_line: Instant::now(),
            rate: StepRate::new(),
            plot_warned: false,
        };
        trainer.project_weights()?;
        Ok(trainer)
    }

    fn out(&self) -> &Path {
        &self.config.out
    }

    /// Keeps the weights on the subspaces `--secret-pool` and `--grey-residual` ask for.
    fn project_weights(&self) -> Result<()> {
        let data = self.varmap.data().lock().expect("the varmap's lock");
        let var = |name: &str| data.get(name).with_context(|| format!("the fast nets have {name}"));
        if self.config.secret_pool > 1 {
            let w = var("hide.conv0.weight")?;
            w.set(&nets::fast::pool_secret_weights(w.as_tensor(), self.config.secret_pool)?)?;
        }
        if self.config.grey_residual {
            let (w, b) = (var("hide.out.weight")?, var("hide.out.bias")?);
            let (gw, gb) = nets::fast::grey_output(w.as_tensor(), b.as_tensor())?;
            w.set(&gw)?;
            b.set(&gb)?;
        }
        Ok(())
    }

    /// One optimizer step on the batch of `step`; appends its row to `metrics.csv`.
    fn step(&mut self, step: u64) -> Result<()> {
        let step_t = Instant::now();
        let c = &self.config;
        let mut rng = data::step_rng(c.seed, step);
        let (covers, secrets) = data::sample_batch(&self.dataset.train, c.batch_size, c.crop, &c.augment(), &mut rng);
        let cover = data::to_tensor(&covers, &self.device)?;
        let secret = data::to_tensor(&secrets, &self.device)?;
        let noise_t = if c.noise_std > 0.0 {
            let v: Vec<f32> = (0..cover.elem_count()).map(|_| self.noise.sample(&mut rng)).collect();
            Some(Tensor::from_vec(v, cover.shape(), &self.device)?)
        } else {
            None
        };
        let recording = match (&c.recordings, &self.proxy) {
            (Some(mix), Some(p)) => Some((p, mix.draw(&mut rng))),
            _ => None,
        };
        let (loss, cover_mse, secret_mse) = training_loss(&self.nets, &cover, &secret, c.beta, c.distance, noise_t.as_ref(), recording)?;
        let grads = loss.backward()?;
        let lr = self.schedule.lr(step);
        self.opt.step(&grads, lr)?;
        self.project_weights()?;
        let (loss_v, cm, sm) = (
            loss.to_scalar::<f32>()? as f64,
            cover_mse.to_scalar::<f32>()? as f64,
            secret_mse.to_scalar::<f32>()? as f64,
        );
        if !loss_v.is_finite() {
            bail!("loss is {loss_v} at step {step}: lower --lr");
        }
        let dt = step_t.elapsed().as_secs_f64();
        let (cp, sp) = (psnr_from_mse(cm), psnr_from_mse(sm));
        let row = [
            step.to_string(),
            format!("{lr:.6e}"),
            format!("{loss_v:.6e}"),
            format!("{cm:.6e}"),
            format!("{sm:.6e}"),
            format!("{cp:.3}"),
            format!("{sp:.3}"),
            format!("{dt:.3}"),
        ];
        csvlog::append_row(&self.out().join(METRICS_CSV), &METRICS_HEADER, &row)?;
        let msg = format!("loss {loss_v:.5} | PSNR cover {cp:.2} secret {sp:.2} dB | {:.2} step/s", self.rate.tick());
        self.pb.set_position(step);
        // Without a terminal the bar is hidden: print a line every 30 s instead.
        if self.progress && self.pb.is_hidden() && (self.last_line.elapsed().as_secs() >= 30 || step == self.start + 1) {
            eprintln!("step {step}/{}: lr {lr:.2e} | {msg}", self.config.steps);
            self.last_line = Instant::now();
        }
        self.pb.set_message(msg);
        self.state.step = step;
        self.state.optimizer_t = self.opt.t;
        Ok(())
    }

    /// Validates the nets of `step`: a row of `validation.csv`, the sample figure, the plot.
    fn validate(&mut self, step: u64) -> Result<()> {
        let c = &self.config;
        let infer = Nets::inference_from_varmap(c.arch, &self.varmap, &self.device)?.with_hide_output(c.hide_output);
        let (v, imgs) = validate(&infer, &self.val_covers, &self.val_secrets, c.batch_size, &self.device)?;
        let row = [
            step.to_string(),
            format!("{:.4}", v.cover_apd),
            format!("{:.3}", v.cover_psnr),
            format!("{:.5}", v.cover_ssim),
            format!("{:.4}", v.secret_apd),
            format!("{:.3}", v.secret_psnr),
            format!("{:.5}", v.secret_ssim),
            format!("{:.6e}", v.cover_mse),
            format!("{:.6e}", v.secret_mse),
        ];
        csvlog::append_row(&self.out().join(VALIDATION_CSV), &VALIDATION_HEADER, &row)?;
        self.validate_recorded(step, &infer, &imgs[1])?;
        let scale = (128 / c.crop).clamp(1, 8);
        let fig = plot::sample_figure(&imgs[0], &imgs[1], &imgs[2], &imgs[3], scale);
        fig.save(self.out().join(SAMPLES_DIR).join(format!("step_{step:06}.png")))?;
        // A plot that cannot be drawn (no font) does not stop the training: the CSV files
        // hold its data and `training plot` redraws it.
        if let Err(e) = draw_loss_plot(self.out())
            && !self.plot_warned
        {
            self.log(format!("warning: {} not drawn: {e:#}", self.out().join(LOSS_PLOT).display()), true);
            self.plot_warned = true;
        }
        self.log(
            format!(
                "step {step}: validation cover APD {:.2} PSNR {:.2} dB SSIM {:.4} | secret APD {:.2} PSNR {:.2} dB SSIM {:.4}",
                v.cover_apd, v.cover_psnr, v.cover_ssim, v.secret_apd, v.secret_psnr, v.secret_ssim
            ),
            false,
        );
        self.state.last_validation = Some(v);
        Ok(())
    }

    /// A `--robust` run: the secret's figures through each of [`validation_recordings`], a row
    /// each in `validation-recorded.csv` and a line in the log.
    fn validate_recorded(&self, step: u64, nets: &Nets, containers: &[RgbImage]) -> Result<()> {
        let Some(proxy) = &self.proxy else { return Ok(()) };
        let mut line = format!("step {step}: validation through recordings, secret");
        for (name, recording) in validation_recordings() {
            let m = validate_recorded(nets, containers, &self.val_secrets, proxy, recording, self.config.batch_size, &self.device)?;
            let row = [step.to_string(), name.to_string(), format!("{:.4}", m.apd), format!("{:.3}", m.psnr), format!("{:.5}", m.ssim)];
            csvlog::append_row(&self.out().join(VALIDATION_RECORDED_CSV), &VALIDATION_RECORDED_HEADER, &row)?;
            line += &format!(" | {name}: APD {:.2} PSNR {:.2} dB", m.apd, m.psnr);
        }
        self.log(line, false);
        Ok(())
    }

    /// Prints a line above the progress bar (with `progress`, or always if `always`).
    fn log(&self, line: String, always: bool) {
        if self.progress || always {
            if self.pb.is_hidden() { eprintln!("{line}") } else { self.pb.println(line) }
        }
    }

    /// Saves the checkpoint, the optimizer and `state.json`.
    fn save(&mut self) -> Result<()> {
        self.state.train_seconds = self.train_seconds + self.session_start.elapsed().as_secs_f64();
        save_checkpoint(self.out(), &self.varmap, &self.opt, &self.state)
    }

    /// Exports the models when the run is complete, and lists the run's files.
    fn finish(self, opts: &RunOptions) -> Result<TrainOutcome> {
        let out = self.config.out.clone();
        let state = self.state;
        let mut exported = Vec::new();
        if !opts.no_export && state.step == self.config.steps {
            let info = export_info(&state);
            let weights = nets::varmap_tensors(&self.varmap);
            exported.push(onnx::export(&weights, &out, &info)?);
            if let Some(dir) = &opts.export_to {
                exported.push(onnx::export(&weights, dir, &info)?);
            }
        }
        if opts.progress {
            eprintln!("run folder {}:", out.display());
            for f in [CHECKPOINT_FILE, OPTIMIZER_FILE, STATE_FILE, METRICS_CSV, VALIDATION_CSV, LOSS_PLOT, SAMPLES_DIR] {
                eprintln!("  {}", out.join(f).display());
            }
            for e in &exported {
                eprintln!("models: {} {}", e.hide.display(), e.reveal.display());
            }
            if state.step < self.config.steps {
                eprintln!("stopped at step {} of {}: continue with --resume", state.step, self.config.steps);
            }
        }
        Ok(TrainOutcome { out, step: state.step, validation: state.last_validation, exported })
    }
}

/// Loads the weights of another run (`--init-from`), widening narrower ones.
fn init_weights_from(varmap: &VarMap, path: &Path, device: &Device, progress: bool) -> Result<()> {
    let grown = load_weights_grown(varmap, path, device)?;
    if !grown.is_empty() && progress {
        eprintln!(
            "init: {} weight(s) of {} were narrower than these nets and were widened (new units start with zero outgoing weights, so the nets compute what they did): {}",
            grown.len(),
            path.display(),
            grown.join(", ")
        );
    }
    Ok(())
}

/// Decodes the run's images.
fn load_data(config: &TrainConfig, progress: bool) -> Result<Dataset> {
    let data_opts = DataOptions {
        max_side: config.max_side,
        val_fraction: config.val_fraction,
        seed: config.seed,
        max_images: config.max_images,
    };
    let t0 = Instant::now();
    let dataset = Dataset::load(&config.data, &data_opts)?;
    if progress {
        eprintln!(
            "data: {} — {} train / {} val images decoded in {:.1}s",
            dataset.description,
            dataset.train.len(),
            dataset.val.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(dataset)
}

/// The progress bar of a run of `steps` at `start` (hidden without `progress`).
fn progress_bar(progress: bool, steps: u64, start: u64) -> ProgressBar {
    let pb = if progress { ProgressBar::new(steps) } else { ProgressBar::hidden() };
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} (eta {eta}) {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb.set_position(start);
    pb
}

/// Steps per second, measured over windows of at least 5 s (the first step gives the first
/// figure).
struct StepRate {
    since: Instant,
    steps: u64,
    per_s: f64,
}

impl StepRate {
    fn new() -> Self {
        Self { since: Instant::now(), steps: 0, per_s: 0.0 }
    }

    /// Counts a step; returns the current rate.
    fn tick(&mut self) -> f64 {
        self.steps += 1;
        let since = self.since.elapsed().as_secs_f64();
        if since >= 5.0 || self.per_s == 0.0 {
            self.per_s = self.steps as f64 / since.max(1e-9);
            self.since = Instant::now();
            self.steps = 0;
        }
        self.per_s
    }
}

/// A new run's schedule must reach its peak rate: a warm-up as long as the run or longer
/// (`--warmup 200 --steps 20`) becomes a tenth of the run, with a message.
fn fit_warmup(mut config: TrainConfig) -> TrainConfig {
    if config.warmup > 0 && config.warmup >= config.steps {
        let warmup = config.steps / 10;
        let instead = match warmup {
            0 => "no warm-up (a tenth of the run is under a step)".to_string(),
            w => format!("warming up over {w} steps (a tenth of the run)"),
        };
        eprintln!(
            "warning: --warmup {} is not shorter than --steps {}: the learning rate would never reach its peak \
             (--lr {}); {instead} instead",
            config.warmup, config.steps, config.lr
        );
        config.warmup = warmup;
    }
    config
}

/// The folder of the ONNX models shipped with stego: `models/` of the project, which training
/// runs from (elsewhere an export still keeps existing files unless forced, with a plainer
/// message).
pub fn shipped_models_dir() -> PathBuf {
    PathBuf::from("models")
}

/// Refuses an export into `dir` that would replace model files there, unless `force`: the
/// run's own folder `run` is always written; elsewhere (the shipped `models/` above all)
/// existing files are kept.
pub fn check_export_target(dir: &Path, run: &Path, variant: Variant, fp16: bool, force: bool) -> Result<()> {
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if force || same(dir, run) {
        return Ok(());
    }
    let shipped = same(dir, &shipped_models_dir());
    for path in onnx::export_paths(dir, variant, fp16) {
        if path.exists() {
            if shipped {
                bail!(
                    "{} is a model shipped with stego: export elsewhere (the run folder has the models), \
                     or pass --force to replace it (`git checkout models/` brings the shipped one back)",
                    path.display()
                );
            }
            bail!("{} already exists: pass --force to replace it, or export to another folder", path.display());
        }
    }
    Ok(())
}

/// Exports the models of a checkpoint (`checkpoint.safetensors`, with `state.json` beside it
/// for the metadata when present) into `dir`.
///
/// With `fp16`, the files store float16 weights and run the convolutions in float16
/// (`hide-fp16.onnx`, …; see [`ExportInfo::fp16`]). Model files already in `dir` are kept
/// unless `force` or `dir` is the checkpoint's own folder (see [`check_export_target`]).
pub fn export_checkpoint(checkpoint: &Path, dir: &Path, fp16: bool, force: bool) -> Result<Exported> {
    let checkpoint = if checkpoint.is_dir() { checkpoint.join(CHECKPOINT_FILE) } else { checkpoint.to_path_buf() };
    let weights: HashMap<String, Tensor> = candle_core::safetensors::load(&checkpoint, &Device::Cpu)
        .with_context(|| format!("reading {}", checkpoint.display()))?;
    let arch = nets::nets_of_weights(&weights);
    let layout = nets::layout_of_weights(&weights);
    let expected = arch.parameters(layout, nets::modular_of_weights(&weights));
    let count = nets::parameter_count(&weights);
    if count != expected {
        bail!("{}: {count} parameters, the {} nets have {expected}", checkpoint.display(), arch.as_str());
    }
    let run = checkpoint.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let state_path = run.join(STATE_FILE);
    let info = if state_path.is_file() {
        ExportInfo { fp16, ..export_info(&RunState::read(&state_path)?) }
    } else {
        ExportInfo {
            data: "unknown".into(),
            training: "unknown".into(),
            metrics: "none".into(),
            // Paper checkpoints without a state.json predate the choice.
            hide_output: if arch == Variant::Paper { nets::HideOutput::before_option() } else { nets::HideOutput::default() },
            arch,
            layout,
            fp16,
            robust: false,
        }
    };
    check_export_target(dir, run, info.variant(), fp16, force)?;
    onnx::export(&weights, dir, &info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(c: TrainConfig, words: &[&str]) {
        let e = c.check().unwrap_err().to_string();
        assert!(words.iter().all(|w| e.contains(w)), "{e}");
    }

    #[test]
    fn options_that_do_not_go_together_are_refused_with_the_reason() {
        let modular = TrainConfig { hide_output: nets::HideOutput::Modular, noise_std: 0.0, ..TrainConfig::default() };
        modular.check().unwrap();
        refused(TrainConfig { noise_std: 0.002, ..modular.clone() }, &["--noise-std 0", "exact 8-bit values"]);
        refused(TrainConfig { arch: Variant::Paper, ..modular.clone() }, &["fast nets"]);
        refused(TrainConfig { recordings: Some(codec::RecordingMix::default()), crop: 64, ..modular }, &["lossy recording"]);
        refused(TrainConfig { context: true, crop: 72, ..TrainConfig::default() }, &["--crop 72", "multiple of 16", "--context"]);
        refused(TrainConfig { context: true, arch: Variant::Paper, ..TrainConfig::default() }, &["--context", "paper"]);
        refused(TrainConfig { context: true, trunk_lr_scale: 2.0, ..TrainConfig::default() }, &["--trunk-lr-scale 2"]);
        refused(TrainConfig { trunk_lr_scale: 0.5, ..TrainConfig::default() }, &["--trunk-lr-scale 0.5", "--context"]);
        refused(TrainConfig { slim: true, ..TrainConfig::default() }, &["--slim", "--hide-output modular", "residual"]);
        refused(TrainConfig { secret_pool: 3, ..TrainConfig::default() }, &["--secret-pool 3", "4x4 cells"]);
        refused(TrainConfig { secret_pool: 2, arch: Variant::Paper, ..TrainConfig::default() }, &["--secret-pool 2", "fast nets"]);
        refused(TrainConfig { grey_residual: true, hide_output: nets::HideOutput::Modular, noise_std: 0.0, ..TrainConfig::default() }, &["--grey-residual", "digit code"]);
    }
}
