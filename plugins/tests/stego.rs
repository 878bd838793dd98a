// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Tests of `stegohide` and `stegoreveal` with gstreamer-check harnesses and small pipelines.
// They use the shipped models in `models/` (hide.onnx, reveal.onnx); set STEGO_TEST_MODEL_DIR
// to test other files. Frames are tiny (32x24 and the like) so the tests stay fast on a CPU.

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use std::path::PathBuf;
use std::time::Duration;
use stego::contract::Role;

const FPS: i32 = 25;
const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);

mod common;
use common::init;

fn model(name: &str) -> String {
    common::model(name).to_string_lossy().into_owned()
}

/// The linear test models in tests/models (written by `cargo run -p training --example
/// linear_models`): container = 0.75 cover + 0.25 secret, revealed = 1 − container. They make
/// exact pixel checks possible.
fn linear_model(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("models")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn hide_element() -> gst::Element {
    hide_element_with(&model("hide.onnx"))
}

fn hide_element_with(model_file: &str) -> gst::Element {
    gst::ElementFactory::make("stegohide")
        .property("model-file", model_file)
        .property("threads", 1u32)
        .build()
        .expect("stegohide exists")
}

fn reveal_element() -> gst::Element {
    reveal_element_with(&model("reveal.onnx"))
}

fn reveal_element_with(model_file: &str) -> gst::Element {
    gst::ElementFactory::make("stegoreveal")
        .property("model-file", model_file)
        .property("threads", 1u32)
        .build()
        .expect("stegoreveal exists")
}

fn info(format: gst_video::VideoFormat, width: u32, height: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(format, width, height)
        .fps(gst::Fraction::new(FPS, 1))
        .build()
        .unwrap()
}

/// A frame whose R, G, B values come from `rgb(x, y)`, alpha (if any) 255, timestamped as frame `n`.
fn frame(
    info: &gst_video::VideoInfo,
    n: u64,
    rgb: impl Fn(usize, usize) -> [u8; 3],
) -> gst::Buffer {
    frame_with_alpha(info, n, rgb, |_, _| 255)
}

fn frame_with_alpha(
    info: &gst_video::VideoInfo,
    n: u64,
    rgb: impl Fn(usize, usize) -> [u8; 3],
    alpha: impl Fn(usize, usize) -> u8,
) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(FRAME * n);
        b.set_duration(FRAME);
        let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info).unwrap();
        let stride = vf.plane_stride()[0] as usize;
        let fmt = vf.format();
        let (w, h) = (vf.width() as usize, vf.height() as usize);
        let bpp = vf.format_info().pixel_stride()[0] as usize;
        let bgr = matches!(
            fmt,
            gst_video::VideoFormat::Bgr
                | gst_video::VideoFormat::Bgra
                | gst_video::VideoFormat::Bgrx
        );
        let data = vf.plane_data_mut(0).unwrap();
        for y in 0..h {
            for x in 0..w {
                let [r, g, bl] = rgb(x, y);
                let px = &mut data[y * stride + x * bpp..y * stride + (x + 1) * bpp];
                if bgr {
                    px[..3].copy_from_slice(&[bl, g, r]);
                } else {
                    px[..3].copy_from_slice(&[r, g, bl]);
                }
                if bpp == 4 {
                    px[3] = alpha(x, y);
                }
            }
        }
    }
    buf
}

/// The RGB values of a frame, row-major, without stride padding.
fn rgb_of(buf: &gst::Buffer, info: &gst_video::VideoInfo) -> Vec<[u8; 3]> {
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), info).unwrap();
    let stride = vf.plane_stride()[0] as usize;
    let bpp = vf.format_info().pixel_stride()[0] as usize;
    let bgr = matches!(
        vf.format(),
        gst_video::VideoFormat::Bgr | gst_video::VideoFormat::Bgra | gst_video::VideoFormat::Bgrx
    );
    let data = vf.plane_data(0).unwrap();
    let mut out = Vec::new();
    for y in 0..vf.height() as usize {
        for x in 0..vf.width() as usize {
            let p = &data[y * stride + x * bpp..];
            out.push(if bgr {
                [p[2], p[1], p[0]]
            } else {
                [p[0], p[1], p[2]]
            });
        }
    }
    out
}

/// Mean absolute difference of two RGB images, in 8-bit levels.
fn mad(a: &[[u8; 3]], b: &[[u8; 3]]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .flat_map(|(p, q)| (0..3).map(move |c| (p[c] as i64 - q[c] as i64).unsigned_abs()))
        .sum();
    sum as f64 / (a.len() * 3) as f64
}

// A smooth cover and two clearly different secrets.
fn cover_rgb(x: usize, y: usize) -> [u8; 3] {
    [(60 + x * 4) as u8, (90 + y * 4) as u8, 140]
}
fn secret_rgb(i: u64) -> impl Fn(usize, usize) -> [u8; 3] {
    move |x, y| {
        if ((x / 4) + (y / 4) + i as usize).is_multiple_of(2) {
            [230, 40, 40]
        } else {
            [20, 20, 200]
        }
    }
}

/// Harnesses on the cover (with the output) and secret pads of one stegohide.
fn hide_harnesses(
    el: &gst::Element,
    cover: &gst_video::VideoInfo,
    secret: &gst_video::VideoInfo,
) -> (Harness, Harness) {
    let mut hc = Harness::with_element(el, Some("cover"), Some("src"));
    let mut hs = Harness::with_element(el, Some("secret"), None);
    hc.set_src_caps(cover.to_caps().unwrap());
    hs.set_src_caps(secret.to_caps().unwrap());
    (hc, hs)
}

