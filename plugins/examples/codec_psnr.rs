// SPDX-License-Identifier: MIT OR Apache-2.0
//
// What a recording codec does to the hidden secret. One hiding pipeline on real footage
// (cover: the first N frames of data/video/bigbuckbunny.mp4; secret: the photos astronaut /
// chelsea / coffee as a slideshow) tees the container into several recordings at once:
// FFV1 in Matroska (lossless) and x264 at several settings. Each recording is then decoded
// and revealed with stegoreveal; the revealed frames are compared with the secret frames
// (PSNR, dB, mean over frames), and the decoded containers with the containers stegohide
// output (what the codec changed).
//
//   cargo run --release -p gst-plugin-stego --example codec_psnr -- [--size 320x180]
//       [--frames 25] [--slide-fps 2] [--out DIR (default out/codec-psnr)] [--variant fast|paper|robust]
//
// Models: the shipped models/ (or STEGO_TEST_MODEL_DIR). Needs gstreamer1.0-libav (FFV1,
// H.264 decoding) and gstreamer1.0-plugins-ugly (x264enc).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::path::PathBuf;

/// (name, encoder chain between the container tee and matroskamux).
/// `videoconvert ! x264enc` alone negotiates Y444 (High 4:4:4 profile: videoconvert picks the
/// format closest to RGB); most players and streaming paths need 4:2:0, hence the I420 caps.
const RECORDINGS: &[(&str, &str)] = &[
    (
        "ffv1",
        "videoconvert ! video/x-raw,format=BGRx ! avenc_ffv1",
    ),
    ("x264 (Y444) default", "videoconvert ! x264enc"),
    (
        "x264 Y444 qp0",
        "videoconvert ! video/x-raw,format=Y444 ! x264enc pass=quant quantizer=0",
    ),
    (
        "x264 I420 default",
        "videoconvert ! video/x-raw,format=I420 ! x264enc",
    ),
    (
        "x264 I420 500k",
        "videoconvert ! video/x-raw,format=I420 ! x264enc bitrate=500",
    ),
    (
        "x264 I420 zerolat",
        "videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast",
    ),
    (
        "x264 I420 q18",
        "videoconvert ! video/x-raw,format=I420 ! x264enc pass=qual quantizer=18",
    ),
    (
        "x264 I420 q23",
        "videoconvert ! video/x-raw,format=I420 ! x264enc pass=qual quantizer=23",
    ),
    (
        "x264 I420 q0",
        "videoconvert ! video/x-raw,format=I420 ! x264enc pass=qual quantizer=0",
    ),
];

fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The example's options (see the file's docs).
#[derive(clap::Parser, Debug)]
#[command(name = "codec_psnr", about = "What recording codecs do to the hidden secret: one hiding pipeline, several recordings, each revealed")]
struct Args {
    /// Frame size, WxH.
    #[arg(long, default_value = "320x180", value_parser = parse_size)]
    size: (usize, usize),
    /// Frames of the clip to hide in.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..))]
    frames: u64,
    /// Secret slides per second.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    slide_fps: u32,
    /// Output folder (slides/ and one .mkv per recording are replaced).
    #[arg(long, default_value = "out/codec-psnr")]
    out: PathBuf,
    /// Model variant: paper, fast or robust.
    #[arg(long, default_value = "fast", value_parser = parse_variant)]
    variant: stego::Variant,
}

fn parse_variant(s: &str) -> Result<stego::Variant, String> {
    stego::Variant::from_name(s).ok_or_else(|| format!("{s:?} is not a variant: use paper, fast or robust"))
}

