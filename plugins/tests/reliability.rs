// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The elements driven as careless users would: models that cannot run, pads left unlinked,
// still images, properties changed while running, saturated covers, broken buffers. Every
// pipeline runs with a timeout: a hang fails the test instead of stalling it.

use gst::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;
use common::init;

/// What a pipeline run posted: errors and warnings (text and debug), and whether it ended.
#[derive(Debug, Default)]
struct Run {
    errors: Vec<String>,
    warnings: Vec<String>,
    eos: bool,
}

/// Runs `pipeline` until EOS, an error or `timeout_s`; collects errors and warnings.
fn run(pipeline: &gst::Pipeline, timeout_s: u64) -> Run {
    let bus = pipeline.bus().unwrap();
    let mut r = Run::default();
    let _ = pipeline.set_state(gst::State::Playing);
    let text = |src: Option<&gst::Object>, e: &glib::Error, d: Option<&str>| {
        format!(
            "{}: {} ({})",
            src.map(|s| s.path_string().to_string()).unwrap_or_default(),
            e,
            d.map(|d| d.to_string()).unwrap_or_default()
        )
    };
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(timeout_s)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                r.eos = true;
                break;
            }
            gst::MessageView::Error(e) => {
                r.errors
                    .push(text(e.src(), &e.error(), e.debug().as_deref()));
                break;
            }
            gst::MessageView::Warning(w) => {
                r.warnings
                    .push(text(w.src(), &w.error(), w.debug().as_deref()))
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // Warnings posted just before the end.
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Warning(w) = msg.view() {
            r.warnings
                .push(text(w.src(), &w.error(), w.debug().as_deref()));
        }
    }
    r
}

/// Runs `desc` and returns its one error (a failure if it ended or timed out without one).
fn the_error(desc: &str) -> String {
    let r = run(&launch(desc), 60);
    assert!(
        !r.eos && r.errors.len() == 1,
        "expected one error within 60 s: {r:?}"
    );
    r.errors[0].clone()
}

/// [`the_error`] of `sources` linked to a stegohide `h` (shipped paper model) into a fakesink.
fn hide_error(sources: &str) -> String {
    the_error(&format!(
        "{sources} stegohide name=h threads=1 model-file={} ! fakesink",
        model("hide.onnx")
    ))
}

fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .expect("valid pipeline")
        .downcast::<gst::Pipeline>()
        .unwrap()
}

use gst::glib;

/// The nick of an enum property's value.
fn nick(e: &gst::Element, property: &str) -> String {
    let v = e.property_value(property);
    glib::EnumValue::from_value(&v)
        .map(|(_, ev)| ev.nick().to_string())
        .unwrap_or_default()
}

fn model(name: &str) -> String {
    common::model(name).to_string_lossy().into_owned()
}

/// A copy of the shipped fast `role` model whose metadata claims `size_multiple` 9: the
/// element pads frames to multiples of 9, which the net (multiples of 4) cannot run.
fn model_with_size_multiple_9(role: &str) -> (tempfile::TempDir, String) {
    let mut bytes = std::fs::read(common::model(&format!("{role}-fast.onnx"))).unwrap();
    let key = b"stego.size_multiple\x12\x014";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the fast model has size_multiple 4");
    bytes[at + key.len() - 1] = b'9';
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("{role}-multiple-9.onnx"));
    std::fs::write(&p, bytes).unwrap();
    let s = p.to_string_lossy().into_owned();
    (dir, s)
}

#[test]
fn hide_warm_up_failure_is_an_element_error_and_the_pipeline_stops() {
    let (_d, m) = model_with_size_multiple_9("hide");
    let p = launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! h.cover \
         videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! h.secret \
         stegohide name=h threads=1 model-file={m} ! fakesink"
    ));
    let r = run(&p, 60);
    assert!(!r.eos, "{r:?}");
    assert_eq!(r.errors.len(), 1, "no error within 60 s: {r:?}");
    let e = &r.errors[0];
    assert!(
        e.contains("stegohide: cannot run the model at 32x24") && e.contains("multiple"),
        "{e}"
    );
    assert!(
        !e.contains("not-negotiated") && !e.contains("not negotiated"),
        "{e}"
    );
}

#[test]
fn reveal_warm_up_failure_is_an_element_error_every_time() {
    let (_d, m) = model_with_size_multiple_9("reveal");
    for i in 0..5 {
        let p = launch(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! \
             stegoreveal name=r threads=1 model-file={m} ! fakesink"
        ));
        let r = run(&p, 60);
        assert_eq!(r.errors.len(), 1, "run {i}: no error within 60 s: {r:?}");
        assert!(
            r.errors[0].contains("stegoreveal: cannot run the model at 32x24"),
            "run {i}: {r:?}"
        );
    }
}

