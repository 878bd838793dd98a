//! `training`: train the deep-steganography nets and export them to ONNX.
//!
//! `cargo run --release -p training` trains the fast nets with the defaults on `data/images`
//! into `runs/default` (models included); `training export --checkpoint runs/default` writes
//! the ONNX files of a checkpoint. The defaults of the options are [`TrainConfig::default`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use training::train::{self, RunOptions, TrainConfig};

/// Train Baluja's deep-steganography nets (prep + hide, reveal) and export them to ONNX.
///
/// Without a subcommand, `train` runs with the options given (all have defaults).
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train (the default): writes checkpoints, metrics, figures and the ONNX models to --out.
    Train(Box<TrainArgs>),
    /// Export the ONNX models of a checkpoint (hide-fast.onnx, reveal-fast.onnx; hide.onnx,
    /// reveal.onnx for the paper nets), into the checkpoint's folder unless --out.
    Export(ExportArgs),
    /// Redraw a run folder's loss.png from its metrics.csv and validation.csv (after joining
    /// the CSV files of a run continued in another folder, say).
    Plot(PlotArgs),
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// The run folder (holding metrics.csv and validation.csv).
    #[arg(long, value_name = "DIR", default_value_os_t = d().out)]
    run: PathBuf,
}

/// The defaults of the options.
fn d() -> TrainConfig {
    TrainConfig::default()
}

