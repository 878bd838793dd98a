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
    #[command(flatten)]
    config: TrainConfig,
    #[arg(long, help = format!(
        "Total optimizer steps [default: {}; with --resume: the saved run's, or this to change it]",
        d().steps
    ))]
    steps: Option<u64>,
    /// Train the `robust` kind of nets: the secret is revealed from a simulated recording of
    /// the container, drawn per batch (a quarter lossless, a tenth 4:2:0 only, 40% x264-like
    /// at a quantizer from --x264-qp, the rest JPEG quality 70-95), so that a likeness of the
    /// secret survives x264 and JPEG recordings in I420. --crop must be a multiple of 16.
    #[arg(long)]
    robust: bool,
    /// With --robust: the share (0-1) of the x264 and JPEG batches recorded by the real
    /// encoders (x264enc, jpegenc through GStreamer) instead of the proxies; those batches
    /// train the reveal net on what the real encoders leave (no gradient goes through them).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, requires = "robust")]
    real_codec: f64,
    /// With --robust: the x264 quantizers (QP) drawn for the x264 batches. x264enc's
    /// `pass=qual quantizer=23` (a rate factor) codes a lone 1280x720 frame at about QP 29.
    #[arg(long, value_name = "LO:HI", default_value = "16:30", value_parser = train::parse_range, requires = "robust")]
    x264_qp: (u32, u32),
    /// With --robust: the strength of x264's adaptive quantisation in the simulated x264
    /// batches (1.0 is x264enc's default aq-mode=1; 0 none): busy macroblocks get a coarser
    /// step, flat ones a finer one.
    #[arg(long, value_name = "STRENGTH", default_value_t = 0.0, requires = "robust")]
    x264_aq: f32,
    #[arg(long, value_enum, help = format!(
        "How the hide net forms the container: `residual` = sigmoid(logit(cover) + z), a residual over the \
         cover that trains much faster; `sigmoid` = sigmoid(z), the paper's plain output; `modular` (fast nets, \
         --noise-std 0) = the hide net puts out 30 values per 4×4 cell, written as base-9 digits into the \
         cover's 8-bit values modulo 9 (at most ±4 levels), which the reveal net reads back: a learned code for \
         lossless recordings [default: {}, or the --init-from run's]",
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

impl TrainArgs {
    /// The run's configuration and options.
    fn config(self) -> Result<(TrainConfig, RunOptions)> {
        let defaults = d();
        let a = self;
        // A fine-tune takes its nets from the run it starts from unless told otherwise.
        let (arch, hide_output) = match (&a.init_from, a.arch, a.hide_output) {
            (Some(dir), arch, hide_output) if arch.is_none() || hide_output.is_none() => {
                let (run_arch, run_output) = train::run_nets(dir)?;
                (arch.unwrap_or(run_arch), hide_output.unwrap_or(run_output))
            }
            (_, arch, hide_output) => (arch.unwrap_or(defaults.arch), hide_output.unwrap_or(defaults.hide_output)),
        };
        let config = TrainConfig {
            steps: a.steps.unwrap_or(defaults.steps),
            recordings: a.robust.then(|| training::codec::RecordingMix {
                real: a.real_codec,
                qp: (a.x264_qp.0 as f32, a.x264_qp.1 as f32),
                aq: a.x264_aq,
                ..Default::default()
            }),
            hide_output,
            arch,
            ..a.config
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
    // Ctrl-C during a checkpoint or export leaves no half-written temporary file behind.
    stego::fsio::remove_temporaries_on_interrupt();
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
