//! Differentiable stand-ins for what a recording does to a container, so that the nets can
//! learn to survive it: `videoconvert` to I420 (BT.601 limited-range YCbCr, 4:2:0 chroma,
//! 8-bit planes), an encoder's 8×8 block-DCT quantisation, the decoder's chroma upsampling and
//! the conversion back to RGB.
//!
//! Every rounding is straight-through (`x + (round(x) − x).detach()`): the forward pass loses
//! what the codec loses, the backward pass sees the identity there. The transforms are fixed
//! tensor operations (no weights).
//!
//! A share of the batches can go through the real encoders instead ([`Recording::Real`]): the
//! containers are recorded with x264 or libjpeg through GStreamer, so the reveal net learns
//! what the real encoders leave. No gradient goes back through them to the hide net: with the
//! identity there (`x + (codec(x) − x).detach()`, as UDH and VideoSeal do) our fine-tunes
//! raised the container's amplitude step after step (cover PSNR 33 → 29.6 dB in 1,000 steps)
//! without the secret gaining; the hide net learns robustness from the proxies.
//!
//! The proxies are simplifications: H.264 uses 4×4/8×8 integer transforms, intra prediction,
//! dead-zone rounding and in-loop deblocking, and JPEG encoders differ in their chroma
//! filters. What they share with the proxies, and what destroys a secret hidden in per-channel
//! detail, is the 4:2:0 chroma and the coarse quantisation of high frequencies.

use candle_core::{Device, Result, Tensor};
use image::RgbImage;
use rand::Rng;
use stego::codec::Codec;

/// A recording drawn for one training batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recording {
    /// Lossless RGB (PNG, FFV1 in RGB): only the 8-bit rounding the container already has.
    Lossless,
    /// 4:2:0 YCbCr with 8-bit planes, no further loss (x264 at quantizer 0 in I420).
    Yuv420,
    /// 4:2:0, then every 8×8 DCT coefficient quantised with the same step (in 8-bit levels):
    /// x264's flat matrices; its quantizer QP has a step of about 0.625·2^(QP/6). `rounding`
    /// is the quantiser's rounding offset: a coefficient becomes ⌊|c|/step + rounding⌋ steps,
    /// so below 1/2 it has a dead zone around 0, as H.264 encoders do (about 1/3 for intra
    /// blocks, 1/6 for predicted ones; x264's trellis decides per coefficient).
    ///
    /// `aq` is the strength of x264's adaptive quantisation (its default `aq-mode=1` at 1.0; 0
    /// for none): each 16×16 macroblock's step is scaled by 2^(ΔQP/6) with ΔQP = 1.0397 · aq ·
    /// (log2 E − 14.427), E the macroblock's AC energy (luma 16×16 plus both 8×8 chroma), so
    /// busy blocks are quantised harder and flat ones more gently.
    FlatDct { step: f32, rounding: f32, aq: f32 },
    /// 4:2:0, then JPEG's quantisation tables at a quality (libjpeg's scaling).
    Jpeg { quality: u32 },
    /// The real encoder and decoder through GStreamer (see [`record_tiled`]); no gradient
    /// flows back through it.
    Real(Codec),
}

impl Recording {
    /// The DCT step of x264's quantizer `qp`, with H.264's intra dead zone and no adaptive
    /// quantisation.
    pub fn x264(qp: f32) -> Self {
        Recording::FlatDct { step: x264_step(qp), rounding: X264_ROUNDING, aq: 0.0 }
    }
}

/// H.264's quantiser step (Qstep, in 8-bit levels) at quantizer `qp`: 5.0 at 18, 8.9 at 23,
/// 15.9 at 28.
fn x264_step(qp: f32) -> f32 {
    0.625 * 2f32.powf(qp / 6.0)
}

/// The rounding offset of an x264-like recording when none is drawn: H.264's intra dead zone.
pub const X264_ROUNDING: f32 = 1.0 / 3.0;

/// The rounding offsets drawn for x264-like training batches: from predicted blocks' dead zone
/// to plain rounding.
pub const X264_ROUNDING_RANGE: (f32, f32) = (1.0 / 6.0, 0.5);

