//! How much of a hidden change survives a recording, by the change's structure: the channel
//! that the `robust` nets must code the secret into.
//!
//! Each cover (scaled to 640×480) gets a random change at a given strength (RMS in 8-bit
//! levels; 5.7 is a container 33 dB from the cover), of one structure: every subpixel apart
//! ("colour"), or the three colours of a pixel alike ("grey"), constant over 1×1 to 16×16
//! cells. Both the container and the cover go through the real encoder; what survived is the
//! difference of the two recordings. Printed per codec and structure: the gain of the surviving
//! change on the one put in (1: all of it) and its SNR in dB. It also prints what the
//! RGB → I420 → RGB conversion alone does to flat greys.
//!
//! ```sh
//! cargo run --release --example recording_channel -- data/frames/bbb_001.png data/images/mate_Aqua.jpg
//! cargo run --release --example recording_channel -- --rms 4 --codecs x264:23,jpeg:90 IMAGES…
//! ```

use anyhow::{Context, Result, bail};
use image::RgbImage;
use image::imageops::{FilterType, resize};
use stego::codec::Codec;

const W: u32 = 640;
const H: u32 = 480;

/// xorshift64* normal deviates (Box–Muller): a fixed, dependency-free random change.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// A change of `rms` levels, constant over `cell`×`cell` pixels, the same for the three
/// colours when `grey`; subpixel order as in an `RgbImage`.
fn change(noise: &mut Noise, cell: u32, grey: bool, rms: f64) -> Vec<f64> {
    let (cw, ch) = (W.div_ceil(cell) as usize, H.div_ceil(cell) as usize);
    let cells: Vec<[f64; 3]> = (0..cw * ch)
        .map(|_| {
            let g = noise.normal();
            if grey { [g; 3] } else { [noise.normal(), noise.normal(), noise.normal()] }
        })
        .collect();
    let mut v = Vec::with_capacity((3 * W * H) as usize);
    for y in 0..H {
        for x in 0..W {
            v.extend_from_slice(&cells[(y / cell) as usize * cw + (x / cell) as usize]);
        }
    }
    let scale = rms / (v.iter().map(|a| a * a).sum::<f64>() / v.len() as f64).sqrt();
    v.iter().map(|a| a * scale).collect()
}

/// (gain, SNR dB) of what `codec` leaves of `put` (the rounded change) between the two recordings.
fn survives(codec: &Codec, cover: &RgbImage, put: &[f64]) -> Result<(f64, f64)> {
    let container = RgbImage::from_raw(W, H, cover.as_raw().iter().zip(put).map(|(&c, &d)| (c as f64 + d).round().clamp(0.0, 255.0) as u8).collect()).context("frame size")?;
    let put: Vec<f64> = container.as_raw().iter().zip(cover.as_raw()).map(|(&a, &b)| a as f64 - b as f64).collect();
    let (a, b) = (codec.round_trip(&container)?, codec.round_trip(cover)?);
    let got: Vec<f64> = a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| x as f64 - y as f64).collect();
    let pp: f64 = put.iter().map(|p| p * p).sum();
    let gain = put.iter().zip(&got).map(|(p, g)| p * g).sum::<f64>() / pp;
    let err: f64 = put.iter().zip(&got).map(|(p, g)| (g - p) * (g - p)).sum();
    Ok((gain, 10.0 * (pp / err).log10()))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut rms, mut codecs, mut covers) = (5.7, "x264qp:0,x264:23,jpeg:90".to_string(), Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rms" => rms = args.next().context("--rms needs a value")?.parse().context("--rms: a number of levels, e.g. 5.7")?,
            "--codecs" => codecs = args.next().context("--codecs needs a list, e.g. x264:23,jpeg:90")?,
            _ => covers.push(a),
        }
    }
    if covers.is_empty() {
        bail!("give cover images (PNG/JPEG), e.g. data/frames/bbb_001.png data/images/mate_Aqua.jpg");
    }
    let covers: Vec<RgbImage> = covers
        .iter()
        .map(|p| Ok(resize(&image::open(p).with_context(|| format!("reading {p}"))?.to_rgb8(), W, H, FilterType::Triangle)))
        .collect::<Result<_>>()?;
    let codecs: Vec<Codec> = codecs.split(',').map(|c| c.parse().map_err(anyhow::Error::from)).collect::<Result<_>>()?;
    println!("RGB -> I420 -> RGB (videoconvert) of flat greys:");
    for v in [16u8, 64, 128, 200, 255] {
        let back = Codec::X264Qp { quantizer: 0 }.round_trip(&RgbImage::from_pixel(64, 64, image::Rgb([v; 3])))?;
        println!("  {v:3} -> {}", back.get_pixel(32, 32)[0]);
    }
    println!("\nchange of {rms} levels RMS, {} covers at {W}x{H}: gain / SNR dB of what survives", covers.len());
    println!("| codec | change | 1×1 | 2×2 | 4×4 | 8×8 | 16×16 |\n|---|---|---|---|---|---|---|");
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for codec in &codecs {
        for grey in [false, true] {
            let mut row = format!("| {codec} | {} |", if grey { "grey" } else { "colour" });
            for cell in [1, 2, 4, 8, 16] {
                let (mut g, mut s) = (0.0, 0.0);
                for cover in &covers {
                    let (a, b) = survives(codec, cover, &change(&mut noise, cell, grey, rms))?;
                    (g, s) = (g + a, s + b);
                }
                let n = covers.len() as f64;
                row += &format!(" {:.2} / {:.1} |", g / n, s / n);
            }
            println!("{row}");
        }
    }
    Ok(())
}
