//! `stego`: hide an image in another, reveal it, evaluate the models, inspect model files.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use image::{Rgb, RgbImage};
use stego::contract::{Role, Variant};
use stego::frame::{Frame, FrameMut, PixelFormat, Resampler, SecretFit};
use stego::image_io::{load_rgb, new_rgb, save_png};
use stego::metrics::{Metrics, rgb8_to_planar};
use stego::runtime::{ExecutionProvider, Model, RuntimeOptions};
use stego::{Hider, Revealer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "stego/advice.rs"]
mod advice;
use stego::codec::Codec;

/// Deep steganography (Baluja, NIPS 2017): hide a full-size secret image inside a cover image.
#[derive(Parser, Debug)]
#[command(name = "stego", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Hide SECRET inside COVER and write the container (cover-sized, 8-bit PNG).
    Hide {
        /// Cover image (PNG or JPEG); the container has its size.
        #[arg(long)]
        cover: PathBuf,
        /// Secret image (PNG or JPEG); brought to the cover's size as --secret-fit says.
        #[arg(long)]
        secret: PathBuf,
        /// A secret of another size or aspect: fit (scaled to fit inside the cover, aspect kept,
        /// centred with black bars), crop (scaled to fill the cover, aspect kept, centre crop)
        /// or stretch (scaled to the cover's size, aspect not kept).
        #[arg(long, default_value = "fit", ignore_case = true, value_parser = secret_fit_parser())]
        secret_fit: SecretFit,
        /// Output container PNG: a file (replaced atomically), a symbolic link (its target is
        /// written), a FIFO or device (streamed), or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Reveal the secret hidden in CONTAINER and write it as PNG.
    Reveal {
        /// Container image (a lossless PNG written by `stego hide`).
        container: PathBuf,
        /// Output PNG (a file, link, FIFO or device, or - for standard output, as for hide).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Evaluate on a folder of images: pairs them as cover/secret (sorted by name: 1st hides
    /// the 2nd, 3rd the 4th, …; an odd last one hides the 1st), hides, rounds the container
    /// to 8 bits, reveals; prints APD/PSNR/SSIM and writes a figure.
    Eval {
        /// Folder of PNG/JPEG images.
        dir: PathBuf,
        /// Figure to write: one row per pair, in columns cover, container, secret, revealed,
        /// |cover−container|×magnify, |secret−revealed|×magnify, and the histograms of the
        /// per-pixel errors (out/ is created for the default).
        #[arg(long, default_value = DEFAULT_FIGURE)]
        figure: PathBuf,
        /// Also write the per-pair metrics as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        #[command(flatten)]
        shape: Shape,
        /// Also print 3-bit and 4-bit LSB substitution on the same pairs: the baseline that
        /// needs no network (3 bits: about the nets' cover error; 4 bits: a better secret at
        /// twice the cover error).
        #[arg(long)]
        lsb: bool,
        /// Record each container with a real encoder and reveal from the decoded frame:
        /// `none` (lossless, the default), `x264:Q` (H.264 in I420 4:2:0, x264enc
        /// pass=qual quantizer=Q: a rate factor, capped at x264enc's bitrate), `x264qp:Q`
        /// (constant quantizer Q, pass=quant), `x264` (x264enc's defaults), `jpeg:Q`
        /// (quality Q, I420).
        /// The cover columns are measured before the recording, the secret ones after.
        #[arg(long, default_value = "none", value_name = "CODEC")]
        codec: Codec,
        /// Take the secrets from this folder instead (the images of DIR are then all covers;
        /// cover i hides secret i, the secrets repeating if fewer), e.g. video frames as
        /// covers and photos as secrets.
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// Magnification of the difference images in the figure.
        #[arg(long, default_value_t = 10.0)]
        magnify: f32,
        #[command(flatten)]
        common: Common,
    },
    /// Print a model file's inputs, outputs, shapes and metadata.
    Info {
        /// ONNX model file.
        model: PathBuf,
        /// libonnxruntime.so to load [default: ORT_DYLIB_PATH, then .ort/ of the installed layout, then the system].
        #[arg(long)]
        onnxruntime: Option<PathBuf>,
    },
}

/// How `eval` shapes each image before use.
#[derive(Args, Debug, Clone, Copy)]
struct Shape {
    /// Scale each image so that its shorter side is N pixels (aspect kept) before use.
    #[arg(long, value_name = "N", conflicts_with = "size")]
    resize: Option<u32>,
    /// Then take the centred N×N crop.
    #[arg(long, value_name = "N", conflicts_with = "size")]
    crop: Option<u32>,
    /// Show each whole image as a W×H video frame: scaled (antialiased) to cover W×H with its
    /// aspect kept, then the centred W×H crop, e.g. `--size 640x480`.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    size: Option<(u32, u32)>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not a frame size: give WIDTHxHEIGHT, e.g. 640x480");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(format!("{w}x{h}: each side must be 1 to 16384 pixels"));
    }
    Ok((w, h))
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Folder holding the models: hide-fast.onnx and reveal-fast.onnx, hide-robust.onnx and
    /// reveal-robust.onnx with --variant robust, hide.onnx and reveal.onnx with --variant
    /// paper [default: STEGO_MODEL_DIR, else models/ of the
    /// installed layout (STEGO_HOME, or a folder above the executable), else the system's]
    #[arg(long, global = true)]
    model_dir: Option<PathBuf>,
    /// Which models to take from --model-dir: fast (the real-time nets, the better shipped
    /// pair: hide-fast.onnx, reveal-fast.onnx), robust (the real-time nets trained through
    /// x264 and JPEG recordings: hide-robust.onnx, reveal-robust.onnx) or paper (Baluja's nets,
    /// ~50x slower: hide.onnx, reveal.onnx); --hide-model and --reveal-model override it.
    #[arg(
        long,
        global = true,
        default_value = "fast",
        ignore_case = true,
        value_parser = variant_parser()
    )]
    variant: Variant,
    /// Hiding model file (overrides --model-dir and --variant).
    #[arg(long, global = true)]
    hide_model: Option<PathBuf>,
    /// Reveal model file (overrides --model-dir and --variant).
    #[arg(long, global = true)]
    reveal_model: Option<PathBuf>,
    /// Where the models run: cpu, cuda, or auto (CUDA when usable, else CPU).
    #[arg(long, global = true, default_value = "cpu", value_parser = parse_provider)]
    execution_provider: ExecutionProvider,
    /// CUDA device id.
    #[arg(long, global = true, default_value_t = 0)]
    device: i32,
    /// onnxruntime intra-op threads, 1 to 256 [default: one per physical core].
    #[arg(long, global = true, value_parser = parse_threads)]
    threads: Option<usize>,
    /// libonnxruntime.so to load [default: ORT_DYLIB_PATH, then .ort/ of the installed layout, then the system].
    #[arg(long, global = true)]
    onnxruntime: Option<PathBuf>,
}

