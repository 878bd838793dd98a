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

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PixelFormat::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s)).ok_or_else(|| Error::InvalidValue {
            what: "pixel format",
            value: s.to_string(),
            expected: "one of RGB, RGBA, RGBx, BGR, BGRA, BGRx (convert others with videoconvert)".into(),
        })
    }
}

fn check_layout(format: PixelFormat, width: usize, height: usize, stride: usize, len: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::FrameSize { width, height, reason: "width and height must be at least 1".into() });
    }
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

impl<'a> Frame<'a> {
    /// A frame over `data` with rows `stride` bytes apart; checks that the buffer is large enough.
    pub fn new(data: &'a [u8], format: PixelFormat, width: usize, height: usize, stride: usize) -> Result<Self> {
        check_layout(format, width, height, stride, data.len())?;
        Ok(Frame { data, format, width, height, stride })
    }
    /// A frame whose rows are tightly packed.
    pub fn packed(data: &'a [u8], format: PixelFormat, width: usize, height: usize) -> Result<Self> {
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
    pub fn data(&self) -> &'a [u8] {
        self.data
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
    /// A writable frame over `data` with rows `stride` bytes apart; checks the buffer's size.
    pub fn new(data: &'a mut [u8], format: PixelFormat, width: usize, height: usize, stride: usize) -> Result<Self> {
        check_layout(format, width, height, stride, data.len())?;
        Ok(FrameMut { data, format, width, height, stride })
    }
    /// A writable frame whose rows are tightly packed.
    pub fn packed(data: &'a mut [u8], format: PixelFormat, width: usize, height: usize) -> Result<Self> {
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
    /// A read-only view of the same frame.
    pub fn as_frame(&self) -> Frame<'_> {
        Frame { data: self.data, format: self.format, width: self.width, height: self.height, stride: self.stride }
    }
    fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        let len = self.width * self.format.bytes_per_pixel();
        &mut self.data[start..start + len]
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

/// Writes `frame` into the planar tensor `out` (`[3, out_h, out_w]`), padding by edge
/// replication when the tensor is larger than the frame (models whose sizes must be multiples
/// of some number).
fn frame_to_planar_padded(frame: &Frame, out: &mut [f32], out_w: usize, out_h: usize) {
    let (w, h) = (frame.width, frame.height);
    let bpp = frame.format.bytes_per_pixel();
    let offs = frame.format.rgb_offsets();
    let plane = out_w * out_h;
    debug_assert!(out.len() >= 3 * plane && out_w >= w && out_h >= h);
    let (r_plane, rest) = out.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    for y in 0..out_h {
        let row = frame.row(y.min(h - 1));
        let base = y * out_w;
        let (r, g, b) = (&mut r_plane[base..base + out_w], &mut g_plane[base..base + out_w], &mut b_plane[base..base + out_w]);
        for (x, px) in row.chunks_exact(bpp).enumerate() {
            r[x] = LUT[px[offs[0]] as usize];
            g[x] = LUT[px[offs[1]] as usize];
            b[x] = LUT[px[offs[2]] as usize];
        }
        for x in w..out_w {
            r[x] = r[w - 1];
            g[x] = g[w - 1];
            b[x] = b[w - 1];
        }
    }
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

/// Writes the top-left `out.width() x out.height()` of the planar tensor `planar`
/// (`[3, tensor_h, tensor_w]`) into `out`, rounding each value with [`quantize`].
/// Alpha (RGBA/BGRA) is copied from `alpha_from` when given and of the same size, else set to 255;
/// the padding byte of RGBx/BGRx is set to 255.
pub fn planar_to_frame(planar: &[f32], tensor_w: usize, tensor_h: usize, out: &mut FrameMut, alpha_from: Option<&Frame>) -> Result<()> {
    let (w, h) = (out.width, out.height);
    if tensor_w < w || tensor_h < h || planar.len() < 3 * tensor_w * tensor_h {
        return Err(Error::InvalidValue {
            what: "tensor size",
            value: format!("{tensor_w}x{tensor_h} ({} values)", planar.len()),
            expected: format!("at least the frame's {w}x{h} with 3 planes"),
        });
    }
    let plane = tensor_w * tensor_h;
    let bpp = out.format.bytes_per_pixel();
    let offs = out.format.rgb_offsets();
    let alpha = out.format.alpha_offset();
    let fourth = bpp == 4;
    let alpha_src = alpha_from.filter(|a| a.width == w && a.height == h && a.format.alpha_offset().is_some());
    for y in 0..h {
        let base = y * tensor_w;
        let (r, g, b) = (&planar[base..base + w], &planar[plane + base..plane + base + w], &planar[2 * plane + base..2 * plane + base + w]);
        let a_row = alpha_src.map(|a| (a.row(y), a.format.alpha_offset().unwrap_or(3), a.format.bytes_per_pixel()));
        let row = out.row_mut(y);
        for (x, px) in row.chunks_exact_mut(bpp).enumerate() {
            px[offs[0]] = quantize(r[x]);
            px[offs[1]] = quantize(g[x]);
            px[offs[2]] = quantize(b[x]);
            if fourth {
                px[3] = match (alpha, a_row) {
                    (Some(_), Some((src, ao, sbpp))) => src[x * sbpp + ao],
                    _ => 255,
                };
            }
        }
    }
    Ok(())
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
    pub fn resample(&mut self, src: &[f32], sw: usize, sh: usize, dst: &mut [f32], dw: usize, dh: usize) {
        debug_assert!(src.len() >= 3 * sw * sh && dst.len() >= 3 * dw * dh);
        if self.key != Some((sw, sh, dw, dh)) {
            self.xw = Taps::new(sw, dw);
            self.yw = Taps::new(sh, dh);
            self.key = Some((sw, sh, dw, dh));
        }
        // Horizontal pass: [3, sh, sw] → tmp [3, sh, dw]; vertical: tmp → [3, dh, dw].
        self.tmp.resize(3 * sh * dw, 0.0);
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
    /// `tensor_w x tensor_h`): resampled to `w x h` when the frame has another size, then
    /// edge-padded to the tensor's size.
    pub fn to_tensor(&mut self, frame: &Frame, w: usize, h: usize, out: &mut [f32], tensor_w: usize, tensor_h: usize) {
        if frame.width == w && frame.height == h {
            frame_to_planar_padded(frame, out, tensor_w, tensor_h);
            return;
        }
        let (fw, fh) = (frame.width, frame.height);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(3 * fw * fh + 3 * w * h, 0.0);
        let (src, dst) = scratch.split_at_mut(3 * fw * fh);
        frame_to_planar_padded(frame, src, fw, fh);
        self.resampler.resample(src, fw, fh, dst, w, h);
        pad_planar(dst, w, h, out, tensor_w, tensor_h);
        self.scratch = scratch;
    }
}

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
        r.resample(&src, sw, sh, &mut dst, dw, dh);
        assert!(dst.iter().all(|v| (v - 0.25).abs() < 1e-5));
        // Identity size is the identity.
        let src: Vec<f32> = (0..3 * sw * sh).map(|i| (i % 13) as f32 / 13.0).collect();
        let mut dst = vec![0f32; src.len()];
        r.resample(&src, sw, sh, &mut dst, sw, sh);
        assert!(src.iter().zip(&dst).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn converter_pads_by_edge_replication() {
        let data: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
        let frame = Frame::packed(&data, PixelFormat::Rgb, 2, 2).unwrap();
        let mut out = vec![0f32; 3 * 4 * 3];
        Converter::new().to_tensor(&frame, 2, 2, &mut out, 4, 3);
        // R plane row 0: r(0,0) r(1,0) r(1,0) r(1,0)
        assert_eq!(&out[0..4].iter().map(|&v| quantize(v)).collect::<Vec<_>>(), &[0, 60, 60, 60]);
        // Row 2 repeats row 1.
        assert_eq!(quantize(out[8]), 120);
    }
}
