// SPDX-License-Identifier: MIT OR Apache-2.0
//
// End to end on real footage, with real pipelines (gst::parse::launch):
//
//   1. cover: the default clip data/video/bigbuckbunny.mp4 (decodebin), scaled to 160x90 RGB,
//      its first 12 frames (cut exactly with a pad probe: see common::cut_after); secret: the
//      PNG photos astronaut / chelsea / coffee (rescaled to one size, 320x180, so that the
//      caps never change) as a 25 fps slideshow (multifilesrc + pngdec),
//      scaled to the cover's size *before* stegohide;
//      → stegohide → FFV1 (BGRx, lossless) in Matroska, to a file.
//      Tees grab the cover and secret frames the element received, the containers it output,
//      and write the cover/secret frames as PNG for the CLI.
//   2. filesrc → matroskademux → avdec_ffv1 → stegoreveal → grab the revealed frames (and the
//      decoded containers, to check that the recording is lossless).
//   3. The same (cover, secret) pairs through the `stego` library (Hider/Revealer, what the CLI
//      runs) and, when the `stego` binary is built (target/<profile>/stego, or STEGO_CLI),
//      through the CLI itself (`stego hide` / `stego reveal` on the PNG stills).
//
// Every sink has async=false: with a tee, a sink blocked in preroll can deadlock the
// serialized queries (allocation) of the other branches.
//
// The checks hold for any model with the stego contract: the recording is bit-exact, and the
// pipeline's containers and revealed secrets are byte for byte the library's and the CLI's on
// the same frames (one conversion, one model, one rounding). The PSNR figures are printed.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const W: usize = 160;
const H: usize = 90;
const FRAMES: usize = 12;

fn quote(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The `stego` CLI binary of this build, if built.
fn cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STEGO_CLI") {
        return Some(PathBuf::from(p));
    }
    // This test runs as target/<profile>/deps/e2e-<hash>; the CLI is target/<profile>/stego.
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("stego");
    p.is_file().then_some(p)
}

/// The secret frame current at `t`.
fn secret_at(secrets: &[RgbFrame], t: gst::ClockTime) -> &RgbFrame {
    secrets
        .iter()
        .rfind(|s| s.pts <= t)
        .filter(|s| s.covers(t))
        .unwrap_or_else(|| panic!("no secret frame current at {t}"))
}