impl Recording {
    /// The rounding offset of the quantiser (plain rounding, 1/2, for JPEG).
    fn rounding(self) -> f32 {
        match self {
            Recording::FlatDct { rounding, .. } => rounding,
            _ => 0.5,
        }
    }
}

/// How often each kind of recording is drawn during training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordingMix {
    /// Share of batches revealed from the lossless container.
    pub lossless: f64,
    /// Share of batches with 4:2:0 only.
    pub yuv420: f64,
    /// Share of batches with x264-like flat quantisation, quantizer drawn uniformly from `qp`.
    pub x264: f64,
    /// Quantizer range of the x264-like batches.
    pub qp: (f32, f32),
    /// The remaining batches get JPEG tables at a quality drawn uniformly from this range.
    pub jpeg_quality: (u32, u32),
    /// Strength of x264's adaptive quantisation in the x264-like batches (see
    /// [`Recording::FlatDct`]; 1.0 is x264enc's default, 0 none).
    #[serde(default)]
    pub aq: f32,
    /// Share of the x264 and JPEG batches recorded by the real encoder (x264enc at the drawn
    /// quantizer, rounded, constant: `pass=quant`; jpegenc at the drawn quality) instead of
    /// the proxy.
    #[serde(default)]
    pub real: f64,
}

impl Default for RecordingMix {
    /// A quarter lossless, a tenth 4:2:0 only, 40% x264 at quantizer 16–30, the rest JPEG
    /// quality 70–95: the recordings people make, with the lossless path kept.
    fn default() -> Self {
        Self { lossless: 0.25, yuv420: 0.1, x264: 0.4, qp: (16.0, 30.0), jpeg_quality: (70, 95), aq: 0.0, real: 0.0 }
    }
}

impl RecordingMix {
    /// Draws the recording of one batch.
    pub fn draw(&self, rng: &mut impl Rng) -> Recording {
        let u: f64 = rng.random();
        if u < self.lossless {
            Recording::Lossless
        } else if u < self.lossless + self.yuv420 {
            Recording::Yuv420
        } else if u < self.lossless + self.yuv420 + self.x264 {
            let qp = rng.random_range(self.qp.0..=self.qp.1);
            let rounding = rng.random_range(X264_ROUNDING_RANGE.0..=X264_ROUNDING_RANGE.1);
            if self.draw_real(rng) {
                Recording::Real(Codec::X264Qp { quantizer: qp.round() as u32 })
            } else {
                Recording::FlatDct { step: x264_step(qp), rounding, aq: self.aq }
            }
        } else {
            let quality = rng.random_range(self.jpeg_quality.0..=self.jpeg_quality.1);
            if self.draw_real(rng) { Recording::Real(Codec::Jpeg { quality }) } else { Recording::Jpeg { quality } }
        }
    }

    /// Whether an x264 or JPEG batch goes through the real encoder. Without a real-encoder
    /// share nothing is drawn, so the batches' random stream is the one runs had before.
    fn draw_real(&self, rng: &mut impl Rng) -> bool {
        self.real > 0.0 && rng.random_bool(self.real)
    }

    /// Checks the shares and ranges.
    pub fn check(&self) -> std::result::Result<(), String> {
        let shares = [self.lossless, self.yuv420, self.x264];
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 + 1e-9 {
            return Err(format!("recording shares {shares:?} must each be in [0, 1] and add up to at most 1"));
        }
        if !(0.0..=51.0).contains(&self.qp.0) || self.qp.0 > self.qp.1 || self.qp.1 > 51.0 {
            return Err(format!("x264 quantizer range {:?} must lie in 0..=51, low first", self.qp));
        }
        if self.jpeg_quality.0 == 0 || self.jpeg_quality.0 > self.jpeg_quality.1 || self.jpeg_quality.1 > 100 {
            return Err(format!("JPEG quality range {:?} must lie in 1..=100, low first", self.jpeg_quality));
        }
        if !(0.0..=3.0).contains(&self.aq) {
            return Err(format!("adaptive-quantisation strength {} must be in [0, 3]", self.aq));
        }
        if !(0.0..=1.0).contains(&self.real) {
            return Err(format!("real-encoder share {} must be in [0, 1]", self.real));
        }
        if self.real > 0.0 && self.qp.1 > 50.0 {
            return Err(format!("x264 quantizer range {:?} goes above 50, where x264enc stops: lower it, or draw no real encoders", self.qp));
        }
        Ok(())
    }
}