/// The caps of the last caps event the harness's sink pad saw.
fn output_info(h: &Harness) -> gst_video::VideoInfo {
    let caps = h.sinkpad().unwrap().current_caps().expect("output caps");
    gst_video::VideoInfo::from_caps(&caps).unwrap()
}

/// Pulls events until EOS (true) or until none are left (false).
fn saw_eos(h: &mut Harness) -> bool {
    while let Some(ev) = h.try_pull_event() {
        if ev.type_() == gst::EventType::Eos {
            return true;
        }
    }
    false
}

/// Waits (up to 20 s) for EOS on the harness's sink pad.
fn wait_eos(h: &mut Harness) -> bool {
    for _ in 0..200 {
        if saw_eos(h) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn assert_close(got: &[[u8; 3]], want: impl Fn(usize) -> [u8; 3], what: &str) {
    for (i, g) in got.iter().enumerate() {
        let w = want(i);
        assert!(
            (0..3).all(|c| (g[c] as i32 - w[c] as i32).abs() <= 1),
            "{what}: pixel {i} is {g:?}, expected {w:?}"
        );
    }
}

#[test]
fn exact_pixels_with_linear_models() {
    init();
    // Cover: RGB with padded rows (30 * 3 = 90 bytes, stride 92), secret: a larger BGRx frame
    // of one colour (stretching keeps it; fit, the default, would add bars: 4:3 in 5:4),
    // output: the cover's format and size.
    let el = hide_element_with(&linear_model("hide.onnx"));
    el.set_property_from_str("secret-fit", "stretch");
    let ci = info(gst_video::VideoFormat::Rgb, 30, 24);
    let si = info(gst_video::VideoFormat::Bgrx, 64, 48);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &si);
    hc.push(frame(&ci, 0, cover_rgb)).unwrap();
    hs.push(frame(&si, 0, |_, _| [200, 100, 40])).unwrap();
    let container = hc.pull().unwrap();
    let oi = output_info(&hc);
    assert_eq!(
        (oi.format(), oi.width(), oi.height()),
        (gst_video::VideoFormat::Rgb, 30, 24)
    );
    let c = rgb_of(&container, &oi);
    let mix = |a: u8, b: u8| (0.75 * a as f64 + 0.25 * b as f64).round() as u8;
    let want = |i: usize| {
        let [r, g, b] = cover_rgb(i % 30, i / 30);
        [mix(r, 200), mix(g, 100), mix(b, 40)]
    };
    assert_close(&c, want, "container");

    let mut hr = Harness::with_element(
        &reveal_element_with(&linear_model("reveal.onnx")),
        Some("sink"),
        Some("src"),
    );
    hr.set_src_caps(oi.to_caps().unwrap());
    let revealed = hr.push_and_pull(container).unwrap();
    let r = rgb_of(&revealed, &output_info(&hr));
    assert_close(&r, |i| want(i).map(|v| 255 - v), "revealed");

    // BGRA cover: B and R in their places, alpha from the cover; RGB secret of another size.
    let el = hide_element_with(&linear_model("hide.onnx"));
    let ci = info(gst_video::VideoFormat::Bgra, 16, 8);
    let si = info(gst_video::VideoFormat::Rgb, 4, 2);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &si);
    hc.push(frame_with_alpha(
        &ci,
        0,
        |_, _| [240, 120, 0],
        |x, y| (x * 16 + y) as u8,
    ))
    .unwrap();
    hs.push(frame(&si, 0, |_, _| [0, 40, 200])).unwrap();
    let container = hc.pull().unwrap();
    let oi = output_info(&hc);
    assert_eq!(oi.format(), gst_video::VideoFormat::Bgra);
    assert_close(
        &rgb_of(&container, &oi),
        |_| [mix(240, 0), mix(120, 40), mix(0, 200)],
        "BGRA container",
    );
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(container.as_ref(), &oi).unwrap();
    let stride = vf.plane_stride()[0] as usize;
    let data = vf.plane_data(0).unwrap();
    for y in 0..8 {
        for x in 0..16 {
            assert_eq!(
                data[y * stride + x * 4 + 3],
                (x * 16 + y) as u8,
                "alpha at {x},{y}"
            );
        }
    }
}

#[test]
fn each_cover_frame_takes_the_secret_frame_current_at_its_time() {
    init();
    // Cover at 25 fps, secret at 12.5 fps: cover frame n carries secret frame n / 2.
    let el = hide_element_with(&linear_model("hide.onnx"));
    let ci = info(gst_video::VideoFormat::Rgb, 16, 12);
    let si = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 16, 12)
        .fps(gst::Fraction::new(25, 2))
        .build()
        .unwrap();
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &si);
    let colours = [[0u8, 0, 0], [200, 200, 200], [100, 0, 252], [40, 80, 120]];
    let secret = |k: usize| {
        let mut b = frame(&si, 0, |_, _| colours[k]);
        let b2 = b.get_mut().unwrap();
        b2.set_pts(FRAME * 2 * k as u64);
        b2.set_duration(FRAME * 2);
        b
    };
    hs.push(secret(0)).unwrap();
    for n in 0..6usize {
        if n % 2 == 0 {
            // The next secret frame, so that the aggregator knows the current one still holds.
            hs.push(secret(n / 2 + 1)).unwrap();
        }
        hc.push(frame(&ci, n as u64, |_, _| [100, 100, 100]))
            .unwrap();
        let out = hc.pull().unwrap();
        assert_eq!(out.pts(), Some(FRAME * n as u64));
        let mix = |c: u8| (75.0 + 0.25 * c as f64).round() as u8;
        let want = colours[n / 2].map(mix);
        assert_close(
            &rgb_of(&out, &output_info(&hc)),
            |_| want,
            &format!("cover frame {n}"),
        );
    }
}