/// `paper` or `fast` (listed in --help, any case) as a [`Variant`].
fn variant_parser() -> impl clap::builder::TypedValueParser<Value = Variant> {
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Variant::NAMES).map(|s: String| Variant::from_name(&s).expect("a listed variant name"))
}

/// `stretch`, `fit` or `crop` (any case) as a [`SecretFit`].
fn secret_fit_parser() -> impl clap::builder::TypedValueParser<Value = SecretFit> {
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(SecretFit::NAMES).map(|s: String| s.parse().expect("a listed secret fit"))
}

fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a whole number: give a thread count from 1 to {}", stego::runtime::MAX_THREADS))?;
    stego::runtime::check_threads(n).map_err(|e| e.to_string())?;
    Ok(n)
}

fn parse_provider(s: &str) -> Result<ExecutionProvider, String> {
    s.parse().map_err(|e: stego::Error| e.to_string())
}

impl Common {
    fn options(&self) -> RuntimeOptions {
        RuntimeOptions { library: self.onnxruntime.clone(), execution_provider: self.execution_provider, device_id: self.device, threads: self.threads }
    }
    /// The model file of `role`: --hide-model/--reveal-model, else the --variant's file in
    /// --model-dir, else as the library searches (see `stego::runtime`).
    fn model_path(&self, role: Role) -> Result<PathBuf> {
        let explicit = match role {
            Role::Hide => &self.hide_model,
            Role::Reveal => &self.reveal_model,
        };
        if let Some(p) = explicit {
            return Ok(p.clone());
        }
        Ok(stego::resolve_model(self.model_dir.as_deref(), self.variant, role)?)
    }
    fn hider(&self) -> Result<Hider> {
        let h = Hider::new(&self.model_path(Role::Hide)?, &self.options())?;
        note(h.model());
        Ok(h)
    }
    fn revealer(&self) -> Result<Revealer> {
        let r = Revealer::new(&self.model_path(Role::Reveal)?, &self.options())?;
        note(r.model());
        Ok(r)
    }
}

