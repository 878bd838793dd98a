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

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use clap::Parser;
use training::{fastconv, nets};

/// Time training steps of the paper nets on the CPU.
#[derive(Parser, Debug)]
struct Args {
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Side of the square images, in pixels.
    #[arg(long, value_name = "PX", default_value_t = 64)]
    size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Run candle's own conv2d instead of the fast custom ops.
    #[arg(long)]
    reference: bool,
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

/// The times of one training step, in seconds.
struct StepTimes {
    total: f64,
    forward: f64,
    backward: f64,
    adamw: f64,
    cpu: f64,
}

fn mean(v: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = v.len() as f64;
    v.sum::<f64>() / n
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dev = Device::Cpu;
    fastconv::set_reference_mode(args.reference);
    let (varmap, model) = nets::init_nets(&dev, 1)?;
    let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW { lr: 1e-4, ..Default::default() })?;
    let (n, s) = (args.batch, args.size);
    let cover = Tensor::rand(0f32, 1f32, (n, 3, s, s), &dev)?;
    let secret = Tensor::rand(0f32, 1f32, (n, 3, s, s), &dev)?;
    let gflop_fwd = 2.0 * macs_per_pixel(&varmap) as f64 * (n * s * s) as f64 / 1e9;
    println!(
        "path: {}  batch {n}  {s}x{s}  threads {}  conv MACs/pixel {}",
        if args.reference { "candle conv2d (reference)" } else { "fastconv" },
        rayon::current_num_threads(),
        macs_per_pixel(&varmap),
    );
    let forward = || -> candle_core::Result<Tensor> {
        let container = model.hide(&cover, &secret)?;
        let revealed = model.reveal(&container)?;
        mse(&cover, &container)? + (mse(&secret, &revealed)? * 0.75)?
    };
    let fwd_times = time_forward(&forward, &args)?;
    let steps = time_steps(&forward, &mut opt, &args)?;
    if !steps.is_empty() {
        report(&steps, mean(fwd_times.into_iter()), gflop_fwd);
    }
    Ok(())
}

/// Times the forward pass alone (the graph is built but dropped).
fn time_forward(forward: &impl Fn() -> candle_core::Result<Tensor>, args: &Args) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let _ = forward()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if i >= args.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

/// Times full training steps, printing each; returns the timed ones.
fn time_steps(forward: &impl Fn() -> candle_core::Result<Tensor>, opt: &mut AdamW, args: &Args) -> Result<Vec<StepTimes>> {
    let mut times = Vec::new();
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
        let t = StepTimes {
            total: (t3 - t0).as_secs_f64(),
            forward: (t1 - t0).as_secs_f64(),
            backward: (t2 - t1).as_secs_f64(),
            adamw: (t3 - t2).as_secs_f64(),
            cpu: cpu_seconds() - c0,
        };
        println!(
            "{} step {i}: {:.3} s (forward {:.3}, backward {:.3}, adamw {:.3})  cpu {:.2} s  loss {l:.5}",
            if i < args.warmup { "warm-up" } else { "timed" },
            t.total,
            t.forward,
            t.backward,
            t.adamw,
            t.cpu,
        );
        if i >= args.warmup {
            times.push(t);
        }
    }
    Ok(times)
}

/// Prints the means of the timed steps and the throughput they give.
fn report(steps: &[StepTimes], fwd: f64, gflop_fwd: f64) {
    let gflop_step = 3.0 * gflop_fwd;
    let step = mean(steps.iter().map(|t| t.total));
    let (f, b, o) = (mean(steps.iter().map(|t| t.forward)), mean(steps.iter().map(|t| t.backward)), mean(steps.iter().map(|t| t.adamw)));
    println!("GFLOP per step (fwd+bwd): {gflop_step:.1}  (forward {gflop_fwd:.1})");
    println!(
        "training step: {step:.3} s mean of {}  (min {:.3})  → {:.1} GFLOP/s effective",
        steps.len(),
        steps.iter().map(|t| t.total).fold(f64::INFINITY, f64::min),
        gflop_step / step
    );
    println!("  of which forward {f:.3} s, backward {b:.3} s ({:.1} GFLOP/s), adamw {o:.3} s", 2.0 * gflop_fwd / b);
    let cpu = mean(steps.iter().map(|t| t.cpu));
    println!(
        "  CPU time per step {cpu:.2} s over {} threads: {:.1} GFLOP per CPU-second \
         (if the cores were shared with other processes, step time ≈ CPU time / threads)",
        rayon::current_num_threads(),
        gflop_step / cpu
    );
    println!("forward only: {fwd:.3} s → {:.1} GFLOP/s", gflop_fwd / fwd);
}