/// JPEG's luminance table (ITU T.81 Annex K), row-major.
const JPEG_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80,
    62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95,
    98, 112, 100, 103, 99,
];
/// JPEG's chrominance table.
const JPEG_CHROMA: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99,
];

/// A JPEG table scaled to `quality` as libjpeg does.
fn jpeg_table(base: &[u16; 64], quality: u32) -> [f32; 64] {
    let q = quality.clamp(1, 100);
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    base.map(|b| ((b as u32 * scale + 50) / 100).clamp(1, 255) as f32)
}

/// `x` quantised to whole numbers with the rounding offset `r`, sign(x)·⌊|x| + r⌋ (plain
/// rounding at r = 1/2, a dead zone around 0 below), with the identity as its gradient.
pub fn dead_zone_ste(x: &Tensor, r: f32) -> Result<Tensor> {
    let sign = ((x.ge(0f32)?.to_dtype(x.dtype())? * 2.0)? - 1.0)?;
    let q = (x.abs()? + r as f64)?.floor()?.mul(&sign)?;
    x + (q - x)?.detach()
}

/// `x` rounded, with the identity as its gradient.
pub fn round_ste(x: &Tensor) -> Result<Tensor> {
    x + (x.round()? - x)?.detach()
}

/// The fixed operators of the proxies on one device.
#[derive(Debug, Clone)]
pub struct CodecProxy {
    /// Orthonormal 8-point DCT-II matrix, and its transpose.
    dct: Tensor,
    dct_t: Tensor,
    device: Device,
}

impl CodecProxy {
    pub fn new(device: &Device) -> Result<Self> {
        let mut m = vec![0f32; 64];
        for k in 0..8 {
            let c = if k == 0 { (1.0f64 / 8.0).sqrt() } else { (2.0f64 / 8.0).sqrt() };
            for n in 0..8 {
                m[k * 8 + n] = (c * (std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / 16.0).cos()) as f32;
            }
        }
        let dct = Tensor::from_vec(m, (8, 8), device)?;
        Ok(Self { dct_t: dct.t()?.contiguous()?, dct, device: device.clone() })
    }

    /// What `recording` does to `x`, `[N, 3, H, W]` RGB in [0, 1] (H, W multiples of 16 for
    /// the DCT recordings, of 2 for 4:2:0).
    pub fn apply(&self, x: &Tensor, recording: Recording) -> Result<Tensor> {
        let (tables, aq) = match recording {
            Recording::Lossless => return Ok(x.clone()),
            Recording::Real(codec) => return real(x, codec),
            Recording::Yuv420 => (None, 0.0),
            Recording::FlatDct { step, aq, .. } => (Some(([step; 64], [step; 64])), aq),
            Recording::Jpeg { quality } => (Some((jpeg_table(&JPEG_LUMA, quality), jpeg_table(&JPEG_CHROMA, quality))), 0.0),
        };
        let (_, _, h, w) = x.dims4()?;
        let (y, cbcr) = rgb_to_ycbcr(&(x * 255.0)?)?;
        let cbcr = cbcr.avg_pool2d(2)?;
        let (mut y, mut cbcr) = (round_ste(&y)?, round_ste(&cbcr)?);
        if let Some((luma, chroma)) = tables {
            let r = recording.rounding();
            // Per-macroblock step scales ([N, 1, H/16, W/16]), from the planes as coded.
            let mb = if aq > 0.0 { Some(aq_scales(&y.detach(), &cbcr.detach(), aq)?) } else { None };
            let y_scale = mb.as_ref().map(|m| m.upsample_nearest2d(h / 8, w / 8)).transpose()?;
            let c_scale = mb.as_ref().map(|m| Tensor::cat(&[m, m], 1)).transpose()?;
            y = round_ste(&self.quantise(&y, &luma, r, y_scale.as_ref())?)?.clamp(0f32, 255f32)?;
            cbcr = round_ste(&self.quantise(&cbcr, &chroma, r, c_scale.as_ref())?)?.clamp(0f32, 255f32)?;
        }
        let rgb = ycbcr_to_rgb(&y, &cbcr.upsample_nearest2d(h, w)?)?;
        round_ste(&rgb.clamp(0f32, 255f32)?)? / 255.0
    }

