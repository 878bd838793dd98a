//! Figures drawn directly with the `image` crate (no font dependency).
//!
//! * [`sample_figure`]: one column per validation pair; rows cover, container, secret,
//!   revealed, |cover − container| × 10, |secret − revealed| × 10.
//! * [`loss_plot`]: loss curves on a log scale. Colours: training loss (β-weighted total)
//!   grey; cover MSE blue; secret MSE red; validation cover / secret MSE as thick dark blue /
//!   dark red lines with square markers. Horizontal grid lines at powers of ten, labelled
//!   with their exponent; the x axis runs from step 0 to the last step (labelled).

use image::{Rgb, RgbImage};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

/// |a − b| × `gain`, per channel, clamped to 255.
pub fn difference(a: &RgbImage, b: &RgbImage, gain: f32) -> RgbImage {
    RgbImage::from_fn(a.width(), a.height(), |x, y| {
        let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
        Rgb(std::array::from_fn(|c| ((p[c] as f32 - q[c] as f32).abs() * gain).round().min(255.0) as u8))
    })
}

/// The sample grid (see the module docs). `scale` enlarges every cell (nearest neighbour).
pub fn sample_figure(
    covers: &[RgbImage],
    containers: &[RgbImage],
    secrets: &[RgbImage],
    revealed: &[RgbImage],
    scale: u32,
) -> RgbImage {
    let n = covers.len();
    let (w, h) = covers[0].dimensions();
    let (cw, ch) = (w * scale, h * scale);
    let gap = 2;
    let rows = 6;
    let mut out = RgbImage::from_pixel(n as u32 * (cw + gap) + gap, rows * (ch + gap) + gap, WHITE);
    for k in 0..n {
        let cells = [
            covers[k].clone(),
            containers[k].clone(),
            secrets[k].clone(),
            revealed[k].clone(),
            difference(&covers[k], &containers[k], 10.0),
            difference(&secrets[k], &revealed[k], 10.0),
        ];
        for (r, cell) in cells.iter().enumerate() {
            let x0 = gap + k as u32 * (cw + gap);
            let y0 = gap + r as u32 * (ch + gap);
            for y in 0..ch {
                for x in 0..cw {
                    out.put_pixel(x0 + x, y0 + y, *cell.get_pixel(x / scale, y / scale));
                }
            }
        }
    }
    out
}

/// A line series for [`loss_plot`].
pub struct Series {
    pub points: Vec<(f64, f64)>,
    pub color: Rgb<u8>,
    /// Line thickness in pixels.
    pub width: u32,
    /// Draw square markers at the points.
    pub markers: bool,
}

/// 3×5 pixel glyphs for the axis labels.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        'k' => [0b100, 0b101, 0b110, 0b101, 0b101],
        _ => return None,
    })
}

/// Draws `text` with its top-left corner at (x, y), glyphs scaled by `s`.
fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, s: i64, color: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    for dy in 0..s {
                        for dx in 0..s {
                            put(img, x + (i as i64 * 4 + col) * s + dx, y + row as i64 * s + dy, color);
                        }
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>, width: u32) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    let r = width as i64 / 2;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let (x, y) = ((x0 + (x1 - x0) * t).round() as i64, (y0 + (y1 - y0) * t).round() as i64);
        for dy in -r..=(width as i64 - 1 - r) {
            for dx in -r..=(width as i64 - 1 - r) {
                put(img, x + dx, y + dy, c);
            }
        }
    }
}

fn step_label(step: f64) -> String {
    let s = step.round() as u64;
    if s >= 10_000 && s.is_multiple_of(1000) { format!("{}k", s / 1000) } else { s.to_string() }
}

/// Log-scale line plot of the series (non-positive values are skipped).
pub fn loss_plot(series: &[Series], width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    let (left, right, top, bottom) = (60.0, 20.0, 20.0, 40.0);
    let pw = width as f64 - left - right;
    let ph = height as f64 - top - bottom;
    let pts = series.iter().flat_map(|s| s.points.iter()).filter(|p| p.1 > 0.0 && p.1.is_finite());
    let (mut xmax, mut ymin, mut ymax) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        xmax = xmax.max(x);
        ymin = ymin.min(y.log10());
        ymax = ymax.max(y.log10());
    }
    if !ymin.is_finite() {
        (ymin, ymax) = (-3.0, 0.0);
    }
    let (ylo, yhi) = (ymin.floor(), ymax.ceil().max(ymin.floor() + 1.0));
    let tx = |x: f64| left + pw * x / xmax;
    let ty = |y: f64| top + ph * (1.0 - (y.log10() - ylo) / (yhi - ylo));
    let grid = Rgb([225, 225, 225]);
    let axis = Rgb([0, 0, 0]);
    // Grid at decades (labelled) and at 2× and 5× (unlabelled, lighter).
    let mut e = ylo as i32;
    while e as f64 <= yhi {
        for (m, c) in [(1.0, grid), (2.0, Rgb([242, 242, 242])), (5.0, Rgb([242, 242, 242]))] {
            let v = m * 10f64.powi(e);
            if v.log10() <= yhi + 1e-9 {
                let y = ty(v);
                line(&mut img, (left, y), (left + pw, y), c, 1);
            }
        }
        draw_text(&mut img, 8, ty(10f64.powi(e)) as i64 - 5, &format!("1e{e}"), 2, axis);
        e += 1;
    }
    for i in 0..=4 {
        let xv = xmax * i as f64 / 4.0;
        let x = tx(xv);
        line(&mut img, (x, top), (x, top + ph), grid, 1);
        let label = step_label(xv);
        draw_text(&mut img, x as i64 - (label.len() as i64 * 4), (top + ph + 10.0) as i64, &label, 2, axis);
    }
    line(&mut img, (left, top), (left, top + ph), axis, 1);
    line(&mut img, (left, top + ph), (left + pw, top + ph), axis, 1);
    for s in series {
        let pts: Vec<(f64, f64)> =
            s.points.iter().filter(|p| p.1 > 0.0 && p.1.is_finite()).map(|&(x, y)| (tx(x), ty(y))).collect();
        for w in pts.windows(2) {
            line(&mut img, w[0], w[1], s.color, s.width);
        }
        if s.markers {
            for &(x, y) in &pts {
                line(&mut img, (x - 2.0, y), (x + 2.0, y), s.color, 5);
            }
        }
    }
    img
}

/// Exponential moving average (for noisy per-step losses), `alpha` ∈ (0, 1].
pub fn smooth(points: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    let mut acc: Option<f64> = None;
    points
        .iter()
        .map(|&(x, y)| {
            let v = match acc {
                None => y,
                Some(a) => a + alpha * (y - a),
            };
            acc = Some(v);
            (x, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_draws_something() {
        let s = Series {
            points: (0..100).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect(),
            color: Rgb([255, 0, 0]),
            width: 2,
            markers: false,
        };
        let img = loss_plot(&[s], 400, 300);
        assert!(img.pixels().any(|p| *p == Rgb([255, 0, 0])));
    }

    #[test]
    fn figure_size() {
        let a = RgbImage::from_pixel(8, 8, Rgb([10, 20, 30]));
        let v = vec![a.clone(), a.clone()];
        let f = sample_figure(&v, &v, &v, &v, 4);
        assert_eq!(f.dimensions(), (2 * (32 + 2) + 2, 6 * (32 + 2) + 2));
    }
}
