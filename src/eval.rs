//! The evaluation figures of a set of image pairs (an original and its reproduction: a cover
//! and its container, a secret and its revealed copy): the means of APD, PSNR and SSIM over
//! the pairs, and the PSNR of their mean squared error.

use crate::metrics::{self, Metrics};

/// Running sums of the figures of image pairs; add pairs, then read the means.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairMeans {
    pairs: usize,
    sum: Metrics,
    mse: f64,
}

impl PairMeans {
    /// Adds a pair of planar `[3, h, w]` images in [0, 1]; returns its figures.
    pub fn add_planar(&mut self, original: &[f32], copy: &[f32], w: usize, h: usize) -> Metrics {
        let m = Metrics::planar(original, copy, w, h);
        self.add(&m, metrics::mse(original, copy));
        m
    }

    /// Adds a pair of packed 8-bit RGB images of `w x h`; returns its figures.
    pub fn add_rgb8(&mut self, original: &[u8], copy: &[u8], w: usize, h: usize) -> Metrics {
        self.add_planar(&metrics::rgb8_to_planar(original, w, h), &metrics::rgb8_to_planar(copy, w, h), w, h)
    }

    /// Adds the figures of a pair and its mean squared error on [0, 1].
    pub fn add(&mut self, m: &Metrics, mse: f64) {
        self.pairs += 1;
        self.sum = Metrics { apd: self.sum.apd + m.apd, psnr: self.sum.psnr + m.psnr, ssim: self.sum.ssim + m.ssim };
        self.mse += mse;
    }

    /// The number of pairs added.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// The mean APD, PSNR and SSIM of the pairs (NaN without pairs; the PSNR is infinite when
    /// one pair is reproduced exactly).
    pub fn mean(&self) -> Metrics {
        let n = self.pairs as f64;
        Metrics { apd: self.sum.apd / n, psnr: self.sum.psnr / n, ssim: self.sum.ssim / n }
    }

    /// The mean squared error over the pairs, on [0, 1].
    pub fn mean_mse(&self) -> f64 {
        self.mse / self.pairs as f64
    }

    /// The PSNR of [`PairMeans::mean_mse`] in dB (peak 1): finite unless every pair is
    /// reproduced exactly.
    pub fn psnr_of_mean_mse(&self) -> f64 {
        let m = self.mean_mse();
        if m == 0.0 { f64::INFINITY } else { 10.0 * (1.0 / m).log10() }
    }
}

impl<'a> FromIterator<&'a Metrics> for PairMeans {
    /// The means of figures already computed (no squared errors: [`PairMeans::mean_mse`] is 0).
    fn from_iter<I: IntoIterator<Item = &'a Metrics>>(iter: I) -> Self {
        let mut p = PairMeans::default();
        for m in iter {
            p.add(m, 0.0);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_of_two_pairs() {
        let (w, h) = (12, 12);
        let a = vec![100u8; w * h * 3];
        let b: Vec<u8> = (0..w * h * 3).map(|i| if i % 2 == 0 { 102 } else { 100 }).collect();
        let mut p = PairMeans::default();
        let exact = p.add_rgb8(&a, &a, w, h);
        let off = p.add_rgb8(&a, &b, w, h);
        assert_eq!((exact.apd, exact.psnr, exact.ssim), (0.0, f64::INFINITY, 1.0));
        assert!((off.apd - 1.0).abs() < 1e-4, "{}", off.apd);
        let mse = 0.5 * (2.0f64 / 255.0).powi(2);
        assert!((off.psnr - 10.0 * (1.0 / mse).log10()).abs() < 1e-3, "{}", off.psnr);
        let m = p.mean();
        assert_eq!(p.pairs(), 2);
        assert!((m.apd - 0.5).abs() < 1e-4 && m.psnr.is_infinite() && (m.ssim - (1.0 + off.ssim) / 2.0).abs() < 1e-12);
        assert!((p.mean_mse() - mse / 2.0).abs() < 1e-9);
        assert!((p.psnr_of_mean_mse() - 10.0 * (2.0 / mse).log10()).abs() < 1e-3);
        let again: PairMeans = [exact, off].iter().collect();
        assert_eq!(again.mean(), m);
    }
}
