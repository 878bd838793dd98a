//! Training data: images decoded once into memory, random crops, batches.
//!
//! Two layouts are recognised for each data folder:
//!
//! * **Tiny ImageNet** (`train/<wnid>/images/*.JPEG`, `val/images/*.JPEG` with
//!   `val/val_annotations.txt`): `train/` trains and `val/` validates.
//! * **Any folder of images**: every `.png`, `.jpg`, `.jpeg` below it (recursively); a
//!   held-out fraction (`--val-fraction`) validates, chosen by a shuffle seeded by `--seed`.
//!
//! Each image is decoded once and kept in memory with its longest side capped
//! (`--max-side`, default 512; 0 keeps photos at full size), together with its halvings (a
//! [`Pyramid`]). A training crop takes a square region of random side between the crop size
//! and the image's shorter side (log-uniform: large photos are randomly downscaled, so crops
//! hold content rather than a patch of sky, and also appear at their own scale, as a
//! full-size frame shows them), resizes it to the crop size and flips it horizontally half
//! of the time. The region is read from the pyramid level nearest above the crop size, so a
//! crop costs the same whatever the photo's size. Cover and secret are drawn independently.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use image::{RgbImage, imageops::FilterType};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use stego::frame::{Frame, FrameMut, PixelFormat, frame_to_planar, planar_to_frame};

/// How to read the data folders.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Longest side of the images kept in memory.
    pub max_side: u32,
    /// Fraction of a plain folder's images held out for validation.
    pub val_fraction: f64,
    /// Seed of the validation split.
    pub seed: u64,
    /// Use at most this many training images per folder (for quick runs).
    pub max_images: Option<usize>,
}

impl Default for DataOptions {
    fn default() -> Self {
        Self { max_side: 512, val_fraction: 0.1, seed: 0, max_images: None }
    }
}

/// An image and its successive halvings (each level half the previous one's size, filtered
/// with a triangle kernel), down to a shorter side of [`Pyramid::MIN_SIDE`].
#[derive(Debug, Clone, PartialEq)]
pub struct Pyramid {
    levels: Vec<RgbImage>,
}

impl Pyramid {
    /// No level's shorter side is below this (unless the image's own is).
    pub const MIN_SIDE: u32 = 32;

    pub fn new(image: RgbImage) -> Self {
        let mut levels = vec![image];
        loop {
            let (w, h) = levels.last().expect("level 0").dimensions();
            if w.min(h) / 2 < Self::MIN_SIDE {
                break;
            }
            let half = image::imageops::resize(levels.last().expect("level 0"), w / 2, h / 2, FilterType::Triangle);
            levels.push(half);
        }
        Self { levels }
    }

    /// The image at its own size (level 0).
    pub fn image(&self) -> &RgbImage {
        &self.levels[0]
    }

    /// Number of levels, the image itself included.
    pub fn depth(&self) -> usize {
        self.levels.len()
    }

    /// The square region of side `side` at (`x`, `y`) of the level-0 image, resized to
    /// `size`×`size`, read from the smallest level that still holds at least `size` pixels
    /// across the region.
    pub fn region(&self, x: u32, y: u32, side: u32, size: u32) -> RgbImage {
        let mut k = 0;
        while k + 1 < self.levels.len() && side >> (k + 1) >= size {
            k += 1;
        }
        let level = &self.levels[k];
        let (lw, lh) = level.dimensions();
        let f = (1u32 << k) as f64;
        let s = ((side as f64 / f).round() as u32).clamp(size.min(lw.min(lh)), lw.min(lh));
        let lx = ((x as f64 / f).round() as u32).min(lw - s);
        let ly = ((y as f64 / f).round() as u32).min(lh - s);
        let region = image::imageops::crop_imm(level, lx, ly, s, s).to_image();
        if s == size { region } else { image::imageops::resize(&region, size, size, FilterType::Triangle) }
    }
}

