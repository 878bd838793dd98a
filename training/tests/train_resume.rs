//! A tiny run end to end: train on generated images, checkpoint, resume, export.

use std::path::Path;

use candle_core::Device;
use image::{Rgb, RgbImage};
use training::train::{self, RunOptions, RunState, TrainConfig};

fn write_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for k in 0..n {
        let img = RgbImage::from_fn(24 + 3 * k as u32, 20 + 2 * k as u32, |x, y| {
            Rgb([(x * 9 + k as u32 * 30) as u8, (y * 11) as u8, ((x ^ y) * 17) as u8])
        });
        // Half of them in a subfolder, as PNG and JPEG.
        let path = if k % 2 == 0 { dir.join(format!("img{k}.png")) } else { dir.join("sub").join(format!("img{k}.jpg")) };
        img.save(path).unwrap();
    }
}

fn config(data: &Path, out: &Path, steps: u64) -> TrainConfig {
    TrainConfig {
        data: vec![data.to_path_buf()],
        out: out.to_path_buf(),
        steps,
        batch_size: 2,
        crop: 8,
        warmup: 2,
        checkpoint_every: 1,
        val_every: 2,
        val_pairs: 2,
        val_fraction: 0.25,
        arch: stego::Variant::Paper,
        ..TrainConfig::default()
    }
}

fn moments(out: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(out.join(train::OPTIMIZER_FILE), &Device::Cpu).unwrap()
}