#[test]
fn hides_through_both_pads_and_output_follows_the_cover() {
    init();
    let el = hide_element();
    let ci = info(gst_video::VideoFormat::Rgb, 32, 24);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &ci);
    let cover = frame(&ci, 0, cover_rgb);
    for n in 0..3 {
        hc.push(frame(&ci, n, cover_rgb)).unwrap();
        hs.push(frame(&ci, n, secret_rgb(n))).unwrap();
        let out = hc.pull().expect("a container frame");
        assert_eq!(
            out.pts(),
            Some(FRAME * n),
            "the output keeps the cover's timing"
        );
        assert_eq!(out.duration(), Some(FRAME));
        let oi = output_info(&hc);
        assert_eq!(
            (oi.format(), oi.width(), oi.height(), oi.fps()),
            (ci.format(), 32, 24, gst::Fraction::new(FPS, 1))
        );
        let (c, o) = (rgb_of(&cover, &ci), rgb_of(&out, &oi));
        // How much the container looks like the cover depends on the training; that it
        // differs from the cover shows that something was hidden.
        assert!(
            mad(&o, &c) > 0.0,
            "the container differs from the cover: something was hidden"
        );
    }
}

#[test]
fn reveals_a_container() {
    init();
    let ci = info(gst_video::VideoFormat::Rgb, 32, 24);
    let el = hide_element();
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &ci);
    hc.push(frame(&ci, 0, cover_rgb)).unwrap();
    hs.push(frame(&ci, 0, secret_rgb(0))).unwrap();
    let container = hc.pull().unwrap();

    let mut hr = Harness::with_element(&reveal_element(), Some("sink"), Some("src"));
    hr.set_src_caps(ci.to_caps().unwrap());
    let revealed = hr.push_and_pull(container).expect("a revealed frame");
    let ri = output_info(&hr);
    assert_eq!(
        (ri.format(), ri.width(), ri.height()),
        (ci.format(), 32, 24)
    );
    assert_eq!(revealed.pts(), Some(gst::ClockTime::ZERO));
    assert_eq!(revealed.size(), ci.size());
    let r = rgb_of(&revealed, &ri);
    let (to_secret, to_cover) = (
        mad(&r, &rgb_of(&frame(&ci, 0, secret_rgb(0)), &ci)),
        mad(&r, &rgb_of(&frame(&ci, 0, cover_rgb), &ci)),
    );
    eprintln!("revealed: mean abs diff to the secret {to_secret:.1}, to the cover {to_cover:.1}");
}

#[test]
fn reveal_takes_every_packed_format_and_renegotiates() {
    init();
    let mut hr = Harness::with_element(&reveal_element(), Some("sink"), Some("src"));
    for (n, (fmt, w, h)) in [
        (gst_video::VideoFormat::Rgb, 30, 24),
        (gst_video::VideoFormat::Rgba, 32, 24),
        (gst_video::VideoFormat::Rgbx, 32, 24),
        (gst_video::VideoFormat::Bgr, 18, 10),
        (gst_video::VideoFormat::Bgra, 48, 36),
        (gst_video::VideoFormat::Bgrx, 16, 16),
    ]
    .into_iter()
    .enumerate()
    {
        let i = info(fmt, w, h);
        hr.set_src_caps(i.to_caps().unwrap());
        let out = hr
            .push_and_pull(frame(&i, n as u64, cover_rgb))
            .expect("a revealed frame");
        let oi = output_info(&hr);
        assert_eq!((oi.format(), oi.width(), oi.height()), (fmt, w, h));
        assert_eq!(out.size(), i.size());
    }
}

#[test]
fn secret_of_another_size_and_format_is_scaled_to_the_cover() {
    init();
    let el = hide_element();
    let ci = info(gst_video::VideoFormat::Rgb, 30, 24); // RGB rows padded to 92 bytes
    let si = info(gst_video::VideoFormat::Bgrx, 64, 48);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &si);
    for n in 0..2 {
        hc.push(frame(&ci, n, cover_rgb)).unwrap();
        hs.push(frame(&si, n, secret_rgb(n))).unwrap();
        let out = hc.pull().unwrap();
        let oi = output_info(&hc);
        assert_eq!(
            (oi.format(), oi.width(), oi.height()),
            (gst_video::VideoFormat::Rgb, 30, 24),
            "output at the cover's size and format, not the larger secret's"
        );
        assert_eq!(out.size(), ci.size());
    }
    // A smaller secret is scaled up.
    let el = hide_element();
    let ci = info(gst_video::VideoFormat::Bgra, 32, 24);
    let si = info(gst_video::VideoFormat::Rgb, 8, 6);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &si);
    hc.push(frame(&ci, 0, cover_rgb)).unwrap();
    hs.push(frame(&si, 0, secret_rgb(0))).unwrap();
    let out = hc.pull().unwrap();
    let oi = output_info(&hc);
    assert_eq!(
        (oi.format(), oi.width(), oi.height()),
        (gst_video::VideoFormat::Bgra, 32, 24)
    );
    // BGRA alpha comes from the cover.
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &oi).unwrap();
    assert!(
        vf.plane_data(0)
            .unwrap()
            .chunks_exact(4)
            .take(32)
            .all(|p| p[3] == 255)
    );
}

