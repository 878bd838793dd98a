//! The one conversion between video frames / images and model tensors.
//!
//! Frames are packed 8-bit RGB, RGBA, RGBx, BGR, BGRA or BGRx with an arbitrary row stride.
//! Tensors are planar `f32` `[3, H, W]` in [0, 1] (one image of the NCHW batch, see
//! [`crate::contract`]). A [`Converter`] owns its scratch buffers and reuses them, so steady
//! streams convert without allocating per frame.
//!
//! Rounding to 8 bits is explicit: [`quantize`] maps a value `v` to `round(clamp(v, 0, 1) * 255)`
//! (halves round up). The reveal model is trained on containers rounded this way.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Packed 8-bit pixel layouts (the GStreamer names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    Rgb,
    Rgba,
    Rgbx,
    Bgr,
    Bgra,
    Bgrx,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 6] =
        [PixelFormat::Rgb, PixelFormat::Rgba, PixelFormat::Rgbx, PixelFormat::Bgr, PixelFormat::Bgra, PixelFormat::Bgrx];

    /// Bytes per pixel (3 or 4).
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of R, G and B inside one pixel.
    pub const fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PixelFormat::Rgb | PixelFormat::Rgba | PixelFormat::Rgbx => [0, 1, 2],
            PixelFormat::Bgr | PixelFormat::Bgra | PixelFormat::Bgrx => [2, 1, 0],
        }
    }

    /// Byte offset of a meaningful alpha channel (RGBA, BGRA); `None` for padding or no fourth byte.
    pub const fn alpha_offset(self) -> Option<usize> {
        match self {
            PixelFormat::Rgba | PixelFormat::Bgra => Some(3),
            _ => None,
        }
    }

    /// The GStreamer caps name (`RGB`, `RGBA`, `RGBx`, `BGR`, `BGRA`, `BGRx`).
    pub const fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb => "RGB",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Bgrx => "BGRx",
        }
    }
}

/// `Display` by `name()` and `FromStr` by `name()` in any case over `ALL`, for an enum of
/// named choices; a bad name is [`Error::InvalidValue`] with `what` and `expected`.
macro_rules! named_choice {
    ($ty:ty, $what:literal, $expected:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                <$ty>::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(s)).ok_or_else(|| Error::InvalidValue {
                    what: $what,
                    value: s.to_string(),
                    expected: $expected.into(),
                })
            }
        }
    };
}

named_choice!(PixelFormat, "pixel format", "one of RGB, RGBA, RGBx, BGR, BGRA, BGRx (convert others with videoconvert)");

/// The largest frame or image, in pixels, that the library converts (8192x8192, 64 Mpx: twice
/// 8K UHD's 7680x4320). Larger ones are refused before anything is allocated for them: their
/// tensors alone would take gigabytes.
pub const MAX_PIXELS: usize = 8192 * 8192;

/// Checks a frame size before allocating for it: both sides at least 1 and at most
/// [`MAX_PIXELS`] pixels in all. The error names the size and the limit.
pub fn check_size(width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::FrameSize { width, height, reason: "width and height must be at least 1".into() });
    }
    let pixels = width.saturating_mul(height);
    if pixels > MAX_PIXELS {
        return Err(Error::FrameSize {
            width,
            height,
            reason: format!("{pixels} pixels is above the limit of {MAX_PIXELS} (8192x8192); scale it down first"),
        });
    }
    Ok(())
}

/// Grows `v` to `n` values (new ones `T::default()`); running out of memory is an error that
/// names `what`, not an abort.
pub(crate) fn try_resize<T: Clone + Default>(v: &mut Vec<T>, n: usize, what: &str) -> Result<()> {
    if n > v.len() {
        v.try_reserve_exact(n - v.len())
            .map_err(|_| Error::OutOfMemory { what: what.to_string(), bytes: n.saturating_mul(std::mem::size_of::<T>()) })?;
    }
    v.resize(n, T::default());
    Ok(())
}

/// A zeroed vector of `n` values, or an error when memory runs out (see `try_resize`).
pub fn try_zeroed<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_resize(&mut v, n, what)?;
    Ok(v)
}

fn check_layout(format: PixelFormat, width: usize, height: usize, stride: usize, len: usize) -> Result<()> {
    check_size(width, height)?;
    let row = width * format.bytes_per_pixel();
    let needed = if stride < row { usize::MAX } else { stride * (height - 1) + row };
    if needed > len {
        return Err(Error::FrameBuffer { width, height, format, stride, needed: needed.min(stride.max(row) * height), actual: len });
    }
    Ok(())
}

/// A read-only packed 8-bit frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    data: &'a [u8],
    format: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
}

/// The constructors and the layout accessors [`Frame`] and [`FrameMut`] share, over a buffer
/// of type `$data`.
macro_rules! frame_layout {
    ($data:ty) => {
        /// A frame over `data` with rows `stride` bytes apart; checks that the buffer is large enough.
        pub fn new(data: $data, format: PixelFormat, width: usize, height: usize, stride: usize) -> Result<Self> {
            check_layout(format, width, height, stride, data.len())?;
            Ok(Self { data, format, width, height, stride })
        }
        /// A frame whose rows are tightly packed.
        pub fn packed(data: $data, format: PixelFormat, width: usize, height: usize) -> Result<Self> {
            Self::new(data, format, width, height, width * format.bytes_per_pixel())
        }
        pub fn format(&self) -> PixelFormat {
            self.format
        }
        pub fn width(&self) -> usize {
            self.width
        }
        pub fn height(&self) -> usize {
            self.height
        }
        pub fn stride(&self) -> usize {
            self.stride
        }
    };
}

impl<'a> Frame<'a> {
    frame_layout!(&'a [u8]);
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// The part of this frame inside `rect` (which must lie within the frame).
    pub fn sub(&self, rect: Rect) -> Result<Frame<'a>> {
        if rect.x + rect.width > self.width || rect.y + rect.height > self.height {
            return Err(Error::InvalidValue {
                what: "frame region",
                value: format!("{rect:?}"),
                expected: format!("a region inside the frame's {}x{}", self.width, self.height),
            });
        }
        let start = rect.y * self.stride + rect.x * self.format.bytes_per_pixel();
        Frame::new(&self.data[start..], self.format, rect.width, rect.height, self.stride)
    }
    fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.width * self.format.bytes_per_pixel()]
    }
}

/// A writable packed 8-bit frame.
#[derive(Debug)]
pub struct FrameMut<'a> {
    data: &'a mut [u8],
    format: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
}

impl<'a> FrameMut<'a> {
    frame_layout!(&'a mut [u8]);
    /// A read-only view of the same frame.
    pub fn as_frame(&self) -> Frame<'_> {
        Frame { data: self.data, format: self.format, width: self.width, height: self.height, stride: self.stride }
    }
}

