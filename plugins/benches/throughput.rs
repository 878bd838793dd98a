//! Side-by-side throughput of the same model on the same frames, one table:
//! (a) a bare onnxruntime session on ready tensors, (b) the `stego` library including the
//! frame↔tensor conversion, (c) the GStreamer elements in a pipeline (appsrc →
//! stegohide/stegoreveal → fakesink, the same frames), (d) a Python onnxruntime + numpy loop.
//!
//! `cargo bench -p gst-plugin-stego --bench throughput -- [--frames N] [--threads T]
//!  [--sizes 320x240,640x480,1280x720] [--roles hide,reveal] [--model-dir DIR]
//!  [--variant fast|robust|paper (default fast)] [--precision fp32|fp16] [--execution-provider cpu|cuda] [--rounds R]
//!  [--cell-timeout S]` (`-- --help` lists them).
//!
//! `--cell-timeout S` stops a cell's process after S seconds and reports it as an error.
//!
//! `--precision fp16` runs the float16 exports (`hide-fp16.onnx`, …: `training export --fp16`).
//!
//! Each cell runs in its own process so that its peak RSS is its own.
//!
//! Each (role, size) is measured in `--rounds R` interleaved rounds (default 3): round r runs
//! every method once, starting the rotation (a, b, c, d) at method r mod 4, so no method always
//! runs first or after the same neighbour. A row shows the median fps over the rounds (ms/frame
//! and GFLOP/s derived from it), the min–max fps, and the largest peak RSS; "vs (a)" is the
//! median over rounds of fps(method) / fps(a) within each round, pairs measured moments apart
//! on the same machine state. Rounds in which a method fails are left out of its row.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use stego::contract::{self, Role};
use stego::frame::{Frame, FrameMut, PixelFormat};
use stego::runtime::{ExecutionProvider, Model, RuntimeOptions};

/// The benchmark's options (see the module docs).
#[derive(clap::Parser, Debug)]
#[command(name = "throughput", about = "Throughput of one model: bare onnxruntime, the library, the elements, Python")]
struct Args {
    /// Timed frames per cell after warm-up.
    #[arg(long, default_value_t = 3)]
    frames: usize,
    /// onnxruntime intra-op threads [default: onnxruntime's, one per physical core].
    #[arg(long)]
    threads: Option<usize>,
    /// Frame sizes, WxH, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "320x240,640x480,1280x720", value_parser = parse_size)]
    sizes: Vec<(usize, usize)>,
    /// Roles, comma-separated: hide, reveal.
    #[arg(long, value_delimiter = ',', default_value = "hide,reveal", value_parser = parse_role)]
    roles: Vec<Role>,
    /// Folder of the models [default: where the library finds the variant's hiding model].
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Which models: fast, robust or paper.
    #[arg(long, default_value = "fast", value_parser = parse_variant)]
    variant: contract::Variant,
    /// fp32, or fp16 for the float16 exports (`hide-fp16.onnx`, …: `training export --fp16`).
    #[arg(long, default_value = "fp32", value_parser = ["fp32", "fp16"])]
    precision: String,
    /// cpu or cuda (one provider per run: not auto).
    #[arg(long, default_value = "cpu", value_parser = parse_provider)]
    execution_provider: ExecutionProvider,
    /// Interleaved rounds per (role, size).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Stops a cell's process after S seconds and reports it as an error.
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    cell_timeout: Option<u64>,
    /// Runs one cell in this process: METHOD ROLE MODEL WxH FRAMES (the table's own use).
    #[arg(long, num_args = 5, hide = true)]
    worker: Option<Vec<String>>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    s.split_once('x')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0)
        .ok_or_else(|| format!("{s:?} is not a size: use WxH"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    [Role::Hide, Role::Reveal]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("{s:?} is not a role: use hide or reveal"))
}

fn parse_variant(s: &str) -> Result<contract::Variant, String> {
    contract::Variant::from_name(s).ok_or_else(|| format!("use one of {}", contract::Variant::NAMES.join(", ")))
}

