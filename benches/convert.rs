//! Cost of the frame ↔ tensor conversion around one model call, per pixel format and size:
//! milliseconds per call of frame → tensor (`Converter::to_tensor`) and tensor → frame
//! (`planar_to_frame`), for the library ("new") and for a copy of the former per-pixel scalar
//! implementation kept here as a baseline ("old"). The last column is one hide's conversion:
//! two frames in, one frame out.
//!
//! `cargo bench -p stego --bench convert -- [--sizes 320x240,640x480] [--budget-ms 25]`
//!
//! `-- --scan` instead times one thread against two (or `--threads N`) on a range of sizes,
//! to place the library's threshold for converting on several threads.

use std::hint::black_box;
use std::time::Instant;
use stego::frame::{Converter, Frame, FrameMut, PixelFormat, bench_support, planar_to_frame};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

use stego::frame::bench_support::pseudo_random_bytes;

/// The former implementation, per pixel through a table and runtime offsets.
mod old {
    use stego::frame::{PixelFormat, dequantize, quantize};

    #[allow(clippy::too_many_arguments)]
    pub fn frame_to_planar_padded(
        data: &[u8],
        format: PixelFormat,
        w: usize,
        h: usize,
        stride: usize,
        out: &mut [f32],
        out_w: usize,
        out_h: usize,
    ) {
        let bpp = format.bytes_per_pixel();
        let offs = format.rgb_offsets();
        let plane = out_w * out_h;
        let (r_plane, rest) = out.split_at_mut(plane);
        let (g_plane, b_plane) = rest.split_at_mut(plane);
        for y in 0..out_h {
            let start = y.min(h - 1) * stride;
            let row = &data[start..start + w * bpp];
            let base = y * out_w;
            let (r, g, b) = (&mut r_plane[base..base + out_w], &mut g_plane[base..base + out_w], &mut b_plane[base..base + out_w]);
            for (x, px) in row.chunks_exact(bpp).enumerate() {
                r[x] = dequantize(px[offs[0]]);
                g[x] = dequantize(px[offs[1]]);
                b[x] = dequantize(px[offs[2]]);
            }
            for x in w..out_w {
                r[x] = r[w - 1];
                g[x] = g[w - 1];
                b[x] = b[w - 1];
            }
        }
    }

    /// `alpha`: the alpha source's bytes and stride (an RGBA/BGRA frame of the same size).
    #[allow(clippy::too_many_arguments)]
    pub fn planar_to_frame(
        planar: &[f32],
        tensor_w: usize,
        tensor_h: usize,
        out: &mut [u8],
        format: PixelFormat,
        w: usize,
        h: usize,
        stride: usize,
        alpha: Option<(&[u8], usize)>,
    ) {
        let plane = tensor_w * tensor_h;
        let bpp = format.bytes_per_pixel();
        let offs = format.rgb_offsets();
        let has_alpha = format.alpha_offset();
        let fourth = bpp == 4;
        for y in 0..h {
            let base = y * tensor_w;
            let (r, g, b) =
                (&planar[base..base + w], &planar[plane + base..plane + base + w], &planar[2 * plane + base..2 * plane + base + w]);
            let a_row = alpha.map(|(a, s)| (&a[y * s..y * s + 4 * w], 3, 4));
            let row = &mut out[y * stride..y * stride + w * bpp];
            for (x, px) in row.chunks_exact_mut(bpp).enumerate() {
                px[offs[0]] = quantize(r[x]);
                px[offs[1]] = quantize(g[x]);
                px[offs[2]] = quantize(b[x]);
                if fourth {
                    px[3] = match (has_alpha, a_row) {
                        (Some(_), Some((src, ao, sbpp))) => src[x * sbpp + ao],
                        _ => 255,
                    };
                }
            }
        }
    }
}

/// Median milliseconds per call of `f` over batches of about `budget_ms / 7` each.
fn time_ms(budget_ms: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64() * 1e3;
    let per_batch = ((budget_ms / 7.0 / once.max(1e-4)) as usize).clamp(1, 100_000);
    let mut batches: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / per_batch as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[3]
}

/// One thread against `threads` for frame → tensor and tensor → frame, RGB and RGBx, by size.
fn scan(sizes: &[(usize, usize)], budget: f64, threads: usize) {
    println!(
        "ms per call, 1 thread vs {threads}; the library converts on several threads from {} pixels \
         on machines with {} or more cores",
        bench_support::PARALLEL_MIN_PIXELS,
        bench_support::PARALLEL_MIN_CORES
    );
    println!(
        "{:<6} {:>9} {:>8} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6}",
        "format", "size", "pixels", "to 1", "to N", "x", "from 1", "from N", "x"
    );
    for fmt in [PixelFormat::Rgb, PixelFormat::Rgbx] {
        for &(w, h) in sizes {
            let stride = w * fmt.bytes_per_pixel();
            let data = pseudo_random_bytes(stride * h, 1);
            let frame = Frame::new(&data, fmt, w, h, stride).unwrap();
            let mut tensor = vec![0f32; 3 * w * h];
            let mut out = vec![0u8; stride * h];
            let mut to = |n| {
                time_ms(budget, || {
                    bench_support::to_tensor_threads(black_box(&frame), &mut tensor, w, h, n);
                    black_box(&tensor);
                })
            };
            let (to1, ton) = (to(1), to(threads));
            let planar: Vec<f32> = pseudo_random_bytes(3 * w * h, 2).iter().map(|&b| b as f32 / 255.0).collect();
            let mut from = |n| {
                time_ms(budget, || {
                    let mut of = FrameMut::new(&mut out, fmt, w, h, stride).unwrap();
                    bench_support::planar_to_frame_threads(black_box(&planar), w, h, &mut of, None, n).unwrap();
                    black_box(&out);
                })
            };
            let (from1, fromn) = (from(1), from(threads));
            println!(
                "{:<6} {:>9} {:>8} | {:>8.3} {:>8.3} {:>6.2} | {:>8.3} {:>8.3} {:>6.2}",
                fmt.name(),
                format!("{w}x{h}"),
                w * h,
                to1,
                ton,
                to1 / ton,
                from1,
                fromn,
                from1 / fromn
            );
        }
    }
}