    /// 8×8 block DCT of every plane of `x` (`[N, C, H, W]`, values in 8-bit levels), each
    /// coefficient rounded to a multiple of its step in `table` (row-major 8×8) with the
    /// rounding offset `rounding`, and back; with `scale` (`[N, C, H/8, W/8]`) each block's
    /// steps are multiplied by its entry.
    fn quantise(&self, x: &Tensor, table: &[f32; 64], rounding: f32, scale: Option<&Tensor>) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if h % 8 != 0 || w % 8 != 0 {
            candle_core::bail!("block DCT needs planes of whole 8x8 blocks, not {h}x{w}");
        }
        let blocks = (x - 128.0)?.reshape((n, c, h / 8, 8, w / 8, 8))?.permute([0, 1, 2, 4, 3, 5])?.contiguous()?;
        let blocks = blocks.reshape((n * c * (h / 8) * (w / 8), 8, 8))?;
        // coefficients D·X·Dᵀ; back: Dᵀ·Q·D.
        let coef = sandwich(&blocks, &self.dct_t)?;
        let mut step = Tensor::from_slice(table, (1, 8, 8), &self.device)?;
        if let Some(s) = scale {
            step = s.reshape((n * c * (h / 8) * (w / 8), 1, 1))?.broadcast_mul(&step)?;
        }
        let q = dead_zone_ste(&coef.broadcast_div(&step)?, rounding)?.broadcast_mul(&step)?;
        let back = sandwich(&q, &self.dct)?;
        back.reshape((n, c, h / 8, w / 8, 8, 8))?.permute([0, 1, 2, 4, 3, 5])?.contiguous()?.reshape((n, c, h, w))? + 128.0
    }
}

/// `x` (`[N, 3, H, W]` RGB in [0, 1]) rounded to 8 bits and recorded by `codec`, detached.
fn real(x: &Tensor, codec: Codec) -> Result<Tensor> {
    let recorded = record_tiled(&crate::data::to_images(x)?, codec).map_err(candle_core::Error::wrap)?;
    crate::data::to_tensor(&recorded, x.device())
}

/// `images` (all the same size) recorded by `codec` as one frame: tiled in a near-square grid
/// (grey where the grid has no image), encoded, decoded and cut apart again. One frame per
/// batch keeps the encoder's start-up cost per batch, not per image; with sides that are
/// multiples of 16 the tiles keep to whole macroblocks and 8×8 blocks.
pub fn record_tiled(images: &[RgbImage], codec: Codec) -> stego::Result<Vec<RgbImage>> {
    let Some(first) = images.first() else { return Ok(Vec::new()) };
    let (w, h) = first.dimensions();
    let cols = (images.len() as f64).sqrt().ceil() as u32;
    let rows = (images.len() as u32).div_ceil(cols);
    let mut frame = RgbImage::from_pixel(cols * w, rows * h, image::Rgb([128, 128, 128]));
    for (i, img) in images.iter().enumerate() {
        assert_eq!(img.dimensions(), (w, h), "record_tiled needs images of one size");
        image::imageops::replace(&mut frame, img, ((i as u32 % cols) * w) as i64, ((i as u32 / cols) * h) as i64);
    }
    let recorded = codec.round_trip(&frame)?;
    Ok((0..images.len() as u32)
        .map(|i| image::imageops::crop_imm(&recorded, (i % cols) * w, (i / cols) * h, w, h).to_image())
        .collect())
}