/// Pushes 5 cover frames and 2 secret frames then the secret's EOS; returns the outputs.
fn secret_ends_first(policy: &str) -> (Vec<gst::Buffer>, bool, gst_video::VideoInfo) {
    init();
    let el = hide_element();
    el.set_property_from_str("secret-eos", policy);
    let ci = info(gst_video::VideoFormat::Rgbx, 32, 24);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &ci);
    let mut outs = Vec::new();
    for n in 0..5u64 {
        if hc.push(frame(&ci, n, cover_rgb)).is_err() {
            break;
        }
        match n {
            0 | 1 => {
                hs.push(frame(&ci, n, secret_rgb(n))).unwrap();
            }
            2 => assert!(hs.push_event(gst::event::Eos::new())),
            _ => {}
        }
        if policy == "eos" && n >= 2 {
            break;
        }
        outs.push(hc.pull().expect("an output frame"));
    }
    let eos = wait_eos_or_not(&mut hc, policy == "eos");
    let oi = output_info(&hc);
    (outs, eos, oi)
}

fn wait_eos_or_not(h: &mut Harness, expect: bool) -> bool {
    if expect { wait_eos(h) } else { saw_eos(h) }
}

#[test]
fn secret_eos_passthrough_outputs_the_cover_unchanged() {
    let (outs, eos, oi) = secret_ends_first("passthrough");
    assert_eq!(outs.len(), 5);
    assert!(!eos, "the output goes on while the cover does");
    let cover = rgb_of(&frame(&oi, 0, cover_rgb), &oi);
    for (n, out) in outs.iter().enumerate() {
        assert_eq!(out.pts(), Some(FRAME * n as u64));
        let d = mad(&rgb_of(out, &oi), &cover);
        if n < 2 {
            assert!(d > 0.0, "frame {n} hides a secret frame");
        } else {
            assert_eq!(d, 0.0, "frame {n} is the cover unchanged");
        }
    }
}

#[test]
fn secret_eos_repeat_keeps_hiding_the_last_secret_frame() {
    let (outs, eos, oi) = secret_ends_first("repeat");
    assert_eq!(outs.len(), 5);
    assert!(!eos);
    let last = rgb_of(&outs[1], &oi);
    let cover = rgb_of(&frame(&oi, 0, cover_rgb), &oi);
    for out in &outs[2..] {
        let o = rgb_of(out, &oi);
        assert!(mad(&o, &cover) > 0.0, "still hiding");
        assert_eq!(
            mad(&o, &last),
            0.0,
            "the same cover with the same (last) secret frame gives the same container"
        );
    }
}

#[test]
fn secret_eos_eos_ends_the_stream() {
    let (outs, eos, _) = secret_ends_first("eos");
    assert_eq!(outs.len(), 2, "only the frames that had a secret");
    assert!(eos, "EOS follows the secret's end");
}

#[test]
fn output_ends_when_the_cover_ends() {
    init();
    let el = hide_element();
    let ci = info(gst_video::VideoFormat::Rgb, 32, 24);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &ci);
    for n in 0..2 {
        hc.push(frame(&ci, n, cover_rgb)).unwrap();
        hs.push(frame(&ci, n, secret_rgb(n))).unwrap();
        hc.pull().unwrap();
    }
    assert!(hc.push_event(gst::event::Eos::new()));
    // The secret goes on: the output must still end.
    let _ = hs.push(frame(&ci, 2, secret_rgb(2)));
    let _ = hs.push(frame(&ci, 3, secret_rgb(3)));
    assert!(wait_eos(&mut hc), "EOS once the cover has ended");
    assert!(hc.try_pull().is_none(), "no frame after the cover's end");
}

// Gaps and missing frames. The cover drives the output: one container per cover frame, with
// the cover frame's timestamp and duration, never a repeated cover frame, and EOS with the
// cover. The frames are solid colours and the linear models make each container's colour
// name the cover and secret frames it came from.

/// What a test pushes into one pad: a frame or an event.
enum In {
    Frame(gst::Buffer),
    Event(gst::Event),
}

/// Cover frame `n`'s colour (n < 15): neighbours differ by 11 levels in the container.
fn cover_colour(n: u64) -> [u8; 3] {
    [(20 + 15 * n) as u8, 100, 200]
}

/// Secret frame `n`'s colour (n < 256): neighbours differ by 10 levels or more in the
/// container.
fn secret_colour(n: u64) -> [u8; 3] {
    [40, (41 * n % 256) as u8, 200]
}

fn solid_at(info: &gst_video::VideoInfo, pts: gst::ClockTime, rgb: [u8; 3]) -> In {
    let mut b = frame(info, 0, |_, _| rgb);
    b.get_mut().unwrap().set_pts(pts);
    In::Frame(b)
}

