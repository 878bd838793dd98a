// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Helpers shared by the element tests (tests/stego.rs, tests/e2e.rs) and the bench binaries in examples/
// (included there with `#[path]`): run a gst-launch pipeline to EOS and grab the frames that
// reach named sinks, as packed 8-bit RGB.

#![allow(dead_code)]

use gst::prelude::*;
use gst_video::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

/// Initialises GStreamer and registers the stego plugin statically (no GST_PLUGIN_PATH needed).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gststego::plugin_register_static().expect("the stego plugin registers");
    });
}

/// The project root (holds models/, data/).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("plugins/ has a parent")
        .to_path_buf()
}

/// The folder of the models under test: STEGO_TEST_MODEL_DIR, or the shipped models/.
pub fn model_dir() -> PathBuf {
    std::env::var_os("STEGO_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("models"))
}

/// A model file of the models under test, checked to exist.
pub fn model(name: &str) -> PathBuf {
    let p = model_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: export the models with the training crate (or set STEGO_TEST_MODEL_DIR)",
        p.display()
    );
    p
}

/// Panics with a clear message when a GStreamer element the pipelines need is not installed.
pub fn require_elements(names: &[&str]) {
    init();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| gst::ElementFactory::find(n).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "GStreamer elements {missing:?} are not installed: run scripts/setup.sh \
         (gstreamer1.0-plugins-base/good/bad/ugly, gstreamer1.0-libav)"
    );
}

/// One video frame as packed 8-bit RGB (rows without padding).
#[derive(Debug, Clone)]
pub struct RgbFrame {
    pub pts: gst::ClockTime,
    pub duration: Option<gst::ClockTime>,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// Whether this frame is the one current at `t` (`pts <= t < pts + duration`).
    pub fn covers(&self, t: gst::ClockTime) -> bool {
        self.pts <= t && self.duration.is_none_or(|d| t < self.pts + d)
    }
}

/// Frames grabbed per sink name.
pub type Grabbed = BTreeMap<String, Vec<RgbFrame>>;

/// Copies a buffer of RGB caps into a packed frame.
fn rgb_frame(buf: &gst::BufferRef, caps: &gst::CapsRef) -> RgbFrame {
    let info = gst_video::VideoInfo::from_caps(caps).expect("video caps");
    assert_eq!(
        info.format(),
        gst_video::VideoFormat::Rgb,
        "grabbed frames must be RGB: put videoconvert ! video/x-raw,format=RGB before the sink"
    );
    let frame =
        gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info).expect("a mappable frame");
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let plane = frame.plane_data(0).expect("plane 0");
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        data.extend_from_slice(&plane[y * stride..y * stride + w * 3]);
    }
    RgbFrame {
        pts: buf.pts().expect("frames have timestamps"),
        duration: buf.duration(),
        width: w,
        height: h,
        data,
    }
}

/// Runs `launch` to EOS (or fails with the bus error / a timeout) and returns the frames that
/// reached each sink named in `grab` (sinks must receive RGB).
pub fn run_and_grab(launch: &str, grab: &[&str], timeout_s: u64) -> Result<Grabbed, String> {
    run_and_grab_cut(launch, grab, &[], timeout_s)
}

/// Lets the first `frames` buffers through the src pad of the element `name` and drops the
/// later ones (and any GAP event after them); the stream still ends with upstream's EOS, which
/// for a decoded file comes fast (decoding is cheap next to the networks).
///
/// `identity eos-after=N` is not exact behind a decoder: it passes N−1 buffers, returns EOS
/// for the Nth, lets frames already in flight through after it, and the demuxer then sends a
/// GAP event downstream before its EOS (an aggregator repeats the last frame through a gap).
/// Ending the stream early from a probe is no better: upstream then fails pushing its sticky
/// events into the ended pad (a flow error in qtdemux).
pub fn cut_after(pipeline: &gst::Pipeline, name: &str, frames: usize) -> Result<(), String> {
    let el = pipeline
        .by_name(name)
        .ok_or_else(|| format!("no element named {name} in the pipeline"))?;
    let pad = el.static_pad("src").expect("a src pad");
    let seen = std::sync::atomic::AtomicUsize::new(0);
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            use std::sync::atomic::Ordering::SeqCst;
            match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => {
                    if seen.fetch_add(1, SeqCst) < frames {
                        gst::PadProbeReturn::Ok
                    } else {
                        gst::PadProbeReturn::Drop
                    }
                }
                Some(gst::PadProbeData::Event(e))
                    if e.type_() == gst::EventType::Gap && seen.load(SeqCst) >= frames =>
                {
                    gst::PadProbeReturn::Drop
                }
                _ => gst::PadProbeReturn::Ok,
            }
        },
    );
    Ok(())
}