/// Checks that the real encoders a `--robust` run validates through (and with a real-encoder
/// share trains through) work: x264enc with avdec_h264, jpegenc with jpegdec, through
/// GStreamer. A run calls it before its first step, so that a missing plugin stops it there.
pub fn check_real_encoders() -> stego::Result<()> {
    let probe = RgbImage::from_pixel(16, 16, image::Rgb([128, 128, 128]));
    for codec in [Codec::X264Qp { quantizer: 23 }, Codec::Jpeg { quality: 90 }] {
        codec.round_trip(&probe)?;
    }
    Ok(())
}

/// x264's adaptive quantisation (`aq-mode=1`) as step multipliers per 16×16 macroblock,
/// `[N, 1, H/16, W/16]`: 2^(ΔQP/6), ΔQP = 1.0397 · `strength` · (log2 E − 14.427), with E the AC
/// energy Σx² − (Σx)²/n of the macroblock's luma (16×16) plus its two chroma blocks (8×8), from
/// `y` (`[N, 1, H, W]`) and `cbcr` (`[N, 2, H/2, W/2]`) in 8-bit levels.
fn aq_scales(y: &Tensor, cbcr: &Tensor, strength: f32) -> Result<Tensor> {
    let energy = |p: &Tensor, side: usize| -> Result<Tensor> {
        let n = (side * side) as f64;
        let mean = p.avg_pool2d(side)?;
        let mean_sq = p.sqr()?.avg_pool2d(side)?;
        ((mean_sq - mean.sqr()?)? * n)?.sum_keepdim(1)
    };
    let e = (energy(y, 16)? + energy(cbcr, 8)?)?.clamp(1f32, f32::MAX)?;
    let dqp = ((e.log()? / std::f64::consts::LN_2)? - 14.427)? * (1.0397 * strength as f64);
    (dqp? * (std::f64::consts::LN_2 / 6.0))?.exp()
}

/// `M·X·Mᵀ` for every 8×8 block `X` of `x` (`[B, 8, 8]`), given `m_t` = `Mᵀ`.
fn sandwich(x: &Tensor, m_t: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    let xm = x.reshape((b * 8, 8))?.matmul(m_t)?.reshape((b, 8, 8))?;
    // M·Y = (Yᵀ·Mᵀ)ᵀ
    xm.transpose(1, 2)?.contiguous()?.reshape((b * 8, 8))?.matmul(m_t)?.reshape((b, 8, 8))?.transpose(1, 2)?.contiguous()
}

/// BT.601 limited range, as `videoconvert` writes I420 for SD video: RGB (0–255) →
/// (Y `[N, 1, H, W]`, CbCr `[N, 2, H, W]`), 8-bit levels, not rounded.
fn rgb_to_ycbcr(rgb: &Tensor) -> Result<(Tensor, Tensor)> {
    let m = Tensor::from_slice(
        &[
            0.299f32 * 219.0 / 255.0,
            0.587 * 219.0 / 255.0,
            0.114 * 219.0 / 255.0,
            -0.168736 * 224.0 / 255.0,
            -0.331264 * 224.0 / 255.0,
            0.5 * 224.0 / 255.0,
            0.5 * 224.0 / 255.0,
            -0.418688 * 224.0 / 255.0,
            -0.081312 * 224.0 / 255.0,
        ],
        (3, 3),
        rgb.device(),
    )?;
    let offset = Tensor::from_slice(&[16f32, 128.0, 128.0], (1, 3, 1, 1), rgb.device())?;
    let ycc = mix(&m, rgb)?.broadcast_add(&offset)?;
    Ok((ycc.narrow(1, 0, 1)?, ycc.narrow(1, 1, 2)?))
}