fn note(m: &Model) {
    if let Some(n) = m.provider_note() {
        eprintln!("stego: warning: {n}");
    }
}

fn frame(img: &RgbImage) -> Result<Frame<'_>> {
    Ok(Frame::packed(img.as_raw(), PixelFormat::Rgb, img.width() as usize, img.height() as usize)?)
}

fn hide_image(hider: &mut Hider, cover: &RgbImage, secret: &RgbImage) -> Result<RgbImage> {
    let mut out = new_rgb(cover.width(), cover.height())?;
    let (w, h) = (cover.width() as usize, cover.height() as usize);
    hider.hide(&frame(cover)?, &frame(secret)?, &mut FrameMut::packed(&mut out, PixelFormat::Rgb, w, h)?)?;
    Ok(out)
}

fn reveal_image(revealer: &mut Revealer, container: &RgbImage) -> Result<RgbImage> {
    let mut out = new_rgb(container.width(), container.height())?;
    let (w, h) = (container.width() as usize, container.height() as usize);
    revealer.reveal(&frame(container)?, &mut FrameMut::packed(&mut out, PixelFormat::Rgb, w, h)?)?;
    Ok(out)
}

/// Checks the output path given to `flag` before any work: its folder exists and it is not a
/// folder itself.
fn check_output(flag: &str, path: &Path) -> Result<()> {
    stego::fsio::output_target(path).map_err(|e| anyhow::anyhow!("{flag} {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of standard output goes away
    // (`stego info … | head`) instead of failing on the next write.
    // SAFETY: called first in main, before any other thread exists; SIG_DFL is a valid action.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    stego::fsio::remove_temporaries_on_interrupt();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let advice = advice::for_chain(&e).map(|a| format!("; {a}")).unwrap_or_default();
            eprintln!("stego: error: {e:#}{advice}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Hide { cover, secret, secret_fit, output, common } => {
            check_output("-o", &output)?;
            let c = load_rgb(&cover)?;
            let s = load_rgb(&secret)?;
            let share = stego::frame::saturated_share(&frame(&c)?);
            if share > stego::frame::SATURATED_WARNING_SHARE {
                eprintln!(
                    "stego: warning: {:.0}% of the cover's pixels have a colour channel at 0 or 255: the container cannot carry \
                     the secret well there (it will come back poorly); choose a cover with fewer clipped or flat colours",
                    100.0 * share
                );
            }
            let mut hider = common.hider()?;
            hider.set_secret_fit(secret_fit);
            let container = hide_image(&mut hider, &c, &s)?;
            save_png(&container, &output)?;
            eprintln!("stego: wrote container {} ({}x{})", output.display(), c.width(), c.height());
        }
        Command::Reveal { container, output, common } => {
            check_output("-o", &output)?;
            let c = load_rgb(&container)?;
            let mut revealer = common.revealer()?;
            let revealed = reveal_image(&mut revealer, &c)?;
            save_png(&revealed, &output)?;
            eprintln!("stego: wrote revealed secret {} ({}x{})", output.display(), c.width(), c.height());
        }
        Command::Info { model, onnxruntime } => info(&model, &RuntimeOptions { library: onnxruntime, ..Default::default() })?,
        Command::Eval { dir, figure, csv, shape, lsb, codec, secrets, magnify, common } => {
            if figure == Path::new(DEFAULT_FIGURE) {
                std::fs::create_dir_all("out").context("creating out/ for the figure")?;
            }
            check_output("--figure", &figure)?;
            if let Some(c) = &csv {
                check_output("--csv", c)?;
            }
            eval(&dir, &figure, csv.as_deref(), shape, EvalExtras { lsb, codec, secrets }, magnify, &common)?;
        }
    }
    Ok(())
}

fn info(model: &Path, options: &RuntimeOptions) -> Result<()> {
    let info = Model::inspect(model, options)?;
    println!("model: {}", info.path.display());
    if let Some(p) = &info.producer {
        println!("producer: {p}");
    }
    if let Some(d) = &info.description {
        println!("description: {d}");
    }
    let dims = |t: &stego::runtime::TensorInfo| -> String {
        t.shape
            .iter()
            .enumerate()
            .map(|(i, d)| if *d < 0 { t.dim_names.get(i).filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| "?".into()) } else { d.to_string() })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for t in &info.inputs {
        println!("input  {:<10} {} [{}]", t.name, t.element_type, dims(t));
    }
    for t in &info.outputs {
        println!("output {:<10} {} [{}]", t.name, t.element_type, dims(t));
    }
    for (k, v) in &info.metadata {
        println!("{k}: {v}");
    }
    if let Some(lib) = stego::runtime::loaded_library() {
        println!("onnxruntime: {}", lib.display());
    }
    Ok(())
}

/// The PNG/JPEG files of `dir`, sorted by name; at least `min`.
fn list_images(dir: &Path, min: usize) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")))
        .collect();
    v.sort();
    if v.len() < min {
        bail!("folder {} holds {} PNG/JPEG image(s); eval needs at least {min} there", dir.display(), v.len());
    }
    Ok(v)
}