/// Images in memory, split into training and validation.
pub struct Dataset {
    pub train: Vec<Pyramid>,
    pub val: Vec<Pyramid>,
    /// One line per folder: what was read (for logs and the ONNX metadata).
    pub description: String,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// All image files below `dir`, sorted.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_image(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `dir` has the Tiny ImageNet layout.
pub fn is_tiny_imagenet(dir: &Path) -> bool {
    dir.join("train").is_dir() && dir.join("val").join("images").is_dir()
}

fn tiny_imagenet_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut train = Vec::new();
    for entry in std::fs::read_dir(dir.join("train"))? {
        let images = entry?.path().join("images");
        if images.is_dir() {
            train.extend(list_images(&images)?);
        }
    }
    train.sort();
    let val_dir = dir.join("val").join("images");
    let annotations = dir.join("val").join("val_annotations.txt");
    let val = if annotations.is_file() {
        let text = std::fs::read_to_string(&annotations)?;
        let mut v: Vec<PathBuf> = text
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|f| !f.is_empty())
            .map(|f| val_dir.join(f))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        list_images(&val_dir)?
    };
    Ok((train, val))
}

/// Decodes one image to RGB8 with its longest side capped at `max_side`.
pub fn load_image(path: &Path, max_side: u32) -> Result<RgbImage> {
    let img = image::ImageReader::open(path)?.with_guessed_format()?.decode()?.to_rgb8();
    Ok(cap_size(img, max_side))
}

/// Downscales `img` so its longest side is at most `max_side`.
pub fn cap_size(img: RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let longest = w.max(h);
    if longest <= max_side || max_side == 0 {
        return img;
    }
    let s = max_side as f64 / longest as f64;
    let nw = ((w as f64 * s).round() as u32).max(1);
    let nh = ((h as f64 * s).round() as u32).max(1);
    image::imageops::resize(&img, nw, nh, FilterType::Triangle)
}

fn decode_all(paths: &[PathBuf], max_side: u32) -> (Vec<Pyramid>, usize) {
    let results: Vec<Option<Pyramid>> = paths
        .par_iter()
        .map(|p| match load_image(p, max_side) {
            Ok(i) => Some(Pyramid::new(i)),
            Err(e) => {
                eprintln!("warning: skipping {}: {e:#}", p.display());
                None
            }
        })
        .collect();
    let failed = results.iter().filter(|r| r.is_none()).count();
    (results.into_iter().flatten().collect(), failed)
}

impl Dataset {
    /// Reads every folder in `dirs` (see the module docs for the layouts).
    pub fn load(dirs: &[PathBuf], opts: &DataOptions) -> Result<Self> {
        let mut train_files = Vec::new();
        let mut val_files = Vec::new();
        let mut lines = Vec::new();
        for dir in dirs {
            if !dir.is_dir() {
                bail!(
                    "data folder {} does not exist (the default data/images comes from scripts/setup.sh)",
                    dir.display()
                );
            }
            let (mut tr, va, kind) = if is_tiny_imagenet(dir) {
                let (tr, va) = tiny_imagenet_files(dir)?;
                (tr, va, "Tiny ImageNet layout")
            } else {
                let mut files = list_images(dir)?;
                let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xDA7A_5EED);
                files.shuffle(&mut rng);
                let n = files.len();
                let n_val = if n < 2 { 0 } else { ((n as f64 * opts.val_fraction).round() as usize).clamp(1, n - 1) };
                let tr = files.split_off(n_val);
                (tr, files, "image folder")
            };
            if let Some(max) = opts.max_images {
                tr.truncate(max);
            }
            lines.push(format!("{} ({kind}: {} train, {} val)", dir.display(), tr.len(), va.len()));
            train_files.extend(tr);
            val_files.extend(va);
        }
        let (train, f1) = decode_all(&train_files, opts.max_side);
        let (mut val, f2) = decode_all(&val_files, opts.max_side);
        if train.is_empty() {
            bail!("no training images found in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
        }
        if f1 + f2 > 0 {
            lines.push(format!("{} files could not be decoded", f1 + f2));
        }
        if val.is_empty() {
            eprintln!("warning: no validation images held out; validating on training images");
            lines.push("validation on training images".into());
            val = train.clone();
        }
        Ok(Self { train, val, description: lines.join("; ") })
    }
}