#[test]
fn train_checkpoint_resume_export() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let out = tmp.path().join("run");
    let models = tmp.path().join("models");

    // Session 1: 2 of 3 steps, then stop.
    let opts = RunOptions { max_session_steps: Some(2), ..RunOptions::default() };
    let o = train::train(config(&data, &out, 3), &opts).unwrap();
    assert_eq!(o.step, 2);
    assert!(o.exported.is_empty(), "no export before the run ends");
    let s = RunState::read(&out.join(train::STATE_FILE)).unwrap();
    assert_eq!((s.step, s.optimizer_t), (2, 2));
    assert!(s.last_validation.is_some());
    let m2 = moments(&out);
    assert_eq!(m2.len(), 2 * 76, "m and v for each of the 76 tensors");
    let w2 = candle_core::safetensors::load(out.join(train::CHECKPOINT_FILE), &Device::Cpu).unwrap();

    // A new run in the same folder is refused.
    assert!(train::train(config(&data, &out, 3), &RunOptions::default()).is_err());

    // Session 2: resume to the end (the config given is ignored except for its folder).
    let mut other = config(&data, &out, 3);
    other.lr = 123.0;
    let opts = RunOptions { resume: true, export_to: Some(models.clone()), ..RunOptions::default() };
    let o = train::train(other, &opts).unwrap();
    assert_eq!(o.step, 3);
    let s = RunState::read(&out.join(train::STATE_FILE)).unwrap();
    assert_eq!((s.step, s.optimizer_t), (3, 3));
    assert_eq!(s.config.lr, TrainConfig::default().lr);
    // The moments continued from the saved ones (not from zero): they changed, and the
    // weights moved by a small, finite step.
    let m3 = moments(&out);
    let name = "v.hide.out.weight";
    let (a, b) = (m2[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(), m3[name].flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert!(a.iter().zip(&b).any(|(x, y)| x != y));
    assert!(b.iter().all(|v| v.is_finite() && *v >= 0.0));
    let w3 = candle_core::safetensors::load(out.join(train::CHECKPOINT_FILE), &Device::Cpu).unwrap();
    let d = (&w3["reveal.out.weight"] - &w2["reveal.out.weight"]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d > 0.0 && d < 0.01, "one AdamW step at lr ≤ 1e-3 moves a weight by at most ~lr: {d}");

    // Metrics rows: one per step, no duplicates after the resume.
    let csv = std::fs::read_to_string(out.join(train::METRICS_CSV)).unwrap();
    let steps: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["1", "2", "3"]);
    for f in [train::LOSS_PLOT, train::VALIDATION_CSV, "samples/step_000002.png", "samples/step_000003.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // `training plot` redraws the loss plot from the CSV files alone.
    std::fs::remove_file(out.join(train::LOSS_PLOT)).unwrap();
    train::draw_loss_plot(&out).unwrap();
    let plot = image::open(out.join(train::LOSS_PLOT)).unwrap();
    assert_eq!((plot.width(), plot.height()), (900, 500));
    for dir in [&out, &models] {
        for f in [stego::contract::HIDE_FILE, stego::contract::REVEAL_FILE] {
            assert!(dir.join(f).is_file(), "{} missing", dir.join(f).display());
        }
    }

    // The same run without interruption ends with the same weights: resume continued the
    // same batches, optimizer state and schedule.
    let straight = tmp.path().join("straight");
    let o = train::train(config(&data, &straight, 3), &RunOptions { no_export: true, ..RunOptions::default() }).unwrap();
    assert_eq!(o.step, 3);
    let ws = candle_core::safetensors::load(straight.join(train::CHECKPOINT_FILE), &Device::Cpu).unwrap();
    for (name, t) in &w3 {
        let d = (t - &ws[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d <= 1e-6, "{name}: resumed and straight runs differ by {d}");
    }

    // Resuming a finished run does nothing more.
    let opts = RunOptions { resume: true, no_export: true, ..RunOptions::default() };
    assert_eq!(train::train(config(&data, &out, 3), &opts).unwrap().step, 3);

    // Lengthening a finished run (3 → 5 steps) re-warms the rate from the resume step: the
    // step is recorded, and step 4 runs at 1/warmup (= 1/2) of the stretched cosine's rate.
    let opts = RunOptions { resume: true, resume_steps: Some(5), no_export: true, ..RunOptions::default() };
    assert_eq!(train::train(config(&data, &out, 3), &opts).unwrap().step, 5);
    let s = RunState::read(&out.join(train::STATE_FILE)).unwrap();
    assert_eq!((s.config.steps, s.config.rewarm_at.as_slice()), (5, &[3u64][..]));
    let csv = std::fs::read_to_string(out.join(train::METRICS_CSV)).unwrap();
    let lr: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    let stretched = TrainConfig { rewarm_at: Vec::new(), ..s.config.clone() }.schedule();
    assert_eq!(lr.len(), 5);
    assert!((lr[3] - 0.5 * stretched.lr(4)).abs() < 1e-9 && lr[3] > lr[2], "{lr:?}");

    // Export subcommand path.
    let again = tmp.path().join("again");
    let x = train::export_checkpoint(&out, &again, false, false).unwrap();
    assert!(x.hide.is_file() && x.reveal.is_file());
}

#[test]
fn init_from_starts_a_new_run_from_another_runs_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let no_export = RunOptions { no_export: true, ..RunOptions::default() };
    let weights = |dir: &Path| candle_core::safetensors::load(dir.join(train::CHECKPOINT_FILE), &Device::Cpu).unwrap();
    let max_diff = |a: &std::collections::HashMap<String, candle_core::Tensor>, b: &std::collections::HashMap<String, candle_core::Tensor>| {
        a.iter()
            .map(|(n, t)| (t - &b[n]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap())
            .fold(0f32, f32::max)
    };

    let parent = tmp.path().join("parent");
    train::train(config(&data, &parent, 2), &no_export).unwrap();

    // A fine-tune with a vanishing rate keeps the parent's weights (a fresh run with the same
    // seed does not: it starts from the parent's initial weights, 2 steps back).
    let child = tmp.path().join("child");
    let c = TrainConfig { lr: 1e-12, beta: 2.0, ..config(&data, &child, 1) };
    let opts = RunOptions { init_from: Some(parent.clone()), ..no_export.clone() };
    assert_eq!(train::train(c.clone(), &opts).unwrap().step, 1);
    assert!(max_diff(&weights(&parent), &weights(&child)) < 1e-6);
    let fresh = tmp.path().join("fresh");
    train::train(TrainConfig { out: fresh.clone(), ..c.clone() }, &no_export).unwrap();
    assert!(max_diff(&weights(&parent), &weights(&fresh)) > 1e-5);

    // The child records where it started; its own settings hold.
    let s = RunState::read(&child.join(train::STATE_FILE)).unwrap();
    let init = s.config.init_from.as_ref().expect("init_from recorded");
    assert_eq!((init.dir.as_path(), init.step), (parent.as_path(), 2));
    assert_eq!((s.step, s.optimizer_t, s.config.beta), (1, 1, 2.0));
    assert!(s.config.summary(1).contains("init_from="));
    assert!(init.from.is_none(), "the parent started from random weights");

    // A fine-tune of the fine-tune keeps the whole lineage.
    let grandchild = tmp.path().join("grandchild");
    let opts2 = RunOptions { init_from: Some(child.clone()), ..no_export.clone() };
    train::train(TrainConfig { out: grandchild.clone(), ..c.clone() }, &opts2).unwrap();
    let g = RunState::read(&grandchild.join(train::STATE_FILE)).unwrap();
    let gi = g.config.init_from.as_ref().unwrap();
    assert_eq!((gi.dir.as_path(), gi.from.as_ref().unwrap().dir.as_path()), (child.as_path(), parent.as_path()));
    assert!((gi.total_seconds() - s.train_seconds - init.train_seconds).abs() < 1e-9);
    assert_eq!(g.config.summary(1).matches(" at step ").count(), 2);

    // Other nets, or a resume, are refused with a message that says what to do.
    let other = TrainConfig { arch: stego::Variant::Fast, ..config(&data, &tmp.path().join("other"), 1) };
    let e = format!("{:#}", train::train(other, &opts).unwrap_err());
    assert!(e.contains("holds paper nets") && e.contains("--arch paper"), "{e}");
    let resumed = RunOptions { resume: true, ..opts.clone() };
    let e = format!("{:#}", train::train(config(&data, &child, 1), &resumed).unwrap_err());
    assert!(e.contains("--init-from starts a new run"), "{e}");
    let e = format!("{:#}", train::train(config(&data, &tmp.path().join("x"), 1), &RunOptions { init_from: Some(tmp.path().join("nope")), ..no_export }).unwrap_err());
    assert!(e.contains("needs a training run folder"), "{e}");
}

/// The command line: a fine-tune takes the nets of the run it starts from unless told otherwise.
#[test]
fn cli_init_from_takes_the_runs_nets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let train = |out: &Path, extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_training"));
        cmd.arg("train").arg("--data").arg(&data).arg("--out").arg(out);
        cmd.args(["--steps", "1", "--batch-size", "2", "--crop", "8", "--val-pairs", "2", "--no-export", "-q"]);
        cmd.args(extra).output().unwrap()
    };
    let parent = tmp.path().join("parent");
    let o = train(&parent, &["--arch", "fast", "--hide-output", "sigmoid"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let child = tmp.path().join("child");
    let o = train(&child, &["--init-from", parent.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = RunState::read(&child.join(train::STATE_FILE)).unwrap().config;
    assert_eq!((c.arch, c.hide_output), (stego::Variant::Fast, training::nets::HideOutput::Sigmoid));

    // Naming other nets is still refused, with the options to pass.
    let o = train(&tmp.path().join("other"), &["--init-from", parent.to_str().unwrap(), "--arch", "paper"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--arch fast --hide-output sigmoid"), "{e}");
}

/// `--distance`: the L2 loss is the paper's ‖C−C'‖² + β‖S−S'‖², the L1 loss the mean absolute
/// errors of the same forward pass (the container rounded to 8 bits); both report the MSEs.
#[test]
fn loss_distances() {
    use training::train::Distance;
    let dev = Device::Cpu;
    let (_, nets) = training::nets::init_arch(stego::Variant::Fast, training::nets::FastLayout::default(), &dev, 3).unwrap();
    let nets = nets.with_hide_output(training::nets::HideOutput::Residual);
    let cover = candle_core::Tensor::rand(0f32, 1f32, (2, 3, 8, 8), &dev).unwrap();
    let secret = candle_core::Tensor::rand(0f32, 1f32, (2, 3, 8, 8), &dev).unwrap();
    let scalar = |t: &candle_core::Tensor| t.to_scalar::<f32>().unwrap();

    let container = (((nets.hide(&cover, &secret).unwrap() * 255.0).unwrap().round().unwrap()) / 255.0).unwrap();
    let revealed = nets.reveal(&container).unwrap();
    let mean = |a: &candle_core::Tensor, b: &candle_core::Tensor, sq: bool| {
        let d = (a - b).unwrap();
        scalar(&if sq { d.sqr() } else { d.abs() }.unwrap().mean_all().unwrap())
    };
    let (c2, s2) = (mean(&container, &cover, true), mean(&revealed, &secret, true));
    let (c1, s1) = (mean(&container, &cover, false), mean(&revealed, &secret, false));

    let (l2, cm, sm) = train::training_loss(&nets, &cover, &secret, 2.0, Distance::L2, None, None).unwrap();
    let (l1, cm1, sm1) = train::training_loss(&nets, &cover, &secret, 2.0, Distance::L1, None, None).unwrap();
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs().max(1e-3);
    assert!(close(scalar(&l2), c2 + 2.0 * s2), "{} vs {}", scalar(&l2), c2 + 2.0 * s2);
    assert!(close(scalar(&l1), c1 + 2.0 * s1), "{} vs {}", scalar(&l1), c1 + 2.0 * s1);
    for (m, want) in [(&cm, c2), (&sm, s2), (&cm1, c2), (&sm1, s2)] {
        assert!(close(scalar(m), want));
    }
    assert!(c1 > c2 && s1 > s2, "errors below 1: absolute > squared");

    // Runs saved before the option read as L2; the summary names the distance.
    let mut v = serde_json::to_value(TrainConfig::default()).unwrap();
    v.as_object_mut().unwrap().remove("distance");
    let old: TrainConfig = serde_json::from_value(v).unwrap();
    assert_eq!(old.distance, Distance::L2);
    assert!(TrainConfig { distance: Distance::L1, ..old }.summary(1).contains("distance=l1"));
}

/// `state.json` names the nets `paper` or `fast`; runs saved before the fields existed read as
/// the paper nets with a sigmoid output; a `robust` architecture is refused.
#[test]
fn state_names_the_nets() {
    let mut v = serde_json::to_value(TrainConfig::default()).unwrap();
    assert_eq!((v["arch"].as_str(), v["hide_output"].as_str()), (Some("fast"), Some("residual")));
    v["arch"] = "paper".into();
    let paper: TrainConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(paper.arch, stego::Variant::Paper);
    v["arch"] = "robust".into();
    assert!(serde_json::from_value::<TrainConfig>(v.clone()).is_err());
    let o = v.as_object_mut().unwrap();
    o.remove("arch");
    o.remove("hide_output");
    let old: TrainConfig = serde_json::from_value(v).unwrap();
    assert_eq!((old.arch, old.hide_output), (stego::Variant::Paper, training::nets::HideOutput::Sigmoid));
}

/// A `--robust` run without the real encoders stops before its first step and says what to
/// install: here GStreamer finds no plugins at all.
#[test]
fn a_robust_run_without_the_encoders_stops_at_once_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let (run, empty) = (tmp.path().join("run"), tmp.path().join("no-plugins"));
    std::fs::create_dir(&empty).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_training"))
        .args(["train", "--robust", "--steps", "2", "--batch-size", "2", "--crop", "16", "--val-pairs", "2", "-q"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", &empty)
        .env("GST_PLUGIN_PATH_1_0", &empty)
        .env("GST_REGISTRY_1_0", tmp.path().join("registry.bin"))
        .env_remove("GST_PLUGIN_PATH")
        .env_remove("GST_PLUGIN_SYSTEM_PATH")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("real x264 and JPEG encoders") && e.contains("gstreamer1.0-plugins-ugly") && e.contains("cannot build the pipeline"), "{e}");
    assert!(!run.join(train::STATE_FILE).exists(), "no step was taken");
}

/// The command line's defaults are safe: the fast nets (the runtime's default variant), the
/// models in the run folder, a warm-up longer than the run shortened with a message, and no
/// export that replaces model files (the shipped ones above all) without --force.
#[test]
fn cli_defaults_and_export_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let training = |args: &[&str]| {
        // From the project root, as documented.
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_training")).args(args).current_dir(&root).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let run = tmp.path().join("run");
    let (run_s, data_s) = (run.to_str().unwrap(), data.to_str().unwrap());
    let small = ["--batch-size", "2", "--crop", "8", "--val-pairs", "2", "-q"];
    let (ok, e) = training(&[&["train", "--data", data_s, "--out", run_s, "--steps", "2"][..], &small].concat());
    assert!(ok, "{e}");
    assert!(e.contains("--warmup 200 is not shorter than --steps 2") && e.contains("no warm-up"), "{e}");
    let s = RunState::read(&run.join(train::STATE_FILE)).unwrap();
    assert_eq!((s.config.arch, s.config.warmup), (stego::Variant::Fast, 0));
    for f in ["hide-fast.onnx", "reveal-fast.onnx", train::LOSS_PLOT] {
        assert!(run.join(f).is_file(), "{f} in the run folder");
    }

    // `export` writes into the run folder by default (replacing its own models is fine)...
    let (ok, e) = training(&["export", "--checkpoint", run_s, "--fp16"]);
    assert!(ok && run.join("hide-fast-fp16.onnx").is_file(), "{e}");
    let (ok, e) = training(&["export", "--checkpoint", run_s]);
    assert!(ok, "{e}");
    // ...and elsewhere keeps existing files unless --force.
    let other = tmp.path().join("other");
    let other_s = other.to_str().unwrap();
    assert!(training(&["export", "--checkpoint", run_s, "--out", other_s]).0);
    let (ok, e) = training(&["export", "--checkpoint", run_s, "--out", other_s]);
    assert!(!ok && e.contains("already exists") && e.contains("--force"), "{e}");
    assert!(training(&["export", "--checkpoint", run_s, "--out", other_s, "--force"]).0);

    // The shipped models are refused, by `export` and before a run starts.
    let shipped = root.join(train::shipped_models_dir());
    let shipped_model = shipped.join("hide-fast.onnx");
    let before = std::fs::read(&shipped_model).unwrap();
    let (ok, e) = training(&["export", "--checkpoint", run_s, "--out", shipped.to_str().unwrap()]);
    assert!(!ok && e.contains("is a model shipped with stego") && e.contains("--force"), "{e}");
    let run2 = tmp.path().join("run2");
    let args = ["train", "--data", data_s, "--out", run2.to_str().unwrap(), "--steps", "2", "--export-to", shipped.to_str().unwrap()];
    let (ok, e) = training(&[&args[..], &small].concat());
    assert!(!ok && e.contains("is a model shipped with stego"), "{e}");
    assert!(!run2.exists(), "refused before training");
    assert_eq!(std::fs::read(&shipped_model).unwrap(), before, "the shipped model is untouched");
}

/// A `--robust` run validates the secret through the recordings its aims are set at (x264 I420
/// at rate factor 23 and QP 29, JPEG 90), simulated and real, a row each per validation, beside the
/// lossless path; with a real-encoder share, training batches go through x264 and libjpeg too.
#[test]
fn robust_run_validates_through_recordings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let out = tmp.path().join("run");
    let mut c = config(&data, &out, 2);
    c.arch = stego::Variant::Fast;
    c.crop = 16;
    c.recordings = Some(training::codec::RecordingMix { lossless: 0.0, yuv420: 0.0, real: 1.0, ..Default::default() });
    train::train(c, &RunOptions { no_export: true, ..RunOptions::default() }).unwrap();
    let text = std::fs::read_to_string(out.join(train::VALIDATION_RECORDED_CSV)).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["step", "recording", "secret_apd", "secret_psnr", "secret_ssim"]);
    assert_eq!(rows.len(), 6, "{text}");
    for (row, name) in rows[1..].iter().zip(["x264qp:29", "jpeg:90", "real x264:23", "real x264qp:29", "real jpeg:90"]) {
        assert_eq!((row[0], row[1]), ("2", name), "{text}");
        let (apd, psnr): (f64, f64) = (row[2].parse().unwrap(), row[3].parse().unwrap());
        assert!(apd > 0.0 && apd < 255.0 && psnr.is_finite() && psnr > 0.0, "{text}");
    }
    // A lossless run writes no such file.
    let plain = tmp.path().join("plain");
    let mut c = config(&data, &plain, 2);
    c.arch = stego::Variant::Fast;
    c.crop = 16;
    train::train(c, &RunOptions { no_export: true, ..RunOptions::default() }).unwrap();
    assert!(!plain.join(train::VALIDATION_RECORDED_CSV).exists());
}

/// `--grey-residual` and `--secret-pool` keep the weights on their subspaces through training
/// (so the exported graph needs nothing new), and a fine-tune keeps both.
#[test]
fn grey_residual_and_secret_pool_hold_through_training_and_fine_tunes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    write_images(&data, 6);
    let no_export = RunOptions { no_export: true, ..RunOptions::default() };
    let fast = |out: &Path| TrainConfig { arch: stego::Variant::Fast, lr: 1e-2, ..config(&data, out, 2) };
    let projected = |dir: &Path| {
        let w = candle_core::safetensors::load(dir.join(train::CHECKPOINT_FILE), &Device::Cpu).unwrap();
        let far = |a: &candle_core::Tensor, b: candle_core::Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let (out_w, out_b) = training::nets::fast::grey_output(&w["hide.out.weight"], &w["hide.out.bias"]).unwrap();
        let pooled = training::nets::fast::pool_secret_weights(&w["hide.conv0.weight"], 2).unwrap();
        (far(&w["hide.out.weight"], out_w).max(far(&w["hide.out.bias"], out_b)), far(&w["hide.conv0.weight"], pooled))
    };
    let plain = tmp.path().join("plain");
    train::train(fast(&plain), &no_export).unwrap();
    let (grey, pool) = projected(&plain);
    assert!(grey > 1e-4 && pool > 1e-4, "drawn weights are neither grey ({grey}) nor pooled ({pool})");

    let parent = tmp.path().join("parent");
    train::train(TrainConfig { grey_residual: true, secret_pool: 2, ..fast(&parent) }, &no_export).unwrap();
    let (grey, pool) = projected(&parent);
    assert!(grey < 1e-6 && pool < 1e-6, "after training: grey {grey}, pooled {pool}");

    let child = tmp.path().join("child");
    train::train(fast(&child), &RunOptions { init_from: Some(parent.clone()), ..no_export }).unwrap();
    let c = RunState::read(&child.join(train::STATE_FILE)).unwrap().config;
    assert!(c.grey_residual && c.secret_pool == 2);
    assert!(c.summary(2).contains("secret_pool=2x2") && c.summary(2).contains("grey_residual"));
    let (grey, pool) = projected(&child);
    assert!(grey < 1e-6 && pool < 1e-6, "after the fine-tune: grey {grey}, pooled {pool}");
}