#[test]
fn a_secret_without_a_cover_is_an_error_not_a_hang() {
    let e = hide_error(
        "videotestsrc num-buffers=5 ! video/x-raw,format=RGB,width=64,height=48 ! h.secret",
    );
    assert!(e.contains("no cover pad") && e.contains("h.cover"), "{e}");
}

#[test]
fn a_requested_but_unlinked_secret_pad_lets_the_cover_pass_through() {
    let p = launch(&format!(
        "videotestsrc num-buffers=4 pattern=smpte75 ! video/x-raw,format=RGB,width=32,height=24 ! h.cover \
         stegohide name=h threads=1 model-file={} ! fakesink name=sink signal-handoffs=true",
        model("hide.onnx")
    ));
    let h = p.by_name("h").unwrap();
    let _secret = h.request_pad_simple("secret").expect("a secret pad");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    p.by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            None
        });
    let r = run(&p, 60);
    assert!(r.eos && r.errors.is_empty(), "{r:?}");
    assert_eq!(
        count.load(Ordering::SeqCst),
        4,
        "every cover frame passes through"
    );
}

/// Counts GStreamer's CRITICAL log messages while alive.
struct Criticals(Vec<glib::LogHandlerId>, Arc<Mutex<Vec<String>>>);

impl Criticals {
    fn watch() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ids = ["GStreamer", "GStreamer-Base", "GStreamer-Video"]
            .into_iter()
            .map(|domain| {
                let seen = seen.clone();
                glib::log_set_handler(
                    Some(domain),
                    glib::LogLevels::LEVEL_CRITICAL | glib::LogLevels::LEVEL_WARNING,
                    false,
                    false,
                    move |d, _, m| {
                        seen.lock()
                            .unwrap()
                            .push(format!("{}: {m}", d.unwrap_or("")));
                    },
                )
            })
            .collect();
        Criticals(ids, seen)
    }
    fn messages(&self) -> Vec<String> {
        self.1.lock().unwrap().clone()
    }
}

impl Drop for Criticals {
    fn drop(&mut self) {
        for (id, domain) in self
            .0
            .drain(..)
            .zip(["GStreamer", "GStreamer-Base", "GStreamer-Video"])
        {
            glib::log_remove_handler(Some(domain), id);
        }
    }
}

#[test]
fn a_cover_with_framerate_0_prints_no_criticals() {
    init();
    let criticals = Criticals::watch();
    let p = launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=32,height=24,framerate=0/1 ! h.cover \
         videotestsrc num-buffers=3 pattern=ball ! video/x-raw,format=RGB,width=16,height=16,framerate=0/1 ! h.secret \
         stegohide name=h threads=1 model-file={} ! fakesink",
        model("hide.onnx")
    ));
    let r = run(&p, 60);
    assert!(r.errors.is_empty(), "{r:?}");
    let m = criticals.messages();
    assert!(m.is_empty(), "GStreamer criticals: {m:?}");
}

#[test]
fn model_properties_are_refused_while_playing_with_a_warning() {
    let p = launch(&format!(
        "videotestsrc is-live=true num-buffers=40 ! video/x-raw,format=RGB,width=32,height=24,framerate=100/1 ! h.cover \
         stegohide name=h threads=1 model-file={} ! fakesink sync=false",
        model("hide.onnx")
    ));
    let h = p.by_name("h").unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let _ = p.state(gst::ClockTime::from_seconds(30));
    h.set_property("threads", 4u32);
    h.set_property("model-file", "/elsewhere/hide.onnx");
    assert_eq!(h.property::<u32>("threads"), 1, "the running value is kept");
    assert_eq!(h.property::<String>("model-file"), model("hide.onnx"));
    // secret-fit may change while playing.
    h.set_property_from_str("secret-fit", "crop");
    assert_eq!(nick(&h, "secret-fit"), "crop");
    let r = run(&p, 60);
    assert!(r.errors.is_empty(), "{r:?}");
    let refused: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.contains("cannot change while the element is"))
        .collect();
    assert_eq!(refused.len(), 2, "{r:?}");
    assert!(
        refused[0].contains("threads") && refused[1].contains("model-file"),
        "{refused:?}"
    );
    // In READY (or NULL) they change.
    h.set_property("threads", 2u32);
    assert_eq!(h.property::<u32>("threads"), 2);
}

#[test]
fn a_saturated_cover_gets_one_warning() {
    let launch_with = |pattern: &str| {
        launch(&format!(
            "videotestsrc num-buffers=70 {pattern} ! video/x-raw,format=RGB,width=32,height=24 ! h.cover \
             videotestsrc num-buffers=70 pattern=ball ! video/x-raw,format=RGB,width=32,height=24 ! h.secret \
             stegohide name=h threads=1 model-file={} ! fakesink",
            model("hide.onnx")
        ))
    };
    let r = run(&launch_with("pattern=smpte100"), 120);
    assert!(r.eos, "{r:?}");
    let w: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.contains("cannot carry the secret well"))
        .collect();
    assert_eq!(w.len(), 1, "exactly one warning: {r:?}");
    let r = run(
        &launch_with("pattern=solid-color foreground-color=0xff708090"),
        120,
    );
    assert!(r.eos && r.warnings.is_empty(), "{r:?}");
}

