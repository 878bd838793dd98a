//! Times training steps of the paper nets (prep + hide + reveal) on the CPU: forward, loss
//! `mse(C, C') + 0.75·mse(S, S')`, backward, AdamW update, on random images and weights.
//!
//! ```text
//! cargo run --release -p training --example bench_step -- --batch 8 --size 64 --steps 3
//! cargo run --release -p training --example bench_step -- --batch 8 --size 64 --steps 2 --reference
//! ```
//!
//! `--reference` runs the same nets on candle's own conv2d (the plain path of
//! [`training::fastconv`]) instead of the fast custom ops. GFLOP per step counts the
//! convolution multiply-adds ×2 (forward) ×3 (forward + both backward products).

use std::time::Instant;

use anyhow::{Result, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use training::{fastconv, nets};

struct Args {
    batch: usize,
    size: usize,
    steps: usize,
    warmup: usize,
    reference: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        batch: 8,
        size: 64,
        steps: 3,
        warmup: 1,
        reference: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<usize> {
            match it.next().map(|v| v.parse::<usize>()) {
                Some(Ok(v)) => Ok(v),
                _ => bail!("{name} needs a number"),
            }
        };
        match arg.as_str() {
            "--batch" => a.batch = num("--batch")?,
            "--size" => a.size = num("--size")?,
            "--steps" => a.steps = num("--steps")?,
            "--warmup" => a.warmup = num("--warmup")?,
            "--reference" => a.reference = true,
            "-h" | "--help" => {
                println!(
                    "bench_step [--batch N] [--size PX] [--steps N] [--warmup N] [--reference]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// CPU time (user + system) of this process so far, in seconds (Linux `/proc`; 0 elsewhere).
/// Tells how much work a step took when other processes share the cores.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// Convolution multiply-adds per output pixel: Σ over conv weights of Cout·Cin·KH·KW
/// (stride 1, 'same' padding: one output per input pixel).
fn macs_per_pixel(varmap: &VarMap) -> usize {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .filter(|(k, _)| k.ends_with(".weight"))
        .map(|(_, v)| v.elem_count())
        .sum()
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let dev = Device::Cpu;
    fastconv::set_reference_mode(args.reference);
    let (varmap, model) = nets::init_nets(&dev, 1)?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-4,
            ..Default::default()
        },
    )?;
    let (n, s) = (args.batch, args.size);
    let cover = Tensor::rand(0f32, 1f32, (n, 3, s, s), &dev)?;
    let secret = Tensor::rand(0f32, 1f32, (n, 3, s, s), &dev)?;

    let macs = macs_per_pixel(&varmap) as f64 * (n * s * s) as f64;
    let gflop_fwd = 2.0 * macs / 1e9;
    let gflop_step = 3.0 * gflop_fwd;
    println!(
        "path: {}  batch {n}  {s}x{s}  threads {}  conv MACs/pixel {}",
        if args.reference {
            "candle conv2d (reference)"
        } else {
            "fastconv"
        },
        rayon::current_num_threads(),
        macs_per_pixel(&varmap),
    );

    let forward = || -> candle_core::Result<Tensor> {
        let container = model.hide(&cover, &secret)?;
        let revealed = model.reveal(&container)?;
        mse(&cover, &container)? + (mse(&secret, &revealed)? * 0.75)?
    };

    // Forward only (no backward; the graph is built but dropped).
    let mut fwd_times = Vec::new();
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let loss = forward()?;
        let _ = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if i >= args.warmup {
            fwd_times.push(t.elapsed().as_secs_f64());
        }
    }

    // Full training steps.
    let mut step_times = Vec::new();
    let mut parts = Vec::new();
    let mut cpu_times = Vec::new();
    for i in 0..args.warmup + args.steps {
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let loss = forward()?;
        let l = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        let t3 = Instant::now();
        let cpu = cpu_seconds() - c0;
        let total = (t3 - t0).as_secs_f64();
        let (f, b, o) = (
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
        );
        println!(
            "{} step {i}: {total:.3} s (forward {f:.3}, backward {b:.3}, adamw {o:.3})  cpu {cpu:.2} s  loss {l:.5}",
            if i < args.warmup { "warm-up" } else { "timed" },
        );
        if i >= args.warmup {
            step_times.push(total);
            cpu_times.push(cpu);
            parts.push((f, b, o));
        }
    }
    if step_times.is_empty() {
        return Ok(());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let step = mean(&step_times);
    let fwd = mean(&fwd_times);
    let k = parts.len() as f64;
    let (f, b, o) = parts.iter().fold((0.0, 0.0, 0.0), |a, p| {
        (a.0 + p.0 / k, a.1 + p.1 / k, a.2 + p.2 / k)
    });
    println!("GFLOP per step (fwd+bwd): {gflop_step:.1}  (forward {gflop_fwd:.1})");
    println!(
        "training step: {step:.3} s mean of {}  (min {:.3})  → {:.1} GFLOP/s effective",
        step_times.len(),
        step_times.iter().cloned().fold(f64::INFINITY, f64::min),
        gflop_step / step
    );
    println!(
        "  of which forward {f:.3} s, backward {b:.3} s ({:.1} GFLOP/s), adamw {o:.3} s",
        2.0 * gflop_fwd / b
    );
    let cpu = mean(&cpu_times);
    println!(
        "  CPU time per step {cpu:.2} s over {} threads: {:.1} GFLOP per CPU-second \
         (if the cores were shared with other processes, step time ≈ CPU time / threads)",
        rayon::current_num_threads(),
        gflop_step / cpu
    );
    println!("forward only: {fwd:.3} s → {:.1} GFLOP/s", gflop_fwd / fwd);
    Ok(())
}