/// [`run_and_grab`], cutting the streams at the named elements after so many frames
/// (see [`cut_after`]).
pub fn run_and_grab_cut(
    launch: &str,
    grab: &[&str],
    cuts: &[(&str, usize)],
    timeout_s: u64,
) -> Result<Grabbed, String> {
    init();
    let pipeline = gst::parse::launch(launch)
        .map_err(|e| format!("cannot build the pipeline: {e}\n{launch}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    for (name, frames) in cuts {
        cut_after(&pipeline, name, *frames)?;
    }
    let store: Arc<Mutex<Grabbed>> = Arc::default();
    for name in grab {
        let sink = pipeline
            .by_name(name)
            .ok_or_else(|| format!("no element named {name} in the pipeline"))?;
        let pad = sink.static_pad("sink").expect("a sink pad");
        let store = store.clone();
        let key = name.to_string();
        store.lock().unwrap().insert(key.clone(), Vec::new());
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
            if let Some(buf) = probe.buffer() {
                let caps = pad.current_caps().expect("caps before buffers");
                let f = rgb_frame(buf, &caps);
                store.lock().unwrap().get_mut(&key).unwrap().push(f);
            }
            gst::PadProbeReturn::Ok
        });
    }
    run_to_eos(&pipeline, timeout_s)?;
    let grabbed = std::mem::take(&mut *store.lock().unwrap());
    Ok(grabbed)
}

/// Plays `pipeline` until EOS (`Ok`), an error on the bus (its source, message and debug
/// text) or `timeout_s` seconds, then stops it.
pub fn run_to_eos(pipeline: &gst::Pipeline, timeout_s: u64) -> Result<(), String> {
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    // A failed start still leaves the element's error on the bus: report that, not only
    // the state change.
    let started = pipeline.set_state(gst::State::Playing);
    let (mut result, wait) = match started {
        Ok(_) => (Err(format!("no EOS within {timeout_s} s")), timeout_s),
        Err(e) => (Err(format!("cannot start the pipeline: {e}")), 1),
    };
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(wait)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                result = Ok(());
                break;
            }
            gst::MessageView::Error(e) => {
                result = Err(format!(
                    "{}: {} ({})",
                    e.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ));
                break;
            }
            _ => {}
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .map_err(|e| format!("cannot stop the pipeline: {e}"))?;
    result
}

/// A frame size `WxH` (both ≥ 1), for the examples' and benches' `--size` options.
#[allow(dead_code)]
pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
    s.split_once('x')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0)
        .ok_or_else(|| format!("{s:?} is not a size: use WxH"))
}

/// PSNR (dB, peak 255) between two packed RGB images of `w x h`: the library's metric.
pub fn psnr(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    stego::metrics::Metrics::rgb8(a, b, w, h).psnr
}

/// Mean of finite values (infinite PSNRs of identical frames are capped at 100 dB).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().map(|x| x.min(100.0)).sum::<f64>() / v.len().max(1) as f64
}

/// Copies the three default PNG photos to `dir/0.png`, `1.png`, `2.png` for multifilesrc;
/// returns the multifilesrc location pattern.
pub fn slides(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).expect("slides folder");
    for (i, name) in [
        "skimage_astronaut.png",
        "skimage_chelsea.png",
        "skimage_coffee.png",
    ]
    .iter()
    .enumerate()
    {
        let src = project_root().join("data").join("images").join(name);
        assert!(
            src.is_file(),
            "{} is missing: run scripts/setup.sh (it fetches the default data)",
            src.display()
        );
        // All slides at one size: pngdec's caps then never change, so no allocation query
        // travels the secret branch's tee after stegohide has gone EOS (a serialized query
        // into a queue whose downstream has ended can block the source for good).
        let img = image::open(&src).expect("decode a slide").into_rgb8();
        let img = image::imageops::resize(&img, 320, 180, image::imageops::FilterType::Triangle);
        img.save(dir.join(format!("{i}.png")))
            .expect("write a slide");
    }
    dir.join("%d.png").to_string_lossy().into_owned()
}

/// The default clip, checked to exist.
pub fn clip() -> PathBuf {
    let p = project_root()
        .join("data")
        .join("video")
        .join("bigbuckbunny.mp4");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh (it fetches the default data)",
        p.display()
    );
    p
}