fn parse_provider(s: &str) -> Result<ExecutionProvider, String> {
    match s.parse::<ExecutionProvider>().map_err(|e| e.to_string())? {
        ExecutionProvider::Auto => Err("the benchmark measures one provider: use cpu or cuda".into()),
        p => Ok(p),
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

use stego::frame::bench_support::pseudo_random_bytes;

/// MACs per pixel of a model, from its metadata, or the paper nets' counts.
fn macs_per_pixel(model: &std::path::Path, role: Role) -> f64 {
    let opts = RuntimeOptions::default();
    Model::inspect(model, &opts)
        .ok()
        .and_then(|i| {
            i.metadata
                .get(contract::meta::MACS_PER_PIXEL)
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(match role {
            Role::Hide => 291_255.0,
            Role::Reveal => 193_500.0,
        })
}

/// What one cell of the table runs: the model, the frame size and count, and the runtime.
struct CellSpec {
    role: Role,
    model: PathBuf,
    w: usize,
    h: usize,
    frames: usize,
    threads: Option<usize>,
    provider: ExecutionProvider,
}

/// Runs one cell in this process and prints `RESULT frames seconds peak_rss_kib`.
fn worker(method: &str, spec: &CellSpec) -> Result<(), String> {
    let CellSpec { role, ref model, w, h, frames, threads, provider } = *spec;
    let opts = RuntimeOptions {
        threads,
        execution_provider: provider,
        ..Default::default()
    };
    let cover = pseudo_random_bytes(w * h * 3, 1);
    let secret = pseudo_random_bytes(w * h * 3, 2);
    let secs = match method {
        "ort" => {
            let env = stego::runtime::environment(&opts).map_err(|e| e.to_string())?;
            let mut b = ort::session::Session::builder(&env).map_err(|e| e.to_string())?;
            b = b
                .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
                .map_err(|e| e.to_string())?;
            if let Some(t) = threads {
                b = b.with_intra_threads(t).map_err(|e| e.to_string())?;
            }
            if provider != ExecutionProvider::Cpu {
                let cuda = ort::ep::CUDA::default()
                    .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Exhaustive)
                    .build()
                    .error_on_failure();
                b = b
                    .with_execution_providers([cuda])
                    .map_err(|e| e.to_string())?;
            }
            let mut s = b.commit_from_file(model).map_err(|e| e.to_string())?;
            let a = ndarray::Array4::<f32>::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
                cover[(y * w + x) * 3 + c] as f32 / 255.0
            });
            let b2 = ndarray::Array4::<f32>::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
                secret[(y * w + x) * 3 + c] as f32 / 255.0
            });
            let mut run = || -> Result<f32, String> {
                let out = match role {
                    Role::Hide => s.run(ort::inputs![
                        contract::HIDE_COVER => ort::value::TensorRef::from_array_view(a.view()).map_err(|e| e.to_string())?,
                        contract::HIDE_SECRET => ort::value::TensorRef::from_array_view(b2.view()).map_err(|e| e.to_string())?,
                    ]),
                    Role::Reveal => s.run(ort::inputs![
                        contract::REVEAL_CONTAINER => ort::value::TensorRef::from_array_view(a.view()).map_err(|e| e.to_string())?,
                    ]),
                }
                .map_err(|e| e.to_string())?;
                let v = out[role.output()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| e.to_string())?
                    .1[0];
                Ok(v)
            };
            run()?;
            let t = Instant::now();
            for _ in 0..frames {
                run()?;
            }
            t.elapsed().as_secs_f64()
        }
        "lib" => {
            let mut out = vec![0u8; w * h * 3];
            let cf = Frame::packed(&cover, PixelFormat::Rgb, w, h).map_err(|e| e.to_string())?;
            let sf = Frame::packed(&secret, PixelFormat::Rgb, w, h).map_err(|e| e.to_string())?;
            match role {
                Role::Hide => {
                    let mut hider = stego::Hider::new(model, &opts).map_err(|e| e.to_string())?;
                    hider.warm_up(w, h).map_err(|e| e.to_string())?;
                    let t = Instant::now();
                    for _ in 0..frames {
                        hider
                            .hide(
                                &cf,
                                &sf,
                                &mut FrameMut::packed(&mut out, PixelFormat::Rgb, w, h)
                                    .map_err(|e| e.to_string())?,
                            )
                            .map_err(|e| e.to_string())?;
                    }
                    t.elapsed().as_secs_f64()
                }
                Role::Reveal => {
                    let mut r = stego::Revealer::new(model, &opts).map_err(|e| e.to_string())?;
                    r.warm_up(w, h).map_err(|e| e.to_string())?;
                    let t = Instant::now();
                    for _ in 0..frames {
                        r.reveal(
                            &cf,
                            &mut FrameMut::packed(&mut out, PixelFormat::Rgb, w, h)
                                .map_err(|e| e.to_string())?,
                        )
                        .map_err(|e| e.to_string())?;
                    }
                    t.elapsed().as_secs_f64()
                }
            }
        }
        "gst" => gst_cell(spec, &cover, &secret)?,
        other => return Err(format!("unknown method {other}")),
    };
    println!("RESULT {frames} {secs:.6} {}", peak_rss_kib());
    Ok(())
}

