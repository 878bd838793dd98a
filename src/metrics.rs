//! Image quality metrics: APD (mean absolute pixel difference on the 0–255 scale, the unit
//! of Baluja 2017), PSNR (dB, peak 255) and SSIM (Wang et al. 2004: Gaussian window 11×11,
//! σ = 1.5, K1 = 0.01, K2 = 0.03, averaged over the valid windows and the three channels).
//!
//! The functions take planar `[3, H, W]` `f32` images in [0, 1]; [`Metrics::rgb8`] takes packed
//! 8-bit RGB.

use crate::frame::dequantize;

/// APD, PSNR and SSIM between two images.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Mean absolute difference per channel value, 0–255 scale.
    pub apd: f64,
    /// Peak signal-to-noise ratio in dB (peak 255); infinite for identical images.
    pub psnr: f64,
    /// Structural similarity in [−1, 1].
    pub ssim: f64,
}

impl Metrics {
    /// Metrics between planar `[3, h, w]` images in [0, 1].
    pub fn planar(a: &[f32], b: &[f32], w: usize, h: usize) -> Metrics {
        Metrics { apd: apd(a, b), psnr: psnr(a, b), ssim: ssim(a, b, w, h) }
    }
    /// Metrics between packed 8-bit RGB images of `w x h`.
    pub fn rgb8(a: &[u8], b: &[u8], w: usize, h: usize) -> Metrics {
        let (pa, pb) = (rgb8_to_planar(a, w, h), rgb8_to_planar(b, w, h));
        Self::planar(&pa, &pb, w, h)
    }
}

/// Packed RGB8 → planar `[3, h, w]` in [0, 1].
pub fn rgb8_to_planar(rgb: &[u8], w: usize, h: usize) -> Vec<f32> {
    let plane = w * h;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in rgb.chunks_exact(3).take(plane).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = dequantize(px[c]);
        }
    }
    out
}

/// Mean absolute difference on the 0–255 scale.
pub fn apd(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "apd: images of different sizes");
    if a.is_empty() {
        return 0.0;
    }
    let s: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum();
    255.0 * s / a.len() as f64
}

/// Mean squared error on the [0, 1] scale.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "mse: images of different sizes");
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64
}

/// PSNR in dB with peak 1.0 on [0, 1] data (the same as peak 255 on 8-bit data).
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let m = mse(a, b);
    if m == 0.0 { f64::INFINITY } else { 10.0 * (1.0 / m).log10() }
}

fn gaussian(n: usize, sigma: f64) -> Vec<f64> {
    let c = (n as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..n).map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// Separable 'valid' filtering of one plane.
fn filter_valid(p: &[f64], w: usize, h: usize, k: &[f64]) -> (Vec<f64>, usize, usize) {
    let n = k.len();
    let (ow, oh) = (w + 1 - n, h + 1 - n);
    let mut tmp = vec![0f64; ow * h];
    for y in 0..h {
        for x in 0..ow {
            tmp[y * ow + x] = (0..n).map(|i| p[y * w + x + i] * k[i]).sum();
        }
    }
    let mut out = vec![0f64; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..n).map(|i| tmp[(y + i) * ow + x] * k[i]).sum();
        }
    }
    (out, ow, oh)
}