fn prepare(img: RgbImage, shape: Shape) -> Result<RgbImage> {
    let Shape { resize, crop, size } = shape;
    let mut img = img;
    if let Some((fw, fh)) = size {
        let (w, h) = (img.width() as f64, img.height() as f64);
        let s = (fw as f64 / w).max(fh as f64 / h);
        let (nw, nh) = (((w * s).round() as u32).max(fw), ((h * s).round() as u32).max(fh));
        img = resize_rgb(&img, nw, nh)?;
        img = image::imageops::crop_imm(&img, (nw - fw) / 2, (nh - fh) / 2, fw, fh).to_image();
    }
    if let Some(n) = resize {
        if n == 0 {
            bail!("--resize 0: give a positive size");
        }
        let (w, h) = (img.width(), img.height());
        let s = n as f64 / w.min(h) as f64;
        let (nw, nh) = (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1));
        img = resize_rgb(&img, nw, nh)?;
    }
    if let Some(n) = crop {
        if n == 0 || n > img.width() || n > img.height() {
            bail!("--crop {n}: the image is {}x{}; give a size from 1 to its shorter side", img.width(), img.height());
        }
        let (x, y) = ((img.width() - n) / 2, (img.height() - n) / 2);
        img = image::imageops::crop_imm(&img, x, y, n, n).to_image();
    }
    Ok(img)
}

/// Resizes with the library's resampler (the same one that scales secrets).
fn resize_rgb(img: &RgbImage, nw: u32, nh: u32) -> Result<RgbImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (nw_, nh_) = (nw as usize, nh as usize);
    let src = rgb8_to_planar(img.as_raw(), w, h);
    let mut dst = stego::frame::try_zeroed::<f32>(3 * nw_ * nh_, "the resized image")?;
    Resampler::default().resample(&src, w, h, &mut dst, nw_, nh_)?;
    let mut out = new_rgb(nw, nh)?;
    stego::frame::planar_to_frame(&dst, nw_, nh_, &mut FrameMut::packed(&mut out, PixelFormat::Rgb, nw_, nh_)?, None)?;
    Ok(out)
}

struct PairResult {
    name: String,
    cover: Metrics,
    secret: Metrics,
    images: [RgbImage; 4], // cover, container, secret (at cover size), revealed
    /// 3-bit and 4-bit LSB substitution on the same pair (with `--lsb`).
    lsb: Vec<(u32, Metrics, Metrics)>,
}

/// What `eval` adds to the model's rows.
#[derive(Debug, Clone)]
struct EvalExtras {
    /// Also the 3-bit and 4-bit LSB rows.
    lsb: bool,
    /// The recording every container goes through before it is revealed.
    codec: Codec,
    /// A folder of secrets (the main folder then holds only covers).
    secrets: Option<PathBuf>,
}

/// `bits`-bit LSB substitution of `secret` into `cover`, its container recorded with `codec`:
/// (cover metrics before the recording, secret metrics after).
fn lsb_pair(cover: &RgbImage, secret: &RgbImage, bits: u32, codec: Codec) -> Result<(u32, Metrics, Metrics)> {
    let (w, h) = (cover.width() as usize, cover.height() as usize);
    let container = RgbImage::from_raw(cover.width(), cover.height(), stego::lsb::hide(cover.as_raw(), secret.as_raw(), bits)).context("LSB container size")?;
    let revealed = stego::lsb::reveal(codec.round_trip(&container)?.as_raw(), bits);
    Ok((bits, Metrics::rgb8(cover.as_raw(), container.as_raw(), w, h), Metrics::rgb8(secret.as_raw(), &revealed, w, h)))
}

