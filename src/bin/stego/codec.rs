//! `stego eval --codec`: what a recording does to a container, measured with the real
//! encoders. Each container goes through GStreamer as a one-frame stream: the encoder, then
//! its decoder, back to RGB, and the secret is revealed from what comes out.

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use image::RgbImage;
use std::fmt;
use std::str::FromStr;

/// A recording to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Codec {
    /// Lossless: the 8-bit container as a PNG file stores it.
    None,
    /// H.264 in I420 (4:2:0) with x264: `quantizer` with `pass=qual`, or x264enc's defaults.
    X264 { quantizer: Option<u32> },
    /// JPEG in I420 (4:2:0) at a quality from 1 to 100.
    Jpeg { quality: u32 },
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let number = |lo: u32, hi: u32, what: &str| -> Result<Option<u32>, String> {
            arg.map(|a| match a.parse::<u32>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(format!("{s:?}: the {what} must be a whole number from {lo} to {hi}")),
            })
            .transpose()
        };
        match name.to_ascii_lowercase().as_str() {
            "none" | "lossless" if arg.is_none() => Ok(Codec::None),
            "x264" | "h264" => Ok(Codec::X264 { quantizer: number(0, 50, "x264 quantizer")? }),
            "jpeg" | "jpg" => Ok(Codec::Jpeg { quality: number(1, 100, "JPEG quality")?.unwrap_or(85) }),
            _ => Err(format!("{s:?} is not a codec: give none, x264 (x264enc defaults), x264:Q (quantizer 0-50, pass=qual) or jpeg:Q (quality 1-100)")),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Codec::None => write!(f, "none (lossless)"),
            Codec::X264 { quantizer: Some(q) } => write!(f, "x264 I420 pass=qual quantizer={q}"),
            Codec::X264 { quantizer: None } => write!(f, "x264 I420 (x264enc defaults)"),
            Codec::Jpeg { quality } => write!(f, "JPEG I420 quality={quality}"),
        }
    }
}

impl Codec {
    /// The encoder and decoder part of the pipeline.
    fn elements(&self) -> Option<String> {
        match self {
            Codec::None => None,
            Codec::X264 { quantizer: Some(q) } => Some(format!("video/x-raw,format=I420 ! x264enc pass=qual quantizer={q} ! avdec_h264")),
            Codec::X264 { quantizer: None } => Some("video/x-raw,format=I420 ! x264enc ! avdec_h264".into()),
            Codec::Jpeg { quality } => Some(format!("video/x-raw,format=I420 ! jpegenc quality={quality} ! jpegdec")),
        }
    }

    /// Encodes `img` and decodes it again.
    pub fn round_trip(&self, img: &RgbImage) -> Result<RgbImage> {
        let Some(elements) = self.elements() else { return Ok(img.clone()) };
        gst::init().context("cannot initialise GStreamer for --codec")?;
        let (w, h) = img.dimensions();
        let desc = format!(
            "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=25/1 ! videoconvert ! {elements} ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false"
        );
        let pipeline = gst::parse::launch(&desc)
            .with_context(|| format!("cannot build the {self} pipeline (are gstreamer1.0-plugins-ugly and gstreamer1.0-libav installed? scripts/setup.sh installs them)"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the --codec pipeline is not a pipeline"))?;
        let result = run(&pipeline, img, w, h);
        let _ = pipeline.set_state(gst::State::Null);
        result.with_context(|| format!("--codec {self} on a {w}x{h} container"))
    }
}

fn run(pipeline: &gst::Pipeline, img: &RgbImage, w: u32, h: u32) -> Result<RgbImage> {
    let src = pipeline.by_name("src").context("no appsrc")?;
    let sink = pipeline.by_name("sink").context("no appsink")?;
    pipeline.set_state(gst::State::Playing).context("the codec pipeline cannot start")?;
    // appsrc wants rows padded to 4 bytes, as GStreamer lays out RGB.
    let (row, stride) = (3 * w as usize, (3 * w as usize).div_ceil(4) * 4);
    let mut data = vec![0u8; stride * h as usize];
    for (dst, src_row) in data.chunks_exact_mut(stride).zip(img.as_raw().chunks_exact(row)) {
        dst[..row].copy_from_slice(src_row);
    }
    let mut buffer = gst::Buffer::from_mut_slice(data);
    {
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(gst::ClockTime::ZERO);
        b.set_duration(gst::ClockTime::from_mseconds(40));
    }
    let pushed = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buffer]);
    if pushed != gst::FlowReturn::Ok {
        bail!("the encoder refused the frame ({pushed:?})");
    }
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let sample = sink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]);
    let Some(sample) = sample else {
        let bus = pipeline.bus().context("no bus")?;
        let why = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default())),
                _ => None,
            })
            .unwrap_or_else(|| "the decoder gave no frame".into());
        bail!("{why}");
    };
    let map = sample.buffer().context("a sample without a buffer")?.map_readable().context("cannot read the decoded frame")?;
    if map.len() < stride * (h as usize - 1) + row {
        bail!("the decoded frame has {} bytes, a {w}x{h} RGB frame needs {}", map.len(), stride * h as usize);
    }
    let mut out = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&map[y * stride..y * stride + row]);
    }
    RgbImage::from_raw(w, h, out).context("decoded frame size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("none".parse::<Codec>(), Ok(Codec::None));
        assert_eq!("x264:23".parse::<Codec>(), Ok(Codec::X264 { quantizer: Some(23) }));
        assert_eq!("x264".parse::<Codec>(), Ok(Codec::X264 { quantizer: None }));
        assert_eq!("jpeg:90".parse::<Codec>(), Ok(Codec::Jpeg { quality: 90 }));
        assert!("x264:99".parse::<Codec>().unwrap_err().contains("0 to 50"));
        assert!("webp".parse::<Codec>().unwrap_err().contains("not a codec"));
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 256) as u8]))
    }

    #[test]
    fn round_trips_keep_the_size_and_lose_what_the_codec_loses() {
        let img = gradient(66, 50);
        assert_eq!(Codec::None.round_trip(&img).unwrap(), img);
        for codec in [Codec::X264 { quantizer: Some(23) }, Codec::Jpeg { quality: 90 }] {
            let out = codec.round_trip(&img).unwrap();
            assert_eq!(out.dimensions(), img.dimensions());
            let mad = out.as_raw().iter().zip(img.as_raw()).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>() / out.as_raw().len() as f64;
            // Close to the input, but not identical: the codec did its work.
            assert!(mad > 0.0 && mad < 20.0, "{codec}: mean |diff| {mad}");
        }
    }
}
