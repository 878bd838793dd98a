//! What a recording does to a container, with the real encoders (feature `codec`): each image
//! goes through GStreamer as a one-frame stream (`videoconvert` to I420, the encoder, its
//! decoder, back to RGB). `stego eval --codec` reveals from what comes out, and training runs
//! some batches through it.

use crate::error::{Error, Result};
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
    /// `pass=qual` is x264's constant rate factor, and x264enc caps its bit rate (`bitrate`,
    /// 2048 kbit/s by default): a lone intra frame gets a quantizer well above the factor
    /// (about 29 at factor 23 for a 1280×720 video frame).
    X264 { quantizer: Option<u32> },
    /// H.264 in I420 with x264 at a constant quantizer (`pass=quant`), no rate control.
    X264Qp { quantizer: u32 },
    /// JPEG in I420 (4:2:0) at a quality from 1 to 100.
    Jpeg { quality: u32 },
}

const CODECS: &str = "none, x264 (x264enc defaults), x264:Q (quantizer 0-50, pass=qual), x264qp:Q (constant quantizer 0-50, pass=quant) or jpeg:Q (quality 1-100)";

impl FromStr for Codec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let invalid = |expected: String| Error::InvalidValue { what: "codec", value: s.to_string(), expected };
        let number = |lo: u32, hi: u32, what: &str| -> Result<Option<u32>> {
            arg.map(|a| match a.parse::<u32>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(invalid(format!("the {what} must be a whole number from {lo} to {hi}"))),
            })
            .transpose()
        };
        match name.to_ascii_lowercase().as_str() {
            "none" | "lossless" if arg.is_none() => Ok(Codec::None),
            "x264" | "h264" => Ok(Codec::X264 { quantizer: number(0, 50, "x264 quantizer")? }),
            "x264qp" | "h264qp" => match number(0, 50, "x264 quantizer")? {
                Some(quantizer) => Ok(Codec::X264Qp { quantizer }),
                None => Err(invalid("x264qp needs its quantizer: x264qp:Q".into())),
            },
            "jpeg" | "jpg" => Ok(Codec::Jpeg { quality: number(1, 100, "JPEG quality")?.unwrap_or(85) }),
            _ => Err(invalid(format!("give {CODECS}"))),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Codec::None => write!(f, "none (lossless)"),
            Codec::X264 { quantizer: Some(q) } => write!(f, "x264 I420 pass=qual quantizer={q}"),
            Codec::X264 { quantizer: None } => write!(f, "x264 I420 (x264enc defaults)"),
            Codec::X264Qp { quantizer } => write!(f, "x264 I420 pass=quant quantizer={quantizer} (constant)"),
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
            Codec::X264Qp { quantizer } => Some(format!("video/x-raw,format=I420 ! x264enc pass=quant quantizer={quantizer} ! avdec_h264")),
            Codec::Jpeg { quality } => Some(format!("video/x-raw,format=I420 ! jpegenc quality={quality} ! jpegdec")),
        }
    }

    /// Encodes `img` and decodes it again.
    pub fn round_trip(&self, img: &RgbImage) -> Result<RgbImage> {
        let Some(elements) = self.elements() else { return Ok(img.clone()) };
        let (w, h) = img.dimensions();
        let fail = |reason: String| Error::Codec { codec: self.to_string(), width: w, height: h, reason };
        gst::init().map_err(|e| fail(format!("GStreamer cannot start: {e}")))?;
        let desc = format!(
            "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=25/1 ! videoconvert ! {elements} ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false"
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| fail(format!("cannot build the pipeline ({e}): GStreamer's x264enc (plugins-ugly), avdec_h264 (libav) or jpegenc/jpegdec (plugins-good) is missing")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| fail("the description is not a pipeline".into()))?;
        let result = run(&pipeline, img, w, h).map_err(fail);
        let _ = pipeline.set_state(gst::State::Null);
        result
    }
}

fn run(pipeline: &gst::Pipeline, img: &RgbImage, w: u32, h: u32) -> std::result::Result<RgbImage, String> {
    let src = pipeline.by_name("src").ok_or("no appsrc")?;
    let sink = pipeline.by_name("sink").ok_or("no appsink")?;
    pipeline.set_state(gst::State::Playing).map_err(|_| "the pipeline cannot start")?;
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
        return Err(format!("the encoder refused the frame ({pushed:?})"));
    }
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let Some(sample) = sink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]) else {
        let why = pipeline
            .bus()
            .and_then(|bus| bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default())),
                _ => None,
            })
            .unwrap_or_else(|| "the decoder gave no frame".into());
        return Err(why);
    };
    let map = sample
        .buffer()
        .ok_or("a sample without a buffer")?
        .map_readable()
        .map_err(|_| "cannot read the decoded frame")?;
    if map.len() < stride * (h as usize - 1) + row {
        return Err(format!("the decoded frame has {} bytes, a {w}x{h} RGB frame needs {}", map.len(), stride * h as usize));
    }
    let mut out = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&map[y * stride..y * stride + row]);
    }
    RgbImage::from_raw(w, h, out).ok_or_else(|| "the decoded frame has the wrong size".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("none".parse::<Codec>().unwrap(), Codec::None);
        assert_eq!("x264:23".parse::<Codec>().unwrap(), Codec::X264 { quantizer: Some(23) });
        assert_eq!("x264".parse::<Codec>().unwrap(), Codec::X264 { quantizer: None });
        assert_eq!("jpeg:90".parse::<Codec>().unwrap(), Codec::Jpeg { quality: 90 });
        assert_eq!("x264qp:23".parse::<Codec>().unwrap(), Codec::X264Qp { quantizer: 23 });
        assert!("x264qp".parse::<Codec>().unwrap_err().to_string().contains("needs its quantizer"));
        // x264enc's quantizer property stops at 50.
        assert!("x264qp:51".parse::<Codec>().unwrap_err().to_string().contains("0 to 50"));
        assert!("x264:99".parse::<Codec>().unwrap_err().to_string().contains("0 to 50"));
        assert!("webp".parse::<Codec>().unwrap_err().to_string().contains("give none, x264"));
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 256) as u8]))
    }

    #[test]
    fn round_trips_keep_the_size_and_lose_what_the_codec_loses() {
        let img = gradient(66, 50);
        assert_eq!(Codec::None.round_trip(&img).unwrap(), img);
        for codec in [Codec::X264 { quantizer: Some(23) }, Codec::X264Qp { quantizer: 23 }, Codec::Jpeg { quality: 90 }] {
            let out = codec.round_trip(&img).unwrap();
            assert_eq!(out.dimensions(), img.dimensions());
            let mad = out.as_raw().iter().zip(img.as_raw()).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>() / out.as_raw().len() as f64;
            // Close to the input, but not identical: the codec did its work.
            assert!(mad > 0.0 && mad < 20.0, "{codec}: mean |diff| {mad}");
        }
    }
}