#[allow(clippy::too_many_arguments)]
fn eval(dir: &Path, figure: &Path, csv: Option<&Path>, shape: Shape, extras: EvalExtras, magnify: f32, common: &Common) -> Result<()> {
    let EvalExtras { lsb, codec, secrets } = extras;
    let (covers, secret_files, pairs) = match &secrets {
        Some(sdir) => {
            let (c, s) = (list_images(dir, 1)?, list_images(sdir, 1)?);
            let pairs: Vec<(usize, usize)> = (0..c.len()).map(|i| (i, i % s.len())).collect();
            (c, s, pairs)
        }
        None => {
            let files = list_images(dir, 2)?;
            let mut pairs: Vec<(usize, usize)> = (0..files.len() / 2).map(|k| (2 * k, 2 * k + 1)).collect();
            if files.len() % 2 == 1 {
                pairs.push((files.len() - 1, 0));
            }
            (files.clone(), files, pairs)
        }
    };
    let mut hider = common.hider()?;
    let mut revealer = common.revealer()?;
    let bar = indicatif::ProgressBar::new(pairs.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{spinner} eval [{bar:30}] {pos}/{len} pairs {elapsed_precise} ETA {eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut results = Vec::new();
    for (ci, si) in pairs {
        let name = format!(
            "{} <- {}",
            covers[ci].file_name().unwrap_or_default().to_string_lossy(),
            secret_files[si].file_name().unwrap_or_default().to_string_lossy()
        );
        bar.set_message(name.clone());
        let cover = prepare(load_rgb(&covers[ci])?, shape)?;
        let secret_raw = prepare(load_rgb(&secret_files[si])?, shape)?;
        let secret = if secret_raw.dimensions() == cover.dimensions() { secret_raw } else { resize_rgb(&secret_raw, cover.width(), cover.height())? };
        let container = hide_image(&mut hider, &cover, &secret)?;
        // The container is an 8-bit image here, exactly what a PNG file stores; --codec
        // records it with a lossy encoder first.
        let revealed = reveal_image(&mut revealer, &codec.round_trip(&container)?)?;
        let (w, h) = (cover.width() as usize, cover.height() as usize);
        let cm = Metrics::rgb8(cover.as_raw(), container.as_raw(), w, h);
        let sm = Metrics::rgb8(secret.as_raw(), revealed.as_raw(), w, h);
        let lsb = if lsb { vec![lsb_pair(&cover, &secret, 3, codec)?, lsb_pair(&cover, &secret, 4, codec)?] } else { Vec::new() };
        results.push(PairResult { name, cover: cm, secret: sm, images: [cover, container, secret, revealed], lsb });
        bar.inc(1);
    }
    bar.finish_and_clear();

    if codec != Codec::None {
        println!("recording: {codec} (cover columns: the container before it; secret columns: revealed after it)");
    }
    println!("{:<64} {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7}", "pair (cover <- secret)", "cover APD", "PSNR dB", "SSIM", "secr APD", "PSNR dB", "SSIM");
    for r in &results {
        print_row(&truncate(&r.name, 64), &r.cover, &r.secret);
    }
    print_row(
        &format!("mean of {} pairs", results.len()),
        &mean_metrics(results.iter().map(|r| &r.cover)),
        &mean_metrics(results.iter().map(|r| &r.secret)),
    );
    for k in 0..results.first().map_or(0, |r| r.lsb.len()) {
        print_row(
            &format!("{}-bit LSB substitution, same pairs", results[0].lsb[k].0),
            &mean_metrics(results.iter().map(|r| &r.lsb[k].1)),
            &mean_metrics(results.iter().map(|r| &r.lsb[k].2)),
        );
    }
    if let Some(csv) = csv {
        let mut s = String::from("pair,cover_apd,cover_psnr,cover_ssim,secret_apd,secret_psnr,secret_ssim\n");
        for r in &results {
            s += &format!("\"{}\",{:.4},{:.4},{:.5},{:.4},{:.4},{:.5}\n", r.name.replace('"', "\"\""), r.cover.apd, r.cover.psnr, r.cover.ssim, r.secret.apd, r.secret.psnr, r.secret.ssim);
        }
        stego::fsio::write_output(csv, |w| std::io::Write::write_all(w, s.as_bytes()))?;
    }
    let fig = draw_figure(&results, magnify);
    save_png(&fig, figure)?;
    eprintln!("stego: wrote figure {}", figure.display());
    Ok(())
}

/// One line of `eval`'s table: a label, then the cover's and the secret's metrics.
fn print_row(label: &str, cover: &Metrics, secret: &Metrics) {
    println!(
        "{label:<64} {:>9.3} {:>9.2} {:>7.4} | {:>9.3} {:>9.2} {:>7.4}",
        cover.apd, cover.psnr, cover.ssim, secret.apd, secret.psnr, secret.ssim
    );
}

/// The mean of each metric (the evaluation figures training validation reports too).
fn mean_metrics<'a>(all: impl Iterator<Item = &'a Metrics>) -> Metrics {
    all.collect::<stego::eval::PairMeans>().mean()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("…{}", s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect::<String>()) }
}