#[derive(Args, Debug, Clone)]
struct TrainArgs {
    /// Data folder: Tiny ImageNet layout (train/<wnid>/images, val/images +
    /// val_annotations.txt) or any folder of .png/.jpg images (searched recursively; a
    /// --val-fraction of it is held out). Repeat to combine folders, e.g. extracted video frames.
    #[arg(long, value_name = "DIR", default_values_os_t = d().data)]
    data: Vec<PathBuf>,
    /// Output folder of the run (checkpoints, metrics.csv, validation.csv, loss.png,
    /// samples/ and, at the end, the ONNX models: hide-fast.onnx, reveal-fast.onnx, or
    /// hide.onnx, reveal.onnx for the paper nets).
    #[arg(long, short, value_name = "DIR", default_value_os_t = d().out)]
    out: PathBuf,
    #[arg(long, help = format!(
        "Total optimizer steps [default: {}; with --resume: the saved run's, or this to change it]",
        d().steps
    ))]
    steps: Option<u64>,
    /// Cover/secret pairs per step.
    #[arg(long, short, default_value_t = d().batch_size)]
    batch_size: usize,
    /// Side of the square training crops, in pixels.
    #[arg(long, default_value_t = d().crop)]
    crop: u32,
    /// Peak learning rate of AdamW (reached after --warmup steps, then cosine decay).
    #[arg(long, default_value_t = d().lr)]
    lr: f64,
    /// Linear learning-rate warmup, in steps (a warm-up not shorter than --steps becomes a
    /// tenth of the run, with a message).
    #[arg(long, default_value_t = d().warmup)]
    warmup: u64,
    /// Learning rate at the last step, as a fraction of --lr.
    #[arg(long, default_value_t = d().final_lr_fraction)]
    final_lr_fraction: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = d().weight_decay)]
    weight_decay: f64,
    /// Weight of the secret error in the loss ‖C−C'‖² + β‖S−S'‖² (0.75 as in the paper's
    /// reference implementation: the cover error counts a little more, keeping the container
    /// close to the cover).
    #[arg(long, default_value_t = d().beta)]
    beta: f64,
    /// How the loss measures the errors: `l2` = squared, the paper's ‖C−C'‖² + β‖S−S'‖²; `l1` =
    /// absolute, |C−C'| + β|S−S'|, the quantity APD reports (under L1 every pixel's error pulls
    /// with the same strength, so the secret needs a larger --beta than under L2 to keep the
    /// same balance).
    #[arg(long, value_enum, default_value_t = d().distance)]
    distance: training::train::Distance,
    /// Standard deviation of the Gaussian noise added to the (8-bit rounded) container before
    /// the reveal net during training, on the [0, 1] scale (0.01 ≈ 2.5 levels of 255).
    #[arg(long, default_value_t = d().noise_std)]
    noise_std: f64,
    /// Exposure augmentation: scale each crop's brightness by a random gain in
    /// [1/(1+X), 1+X] (log-uniform), clipping at 255, so the nets also learn covers with
    /// blown-out highlights. 0 turns it off.
    #[arg(long, value_name = "X", default_value_t = d().exposure)]
    exposure: f64,
    /// Colour augmentation: scale each channel of a crop by its own random gain in
    /// [1/(1+X), 1+X] (log-uniform), on top of --exposure: white balance and saturation vary.
    /// 0 turns it off.
    #[arg(long, value_name = "X", default_value_t = d().colour)]
    colour: f64,
    /// Show the photos as video frames: each crop is cut from the photo downscaled
    /// (antialiased) to a shorter side drawn log-uniformly from LO..HI pixels (e.g. 240:1080,
    /// the sizes people stream), instead of at any scale between the crop and the whole photo.
    #[arg(long, value_name = "LO:HI", value_parser = parse_range)]
    frame_side: Option<(u32, u32)>,
    /// Train the `robust` kind of nets: the secret is revealed from a simulated recording of
    /// the container, drawn per batch (a quarter lossless, a tenth 4:2:0 only, 40% x264-like
    /// at quantizer 16-30, the rest JPEG quality 70-95), so it survives x264 and JPEG
    /// recordings in I420. --crop must be a multiple of 16.
    #[arg(long)]
    robust: bool,
    /// Seed of the initial weights, the validation split, the batches and the noise.
    #[arg(long, default_value_t = d().seed)]
    seed: u64,
    /// Save a checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = d().checkpoint_every, value_name = "N")]
    checkpoint_every: u64,
    /// Validate every N steps (and at the end): APD/PSNR/SSIM, sample figure, loss plot.
    #[arg(long, default_value_t = d().val_every, value_name = "N")]
    val_every: u64,
    /// Number of fixed validation (cover, secret) pairs.
    #[arg(long, default_value_t = d().val_pairs)]
    val_pairs: usize,
    /// Fraction of a plain image folder held out for validation (chosen by --seed).
    #[arg(long, default_value_t = d().val_fraction)]
    val_fraction: f64,
    /// Longest side of the images kept in memory (larger photos are downscaled once on load).
    #[arg(long, default_value_t = d().max_side)]
    max_side: u32,
    /// Use at most N training images per data folder.
    #[arg(long, value_name = "N")]
    max_images: Option<usize>,

    #[arg(long, value_enum, help = format!(
        "How the hide net forms the container: `residual` = sigmoid(logit(cover) + z), a residual over the \
         cover that trains much faster; `sigmoid` = sigmoid(z), the paper's plain output \
         [default: {}, or the --init-from run's]",
        d().hide_output.as_str()
    ))]
    hide_output: Option<training::nets::HideOutput>,
    #[arg(long, value_parser = arch_parser(), help = format!(
        "Which nets to train: `fast` = the real-time nets on 4×4 cells, the runtime's default variant \
         (hide-fast.onnx, reveal-fast.onnx; --crop must be a multiple of 4); `paper` = Baluja's nets, \
         ~50× costlier (hide.onnx, reveal.onnx) [default: {}, or the --init-from run's]",
        d().arch.as_str()
    ))]
    arch: Option<stego::Variant>,
    /// Continue the run in --out from its last checkpoint: same step count, weights, AdamW
    /// moments and schedule; the saved settings win over the options given, except --steps.
    #[arg(long)]
    resume: bool,
    /// Stop after N steps in this session (continue later with --resume).
    #[arg(long, value_name = "N")]
    session_steps: Option<u64>,
    /// Start a new run from the weights of the run in DIR (its --arch and --hide-output, which
    /// this run takes unless given) instead of random ones: a fine-tune with this run's own settings (e.g. --beta,
    /// --noise-std, --max-side), learning-rate schedule and fresh AdamW moments.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Also write the models to this folder at the end (they are always written to --out).
    /// Model files already there are kept (checked before training starts) unless --force.
    #[arg(long, value_name = "DIR")]
    export_to: Option<PathBuf>,
    /// Let --export-to replace model files there, the ones shipped in models/ included.
    #[arg(long, requires = "export_to")]
    force: bool,
    /// Do not export ONNX models at the end.
    #[arg(long)]
    no_export: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// checkpoint.safetensors, or a run folder holding one (its state.json supplies the
    /// training metadata).
    #[arg(long, value_name = "PATH", default_value_os_t = d().out)]
    checkpoint: PathBuf,
    /// Folder to write the models into [default: the checkpoint's folder]. Model files already
    /// there are kept unless --force (the checkpoint's own folder excepted).
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Let --out replace model files there, the ones shipped in models/ included.
    #[arg(long)]
    force: bool,
    /// Write float16 models (weights and convolutions in float16, inputs and outputs float32),
    /// named `*-fp16.onnx`: for GPUs.
    #[arg(long)]
    fp16: bool,
}