/// How training crops are drawn and altered: the scale they show and the colour changes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augment {
    /// Brightness: each crop scaled by a gain in [1/(1+x), 1+x] (log-uniform), clipping at 255.
    pub exposure: f64,
    /// Colour: each channel scaled by its own gain in [1/(1+x), 1+x] (log-uniform) on top of
    /// the exposure gain, so white balance and saturation vary.
    pub colour: f64,
    /// `Some((lo, hi))`: each crop shows the photo as a video frame whose shorter side is drawn
    /// log-uniformly from [lo, hi] pixels would show it (the photo downscaled to that size, then
    /// cropped), instead of at any scale between the crop and the whole photo.
    pub frame_side: Option<(u32, u32)>,
}

/// A random training crop of `img`, resized to `size`×`size`, flipped horizontally half of the
/// time. The square region's side is log-uniform in [size, shorter side], or, with
/// `frame_side`, the side that makes the crop look like a piece of a frame of that shorter side.
pub fn random_crop(img: &Pyramid, size: u32, frame_side: Option<(u32, u32)>, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = img.image().dimensions();
    let short = w.min(h);
    if short < size {
        // Too small: scale up so the shorter side is `size`, then crop.
        let s = size as f64 / short as f64;
        let up = image::imageops::resize(
            img.image(),
            ((w as f64 * s).ceil() as u32).max(size),
            ((h as f64 * s).ceil() as u32).max(size),
            FilterType::Triangle,
        );
        return random_crop(&Pyramid { levels: vec![up] }, size, frame_side, rng);
    }
    let (lo, hi) = match frame_side {
        // A frame of shorter side F shows a region of side size·short/F of the photo as `size`
        // pixels; frames larger than the photo show it at its own scale.
        Some((f_lo, f_hi)) => {
            let side_of = |f: u32| (size as f64 * short as f64 / f.max(1) as f64).clamp(size as f64, short as f64);
            (side_of(f_hi), side_of(f_lo))
        }
        None => (size as f64, short as f64),
    };
    let side = if hi > lo {
        (rng.random_range(lo.ln()..=hi.ln()).exp().round() as u32).clamp(size, short)
    } else {
        (lo.round() as u32).clamp(size, short)
    };
    let x = rng.random_range(0..=w - side);
    let y = rng.random_range(0..=h - side);
    let mut out = img.region(x, y, side, size);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

/// Images (all the same size) to an `[N, 3, H, W]` f32 tensor in [0, 1].
pub fn to_tensor(images: &[RgbImage], device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = images[0].dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = vec![0f32; images.len() * 3 * w * h];
    for (img, planar) in images.iter().zip(data.chunks_mut(3 * w * h)) {
        let frame = Frame::packed(img.as_raw(), PixelFormat::Rgb, w, h).map_err(candle_core::Error::wrap)?;
        frame_to_planar(&frame, planar).map_err(candle_core::Error::wrap)?;
    }
    Tensor::from_vec(data, (images.len(), 3, h, w), device)
}

/// An `[N, 3, H, W]` tensor in [0, 1] back to 8-bit images (as the runtime rounds:
/// [`stego::frame::quantize`]).
pub fn to_images(t: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    let (_, c, h, w) = t.dims4()?;
    if c != 3 {
        candle_core::bail!("to_images: {c} channels, RGB needs 3");
    }
    let data = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    data.chunks(3 * h * w)
        .map(|planar| {
            let mut img = RgbImage::new(w as u32, h as u32);
            let mut frame = FrameMut::packed(&mut img, PixelFormat::Rgb, w, h).map_err(candle_core::Error::wrap)?;
            planar_to_frame(planar, w, h, &mut frame, None).map_err(candle_core::Error::wrap)?;
            Ok(img)
        })
        .collect()
}

/// A generator for step `step` of a run seeded by `seed`.
pub fn step_rng(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step.wrapping_add(1));
    rng
}

