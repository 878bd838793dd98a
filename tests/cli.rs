//! The `stego` CLI end to end: real photos through 8-bit PNG files, and every bad input
//! giving one clear error line, exit code 1, no panic and no output file.

mod common;
use common::*;
use image::RgbImage;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn hide_then_reveal_round_trips_real_photos_through_png() {
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join("container.png");
    let revealed = dir.path().join("revealed.png");
    // Different sizes: the secret (600x400) is resized to the cover's 451x300.
    let cover = data_image("skimage_chelsea.png");
    let secret = data_image("skimage_coffee.png");
    let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&container)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = stego(&["reveal", s(&container), "-o", s(&revealed)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_round_trip(&cover, &secret, &container, &revealed);
}

/// Checks a hide → reveal round trip through PNG files: sizes, a container close to the cover
/// and a revealed secret recognisably better than the cover itself (the trivial "reveal").
fn assert_round_trip(cover: &std::path::Path, secret: &std::path::Path, container: &std::path::Path, revealed: &std::path::Path) {
    let c = image::open(cover).unwrap().into_rgb8();
    let k = image::open(container).unwrap().into_rgb8();
    let r = image::open(revealed).unwrap().into_rgb8();
    assert_eq!(k.dimensions(), c.dimensions());
    assert_eq!(r.dimensions(), c.dimensions());
    // The shipped models must make a container close to the cover and reveal a secret
    // recognisably better than the cover itself would (the trivial "reveal").
    let sec = image::open(secret).unwrap().into_rgb8();
    let sec = image::imageops::resize(&sec, c.width(), c.height(), image::imageops::FilterType::CatmullRom);
    let (w, h) = (c.width() as usize, c.height() as usize);
    let cm = stego::metrics::Metrics::rgb8(c.as_raw(), k.as_raw(), w, h);
    let sm = stego::metrics::Metrics::rgb8(sec.as_raw(), r.as_raw(), w, h);
    let baseline = stego::metrics::Metrics::rgb8(sec.as_raw(), k.as_raw(), w, h);
    assert!(cm.psnr > 20.0, "container too far from cover: {cm:?}");
    assert!(sm.psnr > baseline.psnr + 3.0, "revealed {sm:?} is no better than the container {baseline:?}");
}

#[test]
fn shipped_fast_models_round_trip_real_photos_through_png() {
    // 451x300 is not a multiple of the fast nets' 4x4 cells: the library pads and crops.
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join("container.png");
    let revealed = dir.path().join("revealed.png");
    let cover = data_image("skimage_chelsea.png");
    let secret = data_image("skimage_coffee.png");
    let o = stego(&["hide", "--variant", "fast", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&container)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = stego(&["reveal", "--variant", "fast", s(&container), "-o", s(&revealed)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_round_trip(&cover, &secret, &container, &revealed);
    let o = stego(&["info", s(&model("hide-fast.onnx"))], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("stego.variant") && out.contains("fast") && out.contains("stego.size_multiple"), "{out}");
}

#[test]
fn variant_fast_takes_the_fast_files_from_the_model_dir() {
    // The paper models under the fast file names: only hide-fast.onnx and reveal-fast.onnx
    // are in the folder, so a run that works has loaded them.
    let models = tempfile::tempdir().unwrap();
    std::fs::copy(model("hide.onnx"), models.path().join("hide-fast.onnx")).unwrap();
    std::fs::copy(model("reveal.onnx"), models.path().join("reveal-fast.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join("container.png");
    let revealed = dir.path().join("revealed.png");
    let cover = data_image("skimage_chelsea.png");
    let secret = data_image("skimage_coffee.png");
    let md = s(models.path());
    let o = stego(&["hide", "--variant", "fast", "--model-dir", md, "--cover", s(&cover), "--secret", s(&secret), "-o", s(&container)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = stego(&["reveal", s(&container), "-o", s(&revealed), "--variant", "fast", "--model-dir", md], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_round_trip(&cover, &secret, &container, &revealed);
    // The paper variant looks for hide.onnx, which this folder lacks.
    let out = dir.path().join("paper.png");
    let o = stego(&["hide", "--variant", "paper", "--model-dir", md, "--cover", s(&cover), "--secret", s(&secret), "-o", s(&out)], &[]);
    assert_fails_with(&o, &["hide.onnx", "does not exist", "--arch paper", "--variant fast"]);
    assert_absent(&out);
}

#[test]
fn variant_fast_without_the_fast_models_is_a_clear_error() {
    // A model folder with the paper models only: no fallback to them.
    let models = tempfile::tempdir().unwrap();
    std::fs::copy(model("hide.onnx"), models.path().join("hide.onnx")).unwrap();
    std::fs::copy(model("reveal.onnx"), models.path().join("reveal.onnx")).unwrap();
    let md = s(models.path());
    let (dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let needles = |file: &'static str| ["model file", file, "does not exist", "--arch fast", "--variant paper"];
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--model-dir", md, "--variant", "fast"], &[]);
    assert_fails_with(&o, &needles("hide-fast.onnx"));
    assert_absent(&out);
    let o = stego(&["reveal", s(&c), "-o", s(&out), "--model-dir", md, "--variant", "fast"], &[]);
    assert_fails_with(&o, &needles("reveal-fast.onnx"));
    assert_absent(&out);
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for n in ["a.png", "b.png"] {
        RgbImage::from_pixel(16, 12, image::Rgb([10, 200, 30])).save(images.join(n)).unwrap();
    }
    let fig = dir.path().join("fig.png");
    let o = stego(&["eval", s(&images), "--figure", s(&fig), "--model-dir", md, "--variant", "fast"], &[]);
    assert_fails_with(&o, &needles("hide-fast.onnx"));
    assert_absent(&fig);
    // An explicit model file wins over the variant.
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--model-dir", md, "--variant", "fast", "--hide-model", s(&model("hide.onnx"))], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.is_file());
}

#[test]
fn eval_prints_table_and_writes_figure() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["skimage_chelsea.png", "skimage_coffee.png", "skimage_rocket.jpg"] {
        std::fs::copy(data_image(n), dir.path().join(n)).unwrap();
    }
    let fig = dir.path().join("fig.png");
    let csv = dir.path().join("m.csv");
    let o = stego(&["eval", s(dir.path()), "--resize", "64", "--crop", "64", "--figure", s(&fig), "--csv", s(&csv)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("cover APD") && out.contains("mean of 2 pairs"), "{out}");
    let f = image::open(&fig).unwrap();
    assert_eq!(f.height(), 2 * (160 + 6) + 6);
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 3);
}

#[test]
fn info_shows_names_shapes_metadata() {
    let o = stego(&["info", s(&model("hide.onnx"))], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("input  cover") && out.contains("input  secret") && out.contains("output container"), "{out}");
    assert!(out.contains("stego.role: hide"), "{out}");
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    // `stego info … | head -0`: the reader is gone before stego writes. Like other Unix tools
    // it ends by SIGPIPE, with no panic message (a panic exits 101 and prints "panicked").
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stego"))
        .args(["info", s(&model("hide-fast.onnx"))])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run stego");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "status {:?}: {}", o.status, stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

fn setup_bad() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    (dir, out)
}

#[test]
fn missing_model_file() {
    let (dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let m = dir.path().join("nope.onnx");
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--hide-model", s(&m)], &[]);
    assert_fails_with(&o, &["nope.onnx", "does not exist"]);
    assert_absent(&out);
}

#[test]
fn corrupt_truncated_empty_and_wrong_models() {
    let (dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not an onnx file at all, just text").unwrap();
    let truncated = dir.path().join("truncated.onnx");
    let full = std::fs::read(model("hide.onnx")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    for (m, needle) in [(&garbage, "garbage.onnx"), (&truncated, "truncated.onnx"), (&empty, "empty")] {
        let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--hide-model", s(m)], &[]);
        assert_fails_with(&o, &[needle, "cannot load model"]);
        assert_absent(&out);
    }
    // The reveal model given as the hiding model: wrong inputs and role.
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--hide-model", s(&model("reveal.onnx"))], &[]);
    assert_fails_with(&o, &["reveal.onnx", "is not a stego hide model"]);
    assert_absent(&out);
}

#[test]
fn missing_onnxruntime_library() {
    let (_dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out)], &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")]);
    assert_fails_with(&o, &["/nonexistent/libonnxruntime.so", "scripts/setup.sh"]);
    assert_absent(&out);
    // A file that is not a shared library.
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--onnxruntime", s(&c)], &[]);
    assert_fails_with(&o, &["cannot load the onnxruntime library", "skimage_chelsea.png"]);
    assert_absent(&out);
}

#[test]
fn bad_images() {
    let (dir, out) = setup_bad();
    let good = data_image("skimage_chelsea.png");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.png");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello, not an image").unwrap();
    let missing = dir.path().join("missing.png");
    for (img, needles) in [
        (&missing, vec!["missing.png", "cannot read it"]),
        (&empty, vec!["empty.png", "empty"]),
        (&truncated, vec!["truncated.png", "cannot decode"]),
        (&text, vec!["notes.txt", "unsupported"]),
    ] {
        let o = stego(&["hide", "--cover", s(img), "--secret", s(&good), "-o", s(&out)], &[]);
        assert_fails_with(&o, &needles);
        assert_absent(&out);
        let o = stego(&["reveal", s(img), "-o", s(&out)], &[]);
        assert_fails_with(&o, &needles);
        assert_absent(&out);
    }
}

#[test]
fn cuda_on_this_machine_works_or_says_why() {
    let (_dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let gpu = std::process::Command::new("nvidia-smi").arg("-L").output().map(|o| o.status.success()).unwrap_or(false);
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--execution-provider", "cuda"], &[]);
    if gpu {
        // With a GPU the run either works (the GPU build of onnxruntime) or says why not.
        assert!(o.status.success() || stderr(&o).contains("execution provider cuda"), "{}", stderr(&o));
    } else {
        assert_fails_with(&o, &["execution provider cuda", "not usable", "use execution provider cpu"]);
        // The advice names the cause: the CPU-only library, or (with `STEGO_GPU=1 scripts/setup.sh`'s
        // install) the missing NVIDIA driver.
        let e = stderr(&o);
        assert!(e.contains("CPU-only build") || e.contains("no NVIDIA driver was found (libcuda.so.1"), "{e}");
        assert_absent(&out);
    }
}

/// With the CPU-only onnxruntime, on any machine: `cuda` is an error that names the library and
/// the CLI's fix, and `auto` falls back to the CPU and says so.
#[test]
fn cuda_with_the_cpu_only_library() {
    let (_dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let cpu_lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ort/cpu/libonnxruntime.so");
    let env = [("ORT_DYLIB_PATH", s(&cpu_lib))];
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--execution-provider", "cuda"], &env);
    assert_fails_with(&o, &["execution provider cuda", "is a CPU-only build", &cpu_lib.display().to_string(), "STEGO_GPU=1 scripts/setup.sh"]);
    assert_absent(&out);
    let tiny = tempfile::tempdir().unwrap();
    let img = tiny.path().join("tiny.png");
    RgbImage::from_pixel(16, 12, image::Rgb([10, 200, 30])).save(&img).unwrap();
    let o = stego(&["hide", "--cover", s(&img), "--secret", s(&img), "-o", s(&out), "--execution-provider", "auto"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: CUDA is not usable") && stderr(&o).contains("CPU-only build"), "{}", stderr(&o));
    assert!(out.is_file());
}

#[test]
fn bad_option_values() {
    let (_dir, out) = setup_bad();
    let c = data_image("skimage_chelsea.png");
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--execution-provider", "tpu"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("\"tpu\"") && stderr(&o).contains("cpu, cuda, auto"), "{}", stderr(&o));
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", s(&out), "--variant", "slow"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'slow'") && stderr(&o).contains("paper, fast"), "{}", stderr(&o));
    let o = stego(&["hide", "--cover", s(&c), "--secret", s(&c), "-o", "/nonexistent-dir/x.png"], &[]);
    assert_fails_with(&o, &["/nonexistent-dir", "does not exist"]);
}

/// `eval` without --figure writes under out/ (created) of the working folder, never beside
/// the user's files; `info` takes only the options that apply to it.
#[test]
fn eval_default_figure_goes_to_out_and_info_takes_only_its_options() {
    let work = tempfile::tempdir().unwrap();
    let photos = work.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for (k, name) in ["skimage_chelsea.png", "skimage_coffee.png"].iter().enumerate() {
        let img = image::open(data_image(name)).unwrap().into_rgb8();
        image::imageops::thumbnail(&img, 64, 48).save(photos.join(format!("{k}.png"))).unwrap();
    }
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stego")).args(args).current_dir(work.path()).output().unwrap()
    };
    let o = run(&["eval", "photos"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(work.path().join("out/stego-eval.png").is_file());
    let top: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(top.len(), 2, "only photos/ and out/ in the working folder: {top:?}");

    let o = run(&["info", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--onnxruntime"), "{help}");
    for unused in ["--variant", "--hide-model", "--reveal-model", "--device", "--execution-provider", "--threads"] {
        assert!(!help.contains(unused), "info --help lists {unused}: {help}");
    }
    let o = run(&["info", s(&model("hide-fast.onnx")), "--variant", "paper"]);
    assert!(!o.status.success() && stderr(&o).contains("--variant"), "{}", stderr(&o));
}
