use stego::frame::{Frame, FrameMut, PixelFormat::Rgb};
fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let opts = stego::RuntimeOptions::default();
    let mut hider = stego::Hider::new(&root.join("models/hide.onnx"), &opts).unwrap();
    let mut rev = stego::Revealer::new(&root.join("models/reveal.onnx"), &opts).unwrap();
    let (w, h) = (160usize, 90usize);
    let c: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7) % 251) as u8).collect();
    let s: Vec<u8> = (0..w * h * 3).map(|i| ((i * 13 / 5) % 239) as u8).collect();
    let run = |hider: &mut stego::Hider, a: &[u8], b: &[u8]| {
        let mut o = vec![0u8; w * h * 3];
        hider.hide(&Frame::packed(a, Rgb, w, h).unwrap(), &Frame::packed(b, Rgb, w, h).unwrap(), &mut FrameMut::packed(&mut o, Rgb, w, h).unwrap()).unwrap();
        o
    };
    let o1 = run(&mut hider, &c, &s);
    let o2 = run(&mut hider, &c, &s);
    let mut r = vec![0u8; w * h * 3];
    rev.reveal(&Frame::packed(&o2, Rgb, w, h).unwrap(), &mut FrameMut::packed(&mut r, Rgb, w, h).unwrap()).unwrap();
    let o3 = run(&mut hider, &c, &s);
    let o4 = run(&mut hider, &s, &c);
    let o5 = run(&mut hider, &c, &s);
    let p = |a: &[u8], b: &[u8]| stego::metrics::Metrics::rgb8(a, b, w, h).psnr;
    println!("1~2 {:.2} 2~3 {:.2} 3~5 {:.2} 1~5 {:.2} 4~5 {:.2}", p(&o1, &o2), p(&o2, &o3), p(&o3, &o5), p(&o1, &o5), p(&o4, &o5));
}