/// Rounds a model value in [0, 1] to 8 bits: `round(clamp(v, 0, 1) * 255)`, halves up; NaN gives 0.
#[inline]
pub fn quantize(v: f32) -> u8 {
    // `as u8` saturates and maps NaN to 0.
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// 8-bit value → [0, 1].
#[inline]
pub fn dequantize(v: u8) -> f32 {
    LUT[v as usize]
}

static LUT: [f32; 256] = {
    let mut t = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

// Fast paths. Each conversion is monomorphised on the byte layout (bytes per pixel and the
// R, G, B byte offsets as const generics), so the per-pixel loops hold no branches and
// vectorise; on x86-64 the same loops are also compiled for AVX2 and picked at run time.
// Frames of at least `PARALLEL_MIN_PIXELS` pixels are split into bands of rows converted on
// scoped threads. Results are bit-identical to the per-pixel definitions (`dequantize`,
// `quantize`) whatever the path.

/// Frames (or tensors) of at least this many pixels (1024x768) are converted on several threads,
/// on machines with at least [`PARALLEL_MIN_CORES`] cores. Starting and joining a thread costs
/// about 0.1 ms, and the conversion is bound by memory bandwidth (one thread: about 0.5 ns per
/// pixel), so a second thread can only win on large frames.
const PARALLEL_MIN_PIXELS: usize = 1024 * 768;
/// Fewer cores than this: always one thread. On the 2-vCPU VM a second thread lost at every
/// size up to 1280x960 and tied at 1920x1080 (`cargo bench -p stego --bench convert -- --scan`),
/// and inside the model loop it lost more, competing with onnxruntime's spinning workers:
/// reveal 1280x720 took 0.80 + 0.75 ms (frame in, frame out) on one thread against
/// 1.88 + 1.67 ms on two. With 4 or more cores there are cores to spare beside onnxruntime's.
const PARALLEL_MIN_CORES: usize = 4;
/// At most this many bands per conversion (memory bandwidth, not arithmetic, bounds it beyond).
const MAX_THREADS: usize = 8;

/// How many bands to convert `pixels` pixels in: 1 below [`PARALLEL_MIN_PIXELS`] or on fewer
/// than [`PARALLEL_MIN_CORES`] cores, else up to the available parallelism with bands of at
/// least half the threshold.
fn threads_for(pixels: usize) -> usize {
    if pixels < PARALLEL_MIN_PIXELS {
        return 1;
    }
    let available = available_cores();
    if available < PARALLEL_MIN_CORES {
        return 1;
    }
    available.min(MAX_THREADS).min(pixels / (PARALLEL_MIN_PIXELS / 2)).max(1)
}

/// The cores this process may use (read once).
fn available_cores() -> usize {
    static AVAILABLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// [`quantize`], written so that it vectorises: the comparisons send NaN to 0 (as `clamp` and
/// then the saturating cast do), and the truncation is a plain one (the saturating `as` is
/// not vectorised) of a value known to lie in [0.5, 255.5].
#[inline(always)]
fn quantize_fast(v: f32) -> u8 {
    let v = if v > 0.0 { v } else { 0.0 };
    let v = if v < 1.0 { v } else { 1.0 };
    // SAFETY: `v` is in [0, 1] (NaN became 0 above), so this is finite and in [0.5, 255.5],
    // representable as i32.
    unsafe { (v * 255.0 + 0.5).to_int_unchecked::<i32>() as u8 }
}

/// `dequantize` without the table lookup (the table holds this very expression).
#[inline(always)]
fn dequantize_fast(v: u8) -> f32 {
    v as f32 / 255.0
}

/// One row: packed pixels `src` (`r.len()` of them) → three plane rows.
#[inline(always)]
fn unpack_row<const BPP: usize, const R: usize, const G: usize, const B: usize>(src: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    let n = r.len();
    let (src, g, b) = (&src[..n * BPP], &mut g[..n], &mut b[..n]);
    if BPP == 4 {
        for (((px, r), g), b) in src.chunks_exact(4).zip(r).zip(g).zip(b) {
            let p = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
            *r = dequantize_fast((p >> (8 * R)) as u8);
            *g = dequantize_fast((p >> (8 * G)) as u8);
            *b = dequantize_fast((p >> (8 * B)) as u8);
        }
    } else {
        for (((px, r), g), b) in src.chunks_exact(BPP).zip(r).zip(g).zip(b) {
            *r = dequantize_fast(px[R]);
            *g = dequantize_fast(px[G]);
            *b = dequantize_fast(px[B]);
        }
    }
}

/// Output rows `y0..` of the tensor (one band: `r`, `g` and `b` hold whole rows of `out_w`).
#[inline(always)]
fn unpack_band<const BPP: usize, const R: usize, const G: usize, const B: usize>(
    frame: &Frame,
    y0: usize,
    out_w: usize,
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
) {
    let (w, h) = (frame.width, frame.height);
    let rows = r.chunks_exact_mut(out_w).zip(g.chunks_exact_mut(out_w)).zip(b.chunks_exact_mut(out_w));
    for (i, ((r, g), b)) in rows.enumerate() {
        unpack_row::<BPP, R, G, B>(frame.row((y0 + i).min(h - 1)), &mut r[..w], &mut g[..w], &mut b[..w]);
        if out_w > w {
            let (rl, gl, bl) = (r[w - 1], g[w - 1], b[w - 1]);
            r[w..].fill(rl);
            g[w..].fill(gl);
            b[w..].fill(bl);
        }
    }
}

/// Instantiates `$f::<BPP, R, G, B>` for `$format` and calls it with `$args`, through an AVX2
/// copy where the CPU has it.
macro_rules! dispatch_format {
    ($format:expr, $f:ident, $f_avx2:ident, ($($arg:expr),*)) => {{
        macro_rules! call {
            ($bpp:literal, $r:literal, $g:literal, $b:literal) => {{
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU supports AVX2, checked just above.
                        return unsafe { $f_avx2::<$bpp, $r, $g, $b>($($arg),*) };
                    }
                }
                $f::<$bpp, $r, $g, $b>($($arg),*)
            }};
        }
        match $format {
            PixelFormat::Rgb => call!(3, 0, 1, 2),
            PixelFormat::Bgr => call!(3, 2, 1, 0),
            PixelFormat::Rgba | PixelFormat::Rgbx => call!(4, 0, 1, 2),
            PixelFormat::Bgra | PixelFormat::Bgrx => call!(4, 2, 1, 0),
        }
    }};
}

/// The portable and the AVX2 build of a band kernel `$band`: `$generic` and `$avx2`, for
/// [`dispatch_format!`]. The AVX2 one is the same code compiled with AVX2 enabled.
macro_rules! band_kernels {
    ($band:ident => $generic:ident, $avx2:ident, ($($arg:ident: $ty:ty),*)) => {
        fn $generic<const BPP: usize, const R: usize, const G: usize, const B: usize>($($arg: $ty),*) {
            $band::<BPP, R, G, B>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2<const BPP: usize, const R: usize, const G: usize, const B: usize>($($arg: $ty),*) {
            $band::<BPP, R, G, B>($($arg),*)
        }
    };
}

band_kernels!(unpack_band => unpack_band_generic, unpack_band_avx2, (frame: &Frame, y0: usize, out_w: usize, r: &mut [f32], g: &mut [f32], b: &mut [f32]));

fn unpack_band_dispatch(frame: &Frame, y0: usize, out_w: usize, r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    dispatch_format!(frame.format, unpack_band_generic, unpack_band_avx2, (frame, y0, out_w, r, g, b))
}

/// Writes `frame` into the planar tensor `out` (`[3, out_h, out_w]`), padding by edge
/// replication when the tensor is larger than the frame (models whose sizes must be multiples
/// of some number).
fn frame_to_planar_padded(frame: &Frame, out: &mut [f32], out_w: usize, out_h: usize) {
    frame_to_planar_threads(frame, out, out_w, out_h, threads_for(out_w * out_h));
}

fn frame_to_planar_threads(frame: &Frame, out: &mut [f32], out_w: usize, out_h: usize, threads: usize) {
    let plane = out_w * out_h;
    assert!(out.len() >= 3 * plane && out_w >= frame.width && out_h >= frame.height, "tensor smaller than the frame");
    let (r, rest) = out.split_at_mut(plane);
    let (g, rest) = rest.split_at_mut(plane);
    let b = &mut rest[..plane];
    if threads <= 1 || out_h < 2 {
        return unpack_band_dispatch(frame, 0, out_w, r, g, b);
    }
    let band = out_h.div_ceil(threads) * out_w;
    std::thread::scope(|s| {
        let mut bands = r.chunks_mut(band).zip(g.chunks_mut(band)).zip(b.chunks_mut(band)).enumerate();
        let first = bands.next();
        for (i, ((r, g), b)) in bands {
            s.spawn(move || unpack_band_dispatch(frame, i * band / out_w, out_w, r, g, b));
        }
        if let Some((_, ((r, g), b))) = first {
            unpack_band_dispatch(frame, 0, out_w, r, g, b);
        }
    });
}

/// Writes `frame` into the planar tensor `out` (`[3, H, W]`, the frame's size).
pub fn frame_to_planar(frame: &Frame, out: &mut [f32]) -> Result<()> {
    let need = 3 * frame.width * frame.height;
    if out.len() != need {
        return Err(Error::InvalidValue {
            what: "tensor length",
            value: out.len().to_string(),
            expected: format!("3*{}*{} = {need} for the frame's size", frame.width, frame.height),
        });
    }
    frame_to_planar_padded(frame, out, frame.width, frame.height);
    Ok(())
}

/// One row: three plane rows (`dst.len() / BPP` values each) → packed pixels; the fourth byte
/// (4-byte layouts) is byte 3 of each pixel of `alpha` (packed RGBA/BGRA) or 255.
#[inline(always)]
fn pack_row<const BPP: usize, const R: usize, const G: usize, const B: usize>(
    r: &[f32],
    g: &[f32],
    b: &[f32],
    alpha: Option<&[u8]>,
    dst: &mut [u8],
) {
    let n = dst.len() / BPP;
    let (r, g, b) = (&r[..n], &g[..n], &b[..n]);
    if BPP == 4 {
        let rgb = |r: f32, g: f32, b: f32| {
            (quantize_fast(r) as u32) << (8 * R) | (quantize_fast(g) as u32) << (8 * G) | (quantize_fast(b) as u32) << (8 * B)
        };
        match alpha {
            Some(alpha) => {
                for ((((px, a), &r), &g), &b) in dst.chunks_exact_mut(4).zip(alpha[..4 * n].chunks_exact(4)).zip(r).zip(g).zip(b) {
                    px.copy_from_slice(&(rgb(r, g, b) | (a[3] as u32) << 24).to_le_bytes());
                }
            }
            None => {
                for (((px, &r), &g), &b) in dst.chunks_exact_mut(4).zip(r).zip(g).zip(b) {
                    px.copy_from_slice(&(rgb(r, g, b) | 0xff00_0000).to_le_bytes());
                }
            }
        }
    } else {
        for (((px, &r), &g), &b) in dst.chunks_exact_mut(BPP).zip(r).zip(g).zip(b) {
            px[R] = quantize_fast(r);
            px[G] = quantize_fast(g);
            px[B] = quantize_fast(b);
        }
    }
}

/// The planes of a tensor and the alpha source, as the bands of [`planar_to_frame`] read them.
#[derive(Clone, Copy)]
struct PackSource<'a> {
    planar: &'a [f32],
    plane: usize,
    tensor_w: usize,
    alpha: Option<&'a Frame<'a>>,
}

/// Frame rows `y0..y0 + rows` from `src`; `dst` starts at row `y0` and has `stride` bytes per row.
#[inline(always)]
fn pack_band<const BPP: usize, const R: usize, const G: usize, const B: usize>(
    src: PackSource,
    y0: usize,
    rows: usize,
    w: usize,
    dst: &mut [u8],
    stride: usize,
) {
    for i in 0..rows {
        let base = (y0 + i) * src.tensor_w;
        let plane = src.plane;
        let (r, g, b) =
            (&src.planar[base..base + w], &src.planar[plane + base..plane + base + w], &src.planar[2 * plane + base..2 * plane + base + w]);
        let alpha = src.alpha.map(|a| a.row(y0 + i));
        pack_row::<BPP, R, G, B>(r, g, b, alpha, &mut dst[i * stride..i * stride + w * BPP]);
    }
}

band_kernels!(pack_band => pack_band_generic, pack_band_avx2, (src: PackSource, y0: usize, rows: usize, w: usize, dst: &mut [u8], stride: usize));

fn pack_band_dispatch(format: PixelFormat, src: PackSource, y0: usize, rows: usize, w: usize, dst: &mut [u8], stride: usize) {
    dispatch_format!(format, pack_band_generic, pack_band_avx2, (src, y0, rows, w, dst, stride))
}

/// Writes the top-left `out.width() x out.height()` of the planar tensor `planar`
/// (`[3, tensor_h, tensor_w]`) into `out`, rounding each value with [`quantize`].
/// Alpha (RGBA/BGRA) is copied from `alpha_from` when given and of the same size, else set to 255;
/// the padding byte of RGBx/BGRx is set to 255.
pub fn planar_to_frame(planar: &[f32], tensor_w: usize, tensor_h: usize, out: &mut FrameMut, alpha_from: Option<&Frame>) -> Result<()> {
    planar_to_frame_threads(planar, tensor_w, tensor_h, out, alpha_from, threads_for(out.width * out.height))
}

fn planar_to_frame_threads(
    planar: &[f32],
    tensor_w: usize,
    tensor_h: usize,
    out: &mut FrameMut,
    alpha_from: Option<&Frame>,
    threads: usize,
) -> Result<()> {
    let (w, h) = (out.width, out.height);
    if tensor_w < w || tensor_h < h || planar.len() < 3 * tensor_w * tensor_h {
        return Err(Error::InvalidValue {
            what: "tensor size",
            value: format!("{tensor_w}x{tensor_h} ({} values)", planar.len()),
            expected: format!("at least the frame's {w}x{h} with 3 planes"),
        });
    }
    let format = out.format;
    // Alpha comes from an RGBA/BGRA frame (alpha at byte 3 of 4) of the same size, into RGBA/BGRA.
    let alpha =
        alpha_from.filter(|a| format.alpha_offset().is_some() && a.width == w && a.height == h && a.format.alpha_offset().is_some());
    let src = PackSource { planar, plane: tensor_w * tensor_h, tensor_w, alpha };
    let stride = out.stride;
    let data = &mut out.data[..];
    if threads <= 1 || h < 2 {
        pack_band_dispatch(format, src, 0, h, w, data, stride);
        return Ok(());
    }
    let rows_per = h.div_ceil(threads);
    std::thread::scope(|s| {
        let (first, mut rest) = data.split_at_mut((rows_per * stride).min(data.len()));
        let mut y0 = rows_per;
        while y0 < h {
            let rows = rows_per.min(h - y0);
            let len = (rows * stride).min(rest.len());
            let (band, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            s.spawn(move || pack_band_dispatch(format, src, y0, rows, w, band, stride));
            y0 += rows;
        }
        pack_band_dispatch(format, src, 0, rows_per.min(h), w, first, stride);
    });
    Ok(())
}

/// Conversions with an explicit number of threads and deterministic test frames, for the
/// benchmarks and tests (feature `bench-support`; not a stable API).
#[cfg(any(test, feature = "bench-support"))]
#[doc(hidden)]
pub mod bench_support {
    use super::*;

    /// Frames of at least this many pixels are split across threads.
    pub const PARALLEL_MIN_PIXELS: usize = super::PARALLEL_MIN_PIXELS;
    /// Machines with fewer cores always convert on one thread.
    pub const PARALLEL_MIN_CORES: usize = super::PARALLEL_MIN_CORES;

    /// `n` deterministic pseudo-random bytes (a 64-bit LCG's top byte): test and bench frames.
    pub fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    /// [`Converter::to_tensor`] for a same-size frame, on `threads` bands.
    pub fn to_tensor_threads(frame: &Frame, out: &mut [f32], tensor_w: usize, tensor_h: usize, threads: usize) {
        frame_to_planar_threads(frame, out, tensor_w, tensor_h, threads)
    }

    /// [`planar_to_frame`] on `threads` bands.
    pub fn planar_to_frame_threads(planar: &[f32], tw: usize, th: usize, out: &mut FrameMut, alpha: Option<&Frame>, threads: usize) -> Result<()> {
        super::planar_to_frame_threads(planar, tw, th, out, alpha, threads)
    }
}

/// Separable resampler for planar `[3, H, W]` tensors: Catmull-Rom (bicubic, a = −0.5) when
/// enlarging, and the same kernel widened by the scale factor when shrinking (area-aware,
/// no aliasing), as Pillow's `BICUBIC` does. Weight tables are cached per size pair.
#[derive(Debug, Default)]
pub struct Resampler {
    key: Option<(usize, usize, usize, usize)>,
    xw: Taps,
    yw: Taps,
    tmp: Vec<f32>,
}

#[derive(Debug, Default)]
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    weights: Vec<f32>,
    stride: usize,
}

fn cubic(x: f32) -> f32 {
    let a = -0.5f32;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

impl Taps {
    fn new(src: usize, dst: usize) -> Taps {
        let scale = src as f32 / dst as f32;
        let support_scale = scale.max(1.0);
        let support = 2.0 * support_scale;
        let stride = (support.ceil() as usize) * 2 + 1;
        let mut t = Taps { start: Vec::with_capacity(dst), len: Vec::with_capacity(dst), weights: vec![0.0; dst * stride], stride };
        for i in 0..dst {
            let center = (i as f32 + 0.5) * scale;
            let lo = ((center - support).floor().max(0.0)) as usize;
            let hi = ((center + support).ceil() as usize).min(src);
            let n = (hi - lo).min(stride);
            let w = &mut t.weights[i * stride..i * stride + n];
            let mut sum = 0.0;
            for (k, wk) in w.iter_mut().enumerate() {
                *wk = cubic(((lo + k) as f32 + 0.5 - center) / support_scale);
                sum += *wk;
            }
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            t.start.push(lo);
            t.len.push(n);
        }
        t
    }
}

impl Resampler {
    /// Resamples `src` (`[3, sh, sw]`) into `dst` (`[3, dh, dw]`); values are clamped to [0, 1].
    /// Errors: buffers smaller than their sizes, or no memory for the intermediate image.
    pub fn resample(&mut self, src: &[f32], sw: usize, sh: usize, dst: &mut [f32], dw: usize, dh: usize) -> Result<()> {
        check_size(sw, sh)?;
        check_size(dw, dh)?;
        if src.len() < 3 * sw * sh || dst.len() < 3 * dw * dh {
            return Err(Error::InvalidValue {
                what: "resampling buffers",
                value: format!("{} and {} values", src.len(), dst.len()),
                expected: format!("at least 3*{sw}*{sh} and 3*{dw}*{dh}"),
            });
        }
        // Horizontal pass: [3, sh, sw] → tmp [3, sh, dw]; vertical: tmp → [3, dh, dw].
        try_resize(&mut self.tmp, 3 * sh * dw, "the resampled secret")?;
        if self.key != Some((sw, sh, dw, dh)) {
            self.xw = Taps::new(sw, dw);
            self.yw = Taps::new(sh, dh);
            self.key = Some((sw, sh, dw, dh));
        }
        for c in 0..3 {
            for y in 0..sh {
                let srow = &src[(c * sh + y) * sw..(c * sh + y + 1) * sw];
                let trow = &mut self.tmp[(c * sh + y) * dw..(c * sh + y + 1) * dw];
                for (x, t) in trow.iter_mut().enumerate() {
                    let (s, n) = (self.xw.start[x], self.xw.len[x]);
                    let w = &self.xw.weights[x * self.xw.stride..x * self.xw.stride + n];
                    *t = srow[s..s + n].iter().zip(w).map(|(a, b)| a * b).sum();
                }
            }
            for y in 0..dh {
                let (s, n) = (self.yw.start[y], self.yw.len[y]);
                let w = &self.yw.weights[y * self.yw.stride..y * self.yw.stride + n];
                let drow = &mut dst[(c * dh + y) * dw..(c * dh + y + 1) * dw];
                drow.fill(0.0);
                for (k, wk) in w.iter().enumerate() {
                    let trow = &self.tmp[(c * sh + s + k) * dw..(c * sh + s + k + 1) * dw];
                    drow.iter_mut().zip(trow).for_each(|(d, t)| *d += wk * t);
                }
                drow.iter_mut().for_each(|d| *d = d.clamp(0.0, 1.0));
            }
        }
        Ok(())
    }
}

/// Frame → tensor conversion with reusable scratch buffers, resizing when the frame's size
/// differs from the tensor's (used for the secret, which is scaled to the cover's size).
#[derive(Debug, Default)]
pub struct Converter {
    scratch: Vec<f32>,
    resampler: Resampler,
}

impl Converter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `frame` into `out` (`[3, h, w]`, the `w x h` content region of a tensor of
    /// `tensor_w x tensor_h`): stretched to `w x h` when the frame has another size, then
    /// edge-padded to the tensor's size. See [`Converter::to_tensor_fit`].
    pub fn to_tensor(&mut self, frame: &Frame, w: usize, h: usize, out: &mut [f32], tensor_w: usize, tensor_h: usize) -> Result<()> {
        self.to_tensor_fit(frame, w, h, SecretFit::Stretch, out, tensor_w, tensor_h)
    }

    /// [`Converter::to_tensor`] with the frame brought to `w x h` as `fit` says (stretched,
    /// letterboxed in black, or centre-cropped). Running out of memory for the scratch images
    /// is an error, not an abort.
    #[allow(clippy::too_many_arguments)]
    pub fn to_tensor_fit(&mut self, frame: &Frame, w: usize, h: usize, fit: SecretFit, out: &mut [f32], tensor_w: usize, tensor_h: usize) -> Result<()> {
        check_size(w, h)?;
        if tensor_w < w || tensor_h < h || out.len() < 3 * tensor_w * tensor_h {
            return Err(Error::InvalidValue {
                what: "tensor size",
                value: format!("{tensor_w}x{tensor_h} ({} values)", out.len()),
                expected: format!("at least the content's {w}x{h} with 3 planes"),
            });
        }
        if frame.width == w && frame.height == h {
            frame_to_planar_padded(frame, out, tensor_w, tensor_h);
            return Ok(());
        }
        let (src_rect, dst_rect) = fit.placement(frame.width, frame.height, w, h);
        let part = frame.sub(src_rect)?;
        let (fw, fh, dw, dh) = (part.width, part.height, dst_rect.width, dst_rect.height);
        let whole = dst_rect == Rect::full(w, h);
        let (n_src, n_dst, n_box) = (3 * fw * fh, 3 * dw * dh, if whole { 0 } else { 3 * w * h });
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = try_resize(&mut scratch, n_src + n_dst + n_box, "the secret's conversion").and_then(|()| {
            let (src, rest) = scratch.split_at_mut(n_src);
            let (dst, boxed) = rest.split_at_mut(n_dst);
            frame_to_planar_padded(&part, src, fw, fh);
            self.resampler.resample(src, fw, fh, dst, dw, dh)?;
            if whole {
                pad_planar(dst, w, h, out, tensor_w, tensor_h);
            } else {
                let boxed = &mut boxed[..n_box];
                boxed.fill(LETTERBOX);
                for c in 0..3 {
                    for y in 0..dh {
                        let d = (c * h + dst_rect.y + y) * w + dst_rect.x;
                        boxed[d..d + dw].copy_from_slice(&dst[(c * dh + y) * dw..(c * dh + y + 1) * dw]);
                    }
                }
                pad_planar(boxed, w, h, out, tensor_w, tensor_h);
            }
            Ok(())
        });
        self.scratch = scratch;
        res
    }
}

/// The colour of the bars [`SecretFit::Fit`] adds: black.
const LETTERBOX: f32 = 0.0;

/// A rectangle of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Rect {
    /// The whole of a `width x height` frame.
    pub const fn full(width: usize, height: usize) -> Rect {
        Rect { x: 0, y: 0, width, height }
    }
}

/// `a * b / c` rounded to the nearest integer, kept within `1..=max`.
fn scaled(a: usize, b: usize, c: usize, max: usize) -> usize {
    (((a as u128 * b as u128 + c as u128 / 2) / c as u128) as usize).clamp(1, max)
}

/// Where a `sw x sh` image lands, aspect kept, when scaled to fit inside `dw x dh` (centred,
/// with bars on two sides when the aspects differ).
pub fn letterbox(sw: usize, sh: usize, dw: usize, dh: usize) -> Rect {
    let (width, height) = if sw as u128 * dh as u128 >= sh as u128 * dw as u128 { (dw, scaled(dw, sh, sw, dh)) } else { (scaled(dh, sw, sh, dw), dh) };
    Rect { x: (dw - width) / 2, y: (dh - height) / 2, width, height }
}

/// The centred part of a `sw x sh` image with the aspect of `dw x dh` (as large as fits):
/// scaled to `dw x dh`, it fills the frame with no bars.
pub fn centre_crop(sw: usize, sh: usize, dw: usize, dh: usize) -> Rect {
    let (width, height) = if sw as u128 * dh as u128 >= sh as u128 * dw as u128 { (scaled(sh, dw, dh, sw), sh) } else { (sw, scaled(sw, dh, dw, sh)) };
    Rect { x: (sw - width) / 2, y: (sh - height) / 2, width, height }
}

/// How a secret of another size or aspect is brought to the cover's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecretFit {
    /// Scaled to the cover's size, aspect not kept.
    Stretch,
    /// Scaled to fit inside the cover, aspect kept, centred, with black bars (letterbox or
    /// pillarbox).
    #[default]
    Fit,
    /// Scaled to fill the cover, aspect kept, the overflow cut off on both sides (centre crop).
    Crop,
}