/// The inverse of [`rgb_to_ycbcr`] (the decoder's conversion back to RGB, 0–255).
fn ycbcr_to_rgb(y: &Tensor, cbcr: &Tensor) -> Result<Tensor> {
    let (ky, kc) = (255.0 / 219.0, 255.0 / 224.0);
    let m = Tensor::from_slice(
        &[
            ky as f32,
            0.0,
            (1.402 * kc) as f32,
            ky as f32,
            (-0.344136 * kc) as f32,
            (-0.714136 * kc) as f32,
            ky as f32,
            (1.772 * kc) as f32,
            0.0,
        ],
        (3, 3),
        y.device(),
    )?;
    let offset = Tensor::from_slice(&[16f32, 128.0, 128.0], (1, 3, 1, 1), y.device())?;
    mix(&m, &Tensor::cat(&[y, cbcr], 1)?.broadcast_sub(&offset)?)
}

/// Per-pixel 3×3 colour matrix: `out[c] = Σ_k m[c][k] · x[k]` over `[N, 3, H, W]`.
fn mix(m: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let px = x.reshape((n, c, h * w))?.transpose(1, 2)?.contiguous()?.reshape((n * h * w, c))?;
    px.matmul(&m.t()?)?.reshape((n, h * w, 3))?.transpose(1, 2)?.contiguous()?.reshape((n, 3, h, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image(n: usize, h: usize, w: usize, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // Smooth colour ramps plus a little texture, on the 8-bit grid.
        let v: Vec<f32> = (0..n * 3 * h * w)
            .map(|i| {
                let (c, y, x) = ((i / (h * w)) % 3, (i / w) % h, i % w);
                let base = 40.0 + 150.0 * ((x + 2 * y + 30 * c) % 97) as f32 / 97.0;
                ((base + rng.random_range(-8.0f32..8.0)).round()) / 255.0
            })
            .collect();
        Tensor::from_vec(v, (n, 3, h, w), &Device::Cpu).unwrap()
    }

    fn mean_abs_levels(a: &Tensor, b: &Tensor) -> f32 {
        ((a - b).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()) * 255.0
    }

    #[test]
    fn the_dead_zone_zeroes_small_coefficients_and_passes_the_gradient() {
        let v = [-1.4f32, -0.6, -0.3, 0.3, 0.6, 1.4, 2.5];
        let x = candle_core::Var::from_slice(&v, 7, &Device::Cpu).unwrap();
        let intra = dead_zone_ste(x.as_tensor(), X264_ROUNDING).unwrap();
        assert_eq!(intra.to_vec1::<f32>().unwrap(), [-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
        let plain = dead_zone_ste(x.as_tensor(), 0.5).unwrap();
        assert_eq!(plain.to_vec1::<f32>().unwrap(), [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 3.0]);
        let grad = intra.sum_all().unwrap().backward().unwrap();
        assert_eq!(grad.get(&x).unwrap().to_vec1::<f32>().unwrap(), [1.0; 7]);
    }

    #[test]
    fn dct_is_orthonormal_and_fine_steps_keep_the_image() {
        let p = CodecProxy::new(&Device::Cpu).unwrap();
        let eye = p.dct.matmul(&p.dct_t).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in eye.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
            }
        }
        let x = (image(1, 16, 16, 1) * 255.0).unwrap().narrow(1, 0, 1).unwrap();
        let back = p.quantise(&x, &[1e-3; 64], 0.5, None).unwrap();
        assert!(mean_abs_levels(&(&x / 255.0).unwrap(), &(back / 255.0).unwrap()) < 1e-2);
    }

    #[test]
    fn losses_grow_with_the_step_and_lossless_is_the_identity() {
        let p = CodecProxy::new(&Device::Cpu).unwrap();
        let x = image(2, 32, 48, 2);
        assert_eq!(mean_abs_levels(&x, &p.apply(&x, Recording::Lossless).unwrap()), 0.0);
        let yuv = mean_abs_levels(&x, &p.apply(&x, Recording::Yuv420).unwrap());
        let q18 = mean_abs_levels(&x, &p.apply(&x, Recording::x264(18.0)).unwrap());
        let q28 = mean_abs_levels(&x, &p.apply(&x, Recording::x264(28.0)).unwrap());
        let j95 = mean_abs_levels(&x, &p.apply(&x, Recording::Jpeg { quality: 95 }).unwrap());
        let j50 = mean_abs_levels(&x, &p.apply(&x, Recording::Jpeg { quality: 50 }).unwrap());
        assert!(0.3 < yuv && yuv < q18 && q18 < q28 && q28 < 15.0, "{yuv} {q18} {q28}");
        assert!(yuv < j95 && j95 < j50, "{j95} {j50}");
    }

    #[test]
    fn grey_survives_4_2_0_and_colour_detail_does_not() {
        let p = CodecProxy::new(&Device::Cpu).unwrap();
        let grey = Tensor::full(100f32 / 255.0, (1, 3, 8, 8), &Device::Cpu).unwrap();
        assert!(mean_abs_levels(&grey, &p.apply(&grey, Recording::Yuv420).unwrap()) <= 1.0);
        // A red/green checkerboard of single pixels: its chroma averages away.
        let v: Vec<f32> = (0..3 * 64).map(|i| if ((i % 8) + (i / 8) % 8) % 2 == (i / 64).min(1) && i / 64 < 2 { 0.8 } else { 0.2 }).collect();
        let check = Tensor::from_vec(v, (1, 3, 8, 8), &Device::Cpu).unwrap();
        assert!(mean_abs_levels(&check, &p.apply(&check, Recording::Yuv420).unwrap()) > 40.0);
    }

    #[test]
    fn gradients_pass_through_every_rounding() {
        let p = CodecProxy::new(&Device::Cpu).unwrap();
        let x = candle_core::Var::from_tensor(&image(1, 16, 16, 3)).unwrap();
        for r in [Recording::Yuv420, Recording::x264(23.0), Recording::Jpeg { quality: 80 }] {
            let g = p.apply(x.as_tensor(), r).unwrap().sum_all().unwrap().backward().unwrap();
            let gx = g.get(x.as_tensor()).unwrap();
            let mean = gx.abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(mean > 0.3 && mean.is_finite(), "{r:?}: mean |grad| {mean}");
        }
    }

    #[test]
    fn real_recordings_keep_each_tile_in_place_and_pass_no_gradient() {
        // Five flat tiles of different colours in a 3×2 grid: each comes back nearest to itself
        // (JPEG's chroma upsampling blends a little across the tile edges).
        let images: Vec<RgbImage> = (0..5u8).map(|i| RgbImage::from_pixel(16, 16, image::Rgb([40 + 40 * i, 200 - 30 * i, 90]))).collect();
        let mad = |a: &RgbImage, b: &RgbImage| a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| (x as f32 - y as f32).abs()).sum::<f32>() / 768.0;
        for codec in [Codec::X264 { quantizer: Some(23) }, Codec::Jpeg { quality: 90 }] {
            let out = record_tiled(&images, codec).unwrap();
            assert_eq!(out.len(), 5);
            for (i, b) in out.iter().enumerate() {
                assert_eq!(b.dimensions(), (16, 16));
                let own = mad(&images[i], b);
                assert!(own < 10.0, "{codec}: tile {i} off by {own} levels");
                assert!(images.iter().all(|a| mad(a, b) >= own), "{codec}: tile {i} is nearer another tile");
            }
        }
        let p = CodecProxy::new(&Device::Cpu).unwrap();
        let x = candle_core::Var::from_tensor(&image(2, 16, 16, 5)).unwrap();
        let y = p.apply(x.as_tensor(), Recording::Real(Codec::Jpeg { quality: 90 })).unwrap();
        assert!(mean_abs_levels(x.as_tensor(), &y) > 0.0);
        let g = (y.sum_all().unwrap() + x.as_tensor().sum_all().unwrap()).unwrap().backward().unwrap();
        assert_eq!(g.get(x.as_tensor()).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap(), 1.0);
    }

    #[test]
    fn adaptive_quantisation_spares_flat_macroblocks_and_hits_busy_ones() {
        // Left macroblock flat grey, right one a strong checkerboard; the same noise on both.
        let p = CodecProxy::new(&Device::Cpu).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let v: Vec<f32> = (0..3 * 16 * 32)
            .map(|i| {
                let (y, x) = ((i / 32) % 16, i % 32);
                let base = if x < 16 { 128.0 } else if (x + y) % 2 == 0 { 60.0 } else { 200.0 };
                ((base + rng.random_range(-4.0f32..4.0)).round()) / 255.0
            })
            .collect();
        let img = Tensor::from_vec(v, (1, 3, 16, 32), &Device::Cpu).unwrap();
        let (y, cbcr) = rgb_to_ycbcr(&(&img * 255.0).unwrap()).unwrap();
        let scales = aq_scales(&y, &cbcr.avg_pool2d(2).unwrap(), 1.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(scales[0] < 1.0 && scales[1] > 1.5, "{scales:?}");
        let off = aq_scales(&y, &cbcr.avg_pool2d(2).unwrap(), 0.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(off, [1.0, 1.0]);
        // With AQ the flat half keeps more of its noise, the busy half loses more.
        let err = |aq: f32, half: usize| {
            let out = p.apply(&img, Recording::FlatDct { step: 12.0, rounding: X264_ROUNDING, aq }).unwrap();
            mean_abs_levels(&img.narrow(3, 16 * half, 16).unwrap(), &out.narrow(3, 16 * half, 16).unwrap())
        };
        assert!(err(1.0, 0) < err(0.0, 0), "flat: {} vs {}", err(1.0, 0), err(0.0, 0));
        assert!(err(1.0, 1) > err(0.0, 1), "busy: {} vs {}", err(1.0, 1), err(0.0, 1));
    }

    #[test]
    fn the_mix_draws_every_kind_and_checks_its_ranges() {
        let mix = RecordingMix::default();
        mix.check().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let draws: Vec<Recording> = (0..400).map(|_| mix.draw(&mut rng)).collect();
        assert!(draws.contains(&Recording::Lossless));
        assert!(draws.contains(&Recording::Yuv420));
        assert!(draws.iter().any(|r| matches!(r, Recording::FlatDct { step, rounding, aq: 0.0 } if (4.0..=16.5).contains(step) && (X264_ROUNDING_RANGE.0..=X264_ROUNDING_RANGE.1).contains(rounding))));
        assert!(draws.iter().any(|r| matches!(r, Recording::Jpeg { quality } if (70..=95).contains(quality))));
        assert!(!draws.iter().any(|r| matches!(r, Recording::Real(_))));
        let real = RecordingMix { real: 0.5, ..mix };
        let draws: Vec<Recording> = (0..400).map(|_| real.draw(&mut rng)).collect();
        assert!(draws.iter().any(|r| matches!(r, Recording::Real(Codec::X264Qp { quantizer: q }) if (16..=30).contains(q))));
        assert!(draws.iter().any(|r| matches!(r, Recording::Real(Codec::Jpeg { quality }) if (70..=95).contains(quality))));
        assert!(draws.iter().any(|r| matches!(r, Recording::FlatDct { .. })));
        assert!(RecordingMix { real: 1.5, ..mix }.check().unwrap_err().contains("real-encoder"));
        assert!(RecordingMix { real: 0.5, qp: (20.0, 51.0), ..mix }.check().unwrap_err().contains("where x264enc stops"));
        RecordingMix { qp: (20.0, 51.0), ..mix }.check().unwrap();
        assert!(RecordingMix { aq: -1.0, ..mix }.check().unwrap_err().contains("adaptive"));
        let with_aq = RecordingMix { aq: 1.0, ..mix };
        assert!((0..50).map(|_| with_aq.draw(&mut rng)).any(|r| matches!(r, Recording::FlatDct { aq: 1.0, .. })));
        assert!(RecordingMix { lossless: 0.9, x264: 0.5, ..mix }.check().unwrap_err().contains("add up"));
        assert!(RecordingMix { qp: (30.0, 20.0), ..mix }.check().unwrap_err().contains("quantizer"));
    }
}