/// Multiplies each channel of `img` by its gain, rounding and clipping to 0..=255: a brighter
/// exposure blows out highlights to 255 (what an overexposed frame holds), a darker one
/// compresses the range.
pub fn apply_gains(img: &mut RgbImage, gains: [f32; 3]) {
    for px in img.pixels_mut() {
        for (v, g) in px.0.iter_mut().zip(gains) {
            *v = (*v as f32 * g).round().min(255.0) as u8;
        }
    }
}

/// A gain drawn log-uniformly from [1/(1+x), 1+x].
fn log_gain(x: f64, rng: &mut impl Rng) -> f32 {
    let a = (1.0 + x).ln();
    rng.random_range(-a..=a).exp() as f32
}

/// An image index other than `i` (of `n`), uniformly, for a pair's secret; `i` itself when
/// there is only one image.
fn other_image(i: usize, n: usize, rng: &mut impl Rng) -> usize {
    if n > 1 { (i + rng.random_range(1..n)) % n } else { i }
}

/// One training batch: covers and secrets drawn independently from `images` (a pair's cover
/// and secret come from different images when there are at least two), cropped and altered as
/// `aug` says. With exposure, the nets also learn covers with clipped highlights, where the
/// container cannot rise above the cover.
pub fn sample_batch(images: &[Pyramid], batch: usize, size: u32, aug: &Augment, rng: &mut impl Rng) -> (Vec<RgbImage>, Vec<RgbImage>) {
    let pick = |i: usize, rng: &mut ChaCha8Rng| {
        let mut crop = random_crop(&images[i], size, aug.frame_side, rng);
        if aug.exposure > 0.0 || aug.colour > 0.0 {
            let e = if aug.exposure > 0.0 { log_gain(aug.exposure, rng) } else { 1.0 };
            let c: [f32; 3] = std::array::from_fn(|_| if aug.colour > 0.0 { log_gain(aug.colour, rng) } else { 1.0 });
            apply_gains(&mut crop, c.map(|g| g * e));
        }
        crop
    };
    let mut local = ChaCha8Rng::from_rng(rng);
    let mut covers = Vec::with_capacity(batch);
    let mut secrets = Vec::with_capacity(batch);
    for _ in 0..batch {
        let ci = local.random_range(0..images.len());
        let si = other_image(ci, images.len(), &mut local);
        covers.push(pick(ci, &mut local));
        secrets.push(pick(si, &mut local));
    }
    (covers, secrets)
}