/// Mean SSIM over the three channels of planar `[3, h, w]` images in [0, 1]. The window is
/// 11×11 (smaller, odd, for images under 11 pixels on a side).
pub fn ssim(a: &[f32], b: &[f32], w: usize, h: usize) -> f64 {
    assert_eq!(a.len(), b.len(), "ssim: images of different sizes");
    let plane = w * h;
    assert!(plane > 0 && a.len() >= 3 * plane, "ssim: buffer smaller than 3x{w}x{h}");
    let mut n = 11.min(w).min(h);
    if n % 2 == 0 {
        n -= 1;
    }
    let k = gaussian(n, 1.5);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    for c in 0..3 {
        let pa: Vec<f64> = a[c * plane..(c + 1) * plane].iter().map(|&v| v as f64).collect();
        let pb: Vec<f64> = b[c * plane..(c + 1) * plane].iter().map(|&v| v as f64).collect();
        let aa: Vec<f64> = pa.iter().map(|v| v * v).collect();
        let bb: Vec<f64> = pb.iter().map(|v| v * v).collect();
        let ab: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| x * y).collect();
        let (ma, _, _) = filter_valid(&pa, w, h, &k);
        let (mb, _, _) = filter_valid(&pb, w, h, &k);
        let (saa, _, _) = filter_valid(&aa, w, h, &k);
        let (sbb, _, _) = filter_valid(&bb, w, h, &k);
        let (sab, ow, oh) = filter_valid(&ab, w, h, &k);
        let mut s = 0.0;
        for i in 0..ow * oh {
            let (mx, my) = (ma[i], mb[i]);
            let vx = saa[i] - mx * mx;
            let vy = sbb[i] - my * my;
            let cxy = sab[i] - mx * my;
            s += ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        }
        total += s / (ow * oh) as f64;
    }
    total / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images() {
        let a: Vec<f32> = (0..3 * 20 * 16).map(|i| ((i * 37) % 256) as f32 / 255.0).collect();
        let m = Metrics::planar(&a, &a, 20, 16);
        assert_eq!(m.apd, 0.0);
        assert!(m.psnr.is_infinite());
        assert!((m.ssim - 1.0).abs() < 1e-9);
    }

    #[test]
    fn known_values() {
        // Every value off by 10/255: APD 10, MSE (10/255)^2 → PSNR 20 log10(25.5) = 28.13 dB.
        let a = vec![0.5f32; 3 * 16 * 16];
        let b: Vec<f32> = a.iter().map(|v| v + 10.0 / 255.0).collect();
        let m = Metrics::planar(&a, &b, 16, 16);
        assert!((m.apd - 10.0).abs() < 1e-3, "{m:?}");
        assert!((m.psnr - 28.1308).abs() < 1e-2, "{m:?}");
        // A constant shift of flat images keeps structure; SSIM only loses the luminance term.
        let l = (2.0 * 0.5 * (0.5 + 10.0 / 255.0) + 1e-4) / (0.25 + (0.5f64 + 10.0 / 255.0).powi(2) + 1e-4);
        assert!((m.ssim - l).abs() < 1e-4, "{m:?} vs {l}");
        // Noise lowers SSIM.
        let n: Vec<f32> = a.iter().enumerate().map(|(i, v)| v + if i % 2 == 0 { 0.1 } else { -0.1 }).collect();
        assert!(ssim(&a, &n, 16, 16) < 0.5);
    }

    /// Golden value from scikit-image 0.26.0: `structural_similarity(a, b, data_range=1.0,
    /// channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` on the
    /// same planar images as float64 (its Gaussian window, truncated at 3.5 σ, is our 11×11; it
    /// averages the interior windows and the channels as we do).
    #[test]
    fn ssim_matches_scikit_image() {
        let (w, h) = (24, 20);
        let a = crate::frame::bench_support::pseudo_random_bytes(3 * w * h, 7);
        let noise = crate::frame::bench_support::pseudo_random_bytes(3 * w * h, 8);
        let b: Vec<u8> = a.iter().zip(&noise).map(|(&x, &n)| ((3 * x as u32 + n as u32) / 4) as u8).collect();
        let planar = |v: &[u8]| -> Vec<f32> { v.iter().map(|&x| dequantize(x)).collect() };
        let got = ssim(&planar(&a), &planar(&b), w, h);
        assert!((got - 0.9226056423220926).abs() < 1e-6, "{got} vs scikit-image's 0.9226056423220926");
    }

    #[test]
    fn rgb8_matches_planar() {
        let a: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
        let b: Vec<u8> = a.iter().map(|v| v.saturating_add(3)).collect();
        let m = Metrics::rgb8(&a, &b, 4, 3);
        assert!((m.apd - 3.0).abs() < 1e-6);
    }
}