/// Times `frames` buffers through the element after one warm-up buffer: the clock runs from
/// the first buffer reaching fakesink to the last. The frames are the same bytes as the other
/// methods', pushed from appsrc (one thread per source, sharing the memory: no copies and no
/// pattern drawing on the cores the element uses). The appsrc queues are unbounded, so the
/// pushing threads queue every frame at once and are done before the timed frames: like the
/// ready tensors of (a) and the ready frames of (b), the frames wait in memory, and no source
/// thread wakes up per frame on the cores onnxruntime's threads are using.
fn gst_cell(spec: &CellSpec, cover: &[u8], secret: &[u8]) -> Result<f64, String> {
    let CellSpec { role, ref model, w, h, frames, .. } = *spec;
    use gst::prelude::*;
    gst::init().map_err(|e| e.to_string())?;
    gststego::plugin_register_static().map_err(|e| e.to_string())?;
    let caps = format!("video/x-raw,format=RGB,width={w},height={h},framerate=25/1");
    let n = frames + 1;
    let t = format!(
        "{} execution-provider={}",
        spec.threads.unwrap_or(0),
        spec.provider.as_str()
    );
    let src = |name: &str| {
        format!("appsrc name={name} caps=\"{caps}\" format=time block=false max-buffers=0 max-bytes=0 max-time=0")
    };
    let desc = match role {
        Role::Hide => format!(
            "stegohide name=h model-file=\"{m}\" threads={t} ! fakesink name=sink sync=false signal-handoffs=true \
             {} ! h.cover {} ! h.secret",
            src("cover"),
            src("secret"),
            m = model.display()
        ),
        Role::Reveal => format!(
            "{} ! stegoreveal model-file=\"{m}\" threads={t} ! fakesink name=sink sync=false signal-handoffs=true",
            src("cover"),
            m = model.display()
        ),
    };
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let sink = pipeline.by_name("sink").ok_or("no sink")?;
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let t2 = times.clone();
    sink.connect("handoff", false, move |_| {
        t2.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
        None
    });
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The element's own message (e.g. why the model or provider cannot load) is on the bus.
        let reason = pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(err) => Some(format!("{} ({:?})", err.error(), err.debug())),
                _ => None,
            })
            .unwrap_or_else(|| e.to_string());
        let _ = pipeline.set_state(gst::State::Null);
        return Err(reason);
    }
    let mut pushers = Vec::new();
    for (name, bytes) in [("cover", cover), ("secret", secret)] {
        let Some(appsrc) = pipeline.by_name(name) else {
            continue;
        };
        let template = gst::Buffer::from_slice(bytes.to_vec());
        pushers.push(std::thread::spawn(move || {
            let period = gst::ClockTime::from_mseconds(40);
            for i in 0..n as u64 {
                let mut buf = template.copy();
                {
                    let b = buf.get_mut().expect("a fresh buffer");
                    b.set_pts(period * i);
                    b.set_duration(period);
                }
                if appsrc.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buf])
                    != gst::FlowReturn::Ok
                {
                    break;
                }
            }
            let _ = appsrc.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
        }));
    }
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut err = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                err = Some(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    for p in pushers {
        let _ = p.join();
    }
    if let Some(e) = err {
        return Err(e);
    }
    let times = times.lock().unwrap_or_else(|e| e.into_inner());
    if times.len() < 2 {
        return Err(format!("only {} buffers reached the sink", times.len()));
    }
    let secs = times[times.len() - 1]
        .duration_since(times[0])
        .as_secs_f64();
    // Scale to `frames` frames from the (len − 1) intervals measured.
    Ok(secs * frames as f64 / (times.len() - 1) as f64)
}