/// `stego eval`'s figure unless --figure names one.
const DEFAULT_FIGURE: &str = "out/stego-eval.png";

const TILE: u32 = 160;
const GAP: u32 = 6;

/// One row per pair, in columns: cover, container, secret, revealed, |cover−container|×k,
/// |secret−revealed|×k, then the histograms of per-pixel errors (cover errors in blue,
/// secret errors in red; x: absolute error 0–255 on a log-like scale of bins, y: frequency).
fn draw_figure(results: &[PairResult], magnify: f32) -> RgbImage {
    let cols = 7u32;
    let width = cols * TILE + (cols + 1) * GAP;
    let height = results.len() as u32 * (TILE + GAP) + GAP;
    let mut fig = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (row, r) in results.iter().enumerate() {
        let y0 = GAP + row as u32 * (TILE + GAP);
        let [cover, container, secret, revealed] = &r.images;
        let dc = diff_image(cover, container, magnify);
        let ds = diff_image(secret, revealed, magnify);
        for (col, img) in [cover, container, secret, revealed, &dc, &ds].into_iter().enumerate() {
            let x0 = GAP + col as u32 * (TILE + GAP);
            let t = thumb(img);
            let (ox, oy) = (x0 + (TILE - t.width()) / 2, y0 + (TILE - t.height()) / 2);
            image::imageops::overlay(&mut fig, &t, ox as i64, oy as i64);
        }
        let x0 = GAP + 6 * (TILE + GAP);
        draw_histograms(&mut fig, x0, y0, cover, container, secret, revealed);
    }
    fig
}

fn thumb(img: &RgbImage) -> RgbImage {
    let s = TILE as f64 / img.width().max(img.height()) as f64;
    let (w, h) = (((img.width() as f64 * s).round() as u32).max(1), ((img.height() as f64 * s).round() as u32).max(1));
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

fn diff_image(a: &RgbImage, b: &RgbImage, k: f32) -> RgbImage {
    let mut out = RgbImage::new(a.width(), a.height());
    for ((o, pa), pb) in out.pixels_mut().zip(a.pixels()).zip(b.pixels()) {
        for c in 0..3 {
            o[c] = ((pa[c] as f32 - pb[c] as f32).abs() * k).min(255.0) as u8;
        }
    }
    out
}

fn draw_histograms(fig: &mut RgbImage, x0: u32, y0: u32, cover: &RgbImage, container: &RgbImage, secret: &RgbImage, revealed: &RgbImage) {
    // 32 bins of |error| 0..63 (2 levels each); errors ≥ 64 land in the last bin.
    const BINS: usize = 32;
    let hist = |a: &RgbImage, b: &RgbImage| {
        let mut h = [0u64; BINS];
        for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
            h[((x.abs_diff(*y) as usize) / 2).min(BINS - 1)] += 1;
        }
        let total: u64 = h.iter().sum::<u64>().max(1);
        h.map(|c| c as f64 / total as f64)
    };
    let hc = hist(cover, container);
    let hs = hist(secret, revealed);
    let peak = hc.iter().chain(hs.iter()).cloned().fold(0.0, f64::max).max(1e-9);
    let bw = TILE / BINS as u32;
    // axes
    for x in x0..x0 + TILE {
        fig.put_pixel(x, y0 + TILE - 1, Rgb([0, 0, 0]));
    }
    for y in y0..y0 + TILE {
        fig.put_pixel(x0, y, Rgb([0, 0, 0]));
    }
    for (i, (c, s)) in hc.iter().zip(hs.iter()).enumerate() {
        let bx = x0 + 1 + i as u32 * bw;
        for (val, color, off) in [(*c, Rgb([40, 90, 220]), 0), (*s, Rgb([220, 50, 40]), bw / 2)] {
            let hgt = ((val / peak) * (TILE - 2) as f64).round() as u32;
            for x in bx + off..(bx + off + (bw / 2).max(1)).min(x0 + TILE) {
                for y in (y0 + TILE - 1 - hgt)..(y0 + TILE - 1) {
                    fig.put_pixel(x, y, color);
                }
            }
        }
    }
}