/// The container colour of a cover and a secret colour with the linear models.
fn mixed(cover: [u8; 3], secret: [u8; 3]) -> [u8; 3] {
    [0, 1, 2].map(|c| (0.75 * cover[c] as f64 + 0.25 * secret[c] as f64).round() as u8)
}

/// Asserts that the colours are the wanted ones, to a level (rounding).
fn assert_colours(got: &[[u8; 3]], want: &[[u8; 3]], what: &str) {
    let close = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (0..3).all(|c| g[c].abs_diff(w[c]) <= 1));
    assert!(close, "{what}:\n got {got:?}\nwant {want:?}");
}

/// What came out of a stegohide run: its buffers, the events its src pad pushed, and
/// whether EOS came.
struct Ran {
    buffers: Vec<gst::Buffer>,
    events: Vec<gst::Event>,
    eos: bool,
    info: gst_video::VideoInfo,
}

impl Ran {
    fn pts(&self) -> Vec<gst::ClockTime> {
        self.buffers.iter().map(|b| b.pts().unwrap()).collect()
    }

    /// The colour of the first pixel of each output buffer.
    fn colours(&self) -> Vec<[u8; 3]> {
        self.buffers
            .iter()
            .map(|b| rgb_of(b, &self.info)[0])
            .collect()
    }

    fn gaps(&self) -> Vec<(gst::ClockTime, Option<gst::ClockTime>)> {
        self.events
            .iter()
            .filter_map(|e| match e.view() {
                gst::EventView::Gap(g) => Some(g.get()),
                _ => None,
            })
            .collect()
    }
}