/// One measurement of one method: frames per second and the process's peak RSS.
struct Cell {
    fps: f64,
    rss_mib: f64,
}

/// The median of `v` (the mean of the middle two for an even count); `None` when empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    })
}

/// The methods in table order: the name `run_cell` takes and the row label.
const METHODS: [(&str, &str); 4] = [
    ("ort", "(a) onnxruntime session"),
    ("lib", "(b) stego library"),
    ("gst", "(c) GStreamer element"),
    ("python", "(d) Python ort+numpy"),
];

/// `text` on one line for a table cell: terminal colour codes removed, whitespace collapsed.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequence: ESC [ parameters final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs `cmd` to completion or until `limit` has passed (then kills it), returning its output.
fn output_within(mut cmd: Command, limit: Option<std::time::Duration>) -> Result<std::process::Output, String> {
    use std::io::Read;
    use std::process::Stdio;
    let Some(limit) = limit else {
        return cmd.output().map_err(|e| e.to_string());
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Drain both pipes while waiting, so that a chatty child never blocks on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err_t = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s (--cell-timeout)", limit.as_secs()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

fn run_cell(method: &str, spec: &CellSpec, limit: Option<std::time::Duration>) -> Result<Cell, String> {
    let CellSpec { role, ref model, w, h, frames, threads, provider } = *spec;
    let out = if method == "python" {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let py = std::env::var_os("STEGO_BENCH_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/python"));
        let mut c = Command::new(&py);
        c.arg(root.join("scripts/bench_python.py"))
            .args([
                "--model",
                &model.display().to_string(),
                "--role",
                role.as_str(),
            ])
            .args([
                "--width",
                &w.to_string(),
                "--height",
                &h.to_string(),
                "--frames",
                &frames.to_string(),
            ])
            .args([
                "--threads",
                &threads.unwrap_or(0).to_string(),
                "--provider",
                provider.as_str(),
            ]);
        output_within(c, limit).map_err(|e| {
            if e.starts_with("timed out") {
                e
            } else {
                format!("{}: {e} (run scripts/setup.sh)", py.display())
            }
        })?
    } else {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut c = Command::new(exe);
        c.args([
            "--worker",
            method,
            role.as_str(),
            &model.display().to_string(),
            &format!("{w}x{h}"),
            &frames.to_string(),
        ]);
        if let Some(t) = threads {
            c.args(["--threads", &t.to_string()]);
        }
        c.args(["--execution-provider", provider.as_str()]);
        output_within(c, limit)?
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| {
            // The whole stderr goes to the bench's stderr; the table gets its last line, where
            // the worker and the Python script put their one-line reason.
            let stderr = String::from_utf8_lossy(&out.stderr);
            eprintln!("{method} ({}): no result ({}); stderr:\n{stderr}", spec.role, out.status);
            let last = stderr.lines().map(one_line).rfind(|l| !l.is_empty()).unwrap_or_default();
            format!("{method}: no result ({}): {last}", out.status)
        })?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let &[n, secs, rss] = v.as_slice() else {
        return Err(format!("{method}: bad result line {line:?}"));
    };
    Ok(Cell {
        fps: n / secs,
        rss_mib: rss / 1024.0,
    })
}

/// Runs `model` on `opts`' provider and on the CPU with two different 128×128 inputs through the
/// library's `Model` (its reused, rebound buffers) and compares: the outputs must agree (mean
/// |Δ| ≤ 0.01 on the 0–1 scale; TF32/float16 arithmetic differs a little) and the two frames'
/// outputs must differ (a session fed stale inputs would repeat the first). Returns a one-line
/// report.
fn preflight(model: &std::path::Path, role: Role, opts: &RuntimeOptions) -> Result<String, String> {
    let (h, w) = (128, 128);
    let mut dev = Model::load(model, role, opts).map_err(|e| e.to_string())?;
    let mut cpu = Model::load(model, role, &RuntimeOptions { execution_provider: ExecutionProvider::Cpu, ..opts.clone() })
        .map_err(|e| e.to_string())?;
    let frame = |seed: u64| {
        let bytes = pseudo_random_bytes(3 * h * w, seed);
        ndarray::Array4::from_shape_vec((1, 3, h, w), bytes.iter().map(|&b| stego::frame::dequantize(b)).collect())
            .expect("3*h*w values")
    };
    let mean_abs_diff = |a: &ndarray::Array4<f32>, b: &ndarray::Array4<f32>| {
        a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len() as f64
    };
    let mut outs = Vec::new();
    let (mut max_d, mut mean_d) = (0f32, 0f64);
    for k in 0..2u64 {
        let inputs: Vec<_> = (0..role.inputs().len() as u64).map(|i| frame(10 * k + i + 1)).collect();
        let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
        let d = dev.run(&views).map_err(|e| e.to_string())?;
        let c = cpu.run(&views).map_err(|e| e.to_string())?;
        max_d = d.iter().zip(c.iter()).map(|(a, b)| (a - b).abs()).fold(max_d, f32::max);
        mean_d = mean_d.max(mean_abs_diff(&d, &c));
        outs.push(d);
    }
    let between = mean_abs_diff(&outs[0], &outs[1]);
    let report = format!(
        "{} on {}: against the CPU on two 128x128 inputs, mean |Δ| {mean_d:.2e}, max |Δ| {max_d:.2e}; the two outputs differ by {between:.3} on average; the library's host buffers are {}",
        model.display(),
        dev.provider(),
        if dev.pinned_buffers() == Some(true) { "pinned (page-locked)" } else { "pageable" }
    );
    if mean_d > 0.01 || between < 0.01 {
        return Err(format!("outputs are wrong: {report}"));
    }
    Ok(report)
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let (threads, provider, frames, variant) = (args.threads, args.execution_provider, args.frames, args.variant);
    if let Some(w) = &args.worker {
        let spec = CellSpec {
            role: parse_role(&w[1]).unwrap_or(Role::Hide),
            model: PathBuf::from(&w[2]),
            w: parse_size(&w[3]).map_or(0, |s| s.0),
            h: parse_size(&w[3]).map_or(0, |s| s.1),
            frames: w[4].parse().unwrap_or(1),
            threads,
            provider,
        };
        if let Err(e) = worker(&w[0], &spec) {
            eprintln!("worker error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let rounds = args.rounds as usize;
    let cell_limit = args.cell_timeout.map(std::time::Duration::from_secs);
    let role_list = &args.roles;
    let precision = args.precision.as_str();
    // Without --model-dir: the folder the library finds the variant's hiding model in.
    let model_dir = args.model_dir.clone().unwrap_or_else(|| match stego::resolve_model(None, variant, Role::Hide) {
        Ok(file) => file.parent().map(PathBuf::from).unwrap_or_default(),
        Err(e) => {
            eprintln!("stego throughput: {e}: give --model-dir");
            std::process::exit(2);
        }
    });
    let model_for = |role: Role| {
        model_dir.join(if precision == "fp16" {
            variant.fp16_file_name(role)
        } else {
            variant.file_name(role).to_string()
        })
    };
    // Each model once on the provider against the CPU before the table: a provider that cannot
    // run gives one clear error instead of the same one in every cell, and wrong outputs stop
    // the benchmark.
    for &role in role_list {
        let opts = RuntimeOptions { threads, execution_provider: provider, ..Default::default() };
        let model = model_for(role);
        match preflight(&model, role, &opts) {
            Ok(report) => println!("stego throughput: {report}"),
            Err(e) => {
                eprintln!("stego throughput: cannot run {} on {provider}: {e}", model.display());
                std::process::exit(1);
            }
        }
    }
    println!(
        "stego throughput: {frames} timed frames per cell after warm-up; {rounds} interleaved rounds per cell, figures are medians over the rounds (vs (a): median of per-round ratios); provider: {provider}; threads: {}; models: {} ({variant}, {precision})",
        threads.map_or("onnxruntime default".into(), |t: usize| t.to_string()),
        model_dir.display()
    );
    println!(
        "| role | size | method | fps | fps range | ms/frame | GFLOP/s | peak RSS MiB | vs (a) |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for &role in role_list {
        let model = model_for(role);
        for &(w, h) in &args.sizes {
            let spec = CellSpec {
                role,
                model: model.clone(),
                w,
                h,
                frames,
                threads,
                provider,
            };
            // results[m][r]: method m (index into METHODS) in round r.
            let mut results: Vec<Vec<Result<Cell, String>>> =
                METHODS.iter().map(|_| Vec::with_capacity(rounds)).collect();
            for r in 0..rounds {
                for k in 0..METHODS.len() {
                    let m = (r + k) % METHODS.len();
                    results[m].push(run_cell(METHODS[m].0, &spec, cell_limit));
                }
            }
            let flop_per_frame = 2.0 * macs_per_pixel(&model, role) * (w * h) as f64;
            for (m, (method, label)) in METHODS.iter().enumerate() {
                let ok: Vec<&Cell> = results[m].iter().filter_map(|c| c.as_ref().ok()).collect();
                for (r, c) in results[m].iter().enumerate() {
                    if let (Err(e), false) = (c, ok.is_empty()) {
                        eprintln!("{role} {w}x{h} {method}: round {r} left out: {e}");
                    }
                }
                let Some(fps) = median(ok.iter().map(|c| c.fps).collect()) else {
                    let e = results[m]
                        .iter()
                        .find_map(|c| c.as_ref().err())
                        .cloned()
                        .unwrap_or_default();
                    println!("| {role} | {w}x{h} | {label} | error: {} | | | | | |", one_line(&e));
                    continue;
                };
                let lo = ok.iter().map(|c| c.fps).fold(f64::INFINITY, f64::min);
                let hi = ok.iter().map(|c| c.fps).fold(f64::NEG_INFINITY, f64::max);
                let rss = ok.iter().map(|c| c.rss_mib).fold(0.0, f64::max);
                // Paired ratios: this method and (a) in the same round.
                let ratios = results[m]
                    .iter()
                    .zip(&results[0])
                    .filter_map(|(c, a)| Some(c.as_ref().ok()?.fps / a.as_ref().ok()?.fps))
                    .collect();
                let rel = median(ratios).map_or("n/a".to_string(), |x| format!("{x:.2}"));
                println!(
                    "| {role} | {w}x{h} | {label} | {fps:.2} | {lo:.2}–{hi:.2} | {:.1} | {:.1} | {rss:.0} | {rel} |",
                    1000.0 / fps,
                    fps * flop_per_frame / 1e9
                );
            }
        }
    }
}