impl SecretFit {
    /// Every choice.
    pub const ALL: [SecretFit; 3] = [SecretFit::Stretch, SecretFit::Fit, SecretFit::Crop];
    /// Their names, as [`SecretFit::name`] gives them.
    pub const NAMES: [&'static str; 3] = ["stretch", "fit", "crop"];

    pub const fn name(self) -> &'static str {
        match self {
            SecretFit::Stretch => "stretch",
            SecretFit::Fit => "fit",
            SecretFit::Crop => "crop",
        }
    }

    /// The part of a `sw x sh` secret that is used, and where it lands in the `dw x dh` frame.
    pub fn placement(self, sw: usize, sh: usize, dw: usize, dh: usize) -> (Rect, Rect) {
        match self {
            SecretFit::Stretch => (Rect::full(sw, sh), Rect::full(dw, dh)),
            SecretFit::Fit => (Rect::full(sw, sh), letterbox(sw, sh, dw, dh)),
            SecretFit::Crop => (centre_crop(sw, sh, dw, dh), Rect::full(dw, dh)),
        }
    }
}

named_choice!(SecretFit, "secret fit", "stretch, fit (aspect kept, black bars) or crop (aspect kept, centre crop)");

/// The share (0 to 1) of the frame's pixels that have a colour channel at 0 or 255. A cover
/// that is mostly saturated (colour bars, blown highlights, black) leaves the hiding net no
/// room to move its values, and the secret comes back poorly.
pub fn saturated_share(frame: &Frame) -> f32 {
    let (bpp, offs) = (frame.format.bytes_per_pixel(), frame.format.rgb_offsets());
    let mut n = 0usize;
    for y in 0..frame.height {
        for px in frame.row(y).chunks_exact(bpp) {
            n += offs.iter().any(|&o| px[o] == 0 || px[o] == 255) as usize;
        }
    }
    n as f32 / (frame.width * frame.height) as f32
}