/// Pushes `cover` and `secret` into a stegohide with the linear models and `secret-eos` =
/// `policy`, each from its own thread as in a pipeline (the aggregator holds one queued
/// buffer per pad and waits for both), then waits for EOS and collects the output.
fn run_hide(policy: &str, cover: Vec<In>, secret: Vec<In>) -> Ran {
    init();
    let el = hide_element_with(&linear_model("hide.onnx"));
    el.set_property_from_str("secret-eos", policy);
    let ci = info(gst_video::VideoFormat::Rgb, 16, 12);
    let (mut hc, mut hs) = hide_harnesses(&el, &ci, &ci);
    fn push(h: &mut Harness, items: Vec<In>) {
        for item in items {
            match item {
                // Once the output has ended the pads refuse data: not an error here.
                In::Frame(b) => {
                    let _ = h.push(b);
                }
                In::Event(e) => {
                    h.push_event(e);
                }
            }
        }
    }
    let mut events = Vec::new();
    let mut eos = false;
    std::thread::scope(|s| {
        s.spawn(|| push(&mut hs, secret));
        push(&mut hc, cover);
        for _ in 0..200 {
            while let Some(ev) = hc.try_pull_event() {
                eos |= ev.type_() == gst::EventType::Eos;
                events.push(ev);
            }
            if eos {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !eos {
            // Unblock the secret's thread.
            let _ = el.set_state(gst::State::Null);
        }
    });
    let mut buffers = Vec::new();
    while let Some(b) = hc.try_pull() {
        buffers.push(b);
    }
    let info = output_info(&hc);
    Ran {
        buffers,
        events,
        eos,
        info,
    }
}

/// `n` secret frames at the cover's rate, then EOS.
fn secret_frames(n: u64) -> Vec<In> {
    let si = info(gst_video::VideoFormat::Rgb, 16, 12);
    (0..n)
        .map(|k| solid_at(&si, FRAME * k, secret_colour(k)))
        .chain([In::Event(gst::event::Eos::new())])
        .collect()
}

fn cover_frame(n: u64) -> In {
    solid_at(
        &info(gst_video::VideoFormat::Rgb, 16, 12),
        FRAME * n,
        cover_colour(n),
    )
}

/// Checks that the output is exactly cover frames `frames` (at `FRAME * n + offset`, lasting
/// one frame), each hiding secret frame n, and that EOS came.
fn assert_one_container_per_cover_frame(ran: &Ran, frames: &[u64], offset: gst::ClockTime) {
    let want_pts: Vec<_> = frames.iter().map(|n| FRAME * *n + offset).collect();
    assert_eq!(
        ran.pts(),
        want_pts,
        "one output per cover frame, at its time"
    );
    let want_colours: Vec<_> = frames
        .iter()
        .map(|n| mixed(cover_colour(*n), secret_colour(*n)))
        .collect();
    assert_colours(
        &ran.colours(),
        &want_colours,
        "each output hides the secret in its own cover frame (no repeated cover frame)",
    );
    for b in &ran.buffers {
        assert_eq!(b.duration(), Some(FRAME), "the cover frame's duration");
        assert!(
            !b.flags().contains(gst::BufferFlags::GAP),
            "no gap frames in the output"
        );
    }
    assert!(ran.eos, "EOS with the cover's");
}

#[test]
fn a_gap_on_the_cover_gives_no_output_frame() {
    init();
    // 12 cover frames, frame 6 replaced by a GAP event (a live source dropping a frame,
    // qtdemux on a cut stream); the secret goes on after the cover has ended.
    let cover = (0..12)
        .map(|n| {
            if n == 6 {
                In::Event(gst::event::Gap::new(FRAME * 6, FRAME))
            } else {
                cover_frame(n)
            }
        })
        .chain([In::Event(gst::event::Eos::new())])
        .collect();
    let ran = run_hide("passthrough", cover, secret_frames(24));
    let frames: Vec<u64> = (0..12).filter(|n| *n != 6).collect();
    assert_one_container_per_cover_frame(&ran, &frames, gst::ClockTime::ZERO);
    assert_eq!(
        ran.gaps(),
        [(FRAME * 6, Some(FRAME))],
        "the cover's gap goes downstream as a GAP event"
    );
}

#[test]
fn a_gap_before_the_covers_eos_does_not_repeat_its_last_frame() {
    init();
    // What a demuxer may send when the stream is cut mid-file: a GAP event without duration,
    // ahead of the last frame, then EOS. The output must end with the 12th frame, not repeat
    // it up to the gap.
    let cover = (0..12)
        .map(cover_frame)
        .chain([
            In::Event(gst::event::Gap::new(FRAME * 20, None)),
            In::Event(gst::event::Eos::new()),
        ])
        .collect();
    let ran = run_hide("repeat", cover, secret_frames(30));
    let frames: Vec<u64> = (0..12).collect();
    assert_one_container_per_cover_frame(&ran, &frames, gst::ClockTime::ZERO);
}

#[test]
fn missing_cover_frames_are_not_filled_in_and_the_output_keeps_the_covers_timestamps() {
    init();
    // A live source that dropped frames 4 and 5 (no GAP event, the timestamps jump), with
    // timestamps 5 ms off the frame grid: the output has the cover's frames and timestamps.
    let offset = gst::ClockTime::from_mseconds(5);
    let ci = info(gst_video::VideoFormat::Rgb, 16, 12);
    let frames = [0u64, 1, 2, 3, 6, 7, 8];
    let cover = frames
        .iter()
        .map(|n| solid_at(&ci, FRAME * *n + offset, cover_colour(*n)))
        .chain([In::Event(gst::event::Eos::new())])
        .collect();
    let ran = run_hide("passthrough", cover, secret_frames(12));
    assert_one_container_per_cover_frame(&ran, &frames, offset);
    assert!(ran.gaps().is_empty(), "no gap was announced upstream");
}

#[test]
fn a_gap_on_the_secret_follows_secret_eos_but_never_ends_the_output() {
    init();
    // Secret frame 2 is a GAP: `repeat` hides the last secret frame (1) in cover frame 2,
    // `passthrough` and `eos` (the secret has not ended) pass cover frame 2 through.
    for policy in ["passthrough", "repeat", "eos"] {
        let si = info(gst_video::VideoFormat::Rgb, 16, 12);
        let cover = (0..6)
            .map(cover_frame)
            .chain([In::Event(gst::event::Eos::new())])
            .collect();
        let secret = (0..6)
            .map(|n| {
                if n == 2 {
                    In::Event(gst::event::Gap::new(FRAME * 2, FRAME))
                } else {
                    solid_at(&si, FRAME * n, secret_colour(n))
                }
            })
            .chain([In::Event(gst::event::Eos::new())])
            .collect();
        let ran = run_hide(policy, cover, secret);
        assert_eq!(
            ran.pts(),
            (0..6).map(|n| FRAME * n).collect::<Vec<_>>(),
            "{policy}: one output per cover frame"
        );
        let want: Vec<_> = (0..6)
            .map(|n| match (n, policy) {
                (2, "repeat") => mixed(cover_colour(2), secret_colour(1)),
                (2, _) => cover_colour(2),
                _ => mixed(cover_colour(n), secret_colour(n)),
            })
            .collect();
        assert_colours(&ran.colours(), &want, policy);
        assert!(ran.eos, "{policy}: EOS with the cover's");
        assert!(
            ran.gaps().is_empty(),
            "{policy}: a secret gap is no output gap"
        );
    }
}

#[test]
fn pipeline_with_a_gap_on_the_cover_outputs_one_container_per_cover_frame() {
    init();
    // videotestsrc's 7th cover frame becomes a GAP event (a pad probe), the secret is longer
    // than the cover: 11 outputs at the cover frames' times, then EOS.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=12 ! video/x-raw,format=RGB,width=16,height=12,framerate=25/1 ! identity name=cut ! h.cover \
         videotestsrc pattern=ball num-buffers=40 ! video/x-raw,format=RGB,width=16,height=12,framerate=25/1 ! h.secret \
         stegohide name=h model-file={} threads=1 ! fakesink name=sink",
        linear_model("hide.onnx")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let cut = pipeline.by_name("cut").unwrap().static_pad("src").unwrap();
    let seen_cover = std::sync::atomic::AtomicUsize::new(0);
    cut.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let n = seen_cover.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match probe.buffer() {
            Some(buf) if n == 6 => {
                pad.push_event(gst::event::Gap::new(buf.pts().unwrap(), buf.duration()));
                gst::PadProbeReturn::Drop
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out2 = out.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(buf) = probe.buffer() {
                out2.lock().unwrap().push(buf.pts().unwrap());
            }
            gst::PadProbeReturn::Ok
        });
    common::run_to_eos(&pipeline, 60).expect("EOS");
    let want: Vec<_> = (0..12u64).filter(|n| *n != 6).map(|n| FRAME * n).collect();
    assert_eq!(*out.lock().unwrap(), want);
}

#[test]
fn cover_size_change_renegotiates() {
    init();
    let el = hide_element();
    let small = info(gst_video::VideoFormat::Rgb, 32, 24);
    let large = info(gst_video::VideoFormat::Bgrx, 48, 36);
    let s1 = info(gst_video::VideoFormat::Rgb, 32, 24);
    let s2 = info(gst_video::VideoFormat::Bgr, 20, 10);
    let (mut hc, mut hs) = hide_harnesses(&el, &small, &s1);
    for n in 0..5u64 {
        // The cover grows at frame 2 (new output caps), the secret shrinks at frame 3 (the
        // output caps stay the cover's).
        let ci = if n < 2 { &small } else { &large };
        let si = if n < 3 { &s1 } else { &s2 };
        if n == 2 {
            hc.set_src_caps(large.to_caps().unwrap());
        }
        if n == 3 {
            hs.set_src_caps(s2.to_caps().unwrap());
        }
        hc.push(frame(ci, n, cover_rgb)).unwrap();
        hs.push(frame(si, n, secret_rgb(n))).unwrap();
        let out = hc.pull().unwrap();
        let oi = output_info(&hc);
        assert_eq!(
            (oi.format(), oi.width(), oi.height()),
            (ci.format(), ci.width(), ci.height()),
            "frame {n}"
        );
        assert_eq!(out.size(), ci.size(), "frame {n}");
        assert_eq!(out.pts(), Some(FRAME * n));
    }
}

/// Runs `launch` until an error or EOS; returns the error text, if any.
fn run_pipeline(launch: &str) -> Result<(), String> {
    init();
    let pipeline = gst::parse::launch(launch)
        .expect("valid pipeline")
        .downcast::<gst::Pipeline>()
        .unwrap();
    common::run_to_eos(&pipeline, 60)
}

#[test]
fn bad_model_file_is_an_error_on_the_bus() {
    let missing = "/nonexistent/stego/hide.onnx";
    let err = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! h.cover stegohide name=h model-file={missing} ! fakesink"
    ))
    .expect_err("a missing model file fails");
    assert!(err.contains(missing), "the error names the file: {err}");

    let garbage =
        std::env::temp_dir().join(format!("stego-not-a-model-{}.onnx", std::process::id()));
    std::fs::write(&garbage, b"this is not an ONNX model").unwrap();
    let err = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! stegoreveal model-file={} ! fakesink",
        garbage.display()
    ))
    .expect_err("a broken model file fails");
    let _ = std::fs::remove_file(&garbage);
    assert!(
        err.contains(&garbage.display().to_string()),
        "the error names the file: {err}"
    );
    assert!(err.contains("training"), "the error says what to do: {err}");

    // A hide model given to stegoreveal breaks the contract.
    let err = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! stegoreveal model-file={} ! fakesink",
        model("hide.onnx")
    ))
    .expect_err("the wrong model fails");
    assert!(err.contains("reveal"), "{err}");
}

