//! Cost of the frame ↔ tensor conversion around one model call, per pixel format and size
//! (criterion): frame → tensor (`Converter::to_tensor`) and tensor → frame (`planar_to_frame`),
//! for the library ("new") and for a copy of the former per-pixel scalar implementation kept
//! here as a baseline ("old"), which must give the same bytes (checked before timing). Group
//! `threads` times one thread against two (`STEGO_BENCH_THREADS`) on a range of sizes, to place
//! the library's threshold for converting on several threads.
//!
//! `cargo bench -p stego --bench convert [-- FILTER]`, e.g. `-- 'to_tensor/RGB/'` or
//! `-- threads`; sizes: `STEGO_BENCH_SIZES=320x240,640x480` (and `STEGO_BENCH_SCAN_SIZES`).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use stego::frame::bench_support::{self, pseudo_random_bytes};
use stego::frame::{Converter, Frame, FrameMut, PixelFormat, planar_to_frame};

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

/// The sizes in the environment variable `var` (`WxH,WxH,…`), else `default`.
fn sizes(var: &str, default: &str) -> Vec<(usize, usize)> {
    let list = std::env::var(var).unwrap_or_else(|_| default.into());
    list.split(',')
        .map(|s| {
            let (w, h) = s.split_once('x').unwrap_or_else(|| panic!("{var}: {s:?} is not WxH"));
            (w.trim().parse().unwrap_or_else(|_| panic!("{var}: bad width in {s:?}")), h.trim().parse().unwrap_or_else(|_| panic!("{var}: bad height in {s:?}")))
        })
        .collect()
}

/// A model output: mostly in [0, 1], some values outside.
fn model_output(w: usize, h: usize) -> Vec<f32> {
    pseudo_random_bytes(3 * w * h, 2).iter().map(|&b| (b as f32 - 8.0) / 239.0).collect()
}

struct Case {
    label: &'static str,
    format: PixelFormat,
    alpha_source: bool,
}

const CASES: [Case; 5] = [
    Case { label: "RGB", format: PixelFormat::Rgb, alpha_source: false },
    Case { label: "BGR", format: PixelFormat::Bgr, alpha_source: false },
    Case { label: "RGBx", format: PixelFormat::Rgbx, alpha_source: false },
    Case { label: "BGRx", format: PixelFormat::Bgrx, alpha_source: false },
    Case { label: "RGBA+alpha", format: PixelFormat::Rgba, alpha_source: true },
];

/// Old against new, frame → tensor and tensor → frame, per format and size.
fn old_and_new(c: &mut Criterion) {
    for case in &CASES {
        for (w, h) in sizes("STEGO_BENCH_SIZES", "320x240,640x480,1280x720,1920x1080") {
            let (fmt, size) = (case.format, format!("{w}x{h}"));
            let stride = w * fmt.bytes_per_pixel();
            let cover = pseudo_random_bytes(stride * h, 1);
            let frame = Frame::new(&cover, fmt, w, h, stride).unwrap();
            let mut tensor = vec![0f32; 3 * w * h];
            let mut reference = tensor.clone();
            let mut conv = Converter::new();
            old::frame_to_planar_padded(&cover, fmt, w, h, stride, &mut reference, w, h);
            conv.to_tensor(&frame, w, h, &mut tensor, w, h).unwrap();
            assert!(reference.iter().zip(&tensor).all(|(a, b)| a.to_bits() == b.to_bits()), "{} {size}: to-tensor differs", case.label);

            let mut g = c.benchmark_group(format!("to_tensor/{}", case.label));
            g.bench_function(BenchmarkId::new("old", &size), |b| {
                b.iter(|| old::frame_to_planar_padded(black_box(&cover), fmt, w, h, stride, &mut tensor, w, h))
            });
            g.bench_function(BenchmarkId::new("new", &size), |b| b.iter(|| conv.to_tensor(black_box(&frame), w, h, &mut tensor, w, h).unwrap()));
            g.finish();

            let planar = model_output(w, h);
            let (mut out_old, mut out_new) = (vec![0u8; stride * h], vec![0u8; stride * h]);
            let alpha = case.alpha_source.then_some((&cover[..], stride));
            let alpha_frame = case.alpha_source.then_some(&frame);
            let new = |out: &mut [u8]| planar_to_frame(black_box(&planar), w, h, &mut FrameMut::new(out, fmt, w, h, stride).unwrap(), alpha_frame).unwrap();
            old::planar_to_frame(&planar, w, h, &mut out_old, fmt, w, h, stride, alpha);
            new(&mut out_new);
            assert!(out_old == out_new, "{} {size}: from-tensor differs", case.label);

            let mut g = c.benchmark_group(format!("from_tensor/{}", case.label));
            g.bench_function(BenchmarkId::new("old", &size), |b| {
                b.iter(|| old::planar_to_frame(black_box(&planar), w, h, &mut out_old, fmt, w, h, stride, alpha))
            });
            g.bench_function(BenchmarkId::new("new", &size), |b| b.iter(|| new(&mut out_new)));
            g.finish();
        }
    }
}

/// One thread against `STEGO_BENCH_THREADS` (default 2) for frame → tensor and tensor → frame,
/// RGB and RGBx, by size. The library converts on several threads from
/// `bench_support::PARALLEL_MIN_PIXELS` pixels on machines with at least
/// `bench_support::PARALLEL_MIN_CORES` cores.
fn threads(c: &mut Criterion) {
    let n: usize = std::env::var("STEGO_BENCH_THREADS").map_or(2, |s| s.parse().expect("STEGO_BENCH_THREADS: a number"));
    let default = "160x120,320x240,480x360,640x480,800x600,960x720,1024x768,1280x720,1280x960,1600x900,1920x1080";
    for fmt in [PixelFormat::Rgb, PixelFormat::Rgbx] {
        let mut g = c.benchmark_group(format!("threads/{}", fmt.name()));
        for (w, h) in sizes("STEGO_BENCH_SCAN_SIZES", default) {
            let stride = w * fmt.bytes_per_pixel();
            let data = pseudo_random_bytes(stride * h, 1);
            let frame = Frame::new(&data, fmt, w, h, stride).unwrap();
            let mut tensor = vec![0f32; 3 * w * h];
            let planar = model_output(w, h);
            let mut out = vec![0u8; stride * h];
            for t in [1, n] {
                let size = format!("{w}x{h} ({} px) on {t}", w * h);
                g.bench_function(BenchmarkId::new("to_tensor", &size), |b| {
                    b.iter(|| bench_support::to_tensor_threads(black_box(&frame), &mut tensor, w, h, t))
                });
                g.bench_function(BenchmarkId::new("from_tensor", &size), |b| {
                    b.iter(|| bench_support::planar_to_frame_threads(black_box(&planar), w, h, &mut FrameMut::new(&mut out, fmt, w, h, stride).unwrap(), None, t).unwrap())
                });
            }
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = old_and_new, threads }
criterion_main!(benches);