struct Case {
    label: &'static str,
    format: PixelFormat,
    alpha_source: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scanning = args.iter().any(|a| a == "--scan");
    let default_sizes = if scanning {
        "160x120,320x240,480x360,640x480,800x600,960x720,1024x768,1280x720,1280x960,1600x900,1920x1080"
    } else {
        "320x240,640x480,1280x720,1920x1080"
    };
    let sizes: Vec<(usize, usize)> = arg(&args, "--sizes")
        .unwrap_or_else(|| default_sizes.into())
        .split(',')
        .map(|s| {
            let (w, h) = s.split_once('x').expect("--sizes WxH,...");
            (w.parse().expect("width"), h.parse().expect("height"))
        })
        .collect();
    let budget: f64 = arg(&args, "--budget-ms").map(|s| s.parse().expect("--budget-ms")).unwrap_or(25.0);
    if scanning {
        let threads = arg(&args, "--threads").map(|s| s.parse().expect("--threads")).unwrap_or(2);
        return scan(&sizes, budget, threads);
    }
    let cases = [
        Case { label: "RGB", format: PixelFormat::Rgb, alpha_source: false },
        Case { label: "BGR", format: PixelFormat::Bgr, alpha_source: false },
        Case { label: "RGBx", format: PixelFormat::Rgbx, alpha_source: false },
        Case { label: "BGRx", format: PixelFormat::Bgrx, alpha_source: false },
        Case { label: "RGBA+alpha", format: PixelFormat::Rgba, alpha_source: true },
    ];
    println!("threads available: {}; ms per call, median of 7 batches", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!(
        "{:<11} {:>9} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>9} {:>9}",
        "format", "size", "to old", "to new", "x", "from old", "from new", "x", "hide old", "hide new"
    );
    for case in &cases {
        for &(w, h) in &sizes {
            let fmt = case.format;
            let stride = w * fmt.bytes_per_pixel();
            let cover = pseudo_random_bytes(stride * h, 1);
            let frame = Frame::new(&cover, fmt, w, h, stride).unwrap();
            let mut tensor = vec![0f32; 3 * w * h];
            let mut conv = Converter::new();

            let to_old = time_ms(budget, || {
                old::frame_to_planar_padded(black_box(&cover), fmt, w, h, stride, &mut tensor, w, h);
                black_box(&tensor);
            });
            let mut reference = tensor.clone();
            old::frame_to_planar_padded(&cover, fmt, w, h, stride, &mut reference, w, h);
            let to_new = time_ms(budget, || {
                conv.to_tensor(black_box(&frame), w, h, &mut tensor, w, h).unwrap();
                black_box(&tensor);
            });
            assert!(reference.iter().zip(&tensor).all(|(a, b)| a.to_bits() == b.to_bits()), "{} {w}x{h}: to-tensor differs", case.label);

            // A model output: mostly in [0, 1], some values outside.
            let planar: Vec<f32> = pseudo_random_bytes(3 * w * h, 2).iter().map(|&b| (b as f32 - 8.0) / 239.0).collect();
            let mut out_old = vec![0u8; stride * h];
            let mut out_new = vec![0u8; stride * h];
            let alpha = case.alpha_source.then_some((&cover[..], stride));
            let from_old = time_ms(budget, || {
                old::planar_to_frame(black_box(&planar), w, h, &mut out_old, fmt, w, h, stride, alpha);
                black_box(&out_old);
            });
            let from_new = time_ms(budget, || {
                let mut of = FrameMut::new(&mut out_new, fmt, w, h, stride).unwrap();
                planar_to_frame(black_box(&planar), w, h, &mut of, case.alpha_source.then_some(&frame)).unwrap();
                black_box(&out_new);
            });
            assert!(out_old == out_new, "{} {w}x{h}: from-tensor differs", case.label);
            println!(
                "{:<11} {:>9} | {:>9.3} {:>9.3} {:>6.1} | {:>9.3} {:>9.3} {:>6.1} | {:>9.3} {:>9.3}",
                case.label,
                format!("{w}x{h}"),
                to_old,
                to_new,
                to_old / to_new,
                from_old,
                from_new,
                from_old / from_new,
                2.0 * to_old + from_old,
                2.0 * to_new + from_new
            );
        }
    }
}