fn has_nvidia_gpu() -> bool {
    std::path::Path::new("/dev/nvidia0").exists()
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    let res = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=32,height=24 ! stegoreveal execution-provider=cuda model-file={} ! fakesink",
        model("reveal.onnx")
    ));
    match res {
        Err(err) => {
            assert!(
                err.to_lowercase().contains("cuda"),
                "the error names the provider: {err}"
            );
            assert!(
                err.contains("use execution provider cpu"),
                "the error says what to do: {err}"
            );
        }
        Ok(()) => assert!(has_nvidia_gpu(), "cuda succeeded without a GPU"),
    }
}

#[test]
fn gst_launch_pipeline_with_named_pads_different_rates_and_sizes() {
    init();
    // Cover at 10 fps for 6 frames, secret at 5 fps (longer, larger, another format):
    // 6 outputs at the cover's rate, size and format, then EOS with the cover.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=6 ! video/x-raw,format=RGB,width=32,height=24,framerate=10/1 ! h.cover \
         videotestsrc pattern=ball num-buffers=20 ! video/x-raw,format=BGRx,width=48,height=32,framerate=5/1 ! h.secret \
         stegohide name=h model-file={} threads=1 ! stegoreveal model-file={} threads=1 ! fakesink name=sink",
        model("hide.onnx"),
        model("reveal.onnx")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sinkpad = pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    let seen2 = seen.clone();
    sinkpad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        if let Some(buf) = probe.buffer() {
            let info = gst_video::VideoInfo::from_caps(&pad.current_caps().unwrap()).unwrap();
            seen2.lock().unwrap().push((
                buf.pts().unwrap(),
                info.format(),
                info.width(),
                info.height(),
                info.fps(),
            ));
        }
        gst::PadProbeReturn::Ok
    });
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut result = Err("timeout".to_string());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                result = Ok(());
                break;
            }
            gst::MessageView::Error(e) => {
                result = Err(e.error().to_string());
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    result.unwrap();
    let seen = seen.lock().unwrap();
    let want: Vec<_> = (0..6)
        .map(|n| {
            (
                gst::ClockTime::from_mseconds(100 * n),
                gst_video::VideoFormat::Rgb,
                32,
                24,
                gst::Fraction::new(10, 1),
            )
        })
        .collect();
    assert_eq!(*seen, want);
}