fn run_cli(cli: &Path, args: &[&std::ffi::OsStr]) {
    let out = Command::new(cli)
        .args(args)
        .env("STEGO_HOME", project_root())
        .output()
        .expect("the stego CLI runs");
    assert!(
        out.status.success(),
        "{} {:?} failed: {}",
        cli.display(),
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn real_footage_through_pipelines_matches_the_library_and_cli() {
    require_elements(&[
        "decodebin",
        "multifilesrc",
        "pngdec",
        "pngenc",
        "multifilesink",
        "videoconvert",
        "videoscale",
        "identity",
        "tee",
        "queue",
        "avenc_ffv1",
        "avdec_ffv1",
        "matroskamux",
        "matroskademux",
        "stegohide",
        "stegoreveal",
    ]);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stego-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Private copies: the pipelines, the library and the CLI must run the same model even if
    // models/ is replaced (by a training run's export) while the test runs.
    let hide_model = dir.join("hide.onnx");
    let reveal_model = dir.join("reveal.onnx");
    std::fs::copy(model("hide.onnx"), &hide_model).expect("copy the hide model");
    std::fs::copy(model("reveal.onnx"), &reveal_model).expect("copy the reveal model");
    let slides = slides(&dir.join("slides"));
    let mkv = dir.join("container.mkv");
    let caps = format!("video/x-raw,format=RGB,width={W},height={H},pixel-aspect-ratio=1/1");
    let q = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=0";

    // 1. Hide and record.
    let launch = format!(
        "stegohide name=h model-file={hm} ! tee name=ot \
           ot. ! {q} ! videoconvert ! video/x-raw,format=BGRx ! avenc_ffv1 ! matroskamux ! filesink location={mkv} async=false \
           ot. ! {q} ! fakesink name=containers sync=false async=false \
         filesrc location={clip} ! decodebin ! videoconvert ! videoscale add-borders=false ! {caps} \
           ! identity name=cut ! tee name=ct \
           ct. ! {q} ! h.cover \
           ct. ! {q} ! fakesink name=covers sync=false async=false \
           ct. ! {q} ! pngenc ! multifilesink location={cover_png} async=false \
         multifilesrc location={slides} index=0 stop-index=2 loop=true num-buffers={secret_frames} \
             caps=image/png,framerate=25/1 \
           ! pngdec ! videoconvert ! videoscale add-borders=false ! {caps} ! tee name=st \
           st. ! {q} ! h.secret \
           st. ! {q} ! fakesink name=secrets sync=false async=false \
           st. ! {q} ! pngenc ! multifilesink location={secret_png} async=false",
        hm = quote(&hide_model),
        mkv = quote(&mkv),
        clip = quote(&clip()),
        cover_png = quote(&dir.join("cover_%02d.png")),
        slides = quote(Path::new(&slides)),
        secret_frames = FRAMES + 3,
        secret_png = quote(&dir.join("secret_%02d.png")),
    );
    let t = std::time::Instant::now();
    let g1 = run_and_grab_cut(
        &launch,
        &["containers", "covers", "secrets"],
        &[("cut", FRAMES)],
        600,
    )
    .unwrap_or_else(|e| panic!("the hiding pipeline fails: {e}"));
    eprintln!("hiding pipeline: {:.1} s", t.elapsed().as_secs_f64());
    let (containers, covers, secrets) = (&g1["containers"], &g1["covers"], &g1["secrets"]);
    assert_eq!(covers.len(), FRAMES, "cover frames");
    assert_eq!(containers.len(), FRAMES, "one container per cover frame");
    assert!(secrets.len() >= FRAMES, "secret frames: {}", secrets.len());
    assert!(
        std::fs::metadata(&mkv)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "the recording {} is written",
        mkv.display()
    );

    // 2. Decode the recording and reveal.
    let launch = format!(
        "filesrc location={mkv} ! matroskademux ! avdec_ffv1 ! videoconvert ! video/x-raw,format=RGB ! tee name=dt \
           dt. ! {q} ! fakesink name=decoded sync=false async=false \
           dt. ! {q} ! stegoreveal model-file={rm} ! fakesink name=revealed sync=false async=false",
        mkv = quote(&mkv),
        rm = quote(&reveal_model),
    );
    let t = std::time::Instant::now();
    let g2 = run_and_grab(&launch, &["decoded", "revealed"], 600)
        .unwrap_or_else(|e| panic!("the revealing pipeline fails: {e}"));
    eprintln!("revealing pipeline: {:.1} s", t.elapsed().as_secs_f64());
    let (decoded, revealed) = (&g2["decoded"], &g2["revealed"]);
    assert_eq!(decoded.len(), FRAMES, "frames in the recording");
    assert_eq!(revealed.len(), FRAMES, "revealed frames");

    // 3. The same pairs through the library (and the CLI).
    let opts = stego::RuntimeOptions::default();
    let mut hider = stego::Hider::new(&hide_model, &opts).expect("the hide model loads");
    let mut revealer = stego::Revealer::new(&reveal_model, &opts).expect("the reveal model loads");
    let cli = cli();
    if cli.is_none() {
        eprintln!(
            "note: the stego CLI is not built (cargo build --release): checking against the library only"
        );
    }
    use stego::frame::{Frame, FrameMut, PixelFormat::Rgb};
    let (mut p_secret, mut l_secret, mut c_secret) = (vec![], vec![], vec![]);
    let (mut p_cover, mut l_cover, mut agree) = (vec![], vec![], vec![]);
    eprintln!(
        "frame  pts       secret#  cover PSNR pipe/lib   revealed PSNR pipe/lib/cli   container pipe~lib"
    );
    for (i, cover) in covers.iter().enumerate() {
        assert_eq!((cover.width, cover.height), (W, H));
        let container = &containers[i];
        assert_eq!(
            container.pts, cover.pts,
            "container {i} has its cover's time"
        );
        assert_eq!(
            decoded[i].data, container.data,
            "frame {i} of the FFV1 recording is bit-exact (lossless)"
        );
        let secret = secret_at(secrets, cover.pts);
        let secret_idx = secrets
            .iter()
            .position(|s| std::ptr::eq(s, secret))
            .unwrap();

        let mut lib_container = vec![0u8; W * H * 3];
        hider
            .hide(
                &Frame::packed(&cover.data, Rgb, W, H).unwrap(),
                &Frame::packed(&secret.data, Rgb, W, H).unwrap(),
                &mut FrameMut::packed(&mut lib_container, Rgb, W, H).unwrap(),
            )
            .unwrap();
        let mut lib_revealed = vec![0u8; W * H * 3];
        revealer
            .reveal(
                &Frame::packed(&lib_container, Rgb, W, H).unwrap(),
                &mut FrameMut::packed(&mut lib_revealed, Rgb, W, H).unwrap(),
            )
            .unwrap();

        assert!(
            container.data == lib_container,
            "frame {i}: the pipeline's container differs from the library's ({:.2} dB apart)",
            psnr(&container.data, &lib_container, W, H)
        );
        assert!(
            revealed[i].data == lib_revealed,
            "frame {i}: the pipeline's revealed secret differs from the library's ({:.2} dB apart)",
            psnr(&revealed[i].data, &lib_revealed, W, H)
        );
        p_secret.push(psnr(&revealed[i].data, &secret.data, W, H));
        l_secret.push(psnr(&lib_revealed, &secret.data, W, H));
        p_cover.push(psnr(&container.data, &cover.data, W, H));
        l_cover.push(psnr(&lib_container, &cover.data, W, H));
        agree.push(psnr(&container.data, &lib_container, W, H));

        if let Some(cli) = &cli {
            let c_png = dir.join(format!("cover_{i:02}.png"));
            let s_png = dir.join(format!("secret_{secret_idx:02}.png"));
            let k_png = dir.join(format!("cli_container_{i:02}.png"));
            let r_png = dir.join(format!("cli_revealed_{i:02}.png"));
            // The PNG stills hold exactly the frames the element got.
            let still = stego::image_io::load_rgb(&c_png).expect("cover still");
            assert_eq!(
                still.as_raw(),
                &cover.data,
                "{} is the cover frame",
                c_png.display()
            );
            let still = stego::image_io::load_rgb(&s_png).expect("secret still");
            assert_eq!(
                still.as_raw(),
                &secret.data,
                "{} is the secret frame",
                s_png.display()
            );
            run_cli(
                cli,
                &[
                    "hide".as_ref(),
                    "--cover".as_ref(),
                    c_png.as_os_str(),
                    "--secret".as_ref(),
                    s_png.as_os_str(),
                    "-o".as_ref(),
                    k_png.as_os_str(),
                    "--hide-model".as_ref(),
                    hide_model.as_os_str(),
                ],
            );
            run_cli(
                cli,
                &[
                    "reveal".as_ref(),
                    k_png.as_os_str(),
                    "-o".as_ref(),
                    r_png.as_os_str(),
                    "--reveal-model".as_ref(),
                    reveal_model.as_os_str(),
                ],
            );
            let k = stego::image_io::load_rgb(&k_png).expect("the CLI's container PNG");
            assert!(k.as_raw() == &container.data, "frame {i}: the CLI's container differs from the pipeline's");
            let r = stego::image_io::load_rgb(&r_png).expect("the CLI's revealed PNG");
            assert!(r.as_raw() == &revealed[i].data, "frame {i}: the CLI's revealed secret differs from the pipeline's");
            c_secret.push(psnr(r.as_raw(), &secret.data, W, H));
        }
        eprintln!(
            "{i:>5}  {:>7.3}  {secret_idx:>7}  {:>8.2} / {:<8.2}  {:>7.2} / {:.2} / {}  {:>8.2} dB",
            cover.pts.seconds_f64(),
            p_cover[i],
            l_cover[i],
            p_secret[i],
            l_secret[i],
            c_secret
                .get(i)
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into()),
            agree[i],
        );
    }
    let (pipe, lib) = (mean(&p_secret), mean(&l_secret));
    // Figures only: the frames were checked equal above.
    eprintln!(
        "mean over {FRAMES} frames at {W}x{H}: revealed-secret PSNR pipeline {pipe:.3} dB, library {lib:.3} dB{}; \
         container-vs-cover PSNR pipeline {:.3} dB, library {:.3} dB; pipeline~library containers {:.2} dB",
        if c_secret.is_empty() {
            String::new()
        } else {
            format!(", CLI {:.3} dB", mean(&c_secret))
        },
        mean(&p_cover),
        mean(&l_cover),
        mean(&agree),
    );
}
