//! The CLI as careless users drive it: odd output paths, interrupted writes, huge and odd
//! images, absurd options, low memory.

mod common;
use common::*;
use image::RgbImage;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small cover and secret (fast to hide) in a fresh folder.
fn small_inputs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cover = dir.path().join("cover.png");
    let secret = dir.path().join("secret.png");
    RgbImage::from_fn(32, 24, |x, y| image::Rgb([(x * 7) as u8 + 40, (y * 9) as u8 + 30, 120])).save(&cover).unwrap();
    RgbImage::from_fn(48, 16, |x, y| image::Rgb([200, (x * 5) as u8, (y * 11) as u8])).save(&secret).unwrap();
    (dir, cover, secret)
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") && image::load_from_memory(bytes).is_ok_and(|i| (i.width(), i.height()) == (32, 24))
}

fn hide_to(cover: &Path, secret: &Path, out: &str) -> std::process::Output {
    stego(&["hide", "--cover", s(cover), "--secret", s(secret), "-o", out], &[])
}

#[test]
fn output_through_a_symlink_writes_the_target() {
    let (dir, cover, secret) = small_inputs();
    let target = dir.path().join("t.png");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link.png");
    std::os::unix::fs::symlink("t.png", &link).unwrap();
    let o = hide_to(&cover, &secret, s(&link));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert!(is_png(&std::fs::read(&target).unwrap()), "the target was not written");
    assert_absent(&dir.path().join("none.png"));
}

#[test]
fn output_to_a_fifo_is_streamed() {
    let (dir, cover, secret) = small_inputs();
    let fifo = dir.path().join("pipe.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = hide_to(&cover, &secret, s(&fifo));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_png(&reader.join().unwrap()), "the reader got no PNG");
    assert!(!std::fs::metadata(&fifo).unwrap().is_file(), "the FIFO was replaced by a file");
}

#[test]
fn output_to_a_device_node_and_stdout_is_streamed() {
    let (dir, cover, secret) = small_inputs();
    // A device node of our own when we may make one (root), else /dev/null itself.
    let own = dir.path().join("null");
    let dev = if Command::new("mknod").arg(&own).args(["c", "1", "3"]).status().is_ok_and(|s| s.success()) { own } else { "/dev/null".into() };
    let o = hide_to(&cover, &secret, s(&dev));
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::metadata(&dev).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()), "{} is no longer a device", dev.display());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2 + (dev.starts_with(dir.path()) as usize), "no temporary file");
    // `-` is standard output.
    let o = hide_to(&cover, &secret, "-");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_png(&o.stdout), "stdout holds no PNG");
}

#[test]
fn interrupt_during_a_write_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // Noise encodes slowly: the write takes long enough to be interrupted.
    let (w, h) = (3000u32, 2000u32);
    let noise = stego::frame::bench_support::pseudo_random_bytes((w * h * 3) as usize, 5);
    let cover = dir.path().join("cover.png");
    RgbImage::from_raw(w, h, noise).unwrap().save(&cover).unwrap();
    let out = dir.path().join("out.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stego"))
        .args(["hide", "--cover", s(&cover), "--secret", s(&cover), "-o", s(&out)])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tmp = dir.path().join(format!(".out.png.{}.tmp", child.id()));
    let t = Instant::now();
    while !tmp.exists() {
        assert!(t.elapsed() < Duration::from_secs(300), "the temporary file never appeared");
        if child.try_wait().unwrap().is_some() {
            panic!("stego finished before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "stego was not interrupted");
    assert!(!tmp.exists(), "{} was left behind", tmp.display());
    assert!(!out.exists());
}

#[test]
fn low_memory_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let cover = dir.path().join("big.png");
    RgbImage::from_pixel(8000, 8000, image::Rgb([90, 140, 60])).save(&cover).unwrap();
    let secret = dir.path().join("small.png");
    RgbImage::from_pixel(64, 48, image::Rgb([200, 20, 20])).save(&secret).unwrap();
    let out = dir.path().join("out.png");
    let cmd = format!(
        "ulimit -v 3000000; exec '{}' hide --cover '{}' --secret '{}' -o '{}' --threads 1",
        env!("CARGO_BIN_EXE_stego"),
        s(&cover),
        s(&secret),
        s(&out)
    );
    let o = Command::new("sh").args(["-c", &cmd]).current_dir(root()).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "expected an error exit, got {:?} (signal {:?}): {err}", o.status.code(), std::os::unix::process::ExitStatusExt::signal(&o.status));
    assert!(!err.contains("memory allocation of"), "{err}");
    assert!(err.contains("stego: error:") && (err.contains("cannot allocate") || err.contains("alloc")), "{err}");
    assert_absent(&out);
}

/// The smallest PNG header that declares `w x h` (8-bit RGB): enough for the size check.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    for chunk in [ihdr, b"IDAT".to_vec(), b"IEND".to_vec()] {
        v.extend((chunk.len() as u32 - 4).to_be_bytes());
        v.extend(&chunk);
        v.extend(crc32(&chunk).to_be_bytes());
    }
    v
}