#[test]
fn variant_selects_the_default_model_file_and_model_file_wins() {
    init();
    for (factory, role, fast_file) in [
        ("stegohide", Role::Hide, "hide-fast.onnx"),
        ("stegoreveal", Role::Reveal, "reveal-fast.onnx"),
    ] {
        let e = gst::ElementFactory::make(factory).build().unwrap();
        let model_file = |e: &gst::Element| PathBuf::from(e.property::<String>("model-file"));
        let resolved = |v: stego::Variant| stego::resolve_model(None, v, role).unwrap();

        // The property: a GstStegoVariant with nicks paper, fast and robust, default fast (the library's default),
        // changeable in NULL and READY like model-file.
        let pspec = e.find_property("variant").expect("a variant property");
        assert_eq!(pspec.value_type().name(), "GstStegoVariant");
        assert!(pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY));
        let class = glib::EnumClass::with_type(pspec.value_type()).unwrap();
        let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
        assert_eq!(nicks, ["paper", "fast", "robust"]);
        assert_eq!(
            e.property::<gststego::Variant>("variant"),
            gststego::Variant::Fast
        );
        // Nothing is looked up at class init: the default is unset, resolved when read or started.
        let file_spec = e.find_property("model-file").unwrap();
        assert_eq!(file_spec.default_value().get::<Option<String>>().unwrap(), None);
        assert_eq!(
            model_file(&e),
            resolved(stego::Variant::default()),
            "{factory}: the default model file is the default variant's"
        );
        assert!(
            model_file(&e).ends_with(PathBuf::from("models").join(fast_file)),
            "{factory}: the default variant is fast, found in the checkout's models/"
        );

        // variant=paper: model-file follows (and says so) while it is not set explicitly.
        let notified = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = notified.clone();
        e.connect_notify(Some("model-file"), move |_, _| {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        e.set_property_from_str("variant", "paper");
        assert_eq!(
            e.property::<gststego::Variant>("variant"),
            gststego::Variant::Paper
        );
        assert_eq!(
            model_file(&e),
            resolved(stego::Variant::Paper),
            "{factory}: variant=paper selects the paper model"
        );
        assert!(notified.load(std::sync::atomic::Ordering::SeqCst) >= 1);
        e.set_property_from_str("variant", "robust");
        assert_eq!(
            model_file(&e),
            resolved(stego::Variant::Robust),
            "{factory}: variant=robust selects the robust model"
        );
        e.set_property_from_str("variant", "paper");

        // An explicit model-file wins over the variant, whichever is set first.
        let explicit = "/somewhere/else/my-model.onnx";
        e.set_property("model-file", explicit);
        assert_eq!(model_file(&e), PathBuf::from(explicit));
        e.set_property_from_str("variant", "paper");
        assert_eq!(model_file(&e), PathBuf::from(explicit));
        let e2 = gst::ElementFactory::make(factory)
            .property("model-file", explicit)
            .property_from_str("variant", "fast")
            .build()
            .unwrap();
        assert_eq!(model_file(&e2), PathBuf::from(explicit));

        // Unsetting model-file (NULL or "") goes back to the variant's file.
        e.set_property_from_str("variant", "fast");
        e.set_property("model-file", None::<&str>);
        assert_eq!(
            model_file(&e),
            resolved(stego::Variant::Fast)
        );
        e.set_property("model-file", explicit);
        e.set_property("model-file", "");
        assert_eq!(
            model_file(&e),
            resolved(stego::Variant::Fast)
        );
    }
}

#[test]
fn variant_fast_runs_the_shipped_fast_models() {
    // 30x22 is not a multiple of the fast nets' 4x4 cells: the library pads and crops.
    for r in [Role::Hide, Role::Reveal] {
        let f = stego::resolve_model(None, stego::Variant::Fast, r).expect("the fast models are shipped in models/");
        assert!(f.is_file(), "{} is a file", f.display());
    }
    run_pipeline(
        "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=30,height=22 ! h.cover \
         videotestsrc pattern=ball num-buffers=2 ! video/x-raw,format=RGB,width=30,height=22 ! h.secret \
         stegohide name=h variant=fast threads=1 ! stegoreveal variant=fast threads=1 ! fakesink",
    )
    .expect("the fast models run in both elements");
}

/// What gst-inspect shows: an honest origin, and stegohide's requirement of a lossless
/// recording.
#[test]
fn inspect_shows_origin_and_the_recording_requirement() {
    init();
    let plugin = gst::Registry::get().find_plugin("stego").expect("the stego plugin is registered");
    assert_eq!(plugin.origin().as_str(), "stego (local build)");
    let factory = gst::ElementFactory::find("stegohide").unwrap();
    let description = factory.metadata(gst::ELEMENT_METADATA_DESCRIPTION).unwrap();
    assert!(description.contains("lossless") && description.contains("4:2:0 H.264"), "{description}");
    // One line each, as gst-inspect lists them; the examples are in the element docs.
    for name in ["stegohide", "stegoreveal"] {
        let d = gst::ElementFactory::find(name).unwrap().metadata(gst::ELEMENT_METADATA_DESCRIPTION).unwrap().to_string();
        assert!(d.len() <= 120 && !d.contains("gst-launch"), "{name}: {d}");
    }
    let threads = gst::ElementFactory::make("stegoreveal").build().unwrap().find_property("threads").unwrap();
    let blurb = threads.blurb().unwrap();
    assert!(blurb.starts_with("onnxruntime intra-op threads (0 = onnxruntime's default, one per physical core)"), "{blurb}");
}