fn main() {
    let Args { size, frames, slide_fps, out, variant } = clap::Parser::parse();
    let frames = frames as usize;
    let (w, h) = size;
    require_elements(&[
        "avenc_ffv1",
        "x264enc",
        "matroskamux",
        "decodebin",
        "stegohide",
    ]);
    // Only what this example writes is replaced: slides/ and one .mkv per recording.
    let _ = std::fs::remove_dir_all(out.join("slides"));
    for (name, _) in RECORDINGS {
        let _ = std::fs::remove_file(out.join(format!("{}.mkv", file_name(name))));
    }
    std::fs::create_dir_all(&out).unwrap();
    let slides = slides(&out.join("slides"));
    let caps = format!("video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1");
    let q = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=0";
    let hm = model(variant.file_name(stego::contract::Role::Hide));
    let rm = model(variant.file_name(stego::contract::Role::Reveal));

    let mut launch = format!(
        "stegohide name=h model-file=\"{}\" ! tee name=ot ot. ! {q} ! fakesink name=containers sync=false async=false \
         filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale add-borders=false ! {caps} \
           ! identity name=cut ! tee name=ct ct. ! {q} ! h.cover ct. ! {q} ! fakesink name=covers sync=false async=false \
         multifilesrc location=\"{slides}\" index=0 stop-index=2 loop=true caps=image/png,framerate={slide_fps}/1 \
           num-buffers={} ! pngdec ! videoconvert ! videoscale add-borders=false ! {caps} ! tee name=st \
           st. ! {q} ! h.secret st. ! {q} ! fakesink name=secrets sync=false async=false",
        hm.display(),
        clip().display(),
        frames * slide_fps as usize / 25 + 2,
    );
    for (name, enc) in RECORDINGS {
        launch += &format!(
            " ot. ! {q} ! {enc} ! matroskamux ! filesink async=false location=\"{}\"",
            out.join(format!("{}.mkv", file_name(name))).display()
        );
    }
    let t = std::time::Instant::now();
    let g = run_and_grab_cut(
        &launch,
        &["containers", "covers", "secrets"],
        &[("cut", frames)],
        3600,
    )
    .unwrap_or_else(|e| panic!("hiding pipeline: {e}"));
    eprintln!("hiding + recording: {:.1} s", t.elapsed().as_secs_f64());
    let (containers, covers, secrets) = (&g["containers"], &g["covers"], &g["secrets"]);
    assert_eq!(covers.len(), frames);
    assert_eq!(containers.len(), frames);
    let cover_psnr = mean(
        &covers
            .iter()
            .zip(containers)
            .map(|(c, k)| psnr(&k.data, &c.data, w, h))
            .collect::<Vec<_>>(),
    );

    println!(
        "model: {} ({}x{h}, {frames} frames of bigbuckbunny.mp4 as cover, a {slide_fps} fps slideshow of 3 photos as secret)",
        hm.display(),
        w
    );
    println!("container vs cover (before recording): {cover_psnr:.2} dB");
    println!(
        "{:<20} {:>10} {:>22} {:>24}",
        "recording", "size", "container PSNR (dB)", "revealed secret PSNR (dB)"
    );
    for (name, _) in RECORDINGS {
        let file = out.join(format!("{}.mkv", file_name(name)));
        let launch = format!(
            "filesrc location=\"{}\" ! matroskademux ! decodebin ! videoconvert ! video/x-raw,format=RGB ! tee name=dt \
               dt. ! {q} ! fakesink name=decoded sync=false async=false \
               dt. ! {q} ! stegoreveal model-file=\"{}\" ! fakesink name=revealed sync=false async=false",
            file.display(),
            rm.display()
        );
        let g = run_and_grab(&launch, &["decoded", "revealed"], 3600)
            .unwrap_or_else(|e| panic!("revealing {name}: {e}"));
        let (decoded, revealed) = (&g["decoded"], &g["revealed"]);
        assert_eq!(revealed.len(), frames, "{name}: revealed frames");
        let mut kp = vec![];
        let mut sp = vec![];
        for (i, r) in revealed.iter().enumerate() {
            let k = &containers[i];
            assert_eq!(r.pts, k.pts, "{name}: frame {i} time");
            let s = secrets
                .iter()
                .rfind(|s| s.pts <= k.pts)
                .expect("a secret frame");
            kp.push(psnr(&decoded[i].data, &k.data, w, h));
            sp.push(psnr(&r.data, &s.data, w, h));
        }
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let kp = mean(&kp);
        println!(
            "{name:<20} {:>7} kB {:>22} {:>24.2}",
            bytes / 1000,
            if kp >= 100.0 {
                "lossless".to_string()
            } else {
                format!("{kp:.2}")
            },
            mean(&sp)
        );
    }
}
