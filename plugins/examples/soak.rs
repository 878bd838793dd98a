// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Memory soak of the elements: runs
//
//   videotestsrc (cover) + videotestsrc pattern=ball (secret), RGB WxH
//     → stegohide → stegoreveal → fakesink
//
// for N frames (default 1000 at 64x48) and samples the process's resident set size
// (VmRSS in /proc/self/status) every K frames (default 100) from the sink's streaming thread;
// prints the samples, the peak (largest sample, and the kernel's VmHWM), and the growth after
// warm-up. Exits with status 1 when the RSS grew by more than --max-growth-mib between the
// first sample after warm-up (frame K) and the last one.
//
//   cargo run --release -p gst-plugin-stego --example soak -- [--frames 1000] [--every 100]
//       [--size 64x48] [--max-growth-mib 8]
//
// Models: the shipped models/ (or STEGO_TEST_MODEL_DIR).

#[path = "../tests/common/mod.rs"]
mod common;

use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The soak's options (see the file's docs).
#[derive(clap::Parser, Debug)]
#[command(name = "soak", about = "Memory soak of stegohide ! stegoreveal: samples the resident set size while frames flow")]
struct Args {
    /// Frames to run.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    frames: u64,
    /// Sample the resident set size every this many frames (≤ --frames).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Frame size, WxH.
    #[arg(long, default_value = "64x48", value_parser = common::parse_size)]
    size: (usize, usize),
    /// Fail (exit status 1) when the RSS grew by more than this between the first sample
    /// after warm-up and the last.
    #[arg(long, default_value_t = 8.0)]
    max_growth_mib: f64,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    if args.frames < args.every {
        <Args as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ValueValidation, "--frames must be at least --every")
            .exit();
    }
    common::init();
    let ((w, h), n) = (args.size, args.frames);
    let caps = format!("video/x-raw,format=RGB,width={w},height={h},framerate=25/1");
    let launch = format!(
        "videotestsrc num-buffers={n} ! {caps} ! h.cover \
         videotestsrc pattern=ball num-buffers={n} ! {caps} ! h.secret \
         stegohide name=h model-file=\"{hm}\" ! stegoreveal model-file=\"{rm}\" ! fakesink name=sink sync=false",
        hm = common::model("hide.onnx").display(),
        rm = common::model("reveal.onnx").display(),
    );
    let pipeline = gst::parse::launch(&launch)
        .expect("the soak pipeline builds")
        .downcast::<gst::Pipeline>()
        .unwrap();

    let rss_start = status_kib("VmRSS");
    let samples: Arc<Mutex<Vec<(usize, u64, f64)>>> = Arc::default();
    let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    {
        let samples = samples.clone();
        let total = total.clone();
        let every = args.every as usize;
        let pad = pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let count = total.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if count.is_multiple_of(every) {
                let rss = status_kib("VmRSS");
                let t = t0.elapsed().as_secs_f64();
                println!(
                    "frame {count:>6}  VmRSS {:>8.1} MiB  t {t:>7.1} s",
                    mib(rss)
                );
                samples.lock().unwrap().push((count, rss, t));
            }
            gst::PadProbeReturn::Ok
        });
    }
    println!(
        "soak: {n} frames at {w}x{h}, videotestsrc + videotestsrc pattern=ball → stegohide → stegoreveal → fakesink; \
         VmRSS before starting {:.1} MiB",
        mib(rss_start)
    );
    let bus = pipeline.bus().unwrap();
    pipeline
        .set_state(gst::State::Playing)
        .expect("the pipeline starts");
    let mut ok = false;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                ok = true;
                break;
            }
            gst::MessageView::Error(e) => {
                eprintln!("soak: error: {} ({:?})", e.error(), e.debug());
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    if !ok {
        std::process::exit(1);
    }
    let samples = samples.lock().unwrap();
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let hwm = status_kib("VmHWM");
    let (first, last) = (samples.first().unwrap(), samples.last().unwrap());
    let growth = mib(last.1) - mib(first.1);
    let total = total.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "soak: {total} frames in {elapsed:.1} s ({:.1} frames/s); VmRSS samples: first (frame {}) {:.1} MiB, \
         last (frame {}) {:.1} MiB, growth {growth:+.1} MiB; peak sampled VmRSS {:.1} MiB; VmHWM {:.1} MiB",
        total as f64 / elapsed,
        first.0,
        mib(first.1),
        last.0,
        mib(last.1),
        mib(peak),
        mib(hwm)
    );
    if total != n as usize {
        eprintln!("soak: {total} of {n} frames reached the sink");
        std::process::exit(1);
    }
    if growth > args.max_growth_mib {
        eprintln!(
            "soak: FAIL: VmRSS grew by {growth:.1} MiB after warm-up (limit {} MiB)",
            args.max_growth_mib
        );
        std::process::exit(1);
    }
    println!(
        "soak: OK: growth within {} MiB after warm-up",
        args.max_growth_mib
    );
}
