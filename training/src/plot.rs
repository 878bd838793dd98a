//! Figures of a training run.
//!
//! * [`sample_figure`]: drawn with the `image` crate; one column per validation pair; rows
//!   cover, container, secret, revealed, |cover − container| × 10, |secret − revealed| × 10.
//! * [`loss_plot`]: curves on a log scale, drawn with plotters, with a title, axis names and a
//!   legend (text in DejaVu Sans: see [`FONT_PATHS`]).

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
    /// Its name in the legend.
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: Rgb<u8>,
    /// Line thickness in pixels.
    pub width: u32,
    /// Draw square markers at the points.
    pub markers: bool,
}

/// The text of a [`loss_plot`]: title and axis names.
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// Where the DejaVu Sans font of the plot's text is looked for (Debian's `fonts-dejavu-core`,
/// which `scripts/setup.sh` installs, then the paths of other distributions).
pub const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// Errors of [`loss_plot`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlotError {
    #[error(
        "no font for the plot's text: none of {} exists; install DejaVu Sans (Debian: \
         `apt-get install fonts-dejavu-core`, which scripts/setup.sh does) or set STEGO_FONT to a .ttf file",
        FONT_PATHS.join(", ")
    )]
    NoFont,
    #[error("font {path} (STEGO_FONT or DejaVu Sans) is unreadable or not a TrueType font: {reason}")]
    BadFont { path: String, reason: String },
    #[error("drawing the plot: {0}")]
    Draw(String),
}

/// Registers the font once per process (plotters keeps it for the process's lifetime).
fn register_font() -> Result<(), PlotError> {
    static FONT: std::sync::OnceLock<Result<(), PlotError>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let path = match std::env::var_os("STEGO_FONT") {
            Some(p) => std::path::PathBuf::from(p),
            None => FONT_PATHS.iter().map(std::path::PathBuf::from).find(|p| p.is_file()).ok_or(PlotError::NoFont)?,
        };
        let bad = |reason: String| PlotError::BadFont { path: path.display().to_string(), reason };
        let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
            .map_err(|_| bad("not a TrueType/OpenType font".into()))
    })
    .clone()
}

fn step_label(step: f64) -> String {
    let s = step.round() as u64;
    if s >= 10_000 && s.is_multiple_of(1000) { format!("{}k", s / 1000) } else { s.to_string() }
}

/// Log-scale line plot of the series (non-positive values are skipped) with a title, axis
/// names and a legend, drawn with plotters; text in DejaVu Sans (see [`FONT_PATHS`]).
pub fn loss_plot(series: &[Series], labels: &Labels, width: u32, height: u32) -> Result<RgbImage, PlotError> {
    use plotters::prelude::*;
    register_font()?;
    let valid = |p: &&(f64, f64)| p.1 > 0.0 && p.1.is_finite();
    let (mut xmax, mut ymin, mut ymax) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()).filter(valid) {
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if !ymin.is_finite() {
        (ymin, ymax) = (1e-3, 1.0);
    }
    // Whole decades, at least one.
    let ylo = 10f64.powf(ymin.log10().floor());
    let yhi = 10f64.powf(ymax.log10().ceil().max(ymin.log10().floor() + 1.0));
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    let err = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(labels.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xmax, (ylo..yhi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(labels.x)
            .y_desc(labels.y)
            .x_labels(6)
            .x_label_formatter(&|x| step_label(*x))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(242, 242, 242))
            .bold_line_style(RGBColor(220, 220, 220))
            .draw()
            .map_err(|e| err(&e))?;
        for s in series {
            let color = RGBColor(s.color[0], s.color[1], s.color[2]);
            let style = color.stroke_width(s.width);
            let points: Vec<(f64, f64)> = s.points.iter().filter(valid).copied().collect();
            let drawn = chart.draw_series(LineSeries::new(points.iter().copied(), style)).map_err(|e| err(&e))?;
            drawn.label(s.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(s.width.max(2)))
            });
            if s.markers {
                chart
                    .draw_series(points.iter().map(|&p| Rectangle::new([p, p], color.filled().stroke_width(6))))
                    .map_err(|e| err(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    RgbImage::from_raw(width, height, buf).ok_or_else(|| PlotError::Draw("buffer size".into()))
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
            name: "falling".into(),
            points: (0..100).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect(),
            color: Rgb([255, 0, 0]),
            width: 2,
            markers: false,
        };
        let labels = Labels { title: "a title", x: "step", y: "value" };
        let img = loss_plot(&[s], &labels, 400, 300).unwrap();
        assert_eq!(img.dimensions(), (400, 300));
        assert!(img.pixels().any(|p| *p == Rgb([255, 0, 0])), "the line");
        // Text (title, axis names, tick labels, legend) is drawn in black antialiased glyphs.
        let dark = img.pixels().filter(|p| p[0] < 80 && p[1] < 80 && p[2] < 80).count();
        assert!(dark > 500, "{dark} dark pixels: no text?");
    }

    #[test]
    fn figure_size() {
        let a = RgbImage::from_pixel(8, 8, Rgb([10, 20, 30]));
        let v = vec![a.clone(), a.clone()];
        let f = sample_figure(&v, &v, &v, &v, 4);
        assert_eq!(f.dimensions(), (2 * (32 + 2) + 2, 6 * (32 + 2) + 2));
    }
}