#[test]
fn misleading_messages_are_gone() {
    let (dir, cover, secret) = small_inputs();
    let out = dir.path().join("out.png");
    // A huge image names its size and the limit.
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, png_header(20000, 20000)).unwrap();
    let o = hide_to(&huge, &secret, s(&out));
    assert_fails_with(&o, &["huge.png", "20000x20000", "400000000 pixels", "limit of 67108864"]);
    // A BMP says so.
    let bmp = dir.path().join("photo.bmp");
    let mut b = b"BM".to_vec();
    b.extend([0u8; 60]);
    std::fs::write(&bmp, b).unwrap();
    let o = hide_to(&bmp, &secret, s(&out));
    assert_fails_with(&o, &["photo.bmp", "is a BMP image", "convert it to PNG"]);
    // -o a folder: one message, before any model runs (a missing model would fail later).
    let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(dir.path()), "--hide-model", "/nonexistent.onnx"], &[]);
    assert_fails_with(&o, &["-o", "is a folder"]);
    assert_eq!(stderr(&o).matches("os error").count(), 0, "{}", stderr(&o));
    // eval --figure in a missing folder names --figure.
    let o = stego(&["eval", s(dir.path()), "--figure", s(&dir.path().join("nodir/f.png"))], &[]);
    assert_fails_with(&o, &["--figure", "nodir", "does not exist"]);
    assert!(!stderr(&o).contains("-o path"), "{}", stderr(&o));
    // A model path that is a folder, a FIFO or a device.
    let fifo = dir.path().join("model.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (m, kind) in [(dir.path(), "is a folder"), (fifo.as_path(), "is a FIFO"), (Path::new("/dev/zero"), "is a device")] {
        let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&out), "--hide-model", s(m)], &[]);
        assert_fails_with(&o, &[kind, "not a model file"]);
        assert!(!stderr(&o).contains("does not exist"), "{}", stderr(&o));
    }
    assert_absent(&out);
}

#[test]
fn absurd_thread_counts_are_refused() {
    let (dir, cover, secret) = small_inputs();
    let out = dir.path().join("out.png");
    for t in ["100000", "0"] {
        let t0 = Instant::now();
        let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&out), "--threads", t], &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(t) && stderr(&o).contains("from 1 to 256"), "{}", stderr(&o));
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    assert_absent(&out);
}

#[test]
fn secret_fit_modes_on_a_non_square_secret() {
    // A 64x16 secret, red on the left half and blue on the right, on a 32x32 cover.
    let dir = tempfile::tempdir().unwrap();
    let cover = dir.path().join("cover.png");
    RgbImage::from_fn(32, 32, |x, y| image::Rgb([60 + (x * 3) as u8, 80 + (y * 2) as u8, 100])).save(&cover).unwrap();
    let secret = dir.path().join("secret.png");
    RgbImage::from_fn(64, 16, |x, _| if x < 32 { image::Rgb([230, 20, 20]) } else { image::Rgb([20, 20, 230]) }).save(&secret).unwrap();
    let mut revealed = Vec::new();
    for fit in ["stretch", "fit", "crop"] {
        let c = dir.path().join(format!("c-{fit}.png"));
        let r = dir.path().join(format!("r-{fit}.png"));
        let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&c), "--secret-fit", fit], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = stego(&["reveal", s(&c), "-o", s(&r)], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let img = image::open(&r).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (32, 32), "reveal outputs the cover's size");
        revealed.push(img);
    }
    let brightness = |img: &RgbImage, y: u32| (0..32).map(|x| img.get_pixel(x, y).0.iter().map(|&v| v as u32).sum::<u32>()).sum::<u32>() / 32;
    // fit: black bars above and below (rows 0-7 and 24-31), the secret in rows 8-23.
    let fit = &revealed[1];
    assert!(brightness(fit, 2) < 90 && brightness(fit, 29) < 90, "fit: bars {} {}", brightness(fit, 2), brightness(fit, 29));
    assert!(brightness(fit, 16) > 150, "fit: content {}", brightness(fit, 16));
    // stretch: no bars.
    assert!(brightness(&revealed[0], 2) > 150 && brightness(&revealed[0], 29) > 150);
    // crop: the centre of the secret, half red and half blue, no bars.
    let crop = &revealed[2];
    assert!(brightness(crop, 2) > 150);
    let (l, r) = (crop.get_pixel(4, 16).0, crop.get_pixel(27, 16).0);
    assert!(l[0] > l[2] + 60 && r[2] > r[0] + 60, "crop: red left {l:?}, blue right {r:?}");
    // stretch keeps the secret's whole width: red at the left edge too, as crop does; fit
    // keeps it all but smaller.
    let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&dir.path().join("x.png")), "--secret-fit", "zoom"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("stretch, fit, crop"), "{}", stderr(&o));
}

#[test]
fn a_saturated_cover_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let bars = dir.path().join("bars.png");
    let colours = [[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]];
    RgbImage::from_fn(64, 48, |x, _| image::Rgb(colours[(x / 8) as usize])).save(&bars).unwrap();
    let (_d, cover, secret) = small_inputs();
    let out = dir.path().join("out.png");
    let o = stego(&["hide", "--cover", s(&bars), "--secret", s(&secret), "-o", s(&out)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: 100% of the cover's pixels have a colour channel at 0 or 255"), "{}", stderr(&o));
    let o = stego(&["hide", "--cover", s(&cover), "--secret", s(&secret), "-o", s(&out)], &[]);
    assert!(o.status.success() && !stderr(&o).contains("warning"), "{}", stderr(&o));
}