/// `--arch`: `paper` or `fast`, listed in the help.
fn arch_parser() -> impl clap::builder::TypedValueParser<Value = stego::Variant> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(training::nets::ARCH_NAMES)
        .map(|name: String| training::nets::parse_arch(&name).expect("one of ARCH_NAMES"))
}

/// `LO:HI` as a pair of sizes.
fn parse_range(s: &str) -> std::result::Result<(u32, u32), String> {
    let (lo, hi) = s.split_once(':').ok_or_else(|| format!("'{s}' is not LO:HI (e.g. 240:1080)"))?;
    let n = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("'{v}' in '{s}' is not a size in pixels"));
    Ok((n(lo)?, n(hi)?))
}

impl TrainArgs {
    /// The run's configuration and options.
    fn config(self) -> Result<(TrainConfig, RunOptions)> {
        let defaults = d();
        let a = self;
        let data = a.data;
        // A fine-tune takes its nets from the run it starts from unless told otherwise.
        let (arch, hide_output) = match (&a.init_from, a.arch, a.hide_output) {
            (Some(dir), arch, hide_output) if arch.is_none() || hide_output.is_none() => {
                let (run_arch, run_output) = train::run_nets(dir)?;
                (arch.unwrap_or(run_arch), hide_output.unwrap_or(run_output))
            }
            (_, arch, hide_output) => (arch.unwrap_or(defaults.arch), hide_output.unwrap_or(defaults.hide_output)),
        };
        let config = TrainConfig {
            data,
            out: a.out,
            steps: a.steps.unwrap_or(defaults.steps),
            batch_size: a.batch_size,
            crop: a.crop,
            lr: a.lr,
            warmup: a.warmup,
            final_lr_fraction: a.final_lr_fraction,
            weight_decay: a.weight_decay,
            beta: a.beta,
            distance: a.distance,
            noise_std: a.noise_std,
            exposure: a.exposure,
            colour: a.colour,
            frame_side: a.frame_side,
            recordings: a.robust.then(training::codec::RecordingMix::default),
            seed: a.seed,
            checkpoint_every: a.checkpoint_every,
            val_every: a.val_every,
            val_pairs: a.val_pairs,
            val_fraction: a.val_fraction,
            max_side: a.max_side,
            max_images: a.max_images,
            hide_output,
            arch,
            rewarm_at: Vec::new(),
            init_from: None,
        };
        let opts = RunOptions {
            resume: a.resume,
            progress: !a.quiet,
            export_to: a.export_to,
            no_export: a.no_export,
            force: a.force,
            max_session_steps: a.session_steps,
            resume_steps: a.steps,
            init_from: a.init_from,
        };
        Ok((config, opts))
    }
}

fn run_train(a: TrainArgs) -> Result<()> {
    let (config, opts) = a.config()?;
    if !opts.resume
        && config.data == d().data
        && !config.data[0].is_dir()
    {
        bail!(
            "{} is not a folder here: the default data folder is relative to the project root; \
             run from there or pass --data DIR",
            config.data[0].display()
        );
    }
    let outcome = train::train(config, &opts)?;
    if !opts.progress {
        for e in &outcome.exported {
            println!("{}\n{}", e.hide.display(), e.reveal.display());
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => run_train(cli.train),
        Some(Command::Train(a)) => run_train(*a),
        Some(Command::Export(e)) => {
            let out = match e.out {
                Some(out) => out,
                None if e.checkpoint.is_dir() => e.checkpoint.clone(),
                None => e.checkpoint.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).into(),
            };
            let x = train::export_checkpoint(&e.checkpoint, &out, e.fp16, e.force)?;
            println!("{}\n{}", x.hide.display(), x.reveal.display());
            Ok(())
        }
        Some(Command::Plot(p)) => {
            let metrics = p.run.join(train::METRICS_CSV);
            if !metrics.is_file() {
                bail!("{} does not exist: pass --run with a training run folder", metrics.display());
            }
            train::draw_loss_plot(&p.run)?;
            println!("{}", p.run.join(train::LOSS_PLOT).display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The options' defaults are TrainConfig's: a bare `training` trains TrainConfig::default().
    #[test]
    fn defaults_are_train_configs() {
        for args in [&["training"][..], &["training", "train"]] {
            let cli = Cli::try_parse_from(args).unwrap();
            let a = match cli.command {
                Some(Command::Train(a)) => *a,
                _ => cli.train,
            };
            let (config, opts) = a.config().unwrap();
            assert_eq!(config, d());
            assert!(opts.export_to.is_none() && !opts.no_export && !opts.resume && !opts.force);
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains(&format!("[default: {}; with --resume", d().steps)), "{help}");
        assert!(help.contains(&format!("[default: {}, or the --init-from", d().arch.as_str())), "{help}");
    }
}