/// An appsrc sending one `bytes`-byte buffer with 32x24 RGB caps.
fn short_buffer_source(bytes: usize) -> gst::Element {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", 32)
        .field("height", 24)
        .field("framerate", gst::Fraction::new(25, 1))
        .build();
    let src = gst::ElementFactory::make("appsrc")
        .property("caps", &caps)
        .property_from_str("format", "time")
        .build()
        .unwrap();
    let mut buf = gst::Buffer::with_size(bytes).unwrap();
    buf.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    buf.get_mut()
        .unwrap()
        .set_duration(gst::ClockTime::from_mseconds(40));
    assert_eq!(
        src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buf]),
        gst::FlowReturn::Ok
    );
    assert_eq!(
        src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]),
        gst::FlowReturn::Ok
    );
    src
}

#[test]
fn a_too_small_buffer_is_an_error_that_says_so() {
    for pad in ["secret", "cover"] {
        let other = if pad == "secret" { "cover" } else { "secret" };
        let p = launch(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24,framerate=25/1 ! h.{other} \
             stegohide name=h threads=1 model-file={} ! fakesink",
            model("hide.onnx")
        ));
        let src = short_buffer_source(100);
        p.add(&src).unwrap();
        src.link_pads(Some("src"), &p.by_name("h").unwrap(), Some(pad))
            .unwrap();
        let r = run(&p, 60);
        assert_eq!(r.errors.len(), 1, "{pad}: {r:?}");
        let e = &r.errors[0];
        assert!(
            e.contains(&format!("the {pad} buffer holds 100 bytes"))
                && e.contains("32x24 RGB")
                && e.contains("needs 2304"),
            "{e}"
        );
        assert!(
            e.len() < 600 && !e.contains("BufferRef"),
            "no debug dump: {e}"
        );
    }
}

#[test]
fn a_video_above_the_pixel_limit_is_refused_before_allocating() {
    let e = hide_error(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=10000,height=8000 ! h.cover",
    );
    assert!(
        e.contains("10000x8000") && e.contains("limit of 67108864"),
        "{e}"
    );
}

#[test]
fn secret_fit_letterboxes_crops_or_stretches_a_non_square_secret() {
    // Linear model: container = 0.75 cover + 0.25 secret; a black cover shows the secret.
    let linear = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models/hide.onnx");
    let mut rows = Vec::new();
    for fit in ["stretch", "fit", "crop"] {
        let p = launch(&format!(
            "videotestsrc num-buffers=1 pattern=black ! video/x-raw,format=RGB,width=32,height=32 ! h.cover \
             videotestsrc num-buffers=1 pattern=white ! video/x-raw,format=RGB,width=64,height=16 ! h.secret \
             stegohide name=h threads=1 secret-fit={fit} model-file={} ! appsink name=out sync=false",
            linear.display()
        ));
        let sink = p.by_name("out").unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let sample = sink
            .emit_by_name::<Option<gst::Sample>>("pull-sample", &[])
            .expect("a frame");
        p.set_state(gst::State::Null).unwrap();
        let buf = sample.buffer().unwrap().map_readable().unwrap();
        // Column 16's red value in each row (stride 96).
        rows.push((0..32).map(|y| buf[y * 96 + 16 * 3]).collect::<Vec<u8>>());
    }
    let bright = |v: u8| (60..=68).contains(&v);
    assert!(
        rows[0].iter().all(|&v| bright(v)),
        "stretch fills the frame: {:?}",
        rows[0]
    );
    assert!(
        rows[2].iter().all(|&v| bright(v)),
        "crop fills the frame: {:?}",
        rows[2]
    );
    for (y, &v) in rows[1].iter().enumerate() {
        // 64x16 (4:1) in 32x32: 32x8 in rows 12 to 19, black bars above and below.
        assert_eq!(
            bright(v),
            (12..20).contains(&y),
            "fit: row {y} = {v}: {:?}",
            rows[1]
        );
    }
    let h = gst::ElementFactory::make("stegohide").build().unwrap();
    assert_eq!(
        nick(&h, "secret-fit"),
        "fit",
        "the default keeps the aspect"
    );
}

#[test]
fn a_missing_model_file_message_speaks_of_the_element() {
    let e = the_error(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! h.cover \
         stegohide name=h model-file=/nonexistent/x.onnx ! fakesink",
    );
    assert!(
        e.contains("/nonexistent/x.onnx") && e.contains("model-file"),
        "{e}"
    );
    assert!(
        !e.contains("--model-dir") && !e.contains("hide.onnx and reveal.onnx"),
        "{e}"
    );
}