/// Above this [`saturated_share`], the elements and the CLI warn that the cover cannot carry
/// the secret well.
pub const SATURATED_WARNING_SHARE: f32 = 0.5;

/// Copies planar `[3, h, w]` into the top-left of `[3, th, tw]`, replicating edges.
fn pad_planar(src: &[f32], w: usize, h: usize, out: &mut [f32], tw: usize, th: usize) {
    for c in 0..3 {
        for y in 0..th {
            let s = &src[(c * h + y.min(h - 1)) * w..(c * h + y.min(h - 1) + 1) * w];
            let d = &mut out[(c * th + y) * tw..(c * th + y + 1) * tw];
            d[..w].copy_from_slice(s);
            let last = s[w - 1];
            d[w..].fill(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values from Pillow 13.0.0: `Image.fromarray(plane, mode="F").resize((dw, dh),
    /// Image.Resampling.BICUBIC)` on float32 planes (no 8-bit rounding), the filter this
    /// resampler follows (Catmull-Rom, a = −0.5, support widened by the factor when shrinking).
    /// The planes stay inside [0, 1], where our clamping changes nothing (Pillow does not clamp
    /// float images).
    #[test]
    fn resampler_matches_pillow_bicubic() {
        let plane = |w: usize, h: usize| -> Vec<f32> {
            (0..h).flat_map(|y| (0..w).map(move |x| 0.25 + 0.5 * (((x * 7 + y * 13) % 17) as f32 / 16.0))).collect()
        };
        let up: [f32; 48] = [
            0.205018, 0.312419, 0.492578, 0.667772, 0.619468, 0.389136, 0.499879, 0.617714, 0.453027, 0.411268, 0.394159, 0.591264, 0.552526,
            0.298543, 0.426274, 0.560268, 0.686257, 0.548102, 0.385354, 0.508507, 0.480449, 0.298477, 0.370566, 0.452464, 0.547535, 0.629434,
            0.701523, 0.519551, 0.491493, 0.614646, 0.451898, 0.313743, 0.439732, 0.573726, 0.701457, 0.447474, 0.408736, 0.605841, 0.588732,
            0.546973, 0.382286, 0.500121, 0.610864, 0.380532, 0.332228, 0.507422, 0.687581, 0.794982,
        ];
        let down: [f32; 12] = [0.499575, 0.470242, 0.474727, 0.492454, 0.515127, 0.524875, 0.506665, 0.512538, 0.468633, 0.492451, 0.505182, 0.519939];
        let mut r = Resampler::default();
        for ((sw, sh, dw, dh), want) in [((5, 4, 8, 6), &up[..]), ((9, 7, 4, 3), &down[..])] {
            let src: Vec<f32> = plane(sw, sh).repeat(3);
            let mut dst = vec![0f32; 3 * dw * dh];
            r.resample(&src, sw, sh, &mut dst, dw, dh).unwrap();
            for (c, got) in dst.chunks(dw * dh).enumerate() {
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!((g - w).abs() < 2e-6, "{sw}x{sh} -> {dw}x{dh}, channel {c}, value {i}: {g} vs Pillow's {w}");
                }
            }
        }
    }

    #[test]
    fn quantize_rounds_half_up_and_clamps() {
        assert_eq!(quantize(0.0), 0);
        assert_eq!(quantize(1.0), 255);
        assert_eq!(quantize(-3.0), 0);
        assert_eq!(quantize(7.0), 255);
        assert_eq!(quantize(f32::NAN), 0);
        assert_eq!(quantize(0.5 / 255.0), 1);
        assert_eq!(quantize(0.49 / 255.0), 0);
        for v in 0..=255u8 {
            assert_eq!(quantize(dequantize(v)), v);
        }
    }

    #[test]
    fn every_format_round_trips_with_stride() {
        let (w, h) = (5, 3);
        for fmt in PixelFormat::ALL {
            let bpp = fmt.bytes_per_pixel();
            let stride = w * bpp + 7;
            let mut data = vec![0u8; stride * h];
            for y in 0..h {
                for x in 0..w {
                    for c in 0..bpp {
                        data[y * stride + x * bpp + c] = (y * 50 + x * 10 + c * 3) as u8;
                    }
                }
            }
            let frame = Frame::new(&data, fmt, w, h, stride).unwrap();
            let mut t = vec![0f32; 3 * w * h];
            frame_to_planar(&frame, &mut t).unwrap();
            // R plane holds the R byte whatever the order.
            let r_off = fmt.rgb_offsets()[0];
            assert_eq!(quantize(t[w + 2]), data[stride + 2 * bpp + r_off]);
            let mut out = vec![0u8; stride * h];
            let mut of = FrameMut::new(&mut out, fmt, w, h, stride).unwrap();
            planar_to_frame(&t, w, h, &mut of, Some(&frame)).unwrap();
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        let o = fmt.rgb_offsets()[c];
                        assert_eq!(out[y * stride + x * bpp + o], data[y * stride + x * bpp + o], "{fmt} {x},{y},{c}");
                    }
                    if let Some(a) = fmt.alpha_offset() {
                        assert_eq!(out[y * stride + x * bpp + a], data[y * stride + x * bpp + a]);
                    } else if bpp == 4 {
                        assert_eq!(out[y * stride + x * bpp + 3], 255);
                    }
                }
            }
        }
    }

    #[test]
    fn short_buffer_is_an_error_not_a_panic() {
        let data = vec![0u8; 10];
        let e = Frame::new(&data, PixelFormat::Rgb, 4, 4, 12).unwrap_err().to_string();
        assert!(e.contains("4x4 RGB") && e.contains("needs 48 bytes") && e.contains("has 10"), "{e}");
        let e = Frame::new(&data, PixelFormat::Rgb, 4, 1, 5).unwrap_err().to_string();
        assert!(e.contains("stride 5"), "{e}");
        assert!(Frame::new(&data, PixelFormat::Rgb, 0, 1, 0).is_err());
    }

    #[test]
    fn resampler_keeps_constants_and_sizes() {
        let (sw, sh, dw, dh) = (7, 5, 16, 3);
        let src = vec![0.25f32; 3 * sw * sh];
        let mut dst = vec![0f32; 3 * dw * dh];
        let mut r = Resampler::default();
        r.resample(&src, sw, sh, &mut dst, dw, dh).unwrap();
        assert!(dst.iter().all(|v| (v - 0.25).abs() < 1e-5));
        // Identity size is the identity.
        let src: Vec<f32> = (0..3 * sw * sh).map(|i| (i % 13) as f32 / 13.0).collect();
        let mut dst = vec![0f32; src.len()];
        r.resample(&src, sw, sh, &mut dst, sw, sh).unwrap();
        assert!(src.iter().zip(&dst).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn converter_pads_by_edge_replication() {
        let data: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
        let frame = Frame::packed(&data, PixelFormat::Rgb, 2, 2).unwrap();
        let mut out = vec![0f32; 3 * 4 * 3];
        Converter::new().to_tensor(&frame, 2, 2, &mut out, 4, 3).unwrap();
        // R plane row 0: r(0,0) r(1,0) r(1,0) r(1,0)
        assert_eq!(&out[0..4].iter().map(|&v| quantize(v)).collect::<Vec<_>>(), &[0, 60, 60, 60]);
        // Row 2 repeats row 1.
        assert_eq!(quantize(out[8]), 120);
    }

    /// Values around every rounding boundary and every 8-bit level, the special values, and a
    /// sweep over all bit patterns.
    fn interesting_f32() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7fa0_0001), // signalling NaN
            f32::from_bits(0xffc0_1234),
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::MAX,
            f32::MIN,
            f32::EPSILON,
            1.0 + f32::EPSILON,
            1.0 - f32::EPSILON / 2.0,
            255.0,
            255.5,
            256.0,
            -0.5,
            2147483648.0,
            -2147483904.0,
        ];
        let around = |v: &mut Vec<f32>, x: f32, ulps: i32| {
            for d in -ulps..=ulps {
                v.push(f32::from_bits((x.to_bits() as i64 + d as i64).clamp(0, u32::MAX as i64) as u32));
            }
        };
        for k in 0..=256 {
            around(&mut v, (k as f32 - 0.5) / 255.0, 256);
            around(&mut v, -((k as f32 - 0.5) / 255.0), 2);
        }
        for k in 0..=255u8 {
            around(&mut v, dequantize(k), 8);
        }
        v.extend((0..=u32::MAX).step_by(4099).map(f32::from_bits));
        v
    }

    #[test]
    fn fast_quantize_is_bit_exact() {
        let values = interesting_f32();
        for &x in &values {
            assert_eq!(quantize_fast(x), quantize(x), "{x:e} ({:#010x})", x.to_bits());
        }
        for k in 0..=255u8 {
            assert_eq!(dequantize_fast(k).to_bits(), dequantize(k).to_bits(), "{k}");
        }
        // The same through the vectorised rows of every layout and the threaded bands: the
        // values in each plane, shifted so that each channel sees all of them.
        let w = 1024;
        let h = values.len().div_ceil(w);
        let mut planar = vec![0f32; 3 * w * h];
        for c in 0..3 {
            for (i, &x) in values.iter().enumerate() {
                planar[c * w * h + (i + 337 * c) % (w * h)] = x;
            }
        }
        for fmt in PixelFormat::ALL {
            let bpp = fmt.bytes_per_pixel();
            for threads in [1, 2, 3] {
                let mut out = vec![0u8; w * bpp * h];
                let mut frame = FrameMut::packed(&mut out, fmt, w, h).unwrap();
                planar_to_frame_threads(&planar, w, h, &mut frame, None, threads).unwrap();
                for (i, px) in out.chunks_exact(bpp).enumerate() {
                    for c in 0..3 {
                        let x = planar[c * w * h + i];
                        assert_eq!(px[fmt.rgb_offsets()[c]], quantize(x), "{fmt} {threads} threads: {x:e} ({:#010x})", x.to_bits());
                    }
                }
            }
        }
    }

    /// Every f32 through the vectorised quantisation of the 3- and 4-byte layouts (20 s in
    /// release; `cargo test --release -p stego --lib -- --ignored`).
    #[test]
    #[ignore]
    fn fast_quantize_is_bit_exact_on_every_f32() {
        const N: usize = 1 << 16;
        let mut planar = vec![0f32; 3 * N];
        let mut out = vec![0u8; 4 * N];
        for block in 0..(1u64 << 32) / N as u64 {
            for (i, v) in planar.iter_mut().enumerate() {
                *v = f32::from_bits((block * N as u64 + (i % N) as u64) as u32);
            }
            for fmt in [PixelFormat::Rgb, PixelFormat::Bgrx] {
                let bpp = fmt.bytes_per_pixel();
                let mut of = FrameMut::packed(&mut out[..bpp * N], fmt, N, 1).unwrap();
                planar_to_frame_threads(&planar, N, 1, &mut of, None, 1).unwrap();
                for (i, &x) in planar[..N].iter().enumerate() {
                    assert_eq!(out[bpp * i + 1], quantize(x), "{fmt}: {x:e} ({:#010x})", x.to_bits());
                }
            }
        }
    }

    /// The per-pixel definition of the frame → tensor conversion.
    fn reference_to_planar(frame: &Frame, tw: usize, th: usize) -> Vec<f32> {
        let (bpp, offs) = (frame.format.bytes_per_pixel(), frame.format.rgb_offsets());
        let mut t = vec![0f32; 3 * tw * th];
        for c in 0..3 {
            for y in 0..th {
                for x in 0..tw {
                    let (sx, sy) = (x.min(frame.width - 1), y.min(frame.height - 1));
                    t[(c * th + y) * tw + x] = dequantize(frame.data[sy * frame.stride + sx * bpp + offs[c]]);
                }
            }
        }
        t
    }

    /// The per-pixel definition of the tensor → frame conversion, on a copy of `out`.
    fn reference_to_frame(planar: &[f32], tw: usize, th: usize, out: &FrameMut, alpha_from: Option<&Frame>) -> Vec<u8> {
        let (fmt, w, h, stride) = (out.format, out.width, out.height, out.stride);
        let (bpp, offs) = (fmt.bytes_per_pixel(), fmt.rgb_offsets());
        let mut data = out.data.to_vec();
        for y in 0..h {
            for x in 0..w {
                let px = y * stride + x * bpp;
                for c in 0..3 {
                    data[px + offs[c]] = quantize(planar[(c * th + y) * tw + x]);
                }
                if bpp == 4 {
                    data[px + 3] = match (fmt.alpha_offset(), alpha_from) {
                        (Some(_), Some(a)) if a.width == w && a.height == h && a.format.alpha_offset().is_some() => {
                            a.data[y * a.stride + x * 4 + a.format.alpha_offset().unwrap()]
                        }
                        _ => 255,
                    };
                }
            }
        }
        data
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        bench_support::pseudo_random_bytes(n, seed)
    }

    /// Small frames (one band), frames forced onto 2 and 3 bands, and a frame large enough for
    /// the automatic split; each with padded strides and tensors larger than the frame.
    #[test]
    fn fast_paths_equal_the_per_pixel_definition() {
        let big = (1031, PARALLEL_MIN_PIXELS.div_ceil(1031) + 1);
        let cores = available_cores();
        assert_eq!(threads_for(big.0 * big.1) > 1, cores >= PARALLEL_MIN_CORES, "{cores} cores");
        assert_eq!(threads_for(640 * 480), 1);
        let cases: [(usize, usize, &[usize]); 6] =
            [(1, 1, &[1, 2]), (2, 3, &[1, 2, 3]), (7, 5, &[1, 2, 8]), (33, 17, &[1, 2, 3]), (160, 121, &[1, 2, 4]), (big.0, big.1, &[0])];
        for (w, h, thread_counts) in cases {
            for fmt in PixelFormat::ALL {
                let bpp = fmt.bytes_per_pixel();
                for (stride, tw, th) in [(w * bpp, w, h), (w * bpp + 5, w, h), (w * bpp + 8, w + 3, h + 2), (w * bpp, w + 1, h + 17)] {
                    let data = noise(stride * h, (w * 31 + h) as u64);
                    let frame = Frame::new(&data, fmt, w, h, stride).unwrap();
                    let expected = reference_to_planar(&frame, tw, th);
                    for &threads in thread_counts {
                        // Trailing values past the 3 planes are left alone.
                        let mut t = vec![-7.0f32; 3 * tw * th + 11];
                        if threads == 0 {
                            Converter::new().to_tensor(&frame, w, h, &mut t, tw, th).unwrap();
                        } else {
                            frame_to_planar_threads(&frame, &mut t, tw, th, threads);
                        }
                        assert!(
                            t[..3 * tw * th].iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{fmt} {w}x{h} stride {stride} in {tw}x{th}, {threads} threads"
                        );
                        assert!(t[3 * tw * th..].iter().all(|&v| v == -7.0));
                    }
                    // Back to a frame: values off [0, 1], NaN and halves; the stride's padding
                    // bytes are left alone.
                    let planar: Vec<f32> = noise(3 * tw * th, 7)
                        .iter()
                        .map(|&b| match b {
                            0 => f32::NAN,
                            1..=8 => (b as f32 - 0.5) / 255.0,
                            _ => (b as f32 - 20.0) / 215.0,
                        })
                        .collect();
                    let alpha_data = noise(w * 4 * h + 3, 9);
                    let rgba = Frame::new(&alpha_data, PixelFormat::Rgba, w, h, w * 4).unwrap();
                    let bgra = Frame::new(&alpha_data, PixelFormat::Bgra, w, h, w * 4).unwrap();
                    let bgrx = Frame::new(&alpha_data, PixelFormat::Bgrx, w, h, w * 4).unwrap();
                    let smaller = Frame::new(&alpha_data, PixelFormat::Rgba, w, h.max(2) - 1, w * 4).unwrap();
                    for alpha in [None, Some(&rgba), Some(&bgra), Some(&bgrx), Some(&smaller), Some(&frame)] {
                        let mut out = noise(stride * h, 11);
                        let expected = reference_to_frame(&planar, tw, th, &FrameMut::new(&mut out, fmt, w, h, stride).unwrap(), alpha);
                        for &threads in thread_counts {
                            let mut got = out.clone();
                            let mut of = FrameMut::new(&mut got, fmt, w, h, stride).unwrap();
                            if threads == 0 {
                                planar_to_frame(&planar, tw, th, &mut of, alpha).unwrap();
                            } else {
                                planar_to_frame_threads(&planar, tw, th, &mut of, alpha, threads).unwrap();
                            }
                            assert!(
                                got == expected,
                                "{fmt} {w}x{h} stride {stride} from {tw}x{th}, alpha {:?}, {threads} threads",
                                alpha.map(|a| a.format)
                            );
                        }
                    }
                }
            }
        }
    }

    /// A 40x10 secret (4:1) on a 20x20 cover: stretch fills it, fit letterboxes it (20x5 in
    /// the middle, black above and below), crop takes its centre 10x10.
    #[test]
    fn secret_fit_geometry_on_a_non_square_secret() {
        assert_eq!(SecretFit::Stretch.placement(40, 10, 20, 20), (Rect::full(40, 10), Rect::full(20, 20)));
        assert_eq!(SecretFit::Fit.placement(40, 10, 20, 20), (Rect::full(40, 10), Rect { x: 0, y: 7, width: 20, height: 5 }));
        assert_eq!(SecretFit::Crop.placement(40, 10, 20, 20), (Rect { x: 15, y: 0, width: 10, height: 10 }, Rect::full(20, 20)));
        // Tall secrets: pillarbox and a crop of rows; same aspect: the whole frame either way.
        assert_eq!(letterbox(10, 40, 20, 20), Rect { x: 7, y: 0, width: 5, height: 20 });
        assert_eq!(centre_crop(10, 40, 20, 20), Rect { x: 0, y: 15, width: 10, height: 10 });
        assert_eq!(letterbox(64, 48, 32, 24), Rect::full(32, 24));
        assert_eq!(centre_crop(64, 48, 32, 24), Rect::full(64, 48));
        // 1-pixel extremes never give an empty rectangle.
        assert_eq!(letterbox(10000, 1, 8, 8).height, 1);
        assert_eq!(centre_crop(1, 10000, 8, 8), Rect { x: 0, y: 4999, width: 1, height: 1 });

        // Through the conversion: a secret whose left half is red (255,0,0) and right half
        // blue (0,0,255), with a white 10x10 centre.
        let (sw, sh, w, h) = (40usize, 10usize, 20usize, 20usize);
        let mut data = vec![0u8; sw * sh * 3];
        for y in 0..sh {
            for x in 0..sw {
                let px = &mut data[(y * sw + x) * 3..(y * sw + x + 1) * 3];
                px.copy_from_slice(if (15..25).contains(&x) { &[255, 255, 255] } else if x < 20 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let frame = Frame::packed(&data, PixelFormat::Rgb, sw, sh).unwrap();
        let mut conv = Converter::new();
        let mut t = vec![0f32; 3 * w * h];
        let at = |t: &[f32], c: usize, x: usize, y: usize| quantize(t[(c * h + y) * w + x]);
        conv.to_tensor_fit(&frame, w, h, SecretFit::Crop, &mut t, w, h).unwrap();
        assert!((0..h).all(|y| (0..w).all(|x| at(&t, 0, x, y) == 255 && at(&t, 1, x, y) == 255)), "crop: all white");
        conv.to_tensor_fit(&frame, w, h, SecretFit::Fit, &mut t, w, h).unwrap();
        for y in 0..h {
            let bar = !(7..12).contains(&y);
            assert_eq!((0..3).all(|c| at(&t, c, 10, y) == 0), bar, "fit: row {y} black iff a bar");
        }
        assert_eq!((at(&t, 0, 0, 9), at(&t, 2, 0, 9)), (255, 0), "fit: red on the left");
        assert_eq!((at(&t, 0, 19, 9), at(&t, 2, 19, 9)), (0, 255), "fit: blue on the right");
        conv.to_tensor_fit(&frame, w, h, SecretFit::Stretch, &mut t, w, h).unwrap();
        assert!((0..h).all(|y| at(&t, 0, 0, y) == 255 && at(&t, 2, 0, y) == 0 && at(&t, 2, 19, y) == 255), "stretch: no bars");
        // Edge padding of a larger tensor repeats the letterboxed content (bars included).
        let mut t2 = vec![0f32; 3 * (w + 4) * (h + 4)];
        conv.to_tensor_fit(&frame, w, h, SecretFit::Fit, &mut t2, w + 4, h + 4).unwrap();
        assert_eq!(quantize(t2[(h + 3) * (w + 4)]), 0);
        assert_eq!("CROP".parse::<SecretFit>().unwrap(), SecretFit::Crop);
        let e = "zoom".parse::<SecretFit>().unwrap_err().to_string();
        assert!(e.contains("zoom") && e.contains("stretch, fit"), "{e}");
    }

    #[test]
    fn sizes_above_the_pixel_limit_are_refused_with_the_limit_named() {
        let e = check_size(20000, 20000).unwrap_err().to_string();
        assert!(e.contains("20000x20000") && e.contains("400000000 pixels") && e.contains(&MAX_PIXELS.to_string()), "{e}");
        assert!(check_size(8192, 8192).is_ok() && check_size(7680, 4320).is_ok());
        assert!(check_size(usize::MAX, 2).is_err());
        // Before any buffer is looked at or allocated.
        assert!(Frame::new(&[], PixelFormat::Rgb, 1 << 20, 1 << 20, 3 << 20).unwrap_err().to_string().contains("limit"));
        let mut r = Resampler::default();
        assert!(r.resample(&[0.0; 3], 1, 1, &mut [0.0; 3], 100_000, 100_000).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn allocation_failure_is_an_error() {
        let mut v: Vec<f32> = Vec::new();
        let e = try_resize(&mut v, usize::MAX / 8, "a test buffer").unwrap_err().to_string();
        assert!(e.contains("cannot allocate") && e.contains("a test buffer"), "{e}");
        assert!(try_zeroed::<u8>(16, "x").unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    fn saturated_share_counts_pixels_with_a_clipped_channel() {
        let data = [0u8, 10, 10, 100, 100, 100, 255, 1, 1, 5, 6, 7];
        let f = Frame::packed(&data, PixelFormat::Rgb, 2, 2).unwrap();
        assert_eq!(saturated_share(&f), 0.5);
    }

    #[test]
    fn tensor_smaller_than_the_frame_is_an_error() {
        let data = vec![0u8; 4 * 4 * 3];
        let mut out = data.clone();
        let mut of = FrameMut::packed(&mut out, PixelFormat::Rgb, 4, 4).unwrap();
        assert!(planar_to_frame(&[0.0; 3 * 3 * 4], 3, 4, &mut of, None).is_err());
        assert!(planar_to_frame(&[0.0; 3 * 4 * 4 - 1], 4, 4, &mut of, None).is_err());
        let frame = Frame::packed(&data, PixelFormat::Rgb, 4, 4).unwrap();
        assert!(frame_to_planar(&frame, &mut [0.0; 3 * 4 * 4 + 1]).is_err());
    }
}