/// The fixed validation pairs: `n` (cover, secret) crops from the validation images, drawn
/// from `seed` alone, so every validation of a run (and of a resumed run) sees the same ones.
/// Cover and secret come from different images when there are at least two.
pub fn validation_pairs(val: &[Pyramid], n: usize, size: u32, frame_side: Option<(u32, u32)>, seed: u64) -> (Vec<RgbImage>, Vec<RgbImage>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A11_DA7E);
    let mut covers = Vec::with_capacity(n);
    let mut secrets = Vec::with_capacity(n);
    for k in 0..n {
        let ci = k % val.len();
        let si = other_image(ci, val.len(), &mut rng);
        covers.push(random_crop(&val[ci], size, frame_side, &mut rng));
        secrets.push(random_crop(&val[si], size, frame_side, &mut rng));
    }
    (covers, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_have_the_size() {
        let img = RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut rng = step_rng(1, 2);
        for size in [8, 64, 256] {
            let c = random_crop(&Pyramid::new(img.clone()), size, None, &mut rng);
            assert_eq!(c.dimensions(), (size, size));
            let c = random_crop(&Pyramid::new(img.clone()), size, Some((240, 1080)), &mut rng);
            assert_eq!(c.dimensions(), (size, size));
        }
    }

    #[test]
    fn pyramid_regions_match_a_direct_resize() {
        // A smooth photo-like image: a region read from a halved level must look like the
        // same region resized from the full image.
        let img = RgbImage::from_fn(1000, 700, |x, y| {
            let (fx, fy) = (x as f32 / 1000.0, y as f32 / 700.0);
            image::Rgb([
                (255.0 * fx) as u8,
                (127.5 + 127.0 * (fx * 9.0 + fy * 4.0).sin()) as u8,
                (255.0 * fy * fy) as u8,
            ])
        });
        let p = Pyramid::new(img.clone());
        assert_eq!(p.depth(), 5, "1000x700 → 500x350 → 250x175 → 125x87 → 62x43");
        assert_eq!(p.levels[4].dimensions(), (62, 43));
        for (x, y, side) in [(0, 0, 64), (100, 50, 300), (333, 11, 650), (0, 0, 700), (17, 99, 129)] {
            let a = p.region(x, y, side, 64);
            let b = image::imageops::resize(&image::imageops::crop_imm(&img, x, y, side, side).to_image(), 64, 64, FilterType::Triangle);
            assert_eq!(a.dimensions(), (64, 64));
            let mad = a.as_raw().iter().zip(b.as_raw()).map(|(&u, &v)| (u as f64 - v as f64).abs()).sum::<f64>() / a.as_raw().len() as f64;
            assert!(mad < 2.0, "region ({x}, {y}, {side}): mean difference {mad:.2} levels");
        }
    }

    #[test]
    fn exposure_scales_and_clips() {
        let mut img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([x as u8 * 80, 100, 255]));
        apply_gains(&mut img, [1.5; 3]);
        assert_eq!(img.as_raw(), &[0, 150, 255, 120, 150, 255, 240, 150, 255, 255, 150, 255]);
        // In a batch: gains stay inside [1/(1+e), 1+e], some crops are brighter and some darker.
        let flat = Pyramid::new(RgbImage::from_pixel(80, 80, image::Rgb([100, 100, 100])));
        let mut rng = step_rng(5, 1);
        let (c, s) = sample_batch(std::slice::from_ref(&flat), 64, 16, &Augment { exposure: 0.5, ..Default::default() }, &mut rng);
        let means: Vec<f64> = c.iter().chain(&s).map(|i| i.as_raw().iter().map(|&v| v as f64).sum::<f64>() / i.as_raw().len() as f64).collect();
        assert!(means.iter().all(|&m| (100.0 / 1.5 - 0.5..=150.5).contains(&m)), "{means:?}");
        assert!(means.iter().any(|&m| m > 120.0) && means.iter().any(|&m| m < 80.0));
        let (c0, _) = sample_batch(std::slice::from_ref(&flat), 4, 16, &Augment::default(), &mut rng);
        assert!(c0.iter().all(|i| i.as_raw().iter().all(|&v| v == 100)), "no exposure: unchanged");
    }

    #[test]
    fn frame_side_sets_the_scale_of_crops() {
        // Vertical stripes 1 pixel wide: a crop's mean |horizontal step| falls as the region
        // it shrinks grows. A 2000-pixel photo seen as a 2000-pixel frame is shown at its own
        // scale (steps of 255); seen as a 250-pixel frame, 8 pixels are averaged into one.
        let img = RgbImage::from_fn(2000, 2000, |x, _| image::Rgb([if x % 2 == 0 { 0 } else { 255 }; 3]));
        let p = Pyramid::new(img);
        let step = |c: &RgbImage| (1..c.width()).map(|x| (c.get_pixel(x, 3)[0] as f64 - c.get_pixel(x - 1, 3)[0] as f64).abs()).sum::<f64>() / (c.width() - 1) as f64;
        let mut rng = step_rng(3, 4);
        let native = random_crop(&p, 32, Some((2000, 2000)), &mut rng);
        assert_eq!(step(&native), 255.0, "a frame the photo's size shows its pixels");
        let small = random_crop(&p, 32, Some((250, 250)), &mut rng);
        assert!(step(&small) < 40.0, "a 250-pixel frame averages the stripes: {}", step(&small));
    }

    #[test]
    fn colour_gains_differ_per_channel_and_pairs_use_two_images() {
        let grey = Pyramid::new(RgbImage::from_pixel(40, 40, image::Rgb([100, 100, 100])));
        let black = Pyramid::new(RgbImage::from_pixel(40, 40, image::Rgb([0, 0, 0])));
        let mut rng = step_rng(8, 1);
        let aug = Augment { colour: 0.3, ..Default::default() };
        let (c, s) = sample_batch(&[grey, black], 32, 16, &aug, &mut rng);
        for (a, b) in c.iter().zip(&s) {
            assert!((a.get_pixel(0, 0)[0] == 0) != (b.get_pixel(0, 0)[0] == 0), "cover and secret from different images");
        }
        let tinted = c.iter().chain(&s).filter(|i| {
            let p = i.get_pixel(0, 0);
            p[0] != p[1] || p[1] != p[2]
        });
        assert!(tinted.count() > 8, "channel gains differ");
    }

    #[test]
    fn tensor_round_trip() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 70, 200]));
        let t = to_tensor(&[img.clone(), img.clone()], &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 3, 5]);
        assert_eq!(to_images(&t).unwrap()[1], img);
    }

    fn save(path: &Path, seed: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 ^ seed, y as u8, seed])).save_with_format(path, image::ImageFormat::Jpeg).unwrap();
    }

    #[test]
    fn tiny_imagenet_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        save(&root.join("train/n01/images/n01_0.JPEG"), 1);
        save(&root.join("train/n01/images/n01_1.JPEG"), 2);
        save(&root.join("train/n02/images/n02_0.JPEG"), 3);
        save(&root.join("val/images/val_0.JPEG"), 4);
        save(&root.join("val/images/val_1.JPEG"), 5);
        std::fs::write(root.join("val/val_annotations.txt"), "val_0.JPEG\tn01\t0\t0\t10\t10\nval_1.JPEG\tn02\t1\t1\t9\t9\n").unwrap();
        assert!(is_tiny_imagenet(root));
        let d = Dataset::load(&[root.to_path_buf()], &DataOptions::default()).unwrap();
        assert_eq!((d.train.len(), d.val.len()), (3, 2));
        assert!(d.description.contains("Tiny ImageNet"));
    }

    #[test]
    fn folder_split_is_deterministic_and_caps_size() {
        let tmp = tempfile::tempdir().unwrap();
        for k in 0..10u8 {
            let p = tmp.path().join(format!("d{}/img{k}.jpg", k % 3));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            RgbImage::from_fn(100 + k as u32, 40, |x, _| image::Rgb([x as u8, k * 20, 0])).save(&p).unwrap();
        }
        std::fs::write(tmp.path().join("notes.txt"), "not an image").unwrap();
        let opts = DataOptions { max_side: 50, val_fraction: 0.2, seed: 9, max_images: None };
        let a = Dataset::load(&[tmp.path().to_path_buf()], &opts).unwrap();
        let b = Dataset::load(&[tmp.path().to_path_buf()], &opts).unwrap();
        assert_eq!((a.train.len(), a.val.len()), (8, 2));
        assert_eq!(a.val, b.val);
        assert!(a.train.iter().all(|i| i.image().width().max(i.image().height()) <= 50));
    }

    #[test]
    fn step_rng_is_deterministic() {
        let a: u64 = step_rng(3, 10).random();
        let b: u64 = step_rng(3, 10).random();
        let c: u64 = step_rng(3, 11).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
